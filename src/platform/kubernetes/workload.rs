//! The objects curfew scales in a namespace, and the patches that stop and start them.
//!
//! Pure: a [`Workload`] is read from a Deployment, StatefulSet or CronJob, and
//! [`Workload::stop_patch`] / [`Workload::start_patch`] say what to write (a JSON merge
//! patch) or that nothing needs writing. Every patch carries the resourceVersion the
//! decision was made on, so the API server refuses it (409) if the object changed since.
//!
//! Some objects curfew does not stop ([`Workload::not_stopped`]): one controlled by another
//! object (an operator would scale it back), a StatefulSet whose volumes a scale to zero
//! would delete. One whose replicas were put back since curfew stopped it (a GitOps tool
//! or a person, [`Workload::scaled_back`]) is a revert the listing reports.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::FIELD_MANAGER;
use super::leader::from_jiff;

/// Annotation on a Deployment or StatefulSet: its replicas before curfew scaled it to zero.
pub const ORIGINAL_REPLICAS: &str = "curfew.dev/original-replicas";
/// Annotation on a CronJob: its `suspend` flag before curfew suspended it.
pub const ORIGINAL_SUSPEND: &str = "curfew.dev/original-suspend";
/// Annotation on every object curfew stopped: when (RFC 3339), for people.
pub const STOPPED_AT: &str = "curfew.dev/stopped-at";
/// Annotation that keeps curfew's hands off one object: `curfew.dev/exclude: "true"`.
pub const EXCLUDE: &str = "curfew.dev/exclude";
/// kube-downscaler's equivalent, honoured too.
pub const DOWNSCALER_EXCLUDE: &str = "downscaler/exclude";
/// Annotation on a CronJob to which curfew gave a starting deadline (it had none): `none`.
pub const ORIGINAL_STARTING_DEADLINE: &str = "curfew.dev/original-starting-deadline";
/// Annotation on a StatefulSet whose owners accept that a stop deletes its volumes
/// (`persistentVolumeClaimRetentionPolicy.whenScaled: Delete`): `"true"`.
pub const ALLOW_VOLUME_DELETION: &str = "curfew.dev/allow-volume-deletion";
/// The starting deadline curfew gives a CronJob that has none when it suspends it: a run
/// missed while suspended is then not started when it is resumed (the CronJob controller
/// counts missed runs from `status.lastScheduleTime`, pkg/controller/cronjob/utils.go,
/// mostRecentScheduleTime). Five minutes: far above the controller's usual delay, so a
/// run on time is never missed.
pub const STARTING_DEADLINE_SECONDS: i64 = 300;

/// The kinds curfew scales, and those whose traffic it sends to its wake Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    CronJob,
    Ingress,
    HttpRoute,
    /// An object of a kind scaled through its scale subresource (an Argo Rollout, a kind
    /// of `platform.kubernetes.scale_kinds`).
    Scaled,
    /// An object a rule's `patches:` (or `release_load_balancers`) changed.
    Patched,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::CronJob,
        Kind::Ingress,
        Kind::HttpRoute,
        Kind::Scaled,
        Kind::Patched,
    ];

    /// The kind's name (`Deployment`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::CronJob => "CronJob",
            Kind::Ingress => "Ingress",
            Kind::HttpRoute => "HTTPRoute",
            Kind::Scaled => "scaled object",
            Kind::Patched => "patched object",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::StatefulSet => "apps/v1",
            Kind::CronJob => "batch/v1",
            Kind::Ingress => "networking.k8s.io/v1",
            Kind::HttpRoute => "gateway.networking.k8s.io/v1",
            // Their own, kept with each object (patches.rs).
            Kind::Scaled | Kind::Patched => "",
        }
    }

    /// The resource name, as in RBAC rules and `kubectl get`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::CronJob => "cronjobs",
            Kind::Ingress => "ingresses",
            Kind::HttpRoute => "httproutes",
            // Said before the object's own `plural/name` (`scaled rollouts/web`).
            Kind::Scaled => "scaled",
            Kind::Patched => "patched",
        }
    }
}

