//! `decide` and `explain`: where the 19:00 decision is made. Rules + snapshot + ledger + now
//! → one [`Decision`] per environment.
//!
//! Pure: no I/O, no clock. Every decision names its rule and carries a sentence a person
//! understands. The order of checks for one environment is the order of this file:
//! protection, rule match, settled state, grace period, delete (with its warning), snooze,
//! schedule, idle. A coming delete does not end the decision: the schedule and the idle
//! limit still decide what happens meanwhile, and the delete rides beside that action
//! ([`Decision::delete`]).

use std::cell::OnceCell;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{
    Action, Cause, Decision, EnvRecord, LedgerView, PendingDelete, Rule, RuleSet, Settle,
    StopCause, Wake,
};
use crate::platform::{
    EnvState, Environment, LabelSnooze, PROTECT_LABEL, SNOOZE_LABEL, Snapshot, Words,
};
use crate::schedule::{RuleSchedule, format_seconds};

/// Each rule's schedule read once per pass (every environment of a rule shares it, and
/// the words its reasons say of it).
struct ScheduleNow {
    active: bool,
    since: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
    /// The next boundary at which environments must stop (not the window's start).
    next_stop: Option<DateTime<Utc>>,
    /// Where `now` falls, in the schedule's terms ([`RuleDecision::position`]).
    position: String,
    /// `position` and since when (" since 2026-11-27 19:00 CET").
    position_since: String,
    /// " until 2026-11-30 08:00 CET", when there is a next boundary.
    until: String,
}

struct Pass<'a> {
    rules: &'a RuleSet,
    ledger: &'a LedgerView,
    complete: bool,
    now: DateTime<Utc>,
    schedules: Vec<OnceCell<Option<ScheduleNow>>>,
}

/// Decides for every environment of `snapshot`.
pub fn decide(
    rules: &RuleSet,
    snapshot: &Snapshot,
    ledger: &LedgerView,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    decide_each(
        rules,
        &snapshot.environments,
        snapshot.complete,
        ledger,
        now,
    )
}

/// Decides for some environments of a listing (`complete` says whether the listing was),
/// as [`decide`] does for all of them: a simulation decides only for those whose decision
/// may have changed.
pub fn decide_each<'e>(
    rules: &RuleSet,
    environments: impl IntoIterator<Item = &'e Environment>,
    complete: bool,
    ledger: &LedgerView,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    decide_iter(rules, environments, complete, ledger, now).collect()
}

/// [`decide_each`], one decision at a time as they are asked for: a simulation keeps only
/// the decisions that act, not one per environment at once.
pub fn decide_iter<'a, 'e: 'a>(
    rules: &'a RuleSet,
    environments: impl IntoIterator<Item = &'e Environment, IntoIter: 'a>,
    complete: bool,
    ledger: &'a LedgerView,
    now: DateTime<Utc>,
) -> impl Iterator<Item = Decision> + 'a {
    let pass = Pass::new(rules, ledger, complete, now);
    let mut reasons = Words::default();
    environments.into_iter().map(move |env| {
        let mut d = pass.decide(env, &mut Trace::off());
        d.reason = reasons.get(d.reason);
        d
    })
}

/// Who will put a stop of `env` under `rule` back, said before the first stop (`plan`, and
/// each stop's reason): the owners that would revert a stop and that the rule's `gitops:`
/// does not have curfew pause, each with the settings that would. Empty when none.
pub fn revert_warnings(rule: &Rule, env: &Environment) -> Vec<String> {
    env.reverters
        .iter()
        .filter(|r| !r.paused_under.contains(&rule.gitops))
        .map(|r| {
            let unless = match r.paused_under.as_slice() {
                [] => format!("whatever gitops: says (rule \"{}\")", rule.name),
                settings => format!(
                    "unless gitops: {} (rule \"{}\" has gitops: {})",
                    settings
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    rule.name,
                    rule.gitops.as_str()
                ),
            };
            format!("will be reverted by {} {unless}", r.owner)
        })
        .collect()
}

/// An environment as curfew's `action` leaves it, in the model every platform follows: a
/// stop leaves it stopped, a start running, a delete removes it (`None`); a warning changes
/// nothing. The platform's own word for the state is dropped (it said what it was before).
pub fn after_action(env: &Environment, action: Action) -> Option<Environment> {
    let mut env = env.clone();
    act_on(&mut env, action).then_some(env)
}

