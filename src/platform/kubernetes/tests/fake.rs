//! A fake Kubernetes API server at the HTTP boundary, for the adapter's tests.
//!
//! The kube client talks to it through tower-test's mock service (as kube-rs/controller-rs
//! tests do); it answers from an in-memory store the way the API server answers the
//! requests curfew makes: lists (label and field selectors, pages whose continue token
//! expires once etcd compacts, metadata-only), gets, JSON merge patches with the
//! resourceVersion precondition (409 when stale) and the field manager's `managedFields`,
//! creates (Events validated as the API server validates them), replaces, and a namespace
//! delete with its preconditions. A request carrying `?timeout=` that waits longer than
//! that in the server is answered 504 and not carried out. Every request is logged, so a
//! test can say which writes were sent. Hooks run before a request is handled: a person's
//! change racing curfew's, an error status, time that passes.
//!
//! It also plays the controllers whose rules matter here ([`controllers`]): the Deployment,
//! ReplicaSet and StatefulSet controllers make and remove pods (and a StatefulSet's
//! volumes, deleted on a scale down under `whenScaled: Delete`), the HPA controller leaves a
//! target at zero alone, and the CronJob controller starts a missed run on resume. With
//! [`FakeApi::admit_with`], writes pass through a ValidatingAdmissionPolicy ([`admission`]).

mod admission;
mod controllers;
mod fields;
mod validation;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

pub use admission::Policy;
pub use controllers::{cron_job_with_run, job_pod, pod};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub query: BTreeMap<String, String>,
    pub body: Option<Value>,
    pub metadata_only: bool,
    /// The request's Content-Type (a patch's type).
    pub content_type: String,
}

impl Seen {
    /// The RBAC verb of the request.
    pub fn verb(&self) -> &'static str {
        match (&self.method, self.name.is_some()) {
            (&Method::GET, true) => "get",
            (&Method::GET, false) if self.is_watch() => "watch",
            (&Method::GET, false) => "list",
            (&Method::PATCH, _) => "patch",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::DELETE, _) => "delete",
            _ => "other",
        }
    }

    /// A watch (`?watch=true`), not a list.
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }

    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }

    fn parse(
        method: Method,
        uri: &http::Uri,
        accept: &str,
        content_type: &str,
        body: &[u8],
    ) -> Seen {
        let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        // /api/v1/... or /apis/GROUP/VERSION/...
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest),
            ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
            _ => panic!("unexpected path {}", uri.path()),
        };
        let (namespace, resource, name) = match rest {
            ["namespaces"] => (None, "namespaces".to_string(), None),
            ["namespaces", name] => (None, "namespaces".to_string(), Some(*name)),
            ["namespaces", ns, resource] => (Some(*ns), resource.to_string(), None),
            ["namespaces", ns, resource, name] => (Some(*ns), resource.to_string(), Some(*name)),
            // A subresource (`rollouts/scale`), named as RBAC names it.
            ["namespaces", ns, resource, name, sub] => {
                (Some(*ns), format!("{resource}/{sub}"), Some(*name))
            }
            [resource] => (None, resource.to_string(), None),
            _ => panic!("unexpected path {}", uri.path()),
        };
        let query = uri
            .query()
            .map(|q| {
                form_urlencoded(q)
                    .into_iter()
                    .collect::<BTreeMap<String, String>>()
            })
            .unwrap_or_default();
        Seen {
            method,
            group,
            resource,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            query,
            body: serde_json::from_slice(body).ok(),
            metadata_only: accept.contains("as=PartialObjectMetadataList"),
            content_type: content_type.to_string(),
        }
    }

    /// The request's own deadline (`?timeout=9s`, a Go duration in seconds or
    /// milliseconds), which the API server holds it to.
    fn deadline(&self) -> Option<Duration> {
        let text = self.query.get("timeout")?;
        if let Some(ms) = text.strip_suffix("ms") {
            return ms.parse().ok().map(Duration::from_millis);
        }
        text.strip_suffix('s')?
            .parse()
            .ok()
            .map(Duration::from_secs_f64)
    }
}

fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// What a hook makes of a request before the server handles it.
pub enum Then {
    /// Handle it as usual.
    Proceed,
    /// Answer with this status code and a Status body saying `message`.
    Fail(u16, &'static str),
    /// Let this much (paused tokio) time pass before the server carries it out (a queue in
    /// an overloaded API server): past the request's `?timeout=`, it is not carried out.
    Wait(Duration),
    /// Carry it out at once, and let this much (paused tokio) time pass before the answer
    /// reaches the client (a slow network or server on the way back).
    Slow(Duration),
}

type Hook = Box<dyn FnMut(&Seen, &mut Store) -> Then + Send>;

/// The objects, by (resource, namespace or "", name), as JSON.
pub struct Store {
    pub objects: BTreeMap<(String, String, String), Value>,
    pub log: Vec<Seen>,
    /// The cluster's wall clock: creation and deletion timestamps, `managedFields` times,
    /// the CronJob controller's schedule.
    pub now: DateTime<Utc>,
    next_version: u64,
    next_name: u64,
    /// Resource versions before this one are compacted away (etcd's periodic compaction).
    compacted: u64,
    /// Objects removed, each with the resourceVersion of its removal (what a watch
    /// reports as DELETED).
    deleted: Vec<(u64, Value)>,
    policy: Option<Policy>,
    /// The Gateway API's CRDs are installed: without them its paths are 404.
    pub gateway_api: bool,
    /// What the GitOps repository says of the objects an Argo CD Application deploys: the
    /// manifests its self-heal puts back (see [`controllers`]).
    pub git: BTreeMap<Key, Value>,
    /// Resources whose CustomResourceDefinition is not installed: the API server answers
    /// 404 for them.
    pub not_installed: Vec<String>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            objects: BTreeMap::new(),
            log: Vec::new(),
            now: "2026-11-26T10:00:00Z".parse().unwrap(),
            next_version: 0,
            next_name: 0,
            compacted: 0,
            deleted: Vec::new(),
            policy: None,
            gateway_api: false,
            git: BTreeMap::new(),
            not_installed: Vec::new(),
        }
    }
}

type Key = (String, String, String);

fn key_of(object: &Value) -> Key {
    (
        resource_of(object["kind"].as_str().unwrap()).to_string(),
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        object["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

impl Store {
    fn version(&mut self) -> String {
        self.next_version += 1;
        self.next_version.to_string()
    }

    /// The cluster moves on (a write elsewhere) and etcd compacts its history up to now:
    /// continue tokens issued so far expire; lists taken from now on are unaffected.
    pub fn compact(&mut self) {
        self.next_version += 1;
        self.compacted = self.next_version;
    }

    fn stamp(&self) -> String {
        self.now.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Inserts or replaces an object (its resource from its kind), with a new
    /// resourceVersion (and a uid if it has none), then lets the controllers act on it.
    pub fn put(&mut self, mut object: Value) {
        let key = key_of(&object);
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{}-{}-{}", key.0, key.1, key.2));
        }
        object["metadata"]["resourceVersion"] = json!(self.version());
        self.objects.insert(key.clone(), object);
        controllers::settle(self, &key);
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(resource.into(), namespace.into(), name.into()))
    }

    pub fn remove(&mut self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let removed = self
            .objects
            .remove(&(resource.into(), namespace.into(), name.into()))?;
        let version = self.version();
        let mut last = removed.clone();
        last["metadata"]["resourceVersion"] = json!(version);
        self.deleted.push((self.next_version, last));
        Some(removed)
    }

    /// Changes an object as a person would (`kubectl scale`, `kubectl edit`): a new
    /// resourceVersion, and the controllers act on it.
    pub fn edit(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let version = self.version();
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let object = self.objects.get_mut(&key).unwrap();
        change(object);
        object["metadata"]["resourceVersion"] = json!(version);
        controllers::settle(self, &key);
    }

    /// Objects of a resource in a namespace ("" for all), in name order.
    pub fn all(&self, resource: &str, namespace: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && (namespace.is_empty() || ns == namespace))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn resource_of(kind: &str) -> &'static str {
    match kind {
        "Namespace" => "namespaces",
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "CronJob" => "cronjobs",
        "Job" => "jobs",
        "Pod" => "pods",
        "PersistentVolumeClaim" => "persistentvolumeclaims",
        "ReplicaSet" => "replicasets",
        "ControllerRevision" => "controllerrevisions",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "Lease" => "leases",
        "Event" => "events",
        "LimitRange" => "limitranges",
        "Ingress" => "ingresses",
        "HTTPRoute" => "httproutes",
        "Service" => "services",
        "ReferenceGrant" => "referencegrants",
        "Application" => "applications",
        "ApplicationSet" => "applicationsets",
        "Kustomization" => "kustomizations",
        "HelmRelease" => "helmreleases",
        "ScaledObject" => "scaledobjects",
        "Rollout" => "rollouts",
        other => panic!("no resource for kind {other}"),
    }
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "namespaces" => "Namespace",
        "deployments" => "Deployment",
        "statefulsets" => "StatefulSet",
        "cronjobs" => "CronJob",
        "jobs" => "Job",
        "pods" => "Pod",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "replicasets" => "ReplicaSet",
        "controllerrevisions" => "ControllerRevision",
        "horizontalpodautoscalers" => "HorizontalPodAutoscaler",
        "leases" => "Lease",
        "events" => "Event",
        "limitranges" => "LimitRange",
        "ingresses" => "Ingress",
        "httproutes" => "HTTPRoute",
        "services" => "Service",
        "referencegrants" => "ReferenceGrant",
        "applications" => "Application",
        "applicationsets" => "ApplicationSet",
        "kustomizations" => "Kustomization",
        "helmreleases" => "HelmRelease",
        "scaledobjects" => "ScaledObject",
        "rollouts" => "Rollout",
        other => panic!("no kind for resource {other}"),
    }
}

fn api_version(group: &str, resource: &str) -> String {
    match (group, resource) {
        ("", _) => "v1".into(),
        ("autoscaling", _) => "autoscaling/v2".into(),
        // ReferenceGrant is served at v1beta1 (Gateway API's standard channel).
        (group, "referencegrants") => format!("{group}/v1beta1"),
        ("argoproj.io", _) => "argoproj.io/v1alpha1".into(),
        ("helm.toolkit.fluxcd.io", _) => "helm.toolkit.fluxcd.io/v2".into(),
        ("keda.sh", _) => "keda.sh/v1alpha1".into(),
        (group, _) => format!("{group}/v1"),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

/// kube-apiserver's answer to a patch whose `metadata.resourceVersion` precondition no
/// longer holds (`what`: `deployments "web"`): 409 Conflict; `None` when it holds or the
/// patch has none.
fn conflict(current: &Value, patch: &Value, what: &str) -> Option<(u16, Value)> {
    let expected = patch["metadata"]["resourceVersion"].as_str()?;
    (current["metadata"]["resourceVersion"].as_str() != Some(expected)).then(|| {
        (
            409,
            status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {what}: the object has been modified; please apply your changes to the latest version and try again"
                ),
            ),
        )
    })
}

fn not_found(resource: &str, name: &str) -> (u16, Value) {
    (
        404,
        status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
    )
}

/// RFC 7386: objects merge key by key, null removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A subset of label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, joined by commas.
fn selects(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .all(|term| {
            let term = term.trim();
            let label = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                label(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                label(k) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k).is_none()
            } else {
                label(term).is_some()
            }
        })
}

