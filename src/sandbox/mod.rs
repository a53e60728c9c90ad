//! The sandbox: a Qovery-compatible HTTP API over a generated fleet, for demos and tests.
//!
//! It answers the calls curfew makes (list projects and environments, read statuses and
//! services, stop, deploy, delete) with the shapes of Qovery's OpenAPI spec, checks the
//! `Authorization: Token …` header as Qovery does, and walks environments through
//! Qovery's states (`STOP_QUEUED` → `STOPPING` → `STOPPED`, …) on the injected clock.
//! Faults (5xx, 429, hangs, broken JSON, latency) are drawn per request from a seeded
//! generator, so the daemon's retries, caps and partial listings can be exercised.
//!
//! The same fleet serves three uses: `curfew sandbox` (a demo server), the daemon's
//! `platform.sandbox` setting (in-process), and tests (through [`Sandbox::router`] or a
//! loopback listener with [`Sandbox::spawn`]), which drive it with hooks such as
//! [`Sandbox::set_state`] and read [`Sandbox::requests`] afterwards.

mod api;
mod bodies;
mod fleet;
mod gate;
mod lifecycle;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use self::fleet::Fleet;
use self::lifecycle::{Lifecycle, State};
use crate::clock::Clock;
use crate::platform::Mode;

/// How to generate the fleet and how badly the API behaves.
#[derive(Clone, PartialEq)]
pub struct SandboxOptions {
    pub projects: u32,
    /// Environments over all projects (one production per project comes first).
    pub environments: u32,
    /// Names the fleet: the same seed gives the same ids, names, modes and states.
    pub seed: u64,
    /// The API token every request must carry (`Authorization: Token <token>`).
    pub token: String,
    /// Added to every authorized request.
    pub latency: Duration,
    /// Fraction of requests answered 503 or 500.
    pub error_rate: f64,
    /// Fraction of requests answered 429 with `Retry-After: 1`.
    pub throttle_rate: f64,
    /// Fraction of requests that hang for [`timeout`](Self::timeout), then answer 504.
    pub timeout_rate: f64,
    /// Fraction of requests answered 200 with a truncated JSON body.
    pub malformed_rate: f64,
    /// How long each transitional state (`STOP_QUEUED`, `STOPPING`, …) lasts.
    pub step: TimeDelta,
    /// How long a "timeout" fault hangs before answering.
    pub timeout: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            projects: 4,
            environments: 24,
            seed: 1,
            token: "sandbox-token".into(),
            latency: Duration::ZERO,
            error_rate: 0.0,
            throttle_rate: 0.0,
            timeout_rate: 0.0,
            malformed_rate: 0.0,
            step: TimeDelta::seconds(20),
            timeout: Duration::from_secs(60),
        }
    }
}

impl SandboxOptions {
    /// The fault rates of these options.
    pub fn faults(&self) -> Faults {
        Faults {
            error_rate: self.error_rate,
            throttle_rate: self.throttle_rate,
            timeout_rate: self.timeout_rate,
            malformed_rate: self.malformed_rate,
        }
    }
}

// By hand, so the token never reaches a log line.
impl fmt::Debug for SandboxOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxOptions")
            .field("projects", &self.projects)
            .field("environments", &self.environments)
            .field("seed", &self.seed)
            .field("token", &"<redacted>")
            .field("latency", &self.latency)
            .field("faults", &self.faults())
            .field("step", &self.step)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Fault rates, each a fraction (0..=1) of authorized requests. One draw per request
/// picks at most one fault, in this order, so the rates add up (past 1, the later ones
/// get what is left).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub error_rate: f64,
    pub throttle_rate: f64,
    pub timeout_rate: f64,
    pub malformed_rate: f64,
}

impl Faults {
    /// No faults at all.
    pub const NONE: Faults = Faults {
        error_rate: 0.0,
        throttle_rate: 0.0,
        timeout_rate: 0.0,
        malformed_rate: 0.0,
    };
}

/// One environment as the sandbox holds it, for tests and demos to look at.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxEnvironment {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub project_name: String,
    pub mode: Mode,
    /// Qovery's `StateEnum` value as of the clock's now (`DEPLOYED`, `STOP_QUEUED`, …).
    pub state: String,
    /// The last deployment (the idle signal); `None` for one never deployed.
    pub last_deployment_date: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub cluster_name: String,
    /// CPU asked for while running: each service's millicores × its minimum instances.
    pub cpu_millis: u32,
    /// Memory asked for while running: each service's MB × its minimum instances.
    pub memory_mb: u32,
    /// The environment's applications and containers.
    pub services: Vec<SandboxService>,
}

/// One service (application or container) of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxService {
    pub id: String,
    pub name: String,
    pub kind: ServiceKind,
    /// CPU of one instance, in millicores.
    pub cpu_millis: u32,
    /// Memory of one instance, in MB.
    pub memory_mb: u32,
    /// Instances while running (`min_running_instances`).
    pub instances: u32,
}

/// Which listing a service is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// `GET /environment/{id}/application`.
    Application,
    /// `GET /environment/{id}/container`.
    Container,
}

