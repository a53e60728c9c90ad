//! The status page over the real daemon on the in-process sandbox, at the HTTP level: what
//! each access mode shows, the headers, escaping, the login and its cookie, CSRF, and the
//! signed links (confirmation, one use, expiry, tampering, protection). The browser's
//! view of the same is `tests/browser.rs`.

use std::net::SocketAddr;

use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::TimeDelta;
use tower::ServiceExt;

use super::*;
use crate::clock::Clock;
use crate::config::page::ProxySettings;
use crate::platform::Mode;
use crate::reconcile::tests::{World, at, world};

const ALICE: &str = "alice-0123456789abcdef";
const KEY: &str = "0123456789abcdef0123456789abcdef";
const START: &str = "2026-11-25T20:00:00+01:00";
const OFFICE: &str = "timezone: Europe/Paris\nsafety:\n  protect_production: true\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n    delete_after: 30d\n";
const XSS: &str = "<img src=x onerror=alert(1)>";

struct Site {
    w: World,
    router: Router,
    signer: Arc<Signer>,
}

fn signer() -> Arc<Signer> {
    Arc::new(Signer::new(
        LinkKeys::new(vec![KEY.as_bytes().to_vec()]).unwrap(),
        "https://curfew.example.com",
        TimeDelta::hours(72),
        TimeDelta::days(7),
    ))
}

/// The daemon after its first pass (a minute on: its stops have settled), with the page in
/// front of it.
async fn site(access: PageAccess, proxy: Option<ProxySettings>) -> Site {
    let w = world(OFFICE, START, 8).await;
    w.daemon.pass().await.unwrap();
    w.clock.set(at(START) + TimeDelta::minutes(1));
    let signer = signer();
    let router = router(
        w.daemon.clone(),
        UiOptions {
            access,
            tokens: Some(AdminTokens::parse(&format!("alice:{ALICE}"), "test").unwrap()),
            sessions: Sessions::new(TimeDelta::hours(12), false, proxy),
            signer: Some(signer.clone()),
        },
    );
    Site { w, router, signer }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Site {
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 24).await.unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut r = Request::builder().uri(path);
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        self.send(r.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, form: &str, cookie: Option<&str>) -> Answer {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        self.send(r.body(Body::from(form.to_string())).unwrap())
            .await
    }

    /// Signs in as alice: the session cookie to send back.
    async fn sign_in(&self) -> String {
        let a = self
            .post("/login", &format!("token={ALICE}&next=%2F"), None)
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let set = a.headers[header::SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().to_string()
    }

    /// An environment of a mode, stopped by the first pass (outside office hours).
    fn one(&self, mode: Mode) -> crate::sandbox::SandboxEnvironment {
        self.w
            .sandbox
            .environments()
            .into_iter()
            .find(|e| e.mode == mode)
            .unwrap()
    }

    fn link(&self, id: &str, action: LinkAction) -> String {
        let link = self
            .signer
            .link(id, action, "team-slack", self.w.clock.now());
        format!("/link/{}", self.signer.sign(&link))
    }

    fn deploys(&self, id: &str) -> u32 {
        self.w
            .sandbox
            .requests()
            .deploys
            .get(id)
            .map_or(0, |c| c.calls)
    }
}

/// The value of the hidden `csrf` field of a page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn the_fleet_lists_every_environment_and_never_calls_the_platform() {
    let s = site(PageAccess::ReadOnly, None).await;
    let before = s.w.sandbox.requests().total;
    let page = s.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let last = s.w.daemon.last_pass().unwrap();
    for d in last.decisions.iter() {
        let row = page
            .body
            .split("<tr>")
            .find(|r| r.contains(&format!("/environments/{}\"", d.environment_id)))
            .unwrap_or_else(|| panic!("{} is listed", d.environment));
        assert!(row.contains(&format!(">{}</span>", d.state)), "{row}");
        assert!(row.contains(d.rule.as_deref().unwrap_or("—")), "{row}");
    }
    let one = s.one(Mode::Preview);
    let env_page = s.get(&format!("/environments/{}", one.id), None).await;
    assert_eq!(env_page.status, StatusCode::OK);
    assert!(env_page.body.contains("<svg class=\"timeline\""));
    assert!(
        env_page.body.contains("rule &quot;office&quot; matches"),
        "the explain steps"
    );
    assert_eq!(
        s.w.sandbox.requests().total,
        before,
        "a page view reads the last pass, never the platform"
    );
}

