//! Ledger tests: intents and outcomes, records, stop intervals and savings, restart.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::platform::EnvState;
use crate::policy::{Cause, Decision, StopCause};

#[test]
fn a_stop_ends_when_its_environment_is_gone() {
    let ledger = Ledger::in_memory().unwrap();
    let t0 = at("2026-11-27T18:00:00Z");
    ledger
        .open_stop_for("gone", "ttl", StopCause::Schedule, "stopped", Some(1.0), t0)
        .unwrap();
    ledger
        .accrue(t0 + TimeDelta::hours(1), "EUR", &|_| false)
        .unwrap();
    ledger
        .accrue(t0 + TimeDelta::hours(100), "EUR", &|_| true)
        .unwrap();
    let s = ledger.savings().unwrap();
    assert!(
        (s[0].saved - 1.0).abs() < 1e-9,
        "savings stop with the environment: {s:?}"
    );
}

/// The stop of `stop_decision(id)`, as the executor carries it out.
fn stop(id: &str) -> Step {
    stop_decision(id).step().unwrap()
}

/// What the ledger writes for an action the platform took.
const OK: Outcome = Outcome::Acted(ActResult::Done(Answer::Accepted));

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn stop_decision(id: &str) -> Decision {
    Decision {
        environment_id: id.into(),
        environment: format!("env-{id}").into(),
        project: "web".into(),
        mode: crate::platform::Mode::Preview,
        state: EnvState::Running,
        action: Action::Stop,
        cause: Some(Cause::Schedule),
        rule: Some("previews".into()),
        reason: "outside the window".into(),
        due_since: None,
        next_check: None,
        dry_run: false,
        settle: None,
        hourly_cost: Some(0.5),
        delete: None,
    }
}

#[test]
fn an_intent_without_outcome_is_found_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("curfew-ledger-{}", std::process::id()));
    let path = dir.join("curfew.db");
    let _ = std::fs::remove_file(&path);
    {
        let ledger = Ledger::open(&path).unwrap();
        let done = ledger
            .intent(&stop("a"), at("2026-11-27T18:00:00Z"))
            .unwrap();
        ledger
            .outcome(done, OK, at("2026-11-27T18:00:01Z"))
            .unwrap();
        ledger
            .intent(&stop("b"), at("2026-11-27T18:00:00Z"))
            .unwrap();
        // Dropped without an outcome for "b", as if killed.
    }
    let ledger = Ledger::open(&path).unwrap();
    let pending = ledger.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (
            pending[0].environment_id.as_str(),
            pending[0].action.as_str()
        ),
        ("b", "stop")
    );
    ledger
        .outcome(
            pending[0].id,
            Outcome::Recovered { done: true },
            at("2026-11-27T18:05:00Z"),
        )
        .unwrap();
    assert!(ledger.pending().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_round_trip_and_only_changes_are_written() {
    let ledger = Ledger::in_memory().unwrap();
    let mut view = ledger.view().unwrap();
    assert_eq!(view.changes().0.len(), 0);
    view.entry("a").curfew_stop = Some(crate::policy::StopRecord {
        at: at("2026-11-27T18:00:00Z"),
        cause: StopCause::Schedule,
        rule: "previews".into(),
    });
    view.entry("b").stopped_since = Some(at("2026-11-27T18:00:00Z"));
    assert_eq!(view.changes().0.len(), 2);
    ledger.store(&mut view).unwrap();
    assert_eq!(view.changes().0.len(), 0, "stored: nothing left to write");
    let mut read = ledger.view().unwrap();
    assert_eq!(read, view);
    assert_eq!(read.changes().0.len(), 0, "a view just read has no changes");
    // Touching a record without changing it writes nothing; changing one writes only it.
    read.entry("a");
    read.entry("b").stopped_since = Some(at("2026-11-27T19:00:00Z"));
    let (changed, removed) = read.changes();
    assert_eq!(changed.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ["b"]);
    assert!(removed.is_empty());
    ledger.store(&mut read).unwrap();
    read.apply(
        &Decision {
            action: Action::Delete,
            ..stop_decision("a")
        },
        at("2026-11-28T00:00:00Z"),
    );
    assert_eq!(read.changes().1, ["a".to_string()]);
    ledger.store(&mut read).unwrap();
    let last = ledger.view().unwrap();
    assert!(last.get("a").is_none());
    assert_eq!(
        last.get("b").and_then(|r| r.stopped_since),
        Some(at("2026-11-27T19:00:00Z"))
    );
}

#[test]
fn savings_accrue_while_stopped_and_stop_when_started() {
    let ledger = Ledger::in_memory().unwrap();
    let t0 = at("2026-11-27T18:00:00Z");
    ledger.open_stop(&stop("a"), Some(0.5), t0).unwrap();
    ledger.open_stop(&stop("a"), Some(0.5), t0).unwrap(); // idempotent
    ledger
        .accrue(t0 + TimeDelta::hours(2), "EUR", &|_| true)
        .unwrap();
    // Running again at +4h: the interval closes there.
    ledger
        .accrue(t0 + TimeDelta::hours(4), "EUR", &|env| env != "a")
        .unwrap();
    ledger
        .accrue(t0 + TimeDelta::hours(10), "EUR", &|_| true)
        .unwrap();
    let s = ledger.savings().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].rule.as_str(), s[0].currency.as_str()),
        ("previews", "EUR")
    );
    assert!((s[0].stopped_seconds - 4.0 * 3600.0).abs() < 1e-6, "{s:?}");
    assert!((s[0].saved - 2.0).abs() < 1e-9, "{s:?}");
}

