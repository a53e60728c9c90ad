//! The Kubernetes platform: each namespace chosen by a label selector is an environment
//! (one namespace per pull request, as Argo CD ApplicationSets, Helm and GitLab review
//! apps make them).
//!
//! - list: the namespaces (never the cluster's own, nor curfew's); in each, its
//!   Deployments, StatefulSets and CronJobs (state), its pods (what runs that curfew does
//!   not stop, and cost), its newest ReplicaSet or ControllerRevision (last deployment),
//!   and, if set up, its last request according to Prometheus (last activity);
//! - stop: scale Deployments and StatefulSets to zero and suspend CronJobs, writing each
//!   object's original replicas or suspend flag in an annotation on the object itself, so
//!   that any curfew replica can restore it. HorizontalPodAutoscalers are left alone:
//!   Kubernetes stops an HPA from scaling a target that is at zero replicas;
//! - start: restore what was recorded, unless a person changed the object in between;
//! - delete: delete the namespace, exactly as it was checked (uid and resourceVersion).
//!
//! Every write is a JSON merge patch carrying the resourceVersion the decision was made
//! on, so a change made between curfew's read and its write is a 409 Conflict rather than
//! lost: curfew reads the object again and decides again. Before each write the adapter
//! asks its [`Leader`] how long this replica may still act, and gives the write no longer
//! (the API server is held to the same deadline by the request's `timeout`).

mod cache;
mod events;
mod extras;
mod gitops;
mod leader;
mod links;
mod namespace;
mod patches;
mod pods;
mod routes;
mod traffic;
mod workload;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, DeleteParams, GetParams, ListParams, ObjectList, Patch, PatchParams, PostParams,
    Preconditions,
};
use kube::core::Request;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

pub use events::{EventType, Notice, REPORTING_CONTROLLER};
pub use gitops::{ARGOCD_INSTANCE, ARGOCD_TRACKING_ID, KEDA_PAUSED_REPLICAS, ORIGINAL_GITOPS};
pub use leader::{Alone, Election, ElectionError, ElectionOptions, Leader};
pub use namespace::{
    DOWNSCALER_EXCLUDE, DOWNSCALER_EXCLUDE_UNTIL, SYSTEM_NAMESPACES, selector_requires_a_label,
};
pub use patches::{Extras, MAX_PATCH_BYTES, ORIGINAL_PATCH, ObjectPatch, Target};
pub use routes::{LOCAL_WAKE_SERVICE, ORIGINAL_BACKENDS, WakeService};
pub use traffic::TrafficOptions;
pub use workload::{
    ALLOW_VOLUME_DELETION, EXCLUDE, ORIGINAL_REPLICAS, ORIGINAL_STARTING_DEADLINE,
    ORIGINAL_SUSPEND, STARTING_DEADLINE_SECONDS, STOPPED_AT,
};

use self::events::Regarding;
use self::namespace::{Contents, Mapping, terminating};
use self::routes::Route;
use self::workload::{Kind, Restore, Workload};
use super::{
    Environment, GitOps, Mode, Operation, Outcome, Platform, PlatformError, Prices,
    RequestObserver, Serving, Snapshot,
};
use crate::clock::Clock;

const PLATFORM: &str = "kubernetes";
/// Field manager of curfew's writes: `kubectl get -o yaml --show-managed-fields` names it.
pub const FIELD_MANAGER: &str = "curfew";
/// Page size of the lists read just before acting.
const PAGE: u32 = 500;
/// Attempts at one object when its writes keep meeting 409 Conflict.
const CONFLICT_ATTEMPTS: usize = 3;
/// How often, after a start, whether the workloads serve is looked at before the routes go
/// back to them.
const ROUTES_POLL: Duration = Duration::from_secs(5);
/// How long after a start the routes wait for the workloads to serve, at most.
const ROUTES_WAIT: Duration = Duration::from_secs(30 * 60);
/// Starts of a paged list when its continue token expires (410 Gone) each time.
const LIST_STARTS: usize = 3;
/// Pages of one paged list at most ([`PAGE`] objects each: 100,000 objects): a server
/// that keeps answering with a continue token cannot hold a pass for ever.
const MOST_PAGES: usize = 200;
/// A write is not sent with less than this left as leader: it could not finish in time.
const LEAST_WRITE_TIME: Duration = Duration::from_secs(1);

/// Every API request the adapter makes, as RBAC sees it: (API group, resource, verb). The
/// ClusterRole and Role in deploy/kubernetes grant exactly these (a test compares them).
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    ("", "namespaces", "delete"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("apps", "deployments", "list"),
    ("apps", "deployments", "watch"),
    ("apps", "deployments", "get"),
    ("apps", "deployments", "patch"),
    ("apps", "statefulsets", "list"),
    ("apps", "statefulsets", "watch"),
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "patch"),
    ("batch", "cronjobs", "list"),
    ("batch", "cronjobs", "watch"),
    ("batch", "cronjobs", "get"),
    ("batch", "cronjobs", "patch"),
    ("apps", "replicasets", "list"),
    ("apps", "replicasets", "watch"),
    ("apps", "controllerrevisions", "list"),
    ("apps", "controllerrevisions", "watch"),
    ("events.k8s.io", "events", "create"),
    // Wake on request (a wake Service set): Ingresses and HTTPRoutes sent to it and back,
    // and the ExternalName Service a sleeping namespace's Ingresses name.
    ("networking.k8s.io", "ingresses", "list"),
    ("networking.k8s.io", "ingresses", "get"),
    ("networking.k8s.io", "ingresses", "patch"),
    ("gateway.networking.k8s.io", "httproutes", "list"),
    ("gateway.networking.k8s.io", "httproutes", "get"),
    ("gateway.networking.k8s.io", "httproutes", "patch"),
    ("", "services", "get"),
    ("", "services", "create"),
    ("", "services", "delete"),
    // The GitOps owners curfew pauses (see gitops.rs): listed each pass, read and patched
    // around a stop or a start.
    ("argoproj.io", "applications", "list"),
    ("argoproj.io", "applications", "get"),
    ("argoproj.io", "applications", "patch"),
    ("kustomize.toolkit.fluxcd.io", "kustomizations", "list"),
    ("kustomize.toolkit.fluxcd.io", "kustomizations", "get"),
    ("kustomize.toolkit.fluxcd.io", "kustomizations", "patch"),
    ("helm.toolkit.fluxcd.io", "helmreleases", "list"),
    ("helm.toolkit.fluxcd.io", "helmreleases", "get"),
    ("helm.toolkit.fluxcd.io", "helmreleases", "patch"),
    // KEDA ScaledObjects of a namespace's workloads, paused around a stop.
    ("keda.sh", "scaledobjects", "list"),
    ("keda.sh", "scaledobjects", "get"),
    ("keda.sh", "scaledobjects", "patch"),
    // Argo Rollouts, read fresh around a stop or a start, their replicas recorded on the
    // object and set through their scale subresource (patches.rs).
    ("argoproj.io", "rollouts", "list"),
    ("argoproj.io", "rollouts", "get"),
    ("argoproj.io", "rollouts", "patch"),
    ("argoproj.io", "rollouts/scale", "get"),
    ("argoproj.io", "rollouts/scale", "patch"),
    // LoadBalancer Services released while asleep (`release_load_balancers`).
    ("", "services", "list"),
    ("", "services", "patch"),
];

/// What wake on request needs in the wake Service's namespace only (a Role): the
/// ReferenceGrants that let sleeping namespaces' HTTPRoutes send to the wake Service.
pub const WAKE_PERMISSIONS: &[(&str, &str, &str)] = &[
    ("gateway.networking.k8s.io", "referencegrants", "create"),
    ("gateway.networking.k8s.io", "referencegrants", "delete"),
];

/// Which environments wake on request (the rule option `wake_on_request`): the daemon
/// answers from the rules in force, which the platform does not know.
pub trait WakeRouting: Send + Sync {
    /// Whether a stop of `environment` sends its traffic to the wake Service.
    fn wakes_on_request(&self, environment: &Environment) -> bool;
    /// What the rule of `environment` adds to its stop: its `patches:`, and whether its
    /// LoadBalancer Services are released.
    fn extras(&self, _environment: &Environment) -> Extras {
        Extras::default()
    }
    /// Every kind that some rule patches (Services too when a rule releases load
    /// balancers): a start undoes curfew's recorded patches on these, whatever rule the
    /// environment is under now.
    fn patched_kinds(&self) -> Vec<Target> {
        Vec::new()
    }
}

/// What the leader election needs, in curfew's own namespace only (a Role, not a
/// ClusterRole).
pub const LEASE_PERMISSIONS: &[(&str, &str, &str)] = &[
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
];

