//! Sablier's protocol on the public port, so that the reverse-proxy plugins written for
//! Sablier (Traefik, Caddy, nginx proxy-wasm, Envoy, Istio) work with curfew unchanged:
//! `GET /api/strategies/dynamic` (a waiting page) and `GET /api/strategies/blocking` (held
//! until ready, or the timeout), each answering `X-Sablier-Session-Status: ready` or
//! `not-ready`, and RFC 7807 problems for everything refused. The protocol is Sablier's
//! published description (`reference/sablier-api.yaml`, Swagger 2.0; `.ci/run` checks
//! these answers against it with Prism's proxy, `tests/sablier_prism.rs`).
//!
//! Sablier's instances are curfew's environments (id or unique name), its groups are the
//! rules (or, when no rule has that name, the projects). Every environment named goes
//! through the same flight as `/wake/{environment}`: the same refusals, the same cap, one
//! start for any number of requests.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::TimeDelta;
use maud::html;
use serde_json::{Map, Value, json};

use super::{Env, Found, MAX_KEY, RETRY_SECONDS, Refusal, Wakes, frame, problem};
use crate::platform::Environment;

/// The header Sablier's plugins read: `ready` lets the request through to the app.
const STATUS_HEADER: HeaderName = HeaderName::from_static("x-sablier-session-status");
/// The longest query read.
const MAX_QUERY: usize = 8 * 1024;
/// Instances one request may name.
const MAX_NAMES: usize = 32;
/// Environments one group may hold to be woken by one request.
const MAX_GROUP: usize = 64;
/// The blocking strategy's wait when the request names none (Sablier's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait the blocking strategy accepts: a connection held longer is a cost to
/// the port, not a service to the proxy.
const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest `session_duration` accepted; a shorter one is still cut to
/// `daemon.wake_session`, the longest a request may keep an environment up.
const MAX_SESSION: Duration = Duration::from_secs(24 * 3600);
/// The waiting page's reload, at least and at most.
const REFRESH: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));
/// How often a blocked request looks again (the platform's answer is reused for 2 s).
const POLL: Duration = Duration::from_secs(1);
/// The longest `display_name`, in characters.
const MAX_DISPLAY_NAME: usize = 128;
/// Sablier's built-in themes: each is accepted and shown as curfew's waiting page.
pub(super) const THEMES: [&str; 4] = ["hacker-terminal", "ghost", "matrix", "shuffle"];

/// Sablier's endpoints, for the public port's router.
pub(super) fn routes() -> Router<Wakes> {
    Router::new()
        .route("/api/strategies/dynamic", get(dynamic))
        .route("/api/strategies/blocking", get(blocking))
        .route("/api/themes", get(themes))
}

/// What a request names: instances, or a group.
#[derive(Debug, PartialEq)]
enum Target {
    Names(Vec<String>),
    Group(String),
}

/// A request's parameters, read and bounded.
#[derive(Debug)]
struct Asked {
    target: Target,
    session: Option<Duration>,
    timeout: Option<Duration>,
    refresh: Option<Duration>,
    display_name: Option<String>,
    theme: Option<String>,
    show_details: bool,
}

fn bad(detail: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        title: "Bad parameter",
        detail: detail.into(),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Reads the query: `names` (repeated, or comma-separated) or `group`, never both, and the
/// optional settings, each within its bounds.
fn parse(query: Option<&str>) -> Result<Asked, Refusal> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(bad(format!("the query is longer than {MAX_QUERY} bytes")));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| bad("the query is not URL-encoded key=value pairs"))?;
    let mut names = Vec::new();
    let mut group = None;
    let mut asked = Asked {
        target: Target::Group(String::new()),
        session: None,
        timeout: None,
        refresh: None,
        display_name: None,
        theme: None,
        show_details: false,
    };
    for (key, value) in pairs {
        match key.as_str() {
            "names" => {
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if names.len() == MAX_NAMES {
                        return Err(bad(format!("more than {MAX_NAMES} names")));
                    }
                    names.push(name.to_string());
                }
            }
            "group" => group = Some(value.trim().to_string()),
            "session_duration" => {
                asked.session = Some(duration(&key, &value, Duration::from_secs(1), MAX_SESSION)?)
            }
            "timeout" => {
                asked.timeout = Some(duration(&key, &value, Duration::from_secs(1), MAX_TIMEOUT)?)
            }
            "refresh_frequency" => {
                asked.refresh = Some(duration(&key, &value, REFRESH.0, REFRESH.1)?)
            }
            "display_name" => {
                if value.chars().count() > MAX_DISPLAY_NAME {
                    return Err(bad(format!(
                        "display_name is longer than {MAX_DISPLAY_NAME} characters"
                    )));
                }
                asked.display_name = Some(value).filter(|v| !v.trim().is_empty());
            }
            "theme" => asked.theme = Some(value).filter(|v| !v.is_empty()),
            "show_details" => {
                asked.show_details = match value.as_str() {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(bad(format!(
                            "show_details \"{}\" is not true or false",
                            clip(&value)
                        )));
                    }
                }
            }
            // Sablier's other parameters, and any other, are not curfew's business.
            _ => {}
        }
    }
    asked.target = match (names.is_empty(), group) {
        (false, None) => Target::Names(names),
        (true, Some(g)) if !g.is_empty() => Target::Group(g),
        (false, Some(_)) => {
            return Err(bad(
                "'names' and 'group' are both set; set only one of them",
            ));
        }
        _ => return Err(bad("'names' or 'group' must be set")),
    };
    Ok(asked)
}

