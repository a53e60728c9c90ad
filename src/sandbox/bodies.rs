//! The JSON bodies, one function per schema of Qovery's OpenAPI spec (named in each
//! function's comment). Every field the spec marks required is sent, plus the optional ones
//! curfew or a person would look at. Nullable fields are left out rather than sent as
//! `null` where the spec allows it, because validators disagree on `nullable` next to
//! `allOf`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::fleet::{
    ContainerRegistry, EnvironmentRecord, Fleet, Project, Registry, Service, ServiceKind,
};
use crate::platform::Mode;

pub(super) fn mode_enum(mode: Mode) -> &'static str {
    match mode {
        Mode::Production => "PRODUCTION",
        Mode::Staging => "STAGING",
        Mode::Development => "DEVELOPMENT",
        Mode::Preview => "PREVIEW",
    }
}

/// `Project`.
pub(super) fn project_body(fleet: &Fleet, index: usize) -> Value {
    let project: &Project = &fleet.projects[index];
    let environments = fleet.count_of_project(index);
    json!({
        "id": project.id,
        "created_at": project.created_at,
        "updated_at": project.created_at,
        "name": project.name,
        "description": format!("The {} service and its environments", project.name),
        "associated_environments_count": environments,
        "organization": { "id": fleet.organization_id },
    })
}

/// `{"results": [...]}`, the envelope of every list answer.
#[derive(Serialize)]
pub(super) struct Results<T> {
    pub results: T,
}

/// A reference to another object by id, owned (for bodies built outside the lock).
#[derive(Serialize)]
pub(super) struct OwnedReference {
    id: String,
}

/// `OrganizationEnvironmentResponse`. Typed and owned: the organization's listing is the
/// sandbox's largest answer (10,000 environments make 2.7 MB), so it is copied out under
/// the lock and written outside it, and other requests are not held up meanwhile (as they
/// would not be on Qovery's servers).
#[derive(Serialize)]
pub(super) struct OrganizationEnvironment {
    id: String,
    #[serde(serialize_with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: DateTime<Utc>,
    name: String,
    organization: OwnedReference,
    project: OwnedReference,
    mode: &'static str,
}

pub(super) fn organization_environment_body(
    fleet: &Fleet,
    env: &EnvironmentRecord,
) -> OrganizationEnvironment {
    OrganizationEnvironment {
        id: env.id.clone(),
        created_at: env.created_at,
        updated_at: env.updated_at,
        name: env.name.clone(),
        organization: OwnedReference {
            id: fleet.organization_id.clone(),
        },
        project: OwnedReference {
            id: fleet.projects[env.project].id.clone(),
        },
        mode: mode_enum(env.mode),
    }
}

/// `Environment`.
pub(super) fn environment_body(fleet: &Fleet, env: &EnvironmentRecord) -> Value {
    let cluster = &fleet.clusters[env.cluster];
    json!({
        "id": env.id,
        "created_at": env.created_at,
        "updated_at": env.updated_at,
        "name": env.name,
        "organization": { "id": fleet.organization_id },
        "project": { "id": fleet.projects[env.project].id },
        "cloud_provider": { "provider": cluster.provider, "cluster": cluster.region },
        "mode": mode_enum(env.mode),
        "cluster_id": cluster.id,
        "cluster_name": cluster.name,
    })
}

/// `EnvironmentStatus`, typed like [`OrganizationEnvironment`] (one per environment in
/// every status listing).
#[derive(Serialize)]
pub(super) struct EnvironmentStatus<'a> {
    id: &'a str,
    state: &'static str,
    last_deployment_state: &'static str,
    last_deployment_id: DeploymentId<'a>,
    origin: &'static str,
    deployment_status: &'static str,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_some"
    )]
    last_deployment_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_deployment_duration_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment_request_id: Option<&'a str>,
}

/// An instant as RFC 3339, written whole: chrono's own `Serialize` goes through
/// `collect_str`, which serde_json escapes a character at a time (the organization's
/// listing has 20,000 instants).
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn rfc3339_some<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// `{environment id}-{deployment number}`, written straight into the answer (a status
/// listing has one per environment).
pub(super) struct DeploymentId<'a>(&'a str, u32);

impl Serialize for DeploymentId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}-{}", self.0, self.1))
    }
}

pub(super) fn environment_status_body(
    env: &EnvironmentRecord,
    now: DateTime<Utc>,
    step: TimeDelta,
) -> EnvironmentStatus<'_> {
    let state = env.lifecycle.state_at(now, step);
    EnvironmentStatus {
        id: &env.id,
        state: state.as_str(),
        last_deployment_state: state.as_str(),
        last_deployment_id: DeploymentId(&env.id, env.deployments),
        origin: env.origin,
        deployment_status: if env.last_deployment_date.is_none() {
            "NEVER_DEPLOYED"
        } else {
            "UP_TO_DATE"
        },
        last_deployment_date: env.last_deployment_date,
        total_deployment_duration_in_seconds: (!state.is_busy()).then(|| (step * 2).num_seconds()),
        deployment_request_id: env.deployment_request_id.as_deref(),
    }
}

