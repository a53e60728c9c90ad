//! Notifications end to end: the daemon's passes on the in-process sandbox with a manual
//! clock (the real Qovery adapter over loopback HTTP, the real ledger and executor), and a
//! local receiver (an axum server on 127.0.0.1:0) that records what arrives and can fail,
//! hang, or not be there at all. No test waits for wall time: deliveries are awaited with
//! [`Notifier::settled`] or the receiver's own arrival count, and backoffs are zero.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use super::*;
use crate::clock::ManualClock;
use crate::config::parse_rules;
use crate::ledger::Ledger;
use crate::platform::{Operation, Platform, PlatformError};
use crate::reconcile::{Daemon, DaemonOptions};
use crate::sandbox::{RunningSandbox, Sandbox};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const KEY: &str = "receiver-shared-key";

// ---- the receiver -------------------------------------------------------------------

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    /// 503 to the first n requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
struct Received {
    /// The manual clock's instant when the request arrived.
    at: DateTime<Utc>,
    headers: HeaderMap,
    raw: Bytes,
    body: serde_json::Value,
}

#[derive(Clone)]
struct ReceiverState {
    clock: ManualClock,
    answer: Answer,
    log: Arc<Mutex<Vec<Received>>>,
    arrivals: Arc<watch::Sender<usize>>,
}

struct Receiver {
    url: String,
    state: ReceiverState,
}

impl Receiver {
    async fn start(clock: &ManualClock, answer: Answer) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hook/XyzSECRETpath",
            listener.local_addr().unwrap()
        );
        let state = ReceiverState {
            clock: clock.clone(),
            answer,
            log: Arc::default(),
            arrivals: Arc::new(watch::Sender::new(0)),
        };
        let app = Router::new()
            .route("/hook/{secret}", post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn of_kind(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.body["kind"] == kind)
            .collect()
    }

    async fn wait_for_arrivals(&self, n: usize) {
        let mut rx = self.state.arrivals.subscribe();
        rx.wait_for(|got| *got >= n).await.unwrap();
    }
}

async fn receive(State(s): State<ReceiverState>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let index = {
        let mut log = s.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push(Received {
            at: s.clock.now(),
            headers,
            body: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
            raw,
        });
        log.len() - 1
    };
    s.arrivals.send_modify(|n| *n += 1);
    match s.answer {
        Answer::Ok => StatusCode::OK,
        Answer::FailFirst(n) if index < n => StatusCode::SERVICE_UNAVAILABLE,
        Answer::FailFirst(_) => StatusCode::OK,
        Answer::Hang => std::future::pending().await,
    }
}

/// Checks `X-Curfew-Signature` as a receiver would, with the `hmac` crate.
fn assert_signed(r: &Received, now: DateTime<Utc>) {
    let timestamp = r.headers[TIMESTAMP_HEADER].to_str().unwrap();
    assert_eq!(
        timestamp,
        now.timestamp().to_string(),
        "signed at the wall clock's now"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&r.raw);
    let want = format!("sha256={}", sign::hex(&mac.finalize().into_bytes()));
    assert_eq!(r.headers[SIGNATURE_HEADER].to_str().unwrap(), want);
    assert_eq!(
        r.headers[DELIVERY_HEADER].to_str().unwrap(),
        r.body["id"].as_str().unwrap()
    );
}

// ---- the fleet and the daemon -------------------------------------------------------

struct Fleet {
    clock: ManualClock,
    sandbox: Sandbox,
    _running: RunningSandbox,
    platform: Arc<dyn Platform>,
}

impl Fleet {
    async fn start(start: &str, environments: u32) -> Fleet {
        let clock = ManualClock::new(at(start));
        let (sandbox, running, platform) =
            crate::reconcile::tests::sandbox_platform(&clock, environments).await;
        Fleet {
            clock,
            sandbox,
            _running: running,
            platform,
        }
    }

    fn deletes(&self) -> u64 {
        self.sandbox
            .requests()
            .deletes
            .values()
            .map(|c| u64::from(c.calls))
            .sum()
    }
}

/// Options for tests: no backoff (nothing waits for wall time), a long timeout.
fn quick(retries: usize) -> NotifyOptions {
    NotifyOptions {
        retries,
        backoff: Duration::ZERO,
        timeout: Duration::from_secs(24 * 3600),
        ..NotifyOptions::default()
    }
}

