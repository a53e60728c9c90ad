//! Wake on request over the real daemon and the in-process sandbox (real HTTP between
//! them; the public port itself served over real HTTP where the port is what is tested),
//! on a manual clock.

use axum::body::{Body, to_bytes};
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::config::public::{ClientLimit, Rate};
use crate::platform::Mode;
use crate::reconcile::tests::{World, at, world};
use crate::sandbox::SandboxEnvironment;

/// Previews may be woken by a request; staging may not; production is protected.
const RULES: &str = "timezone: Europe/Paris\nsafety:\n  protect_production: true\nrules:\n  - name: previews\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    stop_when_idle: 1h\n    wake_on_request: true\n  - name: others\n    match: { mode: [staging, development] }\n    run: Mon-Fri 08:00-19:00\n";
/// A Wednesday evening: the first pass stops everything.
const START: &str = "2026-11-25T20:00:00+01:00";

pub(super) struct Site {
    pub(super) w: World,
    pub(super) router: Router,
}

pub(super) async fn site(max_wakes_per_hour: u32) -> Site {
    let w = world(RULES, START, 8).await;
    w.daemon.pass().await.unwrap();
    w.clock.set(at(START) + TimeDelta::minutes(2));
    w.daemon.pass().await.unwrap();
    let router = public_routes(
        w.daemon.clone(),
        options(max_wakes_per_hour, no_limit()),
        None,
    )
    .app;
    Site { w, router }
}

/// A 30-minute session, the hourly cap, and the per-client limit.
fn options(max_wakes_per_hour: u32, clients: ClientLimit) -> WakeOptions {
    WakeOptions {
        session: TimeDelta::minutes(30),
        max_wakes_per_hour,
        clients,
    }
}

/// The in-process tests call the router without a connection, all as one client: there
/// the per-client limit is off (it is tested over real HTTP, below).
fn no_limit() -> ClientLimit {
    ClientLimit {
        rate: None,
        ..ClientLimit::default()
    }
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

impl Site {
    pub(super) async fn ask(&self, method: Method, path: &str, accept: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub(super) async fn browser(&self, path: &str) -> Answer {
        self.ask(Method::GET, path, "text/html,application/xhtml+xml")
            .await
    }

    pub(super) async fn api(&self, path: &str) -> Answer {
        self.ask(Method::GET, path, "application/json").await
    }

    pub(super) fn one(&self, mode: Mode) -> SandboxEnvironment {
        self.w
            .sandbox
            .environments()
            .into_iter()
            .find(|e| e.mode == mode)
            .unwrap()
    }

    pub(super) fn one_by_id(&self, id: &str) -> SandboxEnvironment {
        self.w
            .sandbox
            .environments()
            .into_iter()
            .find(|e| e.id == id)
            .unwrap()
    }

    pub(super) fn deploys(&self, id: &str) -> u32 {
        self.w
            .sandbox
            .requests()
            .deploys
            .get(id)
            .map_or(0, |c| c.calls)
    }

    pub(super) fn later(&self, minutes: i64) {
        self.w.clock.advance(TimeDelta::minutes(minutes));
    }
}

#[tokio::test]
async fn ten_thousand_concurrent_requests_for_a_stopped_preview_make_one_start() {
    // One client here (no connection): its per-client limit is off, so that the storm
    // reaches the flight (see `no_limit`).
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    assert_eq!(env.state, "STOPPED");
    let path = format!("/wake/{}", env.name);
    let answers = futures::future::join_all((0..10_000).map(|_| s.api(&path))).await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == StatusCode::SERVICE_UNAVAILABLE
                && a.headers[header::RETRY_AFTER] == "5")
    );
    assert_eq!(s.deploys(&env.id), 1);
    let history = s.w.daemon.ledger().history(&env.id, 10).unwrap();
    assert!(
        history.iter().any(|h| h.what == "wake by request"),
        "{history:?}"
    );
}

#[tokio::test]
async fn the_waiting_page_says_how_long_then_redirects_to_the_very_path_once_it_serves() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    let path = format!("/wake/{}?to=/orders/42", env.name);
    let waiting = s.browser(&path).await;
    assert_eq!(waiting.status, StatusCode::OK);
    assert!(
        waiting
            .body
            .contains(&format!("{} is waking up, about 2 minutes", env.name)),
        "{}",
        waiting.body
    );
    assert!(waiting.body.contains("http-equiv=\"refresh\""));
    // The sandbox deploys in a few of its 10 s steps.
    s.later(2);
    let ready = s.browser(&path).await;
    assert_eq!(ready.status, StatusCode::SEE_OTHER, "{}", ready.body);
    let location = ready.headers[header::LOCATION].to_str().unwrap();
    assert!(
        location.ends_with(&format!("/app/{}/orders/42", env.id)),
        "{location}"
    );
    let api = s.api(&format!("/wake/{}", env.id)).await;
    assert_eq!(api.status, StatusCode::OK);
    assert!(api.body.contains("\"status\":\"ready\""), "{}", api.body);
    assert_eq!(s.deploys(&env.id), 1);
}

