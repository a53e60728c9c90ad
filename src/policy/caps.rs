//! The safety limits on what one pass does, as plain functions: in which order a pass takes
//! its actions, and what `dry_run`, `max_stops_per_pass`, `max_deletes_per_hour`, a partial
//! listing and a delete's second pass leave of them.
//!
//! The daemon's executor carries out what these let through; `curfew simulate` holds its
//! simulated passes to the same limits, so both take the same actions at the same instants.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Action, Decision, Safety, Step};

/// A safety cap, as counted in `curfew_caps_hit_total{cap}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    MaxStopsPerPass,
    MaxDeletesPerHour,
}

impl Cap {
    pub const ALL: [Cap; 2] = [Cap::MaxStopsPerPass, Cap::MaxDeletesPerHour];

    pub fn as_str(self) -> &'static str {
        match self {
            Cap::MaxStopsPerPass => "max_stops_per_pass",
            Cap::MaxDeletesPerHour => "max_deletes_per_hour",
        }
    }
}

/// What the limits make of one action, before any call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Carry it out: call the platform.
    Go,
    /// Dry-run: logged and counted, nothing called.
    DryRun,
    /// Held back by a cap, for a later pass.
    Capped(Cap),
    /// A delete seen due for the first time: done on a pass one resync later.
    Confirming,
    /// A delete on a partial listing: not done.
    Partial,
    /// A warning: carried out by recording it (notifications send it).
    Record,
}

/// One action of a pass: a decision's own, or its delete's step, and what the limits
/// make of it (by index: the decisions are not cloned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapStep {
    /// The decision's index in the pass's decisions.
    pub index: usize,
    /// The decision's delete step ([`Decision::delete_step`]) rather than its own action.
    pub delete_step: bool,
    pub gate: Gate,
}

impl CapStep {
    /// The step to carry out: the decision's own ([`Decision::step`]) or its delete's
    /// ([`Decision::delete_step`]).
    pub fn step<D: Borrow<Decision>>(&self, decisions: &[D]) -> Option<Step> {
        let d: &Decision = decisions.get(self.index)?.borrow();
        if self.delete_step {
            d.delete_step()
        } else {
            d.step()
        }
    }

    /// What the step does.
    pub fn action<D: Borrow<Decision>>(&self, decisions: &[D]) -> Action {
        let d: &Decision = decisions[self.index].borrow();
        match (&d.delete, self.delete_step) {
            (Some(delete), true) => delete.action,
            (_, _) => d.action,
        }
    }
}

/// What the caps leave of a pass's actions, handed out oldest due first.
struct Gates {
    stops_left: u32,
    deletes_left: i64,
    complete: bool,
}

