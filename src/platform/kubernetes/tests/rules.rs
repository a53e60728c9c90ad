//! What a real API server and real controllers do that the adapter must live with, one
//! scenario per rule the fake server enforces (see [`super::fake`]): Event validation,
//! pods that curfew's kinds do not explain, a StatefulSet's volumes, field managers, the
//! CronJob controller's missed runs, a slow server for the Lease, expiring list pages,
//! admission control, and the cluster's own namespaces.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::super::*;
use super::fake::{
    FakeApi, Fixture, Policy, Then, cron_job, cron_job_with_run, deployment, job_pod, namespace,
    pod, pod_template, replica_set, stateful_set,
};
use super::{adapter_with, listed, now, options, patched};
use crate::clock::ManualClock;
use crate::platform::{EnvState, Environment, Revert};

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// The adapter of the other scenarios, in a cluster where curfew runs in `curfew`.
fn adapter(fake: &FakeApi) -> Kubernetes {
    let options = KubernetesOptions {
        own_namespace: Some("curfew".into()),
        ..options()
    };
    adapter_with(fake, options, Arc::new(Alone))
}

fn cost(env: &Environment) -> f64 {
    env.hourly_cost.unwrap()
}

// Item 1: Events.

#[tokio::test]
async fn the_api_server_refuses_an_event_about_a_namespace_that_names_no_namespace() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "pr-1.curfew.", "namespace": "pr-1"},
        "eventTime": "2026-11-26T10:00:00.000000Z", "type": "Normal", "reason": "Stopped",
        "action": "Stop", "note": "n", "reportingController": "curfew.dev/curfew",
        "reportingInstance": "curfew-a",
        "regarding": {"apiVersion": "v1", "kind": "Namespace", "name": "pr-1"},
    }))
    .unwrap();
    let refused = Api::<Event>::namespaced(fake.client(), "pr-1")
        .create(&PostParams::default(), &event)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("{refused}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains(
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
        ),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn every_event_curfew_posts_is_one_the_api_server_accepts() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 2));
    fake.put(stateful_set("pr-1", "db", 1).owned_by("kafka.strimzi.io/v1", "Kafka", "db"));
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    k8s.start("pr-1").await.unwrap();
    k8s.note(
        "pr-1",
        "DeleteWarning",
        "pr-1 will be deleted at 2026-11-27 10:00 UTC",
    )
    .await;
    k8s.delete("pr-1").await.unwrap();
    let events = fake.events();
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "NotStopped",
            "Stopped",
            "Started",
            "DeleteWarning",
            "Deleted"
        ],
        "each was validated as kube-apiserver validates it"
    );
    for e in &events {
        assert_eq!(e["metadata"]["namespace"], "pr-1");
        assert_eq!(e["regarding"]["namespace"], "pr-1", "{e}");
    }
    assert_eq!(events[0]["regarding"]["kind"], "StatefulSet");
    assert_eq!(events[1]["regarding"]["kind"], "Namespace");
}

// Item 2: pods that curfew's kinds do not explain.

/// A ReplicaSet of a kind curfew neither lists nor scales (an operator's `Worker`) and its
/// pods, and a DaemonSet's pod.
fn unscaled(fake: &FakeApi, ns: &str) {
    fake.put(
        replica_set(ns, "web-5d8f", "2026-11-20T08:00:00Z").owned_by(
            "example.com/v1",
            "Worker",
            "web",
        ),
    );
    for i in 0..2 {
        fake.put(pod(ns, &format!("web-5d8f-{i}")).owned_by("apps/v1", "ReplicaSet", "web-5d8f"));
    }
    fake.put(pod(ns, "agent-x").owned_by("apps/v1", "DaemonSet", "agent"));
}

#[tokio::test]
async fn a_namespace_whose_pods_curfew_does_not_scale_is_never_read_as_stopped() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    unscaled(&fake, "pr-1");
    let k8s = adapter(&fake);
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(
        env.state,
        EnvState::Unknown,
        "nothing curfew stops runs, but pods do: left alone, never deleted"
    );
    let unstoppable = env.unstoppable.as_deref().unwrap();
    assert!(
        unstoppable.starts_with(
            "3 pods that curfew does not stop: DaemonSet/agent ×1, Worker/web ×2; they ask for 1.50 vCPU and 3.00 GiB"
        ),
        "{unstoppable}"
    );
    assert_eq!(cost(&env), 0.0, "a stop saves nothing here");
}

