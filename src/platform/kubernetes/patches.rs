//! More kinds a stop changes: a rule's `patches:` (kube-green's idea: a JSON merge patch,
//! RFC 7386, applied to every object of a kind on stop), the release of LoadBalancer
//! Services while asleep (`release_load_balancers: true`), and the kinds curfew scales
//! through their scale subresource (Argo Rollouts, and those named in
//! `platform.kubernetes.scale_kinds`).
//!
//! Pure: a [`Patched`] object says what to write on stop and on start, as the workloads'
//! patches do. A stop records, in an annotation on the object itself
//! ([`ORIGINAL_PATCH`]), the patch and its exact inverse ([`inverse`]: a field absent
//! before is `null` in it, an array replaced whole is put back whole); a start applies the
//! inverse only where every field the patch set still holds what it set, and otherwise
//! leaves a person's edit alone and drops the record.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::workload::{ORIGINAL_REPLICAS, Restore, STOPPED_AT, excluded};

/// Annotation on an object a rule's patch (or a LoadBalancer's release) changed:
/// `{"patch": …, "inverse": …}` as JSON.
pub const ORIGINAL_PATCH: &str = "curfew.dev/original-patch";
/// Size limit of one patch, as written in the rule file (serialized JSON): the record of
/// the patch and its inverse goes into an annotation, and the API server refuses an
/// object whose annotations weigh more than 256 KiB.
pub const MAX_PATCH_BYTES: usize = 16 * 1024;

/// A kind of object, as an API request names it: `argoproj.io/v1alpha1/rollouts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The API group (`""` for the core group).
    pub group: String,
    pub version: String,
    /// The resource (`rollouts`): its path, and its name in RBAC rules.
    pub plural: String,
}

impl Target {
    /// `GROUP/VERSION/KIND` or `GROUP/VERSION/PLURAL` (`apps/v1/Deployment`,
    /// `argoproj.io/v1alpha1/rollouts`), or `VERSION/KIND` for the core group
    /// (`v1/Service`). A kind (upper-case first letter) is made plural as kubectl does
    /// (kube's `ApiResource::from_gvk`).
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let parts: Vec<&str> = text.split('/').collect();
        let (group, version, name) = match parts.as_slice() {
            [version, name] => ("", *version, *name),
            [group, version, name] => (*group, *version, *name),
            _ => {
                return Err(format!(
                    "{text:?} is not GROUP/VERSION/KIND (apps/v1/Deployment, argoproj.io/v1alpha1/Rollout, v1/Service)"
                ));
            }
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !word(version) || !word(name) || !(group.is_empty() || word(group)) {
            return Err(format!(
                "{text:?}: group, version and kind are letters, digits, '-' and '.'"
            ));
        }
        let plural = if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            let gvk = kube::core::GroupVersionKind::gvk(group, version, name);
            kube::core::ApiResource::from_gvk(&gvk).plural
        } else {
            name.to_string()
        };
        Ok(Target {
            group: group.to_string(),
            version: version.to_string(),
            plural,
        })
    }

    /// Argo Rollouts' Rollout (scaled through its scale subresource).
    pub fn rollouts() -> Target {
        Target {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            plural: "rollouts".into(),
        }
    }

    /// Services (their LoadBalancers released).
    pub fn services() -> Target {
        Target {
            group: String::new(),
            version: "v1".into(),
            plural: "services".into(),
        }
    }

    /// Where its objects of a namespace are.
    pub fn path(&self, namespace: &str) -> String {
        match self.group.as_str() {
            "" => format!(
                "/api/{}/namespaces/{namespace}/{}",
                self.version, self.plural
            ),
            group => format!(
                "/apis/{group}/{}/namespaces/{namespace}/{}",
                self.version, self.plural
            ),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group.as_str() {
            "" => write!(f, "{}/{}", self.version, self.plural),
            group => write!(f, "{group}/{}/{}", self.version, self.plural),
        }
    }
}

/// One entry of a rule's `patches:`: a JSON merge patch applied on stop to every object
/// of the target kind in the namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPatch {
    pub target: Target,
    pub patch: Value,
}