/// Issue 21: the fleet page shows the daemon's last projection of the savings, once made.
#[tokio::test]
async fn the_fleet_shows_the_projected_savings_once_projected() {
    let s = site(PageAccess::ReadOnly, None).await;
    let page = s.get("/", None).await;
    assert!(
        !page.body.contains("projected over the next"),
        "none made yet"
    );
    let p = s.w.daemon.project().await.unwrap();
    let page = s.get("/", None).await;
    let line = page
        .body
        .split("<li class=\"projected\">")
        .nth(1)
        .and_then(|l| l.split("</li>").next())
        .unwrap_or_else(|| panic!("a projection line in {}", page.body));
    assert!(
        line.contains(&format!("projected over the next {} days", p.days)),
        "{line}"
    );
    assert!(
        line.contains(&format!("{:.2} {}", p.total.saved, p.currency)),
        "{line}"
    );
}

#[tokio::test]
async fn filters_sort_and_pages_work_from_the_query() {
    let s = site(PageAccess::ReadOnly, None).await;
    let one = s.one(Mode::Preview);
    let found = s.get(&format!("/?q={}", &one.name), None).await;
    assert!(found.body.contains(&format!("/environments/{}\"", one.id)));
    assert!(
        found.body.contains(">1 of 8 environments"),
        "{}",
        found.body
    );
    let stopped = s.get("/?state=stopped", None).await;
    assert!(!stopped.body.contains(">running</span>"));
    let by_name_desc = s.get("/?sort=name&order=desc", None).await;
    let mut names: Vec<String> =
        s.w.sandbox
            .environments()
            .into_iter()
            .map(|e| e.name)
            .collect();
    names.sort();
    let first = by_name_desc
        .body
        .find(&format!(">{}</a>", names[names.len() - 1]))
        .unwrap();
    let last = by_name_desc
        .body
        .find(&format!(">{}</a>", names[0]))
        .unwrap();
    assert!(first < last, "descending");
    assert_eq!(
        s.get("/?page=99", None).await.status,
        StatusCode::OK,
        "clamped"
    );
    // By what comes next: at 20:01 on a Wednesday, a preview stopped until Thursday 08:00
    // comes before production, for which nothing is planned.
    let next = s.get("/?sort=next", None).await.body;
    let production = s.one(Mode::Production).id;
    let stopped = s.one(Mode::Preview).id;
    let at = |id: &str| next.find(&format!("/environments/{id}\"")).unwrap();
    assert!(at(&stopped) < at(&production), "{next}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let s = site(PageAccess::ReadOnly, None).await;
    let id = s.one(Mode::Preview).id;
    let link = s.link(&id, LinkAction::Wake);
    for path in [
        "/",
        &format!("/environments/{id}"),
        "/login",
        &link,
        "/link/nonsense",
        "/assets/style.css",
    ] {
        let a = s.get(path, None).await;
        let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            a.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{path}"
        );
        assert_eq!(a.headers[header::REFERRER_POLICY], "no-referrer", "{path}");
    }
    let page = s.get("/", None).await.body;
    assert!(!page.contains("<script>"), "no inline script");
    assert!(!page.contains(" style="), "no inline style");
}

