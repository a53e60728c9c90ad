//! What people ask of a running daemon, the admin API's verbs: the plan, one environment
//! explained with its history, and the exceptions of daily life (snooze, wake, protect).
//!
//! Every change takes the daemon's exclusive lock, so a pass never writes over it (nor it
//! over a pass), is written to the ledger in one transaction with the operator's entry
//! (who: the admin token's name), and nudges the loop into a pass. Environments are read
//! from the live platform: an id or a name that the platform does not list is unknown.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Daemon, Look, PassError};
use crate::ledger::{EnvironmentSavings, HistoryEntry, LedgerError, OverrideEntry};
use crate::platform::{EnvState, Environment, PlatformError, Snapshot};
use crate::policy::{self, Action, Decision, EnvRecord, Explanation, LedgerView, Step};

/// The start a wake makes, and until when its snooze lasts.
struct Wake {
    step: Step,
    until: DateTime<Utc>,
}

/// How many history lines an environment's report carries.
const HISTORY: usize = 50;

/// Why an operator's request was not carried out (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no environment with the id or name {0:?}")]
    NotFound(String),
    #[error("{key:?} names several environments ({}): use the id", .ids.join(", "))]
    Ambiguous { key: String, ids: Vec<String> },
    #[error("{0}")]
    Invalid(String),
    /// The environment is protected (or, for a signed link or the status page, production):
    /// curfew does not act on it, even when asked.
    #[error("{0}")]
    Protected(String),
    #[error("the platform could not be read: {0}")]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<PassError> for OperatorError {
    fn from(e: PassError) -> Self {
        match e {
            PassError::Platform(e) => OperatorError::Platform(e),
            PassError::Ledger(e) => OperatorError::Ledger(e),
        }
    }
}

/// Every environment with its decision now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub at: DateTime<Utc>,
    /// Whether the platform listed everything (a partial listing deletes nothing).
    pub complete: bool,
    pub environments: Vec<PlanEntry>,
}

/// One environment of the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanEntry {
    #[serde(flatten)]
    pub decision: Decision,
    /// The snooze in force, if any; always present (`null` without one), like
    /// `protected_by`, so a reader need not tell a missing field from an unset one.
    #[serde(default)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Who protected it through the admin API; `null` when nobody did.
    #[serde(default)]
    pub protected_by: Option<Arc<str>>,
}

/// One environment: what the platform says, the full chain of reasoning, what the ledger
/// remembers, and what curfew's stops of it saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentReport {
    pub at: DateTime<Utc>,
    pub environment: Environment,
    pub decision: Decision,
    /// Each step of the reasoning, in order.
    pub steps: Vec<String>,
    pub record: EnvRecord,
    pub savings: EnvironmentSavings,
    pub currency: String,
    /// The zone of its rule (else the file's): the one people read its instants in.
    pub timezone: String,
    /// Actions, stops and operators' changes, newest first.
    pub history: Vec<HistoryEntry>,
}

impl Daemon {
    /// The plan now, from a fresh listing (read-only).
    pub async fn plan_now(&self) -> Result<Plan, OperatorError> {
        let Look {
            snapshot,
            now,
            view,
            decisions,
            ..
        } = self.look().await?;
        let environments = decisions
            .into_iter()
            .map(|decision| {
                let record = view.get(&decision.environment_id);
                PlanEntry {
                    snoozed_until: record.and_then(|r| r.snoozed_until).filter(|u| *u > now),
                    protected_by: record.and_then(|r| r.protected_by.clone()),
                    decision,
                }
            })
            .collect();
        Ok(Plan {
            at: now,
            complete: snapshot.complete,
            environments,
        })
    }

    /// One environment (by id, or by a name only it has), explained.
    pub async fn environment_report(&self, key: &str) -> Result<EnvironmentReport, OperatorError> {
        let (environment, complete) = self.find(key).await?;
        self.report(environment, complete).await
    }

    /// The report of an environment already listed (a change answers with it, without
    /// listing the platform a second time).
    async fn report(
        &self,
        environment: Environment,
        complete: bool,
    ) -> Result<EnvironmentReport, OperatorError> {
        let now = self.clock.now();
        let Explanation { steps, decision } = self.explain_one(&environment, complete, now).await?;
        let rules = self.rules();
        let id = environment.id.clone();
        let (record, savings, history) = self
            .ledger
            .run(move |l| {
                let record = l.record(&id)?.unwrap_or_default();
                Ok((
                    record,
                    l.environment_savings(&id)?,
                    l.history(&id, HISTORY)?,
                ))
            })
            .await?;
        Ok(EnvironmentReport {
            at: now,
            timezone: rules.zone_of(decision.rule.as_deref()).name().to_string(),
            record,
            savings,
            currency: rules.currency.clone(),
            history,
            decision,
            steps,
            environment,
        })
    }

