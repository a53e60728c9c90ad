//! What the rules will do over the coming days, before they act: `curfew simulate` and the
//! daemon's `curfew_projected_savings`.
//!
//! The rules are replayed against a fleet as it is now (a listing, and the ledger's memory
//! of it where there is one) with the same [`decide`](crate::policy::decide) the daemon
//! uses, held to the same safety limits ([`caps`](crate::policy::caps)), on a clock that
//! jumps from one instant a decision could change at to the next (schedule boundaries, the
//! ends of grace periods, idle limits, TTLs, warnings and snoozes): never minute by minute.
//! Between decisions an environment does what the platform model says and nothing else
//! (nobody starts, stops, deploys or creates anything).
//!
//! Depends on the policy, the schedule engine and the platform's vocabulary only; the
//! command line prints what [`simulate`] returns.

mod account;
pub mod compare;
mod engine;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::{EnvState, Snapshot};
use crate::policy::RuleSet;
use crate::policy::{Action, LedgerView};

pub use engine::SimulatedAction;

/// The longest simulation `curfew simulate` runs (a year and a day).
pub const MAX_DAYS: u32 = 366;

/// How to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the simulation starts (the listing is taken as it is then).
    pub from: DateTime<Utc>,
    /// How many days it runs: calendar days in the rule file's zone (the fortnight from a
    /// Monday 00:00 ends on a Monday 00:00, whatever the clocks did).
    pub days: u32,
    /// The daemon's resync: the longest time between two passes while actions are held
    /// back, and how long a delete waits for its second pass.
    pub resync: TimeDelta,
    /// Savings are also summed over these many days from `from` (the daemon's 7 and 30),
    /// calendar days like `days`.
    pub horizons: Vec<u32>,
    /// The ledger view given is the daemon's (its snoozes, protections, warnings and own
    /// stops), rather than an empty one.
    pub with_ledger: bool,
    /// Keep each environment's actions and hours (to compare two rule files).
    pub per_environment: bool,
}

impl Options {
    /// `days` from `from`, with the daemon's `resync`.
    pub fn new(from: DateTime<Utc>, days: u32, resync: TimeDelta) -> Options {
        Options {
            from,
            days,
            resync,
            horizons: Vec::new(),
            with_ledger: false,
            per_environment: false,
        }
    }
}

/// What the rules do over the horizon: hours, money, deletes, untouched environments and
/// the busiest moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: u32,
    /// The rule file's zone: days of the daily series are its days.
    pub timezone: String,
    pub currency: String,
    /// What the simulation takes for granted, in sentences.
    pub assumptions: Vec<String>,
    /// Environments in the listing (those being deleted at the start left out).
    pub environments: usize,
    /// Instants the simulated clock stopped at (each a pass).
    pub passes: u32,
    /// One entry per rule, in the file's order (rules that match nothing included).
    pub rules: Vec<RuleProjection>,
    /// Every rule together.
    pub total: Totals,
    /// Protected and unmatched environments: curfew never acts on them.
    pub untouched: Vec<Untouched>,
    /// Every delete, in order.
    pub deletes: Vec<ProjectedDelete>,
    pub busiest: Busiest,
    /// Per day of the rule file's zone and per rule.
    pub daily: Vec<DayRow>,
    /// Savings over the first days of the horizon (asked through [`Options::horizons`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub horizons: Vec<HorizonSavings>,
    /// Each environment's hours and actions (asked through [`Options::per_environment`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_environment: Vec<EnvironmentOutcome>,
}

/// Hours, money and actions of a group of environments over the horizon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub environments: usize,
    pub hours_running: f64,
    pub hours_stopped: f64,
    /// Hours after a rule deleted the environment.
    pub hours_deleted: f64,
    /// What the environments would cost running all the time.
    pub always_on_cost: f64,
    /// What they cost as the rules run them.
    pub projected_cost: f64,
    /// `always_on_cost - projected_cost`.
    pub saved: f64,
    /// `saved` as a percentage of `always_on_cost` (none when that is zero).
    pub saved_percent: Option<f64>,
    pub stops: u32,
    pub starts: u32,
    pub deletes: u32,
    pub warnings: u32,
    /// Environments with no hourly cost (neither the platform's nor the file's): they
    /// count in hours, not in money.
    pub without_cost: usize,
}

/// One rule's [`Totals`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleProjection {
    pub rule: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// An environment curfew never acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Untouched {
    pub id: Arc<str>,
    pub environment: Arc<str>,
    pub project: Arc<str>,
    /// Protected (rather than matched by no rule).
    pub protected: bool,
    /// Why, as `plan` says it.
    pub reason: Arc<str>,
    pub state: EnvState,
    pub hourly_cost: Option<f64>,
    /// What it costs over the horizon (it keeps its state).
    pub cost: f64,
}

/// A delete the rules make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectedDelete {
    pub at: DateTime<Utc>,
    pub id: Arc<str>,
    pub environment: Arc<str>,
    pub project: Arc<str>,
    pub rule: Arc<str>,
    pub reason: Arc<str>,
}

/// The passes that act on the most environments at once, against the caps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Busiest {
    pub max_stops_per_pass: u32,
    pub max_deletes_per_hour: u32,
    /// Passes in which a cap held actions back.
    pub passes_capped: u32,
    /// The largest moments, largest first (at most [`BUSIEST`]).
    pub moments: Vec<Moment>,
}

/// How many busiest moments a projection keeps.
pub const BUSIEST: usize = 5;

