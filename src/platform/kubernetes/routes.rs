//! Wake on request: while a namespace sleeps, its Ingresses and Gateway API HTTPRoutes send
//! their traffic to curfew's wake Service, where the waiting page starts it.
//!
//! Pure: a [`Route`] is read from an Ingress (networking.k8s.io/v1) or an HTTPRoute
//! (gateway.networking.k8s.io/v1), and [`Route::stop_patch`] / [`Route::start_patch`] say
//! what to write (a JSON merge patch carrying the resourceVersion it was planned on), as
//! the workloads' patches do. The original backends go into an annotation on the object
//! itself ([`ORIGINAL_BACKENDS`]), so any curfew replica can restore them; a start restores
//! them only where the object still sends its traffic to curfew, and otherwise leaves a
//! person's edit alone and drops the record.
//!
//! Where the traffic goes:
//! - an Ingress names a Service of its own namespace only ("The service must exist in the
//!   same namespace as the Ingress object", IngressServiceBackend in the networking.k8s.io/v1
//!   API reference), so curfew creates in the sleeping namespace a Service of type
//!   ExternalName, [`LOCAL_WAKE_SERVICE`], whose DNS name is the wake Service's
//!   ("ExternalName Services", Kubernetes documentation, concepts/services-networking/service);
//! - an HTTPRoute may name a Service of another namespace when that namespace allows it
//!   with a ReferenceGrant (BackendObjectReference and ReferenceGrant, Gateway API
//!   reference; the same reference says implementations SHOULD NOT support ExternalName
//!   Services), so its rules name the wake Service itself, and curfew creates a
//!   ReferenceGrant in the wake Service's namespace for the sleeping namespace's
//!   HTTPRoutes ([`grant_name`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::workload::{Kind, Restore};

/// Annotation on an Ingress or HTTPRoute curfew sent to its wake Service: the original
/// backends, as JSON (one entry per backend curfew replaced, null where it replaced none).
pub const ORIGINAL_BACKENDS: &str = "curfew.dev/original-backends";
/// The ExternalName Service curfew creates in a sleeping namespace for its Ingresses.
pub const LOCAL_WAKE_SERVICE: &str = "curfew-wake";
/// The label on the objects curfew creates for wake on request (`managed-by: curfew`).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "curfew");
/// The label naming the sleeping namespace a ReferenceGrant is for.
pub const WAKE_FOR: &str = "curfew.dev/wake-for";

/// curfew's wake Service (`platform.kubernetes.wake_service`): the Service in front of the
/// daemon's public port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeService {
    pub name: String,
    pub namespace: String,
    pub port: u16,
    /// The cluster's DNS domain (`cluster.local`), for the ExternalName Services.
    pub cluster_domain: String,
}

impl WakeService {
    /// `curfew-wake.curfew:8080`: a Service name, its namespace and its port.
    pub fn parse(text: &str, cluster_domain: &str) -> Result<WakeService, String> {
        let text = text.trim();
        let wrong = || {
            format!(
                "{text:?} is not NAME.NAMESPACE:PORT (a Service, its namespace and its port, such as curfew-wake.curfew:8080)"
            )
        };
        let (service, port) = text.rsplit_once(':').ok_or_else(wrong)?;
        let (name, namespace) = service.split_once('.').ok_or_else(wrong)?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(wrong)?;
        if !is_dns_label(name) || !is_dns_label(namespace) {
            return Err(format!(
                "{text:?}: the Service name and namespace must be DNS labels (lower-case letters, digits and '-', at most 63)"
            ));
        }
        let domain = cluster_domain.trim().trim_matches('.');
        if domain.is_empty() || !domain.split('.').all(is_dns_label) {
            return Err(format!(
                "cluster domain {cluster_domain:?} is not a DNS name"
            ));
        }
        Ok(WakeService {
            name: name.into(),
            namespace: namespace.into(),
            port,
            cluster_domain: domain.into(),
        })
    }