/// A duration in Go's syntax (`1m30s`, `500ms`, `5m`) within `min..=max`.
fn duration(key: &str, text: &str, min: Duration, max: Duration) -> Result<Duration, Refusal> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        bad(format!(
            "{key} \"{}\" is not a duration such as 1m30s ({e})",
            clip(text)
        ))
    })?;
    if d < min || d > max {
        return Err(bad(format!(
            "{key} {} is out of bounds: between {} and {}",
            clip(text),
            humantime::format_duration(min),
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

impl Wakes {
    /// The environments `target` names, each with the name it is shown by.
    fn members(&self, target: &Target) -> Result<Vec<(String, Env)>, Refusal> {
        let mut seen = HashSet::new();
        let mut members = Vec::new();
        match target {
            Target::Names(names) => {
                for name in names {
                    let env = self.environment(name)?;
                    if seen.insert(env.id.clone()) {
                        members.push((name.chars().take(MAX_KEY).collect(), env));
                    }
                }
            }
            Target::Group(group) => {
                let not_found = || Refusal {
                    status: StatusCode::NOT_FOUND,
                    title: "Group not found",
                    detail: "no rule or project of that name has environments a request may wake"
                        .into(),
                };
                let Some(pass) = self.0.daemon.last_pass() else {
                    return Err(not_found());
                };
                let group = group.as_str();
                let by_rule: HashSet<Arc<str>> = pass
                    .decisions
                    .iter()
                    .filter(|d| d.rule.as_deref() == Some(group))
                    .map(|d| d.environment_id.clone())
                    .collect();
                let in_group = |e: &&Environment| {
                    if by_rule.is_empty() {
                        &*e.project == group
                    } else {
                        by_rule.contains(&e.id)
                    }
                };
                for env in pass.snapshot.environments.iter().filter(in_group) {
                    if members.len() == MAX_GROUP {
                        return Err(bad(format!(
                            "the group has more than {MAX_GROUP} environments; name them instead"
                        )));
                    }
                    let member = Env {
                        id: env.id.clone(),
                        name: env.name.clone(),
                    };
                    members.push((env.name.to_string(), member));
                }
                if members.is_empty() {
                    return Err(not_found());
                }
            }
        }
        Ok(members)
    }

    /// Each member as its flight finds it. A group leaves out the members a request may
    /// not wake (and says nothing of them); named instances are refused as `/wake` is.
    async fn session(
        &self,
        members: &[(String, Env)],
        group: bool,
        may_wake: bool,
        session: TimeDelta,
    ) -> Result<Vec<(String, Found)>, Refusal> {
        let found = futures::future::join_all(
            members
                .iter()
                .map(|(_, env)| self.find(env, may_wake, session)),
        )
        .await;
        let mut kept = Vec::new();
        for ((name, _), f) in members.iter().zip(found) {
            match f {
                Found::Refused(r)
                    if group
                        && matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {}
                Found::Refused(r) => return Err(r),
                f => kept.push((name.clone(), f)),
            }
        }
        if kept.is_empty() {
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                title: "Group not found",
                detail: "no rule or project of that name has environments a request may wake"
                    .into(),
            });
        }
        Ok(kept)
    }

    /// How long a request keeps its environments up: `session_duration`, at most
    /// `daemon.wake_session`.
    fn session_length(&self, asked: Option<Duration>) -> TimeDelta {
        let longest = self.0.options.session;
        asked
            .and_then(|d| TimeDelta::from_std(d).ok())
            .map_or(longest, |d| d.min(longest))
    }
}

fn ready(found: &[(String, Found)]) -> bool {
    found.iter().all(|(_, f)| matches!(f, Found::Ready(_)))
}

fn with_status(mut r: Response, ready: bool) -> Response {
    let status = if ready { "ready" } else { "not-ready" };
    r.headers_mut()
        .insert(STATUS_HEADER, HeaderValue::from_static(status));
    r
}

/// The session as Sablier describes it: each instance by name, with its status.
fn session_body(found: &[(String, Found)]) -> Value {
    let instances: Map<String, Value> = found
        .iter()
        .map(|(name, f)| {
            let status = match f {
                Found::Ready(_) => "ready",
                _ => "not-ready",
            };
            (
                name.clone(),
                json!({ "instance": { "name": name, "status": status } }),
            )
        })
        .collect();
    let status = if ready(found) { "ready" } else { "not-ready" };
    json!({ "session": { "instances": instances, "status": status } })
}

/// `GET /api/strategies/dynamic`: the waiting page (reloaded every `refresh_frequency`),
/// or a short "ready" page once every instance serves; the header says which.
async fn dynamic(
    State(wakes): State<Wakes>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    let asked = match parse(query.as_deref()) {
        Ok(a) => a,
        Err(r) => return problem(&r),
    };
    if let Some(theme) = &asked.theme
        && !THEMES.contains(&theme.as_str())
    {
        return problem(&Refusal {
            status: StatusCode::NOT_FOUND,
            title: "Theme not found",
            detail: format!(
                "no theme \"{}\"; the themes are {}",
                clip(theme),
                THEMES.join(", ")
            ),
        });
    }
    let members = match wakes.members(&asked.target) {
        Ok(m) => m,
        Err(r) => return problem(&r),
    };
    let group = matches!(asked.target, Target::Group(_));
    let session = wakes.session_length(asked.session);
    let found = match wakes
        .session(&members, group, method != Method::HEAD, session)
        .await
    {
        Ok(f) => f,
        Err(r) => return problem(&r),
    };
    let name = asked.display_name.unwrap_or_else(|| match &asked.target {
        Target::Names(_) => found
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        Target::Group(g) => clip(g),
    });
    let refresh = asked
        .refresh
        .map_or(u64::from(RETRY_SECONDS), |d| d.as_secs());
    let is_ready = ready(&found);
    // Details name only the instances the request named itself, never a group's members.
    let details = html! {
        @if asked.show_details && !group {
            ul {
                @for (n, f) in &found {
                    li { (n) ": " @if matches!(f, Found::Ready(_)) { "ready" } @else { "starting" } }
                }
            }
        }
    };
    let page = if is_ready {
        let body = html! { h1 { (name) " is ready" } (details) };
        let mut r = (
            StatusCode::OK,
            frame(&format!("{name} is ready"), body, Some(refresh)),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    } else {
        let estimate = found
            .iter()
            .filter_map(|(_, f)| match f {
                Found::Waking { estimate } => Some(*estimate),
                _ => None,
            })
            .max()
            .unwrap_or_default();
        super::waiting_page_with(&name, estimate, refresh, details)
    };
    with_status(page, is_ready)
}

/// `GET /api/strategies/blocking`: holds the request until every instance serves (200,
/// `ready`), or `timeout` has gone by (504, `not-ready`). It looks again every second,
/// through the flights: the platform is asked at most once per environment every 2 s
/// however many requests wait.
async fn blocking(
    State(wakes): State<Wakes>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    let asked = match parse(query.as_deref()) {
        Ok(a) => a,
        Err(r) => return problem(&r),
    };
    let members = match wakes.members(&asked.target) {
        Ok(m) => m,
        Err(r) => return problem(&r),
    };
    let group = matches!(asked.target, Target::Group(_));
    let session = wakes.session_length(asked.session);
    let timeout = asked.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let found = match wakes
            .session(&members, group, method != Method::HEAD, session)
            .await
        {
            Ok(f) => f,
            Err(r) => return problem(&r),
        };
        if ready(&found) {
            return with_status(
                (StatusCode::OK, axum::Json(session_body(&found))).into_response(),
                true,
            );
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let mut r = problem(&Refusal {
                status: StatusCode::GATEWAY_TIMEOUT,
                title: "Not ready in time",
                detail: format!(
                    "not ready within the timeout ({}); it is still starting, ask again",
                    humantime::format_duration(timeout)
                ),
            });
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_SECONDS));
            return with_status(r, false);
        }
        tokio::time::sleep_until((now + POLL).min(deadline)).await;
    }
}

