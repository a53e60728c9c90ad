//! What curfew sees of a platform: environments and their state ([`Snapshot`]).
//!
//! Every adapter (Qovery, Kubernetes, the sandbox) produces this one model, and `decide`
//! reads nothing else. A snapshot is also a file format: `curfew plan --snapshot FILE`
//! reads it as JSON.

pub mod kubernetes;
mod overrides;
pub mod qovery;

pub use overrides::{LabelOverrides, LabelSnooze, PROTECT_LABEL, SNOOZE_LABEL, protects};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Everything listed from a platform in one pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Snapshot {
    /// The environments, in the platform's order.
    pub environments: Vec<Environment>,
    /// False when any part of the listing failed: curfew then deletes nothing this pass.
    #[serde(default = "yes")]
    pub complete: bool,
}

/// A snapshot as a file holds it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    environments: Vec<Environment>,
    #[serde(default = "yes")]
    complete: bool,
}

/// Read from a file: each environment's labels are read into its overrides, as an adapter
/// does when it lists.
impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Snapshot, D::Error> {
        let SnapshotFile {
            mut environments,
            complete,
        } = SnapshotFile::deserialize(deserializer)?;
        for env in &mut environments {
            env.overrides = LabelOverrides::of_labels(&env.labels);
        }
        Ok(Snapshot {
            environments,
            complete,
        })
    }
}

fn yes() -> bool {
    true
}

fn no_project() -> Arc<str> {
    Arc::from("")
}

/// One shared copy of each word seen (project, cluster and state names repeat across
/// thousands of environments).
#[derive(Debug, Default)]
pub struct Words(std::collections::HashSet<Arc<str>>);

impl Words {
    /// The shared copy of `word`, made on first sight.
    pub fn get(&mut self, word: impl AsRef<str> + Into<Arc<str>>) -> Arc<str> {
        if let Some(shared) = self.0.get(word.as_ref()) {
            return shared.clone();
        }
        let shared: Arc<str> = word.into();
        self.0.insert(shared.clone());
        shared
    }
}

tokio::task_local! {
    /// Set while the calls made are ones a person waits on ([`for_a_person`]).
    static FOR_A_PERSON: ();
}

/// Runs `f` as platform calls a person waits on (a wake by request: someone is looking at
/// a waiting page): an adapter may send them ahead of a pass's batch of calls (Qovery: they
/// do not queue behind the pass's spent rate limit, but go under a small rate of their own).
pub async fn for_a_person<F: std::future::Future>(f: F) -> F::Output {
    FOR_A_PERSON.scope((), f).await
}

/// Whether the calls being made now are ones a person waits on ([`for_a_person`]).
pub fn is_for_a_person() -> bool {
    FOR_A_PERSON.try_with(|_| ()).is_ok()
}

