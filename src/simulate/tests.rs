//! Hand-computed fortnights. The daemon's own passes over the same days are compared with
//! the simulation in `reconcile::tests` (on the in-process sandbox, manual clock).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::config::parse_rules;
use crate::platform::{EnvState, Environment, Mode};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Office hours in Paris for `web`, weekends off for `data`, a 3-day TTL for `tmp`.
const RULES: &str = "timezone: Europe/Paris
currency: EUR
defaults: { hourly_cost: 0.10 }
rules:
  - name: office
    match: { project: web }
    run: Mon-Fri 08:00-19:00
  - name: weekend
    match: { project: data }
    stop: Sat-Sun 00:00-24:00
  - name: ttl
    match: { project: tmp }
    delete_after: 3d
";

fn env(name: &str, project: &str, mode: Mode, cost: Option<f64>) -> Environment {
    Environment {
        id: format!("id-{name}").into(),
        name: name.into(),
        project: project.into(),
        mode,
        cluster: None,
        state: EnvState::Running,
        platform_state: None,
        created_at: at("2026-09-01T00:00:00Z"),
        last_deployed_at: None,
        last_activity_at: None,
        labels: BTreeMap::new(),
        hourly_cost: cost,
        unstoppable: None,
        owners: None,
        reverters: Vec::new(),
        reverted: None,
        stopped_by_curfew_at: None,
        overrides: None,
    }
}

fn fleet() -> Snapshot {
    let mut ttl = env("tmp-1", "tmp", Mode::Preview, Some(4.0));
    // Due at Tuesday 09:59 UTC, confirmed on the pass one resync (a minute) later.
    ttl.created_at = at("2026-10-17T09:59:00Z");
    Snapshot {
        environments: vec![
            env("web-a", "web", Mode::Preview, Some(1.0)),
            env("web-b", "web", Mode::Preview, Some(2.0)),
            env("web-c", "web", Mode::Preview, Some(0.5)),
            env("data-1", "data", Mode::Development, Some(3.0)),
            ttl,
            env("main", "web", Mode::Production, Some(10.0)),
            env("tools", "other", Mode::Staging, None),
        ],
        complete: true,
    }
}

/// Monday 19 October 00:00 in Paris, for 14 days: to Monday 2 November 00:00, across the
/// night of 25 October when the clocks go back (337 hours in all).
fn fortnight(rules: &str) -> Projection {
    let rules = parse_rules("rules.yaml", rules, at("2026-10-19T00:00:00+02:00")).unwrap();
    let options = Options::new(at("2026-10-19T00:00:00+02:00"), 14, TimeDelta::seconds(60));
    simulate(&rules, fleet(), LedgerView::default(), &options)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn rule<'p>(p: &'p Projection, name: &str) -> &'p Totals {
    &p.rules.iter().find(|r| r.rule == name).unwrap().totals
}

#[test]
fn a_fortnight_across_the_autumn_change_counts_its_25_hour_night() {
    let p = fortnight(RULES);
    assert_eq!(p.to, at("2026-11-02T00:00:00+01:00"));
    assert_eq!((p.to - p.from).num_hours(), 337);
    // Office hours: 10 weekdays × 11 h running; stopped at once (Monday 00:00 is outside
    // the window), then every weekday at 19:00, started every weekday at 08:00.
    let office = rule(&p, "office");
    assert_eq!(office.environments, 3);
    assert!(close(office.hours_running, 3.0 * 110.0), "{office:?}");
    assert!(close(office.hours_stopped, 3.0 * 227.0), "{office:?}");
    assert!(close(office.always_on_cost, 3.5 * 337.0));
    assert!(close(office.projected_cost, 3.5 * 110.0));
    assert!(close(office.saved, 3.5 * 227.0));
    assert!(close(office.saved_percent.unwrap(), 100.0 * 227.0 / 337.0));
    assert_eq!((office.stops, office.starts, office.deletes), (33, 30, 0));
    // Weekends off: Saturday 24 00:00 CEST to Monday 26 00:00 CET is 49 hours, Saturday 31
    // to the end 48; started again on Monday 26 only (Monday 2 is the horizon's end).
    let weekend = rule(&p, "weekend");
    assert!(close(weekend.hours_stopped, 97.0), "{weekend:?}");
    assert!(close(weekend.hours_running, 240.0));
    assert!(close(weekend.saved, 3.0 * 97.0));
    assert_eq!((weekend.stops, weekend.starts), (2, 1));
    // The TTL: due Tuesday 09:59 UTC, deleted a resync later, at 10:00 UTC; 36 hours
    // running, then gone.
    let ttl = rule(&p, "ttl");
    assert!(close(ttl.hours_running, 36.0), "{ttl:?}");
    assert!(close(ttl.hours_deleted, 301.0));
    assert!(close(ttl.saved, 4.0 * 301.0));
    assert_eq!(ttl.deletes, 1);
    assert_eq!(p.deletes.len(), 1);
    assert_eq!(
        (
            p.deletes[0].at,
            &*p.deletes[0].environment,
            &*p.deletes[0].rule
        ),
        (at("2026-10-20T10:00:00Z"), "tmp-1", "ttl")
    );
    assert!(close(
        p.total.always_on_cost,
        3.5 * 337.0 + 3.0 * 337.0 + 4.0 * 337.0
    ));
    assert!(close(p.total.saved, 3.5 * 227.0 + 3.0 * 97.0 + 4.0 * 301.0));
    assert_eq!(p.total.environments, 5);
}