    /// No schedule or idle stop, and no delete, before `until`.
    pub async fn snooze(
        &self,
        key: &str,
        until: DateTime<Utc>,
        who: &str,
        note: &str,
    ) -> Result<EnvironmentReport, OperatorError> {
        self.change_until(key, "snooze", until, who, note, move |r, by| {
            r.snoozed_until = Some(until);
            r.snoozed_by = Some(by);
        })
        .await
    }

    /// Ends a snooze: the schedule applies again from the next pass (which starts now).
    pub async fn end_snooze(
        &self,
        key: &str,
        who: &str,
    ) -> Result<EnvironmentReport, OperatorError> {
        let (environment, complete) = self.find(key).await?;
        let entry = self.entry("end_snooze", who, None, "");
        self.change(&environment.id, entry, |r| {
            r.snoozed_until = None;
            r.snoozed_by = None;
        })
        .await?;
        tracing::info!(environment = %environment.name, id = %environment.id, who, "snooze ended");
        self.report(environment, complete).await
    }

    /// Starts the environment now and snoozes it until `until`, by default until its
    /// rule's next scheduled stop. `note` (where the request came from: `via the status
    /// page`, `via link sent to team-slack`, or a person's words) goes into the ledger
    /// after the reason.
    pub async fn wake(
        &self,
        key: &str,
        until: Option<DateTime<Utc>>,
        who: &str,
        note: &str,
    ) -> Result<EnvironmentReport, OperatorError> {
        self.check_note(note)?;
        let (environment, complete) = self.find_fresh(key).await?;
        let id = self
            .wake_found(environment, complete, until, who, note)
            .await?;
        // Read again: the start changed its state.
        let (environment, complete) = self.find_fresh(&id).await?;
        self.report(environment, complete).await
    }

    /// [`Daemon::wake`] of an environment just read from the platform: the start and its
    /// snooze; its id.
    async fn wake_found(
        &self,
        environment: Environment,
        complete: bool,
        until: Option<DateTime<Utc>>,
        who: &str,
        note: &str,
    ) -> Result<Arc<str>, OperatorError> {
        let now = self.clock.now();
        let start = self
            .wake_step(&environment, complete, until, who, now)
            .await?;
        let until = start.until;
        let detail = match note.trim() {
            "" => start.step.reason.to_string(),
            note => format!("{}; {note}", start.step.reason),
        };
        let entry = OverrideEntry {
            at: now,
            ..self.entry("wake", who, Some(until), &detail)
        };
        let by: Arc<str> = who.into();
        let _exclusive = self.exclusive.lock().await;
        self.carry_out(&start.step, now).await??;
        self.write_change(&environment.id, entry, move |r| {
            // curfew's stop is over. The start is curfew's own (not a person's on the
            // platform): when the wake's snooze ends, the schedule takes the environment
            // back instead of leaving it up until the next scheduled stop. It also
            // restarts the idle clock.
            r.curfew_stop = None;
            r.last_started_by_curfew_at = Some(now);
            r.snoozed_until = Some(until);
            r.snoozed_by = Some(by);
        })
        .await?;
        drop(_exclusive);
        self.nudge.notify_one();
        tracing::info!(environment = %environment.name, id = %environment.id, who, until = %until, "woken");
        Ok(environment.id)
    }

