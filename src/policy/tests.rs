//! `decide` table tests, a simulated fortnight around a DST change, and the property that
//! protected and unmatched environments are never acted on.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::config::parse_rules;
use crate::platform::{
    EnvState, Environment, LabelOverrides, Mode, PROTECT_LABEL, SNOOZE_LABEL, Snapshot,
};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rules(yaml: &str) -> RuleSet {
    parse_rules("test.yaml", yaml, at("2026-11-01T00:00:00Z")).unwrap_or_else(|e| panic!("{e}"))
}

const PREVIEWS: &str = "timezone: Europe/Paris\nrules:\n  - name: previews\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n";

/// An environment that reads like a sentence: `env("pr-1").stopped().created(t)`.
pub(crate) fn env(name: &str) -> Environment {
    Environment {
        id: format!("id-{name}").into(),
        name: name.into(),
        project: "web".into(),
        mode: Mode::Preview,
        cluster: None,
        state: EnvState::Running,
        platform_state: None,
        created_at: at("2026-11-01T00:00:00Z"),
        last_deployed_at: None,
        last_activity_at: None,
        labels: BTreeMap::new(),
        hourly_cost: None,
        unstoppable: None,
        owners: None,
        reverters: Vec::new(),
        reverted: None,
        stopped_by_curfew_at: None,
        overrides: None,
    }
}

pub(crate) trait EnvFixture {
    fn stopped(self) -> Self;
    fn in_state(self, state: EnvState, word: &str) -> Self;
    fn mode(self, mode: Mode) -> Self;
    fn created(self, t: &str) -> Self;
    fn deployed(self, t: &str) -> Self;
    fn label(self, k: &str, v: &str) -> Self;
}

impl EnvFixture for Environment {
    fn stopped(self) -> Self {
        Environment {
            state: EnvState::Stopped,
            ..self
        }
    }
    fn in_state(self, state: EnvState, word: &str) -> Self {
        Environment {
            state,
            platform_state: Some(word.into()),
            ..self
        }
    }
    fn mode(self, mode: Mode) -> Self {
        Environment { mode, ..self }
    }
    fn created(self, t: &str) -> Self {
        Environment {
            created_at: at(t),
            ..self
        }
    }
    fn deployed(self, t: &str) -> Self {
        Environment {
            last_deployed_at: Some(at(t)),
            ..self
        }
    }
    /// A label, read as an adapter reads it when it lists.
    fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self.overrides = LabelOverrides::of_labels(&self.labels);
        self
    }
}

fn one(rules: &RuleSet, env: Environment, ledger: &LedgerView, now: &str) -> Decision {
    let snapshot = Snapshot {
        environments: vec![env],
        complete: true,
    };
    decide(rules, &snapshot, ledger, at(now)).remove(0)
}

/// What the decision's delete does in this pass (`none` when no delete is under way).
fn deleting(d: &Decision) -> Action {
    d.delete.as_ref().map_or(Action::None, |p| p.action)
}

fn none() -> LedgerView {
    LedgerView::default()
}

fn record(f: impl FnOnce(&mut EnvRecord)) -> LedgerView {
    let mut ledger = LedgerView::default();
    f(ledger.entry("id-pr-1"));
    ledger
}

#[test]
fn unmatched_environments_are_left_alone_and_say_which_rules_were_tried() {
    let d = one(
        &rules(PREVIEWS),
        env("pr-1").mode(Mode::Staging),
        &none(),
        "2026-11-27T20:00:00Z",
    );
    assert_eq!(d.action, Action::None);
    assert_eq!(d.rule, None);
    assert_eq!(
        &*d.reason,
        "no rule matches (tried \"previews\"); curfew leaves it alone"
    );
}

#[test]
fn protected_environments_are_never_acted_on_whatever_the_rules_say() {
    let r = rules(concat!(
        "timezone: Europe/Paris\nprotect:\n  - project: billing\n",
        "rules:\n  - name: everything\n    run: Mon-Fri 08:00-19:00\n    delete_after: 1h\n    allow_delete: [production, preview]\n",
    ));
    let night = "2026-11-27T22:00:00+01:00";
    let cases = [
        (
            env("pr-1").mode(Mode::Production),
            "production environments are protected",
        ),
        (
            Environment {
                project: "billing".into(),
                ..env("pr-1")
            },
            "protected by protect[0] (project=billing)",
        ),
        (
            env("pr-1").label(PROTECT_LABEL, "true"),
            "protected by its label curfew.dev/protect=true",
        ),
    ];
    for (e, why) in cases {
        let d = one(&r, e, &none(), night);
        assert_eq!(d.action, Action::None, "{why}");
        assert!(d.reason.contains(why), "{}", d.reason);
    }
    let ledger = record(|r| r.protected_by = Some("alice".into()));
    let d = one(&r, env("pr-1"), &ledger, night);
    assert_eq!(
        (d.action, d.reason.contains("admin API by alice")),
        (Action::None, true)
    );
}

#[test]
fn a_running_environment_is_stopped_outside_its_window_with_a_reason_a_person_reads() {
    let d = one(
        &rules(PREVIEWS),
        env("pr-1"),
        &none(),
        "2026-11-27T19:00:00+01:00",
    );
    assert_eq!(d.action, Action::Stop);
    assert_eq!(d.cause, Some(Cause::Schedule));
    assert_eq!(d.rule.as_deref(), Some("previews"));
    assert_eq!(
        &*d.reason,
        "outside run Mon-Fri 08:00-19:00 Europe/Paris since 2026-11-27 19:00 CET; stopped by rule \"previews\""
    );
    assert_eq!(d.due_since, Some(at("2026-11-27T19:00:00+01:00")));
    assert_eq!(d.next_check, Some(at("2026-11-30T08:00:00+01:00")));
    // One second earlier it runs, and the daemon is told to wake at 19:00:00.
    let before = one(
        &rules(PREVIEWS),
        env("pr-1"),
        &none(),
        "2026-11-27T18:59:59+01:00",
    );
    assert_eq!(before.action, Action::None);
    assert_eq!(before.next_check, Some(at("2026-11-27T19:00:00+01:00")));
}

#[test]
fn at_the_window_start_only_what_curfew_stopped_for_the_schedule_is_started() {
    let morning = "2026-11-30T08:00:00+01:00";
    let stop = |cause| StopRecord {
        at: at("2026-11-27T19:00:00+01:00"),
        cause,
        rule: "previews".into(),
    };
    let cases = [
        (
            record(|r| r.curfew_stop = Some(stop(StopCause::Schedule))),
            Action::Start,
            "curfew stopped it at 2026-11-27 19:00 CET for the schedule",
        ),
        (
            record(|r| r.curfew_stop = Some(stop(StopCause::Idle))),
            Action::None,
            "because it was idle",
        ),
        (
            none(),
            Action::None,
            "it was not stopped by curfew's schedule",
        ),
    ];
    for (ledger, want, why) in cases {
        let d = one(&rules(PREVIEWS), env("pr-1").stopped(), &ledger, morning);
        assert_eq!(d.action, want, "{why}: {}", d.reason);
        assert!(d.reason.contains(why), "{}", d.reason);
    }
}