#[tokio::test]
async fn a_namespace_curfew_stopped_around_a_database_it_cannot_stop_is_stopped_but_in_use() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 2));
    // A CloudNativePG cluster: its pods are the Cluster's own.
    fake.put(pod("pr-1", "db-1").owned_by("postgresql.cnpg.io/v1", "Cluster", "db"));
    let k8s = adapter(&fake);
    let running = listed(&k8s, "pr-1").await;
    assert_eq!(running.state, EnvState::Running);
    assert!(
        running
            .unstoppable
            .as_deref()
            .unwrap()
            .contains("Cluster/db ×1")
    );
    // 2 × (0.25 × 0.04 + 0.5 × 0.005): the database is not what a stop saves.
    assert!((cost(&running) - 0.025).abs() < 1e-9, "{}", cost(&running));

    k8s.stop("pr-1").await.unwrap();
    let stopped = listed(&k8s, "pr-1").await;
    assert_eq!(stopped.state, EnvState::Stopped, "so that the start comes");
    assert_eq!(
        stopped.platform_state.as_deref(),
        Some("Active; scaled to zero by curfew, but pods it cannot stop run")
    );
    assert!(
        stopped.unstoppable.is_some(),
        "so never deleted for being stopped"
    );
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 2);
}

// Item 3: a StatefulSet whose volumes a scale to zero deletes.

fn deletes_volumes(s: Value) -> Value {
    let mut s = s;
    s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Delete");
    s
}

#[tokio::test]
async fn a_stateful_set_whose_volumes_a_stop_would_delete_is_not_scaled() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 1));
    fake.put(deletes_volumes(stateful_set("pr-1", "db", 2)));
    let claims = ["data-db-0", "data-db-1"];
    assert_eq!(fake.names("persistentvolumeclaims", "pr-1"), claims);
    let k8s = adapter(&fake);

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(patched(&fake), ["deployments/web"]);
    assert_eq!(fake.replicas("statefulsets", "pr-1", "db"), 2);
    assert_eq!(
        fake.names("persistentvolumeclaims", "pr-1"),
        claims,
        "the preview's database is still there"
    );
    let warning = &fake.events()[0];
    assert_eq!(
        (warning["type"].as_str(), warning["reason"].as_str()),
        (Some("Warning"), Some("NotStopped"))
    );
    assert_eq!(warning["regarding"]["name"], "db");
    assert!(warning["note"].as_str().unwrap().contains(
        "whenScaled: Delete; annotate it curfew.dev/allow-volume-deletion=true to accept"
    ));
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Stopped);
    assert!(
        env.unstoppable
            .as_deref()
            .unwrap()
            .contains("statefulsets/db (at zero its PersistentVolumeClaims would be deleted"),
        "{:?}",
        env.unstoppable
    );

    // Its owners accept it: scaled, and the StatefulSet controller deletes the claims.
    fake.store().edit("statefulsets", "pr-1", "db", |s| {
        s["metadata"]["annotations"] = json!({ALLOW_VOLUME_DELETION: "true"});
    });
    k8s.stop("pr-1").await.unwrap();
    assert_eq!(fake.replicas("statefulsets", "pr-1", "db"), 0);
    assert!(fake.names("persistentvolumeclaims", "pr-1").is_empty());
}

// Item 4: leader election under a slow API server.

fn election(fake: &FakeApi, identity: &str) -> Election {
    Election::new(
        fake.client(),
        ElectionOptions::new("curfew", "curfew", identity),
        Arc::new(ManualClock::new(now())),
    )
}

