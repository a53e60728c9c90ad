//! More kinds against the fake API server: an Argo Rollout scaled through its scale
//! subresource and restored exactly, a rule's merge patch and its inverse, a person's edit
//! in between left alone, and a LoadBalancer Service released while asleep and restored.

use std::sync::Arc;

use serde_json::{Value, json};

use super::fake::{FakeApi, deployment, namespace, pod_template};
use super::{adapter_with, listed, options};
use crate::platform::kubernetes::*;
use crate::platform::{EnvState, Environment, Outcome, Platform};

/// The rules, as the daemon would answer: every environment under these extras.
pub(super) struct Rules(pub(super) Extras);

impl WakeRouting for Rules {
    fn wakes_on_request(&self, _environment: &Environment) -> bool {
        false
    }
    fn extras(&self, _environment: &Environment) -> Extras {
        self.0.clone()
    }
    fn patched_kinds(&self) -> Vec<Target> {
        let mut kinds: Vec<Target> = self.0.patches.iter().map(|p| p.target.clone()).collect();
        if self.0.release_load_balancers {
            kinds.push(Target::services());
        }
        kinds
    }
}

pub(super) fn under(fake: &FakeApi, extras: Extras) -> Kubernetes {
    let k8s = adapter_with(fake, options(), Arc::new(Alone));
    k8s.route_wakes(Arc::new(Rules(extras)));
    k8s
}

pub(super) fn rollout(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas, "strategy": {"canary": {}},
            "selector": {"matchLabels": {"app": "x"}},
            "template": pod_template("250m", "512Mi"),
        },
        "status": {"replicas": replicas},
    })
}

pub(super) fn load_balancer(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "LoadBalancer", "clusterIP": "10.0.0.7",
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 31080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "nodePort": 31443, "protocol": "TCP"},
            ],
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "allocateLoadBalancerNodePorts": true,
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
        },
    })
}

fn node_selector_patch() -> ObjectPatch {
    ObjectPatch::new(
        Target::parse("apps/v1/Deployment").unwrap(),
        json!({"spec": {"template": {"spec": {
            "nodeSelector": {"pool": "spot"},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
        }}}}),
    )
    .unwrap()
}

/// The object without what the API server and the controllers change on every write (an
/// emptied annotations map counts as none, as it does to the API server).
fn stable(mut object: Value) -> Value {
    if let Some(m) = object["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
        if m.get("annotations").is_some_and(|a| a == &json!({})) {
            m.remove("annotations");
        }
    }
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    object
}

#[tokio::test]
async fn a_rollout_is_scaled_to_zero_through_its_scale_and_restored_exactly() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(rollout("pr-1", "web", 3));
    let before = stable(fake.object("rollouts", "pr-1", "web"));
    let k8s = under(&fake, Extras::default());

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("rollouts", "pr-1", "web"), 0);
    assert_eq!(
        fake.annotation("rollouts", "pr-1", "web", ORIGINAL_REPLICAS),
        Some("3".into())
    );
    let scale_writes: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|w| w.resource == "rollouts/scale")
        .collect();
    assert_eq!(scale_writes.len(), 1, "the replicas go through the Scale");
    assert_eq!(
        scale_writes[0].content_type, "application/merge-patch+json",
        "a merge patch"
    );
    fake.forget_log();
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::AlreadyThereOrBusy));
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(stable(fake.object("rollouts", "pr-1", "web")), before);
}

/// A namespace whose only workload is an Argo Rollout (curfew does not list Rollouts; it
/// knows them by their ReplicaSets' controller): running while its pods run, what they
/// ask for is what a stop saves, and it is stopped and started as any other.
#[tokio::test]
async fn a_namespace_of_only_a_rollout_reads_running_and_is_stopped_and_started() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(rollout("pr-1", "web", 2));
    let k8s = under(&fake, Extras::default());
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Running, "{:?}", env.platform_state);
    assert_eq!(env.unstoppable, None, "a stop stops it");
    assert_eq!(
        env.platform_state.as_deref(),
        Some("Active; 0 of 0 workloads running; 2 pods of Rollout/web (scaled through its Scale)")
    );
    // 2 × (0.25 × 0.04 + 0.5 × 0.005).
    let cost = env.hourly_cost.unwrap_or_default();
    assert!((cost - 0.025).abs() < 1e-9, "{cost}");

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("rollouts", "pr-1", "web"), 0);
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Stopped, "{:?}", env.platform_state);

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("rollouts", "pr-1", "web"), 2);
    assert_eq!(listed(&k8s, "pr-1").await.state, EnvState::Running);
}

#[tokio::test]
async fn a_rollout_a_person_scaled_while_stopped_keeps_their_count() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(rollout("pr-1", "web", 3));
    let k8s = under(&fake, Extras::default());
    k8s.stop("pr-1").await.unwrap();
    fake.scale("rollouts", "pr-1", "web", 1);

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("rollouts", "pr-1", "web"), 1);
    assert_eq!(
        fake.annotation("rollouts", "pr-1", "web", ORIGINAL_REPLICAS),
        None,
        "the record goes"
    );
    let started = fake.events().last().unwrap()["note"].to_string();
    assert!(started.contains("left as changed"), "{started}");
}

