//! The daemon's settings, read from the rule file (with the `CURFEW_*` overrides of
//! [`super::overrides`] already applied to it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::page::{PageSettings, page_settings};
use super::public::{ClientLimit, client_limit};
use super::raw::{
    At, RawDaemon, RawFile, RawKubernetes, RawPlatform, RawQovery, RawSandbox, RawTraffic,
};
use crate::platform::Mode;
use crate::schedule::parse_duration;

/// How the daemon runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The public port (wake on request), if any.
    pub public_listen: Option<SocketAddr>,
    /// How long a request keeps its environment awake after it.
    pub wake_session: Duration,
    /// Wakes by request in one hour, at most.
    pub max_wakes_per_hour: u32,
    /// The public port's per-client rate limit.
    pub public_clients: ClientLimit,
    pub ledger: PathBuf,
    pub log_format: LogFormat,
    pub resync: Duration,
    pub per_environment_metrics: bool,
    pub admin_token_env: Option<String>,
    pub admin_token_file: Option<PathBuf>,
    /// The longest snooze or wake an operator may ask for.
    pub admin_max_snooze: Duration,
    /// The status page and its signed links.
    pub page: PageSettings,
    /// The longest note an operator may attach, in bytes.
    pub admin_max_note_bytes: u32,
    /// HTTP connections served at once.
    pub max_connections: u32,
    /// Time to send a request's headers (and how long a keep-alive connection may idle).
    pub header_timeout: Duration,
    /// A connection on which nothing moves this long, no request being answered, closes.
    pub idle_timeout: Duration,
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
    /// Where Argo CD's Applications are (`argocd`).
    pub argocd_namespace: String,
    /// The kinds scaled through their scale subresource: Argo Rollouts, then `scale_kinds`.
    /// Boxed: the settings' enum stays small (clippy's large_enum_variant).
    pub scale_kinds: Box<Vec<crate::platform::kubernetes::Target>>,
    pub traffic: Option<TrafficSettings>,
    /// curfew's wake Service (wake on request); None: routes are never touched.
    pub wake_service: Option<Box<crate::platform::kubernetes::WakeService>>,
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

/// The default `daemon.listen`: loopback only. The container image sets `0.0.0.0:9464`,
/// since the kubelet and Prometheus reach a pod on its own address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9464,
));

/// Reports a setting's error: its field, its place in the file (if from the file), what.
pub(super) type Report<'a> = dyn FnMut(&str, Option<(usize, usize)>, String) + 'a;

/// A duration setting longer than 0s, or `default` (absent, or wrong and reported).
pub(super) fn positive_duration(
    value: &Option<At<String>>,
    field: &str,
    what: &str,
    default: Duration,
    error: &mut Report<'_>,
) -> Duration {
    let Some(a) = value else { return default };
    match parse_duration(&a.value) {
        Ok(0) => {
            error(
                field,
                Some((a.line, a.column)),
                format!("{what} must be longer than 0s"),
            );
            default
        }
        Ok(s) => Duration::from_secs(s),
        Err(e) => {
            error(field, Some((a.line, a.column)), e.to_string());
            default
        }
    }
}

/// A count setting of at least 1, or `default`.
fn positive_count(
    value: &Option<At<u32>>,
    field: &str,
    what: &str,
    default: u32,
    error: &mut Report<'_>,
) -> u32 {
    match value {
        Some(a) if a.value == 0 => {
            error(
                field,
                Some((a.line, a.column)),
                format!("{what} must be at least 1"),
            );
            default
        }
        Some(a) => a.value,
        None => default,
    }
}

