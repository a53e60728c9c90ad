//! The rule file as written: serde structs, unknown fields rejected, every value carrying
//! where it stands in the file. Nothing here is checked beyond its shape; `compile` turns it
//! into a [`super::RuleSet`]. The `///` comments are the user documentation: they become
//! the descriptions of the JSON Schema (`curfew schema`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

/// A value and the line and column (1-based) where it starts in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub line: usize,
    pub column: usize,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(At {
            value: spanned.value,
            line: spanned.referenced.line() as usize,
            column: spanned.referenced.column() as usize,
        })
    }
}

impl<T: JsonSchema> JsonSchema for At<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// One value or a list of them (`mode: preview` or `mode: [preview, development]`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The whole rule file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// Ignored by curfew; lets editors find the JSON Schema.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// Default IANA time zone of every rule (default: UTC).
    #[serde(default)]
    pub timezone: Option<At<String>>,
    /// Currency of every cost in this file, as exported in metrics (default: USD).
    #[serde(default)]
    pub currency: Option<At<String>>,
    /// How the daemon runs.
    #[serde(default)]
    pub daemon: Option<At<RawDaemon>>,
    /// Where environments live: `sandbox`, or a map with one of `qovery`, `kubernetes`,
    /// `sandbox`.
    #[serde(default)]
    pub platform: Option<At<RawPlatform>>,
    /// Limits that hold whatever the rules say.
    #[serde(default)]
    pub safety: Option<At<RawSafety>>,
    /// Defaults for every rule.
    #[serde(default)]
    pub defaults: Option<At<RawDefaults>>,
    /// Environments no rule may act on. Production is protected unless
    /// `safety.protect_production` is false.
    #[serde(default)]
    pub protect: Vec<At<RawSelector>>,
    /// Notification targets, by name, for rules' `notify`.
    #[serde(default)]
    pub notify: BTreeMap<String, At<RawTarget>>,
    /// The rules, in order: the first whose `match` fits an environment decides for it.
    #[serde(default)]
    pub rules: Option<At<Vec<At<RawRule>>>>,
}

