//! The deletes coming within a horizon if nothing changes meanwhile (for the daily digest),
//! found by asking `decide` itself.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::decide::snoozes;
use super::{LedgerView, RuleSet, decide};
use crate::platform::{EnvState, Mode, Snapshot};

/// A delete `decide` would make within the horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct UpcomingDelete {
    pub environment_id: Arc<str>,
    pub environment: Arc<str>,
    pub project: Arc<str>,
    /// Whether it may carry action links (never for production).
    pub mode: Mode,
    pub state: EnvState,
    pub rule: Arc<str>,
    /// The earliest instant the delete may happen, if nothing changes before then.
    pub at: DateTime<Utc>,
}

/// The deletes `decide` would make within `horizon` of `now` if nothing changed in the
/// meantime (no deployment, no snooze, no new rule), earliest first, each with its rule.
///
/// This asks `decide` itself, at `now + horizon`, with every environment not yet warned
/// counted as warned now. That assumption moves no delete earlier than it could happen:
/// a warning not yet given comes at `due - warn_before_delete` at the earliest, and the
/// delete follows at `due`; one given now would delete at `now + warn_before_delete` at the
/// earliest. The instant listed is the latest of the constraints `decide` checks (due,
/// warning period, grace period, snooze).
pub fn upcoming_deletes(
    rules: &RuleSet,
    snapshot: &Snapshot,
    view: &LedgerView,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Vec<UpcomingDelete> {
    let mut projected = view.clone();
    for env in &snapshot.environments {
        projected
            .entry(env.id.clone())
            .delete_warned_at
            .get_or_insert(now);
    }
    // A partial listing holds deletes back for one pass only: project a complete one.
    let snapshot: Cow<'_, Snapshot> = if snapshot.complete {
        Cow::Borrowed(snapshot)
    } else {
        Cow::Owned(Snapshot {
            environments: snapshot.environments.clone(),
            complete: true,
        })
    };
    let later = now + horizon;
    let decisions = decide(rules, &snapshot, &projected, later);
    let mut out: Vec<UpcomingDelete> = snapshot
        .environments
        .iter()
        .zip(decisions)
        .filter(|(_, d)| d.delete_due() && !d.dry_run)
        .filter_map(|(env, d)| {
            let rule = rules.rule(d.rule.as_deref()?)?;
            let record = projected.get(&env.id);
            let warned_until = record
                .and_then(|r| r.delete_warned_at)
                .map(|w| w + rule.warn_before_delete);
            let (snoozed, _) = snoozes(env, record);
            let at = [
                Some(now),
                d.delete.as_ref().and_then(|p| p.due_since),
                warned_until,
                Some(env.created_at + rule.grace_period),
            ]
            .into_iter()
            .chain(snoozed.into_iter().map(|s| s.map(|(until, _)| until)))
            .flatten()
            .filter(|t| *t <= later)
            .max()
            .unwrap_or(now);
            Some(UpcomingDelete {
                environment_id: d.environment_id,
                environment: d.environment,
                project: d.project,
                mode: d.mode,
                state: d.state,
                rule: rule.name.clone(),
                at,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.environment).cmp(&(b.at, &b.environment)));
    out
}
