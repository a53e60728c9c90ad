//! Carrying decisions out: caps, dry-run, delete confirmation, bounded concurrency, and the
//! ledger's intent/outcome around every call. An operator's wake goes through the same
//! steps ([`Daemon::carry_out`]).

use std::sync::{Arc, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;

use super::{Daemon, PassError};
use crate::events::{ActResult, Acted, ActionTaken, CapHit};
use crate::ledger::Outcome as Written;
use crate::platform::{GitOps, NoticeKind, Outcome, PlatformError, links_text};
use crate::policy::caps::{self, Gate};
use crate::policy::{Action, Decision, LedgerView, RuleSet, Step};

/// A platform call to make: the action's index in the planned ones, what to do, to which
/// environment, and its intent's id. Owned: a future holding a borrowed decision trips
/// the compiler's "FnOnce is not general enough" (rust-lang/rust#110338) once the pass is
/// spawned.
/// A platform call to make: the planned action's index, the action, the environment, its
/// intent's id, and what its rule says of GitOps owners.
type Call = (usize, Action, Arc<str>, i64, GitOps);

/// What a platform call answered.
pub(super) type Answer = Result<Outcome, PlatformError>;

/// One action the pass takes or holds back: a decision's own, or its delete's step.
struct Planned {
    index: usize,
    delete_step: bool,
    step: Step,
    /// What it became without a call (dry-run, held back, a warning); `None`: to be called.
    result: Option<ActResult>,
}

impl Planned {
    fn acted(&self, result: ActResult) -> Acted {
        Acted {
            index: self.index,
            delete_step: self.delete_step,
            result,
        }
    }
}

impl Daemon {
    /// What each action of the pass becomes before any call, under the limits written once
    /// in [`caps::plan`] (which `curfew simulate` follows too): deletes first, then the
    /// decisions' own actions, oldest due first in each, so caps hold back the newest. (A
    /// delete never comes from a partial listing: `decide` holds it back.)
    fn plan_actions(
        &self,
        rules: &RuleSet,
        decisions: &[Decision],
        deletes_last_hour: i64,
        now: DateTime<Utc>,
    ) -> Vec<Planned> {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        caps::plan(decisions, &rules.safety, deletes_last_hour, true, |id| {
            memory.confirmations.confirmed(id, now)
        })
        .into_iter()
        .filter_map(|c| {
            let result = match c.gate {
                Gate::Go => None,
                Gate::DryRun => Some(ActResult::DryRun),
                Gate::Capped(cap) => Some(ActResult::SkippedCap(cap)),
                Gate::Confirming => Some(ActResult::Confirming),
                // Not reached: the listing is complete whenever `decide` lets a delete through.
                Gate::Partial => Some(ActResult::Failed("listing partial".into())),
                // A warning is carried out by recording it (notifications send it).
                Gate::Record => Some(ActResult::Done(Outcome::Accepted)),
            };
            Some(Planned {
                index: c.index,
                delete_step: c.delete_step,
                step: c.step(decisions)?,
                result,
            })
        })
        .collect()
    }

    /// Carries out the actions `decisions` call for: planned, their intents written, the
    /// calls made, their outcomes written; returns what became of each. The ledger's work
    /// runs off the async workers, in three transactions (intents, the outcomes of what
    /// needed no call, the calls' outcomes with the stops they opened).
    pub(super) async fn act(
        &self,
        rules: &RuleSet,
        decisions: &[Decision],
        view: &mut LedgerView,
        now: DateTime<Utc>,
    ) -> Result<Vec<Acted>, PassError> {
        let hour_ago = now - TimeDelta::hours(1);
        let deletes_last_hour = self
            .ledger
            .run(move |l| l.count_done_since(Action::Delete, hour_ago))
            .await?;
        let planned = self.plan_actions(rules, decisions, deletes_last_hour, now);
        // Every intent in one transaction (one disk sync) before the first call.
        let (planned, ids) = self
            .ledger
            .run(move |l| {
                let ids = l.intents(planned.iter().map(|p| &p.step), now)?;
                Ok((planned, ids))
            })
            .await?;
        let (mut results, calls, settled) = self.settle_uncalled(rules, &planned, ids, view, now);
        self.ledger.run(move |l| l.outcomes(&settled, now)).await?;
        self.note_warnings(&planned, now).await;
        let answers = self.call(calls).await;
        let (done, written, stops) = self.finish_calls(&planned, answers, view, now);
        let finished = self.clock.now();
        self.ledger
            .run(move |l| {
                let stops = stops.iter().map(|&k| &planned[k].step);
                l.finish(&written, stops, finished, now)
            })
            .await?;
        results.extend(done);
        for action in [Action::Stop, Action::Start, Action::Delete] {
            let skipped = crate::events::acted(decisions, &results)
                .filter(|(s, r)| {
                    s.action == action
                        && matches!(r, ActResult::SkippedCap(_) | ActResult::Failed(_))
                })
                .count();
            self.metrics.set_due_not_done(action, skipped as u64);
        }
        Ok(results)
    }

    /// A warning also goes where the platform's people look (a Kubernetes Event), best
    /// effort.
    async fn note_warnings(&self, planned: &[Planned], now: DateTime<Utc>) {
        for p in planned {
            if p.step.action == Action::Warn && matches!(p.result, Some(ActResult::Done(_))) {
                let message = self.note_with_links(&p.step, now);
                self.platform
                    .note(&p.step.environment_id, "DeleteWarning", &message)
                    .await;
            }
        }
    }

    /// Settles the actions that need no call (dry-run, held back, warnings): recorded in the
    /// view, logged and counted. Returns them, the calls to make for the others, and the
    /// outcomes to write.
    fn settle_uncalled(
        &self,
        rules: &RuleSet,
        planned: &[Planned],
        ids: Vec<i64>,
        view: &mut LedgerView,
        now: DateTime<Utc>,
    ) -> (Vec<Acted>, Vec<Call>, Vec<(i64, Written)>) {
        let mut settled = Vec::new();
        let mut calls: Vec<Call> = Vec::new();
        for (k, (p, id)) in planned.iter().zip(ids).enumerate() {
            let Some(result) = &p.result else {
                let gitops = rules
                    .rule(&p.step.rule)
                    .map(|r| r.gitops)
                    .unwrap_or_default();
                calls.push((k, p.step.action, p.step.environment_id.clone(), id, gitops));
                continue;
            };
            settled.push((id, Written::Acted(result.clone())));
            match result {
                ActResult::SkippedCap(cap) => CapHit(*cap).emit(&*self.metrics),
                ActResult::Done(_) => view.record(&p.step, now),
                _ => {}
            }
            self.record(&p.step, result);
        }
        let results = planned
            .iter()
            .filter_map(|p| Some(p.acted(p.result.clone()?)))
            .collect();
        (results, calls, settled)
    }

    /// Makes the platform calls, a bounded number in flight: each call's index in the
    /// planned actions, its intent's id, and what the platform said.
    async fn call(&self, calls: Vec<Call>) -> Vec<(usize, i64, Answer)> {
        if !calls.is_empty() {
            tracing::info!(calls = calls.len(), "calling the platform");
        }
        futures::stream::iter(calls)
            .map(|(k, action, env, id, gitops)| async move {
                (k, id, self.call_one(action, &env, gitops).await)
            })
            .buffer_unordered(self.options.max_in_flight.max(1))
            .collect()
            .await
    }

    /// Asks the platform to carry out `action` on the environment `id`.
    async fn call_one(&self, action: Action, id: &str, gitops: GitOps) -> Answer {
        match action {
            Action::Stop => self.platform.stop_under(id, gitops).await,
            Action::Start => self.platform.start(id).await,
            _ => self.platform.delete(id).await,
        }
    }

    /// What the calls became: recorded in the view, logged and counted. Returns them, the
    /// outcomes to write, and which planned actions are stops that were taken (their stop
    /// intervals open).
    fn finish_calls(
        &self,
        planned: &[Planned],
        answers: Vec<(usize, i64, Answer)>,
        view: &mut LedgerView,
        now: DateTime<Utc>,
    ) -> (Vec<Acted>, Vec<(i64, Written)>, Vec<usize>) {
        let mut done = Vec::with_capacity(answers.len());
        let mut written = Vec::with_capacity(answers.len());
        let mut stops = Vec::new();
        for (k, id, answer) in answers {
            let p = &planned[k];
            let result = result_of(&answer);
            if let ActResult::Done(_) = result {
                view.record(&p.step, now);
                if p.step.action == Action::Stop {
                    stops.push(k);
                }
            }
            self.record(&p.step, &result);
            done.push(p.acted(result.clone()));
            written.push((id, Written::Acted(result)));
        }
        (done, written, stops)
    }

    /// One action carried out alone, outside a pass (an operator's wake): its intent, the
    /// call, its outcome and its event, as a pass does them. Returns what the platform
    /// answered.
    pub(super) async fn carry_out(
        &self,
        step: &Step,
        now: DateTime<Utc>,
    ) -> Result<Answer, PassError> {
        let intent = step.clone();
        let id = self.ledger.run(move |l| l.intent(&intent, now)).await?;
        let answer = self
            .call_one(step.action, &step.environment_id, GitOps::default())
            .await;
        let result = result_of(&answer);
        self.record(step, &result);
        let (written, finished) = (Written::Acted(result), self.clock.now());
        self.ledger
            .run(move |l| l.outcome(id, written, finished))
            .await?;
        Ok(answer)
    }

    /// A delete warning's text for the platform's notice, with its signed links (keep,
    /// delay) when the daemon makes them.
    fn note_with_links(&self, d: &Step, now: DateTime<Utc>) -> String {
        let links = self.links.as_ref().map(|l| {
            l.links(
                &d.environment_id,
                d.mode,
                NoticeKind::DeleteWarning,
                &format!("{} event", self.platform.name()),
                now,
            )
        });
        match links.filter(|l| !l.is_empty()) {
            Some(links) => format!("{} — {}", d.reason, links_text(&links)),
            None => d.reason.to_string(),
        }
    }

    /// One log line and one count per action, from the same data.
    fn record(&self, step: &Step, result: &ActResult) {
        ActionTaken { step, result }.emit(&*self.metrics);
    }
}

/// What became of an action the platform was asked for.
fn result_of(answer: &Answer) -> ActResult {
    match answer {
        Ok(outcome) => ActResult::Done(*outcome),
        Err(e) => ActResult::Failed(e.to_string()),
    }
}
