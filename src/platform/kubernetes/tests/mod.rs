//! The Kubernetes adapter against a fake API server at the HTTP boundary ([`fake`]):
//! named scenarios, each asserting what the cluster holds afterwards and which requests
//! were sent. Time is tokio's paused clock where it matters (leases), and a manual wall
//! clock everywhere; no test waits for real time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

mod failover;
mod fake;
mod gitops;
mod kinds;
mod rules;
mod wake;
mod watch;

use super::namespace::policy_labels;
use super::workload::{Kind, PodRequests, Restore, Workload, parse_quantity};
use super::*;
use crate::clock::ManualClock;
use crate::platform::{EnvState, Environment, Mode};
use fake::{
    FakeApi, Fixture, Then, controller_revision, cron_job, deployment, hpa, namespace, replica_set,
    stateful_set,
};

pub(super) fn now() -> DateTime<Utc> {
    "2026-11-26T10:00:00Z".parse().unwrap()
}

pub(super) fn options() -> KubernetesOptions {
    let mut o = KubernetesOptions::new("curfew.dev/preview=true");
    o.prices = Prices {
        vcpu_hour: Some(0.04),
        gib_hour: Some(0.005),
    };
    o.identity = "curfew-a".into();
    o
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(now()))
}

pub(super) fn adapter_with(
    fake: &FakeApi,
    options: KubernetesOptions,
    leader: Arc<dyn Leader>,
) -> Kubernetes {
    Kubernetes::new(fake.client(), options, clock(), leader, None).unwrap()
}

fn adapter(fake: &FakeApi) -> Kubernetes {
    adapter_with(fake, options(), Arc::new(Alone))
}

pub(super) async fn listed(k8s: &Kubernetes, id: &str) -> Environment {
    k8s.list()
        .await
        .unwrap()
        .environments
        .into_iter()
        .find(|e| &*e.id == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

/// pr-1: web (3 replicas), worker (1), idle (0, not curfew's doing), db (a StatefulSet of
/// 2), report (a CronJob), archived (a CronJob suspended by its owners), pinned (2,
/// excluded from curfew).
fn preview_with_everything(fake: &FakeApi) {
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 3));
    fake.put(deployment("pr-1", "worker", 1));
    fake.put(deployment("pr-1", "idle", 0));
    fake.put(stateful_set("pr-1", "db", 2));
    fake.put(cron_job("pr-1", "report", false));
    fake.put(cron_job("pr-1", "archived", true));
    fake.put(deployment("pr-1", "pinned", 2).annotated(EXCLUDE, "true"));
}

/// Runs `.ci/kubernetes/SCRIPT` (a validator of custom resources against their published
/// CRD schemas, from npm) over `objects`; returns whether all passed, and its lines.
pub(super) fn validate_with_node(script: &str, objects: &Value) -> (bool, String) {
    use std::io::Write;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/kubernetes");
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let mut child = std::process::Command::new(node)
        .arg(script)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(objects.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub(super) fn patched(fake: &FakeApi) -> Vec<String> {
    fake.writes()
        .iter()
        .filter(|w| w.verb() == "patch")
        .map(|w| format!("{}/{}", w.resource, w.name.clone().unwrap()))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn event_reasons(fake: &FakeApi) -> Vec<String> {
    let mut events = fake.events();
    events.sort_by_key(|e| e["metadata"]["name"].as_str().unwrap().to_string());
    events
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn stop_then_start_restores_every_replica_count_and_suspend_flag_exactly() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let k8s = adapter(&fake);

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(
        [
            fake.replicas("deployments", "pr-1", "web"),
            fake.replicas("deployments", "pr-1", "worker"),
            fake.replicas("statefulsets", "pr-1", "db"),
        ],
        [0, 0, 0]
    );
    assert!(fake.suspended("pr-1", "report"));
    let recorded =
        |resource: &str, name: &str, key: &str| fake.annotation(resource, "pr-1", name, key);
    assert_eq!(
        recorded("deployments", "web", ORIGINAL_REPLICAS).as_deref(),
        Some("3")
    );
    assert_eq!(
        recorded("deployments", "worker", ORIGINAL_REPLICAS).as_deref(),
        Some("1")
    );
    assert_eq!(
        recorded("statefulsets", "db", ORIGINAL_REPLICAS).as_deref(),
        Some("2")
    );
    assert_eq!(
        recorded("cronjobs", "report", ORIGINAL_SUSPEND).as_deref(),
        Some("false")
    );
    assert_eq!(
        recorded("deployments", "web", STOPPED_AT).as_deref(),
        Some("2026-11-26T10:00:00Z")
    );
    // Nothing to stop in `idle` and `archived`, and `pinned` is excluded: never written.
    let written: BTreeSet<String> = patched(&fake).into_iter().collect();
    assert_eq!(
        written,
        set(&[
            "cronjobs/report",
            "deployments/web",
            "deployments/worker",
            "statefulsets/db"
        ])
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "pinned"), 2);
    let env = listed(&k8s, "pr-1").await;
    assert_eq!(env.state, EnvState::Stopped);
    assert_eq!(
        env.platform_state.as_deref(),
        Some("Active; scaled to zero by curfew")
    );

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    let replicas: Vec<i64> = ["web", "worker", "idle", "pinned"]
        .iter()
        .map(|n| fake.replicas("deployments", "pr-1", n))
        .collect();
    assert_eq!(replicas, [3, 1, 0, 2]);
    assert_eq!(fake.replicas("statefulsets", "pr-1", "db"), 2);
    assert!(!fake.suspended("pr-1", "report"));
    assert!(
        fake.suspended("pr-1", "archived"),
        "suspended by its owners, and stays so"
    );
    for (resource, name) in [
        ("deployments", "web"),
        ("deployments", "worker"),
        ("statefulsets", "db"),
        ("cronjobs", "report"),
    ] {
        for key in [ORIGINAL_REPLICAS, ORIGINAL_SUSPEND, STOPPED_AT] {
            assert_eq!(
                fake.annotation(resource, "pr-1", name, key),
                None,
                "{resource}/{name} {key}"
            );
        }
    }
    assert_eq!(listed(&k8s, "pr-1").await.state, EnvState::Running);
    assert_eq!(event_reasons(&fake), ["Stopped", "Started"]);
    let stopped = &fake.events()[0];
    assert_eq!(stopped["regarding"]["kind"], "Namespace");
    assert_eq!(stopped["regarding"]["name"], "pr-1");
    assert_eq!(stopped["reportingController"], REPORTING_CONTROLLER);
}

#[tokio::test]
async fn stopping_or_starting_twice_sends_nothing_the_second_time() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    fake.forget_log();
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::AlreadyThereOrBusy));
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());

    k8s.start("pr-1").await.unwrap();
    fake.forget_log();
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::AlreadyThereOrBusy));
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test]
async fn an_hpa_managed_workload_stays_at_zero_while_stopped_and_comes_back_with_its_count() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-2"));
    fake.put(deployment("pr-2", "api", 1));
    fake.put(hpa("pr-2", "api", "api", 2, 10));
    // The HPA at work: it lifts api to its minimum.
    fake.hpa_sync();
    assert_eq!(fake.replicas("deployments", "pr-2", "api"), 2);
    let k8s = adapter(&fake);

    assert_eq!(k8s.stop("pr-2").await, Ok(Outcome::Accepted));
    fake.hpa_sync();
    assert_eq!(
        fake.replicas("deployments", "pr-2", "api"),
        0,
        "the HPA leaves a target at zero alone"
    );
    assert_eq!(listed(&k8s, "pr-2").await.state, EnvState::Stopped);

    assert_eq!(k8s.start("pr-2").await, Ok(Outcome::Accepted));
    fake.hpa_sync();
    assert_eq!(fake.replicas("deployments", "pr-2", "api"), 2);
    assert!(
        fake.log()
            .iter()
            .all(|s| s.resource != "horizontalpodautoscalers"),
        "curfew neither reads nor writes HPAs"
    );
}

