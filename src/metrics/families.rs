//! The metric families, one struct per group, each registering its own families (and the
//! series known in advance, at 0: a counter's first event must be an increase Prometheus
//! can see, and `increase()` cannot count a series that appears already at 1).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use prometheus::core::{Atomic, AtomicF64, AtomicI64, GenericGaugeVec};
use prometheus::{
    CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::events::{AuthFailure, Cap, PassResult};

/// Reconcile passes last from a few milliseconds (sandbox) to minutes (a large
/// organization listed page by page behind a rate limit).
const PASS_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// One HTTP call to a platform: milliseconds when healthy, up to the client's timeout.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The fleet as the last pass saw it.
pub(super) struct Fleet {
    /// Environments seen in the last listing, by state and by the rule that matched them
    /// (`rule="unmatched"` when none did). `sum(curfew_environments{state="stopped"})` is
    /// how many environments are down right now.
    pub environments: ReplacedGauge,
    /// Opt-in (`per_environment`): 1 per environment, labelled with its name, project,
    /// rule and state. One series per environment: keep it off for large organizations.
    pub environment_state: Option<ReplacedGauge>,
}

impl Fleet {
    pub fn register(r: &Registry, per_environment: bool) -> Fleet {
        Fleet {
            environments: ReplacedGauge::new(
                r,
                "curfew_environments",
                "Environments in the last listing, by state and matching rule",
                &["state", "rule"],
            ),
            environment_state: per_environment.then(|| {
                ReplacedGauge::new(
                    r,
                    "curfew_environment_state",
                    "1 per environment, labelled with its state (opt-in)",
                    &["environment", "project", "rule", "state"],
                )
            }),
        }
    }
}

/// What the executor did.
pub(super) struct Actions {
    /// Actions curfew attempted, by action (`stop`, `start`, `delete`, `warn`), rule and
    /// result (`ok`, `error`, `dry_run`, `skipped_cap`). Alert on a rising `error` rate.
    pub total: IntCounterVec,
    /// Times a safety cap held actions back (`max_stops_per_pass`,
    /// `max_deletes_per_hour`). Frequent hits mean the cap is too low or a rule is too broad.
    pub caps_hit: IntCounterVec,
    /// Environments whose action was due but not done in the last pass (capped, failed,
    /// dry-run, waiting for a second confirmation), per action.
    pub due_not_done: IntGaugeVec,
    /// Stops of curfew's put back by someone else, by rule and by who (`argocd-controller`,
    /// `kustomize-controller`, `helm-controller`, `keda-operator`, `person`, `other`).
    pub reverted: IntCounterVec,
}

impl Actions {
    pub fn register(r: &Registry) -> Actions {
        let actions = Actions {
            total: register(
                r,
                IntCounterVec::new(
                    Opts::new("curfew_actions_total", "Actions attempted, by result"),
                    &["action", "rule", "result"],
                ),
            ),
            caps_hit: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "curfew_caps_hit_total",
                        "Times a safety cap held actions back",
                    ),
                    &["cap"],
                ),
            ),
            due_not_done: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "curfew_due_not_done",
                        "Environments whose action was due but not done in the last pass",
                    ),
                    &["action"],
                ),
            ),
            reverted: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "curfew_reverted_total",
                        "Stops of curfew's put back by someone else, by rule and by who",
                    ),
                    &["rule", "by"],
                ),
            ),
        };
        for cap in Cap::ALL {
            actions.caps_hit.with_label_values(&[cap.as_str()]);
        }
        actions
    }
}

/// What curfew's stops saved.
pub(super) struct Savings {
    /// Seconds environments have spent stopped by curfew, summed over environments, per
    /// rule. Continues from the ledger after a restart. `increase(...[1d]) / 3600` is
    /// environment-hours saved per day.
    pub stopped_seconds: CounterVec,
    /// Money not spent because curfew kept environments stopped (hourly cost × hours
    /// stopped), per rule and currency. Continues from the ledger after a restart.
    pub saved_cost: CounterVec,
    /// Cost per hour avoided right now: the hourly cost of every environment curfew
    /// currently keeps stopped, per currency.
    pub rate: GaugeVec,
    /// What the rules in force would save over the coming days (`horizon`: `7d`, `30d`)
    /// against every environment running all the time, per rule and currency: the
    /// daemon's projection ([`crate::simulate`]), made after each reload and once a day,
    /// in dry-run too.
    pub projected: ReplacedGauge<AtomicF64>,
}

