//! The HTTP API: the routes curfew calls, each answering as Qovery's spec says, behind
//! the [gate](super::gate). Each handler locks the sandbox once, settles the actions that
//! finished by the clock's now, and answers; nothing runs between requests.

use axum::Router;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::bodies::{
    Results, application_body, container_body, environment_body, environment_status_body,
    organization_environment_body, project_body, status_body,
};
use super::fleet::{EnvironmentRecord, Fleet, Service, uuid};
use super::gate::gate;
use super::lifecycle::Action;
use super::{ActionCounts, Inner, Sandbox};

/// Qovery's answer to an action it cannot take now.
const CONFLICT: &str = "Environment is already stopped or an operation is in progress";

pub(super) fn router(sandbox: Sandbox) -> Router {
    let api = Router::new()
        .route("/organization", get(list_organizations))
        .route("/organization/{organizationId}/project", get(list_projects))
        .route(
            "/organization/{organizationId}/environments",
            get(list_organization_environments),
        )
        .route("/project/{projectId}/environment", get(list_environments))
        .route(
            "/project/{projectId}/environment/status",
            get(list_environment_statuses),
        )
        .route(
            "/environment/{environmentId}",
            get(get_environment).delete(delete_environment),
        )
        .route("/environment/{environmentId}/link", get(environment_links))
        .route(
            "/environment/{environmentId}/status",
            get(environment_status),
        )
        .route(
            "/environment/{environmentId}/application",
            get(list_applications),
        )
        .route(
            "/environment/{environmentId}/container",
            get(list_containers),
        )
        .route("/environment/{environmentId}/stop", post(stop_environment))
        .route(
            "/environment/{environmentId}/deploy",
            post(deploy_environment),
        )
        .fallback(unknown_path)
        .layer(middleware::from_fn_with_state(sandbox.clone(), gate));
    // The environments' own apps, which Qovery's links point at: outside the API, so
    // neither its token nor its faults apply.
    // `/app/{id}/` too: curfew's waiting page sends the reader to the link's root with its
    // slash (a browser found it answered by the API's 401).
    api.route("/app/{environmentId}", get(app))
        .route("/app/{environmentId}/", get(app))
        .route("/app/{environmentId}/{*path}", get(app))
        .with_state(sandbox)
}

// ---------------------------------------------------------------------------------------
// Answers.

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    (status, axum::Json(body)).into_response()
}

fn not_found(what: &str, id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("{what} {id} not found"))
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A typed body, serialized while the fleet is borrowed (the lock is held only for that).
fn ok_typed<T: serde::Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("sandbox: could not write the answer: {e}"),
        ),
    }
}

async fn unknown_path() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint in the sandbox")
}

// ---------------------------------------------------------------------------------------
// Handlers.

/// `GET /organization`: the organizations the token sees, here the one of the fleet
/// (`OrganizationResponseList`; `Organization` needs `id`, `created_at`, `name`, `plan`).
async fn list_organizations(Extract(sandbox): Extract<Sandbox>) -> Response {
    sandbox.with_fleet(|inner, _, _| {
        let fleet = &inner.fleet;
        let created_at = fleet.projects.first().map(|p| p.created_at);
        ok(json!({ "results": [{
            "id": fleet.organization_id,
            "created_at": created_at,
            "name": "sandbox",
            "plan": "TEAM_2025",
        }] }))
    })
}

/// `GET /environment/{id}`: the environment (`Environment`, as in the project's listing).
async fn get_environment(Extract(sandbox): Extract<Sandbox>, Path(id): Path<String>) -> Response {
    sandbox.with_fleet(|inner, _, _| match find(&inner.fleet, &id) {
        Some(env) => ok(environment_body(&inner.fleet, env)),
        None => not_found("environment", &id),
    })
}