/// Resource requests of one pod: CPU in cores, memory in GiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PodRequests {
    pub cpu: f64,
    pub memory_gib: f64,
}

/// One Deployment, StatefulSet or CronJob, as far as curfew cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: Kind,
    pub name: String,
    pub resource_version: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// Its labels (a GitOps tool's tracking labels among them).
    pub labels: BTreeMap<String, String>,
    /// `spec.replicas` (the API server's default, 1, when absent); 0 for a CronJob.
    pub replicas: i32,
    /// A CronJob's `spec.suspend`.
    pub suspended: bool,
    /// Its pods that are ready (`status.readyReplicas`; 0 for a CronJob).
    pub ready_replicas: i32,
    /// What one of its pods asks for, from its pod template.
    pub requests: PodRequests,
    /// Its controller, if another object controls it (`Kafka/events`).
    pub controller: Option<String>,
    /// A StatefulSet that deletes its volumes when scaled down, its owners not having
    /// accepted that ([`ALLOW_VOLUME_DELETION`]).
    pub deletes_volumes: bool,
    /// Who last set its replicas (a Deployment's or StatefulSet's) or its suspend flag (a
    /// CronJob's), and when, from `managedFields`: `argocd-controller (Apply)`.
    pub replicas_set_by: Option<(String, Option<DateTime<Utc>>)>,
    /// A CronJob's `startingDeadlineSeconds`.
    pub starting_deadline: Option<i64>,
    /// A CronJob's running Jobs (`status.active`).
    pub active_jobs: Vec<String>,
}