/// The fake API server: a store and the hooks, shared by every client made from it.
#[derive(Clone, Default)]
pub struct FakeApi {
    store: Arc<Mutex<Store>>,
    hooks: Arc<Mutex<Vec<Hook>>>,
}

impl FakeApi {
    pub fn new() -> FakeApi {
        FakeApi::default()
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A kube client whose requests this server answers (one per curfew replica).
    pub fn client(&self) -> kube::Client {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(self.clone().serve(handle));
        kube::Client::new(service, "curfew")
    }

    /// Runs `hook` on every request from now on, before it is handled.
    pub fn on(&self, hook: impl FnMut(&Seen, &mut Store) -> Then + Send + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(hook));
    }

    /// Every write from now on passes through this ValidatingAdmissionPolicy, the requests
    /// being made as `username`.
    pub fn admit_with(&self, mut policy: Policy, username: &str) {
        policy.username = username.to_string();
        self.store().policy = Some(policy);
    }

    pub fn put(&self, object: Value) {
        self.store().put(object);
    }

    /// Moves the cluster's clock.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.store().now = now;
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Seen> {
        self.store().log.clone()
    }

    /// Write requests so far (patch, create, update, delete).
    pub fn writes(&self) -> Vec<Seen> {
        self.log().into_iter().filter(Seen::is_write).collect()
    }

    pub fn forget_log(&self) {
        self.store().log.clear();
    }

    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Value {
        self.store()
            .get(resource, namespace, name)
            .cloned()
            .unwrap_or_else(|| panic!("no {resource} {namespace}/{name}"))
    }

