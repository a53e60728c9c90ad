//! The Qovery adapter: the REST API of `reference/qovery-openapi.yaml`, with reqwest and
//! rustls.
//!
//! One listing is `GET /organization/{id}/project`, `GET /organization/{id}/environments`
//! and one `GET /project/{id}/environment/status` per project (never one call per
//! environment). Clusters and hourly costs (services' CPU and memory × the file's unit
//! prices) change rarely: they are fetched in the background and cached.
//!
//! Every request goes through one gate: a semaphore (bounded concurrency), a client-side
//! rate limit, a timeout, and retries with exponential backoff and jitter for 5xx, 429
//! (honouring `Retry-After`), timeouts and malformed answers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::{
    EnvState, Environment, Mode, Operation, Outcome, Platform, PlatformError, Prices,
    RequestObserver, Serving, Snapshot, Words,
};

/// An API token. It is only ever written into the `Authorization` header: its `Debug`
/// hides it and it has no `Display`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How to reach Qovery.
#[derive(Debug, Clone)]
pub struct QoveryOptions {
    /// `qovery`, or `sandbox` when pointed at the sandbox (for metrics and logs).
    pub name: &'static str,
    pub api_url: String,
    pub organization: String,
    pub token: Token,
    pub max_concurrency: usize,
    pub requests_per_second: f64,
    pub timeout: Duration,
    /// Attempts after the first, for retryable failures.
    pub max_retries: usize,
    /// First backoff delay (doubles each time, with jitter).
    pub backoff: Duration,
    /// How often clusters and costs are fetched again.
    pub cost_refresh: Duration,
    pub prices: Prices,
}

impl QoveryOptions {
    /// Defaults for an organization and token.
    pub fn new(api_url: impl Into<String>, organization: impl Into<String>, token: Token) -> Self {
        QoveryOptions {
            name: "qovery",
            api_url: api_url.into(),
            organization: organization.into(),
            token,
            max_concurrency: 8,
            requests_per_second: 10.0,
            timeout: Duration::from_secs(30),
            max_retries: 4,
            backoff: Duration::from_millis(500),
            cost_refresh: Duration::from_secs(3600),
            prices: Prices::default(),
        }
    }
}

/// The Qovery platform.
#[derive(Clone)]
pub struct Qovery {
    inner: Arc<Inner>,
}

/// How long the probe of an environment's own URL may take before it counts as not ready.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One of `GET /environment/{id}/link`'s links (`Link`).
#[derive(Deserialize)]
struct LinkWire {
    url: String,
    #[serde(default)]
    is_default: bool,
}

/// An answer over this many bytes is parsed on a blocking thread.
const LARGE_BODY: usize = 256 * 1024;
/// Calls a person waits on, per second at most, beside `requests_per_second`.
const FOR_A_PERSON_PER_SECOND: NonZeroU32 = NonZeroU32::new(5).unwrap();

struct Inner {
    options: QoveryOptions,
    http: reqwest::Client,
    /// Probes an environment's own URL: no token (the app must never see it), no
    /// redirects followed, a short timeout.
    probe: reqwest::Client,
    gate: Semaphore,
    limiter: DefaultDirectRateLimiter,
    /// The rate of calls a person waits on ([`crate::platform::for_a_person`]): they do not
    /// queue behind a pass that spent `limiter`'s burst, and add at most this to Qovery's
    /// load (wakes are few: one flight per environment, `max_wakes_per_hour`).
    for_a_person: DefaultDirectRateLimiter,
    details: Mutex<Details>,
    /// The projects of the last listing, whose status calls need not wait for this one's.
    projects_seen: Mutex<Vec<String>>,
    /// The names of the last listing's projects, by id: a one-environment read names its
    /// project with them (Qovery's environment names only the project's id).
    project_names: Mutex<HashMap<String, Arc<str>>>,
    observer: Option<Arc<dyn RequestObserver>>,
}

/// Cluster and cost per environment, fetched rarely.
#[derive(Default)]
struct Details {
    fetched_at: Option<Instant>,
    refreshing: bool,
    /// Sorted by environment id (a third less memory than a map of 10,000); the listing's
    /// environments share these ids.
    by_env: Vec<(Arc<str>, EnvDetails)>,
}

impl Details {
    /// Takes in a refresh's findings for the environments `listed` (sorted). What a failed
    /// call did not bring back stays as it was; environments gone since are forgotten
    /// (previews come and go by the thousand: kept, they would grow the cache for as long
    /// as curfew runs).
    fn merge(&mut self, mut found: HashMap<Arc<str>, EnvDetails>, listed: &[Arc<str>]) {
        let before = std::mem::take(&mut self.by_env);
        // Built at its size: collected through a filter it would grow by doubling, up to
        // 16,384 slots (786 KB) kept for 10,000 environments, where 480 KB hold them.
        self.by_env = Vec::with_capacity(listed.len());
        self.by_env.extend(listed.iter().filter_map(|id| {
            let old = before
                .binary_search_by(|(known, _)| known.cmp(id))
                .ok()
                .map(|i| &before[i].1);
            let fresh = found.remove(id);
            if old.is_none() && fresh.is_none() {
                return None;
            }
            let fresh = fresh.unwrap_or_default();
            Some((
                id.clone(),
                EnvDetails {
                    cluster: fresh
                        .cluster
                        .or_else(|| old.and_then(|o| o.cluster.clone())),
                    hourly_cost: fresh.hourly_cost.or(old.and_then(|o| o.hourly_cost)),
                },
            ))
        }));
        self.by_env.shrink_to_fit();
    }