/// The settings of a rule file whose `daemon:` section is `daemon` (its indented lines),
/// or its errors as printed.
#[cfg(test)]
pub(super) fn of_daemon(daemon: &str) -> Result<Settings, String> {
    let text = format!("timezone: UTC\ndaemon:\n{daemon}rules:\n  - name: a\n    run: Sat\n");
    super::parse(
        "rules.yaml",
        &text,
        &std::collections::HashMap::new(),
        "2026-11-25T10:00:00Z".parse().unwrap(),
    )
    .map(|l| l.settings)
    .map_err(|e| e.to_string())
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
    let listen = listen(&daemon, &mut error);
    let log_format = log_format(&daemon, &mut error);
    let limits = DaemonLimits::of(&daemon, &mut error);
    let page = page_settings(&daemon, &mut error);
    let public_clients = client_limit(&daemon, &mut error);
    let platform = platform_settings(raw, &mut error);
    let public_listen = daemon.public_listen.as_ref().and_then(|a| {
        let parsed = a.value.trim().parse().ok();
        if parsed.is_none() {
            error(
                "daemon.public_listen",
                Some((a.line, a.column)),
                format!("\"{}\" is not an address such as 0.0.0.0:9465", a.value),
            );
        }
        parsed
    });
    let settings = Settings {
        listen,
        public_listen,
        wake_session: limits.wake_session,
        max_wakes_per_hour: limits.max_wakes_per_hour,
        public_clients,
        ledger: daemon.ledger.as_ref().map_or_else(
            || PathBuf::from("./curfew.db"),
            |a| PathBuf::from(a.value.trim()),
        ),
        log_format,
        resync: limits.resync,
        per_environment_metrics: daemon.per_environment_metrics.unwrap_or(false),
        admin_token_env: daemon.admin_token_env.as_ref().map(|a| a.value.clone()),
        admin_token_file: daemon
            .admin_token_file
            .as_ref()
            .map(|a| PathBuf::from(&a.value)),
        admin_max_snooze: limits.admin_max_snooze,
        page,
        admin_max_note_bytes: limits.admin_max_note_bytes,
        max_connections: limits.max_connections,
        header_timeout: limits.header_timeout,
        idle_timeout: limits.idle_timeout,
        platform,
    };
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

/// `daemon.listen`, or the default.
fn listen(daemon: &RawDaemon, error: &mut Report<'_>) -> SocketAddr {
    let Some(a) = &daemon.listen else {
        return DEFAULT_LISTEN;
    };
    a.value.trim().parse().unwrap_or_else(|_| {
        error(
            "daemon.listen",
            Some((a.line, a.column)),
            format!("\"{}\" is not an address such as 127.0.0.1:9464", a.value),
        );
        DEFAULT_LISTEN
    })
}

/// `daemon.log_format`: `human` (the default) or `json`.
fn log_format(daemon: &RawDaemon, error: &mut Report<'_>) -> LogFormat {
    match daemon.log_format.as_ref().map(|a| (a, a.value.trim())) {
        None | Some((_, "human")) => LogFormat::Human,
        Some((_, "json")) => LogFormat::Json,
        Some((a, other)) => {
            error(
                "daemon.log_format",
                Some((a.line, a.column)),
                format!("unknown log format \"{other}\"; expected human or json"),
            );
            LogFormat::Human
        }
    }
}

/// The daemon's timings and bounds, each positive.
struct DaemonLimits {
    resync: Duration,
    admin_max_snooze: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
    admin_max_note_bytes: u32,
    max_connections: u32,
    wake_session: Duration,
    max_wakes_per_hour: u32,
}

impl DaemonLimits {
    fn of(d: &RawDaemon, e: &mut Report<'_>) -> DaemonLimits {
        let secs = Duration::from_secs;
        DaemonLimits {
            resync: positive_duration(&d.resync, "daemon.resync", "resync", secs(60), e),
            admin_max_snooze: positive_duration(
                &d.admin_max_snooze,
                "daemon.admin_max_snooze",
                "the longest snooze",
                secs(7 * 86_400),
                e,
            ),
            header_timeout: positive_duration(
                &d.header_timeout,
                "daemon.header_timeout",
                "the header timeout",
                secs(10),
                e,
            ),
            idle_timeout: positive_duration(
                &d.idle_timeout,
                "daemon.idle_timeout",
                "the idle timeout",
                secs(60),
                e,
            ),
            admin_max_note_bytes: positive_count(
                &d.admin_max_note_bytes,
                "daemon.admin_max_note_bytes",
                "the longest note",
                1024,
                e,
            ),
            max_connections: positive_count(
                &d.max_connections,
                "daemon.max_connections",
                "max_connections",
                256,
                e,
            ),
            wake_session: positive_duration(
                &d.wake_session,
                "daemon.wake_session",
                "the wake session",
                secs(30 * 60),
                e,
            ),
            max_wakes_per_hour: positive_count(
                &d.max_wakes_per_hour,
                "daemon.max_wakes_per_hour",
                "max_wakes_per_hour",
                60,
                e,
            ),
        }
    }
}

fn platform_settings(raw: &RawFile, error: &mut Report<'_>) -> PlatformSettings {
    let Some(at) = &raw.platform else {
        return PlatformSettings::Sandbox(SandboxSettings::default());
    };
    let place = Some((at.line, at.column));
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
            (Some(q), None, None) => PlatformSettings::Qovery(qovery_settings(q, place, error)),
            (None, Some(k), None) => {
                PlatformSettings::Kubernetes(kubernetes_settings(k, place, error))
            }
            (None, None, Some(s)) => PlatformSettings::Sandbox(sandbox_settings(s)),
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

fn sandbox_settings(s: &RawSandbox) -> SandboxSettings {
    let d = SandboxSettings::default();
    SandboxSettings {
        projects: s.projects.unwrap_or(d.projects),
        environments: s.environments.unwrap_or(d.environments),
        seed: s.seed.unwrap_or(d.seed),
        clock_speed: s.clock_speed.unwrap_or(d.clock_speed),
    }
}

fn qovery_settings(
    q: &RawQovery,
    place: Option<(usize, usize)>,
    error: &mut Report<'_>,
) -> QoverySettings {
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
    QoverySettings {
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
    }
}

/// A duration in seconds from `value`, or `default` (absent, or wrong and reported).
fn seconds(
    field: &str,
    value: Option<&str>,
    default: u64,
    place: Option<(usize, usize)>,
    error: &mut Report<'_>,
) -> u64 {
    value
        .map_or(Ok(default), parse_duration)
        .unwrap_or_else(|e| {
            error(field, place, e.to_string());
            default
        })
}

/// A trimmed value, or `default` when absent or blank.
fn non_empty(value: &Option<String>, default: &str) -> String {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// Argo Rollouts, then the kinds `platform.kubernetes.scale_kinds` names, each once.
fn scale_kinds(
    k: &RawKubernetes,
    place: Option<(usize, usize)>,
    error: &mut Report<'_>,
) -> Vec<crate::platform::kubernetes::Target> {
    use crate::platform::kubernetes::Target;
    let mut kinds = vec![Target::rollouts()];
    for (i, text) in k.scale_kinds.iter().enumerate() {
        match Target::parse(text) {
            Ok(t) if !kinds.contains(&t) => kinds.push(t),
            Ok(_) => {}
            Err(e) => error(&format!("platform.kubernetes.scale_kinds[{i}]"), place, e),
        }
    }
    kinds
}

fn kubernetes_settings(
    k: &RawKubernetes,
    place: Option<(usize, usize)>,
    error: &mut Report<'_>,
) -> KubernetesSettings {
    let timeout = seconds(
        "platform.kubernetes.timeout",
        k.timeout.as_deref(),
        30,
        place,
        error,
    );
    let lookback = k.traffic.as_ref().map_or(0, |t| {
        seconds(
            "platform.kubernetes.traffic.lookback",
            t.lookback.as_deref(),
            7 * 86_400,
            place,
            error,
        )
    });
    KubernetesSettings {
        namespace_selector: namespace_selector(k, place, error),
        project_label: non_empty(&k.project_label, "app.kubernetes.io/part-of"),
        mode_label: non_empty(&k.mode_label, "curfew.dev/mode"),
        default_mode: default_mode(k, place, error),
        cluster: k.cluster.clone().filter(|c| !c.trim().is_empty()),
        context: k.context.clone().filter(|c| !c.trim().is_empty()),
        max_concurrency: k.max_concurrency.unwrap_or(8).max(1),
        timeout: Duration::from_secs(timeout.max(1)),
        events: k.events.unwrap_or(true),
        leader_election: k.leader_election.unwrap_or(false),
        lease_name: non_empty(&k.lease_name, "curfew"),
        lease_namespace: k.lease_namespace.clone().filter(|n| !n.trim().is_empty()),
        argocd_namespace: non_empty(&k.argocd_namespace, "argocd"),
        scale_kinds: Box::new(scale_kinds(k, place, error)),
        traffic: k
            .traffic
            .as_ref()
            .map(|t| traffic_settings(t, lookback, place, error)),
        wake_service: wake_service(k, place, error),
    }
}

/// The wake Service, if set: `NAME.NAMESPACE:PORT` in the cluster's domain.
fn wake_service(
    k: &RawKubernetes,
    place: Option<(usize, usize)>,
    error: &mut Report<'_>,
) -> Option<Box<crate::platform::kubernetes::WakeService>> {
    let text = k.wake_service.as_deref()?;
    let domain = k.cluster_domain.as_deref().unwrap_or("cluster.local");
    crate::platform::kubernetes::WakeService::parse(text, domain)
        .map_err(|message| error("platform.kubernetes.wake_service", place, message))
        .ok()
        .map(Box::new)
}

/// The namespace selector: given, and requiring a label (curfew acts on no namespace it
/// was not pointed at).
fn namespace_selector(
    k: &RawKubernetes,
    place: Option<(usize, usize)>,
    error: &mut Report<'_>,
) -> String {
    let selector = k.namespace_selector.trim().to_string();
    if selector.is_empty() {
        error(
            "platform.kubernetes.namespace_selector",
            place,
            "the namespace selector is empty: name the label of your preview namespaces (curfew.dev/preview=true, say); curfew acts on no namespace it was not pointed at".into(),
        );
    } else if let Err(message) = crate::platform::kubernetes::selector_requires_a_label(&selector) {
        error(
            "platform.kubernetes.namespace_selector",
            place,
            message.to_string(),
        );
    }
    selector
}

/// The mode of a namespace without the mode label: previews unless said otherwise.
fn default_mode(k: &RawKubernetes, place: Option<(usize, usize)>, error: &mut Report<'_>) -> Mode {
    let Some(text) = k.default_mode.as_deref() else {
        return Mode::Preview;
    };
    Mode::parse(text).unwrap_or_else(|| {
        error(
            "platform.kubernetes.default_mode",
            place,
            format!(
                "unknown mode \"{text}\"; expected production, staging, development or preview"
            ),
        );
        Mode::Preview
    })
}

/// Traffic from Prometheus: an http(s) URL, a query, a rate of 0 or more.
fn traffic_settings(
    t: &RawTraffic,
    lookback: u64,
    place: Option<(usize, usize)>,
    error: &mut Report<'_>,
) -> TrafficSettings {
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
}