    /// Names of a resource's objects in a namespace.
    pub fn names(&self, resource: &str, namespace: &str) -> Vec<String> {
        self.store()
            .all(resource, namespace)
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn replicas(&self, resource: &str, namespace: &str, name: &str) -> i64 {
        self.object(resource, namespace, name)["spec"]["replicas"]
            .as_i64()
            .unwrap_or(1)
    }

    pub fn suspended(&self, namespace: &str, name: &str) -> bool {
        self.object("cronjobs", namespace, name)["spec"]["suspend"]
            .as_bool()
            .unwrap_or(false)
    }

    pub fn annotation(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Option<String> {
        self.object(resource, namespace, name)["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    }

    /// Events posted so far, in the order they were created.
    pub fn events(&self) -> Vec<Value> {
        let mut events = self.store().all("events", "");
        events.sort_by_key(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
        });
        events
    }

    /// The kubelet reports every pod of a Deployment or StatefulSet ready.
    pub fn pods_ready(&self, resource: &str, namespace: &str, name: &str) {
        let mut store = self.store();
        let version = store.version();
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let object = store.objects.get_mut(&key).unwrap();
        object["status"]["readyReplicas"] = object["spec"]["replicas"].clone();
        object["metadata"]["resourceVersion"] = json!(version);
    }

    /// Installs the Gateway API's CRDs: HTTPRoutes and ReferenceGrants are served.
    pub fn install_gateway_api(&self) {
        self.store().gateway_api = true;
    }

    /// An object an Argo CD Application deploys from git: put in the cluster, and its
    /// manifest kept as what the Application's self-heal puts back.
    pub fn put_from_git(&self, object: Value) {
        let mut store = self.store();
        store.git.insert(key_of(&object), object.clone());
        store.put(object);
    }

    /// A person scales a workload (`kubectl scale`).
    pub fn scale(&self, resource: &str, namespace: &str, name: &str, replicas: i64) {
        self.store().edit(resource, namespace, name, |o| {
            o["spec"]["replicas"] = json!(replicas);
        });
    }

    /// A server-side apply of `config` by `manager` (a GitOps tool, `kubectl apply
    /// --server-side`), forced or not: the API server's answer (409 on a conflict).
    pub fn apply(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        manager: &str,
        force: bool,
        config: &Value,
    ) -> Result<(), String> {
        let mut store = self.store();
        let time = store.stamp();
        let version = store.version();
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let object = store.objects.get_mut(&key).ok_or("not found")?;
        fields::apply(object, manager, force, config, &time)?;
        object["metadata"]["resourceVersion"] = json!(version);
        controllers::settle(&mut store, &key);
        Ok(())
    }

    /// The HPA controller's pass (see [`controllers::hpa_sync`]).
    pub fn hpa_sync(&self) {
        controllers::hpa_sync(&mut self.store());
    }

    /// The CronJob controller's pass at the cluster's `now` (see
    /// [`controllers::cron_sync`]): the Jobs it started.
    pub fn cron_sync(&self) -> Vec<String> {
        controllers::cron_sync(&mut self.store())
    }

    async fn serve(self, mut handle: Handle) {
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let accept = parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let seen = Seen::parse(parts.method, &parts.uri, &accept, &content_type, &bytes);
            let then = self.hooks_on(&seen);
            let (code, answer) = match then {
                Then::Fail(code, message) => (code, status(code, "Injected", message)),
                Then::Wait(d) => {
                    tokio::time::sleep(d).await;
                    match seen.deadline() {
                        // kube-apiserver holds a request to its `timeout` parameter
                        // (staging/src/k8s.io/apiserver/pkg/endpoints/filters/request_deadline.go,
                        // WithRequestDeadline): one that waited past it is answered 504 and
                        // its write is not made.
                        Some(deadline) if d > deadline => (
                            504,
                            status(
                                504,
                                "Timeout",
                                "Timeout: request did not complete within the allotted timeout",
                            ),
                        ),
                        _ => self.handle(&seen),
                    }
                }
                Then::Slow(d) => {
                    let answer = self.handle(&seen);
                    tokio::time::sleep(d).await;
                    answer
                }
                Then::Proceed => self.handle(&seen),
            };
            // A watch's answer is its events, one JSON object a line.
            let body = match (seen.is_watch() && code == 200, &answer) {
                (true, Value::Array(events)) => events
                    .iter()
                    .map(|e| format!("{e}\n"))
                    .collect::<String>()
                    .into_bytes(),
                _ => serde_json::to_vec(&answer).unwrap(),
            };
            let response = Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap();
            respond.send_response(response);
        }
    }

    fn hooks_on(&self, seen: &Seen) -> Then {
        let mut store = self.store();
        store.log.push(seen.clone());
        let mut hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
        for hook in hooks.iter_mut() {
            match hook(seen, &mut store) {
                Then::Proceed => {}
                other => return other,
            }
        }
        Then::Proceed
    }

    fn handle(&self, seen: &Seen) -> (u16, Value) {
        let mut store = self.store();
        let namespace = seen.namespace.clone().unwrap_or_default();
        // A group no CRD installed is not served: kube-apiserver answers 404 with a bare
        // Status for any path under it.
        if (seen.group == "gateway.networking.k8s.io" && !store.gateway_api)
            || store.not_installed.contains(&seen.resource)
        {
            return (
                404,
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
        // The fake carries out JSON merge patches (RFC 7386) only, which is what curfew
        // sends: kube-apiserver reads a patch by its Content-Type (json-patch,
        // merge-patch, strategic-merge-patch, apply-patch) and answers 415 to any other
        // (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go, PatchResource).
        if seen.method == Method::PATCH && seen.content_type != "application/merge-patch+json" {
            return (
                415,
                status(
                    415,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (the fake: merge-patch only; got {:?})",
                        seen.content_type
                    ),
                ),
            );
        }
        if let Some(resource) = seen.resource.strip_suffix("/scale") {
            return scale(&mut store, seen, resource);
        }
        match (seen.verb(), seen.name.as_deref()) {
            ("list", _) => list(&store, seen),
            ("watch", None) => watch(&store, seen),
            ("get", Some(name)) => match store.get(&seen.resource, &namespace, name) {
                Some(o) => (200, o.clone()),
                None => not_found(&seen.resource, name),
            },
            ("patch", Some(name)) => patch(&mut store, seen, name),
            ("create", None) => create(&mut store, seen),
            ("update", Some(name)) => update(&mut store, seen, name),
            ("delete", Some(name)) => delete(&mut store, seen, name),
            _ => (
                405,
                status(405, "MethodNotAllowed", "not served by the fake"),
            ),
        }
    }
}

/// The admission chain's last step: the ValidatingAdmissionPolicy, if one is installed.
fn admit(store: &Store, seen: &Seen, object: &Value, old: &Value) -> Result<(), (u16, Value)> {
    let Some(policy) = &store.policy else {
        return Ok(());
    };
    let namespace_object = seen
        .namespace
        .as_deref()
        .and_then(|ns| store.get("namespaces", "", ns))
        .cloned()
        .unwrap_or(Value::Null);
    policy
        .admit(seen, object, old, &namespace_object)
        .map_err(|message| {
            // admission.NewForbidden: `deployments.apps "web" is forbidden: …`; the code is
            // the validation's reason (Forbidden: 403).
            let group = match seen.group.as_str() {
                "" => String::new(),
                g => format!(".{g}"),
            };
            let name = seen
                .name
                .clone()
                .or_else(|| object["metadata"]["name"].as_str().map(str::to_string))
                .unwrap_or_default();
            let message = format!(
                "{}{group} \"{name}\" is forbidden: {message}",
                seen.resource
            );
            (403, status(403, "Forbidden", &message))
        })
}

/// The scale subresource of a custom resource (`/scale`), as kube-apiserver serves it for
/// a CRD with `subresources.scale` (apiextensions-apiserver, pkg/registry/customresource,
/// ScaleREST): an `autoscaling/v1` Scale whose `spec.replicas` is the object's
/// `specReplicasPath` (`.spec.replicas` here, as Argo Rollouts declares it) and whose
/// resourceVersion is the object's; a patch of it is a patch of the Scale (its
/// resourceVersion a precondition, only `spec.replicas` kept), written to the object.
fn scale(store: &mut Store, seen: &Seen, resource: &str) -> (u16, Value) {
    let namespace = seen.namespace.clone().unwrap_or_default();
    let name = seen.name.clone().unwrap_or_default();
    let Some(current) = store.get(resource, &namespace, &name).cloned() else {
        return not_found(resource, &name);
    };
    let as_scale = |object: &Value| {
        json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {
                "name": name, "namespace": namespace,
                "resourceVersion": object["metadata"]["resourceVersion"],
                "uid": object["metadata"]["uid"],
            },
            "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
            "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0)},
        })
    };
    match seen.verb() {
        "get" => (200, as_scale(&current)),
        "patch" => {
            let mut scale = as_scale(&current);
            let patch = seen.body.clone().unwrap_or_default();
            if let Some(stale) = conflict(&current, &patch, &format!("{resource}.scale \"{name}\""))
            {
                return stale;
            }
            merge(&mut scale, &patch);
            let Some(replicas) = scale["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
                return (
                    422,
                    status(
                        422,
                        "Invalid",
                        "spec.replicas: Invalid value: must be greater than or equal to 0",
                    ),
                );
            };
            // A write to a subresource goes through admission as any write does, matched
            // by rules naming `resource/subresource`, with the request's `subResource` set
            // and the subresource's own object (this Scale, old and new) as `object` and
            // `oldObject`: not the Rollout (Kubernetes docs, Dynamic Admission Control,
            // "Matching requests: rules" and the AdmissionReview request's `subResource`,
            // https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/;
            // kubernetes/kubernetes#84530: the underlying resource's chain is not called).
            if let Err(denied) = admit(store, seen, &scale, &as_scale(&current)) {
                return denied;
            }
            let version = store.version();
            let key = (resource.to_string(), namespace.clone(), name.clone());
            let Some(object) = store.objects.get_mut(&key) else {
                return not_found(resource, &name);
            };
            object["spec"]["replicas"] = json!(replicas);
            object["metadata"]["resourceVersion"] = json!(version);
            controllers::settle(store, &key);
            (200, as_scale(&store.objects[&key]))
        }
        _ => (
            405,
            status(405, "MethodNotAllowed", "not served by the fake"),
        ),
    }
}

fn patch(store: &mut Store, seen: &Seen, name: &str) -> (u16, Value) {
    let patch = seen.body.clone().unwrap_or_default();
    let namespace = seen.namespace.clone().unwrap_or_default();
    let Some(current) = store.get(&seen.resource, &namespace, name).cloned() else {
        return not_found(&seen.resource, name);
    };
    if let Some(stale) = conflict(&current, &patch, &format!("{} \"{name}\"", seen.resource)) {
        return stale;
    }
    let mut object = current.clone();
    merge(&mut object, &patch);
    // The field manager named in the request (or, as kube-apiserver does without one, the
    // client's user agent) owns what the patch changed.
    let manager = seen
        .query
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| "curfew".into());
    fields::updated(&mut object, &current, &patch, &manager, &store.stamp());
    if let Err(errors) = validation::object(&seen.resource, &namespace, &object) {
        return invalid(&object, name, &errors);
    }
    if let Err(denied) = admit(store, seen, &object, &current) {
        return denied;
    }
    object["metadata"]["resourceVersion"] = json!(store.version());
    let key = key_of(&object);
    store.objects.insert(key.clone(), object);
    controllers::settle(store, &key);
    (200, store.objects[&key].clone())
}

