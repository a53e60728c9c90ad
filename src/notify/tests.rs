//! Unit tests: rendering (Slack and the webhook schema), HMAC signing checked against an
//! independent HMAC, digest instants across DST changes, digest contents, the projection of
//! upcoming deletes, failure streaks, the bounded queue, and secrets staying out of sight.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::clock::ManualClock;
use crate::config::parse_rules;
use crate::events::Acted;
use crate::ledger::Ledger;
use crate::platform::{EnvState, Environment, Snapshot};
use crate::policy::{Cause, Decision, LedgerView, PendingDelete, StopCause};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn pr12() -> EnvironmentRef {
    EnvironmentRef {
        id: "env-12".into(),
        name: "pr-12".into(),
        project: "web".into(),
        state: EnvState::Stopped,
        mode: crate::platform::Mode::Preview,
    }
}

fn warning() -> Message {
    Message {
        id: "0123abcd".into(),
        at: at("2026-11-27T12:00:00Z"),
        timezone: chrono_tz::Europe::Paris,
        event: Event::DeleteWarning {
            environment: pr12(),
            rule: "ttl".into(),
            reason: "older than delete_after 7d: will be deleted at 2026-11-28 01:00 CET (rule \"ttl\"); warning now".into(),
            delete_at: at("2026-11-28T00:00:00Z"),
        },
        links: Default::default(),
    }
}

// ---- rendering ----------------------------------------------------------------------

#[test]
fn the_webhook_body_of_a_warning_follows_the_documented_schema() {
    let body = webhook(&warning());
    assert_eq!(
        body,
        json!({
            "version": 1,
            "id": "0123abcd",
            "kind": "delete_warning",
            "at": "2026-11-27T12:00:00Z",
            "timezone": "Europe/Paris",
            "text": text(&warning()),
            "environment": {"id": "env-12", "name": "pr-12", "project": "web", "state": "stopped"},
            "rule": "ttl",
            "reason": "older than delete_after 7d: will be deleted at 2026-11-28 01:00 CET (rule \"ttl\"); warning now",
            "delete_at": "2026-11-28T00:00:00Z",
            "snooze": {
                "command": "curfew snooze env-12 --for 24h",
                "method": "POST",
                "path": "/api/v1/environments/env-12/snooze",
            },
        })
    );
}

#[test]
fn a_warning_says_when_in_the_rules_zone_and_how_to_snooze() {
    let t = text(&warning());
    assert_eq!(
        t.lines().next().unwrap(),
        "pr-12 (project web) will be deleted at 2026-11-28 01:00 CET by rule `ttl`."
    );
    assert!(
        t.contains("`curfew snooze env-12 --for 24h` or POST `/api/v1/environments/env-12/snooze`"),
        "{t}"
    );
}

#[test]
fn slack_gets_text_and_simple_blocks_with_mrkdwn_escaped() {
    let mut m = warning();
    if let Event::DeleteWarning { environment, .. } = &mut m.event {
        environment.name = "<pr-12 & co>".into();
    }
    let body = slack(&m);
    let blocks = body["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["section", "section", "context"]);
    let headline = blocks[0]["text"]["text"].as_str().unwrap();
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert!(
        headline.starts_with(":warning: *&lt;pr-12 &amp; co&gt;* (project web) will be deleted at 2026-11-28 01:00 CET"),
        "{headline}"
    );
    let details = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        details.contains("`curfew snooze env-12 --for 24h`"),
        "{details}"
    );
    let fallback = body["text"].as_str().unwrap();
    assert!(fallback.contains("&lt;pr-12 &amp; co&gt;"), "{fallback}");
    assert!(!fallback.contains("<pr-12"), "{fallback}");
}