#[tokio::test]
async fn a_hostile_name_shows_as_text() {
    let s = site(PageAccess::ReadOnly, None).await;
    let id = s.one(Mode::Preview).id;
    assert!(s.w.sandbox.rename(&id, XSS));
    s.w.daemon.pass().await.unwrap();
    for path in ["/".to_string(), format!("/environments/{id}")] {
        let page = s.get(&path, None).await.body;
        assert!(!page.contains("<img"), "{path}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn with_the_page_off_and_no_links_nothing_is_served() {
    let w = world(OFFICE, START, 2).await;
    let off = router(
        w.daemon.clone(),
        UiOptions {
            access: PageAccess::Off,
            tokens: None,
            sessions: Sessions::new(TimeDelta::hours(12), false, None),
            signer: None,
        },
    );
    for path in ["/", "/assets/style.css", "/link/x", "/login"] {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let status = off.clone().oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_access_modes_off_read_only_and_login() {
    let off = site(PageAccess::Off, None).await;
    assert_eq!(off.get("/", None).await.status, StatusCode::NOT_FOUND);
    let id = off.one(Mode::Preview).id;
    let link = off.link(&id, LinkAction::Wake);
    assert_eq!(
        off.get(&link, None).await.status,
        StatusCode::OK,
        "links still work"
    );

    let read = site(PageAccess::ReadOnly, None).await;
    let page = read.get(&format!("/environments/{id}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("name=\"csrf\""),
        "no buttons for a reader who may not act"
    );
    assert!(page.body.contains("Sign in to act"));

    let login = site(PageAccess::Login, None).await;
    let a = login.get(&format!("/environments/{id}"), None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.headers[header::LOCATION],
        format!("/login?next=/environments/{id}")
    );
    let cookie = login.sign_in().await;
    let page = login
        .get(&format!("/environments/{id}"), Some(&cookie))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Keep 4 h") && page.body.contains("name=\"csrf\""));
}

#[tokio::test]
async fn the_login_sets_a_strict_cookie_and_refuses_a_wrong_token() {
    let s = site(PageAccess::Login, None).await;
    let wrong = s.post("/login", "token=not-the-token-at-all", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let metrics = s.w.daemon.metrics.encode();
    assert!(
        metrics.contains("curfew_admin_auth_failures_total{reason=\"refused\"} 1"),
        "counted with the admin API's refusals"
    );
    let right = s
        .post(
            "/login",
            &format!("token={ALICE}&next=%2F%2Fevil.example"),
            None,
        )
        .await;
    assert_eq!(
        right.headers[header::LOCATION],
        "/",
        "never to another site"
    );
    let cookie = right.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let forged = s
        .get("/", Some("curfew_session=eyJ1IjoiYWxpY2UifQ.AAAA"))
        .await;
    assert_eq!(
        forged.status,
        StatusCode::SEE_OTHER,
        "a forged cookie is nobody"
    );
}

#[tokio::test]
async fn an_action_needs_the_session_s_csrf_token_and_names_who_acted() {
    let s = site(PageAccess::Login, None).await;
    let id = s.one(Mode::Preview).id;
    let cookie = s.sign_in().await;
    let path = format!("/environments/{id}/actions");
    let before = s.w.daemon.ledger().record(&id).unwrap();
    for form in ["do=keep-4h", "do=keep-4h&csrf=bm90LWl0"] {
        let a = s.post(&path, form, Some(&cookie)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{form}");
        assert!(a.body.contains("Nothing was changed"));
    }
    let anonymous = s.post(&path, "do=keep-4h&csrf=x", None).await;
    assert_eq!(anonymous.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.w.daemon.ledger().record(&id).unwrap(),
        before,
        "nothing changed"
    );

    let token = csrf(
        &s.get(&format!("/environments/{id}"), Some(&cookie))
            .await
            .body,
    );
    let mut cross = Request::builder()
        .method(Method::POST)
        .uri(&path)
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::HOST, "curfew.example.com")
        .body(Body::from(format!("do=keep-4h&csrf={token}")))
        .unwrap();
    cross.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    assert_eq!(
        s.send(cross).await.status,
        StatusCode::FORBIDDEN,
        "from another site"
    );

    let deploys = s.deploys(&id);
    let done = s
        .post(&path, &format!("do=keep-4h&csrf={token}"), Some(&cookie))
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        s.deploys(&id),
        deploys + 1,
        "a stopped environment kept up is started"
    );
    let record = s.w.daemon.ledger().record(&id).unwrap().unwrap();
    assert_eq!(record.snoozed_by.as_deref(), Some("alice"));
    assert_eq!(
        record.snoozed_until,
        Some(s.w.clock.now() + TimeDelta::hours(4))
    );
    let history = s.w.daemon.ledger().history(&id, 5).unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.what == "wake by alice" && h.detail.ends_with("; via the status page")),
        "{history:?}"
    );
}