#[test]
fn wake_all_starts_every_stopped_environment_and_wake_never_none() {
    let all = rules(&PREVIEWS.replace("run: Mon", "wake: all\n    run: Mon"));
    let never = rules(&PREVIEWS.replace("run: Mon", "wake: never\n    run: Mon"));
    let morning = "2026-11-30T08:00:00+01:00";
    assert_eq!(
        one(&all, env("pr-1").stopped(), &none(), morning).action,
        Action::Start
    );
    let ledger = record(|r| {
        r.curfew_stop = Some(StopRecord {
            at: at("2026-11-27T18:00:00Z"),
            cause: StopCause::Schedule,
            rule: "previews".into(),
        })
    });
    assert_eq!(
        one(&never, env("pr-1").stopped(), &ledger, morning).action,
        Action::None
    );
    // With wake: all, a person's stop after curfew's start is respected until the next window.
    let started = record(|r| r.schedule_start_settled_at = Some(at(morning)));
    let d = one(
        &all,
        env("pr-1").stopped(),
        &started,
        "2026-11-30T10:00:00+01:00",
    );
    assert_eq!(d.action, Action::None, "{}", d.reason);
}

#[test]
fn a_persons_start_at_night_is_respected_until_the_next_scheduled_stop() {
    let r = rules(PREVIEWS);
    // curfew stopped it on Friday at 19:00; someone started it at 21:00.
    let ledger = record(|r| r.schedule_stop_settled_at = Some(at("2026-11-27T19:00:00+01:00")));
    let d = one(&r, env("pr-1"), &ledger, "2026-11-27T21:30:00+01:00");
    assert_eq!(d.action, Action::None);
    assert_eq!(
        &*d.reason,
        "started by hand after the schedule's stop at 2026-11-27 19:00 CET; left running until the next scheduled stop at 2026-11-30 19:00 CET (rule \"previews\")"
    );
    assert_eq!(d.next_check, Some(at("2026-11-30T08:00:00+01:00")));
    // Monday 19:00 is the next stop boundary: then it is stopped again.
    let d = one(&r, env("pr-1"), &ledger, "2026-11-30T19:00:00+01:00");
    assert_eq!(d.action, Action::Stop);
}

#[test]
fn an_environment_already_stopped_at_the_boundary_settles_it_so_a_later_start_is_a_persons() {
    let d = one(
        &rules(PREVIEWS),
        env("pr-1").stopped(),
        &none(),
        "2026-11-27T19:05:00+01:00",
    );
    assert_eq!(
        (d.action, d.settle),
        (Action::None, Some(Settle::ScheduleStop))
    );
    let mut ledger = none();
    ledger.apply(&d, at("2026-11-27T19:05:00+01:00"));
    let later = one(
        &rules(PREVIEWS),
        env("pr-1"),
        &ledger,
        "2026-11-27T21:00:00+01:00",
    );
    assert_eq!(later.action, Action::None, "{}", later.reason);
}

#[test]
fn a_snooze_from_the_ledger_or_a_label_holds_off_schedule_and_idle_stops() {
    let r = rules(&PREVIEWS.replace("run: Mon", "stop_when_idle: 1h\n    run: Mon"));
    let night = "2026-11-27T22:00:00+01:00";
    let ledger = record(|r| {
        r.snoozed_until = Some(at("2026-11-28T02:00:00+01:00"));
        r.snoozed_by = Some("alice".into());
    });
    let d = one(&r, env("pr-1"), &ledger, night);
    assert_eq!(d.action, Action::None);
    assert_eq!(
        &*d.reason,
        "snoozed until 2026-11-28 02:00 CET by alice: no schedule or idle stop before then"
    );
    assert_eq!(d.next_check, Some(at("2026-11-28T02:00:00+01:00")));
    assert_eq!(
        one(&r, env("pr-1"), &ledger, "2026-11-28T02:00:00+01:00").action,
        Action::Stop
    );
    let labelled = env("pr-1").label(SNOOZE_LABEL, "2026-11-28T01:00:00Z");
    assert_eq!(
        one(&r, labelled.clone(), &none(), night).action,
        Action::None
    );
    let broken = env("pr-1").label(SNOOZE_LABEL, "tomorrow");
    assert_eq!(one(&r, broken, &none(), night).action, Action::Stop);
}

#[test]
fn an_idle_environment_is_stopped_and_curfews_own_start_resets_the_idle_clock() {
    let r = rules("timezone: UTC\nrules:\n  - name: idle\n    stop_when_idle: 3h\n");
    let now = "2026-11-26T15:00:00Z";
    let d = one(
        &r,
        env("pr-1").deployed("2026-11-26T11:30:00Z"),
        &none(),
        now,
    );
    assert_eq!((d.action, d.cause), (Action::Stop, Some(Cause::Idle)));
    assert_eq!(d.due_since, Some(at("2026-11-26T14:30:00Z")));
    let fresh = one(
        &r,
        env("pr-1").deployed("2026-11-26T12:30:00Z"),
        &none(),
        now,
    );
    assert_eq!(
        (fresh.action, fresh.next_check),
        (Action::None, Some(at("2026-11-26T15:30:00Z")))
    );
    let woke = record(|r| r.last_started_by_curfew_at = Some(at("2026-11-26T13:00:00Z")));
    assert_eq!(
        one(&r, env("pr-1").deployed("2026-11-26T08:00:00Z"), &woke, now).action,
        Action::None
    );
}