/// `Status` (what `POST /environment/{id}/deploy` answers).
pub(super) fn status_body(env: &EnvironmentRecord, now: DateTime<Utc>, step: TimeDelta) -> Value {
    let mut body = json!({
        "id": env.id,
        "state": env.lifecycle.state_at(now, step).as_str(),
        "service_deployment_status": "UP_TO_DATE",
        "is_part_last_deployment": true,
        "status_details": { "action": "DEPLOY", "status": "QUEUED", "sub_action": "NONE" },
        "deployment_request_id": env.deployment_request_id,
        "deployment_requests_count": 1,
    });
    if let Some(date) = env.last_deployment_date {
        body["last_deployment_date"] = json!(date);
    }
    body
}

/// `Healthcheck`: an HTTP readiness probe and a TCP liveness probe for web services, TCP
/// for both otherwise.
pub(super) fn healthchecks(service: &Service, http: bool) -> Value {
    let probe = |kind: Value, delay: u32| {
        json!({
            "type": kind,
            "initial_delay_seconds": delay,
            "period_seconds": 10,
            "timeout_seconds": 5,
            "success_threshold": 1,
            "failure_threshold": 3,
        })
    };
    let tcp = json!({ "tcp": { "port": service.port } });
    let readiness = if http {
        json!({ "http": { "path": "/healthz", "scheme": "HTTP", "port": service.port } })
    } else {
        tcp.clone()
    };
    json!({ "readiness_probe": probe(readiness, 10), "liveness_probe": probe(tcp, 30) })
}

/// `ServicePortResponseList`.
pub(super) fn ports(service: &Service, http: bool) -> Value {
    json!([{
        "id": service.port_id,
        "name": format!("p{}", service.port),
        "internal_port": service.port,
        "external_port": if http { 443 } else { service.port },
        "publicly_accessible": http,
        "is_default": true,
        "protocol": if http { "HTTP" } else { "TCP" },
    }])
}

/// `Application`, or `None` for a container.
pub(super) fn application_body(
    fleet: &Fleet,
    env: &EnvironmentRecord,
    service: &Service,
) -> Option<Value> {
    let ServiceKind::Application { branch, commit } = &service.kind else {
        return None;
    };
    let project = &fleet.projects[env.project].name;
    Some(json!({
        "id": service.id,
        "created_at": service.created_at,
        "updated_at": env.updated_at,
        "environment": { "id": env.id },
        "git_repository": {
            "has_access": true,
            "provider": "GITHUB",
            "owner": "acme",
            "url": format!("https://github.com/acme/{project}.git"),
            "name": format!("acme/{project}"),
            "branch": branch,
            "root_path": "/",
            "deployed_commit_id": commit,
        },
        "maximum_cpu": 16000,
        "maximum_memory": 16384,
        "name": service.name,
        "build_mode": "DOCKER",
        "dockerfile_path": "Dockerfile",
        "cpu": service.cpu,
        "memory": service.memory,
        "gpu": 0,
        "min_running_instances": service.min_running_instances,
        "max_running_instances": service.max_running_instances,
        "healthchecks": healthchecks(service, true),
        "auto_preview": env.mode == Mode::Preview,
        "ports": ports(service, true),
        "arguments": [],
        "auto_deploy": true,
        "annotations_groups": [],
        "labels_groups": [],
        "icon_uri": "app://qovery-console/application",
        "service_type": "APPLICATION",
    }))
}

/// `ContainerResponse`, or `None` for an application.
pub(super) fn container_body(
    fleet: &Fleet,
    env: &EnvironmentRecord,
    service: &Service,
) -> Option<Value> {
    let ServiceKind::Container {
        image,
        tag,
        registry,
    } = &service.kind
    else {
        return None;
    };
    let registry: &ContainerRegistry = &fleet.registries[*registry];
    let (name, url, kind) = match registry.kind {
        Registry::DockerHub => ("Docker Hub", "https://docker.io", "DOCKER_HUB"),
        Registry::Github => ("GitHub", "https://ghcr.io", "GITHUB_CR"),
    };
    let http = service.port != 6379;
    Some(json!({
        "id": service.id,
        "created_at": service.created_at,
        "updated_at": env.updated_at,
        "image_name": image,
        "tag": tag,
        "registry_id": registry.id,
        "registry": { "id": registry.id, "name": name, "url": url, "kind": kind },
        "environment": { "id": env.id },
        "maximum_cpu": 16000,
        "maximum_memory": 16384,
        "maximum_gpu": 0,
        "name": service.name,
        "arguments": [],
        "cpu": service.cpu,
        "memory": service.memory,
        "gpu": 0,
        "min_running_instances": service.min_running_instances,
        "max_running_instances": service.max_running_instances,
        "healthchecks": healthchecks(service, http),
        "auto_preview": false,
        "ports": ports(service, http),
        "auto_deploy": false,
        "annotations_groups": [],
        "labels_groups": [],
        "icon_uri": "app://qovery-console/container",
        "service_type": "CONTAINER",
    }))
}