fn create(store: &mut Store, seen: &Seen) -> (u16, Value) {
    let namespace = seen.namespace.clone().unwrap_or_default();
    let mut object = seen.body.clone().unwrap_or_default();
    if object["metadata"]["name"].is_null() {
        store.next_name += 1;
        let prefix = object["metadata"]["generateName"]
            .as_str()
            .unwrap_or("x-")
            .to_string();
        object["metadata"]["name"] = json!(format!("{prefix}{:05}", store.next_name));
    }
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    if store.get(&seen.resource, &namespace, &name).is_some() {
        return (
            409,
            status(
                409,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", seen.resource),
            ),
        );
    }
    object["metadata"]["namespace"] = json!(namespace);
    object["apiVersion"] = json!(api_version(&seen.group, &seen.resource));
    object["kind"] = json!(kind_of(&seen.resource));
    if let Err(errors) = validation::object(&seen.resource, &namespace, &object) {
        return invalid(&object, &name, &errors);
    }
    if let Err(denied) = admit(store, seen, &object, &Value::Null) {
        return denied;
    }
    store.put(object);
    (
        201,
        store
            .get(&seen.resource, &namespace, &name)
            .cloned()
            .unwrap(),
    )
}

/// 422 Invalid, as kube-apiserver words it: `Kind.group "name" is invalid: errors`.
fn invalid(object: &Value, name: &str, errors: &[String]) -> (u16, Value) {
    let kind = object["kind"].as_str().unwrap_or_default();
    let group = object["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map(|(g, _)| format!(".{g}"))
        .unwrap_or_default();
    let message = format!("{kind}{group} \"{name}\" is invalid: {}", errors.join(", "));
    (422, status(422, "Invalid", &message))
}

fn update(store: &mut Store, seen: &Seen, name: &str) -> (u16, Value) {
    let namespace = seen.namespace.clone().unwrap_or_default();
    let object = seen.body.clone().unwrap_or_default();
    let Some(current) = store.get(&seen.resource, &namespace, name) else {
        return not_found(&seen.resource, name);
    };
    if object["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
        return (409, status(409, "Conflict", "the object has been modified"));
    }
    store.put(object);
    (
        200,
        store
            .get(&seen.resource, &namespace, name)
            .cloned()
            .unwrap(),
    )
}

fn delete(store: &mut Store, seen: &Seen, name: &str) -> (u16, Value) {
    let namespace = seen.namespace.clone().unwrap_or_default();
    let Some(current) = store.get(&seen.resource, &namespace, name).cloned() else {
        return not_found(&seen.resource, name);
    };
    let body = seen.body.clone().unwrap_or_default();
    // staging/src/k8s.io/apiserver/pkg/storage/interfaces.go, Preconditions.Check: a
    // precondition that does not hold is a 409 Conflict, and nothing is deleted.
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(expected) = body["preconditions"][field].as_str()
            && current["metadata"][field].as_str() != Some(expected)
        {
            let message = format!(
                "Precondition failed: {label} in precondition: {expected}, {label} in object meta: {}",
                current["metadata"][field].as_str().unwrap_or_default()
            );
            return (409, status(409, "Conflict", &message));
        }
    }
    if let Err(denied) = admit(store, seen, &Value::Null, &current) {
        return denied;
    }
    // Without finalizers an object goes at once; a namespace waits for its content.
    if seen.resource != "namespaces" {
        store.remove(&seen.resource, &namespace, name);
        return (200, status(200, "Success", "deleted"));
    }
    let at = store.stamp();
    store.edit(&seen.resource, &namespace, name, |o| {
        o["metadata"]["deletionTimestamp"] = json!(at);
        o["status"]["phase"] = json!("Terminating");
        // staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go,
        // deletionFinalizersForGarbageCollection: Foreground adds this finalizer, which
        // the garbage collector removes once the dependents are gone.
        if body["propagationPolicy"] == "Foreground" {
            o["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        }
    });
    (
        200,
        store
            .get(&seen.resource, &namespace, name)
            .cloned()
            .unwrap(),
    )
}

/// A watch from `resourceVersion`, as kube-apiserver serves it (the API concepts page,
/// <https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>
/// and #watch-bookmarks): every change of the resource's objects (those the label selector
/// chooses) after that version, in order, a removed object as DELETED; with
/// `allowWatchBookmarks=true`, then a BOOKMARK carrying the version the server has
/// reached; from a version etcd has compacted, nothing but an ERROR event with a 410
/// status ("too old resource version", which the client answers with a fresh list). The
/// fake answers at once and ends the watch there, as a server does when a watch's
/// `timeoutSeconds` are up: the client watches again from its last version. It sends
/// changes as MODIFIED, creations included (curfew treats ADDED and MODIFIED alike), and
/// does not model an object leaving the label selector.
fn watch(store: &Store, seen: &Seen) -> (u16, Value) {
    let namespace = seen.namespace.clone().unwrap_or_default();
    let from: u64 = seen
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if from < store.compacted {
        let gone = status(
            410,
            "Expired",
            &format!("too old resource version: {from} ({})", store.compacted),
        );
        return (200, json!([{"type": "ERROR", "object": gone}]));
    }
    let chosen = |o: &Value| {
        seen.query
            .get("labelSelector")
            .is_none_or(|s| selects(s, &o["metadata"]["labels"]))
    };
    let version = |o: &Value| -> u64 {
        o["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let shown = |o: Value| match seen.metadata_only {
        true => {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]})
        }
        false => o,
    };
    let mut events: Vec<(u64, Value)> = store
        .all(&seen.resource, &namespace)
        .into_iter()
        .filter(|o| chosen(o) && version(o) > from)
        .map(|o| (version(&o), json!({"type": "MODIFIED", "object": shown(o)})))
        .collect();
    events.extend(
        store
            .deleted
            .iter()
            .filter(|(at, o)| {
                let (resource, ns, _) = key_of(o);
                *at > from
                    && resource == seen.resource
                    && (namespace.is_empty() || ns == namespace)
                    && chosen(o)
            })
            .map(|(at, o)| (*at, json!({"type": "DELETED", "object": shown(o.clone())}))),
    );
    events.sort_by_key(|(at, _)| *at);
    let mut events: Vec<Value> = events.into_iter().map(|(_, e)| e).collect();
    if seen
        .query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true")
    {
        events.push(json!({
            "type": "BOOKMARK",
            "object": {
                "apiVersion": api_version(&seen.group, &seen.resource),
                "kind": kind_of(&seen.resource),
                "metadata": {"resourceVersion": store.next_version.to_string()},
            },
        }));
    }
    (200, Value::Array(events))
}