/// Changes `env` as [`after_action`] says `action` leaves it; `false` when it removes it.
pub fn act_on(env: &mut Environment, action: Action) -> bool {
    let state = match action {
        Action::Delete => return false,
        Action::Stop => EnvState::Stopped,
        Action::Start => EnvState::Running,
        Action::None | Action::Warn => return true,
    };
    env.state = state;
    env.platform_state = None;
    true
}

/// The decision `env` gets at `now` once `decision`'s own action has been carried out,
/// and its delete's warning too when `warned`: the environment as the action leaves it
/// ([`after_action`]), its ledger record as the pass writes it and the next pass reads it.
/// `None` when it is deleted. What a pass's own actions bring due (an idle stop after a
/// morning start, a delete after a stop) is when the daemon wakes next.
pub fn decide_after(
    rules: &RuleSet,
    env: &Environment,
    record: Option<&EnvRecord>,
    decision: &Decision,
    warned: bool,
    now: DateTime<Utc>,
) -> Option<Decision> {
    let env = after_action(env, decision.action)?;
    let mut view = LedgerView::new(record.map(|r| (env.id.clone(), r.clone())));
    view.apply(decision, now);
    if let Some(warning) = decision
        .delete_step()
        .filter(|w| warned && w.action == Action::Warn)
    {
        view.record(&warning, now);
    }
    view.observe_one(&env, now);
    decide_each(rules, [&env], true, &view, now).pop()
}

/// The earliest instant at which any decision could change: the daemon's next wakeup.
pub fn next_wakeup(decisions: &[Decision]) -> Option<DateTime<Utc>> {
    decisions.iter().filter_map(|d| d.next_check).min()
}

/// A decision and the full chain of reasoning that led to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    pub steps: Vec<String>,
    pub decision: Decision,
}

/// Decides for one environment, keeping every step of the reasoning.
pub fn explain(
    rules: &RuleSet,
    env: &Environment,
    complete: bool,
    ledger: &LedgerView,
    now: DateTime<Utc>,
) -> Explanation {
    let pass = Pass::new(rules, ledger, complete, now);
    let mut trace = Trace {
        steps: Some(Vec::new()),
    };
    let decision = pass.decide(env, &mut trace);
    Explanation {
        steps: trace.steps.unwrap_or_default(),
        decision,
    }
}

/// What protects `env`, if anything does: a `protect` entry (production's first), a
/// protection set through the admin API, or the label `curfew.dev/protect=true`. Checked
/// before any rule, and by the admin API before it acts itself (a wake).
pub fn protection(
    rules: &RuleSet,
    env: &Environment,
    record: Option<&EnvRecord>,
) -> Option<String> {
    if let Some(p) = rules.protect.iter().find(|p| p.selector.may_match(env)) {
        return Some(p.description.clone());
    }
    if let Some(by) = record.and_then(|r| r.protected_by.as_ref()) {
        return Some(format!("protected through the admin API by {by}"));
    }
    if env.overrides().protected {
        return Some(format!("protected by its label {PROTECT_LABEL}=true"));
    }
    None
}

/// A snooze: until when, and by whom (for people).
pub(super) type Snooze = (DateTime<Utc>, String);

/// Every snooze `env` has, each until when and by whom: the admin API's (kept in the
/// ledger's record) and its label's; and why its label was ignored, if it was.
pub(super) fn snoozes(
    env: &Environment,
    record: Option<&EnvRecord>,
) -> ([Option<Snooze>; 2], Option<String>) {
    let ledger = record.and_then(|r| {
        r.snoozed_until
            .map(|u| (u, r.snoozed_by.as_deref().unwrap_or("someone").to_string()))
    });
    let (label, ignored) = match &env.overrides().snooze {
        Some(LabelSnooze::Until(t)) => (Some((*t, format!("its label {SNOOZE_LABEL}"))), None),
        Some(LabelSnooze::Unreadable { error, .. }) => (None, Some(error.to_string())),
        None => (None, None),
    };
    ([ledger, label], ignored)
}

/// Collects reasoning steps when explaining; costs nothing otherwise.
struct Trace {
    steps: Option<Vec<String>>,
}

impl Trace {
    fn off() -> Trace {
        Trace { steps: None }
    }