impl Savings {
    pub fn register(r: &Registry) -> Savings {
        Savings {
            stopped_seconds: register(
                r,
                CounterVec::new(
                    Opts::new(
                        "curfew_stopped_seconds_total",
                        "Seconds environments spent stopped by curfew",
                    ),
                    &["rule"],
                ),
            ),
            saved_cost: register(
                r,
                CounterVec::new(
                    Opts::new(
                        "curfew_saved_cost_total",
                        "Cost avoided by keeping environments stopped",
                    ),
                    &["rule", "currency"],
                ),
            ),
            rate: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "curfew_savings_rate",
                        "Cost per hour currently avoided by stopped environments",
                    ),
                    &["currency"],
                ),
            ),
            projected: ReplacedGauge::new(
                r,
                "curfew_projected_savings",
                "What the rules in force would save over the coming days, by rule",
                &["rule", "horizon", "currency"],
            ),
        }
    }
}

/// The passes, and the rule file's reloads.
pub(super) struct Passes {
    /// How long reconcile passes take (list, decide, act), in seconds.
    pub duration: Histogram,
    /// Reconcile passes by result (`ok`, `error`, `partial`).
    pub total: IntCounterVec,
    /// When the last fully successful pass finished (Unix seconds). Alert when
    /// `time() - curfew_last_reconcile_success_timestamp_seconds` grows beyond a few resyncs.
    pub last_success: Gauge,
    /// When curfew will next wake up on its own (Unix seconds): the earliest schedule
    /// boundary or the periodic resync; 0 when nothing is planned.
    pub next_wakeup: Gauge,
    /// Rule-file reloads by result (`ok`, `error`). After an `error` curfew keeps
    /// applying the last good file.
    pub config_reloads: IntCounterVec,
    /// 1 while this replica leads (holds the Lease, or runs without an election), 0 while
    /// it stands by.
    pub leader: IntGauge,
}

impl Passes {
    pub fn register(r: &Registry) -> Passes {
        let passes = Passes {
            duration: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "curfew_reconcile_duration_seconds",
                        "Duration of reconcile passes",
                    )
                    .buckets(PASS_BUCKETS.to_vec()),
                ),
            ),
            total: register(
                r,
                IntCounterVec::new(
                    Opts::new("curfew_reconcile_total", "Reconcile passes, by result"),
                    &["result"],
                ),
            ),
            last_success: register(
                r,
                Gauge::new(
                    "curfew_last_reconcile_success_timestamp_seconds",
                    "Unix time the last successful reconcile pass finished",
                ),
            ),
            next_wakeup: register(
                r,
                Gauge::new(
                    "curfew_next_wakeup_timestamp_seconds",
                    "Unix time of the next planned pass (0: none)",
                ),
            ),
            config_reloads: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "curfew_config_reloads_total",
                        "Rule-file reloads, by result",
                    ),
                    &["result"],
                ),
            ),
            leader: register(
                r,
                IntGauge::new(
                    "curfew_leader",
                    "1 while this replica leads (holds the Lease, or runs without leader election), 0 while it stands by",
                ),
            ),
        };
        // Without an election the only replica leads; an election sets it as it goes.
        passes.leader.set(1);
        for result in ["ok", "error"] {
            passes.config_reloads.with_label_values(&[result]);
        }
        for result in PassResult::ALL {
            passes.total.with_label_values(&[result.as_str()]);
        }
        passes
    }
}

/// The platform's API as curfew calls it.
pub(super) struct PlatformCalls {
    /// HTTP calls to the platform's API by platform, operation and status (an HTTP
    /// code, or `timeout`/`network`). 429s and 5xx here explain slow or partial passes.
    pub total: IntCounterVec,
    /// Latency of HTTP calls to the platform's API, in seconds.
    pub duration: HistogramVec,
}

impl PlatformCalls {
    pub fn register(r: &Registry) -> PlatformCalls {
        PlatformCalls {
            total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "curfew_platform_requests_total",
                        "HTTP requests to the platform API, by status",
                    ),
                    &["platform", "operation", "status"],
                ),
            ),
            duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "curfew_platform_request_duration_seconds",
                        "Latency of HTTP requests to the platform API",
                    )
                    .buckets(REQUEST_BUCKETS.to_vec()),
                    &["platform", "operation"],
                ),
            ),
        }
    }
}

