//! The daemon's HTTP port: `/metrics` for Prometheus, `/healthz` and `/readyz` for
//! Kubernetes probes, and room for the admin API (see [`merge_admin`]); its connections
//! and their limits are in [`serve`].
//!
//! Liveness only says the process answers; readiness ([`Health`], kept by the reconcile
//! loop) says curfew is doing its job: a rule file is loaded and a reconcile pass succeeded
//! recently. Readiness reads the injected [`Clock`], so tests move time by hand instead of
//! waiting.

mod serve;

pub(crate) use serve::Throttle;
pub use serve::{HttpLimits, PROBE_RESERVE, Routes, fit_to_file_limit, serve};

use std::sync::Arc;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::reconcile::Health;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The Content-Type of Prometheus' text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Probes {
    metrics: Arc<Metrics>,
    health: Health,
    clock: Arc<dyn Clock>,
}

/// `/metrics`, `/healthz` and `/readyz`. Other paths answer 404, other methods 405.
pub fn router(metrics: Arc<Metrics>, health: Health, clock: Arc<dyn Clock>) -> Router {
    routes(metrics, health, clock).app
}

/// The port's routes: everything ([`router`]), and the health probes alone for the
/// connections past the cap, where anything else answers 503.
pub fn routes(metrics: Arc<Metrics>, health: Health, clock: Arc<dyn Clock>) -> Routes {
    let probes = Probes {
        metrics,
        health,
        clock,
    };
    Routes {
        app: Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(probes.clone()),
        probes: Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .fallback(too_busy)
            .with_state(probes),
    }
}

/// The public port's routes (wake on request, Sablier's API, the signed links): `app` and
/// nothing else, every other path 404 (`/metrics`, `/api/v1/…` are never there); past the
/// connection cap, 503.
pub fn public_routes(app: Router) -> Routes {
    Routes {
        app: app.fallback(not_here),
        probes: Router::new().fallback(too_busy),
    }
}

async fn not_here() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Adds the admin API to the probe router. `admin` carries its own full paths
/// (`/api/v1/...`), its own authentication, and no fallback.
///
/// # Panics
///
/// When `admin` defines a path the probe router already has, or a fallback: both are
/// mistakes in curfew's own wiring, found by its first test.
pub fn merge_admin(router: Router, admin: Router) -> Router {
    router.merge(admin)
}

/// Past the connection cap, only the probes answer.
async fn too_busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONNECTION, "close")],
        "too many connections: only /healthz and /readyz answer now\n",
    )
        .into_response()
}

