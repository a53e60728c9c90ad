//! Two rule files over the same fleet and days: what a change to the rules does to the
//! savings and to who is stopped when (`curfew simulate --config NEW --against OLD`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EnvironmentOutcome, Projection, Totals};
use crate::policy::Action;

/// What changes from the old rules to the new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub old: Totals,
    pub new: Totals,
    /// Every rule of either file: the new file's in order, then those only the old one has.
    pub rules: Vec<RuleChange>,
    /// The environments whose actions change, the largest change in cost first.
    pub environments: Vec<EnvironmentChange>,
}

/// One rule under both files (`None` where a file does not have it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleChange {
    pub rule: String,
    pub old: Option<Totals>,
    pub new: Option<Totals>,
}

/// One environment whose actions differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentChange {
    pub id: Arc<str>,
    pub environment: Arc<str>,
    pub project: Arc<str>,
    pub old_rule: Option<Arc<str>>,
    pub new_rule: Option<Arc<str>>,
    pub old_hours_running: f64,
    pub new_hours_running: f64,
    pub old_cost: f64,
    pub new_cost: f64,
    pub old_actions: usize,
    pub new_actions: usize,
    /// Where the two part, under each file: the first instant at which their actions
    /// differ and what each does then, or next if it does nothing then (none where a file
    /// has nothing left to do).
    pub first_difference: (Option<Moment>, Option<Moment>),
    pub old_deleted_at: Option<DateTime<Utc>>,
    pub new_deleted_at: Option<DateTime<Utc>>,
}

/// What an environment has done to it at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    pub at: DateTime<Utc>,
    pub actions: Vec<Action>,
}

/// Compares two projections of the same fleet and days, each made with
/// [`Options::per_environment`](super::Options::per_environment).
pub fn compare(old: &Projection, new: &Projection) -> Comparison {
    let mut rules: Vec<RuleChange> = new
        .rules
        .iter()
        .map(|r| RuleChange {
            rule: r.rule.clone(),
            old: old
                .rules
                .iter()
                .find(|o| o.rule == r.rule)
                .map(|o| o.totals.clone()),
            new: Some(r.totals.clone()),
        })
        .collect();
    rules.extend(
        old.rules
            .iter()
            .filter(|o| new.rules.iter().all(|r| r.rule != o.rule))
            .map(|o| RuleChange {
                rule: o.rule.clone(),
                old: Some(o.totals.clone()),
                new: None,
            }),
    );
    let before: HashMap<&str, &EnvironmentOutcome> =
        old.per_environment.iter().map(|e| (&*e.id, e)).collect();
    let mut environments: Vec<EnvironmentChange> = new
        .per_environment
        .iter()
        .filter_map(|n| {
            let o = before.get(&*n.id)?;
            (o.actions != n.actions || o.rule != n.rule).then(|| change(o, n))
        })
        .collect();
    environments.sort_by(|a, b| {
        let delta = |c: &EnvironmentChange| (c.new_cost - c.old_cost).abs();
        delta(b)
            .total_cmp(&delta(a))
            .then_with(|| a.environment.cmp(&b.environment))
    });
    Comparison {
        old: old.total.clone(),
        new: new.total.clone(),
        rules,
        environments,
    }
}

/// An environment's actions grouped by instant, those of one instant in a fixed order (a
/// pass takes a warning before a stop, which says nothing about the rules).
fn by_instant(e: &EnvironmentOutcome) -> Vec<Moment> {
    let mut out: Vec<Moment> = Vec::new();
    for (at, action) in &e.actions {
        match out.last_mut() {
            Some(m) if m.at == *at => m.actions.push(*action),
            _ => out.push(Moment {
                at: *at,
                actions: vec![*action],
            }),
        }
    }
    for m in &mut out {
        m.actions.sort_by_key(|a| a.as_str());
    }
    out
}

/// Where two environments' actions part: the first instant at which they differ, and what
/// each does then (or next, if it does nothing then).
fn first_difference(old: &[Moment], new: &[Moment]) -> (Option<Moment>, Option<Moment>) {
    let k = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let (a, b) = (old.get(k), new.get(k));
    let Some(at) = [a, b].into_iter().flatten().map(|m| m.at).min() else {
        return (None, None);
    };
    // What a side does at `at`, else its next moment after it.
    let side = |m: Option<&Moment>| m.filter(|m| m.at >= at).cloned();
    (side(a), side(b))
}

fn change(old: &EnvironmentOutcome, new: &EnvironmentOutcome) -> EnvironmentChange {
    let deleted = |e: &EnvironmentOutcome| {
        e.actions
            .iter()
            .find(|(_, a)| *a == Action::Delete)
            .map(|(t, _)| *t)
    };
    EnvironmentChange {
        id: new.id.clone(),
        environment: new.environment.clone(),
        project: new.project.clone(),
        old_rule: old.rule.clone(),
        new_rule: new.rule.clone(),
        old_hours_running: old.hours_running,
        new_hours_running: new.hours_running,
        old_cost: old.cost,
        new_cost: new.cost,
        old_actions: old.actions.len(),
        new_actions: new.actions.len(),
        first_difference: first_difference(&by_instant(old), &by_instant(new)),
        old_deleted_at: deleted(old),
        new_deleted_at: deleted(new),
    }
}