    /// The start a wake makes, and until when it lasts; refused for an environment curfew
    /// never acts on (protected, or matched by no rule), under dry-run, or without an end.
    async fn wake_step(
        &self,
        environment: &Environment,
        complete: bool,
        until: Option<DateTime<Utc>>,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<Wake, OperatorError> {
        let rules = self.rules();
        let id = environment.id.clone();
        let record = self.ledger.run(move |l| l.record(&id)).await?;
        if let Some(protection) = policy::protection(&rules, environment, record.as_ref()) {
            return Err(OperatorError::Protected(format!(
                "{} is protected: {protection}; curfew never acts on a protected environment, a wake included (lift the protection first if you mean it)",
                environment.name
            )));
        }
        let decision = self.explain_one(environment, complete, now).await?.decision;
        let Some(rule) = decision.rule.as_deref().and_then(|name| rules.rule(name)) else {
            return Err(OperatorError::Invalid(format!(
                "{} matches no rule: curfew never acts on it, a wake included (start it on the platform)",
                environment.name
            )));
        };
        let until = match until {
            Some(u) => u,
            None => rule
                .schedule
                .as_ref()
                .and_then(|s| s.next_stop(now))
                .ok_or_else(|| {
                    OperatorError::Invalid(format!(
                        "{} has no scheduled stop ahead to wake it until: give `for` or `until`",
                        environment.name
                    ))
                })?,
        };
        self.check_until(until)?;
        if decision.dry_run {
            return Err(OperatorError::Invalid(format!(
                "{} is under dry-run: curfew starts nothing (start it on the platform, or snooze it)",
                environment.name
            )));
        }
        let reason = format!(
            "woken by {who} until {}",
            policy::local(until, rule.timezone)
        );
        let step = Decision {
            action: Action::Start,
            cause: None,
            reason: reason.into(),
            due_since: None,
            delete: None,
            ..decision
        }
        .step()
        .ok_or_else(|| OperatorError::Invalid(format!("{} cannot be started", environment.name)))?;
        Ok(Wake { step, until })
    }

    /// A lasting protection (`protect`) or its end: curfew never acts on a protected
    /// environment.
    pub async fn protect(
        &self,
        key: &str,
        protect: bool,
        who: &str,
        note: &str,
    ) -> Result<EnvironmentReport, OperatorError> {
        self.check_note(note)?;
        let (environment, complete) = self.find(key).await?;
        let kind = if protect { "protect" } else { "unprotect" };
        let by: Arc<str> = who.into();
        let entry = self.entry(kind, who, None, note);
        self.change(&environment.id, entry, move |r| {
            r.protected_by = protect.then_some(by);
        })
        .await?;
        tracing::info!(environment = %environment.name, id = %environment.id, who, kind, "protection changed");
        self.report(environment, complete).await
    }

    /// Keeps the environment up until `until`: a stopped one is woken until then, a
    /// running one snoozed (no stop before then). What a person means by "keep it 4 h".
    pub async fn keep(
        &self,
        key: &str,
        until: DateTime<Utc>,
        who: &str,
        note: &str,
    ) -> Result<EnvironmentReport, OperatorError> {
        let (environment, _) = self.find(key).await?;
        match environment.state {
            EnvState::Stopped | EnvState::Stopping => {
                self.wake(&environment.id, Some(until), who, note).await
            }
            _ => self.snooze(&environment.id, until, who, note).await,
        }
    }

    /// No delete before `until`: the delete waits (and is warned about again
    /// `warn_before_delete` ahead of the new instant). Schedules and idle stops still apply.
    pub async fn delay_delete(
        &self,
        key: &str,
        until: DateTime<Utc>,
        who: &str,
        note: &str,
    ) -> Result<EnvironmentReport, OperatorError> {
        self.change_until(key, "delay_delete", until, who, note, move |r, by| {
            r.delete_not_before = Some(until);
            r.delete_delayed_by = Some(by);
            r.delete_warned_at = None;
        })
        .await
    }

    /// A change that lasts until `until` (a snooze, a delayed delete) by `who`: the note
    /// and the instant checked, the record changed with its entry, the change logged; the
    /// environment's report after it.
    async fn change_until(
        &self,
        key: &str,
        kind: &'static str,
        until: DateTime<Utc>,
        who: &str,
        note: &str,
        change: impl FnOnce(&mut EnvRecord, Arc<str>) + Send + 'static,
    ) -> Result<EnvironmentReport, OperatorError> {
        self.check_note(note)?;
        let (environment, complete) = self.find(key).await?;
        self.check_until(until)?;
        let by: Arc<str> = who.into();
        let entry = self.entry(kind, who, Some(until), note);
        self.change(&environment.id, entry, move |r| change(r, by))
            .await?;
        tracing::info!(environment = %environment.name, id = %environment.id, who, kind, until = %until, "changed until");
        self.report(environment, complete).await
    }

    /// The environment `key` names, if curfew may act on it at a person's request: not
    /// production, not protected (by the file, a person, or its label).
    pub async fn actionable(&self, key: &str) -> Result<Environment, OperatorError> {
        let (environment, _) = self.find(key).await?;
        let id = environment.id.clone();
        let record = self.ledger.run(move |l| l.record(&id)).await?;
        let protection = match environment.mode {
            crate::platform::Mode::Production => Some("it is a production environment".into()),
            _ => policy::protection(&self.rules(), &environment, record.as_ref()),
        };
        match protection {
            Some(p) => Err(OperatorError::Protected(format!(
                "{} is protected ({p}): curfew does not act on it",
                environment.name
            ))),
            None => Ok(environment),
        }
    }

    /// The environment that `key` names: its id, else the one environment of that name.
    async fn find(&self, key: &str) -> Result<(Environment, bool), OperatorError> {
        let Snapshot {
            environments,
            complete,
        } = self.platform.list().await?;
        let mut by_name = Vec::new();
        for env in environments {
            if &*env.id == key {
                return Ok((env, complete));
            }
            if &*env.name == key {
                by_name.push(env);
            }
        }
        match by_name.len() {
            0 => Err(OperatorError::NotFound(key.to_string())),
            1 => Ok((by_name.remove(0), complete)),
            _ => Err(OperatorError::Ambiguous {
                key: key.to_string(),
                ids: by_name.into_iter().map(|e| e.id.to_string()).collect(),
            }),
        }
    }

    /// The environment `key` names, as [`Daemon::find`] finds it, without listing the
    /// fleet when `key` is the id of an environment of the last pass's listing: that one
    /// environment is read alone from the platform (its state, its mode and labels as they
    /// are now). A name, or an id the last pass did not list, is looked up in a fresh
    /// listing (a name may have been given to another environment since).
    async fn find_fresh(&self, key: &str) -> Result<(Environment, bool), OperatorError> {
        let listed = self
            .last_pass()
            .is_some_and(|last| last.snapshot.environments.iter().any(|e| &*e.id == key));
        if !listed {
            return self.find(key).await;
        }
        match self.platform.environment(key).await? {
            // Read whole: its decision (a delete due included) is made as from a complete
            // listing.
            Some(environment) => Ok((environment, true)),
            None => Err(OperatorError::NotFound(key.to_string())),
        }
    }

    async fn explain_one(
        &self,
        env: &Environment,
        complete: bool,
        now: DateTime<Utc>,
    ) -> Result<Explanation, OperatorError> {
        let id = env.id.clone();
        let record = self.ledger.run(move |l| l.record(&id)).await?;
        let mut view = LedgerView::stored(record.map(|r| (env.id.clone(), r)));
        view.observe(
            &Snapshot {
                environments: vec![env.clone()],
                complete,
            },
            now,
        );
        Ok(policy::explain(&self.rules(), env, complete, &view, now))
    }

    /// A note is kept in the ledger and shown in every `explain`: it is bounded.
    fn check_note(&self, note: &str) -> Result<(), OperatorError> {
        if note.len() > self.max_note {
            return Err(OperatorError::Invalid(format!(
                "the note is {} bytes long; at most {} are kept (daemon.admin_max_note_bytes)",
                note.len(),
                self.max_note
            )));
        }
        Ok(())
    }

    fn check_until(&self, until: DateTime<Utc>) -> Result<(), OperatorError> {
        let now = self.clock.now();
        let zone = self.rules().timezone;
        if until <= now {
            return Err(OperatorError::Invalid(format!(
                "{} is not in the future (now is {})",
                policy::local(until, zone),
                policy::local(now, zone)
            )));
        }
        let max = self.max_snooze;
        if until - now > max {
            return Err(OperatorError::Invalid(format!(
                "{} is more than the longest snooze allowed ({}) from now",
                policy::local(until, zone),
                crate::schedule::format_seconds(max.num_seconds().max(0) as u64)
            )));
        }
        Ok(())
    }

    /// An operator's change as the ledger keeps it, now.
    fn entry(
        &self,
        kind: &'static str,
        who: &str,
        until: Option<DateTime<Utc>>,
        detail: &str,
    ) -> OverrideEntry {
        OverrideEntry {
            kind,
            who: who.to_string(),
            at: self.clock.now(),
            until,
            detail: detail.to_string(),
        }
    }

    /// Changes a record with its operator's entry, the pass held off meanwhile, then asks
    /// for a pass.
    async fn change(
        &self,
        id: &str,
        entry: OverrideEntry,
        change: impl FnOnce(&mut EnvRecord) + Send + 'static,
    ) -> Result<(), OperatorError> {
        let _exclusive = self.exclusive.lock().await;
        self.write_change(id, entry, change).await?;
        drop(_exclusive);
        self.nudge.notify_one();
        Ok(())
    }

    /// Changes a record and writes its operator's entry, in one transaction.
    async fn write_change(
        &self,
        id: &str,
        entry: OverrideEntry,
        change: impl FnOnce(&mut EnvRecord) + Send + 'static,
    ) -> Result<(), OperatorError> {
        let id = id.to_string();
        self.ledger
            .run(move |l| l.change_record(&id, change, &entry))
            .await?;
        Ok(())
    }
}

/// Who the ledger says woke an environment when a request did (the waiting page, Sablier's
/// API): the start's `who`, and the kind of the entry written once it serves.
pub const BY_REQUEST: &str = "request";

impl Daemon {
    /// A request's wake (the waiting page, Sablier's API): the environment `key` names is
    /// started and kept up until `until`, as [`Daemon::wake`] does, when its rule has
    /// `wake_on_request` and it is neither production, protected, nor due for deletion.
    /// Nothing is changed when it is refused. The environment is read alone from the
    /// platform (see [`Daemon::find_fresh`]), once: the start follows that read, and
    /// nothing is read after it (the waiting page looks again on its own).
    pub async fn wake_by_request(
        &self,
        key: &str,
        until: DateTime<Utc>,
    ) -> Result<(), OperatorError> {
        // Someone is looking at a waiting page: its calls go ahead of a pass's batch.
        crate::platform::for_a_person(async {
            let (environment, complete) = self.find_fresh(key).await?;
            self.check_wake_by_request(&environment, complete).await?;
            self.wake_found(
                environment,
                complete,
                Some(until),
                BY_REQUEST,
                "via the waiting page",
            )
            .await
            .map(drop)
        })
        .await
    }

