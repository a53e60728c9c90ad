//! The generated organization: clusters, projects, environments and their services.
//!
//! Everything comes from one `StdRng` seeded with the sandbox's seed, in a fixed order,
//! so a seed names a fleet: the same ids, names, modes, states and sizes every time.
//! Instants are drawn as "so long before now", so they are the same relative to the
//! clock's `now` at creation.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::lifecycle::{Lifecycle, State};
use crate::platform::Mode;

const PROJECT_NAMES: &[&str] = &[
    "web-shop",
    "api-gateway",
    "payments",
    "search",
    "notifications",
    "catalog",
    "identity",
    "analytics",
    "mobile-backend",
    "billing",
    "inventory",
    "shipping",
    "recommendations",
    "media",
    "admin-console",
    "loyalty",
];

const TOPICS: &[&str] = &[
    "checkout",
    "search",
    "login",
    "cart",
    "invoices",
    "dark-mode",
    "onboarding",
    "refunds",
    "pricing",
    "webhooks",
    "sso",
    "export",
    "i18n",
    "perf",
    "filters",
    "profile",
    "coupons",
    "retries",
];

const STAGING_NAMES: &[&str] = &["staging", "uat", "qa", "staging-eu", "preprod"];
const DEVELOPMENT_NAMES: &[&str] = &["main", "develop", "dev"];

const APPLICATION_NAMES: &[&str] = &[
    "frontend",
    "api",
    "worker",
    "scheduler",
    "admin",
    "webhooks",
];

/// (service name, image, tag, registry)
const CONTAINERS: &[(&str, &str, &str, Registry)] = &[
    ("redis", "redis", "7.2-alpine", Registry::DockerHub),
    ("nginx", "nginx", "1.27", Registry::DockerHub),
    (
        "rabbitmq",
        "rabbitmq",
        "3.13-management",
        Registry::DockerHub,
    ),
    (
        "imgproxy",
        "darthsim/imgproxy",
        "v3.24",
        Registry::DockerHub,
    ),
    (
        "otel-collector",
        "open-telemetry/opentelemetry-collector",
        "0.102.0",
        Registry::Github,
    ),
    (
        "meilisearch",
        "getmeili/meilisearch",
        "v1.8",
        Registry::DockerHub,
    ),
];

const CPU_MILLIS: &[u32] = &[250, 500, 1000, 2000];
const MEMORY_MB: &[u32] = &[256, 512, 1024, 2048];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Registry {
    DockerHub,
    Github,
}

/// Everything the sandbox serves.
#[derive(Debug, Clone)]
pub(super) struct Fleet {
    pub organization_id: String,
    pub clusters: Vec<Cluster>,
    pub registries: Vec<ContainerRegistry>,
    pub projects: Vec<Project>,
    /// Every environment not yet deleted. Changed only through [`Fleet::push`] and
    /// [`Fleet::remove_where`], which keep the indexes below true.
    environments: Vec<EnvironmentRecord>,
    /// Position in `environments` by id: an action finds its environment without walking
    /// the fleet (a pass sends a thousand of them).
    by_id: HashMap<String, usize>,
    /// Positions in `environments` per project, in fleet order: a status listing reads its
    /// project's environments only.
    by_project: Vec<Vec<usize>>,
    /// Position in `projects` by id.
    project_by_id: HashMap<String, usize>,
}

