//! The daemon's own projection: what the rules in force would save over the coming 30 days
//! ([`crate::simulate`]), from a fresh listing and the ledger's view of it, exported as
//! `curfew_projected_savings` and kept for whoever shows it (the status page).
//!
//! Made after the first pass, after each reload and once a day on the daemon's clock, in
//! dry-run too (the projection is what the rules would do). It starts from the pass's own
//! listing (as the pass's actions left it) and the ledger's view after the pass, and runs
//! between two passes on a blocking thread: the next pass gives it up (it is made again
//! after that pass) so a boundary is never late for it, and never runs beside it, so the
//! two never hold a fleet's worth of memory at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

use super::Daemon;
use crate::ledger::LedgerError;
use crate::platform::{PlatformError, Snapshot};
use crate::policy::{Action, LedgerView, RuleSet};
use crate::simulate::{self, Projection};

/// How many days the daemon projects.
pub const PROJECTION_DAYS: u32 = 30;
/// The spans `curfew_projected_savings` reports (its `horizon` label: `7d`, `30d`).
pub const PROJECTION_HORIZONS: [u32; 2] = [7, 30];
/// How often the projection is made again with the same rules.
const PROJECTION_EVERY: TimeDelta = TimeDelta::days(1);

/// Why a projection could not be made (the next pass tries again).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the simulation failed: {0}")]
    Simulation(String),
}

/// The last projection and what it was made from.
pub(super) struct Projected {
    rules: Arc<RuleSet>,
    at: DateTime<Utc>,
    projection: Arc<Projection>,
}

impl Daemon {
    /// The last projection of the rules in force (`None` before the first): what a page
    /// shows of the coming days.
    pub fn projection(&self) -> Option<Arc<Projection>> {
        self.projected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|p| Arc::clone(&p.projection))
    }

    /// Whether a projection is due: none yet, the rules changed since the last one (a
    /// reload), or it is a day old.
    pub(super) fn projection_due(&self, now: DateTime<Utc>) -> bool {
        let rules = self.rules();
        match &*self
            .projected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            None => true,
            Some(p) => !Arc::ptr_eq(&p.rules, &rules) || now - p.at >= PROJECTION_EVERY,
        }
    }

    /// Projects the rules in force over the coming [`PROJECTION_DAYS`] from a fresh listing
    /// and the ledger, and exports the savings.
    pub async fn project(&self) -> Result<Arc<Projection>, ProjectionError> {
        let rules = self.rules();
        let snapshot = self.platform.list().await?;
        let now = self.clock.now();
        let view = self.ledger.run(|l| l.view()).await?;
        let never = Arc::new(AtomicBool::new(false));
        self.project_from(rules, now, Arc::new(snapshot), Vec::new(), view, never)
            .await?
            .ok_or_else(|| ProjectionError::Simulation("given up".into()))
    }

    /// Projects `rules` from `listing` as the actions `done` left it (each with its
    /// environment's index in the listing) and `view` as they are at `now`, and exports the
    /// savings; `None` when `cancel` was set before the end. The listing is shared, never
    /// copied: the simulation borrows it and keeps only what the actions changed.
    async fn project_from(
        &self,
        rules: Arc<RuleSet>,
        now: DateTime<Utc>,
        listing: Arc<Snapshot>,
        done: Vec<(usize, Action)>,
        view: LedgerView,
        cancel: Arc<AtomicBool>,
    ) -> Result<Option<Arc<Projection>>, ProjectionError> {
        let mut options = simulate::Options::new(
            now,
            PROJECTION_DAYS,
            TimeDelta::from_std(self.options.resync).unwrap_or(TimeDelta::seconds(60)),
        );
        options.horizons = PROJECTION_HORIZONS.to_vec();
        options.with_ledger = true;
        let started = std::time::Instant::now();
        let simulated = Arc::clone(&rules);
        let projection = tokio::task::spawn_blocking(move || {
            simulate::simulate_unless(&simulated, &listing, &done, view, &options, &cancel)
        })
        .await
        .map_err(|e| ProjectionError::Simulation(e.to_string()))?;
        crate::memory::release_free();
        let Some(projection) = projection else {
            return Ok(None);
        };
        self.metrics.set_projected_savings(
            &projection.currency,
            projection.horizons.iter().flat_map(|h| {
                h.rules
                    .iter()
                    .map(move |(rule, saved)| (rule.as_str(), h.days, *saved))
            }),
        );
        tracing::info!(
            days = PROJECTION_DAYS,
            saved = projection.total.saved,
            saved_percent = projection.total.saved_percent.unwrap_or(0.0),
            currency = %projection.currency,
            environments = projection.environments,
            passes = projection.passes,
            took_ms = started.elapsed().as_millis() as u64,
            "projected what the rules in force would save"
        );
        let projection = Arc::new(projection);
        *self
            .projected
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Projected {
            rules,
            at: now,
            projection: Arc::clone(&projection),
        });
        Ok(Some(projection))
    }

    /// Hands the projection due after this pass what it starts from: the pass's own
    /// listing (shared with the status page, not listed again), the actions it did, and
    /// the ledger's view once they were recorded.
    pub(super) fn hand_over(&self, handoff: Handoff) {
        *self.handoff.lock().unwrap_or_else(PoisonError::into_inner) = Some(handoff);
    }

    /// Starts the projection the last pass handed over, if one is due, beside the loop:
    /// the loop stops it (or waits for it) before its next pass, so the two never hold a
    /// fleet's worth of memory at once.
    pub(super) fn project_handed(self: &Arc<Self>) -> Option<Projecting> {
        let handoff = self
            .handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        if !self.projection_due(handoff.at) {
            return None;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let daemon = Arc::clone(self);
        let stop = Arc::clone(&cancel);
        let task = tokio::spawn(async move {
            let Handoff {
                rules,
                at,
                snapshot,
                done,
                view,
            } = handoff;
            match daemon
                .project_from(rules, at, snapshot, done, view, stop)
                .await
            {
                Ok(Some(_)) => true,
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "could not project the rules' savings; the next pass tries again");
                    true
                }
            }
        });
        Some(Projecting { cancel, task })
    }
}

/// What a pass hands the projection due after it.
pub(super) struct Handoff {
    pub rules: Arc<RuleSet>,
    /// The pass's time.
    pub at: DateTime<Utc>,
    /// The pass's listing, taken before its actions.
    pub snapshot: Arc<Snapshot>,
    /// The actions the platform took: the index of the environment in the listing.
    pub done: Vec<(usize, Action)>,
    /// The ledger's view once the pass recorded them.
    pub view: LedgerView,
}

/// A projection under way beside the loop.
pub(super) struct Projecting {
    cancel: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<bool>,
}

impl Projecting {
    /// Makes way for a pass: gives the projection up (it is due again after the pass)
    /// unless `wait`, and returns once it is gone. True when it finished.
    pub(super) async fn make_way(self, wait: bool) -> bool {
        if !wait {
            self.cancel.store(true, Ordering::Release);
        }
        self.task.await.unwrap_or(true)
    }
}