/// What the sandbox was asked, for assertions such as "no action was sent twice".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCounts {
    /// Every request, rejected and faulted ones included.
    pub total: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Authorized requests answered with an injected fault (5xx, 429, 504, broken JSON).
    pub faulted: u64,
    /// Authorized requests by endpoint, e.g. `POST /environment/{environmentId}/stop`
    /// (`GET (unmatched)` for paths the API does not have).
    pub by_endpoint: BTreeMap<String, u64>,
    /// Stop calls that reached an existing environment (not faulted), by environment id.
    pub stops: BTreeMap<String, ActionCounts>,
    /// Deploy calls, likewise.
    pub deploys: BTreeMap<String, ActionCounts>,
    /// Delete calls, likewise.
    pub deletes: BTreeMap<String, ActionCounts>,
}

impl RequestCounts {
    /// Authorized requests to one endpoint (`"GET /project/{projectId}/environment"`).
    pub fn endpoint(&self, endpoint: &str) -> u64 {
        self.by_endpoint.get(endpoint).copied().unwrap_or(0)
    }
}

/// Calls of one action on one environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionCounts {
    /// Calls handled (answered 202/204, or 409 when already there or busy).
    pub calls: u32,
    /// Calls that started the action (202 or 204 on an environment not already deleting).
    pub accepted: u32,
}

/// A Qovery-compatible API over a generated fleet. Clones share the same fleet.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
}

struct Shared {
    options: SandboxOptions,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// Everything that changes, behind one lock that is never held across an await.
struct Inner {
    fleet: Fleet,
    faults: Faults,
    failing_project: Option<String>,
    requests: RequestCounts,
    /// The ids of the environments that may have an action under way: settling looks at
    /// these only, so a request does not walk the whole fleet.
    acting: HashSet<String>,
    /// The earliest instant one of them has something to settle (`None`: at once).
    settle_due: Option<DateTime<Utc>>,
    /// Draws faults and the ids of new deployment requests.
    rng: StdRng,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("organization_id", &self.organization_id())
            .field("options", &self.shared.options)
            .finish()
    }
}

impl Sandbox {
    /// A sandbox with a fleet generated from `options`, instants relative to `clock`.
    pub fn new(options: SandboxOptions, clock: Arc<dyn Clock>) -> Sandbox {
        let fleet = fleet::generate(
            options.projects,
            options.environments,
            options.seed,
            clock.now(),
        );
        // Settling starts from every environment once (a generated one may be mid-action).
        let acting = fleet.environments().iter().map(|e| e.id.clone()).collect();
        let inner = Inner {
            acting,
            settle_due: None,
            fleet,
            faults: options.faults(),
            failing_project: None,
            requests: RequestCounts::default(),
            // Not the fleet's generator: fault draws must not depend on the fleet's size.
            rng: StdRng::seed_from_u64(options.seed ^ 0x5eed_fa17_c0ff_ee00),
        };
        Sandbox {
            shared: Arc::new(Shared {
                options,
                clock,
                inner: Mutex::new(inner),
            }),
        }
    }

    /// An organization with no projects (and so no environments).
    pub fn empty(options: SandboxOptions, clock: Arc<dyn Clock>) -> Sandbox {
        Sandbox::new(
            SandboxOptions {
                projects: 0,
                environments: 0,
                ..options
            },
            clock,
        )
    }

    /// The generated organization's id, the one curfew is configured with.
    pub fn organization_id(&self) -> String {
        self.lock().fleet.organization_id.clone()
    }