    fn note(&mut self, step: impl FnOnce() -> String) {
        if let Some(steps) = &mut self.steps {
            steps.push(step());
        }
    }
}

/// An instant as people in the rule's zone read it: local time to the minute, the zone
/// named (`2026-11-27 19:00 CET`). The one format of instants meant for people (reasons,
/// logs' sentences, the command line's text); JSON carries RFC 3339.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn span(d: TimeDelta) -> String {
    format_seconds(d.num_seconds().max(0).unsigned_abs())
}

impl<'a> Pass<'a> {
    fn new(rules: &'a RuleSet, ledger: &'a LedgerView, complete: bool, now: DateTime<Utc>) -> Self {
        let schedules = rules.rules.iter().map(|_| OnceCell::new()).collect();
        Pass {
            rules,
            ledger,
            complete,
            now,
            schedules,
        }
    }

    fn schedule(&self, index: usize, rule: &Rule) -> Option<&ScheduleNow> {
        self.schedules[index]
            .get_or_init(|| {
                rule.schedule.as_ref().map(|s| {
                    let active = s.is_active(self.now);
                    let since = s.last_boundary(self.now);
                    let next = s.next_boundary(self.now);
                    let position = RuleDecision::position(s, active, self.now);
                    let at = |t: DateTime<Utc>| local(t, rule.timezone);
                    ScheduleNow {
                        active,
                        since,
                        next,
                        next_stop: s.next_stop(self.now),
                        position_since: format!(
                            "{position}{}",
                            since
                                .map(|t| format!(" since {}", at(t)))
                                .unwrap_or_default()
                        ),
                        until: next
                            .map(|t| format!(" until {}", at(t)))
                            .unwrap_or_default(),
                        position,
                    }
                })
            })
            .as_ref()
    }

    fn decide(&self, env: &Environment, trace: &mut Trace) -> Decision {
        let record = self.ledger.get(&env.id);
        let base = Decision {
            environment_id: env.id.clone(),
            environment: env.name.clone(),
            project: env.project.clone(),
            mode: env.mode,
            state: env.state,
            action: Action::None,
            cause: None,
            rule: None,
            reason: Arc::from(""),
            due_since: None,
            next_check: None,
            dry_run: self.rules.safety.dry_run,
            settle: None,
            hourly_cost: env.hourly_cost,
            delete: None,
        };
        if let Some(reason) = self.protection(env, record) {
            trace.note(|| reason.clone());
            return Decision {
                reason: reason.into(),
                ..base
            };
        }
        trace.note(|| "not protected".into());
        let Some((index, rule)) = self.matching_rule(env, trace) else {
            return Decision {
                reason: format!(
                    "no rule matches (tried {}); curfew leaves it alone",
                    self.rules_tried()
                )
                .into(),
                ..base
            };
        };
        let base = Decision {
            rule: Some(rule.name.clone()),
            dry_run: self.rules.safety.dry_run || rule.dry_run,
            hourly_cost: env.hourly_cost.or(rule.hourly_cost),
            ..base
        };
        RuleDecision {
            pass: self,
            env,
            rule,
            index,
            record,
            base,
        }
        .decide(trace)
    }

    /// The rules' names, for "no rule matches": the first few, and how many more.
    fn rules_tried(&self) -> String {
        const NAMED: usize = 10;
        let rules = &self.rules.rules;
        if rules.is_empty() {
            return "none".into();
        }
        let mut tried: Vec<String> = rules
            .iter()
            .take(NAMED)
            .map(|r| format!("\"{}\"", r.name))
            .collect();
        if rules.len() > NAMED {
            tried.push(format!("and {} more", rules.len() - NAMED));
        }
        tried.join(", ")
    }

    fn protection(&self, env: &Environment, record: Option<&EnvRecord>) -> Option<String> {
        protection(self.rules, env, record).map(|p| format!("{p}; curfew never acts on it"))
    }

    fn matching_rule(&self, env: &Environment, trace: &mut Trace) -> Option<(usize, &'a Rule)> {
        for (index, rule) in self.rules.rules.iter().enumerate() {
            if rule.selector.matches(env) {
                trace.note(|| {
                    format!(
                        "rule \"{}\" matches ({})",
                        rule.name,
                        rule.selector.describe()
                    )
                });
                return Some((index, rule));
            }
            trace.note(|| {
                format!(
                    "rule \"{}\" does not match ({})",
                    rule.name,
                    rule.selector.describe()
                )
            });
        }
        None
    }
}

