//! The daemon's own projection: what the rules in force would save over the coming 30 days
//! ([`crate::simulate`]), from a fresh listing and the ledger's view of it, exported as
//! `curfew_projected_savings` and kept for whoever shows it (the status page).
//!
//! Made after the first pass, after each reload and once a day on the daemon's clock, in
//! dry-run too (the projection is what the rules would do). It runs beside the loop, on a
//! blocking thread, so a boundary is never late for it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

use super::Daemon;
use crate::ledger::LedgerError;
use crate::platform::PlatformError;
use crate::policy::RuleSet;
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
            simulate::simulate(&simulated, snapshot, view, &options)
        })
        .await
        .map_err(|e| ProjectionError::Simulation(e.to_string()))?;
        crate::memory::release_free();
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
        Ok(projection)
    }

    /// Starts a projection beside the loop if one is due and none is under way.
    pub(super) fn project_if_due(self: &Arc<Self>) {
        if !self.projection_due(self.clock.now()) || self.projecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let daemon = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = daemon.project().await {
                tracing::warn!(error = %e, "could not project the rules' savings; the next pass tries again");
            }
            daemon.projecting.store(false, Ordering::Release);
        });
    }
}
