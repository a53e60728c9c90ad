#!/usr/bin/env python3
"""Render docs/dashboard/dashboard.png: the Grafana dashboard's main panels, from real data.

Starts `curfew run` on the built-in sandbox (config/sandbox.yaml) with a scaled clock, and
a real Prometheus scraping it every second. After a few real minutes (two simulated days at
the default speed), it asks Prometheus' HTTP API (/api/v1/query_range) for the queries of
six panels of deploy/grafana/dashboards/curfew.json, taken from the JSON itself with the
Grafana variables filled in, and draws them in a dark, Grafana-like grid.

    pip install matplotlib            # Python 3.11+
    cargo build                       # target/debug/curfew
    python3 docs/dashboard/render.py  # about 4 minutes

Needs `prometheus` 2.x on PATH (or PROMETHEUS_BIN), as tests/prometheus.rs does. The curfew
binary is target/debug/curfew unless CURFEW_BIN or --curfew says otherwise.

Time: Prometheus stamps samples with real time. The x axes show the daemon's simulated
clock instead (real seconds since the daemon started x speed, from the instant it started),
in the rule file's time zone; the caption says so. Pass durations are real, measured time.

One departure from the dashboard: the "Actions" bars are differences of the counters that
the panel's increase() reads, because increase() misses the first step of a series that
is born above zero (see the comment there).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/curfew.json"
SCRAPE = 1.0  # seconds, real

# Grafana's dark theme and its classic palette.
BG, PANEL, GRID, TEXT, MUTED = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9a"
GREEN, BLUE, YELLOW, ORANGE, RED, PURPLE, CYAN, PINK = (
    "#73bf69", "#5794f2", "#fade2a", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#ff7383",
)
PALETTE = [GREEN, YELLOW, BLUE, ORANGE, RED, CYAN, PURPLE, PINK]


# --------------------------------------------------------------------------- processes

def shown(path: Path) -> str:
    """A path as the caption shows it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return 0, ""