/// `GET /api/themes`: the theme names the dynamic strategy accepts.
async fn themes() -> Response {
    axum::Json(json!({ "themes": THEMES })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_as_sablier_describes_it_and_bounded() {
        let a = parse(Some("names=a&names=b,c&session_duration=1m30s&timeout=2m")).unwrap();
        assert_eq!(
            a.target,
            Target::Names(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(a.session, Some(Duration::from_secs(90)));
        assert_eq!(a.timeout, Some(Duration::from_secs(120)));
        let g = parse(Some("group=previews&refresh_frequency=500ms")).unwrap_err();
        assert_eq!(g.status, StatusCode::BAD_REQUEST, "{}", g.detail);
        let g = parse(Some(
            "group=previews&refresh_frequency=3s&show_details=false",
        ))
        .unwrap();
        assert_eq!(g.target, Target::Group("previews".into()));
        assert_eq!(g.refresh, Some(Duration::from_secs(3)));
        for wrong in [
            "",
            "names=a&group=b",
            "names=a&session_duration=forever",
            "names=a&session_duration=25h",
            "names=a&timeout=11m",
            "names=a&timeout=0s",
            "names=a&show_details=maybe",
            &format!("names=a&display_name={}", "x".repeat(200)),
            &format!("names={}", vec!["e"; 40].join(",")),
            &"names=a&".repeat(2000),
        ] {
            let r = parse(Some(wrong)).unwrap_err();
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{wrong}: {}", r.detail);
        }
    }
}

#[cfg(test)]
#[path = "sablier_tests.rs"]
mod over_the_sandbox;