/// How to read namespaces as environments, and how to act on them.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// Label selector of the namespaces that are environments.
    pub namespace_selector: String,
    /// Label holding the project name.
    pub project_label: String,
    /// Label holding the mode.
    pub mode_label: String,
    /// Mode of a namespace without the mode label.
    pub default_mode: Mode,
    /// Cluster name for decisions and `match.cluster`.
    pub cluster: Option<String>,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Post an Event on the namespace for each action and warning.
    pub events: bool,
    pub prices: Prices,
    pub traffic: Option<TrafficOptions>,
    /// This replica's name in Events (`reportingInstance`).
    pub identity: String,
    /// curfew's own namespace, never an environment (from `POD_NAMESPACE`).
    pub own_namespace: Option<String>,
    /// curfew's wake Service (wake on request); None: routes are never touched.
    pub wake_service: Option<WakeService>,
    /// Where Argo CD's Applications are, unless a tracking id names their namespace.
    pub argocd_namespace: String,
    /// Keep the namespaces and their objects in a cache fed by cluster-wide watches
    /// (`cache.rs`): a pass then makes no list request. Off, every pass lists each
    /// namespace's objects (1 + 5 requests per namespace).
    pub watch: bool,
    /// The kinds scaled to zero through their scale subresource, read fresh from a
    /// namespace when it is stopped or started: Argo Rollouts, and those of
    /// `platform.kubernetes.scale_kinds`.
    pub scale_kinds: Vec<Target>,
}

impl KubernetesOptions {
    /// Defaults for a namespace selector.
    pub fn new(namespace_selector: impl Into<String>) -> Self {
        KubernetesOptions {
            namespace_selector: namespace_selector.into(),
            project_label: "app.kubernetes.io/part-of".into(),
            mode_label: "curfew.dev/mode".into(),
            default_mode: Mode::Preview,
            cluster: None,
            max_concurrency: 8,
            timeout: Duration::from_secs(30),
            events: true,
            prices: Prices::default(),
            traffic: None,
            identity: "curfew".into(),
            own_namespace: None,
            wake_service: None,
            argocd_namespace: "argocd".into(),
            watch: false,
            scale_kinds: vec![Target::rollouts()],
        }
    }
}

/// The Kubernetes platform.
#[derive(Clone)]
pub struct Kubernetes {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    options: KubernetesOptions,
    mapping: Mapping,
    clock: Arc<dyn Clock>,
    leader: Arc<dyn Leader>,
    traffic: Option<traffic::Traffic>,
    observer: Option<Arc<dyn RequestObserver>>,
    /// Warnings already posted about an object (namespace, object, resourceVersion): one
    /// Event per change of the object, not one per pass.
    warned: Mutex<HashSet<(String, String, String)>>,
    /// Signed action links for the Stopped Event (see `links.rs`).
    links: std::sync::OnceLock<Arc<dyn crate::platform::ActionLinks>>,
    /// Which namespaces wake on request, once the daemon has said how to tell.
    wake_routing: std::sync::OnceLock<Arc<dyn WakeRouting>>,
    /// The watch cache and its feeds, once started (see `cache.rs`).
    cache: std::sync::OnceLock<(Arc<cache::Cache>, cache::Feeds)>,
}

/// A failed API call.
#[derive(Debug, Clone, PartialEq)]
enum CallError {
    /// The API server answered with an error status.
    Status { code: u16, message: String },
    /// No answer in time.
    Timeout,
    /// The connection failed.
    Network(String),
    /// Anything else (an answer curfew could not read, a request it could not build).
    Other(String),
    /// This replica no longer leads, or too little of its time as leader was left for the
    /// write: it was not sent, or not finished in time.
    LostLease,
}

impl CallError {
    fn from_kube(e: kube::Error) -> CallError {
        match e {
            kube::Error::Api(s) => CallError::Status {
                code: s.code,
                message: s.message,
            },
            kube::Error::HyperError(e) => CallError::Network(e.to_string()),
            kube::Error::Service(e) => CallError::Network(e.to_string()),
            other => CallError::Other(other.to_string()),
        }
    }