#[tokio::test(start_paused = true)]
async fn a_lease_record_counts_from_when_its_answer_arrived() {
    let fake = FakeApi::new();
    let a = election(&fake, "curfew-a");
    assert!(a.try_acquire_or_renew().await.unwrap());
    // B's first read is answered at once, but the answer takes 8 s to reach B.
    let mut slow = true;
    fake.on(move |seen, _| {
        if seen.resource == "leases" && seen.verb() == "get" && std::mem::take(&mut slow) {
            return Then::Slow(Duration::from_secs(8));
        }
        Then::Proceed
    });
    let b = Election::new(
        fake.client(),
        ElectionOptions {
            request_timeout: Duration::from_secs(10),
            ..ElectionOptions::new("curfew", "curfew", "curfew-b")
        },
        Arc::new(ManualClock::new(now())),
    );
    assert!(!b.try_acquire_or_renew().await.unwrap());
    // 16 s after B asked, 8 s after it learnt of A's record: A's 15 s are not over.
    tokio::time::advance(Duration::from_secs(8)).await;
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "the record is 8 s old to B, not 16"
    );
    tokio::time::advance(Duration::from_secs(8)).await;
    assert!(b.try_acquire_or_renew().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_lease_request_that_hangs_gives_up_after_its_timeout() {
    let fake = FakeApi::new();
    let a = election(&fake, "curfew-a");
    assert!(a.try_acquire_or_renew().await.unwrap());
    fake.on(|seen, _| match seen.resource.as_str() {
        "leases" => Then::Wait(Duration::from_secs(30)),
        _ => Then::Proceed,
    });
    tokio::time::advance(Duration::from_secs(2)).await;
    let started = tokio::time::Instant::now();
    let e = a.try_acquire_or_renew().await.unwrap_err();
    assert!(e.to_string().contains("no answer within 2s"), "{e}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(
        a.is_leader(),
        "4 s after the last renewal: still within its 10 s"
    );
}

#[tokio::test]
async fn a_namespace_changed_since_it_was_checked_is_not_deleted() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    let mut raced = false;
    fake.on(move |seen, store| {
        if seen.verb() == "delete" && !std::mem::replace(&mut raced, true) {
            // Someone protects it between curfew's check and its delete.
            store.edit("namespaces", "", "pr-1", |n| {
                n["metadata"]["annotations"]["curfew.dev/protect"] = json!("true");
            });
        }
        Then::Proceed
    });
    let e = adapter(&fake).delete("pr-1").await.unwrap_err();
    assert!(e.retryable, "{e}");
    assert!(e.message.contains("changed since curfew checked it"), "{e}");
    assert!(e.message.contains("ResourceVersion in precondition"), "{e}");
    assert_eq!(
        fake.object("namespaces", "", "pr-1")["status"]["phase"],
        "Active"
    );
}

// Item 5: server-side apply and GitOps.

/// pr-1 with web (3, its replicas applied by Argo CD) and worker (1), stopped by curfew.
async fn stopped_under_argo(fake: &FakeApi) -> (Kubernetes, Value) {
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 3));
    fake.put(deployment("pr-1", "worker", 1));
    let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}});
    fake.apply(
        "deployments",
        "pr-1",
        "web",
        "argocd-controller",
        false,
        &manifest,
    )
    .unwrap();
    let k8s = adapter(fake);
    k8s.stop("pr-1").await.unwrap();
    (k8s, manifest)
}

/// Argo CD forces web back (self-heal) at 10:05, to the manifest's 3 replicas.
fn argo_puts_web_back(fake: &FakeApi, manifest: &Value) {
    fake.set_now(at("2026-11-26T10:05:00Z"));
    fake.apply(
        "deployments",
        "pr-1",
        "web",
        "argocd-controller",
        true,
        manifest,
    )
    .unwrap();
}