impl Workload {
    fn base(kind: Kind, metadata: &ObjectMeta) -> Workload {
        Workload {
            kind,
            name: metadata.name.clone().unwrap_or_default(),
            resource_version: metadata.resource_version.clone(),
            annotations: metadata.annotations.clone().unwrap_or_default(),
            labels: metadata.labels.clone().unwrap_or_default(),
            replicas: 0,
            suspended: false,
            ready_replicas: 0,
            requests: PodRequests::default(),
            controller: metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| format!("{}/{}", o.kind, o.name)),
            deletes_volumes: false,
            replicas_set_by: None,
            starting_deadline: None,
            active_jobs: Vec::new(),
        }
    }

    pub fn from_deployment(d: &Deployment) -> Workload {
        let spec = d.spec.as_ref();
        Workload {
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            ready_replicas: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            requests: spec
                .and_then(|s| s.template.spec.as_ref())
                .map(pod_requests)
                .unwrap_or_default(),
            replicas_set_by: last_setter(&d.metadata, "replicas"),
            ..Workload::base(Kind::Deployment, &d.metadata)
        }
    }

    pub fn from_stateful_set(s: &StatefulSet) -> Workload {
        let spec = s.spec.as_ref();
        let base = Workload::base(Kind::StatefulSet, &s.metadata);
        let when_scaled = spec
            .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
            .and_then(|p| p.when_scaled.as_deref());
        Workload {
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            ready_replicas: s
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            requests: spec
                .and_then(|s| s.template.spec.as_ref())
                .map(pod_requests)
                .unwrap_or_default(),
            deletes_volumes: when_scaled == Some("Delete")
                && spec.is_some_and(|s| s.volume_claim_templates.iter().flatten().next().is_some())
                && !is_true(base.annotations.get(ALLOW_VOLUME_DELETION)),
            replicas_set_by: last_setter(&s.metadata, "replicas"),
            ..base
        }
    }

    pub fn from_cron_job(c: &CronJob) -> Workload {
        let active: Vec<String> = c
            .status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|j| j.name.clone())
            .collect();
        Workload {
            suspended: c.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false),
            starting_deadline: c.spec.as_ref().and_then(|s| s.starting_deadline_seconds),
            replicas_set_by: last_setter(&c.metadata, "suspend"),
            active_jobs: active,
            ..Workload::base(Kind::CronJob, &c.metadata)
        }
    }

    /// The workload as the watch cache keeps it: only the labels and annotations curfew
    /// reads (its own `curfew.dev/…`, kube-downscaler's exclusion, the GitOps tools'
    /// tracking), so that 40,000 workloads' `app`, `helm.sh/chart` and
    /// `last-applied-configuration` are not kept between passes. A fresh read (before
    /// acting) keeps them all.
    pub fn slim(mut self) -> Workload {
        // Made anew rather than `retain`ed: a map emptied in place keeps its node (about
        // half a KiB), 40,000 workloads times two maps in the cache.
        self.annotations = std::mem::take(&mut self.annotations)
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with("curfew.dev/")
                    || k == DOWNSCALER_EXCLUDE
                    || k == super::gitops::ARGOCD_TRACKING_ID
            })
            .collect();
        self.labels = std::mem::take(&mut self.labels)
            .into_iter()
            .filter(|(k, _)| {
                k == super::gitops::ARGOCD_INSTANCE
                    || k.starts_with("kustomize.toolkit.fluxcd.io/")
                    || k.starts_with("helm.toolkit.fluxcd.io/")
            })
            .collect();
        self
    }

    /// Why curfew does not stop it, if it does not: another controller owns it, or a stop
    /// would delete its volumes.
    pub fn not_stopped(&self) -> Option<String> {
        if let Some(owner) = &self.controller {
            return Some(format!(
                "controlled by {owner}, whose controller would undo a scale to zero"
            ));
        }
        self.deletes_volumes.then(|| {
            format!("at zero its PersistentVolumeClaims would be deleted (persistentVolumeClaimRetentionPolicy.whenScaled: Delete; annotate it {ALLOW_VOLUME_DELETION}=true to accept)")
        })
    }

    /// Who put it back since curfew stopped it: curfew's record is there, yet it runs.
    /// The listing reports it as a revert; the policy does not stop it again before the
    /// next boundary (that would fight a GitOps tool or a person at every pass).
    pub fn scaled_back(&self) -> Option<String> {
        if self.recorded().is_none() || !self.wants_to_run() {
            return None;
        }
        Some(match &self.replicas_set_by {
            Some((manager, _)) => manager.clone(),
            None => "someone".to_string(),
        })
    }

    /// Marked `curfew.dev/exclude: "true"` (or kube-downscaler's `downscaler/exclude`).
    pub fn excluded(&self) -> bool {
        excluded(&self.annotations)
    }

    /// Counted and acted on by curfew: not excluded, and nothing keeps curfew from
    /// stopping it.
    pub fn managed(&self) -> bool {
        !self.excluded() && self.not_stopped().is_none()
    }

    /// curfew's record of what it changed, if it stopped this object.
    pub fn recorded(&self) -> Option<&str> {
        let key = match self.kind {
            Kind::CronJob => ORIGINAL_SUSPEND,
            _ => ORIGINAL_REPLICAS,
        };
        self.annotations.get(key).map(String::as_str)
    }

    /// Whether it asks for anything to run (replicas above zero, a CronJob not suspended).
    pub fn wants_to_run(&self) -> bool {
        match self.kind {
            Kind::CronJob => !self.suspended,
            _ => self.replicas > 0,
        }
    }

    /// Ready to serve, as far as this object goes (wake on request): a Deployment or
    /// StatefulSet that curfew stops is not still at zero by curfew's doing and has all
    /// its replicas ready (`status.readyReplicas`). CronJobs, and objects curfew leaves
    /// alone, never hold a wake up.
    pub fn serves(&self) -> bool {
        if self.kind == Kind::CronJob || !self.managed() {
            return true;
        }
        let stopped_by_curfew = self.recorded().is_some() && self.replicas == 0;
        !stopped_by_curfew && self.ready_replicas >= self.replicas
    }

    /// Replicas it runs with when its environment runs: what curfew recorded if it stopped
    /// it, else what it asks for now. Cost is counted on these.
    pub fn running_replicas(&self) -> i32 {
        match self.kind {
            Kind::CronJob => 0,
            _ if self.replicas == 0 => self
                .recorded()
                .and_then(|r| r.trim().parse::<i32>().ok())
                .unwrap_or(0)
                .max(0),
            _ => self.replicas,
        }
    }

    fn metadata_patch(&self, annotations: Value) -> Value {
        json!({
            "resourceVersion": self.resource_version,
            "annotations": annotations,
        })
    }

    /// The patch that stops it, or None when there is nothing to stop (already at zero,
    /// already suspended, excluded). The original value goes into an annotation, so any
    /// curfew replica can restore it.
    pub fn stop_patch(&self, now: DateTime<Utc>) -> Option<Value> {
        // One put back since curfew's last stop is stopped again, its record made afresh:
        // the policy asks for a stop once per boundary, never again after a revert within
        // it (see docs/platforms.md#gitops).
        if !self.managed() || !self.wants_to_run() {
            return None;
        }
        let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        Some(match self.kind {
            // A CronJob without a starting deadline would start the run it missed while
            // suspended as soon as it is resumed: it gets one, kept after the start (see
            // STARTING_DEADLINE_SECONDS), and the annotation says it had none.
            Kind::CronJob if self.starting_deadline.is_none() => json!({
                "metadata": self.metadata_patch(json!({
                    ORIGINAL_SUSPEND: "false",
                    ORIGINAL_STARTING_DEADLINE: "none",
                    STOPPED_AT: at,
                })),
                "spec": { "suspend": true, "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS },
            }),
            Kind::CronJob => json!({
                "metadata": self.metadata_patch(json!({ ORIGINAL_SUSPEND: "false", STOPPED_AT: at })),
                "spec": { "suspend": true },
            }),
            _ => json!({
                "metadata": self.metadata_patch(json!({
                    ORIGINAL_REPLICAS: self.replicas.to_string(),
                    STOPPED_AT: at,
                })),
                "spec": { "replicas": 0 },
            }),
        })
    }

    /// The patch that starts it again: restores what curfew recorded if the object is still
    /// as curfew left it; if a person changed it since (scaled it, resumed it), leaves their
    /// value and only drops curfew's record. None when curfew recorded nothing.
    pub fn start_patch(&self) -> Option<(Value, Restore)> {
        if self.excluded() {
            return None;
        }
        let recorded = self.recorded()?.trim().to_string();
        let forget = self.metadata_patch(
            json!({ ORIGINAL_REPLICAS: null, ORIGINAL_SUSPEND: null, STOPPED_AT: null }),
        );
        let restore = match self.kind {
            Kind::CronJob if self.suspended => match recorded.parse::<bool>() {
                Ok(suspend) => Some(json!({ "suspend": suspend })),
                Err(_) => None,
            },
            Kind::CronJob => None,
            _ if self.replicas == 0 => match recorded.parse::<i32>() {
                Ok(replicas) if replicas >= 0 => Some(json!({ "replicas": replicas })),
                _ => None,
            },
            _ => None,
        };
        Some(match restore {
            Some(spec) => (
                json!({ "metadata": forget, "spec": spec }),
                Restore::Restored,
            ),
            None => (json!({ "metadata": forget }), Restore::LeftAsChanged),
        })
    }
}

