//! Wake on request, the public port's endpoints: `GET /wake/{environment}` shows a waiting
//! page to a browser (or answers `503` + `Retry-After` to an API client) while the
//! environment starts, and sends the reader to the environment's own URL once it serves.
//!
//! It reads the daemon's last pass (to know the environments without calling the platform)
//! and the ledger (how long past wakes took), and acts only through the operator's verbs
//! in `reconcile` (`wake_by_request`, `keep_by_request`, `serving`), as the admin API does.
//! A storm of requests for one environment makes one start: each environment has one
//! flight, and only the first request that finds it not serving asks for the start. The
//! requests answer from the flight's memory (its last look at the platform, at most 2 s
//! old, its estimate, its rendered page) without waiting; one at a time asks the rules,
//! the platform or the ledger when that memory is not enough, while the others answer
//! from the last look.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::json;

use crate::platform::{EnvState, Environment, Serving};
use crate::reconcile::{Daemon, OperatorError};

/// How long the platform's word on whether an environment serves is reused.
const SERVING_FRESH: TimeDelta = TimeDelta::seconds(2);
/// How long a refusal is reused before the rules are asked again.
const REFUSAL_FRESH: TimeDelta = TimeDelta::minutes(1);
/// How long after a start a pass that still lists the environment stopped means the start
/// was lost ([`Wakes::start_lost`]).
const START_LOST_AFTER: TimeDelta = TimeDelta::seconds(30);
/// What the waiting page and `Retry-After` tell the reader to wait before asking again.
const RETRY_SECONDS: u32 = 5;
/// The estimate when the ledger holds no past wake of the environment.
const DEFAULT_ESTIMATE: TimeDelta = TimeDelta::minutes(2);
/// The longest environment key or return path read from a request.
const MAX_KEY: usize = 256;

/// The public port's settings for waking.
#[derive(Debug, Clone)]
pub struct WakeOptions {
    /// How long a request keeps its environment awake after it.
    pub session: TimeDelta,
    /// Wakes by request over all environments in one hour, at most.
    pub max_wakes_per_hour: u32,
    /// How many requests one client may make.
    pub clients: crate::config::public::ClientLimit,
}

#[derive(Clone)]
struct Wakes(Arc<Inner>);

struct Inner {
    daemon: Arc<Daemon>,
    options: WakeOptions,
    flights: Mutex<HashMap<Arc<str>, Arc<FlightCell>>>,
    /// The waiting pages and the API's `503` bodies as last rendered, by what they show.
    pages: Mutex<HashMap<PageKey, Bytes>>,
    /// When the wakes of the last hour were asked for.
    recent: Mutex<VecDeque<DateTime<Utc>>>,
    /// Which environment a request's host names.
    hosts: hosts::Hosts,
}

/// One environment's flight: its state, which every request reads from memory, and the
/// turn of the one request at a time that asks the rules, the platform or the ledger.
#[derive(Default)]
struct FlightCell {
    /// Read and written in short sections, never held across an `.await`.
    state: Mutex<Flight>,
    /// Held by the request that asks (in a task of its own, so that a client leaving
    /// cannot cut its work short); meanwhile the others answer from the last look.
    asking: tokio::sync::Mutex<()>,
}

/// What a rendered answer shows: HTML or JSON, the name, the estimate in seconds.
type PageKey = (bool, Box<str>, i64);
/// Rendered answers kept, at most (they are made again when the cache is emptied).
const MAX_PAGES: usize = 1024;

/// One environment's wake, as the requests for it share it.
#[derive(Default, Clone)]
struct Flight {
    /// When the rules last let a request wake it.
    allowed_at: Option<DateTime<Utc>>,
    woken_at: Option<DateTime<Utc>>,
    served_recorded: bool,
    /// Whether `curfew_wakes_total{result="already_running"}` counted it.
    running_counted: bool,
    kept_until: Option<DateTime<Utc>>,
    refused: Option<(DateTime<Utc>, Refusal)>,
    checked: Option<(DateTime<Utc>, Serving)>,
    /// How long its wake usually takes (from the ledger), read once per flight and again
    /// once its wake is recorded as served.
    estimate: Option<TimeDelta>,
}

/// An environment a request names, as the flights know it.
#[derive(Clone, Debug)]
struct Env {
    id: Arc<str>,
    name: Arc<str>,
}

