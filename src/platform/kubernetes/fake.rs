//! A fake Kubernetes API server at the HTTP boundary, for the adapter's tests.
//!
//! The kube client talks to it through tower-test's mock service (as kube-rs/controller-rs
//! tests do); it answers from an in-memory store the way the API server answers the
//! requests curfew makes: lists (label and field selectors, pages, metadata-only), gets,
//! JSON merge patches with the resourceVersion precondition (409 when stale), creates,
//! replaces, and a namespace delete. Every request is logged, so a test can say which
//! writes were sent. Hooks run before a request is handled: a person's change racing
//! curfew's, an error status, time that passes.
//!
//! It also plays the HPA controller's one rule that matters here ([`FakeApi::hpa_sync`]):
//! an HPA whose target is at zero replicas (and whose minReplicas is above zero) leaves it
//! alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

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
}

impl Seen {
    /// The RBAC verb of the request.
    pub fn verb(&self) -> &'static str {
        match (&self.method, self.name.is_some()) {
            (&Method::GET, true) => "get",
            (&Method::GET, false) => "list",
            (&Method::PATCH, _) => "patch",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::DELETE, _) => "delete",
            _ => "other",
        }
    }

    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }

    fn parse(method: Method, uri: &http::Uri, accept: &str, body: &[u8]) -> Seen {
        let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        // /api/v1/... or /apis/GROUP/VERSION/...
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest),
            ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
            _ => panic!("unexpected path {}", uri.path()),
        };
        let (namespace, resource, name) = match rest {
            ["namespaces"] => (None, "namespaces", None),
            ["namespaces", name] => (None, "namespaces", Some(*name)),
            ["namespaces", ns, resource] => (Some(*ns), *resource, None),
            ["namespaces", ns, resource, name] => (Some(*ns), *resource, Some(*name)),
            [resource] => (None, *resource, None),
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
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            query,
            body: serde_json::from_slice(body).ok(),
            metadata_only: accept.contains("as=PartialObjectMetadataList"),
        }
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
    /// Let this much (paused tokio) time pass, then handle it as usual.
    Wait(Duration),
}

type Hook = Box<dyn FnMut(&Seen, &mut Store) -> Then + Send>;

/// The objects, by (resource, namespace or "", name), as JSON.
#[derive(Default)]
pub struct Store {
    pub objects: BTreeMap<(String, String, String), Value>,
    pub log: Vec<Seen>,
    next_version: u64,
    next_name: u64,
}

impl Store {
    fn version(&mut self) -> String {
        self.next_version += 1;
        self.next_version.to_string()
    }

    /// Inserts or replaces an object (its resource from its kind), with a new
    /// resourceVersion.
    pub fn put(&mut self, mut object: Value) {
        let resource = resource_of(object["kind"].as_str().unwrap()).to_string();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        object["metadata"]["resourceVersion"] = json!(self.version());
        self.objects.insert((resource, namespace, name), object);
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(resource.into(), namespace.into(), name.into()))
    }

    /// Changes an object as a person would (`kubectl scale`, `kubectl edit`): a new
    /// resourceVersion.
    pub fn edit(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let version = self.version();
        let object = self
            .objects
            .get_mut(&(resource.into(), namespace.into(), name.into()))
            .unwrap();
        change(object);
        object["metadata"]["resourceVersion"] = json!(version);
    }
}

fn resource_of(kind: &str) -> &'static str {
    match kind {
        "Namespace" => "namespaces",
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "CronJob" => "cronjobs",
        "ReplicaSet" => "replicasets",
        "ControllerRevision" => "controllerrevisions",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "Lease" => "leases",
        "Event" => "events",
        other => panic!("no resource for kind {other}"),
    }
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "namespaces" => "Namespace",
        "deployments" => "Deployment",
        "statefulsets" => "StatefulSet",
        "cronjobs" => "CronJob",
        "replicasets" => "ReplicaSet",
        "controllerrevisions" => "ControllerRevision",
        "horizontalpodautoscalers" => "HorizontalPodAutoscaler",
        "leases" => "Lease",
        "events" => "Event",
        other => panic!("no kind for resource {other}"),
    }
}

