//! What `decide` concludes for one environment: a [`Decision`] (action, cause, rule and a
//! reason people read), the delete under way beside it, and the facts it settles.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::{EnvState, Mode};

/// What to do with an environment now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    None,
    Stop,
    Start,
    Delete,
    /// Tell people a delete is coming.
    Warn,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::None,
        Action::Stop,
        Action::Start,
        Action::Delete,
        Action::Warn,
    ];

    /// The action a word of [`Action::as_str`] names.
    pub fn from_word(word: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == word)
    }

    /// The lower-case word for logs, metrics and the ledger's `actions.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Delete => "delete",
            Action::Warn => "warn",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Schedule,
    Idle,
    Age,
    StoppedFor,
    IdleFor,
}

impl Cause {
    /// Every cause.
    pub const ALL: [Cause; 5] = [
        Cause::Schedule,
        Cause::Idle,
        Cause::Age,
        Cause::StoppedFor,
        Cause::IdleFor,
    ];

    /// The word the ledger's `actions.cause` holds (kept as written since the first
    /// ledger: lower case, no separator).
    pub fn ledger_word(self) -> &'static str {
        match self {
            Cause::Schedule => "schedule",
            Cause::Idle => "idle",
            Cause::Age => "age",
            Cause::StoppedFor => "stoppedfor",
            Cause::IdleFor => "idlefor",
        }
    }

    /// The cause a ledger word stands for.
    pub fn from_ledger_word(word: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.ledger_word() == word)
    }
}

/// A fact for the ledger that a decision establishes without acting: the executor writes
/// it, so the next pass knows the schedule's boundary was seen through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settle {
    /// The environment was found stopped while the schedule is off: the boundary's stop is
    /// done; a later start is a person's.
    ScheduleStop,
    /// The environment was found running while the schedule is on.
    ScheduleStart,
    /// A delete warning no longer applies (the condition stopped holding).
    ClearDeleteWarning,
}

/// The decision for one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The listing's id, name and project, shared with it.
    pub environment_id: Arc<str>,
    pub environment: Arc<str>,
    pub project: Arc<str>,
    /// The environment's mode (production, staging, development, preview).
    #[serde(default = "preview")]
    pub mode: Mode,
    pub state: EnvState,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// The rule that decided, if any matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    /// Shared by the decisions of a pass that give the same reason (a rule's schedule
    /// stops thousands of environments for one reason).
    pub reason: Arc<str>,
    /// Since when the action has been due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_since: Option<DateTime<Utc>>,
    /// The earliest instant at which this decision could change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check: Option<DateTime<Utc>>,
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Settle>,
    /// Cost per hour while running (platform's, else the rule's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_cost: Option<f64>,
    /// The delete under way, beside `action`: warned about, waiting, or due. `action` is
    /// what the schedule and the idle limit want meanwhile (a warned environment is still
    /// stopped at 19:00). Boxed: most decisions have none, and a pass keeps one decision
    /// per environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Box<PendingDelete>>,
}

/// A delete under way: what its clock does in this pass, and when it comes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDelete {
    /// `warn`: the warning goes out in this pass; `delete`: due, so the environment is
    /// deleted in this pass (if the executor holds the delete back, for its second pass or
    /// `max_deletes_per_hour`, the decision's own action is carried out instead); `none`:
    /// waiting, for the warning period to end or for a complete listing.
    pub action: Action,
    pub cause: Cause,
    pub reason: Arc<str>,
    /// Since when the warning or the delete has been due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_since: Option<DateTime<Utc>>,
    /// When the environment will be deleted, at the earliest (absent when due now, or
    /// when it waits for a complete listing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// One action to carry out: a decision's own action or its delete's step, as the executor,
/// the ledger and notifications see it. Always under the rule that decided it: `decide`
/// acts only under a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub environment_id: Arc<str>,
    pub environment: Arc<str>,
    pub project: Arc<str>,
    /// Whether a notice of it may carry action links (never for production).
    pub mode: Mode,
    pub state: EnvState,
    pub action: Action,
    pub cause: Option<Cause>,
    pub rule: Arc<str>,
    pub reason: Arc<str>,
    /// Since when the action has been due (the executor takes the oldest first).
    pub due_since: Option<DateTime<Utc>>,
    /// For a warning: when the environment will be deleted.
    pub delete_at: Option<DateTime<Utc>>,
    pub dry_run: bool,
    /// Cost per hour while running (what a stop saves).
    pub hourly_cost: Option<f64>,
}

impl Decision {
    /// The decision's own action as a step, unless it calls for none (or, which `decide`
    /// never makes, it has an action but no rule).
    pub fn step(&self) -> Option<Step> {
        if self.action == Action::None {
            return None;
        }
        Some(Step {
            action: self.action,
            cause: self.cause,
            reason: self.reason.clone(),
            due_since: self.due_since,
            delete_at: None,
            ..self.step_base()?
        })
    }

    /// The delete's step (the same environment and rule; the delete's action, cause and
    /// reason), for the executor, the ledger and notifications. `None` unless the delete
    /// acts in this pass (a warning or the delete).
    pub fn delete_step(&self) -> Option<Step> {
        let delete = self.delete.as_ref().filter(|d| d.action != Action::None)?;
        Some(Step {
            action: delete.action,
            cause: Some(delete.cause),
            reason: delete.reason.clone(),
            due_since: delete.due_since,
            delete_at: delete.at,
            ..self.step_base()?
        })
    }

    /// A step of this decision's environment under its rule (no action yet).
    fn step_base(&self) -> Option<Step> {
        Some(Step {
            environment_id: self.environment_id.clone(),
            environment: self.environment.clone(),
            project: self.project.clone(),
            mode: self.mode,
            state: self.state,
            action: Action::None,
            cause: None,
            rule: self.rule.clone()?,
            reason: self.reason.clone(),
            due_since: None,
            delete_at: None,
            dry_run: self.dry_run,
            hourly_cost: self.hourly_cost,
        })
    }

    /// The delete step's action, when it acts in this pass (a warning or the delete).
    pub fn delete_step_action(&self) -> Option<Action> {
        self.delete
            .as_ref()
            .map(|d| d.action)
            .filter(|a| *a != Action::None)
    }

    /// Whether the delete is due in this pass.
    pub fn delete_due(&self) -> bool {
        self.delete
            .as_ref()
            .is_some_and(|d| d.action == Action::Delete)
    }

    /// The actions this decision calls for in this pass: its own, then its delete's.
    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        [Some(self.action), self.delete.as_ref().map(|d| d.action)]
            .into_iter()
            .flatten()
            .filter(|a| *a != Action::None)
    }
}

/// A decision read back without its mode (a plan from an older daemon).
fn preview() -> Mode {
    Mode::Preview
}