#[derive(Clone, Debug)]
struct Refusal {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

/// What a request finds.
enum Found {
    Ready(String),
    Waking { estimate: TimeDelta },
    Refused(Refusal),
}

/// The public port's routes: the wake routes, and `links` (the signed links' pages, with
/// the page's assets) when they are on, else the assets alone; every other path 404 (see
/// [`crate::server::public_routes`]). A request whose host (and path) is a sleeping
/// environment's link gets that environment's waiting page whatever its path, but
/// `/robots.txt`, `/assets/…`, `/wake/…` and `/link/…`, which keep their meaning on every
/// host. Every request first counts against its client's rate ([`clients`]).
pub fn public_routes(
    daemon: Arc<Daemon>,
    options: WakeOptions,
    links: Option<Router>,
) -> crate::server::Routes {
    let clients = Arc::new(clients::Clients::new(&options.clients));
    let limited = (clients, daemon.clone());
    let wakes = wakes(daemon, options);
    let wake = routes(wakes.clone());
    let app = match links {
        Some(links) => wake.merge(links),
        None => wake.route(
            "/assets/{name}",
            get(|Path(name): Path<String>| async move { crate::ui::public_asset(&name) }),
        ),
    };
    let mut routes = crate::server::public_routes(app);
    // After the port's fallback, so that any path of a sleeping host goes through it.
    // The client's limit before anything else.
    routes.app = routes
        .app
        .layer(axum::middleware::from_fn_with_state(wakes, by_host))
        .layer(axum::middleware::from_fn_with_state(
            limited,
            clients::limit,
        ));
    routes
}

/// The wake routes: `/wake/{environment}`, Sablier's API (`/api/strategies/…`, see
/// [`sablier`]) and `/robots.txt`.
pub fn router(daemon: Arc<Daemon>, options: WakeOptions) -> Router {
    routes(wakes(daemon, options))
}

fn wakes(daemon: Arc<Daemon>, options: WakeOptions) -> Wakes {
    Wakes(Arc::new(Inner {
        daemon,
        options,
        flights: Mutex::new(HashMap::new()),
        pages: Mutex::new(HashMap::new()),
        recent: Mutex::new(VecDeque::new()),
        hosts: hosts::Hosts::default(),
    }))
}

fn routes(wakes: Wakes) -> Router {
    Router::new()
        .route("/wake/{environment}", get(wake))
        .route("/robots.txt", get(robots))
        .merge(sablier::routes())
        .with_state(wakes)
}

/// A request on a sleeping environment's host: its waiting page (or the API's answer),
/// which returns the reader to the very path and query asked for once it serves. Any other
/// request goes on to the port's routes (unknown hosts: 404 but for curfew's own paths).
async fn by_host(State(wakes): State<Wakes>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // curfew's own paths on any host, and no lookup (nor refresh) for them.
    if path == "/robots.txt"
        || path.starts_with("/assets/")
        || path.starts_with("/wake/")
        || path.starts_with("/link/")
    {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty() && h.len() <= hosts::MAX_HOST);
    let Some(host) = host else {
        return next.run(request).await;
    };
    let Some(found) = wakes.0.hosts.find(&wakes.0.daemon, host, path).await else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        // A form posted to a sleeping app: the reader gets the page, nothing is woken by
        // anything but a plain look.
        return refused(
            &Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Asleep",
                detail: "this environment is asleep; open it in a browser to wake it".into(),
            },
            wants_html(request.headers()),
        );
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let to = return_path_ok(&target).then_some(target);
    let html = wants_html(request.headers());
    let (found_env, name) = match wakes.environment(&found.id) {
        Err(refusal) => (Found::Refused(refusal), String::new()),
        Ok(env) => (
            wakes
                .find(&env, method != Method::HEAD, wakes.0.options.session)
                .await,
            env.name.to_string(),
        ),
    };
    wakes.answer(found_env, html, &name, to.as_deref(), Some(&found.origin))
}

/// Crawlers are asked to stay away (and fetching this wakes nothing).
async fn robots() -> &'static str {
    "User-agent: *\nDisallow: /\n"
}

#[derive(Deserialize)]
struct Asked {
    /// The path to return the reader to on the environment (`/orders/42`).
    #[serde(default)]
    to: Option<String>,
}