/// How the daemon runs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// Address of /metrics, /healthz, /readyz and the admin API (default 127.0.0.1:9464;
    /// the container image sets 0.0.0.0:9464).
    #[serde(default)]
    pub listen: Option<At<String>>,
    /// Address of the public port: the waiting page (`/wake/…`), Sablier's API and the
    /// signed links, for anyone's browser; nothing else answers there (default: off).
    #[serde(default)]
    pub public_listen: Option<At<String>>,
    /// How long a request keeps its environment awake after it (default 30m).
    #[serde(default)]
    pub wake_session: Option<At<String>>,
    /// Wakes by request over all environments in one hour, at most (default 60).
    #[serde(default)]
    pub max_wakes_per_hour: Option<At<u32>>,
    /// Requests one client may make to the public port: `20/s` (the default), `600/m`,
    /// `1000/h`, or `off`. Past it the client gets `429` with `Retry-After`.
    #[serde(default)]
    pub public_rate_per_client: Option<At<String>>,
    /// Requests one client may make at once before the rate applies (default: the rate's
    /// count, 20 for `20/s`).
    #[serde(default)]
    pub public_rate_burst: Option<At<u32>>,
    /// The addresses (`10.0.0.7`) or ranges (`10.42.0.0/16`) of the reverse proxies in front
    /// of the public port (the ingress controller): from them, `public_client_header` names
    /// the client. Not `proxy_addresses`, which is the status page's authenticating proxy.
    #[serde(default)]
    pub public_trusted_proxies: Vec<At<String>>,
    /// The header the trusted proxies name the client in: `X-Forwarded-For` (the default)
    /// or `Forwarded` (RFC 7239). Its rightmost address that is not a trusted proxy is the
    /// client.
    #[serde(default)]
    pub public_client_header: Option<At<String>>,
    /// SQLite ledger path (default ./curfew.db).
    #[serde(default)]
    pub ledger: Option<At<String>>,
    /// `human` (default) or `json`.
    #[serde(default)]
    pub log_format: Option<At<String>>,
    /// Longest time between two passes, as a duration (default 60s).
    #[serde(default)]
    pub resync: Option<At<String>>,
    /// Export the per-environment gauge `curfew_environment_state` (default false).
    #[serde(default)]
    pub per_environment_metrics: Option<bool>,
    /// Name of the environment variable holding the admin API token.
    #[serde(default)]
    pub admin_token_env: Option<At<String>>,
    /// File holding admin API tokens, one per line, each optionally named (`alice:TOKEN`).
    #[serde(default)]
    pub admin_token_file: Option<At<String>>,
    /// The longest snooze or wake the admin API accepts, as a duration (default 7d).
    #[serde(default)]
    pub admin_max_snooze: Option<At<String>>,
    /// The longest note an operator may attach to a snooze or a protection, in bytes
    /// (default 1024); a longer one is refused.
    #[serde(default)]
    pub admin_max_note_bytes: Option<At<u32>>,
    /// Most HTTP connections served at once (default 256, lowered to fit the process's
    /// open-file limit). Past it, 16 more connections answer only /healthz and /readyz.
    #[serde(default)]
    pub max_connections: Option<At<u32>>,
    /// Time a client has to send a request's headers, from the connection's opening or the
    /// previous answer; an idle keep-alive connection closes after it too (default 10s).
    #[serde(default)]
    pub header_timeout: Option<At<String>>,
    /// A connection on which no byte moves for this long, while none of its requests is
    /// being answered, is closed (default 60s).
    #[serde(default)]
    pub idle_timeout: Option<At<String>>,
    /// The URL people reach curfew's port at (`https://curfew.example.com`): signed action
    /// links in notifications are made from it.
    #[serde(default)]
    pub public_url: Option<At<String>>,
    /// The status page on `/`: `off`, `read-only` (anyone who reaches the port sees it;
    /// an admin may still log in to act) or `login` (only after a login with an admin
    /// token, or through the trusted proxy). Default: `login` when an admin token is set,
    /// else `off`.
    #[serde(default)]
    pub page: Option<At<String>>,
    /// How long a login on the status page lasts, as a duration (default 12h).
    #[serde(default)]
    pub page_session: Option<At<String>>,
    /// The header in which an authenticating proxy in front of curfew (oauth2-proxy, an
    /// ingress with auth) names the user (`X-Forwarded-User`); trusted only from
    /// `proxy_addresses`.
    #[serde(default)]
    pub proxy_user_header: Option<At<String>>,
    /// The addresses (`10.0.0.7`) or ranges (`10.0.0.0/8`) the status page's authenticating
    /// proxy connects from (the public port's reverse proxies are `public_trusted_proxies`).
    #[serde(default)]
    pub proxy_addresses: Vec<At<String>>,
    /// The variable holding the key that signs action links (default `CURFEW_LINK_KEY`):
    /// one key per line, at most two (the first signs, both are accepted, for rotation).
    #[serde(default)]
    pub link_key_env: Option<At<String>>,
    /// A file holding link keys, as the variable does.
    #[serde(default)]
    pub link_key_file: Option<At<String>>,
    /// How long a signed link may be used, as a duration (default 72h).
    #[serde(default)]
    pub link_expiry: Option<At<String>>,
}

/// `platform: sandbox`, or a map naming one platform and its settings.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum RawPlatform {
    /// `sandbox` (an in-process Qovery-compatible simulator, no credentials).
    Name(String),
    Detailed(RawPlatformDetail),
}

/// One platform and its settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPlatformDetail {
    /// Qovery environments, through Qovery's API.
    #[serde(default)]
    pub qovery: Option<RawQovery>,
    /// Kubernetes namespaces, through the cluster's API.
    #[serde(default)]
    // Boxed: the biggest platform section, and most files do not have it.
    pub kubernetes: Option<Box<RawKubernetes>>,
    /// The built-in simulator of a Qovery organization (demos, trying rules).
    #[serde(default)]
    pub sandbox: Option<RawSandbox>,
}