fn list(store: &Store, seen: &Seen) -> (u16, Value) {
    let namespace = seen.namespace.clone().unwrap_or_default();
    let mut items: Vec<Value> = store
        .all(&seen.resource, &namespace)
        .into_iter()
        .filter(|o| {
            seen.query
                .get("labelSelector")
                .is_none_or(|s| selects(s, &o["metadata"]["labels"]))
        })
        .filter(|o| {
            seen.query.get("fieldSelector").is_none_or(|f| {
                let name = f
                    .strip_prefix("metadata.name=")
                    .expect("only metadata.name= field selectors");
                o["metadata"]["name"].as_str() == Some(name)
            })
        })
        .collect();
    // Paging as ListOptions documents it (the API reference's `limit` and `continue`): at
    // most `limit` objects, and a `continue` token while more remain, good only for the
    // list it came from ("clients may only use the continue value from a previous query
    // result with identical query parameters … the server may reject a continue value it
    // does not recognize"): this server rejects one used for another resource or
    // namespace (400). A token is the offset, the resourceVersion the list was taken at,
    // and the list's resource and namespace; once etcd has compacted that version the
    // token is refused (410 Expired: staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go,
    // compactedContinue).
    let scope = format!("{}/{namespace}", seen.resource);
    let (start, at) = match seen.query.get("continue") {
        Some(token) => {
            let mut parts = token.splitn(3, ':');
            let (offset, version) = (parts.next().unwrap(), parts.next().unwrap_or("0"));
            if parts.next() != Some(scope.as_str()) {
                return (
                    400,
                    status(400, "BadRequest", "invalid continue token for this list"),
                );
            }
            let version: u64 = version.parse().unwrap();
            if version < store.compacted {
                return (
                    410,
                    status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ),
                );
            }
            (offset.parse::<usize>().unwrap(), version)
        }
        None => (0, store.next_version),
    };
    let limit: Option<usize> = seen.query.get("limit").map(|l| l.parse().unwrap());
    let mut next = None;
    if let Some(limit) = limit {
        if items.len() > start + limit {
            next = Some(format!("{}:{at}:{scope}", start + limit));
        }
        items = items.into_iter().skip(start).take(limit).collect();
    }
    let kind = kind_of(&seen.resource);
    if seen.metadata_only {
        items = items
            .into_iter()
            .map(|o| json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]}))
            .collect();
    }
    (
        200,
        json!({
            "apiVersion": if seen.metadata_only { "meta.k8s.io/v1".to_string() } else { api_version(&seen.group, &seen.resource) },
            "kind": if seen.metadata_only { "PartialObjectMetadataList".to_string() } else { format!("{kind}List") },
            "metadata": {"resourceVersion": at.to_string(), "continue": next},
            "items": items,
        }),
    )
}

