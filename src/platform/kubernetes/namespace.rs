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
use super::pods::{Owner, Running};
use super::workload::{PodRequests, STOPPED_AT, Workload};
use crate::platform::{
    EnvState, Environment, LabelOverrides, LabelSnooze, Mode, PROTECT_LABEL, Prices, Revert,
    SNOOZE_LABEL, protects,
};
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

/// Namespaces curfew never treats as environments, whatever the selector says (as
/// GoKubeDownscaler excludes them): the cluster's own, and `default`. curfew's own
/// namespace is excluded too (see `KubernetesOptions::own_namespace`).
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["kube-system", "kube-public", "kube-node-lease", "default"];

/// What was found in a namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    pub workloads: Vec<Workload>,
    /// Newest ReplicaSet or ControllerRevision: the last rollout.
    pub last_rollout: Option<DateTime<Utc>>,
    /// The active pods, and what runs each.
    pub pods: Vec<Running>,
}

impl Contents {
    /// The last deployment: the last rollout, or a workload put back since curfew stopped
    /// it (a GitOps sync, a person: someone is at work on it).
    fn last_deployed(&self) -> Option<DateTime<Utc>> {
        self.workloads
            .iter()
            .filter(|w| w.scaled_back().is_some())
            .filter_map(|w| w.replicas_set_by.as_ref().and_then(|(_, t)| *t))
            .chain(self.last_rollout)
            .max()
    }

    /// The first of curfew's stops put back here (a workload curfew stopped that runs
    /// again, curfew's record still on it): who, and when, as its `managedFields` say.
    /// `still_stopped` counts the workloads curfew stopped that are still at 0, its record on
    /// them, when only some were put back.
    fn reverted(&self) -> Option<Revert> {
        let managed = || self.workloads.iter().filter(|w| w.managed());
        let first = managed()
            .filter_map(|w| {
                let by = w.scaled_back()?;
                let at = w.replicas_set_by.as_ref().and_then(|(_, t)| *t);
                Some((by, at))
            })
            // The earliest known time first: savings end there.
            .min_by_key(|(_, at)| (at.is_none(), *at))?;
        let still_stopped = managed()
            .filter(|w| w.recorded().is_some() && !w.wants_to_run())
            .count();
        Some(Revert {
            by: first.0.into(),
            at: first.1,
            still_stopped: u32::try_from(still_stopped).unwrap_or(u32::MAX),
        })
    }

    /// Pods running whatever curfew does, by what runs them (`Rollout/web`), with their
    /// count and requests. Excluded workloads' pods are left out: their owners chose so.
    fn unstoppable(&self) -> BTreeMap<String, (usize, PodRequests)> {
        let mut out: BTreeMap<String, (usize, PodRequests)> = BTreeMap::new();
        for pod in &self.pods {
            let label = match &pod.owner {
                Owner::Other(label) => label.clone(),
                Owner::Rollout(_) => continue,
                Owner::Workload(i) => match self.workloads.get(*i) {
                    Some(w) if !w.excluded() => match w.not_stopped() {
                        Some(why) => format!("{}/{} ({why})", w.kind.plural(), w.name),
                        None => continue,
                    },
                    _ => continue,
                },
            };
            let entry = out.entry(label).or_default();
            entry.0 += 1;
            entry.1 = entry.1 + pod.requests;
        }
        out
    }

    /// Pods of curfew's workloads that are scaled to zero, still there.
    fn pods_left(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| match p.owner {
                Owner::Workload(i) => self
                    .workloads
                    .get(i)
                    .is_some_and(|w| w.managed() && !w.wants_to_run()),
                Owner::Rollout(_) | Owner::Other(_) => false,
            })
            .count()
    }

    /// The Rollouts whose pods run here (`Rollout/web`), each with its pod count: stopped
    /// through their Scale with the rest.
    fn rollouts(&self) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for pod in &self.pods {
            if let Owner::Rollout(label) = &pod.owner {
                *out.entry(label.as_str()).or_default() += 1;
            }
        }
        out
    }
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
    let no_annotations = BTreeMap::new();
    let annotations = ns.metadata.annotations.as_ref().unwrap_or(&no_annotations);
    let mode = match labels.get(&mapping.mode_label) {
        None => mapping.default_mode,
        Some(text) => Mode::parse(text).unwrap_or_else(|| {
            // An unreadable mode is taken as production: never deleted, protected by default.
            tracing::warn!(namespace = %name, label = %mapping.mode_label, value = %text, "unknown mode; taken as production");
            Mode::Production
        }),
    };
    let (state, platform_state) = state(ns, contents);
    let overrides = overrides(&labels, annotations);
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
        last_deployed_at: contents.and_then(Contents::last_deployed),
        last_activity_at: last_activity,
        hourly_cost: contents.and_then(|c| hourly_cost(c, state, mapping.prices)),
        unstoppable: contents
            .and_then(|c| unstoppable(c, mapping.prices))
            .map(Arc::from),
        owners: None,
        reverters: Vec::new(),
        reverted: contents.and_then(Contents::reverted).map(Box::new),
        stopped_by_curfew_at: contents.and_then(|c| stopped_by_curfew_at(c, state)),
        labels: with_overrides(labels, &overrides),
        overrides: overrides.boxed(),
    }
}