async fn wake(
    State(wakes): State<Wakes>,
    method: Method,
    Path(key): Path<String>,
    Query(asked): Query<Asked>,
    headers: HeaderMap,
) -> Response {
    let html = wants_html(&headers);
    let to = asked.to.filter(|p| return_path_ok(p));
    let found = match wakes.environment(&key) {
        Err(refusal) => Found::Refused(refusal),
        // A HEAD (link checkers, bots) looks but wakes nothing.
        Ok(env) => {
            let session = wakes.0.options.session;
            wakes.find(&env, method != Method::HEAD, session).await
        }
    };
    let name = key.chars().take(MAX_KEY).collect::<String>();
    wakes.answer(found, html, &name, to.as_deref(), None)
}

impl Wakes {
    /// The answer to what a request found: `to` is the path to return the reader to;
    /// `origin` is set when the request came on the environment's own host (then the
    /// ready page sends the reader there after a second rather than at once, as the very
    /// same URL may still reach curfew for a moment while the platform's routes change
    /// back).
    fn answer(
        &self,
        found: Found,
        html: bool,
        name: &str,
        to: Option<&str>,
        origin: Option<&str>,
    ) -> Response {
        match (found, html) {
            (Found::Ready(url), true) => {
                let base = origin.unwrap_or(&url);
                let target = format!("{}{}", base.trim_end_matches('/'), to.unwrap_or("/"));
                if origin.is_some() {
                    return ready_page(name, &target);
                }
                (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
            }
            (Found::Ready(url), false) => {
                let url = match origin {
                    Some(origin) => format!("{origin}{}", to.unwrap_or("/")),
                    None => url,
                };
                (
                    StatusCode::OK,
                    axum::Json(json!({ "environment": name, "status": "ready", "url": url })),
                )
                    .into_response()
            }
            (Found::Waking { estimate }, true) => {
                let page = self.rendered((true, name.into(), estimate.num_seconds()), || {
                    waiting_page_body(name, estimate, u64::from(RETRY_SECONDS), html! {})
                });
                no_store(
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        page,
                    )
                        .into_response(),
                )
            }
            (Found::Waking { estimate }, false) => {
                let body = self.rendered((false, name.into(), estimate.num_seconds()), || {
                    json!({
                        "environment": name,
                        "status": "waking",
                        "estimate_seconds": estimate.num_seconds(),
                    })
                    .to_string()
                });
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        ),
                        (header::RETRY_AFTER, HeaderValue::from(RETRY_SECONDS)),
                    ],
                    body,
                )
                    .into_response()
            }
            (Found::Refused(r), html) => refused(&r, html),
        }
    }

    /// The answer `key` names as last rendered, or `render`ed now and kept: the waiting
    /// page of an environment changes only with its estimate.
    fn rendered(&self, key: PageKey, render: impl FnOnce() -> String) -> Bytes {
        if let Some(page) = self
            .0
            .pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return page.clone();
        }
        let page = Bytes::from(render());
        let mut pages = self.0.pages.lock().unwrap_or_else(PoisonError::into_inner);
        if pages.len() >= MAX_PAGES {
            pages.clear();
        }
        pages.insert(key, page.clone());
        page
    }
}

fn refused(r: &Refusal, html: bool) -> Response {
    if html { refused_page(r) } else { problem(r) }
}