#[test]
fn deleted_failure_and_digest_messages_render_their_own_fields() {
    let deleted = Message {
        event: Event::Deleted {
            environment: pr12(),
            rule: "ttl".into(),
            reason:
                "older than delete_after 7d since 2026-11-28 01:00 CET: deleted by rule \"ttl\""
                    .into(),
        },
        ..warning()
    };
    let failure = Message {
        event: Event::Failure {
            environment: pr12(),
            rule: "office".into(),
            action: Action::Stop,
            failures: 3,
            error: "sandbox stop: HTTP 503 (retryable)".into(),
        },
        ..warning()
    };
    let digest = Message {
        timezone: chrono_tz::Europe::Paris,
        event: Event::Digest(Digest {
            date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            timezone: chrono_tz::Europe::Paris,
            currency: "EUR".into(),
            stopped_now: 2,
            cost_per_hour_now: 0.8,
            yesterday: Saved {
                amount: 9.6,
                stopped_hours: 24.0,
            },
            this_month: Saved {
                amount: 100.0,
                stopped_hours: 250.0,
            },
            upcoming_deletes: vec![UpcomingDelete {
                environment: pr12(),
                rule: "ttl".into(),
                at: at("2026-11-28T00:00:00Z"),
            }],
        }),
        ..warning()
    };
    // (message, kind, extra webhook fields, a line of its text)
    let cases = [
        (
            &deleted,
            "deleted",
            json!({"reason": "older than delete_after 7d since 2026-11-28 01:00 CET: deleted by rule \"ttl\""}),
            "pr-12 (project web) was deleted by rule `ttl`.",
        ),
        (
            &failure,
            "failure",
            json!({"action": "stop", "failures": 3, "error": "sandbox stop: HTTP 503 (retryable)"}),
            "curfew failed to stop pr-12 (project web) 3 times in a row (rule `office`).",
        ),
        (
            &digest,
            "digest",
            json!({"digest": {
                "date": "2026-11-27",
                "timezone": "Europe/Paris",
                "currency": "EUR",
                "stopped_now": {"environments": 2, "cost_per_hour": 0.8},
                "saved_yesterday": {"amount": 9.6, "stopped_hours": 24.0},
                "saved_this_month": {"amount": 100.0, "stopped_hours": 250.0},
                "deletions_next_24h": [{
                    "environment": {"id": "env-12", "name": "pr-12", "project": "web", "state": "stopped"},
                    "rule": "ttl",
                    "at": "2026-11-28T00:00:00Z",
                }],
            }}),
            "• pr-12 (project web) at 2026-11-28 01:00 CET (rule `ttl`)",
        ),
    ];
    for (m, kind, extra, line) in cases {
        let body = webhook(m);
        assert_eq!(body["kind"], kind);
        assert_eq!(body["version"], WEBHOOK_SCHEMA_VERSION);
        for (k, v) in extra.as_object().unwrap() {
            assert_eq!(&body[k], v, "{kind} field {k}");
        }
        let t = text(m);
        assert!(t.lines().any(|l| l == line), "{kind}: {t}");
        let s = slack(m);
        assert!(
            s["text"]
                .as_str()
                .unwrap()
                .contains(&line.replace("pr-12", "*pr-12*")),
            "{kind}: {s}"
        );
    }
    // A digest is about no one environment and no one rule: both present, both null.
    let body = webhook(&digest);
    assert_eq!(
        (&body["environment"], &body["rule"]),
        (&json!(null), &json!(null))
    );
    assert!(
        text(&digest).contains("Saved yesterday: 9.60 EUR (24.0 environment-hours stopped)."),
        "{}",
        text(&digest)
    );
}

// ---- signing ------------------------------------------------------------------------

