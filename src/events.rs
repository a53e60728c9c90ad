//! What happens in the daemon, as values.
//!
//! - [`PassReport`]: what one pass saw and did, handed to whoever listens
//!   ([`PassListener`]: the notifier) once the pass is recorded.
//! - [`ActResult`]: what became of an action, the one result type: the ledger's words and
//!   the metrics' labels are derived from it.
//! - One type per observable event ([`ActionTaken`], [`PassFinished`], [`RulesReloaded`],
//!   [`CapHit`], [`Notification`], [`AdminRefused`], [`Reverted`]): each `emit`s its log line and its
//!   count together, through a [`Counter`] (the daemon's Prometheus metrics), so the log
//!   and the metrics never drift apart (vector's internal events).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::ConfigError;
use crate::platform::Outcome;
use crate::policy::{Action, Decision, RuleSet, Step};
use crate::text::Printable;

/// What became of an action a decision called for.
#[derive(Debug, Clone, PartialEq)]
pub enum ActResult {
    /// The platform took it (or had it already: Qovery's 409, or the environment is gone).
    Done(Outcome),
    /// Logged and counted, nothing called.
    DryRun,
    /// Over `max_stops_per_pass` or `max_deletes_per_hour`: left for a later pass.
    SkippedCap(Cap),
    /// A delete seen due for the first time: confirmed on a pass one resync later.
    Confirming,
    /// The platform refused or failed; the next pass decides again.
    Failed(String),
}

impl ActResult {
    /// The `result` label of `curfew_actions_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ActResult::Done(_) => "ok",
            ActResult::DryRun => "dry_run",
            ActResult::SkippedCap(_) | ActResult::Confirming => "skipped_cap",
            ActResult::Failed(_) => "error",
        }
    }

    /// Every `result` label, for the series made at 0 in advance.
    pub const LABELS: [&'static str; 4] = ["ok", "error", "dry_run", "skipped_cap"];
}

/// A safety cap, as counted in `curfew_caps_hit_total{cap}` (the limits themselves are
/// [`crate::policy::caps`]).
pub use crate::policy::Cap;

/// How one reconcile pass ended, as counted in `curfew_reconcile_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassResult {
    /// Listed everything and every action was attempted.
    Ok,
    /// The pass could not run (listing failed, ledger unavailable…).
    Error,
    /// The listing was partial or some actions failed; deletes were held back.
    Partial,
}

impl PassResult {
    pub const ALL: [PassResult; 3] = [PassResult::Ok, PassResult::Error, PassResult::Partial];

    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Ok => "ok",
            PassResult::Error => "error",
            PassResult::Partial => "partial",
        }
    }
}

/// How one notification delivery ended, as counted in `curfew_notifications_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResult {
    /// The receiver answered 2xx.
    Ok,
    /// Given up: retries exhausted, a permanent refusal (4xx), or no usable URL.
    Error,
    /// Not queued: the delivery queue was full (the pass never waits for it).
    Dropped,
    /// One attempt failed and another follows (counted per retried attempt).
    Retry,
}

impl NotificationResult {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationResult::Ok => "ok",
            NotificationResult::Error => "error",
            NotificationResult::Dropped => "dropped",
            NotificationResult::Retry => "retry",
        }
    }
}

/// Why an admin request was refused, as counted in
/// `curfew_admin_auth_failures_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that is not one of the daemon's.
    Refused,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 2] = [AuthFailure::Missing, AuthFailure::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Refused => "refused",
        }
    }
}

/// Who put a stop back, as counted in `curfew_reverted_total{by}`: the field managers of
/// the tools that do so, a person's client, or anything else. Bounded whatever a manager
/// calls itself (any client may name its field manager as it likes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertedBy {
    /// Argo CD (`argocd-controller`, `argocd-application-controller`).
    ArgoCd,
    /// Flux's `kustomize-controller`.
    Kustomize,
    /// Flux's `helm-controller`.
    Helm,
    /// `keda-operator`.
    Keda,
    /// A person's client: `kubectl …`, `k9s`, `Lens`, the `helm` command.
    Person,
    /// Anything else, or a manager the object does not name.
    Other,
}

