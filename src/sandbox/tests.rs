//! The sandbox's API, called in-process through its router with a manual clock: the
//! token check, the shapes of each answer (the required fields of the spec's schemas),
//! the state walks of stop, deploy and delete, 409s and 404s, seeded fleets, faults and
//! the test hooks. One test serves on a real loopback port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::Value;
use tower::ServiceExt;

use super::lifecycle::State;
use super::*;
use crate::clock::ManualClock;

const TOKEN: &str = "t0ken";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

fn options(projects: u32, environments: u32, seed: u64) -> SandboxOptions {
    SandboxOptions {
        projects,
        environments,
        seed,
        token: TOKEN.into(),
        ..SandboxOptions::default()
    }
}

/// A sandbox, its clock, and a way to call it as a client would.
struct Api {
    sandbox: Sandbox,
    clock: ManualClock,
}

/// One answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered invalid JSON ({e}): {:?}",
                self.status, self.body
            )
        })
    }

    fn results(&self) -> Vec<Value> {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        match self.json().get("results") {
            Some(Value::Array(items)) => items.clone(),
            other => panic!("no results array: {other:?}"),
        }
    }
}

impl Api {
    fn new(options: SandboxOptions) -> Api {
        let clock = ManualClock::new(start());
        let sandbox = Sandbox::new(options, Arc::new(clock.clone()));
        Api { sandbox, clock }
    }

    /// Three projects, sixteen environments.
    fn fleet() -> Api {
        Api::new(options(3, 16, 7))
    }

    async fn call_as(&self, method: &str, path: &str, authorization: Option<&str>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request.body(Body::empty()).unwrap();
        let response = self.sandbox.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str) -> Answer {
        self.call_as(method, path, Some(&format!("Token {TOKEN}")))
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path).await
    }

    /// Posts `/environment/{id}/{action}` and gives the status.
    async fn act(&self, action: &str, id: &str) -> StatusCode {
        self.call("POST", &format!("/environment/{id}/{action}"))
            .await
            .status
    }

    /// The environment's state as `GET /environment/{id}/status` tells it.
    async fn state(&self, id: &str) -> String {
        let answer = self.get(&format!("/environment/{id}/status")).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.json()["state"].as_str().unwrap().to_string()
    }

    fn find(&self, state: &str) -> SandboxEnvironment {
        self.sandbox
            .environments()
            .into_iter()
            .find(|e| e.state == state)
            .unwrap_or_else(|| panic!("no {state} environment in the fleet"))
    }

    fn environment(&self, id: &str) -> Option<SandboxEnvironment> {
        self.sandbox.environments().into_iter().find(|e| e.id == id)
    }

    fn step(&self) {
        self.clock.advance(SandboxOptions::default().step);
    }
}

// ---------------------------------------------------------------------------------------
// Shapes: the required fields of each schema, with their types and formats.

#[derive(Debug, Clone, Copy)]
enum Kind {
    Uuid,
    Instant,
    Text,
    Integer,
    Bool,
    Object,
    /// A `StateEnum` value.
    QoveryState,
    OneOf(&'static [&'static str]),
}

const MODES: Kind = Kind::OneOf(&["DEVELOPMENT", "PREVIEW", "PRODUCTION", "STAGING"]);

const PROJECT: &[(&str, Kind)] = &[
    ("id", Kind::Uuid),
    ("created_at", Kind::Instant),
    ("name", Kind::Text),
    ("associated_environments_count", Kind::Integer),
    ("organization.id", Kind::Uuid),
];

const ORGANIZATION_ENVIRONMENT: &[(&str, Kind)] = &[
    ("id", Kind::Uuid),
    ("created_at", Kind::Instant),
    ("name", Kind::Text),
    ("organization.id", Kind::Uuid),
    ("project.id", Kind::Uuid),
    ("mode", MODES),
];

const ENVIRONMENT: &[(&str, Kind)] = &[
    ("id", Kind::Uuid),
    ("created_at", Kind::Instant),
    ("name", Kind::Text),
    ("organization.id", Kind::Uuid),
    ("project.id", Kind::Uuid),
    ("cloud_provider", Kind::Object),
    ("cloud_provider.provider", Kind::Text),
    ("cloud_provider.cluster", Kind::Text),
    ("mode", MODES),
    ("cluster_id", Kind::Uuid),
    ("cluster_name", Kind::Text),
];

