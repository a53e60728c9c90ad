//! The Kubernetes platform's figures over a big fleet, printed (no timed assertions):
//! 10,000 preview namespaces holding 40,000 workloads (in each: Deployments `web` and
//! `api`, StatefulSet `db`, CronJob `report`; their ReplicaSets, ControllerRevision and
//! three pods), served by a bench-only API server in its own process, on loopback, with no
//! added latency. For each way of listing, in a process of its own (so that each peak RSS
//! is its own):
//!
//! - **re-list** (how a pass listed before the watch cache): every pass lists the
//!   namespaces, then each namespace's workloads, ReplicaSets, ControllerRevisions and
//!   pods: list requests per pass, the pass's time, peak RSS;
//! - **watch cache**: the first sync pages through each kind cluster-wide (`limit=500`
//!   and `continue`), then watches; a pass reads the cache. List requests of the first
//!   sync and of a pass, the sync's and a pass's time, peak RSS.
//!
//! Goals (issue 20): first sync about 100 list requests, 0 per pass, a pass ≤ 300 ms, RSS
//! ≤ 80 MB.
//!
//! `cargo bench --bench kubernetes`

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use curfew::clock::ManualClock;
use curfew::platform::Platform;
use curfew::platform::kubernetes::{Alone, Kubernetes, KubernetesOptions};

const NAMESPACES: usize = 10_000;
/// What the bench's process is: the server, or one way of listing.
const ROLE: &str = "CURFEW_BENCH_KUBERNETES";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => server(),
        Ok(way) => {
            // The allocator's settings of `curfew run`, before the runtime's threads start.
            curfew::memory::tune();
            let port: u16 = std::env::var("CURFEW_BENCH_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .expect("CURFEW_BENCH_PORT");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(client(way, port));
        }
        Err(_) => {
            common::print_build();
            println!(
                "fleet: {NAMESPACES} namespaces, {} workloads (2 Deployments, 1 StatefulSet, 1 CronJob each), 3 pods each; bench API server on loopback, no added latency",
                NAMESPACES * 4
            );
            let exe = std::env::current_exe().expect("the bench's own path");
            let mut child = Command::new(&exe)
                .env(ROLE, "server")
                .stdout(Stdio::piped())
                .spawn()
                .expect("server");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("port line");
            let _server = common::Proc(child);
            let port = line.trim().to_string();
            for way in ["relist", "cache"] {
                let status = Command::new(&exe)
                    .env(ROLE, way)
                    .env("CURFEW_BENCH_PORT", &port)
                    .status()
                    .expect("client");
                assert!(status.success(), "{way} failed");
            }
        }
    }
}

// The client side: one way of listing, in its own process.

async fn client(way: &str, port: u16) {
    let url = format!("http://127.0.0.1:{port}");
    let config = kube::Config::new(url.parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let clock = Arc::new(ManualClock::new(
        "2026-11-28T12:00:00Z".parse().expect("instant"),
    ));
    let mut options = KubernetesOptions::new("curfew.dev/preview=true");
    options.events = false;
    options.watch = way == "cache";
    let platform = Kubernetes::new(client, options, clock, Arc::new(Alone), None).expect("adapter");
    let counts = || async { lists(port).await };
    match way {
        "relist" => {
            let before = counts().await;
            let started = Instant::now();
            let snapshot = platform.list().await.expect("a pass");
            let took = started.elapsed();
            let requests = counts().await - before;
            report(
                "re-list (before)",
                &format!(
                    "{requests} list requests per pass, a pass {:.0} ms ({} environments, complete: {})",
                    ms(took),
                    snapshot.environments.len(),
                    snapshot.complete
                ),
            );
        }
        _ => {
            let before = counts().await;
            let started = Instant::now();
            platform.watch();
            platform.synced().await;
            let sync = started.elapsed();
            let synced = counts().await;
            let after_sync = common::status_kb(std::process::id(), "VmRSS:").unwrap_or(0);
            let mut passes = Vec::new();
            let mut environments = 0;
            for _ in 0..5 {
                let started = Instant::now();
                let snapshot = platform.list().await.expect("a pass");
                passes.push(started.elapsed());
                environments = snapshot.environments.len();
            }
            let per_pass = (counts().await - synced) / passes.len() as u64;
            passes.sort();
            report(
                "watch cache (after)",
                &format!(
                    "first sync {} list requests in {:.0} ms (RSS then {:.1} MB); then {per_pass} list requests per pass, a pass {:.0} ms (median of {}; {environments} environments)",
                    synced - before,
                    ms(sync),
                    after_sync as f64 / 1024.0,
                    ms(passes[passes.len() / 2]),
                    passes.len()
                ),
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(way: &str, figures: &str) {
    let rss = common::status_kb(std::process::id(), "VmHWM:").unwrap_or(0);
    println!("{way}: {figures}; peak RSS {:.1} MB", rss as f64 / 1024.0);
}

/// List requests the server has answered so far.
async fn lists(port: u16) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /counts HTTP/1.0\r\nHost: bench\r\n\r\n")
        .await
        .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).await.expect("read");
    text.rsplit("\r\n\r\n")
        .next()
        .and_then(|b| b.trim().parse().ok())
        .expect("a count")
}

// The server side: the fleet, made on the fly from each request's path (nothing stored).

struct Served {
    lists: AtomicU64,
}

fn server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        let state = Arc::new(Served {
            lists: AtomicU64::new(0),
        });
        let app = axum::Router::new().fallback(answer).with_state(state);
        axum::serve(listener, app).await.expect("serve");
    });
}

