//! The daemon's settings, read from the rule file (with the `CURFEW_*` overrides of
//! [`super::overrides`] already applied to it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::raw::{At, RawFile};
use crate::platform::Mode;
use crate::schedule::parse_duration;

/// How the daemon runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub ledger: PathBuf,
    pub log_format: LogFormat,
    pub resync: Duration,
    pub per_environment_metrics: bool,
    pub admin_token_env: Option<String>,
    pub admin_token_file: Option<PathBuf>,
    /// The longest snooze or wake an operator may ask for.
    pub admin_max_snooze: Duration,
    pub platform: PlatformSettings,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Where environments live.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformSettings {
    /// The in-process Qovery-compatible sandbox.
    Sandbox(SandboxSettings),
    Qovery(QoverySettings),
    Kubernetes(KubernetesSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSettings {
    pub projects: u32,
    pub environments: u32,
    pub seed: u64,
    pub clock_speed: f64,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            projects: 4,
            environments: 24,
            seed: 1,
            clock_speed: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QoverySettings {
    pub organization: String,
    pub token_env: String,
    pub token_file: Option<PathBuf>,
    pub api_url: String,
    pub max_concurrency: u32,
    pub requests_per_second: f64,
    pub timeout: Duration,
}

/// Namespaces of a Kubernetes cluster (`platform.kubernetes`).
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    pub namespace_selector: String,
    pub project_label: String,
    pub mode_label: String,
    pub default_mode: Mode,
    pub cluster: Option<String>,
    pub context: Option<String>,
    pub max_concurrency: u32,
    pub timeout: Duration,
    pub events: bool,
    pub leader_election: bool,
    pub lease_name: String,
    /// None: curfew's own namespace.
    pub lease_namespace: Option<String>,
    pub traffic: Option<TrafficSettings>,
}

/// Traffic from Prometheus (`platform.kubernetes.traffic`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSettings {
    pub prometheus_url: String,
    pub query: String,
    pub namespace_label: String,
    pub lookback: Duration,
    pub min_rate: f64,
}

/// The daemon settings of a (possibly overridden) raw file.
pub fn settings(file: &str, raw: &RawFile) -> Result<Settings, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let daemon = raw
        .daemon
        .as_ref()
        .map(|d| d.value.clone())
        .unwrap_or_default();
    let mut error = |field: &str, at: Option<(usize, usize)>, message: String| {
        errors.push(ConfigError {
            file: file.to_string(),
            line: at.map(|a| a.0).filter(|l| *l > 0),
            column: at.map(|a| a.1).filter(|c| *c > 0),
            rule: None,
            field: Some(field.to_string()),
            message,
        });
    };
    let pos = |a: &At<String>| Some((a.line, a.column));
    let listen = match &daemon.listen {
        None => SocketAddr::from(([0, 0, 0, 0], 9464)),
        Some(a) => a.value.trim().parse().unwrap_or_else(|_| {
            error(
                "daemon.listen",
                pos(a),
                format!("\"{}\" is not an address such as 0.0.0.0:9464", a.value),
            );
            SocketAddr::from(([0, 0, 0, 0], 9464))
        }),
    };
    let log_format = match daemon.log_format.as_ref().map(|a| (a, a.value.trim())) {
        None | Some((_, "human")) => LogFormat::Human,
        Some((_, "json")) => LogFormat::Json,
        Some((a, other)) => {
            error(
                "daemon.log_format",
                pos(a),
                format!("unknown log format \"{other}\"; expected human or json"),
            );
            LogFormat::Human
        }
    };
    let resync = match &daemon.resync {
        None => Duration::from_secs(60),
        Some(a) => match parse_duration(&a.value) {
            Ok(0) => {
                error(
                    "daemon.resync",
                    pos(a),
                    "resync must be longer than 0s".into(),
                );
                Duration::from_secs(60)
            }
            Ok(s) => Duration::from_secs(s),
            Err(e) => {
                error("daemon.resync", pos(a), e.to_string());
                Duration::from_secs(60)
            }
        },
    };
    let admin_max_snooze = match &daemon.admin_max_snooze {
        None => Duration::from_secs(7 * 86_400),
        Some(a) => match parse_duration(&a.value) {
            Ok(0) => {
                error(
                    "daemon.admin_max_snooze",
                    pos(a),
                    "the longest snooze must be longer than 0s".into(),
                );
                Duration::from_secs(7 * 86_400)
            }
            Ok(s) => Duration::from_secs(s),
            Err(e) => {
                error("daemon.admin_max_snooze", pos(a), e.to_string());
                Duration::from_secs(7 * 86_400)
            }
        },
    };
    let platform = platform_settings(raw, &mut error);
    let settings = Settings {
        listen,
        ledger: daemon.ledger.as_ref().map_or_else(
            || PathBuf::from("./curfew.db"),
            |a| PathBuf::from(a.value.trim()),
        ),
        log_format,
        resync,
        per_environment_metrics: daemon.per_environment_metrics.unwrap_or(false),
        admin_token_env: daemon.admin_token_env.as_ref().map(|a| a.value.clone()),
        admin_token_file: daemon
            .admin_token_file
            .as_ref()
            .map(|a| PathBuf::from(&a.value)),
        admin_max_snooze,
        platform,
    };
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

fn platform_settings(
    raw: &RawFile,
    error: &mut impl FnMut(&str, Option<(usize, usize)>, String),
) -> PlatformSettings {
    use super::raw::RawPlatform;
    let Some(at) = &raw.platform else {
        return PlatformSettings::Sandbox(SandboxSettings::default());
    };
    let place = Some((at.line, at.column));
    let sandbox = |s: &super::raw::RawSandbox| {
        let d = SandboxSettings::default();
        PlatformSettings::Sandbox(SandboxSettings {
            projects: s.projects.unwrap_or(d.projects),
            environments: s.environments.unwrap_or(d.environments),
            seed: s.seed.unwrap_or(d.seed),
            clock_speed: s.clock_speed.unwrap_or(d.clock_speed),
        })
    };
    match &at.value {
        RawPlatform::Name(name) if name.trim() == "sandbox" => {
            PlatformSettings::Sandbox(SandboxSettings::default())
        }
        RawPlatform::Name(name) => {
            error(
                "platform",
                place,
                format!(
                    "unknown platform \"{name}\"; expected sandbox, or a map with qovery: {{organization, token_env}} or kubernetes: {{namespace_selector}}"
                ),
            );
            PlatformSettings::Sandbox(SandboxSettings::default())
        }
        RawPlatform::Detailed(d) => match (&d.qovery, &d.kubernetes, &d.sandbox) {
            (Some(q), None, None) => {
                let timeout = q
                    .timeout
                    .as_deref()
                    .map_or(Ok(30), parse_duration)
                    .unwrap_or_else(|e| {
                        error("platform.qovery.timeout", place, e.to_string());
                        30
                    });
                if q.organization.trim().is_empty() {
                    error(
                        "platform.qovery.organization",
                        place,
                        "the organization id is empty".into(),
                    );
                }
                PlatformSettings::Qovery(QoverySettings {
                    organization: q.organization.trim().to_string(),
                    token_env: q
                        .token_env
                        .clone()
                        .unwrap_or_else(|| "QOVERY_API_TOKEN".into()),
                    token_file: q.token_file.as_ref().map(PathBuf::from),
                    api_url: q
                        .api_url
                        .clone()
                        .unwrap_or_else(|| "https://api.qovery.com".into()),
                    max_concurrency: q.max_concurrency.unwrap_or(8).max(1),
                    requests_per_second: q.requests_per_second.filter(|r| *r > 0.0).unwrap_or(10.0),
                    timeout: Duration::from_secs(timeout.max(1)),
                })
            }
            (None, Some(k), None) => {
                PlatformSettings::Kubernetes(kubernetes_settings(k, place, error))
            }
            (None, None, Some(s)) => sandbox(s),
            _ => {
                error(
                    "platform",
                    place,
                    "name exactly one platform: qovery, kubernetes or sandbox".into(),
                );
                PlatformSettings::Sandbox(SandboxSettings::default())
            }
        },
    }
}

fn kubernetes_settings(
    k: &super::raw::RawKubernetes,
    place: Option<(usize, usize)>,
    error: &mut impl FnMut(&str, Option<(usize, usize)>, String),
) -> KubernetesSettings {
    let mut seconds = |field: &str, value: Option<&str>, default: u64| {
        value
            .map_or(Ok(default), parse_duration)
            .unwrap_or_else(|e| {
                error(field, place, e.to_string());
                default
            })
    };
    let timeout = seconds("platform.kubernetes.timeout", k.timeout.as_deref(), 30);
    let lookback = k.traffic.as_ref().map_or(0, |t| {
        seconds(
            "platform.kubernetes.traffic.lookback",
            t.lookback.as_deref(),
            7 * 86_400,
        )
    });
    let selector = k.namespace_selector.trim().to_string();
    if selector.is_empty() {
        error(
            "platform.kubernetes.namespace_selector",
            place,
            "the namespace selector is empty: name the label of your preview namespaces (curfew.dev/preview=true, say); curfew acts on no namespace it was not pointed at".into(),
        );
    }
    let default_mode = match k.default_mode.as_deref() {
        None => Mode::Preview,
        Some(text) => Mode::parse(text).unwrap_or_else(|| {
            error(
                "platform.kubernetes.default_mode",
                place,
                format!(
                    "unknown mode \"{text}\"; expected production, staging, development or preview"
                ),
            );
            Mode::Preview
        }),
    };
    let non_empty = |value: &Option<String>, default: &str| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
            .to_string()
    };
    let traffic = k.traffic.as_ref().map(|t| {
        let url = t.prometheus_url.trim().to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            error(
                "platform.kubernetes.traffic.prometheus_url",
                place,
                format!("\"{url}\" is not an http:// or https:// URL"),
            );
        }
        if t.query.trim().is_empty() {
            error(
                "platform.kubernetes.traffic.query",
                place,
                "the query is empty: give a request rate per namespace".into(),
            );
        }
        if t.min_rate.is_some_and(|r| !r.is_finite() || r < 0.0) {
            error(
                "platform.kubernetes.traffic.min_rate",
                place,
                "min_rate is a rate, 0 or more".into(),
            );
        }
        TrafficSettings {
            prometheus_url: url,
            query: t.query.trim().to_string(),
            namespace_label: non_empty(&t.namespace_label, "namespace"),
            lookback: Duration::from_secs(lookback.max(300)),
            min_rate: t
                .min_rate
                .filter(|r| r.is_finite() && *r >= 0.0)
                .unwrap_or(0.0),
        }
    });
    KubernetesSettings {
        namespace_selector: selector,
        project_label: non_empty(&k.project_label, "app.kubernetes.io/part-of"),
        mode_label: non_empty(&k.mode_label, "curfew.dev/mode"),
        default_mode,
        cluster: k.cluster.clone().filter(|c| !c.trim().is_empty()),
        context: k.context.clone().filter(|c| !c.trim().is_empty()),
        max_concurrency: k.max_concurrency.unwrap_or(8).max(1),
        timeout: Duration::from_secs(timeout.max(1)),
        events: k.events.unwrap_or(true),
        leader_election: k.leader_election.unwrap_or(false),
        lease_name: non_empty(&k.lease_name, "curfew"),
        lease_namespace: k.lease_namespace.clone().filter(|n| !n.trim().is_empty()),
        traffic,
    }
}
