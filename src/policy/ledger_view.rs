//! What `decide` needs to know from the ledger, as plain data.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Action, Cause, Decision, Settle, Step};

/// Why curfew stopped an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCause {
    Schedule,
    Idle,
}

impl StopCause {
    /// The word the ledger's `stops.cause` holds.
    pub fn ledger_word(self) -> &'static str {
        match self {
            StopCause::Schedule => "schedule",
            StopCause::Idle => "idle",
        }
    }

    /// The cause of a stop decided for `cause`: idle, else the schedule.
    pub fn of(cause: Option<Cause>) -> StopCause {
        match cause {
            Some(Cause::Idle) => StopCause::Idle,
            _ => StopCause::Schedule,
        }
    }
}

/// A stop by curfew that has not been followed by a start yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StopRecord {
    pub at: DateTime<Utc>,
    pub cause: StopCause,
    /// Shared with the rule's other stops.
    pub rule: Arc<str>,
}

/// The ledger's memory of one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvRecord {
    /// No schedule or idle stop (and no delete) before this instant.
    pub snoozed_until: Option<DateTime<Utc>>,
    pub snoozed_by: Option<Arc<str>>,
    /// A lasting protection set through the admin API, and by whom.
    pub protected_by: Option<Arc<str>>,
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
    /// No delete before this instant: a person delayed it (the status page, a signed
    /// link, the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_not_before: Option<DateTime<Utc>>,
    /// Who delayed the delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_delayed_by: Option<Arc<str>>,
}

/// The ledger's records by environment id, and what changed since they were read.
///
/// A pass reads the view, changes it, and writes back only the records that differ from
/// what was read: each record keeps the fingerprint of its stored form instead of a copy
/// of the whole view being kept beside it (10,000 records would be kept twice).
#[derive(Debug, Clone, Default)]
pub struct LedgerView {
    /// Boxed: a map's table is sized in powers of two, and 10,000 records inline would
    /// take room for 16,384 of them. Keyed by the listing's own ids once it is observed.
    records: HashMap<Arc<str>, Box<Slot>>,
    /// Stored records removed since (an environment curfew deleted).
    removed: Vec<String>,
}

#[derive(Debug, Clone)]
struct Slot {
    record: EnvRecord,
    /// The fingerprint of the record as the ledger holds it; `None` when it holds none.
    stored: Option<u64>,
}

fn fingerprint(record: &EnvRecord) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    record.hash(&mut hasher);
    hasher.finish()
}

impl PartialEq for LedgerView {
    /// The same records (whatever is stored of them).
    fn eq(&self, other: &Self) -> bool {
        self.records.len() == other.records.len()
            && self
                .records
                .iter()
                .all(|(id, s)| other.get(id) == Some(&s.record))
    }
}

impl Serialize for LedgerView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.records.iter().map(|(id, s)| (id, &s.record)))
    }
}

impl LedgerView {
    /// Records that are not stored anywhere yet (all of them count as changed).
    pub fn new<K: Into<Arc<str>>>(records: impl IntoIterator<Item = (K, EnvRecord)>) -> Self {
        LedgerView {
            records: records
                .into_iter()
                .map(|(id, record)| {
                    (
                        id.into(),
                        Box::new(Slot {
                            record,
                            stored: None,
                        }),
                    )
                })
                .collect(),
            removed: Vec::new(),
        }
    }

    /// Records as the ledger holds them (none counts as changed).
    pub fn stored<K: Into<Arc<str>>>(records: impl IntoIterator<Item = (K, EnvRecord)>) -> Self {
        let mut view = Self::new(records);
        view.mark_stored();
        view
    }

    pub fn get(&self, id: &str) -> Option<&EnvRecord> {
        self.records.get(id).map(|s| &s.record)
    }

    pub fn insert(&mut self, id: impl Into<Arc<str>>, record: EnvRecord) {
        match self.records.entry(id.into()) {
            std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().record = record,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Box::new(Slot {
                    record,
                    stored: None,
                }));
            }
        }
    }

    pub fn entry(&mut self, id: impl Into<Arc<str>>) -> &mut EnvRecord {
        &mut self
            .records
            .entry(id.into())
            .or_insert_with(|| {
                Box::new(Slot {
                    record: EnvRecord::default(),
                    stored: None,
                })
            })
            .record
    }

    fn remove(&mut self, id: &str) {
        if let Some(slot) = self.records.remove(id)
            && slot.stored.is_some()
        {
            self.removed.push(id.to_string());
        }
    }

    /// What the ledger must write to hold this view: the records that differ from their
    /// stored form, and the ids of stored records removed.
    pub fn changes(&self) -> (Vec<(&str, &EnvRecord)>, &[String]) {
        let changed = self
            .records
            .iter()
            .filter(|(_, s)| s.stored != Some(fingerprint(&s.record)))
            .map(|(id, s)| (&**id, &s.record))
            .collect();
        (changed, &self.removed)
    }

    /// Notes that the ledger now holds this view as it is.
    pub fn mark_stored(&mut self) {
        for slot in self.records.values_mut() {
            slot.stored = Some(fingerprint(&slot.record));
        }
        self.removed.clear();
    }
}

