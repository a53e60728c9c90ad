//! Sending one rendered message: an HTTP POST with bounded retries and backoff, signed when
//! the target has a key, counted once in `curfew_notifications_total` (plus once per
//! retried attempt).
//!
//! A target's URL can be a secret (Slack's webhook URLs are credentials): it lives in a
//! [`SecretUrl`], which has no `Display` and a redacted `Debug`, and errors are described
//! by kind (timeout, connection, HTTP status), never with reqwest's text, which names the URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use super::message::Kind;
use super::sign::{SIGNATURE_HEADER, SigningKey, TIMESTAMP_HEADER, signature};
use crate::clock::Clock;
use crate::events::Notification;
use crate::metrics::Metrics;

/// Header carrying the message's id (the same on every attempt), for receivers to drop
/// duplicates.
pub const DELIVERY_HEADER: &str = "X-Curfew-Delivery";
/// Header carrying the message's kind.
pub const KIND_HEADER: &str = "X-Curfew-Kind";

/// Longest wait a receiver's `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A webhook URL. Never printed: no `Display`, and `Debug` shows only that it is there.
#[derive(Clone)]
pub struct SecretUrl(reqwest::Url);

impl SecretUrl {
    /// Parses an `http` or `https` URL. The error says what is wrong without the URL.
    pub fn parse(text: &str) -> Result<SecretUrl, &'static str> {
        let url = reqwest::Url::parse(text.trim()).map_err(|_| "is not a valid URL")?;
        match url.scheme() {
            "http" | "https" => Ok(SecretUrl(url)),
            _ => Err("is not an http or https URL"),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUrl(<redacted>)")
    }
}

/// Where a target's messages go.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: SecretUrl,
    pub key: Option<SigningKey>,
}

/// One message on its way to one target.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub target: String,
    pub kind: Kind,
    pub id: String,
    pub endpoint: Endpoint,
    pub body: Vec<u8>,
}

/// Why an attempt failed.
#[derive(Debug)]
struct Failed {
    retryable: bool,
    retry_after: Option<Duration>,
    message: String,
}

/// Sends deliveries.
pub(crate) struct Courier {
    http: reqwest::Client,
    retries: usize,
    backoff: Duration,
    metrics: Arc<Metrics>,
    /// Signature timestamps are compared with receivers' clocks: the wall clock, not a
    /// scaled demo clock.
    wall: Arc<dyn Clock>,
}

impl Courier {
    pub fn new(
        timeout: Duration,
        retries: usize,
        backoff: Duration,
        metrics: Arc<Metrics>,
        wall: Arc<dyn Clock>,
    ) -> Result<Courier, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("curfew/", env!("CARGO_PKG_VERSION")))
            // A signed body goes where it was configured to go, nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Courier {
            http,
            retries,
            backoff,
            metrics,
            wall,
        })
    }

    /// Sends `d`, retrying what may succeed later (timeouts, connection errors, 429, 5xx),
    /// and counts the result. Never returns an error: a message that cannot be delivered
    /// is logged and counted, nothing else.
    pub async fn deliver(&self, d: Delivery) {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.backoff)
            .with_max_delay(Duration::from_secs(60))
            .with_max_times(self.retries)
            .with_jitter();
        let result = (|| self.attempt(&d))
            .retry(backoff)
            .when(|f: &Failed| f.retryable)
            .adjust(|f: &Failed, planned| {
                planned.map(|p| f.retry_after.map_or(p, |r| r.min(MAX_RETRY_AFTER)))
            })
            .notify(|f: &Failed, wait| {
                Notification::Retrying {
                    target: &d.target,
                    kind: d.kind.as_str(),
                    error: &f.message,
                    wait,
                }
                .emit(&*self.metrics);
            })
            .await;
        let (target, kind, id) = (&d.target, d.kind.as_str(), &d.id);
        match &result {
            Ok(()) => Notification::Delivered { target, kind, id },
            Err(f) => Notification::Undelivered {
                target,
                kind,
                id,
                error: &f.message,
            },
        }
        .emit(&*self.metrics);
    }

    async fn attempt(&self, d: &Delivery) -> Result<(), Failed> {
        let mut request = self
            .http
            .post(d.endpoint.url.0.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(DELIVERY_HEADER, d.id.as_str())
            .header(KIND_HEADER, d.kind.as_str());
        if let Some(key) = &d.endpoint.key {
            // Signed per attempt: a retry much later still carries a fresh timestamp.
            let timestamp = self.wall.now().timestamp();
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature(key, timestamp, &d.body));
        }
        let response = request
            .body(d.body.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let retryable = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error();
        Err(Failed {
            retryable,
            retry_after,
            message: if status.is_redirection() {
                format!("HTTP {} (redirects are not followed)", status.as_u16())
            } else {
                format!("HTTP {}", status.as_u16())
            },
        })
    }
}

/// A transport error by kind only: reqwest's own text names the URL.
fn describe(e: reqwest::Error) -> Failed {
    let message = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() || e.is_body() {
        "the request failed"
    } else {
        "the request could not be sent"
    };
    Failed {
        retryable: true,
        retry_after: None,
        message: message.to_string(),
    }
}