impl RevertedBy {
    pub const ALL: [RevertedBy; 6] = [
        RevertedBy::ArgoCd,
        RevertedBy::Kustomize,
        RevertedBy::Helm,
        RevertedBy::Keda,
        RevertedBy::Person,
        RevertedBy::Other,
    ];

    /// From a field manager as the platform names it (`argocd-controller (Update)`).
    pub fn of(manager: &str) -> RevertedBy {
        // The manager, without the operation the platform adds after it.
        let name = manager
            .split(" (")
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            n if n.starts_with("argocd") => RevertedBy::ArgoCd,
            "kustomize-controller" => RevertedBy::Kustomize,
            "helm-controller" => RevertedBy::Helm,
            "keda-operator" => RevertedBy::Keda,
            n if n.starts_with("kubectl") || n == "k9s" || n == "lens" || n == "helm" => {
                RevertedBy::Person
            }
            _ => RevertedBy::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RevertedBy::ArgoCd => "argocd-controller",
            RevertedBy::Kustomize => "kustomize-controller",
            RevertedBy::Helm => "helm-controller",
            RevertedBy::Keda => "keda-operator",
            RevertedBy::Person => "person",
            RevertedBy::Other => "other",
        }
    }
}

/// A stop of curfew's put back by someone else: logged, counted
/// (`curfew_reverted_total{rule,by}`); the pass also records it in the ledger and tells
/// the platform's people (a Kubernetes Event).
pub struct Reverted<'a> {
    pub environment_id: &'a str,
    pub environment: &'a str,
    /// The rule whose stop it was.
    pub rule: &'a str,
    /// Who, as the platform names it.
    pub by: &'a str,
    /// When, if the platform says; else when curfew saw it.
    pub at: DateTime<Utc>,
}

impl Reverted<'_> {
    pub fn emit(&self, counter: &dyn Counter) {
        let by = RevertedBy::of(self.by);
        counter.reverted(self.rule, by);
        tracing::warn!(environment = %Printable(self.environment), id = %Printable(self.environment_id), rule = %Printable(self.rule), by = %Printable(self.by), at = %self.at, "a stop of curfew's was put back; not stopped again before the rule's next boundary");
    }

    /// The words people read (a Kubernetes Event, the ledger's history).
    pub fn message(&self) -> String {
        format!(
            "curfew's stop (rule \"{}\") was put back by {} at {}; curfew does not stop it again before the rule's next boundary and counts no savings from then on. To keep it stopped, have curfew pause its owner (gitops: pause) or exclude it (docs/platforms.md#gitops)",
            Printable(self.rule),
            Printable(self.by),
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// Where events are counted: the daemon's Prometheus metrics.
pub trait Counter: Send + Sync {
    /// One attempted action (`curfew_actions_total`).
    fn action(&self, action: Action, rule: Option<&str>, result: &ActResult);
    /// One finished pass: its result, how long it took, when it finished and when the next
    /// is planned (Unix seconds).
    fn pass(
        &self,
        result: PassResult,
        duration: Duration,
        finished_at_unix: f64,
        next_wakeup_unix: Option<f64>,
    );
    /// One reload of the rule file.
    fn config_reload(&self, ok: bool);
    /// One time a safety cap held actions back.
    fn cap_hit(&self, cap: Cap);
    /// One notification delivery (or one retried attempt). `target` is a name under the
    /// rule file's `notify`; `kind` a fixed name (`delete_warning`, …).
    fn notification(&self, target: &str, kind: &'static str, result: NotificationResult);
    /// One admin request refused for its token.
    fn admin_auth_failure(&self, reason: AuthFailure);
    /// One stop of curfew's under `rule` put back by `by`.
    fn reverted(&self, rule: &str, by: RevertedBy);
}

/// An action taken, held back or failed: one log line and one count.
pub struct ActionTaken<'a> {
    pub step: &'a Step,
    pub result: &'a ActResult,
}

impl ActionTaken<'_> {
    pub fn emit(&self, counter: &dyn Counter) {
        let (d, r) = (self.step, self.result);
        // A delete waiting for its second pass was not attempted: logged, not counted.
        if *r != ActResult::Confirming {
            counter.action(d.action, Some(&d.rule), r);
        }
        let rule = &*d.rule;
        match r {
            ActResult::Failed(e) => {
                tracing::warn!(environment = %d.environment, id = %d.environment_id, rule, action = %d.action, reason = %d.reason, result = "error", error = %e, "action failed")
            }
            ActResult::Done(o) => {
                tracing::info!(environment = %d.environment, id = %d.environment_id, rule, action = %d.action, reason = %d.reason, result = ?o, "action")
            }
            other => {
                tracing::info!(environment = %d.environment, id = %d.environment_id, rule, action = %d.action, reason = %d.reason, result = r.label(), detail = ?other, "action not taken")
            }
        }
    }
}

/// A safety cap held an action back (counted; the action's own line says which).
pub struct CapHit(pub Cap);

impl CapHit {
    pub fn emit(&self, counter: &dyn Counter) {
        counter.cap_hit(self.0);
    }
}

/// A pass finished: counted with its duration and times; a failed one is logged.
pub struct PassFinished<'a> {
    pub result: PassResult,
    pub duration: Duration,
    pub at: DateTime<Utc>,
    pub next_wakeup: Option<DateTime<Utc>>,
    /// Why it failed as a whole.
    pub error: Option<&'a dyn std::error::Error>,
}