#[tokio::test]
async fn a_person_who_changed_a_stopped_object_keeps_their_change() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    // Someone needs web tonight, and resumes the report.
    fake.scale("deployments", "pr-1", "web", 2);
    fake.store().edit("cronjobs", "pr-1", "report", |o| {
        o["spec"]["suspend"] = json!(false)
    });

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(
        fake.replicas("deployments", "pr-1", "web"),
        2,
        "not put back to 3"
    );
    assert!(!fake.suspended("pr-1", "report"));
    assert_eq!(
        fake.replicas("deployments", "pr-1", "worker"),
        1,
        "the others are restored"
    );
    assert_eq!(fake.replicas("statefulsets", "pr-1", "db"), 2);
    assert_eq!(
        fake.annotation("deployments", "pr-1", "web", ORIGINAL_REPLICAS),
        None
    );
    assert_eq!(
        fake.annotation("cronjobs", "pr-1", "report", ORIGINAL_SUSPEND),
        None
    );
    let started = fake
        .events()
        .into_iter()
        .find(|e| e["reason"] == "Started")
        .unwrap();
    let note = started["note"].as_str().unwrap();
    assert!(
        note.contains("left as changed since the stop: cronjobs/report, deployments/web"),
        "{note}"
    );
}

#[tokio::test]
async fn a_change_racing_a_stop_is_a_conflict_and_the_new_count_is_the_one_recorded() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let mut raced = false;
    fake.on(move |seen, store| {
        if seen.verb() == "patch" && seen.name.as_deref() == Some("web") && !raced {
            raced = true;
            // A person scales web between curfew's read and its write.
            store.edit("deployments", "pr-1", "web", |o| {
                o["spec"]["replicas"] = json!(7)
            });
        }
        Then::Proceed
    });
    let k8s = adapter(&fake);

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    let web: Vec<_> = fake
        .log()
        .into_iter()
        .filter(|s| s.name.as_deref() == Some("web"))
        .map(|s| s.verb())
        .collect();
    assert_eq!(
        web,
        ["patch", "get", "patch"],
        "409, read again, write again"
    );
    assert_eq!(
        fake.annotation("deployments", "pr-1", "web", ORIGINAL_REPLICAS)
            .as_deref(),
        Some("7")
    );
    k8s.start("pr-1").await.unwrap();
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 7);
}

#[tokio::test]
async fn an_object_that_keeps_changing_is_given_up_after_three_attempts() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    fake.on(|seen, _| match (seen.verb(), seen.name.as_deref()) {
        ("patch", Some("web")) => Then::Fail(409, "the object has been modified"),
        _ => Then::Proceed,
    });
    let k8s = adapter(&fake);

    let e = k8s.stop("pr-1").await.unwrap_err();
    assert!(e.retryable, "{e}");
    assert!(
        e.message
            .contains("deployments/web: changed by someone else at every attempt"),
        "{e}"
    );
    assert_eq!(
        patched(&fake)
            .iter()
            .filter(|p| *p == "deployments/web")
            .count(),
        3
    );
    assert_eq!(
        fake.replicas("deployments", "pr-1", "worker"),
        0,
        "the others are stopped"
    );
}

#[tokio::test]
async fn api_errors_fail_the_action_retryably_and_the_next_attempt_finishes_it() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let mut failures: BTreeMap<&str, usize> = BTreeMap::from([("web", 1), ("db", 1)]);
    fake.on(move |seen, _| {
        let left = seen
            .name
            .as_deref()
            .filter(|_| seen.verb() == "patch")
            .and_then(|n| failures.get_mut(n));
        match left {
            Some(n) if *n > 0 => {
                *n -= 1;
                Then::Fail(500, "etcdserver: request timed out")
            }
            _ => Then::Proceed,
        }
    });
    let k8s = adapter(&fake);

    let e = k8s.stop("pr-1").await.unwrap_err();
    assert!(e.retryable, "{e}");
    assert_eq!(e.operation, Operation::Stop);
    assert!(e.message.contains("2 of 7 objects failed"), "{e}");
    assert!(
        e.message
            .contains("deployments/web: 500 etcdserver: request timed out"),
        "{e}"
    );
    assert!(e.message.contains("statefulsets/db: 500"), "{e}");
    assert_eq!(fake.replicas("deployments", "pr-1", "worker"), 0);
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 3);

    fake.forget_log();
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    let written: BTreeSet<String> = patched(&fake).into_iter().collect();
    assert_eq!(written, set(&["deployments/web", "statefulsets/db"]));
    assert_eq!(
        fake.annotation("deployments", "pr-1", "web", ORIGINAL_REPLICAS)
            .as_deref(),
        Some("3")
    );
}

#[tokio::test]
async fn a_forbidden_write_is_not_retryable_and_names_the_role_to_fix() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    fake.on(|seen, _| match seen.verb() {
        "patch" => Then::Fail(403, "deployments.apps \"web\" is forbidden"),
        _ => Then::Proceed,
    });
    let e = adapter(&fake).stop("pr-1").await.unwrap_err();
    assert!(!e.retryable, "{e}");
    assert!(e.message.contains("403 forbidden"), "{e}");
    assert!(e.message.contains("ClusterRole"), "{e}");
}