/// Deciding under one rule.
struct RuleDecision<'p, 'a> {
    pass: &'p Pass<'a>,
    env: &'p Environment,
    rule: &'a Rule,
    index: usize,
    record: Option<&'p EnvRecord>,
    base: Decision,
}

impl RuleDecision<'_, '_> {
    fn now(&self) -> DateTime<Utc> {
        self.pass.now
    }

    fn at(&self, t: DateTime<Utc>) -> String {
        local(t, self.rule.timezone)
    }

    fn with(&self, action: Action, cause: Option<Cause>, reason: String) -> Decision {
        // What the platform cannot stop is said wherever the decision is shown (plan).
        let reason = match &self.env.unstoppable {
            Some(running) => {
                format!("{reason}; still running, which a stop does not stop: {running}")
            }
            None => reason,
        };
        // Who may put a stop back, before the first stop (plan, explain).
        let reason = match (&self.env.owners, action) {
            (Some(owners), Action::Stop) => format!(
                "{reason}; GitOps (gitops: {}): {owners}",
                self.rule.gitops.as_str()
            ),
            _ => reason,
        };
        let reason = match action {
            Action::Stop => revert_warnings(self.rule, self.env)
                .into_iter()
                .fold(reason, |r, w| format!("{r}; WARNING: {w}")),
            _ => reason,
        };
        Decision {
            action,
            cause,
            reason: reason.into(),
            ..self.base.clone()
        }
    }

    fn decide(self, trace: &mut Trace) -> Decision {
        let env = self.env;
        let now = self.now();
        if let Some(running) = &env.unstoppable {
            trace.note(|| format!("still running, which a stop does not stop: {running}"));
        }
        if !env.state.is_settled() {
            let word = env
                .platform_state
                .as_deref()
                .map_or_else(|| env.state.to_string(), str::to_string);
            let reason = format!(
                "in state {word}; left alone until it settles (rule \"{}\")",
                self.rule.name
            );
            trace.note(|| reason.clone());
            return self.with(Action::None, None, reason);
        }
        let grace_end = env.created_at + self.rule.grace_period;
        if now < grace_end {
            let reason = format!(
                "created {} ago, in its grace period until {} (rule \"{}\")",
                span(now - env.created_at),
                self.at(grace_end),
                self.rule.name
            );
            trace.note(|| reason.clone());
            return Decision {
                next_check: Some(grace_end),
                ..self.with(Action::None, None, reason)
            };
        }
        trace.note(|| format!("past its grace period ({})", span(self.rule.grace_period)));
        let snooze = self.snoozed_until(trace);
        let delete = self.delete(snooze.clone(), trace);
        let mut decision = match snooze {
            Some((until, by)) => {
                let reason = format!(
                    "snoozed until {} by {by}: no schedule or idle stop before then",
                    self.at(until)
                );
                trace.note(|| reason.clone());
                Decision {
                    next_check: Some(until),
                    ..self.with(Action::None, None, reason)
                }
            }
            None => self.schedule_and_idle(trace),
        };
        let pending = delete.pending;
        if decision.action == Action::Start
            && pending.as_ref().is_some_and(|p| p.action == Action::Delete)
        {
            // Starting what is deleted in the same pass would only cost money.
            decision = Decision {
                next_check: decision.next_check,
                ..self.with(
                    Action::None,
                    None,
                    format!("{}; not started: it is due for deletion", decision.reason),
                )
            };
            trace.note(|| decision.reason.to_string());
        }
        decision.next_check = [decision.next_check, delete.next_check]
            .into_iter()
            .flatten()
            .min();
        if decision.settle.is_none() && delete.clear_warning {
            decision.settle = Some(Settle::ClearDeleteWarning);
        }
        decision.delete = pending.map(Box::new);
        decision
    }

    fn snoozed_until(&self, trace: &mut Trace) -> Option<(DateTime<Utc>, String)> {
        let now = self.now();
        let (snoozes, ignored) = snoozes(self.env, self.record);
        if let Some(e) = ignored {
            trace.note(|| format!("label {SNOOZE_LABEL} ignored: {e}"));
        }
        snoozes
            .into_iter()
            .flatten()
            .filter(|(u, _)| *u > now)
            .max_by_key(|(u, _)| *u)
    }