impl Fleet {
    pub fn environments(&self) -> &[EnvironmentRecord] {
        &self.environments
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn get(&self, id: &str) -> Option<&EnvironmentRecord> {
        self.position(id).map(|i| &self.environments[i])
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut EnvironmentRecord> {
        self.position(id).map(|i| &mut self.environments[i])
    }

    pub fn project_position(&self, id: &str) -> Option<usize> {
        self.project_by_id.get(id).copied()
    }

    pub fn at_mut(&mut self, index: usize) -> &mut EnvironmentRecord {
        &mut self.environments[index]
    }

    /// The environments of the project at `project`, in fleet order.
    pub fn of_project(&self, project: usize) -> impl Iterator<Item = &EnvironmentRecord> {
        self.by_project
            .get(project)
            .into_iter()
            .flatten()
            .map(|&i| &self.environments[i])
    }

    pub fn count_of_project(&self, project: usize) -> usize {
        self.by_project.get(project).map_or(0, Vec::len)
    }

    pub fn push(&mut self, env: EnvironmentRecord) {
        let index = self.environments.len();
        self.by_id.insert(env.id.clone(), index);
        if let Some(list) = self.by_project.get_mut(env.project) {
            list.push(index);
        }
        self.environments.push(env);
    }

    /// Removes the environments `gone` says are gone, and rebuilds the indexes (deletes
    /// are rare; the positions of the others shift).
    pub fn remove_where(&mut self, gone: impl Fn(&EnvironmentRecord) -> bool) {
        let before = self.environments.len();
        self.environments.retain(|env| !gone(env));
        if self.environments.len() == before {
            return;
        }
        self.by_id.clear();
        self.by_project.iter_mut().for_each(Vec::clear);
        for (index, env) in self.environments.iter().enumerate() {
            self.by_id.insert(env.id.clone(), index);
            if let Some(list) = self.by_project.get_mut(env.project) {
                list.push(index);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Cluster {
    pub id: String,
    pub name: String,
    pub provider: &'static str,
    pub region: &'static str,
}

#[derive(Debug, Clone)]
pub(super) struct ContainerRegistry {
    pub id: String,
    pub kind: Registry,
}

#[derive(Debug, Clone)]
pub(super) struct Project {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(super) struct EnvironmentRecord {
    pub id: String,
    pub name: String,
    /// Index into [`Fleet::projects`] (projects are never deleted).
    pub project: usize,
    /// Index into [`Fleet::clusters`].
    pub cluster: usize,
    pub mode: Mode,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last deployment, `None` for an environment never deployed.
    pub last_deployment_date: Option<DateTime<Utc>>,
    /// How many deployments (deploys, stops, deletes) this environment has had.
    pub deployments: u32,
    /// The request of the last action the sandbox accepted, if any.
    pub deployment_request_id: Option<String>,
    /// Who triggered the last deployment (`EnvironmentStatusEventOriginEnum`).
    pub origin: &'static str,
    pub lifecycle: Lifecycle,
    pub services: Vec<Service>,
}

impl EnvironmentRecord {
    /// CPU (millicores) and memory (MB) asked for while running: each service's request
    /// times its minimum number of instances.
    pub fn resources(&self) -> (u32, u32) {
        self.services.iter().fold((0, 0), |(cpu, mem), s| {
            (
                cpu + s.cpu * s.min_running_instances,
                mem + s.memory * s.min_running_instances,
            )
        })
    }
}

#[derive(Debug, Clone)]
pub(super) struct Service {
    pub id: String,
    pub port_id: String,
    pub name: String,
    pub kind: ServiceKind,
    pub created_at: DateTime<Utc>,
    pub cpu: u32,
    pub memory: u32,
    pub min_running_instances: u32,
    pub max_running_instances: u32,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub(super) enum ServiceKind {
    Application {
        branch: String,
        commit: String,
    },
    Container {
        image: &'static str,
        tag: &'static str,
        /// Index into [`Fleet::registries`].
        registry: usize,
    },
}

/// A UUID in version 4 layout, from the generator (so seeded fleets repeat).
pub(super) fn uuid(rng: &mut StdRng) -> String {
    let mut bytes: [u8; 16] = rng.random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn ago(rng: &mut StdRng, now: DateTime<Utc>, min: TimeDelta, max: TimeDelta) -> DateTime<Utc> {
    let secs = rng.random_range(min.num_seconds()..=max.num_seconds().max(min.num_seconds()));
    now - TimeDelta::seconds(secs)
}

/// Generates the fleet for `seed`, with instants relative to `now`.
pub(super) fn generate(projects: u32, environments: u32, seed: u64, now: DateTime<Utc>) -> Fleet {
    // Whole seconds, so instants print the same way whatever the clock's precision.
    let now = now - TimeDelta::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let mut rng = StdRng::seed_from_u64(seed);
    let organization_id = uuid(&mut rng);
    let clusters = vec![
        Cluster {
            id: uuid(&mut rng),
            name: "previews-eu-west-3".into(),
            provider: "aws",
            region: "eu-west-3",
        },
        Cluster {
            id: uuid(&mut rng),
            name: "production-eu-west-3".into(),
            provider: "aws",
            region: "eu-west-3",
        },
    ];
    let registries = vec![
        ContainerRegistry {
            id: uuid(&mut rng),
            kind: Registry::DockerHub,
        },
        ContainerRegistry {
            id: uuid(&mut rng),
            kind: Registry::Github,
        },
    ];
    let projects: Vec<Project> = (0..projects as usize)
        .map(|i| Project {
            id: uuid(&mut rng),
            name: project_name(i),
            created_at: ago(&mut rng, now, TimeDelta::days(730), TimeDelta::days(1000)),
        })
        .collect();
    let mut fleet = Fleet {
        organization_id,
        clusters,
        registries,
        by_project: vec![Vec::new(); projects.len()],
        project_by_id: projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect(),
        projects,
        environments: Vec::new(),
        by_id: HashMap::new(),
    };
    let mut names: Vec<HashSet<String>> = vec![HashSet::new(); fleet.projects.len()];
    for (index, mode) in modes(fleet.projects.len(), environments as usize)
        .into_iter()
        .enumerate()
    {
        // One production environment per project first, then the rest anywhere.
        let project = if mode == Mode::Production {
            index
        } else {
            rng.random_range(0..fleet.projects.len())
        };
        let name = environment_name(&mut rng, mode, &mut names[project]);
        let env = environment(&mut rng, &fleet, project, mode, name, now);
        fleet.push(env);
    }
    fleet
}

fn project_name(i: usize) -> String {
    let base = PROJECT_NAMES[i % PROJECT_NAMES.len()];
    match i / PROJECT_NAMES.len() {
        0 => base.to_string(),
        round => format!("{base}-{}", round + 1),
    }
}

/// The modes of the fleet's environments, in creation order: one production per project
/// (as far as the count allows), then about 15% staging, 20% development and the rest
/// previews, with at least one of each where the count allows.
fn modes(projects: usize, environments: usize) -> Vec<Mode> {
    if projects == 0 {
        return Vec::new();
    }
    let production = projects.min(environments);
    let rest = environments - production;
    let staging = if rest >= 3 {
        (rest * 15 / 100).max(1)
    } else {
        0
    };
    let development = if rest >= 2 {
        (rest * 20 / 100).max(1)
    } else {
        0
    };
    let preview = rest - staging - development;
    let mut modes = vec![Mode::Production; production];
    modes.extend(std::iter::repeat_n(Mode::Staging, staging));
    modes.extend(std::iter::repeat_n(Mode::Development, development));
    modes.extend(std::iter::repeat_n(Mode::Preview, preview));
    modes
}

/// A name unique within its project, in the style each mode is usually named.
fn environment_name(rng: &mut StdRng, mode: Mode, taken: &mut HashSet<String>) -> String {
    let draw = |rng: &mut StdRng| -> String {
        let topic = TOPICS.choose(rng).copied().unwrap_or("change");
        match mode {
            Mode::Production => "production".to_string(),
            Mode::Staging => STAGING_NAMES
                .choose(rng)
                .copied()
                .unwrap_or("staging")
                .into(),
            Mode::Development => match rng.random_range(0..4) {
                0 => DEVELOPMENT_NAMES
                    .choose(rng)
                    .copied()
                    .unwrap_or("dev")
                    .into(),
                1 => format!("fix-{topic}"),
                _ => format!("feat-{topic}"),
            },
            Mode::Preview => format!("pr-{}-{topic}", rng.random_range(100..5000)),
        }
    };
    let first = draw(rng);
    let name = if taken.contains(&first) {
        (0..20)
            .map(|_| draw(rng))
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| {
                (2..)
                    .map(|k| format!("{first}-{k}"))
                    .find(|n| !taken.contains(n))
                    .unwrap_or(first)
            })
    } else {
        first
    };
    taken.insert(name.clone());
    name
}

fn environment(
    rng: &mut StdRng,
    fleet: &Fleet,
    project: usize,
    mode: Mode,
    name: String,
    now: DateTime<Utc>,
) -> EnvironmentRecord {
    let days = TimeDelta::days;
    // (created between, last deployed at most this long ago, chance of being stopped)
    let (created, deployed_within, stopped) = match mode {
        Mode::Production => ((days(120), days(720)), days(3), 0.0),
        Mode::Staging => ((days(30), days(365)), days(10), 0.15),
        Mode::Development => ((days(3), days(90)), days(14), 0.25),
        Mode::Preview => ((TimeDelta::hours(1), days(21)), days(21), 0.2),
    };
    let id = uuid(rng);
    let created_at = ago(rng, now, created.0, created.1);
    let deployed_within = deployed_within.min(now - created_at);
    let last_deployment_date = ago(rng, now, TimeDelta::zero(), deployed_within);
    let state = if rng.random_bool(stopped) {
        State::Stopped
    } else {
        State::Deployed
    };
    let cluster = match mode {
        Mode::Production | Mode::Staging => 1,
        Mode::Development | Mode::Preview => 0,
    };
    let count = rng.random_range(1..=4);
    let services = services(rng, fleet, mode, &name, count, created_at);
    EnvironmentRecord {
        id,
        name,
        project,
        cluster,
        mode,
        created_at,
        updated_at: last_deployment_date,
        last_deployment_date: Some(last_deployment_date),
        deployments: rng.random_range(1..40),
        deployment_request_id: None,
        origin: if mode == Mode::Preview {
            "GIT"
        } else {
            "CONSOLE"
        },
        lifecycle: Lifecycle::settled(state),
        services,
    }
}

fn services(
    rng: &mut StdRng,
    fleet: &Fleet,
    mode: Mode,
    env_name: &str,
    count: usize,
    created_at: DateTime<Utc>,
) -> Vec<Service> {
    let applications = rng.random_range(1..=count);
    let containers = count - applications;
    let branch = match mode {
        Mode::Production => "main".to_string(),
        _ => env_name.to_string(),
    };
    let mut out = Vec::with_capacity(count);
    let app_names: Vec<&str> = APPLICATION_NAMES
        .choose_multiple(rng, applications)
        .copied()
        .collect();
    for name in app_names {
        let commit: String = (0..40)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
            .collect();
        let kind = ServiceKind::Application {
            branch: branch.clone(),
            commit,
        };
        out.push(service(rng, name, kind, mode, created_at));
    }
    let picked: Vec<_> = CONTAINERS
        .choose_multiple(rng, containers)
        .copied()
        .collect();
    for (name, image, tag, registry) in picked {
        let registry = fleet
            .registries
            .iter()
            .position(|r| r.kind == registry)
            .unwrap_or(0);
        let kind = ServiceKind::Container {
            image,
            tag,
            registry,
        };
        out.push(service(rng, name, kind, mode, created_at));
    }
    out
}

fn service(
    rng: &mut StdRng,
    name: &str,
    kind: ServiceKind,
    mode: Mode,
    created_at: DateTime<Utc>,
) -> Service {
    let (cpus, min_instances) = match mode {
        Mode::Production => (CPU_MILLIS, 2..=3),
        Mode::Staging => (CPU_MILLIS, 1..=2),
        Mode::Development | Mode::Preview => (&CPU_MILLIS[..2], 1..=1),
    };
    let min_running_instances = rng.random_range(min_instances);
    Service {
        id: uuid(rng),
        port_id: uuid(rng),
        name: name.to_string(),
        created_at,
        cpu: cpus.choose(rng).copied().unwrap_or(500),
        memory: MEMORY_MB.choose(rng).copied().unwrap_or(512),
        min_running_instances,
        max_running_instances: min_running_instances * rng.random_range(1..=3),
        port: match &kind {
            ServiceKind::Application { .. } => 8080,
            ServiceKind::Container { image, .. } if image.contains("redis") => 6379,
            ServiceKind::Container { .. } => 80,
        },
        kind,
    }
}