/// `GET /environment/{id}/link` (`LinkResponseList`): one link per application or
/// container, to the sandbox's own `/app/{id}` on the host the request came to.
async fn environment_links(
    Extract(sandbox): Extract<Sandbox>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    sandbox.with_fleet(|inner, _, _| {
        let Some(env) = find(&inner.fleet, &id) else {
            return not_found("environment", &id);
        };
        let results: Vec<Value> = env
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let kind = match s.kind {
                    super::fleet::ServiceKind::Application { .. } => "APPLICATION",
                    super::fleet::ServiceKind::Container { .. } => "CONTAINER",
                };
                json!({
                    "service_id": s.id,
                    "service_type": kind,
                    "url": format!("http://{host}/app/{}", env.id),
                    "internal_port": 8080,
                    "external_port": 80,
                    "is_qovery_domain": true,
                    "is_default": i == 0,
                })
            })
            .collect();
        ok(json!({ "results": results }))
    })
}

/// An environment's app: 200 while it is `DEPLOYED`, 503 otherwise (as a stopped
/// preview's ingress answers), 404 for an unknown one.
async fn app(
    Extract(sandbox): Extract<Sandbox>,
    Path(params): Path<Vec<(String, String)>>,
) -> Response {
    let id = params.first().map(|(_, v)| v.clone()).unwrap_or_default();
    sandbox.with_fleet(|inner, now, step| match find(&inner.fleet, &id) {
        Some(env) if env.lifecycle.state_at(now, step).as_str() == "DEPLOYED" => {
            (StatusCode::OK, format!("app of {}\n", env.name)).into_response()
        }
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "not running\n").into_response(),
        None => (StatusCode::NOT_FOUND, "no such app\n").into_response(),
    })
}

async fn list_projects(Extract(sandbox): Extract<Sandbox>, Path(org): Path<String>) -> Response {
    sandbox.with_fleet(|inner, _, _| {
        let fleet = &inner.fleet;
        if fleet.organization_id != org {
            return not_found("organization", &org);
        }
        let results: Vec<Value> = (0..fleet.projects.len())
            .map(|i| project_body(fleet, i))
            .collect();
        ok(json!({ "results": results }))
    })
}

async fn list_organization_environments(
    Extract(sandbox): Extract<Sandbox>,
    Path(org): Path<String>,
) -> Response {
    let listing = sandbox.with_fleet(|inner, _, _| {
        let fleet = &inner.fleet;
        (fleet.organization_id == org).then(|| {
            fleet
                .environments()
                .iter()
                .map(|env| organization_environment_body(fleet, env))
                .collect::<Vec<_>>()
        })
    });
    match listing {
        Some(results) => {
            let written = tokio::task::spawn_blocking(move || ok_typed(&Results { results })).await;
            written.unwrap_or_else(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("sandbox: could not write the answer: {e}"),
                )
            })
        }
        None => not_found("organization", &org),
    }
}

async fn list_environments(
    Extract(sandbox): Extract<Sandbox>,
    Path(project): Path<String>,
) -> Response {
    sandbox.with_fleet(|inner, _, _| {
        let fleet = &inner.fleet;
        let Some(index) = fleet.project_position(&project) else {
            return not_found("project", &project);
        };
        let results: Vec<Value> = fleet
            .of_project(index)
            .map(|env| environment_body(fleet, env))
            .collect();
        ok(json!({ "results": results }))
    })
}

async fn list_environment_statuses(
    Extract(sandbox): Extract<Sandbox>,
    Path(project): Path<String>,
) -> Response {
    sandbox.with_fleet(|inner, now, step| {
        let fleet = &inner.fleet;
        let Some(index) = fleet.project_position(&project) else {
            return not_found("project", &project);
        };
        if inner.failing_project.as_deref() == Some(project.as_str()) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "sandbox: statuses of this project fail (fail_status_of_project)",
            );
        }
        let results: Vec<_> = fleet
            .of_project(index)
            .map(|env| environment_status_body(env, now, step))
            .collect();
        ok_typed(&Results { results })
    })
}

async fn environment_status(
    Extract(sandbox): Extract<Sandbox>,
    Path(id): Path<String>,
) -> Response {
    sandbox.with_fleet(|inner, now, step| match find(&inner.fleet, &id) {
        Some(env) => ok_typed(&environment_status_body(env, now, step)),
        None => not_found("environment", &id),
    })
}