/// One environment (a Qovery environment, a Kubernetes namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
///
/// Its words are shared (`Arc<str>`): a pass's decisions point at the listing's ids, names
/// and projects instead of copying them, and the environments of one project, cluster or
/// state share one copy of its name.
pub struct Environment {
    pub id: Arc<str>,
    pub name: Arc<str>,
    /// Project name (Qovery project; a label on Kubernetes).
    #[serde(default = "no_project")]
    pub project: Arc<str>,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Arc<str>>,
    pub state: EnvState,
    /// The platform's own word for the state (`DEPLOYED`, `STOP_QUEUED`, …), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_state: Option<Arc<str>>,
    pub created_at: DateTime<Utc>,
    /// Last deployment, the idle clock's main signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deployed_at: Option<DateTime<Utc>>,
    /// Last activity other than a deployment (traffic), where the platform reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Cost per hour while running, where the platform lets curfew compute it: what a
    /// stop saves, so nothing in `unstoppable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_cost: Option<f64>,
    /// What runs in the environment that stopping it does not stop, for people (Kubernetes:
    /// pods that no Deployment, StatefulSet or CronJob curfew scales explains, such as
    /// "2 pods of Rollout/web"). While it is set the environment is in use whatever its
    /// state says, and is never deleted for having been stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unstoppable: Option<Arc<str>>,
    /// What owns its workloads and may put a stop back, and whether curfew pauses it, for
    /// people (Kubernetes: an Argo CD Application or a Flux Kustomization or HelmRelease):
    /// `plan` and `explain` say it before the first stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<Arc<str>>,
    /// The owners that would put a stop back, each with the rule settings (`gitops:`) under
    /// which curfew pauses it first: under any other, `plan` warns that the stop will be
    /// reverted (Kubernetes: Argo CD Applications, Flux Kustomizations and HelmReleases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverters: Vec<Reverter>,
    /// Who put it back up since curfew stopped it, and when, where the platform can tell
    /// (Kubernetes: the `managedFields` manager of a workload curfew stopped that runs
    /// again, such as `argocd-controller`). Boxed: `None` for nearly every environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted: Option<Box<Revert>>,
    /// When curfew stopped it, by the platform's own record of the stop, while that record
    /// says curfew has it stopped (Kubernetes: the workloads' `curfew.dev/stopped-at`): a
    /// replica whose ledger did not see the stop (the new leader after a failover) takes
    /// it as curfew's, so that its savings count and its start comes at the next boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by_curfew_at: Option<DateTime<Utc>>,
    /// What its labels ask of curfew, read where it was listed (`None`: nothing, the usual
    /// case, kept small for a listing of thousands).
    #[serde(skip)]
    #[schemars(skip)]
    pub overrides: Option<Box<LabelOverrides>>,
}

/// A stop put back by someone other than curfew (see [`Environment::reverted`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revert {
    /// Who: the field manager that set the replicas back (`argocd-controller (Update)`,
    /// `kubectl-scale (Update)`), or `someone` when the object does not say.
    pub by: Arc<str>,
    /// When, if the object says (the time of that manager's last change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// How many of the parts curfew stopped are still stopped, when only some were put
    /// back (Kubernetes: workloads still at 0 with curfew's record on them). While there
    /// are some, the environment runs only in part: the schedule's next running time
    /// starts the rest.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub still_stopped: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An owner of an environment's workloads that would put a stop back (see
/// [`Environment::reverters`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reverter {
    /// The owner and how it reverts, for people: `Argo CD Application argocd/shop-pr-1
    /// (automated sync with self-heal)`.
    pub owner: Arc<str>,
    /// The rule settings under which curfew pauses it before a stop; empty when none does
    /// (an Application whose ApplicationSet puts its sync policy back).
    #[serde(default)]
    pub paused_under: Vec<GitOps>,
}

impl Environment {
    /// What its labels ask of curfew.
    pub fn overrides(&self) -> &LabelOverrides {
        static NONE: LabelOverrides = LabelOverrides {
            protected: false,
            snooze: None,
        };
        self.overrides.as_deref().unwrap_or(&NONE)
    }
}

/// Qovery's environment modes; Kubernetes namespaces take theirs from a label.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Production,
    Staging,
    Development,
    Preview,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::Production,
        Mode::Staging,
        Mode::Development,
        Mode::Preview,
    ];

    /// The lower-case name used in rule files and snapshots.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Production => "production",
            Mode::Staging => "staging",
            Mode::Development => "development",
            Mode::Preview => "preview",
        }
    }

    /// Parses a mode in any case (`PREVIEW` as Qovery writes it, `preview` as we do).
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// Read in any case, as the docs promise: a snapshot saved from Qovery says `PREVIEW`.
impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Mode::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown mode {text:?}; expected production, staging, development or preview (any case)"
            ))
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state curfew reasons about. Adapters map their platform's states onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvState {
    /// Up and costing money (Qovery `DEPLOYED`).
    Running,
    /// Down (Qovery `STOPPED`).
    Stopped,
    /// Being deployed, started, restarted or built.
    Starting,
    /// Being stopped.
    Stopping,
    /// Being deleted.
    Deleting,
    /// A deployment, stop or delete failed; people should look.
    Error,
    /// Anything else (a state the platform added after this release, say).
    Unknown,
}

