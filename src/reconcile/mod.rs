//! The reconcile loop: list → decide → act → record, level-triggered.
//!
//! Every pass rebuilds its view from the platform and the ledger, so a missed tick, a
//! restart or a crash is repaired by the next pass. The loop wakes at the earliest instant
//! any decision could change (exact to the second) or one resync after its last pass,
//! whichever comes first; a change of rules or an operator's change wakes it at once.
//!
//! The executor holds the safety rules: dry-run (global and per rule), the caps
//! (`max_stops_per_pass`, `max_deletes_per_hour`), bounded concurrency, a delete only when
//! its condition held on two passes at least one resync apart, and every action written to
//! the ledger as an intent before the call and an outcome after it. (No delete on a partial
//! listing is `decide`'s.)
//!
//! - `pass.rs`: one pass, and the start's recovery of interrupted actions;
//! - `executor.rs`: carrying the decisions out;
//! - `operator.rs`: what people ask of a running daemon (plan, explain, snooze, wake,
//!   protect);
//! - `health.rs`: readiness;
//! - `page.rs`: what the last passes produced, kept for the status page.

mod executor;
mod health;
mod operator;
mod page;
mod pass;
mod projection;

pub use health::{Health, LEADER, Readiness, STANDBY};
pub use operator::{BY_REQUEST, EnvironmentReport, OperatorError, Plan, PlanEntry};
pub use page::{LastPass, PassOutcome};
pub use pass::{Look, PassError, SeenRevert};
pub use projection::{PROJECTION_DAYS, PROJECTION_HORIZONS, ProjectionError};

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{ConfigErrors, Source};
use crate::events::{PassListener, RulesReloaded};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::platform::{ActionLinks, Platform};
use crate::policy::RuleSet;
use crate::policy::caps::DeleteConfirmations;

/// The longest snooze an operator may ask for, unless the settings say otherwise.
pub const DEFAULT_MAX_SNOOZE: TimeDelta = TimeDelta::days(7);
/// The longest note (bytes) an operator may attach, unless the settings say otherwise.
pub const DEFAULT_MAX_NOTE: usize = 1024;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Longest real time between two passes.
    pub resync: Duration,
    /// How old (in the clock's time) the last good pass may be for `/readyz`.
    pub max_pass_age: Duration,
    /// Platform calls in flight at once.
    pub max_in_flight: usize,
}

/// The daemon's state shared between passes, reloads and the admin API.
pub struct Daemon {
    pub(crate) platform: Arc<dyn Platform>,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Arc<dyn Clock>,
    rules: RwLock<Arc<RuleSet>>,
    /// Counts the rule sets put in force: the loop and the digests wake on a change.
    generation: watch::Sender<u64>,
    pub(crate) options: DaemonOptions,
    pub(crate) health: Health,
    memory: Mutex<Memory>,
    /// Held by a pass and by an operator's change, so neither writes over the other.
    exclusive: tokio::sync::Mutex<()>,
    /// Asks the loop for a pass now (after an operator's change).
    nudge: tokio::sync::Notify,
    /// The longest snooze (or wake) an operator may ask for.
    max_snooze: TimeDelta,
    /// The longest note an operator may attach, in bytes.
    max_note: usize,
    /// Told what each pass did (the notifier); never waited for.
    listeners: Vec<Arc<dyn PassListener>>,
    /// What the last passes did, for the status page.
    passes: Mutex<page::Passes>,
    /// Whether the last pass's listing and decisions are kept for the status page (not
    /// when it is off and links are off: a fleet's worth of memory for nobody).
    keep_last_pass: bool,
    /// Signed links for the notices the platform posts (a Kubernetes Event's delete
    /// warning); made by the status page's signer.
    links: Option<Arc<dyn ActionLinks>>,
    /// The last projection of the rules' savings.
    projected: Mutex<Option<projection::Projected>>,
    /// What the last pass handed the projection due after it.
    handoff: Mutex<Option<projection::Handoff>>,
}

/// What passes remember between themselves that is not worth the ledger.
struct Memory {
    /// When each pending delete was first seen due (two passes, one resync apart).
    confirmations: DeleteConfirmations,
}

