//! What curfew exports to Prometheus.
//!
//! [`Metrics`] owns its own registry (no global state, so tests and two daemons in one
//! process never share counters) and offers one typed method per thing that happens:
//! call sites pass enums and rule names, never label strings in a fixed order.
//!
//! Label values stay bounded: rule, action, result, platform, operation, currency. The
//! only series that names environments is the opt-in `curfew_environment_state` gauge.
//!
//! The families are registered by groups (`families.rs`): the fleet, the actions, the
//! savings, the passes, the platform's calls, and people (notifications, the admin API).
//! Events ([`crate::events`]) are counted through [`Counter`], which [`Metrics`]
//! implements.

mod families;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntGaugeVec, Registry, TextEncoder};

use families::{Actions, Fleet, Passes, People, PlatformCalls};

use crate::events::{
    ActResult, AuthFailure, Cap, Counter, NotificationResult, PassResult, RevertedBy,
};
use crate::ledger::Savings;
use crate::platform::{EnvState, RequestObserver};
use crate::policy::Action;

/// The `rule` label of environments (and actions) that no rule matched.
pub const UNMATCHED_RULE: &str = "unmatched";

/// curfew's Prometheus metrics and the registry that holds them.
pub struct Metrics {
    registry: Registry,
    fleet: Fleet,
    actions: Actions,
    savings: families::Savings,
    passes: Passes,
    platform: PlatformCalls,
    people: People,
    wakes: families::Wakes,
    /// Kept with the others: the registry only holds its collector.
    _build_info: IntGaugeVec,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("per_environment", &self.per_environment())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// All of curfew's metrics in a fresh registry. `version` goes to
    /// `curfew_build_info`; `per_environment` turns on `curfew_environment_state`.
    pub fn new(version: &str, per_environment: bool) -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let metrics = Metrics {
            fleet: Fleet::register(r, per_environment),
            actions: Actions::register(r),
            savings: families::Savings::register(r),
            passes: Passes::register(r),
            platform: PlatformCalls::register(r),
            people: People::register(r),
            wakes: families::Wakes::register(r),
            _build_info: families::build_info(r, version),
            registry,
        };
        #[cfg(target_os = "linux")]
        if let Err(e) = metrics.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::warn!(error = %e, "cannot export process metrics");
        }
        metrics
    }

    /// Whether `curfew_environment_state` is on.
    pub fn per_environment(&self) -> bool {
        self.fleet.environment_state.is_some()
    }

    /// Everything, in Prometheus' text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        text
    }

    /// Replaces `curfew_environments` with this pass's counts: series absent from
    /// `counts` disappear. Repeated (state, rule) pairs add up.
    pub fn set_environments<'a>(
        &self,
        counts: impl IntoIterator<Item = (EnvState, Option<&'a str>, u64)>,
    ) {
        // Summed by state and rule first: a label set is made once per series, not once
        // per environment.
        let mut sums: HashMap<(EnvState, &str), i64> = HashMap::new();
        for (state, rule, n) in counts {
            let total = sums.entry((state, rule_label(rule))).or_default();
            *total = total.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let values = sums
            .into_iter()
            .map(|((state, rule), n)| (vec![state.as_str().to_owned(), rule.to_owned()], n))
            .collect();
        self.fleet.environments.replace(values);
    }

    /// Creates every `curfew_actions_total` series the rules can produce at 0 (see
    /// [`Metrics::new`]): each rule (and the unmatched) × action × result; and each rule's
    /// `curfew_reverted_total` series.
    pub fn expect_rules<'a>(&self, rules: impl IntoIterator<Item = &'a str>) {
        let actions = [Action::Stop, Action::Start, Action::Delete, Action::Warn];
        for rule in rules {
            for action in actions {
                for result in ActResult::LABELS {
                    self.actions
                        .total
                        .with_label_values(&[action.as_str(), rule, result]);
                }
            }
            for by in RevertedBy::ALL {
                self.actions
                    .reverted
                    .with_label_values(&[rule, by.as_str()]);
            }
            self.expect_wakes(rule);
        }
    }

    /// Brings the savings counters up to the ledger's totals. Counters never go down:
    /// a total below what is already exported (a ledger replaced by an older copy) is
    /// ignored rather than making Prometheus see a reset.
    pub fn set_savings_totals(&self, totals: &[Savings]) {
        // The ledger keeps one row per (rule, currency); stopped time is per rule only.
        let mut stopped: HashMap<&str, f64> = HashMap::new();
        for s in totals {
            *stopped.entry(s.rule.as_str()).or_default() += s.stopped_seconds;
            raise_to(
                &self
                    .savings
                    .saved_cost
                    .with_label_values(&[&s.rule, &s.currency]),
                s.saved,
            );
        }
        for (rule, seconds) in stopped {
            raise_to(
                &self.savings.stopped_seconds.with_label_values(&[rule]),
                seconds,
            );
        }
    }

    /// Sets the cost per hour currently avoided in `currency`.
    pub fn set_savings_rate(&self, currency: &str, per_hour: f64) {
        self.savings
            .rate
            .with_label_values(&[currency])
            .set(per_hour);
    }

    /// Whether this replica leads (`curfew_leader`).
    pub fn set_leader(&self, leading: bool) {
        self.passes.leader.set(i64::from(leading));
    }

    /// Sets how many environments had `action` due but not done in the last pass.
    pub fn set_due_not_done(&self, action: Action, n: u64) {
        self.actions
            .due_not_done
            .with_label_values(&[action.as_str()])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Replaces `curfew_projected_savings` with a projection's: `(rule, days, saved)` in
    /// `currency`, the horizon written `7d`.
    pub fn set_projected_savings<'a>(
        &self,
        currency: &str,
        savings: impl IntoIterator<Item = (&'a str, u32, f64)>,
    ) {
        let values = savings
            .into_iter()
            .map(|(rule, days, saved)| {
                let labels = vec![rule.to_owned(), format!("{days}d"), currency.to_owned()];
                (labels, saved)
            })
            .collect();
        self.savings.projected.replace(values);
    }

    /// Replaces `curfew_environment_state` with one series per (environment, project,
    /// rule, state). Does nothing unless per-environment metrics are on.
    pub fn set_environment_states(&self, environments: &[(&str, &str, Option<&str>, EnvState)]) {
        let Some(gauge) = &self.fleet.environment_state else {
            return;
        };
        let values = environments
            .iter()
            .map(|&(env, project, rule, state)| {
                let labels = [env, project, rule_label(rule), state.as_str()];
                (labels.map(str::to_owned).to_vec(), 1)
            })
            .collect();
        gauge.replace(values);
    }

    fn platform_request(
        &self,
        platform: &'static str,
        operation: &'static str,
        status: &str,
        elapsed: Duration,
    ) {
        self.platform
            .total
            .with_label_values(&[platform, operation, status_label(status)])
            .inc();
        self.platform
            .duration
            .with_label_values(&[platform, operation])
            .observe(elapsed.as_secs_f64());
    }
}

