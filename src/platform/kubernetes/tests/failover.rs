//! High availability that keeps its memory: two replicas, each with its own ledger, over
//! one fake API server. The leader loses its Lease in the middle of the 19:00 pass; the
//! standby takes the Lease, finishes the stops, takes the stop the old leader made as
//! curfew's from the records on the objects, counts its savings from the old leader's stop,
//! and starts both namespaces at 08:00 as the schedule says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::fake::{FakeApi, Then, deployment, namespace};
use super::{election, lease_holder, options};
use crate::clock::{Clock, ManualClock};
use crate::config::parse_rules;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::platform::kubernetes::{Election, Kubernetes, Leader};
use crate::reconcile::{Daemon, DaemonOptions};

const RULES: &str = "timezone: UTC\nrules:\n  - name: office\n    match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A replica: its adapter (asking `election` before each write), its own ledger, its
/// daemon.
fn replica(fake: &FakeApi, clock: &Arc<ManualClock>, election: &Election) -> (Daemon, Arc<Ledger>) {
    let mut one_at_a_time = options();
    one_at_a_time.max_concurrency = 1;
    one_at_a_time.events = false;
    let platform = Kubernetes::new(
        fake.client(),
        one_at_a_time,
        clock.clone(),
        Arc::new(election.clone()),
        None,
    )
    .unwrap();
    let ledger = Arc::new(Ledger::in_memory().unwrap());
    let daemon = Daemon::new(
        Arc::new(platform),
        ledger.clone(),
        Arc::new(Metrics::new("test", false)),
        clock.clone(),
        Arc::new(parse_rules("t.yaml", RULES, clock.now()).unwrap()),
        DaemonOptions {
            resync: Duration::from_secs(60),
            max_pass_age: Duration::from_secs(180),
            max_in_flight: 1,
        },
    );
    (daemon, ledger)
}

#[tokio::test(start_paused = true)]
async fn a_failover_mid_pass_keeps_the_stops_savings_and_the_morning_start() {
    let fake = FakeApi::new();
    for ns in ["pr-1", "pr-2"] {
        fake.put(namespace(ns));
        fake.put(deployment(ns, "web", 2));
    }
    // Thursday 19:00:30: both namespaces are due to stop.
    let stop_a = at("2026-11-26T19:00:30Z");
    let clock = Arc::new(ManualClock::new(stop_a));
    let a = election(&fake, "curfew-a", clock.clone());
    assert!(a.try_acquire_or_renew().await.unwrap());
    let (daemon_a, _) = replica(&fake, &clock, &a);
    // pr-2's write waits 11 s in the API server: A's time as leader (10 s) runs out.
    let overloaded = Arc::new(AtomicBool::new(true));
    let slow = overloaded.clone();
    fake.on(move |seen, _| {
        if slow.load(Ordering::Relaxed)
            && seen.verb() == "patch"
            && seen.namespace.as_deref() == Some("pr-2")
        {
            return Then::Wait(Duration::from_secs(11));
        }
        Then::Proceed
    });
    daemon_a.pass().await.unwrap();
    assert_eq!(
        fake.replicas("deployments", "pr-1", "web"),
        0,
        "A stopped pr-1"
    );
    assert_eq!(
        fake.replicas("deployments", "pr-2", "web"),
        2,
        "A lost the Lease first"
    );
    assert!(!a.is_leader());
    overloaded.store(false, Ordering::Relaxed);

    // B, a standby with a ledger of its own, takes the Lease once A's record is stale.
    let b = election(&fake, "curfew-b", clock.clone());
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "A's record is fresh to B"
    );
    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(b.try_acquire_or_renew().await.unwrap());
    let (daemon_b, ledger_b) = replica(&fake, &clock, &b);
    let stop_b = at("2026-11-26T19:01:30Z");
    clock.set(stop_b);
    daemon_b.pass().await.unwrap();
    assert_eq!(
        fake.replicas("deployments", "pr-2", "web"),
        0,
        "B finished the stops"
    );

    // Friday 08:00:30: B starts both, pr-1 too, which A stopped.
    let start = at("2026-11-27T08:00:30Z");
    clock.set(start);
    assert!(b.try_acquire_or_renew().await.unwrap());
    daemon_b.pass().await.unwrap();
    for ns in ["pr-1", "pr-2"] {
        assert_eq!(fake.replicas("deployments", ns, "web"), 2, "{ns} started");
    }
    // B's savings count pr-1 from A's stop, pr-2 from its own.
    let seconds: f64 = ledger_b
        .savings()
        .unwrap()
        .iter()
        .filter(|s| s.rule == "office")
        .map(|s| s.stopped_seconds)
        .sum();
    let expected = (start - stop_a).num_seconds() + (start - stop_b).num_seconds();
    assert_eq!(seconds, expected as f64);
}

