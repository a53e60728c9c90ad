//! The daily digest: when it is due (a wall time in a zone, DST-correct), and what it says
//! (stopped now, saved yesterday and this month, deletions coming in the next 24 hours).
//!
//! Digest times follow the schedules' rules for days the clocks change
//! ([`crate::schedule::zone`]): a time inside the spring gap is sent at the first instant
//! after the gap, a time inside the repeated autumn hour at its first occurrence, and never
//! twice a day. Zone times are computed here with chrono-tz, not given to a cron library
//! (see `docs/daemon.md` for why).

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::message::{Digest, EnvironmentRef, Saved, UpcomingDelete};
use crate::ledger::StopInterval;
use crate::platform::{EnvState, Environment, SNOOZE_LABEL, Snapshot};
use crate::policy::RuleSet;
use crate::policy::{self, Decision, LedgerView};
use crate::schedule::{parse_expiry, zone};

/// How far ahead a digest lists deletions.
pub const DIGEST_HORIZON: TimeDelta = TimeDelta::hours(24);

/// The first instant strictly after `now` at which the wall clock in `tz` reads `at`.
///
/// On a spring-forward day a time inside the gap resolves to the end of the gap; on a
/// fall-back day a repeated time resolves to its first occurrence, so each local day has
/// exactly one digest instant.
pub fn next_digest_after(at: NaiveTime, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    // Yesterday and the day after tomorrow cover every offset a zone may have.
    [
        today.checked_sub_days(Days::new(1)),
        Some(today),
        today.checked_add_days(Days::new(1)),
        today.checked_add_days(Days::new(2)),
    ]
    .into_iter()
    .flatten()
    .map(|day| zone::resolve(tz, day.and_time(at)))
    .filter(|t| *t > now)
    .min()
    .unwrap_or(now + TimeDelta::days(1))
}

/// The first instant of the local day `date` in `tz`.
fn start_of(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    zone::resolve(tz, date.and_time(NaiveTime::MIN))
}

/// Which rules a target's digest covers: those that name it under `notify`, or every rule
/// when none does (a fleet-wide digest channel).
pub(crate) fn scope<'a>(rules: &'a RuleSet, target: &str) -> HashSet<&'a str> {
    let naming: HashSet<&str> = rules
        .rules
        .iter()
        .filter(|r| r.notify.iter().any(|n| n == target))
        .map(|r| r.name.as_ref())
        .collect();
    if naming.is_empty() {
        rules.rules.iter().map(|r| r.name.as_ref()).collect()
    } else {
        naming
    }
}

/// From when a digest sent at `now` in `tz` needs stop intervals (the earlier of the start
/// of yesterday and the start of the month).
pub(crate) fn needs_stops_since(tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let (yesterday, month) = period_starts(tz, now);
    yesterday.min(month)
}

/// (start of yesterday, start of this month), local days in `tz`.
fn period_starts(tz: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&tz).date_naive();
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    let first = today.with_day(1).unwrap_or(today);
    (start_of(yesterday, tz), start_of(first, tz))
}

/// Savings of the stop intervals whose rule is in `scope`, over `[from, to)`.
fn saved_between(
    stops: &[StopInterval],
    scope: &HashSet<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Saved {
    let mut saved = Saved::default();
    for s in stops.iter().filter(|s| scope.contains(s.rule.as_str())) {
        let overlap = s.until.min(to) - s.stopped_at.max(from);
        if overlap <= TimeDelta::zero() {
            continue;
        }
        let hours = overlap.num_milliseconds() as f64 / 3_600_000.0;
        saved.stopped_hours += hours;
        saved.amount += s.hourly_cost.unwrap_or(0.0) * hours;
    }
    saved
}

/// Everything a digest is computed from: one pass's view of the fleet.
pub(crate) struct Fleet<'a> {
    pub rules: &'a RuleSet,
    pub snapshot: &'a Snapshot,
    pub view: &'a LedgerView,
    pub decisions: &'a [Decision],
    /// Stop intervals since [`needs_stops_since`].
    pub stops: &'a [StopInterval],
    /// From [`upcoming_deletes`].
    pub upcoming: &'a [UpcomingDelete],
}