impl Counter for Metrics {
    fn action(&self, action: Action, rule: Option<&str>, result: &ActResult) {
        self.actions
            .total
            .with_label_values(&[action.as_str(), rule_label(rule), result.label()])
            .inc();
    }

    fn pass(
        &self,
        result: PassResult,
        duration: Duration,
        finished_at_unix: f64,
        next_wakeup_unix: Option<f64>,
    ) {
        let passes = &self.passes;
        passes.duration.observe(duration.as_secs_f64());
        passes.total.with_label_values(&[result.as_str()]).inc();
        if result == PassResult::Ok {
            passes.last_success.set(finished_at_unix);
        }
        passes.next_wakeup.set(next_wakeup_unix.unwrap_or(0.0));
    }

    fn config_reload(&self, ok: bool) {
        self.passes
            .config_reloads
            .with_label_values(&[ok_or_error(ok)])
            .inc();
    }

    fn cap_hit(&self, cap: Cap) {
        self.actions
            .caps_hit
            .with_label_values(&[cap.as_str()])
            .inc();
    }

    fn notification(&self, target: &str, kind: &'static str, result: NotificationResult) {
        self.people
            .notifications
            .with_label_values(&[target, kind, result.as_str()])
            .inc();
    }

    fn reverted(&self, rule: &str, by: RevertedBy) {
        self.actions
            .reverted
            .with_label_values(&[rule, by.as_str()])
            .inc();
    }

    fn admin_auth_failure(&self, reason: AuthFailure) {
        self.people
            .admin_auth_failures
            .with_label_values(&[reason.as_str()])
            .inc();
    }
}

/// Feeds a platform adapter's HTTP calls into `curfew_platform_requests_total` and
/// `curfew_platform_request_duration_seconds`.
#[derive(Debug, Clone)]
pub struct PlatformRequests {
    pub metrics: Arc<Metrics>,
    /// `qovery`, `sandbox`, `kubernetes`.
    pub platform: &'static str,
}

