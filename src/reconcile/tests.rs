//! End-to-end passes on the in-process sandbox with a manual clock: the real Qovery adapter
//! over loopback HTTP, the real ledger (in memory), the real executor.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::clock::ManualClock;
use crate::config::parse_rules;
use crate::events::ActResult;
use crate::platform::qovery::{Qovery, QoveryOptions, Token};
use crate::platform::{PlatformError, Snapshot};
use crate::policy::Action;
use crate::sandbox::{Faults, RunningSandbox, Sandbox, SandboxOptions};

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(crate) struct World {
    pub(crate) clock: ManualClock,
    pub(crate) sandbox: Sandbox,
    pub(crate) _running: RunningSandbox,
    pub(crate) daemon: Arc<Daemon>,
}

/// The sandbox of the simulations (2 projects, seed 11, 10 s steps) on a loopback port,
/// and the real Qovery adapter pointed at it.
pub(crate) async fn sandbox_platform(
    clock: &ManualClock,
    environments: u32,
) -> (Sandbox, RunningSandbox, Arc<Qovery>) {
    let sandbox = Sandbox::new(
        SandboxOptions {
            projects: 2,
            environments,
            seed: 11,
            token: "t".into(),
            step: TimeDelta::seconds(10),
            ..SandboxOptions::default()
        },
        Arc::new(clock.clone()),
    );
    let running = sandbox
        .clone()
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let mut o = QoveryOptions::new(
        running.url.clone(),
        running.organization_id.clone(),
        Token::new("t"),
    );
    o.name = "sandbox";
    o.requests_per_second = 10_000.0;
    o.backoff = Duration::from_millis(5);
    let platform = Arc::new(Qovery::new(o, None).unwrap());
    (sandbox, running, platform)
}

pub(crate) async fn world(rules_yaml: &str, start: &str, environments: u32) -> World {
    world_with_resync(rules_yaml, start, environments, Duration::from_secs(60)).await
}

/// [`world`] with a daemon that resyncs every `resync`.
pub(crate) async fn world_with_resync(
    rules_yaml: &str,
    start: &str,
    environments: u32,
    resync: Duration,
) -> World {
    world_with(
        rules_yaml,
        start,
        environments,
        Ledger::in_memory().unwrap(),
        resync,
    )
    .await
}

/// [`world`] with a given ledger (a file, say) and a daemon that resyncs every `resync`.
pub(crate) async fn world_with(
    rules_yaml: &str,
    start: &str,
    environments: u32,
    ledger: Ledger,
    resync: Duration,
) -> World {
    let clock = ManualClock::new(at(start));
    let (sandbox, running, platform) = sandbox_platform(&clock, environments).await;
    let rules = Arc::new(parse_rules("test.yaml", rules_yaml, at(start)).unwrap());
    let daemon = Arc::new(Daemon::new(
        platform,
        Arc::new(ledger),
        Arc::new(Metrics::new("test", false)),
        Arc::new(clock.clone()),
        rules,
        DaemonOptions {
            resync,
            max_pass_age: Duration::from_secs(180),
            max_in_flight: 4,
        },
    ));
    World {
        clock,
        sandbox,
        _running: running,
        daemon,
    }
}

/// The periodic resync of the simulations: long, so a week takes few passes; every
/// boundary is still hit exactly, through the wakeups.
const SIMULATED_RESYNC: TimeDelta = TimeDelta::minutes(20);

impl World {
    /// Runs passes like the daemon does (at each wakeup, at most a resync apart) until
    /// `until`, returning every platform action taken with its instant.
    pub(crate) async fn run_until(
        &self,
        until: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, String, Action)> {
        let mut log = Vec::new();
        loop {
            let report = self.daemon.pass().await.expect("pass");
            for (d, r) in report.acted() {
                if matches!(r, ActResult::Done(_)) && d.action != Action::Warn {
                    log.push((report.at, d.environment.to_string(), d.action));
                }
            }
            let now = self.clock.now();
            let next = report
                .next_wakeup
                .filter(|t| *t > now)
                .unwrap_or(now + SIMULATED_RESYNC)
                .min(now + SIMULATED_RESYNC);
            if next > until {
                return log;
            }
            self.clock.set(next);
        }
    }
}

/// The actions of a log as "Fri 19:00:00 stop" in `tz`, one line per instant and action.
fn local_actions(log: &[(DateTime<Utc>, String, Action)], tz: chrono_tz::Tz) -> Vec<String> {
    let mut lines: Vec<String> = log
        .iter()
        .map(|(t, _, a)| format!("{} {a}", t.with_timezone(&tz).format("%a %H:%M:%S")))
        .collect();
    lines.dedup();
    lines
}

const PREVIEWS_PARIS: &str = "timezone: Europe/Paris\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n    wake: all\n";

#[tokio::test]
async fn a_week_across_the_paris_autumn_change_stops_and_starts_at_each_boundary_exactly() {
    let w = world(PREVIEWS_PARIS, "2026-10-23T12:00:00+02:00", 6).await;
    let log = w.run_until(at("2026-10-28T12:00:00+01:00")).await;
    let instants = local_actions(&log, chrono_tz::Europe::Paris);
    assert_eq!(
        instants,
        [
            // wake: all starts what the fleet had stopped, on the first pass.
            "Fri 12:00:00 start",
            "Fri 19:00:00 stop",
            "Mon 08:00:00 start",
            "Mon 19:00:00 stop",
            "Tue 08:00:00 start",
            "Tue 19:00:00 stop",
            "Wed 08:00:00 start"
        ],
        "{log:#?}"
    );
    // No environment was stopped or started twice for one boundary.
    let counts = w.sandbox.requests();
    for (id, c) in &counts.stops {
        // Three stop boundaries in the range (Fri, Mon, Tue 19:00): at most one call each.
        assert!(c.calls <= 3, "{id} stopped {} times", c.calls);
    }
}

#[tokio::test]
async fn a_new_york_week_across_its_change_keeps_local_nine_to_five() {
    let rules = "timezone: America/New_York\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 09:00-17:00\n    wake: all\n";
    let w = world(rules, "2026-10-30T12:00:00-04:00", 4).await;
    let log = w.run_until(at("2026-11-03T12:00:00-05:00")).await;
    let instants = local_actions(&log, chrono_tz::America::New_York);
    assert_eq!(
        instants,
        [
            "Fri 17:00:00 stop",
            "Mon 09:00:00 start",
            "Mon 17:00:00 stop",
            "Tue 09:00:00 start"
        ]
    );
}