#[tokio::test]
async fn curfews_stop_makes_it_the_manager_of_replicas_and_a_server_side_apply_conflicts() {
    let fake = FakeApi::new();
    let (_, manifest) = stopped_under_argo(&fake).await;
    let managers: Vec<Value> =
        fake.object("deployments", "pr-1", "web")["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .clone();
    let owner_of_replicas: Vec<&str> = managers
        .iter()
        .filter(|m| m["fieldsV1"]["f:spec"]["f:replicas"].is_object())
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(
        owner_of_replicas,
        ["curfew"],
        "the merge patch made curfew its manager"
    );
    // CI applies the manifest while the environment sleeps: a conflict, as on a cluster.
    let conflict = fake
        .apply("deployments", "pr-1", "web", "ci", false, &manifest)
        .unwrap_err();
    assert_eq!(
        conflict,
        "Apply failed with 1 conflict: conflict with \"curfew\" using apps/v1: .spec.replicas"
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
}

#[tokio::test]
async fn a_gitops_tool_that_puts_replicas_back_is_reported_as_a_revert_and_the_next_stop_records_afresh()
 {
    let fake = FakeApi::new();
    let (k8s, manifest) = stopped_under_argo(&fake).await;
    argo_puts_web_back(&fake, &manifest);
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Running, "so no savings are counted");
    assert_eq!(
        env.platform_state.as_deref(),
        Some(
            "Active; 1 of 2 workloads running; deployments/web scaled back to 3 by argocd-controller (Apply) after curfew stopped it"
        )
    );
    assert_eq!(
        env.last_deployed_at,
        Some(at("2026-11-26T10:05:00Z")),
        "a sync is a deployment: the idle clock starts again"
    );
    // The revert, for the ledger and curfew_reverted_total: who, and when (managedFields).
    assert_eq!(
        env.reverted.as_deref(),
        Some(&Revert {
            by: "argocd-controller (Apply)".into(),
            at: Some(at("2026-11-26T10:05:00Z")),
            still_stopped: 1,
        }),
        "worker is still stopped"
    );

    // The policy asks for no stop before the rule's next boundary (reconcile's tests);
    // the next boundary's stop stops it again, its record made afresh from what runs now.
    fake.forget_log();
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(
        patched(&fake),
        ["deployments/web"],
        "worker was still stopped"
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
    assert_eq!(
        fake.annotation("deployments", "pr-1", "web", ORIGINAL_REPLICAS)
            .as_deref(),
        Some("3")
    );
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Stopped);
    assert_eq!(env.reverted, None);
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 3);
    assert_eq!(fake.replicas("deployments", "pr-1", "worker"), 1);
}

/// One workload of two put back by Argo CD: the namespace runs in part, and a start (which
/// the policy asks for in the rule's running time) brings back the one still at 0 and
/// leaves the one put back at the count it was put back to.
#[tokio::test]
async fn a_start_of_a_namespace_put_back_in_part_brings_back_the_rest_and_keeps_what_was_put_back()
{
    let fake = FakeApi::new();
    let (k8s, manifest) = stopped_under_argo(&fake).await;
    argo_puts_web_back(&fake, &manifest);
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Running);
    assert_eq!(env.reverted.as_ref().map(|r| r.still_stopped), Some(1));
    fake.forget_log();
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("deployments", "pr-1", "worker"), 1);
    assert_eq!(
        fake.replicas("deployments", "pr-1", "web"),
        3,
        "left as put back"
    );
    for name in ["web", "worker"] {
        assert_eq!(
            fake.annotation("deployments", "pr-1", name, ORIGINAL_REPLICAS),
            None,
            "curfew's record taken off {name}"
        );
    }
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Running);
    assert_eq!(env.reverted, None, "nothing of curfew's stop is left");
}

// Item 6: the admission policy.

pub(super) fn shipped_policy() -> Policy {
    let dir = format!(
        "{}/deploy/kubernetes/components/admission-policy",
        env!("CARGO_MANIFEST_DIR")
    );
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
    Policy::load(
        &read("validatingadmissionpolicy.yaml"),
        &read("validatingadmissionpolicybinding.yaml"),
    )
}

pub(super) const CURFEW: &str = "system:serviceaccount:curfew:curfew";