/// HMAC-SHA256 from RFC 2104, written out over plain SHA-256: an independent check of the
/// `hmac` crate as curfew uses it.
fn hmac_sha256_by_hand(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn the_hand_written_hmac_matches_rfc_4231() {
    // RFC 4231, test case 2.
    let mac = hmac_sha256_by_hand(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        sign::hex(&mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
    let body = br#"{"kind":"delete_warning"}"#;
    let long_key = vec![0xaa; 131];
    for key in [b"s3cret".to_vec(), long_key] {
        let got = signature(&SigningKey::new(key.clone()), 1_795_000_000, body);
        let mut signed = b"1795000000.".to_vec();
        signed.extend_from_slice(body);
        let want = format!("sha256={}", sign::hex(&hmac_sha256_by_hand(&key, &signed)));
        assert_eq!(got, want);
    }
    // The value the Python and openssl recipes of docs/notifications.md compute.
    assert_eq!(
        signature(&SigningKey::new(b"s3cret".to_vec()), 1_795_000_000, body),
        "sha256=202c82aa1c47fcdb07fbb164b87e18d88477f1dd7b35cc9fd7b960253b92e99a"
    );
    // Another timestamp or body, another signature.
    let key = SigningKey::new(b"s3cret".to_vec());
    assert_ne!(
        signature(&key, 1_795_000_000, body),
        signature(&key, 1_795_000_001, body)
    );
    assert_ne!(
        signature(&key, 1_795_000_000, body),
        signature(&key, 1_795_000_000, b"{}")
    );
}

// ---- digest instants ----------------------------------------------------------------

#[test]
fn the_next_digest_is_at_local_time_across_paris_dst_changes() {
    let paris = chrono_tz::Europe::Paris;
    // (digest_at, now, next digest)
    let cases = [
        // Autumn: Sunday 2026-10-25, 03:00 CEST becomes 02:00 CET. 09:00 stays 09:00 local,
        // so the instant moves by 25 hours across the change.
        (
            hm(9, 0),
            "2026-10-24T09:00:00+02:00",
            "2026-10-25T09:00:00+01:00",
        ),
        (
            hm(9, 0),
            "2026-10-24T08:59:59+02:00",
            "2026-10-24T09:00:00+02:00",
        ),
        (
            hm(9, 0),
            "2026-10-25T09:00:00+01:00",
            "2026-10-26T09:00:00+01:00",
        ),
        // A time in the repeated hour: its first occurrence (CEST), once that day.
        (
            hm(2, 30),
            "2026-10-24T12:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
        ),
        (
            hm(2, 30),
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
        ),
        // Spring: Sunday 2026-03-29, 02:00 CET becomes 03:00 CEST: 23 hours apart.
        (
            hm(9, 0),
            "2026-03-28T09:00:00+01:00",
            "2026-03-29T09:00:00+02:00",
        ),
        // A time in the gap: the first instant after it (03:00 CEST).
        (
            hm(2, 30),
            "2026-03-28T12:00:00+01:00",
            "2026-03-29T03:00:00+02:00",
        ),
        (
            hm(2, 30),
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ),
        // Midnight, and a `now` late in the local day whose UTC date is the next one.
        (
            hm(0, 0),
            "2026-10-24T23:30:00+02:00",
            "2026-10-25T00:00:00+02:00",
        ),
    ];
    for (digest_at, now, want) in cases {
        assert_eq!(
            next_digest_after(digest_at, paris, at(now)),
            at(want),
            "digest_at {digest_at} after {now}"
        );
    }
}

#[test]
fn digests_come_once_a_day_at_local_time_through_both_changes() {
    let paris = chrono_tz::Europe::Paris;
    for (digest_at, start) in [
        (hm(9, 0), "2026-03-20T00:00:00Z"),
        (hm(2, 30), "2026-03-20T00:00:00Z"),
        (hm(9, 0), "2026-10-18T00:00:00Z"),
        (hm(2, 30), "2026-10-18T00:00:00Z"),
    ] {
        let mut t = at(start);
        let mut days = Vec::new();
        for _ in 0..14 {
            t = next_digest_after(digest_at, paris, t);
            let local = t.with_timezone(&paris);
            days.push(local.date_naive());
            let time = local.time();
            // 02:30 on the spring day does not exist: 03:00 instead.
            assert!(
                time == digest_at || (digest_at == hm(2, 30) && time == hm(3, 0)),
                "{digest_at} sent at {local}"
            );
        }
        let mut distinct = days.clone();
        distinct.dedup();
        assert_eq!(distinct, days, "one digest per local day");
        assert!(
            days.windows(2).all(|w| w[1] - w[0] == TimeDelta::days(1)),
            "no day skipped: {days:?}"
        );
    }
}

// ---- fixtures for passes ------------------------------------------------------------

/// The policy tests' preview, created at `created`, in `state`, costing 1 an hour.
fn env(name: &str, created: &str, state: EnvState) -> Environment {
    use crate::policy::tests::EnvFixture as _;
    Environment {
        state,
        hourly_cost: Some(1.0),
        ..crate::policy::tests::env(name).created(created)
    }
}

const TTL: &str = "timezone: Europe/Paris\nnotify:\n  team: { kind: webhook, url: \"http://127.0.0.1:9/hook\" }\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 2d\n    warn_before_delete: 12h\n    notify: [team]\n";

fn rules(yaml: &str) -> RuleSet {
    parse_rules("test.yaml", yaml, at("2026-10-01T00:00:00Z")).unwrap_or_else(|e| panic!("{e}"))
}

/// A notifier whose drain does not run, so what it queued can be read back.
fn undrained(queue: usize, env: &[(&str, &str)]) -> (Notifier, Drain, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new("test", false));
    let (n, d) = Notifier::new(
        NotifyOptions {
            queue_capacity: queue,
            ..NotifyOptions::default()
        },
        metrics.clone(),
        Arc::new(ManualClock::new(at("2026-10-01T00:00:00Z"))),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap();
    (n, d, metrics)
}

fn queued(drain: &mut Drain) -> Vec<(String, Kind, serde_json::Value)> {
    let mut out = Vec::new();
    while let Ok(d) = drain.queue.try_recv() {
        out.push((d.target, d.kind, serde_json::from_slice(&d.body).unwrap()));
    }
    out
}

fn count(metrics: &Metrics, target: &str, kind: &str, result: &str) -> u64 {
    let text = metrics.encode();
    let series = format!(
        "curfew_notifications_total{{kind=\"{kind}\",result=\"{result}\",target=\"{target}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn decision(e: &Environment, action: Action) -> Decision {
    Decision {
        environment_id: e.id.clone(),
        environment: e.name.clone(),
        project: e.project.clone(),
        mode: e.mode,
        state: e.state,
        action,
        cause: Some(Cause::Schedule),
        rule: Some("ttl".into()),
        reason: "outside run Mon-Fri 08:00-19:00".into(),
        due_since: None,
        next_check: None,
        dry_run: false,
        settle: None,
        hourly_cost: e.hourly_cost,
        delete: None,
    }
}

/// The report of a pass that made `decisions` at `now`, with what became of their actions.
fn report(
    rules: &Arc<RuleSet>,
    decisions: &[Decision],
    acted: &[Acted],
    now: DateTime<Utc>,
) -> PassReport {
    PassReport {
        rules: rules.clone(),
        at: now,
        complete: true,
        decisions: Arc::new(decisions.to_vec()),
        acted: acted.to_vec(),
        next_wakeup: None,
    }
}

// ---- failure streaks ----------------------------------------------------------------

#[test]
fn repeated_failures_are_told_once_and_again_only_after_a_success() {
    let r = Arc::new(rules(TTL));
    let (n, mut drain, _) = undrained(64, &[]);
    let e = env("pr-1", "2026-10-01T00:00:00Z", EnvState::Running);
    let stop = decision(&e, Action::Stop);
    // What became of `stop`, the pass's only decision.
    let failed = || {
        vec![Acted::own(
            0,
            ActResult::Failed("sandbox stop: HTTP 503".into()),
        )]
    };
    let done = || vec![Acted::own(0, ActResult::Done(Outcome::Accepted))];
    let t0 = at("2026-10-02T17:00:00Z");
    // (what the pass did, failure messages expected after it)
    let passes = [
        (failed(), 0),
        (failed(), 0),
        (failed(), 1),
        (failed(), 0),
        (failed(), 0),
        (done(), 0),
        (failed(), 0),
        (failed(), 0),
        (failed(), 1),
    ];
    // One pass over the one environment: its decisions, what became of them, when.
    let pass = |decisions: &[Decision], acted: &[Acted], now| {
        n.pass_done(&report(&r, decisions, acted, now));
    };
    let stops = std::slice::from_ref(&stop);
    for (i, (acted, want)) in passes.into_iter().enumerate() {
        pass(stops, &acted, t0 + TimeDelta::minutes(i as i64));
        let got = queued(&mut drain);
        assert_eq!(got.len(), want, "pass {i}: {got:?}");
        for (target, kind, body) in got {
            assert_eq!((target.as_str(), kind), ("team", Kind::Failure));
            assert_eq!(body["failures"], 3);
            assert_eq!(body["action"], "stop");
            assert_eq!(body["error"], "sandbox stop: HTTP 503");
        }
    }
    // A streak ends when the action is no longer due.
    for i in 0..2 {
        pass(
            stops,
            &failed(),
            t0 + TimeDelta::hours(1) + TimeDelta::minutes(i),
        );
    }
    pass(&[decision(&e, Action::None)], &[], t0 + TimeDelta::hours(2));
    pass(stops, &failed(), t0 + TimeDelta::hours(3));
    assert!(queued(&mut drain).is_empty(), "the streak started over");
}

#[test]
fn a_warning_names_its_delete_instant_and_a_delete_of_a_gone_environment_is_not_told() {
    let r = Arc::new(rules(TTL));
    let (n, mut drain, _) = undrained(64, &[]);
    let e = env("pr-1", "2026-10-01T00:00:00Z", EnvState::Stopped);
    let step = |action, at| {
        Box::new(PendingDelete {
            action,
            cause: Cause::Age,
            reason: "older than delete_after 1d".into(),
            due_since: None,
            at,
        })
    };
    // The warning rides beside a schedule's stop; the delete beside nothing.
    let warn = Decision {
        delete: Some(step(Action::Warn, Some(at("2026-10-03T00:00:00Z")))),
        ..decision(&e, Action::Stop)
    };
    let delete = Decision {
        delete: Some(step(Action::Delete, None)),
        ..decision(&e, Action::None)
    };
    // By index in the pass's decisions: the stop and its warning, then the delete three
    // times over.
    let acted = [
        Acted::own(0, ActResult::Done(Outcome::Accepted)),
        Acted::delete(0, ActResult::Done(Outcome::Accepted)),
        Acted::delete(1, ActResult::Done(Outcome::Gone)),
        Acted::delete(1, ActResult::Done(Outcome::Accepted)),
        Acted::delete(1, ActResult::DryRun),
    ];
    n.pass_done(&report(
        &r,
        &[warn, delete],
        &acted,
        at("2026-10-02T12:00:00Z"),
    ));
    let got = queued(&mut drain);
    let kinds: Vec<Kind> = got.iter().map(|(_, k, _)| *k).collect();
    assert_eq!(kinds, [Kind::DeleteWarning, Kind::Deleted]);
    assert_eq!(got[0].2["delete_at"], "2026-10-03T00:00:00Z");
    assert_eq!(got[0].2["environment"]["name"], "pr-1");
}

// ---- the queue ----------------------------------------------------------------------

#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    let r = rules(TTL);
    let target = &r.notify["team"];
    let (n, mut drain, metrics) = undrained(2, &[]);
    // Not even an async context: `send` cannot wait.
    for _ in 0..5 {
        n.send(target, warning());
    }
    assert_eq!(count(&metrics, "team", "delete_warning", "dropped"), 3);
    assert_eq!(queued(&mut drain).len(), 2);
    assert_eq!(*n.inner.pending.borrow(), 2);
}

// ---- secrets ------------------------------------------------------------------------

const SECRET_URL: &str = "https://hooks.slack.com/services/T000/B000/XyzSECRETtoken";

#[test]
fn urls_and_keys_from_the_environment_stay_out_of_debug_and_errors() {
    let yaml = "notify:\n  team: { kind: slack, url_env: TEAM_HOOK, secret_env: TEAM_KEY }\nrules:\n  - name: r\n    run: Mon-Fri 08:00-19:00\n    notify: [team]\n";
    let r = rules(yaml);
    let target = &r.notify["team"];
    let (n, _d, _) = undrained(4, &[("TEAM_HOOK", SECRET_URL), ("TEAM_KEY", "k3y-SECRET")]);
    let endpoint = n.endpoint(target).unwrap();
    let shown = format!("{endpoint:?} {n:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");

    // Missing or broken values: the error names the variable, never the value.
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("TEAM_KEY", "k")],
            "environment variable TEAM_HOOK (url_env) is not set",
        ),
        (
            &[("TEAM_HOOK", "not a url XyzSECRETtoken"), ("TEAM_KEY", "k")],
            "the value of TEAM_HOOK (url_env) is not a valid URL",
        ),
        (
            &[("TEAM_HOOK", SECRET_URL)],
            "environment variable TEAM_KEY (secret_env) is not set",
        ),
    ];
    for (env, want) in cases {
        let (n, _d, _) = undrained(4, env);
        assert_eq!(n.check(&r), [("team".to_string(), want.to_string())]);
    }
    let (n, _d, _) = undrained(4, &[("TEAM_HOOK", "ftp://XyzSECRETtoken@example.com/")]);
    let problems = format!("{:?}", n.check(&r));
    assert!(!problems.contains("SECRET"), "{problems}");
}

