//! Carrying decisions out: caps, dry-run, delete confirmation, bounded concurrency, and the
//! ledger's intent/outcome around every call.

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;

use super::{Daemon, PassError};
use crate::config::RuleSet;
use crate::metrics::{ActionResult, Cap};
use crate::platform::Outcome;
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

impl Daemon {
    pub(super) async fn act(
        &self,
        rules: &RuleSet,
        decisions: &[Decision],
        view: &mut LedgerView,
        now: DateTime<Utc>,
        complete: bool,
    ) -> Result<Vec<(usize, ActResult)>, PassError> {
        let mut due: Vec<(usize, &Decision)> = decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.action != Action::None)
            .collect();
        // Oldest due first, so caps hold back the newest.
        due.sort_by(|(_, a), (_, b)| {
            (a.due_since, &a.environment_id).cmp(&(b.due_since, &b.environment_id))
        });
        let mut stops_left = rules.safety.max_stops_per_pass;
        let deletes_last_hour = self
            .ledger
            .count_done_since(Action::Delete, now - TimeDelta::hours(1))?;
        let mut deletes_left = i64::from(rules.safety.max_deletes_per_hour)
            .saturating_sub(deletes_last_hour)
            .max(0);
        // First decide what each due action becomes; then write every intent in one
        // transaction (one disk sync) before the first call.
        let mut planned: Vec<(usize, &Decision, Option<ActResult>)> = Vec::with_capacity(due.len());
        for (i, d) in due {
            let result = if d.dry_run {
                Some(ActResult::DryRun)
            } else {
                match d.action {
                    Action::Stop | Action::Start if stops_left == 0 => {
                        Some(ActResult::SkippedCap(Cap::MaxStopsPerPass))
                    }
                    Action::Stop | Action::Start => {
                        stops_left -= 1;
                        None
                    }
                    Action::Delete if !complete => {
                        Some(ActResult::Failed("listing partial".into()))
                    }
                    Action::Delete if !self.delete_confirmed(&d.environment_id, now) => {
                        Some(ActResult::Confirming)
                    }
                    Action::Delete if deletes_left == 0 => {
                        Some(ActResult::SkippedCap(Cap::MaxDeletesPerHour))
                    }
                    Action::Delete => {
                        deletes_left -= 1;
                        None
                    }
                    // A warning is carried out by recording it (notifications send it).
                    Action::Warn => Some(ActResult::Done(Outcome::Accepted)),
                    Action::None => None,
                }
            };
            planned.push((i, d, result));
        }
        let ids = self
            .ledger
            .intents(&planned.iter().map(|(_, d, _)| *d).collect::<Vec<_>>(), now)?;
        // By index into `decisions`, as the pass reports them (one per planned action).
        let mut results: Vec<(usize, ActResult)> = Vec::with_capacity(planned.len());
        let mut settled: Vec<(i64, &str, Option<&str>)> = Vec::new();
        // By index: a future holding a borrowed decision trips the compiler's "FnOnce is not
        // general enough" (rust-lang/rust#110338) once the pass is spawned.
        let mut calls: Vec<(usize, i64)> = Vec::new();
        for ((i, d, result), id) in planned.into_iter().zip(ids) {
            let Some(r) = result else {
                calls.push((i, id));
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
            results.push((i, r));
        }
        self.ledger.outcomes(&settled, now)?;
        // A warning also goes where the platform's people look (a Kubernetes Event), best
        // effort.
        for (d, r) in super::acted(decisions, &results) {
            if d.action == Action::Warn && matches!(r, ActResult::Done(_)) {
                self.platform
                    .note(&d.environment_id, "DeleteWarning", &d.reason)
                    .await;
            }
        }
        if !calls.is_empty() {
            tracing::info!(calls = calls.len(), "calling the platform");
        }
        let platform = &self.platform;
        let outcomes: Vec<(usize, i64, Result<Outcome, String>)> = futures::stream::iter(calls)
            .map(|(i, id)| async move {
                let d = &decisions[i];
                let r = match d.action {
                    Action::Stop => platform.stop(&d.environment_id).await,
                    Action::Start => platform.start(&d.environment_id).await,
                    _ => platform.delete(&d.environment_id).await,
                };
                (i, id, r.map_err(|e| e.to_string()))
            })
            .buffer_unordered(self.options.max_in_flight.max(1))
            .collect()
            .await;
        let finished = self.clock.now();
        let mut written: Vec<(i64, &'static str, Option<String>)> =
            Vec::with_capacity(outcomes.len());
        for (i, id, r) in outcomes {
            let d = &decisions[i];
            let result = match r {
                Ok(outcome) => {
                    written.push((id, outcome.ledger_word(), None));
                    view.apply(d, now);
                    ActResult::Done(outcome)
                }
                Err(message) => {
                    written.push((id, "error", Some(message.clone())));
                    ActResult::Failed(message)
                }
            };
            self.record(d, &result);
            results.push((i, result));
        }
        // Outcomes and the stop intervals they open, in one transaction.
        let stops: Vec<&Decision> = super::acted(decisions, &results)
            .filter(|(d, r)| d.action == Action::Stop && matches!(r, ActResult::Done(_)))
            .map(|(d, _)| d)
            .collect();
        let outcomes: Vec<(i64, &str, Option<&str>)> = written
            .iter()
            .map(|(id, w, e)| (*id, *w, e.as_deref()))
            .collect();
        self.ledger.finish(&outcomes, &stops, finished, now)?;
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