    fn get(&self, id: &str) -> Option<&(Arc<str>, EnvDetails)> {
        let i = self
            .by_env
            .binary_search_by(|(known, _)| (**known).cmp(id))
            .ok()?;
        self.by_env.get(i)
    }
}

#[derive(Debug, Clone, Default)]
struct EnvDetails {
    /// One copy per cluster, shared by its environments.
    cluster: Option<Arc<str>>,
    hourly_cost: Option<f64>,
}

impl fmt::Debug for Qovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qovery")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// What one HTTP exchange came to.
enum Reply<T> {
    Ok(T),
    Conflict,
    NotFound,
}

/// A failed attempt, before retries are decided.
#[derive(Debug)]
struct Attempt {
    retryable: bool,
    retry_after: Option<Duration>,
    message: String,
}

impl Attempt {
    /// A failure that may pass if tried again.
    fn again(message: String) -> Attempt {
        Attempt {
            retryable: true,
            retry_after: None,
            message,
        }
    }

    /// A failure that trying again does not mend.
    fn fails(message: String) -> Attempt {
        Attempt {
            retryable: false,
            retry_after: None,
            message,
        }
    }
}

/// A successful answer's JSON. 204 (and 202 whose body curfew does not need) carry
/// nothing to parse.
async fn parse_answer<T: DeserializeOwned + Send + 'static>(
    status: StatusCode,
    body: Vec<u8>,
) -> Result<T, Attempt> {
    let empty = body.is_empty();
    let parse = if empty {
        serde_json::from_slice(b"null")
    } else if body.len() > LARGE_BODY {
        // Parsing megabytes takes milliseconds: off the runtime's workers, so the answers
        // of the other calls in flight are read meanwhile (and the body is freed there as
        // soon as it is parsed).
        tokio::task::spawn_blocking(move || serde_json::from_slice(&body))
            .await
            .map_err(|e| Attempt::again(format!("parsing the answer was interrupted: {e}")))?
    } else {
        serde_json::from_slice(&body)
    };
    parse.map_err(|e| {
        if empty {
            Attempt::fails(format!("empty answer where JSON was expected: {e}"))
        } else {
            Attempt::again(format!("malformed JSON in a {status} answer: {e}"))
        }
    })
}

/// What an answer that is neither a success, a conflict nor "not found" means.
fn refusal(status: StatusCode, retry_after: Option<Duration>) -> Attempt {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Attempt::fails(format!(
            "{status}: the API token was refused (check the token's variable or file, and its permissions)"
        )),
        StatusCode::TOO_MANY_REQUESTS => Attempt {
            retry_after,
            ..Attempt::again(format!("{status}: rate limited"))
        },
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Attempt {
            retry_after,
            ..Attempt::again(format!("{status} from the API"))
        },
        s => Attempt::fails(format!("unexpected {s} from the API")),
    }
}

// Wire types: only the fields curfew reads; unknown fields are ignored so new API fields
// never break the adapter.
#[derive(Deserialize)]
struct Results<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

#[derive(Deserialize)]
struct ProjectWire {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Reference {
    id: String,
}

#[derive(Deserialize)]
struct EnvironmentWire {
    #[serde(deserialize_with = "shared")]
    id: Arc<str>,
    #[serde(deserialize_with = "shared")]
    name: Arc<str>,
    #[serde(deserialize_with = "rfc3339")]
    created_at: DateTime<Utc>,
    project: Reference,
    mode: String,
}

#[derive(Deserialize)]
struct StatusWire {
    id: String,
    state: String,
    #[serde(default, deserialize_with = "rfc3339_some")]
    last_deployment_date: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct ProjectEnvironmentWire {
    id: String,
    #[serde(default)]
    cluster_name: Option<String>,
    #[serde(default)]
    cluster_id: Option<String>,
}

#[derive(Deserialize)]
struct ServiceWire {
    #[serde(default)]
    cpu: Option<f64>,
    #[serde(default)]
    memory: Option<f64>,
    #[serde(default)]
    min_running_instances: Option<f64>,
}

/// The largest answer curfew reads (the organization's listing of 10,000 environments is
/// 2.7 MB): a broken or hostile server cannot make it hold more.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Reads an answer into one buffer sized from its `Content-Length`: no growing copies and
/// no second copy joining chunks (which `bytes()` makes of a large answer, doubling the
/// daemon's peak memory while the organization's listing is read).
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Attempt> {
    let failed = |message: String| Attempt {
        retryable: true,
        retry_after: None,
        message,
    };
    let too_large = || Attempt {
        retryable: false,
        retry_after: None,
        message: format!("the answer is larger than {limit} bytes, more than curfew reads"),
    };
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failed(format!("reading the answer failed: {}", without_url(&e))))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A string of an answer, read by `read` straight from its text.
fn from_text<'de, D: serde::Deserializer<'de>, T, E: fmt::Display>(
    deserializer: D,
    expecting: &'static str,
    read: fn(&str) -> Result<T, E>,
) -> Result<T, D::Error> {
    struct Text<T, E> {
        expecting: &'static str,
        read: fn(&str) -> Result<T, E>,
    }
    impl<T, E: fmt::Display> serde::de::Visitor<'_> for Text<T, E> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<D: serde::de::Error>(self, s: &str) -> Result<T, D> {
            (self.read)(s).map_err(D::custom)
        }
    }
    deserializer.deserialize_str(Text { expecting, read })
}

