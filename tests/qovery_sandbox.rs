//! The Qovery adapter against the sandbox over real HTTP, with the sandbox's fault
//! injection: every scenario ends with correct results or a clear, retryable error, and
//! never a wrong action.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use curfew::clock::ManualClock;
use curfew::platform::Prices;
use curfew::platform::qovery::{Qovery, QoveryOptions, Token};
use curfew::platform::{EnvState, Outcome, Platform};
use curfew::sandbox::{Faults, Sandbox, SandboxOptions};

fn start_of_test() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct World {
    clock: ManualClock,
    sandbox: Sandbox,
    url: String,
    organization_id: String,
    token: String,
    /// Serves until dropped; `None` when the test serves the router itself (its task
    /// ends with the test's runtime).
    _running: Option<curfew::sandbox::RunningSandbox>,
}

async fn world(options: SandboxOptions) -> World {
    let clock = ManualClock::new(start_of_test());
    let sandbox = Sandbox::new(options, Arc::new(clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = sandbox.clone().spawn(listener).await.unwrap();
    World {
        clock,
        sandbox,
        url: running.url.clone(),
        organization_id: running.organization_id.clone(),
        token: running.token.clone(),
        _running: Some(running),
    }
}

fn options(projects: u32, environments: u32) -> SandboxOptions {
    SandboxOptions {
        projects,
        environments,
        seed: 42,
        token: "t0ken".into(),
        ..SandboxOptions::default()
    }
}

fn adapter(w: &World, tune: impl FnOnce(&mut QoveryOptions)) -> Qovery {
    let mut o = QoveryOptions::new(
        w.url.clone(),
        w.organization_id.clone(),
        Token::new(w.token.clone()),
    );
    o.name = "sandbox";
    o.requests_per_second = 10_000.0;
    o.backoff = Duration::from_millis(10);
    o.timeout = Duration::from_secs(5);
    tune(&mut o);
    Qovery::new(o, None).unwrap()
}

fn faults(error: f64, throttle: f64, timeout: f64, malformed: f64) -> Faults {
    Faults {
        error_rate: error,
        throttle_rate: throttle,
        timeout_rate: timeout,
        malformed_rate: malformed,
    }
}

#[tokio::test]
async fn a_listing_holds_every_environment_with_its_project_mode_and_state() {
    let w = world(options(3, 20)).await;
    let snapshot = adapter(&w, |_| {}).list().await.unwrap();
    assert!(snapshot.complete);
    let truth = w.sandbox.environments();
    assert_eq!(snapshot.environments.len(), truth.len());
    for env in &truth {
        let listed = snapshot
            .environments
            .iter()
            .find(|e| *e.id == *env.id)
            .expect("listed");
        assert_eq!(*listed.name, *env.name);
        assert_eq!(*listed.project, *env.project_name);
        assert_eq!(listed.platform_state.as_deref(), Some(env.state.as_str()));
        assert_eq!(
            listed.state,
            curfew::platform::qovery::map_state(&env.state)
        );
        assert_eq!(listed.last_deployed_at, env.last_deployment_date);
    }
    // A project's name and a state's word are held once, shared by their environments.
    for (a, b) in snapshot
        .environments
        .iter()
        .zip(&snapshot.environments[1..])
    {
        if a.project == b.project {
            assert!(std::sync::Arc::ptr_eq(&a.project, &b.project));
        }
        if let (Some(x), Some(y)) = (&a.platform_state, &b.platform_state)
            && x == y
        {
            assert!(std::sync::Arc::ptr_eq(x, y));
        }
    }
    // One call for projects, one for environments, one status call per project (clusters
    // and costs are fetched apart, in the background, and are not part of a listing).
    let counts = w.sandbox.requests();
    assert_eq!(
        [
            counts.endpoint("GET /organization/{organizationId}/project"),
            counts.endpoint("GET /organization/{organizationId}/environments"),
            counts.endpoint("GET /project/{projectId}/environment/status"),
        ],
        [1, 1, 3],
        "{counts:?}"
    );
}

#[tokio::test]
async fn stop_start_and_delete_follow_the_platform_through_its_states() {
    let w = world(options(2, 10)).await;
    let q = adapter(&w, |_| {});
    let running = w
        .sandbox
        .environments()
        .into_iter()
        .find(|e| e.state == "DEPLOYED")
        .expect("a running env");
    assert_eq!(q.stop(&running.id).await.unwrap(), Outcome::Accepted);
    // Busy while stopping: Qovery's 409 is not a failure.
    assert_eq!(
        q.stop(&running.id).await.unwrap(),
        Outcome::AlreadyThereOrBusy
    );
    let state = |s: &curfew::platform::Snapshot| {
        s.environments
            .iter()
            .find(|e| *e.id == *running.id)
            .map(|e| e.state)
    };
    assert_eq!(state(&q.list().await.unwrap()), Some(EnvState::Stopping));
    w.clock.advance(TimeDelta::minutes(5));
    assert_eq!(state(&q.list().await.unwrap()), Some(EnvState::Stopped));
    assert_eq!(
        q.stop(&running.id).await.unwrap(),
        Outcome::AlreadyThereOrBusy
    );
    assert_eq!(q.start(&running.id).await.unwrap(), Outcome::Accepted);
    w.clock.advance(TimeDelta::minutes(5));
    let listed = q.list().await.unwrap();
    let env = listed
        .environments
        .iter()
        .find(|e| *e.id == *running.id)
        .unwrap();
    assert_eq!(env.state, EnvState::Running);
    assert!(
        env.last_deployed_at > running.last_deployment_date,
        "a deploy moves the idle clock"
    );
    assert_eq!(q.delete(&running.id).await.unwrap(), Outcome::Accepted);
    w.clock.advance(TimeDelta::minutes(5));
    assert!(
        q.list()
            .await
            .unwrap()
            .environments
            .iter()
            .all(|e| *e.id != *running.id)
    );
    assert_eq!(q.delete(&running.id).await.unwrap(), Outcome::Gone);
}

#[tokio::test]
async fn bursts_of_5xx_are_retried_and_end_in_the_right_result() {
    let w = world(options(4, 30)).await;
    w.sandbox.set_faults(faults(0.4, 0.0, 0.0, 0.0));
    let q = adapter(&w, |o| o.max_retries = 10);
    let snapshot = q.list().await.unwrap();
    assert!(snapshot.complete);
    assert_eq!(snapshot.environments.len(), 30);
    assert!(
        w.sandbox.requests().total > 2 + 4,
        "faults were injected and retried"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_the_time_retry_after_asks_for() {
    let w = world(options(1, 3)).await;
    w.sandbox.set_faults(faults(0.0, 1.0, 0.0, 0.0));
    let sandbox = w.sandbox.clone();
    // Healed once the listing's first two calls have been answered 429, however slow the
    // machine is to send them.
    tokio::spawn(async move {
        while sandbox.requests().faulted < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sandbox.set_faults(faults(0.0, 0.0, 0.0, 0.0));
    });
    let q = adapter(&w, |o| o.max_retries = 3);
    let started = std::time::Instant::now();
    let snapshot = q.list().await.unwrap();
    assert_eq!(snapshot.environments.len(), 3);
    // The sandbox answers `Retry-After: 1`; the 10 ms backoff alone would have retried at once.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn timeouts_give_a_retryable_error_and_are_survived_when_intermittent() {
    let w = world(SandboxOptions {
        timeout: Duration::from_secs(2),
        ..options(2, 6)
    })
    .await;
    w.sandbox.set_faults(faults(0.0, 0.0, 1.0, 0.0));
    let q = adapter(&w, |o| {
        o.timeout = Duration::from_millis(150);
        o.max_retries = 1;
    });
    let err = q.list().await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("timed out"), "{err}");
    w.sandbox.set_faults(faults(0.0, 0.0, 0.3, 0.0));
    let q = adapter(&w, |o| {
        o.timeout = Duration::from_millis(150);
        o.max_retries = 12;
    });
    assert_eq!(q.list().await.unwrap().environments.len(), 6);
}

#[tokio::test]
async fn malformed_json_is_a_clear_retryable_error_not_a_panic() {
    let w = world(options(2, 6)).await;
    w.sandbox.set_faults(faults(0.0, 0.0, 0.0, 1.0));
    let err = adapter(&w, |o| o.max_retries = 1).list().await.unwrap_err();
    assert!(
        err.retryable && err.message.contains("malformed JSON"),
        "{err}"
    );
    w.sandbox.set_faults(faults(0.0, 0.0, 0.0, 0.3));
    assert_eq!(
        adapter(&w, |o| o.max_retries = 12)
            .list()
            .await
            .unwrap()
            .environments
            .len(),
        6
    );
}

#[tokio::test]
async fn an_empty_organization_lists_nothing_and_is_complete() {
    let clock = ManualClock::new(start_of_test());
    let sandbox = Sandbox::empty(options(0, 0), Arc::new(clock.clone()));
    let running = sandbox
        .clone()
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let w = World {
        clock,
        sandbox,
        url: running.url.clone(),
        organization_id: running.organization_id.clone(),
        token: running.token.clone(),
        _running: Some(running),
    };
    let snapshot = adapter(&w, |_| {}).list().await.unwrap();
    assert!(snapshot.complete && snapshot.environments.is_empty());
}

#[tokio::test]
async fn a_project_whose_status_call_fails_makes_the_listing_partial() {
    let w = world(options(3, 15)).await;
    let truth = w.sandbox.environments();
    let broken = truth[0].project_id.clone();
    w.sandbox.fail_status_of_project(Some(broken.clone()));
    let snapshot = adapter(&w, |o| o.max_retries = 2).list().await.unwrap();
    assert!(
        !snapshot.complete,
        "a failed project makes the listing partial"
    );
    assert_eq!(snapshot.environments.len(), 15, "no environment is lost");
    for env in &snapshot.environments {
        let project_id = &truth.iter().find(|t| *t.id == *env.id).unwrap().project_id;
        if *project_id == broken {
            assert_eq!(env.state, EnvState::Unknown, "{}", env.name);
        } else {
            assert_ne!(env.state, EnvState::Unknown, "{}", env.name);
        }
    }
}

#[tokio::test]
async fn a_refused_token_is_not_retried_and_never_echoed() {
    let w = world(options(1, 2)).await;
    let mut o = QoveryOptions::new(
        w.url.clone(),
        w.organization_id.clone(),
        Token::new("wrong-s3cret"),
    );
    o.backoff = Duration::from_millis(10);
    let err = Qovery::new(o, None).unwrap().list().await.unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("token was refused"), "{err}");
    assert!(!err.to_string().contains("wrong-s3cret"));
    assert_eq!(w.sandbox.requests().total, 2, "no retries of a 401");
}

#[tokio::test]
async fn faults_never_turn_into_a_wrong_or_duplicated_action() {
    let w = world(options(2, 12)).await;
    w.sandbox.set_faults(faults(0.3, 0.2, 0.0, 0.2));
    let q = adapter(&w, |o| o.max_retries = 12);
    let target = w
        .sandbox
        .environments()
        .into_iter()
        .find(|e| e.state == "DEPLOYED")
        .unwrap();
    let before = w.sandbox.environments();
    let outcome = q.stop(&target.id).await.unwrap();
    assert!(matches!(
        outcome,
        Outcome::Accepted | Outcome::AlreadyThereOrBusy
    ));
    w.sandbox.set_faults(faults(0.0, 0.0, 0.0, 0.0));
    for (b, a) in before.iter().zip(w.sandbox.environments()) {
        if b.id == target.id {
            assert_eq!(a.state, "STOP_QUEUED");
        } else {
            assert_eq!(a.state, b.state, "{} must be untouched", b.name);
        }
    }
}

/// The sandbox behind a gate that holds the calls costs are read from
/// (`/environment/{id}/application` and `/container`) until `release` is sent `true`.
async fn world_holding_cost_calls(
    options: SandboxOptions,
) -> (World, tokio::sync::watch::Sender<bool>) {
    let clock = ManualClock::new(start_of_test());
    let options_token = options.token.clone();
    let sandbox = Sandbox::new(options, Arc::new(clock.clone()));
    let (release, released) = tokio::sync::watch::channel(false);
    let router = sandbox.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let mut released = released.clone();
            async move {
                let path = request.uri().path();
                if path.ends_with("/application") || path.ends_with("/container") {
                    // Err only when the test is over.
                    let _ = released.wait_for(|r| *r).await;
                }
                next.run(request).await
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (organization_id, token) = (sandbox.organization_id(), options_token.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (
        World {
            clock,
            sandbox,
            url,
            organization_id,
            token,
            _running: None,
        },
        release,
    )
}

#[tokio::test]
async fn costs_come_from_cpu_and_memory_and_are_cached() {
    let (w, release) = world_holding_cost_calls(options(2, 8)).await;
    let q = adapter(&w, |o| {
        o.prices = Prices {
            vcpu_hour: Some(0.04),
            gib_hour: Some(0.005),
        }
    });
    // The listing answers while every call for costs is held: it does not wait for them.
    let first = tokio::time::timeout(Duration::from_secs(30), q.list())
        .await
        .expect("the listing waits on no call for costs")
        .unwrap();
    assert!(first.complete);
    assert!(
        first.environments.iter().all(|e| e.hourly_cost.is_none()),
        "costs are fetched in the background"
    );
    release.send_replace(true);
    // Let the background refresh finish.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if q.list()
            .await
            .unwrap()
            .environments
            .iter()
            .any(|e| e.hourly_cost.is_some())
        {
            break;
        }
    }
    let listed = q.list().await.unwrap();
    let truth = w.sandbox.environments();
    for env in &listed.environments {
        let t = truth.iter().find(|t| *t.id == *env.id).unwrap();
        let expected = t
            .services
            .iter()
            .map(|s| {
                (s.cpu_millis as f64 / 1000.0 * 0.04 + s.memory_mb as f64 / 1024.0 * 0.005)
                    * s.instances as f64
            })
            .sum::<f64>();
        let got = env.hourly_cost.expect("a cost");
        assert!(
            (got - expected).abs() < 1e-9,
            "{}: {got} vs {expected}",
            env.name
        );
        assert!(env.cluster.is_some());
    }
    let calls = w.sandbox.requests().total;
    q.list().await.unwrap();
    assert_eq!(
        w.sandbox.requests().total,
        calls + 2 + 2,
        "a cached listing makes only the listing calls"
    );
}