#[tokio::test]
async fn a_persons_start_at_night_is_left_running_until_the_next_stop() {
    let w = world(PREVIEWS_PARIS, "2026-11-27T18:30:00+01:00", 6).await;
    w.run_until(at("2026-11-27T19:30:00+01:00")).await;
    let stopped = w
        .sandbox
        .environments()
        .into_iter()
        .find(|e| e.state == "STOPPED" && e.mode != crate::platform::Mode::Production)
        .unwrap();
    w.clock.set(at("2026-11-27T21:00:00+01:00"));
    assert!(w.sandbox.set_state(&stopped.id, "DEPLOYED"));
    let log = w.run_until(at("2026-11-30T07:00:00+01:00")).await;
    assert!(
        log.iter().all(|(_, name, _)| *name != stopped.name),
        "curfew fought the person: {log:?}"
    );
    let env = w
        .sandbox
        .environments()
        .into_iter()
        .find(|e| e.id == stopped.id)
        .unwrap();
    assert_eq!(env.state, "DEPLOYED");
}

#[tokio::test]
async fn dry_run_decides_and_counts_but_calls_nothing() {
    let rules = format!("safety:\n  dry_run: true\n{PREVIEWS_PARIS}");
    let w = world(&rules, "2026-11-27T18:30:00+01:00", 6).await;
    let before = w.sandbox.environments();
    w.run_until(at("2026-11-27T20:00:00+01:00")).await;
    let counts = w.sandbox.requests();
    assert!(counts.stops.values().all(|c| c.calls == 0), "{counts:?}");
    assert_eq!(
        before.iter().map(|e| &e.state).collect::<Vec<_>>(),
        w.sandbox
            .environments()
            .iter()
            .map(|e| &e.state)
            .collect::<Vec<_>>()
    );
    assert!(w.daemon.metrics.encode().contains("result=\"dry_run\""));
}

#[tokio::test]
async fn the_stop_cap_holds_and_the_rest_follow_on_later_passes() {
    let rules = format!("safety:\n  max_stops_per_pass: 2\n{PREVIEWS_PARIS}");
    let w = world(&rules, "2026-11-27T19:00:00+01:00", 10).await;
    let report = w.daemon.pass().await.unwrap();
    let done = report
        .acted()
        .filter(|(_, r)| matches!(r, ActResult::Done(_)))
        .count();
    let capped = report
        .acted()
        .filter(|(_, r)| matches!(r, ActResult::SkippedCap(_)))
        .count();
    assert_eq!(done, 2);
    assert!(capped > 0);
    assert!(w.daemon.metrics.encode().contains("curfew_caps_hit_total"));
}

#[tokio::test]
async fn an_idle_environment_is_stopped() {
    let rules = "timezone: UTC\nrules:\n  - name: idle\n    match: { mode: preview }\n    stop_when_idle: 1h\n";
    let w = world(rules, "2026-11-27T12:00:00Z", 8).await;
    // Everything in the fleet was last deployed more than an hour before "now" or will be.
    let log = w.run_until(at("2026-11-27T14:00:00Z")).await;
    assert!(log.iter().any(|(_, _, a)| *a == Action::Stop), "{log:?}");
    let ledger = &w.daemon.ledger;
    assert!(ledger.count_actions(Action::Stop).unwrap() >= 1);
}

#[tokio::test]
async fn a_delete_waits_for_its_warning_and_a_second_pass() {
    let rules = "timezone: UTC\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 1h\n    warn_before_delete: 2h\n";
    let w = world(rules, "2026-11-27T12:00:00Z", 8).await;
    let first = w.daemon.pass().await.unwrap();
    assert!(
        first.acted().any(|(d, _)| d.action == Action::Warn),
        "old previews are warned about first"
    );
    assert!(first.acted().all(|(d, _)| d.action != Action::Delete));
    w.clock.advance(TimeDelta::minutes(119));
    let early = w.daemon.pass().await.unwrap();
    assert!(
        early.acted().all(|(d, _)| d.action != Action::Delete),
        "not before the warning period ends"
    );
    w.clock.advance(TimeDelta::minutes(1));
    let due = w.daemon.pass().await.unwrap();
    assert!(
        due.acted()
            .any(|(d, r)| d.action == Action::Delete && *r == ActResult::Confirming)
    );
    assert!(w.sandbox.requests().deletes.values().all(|c| c.calls == 0));
    w.clock.advance(TimeDelta::minutes(1));
    let confirmed = w.daemon.pass().await.unwrap();
    assert!(
        confirmed
            .acted()
            .any(|(d, r)| d.action == Action::Delete && matches!(r, ActResult::Done(_)))
    );
}

#[tokio::test]
async fn passes_survive_platform_faults_and_do_nothing_wrong() {
    let w = world(PREVIEWS_PARIS, "2026-11-27T19:00:00+01:00", 10).await;
    w.sandbox.set_faults(Faults {
        error_rate: 0.3,
        throttle_rate: 0.0,
        timeout_rate: 0.0,
        malformed_rate: 0.2,
    });
    for _ in 0..5 {
        let _ = w.daemon.pass().await;
        w.clock.advance(TimeDelta::minutes(1));
    }
    w.sandbox.set_faults(Faults::NONE);
    w.clock.advance(TimeDelta::minutes(5));
    w.daemon.pass().await.unwrap();
    for env in w.sandbox.environments() {
        if env.mode == crate::platform::Mode::Production {
            assert_eq!(
                w.sandbox
                    .requests()
                    .stops
                    .get(&env.id)
                    .map_or(0, |c| c.calls),
                0,
                "production touched"
            );
        }
    }
}