/// The Qovery API. The token is read from an environment variable or a file, never
/// written in this file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawQovery {
    /// Organization id.
    pub organization: String,
    /// Environment variable holding the API token (default QOVERY_API_TOKEN).
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the API token (a mounted Secret, say).
    #[serde(default)]
    pub token_file: Option<String>,
    /// API base URL (default https://api.qovery.com).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Requests in flight at once (default 8).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Client-side rate limit, requests per second (default 10).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Timeout of one request, as a duration (default 30s).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A Kubernetes cluster: each namespace chosen by `namespace_selector` is an environment.
/// curfew reaches the API with its pod's service account, or outside a cluster with the
/// kubeconfig (`KUBECONFIG` or `~/.kube/config`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    /// Label selector of the namespaces that are environments (`curfew.dev/preview=true`,
    /// `app.kubernetes.io/part-of in (web,api)`). Required: curfew acts on no other
    /// namespace.
    pub namespace_selector: String,
    /// Namespace label holding the project name (default `app.kubernetes.io/part-of`).
    #[serde(default)]
    pub project_label: Option<String>,
    /// Namespace label holding the mode: `production`, `staging`, `development` or
    /// `preview` (default `curfew.dev/mode`). An unknown value counts as production.
    #[serde(default)]
    pub mode_label: Option<String>,
    /// Mode of a namespace without that label (default `preview`).
    #[serde(default)]
    pub default_mode: Option<String>,
    /// Cluster name, shown in decisions and matched by a rule's `match.cluster`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// kubeconfig context to use outside a cluster (default: the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// API requests in flight at once (default 8).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Timeout of one API request, as a duration (default 30s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Post a Kubernetes Event on the namespace for each action and each delete warning
    /// (default true).
    #[serde(default)]
    pub events: Option<bool>,
    /// Elect a leader on a Lease, so that two or more replicas can run and only one acts
    /// (default false).
    #[serde(default)]
    pub leader_election: Option<bool>,
    /// Name of the Lease (default `curfew`).
    #[serde(default)]
    pub lease_name: Option<String>,
    /// Namespace of the Lease (default: curfew's own, from its service account).
    #[serde(default)]
    pub lease_namespace: Option<String>,
    /// Namespace of Argo CD's Applications, unless a tracking id names theirs (default
    /// `argocd`).
    #[serde(default)]
    pub argocd_namespace: Option<String>,
    /// Requests to a namespace as a sign of activity, from Prometheus.
    #[serde(default)]
    pub traffic: Option<RawTraffic>,
    /// curfew's wake Service, `NAME.NAMESPACE:PORT` (the manifests in deploy/ ship
    /// `curfew-wake.curfew:8080`): while a namespace under a rule with `wake_on_request`
    /// sleeps, its Ingresses and HTTPRoutes send their traffic there (docs/platforms.md#wake-on-request).
    /// Unset: curfew never touches Ingresses or HTTPRoutes.
    #[serde(default)]
    pub wake_service: Option<String>,
    /// The cluster's DNS domain, for the wake Service's name (default `cluster.local`).
    #[serde(default)]
    pub cluster_domain: Option<String>,
    /// More kinds a stop scales to zero through their scale subresource, besides Argo
    /// Rollouts (always): `GROUP/VERSION/KIND` (`example.com/v1/Worker`).
    #[serde(default)]
    pub scale_kinds: Vec<String>,
}

/// Traffic from Prometheus: when each namespace last had requests.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    /// Base URL of Prometheus' HTTP API (`http://prometheus-operated.monitoring:9090`).
    pub prometheus_url: String,
    /// PromQL giving a request rate per namespace, such as
    /// `sum by (namespace) (rate(nginx_ingress_controller_requests[5m]))`.
    pub query: String,
    /// Label of the query's series that holds the namespace (default `namespace`).
    #[serde(default)]
    pub namespace_label: Option<String>,
    /// How far back to look for the last request, as a duration; keep it at least as long
    /// as the longest `stop_when_idle` or `delete_when_idle_for` (default 7d).
    #[serde(default)]
    pub lookback: Option<String>,
    /// Requests per second at or below which a namespace counts as idle (default 0).
    #[serde(default)]
    pub min_rate: Option<f64>,
}