    fn code(&self) -> Option<u16> {
        match self {
            CallError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Timeouts, connection failures, 409, 410 (an expired list), 429 and 5xx may pass;
    /// other 4xx will not.
    fn retryable(&self) -> bool {
        match self {
            CallError::Status { code, .. } => matches!(*code, 409 | 410 | 429) || *code >= 500,
            CallError::Timeout | CallError::Network(_) | CallError::LostLease => true,
            CallError::Other(_) => false,
        }
    }

    fn status_label(&self) -> String {
        match self {
            CallError::Status { code, .. } => code.to_string(),
            CallError::Timeout | CallError::LostLease => "timeout".into(),
            CallError::Network(_) | CallError::Other(_) => "network".into(),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // An admission webhook or policy refusing a request answers 403 too; its
            // message says so, and the fix is not in curfew's roles.
            CallError::Status { code, message } if refused_by_admission(message) => write!(
                f,
                "{code} refused by the cluster's admission control: {message} (a webhook or ValidatingAdmissionPolicy of the cluster, not curfew's ClusterRole)"
            ),
            CallError::Status { code: 403, message } => write!(
                f,
                "403 forbidden: {message} (curfew's ClusterRole is in deploy/kubernetes/components/kubernetes-platform)"
            ),
            CallError::Status { code, message } => write!(f, "{code} {message}"),
            CallError::Timeout => f.write_str("no answer in time"),
            CallError::Network(m) => write!(f, "cannot reach the API server: {m}"),
            CallError::Other(m) => f.write_str(m),
            CallError::LostLease => {
                f.write_str("not written: this replica's time as leader ran out")
            }
        }
    }
}

/// Whether an error status comes from admission (a webhook, a ValidatingAdmissionPolicy)
/// rather than from RBAC ("User … cannot patch resource …").
fn refused_by_admission(message: &str) -> bool {
    [
        "admission webhook",
        "ValidatingAdmissionPolicy",
        "denied the request",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// The request with `?timeout=`: kube-apiserver gives up on it (and does not carry out a
/// write still waiting) once that much time has passed
/// (staging/src/k8s.io/apiserver/pkg/endpoints/filters/request_deadline.go).
fn with_deadline(request: http::Request<Vec<u8>>, limit: Duration) -> http::Request<Vec<u8>> {
    let (mut parts, body) = request.into_parts();
    let uri = parts.uri.to_string();
    let separator = match uri.contains('?') {
        true if uri.ends_with('?') || uri.ends_with('&') => "",
        true => "&",
        false => "?",
    };
    if let Ok(with) = format!("{uri}{separator}timeout={}s", limit.as_secs().max(1)).parse() {
        parts.uri = with;
    }
    http::Request::from_parts(parts, body)
}

/// Why one object was not brought to the asked state.
#[derive(Debug, Clone, PartialEq)]
enum ObjectError {
    /// This replica no longer holds the lease: nothing was sent.
    NotLeader,
    Call(CallError),
    /// It kept changing under curfew's writes.
    Conflicts,
}

/// What one stop or start did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    Stopped,
    Restored,
    LeftAsChanged,
}

/// An object a stop or start writes: a workload, or a route (wake on request).
enum Object {
    Workload(Workload),
    Route(Route),
    /// An object of a kind scaled through its scale subresource.
    Scaled(patches::Scaled),
    /// An object a rule's patch changes: the patch on a stop, None on a start.
    Patched(patches::Patched, Option<Value>),
}

impl Object {
    fn kind(&self) -> Kind {
        match self {
            Object::Workload(w) => w.kind,
            Object::Route(r) => r.kind,
            Object::Scaled(_) => Kind::Scaled,
            Object::Patched(..) => Kind::Patched,
        }
    }

    fn name(&self) -> &str {
        match self {
            Object::Workload(w) => &w.name,
            Object::Route(r) => &r.name,
            Object::Scaled(s) => &s.name,
            Object::Patched(p, _) => &p.name,
        }
    }

    /// The patch that brings it to `step`, and what it does; None when nothing needs
    /// writing. A route is only touched with a wake Service.
    fn plan(&self, step: Step, wake: Option<&WakeService>) -> Option<(Value, Change)> {
        let restore = |(patch, r): (Value, Restore)| {
            let change = match r {
                Restore::Restored => Change::Restored,
                Restore::LeftAsChanged => Change::LeftAsChanged,
            };
            (patch, change)
        };
        match (self, step) {
            (Object::Workload(w), Step::Stop(now)) => {
                w.stop_patch(now).map(|p| (p, Change::Stopped))
            }
            (Object::Workload(w), Step::Start) => w.start_patch().map(restore),
            (Object::Route(r), Step::Stop(_)) => r.stop_patch(wake?).map(|p| (p, Change::Stopped)),
            (Object::Route(r), Step::Start) => r.start_patch(wake?).map(restore),
            (Object::Patched(p, Some(patch)), Step::Stop(now)) => {
                p.stop_patch(patch, now).map(|p| (p, Change::Stopped))
            }
            (Object::Patched(p, _), Step::Start) => p.start_patch().map(restore),
            // Written in two steps (converge_scaled); a patched object without a patch
            // has nothing to apply.
            (Object::Scaled(_), _) | (Object::Patched(_, None), Step::Stop(_)) => None,
        }
    }
}

/// Traffic in a pass.
enum Activity {
    /// No traffic query set up.
    NotAsked,
    /// Last request per namespace.
    Known(HashMap<String, DateTime<Utc>>),
    /// The query failed: every namespace counts as active.
    AssumeActive,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Stop(DateTime<Utc>),
    Start,
}

impl Kubernetes {
    /// An adapter over a connected client. `leader` is asked before every write.
    pub fn new(
        client: kube::Client,
        options: KubernetesOptions,
        clock: Arc<dyn Clock>,
        leader: Arc<dyn Leader>,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Kubernetes, PlatformError> {
        let traffic = options
            .traffic
            .clone()
            .map(|t| traffic::Traffic::new(t, options.timeout))
            .transpose()
            .map_err(|e| failure(Operation::List, false, e.to_string()))?;
        let mapping = Mapping {
            project_label: options.project_label.clone(),
            mode_label: options.mode_label.clone(),
            default_mode: options.default_mode,
            cluster: options.cluster.as_deref().map(Arc::from),
            prices: options.prices,
        };
        Ok(Kubernetes {
            inner: Arc::new(Inner {
                client,
                options,
                mapping,
                clock,
                leader,
                traffic,
                observer,
                warned: Mutex::new(HashSet::new()),
                links: std::sync::OnceLock::new(),
                wake_routing: std::sync::OnceLock::new(),
                cache: std::sync::OnceLock::new(),
            }),
        })
    }

    /// How to tell the namespaces that wake on request (the daemon, from its rules); set
    /// once, before the first pass.
    pub fn route_wakes(&self, routing: Arc<dyn WakeRouting>) {
        let _ = self.inner.wake_routing.set(routing);
    }

    /// Starts the watch cache (once; in a tokio runtime): its feeds list each kind
    /// cluster-wide, then watch.
    pub fn watch(&self) {
        self.cache();
    }

    fn cache(&self) -> &Arc<cache::Cache> {
        &self
            .inner
            .cache
            .get_or_init(|| {
                cache::Cache::start(cache::Source {
                    client: self.inner.client.clone(),
                    namespace_selector: self.inner.options.namespace_selector.clone(),
                    timeout: self.inner.options.timeout,
                })
            })
            .0
    }

    /// Waits until the watch cache has listed every kind once (starting it if need be).
    pub async fn synced(&self) {
        self.cache().synced().await;
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.inner.client.clone(), namespace)
    }

    /// One API request, with its timeout, reported to the observer.
    async fn call<T>(
        &self,
        endpoint: &'static str,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        self.call_within(endpoint, self.inner.options.timeout, request)
            .await
    }

    /// A write: sent only while this replica leads, given at most the time it has left as
    /// leader, and held by the API server to that deadline too. A leader that stalls
    /// cannot land a write after another replica may have taken over.
    async fn write<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<T, CallError> {
        let request = request.map_err(|e| CallError::Other(e.to_string()))?;
        let limit = match self.inner.leader.time_left() {
            None => self.inner.options.timeout,
            Some(left) if left < LEAST_WRITE_TIME => return Err(CallError::LostLease),
            Some(left) => left.min(self.inner.options.timeout),
        };
        let request = with_deadline(request, limit);
        match self
            .call_within(endpoint, limit, self.inner.client.request::<T>(request))
            .await
        {
            Err(CallError::Timeout) if !self.inner.leader.is_leader() => Err(CallError::LostLease),
            other => other,
        }
    }

    async fn call_within<T>(
        &self,
        endpoint: &'static str,
        limit: Duration,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(limit, request).await {
            Ok(r) => r.map_err(CallError::from_kube),
            Err(_) => Err(CallError::Timeout),
        };
        if let Some(observer) = &self.inner.observer {
            let status = match &result {
                Ok(_) => "2xx".to_string(),
                Err(e) => e.status_label(),
            };
            observer.request(endpoint, &status, started.elapsed());
        }
        result
    }

    /// Every page of a list in one namespace. `fresh`: read from etcd (just before acting)
    /// rather than from the API server's cache (for a pass).
    async fn list_all<K>(&self, namespace: &str, fresh: bool) -> Result<Vec<K>, CallError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let first = if fresh {
            ListParams::default().limit(PAGE)
        } else {
            ListParams::default().match_any()
        };
        self.paged("list_workloads", &url_path::<K>(namespace), first, Some)
            .await
    }

    /// The list at `path`, page by page from `first` (its `limit`; a list without one is
    /// one page), each item folded by `fold` as its page comes (the page is dropped then).
    /// A continue token that expired (etcd compacted the version the list began at: 410)
    /// starts the list again, the pages read so far being stale; at most [`LIST_STARTS`]
    /// starts and [`MOST_PAGES`] pages.
    async fn paged<T, U>(
        &self,
        endpoint: &'static str,
        path: &str,
        first: ListParams,
        mut fold: impl FnMut(T) -> Option<U>,
    ) -> Result<Vec<U>, CallError>
    where
        T: Clone + DeserializeOwned,
    {
        let mut params = first.clone();
        let mut items = Vec::new();
        let mut starts = 1;
        let mut pages = 0;
        loop {
            let request = Request::new(path)
                .list(&params)
                .map_err(|e| CallError::Other(e.to_string()))?;
            let page: ObjectList<T> = match self
                .call(endpoint, self.inner.client.request(request))
                .await
            {
                Ok(page) => page,
                Err(e) if e.code() == Some(410) && starts < LIST_STARTS => {
                    tracing::info!(path, error = %e, "a paged list expired; starting it again");
                    starts += 1;
                    items.clear();
                    params = first.clone();
                    continue;
                }
                Err(e) => return Err(e),
            };
            items.extend(page.items.into_iter().filter_map(&mut fold));
            pages += 1;
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(_) if pages >= MOST_PAGES => {
                    return Err(CallError::Other(format!(
                        "{path}: more than {MOST_PAGES} pages of {} objects; not read further",
                        first.limit.unwrap_or_default()
                    )));
                }
                Some(token) => params = params.continue_token(&token),
                None => return Ok(items),
            }
        }
    }

    async fn workloads(&self, namespace: &str, fresh: bool) -> Result<Vec<Workload>, CallError> {
        let mut out: Vec<Workload> = Vec::new();
        for d in self.list_all::<Deployment>(namespace, fresh).await? {
            out.push(Workload::from_deployment(&d));
        }
        for s in self.list_all::<StatefulSet>(namespace, fresh).await? {
            out.push(Workload::from_stateful_set(&s));
        }
        for c in self.list_all::<CronJob>(namespace, fresh).await? {
            out.push(Workload::from_cron_job(&c));
        }
        Ok(out)
    }

    /// The newest object of a kind (its creation time), and each one's controller
    /// (`Deployment/web`), from a metadata-only list.
    async fn revisions<K>(
        &self,
        namespace: &str,
    ) -> Result<(Option<DateTime<Utc>>, HashMap<String, String>), CallError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let list = self
            .call(
                "list_revisions",
                self.api::<K>(namespace)
                    .list_metadata(&ListParams::default().match_any()),
            )
            .await?;
        let newest = list
            .items
            .iter()
            .filter_map(|m| m.metadata.creation_timestamp.as_ref())
            .filter_map(|t| leader::from_jiff(t.0))
            .max();
        let controllers = list
            .items
            .into_iter()
            .filter_map(|m| {
                let owner = m
                    .metadata
                    .owner_references?
                    .into_iter()
                    .find(|o| o.controller == Some(true))?;
                Some((m.metadata.name?, format!("{}/{}", owner.kind, owner.name)))
            })
            .collect();
        Ok((newest, controllers))
    }

    /// The namespace's pods, as far as curfew reads them (one list, from the API server's
    /// cache, like the pass's other lists).
    async fn pods(&self, namespace: &str) -> Result<Vec<pods::Pod>, CallError> {
        let path =
            <k8s_openapi::api::core::v1::Pod as kube::Resource>::url_path(&(), Some(namespace));
        let request = Request::new(path)
            .list(&ListParams::default().match_any())
            .map_err(|e| CallError::Other(e.to_string()))?;
        let list: ObjectList<pods::Pod> = self
            .call("list_pods", self.inner.client.request(request))
            .await?;
        Ok(list.items)
    }