/// When curfew stopped the namespace, by its records on the workloads (the latest
/// `curfew.dev/stopped-at` of those it recorded), while it is stopped.
fn stopped_by_curfew_at(contents: &Contents, state: EnvState) -> Option<DateTime<Utc>> {
    if state != EnvState::Stopped {
        return None;
    }
    contents
        .workloads
        .iter()
        .filter(|w| w.managed() && w.recorded().is_some())
        .filter_map(|w| w.annotations.get(STOPPED_AT))
        .filter_map(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
        .max()
}

/// Being deleted.
pub fn terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

/// Deleting (with what holds the namespace up), unknown, running (anything curfew stops
/// asks to run), stopping (pods of what it stopped remain), stopped, or unknown when pods
/// that curfew cannot stop run and it stopped nothing here.
fn state(ns: &Namespace, contents: Option<&Contents>) -> (EnvState, String) {
    if terminating(ns) {
        return (EnvState::Deleting, terminating_words(ns, contents));
    }
    let Some(contents) = contents else {
        return (EnvState::Unknown, "Active; workloads not listed".into());
    };
    let managed: Vec<&Workload> = contents.workloads.iter().filter(|w| w.managed()).collect();
    let running = managed.iter().filter(|w| w.wants_to_run()).count();
    let by_curfew = managed.iter().any(|w| w.recorded().is_some());
    let left = contents.pods_left();
    let unstoppable = !contents.unstoppable().is_empty();
    let rollouts = contents.rollouts();
    if running > 0 || !rollouts.is_empty() {
        let total = managed.len();
        let mut words = format!("Active; {running} of {total} workloads running");
        for (rollout, pods) in &rollouts {
            words.push_str(&format!(
                "; {pods} pod{} of {rollout} (scaled through its Scale)",
                if *pods == 1 { "" } else { "s" }
            ));
        }
        for w in &managed {
            if let Some(by) = w.scaled_back() {
                words.push_str(&format!(
                    "; {}/{} scaled back to {} by {by} after curfew stopped it",
                    w.kind.plural(),
                    w.name,
                    w.replicas
                ));
            }
        }
        (EnvState::Running, words)
    } else if left > 0 {
        (
            EnvState::Stopping,
            format!("Active; scaled to zero, {left} pods left"),
        )
    } else if unstoppable && by_curfew {
        (
            EnvState::Stopped,
            "Active; scaled to zero by curfew, but pods it cannot stop run".into(),
        )
    } else if unstoppable {
        // Nothing curfew could stop or start here, and it cannot tell whether what runs is
        // in use: left alone, never deleted.
        (
            EnvState::Unknown,
            "Active; nothing curfew stops runs, but pods it cannot stop do".into(),
        )
    } else if by_curfew {
        (EnvState::Stopped, "Active; scaled to zero by curfew".into())
    } else {
        (EnvState::Stopped, "Active; nothing running".into())
    }
}

/// "Terminating since T; NamespaceFinalizersRemaining: …; 2 pods left": what a namespace
/// stuck in Terminating waits for, from its conditions (set by the namespace controller).
fn terminating_words(ns: &Namespace, contents: Option<&Contents>) -> String {
    let mut words = String::from("Terminating");
    if let Some(since) = ns
        .metadata
        .deletion_timestamp
        .as_ref()
        .and_then(|t| from_jiff(t.0))
    {
        words.push_str(&format!(
            " since {}",
            since.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    let conditions = ns.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conditions
        .into_iter()
        .flatten()
        .filter(|c| c.status == "True")
    {
        words.push_str(&format!(
            "; {}: {}",
            c.type_,
            c.message.as_deref().unwrap_or_default()
        ));
    }
    if let Some(c) = contents.filter(|c| !c.pods.is_empty()) {
        words.push_str(&format!("; {} pods left", c.pods.len()));
    }
    words
}

fn price(requests: PodRequests, prices: Prices) -> f64 {
    requests.cpu * prices.vcpu_hour.unwrap_or(0.0)
        + requests.memory_gib * prices.gib_hour.unwrap_or(0.0)
}

/// What a stop saves per hour: Σ over the workloads curfew stops of the replicas each runs
/// with × what one of its pods asks for (its running pods' mean, which holds what the API
/// server added to the template; the template when none runs). A namespace being deleted
/// costs what its pods left ask for. None when the file gives no unit price (the rule's
/// `hourly_cost` is used instead).
pub fn hourly_cost(contents: &Contents, state: EnvState, prices: Prices) -> Option<f64> {
    if prices.vcpu_hour.is_none() && prices.gib_hour.is_none() {
        return None;
    }
    if state == EnvState::Deleting {
        return Some(
            contents
                .pods
                .iter()
                .map(|p| price(p.requests, prices))
                .sum(),
        );
    }
    let cost = contents
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.managed())
        .map(|(i, w)| {
            let pods: Vec<PodRequests> = contents
                .pods
                .iter()
                .filter(|p| p.owner == Owner::Workload(i))
                .map(|p| p.requests)
                .collect();
            let per_pod = match pods.len() {
                0 => w.requests,
                n => {
                    let sum = pods.into_iter().fold(PodRequests::default(), |a, b| a + b);
                    PodRequests {
                        cpu: sum.cpu / n as f64,
                        memory_gib: sum.memory_gib / n as f64,
                    }
                }
            };
            f64::from(w.running_replicas()) * price(per_pod, prices)
        })
        .sum::<f64>();
    // Rollouts are not listed: what their pods ask for while they run.
    let rollouts = contents
        .pods
        .iter()
        .filter(|p| matches!(p.owner, Owner::Rollout(_)))
        .map(|p| price(p.requests, prices))
        .sum::<f64>();
    Some(cost + rollouts)
}

/// "3 pods: Rollout/web ×2, DaemonSet/agent ×1; they ask for 1.50 vCPU and 3.00 GiB
/// (0.0750 an hour at the file's prices)", or None when every pod is curfew's to stop.
fn unstoppable(contents: &Contents, prices: Prices) -> Option<String> {
    let groups = contents.unstoppable();
    if groups.is_empty() {
        return None;
    }
    let count: usize = groups.values().map(|(n, _)| n).sum();
    let total = groups
        .values()
        .fold(PodRequests::default(), |a, (_, r)| a + *r);
    let list: Vec<String> = groups
        .iter()
        .map(|(label, (n, _))| format!("{label} ×{n}"))
        .collect();
    let mut text = format!(
        "{count} pod{} that curfew does not stop: {}; they ask for {:.2} vCPU and {:.2} GiB",
        if count == 1 { "" } else { "s" },
        list.join(", "),
        total.cpu,
        total.memory_gib
    );
    if prices.vcpu_hour.is_some() || prices.gib_hour.is_some() {
        text.push_str(&format!(
            " ({:.4} an hour at the file's prices)",
            price(total, prices)
        ));
    }
    Some(text)
}

/// A namespace selector that requires no label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the namespace selector \"{0}\" requires no label: it chooses every namespace that lacks one, every application namespace of the cluster among them (a preview by default, so deletable); require a label your preview namespaces carry, such as curfew.dev/preview=true"
)]
pub struct NoLabelRequired(pub String);

/// Refuses a selector that requires no label (`!label`, `team notin (a)`, `tier!=prod`):
/// it chooses every namespace without that label, every unlabelled application namespace
/// of the cluster among them, each a preview by default (deletable).
pub fn selector_requires_a_label(selector: &str) -> Result<(), NoLabelRequired> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    let positive = terms.iter().map(|t| t.trim()).any(|t| {
        let negative =
            t.starts_with('!') || t.contains("!=") || t.split_whitespace().nth(1) == Some("notin");
        !t.is_empty() && !negative
    });
    if positive {
        Ok(())
    } else {
        Err(NoLabelRequired(selector.to_string()))
    }
}