impl Daemon {
    pub fn new(
        platform: Arc<dyn Platform>,
        ledger: Arc<Ledger>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        rules: Arc<RuleSet>,
        options: DaemonOptions,
    ) -> Daemon {
        let health = Health::new(options.max_pass_age);
        let confirmations = DeleteConfirmations::new(
            TimeDelta::from_std(options.resync).unwrap_or(TimeDelta::seconds(60)),
        );
        health.set_rules_loaded(true);
        metrics.expect_rules(rules.rules.iter().map(|r| r.name.as_ref()));
        Daemon {
            platform,
            ledger,
            metrics,
            clock,
            rules: RwLock::new(rules),
            generation: watch::Sender::new(0),
            options,
            health,
            memory: Mutex::new(Memory { confirmations }),
            exclusive: tokio::sync::Mutex::new(()),
            nudge: tokio::sync::Notify::new(),
            max_snooze: DEFAULT_MAX_SNOOZE,
            max_note: DEFAULT_MAX_NOTE,
            listeners: Vec::new(),
            passes: Mutex::new(page::Passes::default()),
            keep_last_pass: true,
            links: None,
            projected: Mutex::new(None),
            handoff: Mutex::new(None),
        }
    }

    /// Puts signed action links in the notices the platform posts (a delete warning's
    /// Kubernetes Event).
    pub fn with_links(mut self, links: Arc<dyn ActionLinks>) -> Daemon {
        self.links = Some(links);
        self
    }

    /// Keeps no pass's listing and decisions for the status page (it is off): the listing
    /// is dropped once decided, as before there was a page.
    pub fn without_page(mut self) -> Daemon {
        self.keep_last_pass = false;
        self
    }

    /// The longest snooze, wake or delay a person may ask for (`admin_max_snooze`).
    pub fn max_snooze(&self) -> TimeDelta {
        self.max_snooze
    }

    /// Sets the longest snooze an operator may ask for (default 7 days).
    pub fn with_max_snooze(mut self, max: TimeDelta) -> Daemon {
        self.max_snooze = max;
        self
    }

    /// Sets the longest note an operator may attach, in bytes (default 1024).
    pub fn with_max_note(mut self, max: usize) -> Daemon {
        self.max_note = max;
        self
    }

    /// Tells `listener` what each pass did, once it is recorded (the notifier's warnings,
    /// deletes and failures).
    pub fn with_listener(mut self, listener: Arc<dyn PassListener>) -> Daemon {
        self.listeners.push(listener);
        self
    }

    /// Whether this replica leads (acts) or stands by (waits for the Lease), as `/readyz`
    /// and `curfew_leader` say.
    pub fn set_leading(&self, leading: bool) {
        self.health.set_standby(!leading);
        self.metrics.set_leader(leading);
    }

    /// Readiness, for `/readyz`.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The daemon's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The ledger.
    pub fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone()
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes each time other rules are put in force.
    pub fn rules_changed(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Puts new rules in force (a reload that compiled).
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        self.metrics
            .expect_rules(rules.rules.iter().map(|r| r.name.as_ref()));
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = rules;
        self.generation.send_modify(|g| *g += 1);
    }

    /// Reloads the rule file: rules that compile are put in force; a broken file (or one
    /// that is no regular file, too large, or still being written) is rejected (each error
    /// logged, the reload counted as failed) and the last good rules stay in force.
    pub async fn reload(&self, source: &Source) -> Result<(), ConfigErrors> {
        match source.load(self.clock.now()).await {
            Ok(loaded) => {
                self.set_rules(Arc::new(loaded.rules));
                RulesReloaded::InForce { file: &source.path }.emit(&*self.metrics);
                Ok(())
            }
            Err(errors) => {
                RulesReloaded::Rejected { errors: &errors.0 }.emit(&*self.metrics);
                Err(errors)
            }
        }
    }

    /// Runs passes until `shutdown` says stop: at the next wakeup, one resync after the
    /// last pass at the latest, and at once when the rules change or an operator asks.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut rules_changed = self.rules_changed();
        // Projections given up in a row to make way for a pass: after two, the pass waits
        // for the third (passes that come too often would otherwise starve it).
        let mut given_up = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let next = self.pass().await.ok().and_then(|report| report.next_wakeup);
            // The pass's listing, decisions and report are gone: their memory goes back to
            // the system rather than staying in the allocator until the next pass.
            crate::memory::release_free();
            // After the first pass, a reload, or a day: what the rules would save, until
            // the next pass.
            let projecting = self.project_handed();
            tokio::select! {
                _ = tokio::time::sleep(self.wait_for(next)) => {}
                _ = self.nudge.notified() => {}
                _ = rules_changed.changed() => {}
                _ = shutdown.changed() => {}
            }
            if let Some(projecting) = projecting {
                let wait = given_up >= 2 && !*shutdown.borrow();
                given_up = if projecting.make_way(wait).await {
                    0
                } else {
                    given_up + 1
                };
            }
        }
        tracing::info!("reconcile loop stopped");
    }

    /// How long to wait for the next pass: until `next` (the earliest instant a decision
    /// could change), one resync at the longest. The resync is the loop's only timer.
    fn wait_for(&self, next: Option<DateTime<Utc>>) -> Duration {
        next.map_or(self.options.resync, |t| {
            self.clock.real_wait_until(t).min(self.options.resync)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