#[tokio::test]
async fn a_namespace_with_hundreds_of_workloads_is_stopped_and_started_completely() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-big"));
    for i in 0..600 {
        fake.put(deployment("pr-big", &format!("svc-{i:03}"), i % 4 + 1));
    }
    for i in 0..50 {
        fake.put(cron_job("pr-big", &format!("job-{i:02}"), false));
    }
    let k8s = adapter(&fake);

    assert_eq!(k8s.stop("pr-big").await, Ok(Outcome::Accepted));
    let patches = patched(&fake);
    assert_eq!(patches.len(), 650);
    assert_eq!(
        patches.iter().collect::<BTreeSet<_>>().len(),
        650,
        "each object once"
    );
    let pages = fake
        .log()
        .into_iter()
        .filter(|s| {
            s.resource == "deployments" && s.verb() == "list" && s.query.contains_key("continue")
        })
        .count();
    assert_eq!(pages, 1, "600 Deployments are read in two pages of 500");
    for i in 0..600 {
        let name = format!("svc-{i:03}");
        assert_eq!(fake.replicas("deployments", "pr-big", &name), 0);
        let recorded = fake.annotation("deployments", "pr-big", &name, ORIGINAL_REPLICAS);
        assert_eq!(recorded, Some((i % 4 + 1).to_string()));
    }
    assert_eq!(listed(&k8s, "pr-big").await.state, EnvState::Stopped);

    fake.forget_log();
    assert_eq!(k8s.start("pr-big").await, Ok(Outcome::Accepted));
    assert_eq!(patched(&fake).len(), 650);
    for i in 0..600 {
        assert_eq!(
            fake.replicas("deployments", "pr-big", &format!("svc-{i:03}")),
            i % 4 + 1
        );
    }
    assert!((0..50).all(|i| !fake.suspended("pr-big", &format!("job-{i:02}"))));
}

fn election(fake: &FakeApi, identity: &str, clock: Arc<ManualClock>) -> Election {
    Election::new(
        fake.client(),
        ElectionOptions::new("curfew", "curfew", identity),
        clock,
    )
}

fn lease_holder(fake: &FakeApi) -> Option<String> {
    fake.store()
        .get("leases", "curfew", "curfew")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_loses_its_lease_mid_pass_sends_no_write_after_losing_it() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    for i in 0..100 {
        fake.put(deployment("pr-1", &format!("svc-{i:03}"), 2));
    }
    let clock = clock();
    let a = election(&fake, "curfew-a", clock.clone());
    assert!(a.try_acquire_or_renew().await.unwrap());
    let mut one_at_a_time = options();
    one_at_a_time.max_concurrency = 1;
    let replica_a = Kubernetes::new(
        fake.client(),
        one_at_a_time.clone(),
        clock.clone(),
        Arc::new(a.clone()),
        None,
    )
    .unwrap();
    fake.forget_log();
    // The 40th write waits 11 s in the API server (an overloaded one): no renewal
    // happens, and the renew deadline (10 s) passes while it waits. It was sent with the
    // time A had left as leader, so neither A nor the server carries it out late.
    let mut patches = 0;
    fake.on(move |seen, _| {
        if seen.verb() == "patch" {
            patches += 1;
            if patches == 40 {
                return Then::Wait(Duration::from_secs(11));
            }
        }
        Then::Proceed
    });

    let e = replica_a.stop("pr-1").await.unwrap_err();
    assert!(e.retryable, "{e}");
    assert!(
        e.message
            .contains("lost the lease after changing 39 of 100 objects"),
        "{e}"
    );
    assert_eq!(
        fake.writes().len(),
        40,
        "40 patches sent, and nothing after the deadline"
    );
    let deadline = fake.writes()[39].query.get("timeout").cloned();
    assert_eq!(deadline.as_deref(), Some("10s"), "the time A had left");
    // A gave up at its deadline; the server is done with the write a second later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.replicas("deployments", "pr-1", "svc-039"),
        2,
        "the 40th would have landed after the deadline: it did not land"
    );
    assert!(!a.is_leader());

    // Replica B sees A's record unchanged for the lease duration, takes over, and finishes
    // the stop without touching what A did.
    let b = election(&fake, "curfew-b", clock.clone());
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "A's record is fresh to B"
    );
    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(b.try_acquire_or_renew().await.unwrap());
    assert_eq!(lease_holder(&fake).as_deref(), Some("curfew-b"));
    let replica_b = Kubernetes::new(
        fake.client(),
        one_at_a_time,
        clock,
        Arc::new(b.clone()),
        None,
    )
    .unwrap();
    fake.forget_log();
    assert_eq!(replica_b.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(patched(&fake).len(), 61);
    for i in 0..100 {
        let name = format!("svc-{i:03}");
        assert_eq!(fake.replicas("deployments", "pr-1", &name), 0);
        assert_eq!(
            fake.annotation("deployments", "pr-1", &name, ORIGINAL_REPLICAS)
                .as_deref(),
            Some("2")
        );
    }

    // A, still running, learns that B leads, and sends nothing.
    assert!(!a.try_acquire_or_renew().await.unwrap());
    fake.forget_log();
    let e = replica_a.start("pr-1").await.unwrap_err();
    assert!(e.message.contains("does not hold the lease"), "{e}");
    assert!(fake.log().is_empty(), "{:?}", fake.log());
}