impl PassFinished<'_> {
    pub fn emit(&self, counter: &dyn Counter) {
        counter.pass(
            self.result,
            self.duration,
            self.at.timestamp() as f64,
            self.next_wakeup.map(|t| t.timestamp() as f64),
        );
        if let Some(e) = self.error {
            tracing::error!(error = %e, "pass failed; the next one will try again");
        }
    }
}

/// The rule file was reloaded, or rejected (the last good rules stay in force).
pub enum RulesReloaded<'a> {
    InForce { file: &'a std::path::Path },
    Rejected { errors: &'a [ConfigError] },
}

impl RulesReloaded<'_> {
    pub fn emit(&self, counter: &dyn Counter) {
        match self {
            RulesReloaded::InForce { file } => {
                counter.config_reload(true);
                tracing::info!(file = %file.display(), "rule file reloaded");
            }
            RulesReloaded::Rejected { errors } => {
                counter.config_reload(false);
                for e in *errors {
                    tracing::error!(error = %e, "rule file rejected; the last good rules stay in force");
                }
            }
        }
    }
}

/// What became of one notification, counted and logged (never its URL).
pub enum Notification<'a> {
    /// The receiver took it.
    Delivered {
        target: &'a str,
        kind: &'static str,
        id: &'a str,
    },
    /// An attempt failed; another follows after `wait`.
    Retrying {
        target: &'a str,
        kind: &'static str,
        error: &'a str,
        wait: Duration,
    },
    /// Given up after its retries, or refused for good.
    Undelivered {
        target: &'a str,
        kind: &'static str,
        id: &'a str,
        error: &'a str,
    },
    /// Not sent: its target has no usable URL or key.
    Unsendable {
        target: &'a str,
        kind: &'static str,
        problem: &'a str,
    },
    /// Not queued (the queue is full, or notifications are shutting down).
    Dropped {
        target: &'a str,
        kind: &'static str,
        why: &'a str,
    },
}

impl Notification<'_> {
    pub fn emit(&self, counter: &dyn Counter) {
        match *self {
            Notification::Delivered { target, kind, id } => {
                counter.notification(target, kind, NotificationResult::Ok);
                tracing::debug!(target_name = %target, kind, id = %id, "notification delivered");
            }
            Notification::Retrying {
                target,
                kind,
                error,
                wait,
            } => {
                counter.notification(target, kind, NotificationResult::Retry);
                tracing::debug!(target_name = %target, kind, error = %error, ?wait, "notification failed; retrying");
            }
            Notification::Undelivered {
                target,
                kind,
                id,
                error,
            } => {
                counter.notification(target, kind, NotificationResult::Error);
                tracing::warn!(target_name = %target, kind, id = %id, error = %error, "notification not delivered");
            }
            Notification::Unsendable {
                target,
                kind,
                problem,
            } => {
                counter.notification(target, kind, NotificationResult::Error);
                tracing::warn!(target_name = %target, kind, %problem, "notification not sent");
            }
            Notification::Dropped { target, kind, why } => {
                counter.notification(target, kind, NotificationResult::Dropped);
                tracing::warn!(target_name = %target, kind, "notification dropped: {why}");
            }
        }
    }
}