impl ObjectPatch {
    /// Checks a patch from the rule file: an object, small enough to record, that leaves
    /// alone what curfew and the API server own (`metadata`, `status`, `apiVersion`,
    /// `kind`).
    pub fn new(target: Target, patch: Value) -> Result<ObjectPatch, String> {
        let Value::Object(fields) = &patch else {
            return Err(
                "a patch is a map of fields (a JSON merge patch, RFC 7386), such as {spec: {suspend: true}}".into(),
            );
        };
        if fields.is_empty() {
            return Err("the patch changes nothing".into());
        }
        if let Some(key) = ["metadata", "status", "apiVersion", "kind"]
            .into_iter()
            .find(|k| fields.contains_key(*k))
        {
            return Err(format!(
                "a patch may not change `{key}` (curfew records the original in the object's metadata; the API server owns the rest)"
            ));
        }
        if patch.to_string().len() > MAX_PATCH_BYTES {
            return Err(format!(
                "the patch is longer than {MAX_PATCH_BYTES} bytes as JSON (it and its inverse are recorded in an annotation)"
            ));
        }
        Ok(ObjectPatch { target, patch })
    }
}

/// What a rule adds to a stop on Kubernetes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// The rule's `patches:`.
    pub patches: Vec<ObjectPatch>,
    /// `release_load_balancers: true`.
    pub release_load_balancers: bool,
}

/// `object` with `patch` applied (RFC 7386, json-patch's `merge`).
pub fn merged(object: &Value, patch: &Value) -> Value {
    let mut out = object.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// The merge patch that undoes `patch` on `before`: every field the patch touches, as it
/// was (`null` where it was absent; a field the patch removes that was absent stays out).
/// A field the patch replaces whole (an array, a value whose type changes) comes back
/// whole.
pub fn inverse(before: &Value, patch: &Value) -> Value {
    let Value::Object(fields) = patch else {
        return before.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let old = before.as_object().and_then(|b| b.get(key));
        match (old, value) {
            (Some(old @ Value::Object(_)), Value::Object(_)) => {
                out.insert(key.clone(), inverse(old, value));
            }
            (Some(old), _) => {
                out.insert(key.clone(), old.clone());
            }
            (None, Value::Null) => {}
            (None, _) => {
                out.insert(key.clone(), Value::Null);
            }
        }
    }
    Value::Object(out)
}

/// Whether every field `patch` sets holds what it sets in `object` (applying it would
/// change nothing).
pub fn holds(object: &Value, patch: &Value) -> bool {
    merged(object, patch) == *object
}

/// The patch that releases a LoadBalancer Service's load balancer, None for another type.
///
/// `type: ClusterIP`, and every field the API server accepts only on the types that have
/// node ports or a load balancer cleared (pkg/apis/core/validation/validation.go,
/// ValidateService: `spec.ports[*].nodePort` "may not be used when `type` is
/// 'ClusterIP'"; `loadBalancerSourceRanges`, `allocateLoadBalancerNodePorts` and
/// `loadBalancerClass` "may only be used when `type` is 'LoadBalancer'";
/// `externalTrafficPolicy` "may only be set for externally-accessible services";
/// `healthCheckNodePort` only with type LoadBalancer and policy Local). The ports are
/// given whole without their `nodePort` (a merge patch replaces an array whole), so the
/// inverse puts back the node ports they had.
pub fn release_patch(service: &Value) -> Option<Value> {
    let spec = &service["spec"];
    if spec["type"].as_str() != Some("LoadBalancer") {
        return None;
    }
    let ports: Vec<Value> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut p = p.clone();
            if let Some(fields) = p.as_object_mut() {
                fields.remove("nodePort");
            }
            p
        })
        .collect();
    Some(json!({
        "spec": {
            "type": "ClusterIP",
            "ports": ports,
            "externalTrafficPolicy": null,
            "healthCheckNodePort": null,
            "loadBalancerClass": null,
            "allocateLoadBalancerNodePorts": null,
            "loadBalancerSourceRanges": null,
        }
    }))
}