#[test]
fn a_delete_is_warned_about_then_done_only_after_the_warning_period() {
    let r = rules(
        "timezone: UTC\nrules:\n  - name: ttl\n    delete_after: 7d\n    warn_before_delete: 12h\n",
    );
    let e = env("pr-1").created("2026-11-01T00:00:00Z");
    // 13 hours before the TTL: nothing yet, but the daemon must wake for the warning.
    let d = one(&r, e.clone(), &none(), "2026-11-07T11:00:00Z");
    assert_eq!(
        (d.action, d.next_check),
        (Action::None, Some(at("2026-11-07T12:00:00Z")))
    );
    let warn = one(&r, e.clone(), &none(), "2026-11-07T12:00:00Z");
    assert_eq!(deleting(&warn), Action::Warn);
    assert_eq!(warn.next_check, Some(at("2026-11-08T00:00:00Z")));
    let mut ledger = none();
    ledger.record(&warn.delete_step().unwrap(), at("2026-11-07T12:00:00Z"));
    let waiting = one(&r, e.clone(), &ledger, "2026-11-07T23:59:59Z");
    assert_eq!(
        (waiting.action, deleting(&waiting)),
        (Action::None, Action::None)
    );
    let pending = waiting.delete.as_ref().unwrap();
    assert_eq!(
        &*pending.reason,
        "older than delete_after 1w: warned at 2026-11-07 12:00 UTC, will be deleted at 2026-11-08 00:00 UTC (rule \"ttl\")"
    );
    assert_eq!(pending.at, Some(at("2026-11-08T00:00:00Z")));
    assert_eq!(
        deleting(&one(&r, e.clone(), &ledger, "2026-11-08T00:00:00Z")),
        Action::Delete
    );
    // A warning given late still gives people the whole warning period.
    let late = one(&r, e.clone(), &none(), "2026-11-09T00:00:00Z");
    assert_eq!(
        (deleting(&late), late.next_check),
        (Action::Warn, Some(at("2026-11-09T12:00:00Z")))
    );
}

#[test]
fn no_delete_in_the_grace_period_on_a_partial_listing_for_other_modes_or_while_snoozed() {
    let r = rules(
        "timezone: UTC\nrules:\n  - name: ttl\n    grace_period: 2h\n    delete_when_idle_for: 1h\n    delete_after: 2h\n",
    );
    let e = env("pr-1").created("2026-11-26T10:00:00Z");
    assert_eq!(
        deleting(&one(&r, e.clone(), &none(), "2026-11-26T11:30:00Z")),
        Action::None
    );
    assert_eq!(
        deleting(&one(&r, e.clone(), &none(), "2026-11-26T12:00:00Z")),
        Action::Delete
    );
    let partial = Snapshot {
        environments: vec![e.clone()],
        complete: false,
    };
    let d = decide(&r, &partial, &none(), at("2026-11-26T12:00:00Z")).remove(0);
    assert_eq!((d.action, deleting(&d)), (Action::None, Action::None));
    let pending = d.delete.unwrap();
    assert!(
        pending.reason.contains("listing was partial"),
        "{}",
        pending.reason
    );
    let dev = one(
        &r,
        e.clone().mode(Mode::Development),
        &none(),
        "2026-11-26T12:00:00Z",
    );
    assert_eq!((dev.action, dev.delete), (Action::None, None));
    let snoozed = record(|r| r.snoozed_until = Some(at("2026-11-27T00:00:00Z")));
    let d = one(&r, e, &snoozed, "2026-11-26T12:00:00Z");
    assert_eq!((d.action, d.delete), (Action::None, None));
}

#[test]
fn a_delete_when_stopped_for_counts_from_when_it_was_stopped() {
    let r = rules("timezone: UTC\nrules:\n  - name: s\n    delete_when_stopped_for: 3d\n");
    let ledger = record(|r| r.stopped_since = Some(at("2026-11-20T00:00:00Z")));
    assert_eq!(
        deleting(&one(
            &r,
            env("pr-1").stopped(),
            &ledger,
            "2026-11-22T23:59:59Z"
        )),
        Action::None
    );
    assert_eq!(
        deleting(&one(
            &r,
            env("pr-1").stopped(),
            &ledger,
            "2026-11-23T00:00:00Z"
        )),
        Action::Delete
    );
    // Running again: the condition no longer holds.
    let running = one(&r, env("pr-1"), &ledger, "2026-11-23T00:00:00Z");
    assert_eq!((running.action, running.delete), (Action::None, None));
}

#[test]
fn an_environment_stopped_around_what_a_stop_does_not_stop_is_never_deleted_for_being_stopped() {
    let r = rules(
        "timezone: UTC\nrules:\n  - name: s\n    run: Mon-Fri 08:00-19:00\n    delete_when_stopped_for: 3d\n",
    );
    let ledger = record(|r| {
        r.stopped_since = Some(at("2026-11-20T00:00:00Z"));
        r.curfew_stop = Some(StopRecord {
            at: at("2026-11-20T00:00:00Z"),
            cause: StopCause::Schedule,
            rule: "s".into(),
        });
    });
    let in_use = Environment {
        unstoppable: Some("1 pod that curfew does not stop: Cluster/db ×1".into()),
        ..env("pr-1").stopped()
    };
    let d = one(&r, in_use.clone(), &ledger, "2026-11-24T12:00:00Z");
    assert_eq!(d.action, Action::Start, "stopped and started as usual");
    assert!(
        d.reason
            .ends_with("; still running, which a stop does not stop: 1 pod that curfew does not stop: Cluster/db ×1"),
        "{}",
        d.reason
    );
    let night = one(&r, in_use, &ledger, "2026-11-24T23:00:00Z");
    assert_eq!(night.action, Action::None, "not deleted: it is in use");
}