impl Wakes {
    /// The environment `key` names (its id, or its unique name) in the daemon's last pass.
    fn environment(&self, key: &str) -> Result<Env, Refusal> {
        let unknown = || Refusal {
            status: StatusCode::NOT_FOUND,
            title: "Unknown environment",
            detail: "no environment of that name can be woken here".into(),
        };
        if key.len() > MAX_KEY {
            return Err(unknown());
        }
        let Some(pass) = self.0.daemon.last_pass() else {
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "curfew is starting",
                detail: "curfew has not listed the environments yet; try again in a moment".into(),
            });
        };
        let envs = &pass.snapshot.environments;
        let env = |e: &Environment| Env {
            id: e.id.clone(),
            name: e.name.clone(),
        };
        if let Some(e) = envs.iter().find(|e| &*e.id == key) {
            return Ok(env(e));
        }
        let mut named = envs.iter().filter(|e| &*e.name == key);
        match (named.next(), named.next()) {
            (Some(e), None) => Ok(env(e)),
            _ => Err(unknown()),
        }
    }

    fn flight(&self, id: &Arc<str>) -> Arc<FlightCell> {
        let mut flights = self
            .0
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        flights.entry(id.clone()).or_default().clone()
    }

    /// Whether `env` serves, waking it (once per flight) when `may_wake`, and keeping it
    /// up `session` after this request.
    ///
    /// Answered from the flight's memory when its last look is fresh and nothing is to be
    /// done (the usual case: no lock held across a wait, no platform, no ledger); else by
    /// the one request whose turn it is to ask, while the others answer from the last look
    /// (or wait for it, when there is none yet).
    async fn find(&self, env: &Env, may_wake: bool, session: TimeDelta) -> Found {
        let cell = self.flight(&env.id);
        let now = self.0.daemon.clock().now();
        if let Some(found) = self.remembered(&cell, env, may_wake, session, now, false) {
            return found;
        }
        // Someone else is asking: their last look will do, if there is one.
        if cell.asking.try_lock().is_err()
            && let Some(found) = self.remembered(&cell, env, may_wake, session, now, true)
        {
            return found;
        }
        // The asking is done in a task of its own: a client that leaves meanwhile (its
        // request dropped) cannot leave a start asked for but not written down.
        let (wakes, env_owned) = (self.clone(), env.clone());
        let asked = tokio::spawn(async move {
            let _turn = cell.asking.lock().await;
            let now = wakes.0.daemon.clock().now();
            // Another request may have done it while this one waited for its turn.
            if let Some(found) = wakes.remembered(&cell, &env_owned, may_wake, session, now, false)
            {
                return found;
            }
            let mut f = cell
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let found = wakes.ask(&env_owned, &mut f, may_wake, session, now).await;
            *cell.state.lock().unwrap_or_else(PoisonError::into_inner) = f;
            found
        });
        asked.await.unwrap_or_else(|e| {
            tracing::warn!(environment = %env.name, error = %e, "a wake by request failed");
            Found::Refused(Refusal {
                status: StatusCode::BAD_GATEWAY,
                title: "Wake failed",
                detail: "curfew could not start the environment; try again in a minute".into(),
            })
        })
    }

    /// The answer the flight's memory gives without asking anything, if it gives one:
    /// its refusal, or its last look when that is fresh (or, with `stale`, whatever its
    /// age, while another request asks again) and nothing is left to do (no start, no
    /// keep, nothing to write).
    fn remembered(
        &self,
        cell: &FlightCell,
        env: &Env,
        may_wake: bool,
        session: TimeDelta,
        now: DateTime<Utc>,
        stale: bool,
    ) -> Option<Found> {
        let f = cell.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, refusal)) = &f.refused {
            let current = f.allowed_at.is_none_or(|a| a <= *at);
            if now - *at < REFUSAL_FRESH || (stale && current) {
                let refusal = refusal.clone();
                drop(f);
                self.count(env, &refusal);
                return Some(Found::Refused(refusal));
            }
        }
        let allowed = f.allowed_at?;
        let (at, serving) = f.checked.as_ref()?;
        if !stale && (now - allowed >= REFUSAL_FRESH || now - *at >= SERVING_FRESH) {
            return None;
        }
        let keep_due = f.woken_at.is_some() && f.kept_until.is_none_or(|k| k - now < session / 2);
        if serving.ready
            && let Some(url) = &serving.url
        {
            let done = match f.woken_at {
                Some(_) => f.served_recorded && !keep_due,
                None => f.running_counted,
            };
            return done.then(|| Found::Ready(url.clone()));
        }
        if (may_wake && f.woken_at.is_none()) || keep_due {
            return None;
        }
        f.estimate.map(|estimate| Found::Waking { estimate })
    }

    /// [`Wakes::find`] when the flight's memory is not enough: asks the rules, the
    /// platform and the ledger what it must, into `f` (the caller's turn).
    async fn ask(
        &self,
        env: &Env,
        f: &mut Flight,
        may_wake: bool,
        session: TimeDelta,
        now: DateTime<Utc>,
    ) -> Found {
        let daemon = &self.0.daemon;
        if let Some((at, refusal)) = &f.refused
            && now - *at < REFUSAL_FRESH
        {
            self.count(env, refusal);
            return Found::Refused(refusal.clone());
        }
        // The first look at an environment the last pass listed stopped: it does not
        // serve, so the start goes out at once, asking the platform nothing else first.
        if may_wake && f.checked.is_none() && f.woken_at.is_none() && self.listed_stopped(&env.id) {
            return self.start_at_once(env, f, session, now).await;
        }
        // Nothing is said of an environment a request may not wake, not even its URL.
        if f.allowed_at.is_none_or(|at| now - at >= REFUSAL_FRESH) {
            if let Err(e) = daemon.may_wake_by_request(&env.id).await {
                let refusal = refusal_of(&e);
                self.count(env, &refusal);
                f.refused = Some((now, refusal.clone()));
                return Found::Refused(refusal);
            }
            f.allowed_at = Some(now);
        }
        let (serving, fresh) = match &f.checked {
            Some((at, s)) if now - *at < SERVING_FRESH => (s.clone(), false),
            _ => {
                let s = daemon.serving(&env.id).await.unwrap_or_else(|e| {
                    tracing::warn!(environment = %env.name, error = %e, "cannot tell whether it serves");
                    Serving::default()
                });
                f.checked = Some((now, s.clone()));
                (s, true)
            }
        };
        let until = now + session;
        if serving.ready
            && let Some(url) = serving.url
        {
            if f.woken_at.is_some() {
                self.keep(env, f, now, session).await;
            } else if !f.running_counted {
                f.running_counted = true;
                self.metric(env, "already_running");
            }
            return Found::Ready(url);
        }
        if fresh && may_wake && f.woken_at.is_some_and(|w| self.start_lost(&env.id, w)) {
            tracing::warn!(environment = %env.name, "the start a request asked for was lost (the platform was busy, still stopping it): starting it again");
            f.woken_at = None;
        }
        if f.woken_at.is_none() && may_wake {
            if let Err(refusal) = self.take_wake(now) {
                self.count(env, &refusal);
                return Found::Refused(refusal);
            }
            match daemon.wake_by_request(&env.id, until).await {
                Ok(_) => {
                    f.woken_at = Some(now);
                    f.kept_until = Some(until);
                    self.metric(env, "started");
                }
                Err(e) => {
                    let refusal = refusal_of(&e);
                    self.count(env, &refusal);
                    f.refused = Some((now, refusal.clone()));
                    return Found::Refused(refusal);
                }
            }
        } else if f.woken_at.is_some() {
            self.keep(env, f, now, session).await;
        }
        let estimate = match f.estimate {
            Some(e) => e,
            None => *f.estimate.insert(self.estimate(&env.id).await),
        };
        Found::Waking { estimate }
    }

    /// The first request's start of an environment listed stopped: the wake's own check
    /// (the same as [`Daemon::may_wake_by_request`]'s) refuses what may not be woken, and
    /// gives back its place under the hourly cap; past the cap, an environment a request
    /// may not wake is still refused as such, not capped.
    async fn start_at_once(
        &self,
        env: &Env,
        f: &mut Flight,
        session: TimeDelta,
        now: DateTime<Utc>,
    ) -> Found {
        let daemon = &self.0.daemon;
        let refuse = |f: &mut Flight, e: &OperatorError| {
            let refusal = refusal_of(e);
            self.count(env, &refusal);
            f.refused = Some((now, refusal.clone()));
            Found::Refused(refusal)
        };
        if let Err(capped) = self.take_wake(now) {
            if let Err(e) = daemon.may_wake_by_request(&env.id).await {
                return refuse(f, &e);
            }
            f.allowed_at = Some(now);
            self.count(env, &capped);
            return Found::Refused(capped);
        }
        let until = now + session;
        match daemon.wake_by_request(&env.id, until).await {
            Ok(_) => {
                f.allowed_at = Some(now);
                f.woken_at = Some(now);
                f.kept_until = Some(until);
                // It was stopped: not serving as of now.
                f.checked = Some((now, Serving::default()));
                self.metric(env, "started");
            }
            Err(e) => {
                if !matches!(e, OperatorError::Platform(_) | OperatorError::Ledger(_)) {
                    self.give_back_wake(now);
                }
                return refuse(f, &e);
            }
        }
        let estimate = *f.estimate.insert(self.estimate(&env.id).await);
        Found::Waking { estimate }
    }

    /// Whether the last pass listed `id` stopped.
    fn listed_stopped(&self, id: &str) -> bool {
        self.0.daemon.last_pass().is_some_and(|pass| {
            pass.snapshot
                .environments
                .iter()
                .any(|e| *e.id == *id && e.state == EnvState::Stopped)
        })
    }

    /// Whether the start of `id` asked for at `woken_at` came to nothing: a pass that
    /// listed the fleet well after it (by [`START_LOST_AFTER`], longer than a listing
    /// takes) still saw it stopped. That happens when the platform turned the start away
    /// as busy (Qovery answers `409` to a start while the environment is still stopping,
    /// which counts as done) and then finished the stop.
    fn start_lost(&self, id: &str, woken_at: DateTime<Utc>) -> bool {
        let Some(pass) = self.0.daemon.last_pass() else {
            return false;
        };
        pass.at > woken_at + START_LOST_AFTER
            && pass
                .snapshot
                .environments
                .iter()
                .any(|e| *e.id == *id && e.state == EnvState::Stopped)
    }

    /// Activity: the environment stays up `session` after this request (the snooze is
    /// moved when half of it has gone by, not on every request). Its first time serving
    /// is written to the ledger for the next estimate.
    async fn keep(&self, env: &Env, f: &mut Flight, now: DateTime<Utc>, session: TimeDelta) {
        let daemon = &self.0.daemon;
        let until = now + session;
        if f.checked.as_ref().is_some_and(|(_, s)| s.ready) && !f.served_recorded {
            f.served_recorded = true;
            // The next wake's estimate counts this one.
            f.estimate = None;
            if let Some(woken) = f.woken_at {
                let took = (now - woken).num_milliseconds() as f64 / 1000.0;
                daemon
                    .metrics
                    .wake_ready(self.rule_of(&env.id).as_deref(), took);
            }
            if let Err(e) = daemon.record_served(&env.id).await {
                tracing::warn!(environment = %env.name, error = %e, "cannot record the wake's end");
            }
        }
        let half = session / 2;
        if f.kept_until.is_none_or(|k| k - now < half) {
            match daemon.keep_by_request(&env.id, until).await {
                Ok(_) => f.kept_until = Some(until),
                Err(e) => {
                    tracing::warn!(environment = %env.name, error = %e, "cannot keep it awake")
                }
            }
        }
    }

    /// The rule that matched `id` in the last pass.
    fn rule_of(&self, id: &str) -> Option<Arc<str>> {
        let pass = self.0.daemon.last_pass()?;
        let decision = pass.decisions.iter().find(|d| &*d.environment_id == id)?;
        decision.rule.clone()
    }

    /// `curfew_wakes_total{rule, result}` for `env`.
    fn metric(&self, env: &Env, result: &'static str) {
        let rule = self.rule_of(&env.id);
        self.0.daemon.metrics.wake(rule.as_deref(), result);
    }

    /// Counts a refused wake: `capped` past the cap, `failed` when the platform failed,
    /// else `refused`.
    fn count(&self, env: &Env, refusal: &Refusal) {
        let result = match refusal.status {
            StatusCode::TOO_MANY_REQUESTS => "capped",
            StatusCode::BAD_GATEWAY => "failed",
            _ => "refused",
        };
        self.metric(env, result);
    }

    /// Counts one wake against `max_wakes_per_hour`, or refuses it.
    fn take_wake(&self, now: DateTime<Utc>) -> Result<(), Refusal> {
        let mut recent = self.0.recent.lock().unwrap_or_else(PoisonError::into_inner);
        while recent
            .front()
            .is_some_and(|t| now - *t >= TimeDelta::hours(1))
        {
            recent.pop_front();
        }
        if recent.len() >= self.0.options.max_wakes_per_hour as usize {
            return Err(Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                title: "Too many wakes",
                detail:
                    "curfew has woken as many environments as it may this hour; try again later"
                        .into(),
            });
        }
        recent.push_back(now);
        Ok(())
    }

    /// Gives back a wake counted at `now` that was refused (nothing was started).
    fn give_back_wake(&self, now: DateTime<Utc>) {
        let mut recent = self.0.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = recent.iter().rposition(|t| *t == now) {
            recent.remove(i);
        }
    }

    /// How long a wake of `id` usually takes: the median of its past wakes by request
    /// (from the wake to its first time serving, in the ledger), else two minutes.
    async fn estimate(&self, id: &str) -> TimeDelta {
        let id = id.to_string();
        let history = self
            .0
            .daemon
            .ledger()
            .run(move |l| l.history(&id, 200))
            .await
            .unwrap_or_default();
        let by = crate::reconcile::BY_REQUEST;
        let (wake, served) = (format!("wake by {by}"), format!("served by {by}"));
        let mut took = Vec::new();
        let mut served_at = None;
        // Newest first: a `served` entry, then the `wake` before it.
        for e in &history {
            if e.what == served {
                served_at = Some(e.at);
            } else if e.what == wake
                && let Some(s) = served_at.take()
            {
                took.push(s - e.at);
            }
        }
        took.sort();
        took.get(took.len() / 2)
            .copied()
            .unwrap_or(DEFAULT_ESTIMATE)
    }
}