fn api_version(group: &str, resource: &str) -> String {
    match (group, resource) {
        ("", _) => "v1".into(),
        ("autoscaling", _) => "autoscaling/v2".into(),
        (group, _) => format!("{group}/v1"),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

/// The workload controllers, at once: as many pods as asked for.
fn settle(object: &mut Value) {
    if let Some(replicas) = object["spec"]["replicas"].as_i64()
        && object.get("status").is_some()
    {
        object["status"]["replicas"] = json!(replicas);
    }
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

    pub fn put(&self, object: Value) {
        self.store().put(object);
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

    /// Events posted so far.
    pub fn events(&self) -> Vec<Value> {
        self.store()
            .objects
            .iter()
            .filter(|((r, _, _), _)| r == "events")
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A person scales a workload (`kubectl scale`).
    pub fn scale(&self, resource: &str, namespace: &str, name: &str, replicas: i64) {
        self.store().edit(resource, namespace, name, |o| {
            o["spec"]["replicas"] = json!(replicas);
            settle(o);
        });
    }

    /// The HPA controller's pass: each HPA keeps its target within [min, max], except a
    /// target at zero replicas, which it leaves alone (Kubernetes' "implicit
    /// maintenance-mode deactivation").
    pub fn hpa_sync(&self) {
        let mut store = self.store();
        let hpas: Vec<Value> = store
            .objects
            .iter()
            .filter(|((r, _, _), _)| r == "horizontalpodautoscalers")
            .map(|(_, v)| v.clone())
            .collect();
        for hpa in hpas {
            let ns = hpa["metadata"]["namespace"].as_str().unwrap().to_string();
            let target = hpa["spec"]["scaleTargetRef"]["name"]
                .as_str()
                .unwrap()
                .to_string();
            let resource = resource_of(hpa["spec"]["scaleTargetRef"]["kind"].as_str().unwrap());
            let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
            let max = hpa["spec"]["maxReplicas"].as_i64().unwrap();
            let Some(object) = store.get(resource, &ns, &target) else {
                continue;
            };
            let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
            if replicas == 0 && min > 0 {
                continue;
            }
            let wanted = replicas.clamp(min, max);
            if wanted != replicas {
                store.edit(resource, &ns, &target, |o| {
                    o["spec"]["replicas"] = json!(wanted);
                    settle(o);
                });
            }
        }
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
            let seen = Seen::parse(parts.method, &parts.uri, &accept, &bytes);
            let then = {
                let mut store = self.store();
                store.log.push(seen.clone());
                let mut hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
                let mut then = Then::Proceed;
                for hook in hooks.iter_mut() {
                    match hook(&seen, &mut store) {
                        Then::Proceed => {}
                        other => {
                            then = other;
                            break;
                        }
                    }
                }
                then
            };
            let (code, answer) = match then {
                Then::Fail(code, message) => (code, status(code, "Injected", message)),
                Then::Wait(d) => {
                    tokio::time::advance(d).await;
                    self.handle(&seen)
                }
                Then::Proceed => self.handle(&seen),
            };
            let response = Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            respond.send_response(response);
        }
    }

    fn handle(&self, seen: &Seen) -> (u16, Value) {
        let mut store = self.store();
        let namespace = seen.namespace.clone().unwrap_or_default();
        let key = |name: &str| (seen.resource.clone(), namespace.clone(), name.to_string());
        match (seen.verb(), seen.name.as_deref()) {
            ("list", _) => (200, self.list(&store, seen)),
            ("get", Some(name)) => match store.objects.get(&key(name)) {
                Some(o) => (200, o.clone()),
                None => (
                    404,
                    status(
                        404,
                        "NotFound",
                        &format!("{} \"{name}\" not found", seen.resource),
                    ),
                ),
            },
            ("patch", Some(name)) => {
                let patch = seen.body.clone().unwrap_or_default();
                let version = store.version();
                let Some(object) = store.objects.get_mut(&key(name)) else {
                    return (
                        404,
                        status(
                            404,
                            "NotFound",
                            &format!("{} \"{name}\" not found", seen.resource),
                        ),
                    );
                };
                if let Some(expected) = patch["metadata"]["resourceVersion"].as_str()
                    && object["metadata"]["resourceVersion"].as_str() != Some(expected)
                {
                    return (
                        409,
                        status(
                            409,
                            "Conflict",
                            &format!(
                                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                                seen.resource
                            ),
                        ),
                    );
                }
                merge(object, &patch);
                object["metadata"]["resourceVersion"] = json!(version);
                settle(object);
                (200, object.clone())
            }
            ("create", None) => {
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
                if store.objects.contains_key(&key(&name)) {
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
                store.put(object);
                (
                    201,
                    store
                        .get(&seen.resource, &namespace, &name)
                        .cloned()
                        .unwrap(),
                )
            }
            ("update", Some(name)) => {
                let object = seen.body.clone().unwrap_or_default();
                let Some(current) = store.get(&seen.resource, &namespace, name) else {
                    return (
                        404,
                        status(
                            404,
                            "NotFound",
                            &format!("{} \"{name}\" not found", seen.resource),
                        ),
                    );
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
            ("delete", Some(name)) => {
                let Some(current) = store.get(&seen.resource, &namespace, name).cloned() else {
                    return (
                        404,
                        status(
                            404,
                            "NotFound",
                            &format!("{} \"{name}\" not found", seen.resource),
                        ),
                    );
                };
                let body = seen.body.clone().unwrap_or_default();
                if let Some(uid) = body["preconditions"]["uid"].as_str()
                    && current["metadata"]["uid"].as_str() != Some(uid)
                {
                    return (
                        409,
                        status(
                            409,
                            "Conflict",
                            "Precondition failed: UID in precondition does not match",
                        ),
                    );
                }
                store.edit(&seen.resource, &namespace, name, |o| {
                    o["metadata"]["deletionTimestamp"] = json!("2026-11-26T12:00:00Z");
                    o["status"]["phase"] = json!("Terminating");
                });
                (
                    200,
                    store
                        .get(&seen.resource, &namespace, name)
                        .cloned()
                        .unwrap(),
                )
            }
            _ => (
                405,
                status(405, "MethodNotAllowed", "not served by the fake"),
            ),
        }
    }

    fn list(&self, store: &Store, seen: &Seen) -> Value {
        let namespace = seen.namespace.clone().unwrap_or_default();
        let mut items: Vec<Value> = store
            .objects
            .iter()
            .filter(|((r, ns, _), _)| {
                *r == seen.resource && (seen.namespace.is_none() || *ns == namespace)
            })
            .map(|(_, o)| o.clone())
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
        let start: usize = seen.query.get("continue").map_or(0, |c| c.parse().unwrap());
        let limit: Option<usize> = seen.query.get("limit").map(|l| l.parse().unwrap());
        let mut next = None;
        if let Some(limit) = limit {
            if items.len() > start + limit {
                next = Some((start + limit).to_string());
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
        json!({
            "apiVersion": if seen.metadata_only { "meta.k8s.io/v1".to_string() } else { api_version(&seen.group, &seen.resource) },
            "kind": if seen.metadata_only { "PartialObjectMetadataList".to_string() } else { format!("{kind}List") },
            "metadata": {"resourceVersion": store.next_version.to_string(), "continue": next},
            "items": items,
        })
    }
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

fn pod_template(cpu: &str, memory: &str) -> Value {
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
        "status": {"replicas": replicas},
    })
}

/// A StatefulSet asking for `replicas` pods of 1 CPU and 2Gi each.
pub fn stateful_set(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas, "serviceName": name,
            "selector": {"matchLabels": {"app": "x"}},
            "template": pod_template("1", "2Gi"),
        },
        "status": {"replicas": replicas},
    })
}

/// A CronJob, suspended or not.
pub fn cron_job(namespace: &str, name: &str, suspended: bool) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "*/5 * * * *", "suspend": suspended,
            "jobTemplate": {"spec": {"template": pod_template("100m", "128Mi")}},
        },
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

/// Sentence-like changes to fixtures.
pub trait Fixture {
    fn labelled(self, key: &str, value: &str) -> Value;
    fn annotated(self, key: &str, value: &str) -> Value;
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
}
