//! The reconcile loop: list → decide → act → record, level-triggered.
//!
//! Every pass rebuilds its view from the platform and the ledger, so a missed tick, a
//! restart or a crash is repaired by the next pass. The loop wakes at the earliest instant
//! any decision could change (exact to the second) or at the periodic resync, whichever
//! comes first.
//!
//! The executor holds the safety rules: dry-run (global and per rule), the caps
//! (`max_stops_per_pass`, `max_deletes_per_hour`), bounded concurrency, a delete only when
//! its condition held on two passes at least one resync apart, no delete on a partial
//! listing (that one is `decide`'s), and every action written to the ledger as an intent
//! before the call and an outcome after it.

mod executor;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

pub use executor::ActResult;

use crate::clock::Clock;
use crate::config::RuleSet;
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::{Metrics, PassResult};
use crate::notify::{Notifier, PassFacts};
use crate::platform::{EnvState, Environment, Platform, PlatformError, Snapshot};
use crate::policy::caps::DeleteConfirmations;
use crate::policy::{self, Action, Decision, LedgerView};
use crate::server::Health;

/// See [`Daemon::look`].
struct Look {
    rules: Arc<RuleSet>,
    snapshot: Snapshot,
    now: DateTime<Utc>,
    view: LedgerView,
    decisions: Vec<Decision>,
}

/// What a pass did.
#[derive(Debug, Clone)]
pub struct PassReport {
    pub at: DateTime<Utc>,
    pub complete: bool,
    pub decisions: Vec<Decision>,
    /// Every action the decisions called for (by index in `decisions`, not a copy: a pass
    /// can stop thousands), with what became of it; read through [`Self::acted`].
    acted: Vec<Acted>,
    pub next_wakeup: Option<DateTime<Utc>>,
}

impl PassReport {
    /// Every action the decisions called for, with what became of it.
    pub fn acted(&self) -> impl Iterator<Item = (Cow<'_, Decision>, &ActResult)> {
        acted(&self.decisions, &self.acted)
    }
}

/// One action a pass took, or held back: a decision's own action, or its delete's step.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    /// The decision's index in the pass's decisions.
    pub index: usize,
    /// The decision's delete step ([`Decision::delete_step`]) rather than its own action.
    pub delete_step: bool,
    pub result: ActResult,
}

impl Acted {
    /// The decision's own action.
    pub fn own(index: usize, result: ActResult) -> Acted {
        Acted {
            index,
            delete_step: false,
            result,
        }
    }

    /// The decision's delete step.
    pub fn delete(index: usize, result: ActResult) -> Acted {
        Acted {
            index,
            delete_step: true,
            result,
        }
    }
}

/// The actions `acted` points to, each as a decision (a delete step as one of its own),
/// with their results.
pub fn acted<'a>(
    decisions: &'a [Decision],
    acted: &'a [Acted],
) -> impl Iterator<Item = (Cow<'a, Decision>, &'a ActResult)> {
    acted.iter().filter_map(|a| {
        let d = decisions.get(a.index)?;
        let step = if a.delete_step {
            Cow::Owned(d.delete_step()?)
        } else {
            Cow::Borrowed(d)
        };
        Some((step, &a.result))
    })
}

