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

/// A pod, as far as curfew reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Pod {
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
    /// Read by the watch cache (`cache.rs`), which keeps pods by namespace.
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

impl Pod {
    /// Namespace, name and resourceVersion (for the watch cache).
    pub fn key(&self) -> (&str, &str, Option<&str>) {
        (
            &self.metadata.namespace,
            &self.metadata.name,
            self.metadata.resource_version.as_deref(),
        )
    }

    /// Pending or running: a pod that succeeded or failed holds no resources.
    fn active(&self) -> bool {
        !matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    fn controller(&self) -> Option<&OwnerReference> {
        let owners = &self.metadata.owner_references;
        owners
            .iter()
            .find(|o| o.controller == Some(true))
            .or(owners.first())
    }

    fn requests(&self) -> PodRequests {
        let of = |c: &Container| container_requests(c.resources.as_ref());
        effective_requests(
            self.spec.containers.iter().map(of),
            self.spec
                .init_containers
                .iter()
                .map(|c| (of(c), c.restart_policy.as_deref() == Some("Always"))),
            PodRequests::of(self.spec.overhead.as_ref()),
        )
    }
}

/// What runs a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    /// The workload at this index of the namespace's workloads.
    Workload(usize),
    /// Anything else, for people: `Rollout/web`, `DaemonSet/agent`, `Pod/debug`.
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
pub fn classify(
    pods: &[Pod],
    workloads: &[Workload],
    replica_sets: &HashMap<String, String>,
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
    pods.iter()
        .filter(|p| p.active())
        .map(|pod| {
            let owner = match pod.controller() {
                None => Owner::Other(format!("Pod/{}", pod.metadata.name)),
                Some(o) => {
                    let found = match o.kind.as_str() {
                        "ReplicaSet" => match replica_sets.get(&o.name) {
                            Some(controller) => match controller.split_once('/') {
                                Some(("Deployment", d)) => {
                                    index(Kind::Deployment, d).ok_or_else(|| controller.clone())
                                }
                                _ => Err(controller.clone()),
                            },
                            None => Err(format!("ReplicaSet/{}", o.name)),
                        },
                        "StatefulSet" => index(Kind::StatefulSet, &o.name)
                            .ok_or_else(|| format!("StatefulSet/{}", o.name)),
                        "Job" => job_of(&o.name).ok_or_else(|| format!("Job/{}", o.name)),
                        kind => Err(format!("{kind}/{}", o.name)),
                    };
                    match found {
                        Ok(i) => Owner::Workload(i),
                        Err(other) => Owner::Other(other),
                    }
                }
            };
            Running {
                owner,
                requests: pod.requests(),
            }
        })
        .collect()
}
