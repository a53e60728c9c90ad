//! Conformance with Qovery's published API, checked by a tool we did not write: Stoplight
//! Prism validates every request curfew sends and every answer the sandbox gives against
//! `reference/qovery-openapi.yaml` (proxy mode, `--errors`), and generates answers from the
//! spec for the adapter to parse (mock mode).
//!
//! Needs the `prism` binary: `.ci/run` installs it (`.ci/prism`) and runs these tests.

mod common;
use common::{Killed, free_port};

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use curfew::clock::SystemClock;
use curfew::platform::RequestObserver;
use curfew::platform::qovery::{Qovery, QoveryOptions, Token};
use curfew::platform::{Outcome, Platform};
use curfew::sandbox::{Sandbox, SandboxOptions};

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/qovery-openapi.yaml"
);

fn prism_bin() -> String {
    std::env::var("PRISM_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.ci/prism/node_modules/.bin/prism"
        )
        .to_string()
    })
}

async fn start_prism(args: &[&str], port: u16) -> Killed {
    let child = Command::new(prism_bin())
        .args(args)
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run prism ({}): {e}; install it with `npm install --prefix .ci/prism`",
                prism_bin()
            )
        });
    let prism = Killed(child);
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return prism;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("prism did not start on port {port}");
}

/// Every HTTP status the adapter saw.
#[derive(Default)]
struct Statuses(Mutex<Vec<(String, String)>>);

impl RequestObserver for Statuses {
    fn request(&self, endpoint: &'static str, status: &str, _elapsed: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((endpoint.to_string(), status.to_string()));
    }
}

fn adapter(url: &str, org: &str, token: &str, seen: Arc<Statuses>) -> Qovery {
    let mut o = QoveryOptions::new(url, org, Token::new(token));
    o.requests_per_second = 1000.0;
    o.backoff = Duration::from_millis(50);
    o.max_retries = 0; // a violation must show, not be retried away
    Qovery::new(o, Some(seen)).unwrap()
}

#[tokio::test]
#[ignore = "needs Stoplight Prism (installed and run by .ci/run)"]
async fn every_request_and_answer_between_adapter_and_sandbox_conforms_to_qoverys_spec() {
    let sandbox = Sandbox::new(
        SandboxOptions {
            projects: 3,
            environments: 12,
            seed: 3,
            token: "prism-token".into(),
            ..SandboxOptions::default()
        },
        Arc::new(SystemClock),
    );
    let running = sandbox
        .clone()
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let port = free_port();
    let _prism = start_prism(&["proxy", SPEC, &running.url, "--errors"], port).await;
    let seen = Arc::new(Statuses::default());
    let q = adapter(
        &format!("http://127.0.0.1:{port}"),
        &running.organization_id,
        &running.token,
        seen.clone(),
    );
    let snapshot = q.list().await.expect("listing through prism");
    assert_eq!(snapshot.environments.len(), 12);
    assert!(snapshot.complete);
    let running_env = sandbox
        .environments()
        .into_iter()
        .find(|e| e.state == "DEPLOYED")
        .unwrap();
    let stopped_env = sandbox
        .environments()
        .into_iter()
        .find(|e| e.state == "STOPPED")
        .unwrap();
    assert_eq!(q.stop(&running_env.id).await.unwrap(), Outcome::Accepted);
    assert_eq!(
        q.stop(&running_env.id).await.unwrap(),
        Outcome::AlreadyThereOrBusy
    );
    assert_eq!(q.start(&stopped_env.id).await.unwrap(), Outcome::Accepted);
    // Wake on request: where an environment serves (its links and its status).
    let serving = q
        .serving(&stopped_env.id)
        .await
        .expect("serving through prism");
    assert!(serving.url.is_some());
    // What the sandbox serves besides the adapter's calls: the organization and one
    // environment.
    let http = reqwest::Client::new();
    for path in [
        "/organization".to_string(),
        format!("/environment/{}", stopped_env.id),
    ] {
        let answer = http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("Authorization", format!("Token {}", running.token))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{path} through prism");
    }
    assert_eq!(q.delete(&stopped_env.id).await.unwrap(), Outcome::Accepted);
    // Clusters and costs (the background refresh) go through prism too.
    let mut o = QoveryOptions::new(
        format!("http://127.0.0.1:{port}"),
        running.organization_id.clone(),
        Token::new(running.token.clone()),
    );
    o.prices = curfew::platform::Prices {
        vcpu_hour: Some(0.04),
        gib_hour: Some(0.005),
    };
    o.max_retries = 0;
    let with_costs = Qovery::new(o, Some(seen.clone())).unwrap();
    with_costs.list().await.unwrap();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if with_costs
            .list()
            .await
            .unwrap()
            .environments
            .iter()
            .any(|e| e.hourly_cost.is_some())
        {
            break;
        }
    }
    let statuses = seen.0.lock().unwrap().clone();
    let endpoints: std::collections::BTreeSet<&str> =
        statuses.iter().map(|(e, _)| e.as_str()).collect();
    for needed in [
        "list_projects",
        "list_environments",
        "list_status",
        "stop",
        "deploy",
        "delete",
        "list_project_environments",
        "list_applications",
        "list_containers",
        "links",
        "status",
    ] {
        assert!(
            endpoints.contains(needed),
            "{needed} was not exercised: {endpoints:?}"
        );
    }
    let violations: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| !matches!(s.as_str(), "200" | "202" | "204" | "409"))
        .collect();
    assert!(
        violations.is_empty(),
        "prism reported violations (answered with errors): {violations:?}"
    );
}

#[tokio::test]
#[ignore = "needs Stoplight Prism (installed and run by .ci/run)"]
async fn the_adapter_parses_what_the_spec_says_the_real_api_may_return() {
    let port = free_port();
    let _prism = start_prism(&["mock", SPEC], port).await;
    let seen = Arc::new(Statuses::default());
    let org = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    let q = adapter(
        &format!("http://127.0.0.1:{port}"),
        org,
        "any-token",
        seen.clone(),
    );
    let snapshot = q
        .list()
        .await
        .expect("the adapter parses the spec's own examples");
    for env in &snapshot.environments {
        assert!(!env.id.is_empty());
    }
    let env = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    assert_eq!(q.stop(env).await.unwrap(), Outcome::Accepted);
    assert_eq!(q.start(env).await.unwrap(), Outcome::Accepted);
    assert_eq!(q.delete(env).await.unwrap(), Outcome::Accepted);
    let statuses = seen.0.lock().unwrap().clone();
    assert!(
        statuses.iter().all(|(_, s)| s.starts_with('2')),
        "{statuses:?}"
    );
}