#[tokio::test(start_paused = true)]
async fn a_missing_lease_is_created_and_held_by_the_first_replica() {
    let fake = FakeApi::new();
    let a = election(&fake, "curfew-a", clock());
    assert!(!a.is_leader());
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(a.is_leader());
    let lease = fake.object("leases", "curfew", "curfew");
    assert_eq!(lease["spec"]["holderIdentity"], "curfew-a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(lease["spec"]["renewTime"], "2026-11-26T10:00:00.000000Z");
    let b = election(&fake, "curfew-b", clock());
    assert!(!b.try_acquire_or_renew().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewals_fail_stops_leading_at_the_renew_deadline() {
    let fake = FakeApi::new();
    let a = election(&fake, "curfew-a", clock());
    assert!(a.try_acquire_or_renew().await.unwrap());
    fake.on(|seen, _| match seen.resource.as_str() {
        "leases" => Then::Fail(503, "the API server is overloaded"),
        _ => Then::Proceed,
    });
    tokio::time::advance(Duration::from_secs(9)).await;
    assert!(a.try_acquire_or_renew().await.is_err());
    assert!(
        a.is_leader(),
        "9 s after the last renewal: still within the deadline"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        !a.is_leader(),
        "11 s: past the 10 s deadline, although nobody took the lease"
    );
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_by_a_standby_at_once() {
    let fake = FakeApi::new();
    let a = election(&fake, "curfew-a", clock());
    let b = election(&fake, "curfew-b", clock());
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    a.release().await;
    assert!(!a.is_leader());
    assert_eq!(lease_holder(&fake), None);
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "no wait for the lease duration"
    );
}

#[tokio::test(start_paused = true)]
async fn of_two_replicas_writing_the_lease_at_once_only_one_leads() {
    let fake = FakeApi::new();
    let a = election(&fake, "curfew-a", clock());
    assert!(a.try_acquire_or_renew().await.unwrap());
    a.release().await;
    // B reads the free lease; before its write lands, C takes it.
    fake.on(|seen, store| {
        let by_b = seen
            .body
            .as_ref()
            .is_some_and(|b| b["spec"]["holderIdentity"] == "curfew-b");
        if seen.verb() == "update" && by_b {
            store.edit("leases", "curfew", "curfew", |l| {
                l["spec"]["holderIdentity"] = json!("curfew-c");
            });
        }
        Then::Proceed
    });
    let b = election(&fake, "curfew-b", clock());
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "its write was a 409"
    );
    assert!(!b.is_leader());
    assert_eq!(lease_holder(&fake).as_deref(), Some("curfew-c"));
}

#[tokio::test(start_paused = true)]
async fn the_election_loop_renews_and_gives_the_lease_up_when_stopped() {
    let fake = FakeApi::new();
    let a = election(&fake, "curfew-a", clock());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(a.clone().run(stopped));
    let mut never = tokio::sync::watch::channel(false).1;
    assert!(a.wait_to_lead(&mut never).await);
    // Paused time moves on to the loop's next renewal whenever everything waits.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(a.is_leader(), "renewed every 2 s for a minute");
    let renewals = fake
        .writes()
        .iter()
        .filter(|w| w.resource == "leases")
        .count();
    assert!(renewals >= 25, "{renewals} lease writes");
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(lease_holder(&fake), None);
}

#[tokio::test]
async fn a_namespace_lists_as_an_environment_with_its_project_mode_cost_and_last_rollout() {
    let fake = FakeApi::new();
    fake.put(
        namespace("pr-7")
            .labelled("app.kubernetes.io/part-of", "web")
            .labelled("curfew.dev/mode", "development")
            .labelled("team", "checkout")
            .annotated(DOWNSCALER_EXCLUDE, "true")
            .annotated(DOWNSCALER_EXCLUDE_UNTIL, "2026-12-01 18:00"),
    );
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}));
    fake.put(deployment("pr-7", "web", 2));
    fake.put(stateful_set("pr-7", "db", 1));
    fake.put(replica_set("pr-7", "web-1", "2026-11-20T08:00:00Z"));
    fake.put(replica_set("pr-7", "web-2", "2026-11-24T09:30:00Z"));
    fake.put(controller_revision("pr-7", "db-1", "2026-11-25T07:00:00Z"));
    let mut options = options();
    options.cluster = Some("eu-1".into());
    let k8s = adapter_with(&fake, options, Arc::new(Alone));

    let snapshot = k8s.list().await.unwrap();
    assert!(snapshot.complete);
    assert_eq!(
        snapshot.environments.len(),
        1,
        "kube-system is not selected"
    );
    let env = &snapshot.environments[0];
    assert_eq!((env.id.as_ref(), env.name.as_ref()), ("pr-7", "pr-7"));
    assert_eq!(&*env.project, "web");
    assert_eq!(env.mode, Mode::Development);
    assert_eq!(env.cluster.as_deref(), Some("eu-1"));
    assert_eq!(env.state, EnvState::Running);
    assert_eq!(
        env.created_at,
        "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        env.last_deployed_at,
        Some("2026-11-25T07:00:00Z".parse().unwrap())
    );
    assert_eq!(env.last_activity_at, None);
    assert_eq!(env.labels["team"], "checkout");
    assert_eq!(env.labels[crate::platform::PROTECT_LABEL], "true");
    assert_eq!(
        env.labels[crate::platform::SNOOZE_LABEL],
        "2026-12-01T18:00:00Z"
    );
    // 2 × (0.25 vCPU × 0.04 + 0.5 GiB × 0.005) + 1 × (1 vCPU × 0.04 + 2 GiB × 0.005)
    let cost = env.hourly_cost.unwrap();
    assert!((cost - 0.075).abs() < 1e-9, "{cost}");
    let asked = fake
        .log()
        .into_iter()
        .find(|s| s.resource == "namespaces")
        .unwrap();
    assert_eq!(asked.query["labelSelector"], "curfew.dev/preview=true");
}

#[tokio::test]
async fn a_stopped_namespace_still_costs_what_it_will_run_with() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let k8s = adapter(&fake);
    let running = listed(&k8s, "pr-1").await.hourly_cost.unwrap();
    k8s.stop("pr-1").await.unwrap();
    let stopped = listed(&k8s, "pr-1").await.hourly_cost.unwrap();
    // web 3 + worker 1 (0.0125 each) + db 2 (0.05 each); the excluded `pinned` costs nothing here.
    assert!((running - 0.15).abs() < 1e-9, "{running}");
    assert!((stopped - running).abs() < 1e-9, "{stopped} vs {running}");
}

#[tokio::test]
async fn a_namespace_whose_workloads_cannot_be_listed_is_unknown_and_the_listing_incomplete() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    fake.put(namespace("pr-2"));
    fake.put(deployment("pr-2", "web", 1));
    fake.on(
        |seen, _| match (seen.namespace.as_deref(), seen.resource.as_str()) {
            (Some("pr-2"), "cronjobs") => Then::Fail(500, "internal error"),
            _ => Then::Proceed,
        },
    );
    let snapshot = adapter(&fake).list().await.unwrap();
    assert!(!snapshot.complete);
    let state: BTreeMap<&str, EnvState> = snapshot
        .environments
        .iter()
        .map(|e| (e.id.as_ref(), e.state))
        .collect();
    assert_eq!(
        state,
        BTreeMap::from([("pr-1", EnvState::Running), ("pr-2", EnvState::Unknown)])
    );
}