/// What a start did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Back to what curfew recorded.
    Restored,
    /// Changed by someone since curfew stopped it (or its record was unreadable): left as
    /// it is, curfew's record removed.
    LeftAsChanged,
}

/// Annotations that keep curfew's hands off an object ([`EXCLUDE`], [`DOWNSCALER_EXCLUDE`]).
pub fn excluded(annotations: &BTreeMap<String, String>) -> bool {
    [EXCLUDE, DOWNSCALER_EXCLUDE]
        .iter()
        .any(|k| is_true(annotations.get(*k)))
}

fn is_true(value: Option<&String>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The manager (and operation, and time) of the `managedFields` entry that owns
/// `spec.FIELD`, other than curfew's own.
fn last_setter(metadata: &ObjectMeta, field: &str) -> Option<(String, Option<DateTime<Utc>>)> {
    metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
        .filter(|e| {
            e.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:spec")
                    .and_then(|s| s.get(format!("f:{field}")))
                    .is_some()
            })
        })
        .map(|e| {
            let manager = e.manager.clone().unwrap_or_else(|| "someone".into());
            let name = match e.operation.as_deref() {
                Some(op) => format!("{manager} ({op})"),
                None => manager,
            };
            (name, e.time.as_ref().and_then(|t| from_jiff(t.0)))
        })
        .max_by_key(|(_, t)| *t)
}