async fn metrics_text(State(probes): State<Probes>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        probes.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(probes): State<Probes>) -> Response {
    let readiness = probes.health.readiness(probes.clock.now());
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request};
    use chrono::TimeZone;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    use std::time::Duration;

    use chrono::{TimeDelta, Utc};

    use crate::clock::ManualClock;

    const RESYNC: Duration = Duration::from_secs(300);

    /// A daemon's port with its clock and health, as the reconcile loop would see them.
    struct Port {
        router: Router,
        routes: Routes,
        health: Health,
        clock: ManualClock,
    }

    impl Port {
        fn new() -> Port {
            let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 19, 0, 0).unwrap());
            let health = Health::new(RESYNC * 3);
            let metrics = Arc::new(Metrics::new("9.9.9", false));
            let routes = routes(metrics, health.clone(), Arc::new(clock.clone()));
            Port {
                router: routes.app.clone(),
                routes,
                health,
                clock,
            }
        }

        async fn call(&self, method: Method, path: &str) -> (StatusCode, String, String) {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (
                status,
                content_type,
                String::from_utf8(body.to_vec()).unwrap(),
            )
        }

        async fn get(&self, path: &str) -> (StatusCode, String, String) {
            self.call(Method::GET, path).await
        }
    }

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text() {
        let port = Port::new();
        let (status, content_type, body) = port.get("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, METRICS_CONTENT_TYPE);
        assert!(
            body.contains("curfew_build_info{version=\"9.9.9\"} 1"),
            "{body}"
        );
        assert!(body.contains("# TYPE curfew_reconcile_duration_seconds histogram"));
    }

    #[tokio::test]
    async fn healthz_answers_while_the_process_lives() {
        let port = Port::new();
        assert_eq!(port.get("/healthz").await.0, StatusCode::OK);
        assert_eq!(port.get("/healthz").await.2, "ok");
    }

    #[tokio::test]
    async fn readyz_needs_rules_and_a_recent_successful_pass() {
        let port = Port::new();
        // (what happens, expected status, a failing condition the body must name)
        type Step = (&'static str, fn(&Port), StatusCode, Option<&'static str>);
        let steps: &[Step] = &[
            (
                "at start",
                |_| {},
                StatusCode::SERVICE_UNAVAILABLE,
                Some("rule file"),
            ),
            (
                "rules loaded, no pass yet",
                |p| p.health.set_rules_loaded(true),
                StatusCode::SERVICE_UNAVAILABLE,
                Some("no reconcile pass has succeeded yet"),
            ),
            (
                "a pass succeeds",
                |p| p.health.pass_succeeded(p.clock.now()),
                StatusCode::OK,
                None,
            ),
            (
                "exactly at the limit",
                |p| p.clock.advance(TimeDelta::seconds(900)),
                StatusCode::OK,
                None,
            ),
            (
                "one second past it",
                |p| p.clock.advance(TimeDelta::seconds(1)),
                StatusCode::SERVICE_UNAVAILABLE,
                Some("finished 901s ago, more than the allowed 900s"),
            ),
            (
                "the next pass succeeds",
                |p| p.health.pass_succeeded(p.clock.now()),
                StatusCode::OK,
                None,
            ),
            (
                "the clock steps back",
                |p| p.clock.advance(TimeDelta::hours(-1)),
                StatusCode::OK,
                None,
            ),
            (
                "a reload leaves no valid rules",
                |p| p.health.set_rules_loaded(false),
                StatusCode::SERVICE_UNAVAILABLE,
                Some("no valid rule file is loaded"),
            ),
        ];
        for (what, act, want_status, want_failing) in steps {
            act(&port);
            let (status, content_type, body) = port.get("/readyz").await;
            assert_eq!(status, *want_status, "{what}: {body}");
            assert_eq!(content_type, "application/json", "{what}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                json["ready"],
                *want_status == StatusCode::OK,
                "{what}: {body}"
            );
            assert_eq!(json["max_pass_age_seconds"], 900, "{what}");
            let failing = json["failing"].to_string();
            match want_failing {
                Some(text) => assert!(failing.contains(text), "{what}: {body}"),
                None => assert_eq!(failing, "[]", "{what}"),
            }
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let port = Port::new();
        let cases = [
            (Method::GET, "/nope", StatusCode::NOT_FOUND),
            (Method::GET, "/metrics/extra", StatusCode::NOT_FOUND),
            (Method::GET, "/api/v1/snooze", StatusCode::NOT_FOUND),
            (Method::POST, "/metrics", StatusCode::METHOD_NOT_ALLOWED),
            (Method::DELETE, "/readyz", StatusCode::METHOD_NOT_ALLOWED),
            (
                Method::from_bytes(b"BREW").unwrap(),
                "/healthz",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (Method::HEAD, "/healthz", StatusCode::OK),
        ];
        for (method, path, want) in cases {
            assert_eq!(
                port.call(method.clone(), path).await.0,
                want,
                "{method} {path}"
            );
        }
    }

    #[tokio::test]
    async fn an_admin_router_can_be_merged() {
        let port = Port::new();
        let admin = Router::new().route("/api/v1/ping", get(|| async { "pong" }));
        let merged = Port {
            router: merge_admin(port.router, admin),
            ..Port::new()
        };
        assert_eq!(merged.get("/api/v1/ping").await.2, "pong");
        assert_eq!(merged.get("/healthz").await.0, StatusCode::OK);
    }

    /// Sends raw bytes to a live server and returns its status line.
    async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The server may answer and close before reading everything we send.
        let _ = stream.write_all(request).await;
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 4096];
            while !reply.windows(2).any(|w| w == b"\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => reply.extend_from_slice(&buf[..n]),
                }
            }
        });
        read.await.unwrap();
        let reply = String::from_utf8_lossy(&reply).into_owned();
        reply.lines().next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn hostile_requests_get_errors_and_the_server_keeps_serving() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let routes = Port::new().routes;
        let server = tokio::spawn(serve(listener, routes, HttpLimits::default(), async {
            let _ = stopped.await;
        }));

        let huge = format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        );
        let many: String = (0..500).map(|i| format!("X-{i}: y\r\n")).collect();
        let many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        let cases: [(&str, &[u8], &str); 5] = [
            ("huge header", huge.as_bytes(), "HTTP/1.1 431"),
            ("too many headers", many.as_bytes(), "HTTP/1.1 431"),
            (
                "invalid method",
                b"G\x01T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                "HTTP/1.1 400",
            ),
            (
                "unknown method",
                b"PURGE /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                "HTTP/1.1 405",
            ),
            ("garbage", b"\x00\xff\r\n\r\n", "HTTP/1.1 400"),
        ];
        for (what, request, want) in cases {
            let status = raw(addr, request).await;
            assert!(status.starts_with(want), "{what}: {status:?}");
            let alive = raw(
                addr,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert_eq!(alive.await, "HTTP/1.1 200 OK", "after {what}");
        }

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "port closed"
        );
    }

    /// Sends one request on a fresh connection and returns the status line and the body.
    async fn ask(addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        let reply = String::from_utf8_lossy(&reply).into_owned();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        (
            head.lines().next().unwrap_or_default().to_owned(),
            body.to_owned(),
        )
    }

    /// The flood: idle connections up to the cap, over real loopback sockets. The
    /// health probes still answer past it (the kubelet sees the daemon alive), the rest is
    /// 503 until a connection frees its place.
    #[tokio::test]
    async fn past_the_connection_cap_the_health_probes_still_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let port = Port::new();
        port.health.set_rules_loaded(true);
        port.health.pass_succeeded(port.clock.now());
        let limits = HttpLimits {
            max_connections: 3,
            header_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, port.routes, limits, async {
            let _ = stopped.await;
        }));
        // Three idle connections: each holds a place (accepted in order, before the probe
        // below).
        let mut idle = Vec::new();
        for _ in 0..3 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
            idle.push(s);
        }
        let (status, body) = ask(addr, "/healthz").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok"));
        assert_eq!(ask(addr, "/readyz").await.0, "HTTP/1.1 200 OK");
        let (status, body) = ask(addr, "/metrics").await;
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert!(body.contains("too many connections"), "{body}");
        // One idle client goes away: its place is free again (once the server has seen it
        // leave).
        drop(idle.pop());
        let mut tries = 0;
        while ask(addr, "/metrics").await.0 != "HTTP/1.1 200 OK" {
            tries += 1;
            assert!(tries < 500, "the freed place was never reused");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(idle);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
