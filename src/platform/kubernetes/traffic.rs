//! Traffic as a sign of life: the last instant each namespace had requests, from Prometheus.
//!
//! The user gives a rate query with one series (or more) per namespace, such as
//! `sum by (namespace) (rate(nginx_ingress_controller_requests[5m]))`. curfew asks
//! Prometheus when, within `lookback`, that rate was last above `min_rate`:
//!
//! ```text
//! max by (namespace) (max_over_time(timestamp((QUERY) > MIN_RATE)[LOOKBACK:5m]))
//! ```
//!
//! One instant query per pass; its answer is a Unix time per namespace. A namespace with
//! no series had no traffic within the lookback (the deployment time alone then counts).
//!
//! Only the first query looks back the whole `lookback` (a 7-day subquery is 2,016
//! evaluations of the rate): each later one looks back only to the previous answer (and
//! one step more), and its answer is merged into what is remembered.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Where and how to ask Prometheus.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficOptions {
    /// Base URL of the Prometheus HTTP API (`http://prometheus-operated.monitoring:9090`).
    pub prometheus_url: String,
    /// A request-rate query with a series per namespace.
    pub query: String,
    /// The label holding the namespace in the query's answer.
    pub namespace_label: String,
    /// How far back to look for the last request.
    pub lookback: Duration,
    /// A rate at or below this is no traffic.
    pub min_rate: f64,
}

/// Resolution of the subquery: as coarse as the usual `rate(…[5m])` window.
const STEP_SECONDS: u64 = 300;

impl TrafficOptions {
    /// The PromQL sent: the last instant within `window` at which the rate was above
    /// `min_rate`, per namespace.
    pub fn promql(&self, window: Duration) -> String {
        format!(
            "max by ({label}) (max_over_time(timestamp(({query}) > {min})[{window}s:{STEP_SECONDS}s]))",
            label = self.namespace_label,
            query = self.query.trim(),
            min = self.min_rate,
            window = window.as_secs().max(STEP_SECONDS),
        )
    }
}

/// The last answer: when it was asked, and the last request per namespace.
type Remembered = (DateTime<Utc>, HashMap<String, DateTime<Utc>>);

/// Asks Prometheus over HTTP.
#[derive(Debug, Clone)]
pub struct Traffic {
    options: TrafficOptions,
    http: reqwest::Client,
    remembered: std::sync::Arc<Mutex<Option<Remembered>>>,
}

#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<AnswerData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerData {
    result_type: String,
    result: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    metric: HashMap<String, String>,
    /// `[unix time of evaluation, "value"]`.
    value: (f64, String),
}

/// Why Prometheus's traffic could not be read (never with the query's URL's secrets: the
/// address is the settings' own).
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("cannot build the Prometheus client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("Prometheus at {url}: {message}")]
    Request { url: String, message: String },
    #[error(
        "Prometheus at {url} answered {status} with something that is not its API's JSON: {source}"
    )]
    NotItsJson {
        url: String,
        status: reqwest::StatusCode,
        #[source]
        source: serde_json::Error,
    },
    #[error("Prometheus at {url}: {problem}")]
    Answer { url: String, problem: AnswerProblem },
}

/// What is wrong with an answer of Prometheus's API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerProblem {
    #[error("query failed: {0}")]
    Failed(String),
    #[error("the answer has no data")]
    NoData,
    #[error("expected an instant vector, got a {0}")]
    NotAVector(String),
}