// Fixtures: objects as the API server would hold them.

/// A preview namespace (label `curfew.dev/preview=true`), created 2026-11-01.
pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": name, "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-11-01T00:00:00Z",
            "labels": {"curfew.dev/preview": "true", "kubernetes.io/metadata.name": name},
        },
        "status": {"phase": "Active"},
    })
}

pub fn pod_template(cpu: &str, memory: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{
            "name": "app", "image": "example/app:1",
            "resources": {"requests": {"cpu": cpu, "memory": memory}},
        }]},
    })
}

/// A Deployment asking for `replicas` pods of 250m CPU and 512Mi each.
pub fn deployment(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "x"}},
            "template": pod_template("250m", "512Mi"),
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    })
}

/// A StatefulSet asking for `replicas` pods of 1 CPU and 2Gi each, with a volume claim
/// template `data` (its claims are retained when it scales down, the default).
pub fn stateful_set(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas, "serviceName": name,
            "selector": {"matchLabels": {"app": "x"}},
            "template": pod_template("1", "2Gi"),
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    })
}

/// A CronJob every five minutes, suspended or not, last run at 09:55.
pub fn cron_job(namespace: &str, name: &str, suspended: bool) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "*/5 * * * *", "suspend": suspended,
            "jobTemplate": {"spec": {"template": pod_template("100m", "128Mi")}},
        },
        "status": {"lastScheduleTime": "2026-11-26T09:55:00Z"},
    })
}