    async fn contents(&self, namespace: &str) -> Result<Contents, CallError> {
        let workloads = self.workloads(namespace, false).await?;
        let (mut last_rollout, replica_sets) = self.revisions::<ReplicaSet>(namespace).await?;
        // StatefulSets roll out through ControllerRevisions; most namespaces have none.
        if workloads.iter().any(|w| w.kind == Kind::StatefulSet) {
            let (newest, _) = self.revisions::<ControllerRevision>(namespace).await?;
            last_rollout = last_rollout.max(newest);
        }
        let pods = pods::classify(&self.pods(namespace).await?, &workloads, &replica_sets);
        Ok(Contents {
            workloads,
            last_rollout,
            pods,
        })
    }

    /// What the namespace holds: its [`contents`](Self::contents), or only what
    /// [`remains`](Self::remains) of it while it is being deleted.
    async fn contents_or_remains(
        &self,
        namespace: &str,
        deleting: bool,
    ) -> Result<Contents, CallError> {
        if deleting {
            self.remains(namespace).await
        } else {
            self.contents(namespace).await
        }
    }

    /// What is left of a namespace being deleted: its pods (what it still costs).
    async fn remains(&self, namespace: &str) -> Result<Contents, CallError> {
        let pods = pods::classify(
            &self.pods(namespace).await?,
            &[],
            &HashMap::<String, String>::new(),
        );
        Ok(Contents {
            pods,
            ..Contents::default()
        })
    }

    /// The namespaces the selector chooses, less those that are never environments.
    async fn chosen(&self) -> Result<Vec<Namespace>, PlatformError> {
        let params = ListParams::default()
            .labels(&self.inner.options.namespace_selector)
            .match_any();
        let listed = self
            .call(
                "list_namespaces",
                Api::<Namespace>::all(self.inner.client.clone()).list(&params),
            )
            .await
            .map_err(|e| failure(Operation::List, e.retryable(), format!("namespaces: {e}")))?;
        Ok(listed
            .items
            .into_iter()
            .filter(|ns| {
                let name = ns.metadata.name.as_deref().unwrap_or_default();
                let never = self.never_an_environment(name);
                if never {
                    tracing::debug!(
                        namespace = name,
                        "chosen by the selector, but never an environment"
                    );
                }
                !never
            })
            .collect())
    }

    /// The cluster's own namespaces and curfew's: never environments.
    fn never_an_environment(&self, name: &str) -> bool {
        SYSTEM_NAMESPACES.contains(&name)
            || self.inner.options.own_namespace.as_deref() == Some(name)
    }