/// The in-process sandbox fleet.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    /// Projects in the generated organization (default 4).
    #[serde(default)]
    pub projects: Option<u32>,
    /// Environments over all projects (default 24).
    #[serde(default)]
    pub environments: Option<u32>,
    /// Names the fleet: the same seed, the same ids, names, modes and states (default 1).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Simulated seconds per real second (default 1).
    #[serde(default)]
    pub clock_speed: Option<f64>,
}

/// Limits that hold whatever the rules say.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSafety {
    /// Decide and log, but call nothing (default false).
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Most stops (and starts) in one pass (default 100).
    #[serde(default)]
    pub max_stops_per_pass: Option<At<u32>>,
    /// Most deletes in any hour (default 10).
    #[serde(default)]
    pub max_deletes_per_hour: Option<At<u32>>,
    /// Protect production environments (default true).
    #[serde(default)]
    pub protect_production: Option<bool>,
}

/// Defaults for every rule.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Cost per hour of a running environment, where the platform gives none.
    #[serde(default)]
    pub hourly_cost: Option<At<f64>>,
    /// Unit prices to compute a cost from CPU and memory asked for.
    #[serde(default)]
    pub prices: Option<At<RawPrices>>,
    /// How long a new environment is left alone (default 30m).
    #[serde(default)]
    pub grace_period: Option<At<String>>,
    /// Warning ahead of every delete (default 0s: none).
    #[serde(default)]
    pub warn_before_delete: Option<At<String>>,
}

/// Unit prices, in the file's currency.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrices {
    /// Per vCPU and hour.
    #[serde(default)]
    pub vcpu_hour: Option<f64>,
    /// Per GiB of memory and hour.
    #[serde(default)]
    pub gib_hour: Option<f64>,
}

/// Which environments: every field given must fit (AND); a list fits if any entry fits.
/// Names take globs with `*` and `?`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    /// `production`, `staging`, `development`, `preview` (any case).
    #[serde(default)]
    pub mode: Option<At<OneOrMany<String>>>,
    /// Project name globs.
    #[serde(default)]
    pub project: Option<At<OneOrMany<String>>>,
    /// Environment name globs.
    #[serde(default)]
    pub environment: Option<At<OneOrMany<String>>>,
    /// Cluster name or id globs.
    #[serde(default)]
    pub cluster: Option<At<OneOrMany<String>>>,
    /// Labels that must be present, value globs (`"*"`: any value).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// One label as `key=value` (shorthand for `labels`).
    #[serde(default)]
    pub label: Option<At<String>>,
}

/// A notification target.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// `slack` (incoming webhook) or `webhook` (generic JSON).
    pub kind: At<String>,
    /// Environment variable holding the URL (Slack webhook URLs are secrets).
    #[serde(default)]
    pub url_env: Option<At<String>>,
    /// The URL itself, for URLs that are not secret.
    #[serde(default)]
    pub url: Option<At<String>>,
    /// Environment variable holding an HMAC-SHA256 key to sign generic webhooks.
    #[serde(default)]
    pub secret_env: Option<At<String>>,
    /// Daily digest time `HH:MM` (optional).
    #[serde(default)]
    pub digest_at: Option<At<String>>,
    /// Zone of the digest time (default: the file's).
    #[serde(default)]
    pub digest_timezone: Option<At<String>>,
}

/// What a stop does to the GitOps tool that owns an environment's workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(inline)]
pub enum RawGitOps {
    /// Pause the owner (Argo CD's automated sync, Flux's reconciliation) while stopped.
    Pause,
    /// Pause it only when it undoes changes between syncs (Argo CD self-heal, Flux).
    SelfHealOnly,
    /// Leave it alone.
    Off,
}