/// Notifications and the admin API: what people are told, and who was refused.
pub(super) struct People {
    /// Notification deliveries by target (its name under `notify`), kind
    /// (`delete_warning`, `deleted`, `failure`, `digest`) and result: `ok`, `error` (gave
    /// up after retries, or could not be sent), `dropped` (the queue was full) and `retry`
    /// (one failed attempt that was tried again).
    pub notifications: IntCounterVec,
    /// Admin API requests refused for their token, by reason (`missing`, `refused`). A
    /// rise is someone guessing, or a client with a stale token.
    pub admin_auth_failures: IntCounterVec,
}

impl People {
    pub fn register(r: &Registry) -> People {
        let people = People {
            notifications: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "curfew_notifications_total",
                        "Notification deliveries and retried attempts, by result",
                    ),
                    &["target", "kind", "result"],
                ),
            ),
            admin_auth_failures: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "curfew_admin_auth_failures_total",
                        "Admin API requests refused for their token, by reason",
                    ),
                    &["reason"],
                ),
            ),
        };
        for reason in AuthFailure::ALL {
            people
                .admin_auth_failures
                .with_label_values(&[reason.as_str()]);
        }
        people
    }
}

/// Always 1; the `version` label says which curfew is running.
pub(super) fn build_info(r: &Registry, version: &str) -> IntGaugeVec {
    let info = register(
        r,
        IntGaugeVec::new(
            Opts::new(
                "curfew_build_info",
                "Always 1, labelled with curfew's version",
            ),
            &["version"],
        ),
    );
    info.with_label_values(&[version]).set(1);
    info
}

/// A gauge family replaced as a whole each pass. Unlike resetting then refilling it,
/// only vanished series are removed, so a scrape in between never sees an empty family.
pub(super) struct ReplacedGauge<P: Atomic = AtomicI64> {
    gauge: GenericGaugeVec<P>,
    shown: Mutex<HashSet<Vec<String>>>,
}

impl<P: Atomic + 'static> ReplacedGauge<P> {
    fn new(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> ReplacedGauge<P> {
        ReplacedGauge {
            gauge: register(
                registry,
                GenericGaugeVec::new(Opts::new(name, help), labels),
            ),
            shown: Mutex::new(HashSet::new()),
        }
    }

    pub fn replace(&self, values: HashMap<Vec<String>, P::T>) {
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in shown.iter().filter(|labels| !values.contains_key(*labels)) {
            // Absent already is as good as removed.
            let _ = self.gauge.remove_label_values(gone);
        }
        for (labels, value) in &values {
            self.gauge.with_label_values(labels).set(*value);
        }
        *shown = values.into_keys().collect();
    }
}

/// Registers a collector built from constant names and label lists.
fn register<C>(registry: &Registry, collector: prometheus::Result<C>) -> C
where
    C: prometheus::core::Collector + Clone + 'static,
{
    // Names, help texts and label lists are constants of this file, each registered
    // once; the tests build `Metrics`, so a mistake here fails them, not a deployment.
    let collector = collector.expect("metric definition is valid");
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector
}

/// A wake by request takes from seconds (a Kubernetes Deployment) to many minutes (a
/// Qovery environment built again).
const WAKE_BUCKETS: &[f64] = &[
    5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0,
];

/// Wake on request (the public port's `/wake/…` and Sablier's API).
pub(super) struct Wakes {
    /// Wakes asked for by requests, by rule and result: `started` (the start was asked
    /// for), `already_running`, `refused` (production, protected, a rule without
    /// `wake_on_request`, unknown), `capped` (`max_wakes_per_hour`), `failed` (the
    /// platform refused the start). Alert on `failed`.
    pub total: IntCounterVec,
    /// From the request that woke an environment to its first time serving, by rule.
    pub ready_seconds: HistogramVec,
    /// Requests the public port turned away with 429 because their client went past
    /// `daemon.public_rate_per_client` (no label: a label per client would let anyone grow
    /// the series without bound; the log names the client).
    pub limited: IntCounter,
}

impl Wakes {
    pub const RESULTS: [&'static str; 5] =
        ["started", "already_running", "refused", "capped", "failed"];

    pub fn register(r: &Registry) -> Wakes {
        Wakes {
            total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "curfew_wakes_total",
                        "Wakes asked for by requests, by result",
                    ),
                    &["rule", "result"],
                ),
            ),
            ready_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "curfew_wake_ready_seconds",
                        "Time from the request that woke an environment to its first time serving",
                    )
                    .buckets(WAKE_BUCKETS.to_vec()),
                    &["rule"],
                ),
            ),
            limited: register(
                r,
                IntCounter::new(
                    "curfew_public_requests_limited_total",
                    "Requests on the public port refused with 429 by the per-client rate limit",
                ),
            ),
        }
    }
}