/// Every action `decisions` call for, in the order a pass takes them, each with its gate:
/// deletes first (whether one goes ahead decides whether its decision's own action is still
/// needed: a deleted environment is not stopped first, a held-back delete's environment
/// is), then the decisions' own actions; oldest due first in each, so caps hold back the
/// newest. `deletes_last_hour` counts the deletes done in the hour before; `confirmed` says
/// whether a due delete was first seen due at least one resync ago (and notes it if new).
pub fn plan<D: Borrow<Decision>>(
    decisions: &[D],
    safety: &Safety,
    deletes_last_hour: i64,
    complete: bool,
    mut confirmed: impl FnMut(&str) -> bool,
) -> Vec<CapStep> {
    let mut gates = Gates {
        stops_left: safety.max_stops_per_pass,
        deletes_left: i64::from(safety.max_deletes_per_hour)
            .saturating_sub(deletes_last_hour)
            .max(0),
        complete,
    };
    // Since when each step has been due (a delete's own instant for its step), and whose.
    let at = |i: usize| -> &Decision { decisions[i].borrow() };
    let due = |i: usize, delete_step: bool| {
        let d = at(i);
        let since = match (&d.delete, delete_step) {
            (Some(delete), true) => delete.due_since,
            _ => d.due_since,
        };
        (since, &d.environment_id)
    };
    let mut deletes: Vec<usize> = (0..decisions.len())
        .filter(|i| at(*i).delete_step_action().is_some())
        .collect();
    deletes.sort_by(|a, b| due(*a, true).cmp(&due(*b, true)));
    let mut steps: Vec<CapStep> = Vec::with_capacity(deletes.len());
    let mut deleted: Vec<usize> = Vec::new();
    for index in deletes {
        let d = at(index);
        let action = d.delete_step_action().unwrap_or(Action::None);
        let gate = gates.gate(action, &d.environment_id, d.dry_run, &mut confirmed);
        if action == Action::Delete && matches!(gate, Gate::Go | Gate::DryRun) {
            deleted.push(index);
        }
        steps.push(CapStep {
            index,
            delete_step: true,
            gate,
        });
    }
    deleted.sort_unstable();
    let mut own: Vec<usize> = (0..decisions.len())
        .filter(|i| at(*i).action != Action::None && deleted.binary_search(i).is_err())
        .collect();
    own.sort_by(|a, b| due(*a, false).cmp(&due(*b, false)));
    for index in own {
        let d = at(index);
        let gate = gates.gate(d.action, &d.environment_id, d.dry_run, &mut confirmed);
        steps.push(CapStep {
            index,
            delete_step: false,
            gate,
        });
    }
    steps
}

impl Gates {
    fn gate(
        &mut self,
        action: Action,
        id: &str,
        dry_run: bool,
        confirmed: &mut impl FnMut(&str) -> bool,
    ) -> Gate {
        if dry_run {
            return Gate::DryRun;
        }
        match action {
            Action::Stop | Action::Start if self.stops_left == 0 => {
                Gate::Capped(Cap::MaxStopsPerPass)
            }
            Action::Stop | Action::Start => {
                self.stops_left -= 1;
                Gate::Go
            }
            Action::Delete if !self.complete => Gate::Partial,
            Action::Delete if !confirmed(id) => Gate::Confirming,
            Action::Delete if self.deletes_left == 0 => Gate::Capped(Cap::MaxDeletesPerHour),
            Action::Delete => {
                self.deletes_left -= 1;
                Gate::Go
            }
            Action::Warn => Gate::Record,
            Action::None => Gate::Go,
        }
    }
}

/// When each due delete was first seen due: a delete is done only when its condition held
/// on two passes at least `wait` (one resync) apart.
#[derive(Debug, Clone)]
pub struct DeleteConfirmations {
    first_due: HashMap<Arc<str>, DateTime<Utc>>,
    wait: TimeDelta,
}

impl DeleteConfirmations {
    /// Confirmations `wait` apart.
    pub fn new(wait: TimeDelta) -> DeleteConfirmations {
        DeleteConfirmations {
            first_due: HashMap::new(),
            wait,
        }
    }

    /// Whether the delete of `id`, due now, was first seen due at least `wait` ago; notes
    /// now as its first sight if it is new.
    pub fn confirmed(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        let first = match self.first_due.get(id) {
            Some(first) => *first,
            None => {
                self.first_due.insert(id.into(), now);
                now
            }
        };
        now - first >= self.wait
    }

    /// How many deletes have been seen due (and not forgotten).
    pub fn len(&self) -> usize {
        self.first_due.len()
    }

    /// Whether no delete has been seen due.
    pub fn is_empty(&self) -> bool {
        self.first_due.is_empty()
    }

    /// Forgets the deletes that are no longer due.
    pub fn retain(&mut self, mut due: impl FnMut(&str) -> bool) {
        self.first_due.retain(|id, _| due(id));
    }

