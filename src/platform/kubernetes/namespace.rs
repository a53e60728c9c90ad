//! From a namespace and what runs in it to an [`Environment`]. Pure.
//!
//! The policy reads protection and snoozes from `Environment.labels`; Kubernetes keeps
//! such things in annotations (a label value cannot hold a timestamp's `:`), and teams
//! coming from kube-downscaler have theirs already. So the labels curfew sees are the
//! namespace's labels, plus, from labels or annotations:
//!
//! | on the namespace                                  | curfew sees                          |
//! | ------------------------------------------------- | ------------------------------------ |
//! | `curfew.dev/protect: "true"`                      | `curfew.dev/protect=true`            |
//! | `downscaler/exclude: "true"`                      | `curfew.dev/protect=true`            |
//! | `curfew.dev/snooze-until: <instant>`              | `curfew.dev/snooze-until=<RFC 3339>` |
//! | `downscaler/exclude-until: <instant>`             | `curfew.dev/snooze-until=<RFC 3339>` |
//!
//! When both snoozes are set, the later instant wins.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Namespace;

use super::leader::from_jiff;
use super::workload::{Kind, Workload};
use crate::platform::qovery::Prices;
use crate::platform::{EnvState, Environment, Mode};
use crate::policy::{PROTECT_LABEL, SNOOZE_LABEL};
use crate::schedule::parse_expiry;

/// kube-downscaler's opt-out of a namespace (or a workload).
pub const DOWNSCALER_EXCLUDE: &str = "downscaler/exclude";
/// kube-downscaler's opt-out until an instant.
pub const DOWNSCALER_EXCLUDE_UNTIL: &str = "downscaler/exclude-until";

/// How namespaces map onto environments (from the settings).
#[derive(Debug, Clone)]
pub struct Mapping {
    pub project_label: String,
    pub mode_label: String,
    pub default_mode: Mode,
    /// Shared by every namespace's environment.
    pub cluster: Option<Arc<str>>,
    pub prices: Prices,
}

/// What was found in a namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    pub workloads: Vec<Workload>,
    /// Newest ReplicaSet or ControllerRevision: the last rollout.
    pub last_rollout: Option<DateTime<Utc>>,
}

/// The environment a namespace is. `contents` is None when its workloads could not be
/// listed (the state is then unknown, and curfew leaves it alone this pass);
/// `last_activity` comes from the traffic query.
pub fn environment(
    ns: &Namespace,
    contents: Option<&Contents>,
    mapping: &Mapping,
    last_activity: Option<DateTime<Utc>>,
) -> Environment {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    let annotations = ns.metadata.annotations.clone().unwrap_or_default();
    let mode = match labels.get(&mapping.mode_label) {
        None => mapping.default_mode,
        Some(text) => Mode::parse(text).unwrap_or_else(|| {
            // An unreadable mode is taken as production: never deleted, protected by default.
            tracing::warn!(namespace = %name, label = %mapping.mode_label, value = %text, "unknown mode; taken as production");
            Mode::Production
        }),
    };
    let (state, platform_state) = state(ns, contents);
    let name: Arc<str> = name.into();
    Environment {
        id: name.clone(),
        name,
        project: labels
            .get(&mapping.project_label)
            .map_or_else(|| Arc::from(""), |p| Arc::from(p.as_str())),
        mode,
        cluster: mapping.cluster.clone(),
        state,
        platform_state: Some(platform_state.into()),
        created_at: ns
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| from_jiff(t.0))
            .unwrap_or(DateTime::UNIX_EPOCH),
        last_deployed_at: contents.and_then(|c| c.last_rollout),
        last_activity_at: last_activity,
        labels: policy_labels(&labels, &annotations),
        hourly_cost: contents.and_then(|c| hourly_cost(&c.workloads, mapping.prices)),
    }
}

/// Terminating, unknown, running (anything asks to run), stopping (nothing asks to run,
/// pods remain) or stopped.
fn state(ns: &Namespace, contents: Option<&Contents>) -> (EnvState, String) {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return (EnvState::Deleting, "Terminating".into());
    }
    let Some(contents) = contents else {
        return (EnvState::Unknown, "Active; workloads not listed".into());
    };
    let managed: Vec<&Workload> = contents
        .workloads
        .iter()
        .filter(|w| !w.excluded())
        .collect();
    let running = managed.iter().filter(|w| w.wants_to_run()).count();
    let by_curfew = managed.iter().any(|w| w.recorded().is_some());
    let pods: i32 = managed
        .iter()
        .filter(|w| w.kind != Kind::CronJob)
        .map(|w| w.pods)
        .sum();
    if running > 0 {
        let total = managed.len();
        (
            EnvState::Running,
            format!("Active; {running} of {total} workloads running"),
        )
    } else if pods > 0 {
        (
            EnvState::Stopping,
            format!("Active; scaled to zero, {pods} pods left"),
        )
    } else if by_curfew {
        (EnvState::Stopped, "Active; scaled to zero by curfew".into())
    } else {
        (EnvState::Stopped, "Active; nothing running".into())
    }
}

/// Σ pods' requests × unit prices, for the replicas each workload runs with. None when the
/// file gives no unit price (the rule's `hourly_cost` is used instead).
pub fn hourly_cost(workloads: &[Workload], prices: Prices) -> Option<f64> {
    if prices.vcpu_hour.is_none() && prices.gib_hour.is_none() {
        return None;
    }
    let cost = workloads
        .iter()
        .filter(|w| !w.excluded())
        .map(|w| {
            f64::from(w.running_replicas())
                * (w.requests.cpu * prices.vcpu_hour.unwrap_or(0.0)
                    + w.requests.memory_gib * prices.gib_hour.unwrap_or(0.0))
        })
        .sum::<f64>();
    Some(cost)
}

/// The namespace's labels with protection and snoozes folded in (see the module's table).
pub fn policy_labels(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    let either = |key: &str| {
        [labels.get(key), annotations.get(key)]
            .into_iter()
            .flatten()
    };
    let is_true = |v: &String| v.trim().eq_ignore_ascii_case("true");
    if either(PROTECT_LABEL).any(is_true) || either(DOWNSCALER_EXCLUDE).any(is_true) {
        out.insert(PROTECT_LABEL.into(), "true".into());
    }
    let ours: Vec<&String> = either(SNOOZE_LABEL).collect();
    let until = ours
        .iter()
        .filter_map(|v| parse_expiry(v).ok())
        .chain(either(DOWNSCALER_EXCLUDE_UNTIL).filter_map(|v| downscaler_instant(v)))
        .max();
    match (until, ours.first()) {
        (Some(t), _) => {
            out.insert(
                SNOOZE_LABEL.into(),
                t.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
        }
        // Unreadable: passed on, so that `curfew explain` says it was ignored and why.
        (None, Some(raw)) => {
            out.insert(SNOOZE_LABEL.into(), (*raw).clone());
        }
        (None, None) => {}
    }
    out
}

/// kube-downscaler's `exclude-until` formats (`%Y-%m-%dT%H:%M:%SZ`, `%Y-%m-%dT%H:%M`,
/// `%Y-%m-%d %H:%M`, `%Y-%m-%d`, all UTC), and RFC 3339 as GoKubeDownscaler writes it.
/// kube-downscaler ignores a value it cannot read; so does curfew.
fn downscaler_instant(text: &str) -> Option<DateTime<Utc>> {
    parse_expiry(text).ok().or_else(|| {
        NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M")
            .ok()
            .map(|t| t.and_utc())
    })
}