#[test]
fn history_lists_actions_and_operator_changes_newest_first() {
    let ledger = Ledger::in_memory().unwrap();
    let id = ledger
        .intent(&stop("a"), at("2026-11-27T18:00:00Z"))
        .unwrap();
    ledger.outcome(id, OK, at("2026-11-27T18:00:01Z")).unwrap();
    ledger
        .override_entry(
            "a",
            "snooze",
            "alice",
            at("2026-11-27T20:00:00Z"),
            Some(at("2026-11-28T02:00:00Z")),
            "demo",
        )
        .unwrap();
    let h = ledger.history("a", 10).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].what.as_str(), h[0].until),
        ("snooze by alice", Some(at("2026-11-28T02:00:00Z"))),
        "{h:?}"
    );
    assert_eq!(h[1].what, "stop: ok");
}

#[test]
fn more_open_stops_than_one_read_holds_all_accrue_under_their_rules_and_close_once() {
    // 1,300 open intervals: read 512 at a time; those whose environment runs again close,
    // and every interval accrues exactly once per pass, under its own rule.
    let ledger = Ledger::in_memory().unwrap();
    let t0 = at("2026-11-27T18:00:00Z");
    for n in 0..1300 {
        let rule = if n % 2 == 0 { "even" } else { "odd" };
        ledger
            .open_stop_for(
                &format!("env-{n:04}"),
                rule,
                StopCause::Schedule,
                "stopped",
                Some(1.0),
                t0,
            )
            .unwrap();
    }
    let running = |env: &str| env.ends_with('7');
    ledger
        .accrue(t0 + TimeDelta::hours(1), "EUR", &|env| !running(env))
        .unwrap();
    ledger
        .accrue(t0 + TimeDelta::hours(2), "EUR", &|_| true)
        .unwrap();
    let s = ledger.savings().unwrap();
    let by_rule: Vec<(&str, f64, f64)> = s
        .iter()
        .map(|s| (s.rule.as_str(), s.stopped_seconds / 3600.0, s.saved))
        .collect();
    // 650 per rule; the 130 ending in 7 are all odd and stop after the first hour.
    assert_eq!(by_rule.len(), 2, "{by_rule:?}");
    assert_eq!(by_rule[0].0, "even");
    assert!((by_rule[0].1 - 1300.0).abs() < 1e-6, "{by_rule:?}");
    assert!((by_rule[0].2 - 1300.0).abs() < 1e-6, "{by_rule:?}");
    assert_eq!(by_rule[1].0, "odd");
    assert!(
        (by_rule[1].1 - (1300.0 - 130.0)).abs() < 1e-6,
        "{by_rule:?}"
    );
    // A closed interval ends where it closed; an open one runs to the last pass.
    let intervals = ledger.stop_intervals_since(t0).unwrap();
    let ended_first = intervals
        .iter()
        .filter(|i| i.until == t0 + TimeDelta::hours(1))
        .count();
    assert_eq!((intervals.len(), ended_first), (1300, 130));
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("curfew-ledger-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The probe deleted the ledger under a running daemon: passes went on "recording"
/// into the unlinked file. The path no longer names the open file, and the ledger says so
/// to every pass (its view) and every action (its intents) instead of taking them.
#[test]
fn a_ledger_deleted_or_replaced_under_a_running_daemon_is_noticed() {
    let dir = fresh_dir("deleted");
    let path = dir.join("curfew.db");
    let ledger = Ledger::open(&path).unwrap();
    ledger.check().unwrap();
    let t = at("2026-11-27T18:00:00Z");
    std::fs::remove_file(&path).unwrap();
    let deleted = ledger.check().unwrap_err().to_string();
    assert!(
        deleted.contains(&format!(
            "{} was deleted while curfew was running",
            path.display()
        )),
        "{deleted}"
    );
    assert!(ledger.view().is_err());
    assert!(ledger.intents([&stop("a")], t).is_err());
    assert!(ledger.intent(&stop("a"), t).is_err());
    std::fs::write(&path, b"").unwrap();
    let replaced = ledger.check().unwrap_err().to_string();
    assert!(
        replaced.contains("was replaced by another file"),
        "{replaced}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next start created an empty ledger silently: history, savings, curfew's own stop
/// records and the delete cap's window were gone. The marker beside the ledger says one
/// was kept, and a fresh one is made only when asked for.
#[test]
fn a_fresh_ledger_is_refused_where_one_was_kept_unless_asked_for() {
    let dir = fresh_dir("fresh");
    let path = dir.join("curfew.db");
    {
        let ledger = Ledger::open(&path).unwrap();
        ledger
            .intent(&stop("a"), at("2026-11-27T18:00:00Z"))
            .unwrap();
    }
    assert!(marker_path(&path).exists());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let refused = Ledger::open(&path).err().expect("refused").to_string();
    assert!(
        refused.contains(&format!(
            "{} is gone, but {} says curfew kept its ledger there",
            path.display(),
            marker_path(&path).display()
        )) && refused.contains("start with --new-ledger"),
        "{refused}"
    );
    assert!(!path.exists(), "nothing was made in its place");
    let fresh = Ledger::open_with(&path, Fresh::Allowed).unwrap();
    assert_eq!(fresh.pending().unwrap(), []);
    drop(fresh);
    Ledger::open(&path).expect("the new ledger is the one kept now");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SQLite opens a file it may not write read-only, without a word; the ledger refuses it
/// at once rather than at the first action.
#[test]
fn a_ledger_that_can_only_be_read_is_refused_at_open() {
    let dir = fresh_dir("readonly");
    let path = dir.join("curfew.db");
    drop(Ledger::open(&path).unwrap());
    let conn =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let refused = Ledger::init(conn).err().expect("refused").to_string();
    assert!(refused.contains("the file is read-only"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A ledger file written before reverts were kept: the schema as it was, with a stop open.
const SCHEMA_BEFORE_REVERTS: &str = "
CREATE TABLE actions (id INTEGER PRIMARY KEY, environment_id TEXT NOT NULL, environment TEXT NOT NULL,
    action TEXT NOT NULL, cause TEXT, rule TEXT, reason TEXT NOT NULL, dry_run INTEGER NOT NULL,
    intent_at TEXT NOT NULL, outcome TEXT, outcome_at TEXT, error TEXT);
CREATE TABLE stops (id INTEGER PRIMARY KEY, environment_id TEXT NOT NULL, rule TEXT NOT NULL,
    cause TEXT NOT NULL, reason TEXT NOT NULL, hourly_cost REAL, stopped_at TEXT NOT NULL,
    accrued_until TEXT NOT NULL, started_at TEXT);
INSERT INTO stops (environment_id, rule, cause, reason, hourly_cost, stopped_at, accrued_until)
    VALUES ('pr-1', 'office', 'schedule', 'night', 36.0, '2026-11-25T19:00:00.000Z', '2026-11-25T19:00:00.000Z');
";

#[test]
fn an_old_ledger_loads_and_keeps_reverts_which_end_savings_when_they_happened() {
    let dir = fresh_dir("reverts");
    let path = dir.join("curfew.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SCHEMA_BEFORE_REVERTS)
        .unwrap();
    std::fs::write(marker_path(&path), "created: before\n").unwrap();
    let ledger = Ledger::open(&path).unwrap();
    // Put back at 19:00:05, seen at 19:05: savings up to 19:00:05 (36 an hour: 0.05).
    let entry = RevertEntry {
        environment_id: "pr-1".into(),
        rule: "office".into(),
        by: "argocd-controller (Update)".into(),
        at: at("2026-11-25T19:00:05Z"),
        seen_at: at("2026-11-25T19:05:00Z"),
    };
    ledger.revert(&entry).unwrap();
    let ended = |id: &str| (id == "pr-1").then(|| at("2026-11-25T19:00:05Z"));
    ledger
        .accrue_ending(at("2026-11-25T19:05:00Z"), "EUR", &|_| false, &ended)
        .unwrap();
    let s = ledger.savings().unwrap();
    assert!((s[0].stopped_seconds - 5.0).abs() < 1e-9, "{s:?}");
    assert!((s[0].saved - 0.05).abs() < 1e-9, "{s:?}");
    assert_eq!(
        ledger.stops_of("pr-1", DateTime::UNIX_EPOCH).unwrap(),
        [(at("2026-11-25T19:00:00Z"), Some(at("2026-11-25T19:00:05Z")))]
    );
    // Kept across a restart; a hostile manager's name is kept bounded.
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    let long = RevertEntry {
        by: "x".repeat(10_000),
        at: at("2026-11-26T19:00:30Z"),
        ..entry.clone()
    };
    ledger.revert(&long).unwrap();
    let kept = ledger.reverts_of("pr-1", DateTime::UNIX_EPOCH).unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0], entry);
    assert_eq!(kept[1].by.len(), REVERT_BY_MAX);
    // Bounded in time like the actions: pruned with them.
    ledger.prune(at("2026-11-26T00:00:00Z")).unwrap();
    assert_eq!(
        ledger
            .reverts_of("pr-1", DateTime::UNIX_EPOCH)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_revert_seen_after_savings_were_accrued_past_it_takes_nothing_back() {
    let ledger = Ledger::in_memory().unwrap();
    let t0 = at("2026-11-25T19:00:00Z");
    ledger
        .open_stop_for(
            "pr-1",
            "office",
            StopCause::Schedule,
            "night",
            Some(36.0),
            t0,
        )
        .unwrap();
    ledger
        .accrue(t0 + TimeDelta::seconds(60), "EUR", &|_| true)
        .unwrap();
    // Put back at 19:00:05 by the object's clock, seen only now: the interval ends where
    // it was accrued to, and counters never go down.
    let ended = |_: &str| Some(t0 + TimeDelta::seconds(5));
    ledger
        .accrue_ending(t0 + TimeDelta::seconds(120), "EUR", &|_| true, &ended)
        .unwrap();
    let s = ledger.savings().unwrap();
    assert!((s[0].stopped_seconds - 60.0).abs() < 1e-9, "{s:?}");
    assert_eq!(
        ledger.stops_of("pr-1", DateTime::UNIX_EPOCH).unwrap(),
        [(t0, Some(t0 + TimeDelta::seconds(60)))]
    );
}