#[test]
fn a_target_without_a_usable_url_counts_an_error_and_queues_nothing() {
    let yaml = "notify:\n  team: { kind: webhook, url_env: TEAM_HOOK }\nrules:\n  - name: r\n    run: Mon-Fri 08:00-19:00\n";
    let r = rules(yaml);
    let (n, mut drain, metrics) = undrained(4, &[]);
    n.send(&r.notify["team"], warning());
    assert_eq!(count(&metrics, "team", "delete_warning", "error"), 1);
    assert!(queued(&mut drain).is_empty());
}

// ---- digest contents ----------------------------------------------------------------

#[test]
fn a_digest_counts_savings_over_local_days_including_a_25_hour_one() {
    let r = rules(
        "timezone: Europe/Paris\ncurrency: EUR\nnotify:\n  daily: { kind: webhook, url: \"http://127.0.0.1:9/\", digest_at: \"09:00\" }\nrules:\n  - name: office\n    run: Mon-Fri 08:00-19:00\n",
    );
    let ledger = Ledger::in_memory().unwrap();
    // Stopped by curfew since Friday 2026-10-23 19:00 CEST, at 1.0 EUR an hour.
    let stopped_at = at("2026-10-23T19:00:00+02:00");
    ledger
        .open_stop_for(
            "id-pr-1",
            "office",
            StopCause::Schedule,
            "stopped",
            Some(1.0),
            stopped_at,
        )
        .unwrap();
    let now = at("2026-10-26T09:00:00+01:00");
    ledger.accrue(now, "EUR", &|_| true).unwrap();
    let e = env("pr-1", "2026-10-01T00:00:00Z", EnvState::Stopped);
    let snapshot = Snapshot {
        environments: vec![e.clone()],
        complete: true,
    };
    let mut view = LedgerView::default();
    view.entry(e.id.clone()).curfew_stop = Some(crate::policy::StopRecord {
        at: stopped_at,
        cause: StopCause::Schedule,
        rule: "office".into(),
    });
    let decisions = crate::policy::decide(&r, &snapshot, &view, now);
    let stops = ledger
        .stop_intervals_since(digest::needs_stops_since(chrono_tz::Europe::Paris, now))
        .unwrap();
    let fleet = digest::Fleet {
        rules: &r,
        view: &view,
        decisions: &decisions,
        stops: &stops,
        upcoming: &[],
    };
    let scope = digest::scope(&r, "daily");
    let d = digest::digest(&fleet, &scope, chrono_tz::Europe::Paris, now);
    assert_eq!(d.date, NaiveDate::from_ymd_opt(2026, 10, 26).unwrap());
    assert_eq!((d.stopped_now, d.cost_per_hour_now), (1, 1.0));
    // Sunday 2026-10-25 in Paris lasted 25 hours.
    assert!((d.yesterday.stopped_hours - 25.0).abs() < 1e-9, "{d:?}");
    assert!((d.yesterday.amount - 25.0).abs() < 1e-9, "{d:?}");
    // This month: from Friday 19:00 CEST to Monday 09:00 CET = 63 hours.
    assert!((d.this_month.amount - 63.0).abs() < 1e-9, "{d:?}");
}

