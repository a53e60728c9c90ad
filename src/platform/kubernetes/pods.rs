//! The pods of a namespace: what runs, what explains it, and what it asks for.
//!
//! One full list of the namespace's pods per pass gives both what a metadata-only list
//! would (each pod's owner) and what it cannot (each pod's requests, as the API server
//! stored them: LimitRange defaults, requests defaulted from limits, injected sidecars,
//! runtime overhead). Pods are read into [`Pod`], which keeps only those fields, not into
//! k8s-openapi's `Pod`: a pod's JSON is mostly what curfew does not read (managedFields,
//! env, volumes, status).
//!
//! A pod is explained by a workload curfew reads when its controller is one of them: a
//! ReplicaSet whose controller is one of the namespace's Deployments, a StatefulSet, or a
//! Job listed as running by one of its CronJobs. Any other pod (an Argo Rollout's, a
//! CloudNativePG or Strimzi cluster's, a DaemonSet's, a Job's, a bare pod) runs whatever
//! curfew does.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Deserialize;

use super::workload::{Kind, PodRequests, Workload, container_requests, effective_requests};

/// A pod, as far as curfew reads it: folded as it is read (serde's `from`), so that
/// neither a list nor the watch cache keeps a pod's containers, only what they ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "PodObject")]
pub struct Pod {
    name: String,
    /// Read by the watch cache (`cache.rs`), which keeps pods by namespace.
    namespace: String,
    resource_version: Option<String>,
    /// Its controller (or first owner): kind and name.
    controller: Option<(String, String)>,
    /// Pending or running: a pod that succeeded or failed holds no resources.
    active: bool,
    requests: PodRequests,
}

/// A pod's JSON, as far as curfew reads it.
#[derive(Debug, Clone, Default, Deserialize)]
struct PodObject {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
    #[serde(default)]
    overhead: Option<BTreeMap<String, Quantity>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    #[serde(default)]
    resources: Option<ResourceRequirements>,
    #[serde(default)]
    restart_policy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Status {
    #[serde(default)]
    phase: Option<String>,
}

impl From<PodObject> for Pod {
    fn from(pod: PodObject) -> Pod {
        let of = |c: &Container| container_requests(c.resources.as_ref());
        let requests = effective_requests(
            pod.spec.containers.iter().map(of),
            pod.spec
                .init_containers
                .iter()
                .map(|c| (of(c), c.restart_policy.as_deref() == Some("Always"))),
            PodRequests::of(pod.spec.overhead.as_ref()),
        );
        let owners = pod.metadata.owner_references;
        let controller = owners
            .iter()
            .position(|o| o.controller == Some(true))
            .or((!owners.is_empty()).then_some(0))
            .and_then(|i| owners.into_iter().nth(i))
            .map(|o| (o.kind, o.name));
        Pod {
            name: pod.metadata.name,
            namespace: pod.metadata.namespace,
            resource_version: pod.metadata.resource_version,
            controller,
            active: !matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed")),
            requests,
        }
    }
}

impl Pod {
    /// Namespace, name and resourceVersion (for the watch cache).
    pub fn key(&self) -> (&str, &str, Option<&str>) {
        (
            &self.namespace,
            &self.name,
            self.resource_version.as_deref(),
        )
    }

    /// The pod without what only the watch cache's key needs (kept there once).
    pub fn without_key(mut self) -> Pod {
        self.namespace = String::new();
        self.resource_version = None;
        self
    }
}

/// What runs a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    /// The workload at this index of the namespace's workloads.
    Workload(usize),
    /// An Argo Rollout, through its ReplicaSet, for people: `Rollout/web`. curfew does not
    /// list Rollouts, but scales them through their Scale with the namespace's other
    /// workloads, so their pods are what a stop stops (and saves).
    Rollout(String),
    /// Anything else, for people: `DaemonSet/agent`, `Pod/debug`.
    Other(String),
}

/// One active pod: who runs it, what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub owner: Owner,
    pub requests: PodRequests,
}

/// The active pods, each with what runs it. `replica_sets` maps a ReplicaSet's name to
/// its controller (`Deployment/web`, `Rollout/web`), when it has one.
pub fn classify<'a, S: std::borrow::Borrow<str> + AsRef<str> + Eq + std::hash::Hash>(
    pods: impl IntoIterator<Item = &'a Pod>,
    workloads: &[Workload],
    replica_sets: &HashMap<S, S>,
) -> Vec<Running> {
    let index = |kind: Kind, name: &str| {
        workloads
            .iter()
            .position(|w| w.kind == kind && w.name == name)
    };
    let job_of = |job: &str| {
        workloads
            .iter()
            .position(|w| w.kind == Kind::CronJob && w.active_jobs.iter().any(|j| j == job))
    };
    pods.into_iter()
        .filter(|p| p.active)
        .map(|pod| {
            let owner = match &pod.controller {
                None => Owner::Other(format!("Pod/{}", pod.name)),
                Some((kind, name)) => {
                    let found = match kind.as_str() {
                        "ReplicaSet" => match replica_sets.get(name.as_str()).map(AsRef::as_ref) {
                            Some(controller) => match controller.split_once('/') {
                                Some(("Deployment", d)) => index(Kind::Deployment, d)
                                    .ok_or_else(|| Owner::Other(controller.to_string())),
                                Some(("Rollout", _)) => Err(Owner::Rollout(controller.to_string())),
                                _ => Err(Owner::Other(controller.to_string())),
                            },
                            None => Err(Owner::Other(format!("ReplicaSet/{name}"))),
                        },
                        "StatefulSet" => index(Kind::StatefulSet, name)
                            .ok_or_else(|| Owner::Other(format!("StatefulSet/{name}"))),
                        "Job" => job_of(name).ok_or_else(|| Owner::Other(format!("Job/{name}"))),
                        kind => Err(Owner::Other(format!("{kind}/{name}"))),
                    };
                    found.map_or_else(|owner| owner, Owner::Workload)
                }
            };
            Running {
                owner,
                requests: pod.requests,
            }
        })
        .collect()
}