struct Running {
    daemon: Daemon,
    notifier: Notifier,
    metrics: Arc<Metrics>,
}

/// A daemon on `fleet`, notifying through a target whose URL (`HOOK_URL`) and key
/// (`HOOK_KEY`) come from the environment.
fn daemon(
    fleet: &Fleet,
    rules_yaml: &str,
    url: &str,
    ledger: Arc<Ledger>,
    platform: Arc<dyn Platform>,
    options: NotifyOptions,
) -> Running {
    let metrics = Arc::new(Metrics::new("test", false));
    let env = HashMap::from([
        ("HOOK_URL".to_string(), url.to_string()),
        ("HOOK_KEY".to_string(), KEY.to_string()),
    ]);
    let notifier =
        Notifier::start(options, metrics.clone(), Arc::new(fleet.clock.clone()), env).unwrap();
    let rules = parse_rules("test.yaml", rules_yaml, fleet.clock.now()).unwrap();
    let daemon = Daemon::new(
        platform,
        ledger,
        metrics.clone(),
        Arc::new(fleet.clock.clone()),
        Arc::new(rules),
        DaemonOptions {
            resync: Duration::from_secs(60),
            max_pass_age: Duration::from_secs(180),
            max_in_flight: 4,
        },
    )
    .with_listener(Arc::new(notifier.clone()));
    Running {
        daemon,
        notifier,
        metrics,
    }
}

