//! One pass: list, decide, act, record; then the report to whoever listens. And what the
//! daemon does once at start: resolve the actions a crash interrupted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, Utc};

use super::projection::Handoff;
use super::{Daemon, LastPass};
use crate::events::{ActResult, Acted, PassFinished, PassReport, PassResult, Reverted};
use crate::ledger::{LedgerError, Outcome, Pending, RevertEntry};
use crate::platform::{EnvState, Environment, PlatformError, Snapshot};
use crate::policy::{self, Action, Decision, LedgerView, RuleSet, StopCause, StopRecord};

/// Why a pass failed as a whole (the next one tries again).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What a pass, a plan and a digest start from: the rules, a fresh listing, the ledger's
/// view of it, and the decisions.
pub struct Look {
    pub rules: Arc<RuleSet>,
    pub snapshot: Snapshot,
    pub now: DateTime<Utc>,
    pub view: LedgerView,
    pub decisions: Vec<Decision>,
    /// curfew's stops the listing shows put back by someone else, seen for the first time.
    pub reverts: Vec<SeenRevert>,
}

/// A stop of curfew's that the listing shows put back by someone else.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenRevert {
    pub environment_id: Arc<str>,
    pub environment: Arc<str>,
    /// The rule whose stop it was.
    pub rule: Arc<str>,
    /// Who, as the platform names them.
    pub by: Arc<str>,
    /// When: as the platform says, within curfew's stop and now; else now.
    pub at: DateTime<Utc>,
}

impl SeenRevert {
    fn event(&self) -> Reverted<'_> {
        Reverted {
            environment_id: &self.environment_id,
            environment: &self.environment,
            rule: &self.rule,
            by: &self.by,
            at: self.at,
        }
    }
}

/// The environments running again that curfew's record says it stopped, and whose
/// listing names who put them back: each is seen once, as the view then forgets
/// curfew's stop ([`LedgerView::observe`]).
fn reverts_seen(snapshot: &Snapshot, view: &LedgerView, now: DateTime<Utc>) -> Vec<SeenRevert> {
    snapshot
        .environments
        .iter()
        .filter(|e| e.state == EnvState::Running)
        .filter_map(|e| {
            let revert = e.reverted.as_deref()?;
            let stop = view.get(&e.id)?.curfew_stop.as_ref()?;
            Some(SeenRevert {
                environment_id: e.id.clone(),
                environment: e.name.clone(),
                rule: stop.rule.clone(),
                by: revert.by.clone(),
                at: revert.at.unwrap_or(now).max(stop.at).min(now),
            })
        })
        .collect()
}

impl Daemon {
    /// A fresh look at the fleet: the rules in force, a listing, the ledger's view of it,
    /// and the decisions now (nothing is acted on).
    pub async fn look(&self) -> Result<Look, PassError> {
        Ok(self.look_adopting().await?.0)
    }

    /// [`Daemon::look`], and the stops it took as curfew's from the platform's records
    /// ([`adopt_recorded_stops`]), whose stop intervals a pass opens.
    async fn look_adopting(&self) -> Result<(Look, Vec<RecoveredStop>), PassError> {
        // A ledger that is gone makes the whole pass pointless: no listing either.
        self.ledger.run(|l| l.check()).await?;
        let rules = self.rules();
        let mut snapshot = self.platform.list().await?;
        self.share_names_with_last(&mut snapshot);
        let now = self.clock.now();
        let mut view = self.ledger.run(|l| l.view()).await?;
        let reverts = reverts_seen(&snapshot, &view, now);
        view.observe(&snapshot, now);
        let adopted = adopt_recorded_stops(&rules, &snapshot, &mut view);
        let decisions = policy::decide(&rules, &snapshot, &view, now);
        let look = Look {
            rules,
            snapshot,
            now,
            view,
            decisions,
            reverts,
        };
        Ok((look, adopted))
    }