#[tokio::test]
async fn a_rule_patch_is_applied_on_stop_and_its_exact_inverse_on_start() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    let mut web = deployment("pr-1", "web", 2);
    web["spec"]["template"]["spec"]["nodeSelector"] = json!({"pool": "big"});
    fake.put(web);
    let before = stable(fake.object("deployments", "pr-1", "web"));
    let k8s = under(
        &fake,
        Extras {
            patches: vec![node_selector_patch()],
            release_load_balancers: false,
        },
    );

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    let stopped = fake.object("deployments", "pr-1", "web");
    let pod = &stopped["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], json!({"pool": "spot"}));
    assert_eq!(pod["tolerations"][0]["key"], "spot");
    assert_eq!(stopped["spec"]["replicas"], 0, "and scaled as ever");
    let record: Value = serde_json::from_str(
        &fake
            .annotation("deployments", "pr-1", "web", ORIGINAL_PATCH)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["inverse"],
        json!({"spec": {"template": {"spec": {"nodeSelector": {"pool": "big"}, "tolerations": null}}}})
    );

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(stable(fake.object("deployments", "pr-1", "web")), before);
}

#[tokio::test]
async fn a_field_a_person_changed_after_the_patch_is_left_alone_and_said() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 2));
    let k8s = under(
        &fake,
        Extras {
            patches: vec![node_selector_patch()],
            release_load_balancers: false,
        },
    );
    k8s.stop("pr-1").await.unwrap();
    fake.store().edit("deployments", "pr-1", "web", |o| {
        o["spec"]["template"]["spec"]["nodeSelector"] = json!({"pool": "gpu"});
    });

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    let web = fake.object("deployments", "pr-1", "web");
    assert_eq!(
        web["spec"]["template"]["spec"]["nodeSelector"],
        json!({"pool": "gpu"}),
        "the person's change stays"
    );
    assert_eq!(web["spec"]["replicas"], 2, "the replicas still come back");
    assert_eq!(
        fake.annotation("deployments", "pr-1", "web", ORIGINAL_PATCH),
        None
    );
    let started = fake.events().last().unwrap()["note"].to_string();
    assert!(
        started.contains("left as changed since the stop: patched/web"),
        "{started}"
    );
}

#[tokio::test]
async fn a_load_balancer_is_released_while_asleep_and_restored_with_its_node_ports() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(load_balancer("pr-1", "web"));
    let before = stable(fake.object("services", "pr-1", "web"));
    let k8s = under(
        &fake,
        Extras {
            patches: Vec::new(),
            release_load_balancers: true,
        },
    );

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    let spec = fake.object("services", "pr-1", "web")["spec"].clone();
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["clusterIP"], "10.0.0.7", "its cluster IP kept");
    assert!(
        spec["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["nodePort"].is_null())
    );
    for field in [
        "externalTrafficPolicy",
        "healthCheckNodePort",
        "allocateLoadBalancerNodePorts",
        "loadBalancerSourceRanges",
    ] {
        assert!(spec[field].is_null(), "{field}: {spec}");
    }

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(stable(fake.object("services", "pr-1", "web")), before);
}

#[tokio::test]
async fn the_fake_refuses_a_cluster_ip_service_with_node_ports_as_the_api_server_does() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(load_balancer("pr-1", "web"));
    // Only the type changed: the API server refuses what stays of the load balancer.
    let k8s = under(&fake, Extras::default());
    let answer = k8s
        .merge_patch(
            "patch_object",
            Target::services().path("pr-1"),
            "web",
            json!({"spec": {"type": "ClusterIP"}}),
        )
        .await;
    let message = format!("{answer:?}");
    assert!(message.contains("422"), "{message}");
    assert!(
        message.contains("may not be used when `type` is 'ClusterIP'"),
        "{message}"
    );
    assert_eq!(
        fake.object("services", "pr-1", "web")["spec"]["type"],
        "LoadBalancer"
    );
}

#[tokio::test]
async fn a_cluster_without_argo_rollouts_stops_as_before() {
    let fake = FakeApi::new();
    fake.store().not_installed.push("rollouts".into());
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 2));
    let k8s = under(&fake, Extras::default());
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
}

#[tokio::test]
async fn the_shipped_admission_policy_admits_a_rollouts_record_and_a_released_load_balancer() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(rollout("pr-1", "web", 2));
    fake.put(load_balancer("pr-1", "web"));
    fake.admit_with(super::rules::shipped_policy(), super::rules::CURFEW);
    let k8s = under(
        &fake,
        Extras {
            patches: Vec::new(),
            release_load_balancers: true,
        },
    );
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("rollouts", "pr-1", "web"), 0);
    assert_eq!(
        fake.object("services", "pr-1", "web")["spec"]["type"],
        "ClusterIP"
    );
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("rollouts", "pr-1", "web"), 2);
    assert_eq!(
        fake.object("services", "pr-1", "web")["spec"]["type"],
        "LoadBalancer"
    );
    // Beyond those fields, the policy refuses.
    let k8s = under(&fake, Extras::default());
    let refused = k8s
        .merge_patch(
            "patch_object",
            Target::services().path("pr-1"),
            "web",
            json!({"spec": {"selector": {"app": "other"}}}),
        )
        .await;
    assert!(format!("{refused:?}").contains("403"), "{refused:?}");
}

/// The Scale of a Rollout goes through admission as other writes do (its own rule,
/// `rollouts/scale`): outside a preview namespace the shipped policy refuses it.
#[tokio::test]
async fn the_shipped_admission_policy_refuses_a_rollouts_scale_outside_a_preview_namespace() {
    let fake = FakeApi::new();
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-1"}}));
    fake.put(rollout("team-1", "web", 2));
    fake.admit_with(super::rules::shipped_policy(), super::rules::CURFEW);
    let request = kube::core::Request::new("/apis/argoproj.io/v1alpha1/namespaces/team-1/rollouts")
        .patch_subresource(
            "scale",
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .unwrap();
    let refused = fake.client().request_text(request).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("curfew acts only in namespaces labelled"),
        "{refused}"
    );
    assert_eq!(fake.replicas("rollouts", "team-1", "web"), 2);
}