#[tokio::test]
async fn a_namespace_being_deleted_lists_as_deleting_and_takes_no_action() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let k8s = adapter(&fake);
    assert_eq!(k8s.delete("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(listed(&k8s, "pr-1").await.state, EnvState::Deleting);
    fake.forget_log();
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::AlreadyThereOrBusy));
    assert_eq!(k8s.delete("pr-1").await, Ok(Outcome::AlreadyThereOrBusy));
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test]
async fn delete_removes_the_namespace_as_it_was_checked_and_adds_no_finalizer() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let k8s = adapter(&fake);
    assert_eq!(k8s.delete("pr-1").await, Ok(Outcome::Accepted));
    let writes = fake.writes();
    let order: Vec<(&str, &str)> = writes
        .iter()
        .map(|w| (w.verb(), w.resource.as_str()))
        .collect();
    assert_eq!(
        order,
        [("create", "events"), ("delete", "namespaces")],
        "the Event goes first"
    );
    let body = writes[1].body.clone().unwrap();
    // Foreground would only add a finalizer to the namespace: the namespace controller
    // deletes its content whatever the propagation.
    assert_eq!(body["propagationPolicy"], Value::Null);
    assert_eq!(body["preconditions"]["uid"], "uid-pr-1");
    let checked = fake
        .log()
        .into_iter()
        .find(|s| s.resource == "namespaces")
        .unwrap();
    assert_eq!(checked.verb(), "list");
    let namespace = fake.object("namespaces", "", "pr-1");
    assert_eq!(namespace["status"]["phase"], "Terminating");
    assert_eq!(namespace["metadata"]["finalizers"], Value::Null);
    assert!(
        body["preconditions"]["resourceVersion"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn a_namespace_protected_since_the_listing_is_not_deleted() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1").annotated(crate::platform::PROTECT_LABEL, "true"));
    fake.put(namespace("pr-2").annotated(DOWNSCALER_EXCLUDE, "true"));
    let k8s = adapter(&fake);
    for id in ["pr-1", "pr-2"] {
        let e = k8s.delete(id).await.unwrap_err();
        assert!(!e.retryable);
        assert!(e.message.contains("protected"), "{e}");
    }
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test]
async fn namespaces_outside_the_selector_or_gone_are_gone_to_curfew_and_untouched() {
    let fake = FakeApi::new();
    fake.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "uid": "k"}}));
    fake.put(deployment("kube-system", "coredns", 2));
    let k8s = adapter(&fake);
    for id in ["kube-system", "pr-404"] {
        assert_eq!(k8s.stop(id).await, Ok(Outcome::Gone));
        assert_eq!(k8s.start(id).await, Ok(Outcome::Gone));
        assert_eq!(k8s.delete(id).await, Ok(Outcome::Gone));
    }
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(fake.replicas("deployments", "kube-system", "coredns"), 2);
}

#[tokio::test]
async fn a_delete_warning_is_a_warning_event_on_the_namespace() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    let k8s = adapter(&fake);
    k8s.note(
        "pr-1",
        "DeleteWarning",
        "pr-1 will be deleted at 2026-11-27 10:00 UTC (rule previews: delete_after 7d)",
    )
    .await;
    let events = fake.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["metadata"]["namespace"], "pr-1");
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["reason"], "DeleteWarning");
    assert_eq!(e["regarding"]["kind"], "Namespace");
    assert!(
        e["note"]
            .as_str()
            .unwrap()
            .contains("will be deleted at 2026-11-27")
    );
    assert_eq!(e["eventTime"], "2026-11-26T10:00:00.000000Z");
}

#[tokio::test]
async fn with_events_off_nothing_is_posted_and_a_failed_event_fails_nothing() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let mut quiet = options();
    quiet.events = false;
    let k8s = adapter_with(&fake, quiet, Arc::new(Alone));
    k8s.stop("pr-1").await.unwrap();
    k8s.note("pr-1", "DeleteWarning", "soon").await;
    assert!(fake.events().is_empty());

    fake.on(|seen, _| match seen.resource.as_str() {
        "events" => Then::Fail(403, "events.events.k8s.io is forbidden"),
        _ => Then::Proceed,
    });
    assert_eq!(adapter(&fake).start("pr-1").await, Ok(Outcome::Accepted));
}

async fn prometheus(
    status: u16,
    answer: Value,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use axum::extract::Query;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
            let _ = tx.send(q.get("query").cloned().unwrap_or_default());
            let answer = answer.clone();
            async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(answer),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

fn with_traffic(url: String) -> KubernetesOptions {
    let mut o = options();
    o.traffic = Some(TrafficOptions {
        prometheus_url: url,
        query: "sum by (namespace) (rate(nginx_ingress_controller_requests[5m]))".into(),
        namespace_label: "namespace".into(),
        lookback: Duration::from_secs(86_400),
        min_rate: 0.01,
    });
    o
}

#[tokio::test]
async fn traffic_from_prometheus_is_each_namespace_last_activity() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    fake.put(namespace("pr-2"));
    let last = "2026-11-26T09:41:40Z".parse::<DateTime<Utc>>().unwrap();
    let (url, mut queries) = prometheus(
        200,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"namespace": "pr-1"}, "value": [1_795_687_200.0, last.timestamp().to_string()]},
        ]}}),
    )
    .await;
    let k8s = adapter_with(&fake, with_traffic(url), Arc::new(Alone));
    let snapshot = k8s.list().await.unwrap();
    assert!(snapshot.complete);
    let activity: BTreeMap<&str, Option<DateTime<Utc>>> = snapshot
        .environments
        .iter()
        .map(|e| (e.id.as_ref(), e.last_activity_at))
        .collect();
    assert_eq!(
        activity,
        BTreeMap::from([("pr-1", Some(last)), ("pr-2", None)])
    );
    let query = queries.recv().await.unwrap();
    assert!(query.contains("> 0.01)[86400s:300s]"), "{query}");
}

#[tokio::test]
async fn when_prometheus_cannot_be_asked_every_namespace_counts_as_active_and_nothing_is_deleted() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let (url, _queries) = prometheus(503, json!({"status": "error", "error": "overloaded"})).await;
    let snapshot = adapter_with(&fake, with_traffic(url), Arc::new(Alone))
        .list()
        .await
        .unwrap();
    assert!(!snapshot.complete, "an incomplete listing deletes nothing");
    assert!(
        snapshot
            .environments
            .iter()
            .all(|e| e.last_activity_at == Some(now()))
    );
}