/// Whether the client reads HTML (a browser) rather than JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    accept.contains("text/html") && !accept.starts_with("application/json")
}

/// A path on the environment's own host: absolute, not another host's (`//evil`), short.
fn return_path_ok(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= MAX_KEY * 4
        && !path.chars().any(char::is_control)
}

fn refusal_of(e: &OperatorError) -> Refusal {
    match e {
        OperatorError::Protected(why) | OperatorError::Invalid(why) => Refusal {
            status: StatusCode::FORBIDDEN,
            title: "Not woken",
            detail: why.clone(),
        },
        // The message of an ambiguous name lists other environments' ids: never shown.
        OperatorError::NotFound(_) | OperatorError::Ambiguous { .. } => Refusal {
            status: StatusCode::NOT_FOUND,
            title: "Unknown environment",
            detail: "no environment of that name can be woken here".into(),
        },
        OperatorError::Platform(_) | OperatorError::Ledger(_) => {
            tracing::warn!(error = %e, "a wake by request failed");
            Refusal {
                status: StatusCode::BAD_GATEWAY,
                title: "Wake failed",
                detail: "curfew could not start the environment; try again in a minute".into(),
            }
        }
    }
}

/// In words: `about 2 minutes`, `about 40 seconds`.
fn about(d: TimeDelta) -> String {
    let s = d.num_seconds().max(1);
    match s {
        0..60 => format!("about {s} seconds"),
        60..120 => "about a minute".into(),
        _ => format!("about {} minutes", (s + 30) / 60),
    }
}