    /// The HTTP API, for serving or for calling in-process (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Serves the API on `listener` in a tokio task until the returned handle is aborted
    /// or dropped.
    pub async fn spawn(self, listener: TcpListener) -> std::io::Result<RunningSandbox> {
        let url = format!("http://{}", reachable(listener.local_addr()?));
        let organization_id = self.organization_id();
        let token = self.shared.options.token.clone();
        let router = self.router();
        let handle = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "sandbox server stopped");
            }
        });
        Ok(RunningSandbox {
            url,
            organization_id,
            token,
            handle,
        })
    }

    /// Serves the API on `listener` until the returned future is dropped or fails.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Replaces the fault rates from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Makes `GET /project/{id}/environment/status` of that project answer 500 every time
    /// (a listing that fails for part of the organization); `None` heals it.
    pub fn fail_status_of_project(&self, project_id: Option<String>) {
        self.lock().failing_project = project_id;
    }

    /// Every environment not yet deleted, with its state as of the clock's now.
    pub fn environments(&self) -> Vec<SandboxEnvironment> {
        self.with_fleet(|inner, now, step| {
            let fleet = &inner.fleet;
            fleet
                .environments()
                .iter()
                .map(|env| {
                    let (cpu_millis, memory_mb) = env.resources();
                    let project = &fleet.projects[env.project];
                    SandboxEnvironment {
                        id: env.id.clone(),
                        name: env.name.clone(),
                        project_id: project.id.clone(),
                        project_name: project.name.clone(),
                        mode: env.mode,
                        state: env.lifecycle.state_at(now, step).as_str().to_string(),
                        last_deployment_date: env.last_deployment_date,
                        created_at: env.created_at,
                        cluster_name: fleet.clusters[env.cluster].name.clone(),
                        cpu_millis,
                        memory_mb,
                        services: env.services.iter().map(SandboxService::from).collect(),
                    }
                })
                .collect()
        })
    }

    /// Puts an environment in a state by hand, as a person in the console would (any
    /// `StateEnum` value; an action in progress is dropped). `DEPLOYED` counts as a
    /// deployment now, as a start from the console does; `DELETED` removes it. False when
    /// the id or the state is unknown.
    pub fn set_state(&self, id: &str, state: &str) -> bool {
        let Some(state) = State::parse(state) else {
            return false;
        };
        self.with_fleet(|inner, now, step| {
            let Some(env) = inner.fleet.get_mut(id) else {
                return false;
            };
            env.lifecycle = Lifecycle::settled(state);
            env.updated_at = now;
            if state == State::Deployed {
                env.last_deployment_date = Some(now);
                env.deployments += 1;
                env.origin = "CONSOLE";
            }
            inner.mark_acting(id, None);
            inner.settle(now, step);
            true
        })
    }

    /// Renames an environment, as a person does in the console (Qovery takes any name;
    /// the status page's tests use a hostile one). False when the id is unknown.
    pub fn rename(&self, id: &str, name: &str) -> bool {
        self.with_fleet(|inner, _, _| match inner.fleet.get_mut(id) {
            Some(env) => {
                env.name = name.to_string();
                true
            }
            None => false,
        })
    }

    /// Changes an environment's mode, as a person does in the console (Qovery's
    /// `PUT /environment/{id}` takes `mode`). False when the id is unknown.
    pub fn set_mode(&self, id: &str, mode: crate::platform::Mode) -> bool {
        self.with_fleet(|inner, now, _| match inner.fleet.get_mut(id) {
            Some(env) => {
                env.mode = mode;
                env.updated_at = now;
                true
            }
            None => false,
        })
    }

    /// What the sandbox has been asked so far.
    pub fn requests(&self) -> RequestCounts {
        self.lock().requests.clone()
    }

    /// Runs `f` over the fleet as of the clock's now, finished actions settled.
    fn with_fleet<R>(&self, f: impl FnOnce(&mut Inner, DateTime<Utc>, TimeDelta) -> R) -> R {
        let now = self.now();
        let step = self.step();
        let mut inner = self.lock();
        inner.settle(now, step);
        f(&mut inner, now, step)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    fn step(&self) -> TimeDelta {
        self.shared.options.step.max(TimeDelta::zero())
    }
}

impl From<&fleet::Service> for SandboxService {
    fn from(service: &fleet::Service) -> Self {
        SandboxService {
            id: service.id.clone(),
            name: service.name.clone(),
            kind: match service.kind {
                fleet::ServiceKind::Application { .. } => ServiceKind::Application,
                fleet::ServiceKind::Container { .. } => ServiceKind::Container,
            },
            cpu_millis: service.cpu,
            memory_mb: service.memory,
            instances: service.min_running_instances,
        }
    }
}

impl Inner {
    /// Folds finished actions into settled states and forgets deleted environments.
    /// Has settling look at `id` once its action ends at `finishes` (`None`: at the next
    /// request).
    fn mark_acting(&mut self, id: &str, finishes: Option<DateTime<Utc>>) {
        let idle = self.acting.is_empty();
        self.acting.insert(id.to_string());
        self.settle_due = match (finishes, self.settle_due) {
            (Some(at), _) if idle => Some(at),
            (Some(at), Some(due)) => Some(due.min(at)),
            (None, _) | (Some(_), None) => None,
        };
    }

    fn settle(&mut self, now: DateTime<Utc>, step: TimeDelta) {
        if self.acting.is_empty() || self.settle_due.is_some_and(|due| now < due) {
            return;
        }
        let fleet = &mut self.fleet;
        let mut deleted = false;
        let mut due: Option<DateTime<Utc>> = None;
        self.acting.retain(|id| {
            let Some(env) = fleet.get_mut(id) else {
                return false;
            };
            env.lifecycle.settle(now, step);
            deleted |= env.lifecycle.state_at(now, step) == State::Deleted;
            let Some(finishes) = env.lifecycle.finishes_at(step) else {
                return false;
            };
            due = Some(due.map_or(finishes, |due| due.min(finishes)));
            true
        });
        self.settle_due = due;
        if deleted {
            fleet.remove_where(|env| env.lifecycle.state_at(now, step) == State::Deleted);
        }
    }
}

/// A sandbox serving on a loopback port. Dropping it stops the server.
pub struct RunningSandbox {
    /// `http://127.0.0.1:PORT`, the API's base URL.
    pub url: String,
    pub organization_id: String,
    pub token: String,
    handle: JoinHandle<()>,
}

impl RunningSandbox {
    /// Stops serving (requests in flight are dropped).
    pub fn abort(&self) {
        self.handle.abort();
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl fmt::Debug for RunningSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningSandbox")
            .field("url", &self.url)
            .field("organization_id", &self.organization_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The address a client can reach: a server bound to 0.0.0.0 is reached on 127.0.0.1.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}