/// An RFC 3339 instant, by chrono's strict parser first (several times faster than the
/// lenient one `DateTime`'s own `Deserialize` uses; a listing has 10,000 of them), then the
/// lenient one.
fn rfc3339<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    from_text(deserializer, "an RFC 3339 date-time", |s| {
        DateTime::parse_from_rfc3339(s)
            .map(|at| at.with_timezone(&Utc))
            .or_else(|_| s.parse::<DateTime<Utc>>())
            .map_err(|source| NotAnInstant {
                text: s.to_string(),
                source,
            })
    })
}

/// A text in an answer where an instant should be.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 date-time: {source}")]
struct NotAnInstant {
    text: String,
    source: chrono::ParseError,
}

/// A string as the listing keeps it, made straight from the answer's text: serde's own
/// `Arc<str>` goes through a `String` and copies it (two allocations for each of 10,000
/// ids and names).
fn shared<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
    from_text(deserializer, "a string", |s| {
        Ok::<_, std::convert::Infallible>(Arc::from(s))
    })
}

fn rfc3339_some<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(Deserialize)]
    struct At(#[serde(deserialize_with = "rfc3339")] DateTime<Utc>);
    Ok(Option::<At>::deserialize(deserializer)?.map(|at| at.0))
}

/// Qovery's `StateEnum` (all 29 values) in curfew's terms. Unknown values (added after
/// this release) are `Unknown`: left alone, never fatal.
pub fn map_state(state: &str) -> EnvState {
    match state {
        "DEPLOYED" | "RESTARTED" => EnvState::Running,
        // READY: created, never deployed: costs nothing.
        "STOPPED" | "READY" => EnvState::Stopped,
        "BUILDING" | "DEPLOYING" | "DEPLOYMENT_QUEUED" | "QUEUED" | "EXECUTING" | "RESTARTING"
        | "RESTART_QUEUED" | "WAITING_RUNNING" | "WAITING_RESTARTING" => EnvState::Starting,
        "STOPPING" | "STOP_QUEUED" | "WAITING_STOPPING" | "CANCELING" => EnvState::Stopping,
        "DELETING" | "DELETE_QUEUED" | "WAITING_DELETING" | "DELETED" => EnvState::Deleting,
        "BUILD_ERROR" | "DEPLOYMENT_ERROR" | "STOP_ERROR" | "DELETE_ERROR" | "RESTART_ERROR"
        | "UNAVAILABLE" => EnvState::Error,
        // CANCELED (a deployment was cancelled: what runs is unclear) and RECAP.
        _ => EnvState::Unknown,
    }
}

impl Qovery {
    /// Builds the client (rustls, timeouts, the `Authorization: Token …` header).
    pub fn new(
        options: QoveryOptions,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Qovery, PlatformError> {
        let name = options.name;
        let build_error = |message: String| PlatformError {
            platform: name,
            operation: Operation::List,
            retryable: false,
            message,
        };
        let mut auth = header::HeaderValue::from_str(&format!("Token {}", options.token.0))
            .map_err(|_| {
                build_error(
                    "the API token contains characters not allowed in an HTTP header".into(),
                )
            })?;
        auth.set_sensitive(true);
        let mut headers = header::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, auth);
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(headers)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("curfew/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| build_error(format!("cannot build the HTTP client: {e}")))?;
        let probe = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROBE_TIMEOUT)
            .connect_timeout(PROBE_TIMEOUT)
            .user_agent(concat!(
                "curfew/",
                env!("CARGO_PKG_VERSION"),
                " (wake probe)"
            ))
            .build()
            .map_err(|e| build_error(format!("cannot build the HTTP client: {e}")))?;
        let rate = options.requests_per_second.clamp(0.001, 1_000_000.0);
        let quota = if rate >= 1.0 {
            let per_second = NonZeroU32::new(rate.round() as u32).unwrap_or(NonZeroU32::MIN);
            Quota::per_second(per_second)
        } else {
            Quota::with_period(Duration::from_secs_f64(1.0 / rate))
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        };
        let gate = Semaphore::new(options.max_concurrency.max(1));
        Ok(Qovery {
            inner: Arc::new(Inner {
                options,
                http,
                probe,
                gate,
                limiter: RateLimiter::direct(quota),
                for_a_person: RateLimiter::direct(Quota::per_second(FOR_A_PERSON_PER_SECOND)),
                details: Mutex::new(Details::default()),
                projects_seen: Mutex::new(Vec::new()),
                project_names: Mutex::new(HashMap::new()),
                observer,
            }),
        })
    }

