//! The work of the replica that leads: the reconcile loop, the daily digests, and the
//! ledger's housekeeping, all on the daemon's (injected) clock. With leader election
//! (`platform.kubernetes.leader_election`), a standby waits for the Lease before any of it;
//! a leader that loses the Lease stops all of it (its current pass finishes, every write
//! refused by the adapter once the Lease is gone) and stands by again, in the same process.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::ledger::{Ledger, LedgerError};
use crate::notify::{Digests, Notifier};
use crate::platform::kubernetes::Election;
use crate::reconcile::Daemon;

/// How long the ledger keeps actions and closed stops (savings totals are kept for ever).
pub const HOUSEKEEPING_KEEPS: TimeDelta = TimeDelta::days(400);

/// When the housekeeping runs each day, in UTC: a quiet hour, off the full hour when
/// schedules' boundaries fall.
const HOUSEKEEPING_AT: NaiveTime = match NaiveTime::from_hms_opt(3, 17, 0) {
    Some(t) => t,
    None => panic!("03:17:00 is a time"),
};

/// The longest a job sleeps at once: a clock that jumps (a scaled demo clock, a corrected
/// system clock) is caught up with within this.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Waits to lead (when there is an election), then runs the reconcile loop, the digests
/// and the housekeeping until `shutdown` says stop or the Lease is lost; after a loss,
/// stands by again and leads again once it holds the Lease. Returns when `shutdown` says
/// stop and the work has stopped (its current pass finished).
pub(crate) async fn lead_and_work(
    daemon: Arc<Daemon>,
    notifier: Notifier,
    election: Option<Election>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(election) = election else {
        daemon.set_leading(true);
        return work(&daemon, &notifier, shutdown).await;
    };
    loop {
        daemon.set_leading(false);
        tracing::info!(lease = %election.options().name, identity = %election.options().identity, "standing by until this replica holds the lease");
        if !election.wait_to_lead(&mut shutdown).await {
            return;
        }
        tracing::info!("this replica holds the lease: acting");
        daemon.set_leading(true);
        // This term's work stops when the Lease is lost or the daemon stops.
        let (term_tx, term) = watch::channel(false);
        let working = work(&daemon, &notifier, term);
        let mut working = std::pin::pin!(working);
        let stopping = tokio::select! {
            () = &mut working => true,
            // A dropped sender never says stop again: taken as a stop.
            stop = shutdown.wait_for(|s| *s) => { let _ = stop; true }
            () = election.until_not_leading() => false,
        };
        let _ = term_tx.send(true);
        working.await;
        if stopping || *shutdown.borrow() {
            return;
        }
        tracing::warn!("this replica lost the lease: its work stopped; standing by again");
    }
}

/// One term's work: the digests and the housekeeping beside the reconcile loop, all until
/// `stop` says stop; returns when the loop has stopped (its current pass finished).
async fn work(daemon: &Arc<Daemon>, notifier: &Notifier, stop: watch::Receiver<bool>) {
    tokio::spawn(crate::notify::run_digests(
        Digests::new(notifier.clone()),
        daemon.clone(),
        stop.clone(),
    ));
    tokio::spawn(housekeeping(daemon.ledger(), daemon.clock(), stop.clone()));
    daemon.clone().run(stop).await;
}

/// The first housekeeping instant strictly after `now`.
pub fn next_housekeeping_after(now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.date_naive().and_time(HOUSEKEEPING_AT).and_utc();
    if today > now {
        today
    } else {
        today + TimeDelta::days(1)
    }
}

/// Removes from `ledger` what is older than [`HOUSEKEEPING_KEEPS`] at `now` (the daemon's
/// clock's instant), and logs how much.
pub fn housekeeping_once(ledger: &Ledger, now: DateTime<Utc>) -> Result<usize, LedgerError> {
    let removed = ledger.prune(now - HOUSEKEEPING_KEEPS);
    match &removed {
        Ok(n) => tracing::info!(removed = n, "ledger housekeeping"),
        Err(e) => tracing::warn!(error = %e, "ledger housekeeping failed"),
    }
    removed
}

/// The ledger's housekeeping, once a day at [`HOUSEKEEPING_AT`] UTC on `clock`, until
/// `stop` says stop.
async fn housekeeping(ledger: Arc<Ledger>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut next = next_housekeeping_after(clock.now());
    while !*stop.borrow() {
        let now = clock.now();
        if now >= next {
            let _ = housekeeping_once(&ledger, now);
            next = next_housekeeping_after(now);
        }
        tokio::select! {
            _ = tokio::time::sleep(clock.real_wait_until(next).min(MAX_SLEEP)) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, TokioClock};
    use crate::events::ActResult;
    use crate::ledger::Outcome;
    use crate::platform::{EnvState, Outcome as Answer};
    use crate::policy::{Action, Step};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A stop taken at `t`, its outcome written.
    fn stop_at(ledger: &Ledger, t: DateTime<Utc>) {
        let step = Step {
            environment_id: "e1".into(),
            environment: "pr-1".into(),
            project: "web".into(),
            mode: crate::platform::Mode::Preview,
            state: EnvState::Running,
            action: Action::Stop,
            cause: None,
            rule: "previews".into(),
            reason: "outside the window".into(),
            due_since: None,
            delete_at: None,
            dry_run: false,
            hourly_cost: None,
        };
        let id = ledger.intent(&step, t).unwrap();
        let done = ActResult::Done(Answer::Accepted);
        ledger.outcome(id, Outcome::Acted(done), t).unwrap();
    }

    #[test]
    fn housekeeping_runs_daily_at_03_17_utc() {
        let cases = [
            ("2026-11-27T01:00:00Z", "2026-11-27T03:17:00Z"),
            ("2026-11-27T03:17:00Z", "2026-11-28T03:17:00Z"),
            ("2026-11-27T23:59:59Z", "2026-11-28T03:17:00Z"),
        ];
        for (now, next) in cases {
            assert_eq!(next_housekeeping_after(at(now)), at(next), "after {now}");
        }
    }

    /// The regression: pruning read the wall clock, so a daemon on a scaled or manual
    /// clock pruned by the wrong "now".
    #[test]
    fn housekeeping_prunes_by_the_daemons_clock_not_the_wall_clock() {
        let ledger = Ledger::in_memory().unwrap();
        stop_at(&ledger, at("2026-01-10T12:00:00Z"));
        stop_at(&ledger, at("2026-11-27T12:00:00Z"));
        // Far from the wall clock: 400 days after the first stop, not after the second.
        let clock = ManualClock::new(at("2027-02-20T03:17:00Z"));
        assert_eq!(housekeeping_once(&ledger, clock.now()).unwrap(), 1);
        assert_eq!(ledger.count_actions(Action::Stop).unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_housekeeping_job_runs_when_its_clock_reaches_03_17() {
        let ledger = Arc::new(Ledger::in_memory().unwrap());
        stop_at(&ledger, at("2025-10-01T12:00:00Z"));
        let clock = Arc::new(TokioClock::new(at("2026-11-27T03:16:00Z")));
        let (stop_tx, stop) = watch::channel(false);
        let job = tokio::spawn(housekeeping(ledger.clone(), clock.clone(), stop));
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(ledger.count_actions(Action::Stop).unwrap(), 1, "not yet");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            ledger.count_actions(Action::Stop).unwrap(),
            0,
            "pruned at 03:17"
        );
        let _ = stop_tx.send(true);
        job.await.unwrap();
    }
}