    /// One pass: list, decide, act, record; its report goes to the listeners.
    pub async fn pass(&self) -> Result<PassReport, PassError> {
        let _exclusive = self.exclusive.lock().await;
        let started = std::time::Instant::now();
        let result = self.pass_inner().await;
        let finished = self.clock.now();
        let outcome = match &result {
            Ok(r) if r.complete && r.acted.iter().all(|a| !failed(a)) => PassResult::Ok,
            Ok(_) => PassResult::Partial,
            Err(_) => PassResult::Error,
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
        PassFinished {
            result: outcome,
            duration: started.elapsed(),
            at: finished,
            next_wakeup: result.as_ref().ok().and_then(|r| r.next_wakeup),
            error: result.as_ref().err().map(|e| e as &dyn std::error::Error),
        }
        .emit(&*self.metrics);
        self.remember(&result, outcome, started.elapsed(), finished);
        result
    }

    /// The pass's steps: look, act, record what the actions and the listing showed,
    /// export, and tell the listeners.
    async fn pass_inner(&self) -> Result<PassReport, PassError> {
        let (
            Look {
                rules,
                snapshot,
                now,
                mut view,
                decisions,
                reverts,
            },
            adopted,
        ) = self.look_adopting().await?;
        if !adopted.is_empty() {
            tracing::info!(
                stops = adopted.len(),
                "taken as curfew's from the records on the objects (stopped by another replica, or before this ledger)"
            );
            self.ledger
                .run(move |l| adopted.iter().try_for_each(|stop| stop.open(l)))
                .await?;
        }
        let complete = snapshot.complete;
        self.record_reverts(&reverts, now).await?;
        let after = next_checks_after(&rules, &snapshot, &view, &decisions, now);
        let decisions = Arc::new(decisions);
        // The listing is the pass's largest value, and the decisions carry what the rest of
        // the pass needs of it (ids, names, projects, states). With the status page, it is
        // kept (shared, not copied) with the decisions: the page explains an environment
        // from it without calling the platform, and shows this pass's decisions from now
        // on. A projection due after this pass starts from it too (shared, not listed
        // again). Otherwise it is dropped before the actions. Either way what its parsing
        // left free in the heap goes back.
        let projecting = self.projection_due(now);
        let snapshot = Arc::new(snapshot);
        if self.keep_last_pass {
            self.publish(LastPass {
                at: now,
                complete,
                decisions: decisions.clone(),
                snapshot: Arc::clone(&snapshot),
            });
        }
        let for_projection = projecting.then_some(snapshot);
        crate::memory::release_free();
        let acted = self.act(&rules, &decisions, &mut view, now).await?;
        settle(&decisions, &acted, &mut view, now);
        let view = self
            .ledger
            .run(move |l| {
                l.store(&mut view)?;
                Ok(view)
            })
            .await?;
        self.accrue(&rules, &decisions, &acted, &reverts, now)
            .await?;
        self.export(&rules, &decisions, &view).await?;
        if let Some(snapshot) = for_projection {
            let done = acted
                .iter()
                .filter(|a| matches!(a.result, ActResult::Done(_)))
                .filter_map(|a| Some((a.index, a.step(&decisions)?.action)))
                .collect();
            self.hand_over(Handoff {
                rules: Arc::clone(&rules),
                at: now,
                snapshot,
                done,
                view,
            });
        }
        let next_confirmation = self.forget_deletes_no_longer_due(&decisions, now);
        // The next wakeup: the earliest instant a decision could change, including those
        // this pass's own actions changed, and a delete's second pass.
        let next_wakeup = policy::next_wakeup(&decisions)
            .into_iter()
            .chain(after_actions(&after, &acted).filter(|t| *t > now))
            .chain(next_confirmation)
            .min();
        let report = PassReport {
            next_wakeup,
            rules,
            at: now,
            complete,
            decisions,
            acted,
        };
        for listener in &self.listeners {
            listener.pass_done(&report);
        }
        Ok(report)
    }

    /// Each stop of curfew's put back by someone else: in the ledger, logged and counted,
    /// and said where the platform's people look (a Kubernetes Event).
    async fn record_reverts(
        &self,
        reverts: &[SeenRevert],
        now: DateTime<Utc>,
    ) -> Result<(), PassError> {
        if reverts.is_empty() {
            return Ok(());
        }
        let entries: Vec<RevertEntry> = reverts
            .iter()
            .map(|r| RevertEntry {
                environment_id: r.environment_id.to_string(),
                rule: r.rule.to_string(),
                by: r.by.to_string(),
                at: r.at,
                seen_at: now,
            })
            .collect();
        self.ledger
            .run(move |l| entries.iter().try_for_each(|e| l.revert(e)))
            .await?;
        for r in reverts {
            let event = r.event();
            event.emit(&*self.metrics);
            self.platform
                .note(&r.environment_id, "Reverted", &event.message())
                .await;
        }
        Ok(())
    }

    /// Savings accrue up to now; they stop accruing when an environment runs again (seen
    /// running, started by curfew in this very pass) or is gone, and for a stop someone
    /// put back, from that instant on. A stop done in this pass is stopped, whatever the
    /// listing (taken before it) said.
    async fn accrue(
        &self,
        rules: &RuleSet,
        decisions: &[Decision],
        acted: &[Acted],
        reverts: &[SeenRevert],
        now: DateTime<Utc>,
    ) -> Result<(), PassError> {
        let mut stopped: Vec<bool> = decisions
            .iter()
            .map(|d| !matches!(d.state, EnvState::Running | EnvState::Starting))
            .collect();
        for a in acted.iter().filter(|a| !a.delete_step) {
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
        // Sorted ids (shared with the decisions) rather than maps: a fifth of the memory for
        // 10,000 environments.
        let mut still: Vec<Arc<str>> = decisions
            .iter()
            .zip(stopped)
            .filter(|(_, stopped)| *stopped)
            .map(|(d, _)| d.environment_id.clone())
            .collect();
        still.sort_unstable();
        let currency = rules.currency.clone();
        let ended: HashMap<Arc<str>, DateTime<Utc>> = reverts
            .iter()
            .map(|r| (r.environment_id.clone(), r.at))
            .collect();
        self.ledger
            .run(move |l| {
                let still_stopped = |id: &str| still.binary_search_by(|s| (**s).cmp(id)).is_ok();
                l.accrue_ending(now, &currency, &still_stopped, &|id| ended.get(id).copied())
            })
            .await?;
        Ok(())
    }

    /// Metrics that describe the fleet after a pass.
    async fn export(
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
        let totals = self.ledger.run(|l| l.savings()).await?;
        self.metrics.set_savings_totals(&totals);
        Ok(())
    }

    /// A delete whose condition went away starts its two passes over when it comes back.
    /// Returns when the next delete seen due is confirmed: its second pass.
    fn forget_deletes_no_longer_due(
        &self,
        decisions: &[Decision],
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let due: HashSet<&str> = decisions
            .iter()
            .filter(|d| d.delete_due())
            .map(|d| d.environment_id.as_ref())
            .collect();
        memory.confirmations.retain(|id| due.contains(id));
        memory.confirmations.next_after(now)
    }

    /// Resolves actions whose intent was written but whose outcome was not (the daemon
    /// died between them), by reading the platform. Returns how many were resolved.
    pub async fn recover(&self) -> Result<usize, PassError> {
        // The savings counters start from the ledger's totals before /metrics answers, not
        // at the first pass: a scrape in between would see them gone, then back.
        let (totals, pending) = self
            .ledger
            .run(|l| Ok((l.savings()?, l.pending()?)))
            .await?;
        self.metrics.set_savings_totals(&totals);
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
        let mut view = self.ledger.run(|l| l.view()).await?;
        let mut stops = Vec::new();
        let mut outcomes = Vec::new();
        for p in &pending {
            let env = listed.get(p.environment_id.as_str()).copied();
            let done = done_on_the_platform(p.action, env.map(|e| e.state));
            let outcome = Outcome::Recovered { done };
            tracing::warn!(environment = %p.environment_id, action = %p.action, outcome = outcome.word(), "resolving an action interrupted by a restart");
            if done && p.action == Action::Stop {
                stops.extend(self.recovered_stop(p, env, &mut view));
            }
            outcomes.push((p.id, outcome));
        }
        let resolved = pending.len();
        self.ledger
            .run(move |l| {
                for stop in &stops {
                    stop.open(l)?;
                }
                l.outcomes(&outcomes, now)?;
                l.store(&mut view)
            })
            .await?;
        Ok(resolved)
    }

    /// curfew's stop took effect before the crash: remembered as curfew's (with its cause)
    /// in the view, for wake; and its stop interval to open, for savings.
    fn recovered_stop(
        &self,
        p: &Pending,
        env: Option<&Environment>,
        view: &mut LedgerView,
    ) -> Option<RecoveredStop> {
        let Some(rule) = p.rule.as_deref() else {
            tracing::warn!(environment = %p.environment_id, "an interrupted stop names no rule: not remembered as curfew's");
            return None;
        };
        let cause = StopCause::of(p.cause);
        let rule: Arc<str> = rule.into();
        let hourly_cost = env
            .and_then(|e| e.hourly_cost)
            .or_else(|| self.rules().rule(&rule).and_then(|r| r.hourly_cost));
        let r = view.entry(p.environment_id.as_str());
        if r.curfew_stop.is_none() {
            r.curfew_stop = Some(StopRecord {
                at: p.intent_at,
                cause,
                rule: rule.clone(),
            });
            if cause == StopCause::Schedule {
                r.schedule_stop_settled_at = Some(p.intent_at);
            }
        }
        Some(RecoveredStop {
            environment: p.environment_id.clone(),
            rule,
            cause,
            hourly_cost,
            at: p.intent_at,
            reason: "stopped (recovered after a restart)",
        })
    }
}

/// The stops the platform's own records say curfew made (`stopped_by_curfew_at`) and this
/// replica's ledger does not know (another replica made them before a failover, or a
/// ledger that was lost): taken as curfew's under the rule that matches the environment
/// now, for the schedule when that rule's schedule was off at the stop, else for idleness
/// (an idle stop happens inside a window). Savings then count from the stop, and the
/// schedule starts it at the next boundary, as if this replica had made it.
fn adopt_recorded_stops(
    rules: &RuleSet,
    snapshot: &Snapshot,
    view: &mut LedgerView,
) -> Vec<RecoveredStop> {
    let mut adopted = Vec::new();
    for env in &snapshot.environments {
        let Some(at) = env.stopped_by_curfew_at else {
            continue;
        };
        if env.state != EnvState::Stopped
            || view.get(&env.id).is_some_and(|r| r.curfew_stop.is_some())
        {
            continue;
        }
        let Some(rule) = rules.rules.iter().find(|r| r.selector.matches(env)) else {
            continue;
        };
        let cause = match &rule.schedule {
            Some(s) if !s.is_active(at) => StopCause::Schedule,
            _ => StopCause::Idle,
        };
        let name = rule.name.clone();
        let r = view.entry(env.id.clone());
        r.curfew_stop = Some(StopRecord {
            at,
            cause,
            rule: name.clone(),
        });
        if cause == StopCause::Schedule {
            r.schedule_stop_settled_at = Some(at);
        }
        adopted.push(RecoveredStop {
            environment: env.id.to_string(),
            rule: name,
            cause,
            hourly_cost: env.hourly_cost.or(rule.hourly_cost),
            at,
            reason: "stopped (taken from the records on the objects)",
        });
    }
    adopted
}

/// A stop found done after a crash, whose interval the ledger opens.
struct RecoveredStop {
    environment: String,
    rule: Arc<str>,
    cause: StopCause,
    hourly_cost: Option<f64>,
    at: DateTime<Utc>,
    /// Why, in the ledger's words.
    reason: &'static str,
}

impl RecoveredStop {
    fn open(&self, ledger: &crate::ledger::Ledger) -> Result<(), LedgerError> {
        ledger.open_stop_for(
            &self.environment,
            &self.rule,
            self.cause,
            self.reason,
            self.hourly_cost,
            self.at,
        )
    }
}

/// Whether the platform shows `action` done, the environment being in `state` (`None`:
/// no longer listed).
fn done_on_the_platform(action: Action, state: Option<EnvState>) -> bool {
    matches!(
        (action, state),
        (Action::Stop, Some(EnvState::Stopped | EnvState::Stopping))
            | (Action::Start, Some(EnvState::Running | EnvState::Starting))
            | (Action::Delete, None | Some(EnvState::Deleting))
    )
}

/// The facts decisions settle for the next pass: those of decisions without an action, and
/// those of decisions whose own action was done.
fn settle(decisions: &[Decision], acted: &[Acted], view: &mut LedgerView, now: DateTime<Utc>) {
    let done = acted
        .iter()
        .filter(|a| !a.delete_step && matches!(a.result, ActResult::Done(_)))
        .filter_map(|a| decisions.get(a.index));
    let idle = decisions.iter().filter(|d| d.action == Action::None);
    for d in idle.chain(done) {
        view.settle(d, now);
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
            let warned = d.delete_step_action() == Some(Action::Warn);
            let after = policy::decide_after(rules, env, view.get(&env.id), d, warned, now)?;
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

fn failed(a: &Acted) -> bool {
    matches!(a.result, ActResult::Failed(_))
}