/// One object a patch applies to, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Patched {
    pub target: Target,
    pub name: String,
    pub resource_version: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// The whole object.
    pub object: Value,
}

/// What curfew recorded on an object it patched.
struct Record {
    patch: Value,
    inverse: Value,
}

impl Patched {
    pub fn from_json(target: Target, object: Value) -> Patched {
        let metadata = &object["metadata"];
        Patched {
            target,
            name: metadata["name"].as_str().unwrap_or_default().to_string(),
            resource_version: metadata["resourceVersion"].as_str().map(str::to_string),
            annotations: metadata["annotations"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            object,
        }
    }

    /// curfew's record, if it patched this object.
    pub fn recorded(&self) -> Option<&str> {
        self.annotations.get(ORIGINAL_PATCH).map(String::as_str)
    }

    fn record(&self) -> Option<Record> {
        let value: Value = serde_json::from_str(self.recorded()?).ok()?;
        Some(Record {
            patch: value.get("patch")?.clone(),
            inverse: value.get("inverse")?.clone(),
        })
    }

    fn metadata(&self, annotations: Value) -> Value {
        json!({"resourceVersion": self.resource_version, "annotations": annotations})
    }

    /// The write that applies `patch` with its record; None when the object is excluded,
    /// already patched by curfew, or already as the patch would make it.
    pub fn stop_patch(&self, patch: &Value, now: DateTime<Utc>) -> Option<Value> {
        if excluded(&self.annotations) || self.recorded().is_some() || holds(&self.object, patch) {
            return None;
        }
        let record = json!({"patch": patch, "inverse": inverse(&self.object, patch)});
        let mut write = patch.clone();
        write["metadata"] = self.metadata(json!({
            ORIGINAL_PATCH: record.to_string(),
            STOPPED_AT: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        }));
        Some(write)
    }

    /// The write that undoes curfew's patch: its inverse if every field it set still holds
    /// what it set; else (a person changed one since, or the record is unreadable) only
    /// the record goes. None when curfew recorded nothing.
    pub fn start_patch(&self) -> Option<(Value, Restore)> {
        self.recorded()?;
        let forget = self.metadata(json!({ORIGINAL_PATCH: null, STOPPED_AT: null}));
        match self.record() {
            Some(r) if holds(&self.object, &r.patch) => {
                let mut write = r.inverse;
                if !write.is_object() {
                    return Some((json!({"metadata": forget}), Restore::LeftAsChanged));
                }
                write["metadata"] = forget;
                Some((write, Restore::Restored))
            }
            _ => Some((json!({"metadata": forget}), Restore::LeftAsChanged)),
        }
    }
}

/// One object of a kind curfew scales through its scale subresource (an Argo Rollout):
/// its original replicas are recorded on the object itself, as a Deployment's are
/// ([`ORIGINAL_REPLICAS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Scaled {
    pub target: Target,
    pub name: String,
    /// The object's resourceVersion, which its Scale shares.
    pub resource_version: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// The Scale's `spec.replicas`.
    pub replicas: i64,
}

/// What a start does to a [`Scaled`] object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaledStart {
    /// Scale it back to these replicas, then drop the record.
    Restore(i64),
    /// Changed since the stop (or the record is unreadable): only drop the record.
    Forget,
}