def wait_until(what: str, check, limit: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            sys.exit(f"{what}: not after {limit:.0f}s\n{tail}")
        time.sleep(0.2)


def tool(var: str, name: str) -> str:
    path = os.environ.get(var) or shutil.which(name)
    if not path:
        sys.exit(f"`{name}` not found: set {var} or install it (apt-get install prometheus)")
    return path


def rule_file(source: Path, ledger: Path, listen: str, resync: str) -> tuple[str, str]:
    """The sandbox rule file with its own listen address and ledger, and a resync that
    fits a scaled clock (30 s real is six simulated hours at x720). Also its time zone."""
    text = source.read_text()
    for key, value in (("listen", listen), ("ledger", str(ledger)), ("resync", resync)):
        text, n = re.subn(rf"(?m)^(\s+){key}:.*$", rf"\g<1>{key}: {value}", text, count=1)
        if n != 1:
            sys.exit(f"{source}: no daemon.{key} line to replace")
    tz = re.search(r"(?m)^timezone:\s*(\S+)", text)
    return text, tz.group(1) if tz else "UTC"


# --------------------------------------------------------------------------- queries

class Prometheus:
    def __init__(self, base: str):
        self.base = base

    def api(self, path: str, **params) -> dict:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        status, body = get(url, timeout=30)
        answer = json.loads(body) if body else {}
        if status != 200 or answer.get("status") != "success":
            sys.exit(f"{params.get('query')}: refused ({status}): {body[:500]}")
        return answer["data"]

    def instant(self, query: str, at: float | None = None) -> list[dict]:
        extra = {} if at is None else {"time": f"{at:.3f}"}
        return self.api("/api/v1/query", query=query, **extra)["result"]

    def range(self, query: str, start: float, end: float, step: float) -> list[dict]:
        return self.api("/api/v1/query_range", query=query, start=f"{start:.3f}",
                        end=f"{end:.3f}", step=f"{step:g}")["result"]


def panel_targets() -> dict[str, list[dict]]:
    """Each panel's targets (expr, legendFormat), by title."""
    dashboard = json.loads(DASHBOARD.read_text())
    found, stack = {}, list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        if panel.get("targets"):
            found[panel["title"]] = panel["targets"]
    return found


def substitute(expr: str, variables: dict[str, str]) -> str:
    """`$name` and `${name}` replaced as Grafana would; an unknown one is an error."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            sys.exit(f"unknown Grafana variable ${name} in {expr}")
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def legend(fmt: str, labels: dict) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


# --------------------------------------------------------------------------- drawing

def style_axes(ax, title: str, tz: ZoneInfo, span_hours: float, note: str = "",
               note_color: str = MUTED, note_size: float = 10) -> None:
    ax.set_facecolor(PANEL)
    ax.set_title(title, loc="left", color=TEXT, fontsize=12.5, fontweight="bold", pad=9)
    if note:
        ax.text(1.0, 1.0, note, transform=ax.transAxes, ha="right", va="bottom",
                color=note_color, fontsize=note_size, fontweight="bold"
                if note_color != MUTED else "normal").set_y(1.02)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color=GRID, linewidth=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(colors=MUTED, labelsize=9, length=0)
    step = 6 if span_hours <= 60 else 12
    ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, step), tz=tz))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _: (lambda d: d.strftime("%a %H:%M") if d.hour == 0 else d.strftime("%H:%M"))(
            mdates.num2date(x, tz=tz))))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))


def legend_below(ax, ncol: int = 4, fontsize: float = 9) -> None:
    leg = ax.legend(loc="upper left", bbox_to_anchor=(0, -0.09), ncol=ncol, frameon=False,
                    fontsize=fontsize, labelcolor=TEXT, handlelength=1.2, columnspacing=1.2,
                    borderaxespad=0)
    for h in leg.legend_handles:
        if hasattr(h, "set_linewidth"):
            h.set_linewidth(3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=4.0, help="real minutes to run (4)")
    p.add_argument("--speed", type=float, default=720.0,
                   help="clock speed: simulated seconds per real second (720)")
    p.add_argument("--config", type=Path, default=ROOT / "config/sandbox.yaml")
    p.add_argument("--resync", default="1s", help="daemon.resync, real time (1s)")
    p.add_argument("--curfew", default=os.environ.get("CURFEW_BIN",
                                                       str(ROOT / "target/debug/curfew")))
    p.add_argument("--out", type=Path, default=ROOT / "docs/dashboard/dashboard.png")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()

    prometheus_bin = tool("PROMETHEUS_BIN", "prometheus")
    if not Path(args.curfew).is_file():
        sys.exit(f"{args.curfew}: no curfew binary (cargo build, or --curfew)")

    work = Path(tempfile.mkdtemp(prefix="curfew-dashboard-"))
    children: list[subprocess.Popen] = []
    # SIGTERM and SIGHUP unwind like Ctrl-C, so `finally` stops the children.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    began = time.monotonic()
    try:
        curfew_port, prom_port = free_port(), free_port()
        rules, tz_name = rule_file(args.config, work / "ledger.db",
                                   f"127.0.0.1:{curfew_port}", args.resync)
        tz = ZoneInfo(tz_name)
        (work / "rules.yaml").write_text(rules)

        curfew_log = work / "curfew.log"
        started = time.time()  # the simulated clock starts here, at this instant
        children.append(subprocess.Popen(
            [args.curfew, "run", "--config", str(work / "rules.yaml"),
             "--clock-speed", f"{args.speed:g}", "--log-format", "json"],
            cwd=work, stdin=subprocess.DEVNULL, stdout=curfew_log.open("w"),
            stderr=subprocess.STDOUT))
        curfew_url = f"http://127.0.0.1:{curfew_port}"
        wait_until("curfew is ready", lambda: get(f"{curfew_url}/readyz")[0] == 200, 60,
                   curfew_log)

        def simulated(t: float) -> dt.datetime:
            return dt.datetime.fromtimestamp(started + (t - started) * args.speed, tz)

        # JSON is YAML: Prometheus reads it as it is.
        (work / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": f"{SCRAPE:g}s", "evaluation_interval": "15s"},
            "scrape_configs": [{"job_name": "curfew", "static_configs": [
                {"targets": [f"127.0.0.1:{curfew_port}"]}]}],
        }))
        prom_log = work / "prometheus.log"
        children.append(subprocess.Popen(
            [prometheus_bin, f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            cwd=work, stdin=subprocess.DEVNULL, stdout=prom_log.open("w"),
            stderr=subprocess.STDOUT))
        prom = Prometheus(f"http://127.0.0.1:{prom_port}")
        wait_until("prometheus is ready", lambda: get(f"{prom.base}/-/ready")[0] == 200, 60,
                   prom_log)
        wait_until("prometheus has scraped curfew",
                   lambda: bool(prom.instant('up{job="curfew"} == 1')), 60, prom_log)
        start = float(math.ceil(time.time()))  # whole seconds: the query grid's origin
        print(f"curfew on :{curfew_port}, prometheus on :{prom_port}, in {work}", flush=True)

        end = start + args.minutes * 60
        while (now := time.time()) < end:
            for child in children:
                if child.poll() is not None:
                    sys.exit(f"{child.args[0]} exited ({child.returncode}); see {work}")
            print(f"  {max(0.0, now - start) / 60:4.1f} real min, simulated "
                  f"{simulated(now):%a %d %b %H:%M %Z}", flush=True)
            time.sleep(min(30.0, max(0.0, end - now)))
        end = float(math.floor(time.time()))

        # ---------------------------------------------------------------- the data
        # Grafana's variables for this Prometheus: one job, every rule, and windows that
        # fit a 1 s scrape (10 s for the pass duration's rate, as tests/prometheus.rs).
        # A bar of "Actions" counts one simulated hour (never less than four scrapes).
        bucket = max(4 * SCRAPE, 3600 / args.speed)
        step = max(SCRAPE, (end - start) / 480)
        targets = panel_targets()

        def variables(interval: float) -> dict[str, str]:
            return {"job": "curfew", "rule": ".*", "__interval": f"{interval:g}s",
                    "__rate_interval": f"{interval:g}s", "__range": f"{end - start:.0f}s"}

        def series(title: str, interval: float, q_step: float, missing: float = 0.0,
                   rewrite=lambda expr: expr) -> list[tuple[str, list, list]]:
            # Every series on the same grid (the query's steps): a series that starts
            # late (a counter's first increment) is `missing` until then.
            grid = [start + k * q_step for k in range(int((end - start) / q_step) + 1)]
            xs = [simulated(t) for t in grid]
            out = []
            for target in targets[title]:
                expr = substitute(rewrite(target["expr"]), variables(interval))
                for s in prom.range(expr, start, grid[-1], q_step):
                    values = {round((float(t) - start) / q_step): float(v)
                              for t, v in s["values"]}
                    ys = [values.get(k, missing) for k in range(len(grid))]
                    out.append((legend(target.get("legendFormat", ""), s["metric"]), xs, ys))
            if not out:
                sys.exit(f"panel {title!r}: no data; see {work}")
            return out

        envs = series("Environments by state", 4 * SCRAPE, step)
        saved = series("Money saved, running total", 4 * SCRAPE, step)
        rate = series("Cost avoided per hour", 4 * SCRAPE, step)
        # "Actions": the panel sums increase(curfew_actions_total[$__rate_interval]), but
        # each counter series is born at its first increment, already above zero, and
        # increase() cannot count that first step: the 8 first stops of a rule, say, would
        # not show (in Grafana either). So the bars are differences of the same counters,
        # summed the same way, a series being 0 until it appears (what happened before
        # Prometheus' first scrape is the baseline).
        def counters(expr: str) -> str:
            plain = re.sub(r"increase\((.*)\[\$__rate_interval\]\)", r"\1", expr)
            if plain == expr:
                sys.exit(f"Actions: no increase(...[$__rate_interval]) to undo in {expr}")
            return plain

        actions = []
        for name, xs, totals in series("Actions, by action and result", bucket, bucket,
                                       rewrite=counters):
            actions.append((name, xs[1:], [b - a for a, b in zip(totals, totals[1:])]))
        by_rule = [(s["metric"], float(s["value"][1])) for s in prom.instant(substitute(
            targets["Running and stopped, by rule"][0]["expr"], variables(SCRAPE)),
            at=end)]
        passes = series("Pass duration", 10 * SCRAPE, step, math.nan)
        currency = next((s["metric"].get("currency") for s in
                         prom.instant('curfew_savings_rate{job="curfew"}')), "EUR")
        fleet_size = round(max(map(sum, zip(*(s[2] for s in envs)))))
        pass_count = prom.instant('sum(curfew_reconcile_total{job="curfew"})', at=end)
        pass_count = int(float(pass_count[0]["value"][1])) if pass_count else 0

        # ---------------------------------------------------------------- the picture
        plt.rcParams.update({"font.family": "DejaVu Sans", "text.color": TEXT})
        fig, axes = plt.subplots(2, 3, figsize=(16, 9), dpi=100, facecolor=BG)
        fig.subplots_adjust(left=0.045, right=0.985, top=0.85, bottom=0.145, wspace=0.16,
                            hspace=0.55)
        span = (end - start) * args.speed / 3600
        x0, x1 = simulated(start), simulated(end)
        symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, currency + " ")
        money = FuncFormatter(lambda v, _: f"{symbol}{v:,.0f}")

        # 1. Environments by state: stacked areas, running first.
        ax = axes[0][0]
        order = ["running", "stopping", "stopped", "starting", "deleting", "error", "unknown"]
        colors = {"running": GREEN, "stopping": YELLOW, "stopped": BLUE, "starting": ORANGE,
                  "deleting": PURPLE, "error": RED, "unknown": MUTED}
        envs.sort(key=lambda s: order.index(s[0]) if s[0] in order else 99)
        last = {s[0]: s[2][-1] for s in envs}
        style_axes(ax, "Environments by state", tz, span,
                   f"{last.get('running', 0):.0f} running · "
                   f"{last.get('stopped', 0):.0f} stopped", TEXT, 11)
        ax.stackplot(envs[0][1], *[s[2] for s in envs], labels=[s[0] for s in envs],
                     colors=[colors.get(s[0], CYAN) for s in envs], alpha=0.85, linewidth=0)
        ax.set_ylim(0, fleet_size * 1.08)
        ax.set_ylabel("environments", color=MUTED, fontsize=9)
        legend_below(ax, ncol=6)

        # 2. Money saved, running total: stacked by rule.
        ax = axes[0][1]
        saved.sort(key=lambda s: -s[2][-1])
        total = sum(s[2][-1] for s in saved)
        style_axes(ax, "Money saved, running total", tz, span, f"{symbol}{total:,.2f}",
                   GREEN, 15)
        ax.stackplot(saved[0][1], *[s[2] for s in saved],
                     labels=[s[0].replace(f" ({currency})", "") for s in saved],
                     colors=PALETTE[: len(saved)], alpha=0.8, linewidth=0)
        ax.yaxis.set_major_formatter(money)
        legend_below(ax, ncol=4)

        # 3. Cost avoided per hour (a rate per simulated hour).
        ax = axes[0][2]
        style_axes(ax, "Cost avoided per hour", tz, span,
                   f"now {symbol}{rate[0][2][-1]:,.2f} / h", GREEN, 13)
        for i, (name, xs, ys) in enumerate(rate):
            color = GREEN if i == 0 else PALETTE[i]
            ax.plot(xs, ys, color=color, linewidth=1.8, label=name)
            ax.fill_between(xs, ys, color=color, alpha=0.15)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{symbol}{v:,.2f}"))
        legend_below(ax)

        # 4. Actions, by action and result: stacked bars, one per bucket.
        ax = axes[1][0]
        per = (f"{bucket * args.speed / 3600:g} simulated hour" if bucket * args.speed >= 3600
               else f"{bucket * args.speed / 60:g} simulated min")
        style_axes(ax, "Actions, by action and result", tz, span, f"per {per}")
        acolors = {"stop ok": BLUE, "start ok": GREEN, "delete ok": PURPLE, "warn ok": YELLOW}
        actions.sort(key=lambda s: (s[0].split()[-1] != "ok", s[0]))
        width = bucket * args.speed / 86400 * 0.85  # in days, as the date axis counts
        bottom = [0.0] * len(actions[0][2])
        extra = iter([ORANGE, CYAN, PINK, RED] + PALETTE)
        for name, xs, ys in actions:
            ys = [max(0.0, y) for y in ys]
            color = acolors.get(name) or (RED if "error" in name else next(extra))
            # A value counts the window that ends at its timestamp.
            ax.bar(xs, ys, width=-width, align="edge", bottom=bottom, color=color,
                   label=name, linewidth=0)
            bottom = [a + b for a, b in zip(bottom, ys)]
        ax.set_ylabel("actions", color=MUTED, fontsize=9)
        legend_below(ax, ncol=4)

        # 5. Pass duration, p50 and p95 (real milliseconds).
        ax = axes[1][1]
        style_axes(ax, "Pass duration", tz, span, "ms, real time")
        for (name, xs, ys), color in zip(passes, (GREEN, YELLOW)):
            ax.plot(xs, [y * 1000 for y in ys], color=color, linewidth=1.5, label=name)
        ax.set_ylim(bottom=0)
        legend_below(ax)

        for ax in axes.flat[:5]:
            ax.set_xlim(x0, x1)

        # 6. Running and stopped, by rule, at the end: the dashboard's bar gauge.
        ax = axes[1][2]
        ax.set_facecolor(PANEL)
        ax.set_title("Running and stopped, by rule", loc="left", color=TEXT, fontsize=12.5,
                     fontweight="bold", pad=9)
        ax.text(1.0, 1.02, f"at {simulated(end):%a %H:%M}", transform=ax.transAxes,
                ha="right", va="bottom", color=MUTED, fontsize=10)
        counts: dict[str, dict[str, float]] = {}
        for metric, value in by_rule:
            counts.setdefault(metric.get("rule", ""), {})[metric.get("state", "")] = value
        rules_seen = sorted(counts, key=lambda r: (r == "unmatched",
                                                   -sum(counts[r].values()), r))
        ys = range(len(rules_seen))[::-1]
        running = [counts[r].get("running", 0) for r in rules_seen]
        stopped = [counts[r].get("stopped", 0) for r in rules_seen]
        ax.barh(ys, running, color=GREEN, height=0.5, label="running")
        ax.barh(ys, stopped, left=running, color=BLUE, height=0.5, label="stopped")
        # Names above their bars, as Grafana's bar gauge puts them.
        for y, rule in zip(ys, rules_seen):
            ax.text(0, y + 0.3, "unmatched (no rule)" if rule == "unmatched" else rule,
                    ha="left", va="bottom", color=TEXT, fontsize=10)
        ax.set_ylim(-0.45, len(rules_seen) - 0.2)
        for y, r, st in zip(ys, running, stopped):
            for x, n in ((r / 2, r), (r + st / 2, st)):
                if n:
                    ax.text(x, y, f"{n:.0f}", ha="center", va="center", color=BG,
                            fontsize=11, fontweight="bold", family="DejaVu Sans")
        ax.set_yticks([])
        ax.tick_params(axis="x", colors=MUTED, labelsize=9, length=0)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.grid(True, axis="x", color=GRID, linewidth=0.7)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel("environments", color=MUTED, fontsize=9)
        legend_below(ax)
        ax.get_legend().set_bbox_to_anchor((0, -0.16))

        fig.text(0.045, 0.955, f"curfew — sandbox fleet, simulated time ×{args.speed:g}",
                 color=TEXT, fontsize=20, fontweight="bold", va="center")
        fig.text(0.045, 0.912,
                 f"A fleet of {fleet_size} environments under the rules of {shown(args.config)} · "
                 f"{simulated(start):%a %d %b %H:%M} → {simulated(end):%a %d %b %H:%M} "
                 f"simulated ({tz_name}) · {pass_count} reconcile passes",
                 color=MUTED, fontsize=11.5, va="center")
        fig.text(0.045, 0.034,
                 f"Rendered {dt.date.today():%Y-%m-%d} from a real Prometheus (scrape every "
                 f"{SCRAPE:g} s) scraping `curfew run --clock-speed {args.speed:g}` on its "
                 f"built-in sandbox for {(end - start) / 60:.1f} real minutes, with the queries "
                 f"of deploy/grafana/dashboards/curfew.json.",
                 color=MUTED, fontsize=9, va="center")
        fig.text(0.045, 0.014,
                 f"X axes: the daemon's simulated clock ({tz_name}; Prometheus' real timestamps, "
                 f"scaled ×{args.speed:g}). Pass durations are real time. Actions: differences "
                 f"of curfew_actions_total per {per}. Made by docs/dashboard/render.py.",
                 color=MUTED, fontsize=9, va="center")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, facecolor=BG)
        print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB) in "
              f"{(time.monotonic() - began) / 60:.1f} min", flush=True)
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