#[test]
fn the_daily_series_gives_the_night_the_clocks_go_back_its_25_hours() {
    let p = fortnight(RULES);
    let day = |date: &str, rule: &str| {
        p.daily
            .iter()
            .find(|d| d.date.to_string() == date && d.rule == rule)
            .unwrap()
            .clone()
    };
    assert_eq!(p.daily.len(), 14 * 3);
    let sunday = day("2026-10-25", "office");
    assert!(close(sunday.hours_stopped, 3.0 * 25.0), "{sunday:?}");
    assert!(close(sunday.always_on_cost, 3.5 * 25.0));
    assert!(close(day("2026-10-25", "weekend").hours_stopped, 25.0));
    let monday = day("2026-10-26", "office");
    assert!(close(monday.hours_running, 3.0 * 11.0), "{monday:?}");
    assert_eq!((monday.stops, monday.starts), (3, 3));
    let tuesday = day("2026-10-20", "ttl");
    assert!(close(tuesday.hours_running, 12.0), "{tuesday:?}");
    assert!(close(tuesday.hours_deleted, 12.0));
    assert_eq!(tuesday.deletes, 1);
    let days: f64 = p.daily.iter().map(|d| d.saved).sum();
    assert!(close(days, p.total.saved));
}

#[test]
fn protected_and_unmatched_environments_are_never_touched_and_keep_their_cost() {
    let p = fortnight(RULES);
    let untouched: Vec<(&str, bool, f64)> = p
        .untouched
        .iter()
        .map(|u| (&*u.environment, u.protected, u.cost))
        .collect();
    // `tools` has no cost of its own: defaults.hourly_cost applies.
    assert_eq!(untouched.len(), 2);
    assert_eq!((untouched[0].0, untouched[0].1), ("main", true));
    assert!(close(untouched[0].2, 10.0 * 337.0));
    assert_eq!((untouched[1].0, untouched[1].1), ("tools", false));
    assert!(close(untouched[1].2, 0.10 * 337.0));
    assert!(p.untouched[0].reason.contains("safety.protect_production"));
    assert!(p.untouched[1].reason.starts_with("no rule matches"));
}

#[test]
fn the_clock_jumps_from_change_to_change() {
    let p = fortnight(RULES);
    // The first pass, 10 weekdays × 2 boundaries, 2 weekend stops and a start, the TTL
    // due and deleted: 26 passes in 337 hours, not 20,220 minutes.
    assert_eq!(p.passes, 26);
}

#[test]
fn the_busiest_moments_count_what_is_due_at_once_against_the_caps() {
    let p = fortnight(&RULES.replace(
        "currency: EUR",
        "currency: EUR\nsafety: { max_stops_per_pass: 2 }",
    ));
    assert_eq!(p.busiest.max_stops_per_pass, 2);
    let first = &p.busiest.moments[0];
    // Monday 00:00: three stops due, two go, one is held back until the next pass.
    assert_eq!(first.at, at("2026-10-19T00:00:00+02:00"));
    assert_eq!((first.stops, first.held_back), (2, 1));
    // Every office boundary has three due: 21 passes capped, each followed a resync later.
    assert_eq!(p.busiest.passes_capped, 21);
    let office = rule(&p, "office");
    assert_eq!((office.stops, office.starts), (33, 30));
    // web-c (the last by id among equals) waits a minute each time: a minute more running
    // on Monday night, then a minute less each morning and a minute more each evening.
    assert!(
        close(office.hours_running, 3.0 * 110.0 + 1.0 / 60.0),
        "{office:?}"
    );
}

