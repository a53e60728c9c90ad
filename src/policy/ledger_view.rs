//! What `decide` needs to know from the ledger, as plain data.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why curfew stopped an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCause {
    Schedule,
    Idle,
}

/// A stop by curfew that has not been followed by a start yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRecord {
    pub at: DateTime<Utc>,
    pub cause: StopCause,
    pub rule: String,
}

/// The ledger's memory of one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvRecord {
    /// No schedule or idle stop (and no delete) before this instant.
    pub snoozed_until: Option<DateTime<Utc>>,
    pub snoozed_by: Option<String>,
    /// A lasting protection set through the admin API, and by whom.
    pub protected_by: Option<String>,
    /// curfew's own stop, while it lasts.
    pub curfew_stop: Option<StopRecord>,
    /// When curfew last saw a schedule stop through (stopped it, or found it stopped).
    pub schedule_stop_settled_at: Option<DateTime<Utc>>,
    /// When curfew last saw a schedule start through.
    pub schedule_start_settled_at: Option<DateTime<Utc>>,
    pub last_started_by_curfew_at: Option<DateTime<Utc>>,
    /// Since when the environment has been seen stopped without a break.
    pub stopped_since: Option<DateTime<Utc>>,
    /// When people were warned that it will be deleted.
    pub delete_warned_at: Option<DateTime<Utc>>,
}

/// The ledger's records by environment id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerView {
    records: HashMap<String, EnvRecord>,
}

impl LedgerView {
    pub fn new(records: HashMap<String, EnvRecord>) -> Self {
        LedgerView { records }
    }

    pub fn get(&self, id: &str) -> Option<&EnvRecord> {
        self.records.get(id)
    }

    pub fn insert(&mut self, id: impl Into<String>, record: EnvRecord) {
        self.records.insert(id.into(), record);
    }

    pub fn entry(&mut self, id: &str) -> &mut EnvRecord {
        self.records.entry(id.to_string()).or_default()
    }
}

impl LedgerView {
    /// Folds what a listing showed into the records: how long each environment has been
    /// stopped, and whether curfew's stop still holds (a running environment ends it).
    pub fn observe(&mut self, snapshot: &crate::platform::Snapshot, now: DateTime<Utc>) {
        use crate::platform::EnvState;
        for env in &snapshot.environments {
            match env.state {
                EnvState::Stopped => {
                    self.entry(&env.id).stopped_since.get_or_insert(now);
                }
                EnvState::Running => {
                    if let Some(r) = self.records.get_mut(&env.id) {
                        r.stopped_since = None;
                        r.curfew_stop = None;
                    }
                }
                _ => {}
            }
        }
    }

    /// Records the effect of a decision that was carried out (or a settlement).
    pub fn apply(&mut self, decision: &super::Decision, now: DateTime<Utc>) {
        use super::{Action, Cause, Settle};
        let r = self.entry(&decision.environment_id);
        match (decision.action, decision.cause) {
            (Action::Stop, cause) => {
                let cause = if cause == Some(Cause::Idle) {
                    StopCause::Idle
                } else {
                    StopCause::Schedule
                };
                r.curfew_stop = Some(StopRecord {
                    at: now,
                    cause,
                    rule: decision.rule.clone().unwrap_or_default(),
                });
                if cause == StopCause::Schedule {
                    r.schedule_stop_settled_at = Some(now);
                }
            }
            (Action::Start, _) => {
                r.curfew_stop = None;
                r.last_started_by_curfew_at = Some(now);
                r.schedule_start_settled_at = Some(now);
            }
            (Action::Warn, _) => r.delete_warned_at = Some(now),
            (Action::Delete, _) => {
                self.records.remove(&decision.environment_id);
                return;
            }
            (Action::None, _) => {}
        }
        match decision.settle {
            Some(Settle::ScheduleStop) => r.schedule_stop_settled_at = Some(now),
            Some(Settle::ScheduleStart) => r.schedule_start_settled_at = Some(now),
            Some(Settle::ClearDeleteWarning) => r.delete_warned_at = None,
            None => {}
        }
    }
}