#[tokio::test]
async fn activity_postpones_the_idle_and_scheduled_stop() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    let path = format!("/wake/{}", env.id);
    s.api(&path).await;
    // Requests keep coming for 80 minutes, past the rule's 1 h idle stop.
    for _ in 0..8 {
        s.later(10);
        s.api(&path).await;
        s.w.daemon.pass().await.unwrap();
    }
    let now =
        s.w.sandbox
            .environments()
            .into_iter()
            .find(|e| e.id == env.id)
            .unwrap();
    assert_eq!(now.state, "DEPLOYED");
    assert_eq!(
        s.w.sandbox
            .requests()
            .stops
            .get(&env.id)
            .map_or(0, |c| c.calls),
        1,
        "only the first pass's stop"
    );
}

#[tokio::test]
async fn production_protected_and_rules_without_wake_on_request_are_refused_and_nothing_starts() {
    let s = site(60).await;
    for mode in [Mode::Production, Mode::Staging] {
        let env = s.one(mode);
        let a = s.api(&format!("/wake/{}", env.id)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{mode:?}: {}", a.body);
        assert_eq!(a.headers[header::CONTENT_TYPE], "application/problem+json");
        let page = s.browser(&format!("/wake/{}", env.id)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert_eq!(s.deploys(&env.id), 0);
    }
    let unknown = s.browser("/wake/no-such-env").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // Nothing on it names another environment.
    for e in s.w.sandbox.environments() {
        assert!(!unknown.body.contains(&e.name) && !unknown.body.contains(&e.id));
    }
}

#[tokio::test]
async fn the_cap_on_wakes_per_hour_holds() {
    let s = site(1).await;
    let previews: Vec<_> =
        s.w.sandbox
            .environments()
            .into_iter()
            .filter(|e| e.mode == Mode::Preview)
            .collect();
    assert!(previews.len() >= 2, "the fleet has two previews");
    assert_eq!(
        s.api(&format!("/wake/{}", previews[0].id)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let capped = s.api(&format!("/wake/{}", previews[1].id)).await;
    assert_eq!(capped.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(s.deploys(&previews[1].id), 0);
}

/// The requests `s`'s sandbox was asked since `before`, by endpoint (those asked at least
/// once).
fn asked_since(
    s: &Site,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    s.w.sandbox
        .requests()
        .by_endpoint
        .into_iter()
        .map(|(endpoint, n)| {
            let since = n - before.get(&endpoint).copied().unwrap_or(0);
            (endpoint, since)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// `reads` reads of one environment (`GET /environment/{id}` and its status) and one start,
/// as [`asked_since`] counts them.
fn one_read_then_start(reads: u64) -> std::collections::BTreeMap<String, u64> {
    [
        ("GET /environment/{environmentId}", reads),
        ("GET /environment/{environmentId}/status", reads),
        ("POST /environment/{environmentId}/deploy", 1),
    ]
    .into_iter()
    .map(|(e, n)| (e.to_string(), n))
    .collect()
}

/// The first request to a preview the last pass listed stopped reads that one environment
/// from the platform (`GET /environment/{id}` and its status, for its mode and state now),
/// then starts it: it lists nothing (no project, environment or status listing) and does
/// not ask first whether it serves (its link).
#[tokio::test]
async fn a_request_s_wake_reads_its_one_environment_then_starts_it_and_lists_nothing() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    assert_eq!(env.state, "STOPPED");
    let before = s.w.sandbox.requests().by_endpoint;
    let a = s.api(&format!("/wake/{}", env.name)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(asked_since(&s, &before), one_read_then_start(1),);
    assert_eq!(s.deploys(&env.id), 1);
    // Later requests look as before: after 2 s, whether it serves (its status and link).
    let before = s.w.sandbox.requests().by_endpoint;
    s.w.clock.advance(TimeDelta::seconds(3));
    s.api(&format!("/wake/{}", env.name)).await;
    let later = asked_since(&s, &before);
    assert_eq!(later.get("GET /environment/{environmentId}/link"), Some(&1));
    assert_eq!(s.deploys(&env.id), 1);
}

/// A preview made production on the platform after the last pass listed it is refused:
/// the wake acts on the environment as the platform has it now, not as the pass saw it.
#[tokio::test]
async fn a_preview_made_production_since_the_last_pass_is_not_woken() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    assert_eq!(env.state, "STOPPED");
    assert!(s.w.sandbox.set_mode(&env.id, Mode::Production));
    let a = s.api(&format!("/wake/{}", env.id)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body.contains("production"), "{}", a.body);
    assert_eq!(s.deploys(&env.id), 0);
}

/// A request for an environment it may not wake takes no place under the hourly cap, and
/// past the cap such an environment is still refused as such (403, not 429).
#[tokio::test]
async fn a_refused_wake_takes_no_place_under_the_cap() {
    let s = site(1).await;
    let staging = s.one(Mode::Staging);
    let preview = s.one(Mode::Preview);
    assert_eq!(staging.state, "STOPPED");
    let refused = s.api(&format!("/wake/{}", staging.id)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let woken = s.api(&format!("/wake/{}", preview.id)).await;
    assert_eq!(
        woken.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        woken.body
    );
    assert_eq!(s.deploys(&preview.id), 1);
    // The cap (1) is reached now; staging, asked again after its refusal was forgotten,
    // is still refused as staging.
    s.later(2);
    let again = s.api(&format!("/wake/{}", staging.id)).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    assert_eq!(s.deploys(&staging.id), 0);
}

#[tokio::test]
async fn head_and_robots_txt_wake_nothing() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    let head = s
        .ask(Method::HEAD, &format!("/wake/{}", env.id), "text/html")
        .await;
    assert_eq!(head.status, StatusCode::OK);
    let robots = s.browser("/robots.txt").await;
    assert_eq!(robots.body, "User-agent: *\nDisallow: /\n");
    assert_eq!(s.deploys(&env.id), 0);
}

/// The public port served over real HTTP until the returned sender is dropped or fired.
async fn serve(s: &Site) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    serve_with(s, ClientLimit::default()).await
}

/// The public port over real HTTP, with the per-client limit `clients`.
async fn serve_with(
    s: &Site,
    clients: ClientLimit,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = public_routes(s.w.daemon.clone(), options(60, clients), None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::server::serve(
        listener,
        routes,
        crate::server::HttpLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// The public port over real HTTP: only the public endpoints answer.
#[tokio::test]
async fn the_public_port_answers_only_public_endpoints() {
    let s = site(60).await;
    let (addr, stop) = serve(&s).await;
    let client = reqwest::Client::new();
    let env = s.one(Mode::Preview);
    for (path, want) in [
        ("/metrics".to_string(), 404),
        ("/api/v1/plan".to_string(), 404),
        ("/healthz".to_string(), 404),
        ("/".to_string(), 404),
        ("/robots.txt".to_string(), 200),
        ("/assets/style.css".to_string(), 200),
        (format!("/wake/{}", env.id), 503),
    ] {
        let got = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status().as_u16(), want, "{path}");
    }
    let _ = stop.send(());
}

/// `host[:port]` and path of an environment's link, as the platform gives it.
async fn link_of(s: &Site, id: &str) -> (String, String) {
    let links = s.w.daemon.links(id).await.unwrap();
    let url = reqwest::Url::parse(&links[0]).unwrap();
    let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    (authority, url.path().trim_end_matches('/').to_string())
}

/// `method path` on the public port at `addr`, with `headers`: the status, the headers
/// and the body.
async fn send(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let mut request = client.request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let got = request.send().await.unwrap();
    let status = got.status().as_u16();
    let headers = got.headers().clone();
    (status, headers, got.text().await.unwrap())
}

/// Requests to the public port at `addr` that name `host` (as a swapped Ingress passes
/// them on).
struct OnHost<'a> {
    client: &'a reqwest::Client,
    addr: std::net::SocketAddr,
    host: &'a str,
}

impl OnHost<'_> {
    async fn ask(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
    ) -> (u16, HeaderMap, String) {
        let headers = [("host", self.host), ("accept", accept)];
        send(self.client, self.addr, method, path, &headers).await
    }

    async fn get(&self, path: &str, accept: &str) -> (u16, HeaderMap, String) {
        self.ask(reqwest::Method::GET, path, accept).await
    }
}

/// A swapped Ingress sends every path of a sleeping preview's host to the public port:
/// any path there shows its waiting page, wakes it once, and returns the reader to that
/// very path and query once it serves.
#[tokio::test]
async fn any_path_of_a_sleeping_preview_s_host_shows_its_waiting_page_then_returns_there() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    assert_eq!(env.state, "STOPPED");
    let (host, base) = link_of(&s, &env.id).await;
    let (addr, stop) = serve(&s).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = format!("{base}/orders/42?tab=items");
    let html = "text/html,application/xhtml+xml";
    // A HEAD looks but wakes nothing.
    let on = OnHost {
        client: &client,
        addr,
        host: &host,
    };
    let (head, _, _) = on.ask(reqwest::Method::HEAD, &path, html).await;
    assert_eq!(head, 200);
    assert_eq!(s.deploys(&env.id), 0);
    let (status, _, page) = on.get(&path, html).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("{} is waking up, about 2 minutes", env.name)),
        "{page}"
    );
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    let (api, headers, body) = on.get(&path, "application/json").await;
    assert_eq!(api, 503, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert_eq!(s.deploys(&env.id), 1);
    // The sandbox deploys in a few of its 10 s steps.
    s.later(2);
    let (status, _, page) = on.get(&path, html).await;
    assert_eq!(status, 200, "{page}");
    let target = format!("http://{host}{path}");
    assert!(
        page.contains(&format!(
            "content=\"1;url={}\"",
            target.replace('&', "&amp;")
        )),
        "{page}"
    );
    let (api, _, body) = on.get(&path, "application/json").await;
    assert_eq!(api, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["url"], target.as_str());
    // The app the reader returns to answers at that very path.
    let app = client.get(&target).send().await.unwrap();
    assert_eq!(app.status().as_u16(), 200);
    assert_eq!(s.deploys(&env.id), 1);
    let _ = stop.send(());
}

/// Hosts curfew does not know (or that only production serves on) get 404 and nothing of
/// any environment; curfew's own paths keep their meaning on any host; an overlong `Host`
/// is no host.
#[tokio::test]
async fn unknown_hosts_get_404_and_curfew_s_own_paths_keep_their_meaning() {
    let s = site(60).await;
    let production = s.one(Mode::Production);
    let preview = s.one(Mode::Preview);
    let (host, base) = link_of(&s, &production.id).await;
    let (addr, stop) = serve(&s).await;
    let client = reqwest::Client::new();
    let html = "text/html";
    let long = format!("{}.example.com", "a".repeat(300));
    for (host, path) in [
        ("evil.example.com".to_string(), "/orders/42".to_string()),
        (host.clone(), format!("{base}/orders/42")),
        (long, "/orders/42".to_string()),
    ] {
        let on = OnHost {
            client: &client,
            addr,
            host: &host,
        };
        let (status, _, body) = on.get(&path, html).await;
        assert_eq!(status, 404, "{host}{path}: {body}");
        for e in s.w.sandbox.environments() {
            assert!(!body.contains(&*e.name) && !body.contains(&*e.id), "{body}");
        }
    }
    let evil = OnHost {
        client: &client,
        addr,
        host: "evil.example.com",
    };
    let (robots, _, body) = evil.get("/robots.txt", html).await;
    assert_eq!(
        (robots, body.as_str()),
        (200, "User-agent: *\nDisallow: /\n")
    );
    let wake_path = format!("/wake/{}", preview.id);
    let (wake, _, _) = evil.get(&wake_path, "application/json").await;
    assert_eq!(wake, 503);
    assert_eq!(s.deploys(&production.id), 0);
    let _ = stop.send(());
}

#[tokio::test]
async fn a_start_turned_away_while_the_environment_was_still_stopping_is_asked_again_once_it_has_stopped()
 {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    // Still stopping: Qovery answers a start with 409 (busy), which counts as done.
    assert!(s.w.sandbox.set_state(&env.id, "STOPPING"));
    let path = format!("/wake/{}", env.name);
    assert_eq!(s.api(&path).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(s.deploys(&env.id), 1, "the first start, turned away");
    // The stop finishes; a pass lists it stopped, well after the wake.
    assert!(s.w.sandbox.set_state(&env.id, "STOPPED"));
    s.later(1);
    s.w.daemon.pass().await.unwrap();
    assert_eq!(s.deploys(&env.id), 1, "the pass itself starts nothing");
    assert_eq!(s.api(&path).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(s.deploys(&env.id), 2, "the next request starts it again");
    assert_ne!(s.one_by_id(&env.id).state, "STOPPED");
    // Once is enough: it started this time, so no third start, and it serves.
    s.later(1);
    s.w.daemon.pass().await.unwrap();
    assert_eq!(s.api(&path).await.status, StatusCode::OK);
    assert_eq!(s.deploys(&env.id), 2);
}

/// Two requests at once, then one an hour: past its second request a client waits.
fn two_then_one_an_hour(trusted_proxies: &[&str]) -> ClientLimit {
    ClientLimit {
        rate: Some(Rate {
            count: 1,
            per: std::time::Duration::from_secs(3600),
        }),
        burst: 2,
        trusted_proxies: trusted_proxies.iter().map(|p| p.parse().unwrap()).collect(),
        ..ClientLimit::default()
    }
}

/// A client connecting from `from` (any of 127/8 reaches the loopback listener).
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` from `client`, with an `X-Forwarded-For` when given.
async fn get_as(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    path: &str,
    accept: &str,
    forwarded_for: Option<&str>,
) -> (u16, HeaderMap, String) {
    let mut headers = vec![("accept", accept)];
    headers.extend(forwarded_for.map(|xff| ("x-forwarded-for", xff)));
    send(client, addr, reqwest::Method::GET, path, &headers).await
}

/// Over real HTTP from two addresses: the one past its limit gets 429 with `Retry-After`
/// (a problem for an API, a page for a browser) and goes no further, the other is served.
#[tokio::test]
async fn a_client_over_its_limit_gets_429_while_another_is_served() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    let (addr, stop) = serve_with(&s, two_then_one_an_hour(&[])).await;
    let (one, other) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let path = format!("/wake/{}", env.id);
    let json = "application/json";
    for _ in 0..2 {
        assert_eq!(get_as(&one, addr, &path, json, None).await.0, 503);
    }
    let (status, headers, body) = get_as(&one, addr, &path, json, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&retry), "{retry}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 429);
    let (status, headers, page) = get_as(&one, addr, "/robots.txt", "text/html", None).await;
    assert_eq!(status, 429, "{page}");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(page.contains("<h1>Too many requests</h1>"), "{page}");
    assert_eq!(get_as(&other, addr, &path, json, None).await.0, 503);
    assert_eq!(s.deploys(&env.id), 1);
    let limited = s.w.daemon.metrics.encode();
    assert!(
        limited
            .lines()
            .any(|l| l == "curfew_public_requests_limited_total 2"),
        "the two requests turned away are counted:\n{limited}"
    );
    let _ = stop.send(());
}

/// A client that is not a trusted proxy cannot name another client: its own
/// `X-Forwarded-For`, new on every request, is ignored.
#[tokio::test]
async fn a_spoofed_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let s = site(60).await;
    let (addr, stop) = serve_with(&s, two_then_one_an_hour(&["10.0.0.0/8"])).await;
    let client = client_from("127.0.0.2");
    for (i, want) in [(1, 200), (2, 200), (3, 429)] {
        let xff = format!("198.51.100.{i}");
        let got = get_as(&client, addr, "/robots.txt", "text/plain", Some(&xff)).await;
        assert_eq!(got.0, want, "request {i}");
    }
    let _ = stop.send(());
}

/// Behind a trusted proxy (the ingress controller) every request comes from it: the
/// client is the rightmost address it forwarded that is not itself trusted, and that is
/// what is limited, whatever the client wrote to its left.
#[tokio::test]
async fn from_a_trusted_proxy_the_forwarded_client_is_limited() {
    let s = site(60).await;
    let (addr, stop) = serve_with(&s, two_then_one_an_hour(&["127.0.0.5/32"])).await;
    let proxy = client_from("127.0.0.5");
    let ask = |xff: Option<&'static str>| {
        let proxy = proxy.clone();
        async move {
            get_as(&proxy, addr, "/robots.txt", "text/plain", xff)
                .await
                .0
        }
    };
    assert_eq!(ask(Some("198.51.100.1")).await, 200);
    assert_eq!(ask(Some("198.51.100.1")).await, 200);
    assert_eq!(ask(Some("198.51.100.1")).await, 429);
    // The client's own header is on the left of what the proxy appended.
    assert_eq!(ask(Some("203.0.113.7, 198.51.100.1")).await, 429);
    // Another client behind the same proxy is served.
    assert_eq!(ask(Some("198.51.100.2")).await, 200);
    // The proxy speaking for itself (a Sablier plugin) is never limited.
    for _ in 0..3 {
        assert_eq!(ask(None).await, 200);
    }
    let _ = stop.send(());
}

/// The admin API's wake of an id the last pass listed reads that one environment, before
/// the start and for its report after it, and lists nothing.
#[tokio::test]
async fn the_admin_wake_of_a_listed_id_reads_its_one_environment_and_lists_nothing() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    let before = s.w.sandbox.requests().by_endpoint;
    let until = at(START) + TimeDelta::hours(1);
    let report =
        s.w.daemon
            .wake(&env.id, Some(until), "alice", "")
            .await
            .unwrap();
    assert_eq!(&*report.environment.id, env.id);
    assert_eq!(asked_since(&s, &before), one_read_then_start(2),);
}
