//! Sablier's protocol over the real daemon and the in-process sandbox (real HTTP between
//! them), on a manual clock; the blocking strategy's wait on tokio's paused time.

use axum::http::{HeaderMap, Method, StatusCode, header};

use crate::platform::Mode;
use crate::wake::tests::{Answer, Site, site};

fn session_status(headers: &HeaderMap) -> &str {
    headers
        .get("x-sablier-session-status")
        .map_or("", |v| v.to_str().unwrap_or(""))
}

fn previews(s: &Site) -> Vec<crate::sandbox::SandboxEnvironment> {
    s.w.sandbox
        .environments()
        .into_iter()
        .filter(|e| e.mode == Mode::Preview)
        .collect()
}

fn is_problem(a: &Answer, status: StatusCode) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/problem+json");
    let p: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(p["status"], status.as_u16(), "{}", a.body);
}

#[tokio::test]
async fn the_dynamic_strategy_serves_the_waiting_page_then_says_ready_and_a_storm_starts_once() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    let path = format!(
        "/api/strategies/dynamic?names={}&display_name=Shop%20preview&refresh_frequency=3s&theme=ghost&session_duration=10m",
        env.name
    );
    let answers = futures::future::join_all((0..1000).map(|_| s.browser(&path))).await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(session_status(&a.headers), "not-ready");
    }
    let page = &answers[0].body;
    assert!(
        page.contains("Shop preview is waking up, about 2 minutes"),
        "{page}"
    );
    assert!(
        page.contains("http-equiv=\"refresh\" content=\"3\""),
        "{page}"
    );
    assert_eq!(s.deploys(&env.id), 1);
    s.later(2);
    let ready = s.browser(&path).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(session_status(&ready.headers), "ready");
    assert_eq!(s.deploys(&env.id), 1);
}

#[tokio::test]
async fn the_blocking_strategy_answers_not_ready_at_its_timeout_and_ready_once_it_serves() {
    let s = site(60).await;
    let env = s.one(Mode::Preview);
    let path = format!("/api/strategies/blocking?names={}&timeout=30s", env.id);
    // The first look starts it (the platform asked, over HTTP, on real time).
    let first = s.api(&format!("/wake/{}", env.id)).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    // From here the flight answers from what it knows (the manual clock stands still): the
    // wait is 30 s of tokio's paused time, looked at once a second, not a busy loop.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let late = s.api(&path).await;
    let waited = started.elapsed();
    tokio::time::resume();
    assert!(waited >= std::time::Duration::from_secs(30), "{waited:?}");
    is_problem(&late, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(session_status(&late.headers), "not-ready");
    s.later(2);
    let ready = s.api(&path).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(session_status(&ready.headers), "ready");
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(
        body["session"]["instances"][&*env.id]["instance"]["status"], "ready",
        "{body}"
    );
    assert_eq!(s.deploys(&env.id), 1);
}

#[tokio::test]
async fn groups_are_rules_and_wake_only_what_a_request_may_wake() {
    let s = site(60).await;
    let a = s.api("/api/strategies/dynamic?group=previews").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(session_status(&a.headers), "not-ready");
    // A group's page names none of its members.
    for e in s.w.sandbox.environments() {
        assert!(!a.body.contains(&*e.name), "{}", a.body);
    }
    let previews = previews(&s);
    assert!(previews.len() >= 2);
    for p in &previews {
        assert_eq!(s.deploys(&p.id), 1, "{}", p.name);
    }
    // `others` has no wake_on_request: nothing of it may be woken, so no such group.
    is_problem(
        &s.api("/api/strategies/blocking?group=others").await,
        StatusCode::NOT_FOUND,
    );
    is_problem(
        &s.api("/api/strategies/blocking?group=nope").await,
        StatusCode::NOT_FOUND,
    );
    for e in s.w.sandbox.environments() {
        if e.mode != Mode::Preview {
            assert_eq!(s.deploys(&e.id), 0, "{}", e.name);
        }
    }
}

#[tokio::test]
async fn refusals_unknown_names_bad_parameters_and_the_cap_are_rfc_7807_problems() {
    let s = site(1).await;
    for mode in [Mode::Production, Mode::Staging] {
        let env = s.one(mode);
        let a = s
            .api(&format!("/api/strategies/blocking?names={}", env.id))
            .await;
        is_problem(&a, StatusCode::FORBIDDEN);
        assert_eq!(s.deploys(&env.id), 0);
    }
    is_problem(
        &s.api("/api/strategies/blocking?names=no-such-env").await,
        StatusCode::NOT_FOUND,
    );
    let env = s.one(Mode::Preview);
    for bad in [
        format!("/api/strategies/blocking?names={}&timeout=soon", env.id),
        format!("/api/strategies/blocking?names={}&group=previews", env.id),
        "/api/strategies/dynamic".to_string(),
    ] {
        is_problem(&s.api(&bad).await, StatusCode::BAD_REQUEST);
    }
    is_problem(
        &s.api(&format!(
            "/api/strategies/dynamic?names={}&theme=nope",
            env.id
        ))
        .await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        s.deploys(&env.id),
        0,
        "nothing started by a refused request"
    );
    // max_wakes_per_hour is 1: the first preview takes it, the second is capped.
    let previews = previews(&s);
    let first = s
        .ask(
            Method::GET,
            &format!("/api/strategies/dynamic?names={}", previews[0].id),
            "text/html",
        )
        .await;
    assert_eq!(session_status(&first.headers), "not-ready");
    is_problem(
        &s.api(&format!("/api/strategies/dynamic?names={}", previews[1].id))
            .await,
        StatusCode::TOO_MANY_REQUESTS,
    );
    assert_eq!(s.deploys(&previews[1].id), 0);
}

/// `curfew_wakes_total{rule,result}` and `curfew_wake_ready_seconds{rule}`, as `/wake` and
/// Sablier's API share them.
#[tokio::test]
async fn wakes_are_counted_by_rule_and_result_and_the_time_to_ready_is_observed() {
    let s = site(1).await;
    let previews = previews(&s);
    let line = |name: &str| {
        let text = s.w.daemon.metrics.encode();
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let started = "curfew_wakes_total{result=\"started\",rule=\"previews\"}";
    assert_eq!(line(started), "0", "created at 0 with the rules");
    for _ in 0..3 {
        s.api(&format!("/wake/{}", previews[0].id)).await;
        s.api(&format!("/api/strategies/dynamic?names={}", previews[0].id))
            .await;
    }
    assert_eq!(line(started), "1");
    s.api(&format!(
        "/api/strategies/blocking?names={}",
        previews[1].id
    ))
    .await;
    assert_eq!(
        line("curfew_wakes_total{result=\"capped\",rule=\"previews\"}"),
        "1"
    );
    s.api(&format!("/wake/{}", s.one(Mode::Production).id))
        .await;
    let refused = s
        .w
        .daemon
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("curfew_wakes_total{result=\"refused\"") && !l.ends_with(" 0"))
        .count();
    assert_eq!(refused, 1, "the production environment's refusal");
    s.later(2);
    let ready = s.api(&format!("/wake/{}", previews[0].id)).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        line("curfew_wake_ready_seconds_count{rule=\"previews\"}"),
        "1"
    );
    assert_eq!(
        line("curfew_wake_ready_seconds_sum{rule=\"previews\"}"),
        "120"
    );
}