/// curfew_leader's value in the daemon's metrics.
fn leader_gauge(daemon: &Daemon) -> Option<i64> {
    daemon
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("curfew_leader ")?.trim().parse().ok())
}

/// Sleeps (paused tokio time) a second at a time until `done`, at most `seconds`.
async fn within(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..seconds {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    done()
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_loses_its_lease_stands_by_in_process_and_leads_again_when_it_regains_it() {
    use crate::reconcile::{LEADER, STANDBY};
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 2));
    // Thursday 19:00:30: out of hours, every preview is due to stop.
    let clock = Arc::new(ManualClock::new(at("2026-11-26T19:00:30Z")));
    let a = election(&fake, "curfew-a", clock.clone());
    let (daemon, _) = replica(&fake, &clock, &a);
    daemon.health.set_rules_loaded(true);
    let daemon = Arc::new(daemon);
    let notifier = crate::notify::Notifier::start(
        crate::notify::NotifyOptions::default(),
        daemon.metrics.clone(),
        clock.clone(),
        Default::default(),
    )
    .unwrap();
    let (stop_lease, lease_stop) = tokio::sync::watch::channel(false);
    let lease = tokio::spawn(a.clone().run(lease_stop));
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let work = tokio::spawn(crate::daemon::lead_and_work(
        daemon.clone(),
        notifier,
        Some(a.clone()),
        shutdown,
    ));
    let role = |d: &Daemon| d.health().readiness(clock.now()).role;

    assert!(
        within(10, || fake.replicas("deployments", "pr-1", "web") == 0).await,
        "A leads and stops pr-1"
    );
    assert_eq!(role(&daemon), LEADER);
    assert_eq!(leader_gauge(&daemon), Some(1));

    // Another replica takes the Lease (its record now names curfew-b, fresh to A).
    fake.store().edit("leases", "curfew", "curfew", |lease| {
        lease["spec"]["holderIdentity"] = "curfew-b".into();
        lease["spec"]["renewTime"] = "2026-11-26T19:00:40.000000Z".into();
    });
    assert!(
        within(5, || role(&daemon) == STANDBY).await,
        "A stands by once its round sees the Lease held by another"
    );
    assert!(!a.is_leader());
    assert_eq!(leader_gauge(&daemon), Some(0));
    let readiness = daemon.health().readiness(clock.now());
    assert!(readiness.ready, "a standby stays ready: {readiness:?}");
    assert!(!work.is_finished(), "the process goes on as a standby");

    // While it stands by, a namespace due to stop appears: A writes nothing.
    fake.forget_log();
    fake.put(namespace("pr-2"));
    fake.put(deployment("pr-2", "web", 2));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let writes: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|w| w.resource != "leases")
        .collect();
    assert!(writes.is_empty(), "a standby writes nothing: {writes:?}");
    assert_eq!(fake.replicas("deployments", "pr-2", "web"), 2);

    // curfew-b never renews: once its record is a lease duration old, A takes the Lease
    // again and leads: it stops pr-2.
    assert!(
        within(20, || fake.replicas("deployments", "pr-2", "web") == 0).await,
        "A leads again and stops pr-2"
    );
    assert_eq!(lease_holder(&fake).as_deref(), Some("curfew-a"));
    assert_eq!(role(&daemon), LEADER);
    assert_eq!(leader_gauge(&daemon), Some(1));

    let _ = shutdown_tx.send(true);
    work.await.unwrap();
    let _ = stop_lease.send(true);
    lease.await.unwrap();
}
