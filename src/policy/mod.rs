//! The policy: what the compiled rules mean for each environment.
//!
//! - `rules.rs`: the compiled rules ([`RuleSet`]: selectors, protection, wake, safety);
//! - `decide.rs`: [`decide()`], where the 19:00 decision is made (rules, snapshot, ledger
//!   and now in, one [`Decision`] per environment out), and [`explain()`], its whole chain
//!   of reasoning for one environment;
//! - `decision.rs`: what a decision says; `ledger_view.rs`: what it reads of the ledger;
//! - `upcoming.rs`: the deletes coming within a horizon (for the daily digest);
//! - `caps.rs`: the safety limits on what one pass does, which the executor and
//!   `curfew simulate` both follow.
//!
//! Pure: no I/O, no clock.

pub mod caps;
mod decide;
mod decision;
mod ledger_view;
mod rules;
mod upcoming;

pub use caps::Cap;
pub use decide::{
    Explanation, act_on, after_action, decide, decide_after, decide_each, decide_iter, explain,
    local, next_wakeup, protection, revert_warnings,
};
pub use decision::{Action, Cause, Decision, PendingDelete, Settle, Step};
pub use ledger_view::{EnvRecord, LedgerView, StopCause, StopRecord};
pub use rules::{Defaults, Glob, Protection, Rule, RuleSet, Safety, Selector, Target, Wake};
pub use upcoming::{UpcomingDelete, upcoming_deletes};

#[cfg(test)]
pub(crate) mod tests;
