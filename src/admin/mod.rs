//! The admin API, on the daemon's port under `/api/v1`: the plan, one environment
//! explained, and snooze, wake, delay a delete and protect, for the exceptions of daily
//! life.
//!
//! Every request carries `Authorization: Bearer <token>`. Tokens come from the
//! `CURFEW_ADMIN_TOKEN` variable (or the variable the settings name) and from a file, one
//! per line, each optionally named (`alice:TOKEN`; a bare token is named `admin`); the
//! name is who the ledger says made a change. The API is off when no token is set.
//! Tokens are compared as SHA-256 digests in constant time (no early exit on the first
//! differing byte, and no length leak), and are never logged.
//!
//! Bad input gets a 4xx with a JSON body `{"error": "..."}` naming the problem, and
//! nothing is changed.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::events::{AdminRefused, AuthFailure};
use crate::reconcile::{Daemon, OperatorError};

/// The variable read for a token when the settings name none.
pub const TOKEN_VARIABLE: &str = "CURFEW_ADMIN_TOKEN";

/// The name of a token given without one.
const DEFAULT_NAME: &str = "admin";

/// Shorter tokens are refused: they can be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// The admin tokens, as digests with their names.
#[derive(Clone)]
pub struct AdminTokens {
    tokens: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminTokens")
            .field(
                "names",
                &self
                    .tokens
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Why the admin tokens could not be read: where, never the token itself.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{place}, line {line}: the token of {name} is shorter than {MIN_TOKEN_LEN} characters")]
    TooShort {
        place: String,
        line: usize,
        name: String,
    },
    #[error("{place}, line {line}: a second token named {name}")]
    Twice {
        place: String,
        line: usize,
        name: String,
    },
    #[error("two admin tokens are named {0}")]
    SameName(String),
    #[error("the admin token file cannot be read: {0}")]
    File(#[source] crate::files::ReadError),
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AdminTokens {
    /// Tokens from lines of `text` (blank lines and `#` comments skipped); `source` names
    /// where they came from in errors (never the token itself).
    pub fn parse(text: &str, source: &str) -> Result<AdminTokens, TokenError> {
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, token) = match line.split_once(':') {
                Some((name, token))
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c)) =>
                {
                    (name, token.trim())
                }
                _ => (DEFAULT_NAME, line),
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err(TokenError::TooShort {
                    place: source.to_string(),
                    line: n + 1,
                    name: name.to_string(),
                });
            }
            if tokens.iter().any(|(other, _)| other == name) {
                return Err(TokenError::Twice {
                    place: source.to_string(),
                    line: n + 1,
                    name: name.to_string(),
                });
            }
            tokens.push((name.to_string(), digest(token)));
        }
        Ok(AdminTokens { tokens })
    }

    /// The tokens of the variable (`variable`, else `CURFEW_ADMIN_TOKEN`) and of the file
    /// (a regular file of at most 64 KiB); `None` when neither holds one (the API is off).
    pub async fn load(
        env: &HashMap<String, String>,
        variable: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<AdminTokens>, TokenError> {
        let mut all = AdminTokens { tokens: Vec::new() };
        let variable = variable.unwrap_or(TOKEN_VARIABLE);
        if let Some(text) = env.get(variable).filter(|t| !t.trim().is_empty()) {
            all.extend(Self::parse(text, &format!("the variable {variable}"))?)?;
        }
        if let Some(path) = file {
            let limits = crate::files::Limits::bytes(crate::files::TOKEN_FILE_MAX_BYTES);
            let text = crate::files::read(path, limits, "")
                .await
                .map_err(TokenError::File)?;
            all.extend(Self::parse(
                &text,
                &format!("the admin token file {}", path.display()),
            )?)?;
        }
        Ok((!all.tokens.is_empty()).then_some(all))
    }

    fn extend(&mut self, more: AdminTokens) -> Result<(), TokenError> {
        for (name, d) in more.tokens {
            if self.tokens.iter().any(|(n, _)| *n == name) {
                return Err(TokenError::SameName(name));
            }
            self.tokens.push((name, d));
        }
        Ok(())
    }

    /// The name of the token presented, if it is one of these. Every token is compared,
    /// each in constant time.
    pub fn check(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (name, d) in &self.tokens {
            if bool::from(d.ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Who made the request: the name of the token it carried.
#[derive(Debug, Clone)]
struct Who(String);

/// How often a refused request is logged at most (each one is counted).
const REFUSED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The token check: the tokens, the counter of refusals, and the throttle of their log.
struct Guard {
    tokens: AdminTokens,
    metrics: Arc<crate::metrics::Metrics>,
    log: std::sync::Mutex<crate::server::Throttle>,
}

/// The admin API's routes, behind the token check. Only these routes ask for a token:
/// other paths answer 404 as they do with the API off, and an unknown `/api/v1/…` path
/// answers a JSON 404.
pub fn router(daemon: Arc<Daemon>, tokens: AdminTokens) -> Router {
    let guard = Arc::new(Guard {
        tokens,
        metrics: daemon.metrics.clone(),
        log: std::sync::Mutex::new(crate::server::Throttle::new(REFUSED_LOG_EVERY)),
    });
    Router::new()
        .route("/api/v1/plan", get(plan))
        .route("/api/v1/environments/{id}", get(environment))
        .route(
            "/api/v1/environments/{id}/snooze",
            post(snooze).delete(end_snooze),
        )
        .route("/api/v1/environments/{id}/wake", post(wake))
        .route("/api/v1/environments/{id}/delay-delete", post(delay_delete))
        .route(
            "/api/v1/environments/{id}/protect",
            post(protect).delete(unprotect),
        )
        .method_not_allowed_fallback(method_not_allowed)
        // A layer on the routes only: a layer on the router would also wrap the fallback,
        // and every unknown path of the whole port would answer 401.
        .route_layer(middleware::from_fn_with_state(guard, authorize))
        .merge(unknown_paths("no such path in the admin API"))
        .with_state(daemon)
}

/// With the API off, its paths answer a JSON 404 that says how to turn it on.
pub fn off_router() -> Router {
    unknown_paths(&format!(
        "the admin API is off: set {TOKEN_VARIABLE} (or daemon.admin_token_file) where the daemon runs"
    ))
}

/// `/api/v1` and everything under it that is not a route: a JSON 404 with `message`.
fn unknown_paths<S: Clone + Send + Sync + 'static>(message: &str) -> Router<S> {
    let message: Arc<str> = message.into();
    let answer = move |uri: axum::http::Uri| {
        let message = message.clone();
        async move {
            let path = crate::text::printable(&clip(uri.path(), 200)).into_owned();
            error(StatusCode::NOT_FOUND, &format!("{message}: {path}"))
        }
    };
    Router::new()
        .route("/api/v1", any(answer.clone()))
        .route("/api/v1/{*rest}", any(answer))
}

async fn method_not_allowed(method: axum::http::Method) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{method} is not a method of this path"),
    )
}

/// At most `max` characters of `text`, for a log line or an error.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

async fn authorize(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let name = presented.and_then(|p| guard.tokens.check(p));
    let Some(name) = name else {
        let reason = if presented.is_some() {
            AuthFailure::Refused
        } else {
            AuthFailure::Missing
        };
        refused(&guard, reason, &request);
        return unauthorized(match reason {
            AuthFailure::Missing => "an admin token is required: Authorization: Bearer <token>",
            AuthFailure::Refused => "the admin token was refused",
        });
    };
    request.extensions_mut().insert(Who(name.to_string()));
    next.run(request).await
}

/// Counts a refused request, and logs it (never the token) at most once per
/// [`REFUSED_LOG_EVERY`], with how many were refused meanwhile.
fn refused(guard: &Guard, reason: AuthFailure, request: &Request) {
    let also_refused = guard
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .tick();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.to_string());
    AdminRefused {
        reason,
        method: request.method().as_str(),
        path: &clip(request.uri().path(), 200),
        peer: &peer,
        also_refused,
    }
    .emit(&*guard.metrics);
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"curfew\""),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// 200 with the body, or the operator error's status and message.
fn answer<T: serde::Serialize>(result: Result<T, OperatorError>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

impl IntoResponse for OperatorError {
    fn into_response(self) -> Response {
        let status = match &self {
            OperatorError::NotFound(_) => StatusCode::NOT_FOUND,
            OperatorError::Ambiguous { .. } | OperatorError::Protected(_) => StatusCode::CONFLICT,
            OperatorError::Invalid(_) => StatusCode::BAD_REQUEST,
            OperatorError::Platform(_) => StatusCode::BAD_GATEWAY,
            OperatorError::Ledger(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "admin request failed");
        }
        error(status, &self.to_string())
    }
}

/// The body of a change: `{"for": "4h"}` or `{"until": "2026-11-27T09:00:00Z"}`, and an
/// optional note for the ledger. An empty body is an empty object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Why a change's body was refused (a 400, with this text).
#[derive(Debug, thiserror::Error)]
enum BadChange {
    #[error("the body is not a valid change ({{\"for\"|\"until\", \"note\"}}): {0}")]
    Body(#[source] serde_json::Error),
    #[error("give `for` or `until`, not both")]
    Both,
    #[error("`for`: {0}")]
    For(#[source] crate::schedule::DurationError),
    #[error("`for`: {0} is too long")]
    TooLong(String),
    #[error("`until`: {0}")]
    Until(#[source] crate::schedule::ExpiryError),
    #[error("{what} needs `for` (such as \"{example}\") or `until` (an RFC 3339 instant)")]
    Needs {
        what: &'static str,
        example: &'static str,
    },
}

impl ChangeBody {
    fn parse(body: &Bytes) -> Result<ChangeBody, BadChange> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ChangeBody::default());
        }
        serde_json::from_slice(body).map_err(BadChange::Body)
    }

    /// The instant asked for, if any (`for` counts from `now`).
    fn until(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, BadChange> {
        match (&self.for_, &self.until) {
            (Some(_), Some(_)) => Err(BadChange::Both),
            (Some(d), None) => {
                let secs = crate::schedule::parse_duration(d).map_err(BadChange::For)?;
                let span = i64::try_from(secs)
                    .ok()
                    .and_then(TimeDelta::try_seconds)
                    .ok_or_else(|| BadChange::TooLong(d.clone()))?;
                Ok(Some(now + span))
            }
            (None, Some(u)) => crate::schedule::parse_expiry(u)
                .map(Some)
                .map_err(BadChange::Until),
            (None, None) => Ok(None),
        }
    }
}

async fn plan(State(daemon): State<Arc<Daemon>>) -> Response {
    answer(daemon.plan_now().await)
}

async fn environment(State(daemon): State<Arc<Daemon>>, UrlPath(id): UrlPath<String>) -> Response {
    answer(daemon.environment_report(&id).await)
}

/// A change that lasts until an instant (`for` or `until`, required) and its note; `Err`
/// is a 400. `what` names it in the error (`a snooze`).
fn lasting(
    daemon: &Daemon,
    body: &Bytes,
    what: &'static str,
    example: &'static str,
) -> Result<(DateTime<Utc>, String), BadChange> {
    let change = ChangeBody::parse(body)?;
    match change.until(daemon.clock.now())? {
        Some(until) => Ok((until, change.note.unwrap_or_default())),
        None => Err(BadChange::Needs { what, example }),
    }
}

async fn snooze(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    axum::Extension(Who(who)): axum::Extension<Who>,
    body: Bytes,
) -> Response {
    match lasting(&daemon, &body, "a snooze", "4h") {
        Ok((until, note)) => answer(daemon.snooze(&id, until, &who, &note).await),
        Err(m) => error(StatusCode::BAD_REQUEST, &m.to_string()),
    }
}

async fn delay_delete(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    axum::Extension(Who(who)): axum::Extension<Who>,
    body: Bytes,
) -> Response {
    match lasting(&daemon, &body, "a delay", "2d") {
        Ok((until, note)) => answer(daemon.delay_delete(&id, until, &who, &note).await),
        Err(m) => error(StatusCode::BAD_REQUEST, &m.to_string()),
    }
}

async fn end_snooze(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    axum::Extension(Who(who)): axum::Extension<Who>,
) -> Response {
    answer(daemon.end_snooze(&id, &who).await)
}

async fn wake(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    axum::Extension(Who(who)): axum::Extension<Who>,
    body: Bytes,
) -> Response {
    let change = match ChangeBody::parse(&body) {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m.to_string()),
    };
    let until = match change.until(daemon.clock.now()) {
        Ok(u) => u,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m.to_string()),
    };
    let note = change.note.unwrap_or_default();
    answer(daemon.wake(&id, until, &who, &note).await)
}

async fn protect(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    axum::Extension(Who(who)): axum::Extension<Who>,
    body: Bytes,
) -> Response {
    let change = match ChangeBody::parse(&body) {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m.to_string()),
    };
    if change.for_.is_some() || change.until.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "a protection lasts until it is removed: no `for` or `until` (snooze is for a while)",
        );
    }
    let note = change.note.unwrap_or_default();
    answer(daemon.protect(&id, true, &who, &note).await)
}

async fn unprotect(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    axum::Extension(Who(who)): axum::Extension<Who>,
) -> Response {
    answer(daemon.protect(&id, false, &who, "").await)
}