impl EnvState {
    /// Whether the environment is settled (running or stopped) and may be acted on.
    pub fn is_settled(self) -> bool {
        matches!(self, EnvState::Running | EnvState::Stopped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EnvState::Running => "running",
            EnvState::Stopped => "stopped",
            EnvState::Starting => "starting",
            EnvState::Stopping => "stopping",
            EnvState::Deleting => "deleting",
            EnvState::Error => "error",
            EnvState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for EnvState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a stop does to the GitOps tool that owns an environment's workloads (an Argo CD
/// Application, a Flux Kustomization or HelmRelease), which would otherwise put them back:
/// a rule's `gitops:`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum GitOps {
    /// Pause every owner that would put the workloads back (Argo CD's automated sync,
    /// Flux's reconciliation) for the night, and resume it exactly on start.
    #[default]
    Pause,
    /// Pause only the owners that undo a change between syncs: an Argo CD Application
    /// with self-heal on, a Flux Kustomization, a HelmRelease with drift detection on.
    SelfHealOnly,
    /// Leave the owners alone (curfew then does not fight them: see the revert detection).
    Off,
}

impl GitOps {
    /// As written in the rule file.
    pub fn as_str(self) -> &'static str {
        match self {
            GitOps::Pause => "pause",
            GitOps::SelfHealOnly => "self-heal-only",
            GitOps::Off => "off",
        }
    }
}

/// A platform curfew acts on. Adapters: [`qovery::Qovery`] (also used against the sandbox)
/// and [`kubernetes::Kubernetes`].
#[async_trait::async_trait]
pub trait Platform: Send + Sync {
    /// Short name for metrics and logs (`qovery`, `sandbox`).
    fn name(&self) -> &'static str;
    /// Lists every environment with its state. A listing that failed for a part of the
    /// platform comes back with `complete: false`; one that failed as a whole is an error.
    async fn list(&self) -> Result<Snapshot, PlatformError>;
    /// The environment `id` alone, read fresh from the platform (a wake reads it right
    /// before acting, instead of listing the fleet); `None` when the platform has it no
    /// more. By default, from a whole listing.
    async fn environment(&self, id: &str) -> Result<Option<Environment>, PlatformError> {
        Ok(self
            .list()
            .await?
            .environments
            .into_iter()
            .find(|e| &*e.id == id))
    }
    /// Asks the platform to stop an environment.
    async fn stop(&self, id: &str) -> Result<Outcome, PlatformError>;
    /// Stops an environment under a rule that says what to do with the GitOps tools that
    /// own it (see [`GitOps`]). Platforms without such owners just stop it.
    async fn stop_under(&self, id: &str, _gitops: GitOps) -> Result<Outcome, PlatformError> {
        self.stop(id).await
    }
    /// Asks the platform to start (deploy) an environment.
    async fn start(&self, id: &str) -> Result<Outcome, PlatformError>;
    /// Asks the platform to delete an environment.
    async fn delete(&self, id: &str) -> Result<Outcome, PlatformError>;
    /// Whether the environment `id` serves requests yet, and at which URL. By default the
    /// platform knows no URL and never says ready.
    async fn serving(&self, _id: &str) -> Result<Serving, PlatformError> {
        Ok(Serving::default())
    }
    /// Every URL the environment `id` serves people on (wake on request maps a request's
    /// host to its environment with these). By default the platform knows none.
    async fn links(&self, _id: &str) -> Result<Vec<String>, PlatformError> {
        Ok(Vec::new())
    }
    /// Tells the environment's owners something where they look, if the platform has such
    /// a place (Kubernetes: a Warning Event on the namespace). For warnings such as "to be
    /// deleted at T"; `reason` is CamelCase (`DeleteWarning`). Best effort: it never fails,
    /// and by default it does nothing.
    async fn note(&self, _id: &str, _reason: &str, _message: &str) {}
    /// Has the platform's own notices (a Kubernetes Stopped Event) carry signed action
    /// links. By default there are no such notices, and this does nothing.
    fn set_links(&self, _links: Arc<dyn ActionLinks>) {}
}

/// The notice a signed action link is put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A delete is coming (a Slack or webhook message, a Kubernetes Event).
    DeleteWarning,
    /// curfew stopped the environment (a Kubernetes Event).
    Stopped,
    /// A daily digest's line about a coming delete.
    Digest,
}

