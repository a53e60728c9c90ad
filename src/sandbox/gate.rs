//! The gate every request passes before its handler: the token as Qovery checks it
//! (`Authorization: Token <token>`, else 401), the configured latency, then at most one
//! fault drawn from the sandbox's seeded generator. A faulted request never reaches its
//! handler, so it never changes state.

use axum::extract::{MatchedPath, Request, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use super::api::error;
use super::{Inner, Sandbox};

/// A fault drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Error(StatusCode),
    Throttle,
    Timeout,
    Malformed,
}

/// What the gate decided for one request.
enum Admission {
    /// No valid token: 401.
    Refused,
    /// On to the handler.
    Pass,
    /// Answered by a fault instead of the handler.
    Fault(Fault),
}

/// Every request passes here first: the token (401), the latency, then at most one fault.
pub(super) async fn gate(
    Extract(sandbox): Extract<Sandbox>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = match request.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", request.method(), path.as_str()),
        None => format!("{} (unmatched)", request.method()),
    };
    let authorized = sandbox.authorizes(request.headers());
    let fault = match sandbox.admit(endpoint, authorized) {
        Admission::Refused => {
            return error(
                StatusCode::UNAUTHORIZED,
                "Access token is missing or invalid",
            );
        }
        Admission::Pass => None,
        Admission::Fault(fault) => Some(fault),
    };
    let options = &sandbox.shared.options;
    if !options.latency.is_zero() {
        tokio::time::sleep(options.latency).await;
    }
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    match fault {
        Fault::Error(status) => error(status, "sandbox: injected server error"),
        Fault::Throttle => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "sandbox: rate limited");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Fault::Timeout => {
            tokio::time::sleep(options.timeout).await;
            error(StatusCode::GATEWAY_TIMEOUT, "sandbox: upstream timed out")
        }
        Fault::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"results":[{"id":"3f1c"#,
        )
            .into_response(),
    }
}

impl Sandbox {
    /// Whether the request carries `Authorization: Token <the token>`.
    fn authorizes(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Token "))
            .is_some_and(|token| token.trim() == self.shared.options.token)
    }

    /// Counts the request and draws its fault.
    fn admit(&self, endpoint: String, authorized: bool) -> Admission {
        let mut inner = self.lock();
        inner.requests.total += 1;
        if !authorized {
            inner.requests.unauthorized += 1;
            return Admission::Refused;
        }
        *inner.requests.by_endpoint.entry(endpoint).or_default() += 1;
        match inner.draw_fault() {
            Some(fault) => {
                inner.requests.faulted += 1;
                Admission::Fault(fault)
            }
            None => Admission::Pass,
        }
    }
}

impl Inner {
    fn draw_fault(&mut self) -> Option<Fault> {
        let f = self.faults;
        let table = [
            (
                fraction(f.error_rate),
                Fault::Error(StatusCode::SERVICE_UNAVAILABLE),
            ),
            (fraction(f.throttle_rate), Fault::Throttle),
            (fraction(f.timeout_rate), Fault::Timeout),
            (fraction(f.malformed_rate), Fault::Malformed),
        ];
        if table.iter().all(|(r, _)| *r == 0.0) {
            return None;
        }
        let draw: f64 = self.rng.random();
        let mut bound = 0.0;
        let fault = table.into_iter().find_map(|(r, fault)| {
            bound += r;
            (draw < bound).then_some(fault)
        })?;
        // One server error in four is a 500 rather than a 503, as proxies mix them.
        Some(match fault {
            Fault::Error(_) if self.rng.random_bool(0.25) => {
                Fault::Error(StatusCode::INTERNAL_SERVER_ERROR)
            }
            other => other,
        })
    }
}

/// A rate as a probability: clamped to 0..=1, and NaN as 0.
fn fraction(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}