#[test]
fn a_target_named_by_no_rule_gets_the_whole_fleet_in_its_digest() {
    let r = rules(
        "notify:\n  team: { kind: webhook, url: \"http://127.0.0.1:9/\" }\n  all: { kind: webhook, url: \"http://127.0.0.1:9/\" }\nrules:\n  - name: a\n    run: Sat\n    notify: [team]\n  - name: b\n    run: Sun\n",
    );
    let mut team: Vec<&str> = digest::scope(&r, "team").into_iter().collect();
    let mut all: Vec<&str> = digest::scope(&r, "all").into_iter().collect();
    team.sort();
    all.sort();
    assert_eq!((team, all), (vec!["a"], vec!["a", "b"]));
}

#[test]
fn digests_are_queued_when_due_and_the_next_instant_is_returned() {
    let r = rules(
        "timezone: Europe/Paris\nnotify:\n  daily: { kind: slack, url: \"http://127.0.0.1:9/\", digest_at: \"09:00\" }\n  quiet: { kind: webhook, url: \"http://127.0.0.1:9/\" }\nrules:\n  - name: office\n    run: Mon-Fri 08:00-19:00\n",
    );
    let (n, mut drain, _) = undrained(8, &[]);
    let mut digests = Digests::new(n);
    // The digest job's step at `now`: the due digests sent (of an empty fleet), the next
    // instant returned.
    let mut pass = |now: &str| {
        let now = at(now);
        let (due, next) = digests.due(&r, now);
        let fleet = digest::Fleet {
            rules: &r,
            view: &LedgerView::default(),
            decisions: &[],
            stops: &[],
            upcoming: &[],
        };
        digests.send(&due, &fleet, now);
        next
    };
    // (pass at, next digest returned, digests queued by that pass)
    let cases = [
        // The first pass after start only plans: nothing is sent late.
        ("2026-10-24T09:30:00+02:00", "2026-10-25T09:00:00+01:00", 0),
        ("2026-10-25T08:59:59+01:00", "2026-10-25T09:00:00+01:00", 0),
        ("2026-10-25T09:00:00+01:00", "2026-10-26T09:00:00+01:00", 1),
        ("2026-10-25T09:00:01+01:00", "2026-10-26T09:00:00+01:00", 0),
        // A pass that comes late (the daemon was busy) still sends that day's, once.
        ("2026-10-26T11:00:00+01:00", "2026-10-27T09:00:00+01:00", 1),
    ];
    for (now, next, sent) in cases {
        assert_eq!(pass(now), Some(at(next)), "after the pass at {now}");
        let got = queued(&mut drain);
        assert_eq!(got.len(), sent, "pass at {now}: {got:?}");
        for (target, kind, body) in got {
            assert_eq!((target.as_str(), kind), ("daily", Kind::Digest));
            assert!(
                body["text"]
                    .as_str()
                    .unwrap()
                    .contains("curfew daily digest")
            );
        }
    }
}

#[test]
fn a_notifier_with_no_targets_plans_nothing() {
    let r = rules("rules:\n  - name: office\n    run: Mon-Fri 08:00-19:00\n");
    let (n, mut drain, _) = undrained(8, &[]);
    let (due, next) = Digests::new(n).due(&r, at("2026-10-24T09:30:00Z"));
    assert!(due.is_empty());
    assert_eq!(next, None);
    assert!(queued(&mut drain).is_empty());
}

#[test]
fn slack_shows_links_as_links_and_the_webhook_lists_them() {
    let link = ActionLink {
        label: "keep until tomorrow 09:00".into(),
        url: "https://curfew.example.com/link/abc".into(),
    };
    let m = Message {
        links: [(pr12().id, vec![link])].into_iter().collect(),
        ..warning()
    };
    let slack = slack(&m).to_string();
    assert!(
        slack.contains("Act: <https://curfew.example.com/link/abc|keep until tomorrow 09:00>"),
        "{slack}"
    );
    assert_eq!(
        webhook(&m)["links"],
        json!([{"label": "keep until tomorrow 09:00", "url": "https://curfew.example.com/link/abc"}])
    );
    assert!(
        webhook(&warning()).get("links").is_none(),
        "none without links"
    );
}