    /// The wake Service's DNS name, which the ExternalName Services point at.
    pub fn host(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            self.name, self.namespace, self.cluster_domain
        )
    }

    /// An Ingress backend to the ExternalName Service of the Ingress's namespace.
    fn ingress_backend(&self) -> Value {
        json!({"service": {"name": LOCAL_WAKE_SERVICE, "port": {"number": self.port}}})
    }

    /// An HTTPRoute rule's backendRefs: the wake Service alone.
    fn route_backends(&self) -> Value {
        json!([{
            "group": "", "kind": "Service",
            "name": self.name, "namespace": self.namespace, "port": self.port,
        }])
    }

    /// The ExternalName Service to create in the sleeping namespace `namespace`.
    pub fn local_service(&self, namespace: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": LOCAL_WAKE_SERVICE, "namespace": namespace,
                "labels": {MANAGED_BY.0: MANAGED_BY.1},
            },
            "spec": {
                "type": "ExternalName", "externalName": self.host(),
                "ports": [{"name": "public", "port": self.port, "protocol": "TCP"}],
            },
        })
    }

    /// The ReferenceGrant that lets the HTTPRoutes of `namespace` send to the wake Service.
    pub fn grant(&self, namespace: &str) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {
                "name": grant_name(namespace), "namespace": self.namespace,
                "labels": {MANAGED_BY.0: MANAGED_BY.1, WAKE_FOR: namespace},
            },
            "spec": {
                "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": namespace}],
                "to": [{"group": "", "kind": "Service", "name": self.name}],
            },
        })
    }
}