/// One of a rule's `patches:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPatch {
    /// The kind patched: `GROUP/VERSION/KIND` (`apps/v1/Deployment`, `v1/Service`).
    pub target: String,
    /// A JSON merge patch (RFC 7386), applied on stop.
    pub patch: serde_json::Value,
}

/// `run:`/`stop:` take one schedule string or a list of windows.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawWindows {
    One(String),
    List(Vec<String>),
}

impl RawWindows {
    /// The windows as one schedule string.
    pub fn joined(&self) -> String {
        match self {
            RawWindows::One(s) => s.clone(),
            RawWindows::List(list) => list.join(", "),
        }
    }
}

/// An event schedule: a spec string (`stop=0 19 * * 1-5; start=0 8 * * 1-5`, or a Cloud
/// Custodian tag value such as `off=(M-F,19);on=(M-F,7);tz=pt`), or fields. A spec without
/// `tz=` is read in the rule's zone.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum RawEvents {
    Spec(String),
    Fields(RawEventFields),
}

/// Event schedule fields: crons (`stop`, `start`) or kube-green's SleepInfo fields.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEventFields {
    /// Cron(s) at which environments are stopped.
    #[serde(default)]
    pub stop: Option<OneOrMany<String>>,
    /// Cron(s) at which environments stopped by curfew are started.
    #[serde(default)]
    pub start: Option<OneOrMany<String>>,
    /// kube-green: cron day-of-week field (`1-5`).
    #[serde(default)]
    pub weekdays: Option<String>,
    /// kube-green: `HH:MM` to stop.
    #[serde(default, rename = "sleepAt")]
    pub sleep_at: Option<String>,
    /// kube-green: `HH:MM` to start (optional).
    #[serde(default, rename = "wakeUpAt")]
    pub wake_up_at: Option<String>,
    /// IANA zone of the crons, or of kube-green's `sleepAt` and `wakeUpAt`. Without it,
    /// kube-green's fields are read in UTC (as kube-green reads a SleepInfo without
    /// `timeZone`), not in the rule's zone; crons are read in the rule's zone.
    #[serde(default, rename = "timeZone")]
    pub time_zone: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique name, shown in every decision, log line and metric.
    #[serde(default)]
    pub name: Option<At<String>>,
    /// What for (free text).
    #[serde(default)]
    pub description: Option<String>,
    /// Which environments this rule is for (default: all).
    #[serde(default, rename = "match")]
    pub selector: Option<At<RawSelector>>,
    /// Windows in which environments may run; outside them they are stopped.
    #[serde(default)]
    pub run: Option<At<RawWindows>>,
    /// Windows in which environments are stopped; outside them they may run.
    #[serde(default)]
    pub stop: Option<At<RawWindows>>,
    /// Stop and start at given instants (crons, kube-green fields or a Custodian tag).
    #[serde(default)]
    pub events: Option<At<RawEvents>>,
    /// Zone of this rule's schedule (default: the file's).
    #[serde(default)]
    pub timezone: Option<At<String>>,
    /// Days (`2026-12-25`) or ranges (`2026-12-24..2027-01-01`) on which nothing runs.
    #[serde(default)]
    pub holidays: Vec<At<String>>,
    /// Which environments a window's start wakes: `stopped-by-curfew` (default), `all`,
    /// `never`.
    #[serde(default)]
    pub wake: Option<At<String>>,
    /// Stop a running environment with no deployment (or activity) for this long.
    #[serde(default)]
    pub stop_when_idle: Option<At<String>>,
    /// Delete an environment this long after its creation.
    #[serde(default)]
    pub delete_after: Option<At<String>>,
    /// Delete an environment stopped for this long.
    #[serde(default)]
    pub delete_when_stopped_for: Option<At<String>>,
    /// Delete an environment with no deployment (or activity) for this long.
    #[serde(default)]
    pub delete_when_idle_for: Option<At<String>>,
    /// Warn this long before any delete (default: `defaults.warn_before_delete`).
    #[serde(default)]
    pub warn_before_delete: Option<At<String>>,
    /// Leave new environments alone this long (default 30m).
    #[serde(default)]
    pub grace_period: Option<At<String>>,
    /// Cost per hour where the platform gives none (default: `defaults.hourly_cost`).
    #[serde(default)]
    pub hourly_cost: Option<At<f64>>,
    /// Decide and log, call nothing, for this rule.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Let a request wake this rule's environments (the waiting page, Sablier's API); on
    /// Kubernetes, a sleeping namespace's Ingresses and HTTPRoutes also send their traffic
    /// to curfew's wake Service (default false).
    #[serde(default)]
    pub wake_on_request: Option<bool>,
    /// What a stop does to the GitOps tool that owns an environment (Kubernetes: an Argo
    /// CD Application, a Flux Kustomization or HelmRelease): `pause` it while stopped
    /// (default), `self-heal-only` (pause only one that undoes changes between syncs), or
    /// `off` (leave it alone).
    #[serde(default)]
    pub gitops: Option<RawGitOps>,
    /// Kubernetes: JSON merge patches (RFC 7386) applied on stop to every object of a kind
    /// in the namespace, each undone exactly on start (docs/platforms.md#patches).
    #[serde(default)]
    pub patches: Vec<At<RawPatch>>,
    /// Kubernetes: turn LoadBalancer Services into ClusterIP ones while stopped, and back
    /// on start (default false).
    #[serde(default)]
    pub release_load_balancers: Option<bool>,
    /// Modes this rule may delete (default: `[preview]`).
    #[serde(default)]
    pub allow_delete: Option<At<Vec<String>>>,
    /// Notification targets (names under `notify`).
    #[serde(default)]
    pub notify: Vec<At<String>>,
    /// Qovery deployment rule: `MONDAY`…`SUNDAY`.
    #[serde(default)]
    pub weekdays: Option<At<Vec<String>>>,
    /// Qovery deployment rule: start time (`08:00` or `1970-01-01T08:00:00.000Z`).
    #[serde(default)]
    pub start_time: Option<At<String>>,
    /// Qovery deployment rule: stop time.
    #[serde(default)]
    pub stop_time: Option<At<String>>,
    /// Qovery deployment rule: environment name pattern with `*` and `?`.
    #[serde(default)]
    pub wildcard: Option<At<String>>,
    /// Qovery deployment rule: environment mode.
    #[serde(default)]
    pub mode: Option<At<String>>,
    /// Qovery deployment rule: cluster id.
    #[serde(default)]
    pub cluster_id: Option<At<String>>,
    /// Qovery deployment rule: apply the start/stop times (default true here).
    #[serde(default)]
    pub auto_stop: Option<bool>,
}

/// Deserializes "a string, or a map of fields" so that a mistake inside the map gets the
/// map's own error ("unknown field `token`") instead of serde's "did not match any variant".
fn string_or_map<'de, D, T, R>(
    deserializer: D,
    expecting: &'static str,
    from_string: fn(String) -> R,
    from_map: fn(T) -> R,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
    use std::fmt;
    use std::marker::PhantomData;

    struct V<T, R> {
        expecting: &'static str,
        from_string: fn(String) -> R,
        from_map: fn(T) -> R,
        _t: PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for V<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.from_string)(v.to_string()))
        }
        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<R, M::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(self.from_map)
        }
    }
    deserializer.deserialize_any(V {
        expecting,
        from_string,
        from_map,
        _t: PhantomData,
    })
}

impl<'de> Deserialize<'de> for RawPlatform {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_map(
            deserializer,
            "`sandbox`, or a map with `qovery`, `kubernetes` or `sandbox`",
            RawPlatform::Name,
            RawPlatform::Detailed,
        )
    }
}

impl<'de> Deserialize<'de> for RawEvents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_map(
            deserializer,
            "an event spec string, or a map of stop/start crons or kube-green fields",
            RawEvents::Spec,
            RawEvents::Fields,
        )
    }
}