    /// Whether `url` answers something other than a 5xx within [`PROBE_TIMEOUT`]; only its
    /// head is read.
    async fn answers(&self, url: &str) -> bool {
        match self.inner.probe.get(url).send().await {
            Ok(response) => !response.status().is_server_error(),
            Err(e) => {
                tracing::debug!(url, error = %e, "wake probe failed");
                false
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.inner.options.api_url.trim_end_matches('/'),
            path
        )
    }

    fn error(&self, operation: Operation, retryable: bool, message: String) -> PlatformError {
        PlatformError {
            platform: self.inner.options.name,
            operation,
            retryable,
            message,
        }
    }

    /// One request with the gate, retries and classification.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        endpoint: &'static str,
        operation: Operation,
    ) -> Result<Reply<T>, PlatformError> {
        let options = &self.inner.options;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(options.backoff)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(options.max_retries)
            .with_jitter();
        let url = self.url(path);
        let attempt = || self.attempt::<T>(method.clone(), &url, endpoint);
        attempt
            .retry(backoff)
            .when(|a: &Attempt| a.retryable)
            .adjust(|a: &Attempt, planned| planned.map(|p| a.retry_after.map_or(p, |r| r.min(Duration::from_secs(120)))))
            .notify(|a: &Attempt, wait| tracing::debug!(endpoint, error = %a.message, ?wait, "retrying"))
            .await
            .map_err(|a| self.error(operation, a.retryable, format!("{endpoint} {path}: {}", a.message)))
    }