/// An HPA on a Deployment.
pub fn hpa(namespace: &str, name: &str, target: &str, min: i64, max: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min, "maxReplicas": max,
        },
    })
}

/// A ReplicaSet created at `created` (RFC 3339): a rollout.
pub fn replica_set(namespace: &str, name: &str, created: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"selector": {"matchLabels": {"app": "x"}}},
    })
}

/// A ControllerRevision created at `created`: a StatefulSet rollout.
pub fn controller_revision(namespace: &str, name: &str, created: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "revision": 1,
    })
}

/// An Ingress for `host` (TLS or not): `/` to the Service `web` port 80, `/api` to `api`
/// port `http`.
pub fn ingress(namespace: &str, name: &str, host: &str, tls: bool) -> Value {
    let mut o = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
            ]}}],
        },
    });
    if tls {
        o["spec"]["tls"] = json!([{"hosts": [host], "secretName": format!("{name}-tls")}]);
    }
    o
}

/// An HTTPRoute for `host` on the Gateway `shared/gateway`: one rule split 90/10 between
/// `web` and `web-canary`, one rule redirecting `/old` (no backends).
pub fn http_route(namespace: &str, name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "gateway", "namespace": "shared"}],
            "hostnames": [host],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"name": "web", "port": 80, "weight": 90}, {"name": "web-canary", "port": 80, "weight": 10}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                 "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/"}}}]},
            ],
        },
    })
}

/// An Argo CD Application deploying into `destination`, with automated sync (and
/// self-heal, or not): as the ApplicationSet pull-request generator makes them.
pub fn application(name: &str, destination: &str, self_heal: bool) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "pr-1"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": destination},
            "syncPolicy": {
                "automated": {"prune": true, "selfHeal": self_heal},
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    })
}

/// A Flux Kustomization in `flux-system`, reconciling every ten minutes (not suspended:
/// `suspend` unset, as most are written).
pub fn kustomization(name: &str, target: &str) -> Value {
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "interval": "10m", "path": "./deploy", "prune": true, "targetNamespace": target,
            "sourceRef": {"kind": "GitRepository", "name": "shop"},
        },
    })
}

/// A Flux HelmRelease in `flux-system`, with `suspend: false` written out.
pub fn helm_release(name: &str, target: &str) -> Value {
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "interval": "10m", "suspend": false, "targetNamespace": target,
            "chart": {"spec": {"chart": "shop", "sourceRef": {"kind": "HelmRepository", "name": "shop"}}},
        },
    })
}

/// A KEDA ScaledObject scaling the Deployment `target` (from zero, on a cron trigger).
pub fn scaled_object(namespace: &str, name: &str, target: &str) -> Value {
    json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": target}, "minReplicaCount": 0, "maxReplicaCount": 5,
            "triggers": [{"type": "cron", "metadata": {"timezone": "UTC", "start": "0 8 * * *", "end": "0 19 * * *", "desiredReplicas": "2"}}],
        },
    })
}

/// Sentence-like changes to fixtures.
pub trait Fixture {
    fn labelled(self, key: &str, value: &str) -> Value;
    fn annotated(self, key: &str, value: &str) -> Value;
    /// Controlled by another object (an operator's custom resource, say).
    fn owned_by(self, api_version: &str, kind: &str, name: &str) -> Value;
    /// Deployed by the Argo CD Application `app`, tracked by annotation.
    fn tracked_by(self, app: &str) -> Value;
}

impl Fixture for Value {
    fn labelled(mut self, key: &str, value: &str) -> Value {
        self["metadata"]["labels"][key] = json!(value);
        self
    }

    fn annotated(mut self, key: &str, value: &str) -> Value {
        self["metadata"]["annotations"][key] = json!(value);
        self
    }

    fn owned_by(mut self, api_version: &str, kind: &str, name: &str) -> Value {
        self["metadata"]["ownerReferences"] = json!([{
            "apiVersion": api_version, "kind": kind, "name": name,
            "uid": format!("uid-{name}"), "controller": true, "blockOwnerDeletion": true,
        }]);
        self
    }

    fn tracked_by(self, app: &str) -> Value {
        // util/argo/resource_tracking.go: `APP:GROUP/KIND:NAMESPACE/NAME`.
        let (group, kind) = match self["apiVersion"].as_str().unwrap().split_once('/') {
            Some((group, _)) => (
                group.to_string(),
                self["kind"].as_str().unwrap().to_string(),
            ),
            None => (String::new(), self["kind"].as_str().unwrap().to_string()),
        };
        let id = format!(
            "{app}:{group}/{kind}:{}/{}",
            self["metadata"]["namespace"].as_str().unwrap(),
            self["metadata"]["name"].as_str().unwrap()
        );
        self.annotated("argocd.argoproj.io/tracking-id", &id)
    }
}