    /// Whether a request may wake the environment `key` names (see
    /// [`Daemon::wake_by_request`]); the waiting page asks before it says anything of it.
    pub async fn may_wake_by_request(&self, key: &str) -> Result<(), OperatorError> {
        let (environment, complete) = self.find_fresh(key).await?;
        self.check_wake_by_request(&environment, complete).await
    }

    /// Keeps a woken environment up until `until` because requests keep coming (activity:
    /// no idle stop, no scheduled stop before then).
    pub async fn keep_by_request(
        &self,
        id: &str,
        until: DateTime<Utc>,
    ) -> Result<EnvironmentReport, OperatorError> {
        self.snooze(id, until, BY_REQUEST, "requests keep coming")
            .await
    }

    /// Whether the environment `id` serves yet, and where (the platform's word, and its
    /// probe of the URL).
    pub async fn serving(&self, id: &str) -> Result<crate::platform::Serving, OperatorError> {
        Ok(crate::platform::for_a_person(self.platform.serving(id)).await?)
    }

    /// Every URL the environment `id` serves people on (the platform's links).
    pub async fn links(&self, id: &str) -> Result<Vec<String>, OperatorError> {
        Ok(self.platform.links(id).await?)
    }

    /// Writes that the environment `id`, woken by a request, serves now: the waiting page's
    /// estimate of the next wake reads these.
    pub async fn record_served(&self, id: &str) -> Result<(), OperatorError> {
        let id = id.to_string();
        let now = self.clock.now();
        self.ledger
            .run(move |l| l.override_entry(&id, "served", BY_REQUEST, now, None, ""))
            .await?;
        Ok(())
    }

    async fn check_wake_by_request(
        &self,
        environment: &Environment,
        complete: bool,
    ) -> Result<(), OperatorError> {
        let refuse = |why: &str| {
            Err(OperatorError::Protected(format!(
                "{} cannot be woken by a request: {why}",
                environment.name
            )))
        };
        if environment.mode == crate::platform::Mode::Production {
            return refuse("it is a production environment");
        }
        let rules = self.rules();
        let id = environment.id.clone();
        let record = self.ledger.run(move |l| l.record(&id)).await?;
        if let Some(p) = policy::protection(&rules, environment, record.as_ref()) {
            return refuse(&format!("it is protected ({p})"));
        }
        let decision = self
            .explain_one(environment, complete, self.clock.now())
            .await?
            .decision;
        let allowed = decision
            .rule
            .as_deref()
            .and_then(|name| rules.rule(name))
            .is_some_and(|r| r.wake_on_request);
        if !allowed {
            return refuse("its rule does not have wake_on_request");
        }
        if decision.action == Action::Delete || decision.delete_due() {
            return refuse("it is about to be deleted");
        }
        Ok(())
    }
}
