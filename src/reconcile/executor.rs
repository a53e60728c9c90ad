//! Carrying decisions out: caps, dry-run, delete confirmation, bounded concurrency, and the
//! ledger's intent/outcome around every call.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;

use super::{Acted, Daemon, PassError};
use crate::config::RuleSet;
use crate::metrics::{ActionResult, Cap};
use crate::platform::Outcome;
use crate::policy::caps::{self, Gate};
use crate::policy::{Action, Decision, LedgerView};

/// What became of a decision that called for an action.
#[derive(Debug, Clone, PartialEq)]
pub enum ActResult {
    /// The platform took it (or had it already: Qovery's 409, or the environment is gone).
    Done(Outcome),
    /// Logged and counted, nothing called.
    DryRun,
    /// Over `max_stops_per_pass` or `max_deletes_per_hour`: left for a later pass.
    SkippedCap(Cap),
    /// A delete seen due for the first time: confirmed on a pass one resync later.
    Confirming,
    /// The platform refused or failed; the next pass decides again.
    Failed(String),
}

impl ActResult {
    /// The `result` label of `curfew_actions_total`.
    pub fn label(&self) -> ActionResult {
        match self {
            ActResult::Done(_) => ActionResult::Ok,
            ActResult::DryRun => ActionResult::DryRun,
            ActResult::SkippedCap(_) | ActResult::Confirming => ActionResult::SkippedCap,
            ActResult::Failed(_) => ActionResult::Error,
        }
    }
}

/// A platform call to make: the action's index in the planned ones, what to do, to which
/// environment, and its intent's id. Owned: a future holding a borrowed decision trips
/// the compiler's "FnOnce is not general enough" (rust-lang/rust#110338) once the pass is
/// spawned.
type Call = (usize, Action, Arc<str>, i64);

/// One action the pass takes or holds back: a decision's own, or its delete's step.
struct Planned<'d> {
    index: usize,
    delete_step: bool,
    decision: Cow<'d, Decision>,
    /// What it became without a call (dry-run, held back, a warning); `None`: to be called.
    result: Option<ActResult>,
}

impl Gate {
    /// What an action the limits stopped short of a call becomes; `None`: call.
    fn result(self) -> Option<ActResult> {
        match self {
            Gate::Go => None,
            Gate::DryRun => Some(ActResult::DryRun),
            Gate::Capped(cap) => Some(ActResult::SkippedCap(cap)),
            Gate::Confirming => Some(ActResult::Confirming),
            Gate::Partial => Some(ActResult::Failed("listing partial".into())),
            Gate::Record => Some(ActResult::Done(Outcome::Accepted)),
        }
    }
}