#[tokio::test]
async fn production_offers_no_buttons_and_refuses_them() {
    let s = site(PageAccess::Login, None).await;
    let prod = s.one(Mode::Production).id;
    let cookie = s.sign_in().await;
    let page = s
        .get(&format!("/environments/{prod}"), Some(&cookie))
        .await
        .body;
    assert!(!page.contains("Keep 4 h"), "no keep on production");
    let token = csrf(&page);
    let a = s
        .post(
            &format!("/environments/{prod}/actions"),
            &format!("do=wake&csrf={token}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(s.deploys(&prod), 0);
}

#[tokio::test]
async fn the_proxy_s_user_is_believed_from_the_proxy_only() {
    let proxy = ProxySettings {
        user_header: "x-forwarded-user".into(),
        addresses: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let s = site(PageAccess::Login, Some(proxy)).await;
    let from = |ip: &str| {
        let mut r = Request::builder()
            .uri("/")
            .header("x-forwarded-user", "bob")
            .body(Body::empty())
            .unwrap();
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 4000)));
        r
    };
    let trusted = s.send(from("10.0.0.9")).await;
    assert_eq!(trusted.status, StatusCode::OK);
    assert!(trusted.body.contains("Signed in as <strong>bob</strong>"));
    assert_eq!(
        s.send(from("203.0.113.9")).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_link_shows_a_confirmation_and_acts_once_on_post() {
    let s = site(PageAccess::Off, None).await;
    let id = s.one(Mode::Preview).id;
    let link = s.link(&id, LinkAction::Wake);
    let shown = s.get(&link, None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains("method=\"post\""), "{}", shown.body);
    assert!(shown.body.contains("team-slack"));
    // Opening it twice (a chat's previewer, then a person) changes nothing.
    s.get(&link, None).await;
    assert_eq!(s.deploys(&id), 0, "a GET never acts");

    let done = s.post(&link, "", None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(s.deploys(&id), 1, "the sandbox saw the start");
    let history = s.w.daemon.ledger().history(&id, 5).unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.what == "wake by link sent to team-slack"
                && h.detail.ends_with("; via link sent to team-slack")),
        "{history:?}"
    );

    for again in [s.get(&link, None).await, s.post(&link, "", None).await] {
        assert_eq!(again.status, StatusCode::GONE);
        assert!(again.body.contains("used already"), "{}", again.body);
    }
    assert_eq!(s.deploys(&id), 1, "used once");
}

#[tokio::test]
async fn expired_tampered_and_protected_links_are_refused_and_change_nothing() {
    let s = site(PageAccess::Off, None).await;
    let id = s.one(Mode::Preview).id;
    let prod = s.one(Mode::Production).id;
    let link = s.link(&id, LinkAction::Keep { seconds: 4 * 3600 });
    let tampered = {
        let mut t = link.clone().into_bytes();
        let i = t.len() - 3;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(t).unwrap()
    };
    let a = s.post(&tampered, "", None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("signature does not match"), "{}", a.body);

    let production = s.link(&prod, LinkAction::Wake);
    let a = s.post(&production, "", None).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.body.contains("protected"));
    assert_eq!(
        s.get(&production, None).await.status,
        StatusCode::OK,
        "not spent by a refusal"
    );

    s.w.clock.set(s.w.clock.now() + TimeDelta::hours(72));
    let a = s.post(&link, "", None).await;
    assert_eq!(a.status, StatusCode::GONE);
    assert!(a.body.contains("expired"), "{}", a.body);
    assert_eq!(s.deploys(&id) + s.deploys(&prod), 0);
    assert!(
        s.w.daemon
            .ledger()
            .record(&id)
            .unwrap()
            .unwrap_or_default()
            .snoozed_until
            .is_none()
    );
}

#[tokio::test]
async fn a_delay_link_moves_the_delete_and_a_new_warning_comes_before_it() {
    let s = site(PageAccess::Off, None).await;
    let id = s.one(Mode::Preview).id;
    let link = s.link(
        &id,
        LinkAction::DelayDelete {
            seconds: 2 * 86_400,
        },
    );
    assert_eq!(s.post(&link, "", None).await.status, StatusCode::OK);
    let record = s.w.daemon.ledger().record(&id).unwrap().unwrap();
    let now = s.w.clock.now();
    assert!(record.delete_not_before.unwrap() >= now + TimeDelta::days(2));
    assert_eq!(
        record.delete_delayed_by.as_deref(),
        Some("link sent to team-slack")
    );
    assert_eq!(record.delete_warned_at, None);
}

#[tokio::test]
async fn a_link_to_a_protected_environment_or_past_the_longest_snooze_changes_nothing() {
    let s = site(PageAccess::Off, None).await;
    let mut previews =
        s.w.sandbox
            .environments()
            .into_iter()
            .filter(|e| e.mode == Mode::Preview);
    let (guarded, other) = (previews.next().unwrap().id, previews.next().unwrap().id);
    s.w.daemon
        .protect(&guarded, true, "bob", "demo on Friday")
        .await
        .unwrap();
    let protected = s.link(&guarded, LinkAction::Wake);
    let a = s.post(&protected, "", None).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.body.contains("protected"), "{}", a.body);
    assert_eq!(
        s.get(&protected, None).await.status,
        StatusCode::OK,
        "a refusal does not spend the link"
    );

    // A link asking for more than admin_max_snooze (7 days unless set), signed before the
    // limit was lowered, say: refused when confirmed.
    let long = s.link(
        &other,
        LinkAction::Keep {
            seconds: 8 * 86_400,
        },
    );
    let a = s.post(&long, "", None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains("longest snooze"), "{}", a.body);
    assert_eq!(s.deploys(&guarded) + s.deploys(&other), 0);
    let record =
        s.w.daemon
            .ledger()
            .record(&other)
            .unwrap()
            .unwrap_or_default();
    assert_eq!(record.snoozed_until, None);
    assert_eq!(record.snoozed_by, None);
}