/// The ReferenceGrant's name for a sleeping namespace (a namespace name is at most 63
/// characters, so this stays a valid object name).
pub fn grant_name(namespace: &str) -> String {
    format!("curfew-wake-from-{namespace}")
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// Whether an object carries curfew's `managed-by` label (it made it).
pub fn made_by_curfew(metadata: &ObjectMeta) -> bool {
    metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// One Ingress or HTTPRoute, as far as curfew cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub kind: Kind,
    pub name: String,
    pub resource_version: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// The object's `spec`, as the API server holds it.
    pub spec: Value,
}

impl Route {
    /// From an Ingress or HTTPRoute as JSON.
    pub fn from_json(kind: Kind, object: &Value) -> Route {
        let metadata = &object["metadata"];
        Route {
            kind,
            name: metadata["name"].as_str().unwrap_or_default().to_string(),
            resource_version: metadata["resourceVersion"].as_str().map(str::to_string),
            annotations: metadata["annotations"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            spec: object["spec"].clone(),
        }
    }

    /// curfew's record of the backends it replaced, if it replaced any.
    pub fn recorded(&self) -> Option<&str> {
        self.annotations.get(ORIGINAL_BACKENDS).map(String::as_str)
    }

    /// The backends curfew may replace, in order: an Ingress's default backend and each
    /// path's backend; an HTTPRoute's rules' backendRefs (a rule that has none, a redirect
    /// say, is None and stays as it is).
    fn slots(&self) -> Vec<Option<Value>> {
        let present = |v: &Value| (!v.is_null()).then(|| v.clone());
        match self.kind {
            Kind::Ingress => {
                let mut slots = vec![present(&self.spec["defaultBackend"])];
                for rule in self.spec["rules"].as_array().into_iter().flatten() {
                    for path in rule["http"]["paths"].as_array().into_iter().flatten() {
                        slots.push(present(&path["backend"]));
                    }
                }
                slots
            }
            _ => self.spec["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|rule| {
                    rule["backendRefs"]
                        .as_array()
                        .filter(|refs| !refs.is_empty())
                        .map(|refs| Value::Array(refs.clone()))
                })
                .collect(),
        }
    }

    /// The spec's parts that hold the slots, with each slot given its new value (None:
    /// as it is), as a merge patch's `spec` (a merge patch replaces lists whole).
    fn with_slots(&self, mut new: impl FnMut(usize, &Value) -> Option<Value>) -> Value {
        let mut spec = serde_json::Map::new();
        let mut index = 0;
        let mut next = |current: &mut Value| {
            if let Some(value) = new(index, current) {
                *current = value;
            }
            index += 1;
        };
        match self.kind {
            Kind::Ingress => {
                let mut default = self.spec["defaultBackend"].clone();
                next(&mut default);
                if !default.is_null() {
                    spec.insert("defaultBackend".into(), default);
                }
                let mut rules = self.spec["rules"].clone();
                for rule in rules.as_array_mut().into_iter().flatten() {
                    for path in rule["http"]["paths"].as_array_mut().into_iter().flatten() {
                        next(&mut path["backend"]);
                    }
                }
                if !rules.is_null() {
                    spec.insert("rules".into(), rules);
                }
            }
            _ => {
                let mut rules = self.spec["rules"].clone();
                for rule in rules.as_array_mut().into_iter().flatten() {
                    let mut refs = rule
                        .get("backendRefs")
                        .filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))
                        .cloned()
                        .unwrap_or(Value::Null);
                    next(&mut refs);
                    if !refs.is_null() {
                        rule["backendRefs"] = refs;
                    }
                }
                spec.insert("rules".into(), rules);
            }
        }
        Value::Object(spec)
    }

    /// What curfew writes in each slot it sends to the wake Service.
    fn wake_value(&self, wake: &WakeService) -> Value {
        match self.kind {
            Kind::Ingress => wake.ingress_backend(),
            _ => wake.route_backends(),
        }
    }

    fn metadata_patch(&self, record: Value) -> Value {
        json!({
            "resourceVersion": self.resource_version,
            "annotations": {ORIGINAL_BACKENDS: record},
        })
    }

    /// The patch that sends its traffic to the wake Service, or None when there is nothing
    /// to send (no backend, or already sent).
    pub fn stop_patch(&self, wake: &WakeService) -> Option<Value> {
        if self.recorded().is_some() {
            return None;
        }
        let slots = self.slots();
        if slots.iter().all(Option::is_none) {
            return None;
        }
        let record = Value::Array(
            slots
                .iter()
                .map(|s| s.clone().unwrap_or(Value::Null))
                .collect(),
        );
        let to_wake = self.wake_value(wake);
        let spec = self.with_slots(|i, _| slots[i].as_ref().map(|_| to_wake.clone()));
        Some(json!({
            "metadata": self.metadata_patch(Value::String(record.to_string())),
            "spec": spec,
        }))
    }

    /// The patch that restores its backends: where the object still sends to the wake
    /// Service every backend curfew replaced (and has as many backends), they go back;
    /// otherwise a person changed it since, their change stays, and only curfew's record
    /// goes. None when curfew recorded nothing.
    pub fn start_patch(&self, wake: &WakeService) -> Option<(Value, Restore)> {
        let recorded = self.recorded()?;
        let forget = json!({"metadata": self.metadata_patch(Value::Null)});
        let original: Option<Vec<Value>> = serde_json::from_str(recorded).ok();
        let slots = self.slots();
        let to_wake = self.wake_value(wake);
        let as_left = original.as_ref().filter(|original| {
            original.len() == slots.len()
                && original.iter().any(|o| !o.is_null())
                && original
                    .iter()
                    .zip(&slots)
                    .all(|(o, now)| o.is_null() || now.as_ref() == Some(&to_wake))
        });
        Some(match as_left {
            Some(original) => {
                let spec = self.with_slots(|i, _| {
                    let o = &original[i];
                    (!o.is_null()).then(|| o.clone())
                });
                let mut patch = forget;
                patch["spec"] = spec;
                (patch, Restore::Restored)
            }
            None => (forget, Restore::LeftAsChanged),
        })
    }

    /// Every host it serves people on, as URLs (an Ingress's rules' hosts, an HTTPRoute's
    /// hostnames but wildcards), with the scheme [`url`](Self::url) gives.
    pub fn urls(&self) -> Vec<String> {
        let (hosts, tls): (Vec<&str>, Vec<&str>) = match self.kind {
            Kind::Ingress => (
                self.spec["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["host"].as_str())
                    .collect(),
                self.spec["tls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|t| t["hosts"].as_array().into_iter().flatten())
                    .filter_map(|h| h.as_str())
                    .collect(),
            ),
            _ => {
                let hosts: Vec<&str> = self.spec["hostnames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str())
                    .collect();
                (hosts.clone(), hosts)
            }
        };
        let mut out: Vec<String> = hosts
            .iter()
            .filter(|h| !h.is_empty() && !h.starts_with('*'))
            .map(|h| {
                let scheme = if tls.contains(h) { "https" } else { "http" };
                format!("{scheme}://{h}/")
            })
            .collect();
        out.dedup();
        out
    }

    /// Where it serves people: an Ingress's first rule's host (https when its TLS names
    /// the host), an HTTPRoute's first hostname (https: the Gateway's listener, which
    /// curfew does not read, usually terminates TLS).
    pub fn url(&self) -> Option<String> {
        match self.kind {
            Kind::Ingress => {
                let host = self.spec["rules"]
                    .as_array()?
                    .iter()
                    .find_map(|r| r["host"].as_str().filter(|h| !h.is_empty()))?;
                let tls = self.spec["tls"].as_array().into_iter().flatten().any(|t| {
                    t["hosts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|h| h.as_str() == Some(host))
                });
                let scheme = if tls { "https" } else { "http" };
                Some(format!("{scheme}://{host}/"))
            }
            _ => {
                let host = self.spec["hostnames"]
                    .as_array()?
                    .iter()
                    .find_map(|h| h.as_str().filter(|h| !h.is_empty() && !h.starts_with('*')))?;
                Some(format!("https://{host}/"))
            }
        }
    }
}
