//! The daily digest: a job of its own on the daemon's clock ([`run`]); when it is due (a
//! wall time in a zone, DST-correct), and what it says (stopped now, saved yesterday and
//! this month, deletions coming in the next 24 hours).
//!
//! Digest times follow the schedules' rules for days the clocks change
//! ([`crate::schedule::zone`]): a time inside the spring gap is sent at the first instant
//! after the gap, a time inside the repeated autumn hour at its first occurrence, and never
//! twice a day. Zone times are computed here with chrono-tz, not given to a cron library
//! (see `docs/daemon.md` for why).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use tokio::sync::watch;

use super::message::{Digest, EnvironmentRef, Saved, UpcomingDelete};
use super::{Message, Notifier, message_id};
use crate::events::{Counter, NotificationResult};
use crate::ledger::{LedgerError, StopInterval};
use crate::platform::{EnvState, NoticeKind};
use crate::policy::{self, Decision, LedgerView, RuleSet, Target};
use crate::reconcile::{Daemon, Look, PassError};
use crate::schedule::zone;

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

/// Everything a digest is computed from: a fresh look at the fleet.
pub(crate) struct Fleet<'a> {
    pub rules: &'a RuleSet,
    pub view: &'a LedgerView,
    pub decisions: &'a [Decision],
    /// Stop intervals since [`needs_stops_since`].
    pub stops: &'a [StopInterval],
    /// From [`policy::upcoming_deletes`].
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
    for d in fleet.decisions {
        let in_scope = d.rule.as_deref().is_some_and(|r| scope.contains(r));
        let curfews = fleet
            .view
            .get(&d.environment_id)
            .is_some_and(|r| r.curfew_stop.is_some());
        if in_scope && d.state == EnvState::Stopped && curfews {
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

/// A delete coming, as a digest lists it.
fn upcoming(u: policy::UpcomingDelete) -> UpcomingDelete {
    UpcomingDelete {
        environment: EnvironmentRef {
            id: u.environment_id,
            name: u.environment,
            project: u.project,
            state: u.state,
            mode: u.mode,
        },
        rule: u.rule,
        at: u.at,
    }
}

/// When each target's next digest is due: its wall time in its zone.
struct DigestClock {
    at: NaiveTime,
    tz: Tz,
    next: DateTime<Utc>,
}

/// The digests' clocks, one per target with a `digest_at` (not worth the ledger: after a
/// restart the next digest is the next one due from then).
pub struct Digests {
    notifier: Notifier,
    clocks: HashMap<String, DigestClock>,
}

impl Digests {
    pub fn new(notifier: Notifier) -> Digests {
        Digests {
            notifier,
            clocks: HashMap::new(),
        }
    }

    /// The targets whose digest is due at `now` (each then planned for its next day), and
    /// the next digest instant over all targets. A target seen for the first time, or
    /// whose time or zone changed (a reload), counts from now: nothing is sent late.
    pub fn due<'r>(
        &mut self,
        rules: &'r RuleSet,
        now: DateTime<Utc>,
    ) -> (Vec<(&'r Target, Tz)>, Option<DateTime<Utc>>) {
        let mut due = Vec::new();
        let mut next: Option<DateTime<Utc>> = None;
        for target in rules.notify.values() {
            let Some(at) = target.digest_at else {
                continue;
            };
            let tz = target.digest_timezone.unwrap_or(rules.timezone);
            let fresh = || DigestClock {
                at,
                tz,
                next: next_digest_after(at, tz, now),
            };
            let clock = self.clocks.entry(target.name.clone()).or_insert_with(fresh);
            if clock.at != at || clock.tz != tz {
                *clock = fresh();
            }
            if now >= clock.next {
                due.push((target, tz));
                clock.next = next_digest_after(at, tz, now);
            }
            next = Some(next.map_or(clock.next, |n| n.min(clock.next)));
        }
        self.clocks.retain(|name, _| {
            rules
                .notify
                .get(name)
                .is_some_and(|t| t.digest_at.is_some())
        });
        (due, next)
    }

    /// Queues the digest of each target of `due`, computed from `fleet`.
    pub(crate) fn send(&self, due: &[(&Target, Tz)], fleet: &Fleet<'_>, now: DateTime<Utc>) {
        for (target, tz) in due {
            let scope = scope(fleet.rules, &target.name);
            let d = digest(fleet, &scope, *tz, now);
            let listed = d
                .upcoming_deletes
                .iter()
                .take(super::message::DIGEST_LIST_MAX);
            let links = self.notifier.links(
                listed.map(|u| &u.environment),
                NoticeKind::Digest,
                &target.name,
                now,
            );
            self.notifier.send(
                target,
                Message {
                    id: message_id(),
                    at: now,
                    timezone: *tz,
                    event: super::Event::Digest(d),
                    links,
                },
            );
        }
    }

    /// Counts each due digest as not sent: the fleet could not be read.
    fn failed(&self, due: &[(&Target, Tz)], error: &dyn std::error::Error) {
        tracing::warn!(error = %error, "cannot read the fleet for the daily digest; skipped today");
        for (target, _) in due {
            self.notifier.inner.metrics.notification(
                &target.name,
                super::Kind::Digest.as_str(),
                NotificationResult::Error,
            );
        }
    }
}

/// Why a digest's fleet could not be read.
#[derive(Debug, thiserror::Error)]
enum FleetError {
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl Digests {
    /// One round of the digest job: the digests due at the daemon's now, sent from a fresh
    /// look at the fleet (one listing); returns when the next one is due.
    pub async fn send_due(&mut self, daemon: &Daemon) -> Option<DateTime<Utc>> {
        let rules = daemon.rules();
        let (due, next) = self.due(&rules, daemon.clock().now());
        if !due.is_empty()
            && let Err(e) = send_from_a_look(self, &due, daemon).await
        {
            self.failed(&due, &e);
        }
        next
    }
}

/// The daily digests, as a job of their own: sleeps on the daemon's clock until the next
/// digest is due (or the rules change), then sends the due ones, until `stop` says stop.
pub async fn run(mut digests: Digests, daemon: Arc<Daemon>, mut stop: watch::Receiver<bool>) {
    let clock = daemon.clock();
    let mut rules_changed = daemon.rules_changed();
    while !*stop.borrow() {
        let next = digests.send_due(&daemon).await;
        // Without a digest to wait for, only a reload can bring one.
        let wait = next.map_or(Duration::MAX, |t| clock.real_wait_until(t));
        tokio::select! {
            _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
            _ = rules_changed.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

/// The longest the digest job sleeps at once (a clock that jumps is caught up with).
const MAX_SLEEP: Duration = Duration::from_secs(3600);

async fn send_from_a_look(
    digests: &Digests,
    due: &[(&Target, Tz)],
    daemon: &Daemon,
) -> Result<(), FleetError> {
    let Look {
        rules,
        snapshot,
        now,
        view,
        decisions,
        ..
    } = daemon.look().await?;
    let since = due
        .iter()
        .map(|(_, tz)| needs_stops_since(*tz, now))
        .min()
        .unwrap_or(now);
    let stops = daemon
        .ledger()
        .run(move |l| l.stop_intervals_since(since))
        .await?;
    let upcoming: Vec<UpcomingDelete> =
        policy::upcoming_deletes(&rules, &snapshot, &view, now, DIGEST_HORIZON)
            .into_iter()
            .map(upcoming)
            .collect();
    drop(snapshot);
    let fleet = Fleet {
        rules: &rules,
        view: &view,
        decisions: &decisions,
        stops: &stops,
        upcoming: &upcoming,
    };
    digests.send(due, &fleet, now);
    Ok(())
}
