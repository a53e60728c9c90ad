//! Readiness: what `/readyz` answers, kept by the reconcile loop (rules in force, the last
//! good pass, a ledger that cannot be used) and read by the server against the injected
//! clock.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// What readiness depends on, shared between the reconcile loop (which reports) and the
/// server (which answers probes). Clones share the same state.
#[derive(Debug, Clone)]
pub struct Health {
    max_pass_age: TimeDelta,
    state: Arc<Mutex<HealthState>>,
}

#[derive(Debug, Default)]
struct HealthState {
    rules_loaded: bool,
    last_pass_success: Option<DateTime<Utc>>,
    /// Why the ledger cannot be used (deleted, read-only…), until a pass succeeds.
    ledger_problem: Option<String>,
    /// Waiting for the Lease: another replica leads.
    standby: bool,
}

/// The answer to "is curfew ready?", also the JSON body of `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub rules_loaded: bool,
    /// When the last successful reconcile pass finished.
    pub last_pass_success: Option<DateTime<Utc>>,
    /// How old that pass may be before curfew stops being ready.
    pub max_pass_age_seconds: i64,
    /// Why curfew is not ready, one sentence per failing condition; empty when ready.
    pub failing: Vec<String>,
    /// `leader` (it acts: it holds the Lease, or runs without an election), or
    /// `standby: not leader` (another replica holds the Lease; this one serves its port
    /// and waits). A standby is ready without passes of its own: its Pod stays in the
    /// Service (metrics, the page) and is ready to take over.
    pub role: &'static str,
}

/// [`Readiness::role`] of the replica that acts.
pub const LEADER: &str = "leader";
/// [`Readiness::role`] of a replica waiting for the Lease.
pub const STANDBY: &str = "standby: not leader";

impl Health {
    /// Not ready until rules are loaded and a pass succeeds; a success older than
    /// `max_pass_age` (say three resync intervals) no longer counts.
    pub fn new(max_pass_age: Duration) -> Health {
        Health {
            max_pass_age: TimeDelta::from_std(max_pass_age).unwrap_or(TimeDelta::MAX),
            state: Arc::default(),
        }
    }

    /// Whether a valid rule file is in force.
    pub fn set_rules_loaded(&self, loaded: bool) {
        self.state().rules_loaded = loaded;
    }

    /// Says why the ledger cannot be used (`None`: it can): curfew is not ready while it
    /// cannot record what it does.
    pub fn set_ledger_problem(&self, problem: Option<String>) {
        self.state().ledger_problem = problem;
    }

    /// Whether this replica waits for the Lease (true) or leads (false).
    pub fn set_standby(&self, standby: bool) {
        self.state().standby = standby;
    }

    /// Records a reconcile pass that succeeded at `at` (the clock's time, not the wall's).
    pub fn pass_succeeded(&self, at: DateTime<Utc>) {
        self.state().last_pass_success = Some(at);
    }

    /// Readiness as of `now`.
    pub fn readiness(&self, now: DateTime<Utc>) -> Readiness {
        let (rules_loaded, last_pass_success, ledger_problem, standby) = {
            let state = self.state();
            (
                state.rules_loaded,
                state.last_pass_success,
                state.ledger_problem.clone(),
                state.standby,
            )
        };
        let mut failing = Vec::new();
        if !rules_loaded {
            failing.push("no valid rule file is loaded".to_owned());
        }
        if let Some(problem) = ledger_problem {
            failing.push(format!("the ledger cannot be used: {problem}"));
        }
        match last_pass_success {
            // A standby makes no passes: the leader's count.
            _ if standby => {}
            None => failing.push("no reconcile pass has succeeded yet".to_owned()),
            // A pass "in the future" means the clock stepped back: still fresh.
            Some(at) if now - at > self.max_pass_age => failing.push(format!(
                "the last successful reconcile pass finished {}s ago, more than the allowed {}s",
                (now - at).num_seconds(),
                self.max_pass_age.num_seconds()
            )),
            Some(_) => {}
        }
        Readiness {
            ready: failing.is_empty(),
            rules_loaded,
            last_pass_success,
            max_pass_age_seconds: self.max_pass_age.num_seconds(),
            failing,
            role: if standby { STANDBY } else { LEADER },
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