    /// The last sign of life: creation, deployment, activity, or curfew's own start.
    fn last_activity(&self) -> DateTime<Utc> {
        let env = self.env;
        [
            Some(env.created_at),
            env.last_deployed_at,
            env.last_activity_at,
            self.record.and_then(|r| r.last_started_by_curfew_at),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(env.created_at)
    }

    /// Since when the environment has been stopped; never while something in it runs that
    /// a stop does not stop (it is in use, whatever curfew stopped of it).
    fn stopped_since(&self) -> Option<DateTime<Utc>> {
        if self.env.state != EnvState::Stopped || self.env.unstoppable.is_some() {
            return None;
        }
        let r = self.record?;
        [r.stopped_since, r.curfew_stop.as_ref().map(|s| s.at)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The earliest delete condition of the rule: when it is due, why, and in words.
    fn delete_condition(&self) -> Option<(DateTime<Utc>, Cause, String)> {
        let rule = self.rule;
        let mut due: Vec<(DateTime<Utc>, Cause, String)> = Vec::new();
        if let Some(d) = rule.delete_after {
            due.push((
                self.env.created_at + d,
                Cause::Age,
                format!("older than delete_after {}", span(d)),
            ));
        }
        if let (Some(d), Some(since)) = (rule.delete_when_stopped_for, self.stopped_since()) {
            due.push((
                since + d,
                Cause::StoppedFor,
                format!("stopped for longer than {}", span(d)),
            ));
        }
        if let Some(d) = rule.delete_when_idle_for {
            due.push((
                self.last_activity() + d,
                Cause::IdleFor,
                format!("no deployment or activity for longer than {}", span(d)),
            ));
        }
        let (at, cause, what) = due.into_iter().min_by_key(|(t, _, _)| *t)?;
        // A person delayed the delete: it waits for that instant, whatever the condition.
        match self
            .record
            .and_then(|r| Some((r.delete_not_before?, r.delete_delayed_by.clone())))
        {
            Some((not_before, by)) if not_before > at => Some((
                not_before,
                cause,
                format!(
                    "{what} (delayed until {} by {})",
                    self.at(not_before),
                    by.as_deref().unwrap_or("someone")
                ),
            )),
            _ => Some((at, cause, what)),
        }
    }

    /// The delete clock: nothing yet, postponed, or a step under way (warning, waiting,
    /// due).
    fn delete(&self, snooze: Option<(DateTime<Utc>, String)>, trace: &mut Trace) -> DeleteOutcome {
        let rule = self.rule;
        let warned = self.record.and_then(|r| r.delete_warned_at);
        if let (Some(_), Some(running)) = (rule.delete_when_stopped_for, &self.env.unstoppable) {
            trace.note(|| {
                format!("not stopped for delete_when_stopped_for while this runs: {running}")
            });
        }
        let Some((due_at, cause, what)) = self.delete_condition() else {
            return DeleteOutcome {
                clear_warning: warned.is_some(),
                ..DeleteOutcome::default()
            };
        };
        let warn_at = due_at - rule.warn_before_delete;
        if self.now() < warn_at {
            trace.note(|| format!("delete condition ({what}) due at {}", self.at(due_at)));
            return DeleteOutcome {
                next_check: Some(warn_at),
                clear_warning: warned.is_some(),
                pending: None,
            };
        }
        if !rule.allow_delete.contains(&self.env.mode) {
            trace.note(|| format!("delete condition ({what}) holds, but rule \"{}\" may not delete {} environments (allow_delete)", rule.name, self.env.mode));
            return DeleteOutcome::default();
        }
        if let Some((until, by)) = snooze {
            trace.note(|| {
                format!(
                    "delete ({what}) postponed: snoozed until {} by {by}",
                    self.at(until)
                )
            });
            return DeleteOutcome {
                next_check: Some(until),
                ..DeleteOutcome::default()
            };
        }
        let (pending, next_check) = self.delete_step(due_at, cause, &what, warned);
        trace.note(|| pending.reason.to_string());
        DeleteOutcome {
            pending: Some(pending),
            next_check,
            clear_warning: false,
        }
    }

    /// A delete whose warning time has come: warned now, waiting, or due; and when it
    /// changes next.
    fn delete_step(
        &self,
        due_at: DateTime<Utc>,
        cause: Cause,
        what: &str,
        warned: Option<DateTime<Utc>>,
    ) -> (PendingDelete, Option<DateTime<Utc>>) {
        let rule = self.rule;
        let now = self.now();
        let warn_for = rule.warn_before_delete;
        let pending = |action, reason: String, due_since, at| PendingDelete {
            action,
            cause,
            reason: reason.into(),
            due_since,
            at,
        };
        if !self.pass.complete {
            let reason = format!(
                "{what}, but the platform's listing was partial this pass: nothing is deleted until a full listing (rule \"{}\")",
                rule.name
            );
            return (pending(Action::None, reason, None, None), None);
        }
        match warned {
            None if warn_for > TimeDelta::zero() => {
                let delete_at = due_at.max(now + warn_for);
                let reason = format!(
                    "{what}: will be deleted at {} (rule \"{}\"); warning now",
                    self.at(delete_at),
                    rule.name
                );
                let warn_at = due_at - warn_for;
                let p = pending(Action::Warn, reason, Some(warn_at), Some(delete_at));
                (p, Some(delete_at))
            }
            Some(w) if now < (w + warn_for).max(due_at) => {
                let delete_at = (w + warn_for).max(due_at);
                let reason = format!(
                    "{what}: warned at {}, will be deleted at {} (rule \"{}\")",
                    self.at(w),
                    self.at(delete_at),
                    rule.name
                );
                (
                    pending(Action::None, reason, None, Some(delete_at)),
                    Some(delete_at),
                )
            }
            _ => {
                let reason = format!(
                    "{what} since {}: deleted by rule \"{}\"",
                    self.at(due_at),
                    rule.name
                );
                (pending(Action::Delete, reason, Some(due_at), None), None)
            }
        }
    }

    fn schedule_and_idle(&self, trace: &mut Trace) -> Decision {
        let rule = self.rule;
        let env = self.env;
        let mut held: Option<Decision> = None;
        let mut next_checks: Vec<DateTime<Utc>> = Vec::new();
        match (&rule.schedule, self.pass.schedule(self.index, rule)) {
            (Some(schedule), Some(now_state)) => {
                match self.scheduled(schedule, now_state, trace) {
                    Some(d) if d.action != Action::None => return d,
                    verdict => held = verdict,
                }
                next_checks.extend(now_state.next);
            }
            _ => trace.note(|| format!("rule \"{}\" has no schedule", rule.name)),
        }
        // The idle limit applies whatever the schedule says, a person's start included.
        if let (Some(limit), EnvState::Running) = (rule.stop_when_idle, env.state) {
            let last = self.last_activity();
            let due = last + limit;
            if self.now() >= due {
                let reason = format!(
                    "no deployment or activity since {} ({} ago, idle limit {}); stopped by rule \"{}\"",
                    self.at(last),
                    span(self.now() - last),
                    span(limit),
                    rule.name
                );
                trace.note(|| reason.clone());
                return Decision {
                    due_since: Some(due),
                    ..self.with(Action::Stop, Some(Cause::Idle), reason)
                };
            }
            trace.note(|| {
                format!(
                    "idle since {}: stops at {} if nothing happens",
                    self.at(last),
                    self.at(due)
                )
            });
            next_checks.push(due);
        }
        let mut decision = held.unwrap_or_else(|| self.steady(trace));
        decision.next_check = decision.next_check.into_iter().chain(next_checks).min();
        decision
    }

    /// Where `now` falls in the rule's schedule, in the schedule's own terms: inside or
    /// outside `run` windows, outside or inside `stop` windows, in the running or stopped
    /// time of `events`.
    fn position(schedule: &RuleSchedule, active: bool, now: DateTime<Utc>) -> String {
        // Summarized when long: a reason goes into the log and the ledger of every action.
        let described = schedule.describe_at(now);
        match (schedule, active) {
            (RuleSchedule::Run(_), true) | (RuleSchedule::Stop { .. }, false) => {
                format!("inside {described}")
            }
            (RuleSchedule::Run(_), false) | (RuleSchedule::Stop { .. }, true) => {
                format!("outside {described}")
            }
            // Quoted: the spec's own semicolons would run into the sentence's.
            (RuleSchedule::Events(spec), true) => {
                format!(
                    "in the running time of events \"{}\"",
                    spec.describe_at(now)
                )
            }
            (RuleSchedule::Events(spec), false) => {
                format!(
                    "in the stopped time of events \"{}\"",
                    spec.describe_at(now)
                )
            }
        }
    }

    /// The schedule's verdict, if it calls for an action or a settlement.
    fn scheduled(
        &self,
        schedule: &RuleSchedule,
        s: &ScheduleNow,
        trace: &mut Trace,
    ) -> Option<Decision> {
        let rule = self.rule;
        let position = &s.position_since;
        trace.note(|| {
            format!(
                "schedule {}: {}{}",
                schedule.describe_at(self.now()),
                if s.active {
                    "running time"
                } else {
                    "stopped time"
                },
                s.since
                    .map(|t| format!(" since {}", self.at(t)))
                    .unwrap_or_default()
                    + &s.next
                        .map(|n| format!(", next boundary {}", self.at(n)))
                        .unwrap_or_default()
            )
        });
        let settled =
            |at: Option<DateTime<Utc>>| at.is_some_and(|t| s.since.is_none_or(|b| t >= b));
        let record = self.record;
        match (s.active, self.env.state) {
            (false, EnvState::Running) => self.running_in_stopped_time(s, position, trace),
            (false, EnvState::Stopped) => {
                let settle = (!settled(record.and_then(|r| r.schedule_stop_settled_at)))
                    .then_some(Settle::ScheduleStop);
                let reason = format!("stopped, as wanted: {position}");
                Some(Decision {
                    next_check: s.next,
                    settle,
                    ..self.with(Action::None, None, reason)
                })
            }
            (true, EnvState::Stopped) => self.wake(s, position, trace),
            (true, EnvState::Running) => {
                if let Some(d) = self.partly_put_back(s, position, trace) {
                    return Some(d);
                }
                let settle = (rule.wake == Wake::All
                    && !settled(record.and_then(|r| r.schedule_start_settled_at)))
                .then_some(Settle::ScheduleStart);
                settle.map(|settle| Decision {
                    next_check: s.next,
                    settle: Some(settle),
                    ..self.with(Action::None, None, format!("running, {position}"))
                })
            }
            // Unsettled states never reach here (checked first).
            _ => None,
        }
    }

    /// Running while the schedule wants it stopped: stopped, once per boundary. After the
    /// boundary's stop was seen through, a start is a person's and is left alone until the
    /// next scheduled stop; but a start curfew made itself since then (a wake through the
    /// admin API, whose snooze is over now) hands the environment back to the schedule.
    fn running_in_stopped_time(
        &self,
        s: &ScheduleNow,
        position: &str,
        trace: &mut Trace,
    ) -> Option<Decision> {
        let rule = self.rule;
        let record = self.record;
        let stop_seen = record
            .and_then(|r| r.schedule_stop_settled_at)
            .filter(|t| s.since.is_none_or(|b| *t >= b));
        let woken = record
            .and_then(|r| r.last_started_by_curfew_at)
            .filter(|t| s.since.is_none_or(|b| *t >= b));
        let by_hand = match (stop_seen, woken) {
            (Some(stop), Some(start)) => start < stop,
            (stop, _) => stop.is_some(),
        };
        let reason = if by_hand {
            let stop_at = s
                .since
                .map(|t| format!(" at {}", self.at(t)))
                .unwrap_or_default();
            let next_stop = s
                .next_stop
                .map(|t| format!(" at {}", self.at(t)))
                .unwrap_or_default();
            let reason = format!(
                "started by hand after the schedule's stop{stop_at}; left running until the next scheduled stop{next_stop} (rule \"{}\")",
                rule.name
            );
            trace.note(|| reason.clone());
            return Some(Decision {
                next_check: s.next,
                ..self.with(Action::None, None, reason)
            });
        } else if let Some(start) = woken {
            format!(
                "{position}, and its wake at {} is over; stopped by rule \"{}\"",
                self.at(start),
                rule.name
            )
        } else {
            format!("{position}; stopped by rule \"{}\"", rule.name)
        };
        trace.note(|| reason.clone());
        Some(Decision {
            due_since: s.since,
            next_check: s.next,
            ..self.with(Action::Stop, Some(Cause::Schedule), reason)
        })
    }

    /// Running in part, in running time: someone put back only some of what curfew
    /// stopped (a GitOps tool syncing one Deployment, a person scaling one up), and the rest
    /// is still stopped. The running time starts the rest, whatever `wake` says of stopped
    /// environments (this one runs: whoever put it back wants it), but never under
    /// `wake: never`.
    fn partly_put_back(
        &self,
        s: &ScheduleNow,
        position: &str,
        trace: &mut Trace,
    ) -> Option<Decision> {
        let revert = self.env.reverted.as_deref()?;
        if revert.still_stopped == 0 || self.rule.wake == Wake::Never {
            return None;
        }
        let reason = format!(
            "{position}; {by} put back part of it and {n} part{s} curfew stopped {are} still stopped, so rule \"{rule}\" starts {them}",
            by = revert.by,
            n = revert.still_stopped,
            s = if revert.still_stopped == 1 { "" } else { "s" },
            are = if revert.still_stopped == 1 {
                "is"
            } else {
                "are"
            },
            them = if revert.still_stopped == 1 {
                "it"
            } else {
                "them"
            },
            rule = self.rule.name,
        );
        trace.note(|| reason.clone());
        Some(Decision {
            due_since: s.since,
            next_check: s.next,
            ..self.with(Action::Start, Some(Cause::Schedule), reason)
        })
    }

    fn wake(&self, s: &ScheduleNow, position: &str, trace: &mut Trace) -> Option<Decision> {
        let rule = self.rule;
        let record = self.record;
        let curfew_stop = record.and_then(|r| r.curfew_stop.as_ref());
        let start = |reason: String| {
            Some(Decision {
                due_since: s.since,
                next_check: s.next,
                ..self.with(Action::Start, Some(Cause::Schedule), reason)
            })
        };
        let keep = |reason: String| {
            Some(Decision {
                next_check: s.next,
                ..self.with(Action::None, None, reason)
            })
        };
        let decision = match rule.wake {
            Wake::Never => keep(format!(
                "{position}, but rule \"{}\" never wakes environments (wake: never)",
                rule.name
            )),
            Wake::StoppedByCurfew => match curfew_stop {
                Some(stop) if stop.cause == StopCause::Schedule => start(format!(
                    "{position}; curfew stopped it at {} for the schedule, so rule \"{}\" starts it",
                    self.at(stop.at),
                    rule.name
                )),
                Some(stop) => keep(format!(
                    "{position}, but curfew stopped it at {} because it was idle; it stays stopped until someone deploys it (wake: stopped-by-curfew)",
                    self.at(stop.at)
                )),
                None => keep(format!(
                    "{position}, but it was not stopped by curfew's schedule; left stopped (wake: stopped-by-curfew)"
                )),
            },
            Wake::All => {
                let settled = record
                    .and_then(|r| r.schedule_start_settled_at)
                    .is_some_and(|t| s.since.is_none_or(|b| t >= b));
                if settled {
                    keep(format!(
                        "{position}, but stopped by hand after curfew started it; left stopped until the next window"
                    ))
                } else {
                    start(format!(
                        "{position}; rule \"{}\" starts every stopped environment (wake: all)",
                        rule.name
                    ))
                }
            }
        };
        if let Some(d) = &decision {
            trace.note(|| d.reason.to_string());
        }
        decision
    }

    /// Nothing to do: say why, in the schedule's words.
    fn steady(&self, trace: &mut Trace) -> Decision {
        let rule = self.rule;
        let reason = match (&rule.schedule, self.pass.schedule(self.index, rule)) {
            (Some(_), Some(s)) => {
                format!(
                    "{}, {}{} (rule \"{}\")",
                    self.env.state, s.position, s.until, rule.name
                )
            }
            _ => format!("{}; nothing due (rule \"{}\")", self.env.state, rule.name),
        };
        trace.note(|| reason.clone());
        self.with(Action::None, None, reason)
    }
}

/// What the delete clock concluded: its step (if one is under way), when to look again,
/// and whether an earlier warning no longer applies.
#[derive(Default)]
struct DeleteOutcome {
    pending: Option<PendingDelete>,
    next_check: Option<DateTime<Utc>>,
    clear_warning: bool,
}