    /// One try of a call: the exchange, then what its status means.
    async fn attempt<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        url: &str,
        endpoint: &'static str,
    ) -> Result<Reply<T>, Attempt> {
        let (status, retry_after, body) = self.exchange(method, url, endpoint).await?;
        match status {
            s if s.is_success() => parse_answer(status, body).await.map(Reply::Ok),
            StatusCode::CONFLICT => Ok(Reply::Conflict),
            StatusCode::NOT_FOUND => Ok(Reply::NotFound),
            s => Err(refusal(s, retry_after)),
        }
    }

    /// The rate limit the call being made goes through: its own for a call a person
    /// waits on, else the client's `requests_per_second`.
    fn limiter(&self) -> &DefaultDirectRateLimiter {
        if crate::platform::is_for_a_person() {
            &self.inner.for_a_person
        } else {
            &self.inner.limiter
        }
    }

    /// One request through the gate (a connection of the bounded pool, the rate limit),
    /// observed: its status, its `Retry-After`, and its body (bounded).
    async fn exchange(
        &self,
        method: Method,
        url: &str,
        endpoint: &'static str,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), Attempt> {
        let inner = &self.inner;
        let permit = inner
            .gate
            .acquire()
            .await
            .map_err(|_| Attempt::fails("client is shutting down".into()))?;
        self.limiter().until_ready().await;
        let started = Instant::now();
        let sent = inner.http.request(method, url).send().await;
        let observe = |status: &str| {
            if let Some(o) = &inner.observer {
                o.request(endpoint, status, started.elapsed());
            }
        };
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                observe("timeout");
                return Err(Attempt::again("timed out".into()));
            }
            Err(e) => {
                observe("network");
                return Err(Attempt::again(format!(
                    "request failed: {}",
                    without_url(&e)
                )));
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_body(response, MAX_BODY).await;
        observe(status.as_str());
        // The answer is in: parsing it does not need one of the connections.
        drop(permit);
        Ok((status, retry_after, body?))
    }

    async fn get_list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: String,
        endpoint: &'static str,
    ) -> Result<Option<Vec<T>>, PlatformError> {
        match self
            .call::<Results<T>>(Method::GET, &path, endpoint, Operation::List)
            .await?
        {
            Reply::Ok(r) => Ok(Some(r.results)),
            Reply::NotFound => Ok(None),
            Reply::Conflict => Err(self.error(
                Operation::List,
                true,
                format!("{endpoint} {path}: 409 on a listing"),
            )),
        }
    }

    /// One object (`GET`), `None` when the platform has it no more (404).
    async fn get_one<T: DeserializeOwned + Send + 'static>(
        &self,
        path: String,
        endpoint: &'static str,
    ) -> Result<Option<T>, PlatformError> {
        match self
            .call::<T>(Method::GET, &path, endpoint, Operation::List)
            .await?
        {
            Reply::Ok(r) => Ok(Some(r)),
            Reply::NotFound => Ok(None),
            Reply::Conflict => Err(self.error(
                Operation::List,
                true,
                format!("{endpoint} {path}: 409 on a read"),
            )),
        }
    }

    async fn action(
        &self,
        method: Method,
        path: String,
        endpoint: &'static str,
        operation: Operation,
    ) -> Result<Outcome, PlatformError> {
        Ok(
            match self
                .call::<serde::de::IgnoredAny>(method, &path, endpoint, operation)
                .await?
            {
                Reply::Ok(_) => Outcome::Accepted,
                Reply::Conflict => Outcome::AlreadyThereOrBusy,
                Reply::NotFound => Outcome::Gone,
            },
        )
    }

    /// Starts a background refresh of clusters and costs when they are stale.
    /// The organization's environments with their project's name and the cached cluster
    /// and cost, state unknown until the status calls answer; false when one was skipped
    /// (a mode this release does not know).
    fn assemble(
        &self,
        environments: Vec<EnvironmentWire>,
        names: &HashMap<String, Arc<str>>,
    ) -> (Vec<Environment>, bool) {
        let guard = self
            .inner
            .details
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let details = &*guard;
        let mut complete = true;
        let mut out = Vec::with_capacity(environments.len());
        for e in environments {
            let Some(mode) = Mode::parse(&e.mode) else {
                tracing::warn!(environment = %e.id, mode = %e.mode, "unknown environment mode; skipped");
                complete = false;
                continue;
            };
            // One copy of the id, the cache's.
            let (id, detail) = match details.get(&e.id) {
                Some((id, detail)) => (id.clone(), Some(detail)),
                None => (e.id, None),
            };
            out.push(Environment {
                project: names
                    .get(&e.project.id)
                    .cloned()
                    .unwrap_or_else(|| e.project.id.into()),
                id,
                name: e.name,
                mode,
                cluster: detail.and_then(|d| d.cluster.clone()),
                state: EnvState::Unknown,
                created_at: e.created_at,
                last_deployed_at: None,
                last_activity_at: None,
                labels: Default::default(),
                hourly_cost: detail.and_then(|d| d.hourly_cost),
                platform_state: None,
                unstoppable: None,
                owners: None,
                reverters: Vec::new(),
                reverted: None,
                stopped_by_curfew_at: None,
                overrides: None,
            });
        }
        (out, complete)
    }

    /// Starts a background refresh of clusters and costs when they are stale; `ids` gives
    /// the projects and environments to fetch (called only then).
    fn refresh_details_if_stale(&self, ids: impl FnOnce() -> (Vec<String>, Vec<Arc<str>>)) {
        let inner = &self.inner;
        {
            let mut d = inner.details.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = d
                .fetched_at
                .is_some_and(|t| t.elapsed() < inner.options.cost_refresh);
            if fresh || d.refreshing {
                return;
            }
            d.refreshing = true;
        }
        let (projects, mut environments) = ids();
        environments.sort_unstable();
        let this = self.clone();
        tokio::spawn(async move {
            let details = this.fetch_details(projects, &environments).await;
            let mut d = this
                .inner
                .details
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            d.refreshing = false;
            if let Some(by_env) = details {
                d.merge(by_env, &environments);
                d.fetched_at = Some(Instant::now());
            }
        });
    }

    async fn fetch_details(
        &self,
        projects: Vec<String>,
        environments: &[Arc<str>],
    ) -> Option<HashMap<Arc<str>, EnvDetails>> {
        use futures::StreamExt;
        // A quarter of the connections at most: the refresh runs beside the passes and must
        // not hold up their listings and actions (and it keeps few requests in memory).
        let share = (self.inner.options.max_concurrency / 4).max(1);
        let mut by_env: HashMap<Arc<str>, EnvDetails> = HashMap::new();
        let clusters: Vec<_> = futures::stream::iter(projects)
            .map(|p: String| async move {
                self.get_list::<ProjectEnvironmentWire>(
                    format!("/project/{p}/environment"),
                    "list_project_environments",
                )
                .await
            })
            .buffer_unordered(share)
            .collect()
            .await;
        let mut names = Words::default();
        for list in clusters.into_iter().flatten().flatten() {
            for e in list {
                by_env.entry(e.id.into()).or_default().cluster =
                    e.cluster_name.or(e.cluster_id).map(|name| names.get(name));
            }
        }
        let prices = self.inner.options.prices;
        if prices.vcpu_hour.is_some() || prices.gib_hour.is_some() {
            let costs: Vec<_> = futures::stream::iter(environments.iter().cloned())
                .map(|id: Arc<str>| async move {
                    let cost = self.environment_cost(&id).await;
                    (id, cost)
                })
                .buffer_unordered(share)
                .collect()
                .await;
            for (id, cost) in costs {
                by_env.entry(id).or_default().hourly_cost = cost;
            }
        }
        Some(by_env)
    }

    /// Σ services (CPU × vCPU price + memory × GiB price) × instances.
    async fn environment_cost(&self, id: &str) -> Option<f64> {
        let prices = self.inner.options.prices;
        let mut services = Vec::new();
        for (kind, endpoint) in [
            ("application", "list_applications"),
            ("container", "list_containers"),
        ] {
            services.extend(
                self.get_list::<ServiceWire>(format!("/environment/{id}/{kind}"), endpoint)
                    .await
                    .ok()??,
            );
        }
        let cost = services
            .iter()
            .map(|s| {
                let instances = s.min_running_instances.unwrap_or(1.0).max(0.0);
                let cpu = s.cpu.unwrap_or(0.0) / 1000.0 * prices.vcpu_hour.unwrap_or(0.0);
                let memory = s.memory.unwrap_or(0.0) / 1024.0 * prices.gib_hour.unwrap_or(0.0);
                (cpu + memory) * instances
            })
            .sum::<f64>();
        (cost.is_finite() && cost > 0.0).then_some(cost)
    }
}

/// reqwest's error text without the URL (which is harmless, but long).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    text
}