/// One signed link: what it does, in words, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionLink {
    /// `keep 4 h`, `wake now`, `delay the delete by 2 days`…
    pub label: String,
    pub url: String,
}

/// Signed action links for the notices about one environment: each lets whoever holds it
/// keep, wake or delay that environment once, without a login. They are made by the status
/// page's signer (`crate::ui::links`); adapters and notifiers only put them where people
/// read. Never made for production environments.
pub trait ActionLinks: Send + Sync {
    /// The links a `notice` about the environment `id` (of `mode`) sent to `target` carries,
    /// made at `now`; empty when it may have none.
    fn links(
        &self,
        id: &str,
        mode: Mode,
        notice: NoticeKind,
        target: &str,
        now: DateTime<Utc>,
    ) -> Vec<ActionLink>;
}

/// Links as one line of plain text, for a Kubernetes Event's note or a plain message:
/// `keep 4 h: URL · wake now: URL`.
pub fn links_text(links: &[ActionLink]) -> String {
    links
        .iter()
        .map(|l| format!("{}: {}", l.label, l.url))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Where an environment serves people, and whether it serves yet (wake on request).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Serving {
    /// The environment's own URL, if the platform knows one.
    pub url: Option<String>,
    /// Ready to serve: started and answering.
    pub ready: bool,
}

/// How the platform took an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The platform accepted the request (it may take a while to finish).
    Accepted,
    /// Already in the asked state, or busy with an operation (Qovery's 409): not a failure;
    /// the next pass looks again.
    AlreadyThereOrBusy,
    /// The environment no longer exists.
    Gone,
}

/// Unit prices to turn CPU and memory into an hourly cost (the rule file's
/// `defaults.prices`), for the adapters that can read what an environment asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    pub vcpu_hour: Option<f64>,
    pub gib_hour: Option<f64>,
}

/// Sees every HTTP request an adapter makes (the daemon counts them in metrics).
pub trait RequestObserver: Send + Sync {
    /// `endpoint` is a bounded label, the adapter's name for the call (`list_status`,
    /// `stop`…); `status` an HTTP code or `timeout`/`network`.
    fn request(&self, endpoint: &'static str, status: &str, elapsed: Duration);
}

/// Which operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    List,
    Stop,
    Start,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::List => "list",
            Operation::Stop => "stop",
            Operation::Start => "start",
            Operation::Delete => "delete",
        }
    }
}

/// A platform call that failed. Never holds a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{platform} {}: {message}{}", operation.as_str(), if *retryable { " (retryable)" } else { "" })]
pub struct PlatformError {
    pub platform: &'static str,
    pub operation: Operation,
    /// Whether trying again later may succeed (timeouts, 5xx, 429).
    pub retryable: bool,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_modes_in_any_case_and_names_an_unknown_one() {
        let env = |mode: &str| {
            format!(
                r#"{{"environments": [{{"id": "e1", "name": "pr-1", "mode": "{mode}", "state": "running", "created_at": "2026-11-24T09:12:00Z"}}]}}"#
            )
        };
        for written in ["PREVIEW", "preview", "Preview"] {
            let s: Snapshot = serde_json::from_str(&env(written)).unwrap();
            assert_eq!(s.environments[0].mode, Mode::Preview, "{written}");
        }
        let err = serde_json::from_str::<Snapshot>(&env("PREVEIW")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "unknown mode \"PREVEIW\"; expected production, staging, development or preview (any case)"
            ),
            "{err}"
        );
        // Written back as the rule file writes it.
        assert_eq!(
            serde_json::to_string(&Mode::Preview).unwrap(),
            "\"preview\""
        );
    }

    #[test]
    fn a_word_seen_again_is_the_first_copy() {
        let mut words = Words::default();
        let first = words.get("eu-west-3");
        let again = words.get(String::from("eu-west-3"));
        let other = words.get("us-east-1");
        assert!(Arc::ptr_eq(&first, &again));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!((&*again, &*other), ("eu-west-3", "us-east-1"));
    }
}