/// What a namespace's labels and annotations ask of curfew (see the module's table):
/// protected by curfew's label or kube-downscaler's `exclude`; snoozed until the latest of
/// curfew's `snooze-until` and kube-downscaler's `exclude-until`.
pub fn overrides(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> LabelOverrides {
    let either = |key: &str| {
        [labels.get(key), annotations.get(key)]
            .into_iter()
            .flatten()
            .map(String::as_str)
    };
    let protected = either(PROTECT_LABEL).any(protects) || either(DOWNSCALER_EXCLUDE).any(protects);
    let ours = LabelSnooze::latest(either(SNOOZE_LABEL));
    let downscaler = either(DOWNSCALER_EXCLUDE_UNTIL)
        .filter_map(downscaler_instant)
        .max();
    let snooze = match (ours, downscaler) {
        (Some(LabelSnooze::Until(t)), Some(d)) => Some(LabelSnooze::Until(t.max(d))),
        // kube-downscaler's instant beats a value of ours that is none.
        (_, Some(d)) => Some(LabelSnooze::Until(d)),
        (ours, None) => ours,
    };
    LabelOverrides { protected, snooze }
}

/// The namespace's labels with what `overrides` found written in as curfew's labels (so a
/// `label:` selector on them fits, and `explain` shows them): `curfew.dev/protect: "true"`,
/// and `curfew.dev/snooze-until` as an RFC 3339 instant (or, unreadable, as written).
pub fn with_overrides(
    mut labels: BTreeMap<String, String>,
    overrides: &LabelOverrides,
) -> BTreeMap<String, String> {
    if overrides.protected {
        labels.insert(PROTECT_LABEL.into(), "true".into());
    }
    if let Some(snooze) = &overrides.snooze {
        labels.insert(SNOOZE_LABEL.into(), snooze.label_value());
    }
    labels
}

/// The namespace's labels with protection and snoozes folded in (see the module's table),
/// as [`environment`] gives them.
#[cfg(test)]
pub fn policy_labels(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    with_overrides(labels.clone(), &overrides(labels, annotations))
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