fn count(metrics: &Metrics, kind: &str, result: &str) -> u64 {
    let series = format!(
        "curfew_notifications_total{{kind=\"{kind}\",result=\"{result}\",target=\"team\"}} "
    );
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn ids(report: &crate::events::PassReport, action: Action, done: bool) -> BTreeSet<String> {
    report
        .acted()
        .filter(|(d, r)| d.action == action && matches!(r, ActResult::Done(_)) == done)
        .map(|(d, _)| d.environment_id.to_string())
        .collect()
}

fn received_ids(received: &[Received]) -> BTreeSet<String> {
    received
        .iter()
        .map(|r| r.body["environment"]["id"].as_str().unwrap().to_string())
        .collect()
}

const TTL: &str = "timezone: UTC\nnotify:\n  team: { kind: webhook, url_env: HOOK_URL, secret_env: HOOK_KEY }\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 1h\n    warn_before_delete: 2h\n    notify: [team]\n";

fn temp_ledger(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("curfew-notify-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("curfew.db")
}

// ---- the tests ----------------------------------------------------------------------

#[tokio::test]
async fn warnings_arrive_before_the_delete_and_the_delete_waits_for_the_warning_period() {
    let fleet = Fleet::start("2026-11-27T12:00:00Z", 8).await;
    let receiver = Receiver::start(&fleet.clock, Answer::Ok).await;
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let run = daemon(
        &fleet,
        TTL,
        &receiver.url,
        ledger,
        fleet.platform.clone(),
        quick(2),
    );
    let t0 = fleet.clock.now();

    let first = run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    let warned = ids(&first, Action::Warn, true);
    assert!(!warned.is_empty(), "old previews are warned about first");
    let warnings = receiver.of_kind("delete_warning");
    assert_eq!(received_ids(&warnings), warned);
    for w in &warnings {
        assert_eq!(w.at, t0);
        assert_eq!(w.body["delete_at"], "2026-11-27T14:00:00Z");
        assert_eq!(w.body["rule"], "ttl");
        let id = w.body["environment"]["id"].as_str().unwrap();
        assert_eq!(
            w.body["snooze"]["path"],
            format!("/api/v1/environments/{id}/snooze")
        );
        assert_signed(w, t0);
    }

    // One minute before the warning period ends: nothing is deleted, nothing more is said.
    fleet.clock.advance(TimeDelta::minutes(119));
    let early = run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    assert!(early.acted().all(|(d, _)| d.action != Action::Delete));
    assert_eq!(receiver.received().len(), warnings.len());

    // The period is over: the delete is confirmed on the next pass, then made.
    fleet.clock.advance(TimeDelta::minutes(1));
    run.daemon.pass().await.unwrap();
    fleet.clock.advance(TimeDelta::minutes(1));
    let due = run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    let deleted = ids(&due, Action::Delete, true);
    assert_eq!(deleted, warned);
    assert!(fleet.deletes() >= deleted.len() as u64);

    let deletes = receiver.of_kind("deleted");
    assert_eq!(received_ids(&deletes), deleted);
    for d in &deletes {
        let id = &d.body["environment"]["id"];
        let warning = warnings
            .iter()
            .find(|w| w.body["environment"]["id"] == *id)
            .unwrap();
        assert!(
            d.at >= warning.at + TimeDelta::hours(2),
            "deleted at {} though warned at {}",
            d.at,
            warning.at
        );
        assert_signed(d, fleet.clock.now());
    }
    assert_eq!(
        count(&run.metrics, "delete_warning", "ok"),
        warned.len() as u64
    );
    assert_eq!(count(&run.metrics, "deleted", "ok"), deleted.len() as u64);
}

#[tokio::test]
async fn a_warned_delete_waits_for_its_warning_period_across_a_restart() {
    let fleet = Fleet::start("2026-11-27T12:00:00Z", 8).await;
    let receiver = Receiver::start(&fleet.clock, Answer::Ok).await;
    let path = temp_ledger("restart");
    let warned = {
        let run = daemon(
            &fleet,
            TTL,
            &receiver.url,
            Arc::new(Ledger::open(&path).unwrap()),
            fleet.platform.clone(),
            quick(2),
        );
        let first = run.daemon.pass().await.unwrap();
        run.notifier.settled().await;
        ids(&first, Action::Warn, true)
        // The daemon, its ledger connection and its memory end here.
    };
    assert!(!warned.is_empty());
    let warnings = receiver.of_kind("delete_warning").len();

    // A new process, one minute before the warning period ends.
    fleet.clock.advance(TimeDelta::minutes(119));
    let run = daemon(
        &fleet,
        TTL,
        &receiver.url,
        Arc::new(Ledger::open(&path).unwrap()),
        fleet.platform.clone(),
        quick(2),
    );
    assert_eq!(run.daemon.recover().await.unwrap(), 0);
    let early = run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    assert!(
        early
            .acted()
            .all(|(d, _)| d.action != Action::Delete && d.action != Action::Warn),
        "the ledger remembers the warning: no delete yet, and no second warning: {:?}",
        early.acted().collect::<Vec<_>>()
    );
    assert_eq!(receiver.of_kind("delete_warning").len(), warnings);
    assert_eq!(fleet.deletes(), 0);

    fleet.clock.advance(TimeDelta::minutes(1));
    run.daemon.pass().await.unwrap();
    fleet.clock.advance(TimeDelta::minutes(1));
    let due = run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    assert_eq!(ids(&due, Action::Delete, true), warned);
    assert_eq!(received_ids(&receiver.of_kind("deleted")), warned);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_hold_up_the_pass() {
    let fleet = Fleet::start("2026-11-27T12:00:00Z", 8).await;
    let receiver = Receiver::start(&fleet.clock, Answer::Hang).await;
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    // The receiver holds each request for good and the timeout is a day: a pass that
    // waited for a delivery would not return.
    let run = daemon(
        &fleet,
        TTL,
        &receiver.url,
        ledger,
        fleet.platform.clone(),
        quick(0),
    );
    let first = run.daemon.pass().await.unwrap();
    let warned = ids(&first, Action::Warn, true);
    assert!(!warned.is_empty());
    // The deliveries did start, and are still hanging after the pass returned.
    receiver.wait_for_arrivals(1).await;
    assert_eq!(count(&run.metrics, "delete_warning", "ok"), 0);
    assert_eq!(count(&run.metrics, "delete_warning", "error"), 0);
    // Later passes are not held up either, deletes included.
    for _ in 0..3 {
        fleet.clock.advance(TimeDelta::minutes(61));
        run.daemon.pass().await.unwrap();
    }
    assert_eq!(fleet.deletes(), warned.len() as u64);
}

#[tokio::test]
async fn a_receiver_that_is_down_is_retried_then_counted_as_an_error() {
    let fleet = Fleet::start("2026-11-27T12:00:00Z", 8).await;
    // A port that was just free: nothing listens there.
    let url = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/hook/XyzSECRETpath", l.local_addr().unwrap())
    };
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let run = daemon(&fleet, TTL, &url, ledger, fleet.platform.clone(), quick(2));
    let logs = LogCapture::start();
    let first = run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    let warned = ids(&first, Action::Warn, true).len() as u64;
    assert!(warned > 0);
    // Two retries each, then given up on.
    assert_eq!(count(&run.metrics, "delete_warning", "retry"), 2 * warned);
    assert_eq!(count(&run.metrics, "delete_warning", "error"), warned);
    assert_eq!(count(&run.metrics, "delete_warning", "ok"), 0);
    let logs = logs.text();
    assert!(
        logs.contains("notification not delivered") && logs.contains("could not connect"),
        "{logs}"
    );
    assert!(
        !logs.contains("SECRET"),
        "the URL leaked into the logs:\n{logs}"
    );
}

#[tokio::test]
async fn retries_are_counted_and_the_message_arrives_once_the_receiver_recovers() {
    let fleet = Fleet::start("2026-11-27T12:00:00Z", 8).await;
    let receiver = Receiver::start(&fleet.clock, Answer::FailFirst(2)).await;
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let run = daemon(
        &fleet,
        TTL,
        &receiver.url,
        ledger,
        fleet.platform.clone(),
        quick(3),
    );
    let first = run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    let warned = ids(&first, Action::Warn, true).len();
    assert!(warned > 0);
    assert_eq!(count(&run.metrics, "delete_warning", "retry"), 2);
    assert_eq!(count(&run.metrics, "delete_warning", "ok"), warned as u64);
    let received = receiver.received();
    assert_eq!(received.len(), warned + 2);
    // A retry is the same message: same delivery id, for receivers to drop duplicates.
    let distinct: BTreeSet<&str> = received
        .iter()
        .map(|r| r.headers[DELIVERY_HEADER].to_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), warned);
}

/// Stops fail; everything else goes to the sandbox.
struct StopsFail(Arc<dyn Platform>);

#[async_trait::async_trait]
impl Platform for StopsFail {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    async fn list(&self) -> Result<crate::platform::Snapshot, PlatformError> {
        self.0.list().await
    }
    async fn stop(&self, _id: &str) -> Result<Outcome, PlatformError> {
        Err(PlatformError {
            platform: "sandbox",
            operation: Operation::Stop,
            retryable: true,
            message: "HTTP 503".into(),
        })
    }
    async fn start(&self, id: &str) -> Result<Outcome, PlatformError> {
        self.0.start(id).await
    }
    async fn delete(&self, id: &str) -> Result<Outcome, PlatformError> {
        self.0.delete(id).await
    }
}

#[tokio::test]
async fn an_action_failing_pass_after_pass_is_told_once() {
    let rules = "timezone: Europe/Paris\nnotify:\n  team: { kind: slack, url_env: HOOK_URL }\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n    notify: [team]\n";
    let fleet = Fleet::start("2026-11-27T19:00:00+01:00", 6).await;
    let receiver = Receiver::start(&fleet.clock, Answer::Ok).await;
    let platform = Arc::new(StopsFail(fleet.platform.clone()));
    let run = daemon(
        &fleet,
        rules,
        &receiver.url,
        Arc::new(Ledger::in_memory().unwrap()),
        platform,
        quick(0),
    );
    let t0 = fleet.clock.now();
    // When each environment's stop first failed (pass number).
    let mut first_failed: std::collections::BTreeMap<String, i64> = Default::default();
    for pass in 0..6 {
        let report = run.daemon.pass().await.unwrap();
        run.notifier.settled().await;
        for id in ids(&report, Action::Stop, false) {
            first_failed.entry(id).or_insert(pass);
        }
        // Told once, on the third failure in a row, never again.
        let want: Vec<String> = first_failed
            .iter()
            .filter(|(_, first)| pass >= **first + 2)
            .map(|(id, _)| id.clone())
            .collect();
        let told: Vec<String> = receiver
            .received()
            .iter()
            .map(|r| {
                r.body["blocks"][0]["text"]["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(told.len(), want.len(), "after pass {pass}: {told:#?}");
        fleet.clock.advance(TimeDelta::minutes(1));
    }
    assert!(!first_failed.is_empty());
    let envs = fleet.sandbox.environments();
    for r in receiver.received() {
        let text = r.body["text"].as_str().unwrap();
        assert!(
            text.starts_with("curfew failed to stop *") && text.contains("3 times in a row"),
            "{text}"
        );
        let headline = r.body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            headline.starts_with(":x: curfew failed to stop"),
            "{headline}"
        );
        // Which environment: by its name in the text.
        let env = envs
            .iter()
            .find(|e| {
                text.starts_with(&format!(
                    "curfew failed to stop *{}* (project {})",
                    e.name, e.project_name
                ))
            })
            .unwrap();
        let first = first_failed[&env.id];
        assert_eq!(r.at, t0 + TimeDelta::minutes(first + 2), "{text}");
    }
}

#[tokio::test]
async fn the_digest_is_sent_at_nine_local_on_both_sides_of_the_autumn_change() {
    let rules = "timezone: Europe/Paris\ncurrency: EUR\nnotify:\n  team: { kind: slack, url_env: HOOK_URL, digest_at: \"09:00\" }\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n    wake: all\n";
    let fleet = Fleet::start("2026-10-23T12:00:00+02:00", 6).await;
    let receiver = Receiver::start(&fleet.clock, Answer::Ok).await;
    let run = daemon(
        &fleet,
        rules,
        &receiver.url,
        Arc::new(Ledger::in_memory().unwrap()),
        fleet.platform.clone(),
        quick(0),
    );
    // Passes as the daemon runs them: at each wakeup, at most 20 minutes apart; and the
    // digest job's rounds, at its own instants.
    let until = at("2026-10-26T12:00:00+01:00");
    let mut digests = Digests::new(run.notifier.clone());
    loop {
        let report = run.daemon.pass().await.unwrap();
        let next_digest = digests.send_due(&run.daemon).await;
        run.notifier.settled().await;
        let now = fleet.clock.now();
        let step = TimeDelta::minutes(20);
        let next = [report.next_wakeup, next_digest]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
            .map_or(now + step, |t| t.min(now + step));
        if next > until {
            break;
        }
        fleet.clock.set(next);
    }
    let digests = receiver.of_kind_slack_digest();
    let paris = chrono_tz::Europe::Paris;
    let sent: Vec<String> = digests
        .iter()
        .map(|r| r.at.with_timezone(&paris).to_rfc3339())
        .collect();
    assert_eq!(
        sent,
        [
            "2026-10-24T09:00:00+02:00",
            "2026-10-25T09:00:00+01:00",
            "2026-10-26T09:00:00+01:00"
        ]
    );
    // Friday 19:00 CEST to Monday 08:00 CET stopped; the Sunday digest covers Saturday.
    let saturday = digests[1].body["text"].as_str().unwrap();
    assert!(
        saturday.starts_with("curfew daily digest for *Sunday 2026-10-25* (Europe/Paris)"),
        "{saturday}"
    );
    assert!(
        saturday.contains("Deletions in the next 24 hours: none."),
        "{saturday}"
    );
}

impl Receiver {
    /// Slack digests (Slack bodies have no `kind`: they are told by their text).
    fn of_kind_slack_digest(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| {
                r.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("curfew daily digest"))
            })
            .collect()
    }
}

use crate::text::LogCapture;

/// Links as a signer would make them, written down so the test can say which were asked
/// for: `https://curfew.test/link/<id>/<notice>/<target>`.
struct RecordedLinks;

impl ActionLinks for RecordedLinks {
    fn links(
        &self,
        id: &str,
        mode: crate::platform::Mode,
        notice: NoticeKind,
        target: &str,
        _now: DateTime<Utc>,
    ) -> Vec<ActionLink> {
        if mode == crate::platform::Mode::Production {
            return Vec::new();
        }
        vec![ActionLink {
            label: "delay the delete by 2 days".into(),
            url: format!("https://curfew.test/link/{id}/{notice:?}/{target}"),
        }]
    }
}

#[tokio::test]
async fn warnings_carry_the_action_links_made_for_their_target() {
    let fleet = Fleet::start("2026-11-27T12:00:00Z", 8).await;
    let receiver = Receiver::start(&fleet.clock, Answer::Ok).await;
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let run = daemon(
        &fleet,
        TTL,
        &receiver.url,
        ledger,
        fleet.platform.clone(),
        quick(2),
    );
    run.notifier.set_links(Arc::new(RecordedLinks));
    run.daemon.pass().await.unwrap();
    run.notifier.settled().await;
    let warnings = receiver.of_kind("delete_warning");
    assert!(!warnings.is_empty());
    for w in &warnings {
        let id = w.body["environment"]["id"].as_str().unwrap();
        let url = format!("https://curfew.test/link/{id}/DeleteWarning/team");
        assert_eq!(
            w.body["links"],
            serde_json::json!([{"label": "delay the delete by 2 days", "url": url}])
        );
        let text = w.body["text"].as_str().unwrap();
        assert!(
            text.ends_with(&format!("Act: delay the delete by 2 days: {url}")),
            "{text}"
        );
    }
}