const ENVIRONMENT_STATUS: &[(&str, Kind)] = &[
    ("id", Kind::Uuid),
    ("state", Kind::QoveryState),
    ("last_deployment_date", Kind::Instant),
    ("last_deployment_state", Kind::QoveryState),
    ("last_deployment_id", Kind::Text),
    (
        "deployment_status",
        Kind::OneOf(&["NEVER_DEPLOYED", "UP_TO_DATE", "OUT_OF_DATE"]),
    ),
];

const STATUS: &[(&str, Kind)] = &[
    ("id", Kind::Uuid),
    ("state", Kind::QoveryState),
    (
        "service_deployment_status",
        Kind::OneOf(&["NEVER_DEPLOYED", "OUT_OF_DATE", "UP_TO_DATE"]),
    ),
    ("last_deployment_date", Kind::Instant),
    ("is_part_last_deployment", Kind::Bool),
    ("status_details.action", Kind::OneOf(&["DEPLOY"])),
    ("status_details.status", Kind::OneOf(&["QUEUED"])),
    ("status_details.sub_action", Kind::OneOf(&["NONE"])),
    ("deployment_request_id", Kind::Uuid),
    ("deployment_requests_count", Kind::Integer),
];

const SERVICE: &[(&str, Kind)] = &[
    ("id", Kind::Uuid),
    ("created_at", Kind::Instant),
    ("environment.id", Kind::Uuid),
    ("name", Kind::Text),
    ("cpu", Kind::Integer),
    ("memory", Kind::Integer),
    ("min_running_instances", Kind::Integer),
    ("max_running_instances", Kind::Integer),
    ("healthchecks", Kind::Object),
    ("icon_uri", Kind::Text),
    ("ports.0.id", Kind::Uuid),
    ("ports.0.internal_port", Kind::Integer),
    ("ports.0.publicly_accessible", Kind::Bool),
    (
        "ports.0.protocol",
        Kind::OneOf(&["HTTP", "GRPC", "TCP", "UDP"]),
    ),
];

const APPLICATION: &[(&str, Kind)] = &[
    ("service_type", Kind::OneOf(&["APPLICATION"])),
    (
        "git_repository.provider",
        Kind::OneOf(&["BITBUCKET", "GITHUB", "GITLAB"]),
    ),
    ("git_repository.owner", Kind::Text),
    ("git_repository.url", Kind::Text),
    ("git_repository.name", Kind::Text),
];

const CONTAINER: &[(&str, Kind)] = &[
    ("service_type", Kind::OneOf(&["CONTAINER"])),
    ("image_name", Kind::Text),
    ("tag", Kind::Text),
    ("registry.id", Kind::Uuid),
    ("registry.name", Kind::Text),
    ("registry.url", Kind::Text),
    ("registry.kind", Kind::OneOf(&["DOCKER_HUB", "GITHUB_CR"])),
    ("maximum_cpu", Kind::Integer),
    ("maximum_memory", Kind::Integer),
    ("maximum_gpu", Kind::Integer),
    ("gpu", Kind::Integer),
    ("auto_preview", Kind::Bool),
];

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

fn field<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(index) => v.get(index),
            Err(_) => v.get(key),
        })
}

/// Asserts every field of `shape` is present with its type; `what` names the schema.
fn assert_shape(what: &str, value: &Value, shape: &[(&str, Kind)]) {
    for (path, kind) in shape {
        let found = field(value, path).unwrap_or_else(|| panic!("{what}: no `{path}` in {value}"));
        let text = found.as_str();
        let ok = match kind {
            Kind::Uuid => text.is_some_and(is_uuid),
            Kind::Instant => text.is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok()),
            Kind::Text => text.is_some_and(|t| !t.is_empty()),
            Kind::Integer => found.is_u64() || found.is_i64(),
            Kind::Bool => found.is_boolean(),
            Kind::Object => found.is_object(),
            Kind::QoveryState => text.is_some_and(|t| State::parse(t).is_some()),
            Kind::OneOf(values) => text.is_some_and(|t| values.contains(&t)),
        };
        assert!(ok, "{what}: `{path}` should be {kind:?}, is {found}");
    }
}