async fn list_applications(Extract(sandbox): Extract<Sandbox>, Path(id): Path<String>) -> Response {
    list_services(&sandbox, &id, application_body)
}

async fn list_containers(Extract(sandbox): Extract<Sandbox>, Path(id): Path<String>) -> Response {
    list_services(&sandbox, &id, container_body)
}

/// An environment's services of one kind: `body` answers `None` for the other kind.
fn list_services<F>(sandbox: &Sandbox, id: &str, body: F) -> Response
where
    F: Fn(&Fleet, &EnvironmentRecord, &Service) -> Option<Value>,
{
    sandbox.with_fleet(|inner, _, _| {
        let fleet = &inner.fleet;
        let Some(env) = find(fleet, id) else {
            return not_found("environment", id);
        };
        let results: Vec<Value> = env
            .services
            .iter()
            .filter_map(|s| body(fleet, env, s))
            .collect();
        ok(json!({ "results": results }))
    })
}

async fn stop_environment(Extract(sandbox): Extract<Sandbox>, Path(id): Path<String>) -> Response {
    sandbox.act(&id, Action::Stop)
}

async fn deploy_environment(
    Extract(sandbox): Extract<Sandbox>,
    Path(id): Path<String>,
) -> Response {
    sandbox.act(&id, Action::Deploy)
}

async fn delete_environment(
    Extract(sandbox): Extract<Sandbox>,
    Path(id): Path<String>,
) -> Response {
    sandbox.act(&id, Action::Delete)
}

impl Sandbox {
    /// Stop, deploy or delete: 404 for an unknown id, 409 when the state does not accept
    /// the action, else the action starts now.
    fn act(&self, id: &str, action: Action) -> Response {
        self.with_fleet(|inner, now, step| {
            let Some(index) = inner.fleet.position(id) else {
                return not_found("environment", id);
            };
            let env = inner.fleet.at_mut(index);
            let state = env.lifecycle.state_at(now, step);
            let accepted = match action {
                Action::Stop => state.accepts_stop(),
                Action::Deploy => state.accepts_deploy(),
                // Qovery queues a delete whatever the state; a second one changes nothing.
                Action::Delete => !env.lifecycle.is_deleting(),
            };
            inner.count(action, id, accepted);
            if !accepted {
                return match action {
                    Action::Delete => StatusCode::NO_CONTENT.into_response(),
                    Action::Stop | Action::Deploy => error(StatusCode::CONFLICT, CONFLICT),
                };
            }
            let request_id = uuid(&mut inner.rng);
            let env = inner.fleet.at_mut(index);
            env.lifecycle.begin(action, now);
            let finishes = env.lifecycle.finishes_at(step);
            inner.mark_acting(id, finishes);
            let env = inner.fleet.at_mut(index);
            env.updated_at = now;
            env.deployments += 1;
            env.deployment_request_id = Some(request_id);
            env.origin = "API";
            if action == Action::Deploy {
                env.last_deployment_date = Some(now);
            }
            tracing::debug!(environment = %env.name, ?action, "sandbox: action accepted");
            match action {
                Action::Stop => (
                    StatusCode::ACCEPTED,
                    axum::Json(environment_status_body(env, now, step)),
                )
                    .into_response(),
                Action::Deploy => (
                    StatusCode::ACCEPTED,
                    axum::Json(status_body(env, now, step)),
                )
                    .into_response(),
                Action::Delete => StatusCode::NO_CONTENT.into_response(),
            }
        })
    }
}

impl Inner {
    fn count(&mut self, action: Action, id: &str, accepted: bool) {
        let table = match action {
            Action::Stop => &mut self.requests.stops,
            Action::Deploy => &mut self.requests.deploys,
            Action::Delete => &mut self.requests.deletes,
        };
        let counts: &mut ActionCounts = table.entry(id.to_string()).or_default();
        counts.calls += 1;
        counts.accepted += u32::from(accepted);
    }
}

fn find<'a>(fleet: &'a Fleet, id: &str) -> Option<&'a EnvironmentRecord> {
    fleet.get(id)
}