/// Why a pass failed as a whole (the next one tries again).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

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
    /// Told what each pass did; never waits for a delivery.
    notifier: Option<Notifier>,
    /// The last projection of the rules' savings, and whether one is being made.
    projected: Mutex<Option<projection::Projected>>,
    projecting: AtomicBool,
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
            options,
            health,
            memory: Mutex::new(Memory { confirmations }),
            exclusive: tokio::sync::Mutex::new(()),
            nudge: tokio::sync::Notify::new(),
            max_snooze: DEFAULT_MAX_SNOOZE,
            max_note: DEFAULT_MAX_NOTE,
            notifier: None,
            projected: Mutex::new(None),
            projecting: AtomicBool::new(false),
        }
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

    /// Sends notifications (warnings, deletes, failures, digests) through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Daemon {
        self.notifier = Some(notifier);
        self
    }

    /// Readiness, for `/readyz`.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts new rules in force (a reload that compiled).
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        self.metrics
            .expect_rules(rules.rules.iter().map(|r| r.name.as_ref()));
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = rules;
    }

    /// Reloads the rule file: rules that compile are put in force; a broken file (or one
    /// that is no regular file, too large, or still being written) is rejected (each error
    /// logged, the reload counted as failed) and the last good rules stay in force.
    pub async fn reload(
        &self,
        source: &crate::config::Source,
    ) -> Result<(), crate::config::ConfigErrors> {
        match source.load(self.clock.now()).await {
            Ok(loaded) => {
                self.set_rules(Arc::new(loaded.rules));
                self.metrics.config_reload(true);
                tracing::info!(file = %source.path.display(), "rule file reloaded");
                Ok(())
            }
            Err(errors) => {
                self.metrics.config_reload(false);
                for e in &errors.0 {
                    tracing::error!(error = %e, "rule file rejected; the last good rules stay in force");
                }
                Err(errors)
            }
        }
    }

    /// Resolves actions whose intent was written but whose outcome was not (the daemon
    /// died between them), by reading the platform. Returns how many were resolved.
    pub async fn recover(&self) -> Result<usize, PassError> {
        // The savings counters start from the ledger's totals before /metrics answers, not
        // at the first pass: a scrape in between would see them gone, then back.
        self.metrics.set_savings_totals(&self.ledger.savings()?);
        let pending = self.ledger.pending()?;
        if pending.is_empty() {
            return Ok(0);
        }
        let snapshot = self.platform.list().await?;
        let now = self.clock.now();
        let listed: HashMap<&str, &Environment> = snapshot
            .environments
            .iter()
            .map(|e| (e.id.as_ref(), e))
            .collect();
        let mut view = self.ledger.view()?;
        for p in &pending {
            let env = listed.get(p.environment_id.as_str());
            let state = env.map(|e| e.state);
            let done = matches!(
                (p.action.as_str(), state),
                ("stop", Some(EnvState::Stopped | EnvState::Stopping))
                    | ("start", Some(EnvState::Running | EnvState::Starting))
                    | ("delete", None | Some(EnvState::Deleting))
            );
            let outcome = if done {
                "recovered_done"
            } else {
                "recovered_not_done"
            };
            tracing::warn!(environment = %p.environment_id, action = %p.action, outcome, "resolving an action interrupted by a restart");
            if done && p.action == "stop" {
                // curfew's stop took effect: remember it as curfew's (with its cause), for
                // wake and savings.
                let cause = policy::StopCause::of(
                    p.cause.as_deref().and_then(policy::Cause::from_ledger_word),
                );
                let rule: Arc<str> = p.rule.as_deref().unwrap_or_default().into();
                let cost = env
                    .and_then(|e| e.hourly_cost)
                    .or_else(|| self.rules().rule(&rule).and_then(|r| r.hourly_cost));
                self.ledger.open_stop_for(
                    &p.environment_id,
                    &rule,
                    cause,
                    "stopped (recovered after a restart)",
                    cost,
                    p.intent_at,
                )?;
                let r = view.entry(p.environment_id.as_str());
                if r.curfew_stop.is_none() {
                    r.curfew_stop = Some(policy::StopRecord {
                        at: p.intent_at,
                        cause,
                        rule,
                    });
                    if cause == policy::StopCause::Schedule {
                        r.schedule_stop_settled_at = Some(p.intent_at);
                    }
                }
            }
            self.ledger.outcome(p.id, outcome, None, now)?;
        }
        self.ledger.store(&mut view)?;
        Ok(pending.len())
    }

    /// One pass: list, decide, act, record.
    pub async fn pass(&self) -> Result<PassReport, PassError> {
        let _exclusive = self.exclusive.lock().await;
        let started = std::time::Instant::now();
        let result = self.pass_inner().await;
        let finished = self.clock.now();
        let (label, next) = match &result {
            Ok(r)
                if r.complete
                    && r.acted
                        .iter()
                        .all(|a| !matches!(a.result, ActResult::Failed(_))) =>
            {
                (PassResult::Ok, r.next_wakeup)
            }
            Ok(r) => (PassResult::Partial, r.next_wakeup),
            Err(_) => (PassResult::Error, None),
        };
        match &result {
            Ok(_) => {
                self.health.pass_succeeded(finished);
                self.health.set_ledger_problem(None);
            }
            // A ledger that cannot be used is named in /readyz at once; a platform's
            // failure only ages the last good pass.
            Err(PassError::Ledger(e)) => self.health.set_ledger_problem(Some(e.to_string())),
            Err(PassError::Platform(_)) => {}
        }
        self.metrics.pass(
            label,
            started.elapsed(),
            finished.timestamp() as f64,
            next.map(|t| t.timestamp() as f64),
        );
        result
    }

    /// What a pass and a plan both start from: the rules, a fresh listing, the ledger's
    /// view of it, and the decisions.
    async fn look(&self) -> Result<Look, PassError> {
        // A ledger that is gone makes the whole pass pointless: no listing either.
        self.ledger.check()?;
        let rules = self.rules();
        let snapshot = self.platform.list().await?;
        let now = self.clock.now();
        let mut view = self.ledger.view()?;
        view.observe(&snapshot, now);
        let decisions = policy::decide(&rules, &snapshot, &view, now);
        Ok(Look {
            rules,
            snapshot,
            now,
            view,
            decisions,
        })
    }

    async fn pass_inner(&self) -> Result<PassReport, PassError> {
        let Look {
            rules,
            snapshot,
            now,
            mut view,
            decisions,
        } = self.look().await?;
        let complete = snapshot.complete;
        let after = next_checks_after(&rules, &snapshot, &view, &decisions, now);
        // The listing is the pass's largest value, and the decisions carry what the rest of
        // the pass needs of it (ids, names, projects, states): only a notifier, whose daily
        // digest decides again on it, keeps it through the pass.
        let snapshot = self.notifier.is_some().then_some(snapshot);
        // What the listing's parsing left free in the heap goes back before the actions,
        // not after them.
        crate::memory::release_free();
        let done = self
            .act(&rules, &decisions, &mut view, now, complete)
            .await?;
        // Settlements (no action, but a fact for the next pass).
        for d in decisions
            .iter()
            .filter(|d| d.action == Action::None && d.settle.is_some())
        {
            view.apply(d, now);
        }
        self.ledger.store(&mut view)?;
        // Savings stop accruing when an environment runs again (seen running, started by
        // curfew in this very pass) or is gone. A stop done in this pass is stopped,
        // whatever the listing (taken before it) said.
        let mut stopped: Vec<bool> = decisions
            .iter()
            .map(|d| !matches!(d.state, EnvState::Running | EnvState::Starting))
            .collect();
        for a in done.iter().filter(|a| !a.delete_step) {
            if let (ActResult::Done(_), Some(d), Some(stopped)) =
                (&a.result, decisions.get(a.index), stopped.get_mut(a.index))
            {
                match d.action {
                    Action::Stop => *stopped = true,
                    Action::Start => *stopped = false,
                    _ => {}
                }
            }
        }
        // Sorted ids rather than maps: a fifth of the memory for 10,000 environments.
        let mut still: Vec<&str> = decisions
            .iter()
            .zip(stopped)
            .filter(|(_, stopped)| *stopped)
            .map(|(d, _)| d.environment_id.as_ref())
            .collect();
        still.sort_unstable();
        let still_stopped = |id: &str| still.binary_search(&id).is_ok();
        self.ledger.accrue(now, &rules.currency, &still_stopped)?;
        drop(still);
        self.export(&rules, &decisions, &view)?;
        let notifier = self.notifier.as_ref().zip(snapshot.as_ref());
        let next_digest = notifier.and_then(|(n, snapshot)| {
            n.after_pass(&PassFacts {
                rules: &rules,
                snapshot,
                view: &view,
                decisions: &decisions,
                acted: &done,
                ledger: &self.ledger,
                now,
            })
        });
        let next_confirmation = {
            let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
            let due: HashSet<&str> = decisions
                .iter()
                .filter(|d| d.delete_due())
                .map(|d| d.environment_id.as_ref())
                .collect();
            memory.confirmations.retain(|id| due.contains(id));
            memory.confirmations.next_after(now)
        };
        // The next wakeup: the earliest instant a decision could change, including those
        // this pass's own actions changed, a delete's second pass, and the digest.
        let next_wakeup = policy::next_wakeup(&decisions)
            .into_iter()
            .chain(after_actions(&after, &done).filter(|t| *t > now))
            .chain(next_confirmation)
            .chain(next_digest)
            .min();
        Ok(PassReport {
            at: now,
            complete,
            decisions,
            acted: done,
            next_wakeup,
        })
    }

    /// Metrics that describe the fleet after a pass.
    fn export(
        &self,
        rules: &RuleSet,
        decisions: &[Decision],
        view: &LedgerView,
    ) -> Result<(), PassError> {
        let mut states = Vec::new();
        let mut rate = 0.0;
        for d in decisions {
            if self.metrics.per_environment() {
                states.push((
                    d.environment.as_ref(),
                    d.project.as_ref(),
                    d.rule.as_deref(),
                    d.state,
                ));
            }
            if d.state == EnvState::Stopped
                && view
                    .get(&d.environment_id)
                    .is_some_and(|r| r.curfew_stop.is_some())
            {
                rate += d.hourly_cost.unwrap_or(0.0);
            }
        }
        self.metrics
            .set_environments(decisions.iter().map(|d| (d.state, d.rule.as_deref(), 1)));
        self.metrics.set_environment_states(&states);
        self.metrics.set_savings_rate(&rules.currency, rate);
        self.metrics.set_savings_totals(&self.ledger.savings()?);
        Ok(())
    }

    /// Runs passes until `shutdown` resolves: at the next wakeup or on `resync` ticks
    /// (sent by the cron scheduler), and when the rules change (`reloaded`).
    pub async fn run(
        self: Arc<Self>,
        mut resync: tokio::sync::mpsc::Receiver<()>,
        mut reloaded: tokio::sync::watch::Receiver<u64>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let next = match self.pass().await {
                Ok(report) => report.next_wakeup,
                Err(e) => {
                    tracing::error!(error = %e, "pass failed; the next one will try again");
                    None
                }
            };
            // The pass's listing, decisions and report are gone: their memory goes back to
            // the system rather than staying in the allocator until the next pass.
            crate::memory::release_free();
            // After the first pass, a reload, or a day: what the rules would save.
            self.project_if_due();
            // Wake at the boundary, at the latest one resync from now (the cron tick).
            let wait = next.map_or(self.options.resync, |t| {
                self.clock.real_wait_until(t).min(self.options.resync)
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = resync.recv() => {}
                _ = self.nudge.notified() => {}
                _ = reloaded.changed() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("reconcile loop stopped");
    }
}

/// For each decision whose own action changes the environment's state (a stop, a start),
/// when the decision it gets once that is done could change next ([`policy::decide_after`]):
/// computed while the listing is at hand, used for the actions that were done.
fn next_checks_after(
    rules: &RuleSet,
    snapshot: &Snapshot,
    view: &LedgerView,
    decisions: &[Decision],
    now: DateTime<Utc>,
) -> Vec<(usize, DateTime<Utc>)> {
    decisions
        .iter()
        .zip(&snapshot.environments)
        .enumerate()
        .filter(|(_, (d, _))| matches!(d.action, Action::Stop | Action::Start))
        .filter_map(|(index, (d, env))| {
            let warning = d.delete_step().filter(|w| w.action == Action::Warn);
            let done = std::iter::once(d).chain(warning.as_ref());
            let after = policy::decide_after(rules, env, view.get(&env.id), done, now)?;
            Some((index, after.next_check?))
        })
        .collect()
}

/// The next checks of [`next_checks_after`] whose action was done.
fn after_actions<'a>(
    after: &'a [(usize, DateTime<Utc>)],
    done: &'a [Acted],
) -> impl Iterator<Item = DateTime<Utc>> + 'a {
    done.iter()
        .filter(|a| !a.delete_step && matches!(a.result, ActResult::Done(_)))
        .filter_map(|a| {
            let k = after.binary_search_by_key(&a.index, |(i, _)| *i).ok()?;
            Some(after[k].1)
        })
}

mod operator;
mod projection;
pub use operator::{EnvironmentReport, OperatorError, Plan, PlanEntry};
pub use projection::{PROJECTION_DAYS, PROJECTION_HORIZONS, ProjectionError};

#[cfg(test)]
pub(crate) mod tests;