#[tokio::test]
async fn every_listing_answers_the_required_fields_of_its_schema() {
    let api = Api::fleet();
    let org = api.sandbox.organization_id();
    let truth = api.sandbox.environments();

    let projects = api
        .get(&format!("/organization/{org}/project"))
        .await
        .results();
    assert_eq!(projects.len(), 3);
    let mut counted = 0;
    for project in &projects {
        assert_shape("Project", project, PROJECT);
        assert_eq!(project["organization"]["id"], org.as_str());
        counted += project["associated_environments_count"].as_u64().unwrap();
    }
    assert_eq!(counted, 16);

    let listed = api
        .get(&format!("/organization/{org}/environments"))
        .await
        .results();
    assert_eq!(listed.len(), truth.len());
    for env in &listed {
        assert_shape(
            "OrganizationEnvironmentResponse",
            env,
            ORGANIZATION_ENVIRONMENT,
        );
    }

    for project in &projects {
        let id = project["id"].as_str().unwrap();
        let envs = api
            .get(&format!("/project/{id}/environment"))
            .await
            .results();
        let statuses = api
            .get(&format!("/project/{id}/environment/status"))
            .await
            .results();
        assert_eq!(
            envs.len() as u64,
            project["associated_environments_count"].as_u64().unwrap()
        );
        assert_eq!(statuses.len(), envs.len());
        for env in &envs {
            assert_shape("Environment", env, ENVIRONMENT);
            let known = truth
                .iter()
                .find(|t| t.id == env["id"])
                .expect("a known id");
            assert_eq!(env["name"], known.name.as_str());
            assert_eq!(env["cluster_name"], known.cluster_name.as_str());
            assert_eq!(known.project_id, id);
        }
        for status in &statuses {
            assert_shape("EnvironmentStatus", status, ENVIRONMENT_STATUS);
        }
    }

    for env in &truth {
        let status = api.get(&format!("/environment/{}/status", env.id)).await;
        assert_shape("EnvironmentStatus", &status.json(), ENVIRONMENT_STATUS);
        assert_eq!(status.json()["state"], env.state.as_str());
        let applications = api
            .get(&format!("/environment/{}/application", env.id))
            .await
            .results();
        let containers = api
            .get(&format!("/environment/{}/container", env.id))
            .await
            .results();
        for app in &applications {
            assert_shape("Application", app, SERVICE);
            assert_shape("Application", app, APPLICATION);
        }
        for container in &containers {
            assert_shape("ContainerResponse", container, SERVICE);
            assert_shape("ContainerResponse", container, CONTAINER);
        }
        let services: Vec<&Value> = applications.iter().chain(&containers).collect();
        assert_eq!(services.len(), env.services.len(), "{}", env.name);
        let asked = |key: &str| -> u64 {
            services
                .iter()
                .map(|s| s[key].as_u64().unwrap() * s["min_running_instances"].as_u64().unwrap())
                .sum()
        };
        assert_eq!(asked("cpu"), u64::from(env.cpu_millis), "{}", env.name);
        assert_eq!(asked("memory"), u64::from(env.memory_mb), "{}", env.name);
    }
}

#[tokio::test]
async fn an_empty_organization_lists_no_projects_and_no_environments() {
    let api = Api {
        clock: ManualClock::new(start()),
        sandbox: Sandbox::empty(options(5, 30, 1), Arc::new(ManualClock::new(start()))),
    };
    let org = api.sandbox.organization_id();
    assert!(
        api.get(&format!("/organization/{org}/project"))
            .await
            .results()
            .is_empty()
    );
    assert!(
        api.get(&format!("/organization/{org}/environments"))
            .await
            .results()
            .is_empty()
    );
    assert!(api.sandbox.environments().is_empty());
}

// ---------------------------------------------------------------------------------------
// The token.