    /// The earliest instant after `now` at which a delete seen due becomes confirmed: the
    /// pass that carries it out.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.first_due
            .values()
            .map(|first| *first + self.wait)
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Cause, PendingDelete};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn decision(id: &str, action: Action, due: &str, delete: Option<Action>) -> Decision {
        Decision {
            environment_id: id.into(),
            environment: id.into(),
            project: "web".into(),
            mode: crate::platform::Mode::Preview,
            state: crate::platform::EnvState::Running,
            action,
            cause: None,
            rule: Some("r".into()),
            reason: "because".into(),
            due_since: Some(at(due)),
            next_check: None,
            dry_run: false,
            settle: None,
            hourly_cost: None,
            delete: delete.map(|action| {
                Box::new(PendingDelete {
                    action,
                    cause: Cause::Age,
                    reason: "old".into(),
                    due_since: Some(at(due)),
                    at: None,
                })
            }),
        }
    }

    fn gates(decisions: &[Decision], steps: &[CapStep]) -> Vec<(String, Action, Gate)> {
        steps
            .iter()
            .map(|s| {
                let d = s.step(decisions).unwrap();
                assert_eq!(d.action, s.action(decisions));
                (d.environment_id.to_string(), d.action, s.gate)
            })
            .collect()
    }

    #[test]
    fn caps_hold_back_the_newest_and_a_delete_that_goes_ahead_needs_no_stop() {
        let safety = Safety {
            max_stops_per_pass: 1,
            max_deletes_per_hour: 3,
            ..Safety::default()
        };
        let decisions = [
            decision("b", Action::Stop, "2026-11-27T19:00:00Z", None),
            decision("a", Action::Stop, "2026-11-27T18:00:00Z", None),
            decision(
                "c",
                Action::Stop,
                "2026-11-27T17:00:00Z",
                Some(Action::Delete),
            ),
            decision(
                "d",
                Action::None,
                "2026-11-27T17:00:00Z",
                Some(Action::Warn),
            ),
        ];
        // Two deletes in the last hour leave one; "c" was seen due a resync ago.
        let steps = plan(&decisions, &safety, 2, true, |id| id == "c");
        assert_eq!(
            gates(&decisions, &steps),
            [
                ("c".to_string(), Action::Delete, Gate::Go),
                ("d".to_string(), Action::Warn, Gate::Record),
                ("a".to_string(), Action::Stop, Gate::Go),
                (
                    "b".to_string(),
                    Action::Stop,
                    Gate::Capped(Cap::MaxStopsPerPass)
                ),
            ]
        );
        // Not confirmed yet: the delete waits and the environment is stopped meanwhile.
        let steps = plan(&decisions, &safety, 0, true, |_| false);
        assert_eq!(steps[0].gate, Gate::Confirming);
        assert!(
            gates(&decisions, &steps).contains(&("c".to_string(), Action::Stop, Gate::Go)),
            "{:?}",
            gates(&decisions, &steps)
        );
        // The hour's deletes are used up; a partial listing deletes nothing.
        assert_eq!(
            plan(&decisions, &safety, 3, true, |_| true)[0].gate,
            Gate::Capped(Cap::MaxDeletesPerHour)
        );
        assert_eq!(
            plan(&decisions, &safety, 0, false, |_| true)[0].gate,
            Gate::Partial
        );
    }

    #[test]
    fn a_delete_is_confirmed_one_wait_after_it_was_first_seen_due() {
        let mut c = DeleteConfirmations::new(TimeDelta::seconds(60));
        let t = at("2026-11-27T19:00:00Z");
        assert!(!c.confirmed("e1", t));
        assert_eq!(c.next_after(t), Some(t + TimeDelta::seconds(60)));
        assert!(!c.confirmed("e1", t + TimeDelta::seconds(59)));
        assert!(c.confirmed("e1", t + TimeDelta::seconds(60)));
        assert_eq!(c.next_after(t + TimeDelta::seconds(60)), None);
        c.retain(|id| id != "e1");
        assert!(!c.confirmed("e1", t + TimeDelta::seconds(61)), "forgotten");
    }
}