#[tokio::test]
async fn the_shipped_admission_policy_admits_every_write_curfew_makes() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 3));
    fake.put(stateful_set("pr-1", "db", 1));
    fake.put(cron_job("pr-1", "report", false));
    fake.admit_with(shipped_policy(), CURFEW);
    let k8s = adapter(&fake);
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert!(fake.suspended("pr-1", "report"));
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    k8s.note("pr-1", "DeleteWarning", "soon").await;
    assert_eq!(k8s.delete("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(patched(&fake).len(), 6, "3 stopped, 3 started");
    assert_eq!(
        fake.events().len(),
        4,
        "Stopped, Started, DeleteWarning, Deleted"
    );
}

#[tokio::test]
async fn the_shipped_admission_policy_refuses_any_other_change_and_any_other_namespace() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}));
    fake.put(deployment("pr-1", "web", 3));
    fake.put(deployment("kube-system", "coredns", 2));
    fake.admit_with(shipped_policy(), CURFEW);
    let client = fake.client();
    let deployments = |ns: &str| Api::<Deployment>::namespaced(client.clone(), ns);
    let patch = |body: Value| Patch::Merge(body);
    let refused = |r: Result<Deployment, kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 403 => s.message,
        other => panic!("not refused: {other:?}"),
    };
    let cases = [
        (
            deployments("kube-system")
                .patch(
                    "coredns",
                    &PatchParams::default(),
                    &patch(json!({"spec": {"replicas": 0}})),
                )
                .await,
            "curfew acts only in namespaces labelled curfew.dev/preview=true",
        ),
        (
            deployments("pr-1")
                .patch(
                    "web",
                    &PatchParams::default(),
                    &patch(json!({"spec": {"template": pod_template("8", "64Gi")}})),
                )
                .await,
            "curfew changes only replicas",
        ),
        (
            deployments("pr-1")
                .patch(
                    "web",
                    &PatchParams::default(),
                    &patch(json!({"metadata": {"labels": {"team": "x"}}})),
                )
                .await,
            "curfew changes no label",
        ),
        (
            deployments("pr-1")
                .patch(
                    "web",
                    &PatchParams::default(),
                    &patch(json!({"metadata": {"annotations": {"other/x": "1"}}})),
                )
                .await,
            "curfew changes only its own annotations",
        ),
    ];
    for (result, message) in cases {
        let denial = refused(result);
        assert!(
            denial.contains("ValidatingAdmissionPolicy 'curfew-scope' with binding 'curfew-scope' denied request: ")
                && denial.contains(message),
            "{denial}"
        );
    }
}

#[tokio::test]
async fn the_shipped_admission_policy_lets_curfew_delete_only_previews_and_holds_no_one_else() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-2").annotated("curfew.dev/protect", "true"));
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}));
    fake.put(deployment("kube-system", "coredns", 2));
    fake.admit_with(shipped_policy(), CURFEW);
    let client = fake.client();
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    for (ns, message) in [
        ("kube-system", "curfew acts only in namespaces labelled"),
        ("pr-2", "the namespace is protected"),
    ] {
        let e = namespaces
            .delete(ns, &Default::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains(message), "{ns}: {e}");
    }
    // Nobody else is held to it (the match condition), and curfew's own writes pass.
    fake.admit_with(
        shipped_policy(),
        "system:serviceaccount:argocd:argocd-application-controller",
    );
    Api::<Deployment>::namespaced(client, "kube-system")
        .patch(
            "coredns",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(fake.replicas("deployments", "kube-system", "coredns"), 1);
}

// Item 7: the cluster's own namespaces and curfew's.

#[tokio::test]
async fn the_clusters_own_namespaces_and_curfews_are_never_environments() {
    let fake = FakeApi::new();
    for name in [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "default",
        "curfew",
        "pr-1",
    ] {
        fake.put(namespace(name));
        fake.put(deployment(name, "app", 1));
    }
    let k8s = adapter(&fake);
    let listed: Vec<String> = k8s
        .list()
        .await
        .unwrap()
        .environments
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(listed, ["pr-1"], "although the selector chose them all");
    for name in ["kube-system", "default", "curfew"] {
        assert_eq!(k8s.stop(name).await, Ok(Outcome::Gone));
        assert_eq!(k8s.delete(name).await, Ok(Outcome::Gone));
    }
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[test]
fn a_selector_must_require_a_label() {
    for ok in [
        "curfew.dev/preview=true",
        "curfew.dev/preview",
        "env in (preview, review)",
        "curfew.dev/preview==true,team!=billing",
    ] {
        assert_eq!(selector_requires_a_label(ok), Ok(()), "{ok}");
    }
    for refused in [
        "!production",
        "tier!=prod",
        "team notin (billing, core)",
        "!a,b!=c",
    ] {
        let e = selector_requires_a_label(refused).unwrap_err().to_string();
        assert!(e.contains("requires no label"), "{refused}: {e}");
    }
}

// Item 8: CronJobs.

#[tokio::test]
async fn a_running_job_of_a_suspended_cron_job_keeps_the_namespace_stopping() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(cron_job_with_run("pr-1", "report", "report-29400"));
    fake.put(job_pod("pr-1", "report-29400"));
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    assert!(fake.suspended("pr-1", "report"));
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Stopping, "its pod still runs");
    assert_eq!(
        env.platform_state.as_deref(),
        Some("Active; scaled to zero, 1 pods left")
    );
    fake.store().remove("pods", "pr-1", "report-29400-x1");
    assert_eq!(listed(&k8s, "pr-1").await.state, EnvState::Stopped);
}