impl Qovery {
    /// The ids of the projects of the last listing.
    fn projects_seen(&self) -> Vec<String> {
        self.inner
            .projects_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The statuses of a project's environments.
    async fn status_of(&self, project: String) -> ProjectStatuses {
        let result = self
            .get_list::<StatusWire>(
                format!("/project/{project}/environment/status"),
                "list_status",
            )
            .await;
        (project, result)
    }

    /// The organization-wide listings (projects, environments), and the environments
    /// assembled from them (names, clusters, costs) as soon as both are in, while the
    /// status calls are still in flight: their answers only fill in each environment's
    /// state at the end. Returns the projects' ids, the environments, and whether the
    /// listing is complete so far.
    async fn organization_listings(
        &self,
    ) -> Result<(Vec<String>, (Vec<Environment>, bool)), PlatformError> {
        let org = &self.inner.options.organization;
        let not_found = || {
            self.error(
                Operation::List,
                false,
                format!("organization {org} not found (check the organization id)"),
            )
        };
        let (environments, projects) = tokio::join!(
            self.get_list::<EnvironmentWire>(
                format!("/organization/{org}/environments"),
                "list_environments",
            ),
            self.get_list::<ProjectWire>(format!("/organization/{org}/project"), "list_projects"),
        );
        let projects = projects?.ok_or_else(not_found)?;
        let environments = environments?.ok_or_else(not_found)?;
        self.refresh_details_if_stale(|| {
            (
                projects.iter().map(|p| p.id.clone()).collect(),
                environments.iter().map(|e| e.id.clone()).collect(),
            )
        });
        let ids: Vec<String> = projects.iter().map(|p| p.id.clone()).collect();
        let names: HashMap<String, Arc<str>> = projects
            .into_iter()
            .map(|p| (p.id, Arc::from(p.name)))
            .collect();
        let this = self.clone();
        let assembled = tokio::task::spawn_blocking(move || {
            let assembled = this.assemble(environments, &names);
            *this
                .inner
                .project_names
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = names;
            assembled
        })
        .await
        .map_err(|e| {
            self.error(
                Operation::List,
                true,
                format!("assembling the listing failed: {e}"),
            )
        })?;
        Ok((ids, assembled))
    }
}

/// One project's status listing: its id, and the statuses (none when the project is gone).
type ProjectStatuses = (String, Result<Option<Vec<StatusWire>>, PlatformError>);

/// The projects of this listing that the last one did not have.
fn new_projects(known: &[String], projects: &[String]) -> Vec<String> {
    let known: HashSet<&String> = known.iter().collect();
    projects
        .iter()
        .filter(|p| !known.contains(p))
        .cloned()
        .collect()
}

/// Fills in each environment's state from its project's status answer; whether every
/// status listing answered.
fn fill_states(out: &mut [Environment], statuses: Vec<ProjectStatuses>) -> bool {
    let mut complete = true;
    let found: Vec<(usize, StatusWire)> = {
        let position: HashMap<&str, usize> = out
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_ref(), i))
            .collect();
        let mut found = Vec::with_capacity(out.len());
        for (project, result) in statuses {
            match result {
                Ok(Some(list)) => found.extend(
                    list.into_iter()
                        .filter_map(|s| Some((*position.get(s.id.as_str())?, s))),
                ),
                Ok(None) => {}
                Err(e) => {
                    complete = false;
                    tracing::warn!(project, error = %e, "status listing failed: this pass's listing is partial");
                }
            }
        }
        found
    };
    // A handful of state words, one copy of each.
    let mut words = Words::default();
    for (i, status) in found {
        let env = &mut out[i];
        env.state = map_state(&status.state);
        env.last_deployed_at = status.last_deployment_date;
        env.platform_state = Some(words.get(status.state));
    }
    complete
}