/// A public page; `refresh`: reloaded every that many seconds.
fn frame(title: &str, body: Markup, refresh: Option<u64>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (crate::ui::head_common(title))
                meta name="robots" content="noindex";
                @if let Some(every) = refresh { meta http-equiv="refresh" content=(every); }
            }
            body { main { (body) } }
        }
    }
}

/// The waiting page, reloaded every `refresh` seconds, with `details` under its text.
fn waiting_page_with(name: &str, estimate: TimeDelta, refresh: u64, details: Markup) -> Response {
    no_store(Html(waiting_page_body(name, estimate, refresh, details)).into_response())
}

fn waiting_page_body(name: &str, estimate: TimeDelta, refresh: u64, details: Markup) -> String {
    let title = format!("{name} is waking up");
    let body = html! {
        h1 { (name) " is waking up, " (about(estimate)) }
        p { "It was stopped to save money while nobody used it. It is starting now; this page refreshes itself and takes you there once it answers." }
        (details)
    };
    frame(&title, body, Some(refresh)).into_string()
}

/// `Cache-Control: no-store`: a page that changes as the environment wakes.
fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// On the environment's own host, once it serves: the reader goes on to `target` (the
/// very path asked for) after a second.
fn ready_page(name: &str, target: &str) -> Response {
    let body = html! {
        h1 { (name) " is ready" }
        p { "Taking you there: " a href=(target) { (target) } }
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (crate::ui::head_common(&format!("{name} is ready")))
                meta name="robots" content="noindex";
                meta http-equiv="refresh" content=(format!("1;url={target}"));
            }
            body { main { (body) } }
        }
    };
    let mut r = (StatusCode::OK, page).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refused_page(r: &Refusal) -> Response {
    let body = html! { h1 { (r.title) } p.message { (r.detail) } };
    (r.status, frame(r.title, body, None)).into_response()
}

/// An RFC 7807 problem.
fn problem(r: &Refusal) -> Response {
    (
        r.status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({
            "type": "about:blank",
            "title": r.title,
            "status": r.status.as_u16(),
            "detail": r.detail,
        })
        .to_string(),
    )
        .into_response()
}

mod clients;
mod hosts;
mod sablier;

#[cfg(test)]
mod tests;