/// The (group, resource, verb) of every request in these scenarios, against the RBAC
/// objects shipped in deploy/kubernetes: the adapter uses all it is granted and nothing
/// else.
#[tokio::test(start_paused = true)]
async fn the_shipped_roles_grant_exactly_what_the_adapter_uses() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    fake.put(controller_revision("pr-1", "db-1", "2026-11-25T07:00:00Z"));
    // A GitOps owner of each kind, paused and resumed.
    fake.put(fake::application("shop-pr-1", "pr-1", true));
    fake.put(fake::kustomization("api-pr-1", "pr-1"));
    fake.put(fake::helm_release("cache-pr-1", "pr-1"));
    fake.put(deployment("pr-1", "shop", 1).tracked_by("shop-pr-1"));
    fake.put(fake::scaled_object("pr-1", "web", "web"));
    for (prefix, name) in [
        ("kustomize.toolkit.fluxcd.io", "api-pr-1"),
        ("helm.toolkit.fluxcd.io", "cache-pr-1"),
    ] {
        fake.put(
            deployment("pr-1", name, 1)
                .labelled(&format!("{prefix}/name"), name)
                .labelled(&format!("{prefix}/namespace"), "flux-system"),
        );
    }
    let a = election(&fake, "curfew-a", clock());
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap());
    let k8s = adapter_with(&fake, options(), Arc::new(a.clone()));
    k8s.list().await.unwrap();
    // The watch cache's lists and watches too.
    let cached = adapter_with(&fake, watch::cached(), Arc::new(Alone));
    cached.list().await.unwrap();
    watch::until_watched(&fake, 7).await;
    drop(cached);
    let mut raced = false;
    fake.on(move |seen, store| {
        if seen.verb() == "patch" && !raced {
            raced = true;
            store.edit("deployments", "pr-1", "web", |o| {
                o["spec"]["replicas"] = json!(4)
            });
            store.edit("statefulsets", "pr-1", "db", |o| {
                o["spec"]["replicas"] = json!(4)
            });
            store.edit("cronjobs", "pr-1", "report", |o| {
                o["spec"]["suspend"] = json!(false)
            });
        }
        Then::Proceed
    });
    k8s.stop("pr-1").await.unwrap();
    k8s.start("pr-1").await.unwrap();
    // Wake on request: pr-2's routes go to the wake Service and come back, its serving asked.
    {
        let mut o = options();
        o.wake_service = Some(wake::wake());
        let waking = adapter_with(&fake, o, Arc::new(a.clone()));
        waking.route_wakes(Arc::new(wake::Rules(true)));
        fake.install_gateway_api();
        fake.put(namespace("pr-2"));
        fake.put(fake::ingress("pr-2", "web", "pr-2.example.com", true));
        fake.put(fake::http_route("pr-2", "web", "pr-2.example.com"));
        waking.stop("pr-2").await.unwrap();
        waking.start("pr-2").await.unwrap();
        waking.serving("pr-2").await.unwrap();
        for kind in [Kind::Ingress, Kind::HttpRoute] {
            assert!(waking.get("pr-2", kind, "web").await.unwrap().is_some());
        }
    }
    // More kinds: a Rollout scaled through its Scale, a LoadBalancer released, and back.
    {
        fake.put(namespace("pr-3"));
        fake.put(kinds::rollout("pr-3", "web", 2));
        fake.put(kinds::load_balancer("pr-3", "web"));
        let extras = Extras {
            patches: Vec::new(),
            release_load_balancers: true,
        };
        let more = kinds::under(&fake, extras);
        // A racing change: the object and its Scale are read again.
        let mut raced = false;
        fake.on(move |seen, store| {
            if seen.resource == "rollouts/scale" && seen.verb() == "patch" && !raced {
                raced = true;
                store.edit("rollouts", "pr-3", "web", |o| {
                    o["spec"]["minReadySeconds"] = json!(1)
                });
            }
            Then::Proceed
        });
        more.stop("pr-3").await.unwrap();
        more.start("pr-3").await.unwrap();
    }
    k8s.delete("pr-1").await.unwrap();
    // Gets after conflicts, on each kind.
    for (resource, name) in [
        ("deployments", "web"),
        ("statefulsets", "db"),
        ("cronjobs", "report"),
    ] {
        let object = fake.object(resource, "pr-1", name);
        let kind = match resource {
            "deployments" => Kind::Deployment,
            "statefulsets" => Kind::StatefulSet,
            _ => Kind::CronJob,
        };
        assert!(
            k8s.get("pr-1", kind, name).await.unwrap().is_some(),
            "{object}"
        );
    }
    let used: BTreeSet<(String, String, String)> = fake
        .log()
        .iter()
        .map(|s| (s.group.clone(), s.resource.clone(), s.verb().to_string()))
        .collect();
    let granted = |table: &[(&str, &str, &str)]| -> BTreeSet<(String, String, String)> {
        table
            .iter()
            .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
            .collect()
    };
    let cluster = granted(PERMISSIONS);
    let lease = granted(LEASE_PERMISSIONS);
    let wake = granted(WAKE_PERMISSIONS);
    assert_eq!(
        used,
        &(&cluster | &lease) | &wake,
        "the tables are what the adapter does"
    );
    assert_eq!(
        rules_in("wake-role.yaml"),
        wake,
        "the wake Role is the table"
    );
    assert_eq!(
        rules_in("clusterrole.yaml"),
        cluster,
        "the ClusterRole is the table"
    );
    assert_eq!(rules_in("role.yaml"), lease, "the Role is the table");
}

/// (group, resource, verb) of every rule of an RBAC object in the Kubernetes component.
fn rules_in(file: &str) -> BTreeSet<(String, String, String)> {
    let path = format!(
        "{}/deploy/kubernetes/components/kubernetes-platform/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let role: Value = serde_saphyr::from_str(&text).unwrap();
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    let (g, r, v) = (
                        group.as_str().unwrap(),
                        resource.as_str().unwrap(),
                        verb.as_str().unwrap(),
                    );
                    assert!(![g, r, v].contains(&"*"), "no wildcard in {file}");
                    out.insert((g.to_string(), r.to_string(), v.to_string()));
                }
            }
        }
    }
    out
}

// Pure parts: tables of cases.

#[test]
fn quantities_read_as_kubernetes_writes_them() {
    let cases: &[(&str, Option<f64>)] = &[
        ("250m", Some(0.25)),
        ("1", Some(1.0)),
        ("1.5", Some(1.5)),
        ("512Mi", Some(512.0 * 1024.0 * 1024.0)),
        ("2Gi", Some(2.0 * 1024.0 * 1024.0 * 1024.0)),
        ("1G", Some(1e9)),
        ("100k", Some(1e5)),
        ("2e3", Some(2000.0)),
        ("1E3", Some(1000.0)),
        ("500u", Some(0.0005)),
        ("1Zi", None),
        ("", None),
        ("abc", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_quantity(text), *want, "{text}");
    }
}