impl Daemon {
    /// What each action of the pass becomes before any call, under the safety limits
    /// ([`caps::plan`]): the deletes done in the last hour come from the ledger, the
    /// deletes first seen due from the passes' memory.
    fn plan_actions<'d>(
        &self,
        rules: &RuleSet,
        decisions: &'d [Decision],
        now: DateTime<Utc>,
        complete: bool,
    ) -> Result<Vec<Planned<'d>>, PassError> {
        let deletes_last_hour = self
            .ledger
            .count_done_since(Action::Delete, now - TimeDelta::hours(1))?;
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let steps = caps::plan(
            decisions,
            &rules.safety,
            deletes_last_hour,
            complete,
            |id| memory.confirmations.confirmed(id, now),
        );
        Ok(steps
            .into_iter()
            .filter_map(|s| {
                Some(Planned {
                    index: s.index,
                    delete_step: s.delete_step,
                    result: s.gate.result(),
                    decision: s.decision(decisions)?,
                })
            })
            .collect())
    }

    pub(super) async fn act(
        &self,
        rules: &RuleSet,
        decisions: &[Decision],
        view: &mut LedgerView,
        now: DateTime<Utc>,
        complete: bool,
    ) -> Result<Vec<Acted>, PassError> {
        let planned = self.plan_actions(rules, decisions, now, complete)?;
        // Every intent in one transaction (one disk sync) before the first call.
        let ids = self.ledger.intents(
            &planned.iter().map(|p| &*p.decision).collect::<Vec<_>>(),
            now,
        )?;
        let (mut results, calls) = self.settle_uncalled(&planned, ids, view, now)?;
        // A warning also goes where the platform's people look (a Kubernetes Event), best
        // effort.
        for p in &planned {
            if p.decision.action == Action::Warn && matches!(p.result, Some(ActResult::Done(_))) {
                let d = &p.decision;
                self.platform
                    .note(&d.environment_id, "DeleteWarning", &d.reason)
                    .await;
            }
        }
        let outcomes = self.call(calls).await;
        results.extend(self.finish_calls(&planned, outcomes, view, now)?);
        for action in [Action::Stop, Action::Start, Action::Delete] {
            let skipped = super::acted(decisions, &results)
                .filter(|(d, r)| {
                    d.action == action
                        && matches!(r, ActResult::SkippedCap(_) | ActResult::Failed(_))
                })
                .count();
            self.metrics.set_due_not_done(action, skipped as u64);
        }
        Ok(results)
    }

    /// Records the actions that need no call (dry-run, held back, warnings) with their
    /// outcomes; returns them, and the calls to make for the others.
    fn settle_uncalled(
        &self,
        planned: &[Planned<'_>],
        ids: Vec<i64>,
        view: &mut LedgerView,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Acted>, Vec<Call>), PassError> {
        let mut results: Vec<Acted> = Vec::with_capacity(planned.len());
        let mut settled: Vec<(i64, &str, Option<&str>)> = Vec::new();
        let mut calls: Vec<Call> = Vec::new();
        for (k, (p, id)) in planned.iter().zip(ids).enumerate() {
            let d = &*p.decision;
            let Some(r) = p.result.clone() else {
                calls.push((k, d.action, d.environment_id.clone(), id));
                continue;
            };
            let outcome = match &r {
                ActResult::DryRun => "dry_run",
                ActResult::SkippedCap(_) => "skipped_cap",
                ActResult::Confirming => "confirming",
                ActResult::Done(_) => "ok",
                ActResult::Failed(_) => "error",
            };
            settled.push((id, outcome, None));
            match &r {
                ActResult::SkippedCap(cap) => self.metrics.cap_hit(*cap),
                ActResult::Done(_) => view.apply(d, now),
                _ => {}
            }
            self.record(d, &r);
            results.push(Acted {
                index: p.index,
                delete_step: p.delete_step,
                result: r,
            });
        }
        self.ledger.outcomes(&settled, now)?;
        Ok((results, calls))
    }

    /// Makes the platform calls, a bounded number in flight: each call's index in the
    /// planned actions, its intent's id, and what the platform said.
    async fn call(&self, calls: Vec<Call>) -> Vec<(usize, i64, Result<Outcome, String>)> {
        if !calls.is_empty() {
            tracing::info!(calls = calls.len(), "calling the platform");
        }
        let platform = &self.platform;
        futures::stream::iter(calls)
            .map(|(k, action, env, id)| async move {
                let r = match action {
                    Action::Stop => platform.stop(&env).await,
                    Action::Start => platform.start(&env).await,
                    _ => platform.delete(&env).await,
                };
                (k, id, r.map_err(|e| e.to_string()))
            })
            .buffer_unordered(self.options.max_in_flight.max(1))
            .collect()
            .await
    }

    /// Records what the calls became: outcomes and the stop intervals they open, in one
    /// transaction.
    fn finish_calls(
        &self,
        planned: &[Planned<'_>],
        outcomes: Vec<(usize, i64, Result<Outcome, String>)>,
        view: &mut LedgerView,
        now: DateTime<Utc>,
    ) -> Result<Vec<Acted>, PassError> {
        let finished = self.clock.now();
        let mut results = Vec::with_capacity(outcomes.len());
        let mut written: Vec<(i64, &'static str, Option<String>)> =
            Vec::with_capacity(outcomes.len());
        let mut stops: Vec<&Decision> = Vec::new();
        for (k, id, r) in outcomes {
            let p = &planned[k];
            let d = &*p.decision;
            let result = match r {
                Ok(outcome) => {
                    written.push((id, outcome.ledger_word(), None));
                    view.apply(d, now);
                    if d.action == Action::Stop {
                        stops.push(d);
                    }
                    ActResult::Done(outcome)
                }
                Err(message) => {
                    written.push((id, "error", Some(message.clone())));
                    ActResult::Failed(message)
                }
            };
            self.record(d, &result);
            results.push(Acted {
                index: p.index,
                delete_step: p.delete_step,
                result,
            });
        }
        let outcomes: Vec<(i64, &str, Option<&str>)> = written
            .iter()
            .map(|(id, w, e)| (*id, *w, e.as_deref()))
            .collect();
        self.ledger.finish(&outcomes, &stops, finished, now)?;
        Ok(results)
    }

    /// One log line and one count per action, from the same data.
    fn record(&self, d: &Decision, r: &ActResult) {
        let rule = d.rule.as_deref().unwrap_or("none");
        // A delete waiting for its second pass was not attempted: logged, not counted.
        if *r != ActResult::Confirming {
            self.metrics.action(d.action, d.rule.as_deref(), r.label());
        }
        match r {
            ActResult::Failed(e) => {
                tracing::warn!(environment = %d.environment, id = %d.environment_id, rule, action = %d.action, reason = %d.reason, result = "error", error = %e, "action failed")
            }
            ActResult::Done(o) => {
                tracing::info!(environment = %d.environment, id = %d.environment_id, rule, action = %d.action, reason = %d.reason, result = ?o, "action")
            }
            other => {
                tracing::info!(environment = %d.environment, id = %d.environment_id, rule, action = %d.action, reason = %d.reason, result = r.label().as_str(), detail = ?other, "action not taken")
            }
        }
    }
}
