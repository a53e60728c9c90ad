//! The watch cache (`cache.rs`) against the fake API server serving list and watch: the
//! first sync pages through each kind cluster-wide, a pass then makes no list request,
//! changes arrive by the watch (from the list's version, moved on by bookmarks), and a
//! version too old (410 Gone) makes a fresh list. Time is tokio's paused clock.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::cache::WATCH_PAGE;
use super::fake::{FakeApi, Seen, Then};
use super::*;

/// The test options with the watch cache on.
pub(super) fn cached() -> KubernetesOptions {
    KubernetesOptions {
        watch: true,
        ..options()
    }
}

/// Lets the adapter's tasks run until `kinds` kinds have been watched (no wall time
/// passes; paused time moves only as far as their own timers).
pub(super) async fn until_watched(fake: &FakeApi, kinds: usize) {
    for _ in 0..10_000 {
        let watched: BTreeSet<String> = fake
            .log()
            .iter()
            .filter(|s| s.verb() == "watch")
            .map(|s| s.resource.clone())
            .collect();
        if watched.len() >= kinds {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("fewer than {kinds} kinds watched");
}

fn lists(log: &[Seen]) -> Vec<&Seen> {
    log.iter().filter(|s| s.verb() == "list").collect()
}

/// Waits (paused time) past the cache's pause between two watches, so that its feeds
/// watch again and see what changed.
async fn a_watch_later() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

fn fleet(fake: &FakeApi) {
    super::preview_with_everything(fake);
    fake.put(
        replica_set("pr-1", "web-1", "2026-11-25T09:00:00Z").owned_by(
            "apps/v1",
            "Deployment",
            "web",
        ),
    );
    fake.put(controller_revision("pr-1", "db-1", "2026-11-25T07:00:00Z"));
    fake.put(namespace("pr-2"));
    fake.put(deployment("pr-2", "api", 1));
    fake.put(namespace("elsewhere").labelled("curfew.dev/preview", "false"));
    fake.put(deployment("elsewhere", "web", 1));
}

#[tokio::test(start_paused = true)]
async fn the_cache_lists_each_kind_cluster_wide_in_pages_and_a_pass_then_lists_nothing() {
    let fake = FakeApi::new();
    fleet(&fake);
    // More Deployments than one page holds.
    fake.put(namespace("pr-3"));
    for i in 0..(WATCH_PAGE as usize + 20) {
        fake.put(deployment("pr-3", &format!("d{i:03}"), 0));
    }
    let k8s = adapter_with(&fake, cached(), Arc::new(Alone));
    let first = k8s.list().await.unwrap();
    let log = fake.log();
    let listed = lists(&log);
    // Each kind cluster-wide (no namespace), in pages of WATCH_PAGE; only the Deployments
    // and their ReplicaSets take two.
    assert!(listed.iter().all(|s| s.namespace.is_none()), "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|s| s.query.get("limit") == Some(&WATCH_PAGE.to_string()))
    );
    let kinds: Vec<&str> = listed.iter().map(|s| s.resource.as_str()).collect();
    assert_eq!(kinds.len(), 9, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "deployments").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "replicasets").count(), 2);
    assert!(
        listed
            .iter()
            .filter(|s| s.resource == "deployments")
            .nth(1)
            .is_some_and(|s| s.query.contains_key("continue"))
    );
    assert_eq!(
        listed
            .iter()
            .find(|s| s.resource == "namespaces")
            .and_then(|s| s.query.get("labelSelector"))
            .map(String::as_str),
        Some("curfew.dev/preview=true")
    );
    // The same environments as a pass that lists each namespace.
    let relist = adapter(&fake).list().await.unwrap();
    assert_eq!(first.environments, relist.environments);
    assert_eq!(
        first
            .environments
            .iter()
            .map(|e| e.id.to_string())
            .collect::<Vec<_>>(),
        ["pr-1", "pr-2", "pr-3"]
    );
    until_watched(&fake, 7).await;
    fake.forget_log();
    for _ in 0..3 {
        let again = k8s.list().await.unwrap();
        assert_eq!(again.environments, first.environments);
    }
    assert_eq!(
        lists(&fake.log()).len(),
        0,
        "a pass over the cache lists nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn changes_reach_the_cache_by_the_watch_from_the_lists_version_and_bookmarks() {
    let fake = FakeApi::new();
    fleet(&fake);
    let k8s = adapter_with(&fake, cached(), Arc::new(Alone));
    k8s.list().await.unwrap();
    until_watched(&fake, 7).await;
    let listed_at = |resource: &str| -> u64 {
        // The version the list was taken at is where the first watch starts.
        fake.log()
            .iter()
            .find(|s| s.verb() == "watch" && s.resource == resource)
            .and_then(|s| s.query.get("resourceVersion"))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let deployments_from = listed_at("deployments");
    // Only a CronJob changes: the Deployments' watch has no event, but its bookmark moves
    // its version on, past the list's.
    fake.store().edit("cronjobs", "pr-1", "report", |o| {
        o["spec"]["suspend"] = serde_json::json!(true)
    });
    fake.forget_log();
    a_watch_later().await;
    let log = fake.log();
    let deployments_again: u64 = log
        .iter()
        .rev()
        .find(|s| s.verb() == "watch" && s.resource == "deployments")
        .and_then(|s| s.query.get("resourceVersion"))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        deployments_again > deployments_from,
        "{deployments_again} after {deployments_from}"
    );
    fake.forget_log();
    // A person scales a workload, a namespace is made with a workload, another workload
    // goes.
    fake.scale("deployments", "pr-1", "web", 5);
    fake.put(namespace("pr-9"));
    fake.put(deployment("pr-9", "web", 1));
    fake.store().remove("deployments", "pr-2", "api");
    a_watch_later().await;
    let log = fake.log();
    assert_eq!(
        lists(&log).len(),
        0,
        "changes come by the watch, not a list"
    );
    let watches: Vec<&Seen> = log.iter().filter(|s| s.verb() == "watch").collect();
    assert!(watches.iter().all(|s| {
        s.query.get("allowWatchBookmarks").map(String::as_str) == Some("true")
            && s.namespace.is_none()
    }));
    let snapshot = k8s.list().await.unwrap();
    let env = |id: &str| snapshot.environments.iter().find(|e| &*e.id == id).cloned();
    assert!(env("pr-9").is_some(), "the new namespace");
    let relist = adapter(&fake).list().await.unwrap();
    assert_eq!(snapshot.environments, relist.environments);
    assert_eq!(
        env("pr-2").unwrap().platform_state,
        relist
            .environments
            .iter()
            .find(|e| &*e.id == "pr-2")
            .unwrap()
            .platform_state,
        "pr-2 without its deployment"
    );
}

#[tokio::test(start_paused = true)]
async fn a_version_too_old_for_the_watch_410_gone_makes_a_fresh_list() {
    let fake = FakeApi::new();
    fleet(&fake);
    let k8s = adapter_with(&fake, cached(), Arc::new(Alone));
    k8s.list().await.unwrap();
    until_watched(&fake, 7).await;
    fake.forget_log();
    // etcd compacts past every version the feeds hold, and a workload goes meanwhile.
    fake.store().remove("deployments", "pr-2", "api");
    fake.store().compact();
    a_watch_later().await;
    let log = fake.log();
    let relisted: BTreeSet<&str> = lists(&log).iter().map(|s| s.resource.as_str()).collect();
    assert_eq!(relisted.len(), 7, "each kind lists again: {relisted:?}");
    let snapshot = k8s.list().await.unwrap();
    assert_eq!(
        snapshot.environments,
        adapter(&fake).list().await.unwrap().environments
    );
}

#[tokio::test(start_paused = true)]
async fn until_every_kind_has_listed_once_a_pass_fails_retryably() {
    let fake = FakeApi::new();
    fleet(&fake);
    fake.on(|seen, _| match seen.resource.as_str() {
        "pods" => Then::Fail(503, "the API server is starting"),
        _ => Then::Proceed,
    });
    let k8s = adapter_with(&fake, cached(), Arc::new(Alone));
    let e = k8s.list().await.unwrap_err();
    assert!(e.retryable);
    assert!(e.message.contains("watch cache"), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn acting_still_reads_the_namespace_and_its_objects_afresh() {
    let fake = FakeApi::new();
    fleet(&fake);
    let k8s = adapter_with(&fake, cached(), Arc::new(Alone));
    k8s.list().await.unwrap();
    until_watched(&fake, 7).await;
    // Changed after the cache saw it, before the stop: the stop records the new count.
    fake.scale("deployments", "pr-1", "web", 4);
    fake.forget_log();
    k8s.stop("pr-1").await.unwrap();
    let fresh: Vec<String> = lists(&fake.log())
        .iter()
        .filter(|s| s.namespace.as_deref() == Some("pr-1"))
        .map(|s| s.resource.clone())
        .collect();
    // The workloads, the KEDA ScaledObjects a stop pauses (gitops.rs) and the Argo
    // Rollouts it scales (patches.rs), read afresh.
    assert_eq!(
        fresh,
        [
            "deployments",
            "statefulsets",
            "cronjobs",
            "scaledobjects",
            "rollouts"
        ]
    );
    assert_eq!(
        fake.annotation("deployments", "pr-1", "web", ORIGINAL_REPLICAS)
            .as_deref(),
        Some("4")
    );
}

#[tokio::test(start_paused = true)]
async fn a_wake_reads_its_one_namespace_and_lists_no_other() {
    let fake = FakeApi::new();
    fleet(&fake);
    let direct = adapter(&fake);
    let listed = direct.list().await.unwrap().environments;
    let pr1 = listed.iter().find(|e| &*e.id == "pr-1").unwrap();

    // Without the watch cache: the namespace read by its name under the selector, then
    // that namespace's objects only.
    fake.forget_log();
    let one = Platform::environment(&direct, "pr-1").await.unwrap();
    assert_eq!(one.as_ref(), Some(pr1));
    let log = fake.log();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|s| s.namespace.as_deref().is_none_or(|n| n == "pr-1")),
        "{log:?}"
    );
    let namespaces: Vec<&Seen> = log.iter().filter(|s| s.resource == "namespaces").collect();
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    assert_eq!(
        namespaces[0].query.get("fieldSelector").map(String::as_str),
        Some("metadata.name=pr-1")
    );
    assert_eq!(
        namespaces[0].query.get("labelSelector").map(String::as_str),
        Some("curfew.dev/preview=true")
    );
    // Gone, not chosen by the selector, or the cluster's own: none.
    for id in ["pr-9", "elsewhere", "kube-system"] {
        assert_eq!(
            Platform::environment(&direct, id).await.unwrap(),
            None,
            "{id}"
        );
    }

    // With it: from memory, no request at all.
    let k8s = adapter_with(&fake, cached(), Arc::new(Alone));
    k8s.list().await.unwrap();
    until_watched(&fake, 7).await;
    fake.forget_log();
    assert_eq!(
        Platform::environment(&k8s, "pr-1").await.unwrap().as_ref(),
        Some(pr1)
    );
    for id in ["pr-9", "elsewhere"] {
        assert_eq!(Platform::environment(&k8s, id).await.unwrap(), None, "{id}");
    }
    assert_eq!(lists(&fake.log()).len(), 0, "{:?}", fake.log());
}