#[test]
fn savings_over_the_first_days_are_summed_apart() {
    let rules = parse_rules("rules.yaml", RULES, at("2026-10-19T00:00:00+02:00")).unwrap();
    let mut options = Options::new(at("2026-10-19T00:00:00+02:00"), 14, TimeDelta::seconds(60));
    options.horizons = vec![7, 30];
    let p = simulate(&rules, fleet(), LedgerView::default(), &options);
    let week = &p.horizons[0];
    assert_eq!(week.days, 7);
    // The first week, to Monday 26 00:00 (169 hours): office 5 × 11 h running, weekend
    // 49 h stopped, TTL gone for 169 − 36 hours.
    let office = week.rules.iter().find(|(r, _)| r == "office").unwrap().1;
    assert!(close(office, 3.5 * (169.0 - 55.0)), "{office}");
    assert!(close(week.total, 3.5 * 114.0 + 3.0 * 49.0 + 4.0 * 133.0));
    // A horizon past the end is the whole simulation.
    assert!(close(p.horizons[1].total, p.total.saved));
}

#[test]
fn a_snooze_label_ends_when_it_ends_and_an_idle_stop_comes_at_its_deadline() {
    let rules = "timezone: UTC\nrules:\n  - name: idle\n    match: { mode: preview }\n    stop_when_idle: 3h\n";
    let rules = parse_rules("rules.yaml", rules, at("2026-11-02T00:00:00Z")).unwrap();
    let mut idle = env("pr-1", "web", Mode::Preview, Some(1.0));
    idle.last_deployed_at = Some(at("2026-11-02T09:30:00Z"));
    let mut snoozed = env("pr-2", "web", Mode::Preview, Some(1.0));
    snoozed.labels.insert(
        crate::platform::SNOOZE_LABEL.into(),
        "2026-11-02T15:00:00Z".into(),
    );
    // As an adapter reads labels when it lists.
    snoozed.overrides = crate::platform::LabelOverrides::of_labels(&snoozed.labels);
    let snapshot = Snapshot {
        environments: vec![idle, snoozed],
        complete: true,
    };
    let options = Options::new(at("2026-11-02T10:00:00Z"), 1, TimeDelta::seconds(60));
    let mut actions = Vec::new();
    simulate_each(&rules, snapshot, LedgerView::default(), &options, |a| {
        actions.push((a.at, a.environment.to_string(), a.action))
    });
    assert_eq!(
        actions,
        [
            (at("2026-11-02T12:30:00Z"), "pr-1".to_string(), Action::Stop),
            (at("2026-11-02T15:00:00Z"), "pr-2".to_string(), Action::Stop),
        ]
    );
}

#[test]
fn comparing_two_rule_files_names_who_is_stopped_differently_and_when() {
    let parse =
        |text: &str| parse_rules("rules.yaml", text, at("2026-10-19T00:00:00+02:00")).unwrap();
    let mut options = Options::new(at("2026-10-19T00:00:00+02:00"), 14, TimeDelta::seconds(60));
    options.per_environment = true;
    let old = simulate(&parse(RULES), fleet(), LedgerView::default(), &options);
    let new_rules = RULES.replace("run: Mon-Fri 08:00-19:00", "run: Mon-Fri 08:00-18:00");
    let new = simulate(&parse(&new_rules), fleet(), LedgerView::default(), &options);
    let c = compare::compare(&old, &new);
    // Only the office environments change: an hour less a weekday each.
    let changed: Vec<&str> = c.environments.iter().map(|e| &*e.environment).collect();
    assert_eq!(
        changed,
        ["web-b", "web-a", "web-c"],
        "largest change in cost first"
    );
    let b = &c.environments[0];
    assert!(close(b.old_hours_running - b.new_hours_running, 10.0));
    assert!(close(b.old_cost - b.new_cost, 20.0));
    let moment = |t: &str| compare::Moment {
        at: at(t),
        actions: vec![Action::Stop],
    };
    assert_eq!(
        b.first_difference,
        (
            Some(moment("2026-10-19T19:00:00+02:00")),
            Some(moment("2026-10-19T18:00:00+02:00"))
        )
    );
    assert!(close(c.new.saved - c.old.saved, 3.5 * 10.0));
    let office = c.rules.iter().find(|r| r.rule == "office").unwrap();
    assert!(close(
        office.new.as_ref().unwrap().hours_running,
        3.0 * 100.0
    ));
}