#[test]
fn a_stop_says_which_gitops_owner_would_put_it_back_and_what_the_rule_does_about_it() {
    let owners = "Application argocd/shop-pr-1 (automated sync with self-heal: reverts a stop within seconds unless curfew pauses it (gitops: pause or self-heal-only))";
    let owned = Environment {
        owners: Some(owners.into()),
        ..env("pr-1")
    };
    for (written, word) in [("", "pause"), ("    gitops: off\n", "off")] {
        let r = rules(&format!("{PREVIEWS}{written}"));
        let evening = one(
            &r,
            owned.clone(),
            &LedgerView::default(),
            "2026-11-23T19:30:00Z",
        );
        assert_eq!(evening.action, Action::Stop);
        assert!(
            evening
                .reason
                .ends_with(&format!("; GitOps (gitops: {word}): {owners}")),
            "{}",
            evening.reason
        );
        let noon = one(
            &r,
            owned.clone(),
            &LedgerView::default(),
            "2026-11-23T11:00:00Z",
        );
        assert!(!noon.reason.contains("GitOps"), "{}", noon.reason);
    }
    let wrong = parse_rules(
        "test.yaml",
        &format!("{PREVIEWS}    gitops: sometimes\n"),
        at("2026-11-01T00:00:00Z"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        wrong.contains(
            "test.yaml:6:13: rule \"previews\": unknown variant `sometimes`, expected one of pause, self-heal-only, off"
        ),
        "{wrong}"
    );
}

#[test]
fn environments_in_transition_or_error_are_left_alone_until_they_settle() {
    for (state, word) in [
        (EnvState::Starting, "DEPLOYING"),
        (EnvState::Stopping, "STOP_QUEUED"),
        (EnvState::Error, "DEPLOYMENT_ERROR"),
        (EnvState::Deleting, "DELETING"),
    ] {
        let d = one(
            &rules(PREVIEWS),
            env("pr-1").in_state(state, word),
            &none(),
            "2026-11-27T22:00:00+01:00",
        );
        assert_eq!(d.action, Action::None);
        assert_eq!(
            *d.reason,
            format!("in state {word}; left alone until it settles (rule \"previews\")")
        );
    }
}

#[test]
fn dry_run_rules_and_files_mark_their_decisions() {
    let r = rules(&PREVIEWS.replace("run: Mon", "dry_run: true\n    run: Mon"));
    assert!(one(&r, env("pr-1"), &none(), "2026-11-27T22:00:00+01:00").dry_run);
    let global = rules(&format!("safety:\n  dry_run: true\n{PREVIEWS}"));
    assert!(one(&global, env("pr-1"), &none(), "2026-11-27T22:00:00+01:00").dry_run);
}

#[test]
fn next_wakeup_is_the_earliest_instant_any_decision_could_change() {
    let r = rules(concat!(
        "timezone: Europe/Paris\nrules:\n  - name: previews\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n",
        "  - name: dev\n    match: { mode: development }\n    run: Mon-Fri 07:30-18:30 America/New_York\n",
    ));
    let snapshot = Snapshot {
        environments: vec![env("a"), env("b").mode(Mode::Development)],
        complete: true,
    };
    // 15:00 in Paris is 09:00 in New York: both run; Paris stops first.
    let d = decide(&r, &snapshot, &none(), at("2026-11-27T15:00:00+01:00"));
    assert_eq!(next_wakeup(&d), Some(at("2026-11-27T19:00:00+01:00")));
}

#[test]
fn explain_lists_every_rule_tried_and_what_the_schedule_says() {
    let r = rules(concat!(
        "timezone: Europe/Paris\nrules:\n  - name: staging\n    match: { mode: staging }\n    stop: Sat-Sun\n",
        "  - name: previews\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n",
    ));
    let e = explain(
        &r,
        &env("pr-1"),
        true,
        &none(),
        at("2026-11-27T19:30:00+01:00"),
    );
    assert_eq!(e.decision.action, Action::Stop);
    assert_eq!(e.steps[0], "not protected");
    assert_eq!(e.steps[1], "rule \"staging\" does not match (mode=staging)");
    assert_eq!(e.steps[2], "rule \"previews\" matches (mode=preview)");
    assert!(e.steps.iter().any(|s| s.starts_with("schedule run Mon-Fri 08:00-19:00 Europe/Paris: stopped time since 2026-11-27 19:00 CET, next boundary 2026-11-30 08:00 CET")), "{:#?}", e.steps);
}

/// Runs a rule file over simulated time, acting like the daemon would (instantly), and
/// returns every action with its instant.
fn simulate(
    rules: &RuleSet,
    mut envs: Vec<Environment>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, String, Action)> {
    let mut ledger = LedgerView::default();
    let mut log = Vec::new();
    let mut now = from;
    while now <= to {
        let snapshot = Snapshot {
            environments: envs.clone(),
            complete: true,
        };
        ledger.observe(&snapshot, now);
        let decisions = decide(rules, &snapshot, &ledger, now);
        for d in &decisions {
            if d.action != Action::None {
                log.push((now, d.environment.to_string(), d.action));
            }
            if let Some(e) = envs.iter_mut().find(|e| e.id == d.environment_id) {
                match d.action {
                    Action::Stop => e.state = EnvState::Stopped,
                    Action::Start => e.state = EnvState::Running,
                    _ => {}
                }
            }
            ledger.apply(d, now);
        }
        // Like the daemon: wake at the next boundary, or resync an hour later.
        now = next_wakeup(&decisions)
            .filter(|t| *t > now)
            .unwrap_or(now + TimeDelta::hours(1))
            .min(now + TimeDelta::hours(1));
    }
    log
}

#[test]
fn a_fortnight_across_the_autumn_change_stops_and_starts_at_local_wall_times() {
    for (zone, change) in [
        ("Europe/Paris", "2026-10-25"),
        ("America/New_York", "2026-11-01"),
    ] {
        let r = rules(&format!(
            "timezone: {zone}\nrules:\n  - name: previews\n    run: Mon-Fri 08:00-19:00\n"
        ));
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let from = at("2026-10-18T12:00:00Z");
        let to = at("2026-11-08T12:00:00Z");
        let log = simulate(
            &r,
            vec![env("pr-1").created("2026-10-01T00:00:00Z")],
            from,
            to,
        );
        // Sunday 18th noon: stopped at once (the weekend), then every weekday 08:00 / 19:00.
        let local: Vec<String> = log
            .iter()
            .skip(1)
            .map(|(t, _, a)| format!("{} {a}", t.with_timezone(&tz).format("%a %d %H:%M:%S")))
            .collect();
        let mut want = Vec::new();
        for day in [19, 20, 21, 22, 23, 26, 27, 28, 29, 30] {
            let day_name = |d: u32| ["Mon", "Tue", "Wed", "Thu", "Fri"][((d - 19) % 7) as usize];
            want.push(format!("{} {day} 08:00:00 start", day_name(day)));
            want.push(format!("{} {day} 19:00:00 stop", day_name(day)));
        }
        for day in [2, 3, 4, 5, 6] {
            let name = ["Mon", "Tue", "Wed", "Thu", "Fri"][(day - 2) as usize];
            want.push(format!("{name} {day:02} 08:00:00 start"));
            want.push(format!("{name} {day:02} 19:00:00 stop"));
        }
        assert_eq!(
            log[0].2,
            Action::Stop,
            "{zone}: the first pass stops it (Sunday)"
        );
        assert_eq!(local, want, "{zone} around {change}");
    }
}

/// A stop-only rule (`run: never` with `wake: never`): a running environment is stopped, a
/// person's start afterwards is left alone, and nothing is ever started.
#[test]
fn a_stop_only_rule_stops_once_and_leaves_a_persons_start_alone() {
    let r = rules(
        "timezone: Europe/Paris\nrules:\n  - name: parked\n    match: { mode: preview }\n    run: never\n    wake: never\n",
    );
    let now = "2026-11-27T10:00:00+01:00";
    let d = one(&r, env("pr-1"), &none(), now);
    assert_eq!((d.action, d.cause), (Action::Stop, Some(Cause::Schedule)));
    let mut ledger = none();
    ledger.apply(&d, at(now));
    let started = one(&r, env("pr-1"), &ledger, "2026-11-27T12:00:00+01:00");
    assert_eq!(started.action, Action::None, "{}", started.reason);
    let stopped = one(
        &r,
        env("pr-1").stopped(),
        &ledger,
        "2026-11-30T09:00:00+01:00",
    );
    assert_eq!(stopped.action, Action::None, "{}", stopped.reason);
}

#[test]
fn a_persons_night_start_in_the_simulation_is_not_fought() {
    let r = rules(PREVIEWS);
    let mut ledger = LedgerView::default();
    let stop_at = at("2026-11-27T19:00:00+01:00");
    let e = env("pr-1");
    let d = one(&r, e.clone(), &ledger, "2026-11-27T19:00:00+01:00");
    ledger.apply(&d, stop_at);
    // 21:00: a person starts it; every pass until Monday leaves it running.
    let running = e.clone();
    ledger.observe(
        &Snapshot {
            environments: vec![running.clone()],
            complete: true,
        },
        at("2026-11-27T21:00:00+01:00"),
    );
    for hour in [
        "2026-11-27T21:00:00+01:00",
        "2026-11-28T03:00:00+01:00",
        "2026-11-29T23:59:59+01:00",
        "2026-11-30T18:59:59+01:00",
    ] {
        assert_eq!(
            one(&r, running.clone(), &ledger, hour).action,
            Action::None,
            "{hour}"
        );
    }
    assert_eq!(
        one(&r, running, &ledger, "2026-11-30T19:00:00+01:00").action,
        Action::Stop
    );
}

fn arb_env() -> impl Strategy<Value = Environment> {
    (
        0usize..4,
        prop::sample::select(vec!["web", "api", "billing", "data"]),
        prop::sample::select(vec!["pr-1", "feat-x", "e2e-nightly", "main"]),
        any::<bool>(),
        any::<bool>(),
        0i64..30 * 24,
    )
        .prop_map(|(mode, project, name, stopped, protect_label, age_h)| {
            let mut e = env(name);
            e.mode = Mode::ALL[mode];
            e.project = project.into();
            e.created_at = at("2026-11-26T12:00:00Z") - TimeDelta::hours(age_h);
            if stopped {
                e.state = EnvState::Stopped;
            }
            if protect_label {
                e = e.label(PROTECT_LABEL, "true");
            }
            e
        })
}

fn arb_rule_file() -> impl Strategy<Value = String> {
    let rule = (
        prop::sample::select(vec!["preview", "development", "staging", "production"]),
        prop::sample::select(vec!["\"*\"", "web", "\"a*\"", "\"[web, data]\""]),
        prop::sample::select(vec![
            "run: Mon-Fri 08:00-19:00",
            "stop: Sat-Sun",
            "run: Mon-Sun 22:00-06:00",
            "events: \"stop=0 19 * * *\"",
        ]),
        prop::sample::select(vec![
            "",
            "    stop_when_idle: 1h\n",
            "    delete_after: 1d\n    allow_delete: [preview, production, staging, development]\n",
        ]),
    );
    (prop::collection::vec(rule, 1..4), any::<bool>()).prop_map(|(rules, protect_production)| {
        let mut yaml = format!("timezone: Europe/Paris\nsafety:\n  protect_production: {protect_production}\nprotect:\n  - project: billing\nrules:\n");
        for (i, (mode, project, schedule, extra)) in rules.into_iter().enumerate() {
            yaml.push_str(&format!("  - name: r{i}\n    match: {{ mode: {mode}, project: {project} }}\n    {schedule}\n{extra}"));
        }
        yaml
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn protected_and_unmatched_environments_are_never_acted_on(
        file in arb_rule_file(),
        envs in prop::collection::vec(arb_env(), 1..8),
        hours in 0i64..24 * 14,
    ) {
        let r = rules(&file);
        let now = at("2026-11-23T00:00:00Z") + TimeDelta::hours(hours);
        let snapshot = Snapshot { environments: envs.clone(), complete: true };
        for (env, d) in envs.iter().zip(decide(&r, &snapshot, &LedgerView::default(), now)) {
            let protected = &*env.project == "billing"
                || env.labels.contains_key(PROTECT_LABEL)
                || (r.safety.protect_production && env.mode == Mode::Production);
            let unmatched = r.rules.iter().all(|rule| !rule.selector.matches(env));
            if protected || unmatched {
                prop_assert_eq!(d.action, Action::None, "{} / {}: {}", env.name, env.project, d.reason);
            }
        }
    }
}

#[test]
fn an_unknown_cluster_is_protected_by_a_cluster_protection_and_matched_by_no_cluster_rule() {
    let r = rules(concat!(
        "timezone: UTC\nprotect:\n  - cluster: \"prod-*\"\n",
        "rules:\n  - name: eu\n    match: { cluster: \"eu-*\" }\n    stop_when_idle: 1m\n",
    ));
    let unknown = env("pr-1");
    let d = one(&r, unknown, &none(), "2026-11-27T12:00:00Z");
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason
            .contains("protected by protect[0] (cluster=prod-*)"),
        "{}",
        d.reason
    );
    let eu = Environment {
        cluster: Some("eu-west".into()),
        ..env("pr-1")
    };
    assert_eq!(
        one(&r, eu, &none(), "2026-11-27T12:00:00Z").action,
        Action::Stop
    );
    let prod = Environment {
        cluster: Some("prod-1".into()),
        ..env("pr-1")
    };
    assert_eq!(
        one(&r, prod, &none(), "2026-11-27T12:00:00Z").action,
        Action::None
    );
}

#[test]
fn a_cause_reads_back_from_its_ledger_word_which_earlier_ledgers_hold() {
    for cause in Cause::ALL {
        // What ledgers written before `ledger_word` existed hold.
        assert_eq!(cause.ledger_word(), format!("{cause:?}").to_lowercase());
        assert_eq!(Cause::from_ledger_word(cause.ledger_word()), Some(cause));
    }
    assert_eq!(Cause::from_ledger_word("stopped_for"), None);
    assert_eq!(StopCause::of(Some(Cause::Idle)), StopCause::Idle);
    for other in [None, Some(Cause::Schedule), Some(Cause::Age)] {
        assert_eq!(StopCause::of(other), StopCause::Schedule);
    }
}

#[test]
fn a_pass_decisions_share_the_listing_words_and_one_copy_of_each_reason() {
    let snapshot = Snapshot {
        environments: vec![env("pr-1"), env("pr-2"), env("pr-3").stopped()],
        complete: true,
    };
    let now = at("2026-11-27T19:00:00+01:00");
    let rules = rules(PREVIEWS);
    let decisions = decide(&rules, &snapshot, &none(), now);
    for (e, d) in snapshot.environments.iter().zip(&decisions) {
        assert!(Arc::ptr_eq(&e.id, &d.environment_id));
        assert!(Arc::ptr_eq(&e.name, &d.environment));
        assert!(Arc::ptr_eq(&e.project, &d.project));
        assert!(Arc::ptr_eq(d.rule.as_ref().unwrap(), &rules.rules[0].name));
    }
    // Both running previews stop for the same reason: one copy of it.
    assert_eq!(
        (decisions[0].action, decisions[1].action),
        (Action::Stop, Action::Stop)
    );
    assert!(Arc::ptr_eq(&decisions[0].reason, &decisions[1].reason));
    assert_ne!(decisions[0].reason, decisions[2].reason);
}

/// The issue's rule with 20,000 holiday ranges wrote a 500 KB reason per action, in the log
/// and the ledger. A reason names the window and the holiday that apply, and counts the
/// rest.
#[test]
fn reasons_stay_short_whatever_the_rule_file_lists() {
    let days = |from: chrono::NaiveDate, n: i64| -> Vec<String> {
        (0..n)
            .map(|i| {
                let d = from + TimeDelta::days(i * 2);
                format!("\"{d}..{d}\"")
            })
            .collect()
    };
    let holidays = days(chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(), 20_000);
    let windows: Vec<String> = (0..100)
        .map(|i| format!("\"Sat {:02}:00-{:02}:30\"", i % 24, i % 24))
        .collect();
    let yaml = format!(
        "timezone: Europe/Paris\nrules:\n  - name: many-holidays\n    match: {{ project: web }}\n    run: Mon-Fri 08:00-19:00\n    holidays: [{}]\n  - name: many-windows\n    match: {{ project: api }}\n    run: [\"Mon-Fri 08:00-19:00\", {}]\n",
        holidays.join(", "),
        windows.join(", ")
    );
    let rules = rules(&yaml);
    // Thursday 2026-11-26 is one of the holiday dates (every other day from 2000-01-01).
    let holiday = one(&rules, env("pr-1"), &none(), "2026-11-26T10:00:00+01:00");
    assert_eq!(holiday.action, Action::Stop);
    assert!(
        holiday.reason.contains(
            "Mon-Fri 08:00-19:00 Europe/Paris, except 2026-11-26 (one of 20000 holidays)"
        ),
        "{}",
        holiday.reason
    );
    let working = one(&rules, env("pr-1"), &none(), "2026-11-27T20:00:00+01:00");
    assert_eq!(working.action, Action::Stop);
    assert!(
        working
            .reason
            .contains("except 20000 holidays (none on 2026-11-27)"),
        "{}",
        working.reason
    );
    let mut api = env("pr-2");
    api.project = "api".into();
    let windows = one(&rules, api, &none(), "2026-11-26T10:00:00+01:00");
    assert!(
        windows
            .reason
            .contains("run Mon-Fri 08:00-19:00 Europe/Paris, and 100 other windows"),
        "{}",
        windows.reason
    );
    for d in [&holiday, &working, &windows] {
        assert!(
            d.reason.len() < 300,
            "{} bytes: {}",
            d.reason.len(),
            d.reason
        );
    }
}

/// The words people read in logs, Slack and `explain`: each kind of schedule says inside
/// or outside in its own terms (a `stop:` rule's stopped time is *inside* its windows), and
/// a person's start names the next scheduled *stop*, not the window's start.
#[test]
fn reasons_say_inside_and_outside_in_each_schedules_own_terms() {
    let file = |schedule: &str| {
        rules(&format!(
            "timezone: Europe/Paris\nrules:\n  - name: r\n    {schedule}\n"
        ))
    };
    let run = file("run: Mon-Fri 08:00-19:00");
    let stop = file("stop: Sat-Sun");
    let events = file("events: \"stop=0 19 * * 1-5; start=0 8 * * 1-5\"");
    let stopped_by_curfew = |t: &str| {
        record(|r| {
            r.curfew_stop = Some(StopRecord {
                at: at(t),
                cause: StopCause::Schedule,
                rule: "r".into(),
            })
        })
    };
    let stop_seen = |t: &str| record(|r| r.schedule_stop_settled_at = Some(at(t)));
    let friday_19 = "2026-11-27T19:00:00+01:00";
    let saturday_0 = "2026-11-28T00:00:00+01:00";
    let events_spec = "events \"stop=0 19 * * 1-5; start=0 8 * * 1-5; tz=Europe/Paris\"";
    let cases: Vec<(&RuleSet, Environment, LedgerView, &str, Action, String)> = vec![
        // run: stopped time is outside the windows.
        (&run, env("pr-1"), none(), "2026-11-27T20:00:00+01:00", Action::Stop,
         "outside run Mon-Fri 08:00-19:00 Europe/Paris since 2026-11-27 19:00 CET; stopped by rule \"r\"".into()),
        (&run, env("pr-1").stopped(), none(), "2026-11-27T20:00:00+01:00", Action::None,
         "stopped, as wanted: outside run Mon-Fri 08:00-19:00 Europe/Paris since 2026-11-27 19:00 CET".into()),
        (&run, env("pr-1").stopped(), stopped_by_curfew(friday_19), "2026-11-30T08:00:00+01:00", Action::Start,
         "inside run Mon-Fri 08:00-19:00 Europe/Paris since 2026-11-30 08:00 CET; curfew stopped it at 2026-11-27 19:00 CET for the schedule, so rule \"r\" starts it".into()),
        (&run, env("pr-1"), none(), "2026-11-26T10:00:00+01:00", Action::None,
         "running, inside run Mon-Fri 08:00-19:00 Europe/Paris until 2026-11-26 19:00 CET (rule \"r\")".into()),
        (&run, env("pr-1"), stop_seen(friday_19), "2026-11-27T21:00:00+01:00", Action::None,
         "started by hand after the schedule's stop at 2026-11-27 19:00 CET; left running until the next scheduled stop at 2026-11-30 19:00 CET (rule \"r\")".into()),
        // stop: stopped time is inside the windows.
        (&stop, env("pr-1"), none(), "2026-11-28T10:00:00+01:00", Action::Stop,
         "inside stop Sat-Sun 00:00-24:00 Europe/Paris since 2026-11-28 00:00 CET; stopped by rule \"r\"".into()),
        (&stop, env("pr-1").stopped(), none(), "2026-11-28T10:00:00+01:00", Action::None,
         "stopped, as wanted: inside stop Sat-Sun 00:00-24:00 Europe/Paris since 2026-11-28 00:00 CET".into()),
        (&stop, env("pr-1").stopped(), none(), "2026-11-26T10:00:00+01:00", Action::None,
         "outside stop Sat-Sun 00:00-24:00 Europe/Paris since 2026-11-23 00:00 CET, but it was not stopped by curfew's schedule; left stopped (wake: stopped-by-curfew)".into()),
        (&stop, env("pr-1").stopped(), stopped_by_curfew(saturday_0), "2026-11-30T00:00:00+01:00", Action::Start,
         "outside stop Sat-Sun 00:00-24:00 Europe/Paris since 2026-11-30 00:00 CET; curfew stopped it at 2026-11-28 00:00 CET for the schedule, so rule \"r\" starts it".into()),
        (&stop, env("pr-1"), none(), "2026-11-26T10:00:00+01:00", Action::None,
         "running, outside stop Sat-Sun 00:00-24:00 Europe/Paris until 2026-11-28 00:00 CET (rule \"r\")".into()),
        (&stop, env("pr-1"), stop_seen(saturday_0), "2026-11-28T12:00:00+01:00", Action::None,
         "started by hand after the schedule's stop at 2026-11-28 00:00 CET; left running until the next scheduled stop at 2026-12-05 00:00 CET (rule \"r\")".into()),
        // events: after a stop event, stopped time; after a start event, running time.
        (&events, env("pr-1"), none(), "2026-11-27T20:00:00+01:00", Action::Stop,
         format!("in the stopped time of {events_spec} since 2026-11-27 19:00 CET; stopped by rule \"r\"")),
        (&events, env("pr-1").stopped(), stopped_by_curfew(friday_19), "2026-11-30T08:00:00+01:00", Action::Start,
         format!("in the running time of {events_spec} since 2026-11-30 08:00 CET; curfew stopped it at 2026-11-27 19:00 CET for the schedule, so rule \"r\" starts it")),
        (&events, env("pr-1"), none(), "2026-11-26T10:00:00+01:00", Action::None,
         format!("running, in the running time of {events_spec} until 2026-11-26 19:00 CET (rule \"r\")")),
        (&events, env("pr-1"), stop_seen(friday_19), "2026-11-27T21:00:00+01:00", Action::None,
         "started by hand after the schedule's stop at 2026-11-27 19:00 CET; left running until the next scheduled stop at 2026-11-30 19:00 CET (rule \"r\")".into()),
    ];
    for (rules, e, ledger, now, action, reason) in cases {
        let d = one(rules, e, &ledger, now);
        assert_eq!(
            (d.action, &*d.reason),
            (action, reason.as_str()),
            "at {now}"
        );
    }
}

/// The README's rule: a preview whose delete is coming is still stopped at 19:00 and when
/// idle, in the same decision that warns about its delete or waits for it; the delete keeps
/// its clock; a start is not made for what is deleted in the same pass.
#[test]
fn a_coming_delete_does_not_keep_an_environment_running() {
    let r = rules(concat!(
        "timezone: Europe/Paris\nrules:\n  - name: previews\n    match: { mode: preview }\n",
        "    run: Mon-Fri 08:00-19:00\n    stop_when_idle: 3h\n    delete_after: 7d\n    warn_before_delete: 12h\n",
    ));
    let week_old = |e: Environment| e.created("2026-11-20T18:00:00+01:00");
    let friday_19 = "2026-11-27T19:00:00+01:00";
    let warned = |t: &str| record(|r| r.delete_warned_at = Some(at(t)));
    let cases = [
        // Warned at this very pass, at the boundary: stopped, and the warning goes out.
        (
            week_old(env("pr-1")).deployed("2026-11-27T18:00:00+01:00"),
            none(),
            friday_19,
            (Action::Stop, Some(Cause::Schedule), Action::Warn),
            "older than delete_after 1w: will be deleted at 2026-11-28 07:00 CET (rule \"previews\"); warning now",
        ),
        // Warned earlier, waiting for the end of the warning: stopped at the boundary.
        (
            week_old(env("pr-1")).deployed("2026-11-27T18:00:00+01:00"),
            warned("2026-11-27T08:00:00+01:00"),
            friday_19,
            (Action::Stop, Some(Cause::Schedule), Action::None),
            "older than delete_after 1w: warned at 2026-11-27 08:00 CET, will be deleted at 2026-11-27 20:00 CET (rule \"previews\")",
        ),
        // Warned and idle inside the window: stopped for being idle.
        (
            week_old(env("pr-1")).deployed("2026-11-27T11:00:00+01:00"),
            warned("2026-11-27T10:00:00+01:00"),
            "2026-11-27T14:00:00+01:00",
            (Action::Stop, Some(Cause::Idle), Action::None),
            "older than delete_after 1w: warned at 2026-11-27 10:00 CET, will be deleted at 2026-11-27 22:00 CET (rule \"previews\")",
        ),
        // Due: deleted; if the executor holds the delete back, the stop is made instead.
        (
            week_old(env("pr-1")).deployed("2026-11-27T18:00:00+01:00"),
            warned("2026-11-27T06:00:00+01:00"),
            "2026-11-27T19:30:00+01:00",
            (Action::Stop, Some(Cause::Schedule), Action::Delete),
            "older than delete_after 1w since 2026-11-27 18:00 CET: deleted by rule \"previews\"",
        ),
    ];
    for (e, ledger, now, (action, cause, delete), reason) in cases {
        let d = one(&r, e, &ledger, now);
        assert_eq!(
            (d.action, d.cause, deleting(&d)),
            (action, cause, delete),
            "at {now}: {d:#?}"
        );
        assert_eq!(&*d.delete.as_ref().unwrap().reason, reason);
        let step = d.delete_step();
        assert_eq!(
            step.as_ref().map(|s| s.action),
            (delete != Action::None).then_some(delete)
        );
        assert_eq!(
            d.actions().collect::<Vec<_>>(),
            [Some(action), (delete != Action::None).then_some(delete)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        );
    }
    // Due while stopped by curfew at the window's start: not started only to be deleted.
    let ledger = record(|r| {
        r.delete_warned_at = Some(at("2026-11-29T12:00:00+01:00"));
        r.curfew_stop = Some(StopRecord {
            at: at(friday_19),
            cause: StopCause::Schedule,
            rule: "previews".into(),
        });
    });
    let d = one(
        &r,
        week_old(env("pr-1")).stopped(),
        &ledger,
        "2026-11-30T08:00:00+01:00",
    );
    assert_eq!((d.action, deleting(&d)), (Action::None, Action::Delete));
    assert!(
        d.reason.ends_with("; not started: it is due for deletion"),
        "{}",
        d.reason
    );
    // `explain` shows the delete's step, the schedule's and the idle clock's.
    let e = explain(
        &r,
        &week_old(env("pr-1")).deployed("2026-11-27T18:00:00+01:00"),
        true,
        &none(),
        at(friday_19),
    );
    assert_eq!(
        e.steps[3..],
        [
            "older than delete_after 1w: will be deleted at 2026-11-28 07:00 CET (rule \"previews\"); warning now",
            "schedule run Mon-Fri 08:00-19:00 Europe/Paris: stopped time since 2026-11-27 19:00 CET, next boundary 2026-11-30 08:00 CET",
            "outside run Mon-Fri 08:00-19:00 Europe/Paris since 2026-11-27 19:00 CET; stopped by rule \"previews\"",
        ],
        "{:#?}",
        e.steps
    );
}

#[test]
fn a_delayed_delete_waits_for_its_new_time_and_is_warned_before_it() {
    let rules = rules(
        "timezone: Europe/Paris\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 7d\n    warn_before_delete: 12h\n",
    );
    // Created on the 1st: due on the 8th. A person delayed it to the 12th at 12:00 UTC.
    let delayed = LedgerView::new([(
        "id-pr-1",
        EnvRecord {
            delete_not_before: Some(at("2026-11-12T12:00:00Z")),
            delete_delayed_by: Some("alice".into()),
            ..EnvRecord::default()
        },
    )]);
    let d = one(&rules, env("pr-1"), &delayed, "2026-11-10T00:00:00Z");
    assert_eq!(deleting(&d), Action::None, "{d:?}");
    assert_eq!(
        d.next_check,
        Some(at("2026-11-12T00:00:00Z")),
        "warned 12 h before"
    );
    let d = one(&rules, env("pr-1"), &delayed, "2026-11-12T00:00:00Z");
    assert_eq!(deleting(&d), Action::Warn);
    assert!(
        d.delete
            .as_ref()
            .unwrap()
            .reason
            .contains("delayed until 2026-11-12 13:00 CET by alice"),
        "{d:?}"
    );
    // Without the delay it would be deleted then already.
    assert_eq!(
        deleting(&one(&rules, env("pr-1"), &none(), "2026-11-10T00:00:00Z")),
        Action::Warn
    );
}

// ---- upcoming deletes ---------------------------------------------------------------

#[test]
fn upcoming_deletes_are_those_decide_would_make_within_a_day() {
    // delete_after 2d, warn_before_delete 12h (the notifications' rule of a day's digest).
    let r = rules(
        "timezone: Europe/Paris\nrules:\n  - name: ttl\n    match: { mode: preview }\n    delete_after: 2d\n    warn_before_delete: 12h\n",
    );
    let now = at("2026-10-10T12:00:00Z");
    let env = |name: &str, created: &str| env(name).created(created).stopped();
    let envs = [
        // Due in 30 h: not within the day.
        env("far", "2026-10-09T18:00:00Z"),
        // Due in 10 h, warned 3 h ago: deleted at the due time.
        env("due-first", "2026-10-08T22:00:00Z"),
        // Due in 2 h, warned only 1 h ago: the warning period ends in 11 h.
        env("warned-late", "2026-10-08T14:00:00Z"),
        // Due in 20 h, not warned yet (the warning comes at 12 h before): at the due time.
        env("not-warned", "2026-10-09T08:00:00Z"),
        // Due long ago, warned long ago, snoozed for 5 h more.
        env("snoozed", "2026-10-01T00:00:00Z"),
        // Not a preview: this rule may not delete it.
        Environment {
            mode: Mode::Staging,
            ..env("staging", "2026-10-01T00:00:00Z")
        },
    ];
    let mut view = LedgerView::default();
    view.entry("id-due-first").delete_warned_at = Some(now - TimeDelta::hours(3));
    view.entry("id-warned-late").delete_warned_at = Some(now - TimeDelta::hours(1));
    view.entry("id-snoozed").delete_warned_at = Some(now - TimeDelta::days(3));
    view.entry("id-snoozed").snoozed_until = Some(now + TimeDelta::hours(5));
    let snapshot = Snapshot {
        environments: envs.to_vec(),
        complete: false,
    };
    let got: Vec<(String, DateTime<Utc>)> =
        upcoming_deletes(&r, &snapshot, &view, now, TimeDelta::hours(24))
            .into_iter()
            .map(|u| (u.environment.to_string(), u.at))
            .collect();
    let want = [
        ("snoozed", now + TimeDelta::hours(5)),
        ("due-first", now + TimeDelta::hours(10)),
        ("warned-late", now + TimeDelta::hours(11)),
        ("not-warned", now + TimeDelta::hours(20)),
    ];
    assert_eq!(got, want.map(|(n, t)| (n.to_string(), t)).to_vec());
    // The view itself is not changed by the projection.
    assert_eq!(view.get("id-not-warned"), None);
}

#[test]
fn a_stop_warns_who_will_revert_it_unless_the_rule_has_curfew_pause_it() {
    use crate::platform::{GitOps, Reverter};
    let owner =
        "Application argocd/shop-pr-1 (Argo CD automated sync with self-heal, within seconds)";
    let owned = Environment {
        reverters: vec![Reverter {
            owner: owner.into(),
            paused_under: vec![GitOps::Pause, GitOps::SelfHealOnly],
        }],
        ..env("pr-1")
    };
    let warning = format!(
        "will be reverted by {owner} unless gitops: pause or self-heal-only (rule \"previews\" has gitops: off)"
    );
    for (written, expected) in [
        ("", None),
        ("    gitops: self-heal-only\n", None),
        ("    gitops: off\n", Some(warning.clone())),
    ] {
        let r = rules(&format!("{PREVIEWS}{written}"));
        let rule = r.rule("previews").unwrap();
        assert_eq!(
            revert_warnings(rule, &owned),
            Vec::from_iter(expected.clone()),
            "{written}"
        );
        let evening = one(
            &r,
            owned.clone(),
            &LedgerView::default(),
            "2026-11-23T19:30:00Z",
        );
        assert_eq!(evening.action, Action::Stop);
        assert_eq!(
            evening.reason.contains(&format!("; WARNING: {warning}")),
            expected.is_some(),
            "{}",
            evening.reason
        );
    }
    // One its ApplicationSet puts back: whatever the rule says.
    let generated = Environment {
        reverters: vec![Reverter {
            owner: "Application argocd/shop-pr-1 (…, generated by ApplicationSet previews, …)"
                .into(),
            paused_under: vec![],
        }],
        ..env("pr-1")
    };
    let r = rules(PREVIEWS);
    assert_eq!(
        revert_warnings(r.rule("previews").unwrap(), &generated),
        [
            "will be reverted by Application argocd/shop-pr-1 (…, generated by ApplicationSet previews, …) whatever gitops: says (rule \"previews\")"
        ]
    );
}