impl LedgerView {
    /// Folds what a listing showed into the records: how long each environment has been
    /// stopped, and whether curfew's stop still holds (a running environment ends it).
    pub fn observe(&mut self, snapshot: &crate::platform::Snapshot, now: DateTime<Utc>) {
        for env in &snapshot.environments {
            self.observe_one(env, now);
        }
    }

    /// Folds what a listing showed of one environment into its record (see
    /// [`LedgerView::observe`]).
    pub fn observe_one(&mut self, env: &crate::platform::Environment, now: DateTime<Utc>) {
        use crate::platform::EnvState;
        // The record's key becomes the listing's id (one copy of it, not two).
        if let Some((key, _)) = self.records.get_key_value(&*env.id)
            && !Arc::ptr_eq(key, &env.id)
            && let Some(slot) = self.records.remove(&*env.id)
        {
            self.records.insert(env.id.clone(), slot);
        }
        match env.state {
            EnvState::Stopped => {
                self.entry(env.id.clone()).stopped_since.get_or_insert(now);
            }
            EnvState::Running => {
                if let Some(r) = self.records.get_mut(&env.id).map(|s| &mut s.record) {
                    r.stopped_since = None;
                    r.curfew_stop = None;
                }
            }
            _ => {}
        }
    }

    /// Records what a carried-out step did: curfew's stop (with its rule and cause), its
    /// start, a warning given, or the environment deleted.
    pub fn record(&mut self, step: &Step, now: DateTime<Utc>) {
        let r = self.entry(step.environment_id.clone());
        match step.action {
            Action::Stop => {
                let cause = StopCause::of(step.cause);
                r.curfew_stop = Some(StopRecord {
                    at: now,
                    cause,
                    rule: step.rule.clone(),
                });
                if cause == StopCause::Schedule {
                    r.schedule_stop_settled_at = Some(now);
                }
            }
            Action::Start => {
                r.curfew_stop = None;
                r.last_started_by_curfew_at = Some(now);
                r.schedule_start_settled_at = Some(now);
            }
            Action::Warn => r.delete_warned_at = Some(now),
            Action::Delete => self.remove(&step.environment_id),
            Action::None => {}
        }
    }

    /// Records the fact a decision settles without acting (a boundary seen through, a
    /// warning that no longer applies).
    pub fn settle(&mut self, decision: &Decision, now: DateTime<Utc>) {
        let Some(settle) = decision.settle else {
            return;
        };
        let r = self.entry(decision.environment_id.clone());
        match settle {
            Settle::ScheduleStop => r.schedule_stop_settled_at = Some(now),
            Settle::ScheduleStart => r.schedule_start_settled_at = Some(now),
            Settle::ClearDeleteWarning => r.delete_warned_at = None,
        }
    }

    /// Records a decision carried out whole: its own action (every call succeeded), then
    /// its settlement (what a simulation of passes does).
    pub fn apply(&mut self, decision: &Decision, now: DateTime<Utc>) {
        match decision.step() {
            Some(step) if step.action == Action::Delete => self.record(&step, now),
            Some(step) => {
                self.record(&step, now);
                self.settle(decision, now);
            }
            None => self.settle(decision, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Snapshot;
    use crate::policy::tests::{EnvFixture, env};

    #[test]
    fn once_observed_the_records_are_keyed_by_the_listing_own_ids() {
        let now = DateTime::UNIX_EPOCH;
        let kept = env("pr-1").stopped();
        let fresh = env("pr-2").stopped();
        let mut view = LedgerView::stored([(
            kept.id.to_string(),
            EnvRecord {
                stopped_since: Some(now),
                ..EnvRecord::default()
            },
        )]);
        let snapshot = Snapshot {
            environments: vec![kept.clone(), fresh.clone()],
            complete: true,
        };
        view.observe(&snapshot, now);
        for e in &snapshot.environments {
            let (key, _) = view.records.get_key_value(&*e.id).unwrap();
            assert!(Arc::ptr_eq(key, &e.id), "{}", e.id);
        }
        // Re-keyed, the stored record is still the stored one: nothing to write.
        let (changed, _) = view.changes();
        assert_eq!(
            changed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [&*fresh.id]
        );
    }
}
