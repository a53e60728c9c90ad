// curfew's status page works without this script. With it: every instant also reads in
// the reader's own time zone, and the page refreshes each minute while nobody is typing.
"use strict";
(function () {
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function offsetOf(text) {
    var m = /([+-])(\d\d):(\d\d)$/.exec(text);
    if (!m) { return /Z$/.test(text) ? 0 : null; }
    var minutes = parseInt(m[2], 10) * 60 + parseInt(m[3], 10);
    return m[1] === "-" ? -minutes : minutes;
  }
  var times = document.querySelectorAll("time[data-local]");
  for (var i = 0; i < times.length; i++) {
    var text = times[i].getAttribute("datetime");
    var at = new Date(text);
    if (isNaN(at.getTime())) { continue; }
    // Only where the reader's clock differs from the zone shown.
    if (-at.getTimezoneOffset() === offsetOf(text)) { continue; }
    var yours = document.createElement("span");
    yours.className = "yours";
    yours.textContent = " (" + pad(at.getHours()) + ":" + pad(at.getMinutes()) + " your time)";
    times[i].appendChild(yours);
  }
  var refresh = document.body.getAttribute("data-refresh");
  if (!refresh && document.querySelector("[data-refresh]")) {
    refresh = document.querySelector("[data-refresh]").getAttribute("data-refresh");
  }
  if (refresh) {
    setInterval(function () {
      var active = document.activeElement;
      var typing = active && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName);
      if (!document.hidden && !typing) { window.location.reload(); }
    }, parseInt(refresh, 10) * 1000);
  }
})();