/// The digest for the rules in `scope`, sent at `now` in `tz`.
pub(crate) fn digest(
    fleet: &Fleet<'_>,
    scope: &HashSet<&str>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Digest {
    let today = now.with_timezone(&tz).date_naive();
    let today_start = start_of(today, tz);
    let (yesterday_start, month_start) = period_starts(tz, now);
    let mut stopped_now = 0;
    let mut cost_per_hour_now = 0.0;
    for (env, d) in fleet.snapshot.environments.iter().zip(fleet.decisions) {
        let in_scope = d.rule.as_deref().is_some_and(|r| scope.contains(r));
        let curfews = fleet
            .view
            .get(&env.id)
            .is_some_and(|r| r.curfew_stop.is_some());
        if in_scope && env.state == EnvState::Stopped && curfews {
            stopped_now += 1;
            cost_per_hour_now += d.hourly_cost.unwrap_or(0.0);
        }
    }
    Digest {
        date: today,
        timezone: tz,
        currency: fleet.rules.currency.clone(),
        stopped_now,
        cost_per_hour_now,
        yesterday: saved_between(fleet.stops, scope, yesterday_start, today_start),
        this_month: saved_between(fleet.stops, scope, month_start, now),
        upcoming_deletes: fleet
            .upcoming
            .iter()
            .filter(|u| scope.contains(u.rule.as_ref()))
            .cloned()
            .collect(),
    }
}

fn environment_ref(env: &Environment) -> EnvironmentRef {
    EnvironmentRef {
        id: env.id.clone(),
        name: env.name.clone(),
        project: env.project.clone(),
        state: env.state,
    }
}

/// The deletes `decide` would make within `horizon` of `now` if nothing changed in the
/// meantime (no deployment, no snooze, no new rule), earliest first, each with its rule.
///
/// This asks `decide` itself, at `now + horizon`, with every environment not yet warned
/// counted as warned now. That assumption moves no delete earlier than it could happen:
/// a warning not yet given comes at `due - warn_before_delete` at the earliest, and the
/// delete follows at `due`; one given now would delete at `now + warn_before_delete` at the
/// earliest. The instant listed is the latest of the constraints `decide` checks (due,
/// warning period, grace period, snooze).
pub(crate) fn upcoming_deletes(
    rules: &RuleSet,
    snapshot: &Snapshot,
    view: &LedgerView,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Vec<UpcomingDelete> {
    let mut projected = view.clone();
    for env in &snapshot.environments {
        projected
            .entry(env.id.clone())
            .delete_warned_at
            .get_or_insert(now);
    }
    // A partial listing holds deletes back for one pass only: project a complete one.
    let snapshot: Cow<'_, Snapshot> = if snapshot.complete {
        Cow::Borrowed(snapshot)
    } else {
        Cow::Owned(Snapshot {
            environments: snapshot.environments.clone(),
            complete: true,
        })
    };
    let later = now + horizon;
    let decisions = policy::decide(rules, &snapshot, &projected, later);
    let mut out: Vec<UpcomingDelete> = snapshot
        .environments
        .iter()
        .zip(decisions)
        .filter(|(_, d)| d.delete_due() && !d.dry_run)
        .filter_map(|(env, d)| {
            let rule = rules.rule(d.rule.as_deref()?)?;
            let record = projected.get(&env.id);
            let warned_until = record
                .and_then(|r| r.delete_warned_at)
                .map(|w| w + rule.warn_before_delete);
            let snoozed_until = [
                record.and_then(|r| r.snoozed_until),
                env.labels
                    .get(SNOOZE_LABEL)
                    .and_then(|v| parse_expiry(v).ok()),
            ];
            let at = [
                Some(now),
                d.delete.as_ref().and_then(|p| p.due_since),
                warned_until,
                Some(env.created_at + rule.grace_period),
            ]
            .into_iter()
            .chain(snoozed_until)
            .flatten()
            .filter(|t| *t <= later)
            .max()
            .unwrap_or(now);
            Some(UpcomingDelete {
                environment: environment_ref(env),
                rule: rule.name.clone(),
                at,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.environment.name).cmp(&(b.at, &b.environment.name)));
    out
}