impl PlatformRequests {
    pub fn new(metrics: Arc<Metrics>, platform: &'static str) -> PlatformRequests {
        PlatformRequests { metrics, platform }
    }
}

impl RequestObserver for PlatformRequests {
    fn request(&self, endpoint: &'static str, status: &str, elapsed: Duration) {
        self.metrics
            .platform_request(self.platform, endpoint, status, elapsed);
    }
}

/// Raises a counter to `total`; never lowers it.
fn raise_to(counter: &prometheus::Counter, total: f64) {
    let delta = total - counter.get();
    if delta.is_finite() && delta > 0.0 {
        counter.inc_by(delta);
    }
}

fn rule_label(rule: Option<&str>) -> &str {
    rule.unwrap_or(UNMATCHED_RULE)
}

fn ok_or_error(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// An HTTP code or a short word; anything else (which our adapters never send) is
/// folded into `other` so a bug cannot explode the label's cardinality.
fn status_label(status: &str) -> &str {
    let short_word = !status.is_empty()
        && status.len() <= 16
        && status
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if short_word { status } else { "other" }
}

/// Wake on request.
impl Metrics {
    /// Creates the rule's `curfew_wakes_total` series at 0, and its wake histogram.
    fn expect_wakes(&self, rule: &str) {
        for result in families::Wakes::RESULTS {
            self.wakes.total.with_label_values(&[rule, result]);
        }
        self.wakes.ready_seconds.with_label_values(&[rule]);
    }

    /// Counts one wake asked for by a request, by its environment's rule (`None`: no rule
    /// matched) and its result (one of `started`, `already_running`, `refused`, `capped`,
    /// `failed`).
    pub fn wake(&self, rule: Option<&str>, result: &'static str) {
        self.wakes
            .total
            .with_label_values(&[rule_label(rule), result])
            .inc();
    }

    /// A woken environment served for the first time, `seconds` after its wake.
    pub fn wake_ready(&self, rule: Option<&str>, seconds: f64) {
        self.wakes
            .ready_seconds
            .with_label_values(&[rule_label(rule)])
            .observe(seconds.max(0.0));
    }

    /// Counts a request the public port refused because its client went past
    /// `daemon.public_rate_per_client`.
    pub fn public_request_limited(&self) {
        self.wakes.limited.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Outcome;

    /// One sample line of the text format: `name{label="value",...} value`.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// A strict reader of sample lines, so a malformed exposition fails a test rather
    /// than a Prometheus scrape.
    fn parse_sample(line: &str) -> Result<Sample, String> {
        let ident = |s: &str, colons: bool| -> usize {
            s.char_indices()
                .take_while(|&(i, c)| {
                    c == '_'
                        || c.is_ascii_alphabetic()
                        || (colons && c == ':')
                        || (i > 0 && c.is_ascii_digit())
                })
                .count()
        };
        let n = ident(line, true);
        if n == 0 {
            return Err(format!("no metric name: {line:?}"));
        }
        let (name, mut rest) = line.split_at(n);
        let mut labels = Vec::new();
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let k = ident(inner, false);
                let (key, after) = inner.split_at(k);
                let mut chars = after
                    .strip_prefix("=\"")
                    .filter(|_| k > 0)
                    .ok_or(format!("bad label in {line:?}"))?
                    .chars();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("bad escape {other:?} in {line:?}")),
                        },
                        Some('\n') | None => return Err(format!("unterminated value: {line:?}")),
                        Some(c) => value.push(c),
                    }
                }
                labels.push((key.to_owned(), value));
                inner = chars.as_str();
                inner = inner.strip_prefix(',').unwrap_or(inner);
            }
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or(format!("no space before the value: {line:?}"))?;
        let value = value
            .parse()
            .map_err(|_| format!("bad value in {line:?}"))?;
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    fn samples(metrics: &Metrics) -> Vec<Sample> {
        metrics
            .encode()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| parse_sample(l).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    /// The value of the series `name` with exactly `labels` (in any order).
    fn value(metrics: &Metrics, name: &str, labels: Labels) -> Option<f64> {
        samples(metrics)
            .into_iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|&(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    type Labels<'a> = &'a [(&'a str, &'a str)];

    fn savings(rule: &str, currency: &str, stopped_seconds: f64, saved: f64) -> Savings {
        Savings {
            rule: rule.into(),
            currency: currency.into(),
            stopped_seconds,
            saved,
        }
    }

    #[test]
    fn every_metric_is_exported_once_used() {
        let m = Metrics::new("1.2.3", true);
        m.set_environments([(EnvState::Stopped, Some("office-hours"), 3)]);
        m.action(
            Action::Stop,
            Some("office-hours"),
            &ActResult::Done(Outcome::Accepted),
        );
        m.set_savings_totals(&[savings("office-hours", "EUR", 7200.0, 0.8)]);
        m.set_savings_rate("EUR", 1.2);
        m.pass(
            PassResult::Ok,
            Duration::from_millis(250),
            1.8e9,
            Some(1.8e9 + 60.0),
        );
        m.config_reload(true);
        m.notification("team-slack", "delete_warning", NotificationResult::Ok);
        m.cap_hit(Cap::MaxDeletesPerHour);
        m.set_due_not_done(Action::Delete, 2);
        m.set_environment_states(&[("pr-12", "web", Some("office-hours"), EnvState::Stopped)]);
        m.set_projected_savings("EUR", [("office-hours", 7, 120.5)]);
        let m = Arc::new(m);
        let observer: Arc<dyn RequestObserver> =
            Arc::new(PlatformRequests::new(m.clone(), "qovery"));
        observer.request("stop", "202", Duration::from_millis(40));

        let text = m.encode();
        for name in [
            "curfew_environments",
            "curfew_actions_total",
            "curfew_stopped_seconds_total",
            "curfew_saved_cost_total",
            "curfew_savings_rate",
            "curfew_reconcile_duration_seconds_bucket",
            "curfew_reconcile_total",
            "curfew_last_reconcile_success_timestamp_seconds",
            "curfew_next_wakeup_timestamp_seconds",
            "curfew_platform_requests_total",
            "curfew_platform_request_duration_seconds_bucket",
            "curfew_config_reloads_total",
            "curfew_build_info",
            "curfew_notifications_total",
            "curfew_caps_hit_total",
            "curfew_due_not_done",
            "curfew_admin_auth_failures_total",
            "curfew_environment_state",
            "curfew_projected_savings",
            "curfew_public_requests_limited_total",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{name}{{"))
                        || l.starts_with(&format!("{name} "))),
                "{name} missing from\n{text}"
            );
        }
        if cfg!(target_os = "linux") {
            assert!(text.contains("process_resident_memory_bytes"), "{text}");
        }
        assert_eq!(
            value(&m, "curfew_build_info", &[("version", "1.2.3")]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &m,
                "curfew_platform_requests_total",
                &[
                    ("platform", "qovery"),
                    ("operation", "stop"),
                    ("status", "202")
                ]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn savings_counters_resume_from_the_ledger_and_never_go_down() {
        // A restarted daemon: fresh counters, totals from the ledger.
        let m = Metrics::new("1", false);
        let stopped = |m: &Metrics| value(m, "curfew_stopped_seconds_total", &[("rule", "a")]);
        let saved = |m: &Metrics, currency| {
            value(
                m,
                "curfew_saved_cost_total",
                &[("rule", "a"), ("currency", currency)],
            )
        };
        // (ledger totals, expected stopped seconds, expected EUR saved)
        let steps: &[(&[Savings], f64, f64)] = &[
            (&[savings("a", "EUR", 3600.0, 0.5)], 3600.0, 0.5),
            (&[savings("a", "EUR", 5400.0, 0.75)], 5400.0, 0.75),
            // A lower total (an older ledger copy) must not make the counter go down.
            (&[savings("a", "EUR", 10.0, 0.1)], 5400.0, 0.75),
            (
                &[savings("a", "EUR", f64::NAN, f64::NEG_INFINITY)],
                5400.0,
                0.75,
            ),
            (&[savings("a", "EUR", 7200.0, 1.0)], 7200.0, 1.0),
        ];
        for (i, (totals, want_stopped, want_saved)) in steps.iter().enumerate() {
            m.set_savings_totals(totals);
            assert_eq!(stopped(&m), Some(*want_stopped), "step {i}");
            assert_eq!(saved(&m, "EUR"), Some(*want_saved), "step {i}");
        }
        // A rule that changed currency: stopped time adds up over its ledger rows.
        m.set_savings_totals(&[
            savings("a", "EUR", 7200.0, 1.0),
            savings("a", "USD", 3600.0, 0.6),
        ]);
        assert_eq!(stopped(&m), Some(10_800.0));
        assert_eq!(saved(&m, "USD"), Some(0.6));
    }

    #[test]
    fn environments_gauge_drops_vanished_series() {
        let m = Metrics::new("1", false);
        let env = |m: &Metrics, state, rule| {
            value(
                m,
                "curfew_environments",
                &[("state", state), ("rule", rule)],
            )
        };
        m.set_environments([
            (EnvState::Running, Some("a"), 2),
            (EnvState::Stopped, Some("a"), 1),
            (EnvState::Running, None, 4),
        ]);
        assert_eq!(env(&m, "running", "a"), Some(2.0));
        assert_eq!(env(&m, "running", UNMATCHED_RULE), Some(4.0));
        m.set_environments([
            (EnvState::Stopped, Some("a"), 1),
            (EnvState::Stopped, Some("a"), 2),
        ]);
        assert_eq!(env(&m, "stopped", "a"), Some(3.0), "repeated pairs add up");
        assert_eq!(env(&m, "running", "a"), None);
        assert_eq!(env(&m, "running", UNMATCHED_RULE), None);
        m.set_environments([]);
        assert!(!m.encode().contains("curfew_environments{"));
    }

    #[test]
    fn projected_savings_are_replaced_by_the_next_projection() {
        let m = Metrics::new("1", false);
        let saved = |m: &Metrics, rule, horizon| {
            value(
                m,
                "curfew_projected_savings",
                &[("rule", rule), ("horizon", horizon), ("currency", "EUR")],
            )
        };
        m.set_projected_savings("EUR", [("a", 7, 10.25), ("a", 30, 40.5), ("b", 7, 0.0)]);
        assert_eq!(saved(&m, "a", "7d"), Some(10.25));
        assert_eq!(saved(&m, "a", "30d"), Some(40.5));
        assert_eq!(saved(&m, "b", "7d"), Some(0.0));
        // Rule "b" renamed by a reload: its series goes.
        m.set_projected_savings("EUR", [("a", 7, 11.0), ("c", 7, 1.5)]);
        assert_eq!(saved(&m, "a", "7d"), Some(11.0));
        assert_eq!(saved(&m, "b", "7d"), None);
        assert_eq!(saved(&m, "a", "30d"), None);
        assert_eq!(saved(&m, "c", "7d"), Some(1.5));
    }

    #[test]
    fn per_environment_gauge_only_when_enabled() {
        let states = [("pr-1", "web", Some("a"), EnvState::Running)];
        let off = Metrics::new("1", false);
        off.set_environment_states(&states);
        assert!(!off.per_environment());
        assert!(!off.encode().contains("curfew_environment_state"));

        let on = Metrics::new("1", true);
        on.set_environment_states(&states);
        let labels = [
            ("environment", "pr-1"),
            ("project", "web"),
            ("rule", "a"),
            ("state", "running"),
        ];
        assert_eq!(value(&on, "curfew_environment_state", &labels), Some(1.0));
        // The environment was stopped, then deleted.
        on.set_environment_states(&[("pr-1", "web", Some("a"), EnvState::Stopped)]);
        assert_eq!(value(&on, "curfew_environment_state", &labels), None);
        on.set_environment_states(&[]);
        assert!(!on.encode().contains("curfew_environment_state{"));
    }

    #[test]
    fn pass_sets_last_success_only_on_success() {
        let m = Metrics::new("1", false);
        let last = |m: &Metrics| value(m, "curfew_last_reconcile_success_timestamp_seconds", &[]);
        let next = |m: &Metrics| value(m, "curfew_next_wakeup_timestamp_seconds", &[]);
        m.pass(PassResult::Ok, Duration::from_secs(1), 100.0, Some(160.0));
        assert_eq!((last(&m), next(&m)), (Some(100.0), Some(160.0)));
        m.pass(PassResult::Partial, Duration::from_secs(1), 200.0, None);
        assert_eq!((last(&m), next(&m)), (Some(100.0), Some(0.0)));
        m.pass(
            PassResult::Error,
            Duration::from_secs(1),
            300.0,
            Some(360.0),
        );
        assert_eq!(last(&m), Some(100.0));
        for result in ["ok", "partial", "error"] {
            assert_eq!(
                value(&m, "curfew_reconcile_total", &[("result", result)]),
                Some(1.0)
            );
        }
        assert_eq!(
            value(&m, "curfew_reconcile_duration_seconds_count", &[]),
            Some(3.0)
        );
    }

    #[test]
    fn labels_come_from_the_typed_arguments() {
        let m = Metrics::new("1", false);
        m.action(
            Action::Delete,
            Some("ttl"),
            &ActResult::SkippedCap(Cap::MaxDeletesPerHour),
        );
        m.action(Action::Stop, None, &ActResult::DryRun);
        m.cap_hit(Cap::MaxStopsPerPass);
        m.config_reload(false);
        m.notification("audit-hook", "failure", NotificationResult::Dropped);
        m.set_due_not_done(Action::Stop, 5);
        m.set_due_not_done(Action::Stop, 0);
        // (metric, labels, expected value)
        let cases: &[(&str, Labels, f64)] = &[
            (
                "curfew_actions_total",
                &[
                    ("action", "delete"),
                    ("rule", "ttl"),
                    ("result", "skipped_cap"),
                ],
                1.0,
            ),
            (
                "curfew_actions_total",
                &[
                    ("action", "stop"),
                    ("rule", UNMATCHED_RULE),
                    ("result", "dry_run"),
                ],
                1.0,
            ),
            (
                "curfew_caps_hit_total",
                &[("cap", "max_stops_per_pass")],
                1.0,
            ),
            ("curfew_config_reloads_total", &[("result", "error")], 1.0),
            (
                "curfew_notifications_total",
                &[
                    ("target", "audit-hook"),
                    ("kind", "failure"),
                    ("result", "dropped"),
                ],
                1.0,
            ),
            ("curfew_due_not_done", &[("action", "stop")], 0.0),
        ];
        for (name, labels, want) in cases {
            assert_eq!(value(&m, name, labels), Some(*want), "{name} {labels:?}");
        }
    }

    #[test]
    fn odd_request_statuses_fold_into_other() {
        let m = Arc::new(Metrics::new("1", false));
        let observer = PlatformRequests::new(m.clone(), "sandbox");
        for status in ["429", "timeout", "", "a status with spaces", "x{y}\\"] {
            observer.request("list_status", status, Duration::from_millis(5));
        }
        let count = |status| {
            value(
                &m,
                "curfew_platform_requests_total",
                &[
                    ("platform", "sandbox"),
                    ("operation", "list_status"),
                    ("status", status),
                ],
            )
        };
        assert_eq!(count("429"), Some(1.0));
        assert_eq!(count("timeout"), Some(1.0));
        assert_eq!(count("other"), Some(3.0));
    }

    #[test]
    fn exposition_is_well_formed_even_with_odd_rule_names() {
        let m = Metrics::new("1.0.0-rc.1+\"build\"", true);
        let odd = "quote\" back\\slash\nnewline {brace}, comma=é";
        m.set_environments([(EnvState::Unknown, Some(odd), 1)]);
        m.action(Action::Warn, Some(odd), &ActResult::Failed("e".into()));
        m.set_savings_totals(&[savings(odd, "€", 1.0, 1e-9)]);
        m.set_environment_states(&[(odd, odd, Some(odd), EnvState::Error)]);
        let text = m.encode();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix('#') {
                assert!(
                    comment.starts_with(" HELP ") || comment.starts_with(" TYPE "),
                    "{line}"
                );
            } else {
                let sample = parse_sample(line).unwrap_or_else(|e| panic!("{e}"));
                assert!(sample.name.starts_with("curfew_") || sample.name.starts_with("process_"));
            }
        }
        assert_eq!(
            value(
                &m,
                "curfew_environments",
                &[("state", "unknown"), ("rule", odd)]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn known_series_start_at_zero_so_their_first_event_is_an_increase() {
        let m = Metrics::new("1.0.0", false);
        m.expect_rules(["previews"]);
        let text = m.encode();
        for line in [
            "curfew_actions_total{action=\"stop\",result=\"ok\",rule=\"previews\"} 0",
            "curfew_actions_total{action=\"delete\",result=\"skipped_cap\",rule=\"previews\"} 0",
            "curfew_config_reloads_total{result=\"error\"} 0",
            "curfew_reconcile_total{result=\"partial\"} 0",
            "curfew_caps_hit_total{cap=\"max_deletes_per_hour\"} 0",
            "curfew_admin_auth_failures_total{reason=\"refused\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        m.action(
            Action::Stop,
            Some("previews"),
            &ActResult::Done(Outcome::Accepted),
        );
        assert!(m.encode().lines().any(
            |l| l == "curfew_actions_total{action=\"stop\",result=\"ok\",rule=\"previews\"} 1"
        ));
    }
}
