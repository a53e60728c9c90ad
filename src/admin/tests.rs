//! The admin API over the real daemon on the in-process sandbox, with a manual clock:
//! every endpoint, every refusal (nothing changed after one), and the people's stories
//! (a wake at 21:00 that lasts until the snooze ends; a snoozed environment not deleted).

use std::collections::HashMap;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::clock::Clock;
use crate::policy::Action;
use crate::reconcile::tests::{World, at, world};

const ALICE: &str = "alice-0123456789abcdef";
const BOB: &str = "bob-fedcba9876543210";

const PARIS_OFFICE: &str = "timezone: Europe/Paris\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n";

fn tokens() -> AdminTokens {
    AdminTokens::parse(&format!("alice:{ALICE}\nbob:{BOB}\n"), "test").unwrap()
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => Body::from(v.to_string()),
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// A world whose first pass has run, with the admin API in front of its daemon.
async fn admin(rules: &str, start: &str) -> (World, Router) {
    let w = world(rules, start, 6).await;
    w.daemon.pass().await.unwrap();
    // A minute on: what the first pass stopped has settled (STOP_QUEUED → STOPPED).
    w.clock.set(at(start) + chrono::TimeDelta::minutes(1));
    let router = router(w.daemon.clone(), tokens());
    (w, router)
}

/// A non-production environment (which the office rule applies to).
fn preview(w: &World) -> (String, String) {
    let env = w
        .sandbox
        .environments()
        .into_iter()
        .find(|e| e.mode != crate::platform::Mode::Production)
        .unwrap();
    (env.id, env.name)
}

fn record_of(w: &World, id: &str) -> crate::policy::EnvRecord {
    w.daemon.ledger.record(id).unwrap().unwrap_or_default()
}

#[test]
fn tokens_are_named_checked_whole_and_never_shown() {
    let t = tokens();
    assert_eq!(t.check(ALICE), Some("alice"));
    assert_eq!(t.check(BOB), Some("bob"));
    assert_eq!(
        t.check(&ALICE[..ALICE.len() - 1]),
        None,
        "a prefix is not the token"
    );
    assert_eq!(t.check(&format!("{ALICE}x")), None);
    assert_eq!(t.check(""), None);
    let shown = format!("{t:?}");
    assert!(shown.contains("alice") && !shown.contains(ALICE), "{shown}");
    // A bare token is named admin; comments and blank lines are skipped.
    let bare = AdminTokens::parse("# ops\n\n0123456789abcdef0123\n", "f").unwrap();
    assert_eq!(bare.check("0123456789abcdef0123"), Some("admin"));
    // Refusals name the place, never the token.
    let short = AdminTokens::parse("carol:tooshort", "the file x")
        .unwrap_err()
        .to_string();
    assert!(
        short.contains("the file x, line 1") && short.contains("carol"),
        "{short}"
    );
    assert!(!short.contains("tooshort"), "{short}");
    let twice = AdminTokens::parse(&format!("a:{ALICE}\na:{BOB}"), "f")
        .unwrap_err()
        .to_string();
    assert!(twice.contains("second token named a"), "{twice}");
}

#[tokio::test]
async fn the_api_is_off_without_a_token_and_reads_the_variable_and_the_file() {
    let none = AdminTokens::load(&HashMap::new(), None, None)
        .await
        .unwrap();
    assert!(none.is_none());
    let env = HashMap::from([(TOKEN_VARIABLE.to_string(), ALICE.to_string())]);
    let from_env = AdminTokens::load(&env, None, None).await.unwrap().unwrap();
    assert_eq!(from_env.check(ALICE), Some("admin"));
    let named = HashMap::from([("OPS_TOKEN".to_string(), format!("ops:{BOB}"))]);
    let other = AdminTokens::load(&named, Some("OPS_TOKEN"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.check(BOB), Some("ops"));
    let dir = std::env::temp_dir().join(format!("curfew-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens");
    std::fs::write(&file, format!("bob:{BOB}\n")).unwrap();
    let both = AdminTokens::load(&env, None, Some(&file))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(both.check(BOB), Some("bob"));
    let missing = AdminTokens::load(&env, None, Some(&dir.join("nope")))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("cannot be read"), "{missing}");
    // A FIFO named as the token file is refused at once, not waited on.
    let fifo = dir.join("fifo");
    crate::files::mkfifo(&fifo);
    let refused = AdminTokens::load(&env, None, Some(&fifo))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not a regular file"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_endpoint_refuses_a_missing_or_wrong_token() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (id, _) = preview(&w);
    let paths = [
        (Method::GET, "/api/v1/plan".to_string()),
        (Method::GET, format!("/api/v1/environments/{id}")),
        (Method::POST, format!("/api/v1/environments/{id}/snooze")),
        (Method::DELETE, format!("/api/v1/environments/{id}/snooze")),
        (Method::POST, format!("/api/v1/environments/{id}/wake")),
        (Method::POST, format!("/api/v1/environments/{id}/protect")),
        (Method::DELETE, format!("/api/v1/environments/{id}/protect")),
    ];
    let starts = w.sandbox.requests().by_endpoint.clone();
    let record = record_of(&w, &id);
    for (method, path) in paths {
        for token in [None, Some("wrong-token-0123456789")] {
            let (status, body) = call(
                &router,
                method.clone(),
                &path,
                token,
                Some(json!({"for": "1h"})),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        }
    }
    // Not a single platform call was made for the refused requests.
    assert_eq!(w.sandbox.requests().by_endpoint, starts);
    assert_eq!(record_of(&w, &id), record);
    // The scheme must be Bearer.
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/v1/plan")
                .header(header::AUTHORIZATION, format!("Token {ALICE}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
}

#[tokio::test]
async fn the_plan_lists_every_environment_with_its_decision_rule_reason_and_next_change() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (status, plan) = call(&router, Method::GET, "/api/v1/plan", Some(ALICE), None).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let envs = plan["environments"].as_array().unwrap();
    assert_eq!(envs.len(), w.sandbox.environments().len());
    assert_eq!(plan["complete"], true);
    let (id, name) = preview(&w);
    let entry = envs
        .iter()
        .find(|e| e["environment_id"] == id.as_str())
        .unwrap();
    assert_eq!(entry["environment"], name.as_str());
    assert_eq!(entry["rule"], "office");
    assert_eq!(
        entry["action"], "none",
        "stopped by the first pass: {entry}"
    );
    assert!(
        entry["reason"].as_str().unwrap().contains("outside run"),
        "{entry}"
    );
    // Next change: Thursday 08:00 in Paris.
    assert_eq!(entry["next_check"], "2026-11-26T07:00:00Z");
    // Present as null when unset, never absent.
    for field in ["snoozed_until", "protected_by"] {
        assert_eq!(entry.get(field), Some(&Value::Null), "{field}: {entry}");
    }
    // Production matches no rule and is never acted on.
    let production = envs.iter().find(|e| e["rule"].is_null()).unwrap();
    assert_eq!(production["action"], "none");
}

#[tokio::test]
async fn one_environment_by_id_or_name_with_its_reasoning_and_history() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (id, name) = preview(&w);
    let (status, by_id) = call(
        &router,
        Method::GET,
        &format!("/api/v1/environments/{id}"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    let (_, by_name) = call(
        &router,
        Method::GET,
        &format!("/api/v1/environments/{name}"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(by_id["environment"]["id"], by_name["environment"]["id"]);
    let steps: Vec<&str> = by_id["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(steps.iter().any(|s| s.contains("office")), "{steps:#?}");
    // The first pass's stop is in the history, with its reason.
    let history = by_id["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["what"].as_str().unwrap().starts_with("stop")),
        "{history:#?}"
    );
    assert_eq!(by_id["currency"], w.daemon.rules().currency.as_str());
    let (status, body) = call(
        &router,
        Method::GET,
        "/api/v1/environments/no-such-env",
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("no-such-env"),
        "{body}"
    );
}

#[tokio::test]
async fn a_snooze_is_recorded_with_who_and_until_and_can_be_ended() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (id, _) = preview(&w);
    let path = format!("/api/v1/environments/{id}/snooze");
    let (status, body) = call(
        &router,
        Method::POST,
        &path,
        Some(ALICE),
        Some(json!({"for": "4h", "note": "demo in Singapore"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let until = at("2026-11-26T00:01:00+01:00");
    assert_eq!(record_of(&w, &id).snoozed_until, Some(until));
    assert_eq!(record_of(&w, &id).snoozed_by.as_deref(), Some("alice"));
    assert!(
        body["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("snoozed until"),
        "{body}"
    );
    let entry = &body["history"][0];
    assert_eq!(
        (&entry["what"], &entry["until"]),
        (&json!("snooze by alice"), &json!("2026-11-25T23:01:00Z"))
    );
    assert_eq!(entry["detail"], "demo in Singapore");
    let (status, body) = call(&router, Method::DELETE, &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(record_of(&w, &id).snoozed_until, None);
    assert_eq!(body["history"][0]["what"], "end_snooze by bob");
}

#[tokio::test]
async fn bad_requests_get_a_4xx_naming_the_problem_and_change_nothing() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (id, _) = preview(&w);
    let snooze = format!("/api/v1/environments/{id}/snooze");
    let cases: Vec<(Method, String, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            snooze.clone(),
            json!({"for": "4 parsecs"}),
            StatusCode::BAD_REQUEST,
            "`for`",
        ),
        (
            Method::POST,
            snooze.clone(),
            json!({"until": "yesterday"}),
            StatusCode::BAD_REQUEST,
            "`until`",
        ),
        (
            Method::POST,
            snooze.clone(),
            json!({"until": "2026-11-25T18:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "not in the future",
        ),
        (
            Method::POST,
            snooze.clone(),
            json!({"for": "30d"}),
            StatusCode::BAD_REQUEST,
            "longest snooze",
        ),
        (
            Method::POST,
            snooze.clone(),
            json!({"for": "1h", "until": "2026-11-26T10:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "not both",
        ),
        (
            Method::POST,
            snooze.clone(),
            json!({"fro": "1h"}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            Method::POST,
            snooze.clone(),
            json!({}),
            StatusCode::BAD_REQUEST,
            "needs `for`",
        ),
        (
            Method::POST,
            snooze.clone(),
            json!([1, 2]),
            StatusCode::BAD_REQUEST,
            "not a valid change",
        ),
        (
            Method::POST,
            "/api/v1/environments/nope/snooze".into(),
            json!({"for": "1h"}),
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{id}/protect"),
            json!({"for": "1h"}),
            StatusCode::BAD_REQUEST,
            "until it is removed",
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{id}/wake"),
            json!({"for": "-3h"}),
            StatusCode::BAD_REQUEST,
            "`for`",
        ),
    ];
    let before = w.sandbox.requests().by_endpoint.clone();
    let record = record_of(&w, &id);
    for (method, path, body, want, words) in cases {
        let (status, answer) = call(&router, method, &path, Some(ALICE), Some(body.clone())).await;
        assert_eq!(status, want, "{path} {body}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(words), "{body}: {message}");
    }
    assert_eq!(record_of(&w, &id), record, "nothing changed");
    assert!(
        w.daemon
            .ledger
            .history(&id, 50)
            .unwrap()
            .iter()
            .all(|h| !h.what.contains("by alice"))
    );
    // No start was sent by the refused wake.
    let starts = |m: &std::collections::BTreeMap<String, u64>| {
        m.get("POST /environment/{environmentId}/deploy")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(starts(&w.sandbox.requests().by_endpoint), starts(&before));
}

#[tokio::test]
async fn a_protection_lasts_until_removed_and_stops_every_action() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-26T07:00:00+01:00").await;
    let (id, _) = preview(&w);
    let path = format!("/api/v1/environments/{id}/protect");
    let (status, body) = call(
        &router,
        Method::POST,
        &path,
        Some(BOB),
        Some(json!({"note": "release candidate"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(record_of(&w, &id).protected_by.as_deref(), Some("bob"));
    assert!(
        body["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("protected through the admin API by bob")
    );
    // 08:00 starts the others; the protected one is left as it is.
    w.clock.set(at("2026-11-26T08:00:00+01:00"));
    let report = w.daemon.pass().await.unwrap();
    assert!(report.acted().any(|(d, _)| d.action == Action::Start));
    assert!(report.acted().all(|(d, _)| *d.environment_id != *id));
    let (status, _) = call(&router, Method::DELETE, &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record_of(&w, &id).protected_by, None);
    let report = w.daemon.pass().await.unwrap();
    assert!(
        report
            .acted()
            .any(|(d, _)| *d.environment_id == *id && d.action == Action::Start),
        "unprotected, it follows its schedule again"
    );
}

/// The story: a person wakes an environment at 21:00; it stays up until the snooze
/// ends (the next scheduled stop, Thursday 19:00) and is then stopped, at that instant.
#[tokio::test]
async fn a_wake_at_21_00_lasts_until_the_next_scheduled_stop_and_then_it_is_stopped() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (id, name) = preview(&w);
    w.clock.set(at("2026-11-25T21:00:00+01:00"));
    w.daemon.pass().await.unwrap();
    let stopped = |w: &World| {
        w.sandbox
            .environments()
            .into_iter()
            .find(|e| e.id == id)
            .unwrap()
            .state
    };
    assert_eq!(stopped(&w), "STOPPED");
    let (status, body) = call(
        &router,
        Method::POST,
        &format!("/api/v1/environments/{name}/wake"),
        Some(ALICE),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let thursday_19 = at("2026-11-26T19:00:00+01:00");
    assert_eq!(record_of(&w, &id).snoozed_until, Some(thursday_19));
    assert!(
        body["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["what"] == "wake by alice"
                && h["until"] == "2026-11-26T18:00:00Z"
                && h["detail"] == "woken by alice until 2026-11-26 19:00 CET"),
        "{body}"
    );
    assert!(
        body["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["what"] == "start: ok"),
        "the start is in the ledger as an action: {body}"
    );
    // Passes through the night and the day leave it up; 19:00 stops it, exactly.
    let log = w.run_until(at("2026-11-26T19:30:00+01:00")).await;
    let mine: Vec<(DateTime<Utc>, Action)> = log
        .iter()
        .filter(|(_, n, _)| *n == name)
        .map(|(t, _, a)| (*t, *a))
        .collect();
    assert_eq!(mine, [(thursday_19, Action::Stop)], "{log:#?}");
    assert_eq!(stopped(&w), "STOPPED");
}

#[tokio::test]
async fn a_wake_without_a_schedule_needs_a_duration_and_a_given_one_is_kept_with_its_note() {
    let idle = "timezone: UTC\nrules:\n  - name: idle\n    match: { mode: [preview, development, staging] }\n    stop_when_idle: 1h\n";
    let (w, router) = admin(idle, "2026-11-25T20:00:00Z").await;
    let (id, _) = preview(&w);
    let path = format!("/api/v1/environments/{id}/wake");
    let (status, body) = call(&router, Method::POST, &path, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no scheduled stop"),
        "{body}"
    );
    let (status, body) = call(
        &router,
        Method::POST,
        &path,
        Some(ALICE),
        Some(json!({"for": "2h", "note": "demo for the client"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        record_of(&w, &id).snoozed_until,
        Some(at("2026-11-25T22:01:00Z"))
    );
    // The note is kept after the reason, as a snooze's is.
    assert!(
        body["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["what"] == "wake by alice"
                && h["detail"]
                    .as_str()
                    .is_some_and(|d| d.ends_with("; demo for the client"))),
        "{body}"
    );
}

/// A snooze postpones a delete too; when it ends, the delete goes ahead (after its
/// warning).
#[tokio::test]
async fn a_snoozed_environment_is_not_deleted() {
    let ttl = "timezone: UTC\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 1h\n";
    let (w, router) = admin(ttl, "2026-11-25T20:00:00Z").await;
    let preview_id = w
        .sandbox
        .environments()
        .into_iter()
        .find(|e| e.mode == crate::platform::Mode::Preview)
        .unwrap()
        .id;
    let (status, body) = call(
        &router,
        Method::POST,
        &format!("/api/v1/environments/{preview_id}/snooze"),
        Some(ALICE),
        Some(json!({"until": "2026-11-27T20:00:00Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let name = body["environment"]["name"].as_str().unwrap().to_string();
    let log = w.run_until(at("2026-11-27T19:00:00Z")).await;
    assert!(
        log.iter().any(|(_, _, a)| *a == Action::Delete),
        "the rest of the rule's previews are deleted: {log:#?}"
    );
    assert!(
        log.iter()
            .all(|(_, n, a)| !(*a == Action::Delete && *n == name)),
        "{log:#?}"
    );
    assert!(w.sandbox.environments().iter().any(|e| e.id == preview_id));
    let log = w.run_until(at("2026-11-27T21:00:00Z")).await;
    assert!(
        log.iter()
            .any(|(_, n, a)| *a == Action::Delete && *n == name),
        "deleted once the snooze ended: {log:#?}"
    );
}

/// The daemon's whole port (probes, metrics and the admin API), as `curfew run` builds it.
fn port(w: &World, admin: Option<Router>) -> Router {
    let probes = crate::server::router(
        w.daemon.metrics.clone(),
        w.daemon.health(),
        w.daemon.clock.clone(),
    );
    crate::server::merge_admin(probes, admin.unwrap_or_else(off_router))
}

/// The probe: with the admin API on, every unknown path answered 401. Only the
/// admin routes ask for a token; other paths answer 404 with or without one, as with the
/// API off, and an unknown `/api/v1/…` path answers a JSON 404.
#[tokio::test]
async fn only_the_admin_routes_ask_for_a_token() {
    let (w, admin) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    for api in [Some(admin), None] {
        let on = api.is_some();
        let port = port(&w, api);
        for token in [None, Some(ALICE), Some("wrong-token-0123456789")] {
            for path in ["/nope", "/healthz/", "/metrics/x", "/api/v2/plan", "/api"] {
                let (status, _) = call(&port, Method::GET, path, token, None).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{path} (API on: {on})");
            }
            for path in ["/api/v1", "/api/v1/nope", "/api/v1/environments/x/y/z"] {
                let (status, body) = call(&port, Method::GET, path, token, None).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{path} (API on: {on})");
                let message = body["error"].as_str().unwrap_or_default();
                let want = if on {
                    "no such path in the admin API"
                } else {
                    "the admin API is off: set CURFEW_ADMIN_TOKEN"
                };
                assert!(
                    message.starts_with(want) && message.ends_with(path),
                    "{body}"
                );
            }
            let (status, _) = call(&port, Method::GET, "/healthz", token, None).await;
            assert_eq!(status, StatusCode::OK);
        }
        let (status, body) = call(&port, Method::GET, "/api/v1/plan", None, None).await;
        let want = if on {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, want, "{body}");
        if on {
            let (status, body) = call(&port, Method::PUT, "/api/v1/plan", Some(ALICE), None).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(body["error"], "PUT is not a method of this path");
        }
    }
}

/// Refused requests are counted and logged (who asked, what, never the token), the log
/// at most once per ten seconds with the count held back.
#[tokio::test]
async fn refused_requests_are_counted_and_logged_without_the_token() {
    let (_w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let log = crate::text::LogCapture::start();
    let wrong = "wrong-token-0123456789";
    for _ in 0..3 {
        call(&router, Method::GET, "/api/v1/plan", Some(wrong), None).await;
    }
    call(&router, Method::GET, "/api/v1/plan", None, None).await;
    let metrics = _w.daemon.metrics.encode();
    assert!(
        metrics.contains("curfew_admin_auth_failures_total{reason=\"refused\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("curfew_admin_auth_failures_total{reason=\"missing\"} 1"),
        "{metrics}"
    );
    let text = log.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("admin request refused"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("reason=refused method=GET path=/api/v1/plan"),
        "{text}"
    );
    assert!(!text.contains(wrong), "{text}");
}

/// The probe: `wake` started production (protected by `safety.protect_production`)
/// and an environment protected through the admin API itself. Both are refused with a 409
/// that names the protection, and nothing is started.
#[tokio::test]
async fn a_wake_of_a_protected_environment_is_refused_naming_the_protection() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let production = w
        .sandbox
        .environments()
        .into_iter()
        .find(|e| e.mode == crate::platform::Mode::Production)
        .unwrap();
    let (id, name) = preview(&w);
    let path = format!("/api/v1/environments/{id}/protect");
    let (status, _) = call(&router, Method::POST, &path, Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK);
    let deploys = |w: &World| w.sandbox.requests().deploys.clone();
    let before = deploys(&w);
    let cases = [
        (
            production.id.clone(),
            format!(
                "{} is protected: production environments are protected (safety.protect_production); curfew never acts on a protected environment, a wake included",
                production.name
            ),
        ),
        (
            id.clone(),
            format!("{name} is protected: protected through the admin API by bob;"),
        ),
    ];
    for (target, want) in cases {
        let history = w.daemon.ledger.history(&target, 50).unwrap();
        let (status, body) = call(
            &router,
            Method::POST,
            &format!("/api/v1/environments/{target}/wake"),
            Some(ALICE),
            Some(json!({"for": "1h"})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with(&want), "{body}");
        assert_eq!(w.daemon.ledger.history(&target, 50).unwrap(), history);
    }
    assert_eq!(deploys(&w), before, "nothing was started");
}

/// The probe stored three 2 MB notes (the body limit), and `explain` answered
/// 5.8 MB. A note is at most 1024 bytes: a longer one is refused with a 400 that says so,
/// and nothing is changed.
#[tokio::test]
async fn a_note_longer_than_the_limit_is_refused_and_one_at_the_limit_is_kept() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (id, _) = preview(&w);
    let too_long = "é".repeat(513);
    let at_limit = "n".repeat(1024);
    for verb in ["snooze", "protect"] {
        let path = format!("/api/v1/environments/{id}/{verb}");
        let span = if verb == "snooze" { Some("1h") } else { None };
        let body = |note: &str| match span {
            Some(d) => json!({"for": d, "note": note}),
            None => json!({"note": note}),
        };
        let history = w.daemon.ledger.history(&id, 50).unwrap();
        let (status, answer) = call(
            &router,
            Method::POST,
            &path,
            Some(ALICE),
            Some(body(&too_long)),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            answer["error"],
            "the note is 1026 bytes long; at most 1024 are kept (daemon.admin_max_note_bytes)"
        );
        assert_eq!(w.daemon.ledger.history(&id, 50).unwrap(), history);
        let (status, answer) = call(
            &router,
            Method::POST,
            &path,
            Some(ALICE),
            Some(body(&at_limit)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["history"][0]["detail"], at_limit.as_str());
    }
}

/// `wake --for 2h` at 21:00 on a `run: Mon-Fri 08:00-19:00` rule: when the wake's snooze
/// ends (by itself at 23:00, or `snooze --end` at 21:30), the environment is the rule's
/// again and is stopped then, not left up until the next evening as if a person had
/// started it.
#[tokio::test]
async fn a_wake_that_ends_hands_the_environment_back_to_its_schedule() {
    for (end_at, stopped_at) in [
        (None, "2026-11-25T23:00:00+01:00"),
        (
            Some("2026-11-25T21:30:00+01:00"),
            "2026-11-25T21:30:00+01:00",
        ),
    ] {
        let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
        let (id, name) = preview(&w);
        w.clock.set(at("2026-11-25T21:00:00+01:00"));
        w.daemon.pass().await.unwrap();
        let (status, body) = call(
            &router,
            Method::POST,
            &format!("/api/v1/environments/{name}/wake"),
            Some(ALICE),
            Some(json!({"for": "2h"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(t) = end_at {
            let log = w.run_until(at(t) - chrono::TimeDelta::seconds(1)).await;
            assert!(log.iter().all(|(_, n, _)| *n != name), "{log:#?}");
            w.clock.set(at(t));
            let (status, body) = call(
                &router,
                Method::DELETE,
                &format!("/api/v1/environments/{id}/snooze"),
                Some(ALICE),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let log = w.run_until(at("2026-11-26T07:00:00+01:00")).await;
        let mine: Vec<(DateTime<Utc>, Action)> = log
            .iter()
            .filter(|(_, n, _)| *n == name)
            .map(|(t, _, a)| (*t, *a))
            .collect();
        assert_eq!(mine, [(at(stopped_at), Action::Stop)], "{log:#?}");
        let history = w.daemon.ledger.history(&id, 10).unwrap();
        let stop = history.iter().find(|h| h.what == "stop: ok").unwrap();
        assert_eq!(
            stop.detail,
            "outside run Mon-Fri 08:00-19:00 Europe/Paris since 2026-11-25 19:00 CET, and its wake at 2026-11-25 21:00 CET is over; stopped by rule \"office\""
        );
    }
}

#[tokio::test]
async fn a_delete_is_delayed_by_whoever_asks_within_the_longest_snooze() {
    let (w, router) = admin(PARIS_OFFICE, "2026-11-25T20:00:00+01:00").await;
    let (id, _) = preview(&w);
    let path = format!("/api/v1/environments/{id}/delay-delete");
    let (status, body) = call(&router, Method::POST, &path, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("a delay needs `for`"),
        "{body}"
    );
    let (status, _) = call(
        &router,
        Method::POST,
        &path,
        Some(ALICE),
        Some(json!({"for": "8d"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "past admin_max_snooze");
    assert_eq!(
        record_of(&w, &id).delete_not_before,
        None,
        "nothing changed"
    );
    let (status, body) = call(
        &router,
        Method::POST,
        &path,
        Some(ALICE),
        Some(json!({"for": "2d", "note": "demo on Friday"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = record_of(&w, &id);
    assert_eq!(
        record.delete_not_before,
        Some(w.clock.now() + chrono::TimeDelta::days(2))
    );
    assert_eq!(record.delete_delayed_by.as_deref(), Some("alice"));
    let history = w.daemon.ledger.history(&id, 5).unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.what == "delay_delete by alice" && h.detail == "demo on Friday"),
        "{history:?}"
    );
}