#[test]
fn a_pod_asks_for_its_containers_and_sidecars_or_its_largest_init_container() {
    let spec = |containers: Value, init: Value| -> k8s_openapi::api::core::v1::PodSpec {
        serde_json::from_value(json!({"containers": containers, "initContainers": init})).unwrap()
    };
    let c = |name: &str, cpu: &str, memory: &str| json!({"name": name, "resources": {"requests": {"cpu": cpu, "memory": memory}}});
    let mut sidecar = c("proxy", "100m", "128Mi");
    sidecar["restartPolicy"] = json!("Always");
    let cases = [
        (
            spec(
                json!([c("a", "250m", "512Mi"), c("b", "250m", "512Mi")]),
                json!([]),
            ),
            (0.5, 1.0),
        ),
        (
            spec(
                json!([c("a", "250m", "512Mi")]),
                json!([c("migrate", "2", "256Mi")]),
            ),
            (2.0, 0.5),
        ),
        (
            spec(json!([c("a", "250m", "512Mi")]), json!([sidecar])),
            (0.35, 0.625),
        ),
        (spec(json!([{"name": "bare"}]), json!([])), (0.0, 0.0)),
    ];
    for (spec, (cpu, memory)) in cases {
        let got = super::workload::pod_requests(&spec);
        assert!(
            (got.cpu - cpu).abs() < 1e-9 && (got.memory_gib - memory).abs() < 1e-9,
            "{got:?} vs {cpu} {memory}"
        );
    }
}

#[test]
fn protection_and_snoozes_are_read_from_labels_annotations_and_kube_downscaler() {
    use crate::platform::{PROTECT_LABEL, SNOOZE_LABEL};
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    type Pairs = &'static [(&'static str, &'static str)];
    // (labels, annotations, protect, snooze-until)
    let cases: &[(Pairs, Pairs, bool, Option<&str>)] = &[
        (&[], &[], false, None),
        (&[(PROTECT_LABEL, "true")], &[], true, None),
        (&[], &[(PROTECT_LABEL, "TRUE")], true, None),
        (&[], &[(DOWNSCALER_EXCLUDE, "true")], true, None),
        (&[], &[(DOWNSCALER_EXCLUDE, "false")], false, None),
        (
            &[],
            &[(SNOOZE_LABEL, "2026-12-01T18:00:00+01:00")],
            false,
            Some("2026-12-01T17:00:00Z"),
        ),
        (
            &[(SNOOZE_LABEL, "2026-12-01")],
            &[],
            false,
            Some("2026-12-01T00:00:00Z"),
        ),
        (
            &[],
            &[(DOWNSCALER_EXCLUDE_UNTIL, "2026-12-01T18:00:00Z")],
            false,
            Some("2026-12-01T18:00:00Z"),
        ),
        (
            &[],
            &[(DOWNSCALER_EXCLUDE_UNTIL, "2026-12-01T18:00")],
            false,
            Some("2026-12-01T18:00:00Z"),
        ),
        (
            &[],
            &[(DOWNSCALER_EXCLUDE_UNTIL, "2026-12-01 18:00")],
            false,
            Some("2026-12-01T18:00:00Z"),
        ),
        (
            &[],
            &[(DOWNSCALER_EXCLUDE_UNTIL, "2026-12-01")],
            false,
            Some("2026-12-01T00:00:00Z"),
        ),
        // The later of two wins.
        (
            &[],
            &[
                (SNOOZE_LABEL, "2026-12-03"),
                (DOWNSCALER_EXCLUDE_UNTIL, "2026-12-05"),
            ],
            false,
            Some("2026-12-05T00:00:00Z"),
        ),
        // kube-downscaler ignores what it cannot read; curfew passes its own unreadable
        // value on, for `explain` to say why it is ignored.
        (&[], &[(DOWNSCALER_EXCLUDE_UNTIL, "next week")], false, None),
        (
            &[],
            &[(SNOOZE_LABEL, "next week")],
            false,
            Some("next week"),
        ),
    ];
    for (labels, annotations, protect, snooze) in cases {
        let out = policy_labels(&map(labels), &map(annotations));
        assert_eq!(
            out.get(PROTECT_LABEL).is_some_and(|v| v == "true"),
            *protect,
            "{labels:?} {annotations:?}"
        );
        assert_eq!(
            out.get(SNOOZE_LABEL).map(String::as_str),
            *snooze,
            "{labels:?} {annotations:?}"
        );
    }
}

fn workload(kind: Kind, replicas: i32, suspended: bool, annotations: &[(&str, &str)]) -> Workload {
    Workload {
        kind,
        name: "w".into(),
        resource_version: Some("41".into()),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        labels: BTreeMap::new(),
        replicas,
        suspended,
        ready_replicas: 0,
        requests: PodRequests::default(),
        controller: None,
        deletes_volumes: false,
        replicas_set_by: None,
        starting_deadline: Some(60),
        active_jobs: Vec::new(),
    }
}

#[test]
fn what_a_stop_writes_on_each_kind_of_object() {
    let at = json!("2026-11-26T10:00:00Z");
    let cases: Vec<(Workload, Option<Value>)> = vec![
        (
            workload(Kind::Deployment, 3, false, &[]),
            Some(
                json!({"metadata": {"resourceVersion": "41", "annotations": {ORIGINAL_REPLICAS: "3", STOPPED_AT: at}}, "spec": {"replicas": 0}}),
            ),
        ),
        (
            workload(Kind::StatefulSet, 1, false, &[]),
            Some(
                json!({"metadata": {"resourceVersion": "41", "annotations": {ORIGINAL_REPLICAS: "1", STOPPED_AT: at}}, "spec": {"replicas": 0}}),
            ),
        ),
        (
            workload(Kind::CronJob, 0, false, &[]),
            Some(
                json!({"metadata": {"resourceVersion": "41", "annotations": {ORIGINAL_SUSPEND: "false", STOPPED_AT: at}}, "spec": {"suspend": true}}),
            ),
        ),
        (workload(Kind::Deployment, 0, false, &[]), None),
        (workload(Kind::CronJob, 0, true, &[]), None),
        (
            workload(Kind::Deployment, 3, false, &[(EXCLUDE, "true")]),
            None,
        ),
        (
            workload(Kind::Deployment, 3, false, &[(DOWNSCALER_EXCLUDE, "true")]),
            None,
        ),
    ];
    for (w, want) in cases {
        assert_eq!(w.stop_patch(now()), want, "{w:?}");
    }
}