#[tokio::test]
async fn a_broken_rule_file_is_rejected_and_the_last_good_rules_stay_in_force() {
    let w = world(PREVIEWS_PARIS, "2026-11-27T12:00:00+01:00", 4).await;
    let dir = std::env::temp_dir().join(format!("curfew-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.yaml");
    let source = crate::config::Source::new(&path, &std::collections::HashMap::new());
    std::fs::write(
        &path,
        PREVIEWS_PARIS.replace("name: office", "name: office-v2"),
    )
    .unwrap();
    w.daemon.reload(&source).await.unwrap();
    assert_eq!(w.daemon.rules().rules[0].name.as_ref(), "office-v2");
    std::fs::write(
        &path,
        "rules:\n  - name: broken\n    run: Mno-Fri 08:00-19:00\n",
    )
    .unwrap();
    let err = w.daemon.reload(&source).await.unwrap_err();
    assert!(err.to_string().contains("unknown weekday \"Mno\""), "{err}");
    assert_eq!(
        w.daemon.rules().rules[0].name.as_ref(),
        "office-v2",
        "the last good rules stay"
    );
    let metrics = w.daemon.metrics.encode();
    assert!(
        metrics.contains("curfew_config_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("curfew_config_reloads_total{result=\"ok\"} 1"));
    // Passes go on under the old rules.
    let report = w.daemon.pass().await.unwrap();
    assert!(
        report
            .decisions
            .iter()
            .any(|d| d.rule.as_deref() == Some("office-v2"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The hostile reloads: a FIFO put in place of the rule file froze the daemon, a
/// link to /dev/zero got it killed, and a huge file had no limit. Each is refused at once,
/// and the last good rules stay in force.
#[tokio::test]
async fn a_rule_file_that_is_no_regular_file_or_too_large_is_refused_at_once() {
    let w = world(PREVIEWS_PARIS, "2026-11-27T12:00:00+01:00", 4).await;
    let dir = std::env::temp_dir().join(format!("curfew-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.yaml");
    crate::files::mkfifo(&fifo);
    let zero = dir.join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let huge = dir.join("huge.yaml");
    let mut text = PREVIEWS_PARIS.replace("name: office", "name: office-huge");
    text.push_str(&format!("# {}\n", "x".repeat(5 << 20)));
    std::fs::write(&huge, text).unwrap();
    let cases = [
        (&fifo, "not a regular file but a FIFO (named pipe)"),
        (&zero, "not a regular file but a character device"),
        (
            &huge,
            "larger than 4 MiB: curfew reads at most that much; raise the limit with --max-rule-file-size",
        ),
    ];
    for (path, want) in cases {
        let source = crate::config::Source::new(path, &std::collections::HashMap::new());
        // A bound against hanging for ever (the FIFO did), not a speed goal.
        let reload = tokio::time::timeout(Duration::from_secs(60), w.daemon.reload(&source));
        let err = reload.await.expect("the reload returns").unwrap_err();
        assert!(err.to_string().contains(want), "{}: {err}", path.display());
        assert_eq!(w.daemon.rules().rules[0].name.as_ref(), "office");
    }
    let metrics = w.daemon.metrics.encode();
    assert!(
        metrics.contains("curfew_config_reloads_total{result=\"error\"} 3"),
        "{metrics}"
    );
    assert!(w.daemon.pass().await.is_ok(), "passes go on");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The probe: a ledger deleted under a running daemon went unnoticed, and passes
/// kept acting. The 19:00 pass refuses to act (not one call to the platform), the log and
/// `/readyz` say why.
#[tokio::test]
async fn a_ledger_deleted_under_the_daemon_stops_its_actions_and_readyz_says_why() {
    let dir = std::env::temp_dir().join(format!("curfew-gone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("curfew.db");
    let ledger = Ledger::open(&path).unwrap();
    let w = world_with(
        PREVIEWS_PARIS,
        "2026-11-27T18:00:00+01:00",
        6,
        ledger,
        Duration::from_secs(60),
    )
    .await;
    w.daemon.pass().await.unwrap();
    assert!(w.daemon.health().readiness(w.clock.now()).ready);
    std::fs::remove_file(&path).unwrap();
    w.clock.set(at("2026-11-27T19:00:00+01:00"));
    let stops_before = w.sandbox.requests().stops.clone();
    let err = w.daemon.pass().await.unwrap_err().to_string();
    assert!(
        err.contains("was deleted while curfew was running"),
        "{err}"
    );
    assert_eq!(
        w.sandbox.requests().stops,
        stops_before,
        "nothing was stopped"
    );
    let readiness = w.daemon.health().readiness(w.clock.now());
    assert!(!readiness.ready);
    assert!(
        readiness.failing.iter().any(|f| f.starts_with(&format!(
            "the ledger cannot be used: ledger: {} was deleted while curfew was running",
            path.display()
        ))),
        "{readiness:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/readyz` did not name a read-only ledger as the cause: it does, from the first pass
/// that could not write.
#[tokio::test]
async fn a_ledger_that_turned_read_only_is_named_in_readyz() {
    let w = world(PREVIEWS_PARIS, "2026-11-27T18:00:00+01:00", 6).await;
    w.daemon.pass().await.unwrap();
    w.daemon.ledger.refuse_writes();
    w.clock.set(at("2026-11-27T19:00:00+01:00"));
    let stops_before = w.sandbox.requests().stops.clone();
    assert!(w.daemon.pass().await.is_err());
    assert_eq!(
        w.sandbox.requests().stops,
        stops_before,
        "nothing was stopped"
    );
    let readiness = w.daemon.health().readiness(w.clock.now());
    assert!(
        readiness
            .failing
            .iter()
            .any(|f| f.starts_with("the ledger cannot be used: ledger: the ledger is read-only")),
        "{readiness:?}"
    );
}

/// The README's rule over a Friday evening: previews whose delete is coming (warned, or
/// held back by the cap) are stopped at 19:00:00 with the rest, and still deleted no
/// sooner than their warning allows.
const README_PREVIEWS: &str = "timezone: Europe/Paris\nrules:\n  - name: previews\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    stop_when_idle: 3h\n    delete_after: 7d\n    warn_before_delete: 12h\n";

/// Every preview deployed now (the team's afternoon), so none is idle before the evening.
fn deploy_every_preview(w: &World) -> Vec<crate::sandbox::SandboxEnvironment> {
    let previews: Vec<_> = w
        .sandbox
        .environments()
        .into_iter()
        .filter(|e| e.mode == crate::platform::Mode::Preview)
        .collect();
    for e in &previews {
        assert!(w.sandbox.set_state(&e.id, "DEPLOYED"));
    }
    previews
}

/// The instants of `name`'s actions in a log.
fn actions_of(log: &[(DateTime<Utc>, String, Action)], name: &str) -> Vec<(DateTime<Utc>, Action)> {
    log.iter()
        .filter(|(_, n, _)| n == name)
        .map(|(t, _, a)| (*t, *a))
        .collect()
}

#[tokio::test]
async fn warned_previews_are_stopped_at_19_00_and_deleted_after_their_warning() {
    let start = "2026-11-27T17:30:00+01:00";
    let w = world(README_PREVIEWS, start, 30).await;
    let previews = deploy_every_preview(&w);
    let first = w.daemon.pass().await.unwrap();
    let warned: Vec<String> = first
        .acted()
        .filter(|(d, r)| d.action == Action::Warn && matches!(r, ActResult::Done(_)))
        .map(|(d, _)| d.environment.to_string())
        .collect();
    assert!(
        warned.len() >= 2,
        "the fleet has week-old previews: {warned:?}"
    );
    assert!(
        first.acted().all(|(d, _)| d.action != Action::Stop),
        "inside the window, deployed now: nothing to stop yet"
    );
    let log = w.run_until(at("2026-11-28T09:00:00+01:00")).await;
    let friday_19 = at("2026-11-27T19:00:00+01:00");
    let warning_ends = at(start) + TimeDelta::hours(12);
    for p in &previews {
        let mine = actions_of(&log, &p.name);
        assert_eq!(
            mine.first(),
            Some(&(friday_19, Action::Stop)),
            "{}: {mine:?}",
            p.name
        );
        if warned.contains(&p.name) {
            let deleted = mine.iter().find(|(_, a)| *a == Action::Delete);
            assert!(
                deleted.is_some_and(|(t, _)| *t >= warning_ends),
                "{} deleted after its warning: {mine:?}",
                p.name
            );
        }
    }
}

#[tokio::test]
async fn previews_whose_delete_the_cap_holds_back_are_stopped_at_19_00() {
    let rules = "safety:\n  max_deletes_per_hour: 1\ntimezone: Europe/Paris\nrules:\n  - name: previews\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    delete_after: 7d\n";
    let start = "2026-11-27T18:30:00+01:00";
    let w = world(rules, start, 30).await;
    let previews = deploy_every_preview(&w);
    let week = TimeDelta::days(7);
    let old: Vec<&str> = previews
        .iter()
        .filter(|p| p.created_at + week <= at(start))
        .map(|p| p.name.as_str())
        .collect();
    assert!(old.len() >= 3, "several deletes due at once: {old:?}");
    // One delete an hour (on the passes' 20-minute grid, one every 80 minutes).
    let log = w
        .run_until(at("2026-11-27T19:00:00+01:00") + TimeDelta::hours(2 * old.len() as i64))
        .await;
    let friday_19 = at("2026-11-27T19:00:00+01:00");
    let mut deleted_at: Vec<DateTime<Utc>> = Vec::new();
    for name in &old {
        let mine = actions_of(&log, name);
        match mine.as_slice() {
            // The one delete the cap let through before 19:00 (its second pass).
            [(t, Action::Delete)] if *t < friday_19 => deleted_at.push(*t),
            // Held back: stopped at the boundary, deleted later, one an hour.
            [(t, Action::Stop), (d, Action::Delete)] if *t == friday_19 => deleted_at.push(*d),
            other => panic!("{name}: {other:?}"),
        }
    }
    deleted_at.sort();
    assert!(
        deleted_at[1] > friday_19,
        "the cap let one through: {deleted_at:?}"
    );
    for pair in deleted_at.windows(2) {
        assert!(pair[1] - pair[0] >= TimeDelta::hours(1), "{deleted_at:?}");
    }
}

/// Previews in office hours (woken all, idle after 2 h 30, deleted after 10 days with a 12-hour
/// warning), development stopped at night and at weekends (`stop:`, woken all, deleted when
/// stopped for 2 days and 10 minutes), staging stopped after a day idle; caps low enough to bind.
const FORTNIGHT: &str = "safety:\n  max_stops_per_pass: 4\n  max_deletes_per_hour: 2\ntimezone: Europe/Paris\nrules:\n  - name: previews\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    wake: all\n    stop_when_idle: 2h30m\n    delete_after: 10d\n    warn_before_delete: 12h\n  - name: development\n    match: { mode: development }\n    stop: Mon-Fri 20:00-07:00, Sat-Sun 00:00-24:00\n    wake: all\n    delete_when_stopped_for: 2d10m\n    allow_delete: [development]\n  - name: staging\n    match: { mode: staging }\n    stop_when_idle: 1d\n";

#[tokio::test]
async fn the_simulation_takes_the_daemons_actions_at_the_daemons_instants() {
    let resync = TimeDelta::minutes(20);
    let start = "2026-10-23T12:00:00+02:00";
    let w = world_with_resync(FORTNIGHT, start, 30, resync.to_std().unwrap()).await;
    let until = at(start) + TimeDelta::days(14);
    // What the simulation makes of the fleet as the daemon first sees it.
    let snapshot = w.daemon.platform.list().await.unwrap();
    let mut simulated = Vec::new();
    let projection = crate::simulate::simulate_each(
        &w.daemon.rules(),
        snapshot,
        w.daemon.ledger.view().unwrap(),
        &crate::simulate::Options::new(at(start), 14, resync),
        |a| simulated.push((a.at, a.environment.to_string(), a.action)),
    );
    // What the daemon does, pass by pass, as its loop runs them (warnings included).
    let mut done = Vec::new();
    loop {
        let report = w.daemon.pass().await.expect("pass");
        for (d, r) in report.acted() {
            if matches!(r, ActResult::Done(_)) {
                done.push((report.at, d.environment.to_string(), d.action));
            }
        }
        let now = w.clock.now();
        let next = report
            .next_wakeup
            .filter(|t| *t > now)
            .map_or(now + resync, |t| t.min(now + resync));
        if next >= until {
            break;
        }
        w.clock.set(next);
    }
    let count = |log: &[(DateTime<Utc>, String, Action)], action| {
        log.iter().filter(|(_, _, a)| *a == action).count()
    };
    for action in [Action::Stop, Action::Start, Action::Delete, Action::Warn] {
        assert!(
            count(&done, action) > 0,
            "the fortnight has a {action}: {done:#?}"
        );
    }
    assert!(projection.busiest.passes_capped > 0, "the caps bind");
    let sorted = |log: &mut Vec<(DateTime<Utc>, String, Action)>| {
        log.sort_by(|a, b| (a.0, &a.1, a.2.as_str()).cmp(&(b.0, &b.1, b.2.as_str())));
    };
    sorted(&mut done);
    sorted(&mut simulated);
    assert_eq!(simulated, done);
}

#[tokio::test]
async fn the_daemon_wakes_for_what_its_own_actions_bring_due_before_the_next_resync() {
    // Started at 08:00 by wake: all, idle for 10 minutes at 08:10: sooner than the 20-minute
    // resync, so only the pass's own actions say when to look again.
    let rules = "timezone: UTC\nrules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    wake: all\n    stop_when_idle: 10m\n";
    let w = world_with_resync(rules, "2026-11-30T08:00:00Z", 20, Duration::from_secs(1200)).await;
    let first = w.daemon.pass().await.unwrap();
    let started: Vec<String> = first
        .acted()
        .filter(|(d, r)| d.action == Action::Start && matches!(r, ActResult::Done(_)))
        .map(|(d, _)| d.environment.to_string())
        .collect();
    assert!(!started.is_empty(), "the fleet has stopped previews");
    assert_eq!(first.next_wakeup, Some(at("2026-11-30T08:10:00Z")));
    w.clock.set(at("2026-11-30T08:10:00Z"));
    let idle = w.daemon.pass().await.unwrap();
    let stopped: Vec<String> = idle
        .acted()
        .filter(|(d, r)| d.action == Action::Stop && matches!(r, ActResult::Done(_)))
        .map(|(d, _)| d.environment.to_string())
        .collect();
    for name in &started {
        assert!(
            stopped.contains(name),
            "{name} stopped at 08:10: {stopped:?}"
        );
    }
}

#[tokio::test]
async fn a_delete_s_second_pass_comes_one_resync_after_its_first_whatever_passes_between() {
    let rules = "timezone: UTC\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 1h\n";
    let w = world_with_resync(rules, "2026-11-27T12:00:00Z", 8, Duration::from_secs(1200)).await;
    let first = w.daemon.pass().await.unwrap();
    assert!(
        first
            .acted()
            .any(|(d, r)| d.action == Action::Delete && *r == ActResult::Confirming),
        "old previews are due"
    );
    // A pass in between (an operator's change nudges one): the second pass is still due
    // one resync after the first, not one resync after this one.
    w.clock.advance(TimeDelta::minutes(5));
    let between = w.daemon.pass().await.unwrap();
    assert_eq!(between.next_wakeup, Some(at("2026-11-27T12:20:00Z")));
    w.clock.set(at("2026-11-27T12:20:00Z"));
    let second = w.daemon.pass().await.unwrap();
    assert!(
        second
            .acted()
            .any(|(d, r)| d.action == Action::Delete && matches!(r, ActResult::Done(_)))
    );
}

/// The value of `curfew_projected_savings` for `rule` and `horizon` (EUR).
fn projected(daemon: &Daemon, rule: &str, horizon: &str) -> Option<f64> {
    let prefix = format!(
        "curfew_projected_savings{{currency=\"EUR\",horizon=\"{horizon}\",rule=\"{rule}\"}} "
    );
    daemon
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
}

#[tokio::test]
async fn the_daemon_projects_in_dry_run_too_and_again_after_a_reload_or_a_day() {
    let acting = format!("currency: EUR\ndefaults:\n  hourly_cost: 0.5\n{PREVIEWS_PARIS}");
    let dry = format!("safety:\n  dry_run: true\n{acting}");
    let w = world(&dry, "2026-11-27T12:00:00+01:00", 6).await;
    assert!(w.daemon.projection().is_none());
    assert!(w.daemon.projection_due(w.clock.now()));
    let p = w.daemon.project().await.unwrap();
    assert!(!w.daemon.projection_due(w.clock.now()));
    assert_eq!(w.daemon.projection(), Some(p.clone()));
    // Dry-run or not, the projection is what the rules would do.
    let rules = parse_rules("test.yaml", &acting, w.clock.now()).unwrap();
    let mut options = crate::simulate::Options::new(w.clock.now(), 30, TimeDelta::seconds(60));
    options.horizons = vec![7, 30];
    options.with_ledger = true;
    let direct = crate::simulate::simulate(
        &rules,
        w.daemon.platform.list().await.unwrap(),
        w.daemon.ledger.view().unwrap(),
        &options,
    );
    assert_eq!(p.total, direct.total);
    assert!(p.total.saved > 0.0, "{:?}", p.total);
    // Exported by rule and horizon.
    for (h, horizon) in p.horizons.iter().zip(["7d", "30d"]) {
        assert_eq!(projected(&w.daemon, "office", horizon), Some(h.rules[0].1));
    }
    assert!(projected(&w.daemon, "office", "7d") < projected(&w.daemon, "office", "30d"));
    // A reload makes it due again, and the next one replaces the old rule's series.
    w.daemon.set_rules(Arc::new(
        parse_rules(
            "test.yaml",
            &dry.replace("name: office", "name: office-v2"),
            w.clock.now(),
        )
        .unwrap(),
    ));
    assert!(w.daemon.projection_due(w.clock.now()));
    w.daemon.project().await.unwrap();
    assert!(projected(&w.daemon, "office-v2", "30d").is_some());
    assert_eq!(projected(&w.daemon, "office", "30d"), None);
    // And a day later.
    w.clock.advance(TimeDelta::hours(23));
    assert!(!w.daemon.projection_due(w.clock.now()));
    w.clock.advance(TimeDelta::hours(1));
    assert!(w.daemon.projection_due(w.clock.now()));
}

/// A restarted daemon's savings counters continue from the ledger before its first pass
/// (tests/restart.rs once scraped a daemon between its start and its first pass and saw
/// the counters gone).
#[tokio::test]
async fn a_restarted_daemon_counts_its_savings_from_the_ledger_before_its_first_pass() {
    let start = at("2026-11-27T18:00:00Z");
    let clock = ManualClock::new(start);
    let (_sandbox, _running, platform) = sandbox_platform(&clock, 4).await;
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    ledger
        .open_stop_for(
            "env-1",
            "office",
            crate::policy::StopCause::Schedule,
            "night",
            Some(2.0),
            start,
        )
        .unwrap();
    ledger
        .accrue(start + TimeDelta::hours(3), "EUR", &|_| true)
        .unwrap();
    let metrics = Arc::new(Metrics::new("test", false));
    let rules = Arc::new(parse_rules(
        "test.yaml",
        "rules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n",
        start,
    ).unwrap());
    let daemon = Daemon::new(
        platform,
        ledger,
        metrics.clone(),
        Arc::new(clock.clone()),
        rules,
        DaemonOptions {
            resync: Duration::from_secs(60),
            max_pass_age: Duration::from_secs(180),
            max_in_flight: 4,
        },
    );
    daemon.recover().await.unwrap();
    let text = metrics.encode();
    assert!(
        text.contains("curfew_saved_cost_total{currency=\"EUR\",rule=\"office\"} 6"),
        "{text}"
    );
    assert!(
        text.contains("curfew_stopped_seconds_total{rule=\"office\"} 10800"),
        "{text}"
    );
}

/// The sandbox's platform, with the notes it is given written down (Qovery has no place
/// for them; Kubernetes posts them as Events).
struct Noted {
    inner: Arc<Qovery>,
    notes: std::sync::Mutex<Vec<(String, String, String)>>,
    /// The stops asked for, with what their rule said of GitOps owners.
    stops: std::sync::Mutex<Vec<(String, crate::platform::GitOps)>>,
}

#[async_trait::async_trait]
impl Platform for Noted {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    async fn list(&self) -> Result<Snapshot, PlatformError> {
        self.inner.list().await
    }
    async fn stop(&self, id: &str) -> Result<crate::platform::Outcome, PlatformError> {
        self.inner.stop(id).await
    }
    async fn stop_under(
        &self,
        id: &str,
        gitops: crate::platform::GitOps,
    ) -> Result<crate::platform::Outcome, PlatformError> {
        self.stops.lock().unwrap().push((id.into(), gitops));
        self.inner.stop(id).await
    }
    async fn start(&self, id: &str) -> Result<crate::platform::Outcome, PlatformError> {
        self.inner.start(id).await
    }
    async fn delete(&self, id: &str) -> Result<crate::platform::Outcome, PlatformError> {
        self.inner.delete(id).await
    }
    async fn note(&self, id: &str, reason: &str, message: &str) {
        let mut notes = self.notes.lock().unwrap();
        notes.push((id.into(), reason.into(), message.into()));
    }
}

struct Labelled;

impl ActionLinks for Labelled {
    fn links(
        &self,
        id: &str,
        _mode: crate::platform::Mode,
        notice: crate::platform::NoticeKind,
        target: &str,
        _now: DateTime<Utc>,
    ) -> Vec<crate::platform::ActionLink> {
        vec![crate::platform::ActionLink {
            label: "delay the delete by 2 days".into(),
            url: format!("https://c.test/{id}/{notice:?}/{target}"),
        }]
    }
}

#[tokio::test]
async fn a_stop_is_asked_for_with_what_its_rule_says_of_gitops_owners() {
    use crate::platform::GitOps;
    for (written, gitops) in [
        ("", GitOps::Pause),
        ("    gitops: off\n", GitOps::Off),
        ("    gitops: self-heal-only\n", GitOps::SelfHealOnly),
    ] {
        let clock = ManualClock::new(at("2026-11-25T20:00:00Z"));
        let (_sandbox, _running, qovery) = sandbox_platform(&clock, 4).await;
        let platform = Arc::new(Noted {
            inner: qovery,
            notes: std::sync::Mutex::default(),
            stops: std::sync::Mutex::default(),
        });
        let rules = format!(
            "timezone: UTC\nrules:\n  - name: office\n    match: {{ mode: preview }}\n    run: Mon-Fri 08:00-19:00\n{written}"
        );
        let daemon = Daemon::new(
            platform.clone(),
            Arc::new(Ledger::in_memory().unwrap()),
            Arc::new(Metrics::new("test", false)),
            Arc::new(clock.clone()),
            Arc::new(parse_rules("t.yaml", &rules, clock.now()).unwrap()),
            DaemonOptions {
                resync: Duration::from_secs(60),
                max_pass_age: Duration::from_secs(180),
                max_in_flight: 4,
            },
        );
        daemon.pass().await.unwrap();
        let stops = platform.stops.lock().unwrap().clone();
        assert!(!stops.is_empty(), "{rules}");
        assert!(stops.iter().all(|(_, g)| *g == gitops), "{stops:?}");
    }
}

#[tokio::test]
async fn the_platform_s_delete_warning_carries_the_links() {
    let clock = ManualClock::new(at("2026-11-27T12:00:00Z"));
    let (_sandbox, _running, qovery) = sandbox_platform(&clock, 8).await;
    let platform = Arc::new(Noted {
        inner: qovery,
        notes: std::sync::Mutex::default(),
        stops: std::sync::Mutex::default(),
    });
    let rules = "timezone: UTC\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 1h\n    warn_before_delete: 2h\n";
    let daemon = Daemon::new(
        platform.clone(),
        Arc::new(Ledger::in_memory().unwrap()),
        Arc::new(Metrics::new("test", false)),
        Arc::new(clock.clone()),
        Arc::new(parse_rules("t.yaml", rules, clock.now()).unwrap()),
        DaemonOptions {
            resync: Duration::from_secs(60),
            max_pass_age: Duration::from_secs(180),
            max_in_flight: 4,
        },
    )
    .with_links(Arc::new(Labelled));
    daemon.pass().await.unwrap();
    let notes = platform.notes.lock().unwrap().clone();
    assert!(!notes.is_empty());
    for (id, reason, message) in notes {
        assert_eq!(reason, "DeleteWarning");
        assert!(
            message.ends_with(&format!(
                "— delay the delete by 2 days: https://c.test/{id}/DeleteWarning/kubernetes event"
            )),
            "{message}"
        );
    }
}

#[tokio::test]
async fn the_last_pass_is_kept_for_the_page_and_only_for_it() {
    let w = world(
        "timezone: UTC\nrules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n",
        "2026-11-25T20:00:00Z",
        6,
    )
    .await;
    let report = w.daemon.pass().await.unwrap();
    let kept = w.daemon.last_pass().unwrap();
    assert!(
        Arc::ptr_eq(&kept.decisions, &report.decisions),
        "shared, not copied"
    );
    assert_eq!(kept.snapshot.environments.len(), 6);
    assert_eq!(w.daemon.recent_passes().len(), 1);

    let clock = ManualClock::new(at("2026-11-25T20:00:00Z"));
    let (_sandbox, _running, platform) = sandbox_platform(&clock, 6).await;
    let off = Daemon::new(
        platform,
        Arc::new(Ledger::in_memory().unwrap()),
        Arc::new(Metrics::new("test", false)),
        Arc::new(clock.clone()),
        w.daemon.rules(),
        w.daemon.options.clone(),
    )
    .without_page();
    let report = off.pass().await.unwrap();
    assert!(off.last_pass().is_none(), "nothing kept for nobody");
    assert_eq!(report.decisions.len(), 6);
    assert_eq!(
        off.recent_passes().len(),
        1,
        "the passes' health is still kept"
    );
}

#[tokio::test]
async fn a_pass_shares_the_names_of_the_kept_pass_rather_than_holding_a_second_copy() {
    let w = world(
        "timezone: UTC\nrules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n",
        "2026-11-25T20:00:00Z",
        6,
    )
    .await;
    let first = w.daemon.pass().await.unwrap();
    w.clock.advance(TimeDelta::minutes(1));
    let second = w.daemon.pass().await.unwrap();
    assert_eq!(first.decisions.len(), second.decisions.len());
    for (a, b) in first.decisions.iter().zip(second.decisions.iter()) {
        assert_eq!(a.environment_id, b.environment_id);
        assert!(
            Arc::ptr_eq(&a.environment, &b.environment),
            "{}",
            a.environment
        );
    }
    let kept = w.daemon.last_pass().unwrap();
    assert!(Arc::ptr_eq(&kept.decisions, &second.decisions));
}

/// The loop's projection starts from what the pass handed over (its own listing as its
/// actions left it, and the ledger's view after them): no second listing, and the same
/// figures as `curfew simulate` on a fresh listing and the ledger.
#[tokio::test]
async fn the_projection_after_a_pass_starts_from_its_listing_and_equals_a_fresh_simulation() {
    let rules = format!("currency: EUR\ndefaults:\n  hourly_cost: 0.5\n{PREVIEWS_PARIS}");
    // 19:00 on a Friday: the pass stops the running previews.
    let w = world(&rules, "2026-11-27T19:00:00+01:00", 6).await;
    let report = w.daemon.pass().await.unwrap();
    assert!(
        report
            .acted()
            .any(|(s, r)| s.action == Action::Stop && matches!(r, ActResult::Done(_)))
    );
    let before = w.sandbox.requests().total;
    let projecting = w.daemon.project_handed().expect("a projection is due");
    assert!(projecting.make_way(true).await, "it finished");
    assert_eq!(w.sandbox.requests().total, before, "no platform call");
    let p = w.daemon.projection().expect("projected");
    assert!(!w.daemon.projection_due(w.clock.now()));
    let mut options = crate::simulate::Options::new(w.clock.now(), 30, TimeDelta::seconds(60));
    options.horizons = vec![7, 30];
    options.with_ledger = true;
    let direct = crate::simulate::simulate(
        &w.daemon.rules(),
        w.daemon.platform.list().await.unwrap(),
        w.daemon.ledger.view().unwrap(),
        &options,
    );
    assert_eq!(p.total.saved, direct.total.saved);
    assert_eq!(p.horizons, direct.horizons);
    assert_eq!(
        projected(&w.daemon, "office", "30d"),
        Some(direct.horizons[1].total)
    );
    // Handed over once: nothing more to start until the next pass.
    assert!(w.daemon.project_handed().is_none());
}

/// A pass does not run beside a projection: the loop gives the projection up before its
/// next pass (it is due again, and made after that pass).
#[tokio::test]
async fn a_projection_makes_way_for_the_next_pass_and_is_made_after_it() {
    let w = world(PREVIEWS_PARIS, "2026-11-27T12:00:00+01:00", 6).await;
    w.daemon.pass().await.unwrap();
    let projecting = w.daemon.project_handed().expect("a projection is due");
    assert!(!projecting.make_way(false).await, "given up");
    assert!(w.daemon.projection().is_none());
    assert!(w.daemon.projection_due(w.clock.now()));
    w.clock.advance(TimeDelta::minutes(1));
    w.daemon.pass().await.unwrap();
    let projecting = w.daemon.project_handed().expect("due again");
    assert!(projecting.make_way(true).await);
    assert!(w.daemon.projection().is_some());
}

/// SQLite waits for the disk (`synchronous FULL`): a pass's ledger work, the start's
/// recovery and an operator's changes run it on blocking threads, never on the async
/// workers that also answer `/healthz` (the strict ledger panics otherwise).
#[tokio::test]
async fn passes_and_operators_changes_keep_the_ledger_off_the_async_workers() {
    let office = "timezone: Europe/Paris\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n";
    let ledger = Ledger::in_memory_strict().unwrap();
    let w = world_with(
        office,
        "2026-11-25T19:00:00+01:00",
        6,
        ledger,
        Duration::from_secs(60),
    )
    .await;
    w.daemon.recover().await.unwrap();
    let report = w.daemon.pass().await.unwrap();
    let stopped: Vec<String> = report
        .acted()
        .filter(|(s, r)| s.action == Action::Stop && matches!(r, ActResult::Done(_)))
        .map(|(s, _)| s.environment_id.to_string())
        .collect();
    assert!(!stopped.is_empty(), "the pass stopped something");
    w.clock.set(at("2026-11-25T21:00:00+01:00"));
    let id = &stopped[0];
    w.daemon.wake(id, None, "alice", "").await.unwrap();
    let until = at("2026-11-26T09:00:00+01:00");
    w.daemon.snooze(id, until, "bob", "a demo").await.unwrap();
    w.daemon.plan_now().await.unwrap();
    w.daemon.pass().await.unwrap();
}

/// A platform at our own seam whose one environment is whatever the test says: a stop
/// stops it and a start starts it; the test puts it back up as a GitOps tool would.
struct Scripted {
    env: std::sync::Mutex<crate::platform::Environment>,
    calls: std::sync::Mutex<Vec<(DateTime<Utc>, Action)>>,
    /// For each call in `calls`, whether it was made for a person waiting on it.
    for_a_person: std::sync::Mutex<Vec<bool>>,
    notes: std::sync::Mutex<Vec<(String, String)>>,
    clock: ManualClock,
}

impl Scripted {
    fn new(clock: &ManualClock, cost: f64) -> Scripted {
        let mut env = crate::policy::tests::env("pr-1");
        env.hourly_cost = Some(cost);
        Scripted {
            env: std::sync::Mutex::new(env),
            calls: std::sync::Mutex::default(),
            for_a_person: std::sync::Mutex::default(),
            notes: std::sync::Mutex::default(),
            clock: clock.clone(),
        }
    }

    /// A daemon over this platform under `rules`, on its clock.
    fn daemon(self: &Arc<Self>, ledger: Arc<Ledger>, metrics: Arc<Metrics>, rules: &str) -> Daemon {
        Daemon::new(
            self.clone(),
            ledger,
            metrics,
            Arc::new(self.clock.clone()),
            Arc::new(parse_rules("t.yaml", rules, self.clock.now()).unwrap()),
            DaemonOptions {
                resync: Duration::from_secs(60),
                max_pass_age: Duration::from_secs(180),
                max_in_flight: 4,
            },
        )
    }

    /// Puts it back up, as `by` does, at `at`.
    fn put_back(&self, by: &str, at: DateTime<Utc>) {
        self.put_back_but(by, at, 0);
    }

    /// Puts back all but `still_stopped` of its parts, as `by` does, at `at`.
    fn put_back_but(&self, by: &str, at: DateTime<Utc>, still_stopped: u32) {
        let mut env = self.env.lock().unwrap();
        env.state = crate::platform::EnvState::Running;
        env.reverted = Some(Box::new(crate::platform::Revert {
            by: by.into(),
            at: Some(at),
            still_stopped,
        }));
    }

    fn starts(&self) -> Vec<DateTime<Utc>> {
        self.calls_of(Action::Start)
    }

    fn stops(&self) -> Vec<DateTime<Utc>> {
        self.calls_of(Action::Stop)
    }

    /// When `action` was called, in order.
    fn calls_of(&self, action: Action) -> Vec<DateTime<Utc>> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(_, a)| *a == action)
            .map(|(t, _)| *t)
            .collect()
    }

    fn set(&self, action: Action, state: crate::platform::EnvState) {
        self.calls.lock().unwrap().push((self.clock.now(), action));
        let person = crate::platform::is_for_a_person();
        self.for_a_person.lock().unwrap().push(person);
        let mut env = self.env.lock().unwrap();
        env.state = state;
        env.reverted = None;
    }
}

#[async_trait::async_trait]
impl Platform for Scripted {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    async fn list(&self) -> Result<Snapshot, PlatformError> {
        Ok(Snapshot {
            environments: vec![self.env.lock().unwrap().clone()],
            complete: true,
        })
    }
    async fn stop(&self, _id: &str) -> Result<crate::platform::Outcome, PlatformError> {
        self.set(Action::Stop, crate::platform::EnvState::Stopped);
        Ok(crate::platform::Outcome::Accepted)
    }
    async fn start(&self, _id: &str) -> Result<crate::platform::Outcome, PlatformError> {
        self.set(Action::Start, crate::platform::EnvState::Running);
        Ok(crate::platform::Outcome::Accepted)
    }
    async fn delete(&self, _id: &str) -> Result<crate::platform::Outcome, PlatformError> {
        Ok(crate::platform::Outcome::Gone)
    }
    async fn note(&self, _id: &str, reason: &str, message: &str) {
        let mut notes = self.notes.lock().unwrap();
        notes.push((reason.into(), message.into()));
    }
}

#[tokio::test]
async fn a_stop_put_back_is_recorded_once_counted_by_who_ends_its_savings_and_is_not_fought_until_the_next_boundary()
 {
    // Wednesday 19:00 UTC, the rule's stop; 36 an hour is 0.01 a second.
    let clock = ManualClock::new(at("2026-11-25T19:00:00Z"));
    let platform = Arc::new(Scripted::new(&clock, 36.0));
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let metrics = Arc::new(Metrics::new("test", false));
    let rules = "timezone: UTC\ncurrency: EUR\nrules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    gitops: off\n";
    let daemon = platform.daemon(ledger.clone(), metrics.clone(), rules);
    let reverted = |by: &str| {
        let text = metrics.encode();
        let line = format!("curfew_reverted_total{{by=\"{by}\",rule=\"office\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map(|v| v.parse::<u64>().unwrap())
    };
    assert_eq!(
        reverted("argocd-controller"),
        Some(0),
        "made at 0 in advance"
    );
    daemon.pass().await.unwrap();
    assert_eq!(platform.stops(), [at("2026-11-25T19:00:00Z")]);

    // Argo CD puts it back 5 s later; curfew sees it at 19:05, and again at 19:10.
    platform.put_back("argocd-controller (Update)", at("2026-11-25T19:00:05Z"));
    for t in ["2026-11-25T19:05:00Z", "2026-11-25T19:10:00Z"] {
        clock.set(at(t));
        daemon.pass().await.unwrap();
    }
    assert_eq!(platform.stops().len(), 1, "not stopped again before 08:00");
    let reverts = ledger.reverts_of("id-pr-1", DateTime::UNIX_EPOCH).unwrap();
    assert_eq!(
        reverts.len(),
        1,
        "once per revert, not per pass: {reverts:?}"
    );
    assert_eq!(reverts[0].by, "argocd-controller (Update)");
    assert_eq!(reverts[0].rule, "office");
    assert_eq!(reverts[0].at, at("2026-11-25T19:00:05Z"));
    assert_eq!(reverts[0].seen_at, at("2026-11-25T19:05:00Z"));
    assert_eq!(reverted("argocd-controller"), Some(1));
    assert_eq!(reverted("person"), Some(0));
    // Savings end when it was put back: 5 s, not the 5 minutes until curfew saw it.
    let savings = ledger.savings().unwrap();
    assert_eq!(savings.len(), 1, "{savings:?}");
    assert!(
        (savings[0].stopped_seconds - 5.0).abs() < 1e-9,
        "{savings:?}"
    );
    assert!((savings[0].saved - 0.05).abs() < 1e-9, "{savings:?}");
    assert!(
        metrics
            .encode()
            .contains("curfew_stopped_seconds_total{rule=\"office\"} 5\n")
    );
    let history = ledger.history("id-pr-1", 10).unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.what == "reverted by argocd-controller (Update)"),
        "{history:?}"
    );
    let notes = platform.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "Reverted");
    assert!(
        notes[0]
            .1
            .contains("put back by argocd-controller (Update) at 2026-11-25T19:00:05Z"),
        "{notes:?}"
    );

    // The next boundary: Thursday 08:00 it runs already; at 19:00 it is stopped again, and a
    // person's kubectl puts it back: a second revert.
    for t in ["2026-11-26T08:00:00Z", "2026-11-26T19:00:00Z"] {
        clock.set(at(t));
        daemon.pass().await.unwrap();
    }
    assert_eq!(
        platform.stops(),
        [at("2026-11-25T19:00:00Z"), at("2026-11-26T19:00:00Z")]
    );
    platform.put_back("kubectl-scale (Update)", at("2026-11-26T19:00:30Z"));
    clock.set(at("2026-11-26T19:01:00Z"));
    daemon.pass().await.unwrap();
    assert_eq!(reverted("person"), Some(1));
    assert_eq!(reverted("argocd-controller"), Some(1));
    assert_eq!(
        ledger
            .reverts_of("id-pr-1", DateTime::UNIX_EPOCH)
            .unwrap()
            .len(),
        2
    );
    let savings = ledger.savings().unwrap();
    assert!(
        (savings[0].stopped_seconds - 35.0).abs() < 1e-9,
        "{savings:?}"
    );
}

/// A wake by request is made for a person waiting on it (its calls go ahead of a pass's
/// batch, [`crate::platform::for_a_person`]); a pass's own calls are not.
#[tokio::test]
async fn a_wake_by_request_calls_the_platform_for_a_person_and_a_pass_does_not() {
    let clock = ManualClock::new(at("2026-11-25T19:00:00Z"));
    let platform = Arc::new(Scripted::new(&clock, 36.0));
    let rules = "timezone: UTC\nrules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    wake_on_request: true\n";
    let daemon = platform.daemon(
        Arc::new(Ledger::in_memory().unwrap()),
        Arc::new(Metrics::new("test", false)),
        rules,
    );
    daemon.pass().await.unwrap();
    clock.set(at("2026-11-25T21:00:00Z"));
    daemon
        .wake_by_request("id-pr-1", at("2026-11-25T21:30:00Z"))
        .await
        .unwrap();
    assert_eq!(platform.stops(), [at("2026-11-25T19:00:00Z")]);
    assert_eq!(platform.starts(), [at("2026-11-25T21:00:00Z")]);
    assert_eq!(*platform.for_a_person.lock().unwrap(), [false, true]);
}

/// A stop put back only in part (one workload of two, say): not fought before the next
/// boundary, as a whole revert; and the next running time starts what is still stopped,
/// so that the morning does not find the environment half up.
#[tokio::test]
async fn a_stop_put_back_in_part_is_not_fought_and_the_next_running_time_starts_the_rest() {
    let clock = ManualClock::new(at("2026-11-25T19:00:00Z"));
    let platform = Arc::new(Scripted::new(&clock, 36.0));
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let rules = "timezone: UTC\ncurrency: EUR\nrules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n    gitops: off\n";
    let daemon = platform.daemon(ledger.clone(), Arc::new(Metrics::new("test", false)), rules);
    daemon.pass().await.unwrap();
    platform.put_back_but("argocd-controller (Update)", at("2026-11-25T19:00:05Z"), 1);
    for t in ["2026-11-25T19:05:00Z", "2026-11-26T07:59:00Z"] {
        clock.set(at(t));
        daemon.pass().await.unwrap();
    }
    assert_eq!(platform.stops().len(), 1, "not fought before 08:00");
    assert!(
        platform.starts().is_empty(),
        "nor started in the stopped time"
    );
    clock.set(at("2026-11-26T08:00:00Z"));
    let report = daemon.pass().await.unwrap();
    assert_eq!(platform.starts(), [at("2026-11-26T08:00:00Z")]);
    let why = &report.decisions[0].reason;
    assert!(
        why.contains("argocd-controller (Update) put back part of it and 1 part curfew stopped is still stopped"),
        "{why}"
    );
    // Started whole, it is left alone for the rest of the day.
    clock.set(at("2026-11-26T08:05:00Z"));
    daemon.pass().await.unwrap();
    assert_eq!(platform.starts().len(), 1);
}