#[tokio::test]
async fn every_request_needs_the_token_as_qovery_checks_it() {
    let api = Api::fleet();
    let org = api.sandbox.organization_id();
    let target = api.find("DEPLOYED");
    let refused = [
        None,
        Some("Token wrong"),
        Some("Bearer t0ken"),
        Some("t0ken"),
        Some("token t0ken"),
        Some("Token "),
        Some("Token t0ken-and-more"),
    ];
    let paths = [
        ("GET", format!("/organization/{org}/project")),
        ("POST", format!("/environment/{}/stop", target.id)),
        ("DELETE", format!("/environment/{}", target.id)),
        ("GET", "/no/such/endpoint".to_string()),
    ];
    for authorization in refused {
        for (method, path) in &paths {
            let answer = api.call_as(method, path, authorization).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {authorization:?}"
            );
            assert!(!String::from_utf8_lossy(&answer.body).contains(TOKEN));
        }
    }
    assert_eq!(
        api.state(&target.id).await,
        "DEPLOYED",
        "a refused stop does nothing"
    );
    let counts = api.sandbox.requests();
    assert_eq!(counts.unauthorized, (refused.len() * paths.len()) as u64);
    assert!(counts.stops.is_empty() && counts.deletes.is_empty());
    let answer = api.get(&format!("/organization/{org}/project")).await;
    assert_eq!(answer.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Actions and states.

#[tokio::test]
async fn a_stop_answers_202_then_walks_through_stop_queued_and_stopping_to_stopped() {
    let api = Api::fleet();
    let env = api.find("DEPLOYED");
    let answer = api
        .call("POST", &format!("/environment/{}/stop", env.id))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_shape("EnvironmentStatus", &answer.json(), ENVIRONMENT_STATUS);
    assert_eq!(answer.json()["state"], "STOP_QUEUED");
    assert_eq!(answer.json()["id"], env.id.as_str());
    for expected in ["STOP_QUEUED", "STOPPING", "STOPPED", "STOPPED"] {
        assert_eq!(api.state(&env.id).await, expected);
        let listed = api
            .get(&format!("/project/{}/environment/status", env.project_id))
            .await
            .results();
        let mine = listed.iter().find(|s| s["id"] == env.id.as_str()).unwrap();
        assert_eq!(mine["state"], expected);
        assert_eq!(api.environment(&env.id).unwrap().state, expected);
        api.step();
    }
    assert_eq!(
        api.environment(&env.id).unwrap().last_deployment_date,
        env.last_deployment_date,
        "a stop is not a deployment for the idle clock"
    );
}

#[tokio::test]
async fn a_deploy_answers_202_walks_to_deployed_and_moves_last_deployment_date() {
    let api = Api::fleet();
    let env = api.find("STOPPED");
    api.clock.advance(TimeDelta::hours(3));
    let deployed_at = start() + TimeDelta::hours(3);
    let answer = api
        .call("POST", &format!("/environment/{}/deploy", env.id))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_shape("Status", &answer.json(), STATUS);
    assert_eq!(answer.json()["state"], "DEPLOYMENT_QUEUED");
    for expected in ["DEPLOYMENT_QUEUED", "DEPLOYING", "DEPLOYED"] {
        assert_eq!(api.state(&env.id).await, expected);
        api.step();
    }
    let status = api
        .get(&format!("/environment/{}/status", env.id))
        .await
        .json();
    assert_eq!(status["last_deployment_date"], "2026-03-02T13:00:00Z");
    assert_eq!(
        api.environment(&env.id).unwrap().last_deployment_date,
        Some(deployed_at)
    );

    // A never-deployed environment (READY) may be deployed too.
    let other = api.find("DEPLOYED");
    assert!(api.sandbox.set_state(&other.id, "READY"));
    let answer = api
        .call("POST", &format!("/environment/{}/deploy", other.id))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn actions_on_an_environment_already_there_or_busy_answer_409() {
    let api = Api::fleet();
    let running = api.find("DEPLOYED").id;
    let stopped = api.find("STOPPED").id;
    // (what, action, environment, expected), in order, without moving the clock.
    let cases = [
        (
            "stop a stopped environment",
            "stop",
            &stopped,
            StatusCode::CONFLICT,
        ),
        (
            "deploy a running environment",
            "deploy",
            &running,
            StatusCode::CONFLICT,
        ),
        (
            "stop a running environment",
            "stop",
            &running,
            StatusCode::ACCEPTED,
        ),
        (
            "stop it again while queued",
            "stop",
            &running,
            StatusCode::CONFLICT,
        ),
        (
            "deploy it while the stop is queued",
            "deploy",
            &running,
            StatusCode::CONFLICT,
        ),
        (
            "deploy a stopped environment",
            "deploy",
            &stopped,
            StatusCode::ACCEPTED,
        ),
        (
            "stop it while its deploy is queued",
            "stop",
            &stopped,
            StatusCode::CONFLICT,
        ),
    ];
    for (what, action, id, expected) in cases {
        assert_eq!(api.act(action, id).await, expected, "{what}");
    }
    api.step();
    assert_eq!(
        api.act("deploy", &running).await,
        StatusCode::CONFLICT,
        "deploy while stopping"
    );
    assert_eq!(
        api.act("stop", &stopped).await,
        StatusCode::CONFLICT,
        "stop while deploying"
    );
    let answer = api
        .call("POST", &format!("/environment/{running}/stop"))
        .await;
    assert_eq!(
        answer.json()["message"],
        "Environment is already stopped or an operation is in progress"
    );

    let counts = api.sandbox.requests();
    assert_eq!(
        counts.stops[&running],
        ActionCounts {
            calls: 3,
            accepted: 1
        }
    );
    assert_eq!(
        counts.deploys[&running],
        ActionCounts {
            calls: 3,
            accepted: 0
        }
    );
    assert_eq!(
        counts.stops[&stopped],
        ActionCounts {
            calls: 3,
            accepted: 0
        }
    );
    assert_eq!(
        counts.deploys[&stopped],
        ActionCounts {
            calls: 1,
            accepted: 1
        }
    );
}

#[tokio::test]
async fn a_delete_answers_204_then_the_environment_is_gone_everywhere() {
    let api = Api::fleet();
    let org = api.sandbox.organization_id();
    let env = api.find("DEPLOYED");
    let count = |projects: Vec<Value>| {
        projects
            .iter()
            .find(|p| p["id"] == env.project_id.as_str())
            .and_then(|p| p["associated_environments_count"].as_u64())
            .unwrap()
    };
    let before = count(
        api.get(&format!("/organization/{org}/project"))
            .await
            .results(),
    );

    let answer = api
        .call("DELETE", &format!("/environment/{}", env.id))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty() && answer.headers.get(header::CONTENT_TYPE).is_none());
    assert_eq!(api.state(&env.id).await, "DELETE_QUEUED");
    api.step();
    assert_eq!(api.state(&env.id).await, "DELETING");
    let again = api
        .call("DELETE", &format!("/environment/{}", env.id))
        .await;
    assert_eq!(
        again.status,
        StatusCode::NO_CONTENT,
        "a second delete is harmless"
    );
    assert_eq!(
        api.state(&env.id).await,
        "DELETING",
        "and does not restart the delete"
    );
    api.step();

    let gone = [
        ("GET", format!("/environment/{}/status", env.id)),
        ("GET", format!("/environment/{}/application", env.id)),
        ("POST", format!("/environment/{}/stop", env.id)),
        ("DELETE", format!("/environment/{}", env.id)),
    ];
    for (method, path) in &gone {
        assert_eq!(
            api.call(method, path).await.status,
            StatusCode::NOT_FOUND,
            "{method} {path}"
        );
    }
    let listed = api
        .get(&format!("/organization/{org}/environments"))
        .await
        .results();
    assert!(listed.iter().all(|e| e["id"] != env.id.as_str()));
    let in_project = api
        .get(&format!("/project/{}/environment", env.project_id))
        .await
        .results();
    assert!(in_project.iter().all(|e| e["id"] != env.id.as_str()));
    assert_eq!(
        count(
            api.get(&format!("/organization/{org}/project"))
                .await
                .results()
        ),
        before - 1
    );
    assert!(api.environment(&env.id).is_none());
    assert_eq!(
        api.sandbox.requests().deletes[&env.id],
        ActionCounts {
            calls: 2,
            accepted: 1
        }
    );

    // The removal shifted the fleet's indexes: every other environment is still found by
    // its id, and the project's listing holds exactly its own environments.
    let rest = api.sandbox.environments();
    for other in rest.iter().filter(|e| e.state == "DEPLOYED").take(3) {
        let path = format!("/environment/{}/stop", other.id);
        assert_eq!(api.call("POST", &path).await.status, StatusCode::ACCEPTED);
        assert_eq!(api.state(&other.id).await, "STOP_QUEUED", "{}", other.name);
    }
    let mut expected: Vec<&str> = rest
        .iter()
        .filter(|e| e.project_id == env.project_id)
        .map(|e| e.id.as_str())
        .collect();
    let statuses = api
        .get(&format!("/project/{}/environment/status", env.project_id))
        .await
        .results();
    let mut listed: Vec<&str> = statuses.iter().filter_map(|s| s["id"].as_str()).collect();
    expected.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn unknown_organizations_projects_environments_and_paths_answer_404() {
    let api = Api::fleet();
    let nobody = "00000000-0000-4000-8000-000000000000";
    let paths = [
        ("GET", format!("/organization/{nobody}/project")),
        ("GET", format!("/organization/{nobody}/environments")),
        ("GET", format!("/project/{nobody}/environment")),
        ("GET", format!("/project/{nobody}/environment/status")),
        ("GET", format!("/environment/{nobody}/status")),
        ("GET", format!("/environment/{nobody}/application")),
        ("GET", format!("/environment/{nobody}/container")),
        ("POST", format!("/environment/{nobody}/stop")),
        ("POST", format!("/environment/{nobody}/deploy")),
        ("DELETE", format!("/environment/{nobody}")),
        ("GET", "/environment/not-even-a-uuid/status".to_string()),
        ("GET", "/no/such/endpoint".to_string()),
    ];
    for (method, path) in &paths {
        let answer = api.call(method, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(answer.json()["status"], 404, "{method} {path}");
    }
    assert!(
        api.sandbox.requests().stops.is_empty(),
        "unknown ids are not counted as actions"
    );
}

#[tokio::test]
async fn set_state_changes_an_environment_as_a_person_in_the_console_would() {
    let api = Api::fleet();
    let stopped = api.find("STOPPED");
    api.clock.advance(TimeDelta::minutes(10));
    assert!(api.sandbox.set_state(&stopped.id, "DEPLOYED"));
    let now = api.environment(&stopped.id).unwrap();
    assert_eq!(now.state, "DEPLOYED");
    assert_eq!(
        now.last_deployment_date,
        Some(start() + TimeDelta::minutes(10)),
        "a start by hand is a deployment"
    );

    let running = api.find("DEPLOYED");
    assert!(api.sandbox.set_state(&running.id, "STOPPED"));
    assert_eq!(api.state(&running.id).await, "STOPPED");

    // A state set by hand stays, even a transitional one: a stuck deployment.
    assert!(api.sandbox.set_state(&running.id, "DEPLOYING"));
    api.clock.advance(TimeDelta::days(1));
    assert_eq!(api.state(&running.id).await, "DEPLOYING");
    let answer = api
        .call("POST", &format!("/environment/{}/stop", running.id))
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);

    assert!(
        !api.sandbox.set_state(&running.id, "RUNNING"),
        "Qovery has no RUNNING"
    );
    assert!(!api.sandbox.set_state("no-such-id", "STOPPED"));
    assert!(api.sandbox.set_state(&running.id, "DELETED"));
    assert!(api.environment(&running.id).is_none());
}

// ---------------------------------------------------------------------------------------
// The fleet.

#[test]
fn a_seed_names_the_fleet() {
    let fleet = |seed: u64, at: DateTime<Utc>| {
        Sandbox::new(options(4, 24, seed), Arc::new(ManualClock::new(at)))
    };
    let a = fleet(11, start());
    let b = fleet(11, start());
    assert_eq!(a.organization_id(), b.organization_id());
    assert_eq!(a.environments(), b.environments());

    // Instants are relative to the clock's now: a day later, the same fleet a day later.
    let later = fleet(11, start() + TimeDelta::days(1)).environments();
    for (x, y) in a.environments().iter().zip(&later) {
        assert_eq!(
            (&x.id, &x.name, x.mode, &x.state),
            (&y.id, &y.name, y.mode, &y.state)
        );
        assert_eq!(x.created_at + TimeDelta::days(1), y.created_at);
    }

    let other = fleet(12, start());
    assert_ne!(a.organization_id(), other.organization_id());
    assert_ne!(
        a.environments().iter().map(|e| &e.name).collect::<Vec<_>>(),
        other
            .environments()
            .iter()
            .map(|e| &e.name)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_fleet_looks_like_an_organization_running_preview_environments() {
    for seed in 0..25 {
        let sandbox = Sandbox::new(options(4, 24, seed), Arc::new(ManualClock::new(start())));
        let envs = sandbox.environments();
        assert_eq!(envs.len(), 24, "seed {seed}");
        let of_mode = |mode: Mode| envs.iter().filter(|e| e.mode == mode).count();
        let previews = of_mode(Mode::Preview);
        for mode in Mode::ALL {
            assert!(of_mode(mode) >= 1, "seed {seed}: no {mode}");
            assert!(
                previews >= of_mode(mode),
                "seed {seed}: previews are the most"
            );
        }
        let mut projects: Vec<&str> = envs.iter().map(|e| e.project_id.as_str()).collect();
        projects.sort();
        projects.dedup();
        assert_eq!(projects.len(), 4, "seed {seed}");
        for project in &projects {
            let in_project: Vec<_> = envs.iter().filter(|e| e.project_id == *project).collect();
            let production = in_project
                .iter()
                .filter(|e| e.mode == Mode::Production)
                .count();
            assert_eq!(production, 1, "seed {seed}: one production per project");
            let mut names: Vec<&str> = in_project.iter().map(|e| e.name.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(
                names.len(),
                in_project.len(),
                "seed {seed}: names unique in a project"
            );
        }
        for env in &envs {
            let what = format!("seed {seed} {} ({})", env.name, env.mode);
            assert!(is_uuid(&env.id), "{what}");
            assert!(
                matches!(env.state.as_str(), "DEPLOYED" | "STOPPED"),
                "{what}"
            );
            if env.mode == Mode::Production {
                assert_eq!(env.state, "DEPLOYED", "{what}");
            }
            if env.mode == Mode::Preview {
                assert!(env.name.starts_with("pr-"), "{what}");
            }
            assert!((1..=4).contains(&env.services.len()), "{what}");
            assert!(env.cpu_millis > 0 && env.memory_mb > 0, "{what}");
            let deployed = env
                .last_deployment_date
                .expect("generated environments were deployed");
            assert!(env.created_at <= deployed && deployed <= start(), "{what}");
            assert!(start() - env.created_at <= TimeDelta::days(730), "{what}");
        }
        assert!(
            envs.iter().any(|e| e.state == "STOPPED"),
            "seed {seed}: some stopped"
        );
    }
}

#[test]
fn small_fleets_give_production_first_and_nothing_without_projects() {
    let count = |projects, environments| {
        let sandbox = Sandbox::new(
            options(projects, environments, 3),
            Arc::new(ManualClock::new(start())),
        );
        sandbox.environments()
    };
    let two = count(3, 2);
    assert_eq!(two.len(), 2);
    assert!(two.iter().all(|e| e.mode == Mode::Production));
    assert!(count(0, 10).is_empty());
    assert_eq!(count(40, 40).len(), 40, "more projects than names");
}

// ---------------------------------------------------------------------------------------
// Faults.

#[tokio::test]
async fn each_fault_answers_as_a_struggling_api_would_and_changes_nothing() {
    let api = Api::new(SandboxOptions {
        timeout: Duration::from_millis(30),
        ..options(2, 8, 5)
    });
    let env = api.find("DEPLOYED");
    let stop = format!("/environment/{}/stop", env.id);
    let cases = [
        (
            "error",
            Faults {
                error_rate: 1.0,
                ..Faults::NONE
            },
        ),
        (
            "throttle",
            Faults {
                throttle_rate: 1.0,
                ..Faults::NONE
            },
        ),
        (
            "timeout",
            Faults {
                timeout_rate: 1.0,
                ..Faults::NONE
            },
        ),
        (
            "malformed",
            Faults {
                malformed_rate: 1.0,
                ..Faults::NONE
            },
        ),
    ];
    for (what, faults) in cases {
        api.sandbox.set_faults(faults);
        for _ in 0..3 {
            let started = Instant::now();
            let answer = api.call("POST", &stop).await;
            match what {
                "error" => {
                    assert!(
                        matches!(answer.status.as_u16(), 500 | 503),
                        "{}",
                        answer.status
                    );
                    assert_eq!(answer.json()["status"], answer.status.as_u16());
                }
                "throttle" => {
                    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
                    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
                }
                "timeout" => {
                    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
                    assert!(started.elapsed() >= Duration::from_millis(30));
                }
                _ => {
                    assert_eq!(answer.status, StatusCode::OK);
                    assert!(serde_json::from_slice::<Value>(&answer.body).is_err());
                }
            }
        }
        api.sandbox.set_faults(Faults::NONE);
        assert_eq!(
            api.state(&env.id).await,
            "DEPLOYED",
            "a faulted stop ({what}) does nothing"
        );
    }
    let counts = api.sandbox.requests();
    assert_eq!(counts.faulted, 12);
    assert!(
        counts.stops.is_empty(),
        "no faulted stop reached the environment"
    );
    assert_eq!(
        counts.endpoint("POST /environment/{environmentId}/stop"),
        12
    );
}

#[tokio::test]
async fn faults_are_drawn_per_request_at_their_rate() {
    let api = Api::new(SandboxOptions {
        error_rate: 0.3,
        throttle_rate: 0.2,
        ..options(1, 2, 9)
    });
    let org = api.sandbox.organization_id();
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..400 {
        let answer = api.get(&format!("/organization/{org}/project")).await;
        *by_status.entry(answer.status.as_u16()).or_default() += 1;
    }
    let errors = by_status.get(&500).unwrap_or(&0) + by_status.get(&503).unwrap_or(&0);
    let throttled = by_status.get(&429).copied().unwrap_or(0);
    assert!((80..=160).contains(&errors), "{by_status:?}");
    assert!((50..=110).contains(&throttled), "{by_status:?}");
    assert!(
        by_status.contains_key(&500) && by_status.contains_key(&503),
        "{by_status:?}"
    );
    assert_eq!(
        api.sandbox.requests().faulted,
        u64::from(errors + throttled)
    );
}

#[tokio::test]
async fn latency_is_added_to_every_authorized_answer() {
    let api = Api::new(SandboxOptions {
        latency: Duration::from_millis(15),
        ..options(1, 2, 9)
    });
    let org = api.sandbox.organization_id();
    let started = Instant::now();
    assert_eq!(
        api.get(&format!("/organization/{org}/project"))
            .await
            .status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(15));
}

#[tokio::test]
async fn a_project_whose_status_fails_answers_500_every_time_until_healed() {
    let api = Api::fleet();
    let envs = api.sandbox.environments();
    let broken = envs[0].project_id.clone();
    let healthy = envs
        .iter()
        .find(|e| e.project_id != broken)
        .unwrap()
        .project_id
        .clone();
    api.sandbox.fail_status_of_project(Some(broken.clone()));
    for _ in 0..3 {
        let answer = api
            .get(&format!("/project/{broken}/environment/status"))
            .await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let status = |project: &str| format!("/project/{project}/environment/status");
    assert_eq!(api.get(&status(&healthy)).await.status, StatusCode::OK);
    assert_eq!(
        api.get(&format!("/project/{broken}/environment"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.state(&envs[0].id).await,
        envs[0].state,
        "one environment's status still answers"
    );
    api.sandbox.fail_status_of_project(None);
    assert_eq!(api.get(&status(&broken)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_are_counted_by_endpoint_and_actions_by_environment() {
    let api = Api::fleet();
    let org = api.sandbox.organization_id();
    let env = api.find("DEPLOYED");
    api.get(&format!("/organization/{org}/project")).await;
    api.get(&format!("/organization/{org}/project")).await;
    api.call("POST", &format!("/environment/{}/stop", env.id))
        .await;
    api.call("GET", "/nowhere").await;
    api.call_as("GET", "/nowhere", None).await;
    let counts = api.sandbox.requests();
    assert_eq!(counts.total, 5);
    assert_eq!(counts.unauthorized, 1);
    assert_eq!(
        counts.endpoint("GET /organization/{organizationId}/project"),
        2
    );
    assert_eq!(counts.endpoint("POST /environment/{environmentId}/stop"), 1);
    assert_eq!(counts.endpoint("GET (unmatched)"), 1);
    assert_eq!(
        counts.stops[&env.id],
        ActionCounts {
            calls: 1,
            accepted: 1
        }
    );
}

// ---------------------------------------------------------------------------------------
// Serving, and secrets.

#[tokio::test]
async fn spawn_serves_on_a_loopback_port_until_dropped() {
    let sandbox = Sandbox::new(options(1, 3, 2), Arc::new(ManualClock::new(start())));
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let running = sandbox.clone().spawn(listener).await.unwrap();
    assert!(
        running.url.starts_with("http://127.0.0.1:"),
        "{}",
        running.url
    );
    assert_eq!(running.organization_id, sandbox.organization_id());
    let url = format!(
        "{}/organization/{}/project",
        running.url, running.organization_id
    );
    let client = reqwest::Client::new();
    let answer = client
        .get(&url)
        .header("Authorization", format!("Token {}", running.token))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1));

    drop(running);
    let mut refused = false;
    for _ in 0..100 {
        let fresh = reqwest::Client::new();
        if fresh.get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "the server stops when its handle is dropped");
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output() {
    let secret = "s3cret-t0ken";
    let options = SandboxOptions {
        token: secret.into(),
        ..options(1, 1, 1)
    };
    let sandbox = Sandbox::new(options.clone(), Arc::new(ManualClock::new(start())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = sandbox.clone().spawn(listener).await.unwrap();
    for shown in [
        format!("{options:?}"),
        format!("{sandbox:?}"),
        format!("{running:?}"),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
}