#[tokio::test]
async fn a_cron_job_curfew_resumes_does_not_start_the_run_it_missed() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    let mut hourly = cron_job("pr-1", "report", false);
    hourly["spec"]["schedule"] = json!("*/60 * * * *");
    fake.put(hourly);
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    assert_eq!(
        fake.annotation("cronjobs", "pr-1", "report", ORIGINAL_STARTING_DEADLINE)
            .as_deref(),
        Some("none")
    );
    fake.set_now(at("2026-11-26T18:30:00Z"));
    assert!(fake.cron_sync().is_empty(), "suspended");
    k8s.start("pr-1").await.unwrap();
    assert!(!fake.suspended("pr-1", "report"));
    assert_eq!(
        fake.object("cronjobs", "pr-1", "report")["spec"]["startingDeadlineSeconds"],
        STARTING_DEADLINE_SECONDS,
        "kept: removing it would start the 18:00 run at once"
    );
    assert!(
        fake.cron_sync().is_empty(),
        "the 18:00 run is not started at 18:30"
    );
    fake.set_now(at("2026-11-26T19:00:20Z"));
    assert_eq!(fake.cron_sync().len(), 1, "the 19:00 run is, on time");

    // Without the deadline, the controller starts the missed run on resume.
    fake.set_now(at("2026-11-26T21:30:00Z"));
    fake.store().edit("cronjobs", "pr-1", "report", |c| {
        c["spec"]["startingDeadlineSeconds"] = Value::Null;
    });
    assert_eq!(fake.cron_sync().len(), 1, "the 21:00 run, at 21:30");
}

// Item 9: cost from what the pods ask for.

#[tokio::test]
async fn cost_is_what_the_running_pods_ask_for_as_the_api_server_admitted_them() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1").labelled("istio-injection", "enabled"));
    fake.put(json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "defaults", "namespace": "pr-1"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "200m", "memory": "256Mi"}}]},
    }));
    // Its template asks for nothing: 0 from the template alone.
    let mut web = deployment("pr-1", "web", 2);
    web["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({});
    fake.put(web);
    let env = listed(&adapter(&fake), "pr-1").await;
    // Each pod: the LimitRange's 200m and 256Mi, and Istio's sidecar, 100m and 128Mi.
    let per_pod = 0.3 * 0.04 + 0.375 * 0.005;
    assert!((cost(&env) - 2.0 * per_pod).abs() < 1e-9, "{}", cost(&env));
}

// Item 10: workloads another controller owns.

#[tokio::test]
async fn a_workload_an_operator_controls_is_not_scaled_and_is_reported() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 1));
    fake.put(stateful_set("pr-1", "events-kafka", 3).owned_by(
        "kafka.strimzi.io/v1beta2",
        "Kafka",
        "events",
    ));
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    assert_eq!(patched(&fake), ["deployments/web"]);
    assert_eq!(fake.replicas("statefulsets", "pr-1", "events-kafka"), 3);
    let stopped = fake
        .events()
        .into_iter()
        .find(|e| e["reason"] == "Stopped")
        .unwrap();
    assert!(
        stopped["note"]
            .as_str()
            .unwrap()
            .contains("not stopped: statefulsets/events-kafka (controlled by Kafka/events, whose controller would undo a scale to zero)"),
        "{stopped}"
    );
    let env = listed(&k8s, "pr-1").await;
    assert!(
        env.unstoppable
            .as_deref()
            .unwrap()
            .contains("statefulsets/events-kafka (controlled by Kafka/events")
    );
}

// Low: protection, Terminating, expired pages, admission's 403, the traffic query.