/// One simulated pass and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    pub at: DateTime<Utc>,
    pub stops: u32,
    pub starts: u32,
    pub deletes: u32,
    /// Stops, starts and deletes due in this pass but held back by a cap (they follow on
    /// later passes).
    pub held_back: u32,
}

impl Moment {
    /// Everything due at once.
    pub fn due(&self) -> u32 {
        self.stops + self.starts + self.deletes + self.held_back
    }
}

/// One rule on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    pub date: NaiveDate,
    pub rule: String,
    pub hours_running: f64,
    pub hours_stopped: f64,
    pub hours_deleted: f64,
    pub always_on_cost: f64,
    pub projected_cost: f64,
    pub saved: f64,
    pub stops: u32,
    pub starts: u32,
    pub deletes: u32,
}

/// Savings over the first `days` of the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonSavings {
    pub days: u32,
    /// By rule, in the file's order.
    pub rules: Vec<(String, f64)>,
    pub total: f64,
}

/// One environment over the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentOutcome {
    pub id: Arc<str>,
    pub environment: Arc<str>,
    pub project: Arc<str>,
    /// The rule that matched it; none when untouched.
    pub rule: Option<Arc<str>>,
    pub hours_running: f64,
    pub cost: f64,
    /// Its actions in order (warnings included).
    pub actions: Vec<(DateTime<Utc>, Action)>,
}

/// Replays `rules` over `options.days` from `options.from` against `snapshot` and the
/// ledger's `view` of it (an empty view when there is no ledger).
pub fn simulate(
    rules: &RuleSet,
    snapshot: Snapshot,
    view: LedgerView,
    options: &Options,
) -> Projection {
    simulate_each(rules, snapshot, view, options, |_| {})
}

/// [`simulate`], telling `on_action` every action as it is taken.
pub fn simulate_each(
    rules: &RuleSet,
    snapshot: Snapshot,
    view: LedgerView,
    options: &Options,
    on_action: impl FnMut(&SimulatedAction),
) -> Projection {
    let partial = !snapshot.complete;
    let mut projection =
        engine::Simulation::new(rules, &snapshot.environments, &[], view, options).run(on_action);
    projection.assumptions = assumptions(rules, options, partial, &projection);
    projection
}

/// [`simulate`] of `listing` as the actions `done` left it (each with its environment's
/// index in the listing: a delete removes it, a stop or a start changes its state), given
/// up (`None`) as soon as `cancel` is set: the daemon's projection makes way for its next
/// pass rather than run beside it.
///
/// The listing is borrowed, never copied: the daemon's status page shares it.
pub fn simulate_unless(
    rules: &RuleSet,
    listing: &Snapshot,
    done: &[(usize, Action)],
    view: LedgerView,
    options: &Options,
    cancel: &AtomicBool,
) -> Option<Projection> {
    let partial = !listing.complete;
    let mut projection = engine::Simulation::new(rules, &listing.environments, done, view, options)
        .run_unless(cancel)?;
    projection.assumptions = assumptions(rules, options, partial, &projection);
    Some(projection)
}

/// What the simulation takes for granted, for people.
fn assumptions(
    rules: &RuleSet,
    options: &Options,
    partial: bool,
    projection: &Projection,
) -> Vec<String> {
    let mut out = vec![
        "no new environments, and nobody starts, stops or deploys one: idle limits run out at their deadline".to_string(),
        "curfew's actions take effect at once (a stop leaves an environment stopped, a start running, a delete removes it); environments caught mid-deploy or mid-stop are taken as done, those being deleted are left out".to_string(),
        format!(
            "passes at every change, and one resync ({}) apart while actions wait: deletes for their second pass and max_deletes_per_hour, stops and starts for max_stops_per_pass",
            crate::schedule::format_seconds(options.resync.num_seconds().max(0).unsigned_abs())
        ),
        "dry_run is ignored: this is what the rules would do".to_string(),
    ];
    let default_cost = rules
        .defaults
        .hourly_cost
        .map(|c| format!(", else defaults.hourly_cost ({c:.2} {})", rules.currency))
        .unwrap_or_default();
    let without = projection.total.without_cost
        + projection
            .untouched
            .iter()
            .filter(|u| u.hourly_cost.is_none())
            .count();
    out.push(format!(
        "cost per hour: the platform's, else the rule's hourly_cost{default_cost}{}; savings are measured against every environment running all the time, one in error counting as running",
        if without == 0 {
            String::new()
        } else {
            format!("; {without} environment{} ha{} none and count in hours only", plural(without), if without == 1 { "s" } else { "ve" })
        }
    ));
    out.push(if options.with_ledger {
        "the daemon's ledger is read: its snoozes, protections, delete warnings and own stops count".to_string()
    } else {
        "no ledger is read: environments stopped now count as stopped by someone else (wake: stopped-by-curfew leaves them stopped), and no snooze, admin protection or delete warning given before is known".to_string()
    });
    if partial {
        out.push("the listing was partial: only the environments it listed are simulated".into());
    }
    out
}

/// `days` calendar days after `from` in `tz`: the same wall time, those days later.
fn days_after(tz: chrono_tz::Tz, from: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let local = crate::schedule::zone::effective_local(tz, from);
    match local.checked_add_days(chrono::Days::new(u64::from(days))) {
        Some(later) => crate::schedule::zone::resolve(tz, later),
        None => from + TimeDelta::days(i64::from(days)),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests;