/// Per namespace, how many objects of a resource.
fn per_namespace(resource: &str) -> usize {
    match resource {
        "namespaces" => 1,
        "deployments" => 2,
        "statefulsets" | "cronjobs" | "controllerrevisions" => 1,
        "replicasets" => 2,
        "pods" => 3,
        _ => 0,
    }
}

const VERSION: u64 = 1000;

async fn answer(State(served): State<Arc<Served>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path == "/counts" {
        return Response::new(Body::from(served.lists.load(Ordering::Relaxed).to_string()));
    }
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => return status(404, "no such path"),
    };
    let (namespace, resource) = match rest {
        ["namespaces"] => (None, "namespaces"),
        ["namespaces", ns, resource] => (Some(index_of(ns)), *resource),
        [resource] => (None, *resource),
        _ => return status(404, "only lists are served"),
    };
    let per = per_namespace(resource);
    if per == 0 {
        return status(404, "no such resource");
    }
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return watch(resource, &query).await;
    }
    served.lists.fetch_add(1, Ordering::Relaxed);
    // Which objects: one namespace's, or all (a namespace by name: its field selector).
    let (from, to) = match (namespace, resource) {
        (Some(Some(n)), _) => (n * per, n * per + per),
        (Some(None), _) => (0, 0),
        (None, "namespaces") => match query
            .get("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="))
        {
            Some(name) => match index_of(name) {
                Some(n) => (n, n + 1),
                None => (0, 0),
            },
            None => (0, NAMESPACES),
        },
        (None, _) => (0, NAMESPACES * per),
    };
    let offset: usize = query
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: Option<usize> = query.get("limit").and_then(|l| l.parse().ok());
    let start = from + offset;
    let end = match limit {
        Some(l) if l > 0 => to.min(start + l),
        _ => to,
    };
    let next = (end < to).then(|| (end - from).to_string());
    let metadata_only = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("PartialObjectMetadataList"));
    let mut body = String::with_capacity((end - start) * 900 + 200);
    let (api_version, kind) = if metadata_only {
        ("meta.k8s.io/v1", "PartialObjectMetadataList".to_string())
    } else {
        (api_version(resource), format!("{}List", kind(resource)))
    };
    body.push_str(&format!(
        r#"{{"apiVersion":"{api_version}","kind":"{kind}","metadata":{{"resourceVersion":"{VERSION}""#
    ));
    if let Some(next) = next {
        body.push_str(&format!(r#","continue":"{next}""#));
    }
    body.push_str(r#"},"items":["#);
    for i in start..end {
        if i > start {
            body.push(',');
        }
        body.push_str(&object(resource, i / per, i % per));
    }
    body.push_str("]}");
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("response")
}

/// A watch: a bookmark at the list's version (nothing changes in this fleet), then the
/// stream stays open until its `timeoutSeconds`.
async fn watch(resource: &str, query: &BTreeMap<String, String>) -> Response {
    let bookmark = format!(
        "{{\"type\":\"BOOKMARK\",\"object\":{{\"apiVersion\":\"{}\",\"kind\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{VERSION}\"}}}}}}\n",
        api_version(resource),
        kind(resource)
    );
    let seconds: u64 = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(300);
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bookmark) }).chain(
        futures::stream::once(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            Ok(String::new())
        }),
    );
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}