#[test]
fn what_a_start_writes_depends_on_whether_the_object_is_still_as_curfew_left_it() {
    let forget = json!({"resourceVersion": "41", "annotations": {ORIGINAL_REPLICAS: null, ORIGINAL_SUSPEND: null, STOPPED_AT: null}});
    let cases: Vec<(Workload, Option<(Value, Restore)>)> = vec![
        (
            workload(Kind::Deployment, 0, false, &[(ORIGINAL_REPLICAS, "3")]),
            Some((
                json!({"metadata": forget, "spec": {"replicas": 3}}),
                Restore::Restored,
            )),
        ),
        (
            workload(Kind::Deployment, 2, false, &[(ORIGINAL_REPLICAS, "3")]),
            Some((json!({"metadata": forget}), Restore::LeftAsChanged)),
        ),
        (
            workload(Kind::Deployment, 0, false, &[(ORIGINAL_REPLICAS, "three")]),
            Some((json!({"metadata": forget}), Restore::LeftAsChanged)),
        ),
        (
            workload(Kind::CronJob, 0, true, &[(ORIGINAL_SUSPEND, "false")]),
            Some((
                json!({"metadata": forget, "spec": {"suspend": false}}),
                Restore::Restored,
            )),
        ),
        (
            workload(Kind::CronJob, 0, false, &[(ORIGINAL_SUSPEND, "false")]),
            Some((json!({"metadata": forget}), Restore::LeftAsChanged)),
        ),
        (workload(Kind::Deployment, 0, false, &[]), None),
        (
            workload(
                Kind::Deployment,
                0,
                false,
                &[(ORIGINAL_REPLICAS, "3"), (EXCLUDE, "true")],
            ),
            None,
        ),
    ];
    for (w, want) in cases {
        assert_eq!(w.start_patch(), want, "{w:?}");
    }
}

fn parse(yaml: &str) -> Result<crate::config::Loaded, crate::config::ConfigErrors> {
    crate::config::parse("curfew.yaml", yaml, &HashMap::new(), now())
}

#[test]
fn the_kubernetes_platform_is_read_from_the_rule_file_with_its_defaults() {
    use crate::config::settings::{KubernetesSettings, PlatformSettings, TrafficSettings};
    let loaded = parse(
        "platform:\n  kubernetes:\n    namespace_selector: curfew.dev/preview=true\n    leader_election: true\n    traffic:\n      prometheus_url: http://prometheus:9090\n      query: sum by (namespace) (rate(x[5m]))\nrules:\n  - name: previews\n    stop_when_idle: 3h\n",
    )
    .unwrap();
    assert_eq!(
        loaded.settings.platform,
        PlatformSettings::Kubernetes(KubernetesSettings {
            namespace_selector: "curfew.dev/preview=true".into(),
            project_label: "app.kubernetes.io/part-of".into(),
            mode_label: "curfew.dev/mode".into(),
            default_mode: Mode::Preview,
            cluster: None,
            context: None,
            max_concurrency: 8,
            timeout: Duration::from_secs(30),
            events: true,
            leader_election: true,
            lease_name: "curfew".into(),
            lease_namespace: None,
            argocd_namespace: "argocd".into(),
            scale_kinds: Box::new(vec![Target::rollouts()]),
            traffic: Some(TrafficSettings {
                prometheus_url: "http://prometheus:9090".into(),
                query: "sum by (namespace) (rate(x[5m]))".into(),
                namespace_label: "namespace".into(),
                lookback: Duration::from_secs(7 * 86_400),
                min_rate: 0.0,
            }),
            wake_service: None,
        })
    );
}

#[test]
fn mistakes_in_the_kubernetes_settings_are_all_reported_with_their_field() {
    let errors = parse(
        "platform:\n  kubernetes:\n    namespace_selector: \"\"\n    default_mode: prod\n    timeout: soon\n    traffic:\n      prometheus_url: prometheus:9090\n      query: \" \"\n      lookback: 1d\nrules:\n  - name: previews\n    delete_when_idle_for: 3d\n",
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "platform.kubernetes.namespace_selector",
        "platform.kubernetes.default_mode",
        "unknown mode \"prod\"",
        "platform.kubernetes.timeout",
        "platform.kubernetes.traffic.prometheus_url",
        "platform.kubernetes.traffic.query",
        "delete_when_idle_for 3d is longer than platform.kubernetes.traffic.lookback 1d",
    ] {
        assert!(
            errors.contains(expected),
            "{expected} missing from:\n{errors}"
        );
    }
}

#[test]
fn a_selector_that_requires_no_label_is_refused_by_validate() {
    let errors = parse(
        "platform:\n  kubernetes:\n    namespace_selector: \"!production\"\nrules:\n  - name: previews\n    stop_when_idle: 3h\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("platform.kubernetes.namespace_selector")
            && errors.contains("the namespace selector \"!production\" requires no label"),
        "{errors}"
    );
}

/// Links that say what they were made for, long enough to need the note's room.
struct LongLinks;

impl crate::platform::ActionLinks for LongLinks {
    fn links(
        &self,
        id: &str,
        mode: Mode,
        notice: crate::platform::NoticeKind,
        target: &str,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::platform::ActionLink> {
        ["wake now", "keep 4 h"]
            .iter()
            .map(|label| crate::platform::ActionLink {
                label: label.to_string(),
                url: format!(
                    "https://c.test/link/{id}/{mode}/{notice:?}/{target}/{}",
                    "x".repeat(420)
                ),
            })
            .collect()
    }
}

#[tokio::test]
async fn the_stopped_event_carries_the_links_whole_within_an_event_s_note() {
    let fake = FakeApi::new();
    preview_with_everything(&fake);
    let k8s = adapter(&fake);
    k8s.set_links(Arc::new(LongLinks));
    k8s.stop("pr-1").await.unwrap();
    let stopped = &fake.events()[0];
    let note = stopped["note"].as_str().unwrap();
    assert!(
        note.starts_with("curfew stopped this environment"),
        "{note}"
    );
    let url = format!(
        "https://c.test/link/pr-1/preview/Stopped/kubernetes event/{}",
        "x".repeat(420)
    );
    assert!(
        note.ends_with(&format!("wake now: {url} · keep 4 h: {url}")),
        "{note}"
    );
    assert!(note.len() <= 1024, "{}", note.len());
}