    /// The namespace `id` if it exists and the selector chooses it: curfew acts on nothing
    /// else, whatever id it is handed.
    async fn namespace(&self, id: &str) -> Result<Option<Namespace>, CallError> {
        if self.never_an_environment(id) {
            return Ok(None);
        }
        let params = ListParams::default()
            .labels(&self.inner.options.namespace_selector)
            .fields(&format!("metadata.name={id}"));
        let list = self
            .call(
                "get_namespace",
                Api::<Namespace>::all(self.inner.client.clone()).list(&params),
            )
            .await?;
        Ok(list
            .items
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some(id)))
    }

    fn not_leader(&self, operation: Operation, id: &str) -> PlatformError {
        failure(
            operation,
            true,
            format!("namespace {id}: this replica does not hold the lease; the leader acts"),
        )
    }

    fn call_failure(&self, operation: Operation, id: &str, e: &CallError) -> PlatformError {
        failure(operation, e.retryable(), format!("namespace {id}: {e}"))
    }

    /// Brings one object to the asked state: plan, write with its resourceVersion, and on
    /// 409 read it again and plan again.
    async fn converge(
        &self,
        namespace: &str,
        mut object: Object,
        step: Step,
        wake: Option<&WakeService>,
    ) -> Result<Option<Change>, ObjectError> {
        if let Object::Scaled(scaled) = object {
            return self.converge_scaled(namespace, scaled, step).await;
        }
        for _ in 0..CONFLICT_ATTEMPTS {
            let Some((patch, change)) = object.plan(step, wake) else {
                return Ok(None);
            };
            if !self.inner.leader.is_leader() {
                return Err(ObjectError::NotLeader);
            }
            let written = match &object {
                Object::Patched(p, _) => self
                    .merge_patch("patch_object", p.target.path(namespace), &p.name, patch)
                    .await
                    .map(drop),
                _ => {
                    self.patch(namespace, object.kind(), object.name(), patch)
                        .await
                }
            };
            match written {
                Ok(()) => return Ok(Some(change)),
                Err(e) if e.code() == Some(409) => {
                    let fresh = match &object {
                        Object::Patched(p, patch) => self
                            .read_patched(namespace, &p.target, &p.name)
                            .await
                            .map(|o| o.map(|o| Object::Patched(o, patch.clone()))),
                        _ => self.get(namespace, object.kind(), object.name()).await,
                    };
                    match fresh {
                        Ok(Some(fresh)) => object = fresh,
                        Ok(None) => return Ok(None),
                        Err(e) => return Err(ObjectError::Call(e)),
                    }
                }
                Err(e) if e.code() == Some(404) => return Ok(None),
                Err(CallError::LostLease) => return Err(ObjectError::NotLeader),
                Err(e) => return Err(ObjectError::Call(e)),
            }
        }
        Err(ObjectError::Conflicts)
    }

    /// Where the objects of a kind live in a namespace.
    fn path(namespace: &str, kind: Kind) -> String {
        match kind {
            Kind::Deployment => url_path::<Deployment>(namespace),
            Kind::StatefulSet => url_path::<StatefulSet>(namespace),
            Kind::CronJob => url_path::<CronJob>(namespace),
            Kind::Ingress => url_path::<Ingress>(namespace),
            // Gateway API: no type in k8s-openapi, the path of its v1 API.
            Kind::HttpRoute => {
                format!("/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes")
            }
            // Never asked: their objects carry their own kind's path (patches::Target).
            Kind::Scaled | Kind::Patched => String::new(),
        }
    }

    async fn patch(
        &self,
        namespace: &str,
        kind: Kind,
        name: &str,
        patch: Value,
    ) -> Result<(), CallError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let endpoint = match kind {
            Kind::Ingress | Kind::HttpRoute => "patch_route",
            _ => "patch_workload",
        };
        let request =
            Request::new(Self::path(namespace, kind)).patch(name, &params, &Patch::Merge(patch));
        self.write::<IgnoredAny>(endpoint, request).await.map(drop)
    }

    async fn get(
        &self,
        namespace: &str,
        kind: Kind,
        name: &str,
    ) -> Result<Option<Object>, CallError> {
        let endpoint = "get_workload";
        Ok(match kind {
            Kind::Deployment => self
                .call(endpoint, self.api::<Deployment>(namespace).get_opt(name))
                .await?
                .map(|d| Object::Workload(Workload::from_deployment(&d))),
            Kind::StatefulSet => self
                .call(endpoint, self.api::<StatefulSet>(namespace).get_opt(name))
                .await?
                .map(|s| Object::Workload(Workload::from_stateful_set(&s))),
            Kind::CronJob => self
                .call(endpoint, self.api::<CronJob>(namespace).get_opt(name))
                .await?
                .map(|c| Object::Workload(Workload::from_cron_job(&c))),
            // Read by their own kind's path (extras.rs).
            Kind::Scaled | Kind::Patched => None,
            Kind::Ingress | Kind::HttpRoute => {
                let request = Request::new(Self::path(namespace, kind))
                    .get(name, &GetParams::default())
                    .map_err(|e| CallError::Other(e.to_string()))?;
                match self
                    .call("get_route", self.inner.client.request::<Value>(request))
                    .await
                {
                    Ok(object) => Some(Object::Route(Route::from_json(kind, &object))),
                    Err(e) if e.code() == Some(404) => None,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// The namespace's Ingresses and HTTPRoutes, read fresh (just before acting). A
    /// cluster without the Gateway API answers 404 for HTTPRoutes: there are none.
    async fn routes(&self, namespace: &str) -> Result<Vec<Route>, CallError> {
        let mut out = Vec::new();
        for kind in [Kind::Ingress, Kind::HttpRoute] {
            let request = Request::new(Self::path(namespace, kind))
                .list(&ListParams::default())
                .map_err(|e| CallError::Other(e.to_string()))?;
            let list = match self
                .call("list_routes", self.inner.client.request::<Value>(request))
                .await
            {
                Ok(list) => list,
                Err(e) if e.code() == Some(404) && kind == Kind::HttpRoute => continue,
                Err(e) => return Err(e),
            };
            out.extend(
                list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| Route::from_json(kind, o)),
            );
        }
        Ok(out)
    }

    /// Whether a stop of `ns` sends its traffic to the wake Service: a wake Service is set
    /// and the rules say so.
    fn wakes_on_request(&self, ns: &Namespace) -> bool {
        let (Some(_), Some(routing)) = (
            &self.inner.options.wake_service,
            self.inner.wake_routing.get(),
        ) else {
            return false;
        };
        let env = namespace::environment(ns, None, &self.inner.mapping, None);
        routing.wakes_on_request(&env)
    }

    /// Before Ingresses or HTTPRoutes are sent to the wake Service: the ExternalName Service
    /// in the namespace (for Ingresses) and the ReferenceGrant in the wake Service's
    /// namespace (for HTTPRoutes), as needed. A Service of that name that curfew did not
    /// make is never taken over.
    async fn open_wake(
        &self,
        namespace: &str,
        wake: &WakeService,
        routes: &[Route],
    ) -> Result<(), CallError> {
        let needs = |kind: Kind| {
            routes
                .iter()
                .any(|r| r.kind == kind && r.stop_patch(wake).is_some())
        };
        if needs(Kind::Ingress) {
            let path = url_path::<Service>(namespace);
            match self
                .create(&path, "create_wake_service", &wake.local_service(namespace))
                .await
            {
                Ok(()) => {}
                Err(e) if e.code() == Some(409) => {
                    let found = self
                        .call(
                            "get_wake_service",
                            self.api::<Service>(namespace).get_opt(LOCAL_WAKE_SERVICE),
                        )
                        .await?;
                    if !found.is_some_and(|s| routes::made_by_curfew(&s.metadata)) {
                        return Err(CallError::Other(format!(
                            "a Service {LOCAL_WAKE_SERVICE} that curfew did not make is in the namespace: its Ingresses are left as they are"
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if needs(Kind::HttpRoute) {
            let path = format!(
                "/apis/gateway.networking.k8s.io/v1beta1/namespaces/{}/referencegrants",
                wake.namespace
            );
            match self
                .create(&path, "create_reference_grant", &wake.grant(namespace))
                .await
            {
                Err(e) if e.code() != Some(409) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// After a start restored the routes: the ExternalName Service (if curfew made it,
    /// exactly that one) and, when the namespace has HTTPRoutes, the ReferenceGrant go.
    async fn close_wake(
        &self,
        namespace: &str,
        wake: &WakeService,
        grant: bool,
    ) -> Result<(), CallError> {
        let found = self
            .call(
                "get_wake_service",
                self.api::<Service>(namespace).get_opt(LOCAL_WAKE_SERVICE),
            )
            .await?;
        if let Some(service) = found.filter(|s| routes::made_by_curfew(&s.metadata)) {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: service.metadata.uid.clone(),
                    resource_version: service.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            let request =
                Request::new(url_path::<Service>(namespace)).delete(LOCAL_WAKE_SERVICE, &params);
            match self
                .write::<IgnoredAny>("delete_wake_service", request)
                .await
            {
                Err(e) if e.code() != Some(404) => return Err(e),
                _ => {}
            }
        }
        if !grant {
            return Ok(());
        }
        let request = Request::new(format!(
            "/apis/gateway.networking.k8s.io/v1beta1/namespaces/{}/referencegrants",
            wake.namespace
        ))
        .delete(&routes::grant_name(namespace), &DeleteParams::default());
        match self
            .write::<IgnoredAny>("delete_reference_grant", request)
            .await
        {
            Err(e) if e.code() != Some(404) => Err(e),
            _ => Ok(()),
        }
    }

    async fn create(
        &self,
        path: &str,
        endpoint: &'static str,
        object: &Value,
    ) -> Result<(), CallError> {
        let request = serde_json::to_vec(object)
            .map_err(kube::core::request::Error::SerializeBody)
            .and_then(|body| Request::new(path).create(&PostParams::default(), body));
        self.write::<IgnoredAny>(endpoint, request).await.map(drop)
    }

    /// Stop or start: every object of the namespace, a bounded number at once.
    async fn act(&self, id: &str, step: Step, gitops: GitOps) -> Result<Outcome, PlatformError> {
        let operation = match step {
            Step::Stop(_) => Operation::Stop,
            Step::Start => Operation::Start,
        };
        if !self.inner.leader.is_leader() {
            return Err(self.not_leader(operation, id));
        }
        let ns = match self.namespace(id).await {
            Ok(Some(ns)) => ns,
            Ok(None) => return Ok(Outcome::Gone),
            Err(e) => return Err(self.call_failure(operation, id, &e)),
        };
        if terminating(&ns) {
            return Ok(Outcome::AlreadyThereOrBusy);
        }
        // The policy never acts on a protected environment; one protected since the
        // listing is not acted on either.
        if protected(&ns) {
            return Err(failure(
                operation,
                false,
                format!(
                    "namespace {id} is protected by its labels or annotations; not {}",
                    if operation == Operation::Stop {
                        "stopped"
                    } else {
                        "started"
                    }
                ),
            ));
        }
        let workloads = self
            .workloads(id, true)
            .await
            .map_err(|e| self.call_failure(operation, id, &e))?;
        let not_stopped = match step {
            Step::Stop(_) => self.warn_not_stopped(id, &workloads).await,
            Step::Start => Vec::new(),
        };
        // A stop pauses the GitOps owners first: stopped before, a workload would be put
        // back by its owner at once. One that cannot be paused stops nothing.
        let mut owners = Vec::new();
        if let Step::Stop(now) = step {
            owners = self
                .converge_owners(id, &workloads, Some((gitops, now)))
                .await;
            if let Some(e) = owners_failed(operation, id, &owners, "paused") {
                return Err(e);
            }
        }
        // What a start resumes the owners of, once its workloads run again.
        let started = match step {
            Step::Start => workloads.clone(),
            Step::Stop(_) => Vec::new(),
        };
        let mut objects: Vec<Object> = workloads.into_iter().map(Object::Workload).collect();
        // Rollouts and the other scaled kinds, the rule's patches, its LoadBalancers.
        objects.extend(
            self.extra_objects(id, &ns, step)
                .await
                .map_err(|e| self.call_failure(operation, id, &e))?,
        );
        // Routes: sent to the wake Service by a stop under a rule that wakes on request,
        // restored by any start (whatever the rules say now), but only once the workloads
        // it scales up have their ready replicas back (see `restore_routes_when_ready`).
        let wake = match step {
            Step::Stop(_) if self.wakes_on_request(&ns) => self.inner.options.wake_service.as_ref(),
            Step::Stop(_) => None,
            Step::Start => self.inner.options.wake_service.as_ref(),
        };
        let mut early_failures = Vec::new();
        if let (Step::Stop(_), Some(wake)) = (step, wake) {
            let routes = self
                .routes(id)
                .await
                .map_err(|e| self.call_failure(operation, id, &e))?;
            match self.open_wake(id, wake, &routes).await {
                Ok(()) => objects.extend(routes.into_iter().map(Object::Route)),
                Err(e) => early_failures.push((
                    Kind::Ingress,
                    LOCAL_WAKE_SERVICE.to_string(),
                    Err(ObjectError::Call(e)),
                )),
            }
        }
        let total = objects.len() + early_failures.len();
        let mut results: Vec<(Kind, String, Result<Option<Change>, ObjectError>)> =
            stream::iter(objects)
                .map(|object| async move {
                    let (kind, name) = (object.kind(), object.name().to_string());
                    (kind, name, self.converge(id, object, step, wake).await)
                })
                .buffer_unordered(self.inner.options.max_concurrency.max(1))
                .collect()
                .await;
        results.extend(early_failures);
        if let (Step::Start, Some(wake)) = (step, wake) {
            // Nothing scaled up (nothing was stopped, or only CronJobs): the routes go back
            // at once; else once the workloads serve, so that nobody meets the app's 503s
            // while it warms up. Meanwhile they still show the waiting page.
            let scaled_up = results.iter().any(|(kind, _, r)| {
                matches!(kind, Kind::Deployment | Kind::StatefulSet)
                    && matches!(r, Ok(Some(Change::Restored)))
            });
            if scaled_up {
                self.restore_routes_when_ready(id);
            } else {
                match self.routes(id).await {
                    Ok(routes) => results.extend(self.restore_routes(id, wake, routes).await),
                    Err(e) => {
                        results.push((Kind::Ingress, String::new(), Err(ObjectError::Call(e))))
                    }
                }
            }
        }
        // A start resumes the owners once their workloads run again.
        if let Step::Start = step {
            owners = self.converge_owners(id, &started, None).await;
        }
        let Tally {
            changed,
            left_as_changed,
            failed,
            not_leader,
        } = Tally::of(results);
        let done: usize = changed.values().sum();
        let owners_done: Vec<String> = owners
            .iter()
            .filter_map(|(owner, r)| match r {
                Ok(Some(Change::Stopped)) => Some(format!("paused {owner}")),
                Ok(Some(Change::Restored)) => Some(format!("resumed {owner}")),
                Ok(Some(Change::LeftAsChanged)) => {
                    Some(format!("left {owner} as changed since the stop"))
                }
                _ => None,
            })
            .collect();
        if done > 0 || !owners_done.is_empty() {
            let mut notice = action_notice(step, &changed, &left_as_changed, &not_stopped);
            if !owners_done.is_empty() {
                notice.note.push_str(&format!(
                    "; GitOps: {} (the original in its annotation {ORIGINAL_GITOPS})",
                    owners_done.join(", ")
                ));
            }
            let notice = self.with_links(&ns, notice);
            let regarding = Regarding::namespace(id, ns.metadata.uid.as_deref());
            self.post(&regarding, &notice).await;
        }
        if not_leader > 0 {
            return Err(failure(
                operation,
                true,
                format!(
                    "namespace {id}: this replica lost the lease after changing {done} of {total} objects; the leader finishes"
                ),
            ));
        }
        if !failed.is_empty() {
            return Err(objects_failed(operation, id, &failed, total, done));
        }
        if let Some(e) = owners_failed(operation, id, &owners, "resumed") {
            return Err(e);
        }
        Ok(if done > 0 || !owners_done.is_empty() {
            Outcome::Accepted
        } else {
            Outcome::AlreadyThereOrBusy
        })
    }

    /// Sends the routes of `id` back to their own backends (exactly as recorded; a
    /// person's edit in between stays), then removes the wake Service and grant once no
    /// route may still send to them: one result per object.
    async fn restore_routes(
        &self,
        id: &str,
        wake: &WakeService,
        routes: Vec<Route>,
    ) -> Vec<(Kind, String, Result<Option<Change>, ObjectError>)> {
        let grant = routes.iter().any(|r| r.kind == Kind::HttpRoute);
        let mut results: Vec<_> = stream::iter(routes)
            .map(|route| async move {
                let (kind, name) = (route.kind, route.name.clone());
                let done = self
                    .converge(id, Object::Route(route), Step::Start, Some(wake))
                    .await;
                (kind, name, done)
            })
            .buffer_unordered(self.inner.options.max_concurrency.max(1))
            .collect()
            .await;
        let routes_left = results.iter().any(|(_, _, r)| r.is_err());
        // The wake Service goes only once no route may still send to it.
        if !routes_left && let Err(e) = self.close_wake(id, wake, grant).await {
            let e = match e {
                CallError::LostLease => ObjectError::NotLeader,
                e => ObjectError::Call(e),
            };
            results.push((Kind::Ingress, LOCAL_WAKE_SERVICE.to_string(), Err(e)));
        }
        results
    }

    /// After a start that scaled workloads up: looks every [`ROUTES_POLL`] (for at most
    /// [`ROUTES_WAIT`]) whether they serve, and then restores the routes. A request on the
    /// preview's host meanwhile reaches the waiting page, whose `serving` restores them as
    /// soon as they serve too (and after a restart of curfew, it alone does).
    fn restore_routes_when_ready(&self, id: &str) {
        let (k8s, id) = (self.clone(), id.to_string());
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + ROUTES_WAIT;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(ROUTES_POLL).await;
                match k8s.serving_now(&id).await {
                    Ok(serving) if serving.ready => return,
                    Ok(_) => {}
                    Err(e) => tracing::debug!(namespace = %id, error = %e, "routes wait"),
                }
                if !k8s.inner.leader.is_leader() {
                    return;
                }
            }
            tracing::warn!(
                namespace = %id,
                "its workloads are not ready {} minutes after the start: its routes still show the waiting page",
                ROUTES_WAIT.as_secs() / 60
            );
        });
    }

    /// Where the namespace `id` serves people, and whether it serves yet (wake on
    /// request): the URL of its first Ingress (by name), else of its first HTTPRoute; ready
    /// when every Deployment and StatefulSet curfew stops is back at its replicas with all
    /// of them ready (`status.readyReplicas`), and no route still sends to the wake
    /// Service. Routes a start left on the wake Service until then are restored here once
    /// the workloads serve (by the leader). A namespace curfew does not manage serves
    /// nothing.
    async fn serving_now(&self, id: &str) -> Result<Serving, PlatformError> {
        let failed = reading(id);
        let Some(ns) = self.namespace(id).await.map_err(failed)? else {
            return Ok(Serving::default());
        };
        let workloads = self.workloads(id, false).await.map_err(failed)?;
        let mut routes = self.routes(id).await.map_err(failed)?;
        let workloads_serve = !terminating(&ns) && workloads.iter().all(Workload::serves);
        if let Some(wake) = self.inner.options.wake_service.as_ref()
            && workloads_serve
            && routes.iter().any(|r| r.recorded().is_some())
            && self.inner.leader.is_leader()
        {
            let Tally {
                changed,
                left_as_changed,
                failed: not_restored,
                ..
            } = Tally::of(self.restore_routes(id, wake, routes).await);
            for (kind, name, e) in &not_restored {
                tracing::warn!(namespace = %id, object = %format!("{}/{name}", kind.plural()), error = ?e, "cannot restore a route");
            }
            if !changed.is_empty() {
                let mut notice = action_notice(Step::Start, &changed, &left_as_changed, &[]);
                notice.note = notice.note.replacen(
                    "curfew started this environment",
                    "its workloads serve again, so curfew sent its routes back",
                    1,
                );
                let regarding = Regarding::namespace(id, ns.metadata.uid.as_deref());
                self.post(&regarding, &notice).await;
            }
            routes = self.routes(id).await.map_err(failed)?;
        }
        let url = routes
            .iter()
            .filter(|r| r.kind == Kind::Ingress)
            .chain(routes.iter().filter(|r| r.kind == Kind::HttpRoute))
            .find_map(Route::url);
        let ready = workloads_serve && routes.iter().all(|r| r.recorded().is_none());
        Ok(Serving { url, ready })
    }

    /// The objects a stop leaves running and why (another controller owns it, its volumes
    /// would go), each said once per change of the object in a Warning Event about it.
    async fn warn_not_stopped(&self, namespace: &str, objects: &[Workload]) -> Vec<String> {
        let mut out = Vec::new();
        for w in objects.iter().filter(|w| !w.excluded() && w.wants_to_run()) {
            let Some(why) = w.not_stopped() else {
                continue;
            };
            let reason = "NotStopped";
            let object = format!("{}/{}", w.kind.plural(), w.name);
            out.push(format!("{object} ({why})"));
            let seen = (
                namespace.to_string(),
                object.clone(),
                w.resource_version.clone().unwrap_or_default(),
            );
            {
                let mut warned = self
                    .inner
                    .warned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                // Bounded: forgetting means at most one Event more per object.
                if warned.len() > 10_000 {
                    warned.clear();
                }
                if !warned.insert(seen) {
                    continue;
                }
            }
            let regarding = Regarding {
                api_version: w.kind.api_version(),
                kind: w.kind.name(),
                namespace: namespace.to_string(),
                name: w.name.clone(),
                uid: None,
            };
            let notice = Notice {
                type_: EventType::Warning,
                reason: reason.into(),
                action: "Stop".into(),
                note: format!("curfew did not stop {object}: {why}"),
            };
            self.post(&regarding, &notice).await;
        }
        out
    }

    /// Posts an Event. Best effort: a failure is logged, never raised. A replica that does
    /// not hold the lease writes nothing, Events included.
    async fn post(&self, regarding: &Regarding, notice: &Notice) {
        if !self.inner.options.events || !self.inner.leader.is_leader() {
            return;
        }
        let event = events::event(
            regarding,
            notice,
            &self.inner.options.identity,
            self.inner.clock.now(),
        );
        let request = serde_json::to_vec(&event)
            .map_err(kube::core::request::Error::SerializeBody)
            .and_then(|body| {
                Request::new(url_path::<Event>(&regarding.namespace))
                    .create(&PostParams::default(), body)
            });
        if let Err(e) = self.write::<IgnoredAny>("create_event", request).await {
            tracing::warn!(namespace = %regarding.namespace, reason = %notice.reason, error = %e, "could not post an Event");
        }
    }

    async fn traffic(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<HashMap<String, DateTime<Utc>>>, traffic::TrafficError> {
        let Some(traffic) = &self.inner.traffic else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let result = traffic.last_requests(now).await;
        if let Some(observer) = &self.inner.observer {
            let status = if result.is_ok() { "2xx" } else { "error" };
            observer.request("prometheus_query", status, started.elapsed());
        }
        result.map(Some)
    }
}

impl Kubernetes {
    /// The last requests of the namespaces, if the traffic query is set up; and whether
    /// the pass still sees everything (not if the query failed).
    async fn activity(&self, now: DateTime<Utc>) -> (Activity, bool) {
        match self.traffic(now).await {
            Ok(None) => (Activity::NotAsked, true),
            Ok(Some(last)) => (Activity::Known(last), true),
            Err(e) => {
                // Without the traffic signal nobody can tell an idle namespace from a busy
                // one: count all as active this pass, and delete nothing.
                tracing::warn!(error = %e, "traffic unknown this pass: every namespace counts as active");
                (Activity::AssumeActive, false)
            }
        }
    }

    /// The listing's environments: each namespace with its objects, its last activity and
    /// the GitOps owners that would put a stop back.
    fn environments(
        &self,
        namespaces: &[Namespace],
        contents: &[Option<Contents>],
        owners: Vec<(Option<String>, Vec<crate::platform::Reverter>)>,
        activity: &Activity,
        now: DateTime<Utc>,
    ) -> Vec<crate::platform::Environment> {
        namespaces
            .iter()
            .zip(contents)
            .map(|(ns, contents)| self.environment(ns, contents.as_ref(), activity, now))
            .zip(owners)
            .map(|(mut env, (owners, reverters))| {
                env.owners = owners.map(Arc::from);
                env.reverters = reverters;
                env
            })
            .collect()
    }

    fn environment(
        &self,
        ns: &Namespace,
        contents: Option<&Contents>,
        activity: &Activity,
        now: DateTime<Utc>,
    ) -> crate::platform::Environment {
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        let last_activity = match activity {
            Activity::NotAsked => None,
            Activity::Known(last) => last.get(name).copied(),
            Activity::AssumeActive => Some(now),
        };
        namespace::environment(ns, contents, &self.inner.mapping, last_activity)
    }

    /// A pass over the watch cache: no list request. The first waits for the cache's first
    /// sync (at most four request timeouts; a pass that fails meanwhile keeps `/readyz`
    /// not ready).
    async fn list_cached(&self, now: DateTime<Utc>) -> Result<Snapshot, PlatformError> {
        self.list_cached_where(now, |_| true).await
    }

    /// The environments of the watch cache's namespaces that `chosen` names (the listing
    /// when it names all of them).
    async fn list_cached_where(
        &self,
        now: DateTime<Utc>,
        chosen: impl Fn(&str) -> bool,
    ) -> Result<Snapshot, PlatformError> {
        let cache = self.cache().clone();
        let limit = self.inner.options.timeout * 4;
        if tokio::time::timeout(limit, cache.synced()).await.is_err() {
            return Err(failure(
                Operation::List,
                true,
                format!(
                    "the watch cache has not listed every kind within {}s; the next pass waits again",
                    limit.as_secs()
                ),
            ));
        }
        let (activity, complete) = self.activity(now).await;
        // Each namespace becomes its environment as the cache hands it over: what runs in
        // it is not kept beyond that (10,000 of them held at once were ~35 MB).
        let mut environments = Vec::new();
        let mut owned: Vec<(usize, BTreeSet<gitops::OwnerRef>)> = Vec::new();
        cache.visit(
            |name| !self.never_an_environment(name) && chosen(name),
            |ns, contents| {
                let ids = self.owner_ids(&contents.workloads);
                if !ids.is_empty() {
                    owned.push((environments.len(), ids));
                }
                environments.push(self.environment(ns, Some(&contents), &activity, now));
            },
        );
        // The GitOps owners are not in the cache: listed (one request per kind) only when
        // a workload names one.
        if !owned.is_empty() {
            let objects = self
                .owners_by_id(owned.iter().flat_map(|(_, ids)| ids))
                .await;
            for (i, ids) in owned {
                if let Some(env) = environments.get_mut(i) {
                    let (owners, reverters) = gitops::owner_note(&objects, &env.name, ids);
                    env.owners = owners.map(Arc::from);
                    env.reverters = reverters;
                }
            }
        }
        Ok(Snapshot {
            environments,
            complete,
        })
    }
}

/// What a failed read of the namespace `id`'s objects becomes.
fn reading(id: &str) -> impl Fn(CallError) -> PlatformError + Copy + '_ {
    move |e| {
        failure(
            Operation::List,
            e.retryable(),
            format!("namespace {id}: {e}"),
        )
    }
}

fn failure(operation: Operation, retryable: bool, message: String) -> PlatformError {
    PlatformError {
        platform: PLATFORM,
        operation,
        retryable,
        message,
    }
}

fn url_path<K>(namespace: &str) -> String
where
    K: kube::Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    K::url_path(&K::DynamicType::default(), Some(namespace))
}

/// Protected by its labels or annotations (see the namespace module's table).
fn protected(ns: &Namespace) -> bool {
    namespace::overrides(
        ns.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
        ns.metadata.annotations.as_ref().unwrap_or(&BTreeMap::new()),
    )
    .protected
}

/// What a stop or start did to the objects of a namespace.
struct Tally {
    changed: BTreeMap<(Change, Kind), usize>,
    /// `deployments/web`, sorted.
    left_as_changed: Vec<String>,
    failed: Vec<(Kind, String, ObjectError)>,
    not_leader: usize,
}

impl Tally {
    fn of(results: Vec<(Kind, String, Result<Option<Change>, ObjectError>)>) -> Tally {
        let mut tally = Tally {
            changed: BTreeMap::new(),
            left_as_changed: Vec::new(),
            failed: Vec::new(),
            not_leader: 0,
        };
        for (kind, name, result) in results {
            match result {
                Ok(Some(change)) => {
                    *tally.changed.entry((change, kind)).or_default() += 1;
                    if change == Change::LeftAsChanged {
                        tally
                            .left_as_changed
                            .push(format!("{}/{name}", kind.plural()));
                    }
                }
                Ok(None) => {}
                Err(ObjectError::NotLeader) => tally.not_leader += 1,
                Err(e) => tally.failed.push((kind, name, e)),
            }
        }
        tally.left_as_changed.sort();
        tally
    }
}

/// "namespace pr-1: 2 of 7 objects failed (…); 5 changed, the next pass tries the rest".
fn objects_failed(
    operation: Operation,
    id: &str,
    failed: &[(Kind, String, ObjectError)],
    total: usize,
    done: usize,
) -> PlatformError {
    let retryable = failed.iter().all(|(_, _, e)| match e {
        ObjectError::Call(c) => c.retryable(),
        _ => true,
    });
    let first: Vec<String> = failed
        .iter()
        .take(3)
        .map(|(kind, name, e)| match e {
            ObjectError::Call(c) => format!("{}/{name}: {c}", kind.plural()),
            _ => format!(
                "{}/{name}: changed by someone else at every attempt",
                kind.plural()
            ),
        })
        .collect();
    failure(
        operation,
        retryable,
        format!(
            "namespace {id}: {} of {total} objects failed ({}); {done} changed, the next pass tries the rest",
            failed.len(),
            first.join("; ")
        ),
    )
}

/// "namespace pr-1: Application argocd/pr-1 could not be paused (…); nothing stopped".
fn owners_failed(
    operation: Operation,
    id: &str,
    owners: &gitops::OwnerResults,
    verb: &str,
) -> Option<PlatformError> {
    let failed: Vec<String> = owners
        .iter()
        .filter_map(|(owner, r)| match r {
            Err(ObjectError::Call(c)) => Some(format!("{owner}: {c}")),
            Err(ObjectError::Conflicts) => {
                Some(format!("{owner}: changed by someone else at every attempt"))
            }
            Err(ObjectError::NotLeader) => Some(format!(
                "{owner}: this replica lost the lease; the leader acts"
            )),
            Ok(_) => None,
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    let retryable = owners.iter().all(|(_, r)| match r {
        Err(ObjectError::Call(c)) => c.retryable(),
        _ => true,
    });
    let then = match operation {
        Operation::Stop => "nothing stopped, as its owner would put it back",
        _ => "the next pass tries again",
    };
    Some(failure(
        operation,
        retryable,
        format!(
            "namespace {id}: GitOps owner not {verb} ({}); {then}",
            failed.join("; ")
        ),
    ))
}

/// "curfew stopped this environment: 3 deployments and 1 statefulset scaled to zero, …".
fn action_notice(
    step: Step,
    changed: &BTreeMap<(Change, Kind), usize>,
    left_as_changed: &[String],
    not_stopped: &[String],
) -> Notice {
    let count = |change: Change, kind: Kind| changed.get(&(change, kind)).copied().unwrap_or(0);
    let list = |change: Change, kinds: &[Kind]| {
        kinds
            .iter()
            .filter_map(|k| match count(change, *k) {
                0 => None,
                n => Some(format!("{n} {}", k.plural())),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    match step {
        Step::Stop(_) => {
            let scaled = list(Change::Stopped, &[Kind::Deployment, Kind::StatefulSet]);
            if !scaled.is_empty() {
                parts.push(format!("{scaled} scaled to zero"));
            }
            let scaled = count(Change::Stopped, Kind::Scaled);
            if scaled > 0 {
                parts.push(format!(
                    "{scaled} scaled to zero through their scale subresource (Argo Rollouts, platform.kubernetes.scale_kinds)"
                ));
            }
            let patched = count(Change::Stopped, Kind::Patched);
            if patched > 0 {
                parts.push(format!(
                    "{patched} patched by the rule (patches, release_load_balancers; the inverse in their annotation {ORIGINAL_PATCH})"
                ));
            }
            let suspended = list(Change::Stopped, &[Kind::CronJob]);
            if !suspended.is_empty() {
                parts.push(format!("{suspended} suspended"));
            }
            let routed = list(Change::Stopped, &[Kind::Ingress, Kind::HttpRoute]);
            if !routed.is_empty() {
                parts.push(format!(
                    "{routed} sent to curfew's wake Service (original backends in {ORIGINAL_BACKENDS})"
                ));
            }
            if !not_stopped.is_empty() {
                parts.push(format!("not stopped: {}", not_stopped.join(", ")));
            }
            Notice {
                type_: EventType::Normal,
                reason: "Stopped".into(),
                action: "Stop".into(),
                note: format!(
                    "curfew stopped this environment: {}; each object's original value is in its annotation {ORIGINAL_REPLICAS} or {ORIGINAL_SUSPEND}",
                    parts.join(", ")
                ),
            }
        }
        Step::Start => {
            let restored = list(Change::Restored, &Kind::ALL);
            if !restored.is_empty() {
                parts.push(format!("{restored} restored"));
            }
            if !left_as_changed.is_empty() {
                parts.push(format!(
                    "left as changed since the stop: {}",
                    left_as_changed.join(", ")
                ));
            }
            Notice {
                type_: EventType::Normal,
                reason: "Started".into(),
                action: "Start".into(),
                note: format!("curfew started this environment: {}", parts.join("; ")),
            }
        }
    }
}

#[async_trait::async_trait]
impl Platform for Kubernetes {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    async fn list(&self) -> Result<Snapshot, PlatformError> {
        let now = self.inner.clock.now();
        if self.inner.options.watch {
            return self.list_cached(now).await;
        }
        let namespaces = self.chosen().await?;
        let (activity, mut complete) = self.activity(now).await;
        // Owned names: a future borrowing the list trips rust-lang/rust#110338 once spawned.
        let names: Vec<(String, bool)> = namespaces
            .iter()
            .map(|ns| {
                (
                    ns.metadata.name.clone().unwrap_or_default(),
                    terminating(ns),
                )
            })
            .collect();
        let contents: Vec<Option<Contents>> = stream::iter(names)
            .map(|(name, deleting): (String, bool)| async move {
                match self.contents_or_remains(&name, deleting).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(namespace = %name, error = %e, "cannot list the namespace's workloads: left alone this pass");
                        None
                    }
                }
            })
            .buffered(self.inner.options.max_concurrency.max(1))
            .collect()
            .await;
        complete &= contents.iter().all(Option::is_some);
        let owners = self.owner_notes(&namespaces, &contents).await;
        let environments = self.environments(&namespaces, &contents, owners, &activity, now);
        Ok(Snapshot {
            environments,
            complete,
        })
    }

    /// The namespace `id` alone: read with its workloads, pods and owners (a wake reads it
    /// right before acting), or from the watch cache, which lists nothing; `None` when it
    /// is gone or the selector does not choose it.
    async fn environment(&self, id: &str) -> Result<Option<Environment>, PlatformError> {
        let now = self.inner.clock.now();
        if self.inner.options.watch {
            let mut one = self.list_cached_where(now, |name| name == id).await?;
            return Ok(one.environments.pop());
        }
        let read = reading(id);
        let Some(ns) = self.namespace(id).await.map_err(read)? else {
            return Ok(None);
        };
        let (activity, _) = self.activity(now).await;
        let contents = self
            .contents_or_remains(id, terminating(&ns))
            .await
            .map_err(read)?;
        let (namespaces, contents) = ([ns], [Some(contents)]);
        let owners = self.owner_notes(&namespaces, &contents).await;
        Ok(self
            .environments(&namespaces, &contents, owners, &activity, now)
            .pop())
    }

    async fn stop(&self, id: &str) -> Result<Outcome, PlatformError> {
        self.stop_under(id, GitOps::default()).await
    }

    async fn stop_under(&self, id: &str, gitops: GitOps) -> Result<Outcome, PlatformError> {
        self.act(id, Step::Stop(self.inner.clock.now()), gitops)
            .await
    }

    async fn start(&self, id: &str) -> Result<Outcome, PlatformError> {
        self.act(id, Step::Start, GitOps::default()).await
    }

    async fn serving(&self, id: &str) -> Result<Serving, PlatformError> {
        self.serving_now(id).await
    }

    /// The hosts of every Ingress and HTTPRoute of the namespace.
    async fn links(&self, id: &str) -> Result<Vec<String>, PlatformError> {
        let routes = self.routes(id).await.map_err(|e| {
            failure(
                Operation::List,
                e.retryable(),
                format!("namespace {id}: {e}"),
            )
        })?;
        Ok(routes.iter().flat_map(Route::urls).collect())
    }

    async fn delete(&self, id: &str) -> Result<Outcome, PlatformError> {
        let operation = Operation::Delete;
        if !self.inner.leader.is_leader() {
            return Err(self.not_leader(operation, id));
        }
        let ns = match self.namespace(id).await {
            Ok(Some(ns)) => ns,
            Ok(None) => return Ok(Outcome::Gone),
            Err(e) => return Err(self.call_failure(operation, id, &e)),
        };
        if terminating(&ns) {
            return Ok(Outcome::AlreadyThereOrBusy);
        }
        // The policy never asks to delete a protected environment; a namespace annotated
        // since the listing is still not deleted.
        if protected(&ns) {
            return Err(failure(
                operation,
                false,
                format!("namespace {id} is protected by its labels or annotations; not deleted"),
            ));
        }
        let uid = ns.metadata.uid.clone();
        // Before the delete: a namespace being deleted takes no new Event.
        self.post(
            &Regarding::namespace(id, uid.as_deref()),
            &Notice {
                type_: EventType::Normal,
                reason: "Deleted".into(),
                action: "Delete".into(),
                note: "curfew is deleting this environment".into(),
            },
        )
        .await;
        // Exactly the namespace that was checked: not one created since under its name
        // (uid), nor one changed since, protected say (resourceVersion). The default
        // propagation: the namespace controller deletes a namespace's content whatever the
        // policy, and Foreground would only add a finalizer to the namespace.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: ns.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        let request =
            Request::new(<Namespace as kube::Resource>::url_path(&(), None)).delete(id, &params);
        match self.write::<IgnoredAny>("delete_namespace", request).await {
            Ok(_) => Ok(Outcome::Accepted),
            Err(e) if e.code() == Some(404) => Ok(Outcome::Gone),
            Err(e) if e.code() == Some(409) => Err(failure(
                operation,
                true,
                format!(
                    "namespace {id} changed since curfew checked it ({e}); not deleted, the next pass decides again"
                ),
            )),
            Err(CallError::LostLease) => Err(self.not_leader(operation, id)),
            Err(e) => Err(self.call_failure(operation, id, &e)),
        }
    }

    fn set_links(&self, links: Arc<dyn crate::platform::ActionLinks>) {
        let _ = self.inner.links.set(links);
    }

    async fn note(&self, id: &str, reason: &str, message: &str) {
        self.post(
            &Regarding::namespace(id, None),
            &Notice {
                type_: EventType::Warning,
                reason: reason.to_string(),
                action: "Warn".into(),
                note: message.to_string(),
            },
        )
        .await;
    }
}

/// Why no client for the Kubernetes API could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot find the Kubernetes API: {0} (in a pod, curfew uses its service account; elsewhere KUBECONFIG or ~/.kube/config)"
    )]
    NotFound(#[source] kube::config::InferConfigError),
    #[error("cannot use the kubeconfig context {context}: {source}")]
    Context {
        context: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build the Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// A client from the pod's service account (in a cluster) or the kubeconfig (`KUBECONFIG`,
/// `~/.kube/config`), optionally for a named context.
pub async fn client(context: Option<&str>, timeout: Duration) -> Result<kube::Client, ClientError> {
    let mut config = match context {
        None => kube::Config::infer().await.map_err(ClientError::NotFound)?,
        Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|source| ClientError::Context {
            context: context.to_string(),
            source,
        })?,
    };
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    kube::Client::try_from(config).map_err(ClientError::Build)
}
