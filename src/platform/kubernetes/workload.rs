//! The objects curfew scales in a namespace, and the patches that stop and start them.
//!
//! Pure: a [`Workload`] is read from a Deployment, StatefulSet or CronJob, and
//! [`Workload::stop_patch`] / [`Workload::start_patch`] say what to write (a JSON merge
//! patch) or that nothing needs writing. Every patch carries the resourceVersion the
//! decision was made on, so the API server refuses it (409) if the object changed since.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

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

/// The kinds curfew scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    CronJob,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Deployment, Kind::StatefulSet, Kind::CronJob];

    /// The resource name, as in RBAC rules and `kubectl get`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::CronJob => "cronjobs",
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
    /// `spec.replicas` (the API server's default, 1, when absent); 0 for a CronJob.
    pub replicas: i32,
    /// `status.replicas`: pods that still exist.
    pub pods: i32,
    /// A CronJob's `spec.suspend`.
    pub suspended: bool,
    /// What one of its pods asks for.
    pub requests: PodRequests,
}

impl Workload {
    fn base(kind: Kind, metadata: &ObjectMeta) -> Workload {
        Workload {
            kind,
            name: metadata.name.clone().unwrap_or_default(),
            resource_version: metadata.resource_version.clone(),
            annotations: metadata.annotations.clone().unwrap_or_default(),
            replicas: 0,
            pods: 0,
            suspended: false,
            requests: PodRequests::default(),
        }
    }

    pub fn from_deployment(d: &Deployment) -> Workload {
        let spec = d.spec.as_ref();
        Workload {
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            pods: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            requests: spec
                .and_then(|s| s.template.spec.as_ref())
                .map(pod_requests)
                .unwrap_or_default(),
            ..Workload::base(Kind::Deployment, &d.metadata)
        }
    }

    pub fn from_stateful_set(s: &StatefulSet) -> Workload {
        let spec = s.spec.as_ref();
        Workload {
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            pods: s.status.as_ref().map_or(0, |s| s.replicas),
            requests: spec
                .and_then(|s| s.template.spec.as_ref())
                .map(pod_requests)
                .unwrap_or_default(),
            ..Workload::base(Kind::StatefulSet, &s.metadata)
        }
    }

    pub fn from_cron_job(c: &CronJob) -> Workload {
        Workload {
            suspended: c.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false),
            pods: c
                .status
                .as_ref()
                .and_then(|s| s.active.as_ref())
                .map_or(0, |a| i32::try_from(a.len()).unwrap_or(i32::MAX)),
            ..Workload::base(Kind::CronJob, &c.metadata)
        }
    }

    /// Marked `curfew.dev/exclude: "true"` (or kube-downscaler's `downscaler/exclude`).
    pub fn excluded(&self) -> bool {
        [EXCLUDE, DOWNSCALER_EXCLUDE].iter().any(|k| {
            self.annotations
                .get(*k)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        })
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
        if self.excluded() || !self.wants_to_run() {
            return None;
        }
        let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        Some(match self.kind {
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

/// What a pod asks for: the sum over its containers and sidecars, or its largest init
/// container if that is more (Kubernetes' effective request).
pub fn pod_requests(spec: &PodSpec) -> PodRequests {
    let of = |c: &Container| {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let get = |key: &str, parse: fn(&str) -> Option<f64>| {
            requests
                .and_then(|r| r.get(key))
                .and_then(|q| parse(&q.0))
                .unwrap_or(0.0)
        };
        PodRequests {
            cpu: get("cpu", parse_quantity),
            memory_gib: get("memory", |q| {
                parse_quantity(q).map(|b| b / (1024.0 * 1024.0 * 1024.0))
            }),
        }
    };
    let sum = |items: &mut dyn Iterator<Item = PodRequests>| {
        items.fold(PodRequests::default(), |a, b| PodRequests {
            cpu: a.cpu + b.cpu,
            memory_gib: a.memory_gib + b.memory_gib,
        })
    };
    let init = spec.init_containers.as_deref().unwrap_or_default();
    // Sidecars (init containers that keep running) count with the main containers.
    let is_sidecar = |c: &&Container| c.restart_policy.as_deref() == Some("Always");
    let running = sum(&mut spec
        .containers
        .iter()
        .chain(init.iter().filter(is_sidecar))
        .map(of));
    let largest_init =
        init.iter()
            .filter(|c| !is_sidecar(c))
            .map(of)
            .fold(PodRequests::default(), |a, b| PodRequests {
                cpu: a.cpu.max(b.cpu),
                memory_gib: a.memory_gib.max(b.memory_gib),
            });
    PodRequests {
        cpu: running.cpu.max(largest_init.cpu),
        memory_gib: running.memory_gib.max(largest_init.memory_gib),
    }
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