impl Scaled {
    /// From the object and its Scale (`autoscaling/v1`).
    pub fn from_json(target: Target, object: &Value, scale: &Value) -> Scaled {
        let patched = Patched::from_json(target, object.clone());
        Scaled {
            target: patched.target,
            name: patched.name,
            resource_version: scale["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
                .or(patched.resource_version),
            annotations: patched.annotations,
            replicas: scale["spec"]["replicas"].as_i64().unwrap_or(0),
        }
    }

    pub fn recorded(&self) -> Option<&str> {
        self.annotations.get(ORIGINAL_REPLICAS).map(String::as_str)
    }

    /// The write that records the replicas before the scale to zero; None when there is
    /// nothing to stop (excluded, at zero, or already recorded: a record on an object
    /// that runs was put back by someone, and curfew does not fight them).
    pub fn stop_record(&self, now: DateTime<Utc>) -> Option<Value> {
        if excluded(&self.annotations) || self.replicas <= 0 || self.recorded().is_some() {
            return None;
        }
        Some(json!({"metadata": {
            "resourceVersion": self.resource_version,
            "annotations": {
                ORIGINAL_REPLICAS: self.replicas.to_string(),
                STOPPED_AT: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            },
        }}))
    }

    /// The Scale patch to `replicas`, on the resourceVersion it was decided on.
    pub fn scale_to(&self, replicas: i64) -> Value {
        json!({"metadata": {"resourceVersion": self.resource_version}, "spec": {"replicas": replicas}})
    }

    /// What a start does: restore the recorded replicas if it is still at zero, else
    /// leave it; None when curfew recorded nothing.
    pub fn start(&self) -> Option<ScaledStart> {
        if excluded(&self.annotations) {
            return None;
        }
        let recorded = self.recorded()?;
        Some(match recorded.trim().parse::<i64>() {
            Ok(r) if r >= 0 && self.replicas == 0 => ScaledStart::Restore(r),
            _ => ScaledStart::Forget,
        })
    }

    /// The write that drops curfew's record.
    pub fn forget(&self) -> Value {
        json!({"metadata": {
            "resourceVersion": self.resource_version,
            "annotations": {ORIGINAL_REPLICAS: null, STOPPED_AT: null},
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_target_is_parsed_with_its_plural() {
        let t = Target::parse("argoproj.io/v1alpha1/Rollout").unwrap();
        assert_eq!(t, Target::rollouts());
        assert_eq!(
            t.path("pr-1"),
            "/apis/argoproj.io/v1alpha1/namespaces/pr-1/rollouts"
        );
        let s = Target::parse("v1/Service").unwrap();
        assert_eq!(s, Target::services());
        assert_eq!(s.path("pr-1"), "/api/v1/namespaces/pr-1/services");
        assert_eq!(
            Target::parse("networking.k8s.io/v1/Ingress")
                .unwrap()
                .plural,
            "ingresses"
        );
        assert_eq!(
            Target::parse("example.com/v1/widgets").unwrap().plural,
            "widgets"
        );
        assert!(Target::parse("Deployment").is_err());
        assert!(Target::parse("apps/v1/Deploy ment").is_err());
    }

    #[test]
    fn a_patch_may_not_touch_metadata_or_be_anything_but_a_map() {
        let t = Target::parse("apps/v1/Deployment").unwrap();
        assert!(ObjectPatch::new(t.clone(), json!({"spec": {"paused": true}})).is_ok());
        let e = ObjectPatch::new(t.clone(), json!({"metadata": {"labels": {"a": "b"}}}));
        assert!(e.unwrap_err().contains("metadata"));
        assert!(ObjectPatch::new(t.clone(), json!([1])).is_err());
        assert!(ObjectPatch::new(t.clone(), json!({})).is_err());
        let big = json!({"spec": {"x": "y".repeat(MAX_PATCH_BYTES)}});
        assert!(ObjectPatch::new(t, big).unwrap_err().contains("bytes"));
    }

    #[test]
    fn the_inverse_of_a_patch_restores_nested_fields_absent_fields_and_whole_arrays() {
        let before = json!({
            "spec": {
                "suspend": false,
                "template": {"spec": {"nodeSelector": {"pool": "big"}, "tolerations": [{"key": "a"}]}},
                "paused": null,
            },
            "other": 1,
        });
        let patch = json!({
            "spec": {
                "suspend": true,
                "template": {"spec": {"nodeSelector": {"pool": "spot", "zone": "b"}, "tolerations": [{"key": "b"}, {"key": "c"}]}},
                "minReadySeconds": 5,
                "gone": null,
            }
        });
        let inv = inverse(&before, &patch);
        assert_eq!(
            inv,
            json!({
                "spec": {
                    "suspend": false,
                    "template": {"spec": {"nodeSelector": {"pool": "big", "zone": null}, "tolerations": [{"key": "a"}]}},
                    "minReadySeconds": null,
                }
            })
        );
        let after = merged(&before, &patch);
        assert!(holds(&after, &patch));
        assert_eq!(merged(&after, &inv), merged(&before, &json!({})));
        // A field whose type the patch changes comes back as it was.
        let before = json!({"spec": {"mode": {"a": 1}}});
        let patch = json!({"spec": {"mode": "off"}});
        assert_eq!(
            merged(&merged(&before, &patch), &inverse(&before, &patch)),
            before
        );
    }

    /// JSON values without nulls (the API server stores none) of bounded depth.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            (0i64..5).prop_map(Value::from),
            "[ab]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[abc]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn json_patch_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0i64..5).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map("[abc]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        #[test]
        fn a_patch_then_its_inverse_gives_back_the_object(
            before in prop::collection::btree_map("[abc]", json_value(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            patch in prop::collection::btree_map("[abc]", json_patch_value(), 1..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ) {
            let after = merged(&before, &patch);
            prop_assert!(holds(&after, &patch));
            prop_assert_eq!(merged(&after, &inverse(&before, &patch)), before);
        }
    }

    fn deployment(spec: Value, annotations: Value) -> Patched {
        Patched::from_json(
            Target::parse("apps/v1/Deployment").unwrap(),
            json!({"metadata": {"name": "web", "resourceVersion": "7", "annotations": annotations}, "spec": spec}),
        )
    }

    #[test]
    fn a_start_undoes_the_patch_unless_a_person_changed_what_it_set() {
        let now = "2026-11-26T19:00:00Z".parse().unwrap();
        let patch = json!({"spec": {"template": {"spec": {"nodeSelector": {"pool": "spot"}}}}});
        let object = deployment(json!({"replicas": 2}), json!({}));
        let write = object.stop_patch(&patch, now).unwrap();
        assert_eq!(write["metadata"]["resourceVersion"], "7");
        assert_eq!(write["spec"], patch["spec"]);
        // As the API server holds it after the stop.
        let stopped = merged(&object.object, &write);
        let stopped = Patched::from_json(object.target.clone(), stopped);
        assert!(stopped.stop_patch(&patch, now).is_none(), "patched once");
        let (undo, how) = stopped.start_patch().unwrap();
        assert_eq!(how, Restore::Restored);
        let started = merged(&stopped.object, &undo);
        assert_eq!(started["spec"], json!({"replicas": 2}));
        assert_eq!(started["metadata"]["annotations"], json!({}));
        // A person set another pool meanwhile: left as it is, the record dropped.
        let mut edited = stopped.object.clone();
        edited["spec"]["template"]["spec"]["nodeSelector"]["pool"] = json!("big");
        let edited = Patched::from_json(object.target.clone(), edited);
        let (undo, how) = edited.start_patch().unwrap();
        assert_eq!(how, Restore::LeftAsChanged);
        assert_eq!(
            merged(&edited.object, &undo)["spec"]["template"]["spec"]["nodeSelector"],
            json!({"pool": "big"})
        );
        // Nothing recorded, nothing to start.
        assert!(object.start_patch().is_none());
    }

    #[test]
    fn a_load_balancer_is_released_without_its_node_ports_and_restored_with_them() {
        let service = json!({
            "metadata": {"name": "web"},
            "spec": {
                "type": "LoadBalancer", "clusterIP": "10.0.0.7",
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 31080, "protocol": "TCP"}],
                "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                "loadBalancerClass": "example.com/lb", "allocateLoadBalancerNodePorts": true,
            },
        });
        let release = release_patch(&service).unwrap();
        let released = merged(&service, &release);
        assert_eq!(
            released["spec"],
            json!({
                "type": "ClusterIP", "clusterIP": "10.0.0.7",
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            })
        );
        assert_eq!(merged(&released, &inverse(&service, &release)), service);
        assert!(release_patch(&released).is_none());
    }
}