use futures::StreamExt;

fn index_of(namespace: &str) -> Option<usize> {
    namespace
        .strip_prefix("pr-")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n < NAMESPACES)
}

fn status(code: u16, message: &str) -> Response {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"{message}","code":{code}}}"#
        )))
        .expect("response")
}

fn api_version(resource: &str) -> &'static str {
    match resource {
        "namespaces" | "pods" => "v1",
        "cronjobs" => "batch/v1",
        _ => "apps/v1",
    }
}

fn kind(resource: &str) -> &'static str {
    match resource {
        "namespaces" => "Namespace",
        "pods" => "Pod",
        "cronjobs" => "CronJob",
        "deployments" => "Deployment",
        "statefulsets" => "StatefulSet",
        "replicasets" => "ReplicaSet",
        _ => "ControllerRevision",
    }
}

const CONTAINER: &str = r#"{"name":"app","image":"registry.example.com/app:1.2.3","resources":{"requests":{"cpu":"100m","memory":"128Mi"}}}"#;

/// Object `i` of a resource in namespace `n`, as the API server would send it.
fn object(resource: &str, n: usize, i: usize) -> String {
    let ns = format!("pr-{n:05}");
    let meta = |name: &str, extra: &str| {
        format!(
            r#""metadata":{{"name":"{name}","namespace":"{ns}","uid":"{ns}-{name}","resourceVersion":"{}","creationTimestamp":"2026-11-01T00:00:00Z","labels":{{"app":"{name}"}}{extra}}}"#,
            100 + n,
        )
    };
    let owner = |kind: &str, name: &str| {
        format!(
            r#","ownerReferences":[{{"apiVersion":"apps/v1","kind":"{kind}","name":"{name}","uid":"{ns}-{name}","controller":true}}]"#
        )
    };
    let template = format!(
        r#""template":{{"metadata":{{"labels":{{"app":"x"}}}},"spec":{{"containers":[{CONTAINER}]}}}}"#
    );
    match resource {
        "namespaces" => format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}","uid":"uid-{ns}","resourceVersion":"{}","creationTimestamp":"2026-11-01T00:00:00Z","labels":{{"curfew.dev/preview":"true","kubernetes.io/metadata.name":"{ns}","app.kubernetes.io/part-of":"project-{}"}}}},"status":{{"phase":"Active"}}}}"#,
            100 + n,
            n % 200
        ),
        "deployments" => {
            let name = ["web", "api"][i];
            format!(
                r#"{{"apiVersion":"apps/v1","kind":"Deployment",{},"spec":{{"replicas":1,"selector":{{"matchLabels":{{"app":"{name}"}}}},{template}}},"status":{{"replicas":1,"readyReplicas":1}}}}"#,
                meta(name, "")
            )
        }
        "statefulsets" => format!(
            r#"{{"apiVersion":"apps/v1","kind":"StatefulSet",{},"spec":{{"replicas":1,"serviceName":"db","selector":{{"matchLabels":{{"app":"db"}}}},{template}}},"status":{{"replicas":1}}}}"#,
            meta("db", "")
        ),
        "cronjobs" => format!(
            r#"{{"apiVersion":"batch/v1","kind":"CronJob",{},"spec":{{"schedule":"0 3 * * *","suspend":false,"jobTemplate":{{"spec":{{{template}}}}}}},"status":{{}}}}"#,
            meta("report", "")
        ),
        "replicasets" => {
            let owner_name = ["web", "api"][i];
            format!(
                r#"{{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata",{}}}"#,
                meta(
                    &format!("{owner_name}-5d8f7"),
                    &owner("Deployment", owner_name)
                )
            )
        }
        "controllerrevisions" => format!(
            r#"{{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata",{}}}"#,
            meta("db-6c9b4", &owner("StatefulSet", "db"))
        ),
        _ => {
            let (name, owner) = match i {
                0 => ("web-5d8f7-abcde", owner("ReplicaSet", "web-5d8f7")),
                1 => ("api-5d8f7-fghij", owner("ReplicaSet", "api-5d8f7")),
                _ => ("db-0", owner("StatefulSet", "db")),
            };
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod",{},"spec":{{"containers":[{CONTAINER}]}},"status":{{"phase":"Running"}}}}"#,
                meta(name, &owner)
            )
        }
    }
}