impl std::ops::Add for PodRequests {
    type Output = PodRequests;
    fn add(self, other: PodRequests) -> PodRequests {
        PodRequests {
            cpu: self.cpu + other.cpu,
            memory_gib: self.memory_gib + other.memory_gib,
        }
    }
}

impl PodRequests {
    fn max(self, other: PodRequests) -> PodRequests {
        PodRequests {
            cpu: self.cpu.max(other.cpu),
            memory_gib: self.memory_gib.max(other.memory_gib),
        }
    }

    /// From a `requests`-like map (`cpu`, `memory`).
    pub fn of(values: Option<&BTreeMap<String, Quantity>>) -> PodRequests {
        let get = |key: &str| {
            values
                .and_then(|r| r.get(key))
                .and_then(|q| parse_quantity(&q.0))
                .unwrap_or(0.0)
        };
        PodRequests {
            cpu: get("cpu"),
            memory_gib: get("memory") / (1024.0 * 1024.0 * 1024.0),
        }
    }
}

/// What a container asks for. A resource it gives a limit for but no request asks for the
/// limit: the API server defaults requests to limits (pkg/apis/core/v1/defaults.go,
/// SetDefaults_Pod), so the pods made from a template ask for that.
pub fn container_requests(resources: Option<&ResourceRequirements>) -> PodRequests {
    let requests = PodRequests::of(resources.and_then(|r| r.requests.as_ref()));
    let limits = PodRequests::of(resources.and_then(|r| r.limits.as_ref()));
    let has = |key: &str| {
        resources
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|r| r.contains_key(key))
    };
    PodRequests {
        cpu: if has("cpu") { requests.cpu } else { limits.cpu },
        memory_gib: if has("memory") {
            requests.memory_gib
        } else {
            limits.memory_gib
        },
    }
}

/// Kubernetes' effective request of a pod: its containers and sidecars (init containers
/// that keep running), or its largest other init container if that is more, plus the
/// pod's overhead. Each container is (its requests, whether it is a sidecar).
pub fn effective_requests(
    containers: impl Iterator<Item = PodRequests>,
    init: impl Iterator<Item = (PodRequests, bool)>,
    overhead: PodRequests,
) -> PodRequests {
    let mut running = containers.fold(PodRequests::default(), |a, b| a + b);
    let mut largest_init = PodRequests::default();
    for (requests, sidecar) in init {
        if sidecar {
            running = running + requests;
        } else {
            largest_init = largest_init.max(requests);
        }
    }
    running.max(largest_init) + overhead
}

/// What a pod made from this spec asks for (see [`effective_requests`]).
pub fn pod_requests(spec: &PodSpec) -> PodRequests {
    let of = |c: &Container| container_requests(c.resources.as_ref());
    effective_requests(
        spec.containers.iter().map(of),
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| (of(c), c.restart_policy.as_deref() == Some("Always"))),
        PodRequests::of(spec.overhead.as_ref()),
    )
}

/// A Kubernetes quantity (`250m`, `1.5`, `512Mi`, `1G`, `2e3`) as a plain number.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            10f64.powi(exponent[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    };
    let value = number * factor;
    value.is_finite().then_some(value)
}
