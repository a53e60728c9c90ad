//! What the last passes produced, kept for the status page: the last pass's listing and
//! decisions (shared with the pass, not copied), and how the recent passes went. The page
//! reads these and the ledger; it never calls the platform.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Daemon, PassError};
use crate::events::{ActResult, PassReport, PassResult};
use crate::platform::Snapshot;
use crate::policy::Decision;

/// How far ahead in the kept listing a name is looked for (environments made or gone
/// between two listings).
const LOOK_AHEAD: usize = 8;

/// How many passes' outcomes the daemon remembers for the status page.
const RECENT_PASSES: usize = 20;

/// The listing and decisions of the last pass that decided, as the status page shows them.
#[derive(Debug)]
pub struct LastPass {
    /// When it decided (the clock's time).
    pub at: DateTime<Utc>,
    /// Whether the platform listed everything.
    pub complete: bool,
    /// One per environment of the listing, in its order.
    pub decisions: Arc<Vec<Decision>>,
    /// The listing the decisions were made from: the page explains an environment from
    /// it.
    pub snapshot: Arc<Snapshot>,
}

/// How a pass went, as the status page's health shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PassOutcome {
    /// When it finished (the clock's time).
    pub at: DateTime<Utc>,
    pub result: PassResult,
    /// Real time it took.
    pub took: Duration,
    /// Whether the platform listed everything.
    pub complete: bool,
    /// Actions the platform took.
    pub done: usize,
    /// Actions that failed.
    pub failed: usize,
    /// Actions held back by `max_stops_per_pass` or `max_deletes_per_hour`.
    pub capped: usize,
    /// Why the pass failed as a whole.
    pub error: Option<String>,
}

/// The passes the status page shows: the last one that decided, and how the recent ones
/// went (newest first).
#[derive(Default)]
pub(super) struct Passes {
    last: Option<Arc<LastPass>>,
    recent: VecDeque<PassOutcome>,
}

impl Daemon {
    /// The last pass that decided (its listing and decisions are shared, not copied), if
    /// any, and if the page keeps it.
    pub fn last_pass(&self) -> Option<Arc<LastPass>> {
        self.passes().last.clone()
    }

    /// Shares the names of `snapshot`'s environments with the kept pass's listing where they
    /// are the same (environments listed again under the same name, the usual case): the
    /// new pass and the kept one, which live side by side until the new one is published,
    /// then hold one copy of each name, not two. (Their ids are shared already, through
    /// the platform's cache.)
    pub(super) fn share_names_with_last(&self, snapshot: &mut Snapshot) {
        let Some(last) = self.last_pass() else {
            return;
        };
        let old = &last.snapshot.environments;
        // Both listings come in the platform's order: walk them side by side, looking a
        // few places ahead in the old one for environments made or gone since.
        let mut j = 0;
        for env in &mut snapshot.environments {
            let found = old
                .iter()
                .enumerate()
                .skip(j)
                .take(LOOK_AHEAD)
                .find(|(_, o)| o.id == env.id);
            if let Some((k, o)) = found {
                j = k + 1;
                if o.name == env.name {
                    env.name = Arc::clone(&o.name);
                }
            }
        }
    }

    /// How the recent passes went, newest first.
    pub fn recent_passes(&self) -> Vec<PassOutcome> {
        self.passes().recent.iter().cloned().collect()
    }

    fn passes(&self) -> MutexGuard<'_, Passes> {
        self.passes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `last` the pass the status page shows, as soon as it has decided: the one it
    /// replaces goes now, not after the actions (a fleet's worth of memory less while they
    /// run).
    pub(super) fn publish(&self, last: LastPass) {
        if !self.keep_last_pass {
            return;
        }
        let old = self.passes().last.replace(Arc::new(last));
        // Dropped outside the lock.
        drop(old);
    }

    /// Keeps how a pass went for the status page.
    pub(super) fn remember(
        &self,
        result: &Result<PassReport, PassError>,
        label: PassResult,
        took: Duration,
        finished: DateTime<Utc>,
    ) {
        let mut outcome = PassOutcome {
            at: finished,
            result: label,
            took,
            complete: false,
            done: 0,
            failed: 0,
            capped: 0,
            error: None,
        };
        match result {
            Ok(report) => {
                outcome.complete = report.complete;
                for a in &report.acted {
                    match a.result {
                        ActResult::Done(_) => outcome.done += 1,
                        ActResult::Failed(_) => outcome.failed += 1,
                        ActResult::SkippedCap(_) => outcome.capped += 1,
                        ActResult::DryRun | ActResult::Confirming => {}
                    }
                }
            }
            Err(e) => outcome.error = Some(e.to_string()),
        }
        let mut passes = self.passes();
        passes.recent.push_front(outcome);
        passes.recent.truncate(RECENT_PASSES);
    }
}