#[tokio::test]
async fn a_namespace_protected_since_the_listing_is_neither_stopped_nor_started() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1").annotated(DOWNSCALER_EXCLUDE, "true"));
    fake.put(deployment("pr-1", "web", 2));
    let k8s = adapter(&fake);
    for e in [k8s.stop("pr-1").await, k8s.start("pr-1").await] {
        let e = e.unwrap_err();
        assert!(!e.retryable && e.message.contains("is protected"), "{e}");
    }
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_namespace_stuck_terminating_says_what_holds_it_and_what_is_left() {
    let fake = FakeApi::new();
    let mut ns = namespace("pr-1");
    ns["metadata"]["deletionTimestamp"] = json!("2026-11-25T09:00:00Z");
    ns["status"] = json!({"phase": "Terminating", "conditions": [
        {"type": "NamespaceFinalizersRemaining", "status": "True", "message": "Some content in the namespace has finalizers remaining: kubernetes.io/pvc-protection in 1 resource instances"},
        {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "message": "All resources successfully discovered"},
    ]});
    fake.put(ns);
    fake.put(pod("pr-1", "stuck"));
    let env = listed(&adapter(&fake), "pr-1").await;
    assert_eq!(env.state, EnvState::Deleting);
    assert_eq!(
        env.platform_state.as_deref(),
        Some(
            "Terminating since 2026-11-25T09:00:00Z; NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: kubernetes.io/pvc-protection in 1 resource instances; 1 pods left"
        )
    );
    assert!(
        (cost(&env) - (0.5 * 0.04 + 0.005)).abs() < 1e-9,
        "what is left costs"
    );
}

#[tokio::test]
async fn an_expired_continue_token_starts_the_list_again() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-big"));
    for i in 0..600 {
        fake.put(deployment("pr-big", &format!("svc-{i:03}"), 1));
    }
    // etcd compacts between the first page and the second.
    fake.on({
        let mut first = true;
        move |seen, store| {
            if seen.resource == "deployments"
                && seen.query.contains_key("continue")
                && std::mem::take(&mut first)
            {
                store.compact();
            }
            Then::Proceed
        }
    });
    let k8s = adapter(&fake);
    assert_eq!(k8s.stop("pr-big").await, Ok(Outcome::Accepted));
    assert_eq!(patched(&fake).len(), 600, "each once, after a full list");
    let pages: Vec<bool> = fake
        .log()
        .iter()
        .filter(|s| s.resource == "deployments" && s.verb() == "list")
        .map(|s| s.query.contains_key("continue"))
        .collect();
    assert_eq!(
        pages,
        [false, true, false, true],
        "410 on page 2: from the top again"
    );
}

#[tokio::test]
async fn a_403_from_admission_control_is_not_blamed_on_the_cluster_role() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 1));
    fake.on(|seen, _| match seen.verb() {
        "patch" => Then::Fail(
            403,
            "admission webhook \"validate.kyverno.svc\" denied the request: replicas are managed by policy",
        ),
        _ => Then::Proceed,
    });
    let e = adapter(&fake).stop("pr-1").await.unwrap_err();
    assert!(!e.retryable);
    assert!(
        e.message
            .contains("refused by the cluster's admission control"),
        "{e}"
    );
    assert!(e.message.contains("not curfew's ClusterRole"), "{e}");
}

#[tokio::test]
async fn the_traffic_query_looks_back_the_whole_lookback_once_then_only_since_its_last_answer() {
    use axum::extract::Query;
    use std::collections::HashMap;
    let (tx, mut queries) = tokio::sync::mpsc::unbounded_channel();
    let answers = Arc::new(std::sync::Mutex::new(vec![
        json!([{"metric": {"namespace": "pr-1"}, "value": [0.0, "1795680000"]}]),
        json!([{"metric": {"namespace": "pr-2"}, "value": [0.0, "1795686000"]}]),
    ]));
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
            let _ = tx.send(q.get("query").cloned().unwrap_or_default());
            let result = answers.lock().unwrap().remove(0);
            async move { axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let traffic = traffic::Traffic::new(
        TrafficOptions {
            prometheus_url: url,
            query: "sum by (namespace) (rate(x[5m]))".into(),
            namespace_label: "namespace".into(),
            lookback: Duration::from_secs(7 * 86_400),
            min_rate: 0.0,
        },
        Duration::from_secs(5),
    )
    .unwrap();
    let first = traffic.last_requests(now()).await.unwrap();
    assert!(queries.recv().await.unwrap().ends_with("[604800s:300s]))"));
    assert_eq!(first.len(), 1);
    let second = traffic
        .last_requests(now() + chrono::TimeDelta::seconds(60))
        .await
        .unwrap();
    assert!(
        queries.recv().await.unwrap().ends_with("[600s:300s]))"),
        "a minute since the last answer: two steps back, not seven days"
    );
    assert_eq!(second.len(), 2, "what the first answer said is remembered");
    assert_eq!(second["pr-1"].timestamp(), 1_795_680_000);
}