#[async_trait::async_trait]
impl Platform for Qovery {
    fn name(&self) -> &'static str {
        self.inner.options.name
    }

    /// The organization's environments with their states: the project and environment
    /// listings, the status of each project's environments, put together.
    async fn list(&self) -> Result<Snapshot, PlatformError> {
        // The status calls need only the projects' ids. Those of the projects seen last time
        // start at once, beside the project and organization-wide environment listings;
        // only a project new since then waits for the project listing. The first listing
        // has nothing to go on and waits.
        let known = self.projects_seen();
        let (listed, mut statuses) = tokio::join!(
            self.organization_listings(),
            futures::future::join_all(known.iter().cloned().map(|p| self.status_of(p))),
        );
        let (projects, (mut out, complete)) = listed?;
        let new = new_projects(&known, &projects);
        if !new.is_empty() {
            statuses.extend(
                futures::future::join_all(new.into_iter().map(|p| self.status_of(p))).await,
            );
        }
        // A project gone since last time: its status answer (if any) is not used.
        {
            let listed: HashSet<&String> = projects.iter().collect();
            statuses.retain(|(id, _)| listed.contains(id));
        }
        *self
            .inner
            .projects_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = projects;
        let statuses_complete = fill_states(&mut out, statuses);
        Ok(Snapshot {
            environments: out,
            complete: complete && statuses_complete,
        })
    }

    /// `GET /environment/{id}` and `GET /environment/{id}/status`, at once; the project's
    /// name from the last listing (a whole listing when it did not have the project).
    async fn environment(&self, id: &str) -> Result<Option<Environment>, PlatformError> {
        let (wire, status) = tokio::join!(
            self.get_one::<EnvironmentWire>(format!("/environment/{id}"), "get_environment"),
            self.get_one::<StatusWire>(format!("/environment/{id}/status"), "status"),
        );
        let (Some(wire), Some(status)) = (wire?, status?) else {
            return Ok(None);
        };
        let project = {
            let names = self
                .inner
                .project_names
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            names
                .get_key_value(&wire.project.id)
                .map(|(k, v)| (k.clone(), v.clone()))
        };
        let Some((project_id, project_name)) = project else {
            let listed = self.list().await?;
            return Ok(listed.environments.into_iter().find(|e| &*e.id == id));
        };
        let mode = wire.mode.clone();
        let names = HashMap::from([(project_id, project_name)]);
        let Some(mut env) = self.assemble(vec![wire], &names).0.pop() else {
            return Err(self.error(
                Operation::List,
                false,
                format!("environment {id}: unknown mode {mode:?}"),
            ));
        };
        env.state = map_state(&status.state);
        env.last_deployed_at = status.last_deployment_date;
        env.platform_state = Some(status.state.into());
        Ok(Some(env))
    }

    async fn stop(&self, id: &str) -> Result<Outcome, PlatformError> {
        self.action(
            Method::POST,
            format!("/environment/{id}/stop"),
            "stop",
            Operation::Stop,
        )
        .await
    }

    async fn start(&self, id: &str) -> Result<Outcome, PlatformError> {
        self.action(
            Method::POST,
            format!("/environment/{id}/deploy"),
            "deploy",
            Operation::Start,
        )
        .await
    }

    /// Ready: the environment's state is `DEPLOYED` and its URL (the default link of
    /// `GET /environment/{id}/link`, else the first) answers without a 5xx.
    async fn serving(&self, id: &str) -> Result<Serving, PlatformError> {
        let links = self
            .get_list::<LinkWire>(format!("/environment/{id}/link"), "links")
            .await?
            .unwrap_or_default();
        let url = links
            .iter()
            .find(|l| l.is_default)
            .or(links.first())
            .map(|l| l.url.clone());
        let status = self
            .call::<StatusWire>(
                Method::GET,
                &format!("/environment/{id}/status"),
                "status",
                Operation::List,
            )
            .await?;
        let deployed = matches!(&status, Reply::Ok(s) if s.state == "DEPLOYED");
        let ready = match (&url, deployed) {
            (Some(url), true) => self.answers(url).await,
            _ => false,
        };
        Ok(Serving { url, ready })
    }

    /// Every link of `GET /environment/{id}/link`.
    async fn links(&self, id: &str) -> Result<Vec<String>, PlatformError> {
        Ok(self
            .get_list::<LinkWire>(format!("/environment/{id}/link"), "links")
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.url)
            .collect())
    }

    async fn delete(&self, id: &str) -> Result<Outcome, PlatformError> {
        self.action(
            Method::DELETE,
            format!("/environment/{id}"),
            "delete",
            Operation::Delete,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wake's calls do not wait for a pass to have spent the client's burst: they go
    /// through a rate of their own.
    #[tokio::test]
    async fn calls_a_person_waits_on_go_through_their_own_rate_limit() {
        let options = QoveryOptions::new("http://127.0.0.1:9", "org", Token::new("t"));
        let q = Qovery::new(options, None).unwrap();
        assert!(std::ptr::eq(q.limiter(), &q.inner.limiter));
        crate::platform::for_a_person(async {
            assert!(std::ptr::eq(q.limiter(), &q.inner.for_a_person));
        })
        .await;
        assert!(std::ptr::eq(q.limiter(), &q.inner.limiter), "only inside");
    }

    #[test]
    fn listing_words_are_read_escaped_or_not_and_anything_else_is_refused() {
        #[derive(Deserialize)]
        struct Word(#[serde(deserialize_with = "shared")] Arc<str>);
        let plain: Word = serde_json::from_slice(br#" "pr-1" "#).unwrap();
        let escaped: Word = serde_json::from_slice(br#" "pr-\u00e9 \"x\"" "#).unwrap();
        assert_eq!((&*plain.0, &*escaped.0), ("pr-1", "pr-\u{e9} \"x\""));
        let err = serde_json::from_slice::<Word>(b"7")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("expected a string"), "{err}");
    }

    #[test]
    fn a_refresh_keeps_what_a_failed_call_missed_and_forgets_environments_gone() {
        let detail = |cluster: Option<&str>, cost: Option<f64>| EnvDetails {
            cluster: cluster.map(Arc::from),
            hourly_cost: cost,
        };
        let mut d = Details::default();
        d.merge(
            HashMap::from([
                (Arc::from("a"), detail(Some("eu"), Some(1.0))),
                (Arc::from("b"), detail(Some("us"), Some(2.0))),
            ]),
            &["a".into(), "b".into()],
        );
        // b is gone; a's cost call failed this time; c is new.
        d.merge(
            HashMap::from([
                (Arc::from("a"), detail(Some("eu-2"), None)),
                (Arc::from("c"), detail(None, Some(3.0))),
            ]),
            &["a".into(), "c".into()],
        );
        let mut got: Vec<(&str, Option<&str>, Option<f64>)> = d
            .by_env
            .iter()
            .map(|(id, e)| (&**id, e.cluster.as_deref(), e.hourly_cost))
            .collect();
        got.sort_by(|x, y| x.0.cmp(y.0));
        assert_eq!(
            got,
            [("a", Some("eu-2"), Some(1.0)), ("c", None, Some(3.0))]
        );
    }

    #[test]
    fn the_cache_of_clusters_and_costs_keeps_no_spare_room() {
        // 1,000 environments listed, 999 of them with details: collected by doubling, the
        // cache would keep room for 1,024 for as long as the daemon runs.
        let listed: Vec<Arc<str>> = (0..1000)
            .map(|i| Arc::from(format!("env-{i:04}")))
            .collect();
        let found = listed[1..]
            .iter()
            .map(|id| {
                let detail = EnvDetails {
                    cluster: None,
                    hourly_cost: Some(1.0),
                };
                (id.clone(), detail)
            })
            .collect();
        let mut d = Details::default();
        d.merge(found, &listed);
        assert_eq!(d.by_env.len(), 999);
        assert_eq!(d.by_env.capacity(), 999);
    }

    #[tokio::test]
    async fn an_answer_is_read_whole_up_to_the_limit_and_refused_beyond_it() {
        // A server answering in chunks without a length, and one declaring its length.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let chunked = || {
            let chunks = [r#"{"resu"#, r#"lts": "#, "[]}"].map(Ok::<_, std::io::Error>);
            axum::body::Body::from_stream(futures::stream::iter(chunks))
        };
        let app = axum::Router::new()
            .route(
                "/chunked",
                axum::routing::get(move || async move { chunked() }),
            )
            .route(
                "/sized",
                axum::routing::get(|| async { r#"{"results": [1, 2, 3]}"# }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("{base}{path}")).send();

        let whole = read_body(get("/chunked").await.unwrap(), 64).await;
        assert_eq!(whole.ok().as_deref(), Some(&br#"{"results": []}"#[..]));
        let sized = read_body(get("/sized").await.unwrap(), 64).await;
        assert_eq!(
            sized.ok().as_deref(),
            Some(&br#"{"results": [1, 2, 3]}"#[..])
        );
        for path in ["/chunked", "/sized"] {
            let refused = read_body(get(path).await.unwrap(), 8).await.err();
            assert!(
                refused.as_ref().is_some_and(|a| !a.retryable
                    && a.message == "the answer is larger than 8 bytes, more than curfew reads"),
                "{path}: {refused:?}"
            );
        }
    }

    #[test]
    fn instants_are_read_strictly_then_leniently_and_a_bad_one_is_named() {
        let status = |date: &str| {
            serde_json::from_str::<StatusWire>(&format!(
                r#"{{"id": "e", "state": "DEPLOYED", "last_deployment_date": {date}}}"#
            ))
        };
        let at = |s: &str| s.parse::<DateTime<Utc>>().ok();
        for (text, expected) in [
            (r#""2026-11-26T18:00:00Z""#, at("2026-11-26T18:00:00Z")),
            (
                r#""2026-11-26T19:00:00.123456+01:00""#,
                at("2026-11-26T18:00:00.123456Z"),
            ),
            // Not RFC 3339 (a space for the T), which chrono's lenient parser still reads.
            (r#""2026-11-26 18:00:00Z""#, at("2026-11-26T18:00:00Z")),
            ("null", None),
        ] {
            let read = status(text).map(|s| s.last_deployment_date);
            assert_eq!(read.ok(), Some(expected), "{text}");
        }
        assert!(
            serde_json::from_str::<StatusWire>(r#"{"id": "e", "state": "DEPLOYED"}"#)
                .is_ok_and(|s| s.last_deployment_date.is_none())
        );
        let error = status(r#""yesterday""#).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("\"yesterday\" is not an RFC 3339 date-time")),
            "{error:?}"
        );
    }

    #[test]
    fn every_qovery_state_has_an_explicit_meaning() {
        let all = [
            "BUILDING",
            "BUILD_ERROR",
            "CANCELED",
            "CANCELING",
            "DELETED",
            "DELETE_ERROR",
            "DELETE_QUEUED",
            "DELETING",
            "DEPLOYED",
            "DEPLOYING",
            "DEPLOYMENT_ERROR",
            "DEPLOYMENT_QUEUED",
            "EXECUTING",
            "QUEUED",
            "READY",
            "RECAP",
            "RESTARTED",
            "RESTARTING",
            "RESTART_ERROR",
            "RESTART_QUEUED",
            "STOPPED",
            "STOPPING",
            "STOP_ERROR",
            "STOP_QUEUED",
            "UNAVAILABLE",
            "WAITING_DELETING",
            "WAITING_RESTARTING",
            "WAITING_RUNNING",
            "WAITING_STOPPING",
        ];
        assert_eq!(all.len(), 29);
        let running: Vec<_> = all
            .iter()
            .filter(|s| map_state(s) == EnvState::Running)
            .collect();
        let stopped: Vec<_> = all
            .iter()
            .filter(|s| map_state(s) == EnvState::Stopped)
            .collect();
        assert_eq!(running, [&"DEPLOYED", &"RESTARTED"]);
        assert_eq!(stopped, [&"READY", &"STOPPED"]);
        assert_eq!(map_state("STOP_QUEUED"), EnvState::Stopping);
        assert_eq!(map_state("DEPLOYMENT_ERROR"), EnvState::Error);
        assert_eq!(map_state("SOMETHING_NEW_IN_2027"), EnvState::Unknown);
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let options = QoveryOptions::new("http://127.0.0.1:1", "org", Token::new("s3cr3t-token"));
        let client = Qovery::new(options, None).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert!(format!("{client:?}").contains("Token(<redacted>)"));
    }
}