impl Traffic {
    pub fn new(options: TrafficOptions, timeout: Duration) -> Result<Traffic, TrafficError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(TrafficError::Client)?;
        Ok(Traffic {
            options,
            http,
            remembered: Default::default(),
        })
    }

    /// How far back to ask at `now`: the whole lookback, or back to the last answer and
    /// one step more (rounded up to whole steps).
    fn window(&self, now: DateTime<Utc>) -> Duration {
        let lookback = self.options.lookback;
        let remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since = remembered
            .as_ref()
            .and_then(|(at, _)| (now - *at).to_std().ok());
        match since {
            Some(since) if since + Duration::from_secs(STEP_SECONDS) < lookback => {
                let steps = since.as_secs().div_ceil(STEP_SECONDS) + 1;
                Duration::from_secs(steps * STEP_SECONDS)
            }
            _ => lookback,
        }
    }

    /// Last request per namespace within the lookback, evaluated at `now`.
    pub async fn last_requests(
        &self,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, DateTime<Utc>>, TrafficError> {
        let fresh = self.ask(now, self.window(now)).await?;
        let oldest = now - chrono::TimeDelta::from_std(self.options.lookback).unwrap_or_default();
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut merged = remembered.take().map(|(_, last)| last).unwrap_or_default();
        for (namespace, at) in fresh {
            let slot = merged.entry(namespace).or_insert(at);
            *slot = (*slot).max(at);
        }
        merged.retain(|_, at| *at >= oldest);
        *remembered = Some((now, merged.clone()));
        Ok(merged)
    }

    async fn ask(
        &self,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<HashMap<String, DateTime<Utc>>, TrafficError> {
        let url = format!(
            "{}/api/v1/query",
            self.options.prometheus_url.trim_end_matches('/')
        );
        let time = now.timestamp().to_string();
        let query = self.options.promql(window);
        let response = self
            .http
            .get(&url)
            .query(&[("query", query.as_str()), ("time", time.as_str())])
            .send()
            .await
            .map_err(|e| TrafficError::Request {
                url: url.clone(),
                message: without_url(&e),
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| TrafficError::Request {
            url: url.clone(),
            message: without_url(&e),
        })?;
        let answer: Answer = match serde_json::from_slice(&body) {
            Ok(answer) => answer,
            Err(source) => {
                return Err(TrafficError::NotItsJson {
                    url,
                    status,
                    source,
                });
            }
        };
        last_requests(answer, &self.options.namespace_label)
            .map_err(|problem| TrafficError::Answer { url, problem })
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    text
}

/// Reads an answer: one sample per namespace, its value a Unix time.
fn last_requests(
    answer: Answer,
    label: &str,
) -> Result<HashMap<String, DateTime<Utc>>, AnswerProblem> {
    if answer.status != "success" {
        return Err(AnswerProblem::Failed(
            answer.error.unwrap_or_else(|| answer.status.clone()),
        ));
    }
    let data = answer.data.ok_or(AnswerProblem::NoData)?;
    if data.result_type != "vector" {
        return Err(AnswerProblem::NotAVector(data.result_type));
    }
    let mut out = HashMap::new();
    for sample in data.result {
        let Some(namespace) = sample.metric.get(label) else {
            continue;
        };
        let Ok(seconds) = sample.value.1.parse::<f64>() else {
            continue;
        };
        if let Some(t) = DateTime::from_timestamp(seconds.floor() as i64, 0) {
            let slot = out.entry(namespace.clone()).or_insert(t);
            *slot = (*slot).max(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> TrafficOptions {
        TrafficOptions {
            prometheus_url: "http://prometheus:9090".into(),
            query: "sum by (namespace) (rate(nginx_ingress_controller_requests[5m]))".into(),
            namespace_label: "namespace".into(),
            lookback: Duration::from_secs(7 * 86_400),
            min_rate: 0.0,
        }
    }

    #[test]
    fn the_query_asks_for_the_last_instant_above_the_minimum_rate_per_namespace() {
        assert_eq!(
            options().promql(Duration::from_secs(7 * 86_400)),
            "max by (namespace) (max_over_time(timestamp((sum by (namespace) (rate(nginx_ingress_controller_requests[5m]))) > 0)[604800s:300s]))"
        );
    }

    #[test]
    fn an_answer_gives_each_namespace_its_last_request() {
        let answer: Answer = serde_json::from_value(serde_json::json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"namespace": "pr-1"}, "value": [1790000000.0, "1789990000"]},
                {"metric": {"namespace": "pr-2"}, "value": [1790000000.0, "1789000000.5"]},
                {"metric": {"other": "x"}, "value": [1790000000.0, "1789000000"]},
            ]}
        }))
        .unwrap();
        let got = last_requests(answer, "namespace").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["pr-1"].timestamp(), 1_789_990_000);
        assert_eq!(got["pr-2"].timestamp(), 1_789_000_000);
    }

    #[test]
    fn a_failed_query_is_an_error_with_prometheus_own_words() {
        let answer: Answer = serde_json::from_value(serde_json::json!({
            "status": "error", "errorType": "bad_data", "error": "parse error at char 5"
        }))
        .unwrap();
        let e = last_requests(answer, "namespace").unwrap_err().to_string();
        assert!(e.contains("parse error at char 5"), "{e}");
    }
}