/// An admin request refused for its token: always counted; logged (never the token) when
/// `also_refused` is given, the number refused since the last line.
pub struct AdminRefused<'a> {
    pub reason: AuthFailure,
    pub method: &'a str,
    pub path: &'a str,
    pub peer: &'a str,
    pub also_refused: Option<u64>,
}

impl AdminRefused<'_> {
    pub fn emit(&self, counter: &dyn Counter) {
        counter.admin_auth_failure(self.reason);
        if let Some(more) = self.also_refused {
            tracing::warn!(
                reason = %self.reason.as_str(),
                method = %self.method,
                path = %Printable(self.path),
                peer = %self.peer,
                also_refused = more,
                "admin request refused: no valid token"
            );
        }
    }
}

/// One action a pass took, or held back: a decision's own action, or its delete's step.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    /// The decision's index in the pass's decisions.
    pub index: usize,
    /// The decision's delete step ([`Decision::delete_step`]) rather than its own action.
    pub delete_step: bool,
    pub result: ActResult,
}

impl Acted {
    /// The decision's own action.
    pub fn own(index: usize, result: ActResult) -> Acted {
        Acted {
            index,
            delete_step: false,
            result,
        }
    }

    /// The decision's delete step.
    pub fn delete(index: usize, result: ActResult) -> Acted {
        Acted {
            index,
            delete_step: true,
            result,
        }
    }

    /// The step this is, from the pass's decisions.
    pub fn step(&self, decisions: &[Decision]) -> Option<Step> {
        let d = decisions.get(self.index)?;
        if self.delete_step {
            d.delete_step()
        } else {
            d.step()
        }
    }
}

/// The actions `acted` points to, each as a step, with their results.
pub fn acted<'a>(
    decisions: &'a [Decision],
    acted: &'a [Acted],
) -> impl Iterator<Item = (Step, &'a ActResult)> {
    acted
        .iter()
        .filter_map(|a| Some((a.step(decisions)?, &a.result)))
}

/// What a pass did.
#[derive(Debug, Clone)]
pub struct PassReport {
    /// The rules it decided with.
    pub rules: Arc<RuleSet>,
    pub at: DateTime<Utc>,
    pub complete: bool,
    /// Shared, not copied, with the status page, which shows the last pass's decisions
    /// until the next pass replaces them.
    pub decisions: Arc<Vec<Decision>>,
    /// Every action the decisions called for (by index in `decisions`, not a copy: a pass
    /// can stop thousands), with what became of it; read through [`Self::acted`].
    pub acted: Vec<Acted>,
    pub next_wakeup: Option<DateTime<Utc>>,
}

impl PassReport {
    /// Every action the decisions called for, as a step, with what became of it.
    pub fn acted(&self) -> impl Iterator<Item = (Step, &ActResult)> {
        acted(&self.decisions, &self.acted)
    }
}

/// Hears each pass once it is recorded (the notifier). Called in the pass: it must never
/// wait.
pub trait PassListener: Send + Sync {
    fn pass_done(&self, report: &PassReport);
}

#[cfg(test)]
mod tests {
    use super::RevertedBy;

    #[test]
    fn who_put_a_stop_back_is_one_of_six_labels_whatever_the_manager_calls_itself() {
        for (manager, label) in [
            ("argocd-controller (Update)", "argocd-controller"),
            ("argocd-application-controller (Apply)", "argocd-controller"),
            ("kustomize-controller (Apply)", "kustomize-controller"),
            ("helm-controller (Update)", "helm-controller"),
            ("keda-operator (Update)", "keda-operator"),
            ("kubectl-scale (Update)", "person"),
            ("kubectl-edit (Update)", "person"),
            ("kubectl-client-side-apply (Update)", "person"),
            ("k9s (Update)", "person"),
            ("helm (Update)", "person"),
            ("someone", "other"),
            ("kube-controller-manager (Update)", "other"),
            (
                "\u{1b}[31mevil\u{1b}[0m-name-of-any-length (Update)",
                "other",
            ),
        ] {
            assert_eq!(RevertedBy::of(manager).as_str(), label, "{manager}");
        }
        let labels: std::collections::HashSet<&str> =
            RevertedBy::ALL.iter().map(|b| b.as_str()).collect();
        assert_eq!(labels.len(), 6);
    }
}
