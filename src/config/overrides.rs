//! `CURFEW_*` environment variables that override settings of the rule file:
//! `CURFEW_SAFETY__DRY_RUN=true`, `CURFEW_DAEMON__LISTEN=127.0.0.1:9000`,
//! `CURFEW_PLATFORM__QOVERY__ORGANIZATION=…` (the setting's path in upper case, sections
//! joined by `__`).
//!
//! One table, [`SETTABLE`], lists every setting that can be overridden, how its value is
//! read and where it goes in the raw file. The variables are sorted out once, when the
//! process starts ([`Overrides::from_env`]); each load of the file then writes the values
//! into the parsed file, which is never parsed a second time. A `CURFEW_` variable that
//! names no setting is reported (by name, never by value), with the closest name.
//!
//! The environment is passed in as a map (the binary hands over `std::env::vars()`), so
//! nothing deep in the code reads the process environment.

use std::collections::HashMap;

use super::error::ConfigError;
use super::raw::{
    At, RawDaemon, RawDefaults, RawFile, RawKubernetes, RawPlatform, RawPlatformDetail, RawPrices,
    RawQovery, RawSafety, RawSandbox, RawTraffic,
};

/// Prefix of the environment variables that override settings.
pub const PREFIX: &str = "CURFEW_";

/// `CURFEW_` variables curfew reads that are not settings: the log filter (`curfew run`),
/// the admin token (the daemon and the CLI) and the daemon's address (the CLI).
pub const NOT_SETTINGS: &[&str] = &["CURFEW_LOG", "CURFEW_ADMIN_TOKEN", "CURFEW_SERVER"];

/// How a setting's value is read from its variable, and where it goes.
#[derive(Clone, Copy)]
enum Setter {
    Text(fn(&mut RawFile, String)),
    Flag(fn(&mut RawFile, bool)),
    Count(fn(&mut RawFile, u32)),
    Big(fn(&mut RawFile, u64)),
    Number(fn(&mut RawFile, f64)),
}

/// A setting a variable can override: its path in the file, and its setter.
struct Settable {
    key: &'static str,
    set: Setter,
}

const fn text(key: &'static str, set: fn(&mut RawFile, String)) -> Settable {
    Settable {
        key,
        set: Setter::Text(set),
    }
}

const fn flag(key: &'static str, set: fn(&mut RawFile, bool)) -> Settable {
    Settable {
        key,
        set: Setter::Flag(set),
    }
}

const fn count(key: &'static str, set: fn(&mut RawFile, u32)) -> Settable {
    Settable {
        key,
        set: Setter::Count(set),
    }
}

const fn number(key: &'static str, set: fn(&mut RawFile, f64)) -> Settable {
    Settable {
        key,
        set: Setter::Number(set),
    }
}

/// Every setting outside `protect`, `notify` and `rules` (a test checks this list against
/// the rule file's schema).
const SETTABLE: &[Settable] = &[
    text("timezone", |f, v| f.timezone = Some(at(v))),
    text("currency", |f, v| f.currency = Some(at(v))),
    text("daemon.listen", |f, v| daemon(f).listen = Some(at(v))),
    text("daemon.public_listen", |f, v| {
        daemon(f).public_listen = Some(at(v));
    }),
    text("daemon.wake_session", |f, v| {
        daemon(f).wake_session = Some(at(v));
    }),
    count("daemon.max_wakes_per_hour", |f, v| {
        daemon(f).max_wakes_per_hour = Some(at(v));
    }),
    text("daemon.public_rate_per_client", |f, v| {
        daemon(f).public_rate_per_client = Some(at(v));
    }),
    count("daemon.public_rate_burst", |f, v| {
        daemon(f).public_rate_burst = Some(at(v));
    }),
    // A list in the file; in a variable, comma-separated (`10.42.0.0/16,10.0.0.7`).
    text("daemon.public_trusted_proxies", |f, v| {
        daemon(f).public_trusted_proxies = comma_list(&v);
    }),
    text("daemon.public_client_header", |f, v| {
        daemon(f).public_client_header = Some(at(v));
    }),
    text("daemon.ledger", |f, v| daemon(f).ledger = Some(at(v))),
    text("daemon.log_format", |f, v| {
        daemon(f).log_format = Some(at(v))
    }),
    text("daemon.resync", |f, v| daemon(f).resync = Some(at(v))),
    flag("daemon.per_environment_metrics", |f, v| {
        daemon(f).per_environment_metrics = Some(v);
    }),
    text("daemon.admin_token_env", |f, v| {
        daemon(f).admin_token_env = Some(at(v));
    }),
    text("daemon.admin_token_file", |f, v| {
        daemon(f).admin_token_file = Some(at(v));
    }),
    text("daemon.admin_max_snooze", |f, v| {
        daemon(f).admin_max_snooze = Some(at(v));
    }),
    count("daemon.admin_max_note_bytes", |f, v| {
        daemon(f).admin_max_note_bytes = Some(at(v));
    }),
    count("daemon.max_connections", |f, v| {
        daemon(f).max_connections = Some(at(v));
    }),
    text("daemon.header_timeout", |f, v| {
        daemon(f).header_timeout = Some(at(v));
    }),
    text("daemon.idle_timeout", |f, v| {
        daemon(f).idle_timeout = Some(at(v))
    }),
    text("daemon.public_url", |f, v| {
        daemon(f).public_url = Some(at(v))
    }),
    text("daemon.page", |f, v| daemon(f).page = Some(at(v))),
    text("daemon.page_session", |f, v| {
        daemon(f).page_session = Some(at(v))
    }),
    text("daemon.proxy_user_header", |f, v| {
        daemon(f).proxy_user_header = Some(at(v))
    }),
    // A list in the file; in a variable, comma-separated (`10.0.0.0/8,192.168.1.7`).
    text("daemon.proxy_addresses", |f, v| {
        daemon(f).proxy_addresses = comma_list(&v);
    }),
    text("daemon.link_key_env", |f, v| {
        daemon(f).link_key_env = Some(at(v))
    }),
    text("daemon.link_key_file", |f, v| {
        daemon(f).link_key_file = Some(at(v))
    }),
    text("daemon.link_expiry", |f, v| {
        daemon(f).link_expiry = Some(at(v))
    }),
    text("platform", |f, v| {
        f.platform = Some(at(RawPlatform::Name(v)))
    }),
    text("platform.qovery.organization", |f, v| {
        qovery(f).organization = v
    }),
    text("platform.qovery.token_env", |f, v| {
        qovery(f).token_env = Some(v)
    }),
    text("platform.qovery.token_file", |f, v| {
        qovery(f).token_file = Some(v)
    }),
    text("platform.qovery.api_url", |f, v| {
        qovery(f).api_url = Some(v)
    }),
    count("platform.qovery.max_concurrency", |f, v| {
        qovery(f).max_concurrency = Some(v);
    }),
    number("platform.qovery.requests_per_second", |f, v| {
        qovery(f).requests_per_second = Some(v);
    }),
    text("platform.qovery.timeout", |f, v| {
        qovery(f).timeout = Some(v)
    }),
    text("platform.kubernetes.namespace_selector", |f, v| {
        kubernetes(f).namespace_selector = v;
    }),
    text("platform.kubernetes.project_label", |f, v| {
        kubernetes(f).project_label = Some(v);
    }),
    text("platform.kubernetes.mode_label", |f, v| {
        kubernetes(f).mode_label = Some(v);
    }),
    text("platform.kubernetes.default_mode", |f, v| {
        kubernetes(f).default_mode = Some(v);
    }),
    text("platform.kubernetes.cluster", |f, v| {
        kubernetes(f).cluster = Some(v)
    }),
    text("platform.kubernetes.context", |f, v| {
        kubernetes(f).context = Some(v)
    }),
    count("platform.kubernetes.max_concurrency", |f, v| {
        kubernetes(f).max_concurrency = Some(v);
    }),
    text("platform.kubernetes.timeout", |f, v| {
        kubernetes(f).timeout = Some(v)
    }),
    flag("platform.kubernetes.events", |f, v| {
        kubernetes(f).events = Some(v)
    }),
    flag("platform.kubernetes.leader_election", |f, v| {
        kubernetes(f).leader_election = Some(v);
    }),
    text("platform.kubernetes.lease_name", |f, v| {
        kubernetes(f).lease_name = Some(v);
    }),
    text("platform.kubernetes.lease_namespace", |f, v| {
        kubernetes(f).lease_namespace = Some(v);
    }),
    text("platform.kubernetes.argocd_namespace", |f, v| {
        kubernetes(f).argocd_namespace = Some(v);
    }),
    // A comma-separated list: CURFEW_PLATFORM_KUBERNETES_SCALE_KINDS=example.com/v1/Worker,…
    text("platform.kubernetes.scale_kinds", |f, v| {
        kubernetes(f).scale_kinds = v
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
    }),
    text("platform.kubernetes.traffic.prometheus_url", |f, v| {
        traffic(f).prometheus_url = v;
    }),
    text("platform.kubernetes.traffic.query", |f, v| {
        traffic(f).query = v
    }),
    text("platform.kubernetes.traffic.namespace_label", |f, v| {
        traffic(f).namespace_label = Some(v);
    }),
    text("platform.kubernetes.traffic.lookback", |f, v| {
        traffic(f).lookback = Some(v);
    }),
    number("platform.kubernetes.traffic.min_rate", |f, v| {
        traffic(f).min_rate = Some(v);
    }),
    text("platform.kubernetes.wake_service", |f, v| {
        kubernetes(f).wake_service = Some(v);
    }),
    text("platform.kubernetes.cluster_domain", |f, v| {
        kubernetes(f).cluster_domain = Some(v);
    }),
    count("platform.sandbox.projects", |f, v| {
        sandbox(f).projects = Some(v)
    }),
    count("platform.sandbox.environments", |f, v| {
        sandbox(f).environments = Some(v);
    }),
    Settable {
        key: "platform.sandbox.seed",
        set: Setter::Big(|f, v| sandbox(f).seed = Some(v)),
    },
    number("platform.sandbox.clock_speed", |f, v| {
        sandbox(f).clock_speed = Some(v);
    }),
    flag("safety.dry_run", |f, v| safety(f).dry_run = Some(v)),
    count("safety.max_stops_per_pass", |f, v| {
        safety(f).max_stops_per_pass = Some(at(v));
    }),
    count("safety.max_deletes_per_hour", |f, v| {
        safety(f).max_deletes_per_hour = Some(at(v));
    }),
    flag("safety.protect_production", |f, v| {
        safety(f).protect_production = Some(v);
    }),
    number("defaults.hourly_cost", |f, v| {
        defaults(f).hourly_cost = Some(at(v));
    }),
    number("defaults.prices.vcpu_hour", |f, v| {
        prices(f).vcpu_hour = Some(v)
    }),
    number("defaults.prices.gib_hour", |f, v| {
        prices(f).gib_hour = Some(v)
    }),
    text("defaults.grace_period", |f, v| {
        defaults(f).grace_period = Some(at(v));
    }),
    text("defaults.warn_before_delete", |f, v| {
        defaults(f).warn_before_delete = Some(at(v));
    }),
];

/// A value from the environment: line 0, so errors about it name no line of the file.
fn at<T>(value: T) -> At<T> {
    At {
        value,
        line: 0,
        column: 0,
    }
}

/// A list setting given in one variable, comma-separated.
fn comma_list(v: &str) -> Vec<At<String>> {
    v.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| at(a.to_string()))
        .collect()
}

fn daemon(f: &mut RawFile) -> &mut RawDaemon {
    &mut f
        .daemon
        .get_or_insert_with(|| at(RawDaemon::default()))
        .value
}

fn safety(f: &mut RawFile) -> &mut RawSafety {
    &mut f
        .safety
        .get_or_insert_with(|| at(RawSafety::default()))
        .value
}

fn defaults(f: &mut RawFile) -> &mut RawDefaults {
    &mut f
        .defaults
        .get_or_insert_with(|| at(RawDefaults::default()))
        .value
}

fn prices(f: &mut RawFile) -> &mut RawPrices {
    &mut defaults(f)
        .prices
        .get_or_insert_with(|| at(RawPrices::default()))
        .value
}

/// The platform map, made one if the file has none or names one (`platform: sandbox` and
/// `platform: {sandbox: {}}` mean the same).
fn platform(f: &mut RawFile) -> &mut RawPlatformDetail {
    let slot = f
        .platform
        .get_or_insert_with(|| at(RawPlatform::Detailed(RawPlatformDetail::default())));
    if let RawPlatform::Name(name) = &slot.value {
        let mut detail = RawPlatformDetail::default();
        if name.trim() == "sandbox" {
            detail.sandbox = Some(RawSandbox::default());
        }
        slot.value = RawPlatform::Detailed(detail);
    }
    match &mut slot.value {
        RawPlatform::Detailed(d) => d,
        // Made a map just above.
        RawPlatform::Name(_) => unreachable!("the platform was just made a map"),
    }
}

fn qovery(f: &mut RawFile) -> &mut RawQovery {
    platform(f).qovery.get_or_insert_with(RawQovery::default)
}

fn kubernetes(f: &mut RawFile) -> &mut RawKubernetes {
    platform(f).kubernetes.get_or_insert_with(Box::default)
}

fn traffic(f: &mut RawFile) -> &mut RawTraffic {
    kubernetes(f)
        .traffic
        .get_or_insert_with(RawTraffic::default)
}

fn sandbox(f: &mut RawFile) -> &mut RawSandbox {
    platform(f).sandbox.get_or_insert_with(RawSandbox::default)
}

/// The variable that overrides `key`: `daemon.listen` → `CURFEW_DAEMON__LISTEN`.
pub fn variable(key: &str) -> String {
    format!("{PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The `CURFEW_*` variables of the process, sorted once: those that name a setting, with
/// their values, and those that name nothing.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// (index in [`SETTABLE`], variable, value), in the table's order.
    values: Vec<(usize, String, String)>,
    /// Variables with the prefix that name no setting, sorted.
    unknown: Vec<String>,
}

impl Overrides {
    /// Sorts out the `CURFEW_*` variables of `env`. An empty variable overrides nothing.
    pub fn from_env(env: &HashMap<String, String>) -> Overrides {
        let mut values = Vec::new();
        let mut unknown = Vec::new();
        for (name, value) in env {
            if !name.starts_with(PREFIX) || value.is_empty() {
                continue;
            }
            match SETTABLE.iter().position(|s| variable(s.key) == *name) {
                Some(i) => values.push((i, name.clone(), value.clone())),
                None if NOT_SETTINGS.contains(&name.as_str()) => {}
                None => unknown.push(name.clone()),
            }
        }
        values.sort_by_key(|(i, _, _)| *i);
        unknown.sort();
        Overrides { values, unknown }
    }

    /// Writes the overriding values into `raw`. A value that cannot be read as its setting
    /// is an error naming the variable and the setting.
    pub fn apply(&self, file: &str, raw: &mut RawFile) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (i, name, value) in &self.values {
            let settable = &SETTABLE[*i];
            let refused = |expected: &str| ConfigError {
                file: file.to_string(),
                line: None,
                column: None,
                rule: None,
                field: Some(settable.key.to_string()),
                message: format!("{name}: \"{value}\" is not {expected}"),
            };
            let result = match settable.set {
                Setter::Text(set) => {
                    set(raw, value.clone());
                    Ok(())
                }
                Setter::Flag(set) => read_flag(value).map(|v| set(raw, v)).ok_or("true or false"),
                Setter::Count(set) => value
                    .trim()
                    .parse()
                    .map(|v| set(raw, v))
                    .map_err(|_| "a whole number from 0 to 4294967295"),
                Setter::Big(set) => value
                    .trim()
                    .parse()
                    .map(|v| set(raw, v))
                    .map_err(|_| "a whole number, 0 or more"),
                Setter::Number(set) => value
                    .trim()
                    .parse()
                    .map(|v| set(raw, v))
                    .map_err(|_| "a number"),
            };
            errors.extend(result.err().map(refused));
        }
        errors
    }

    /// Adds to an error about an overridden setting the variable that set it (an error
    /// with a line is about the file's own text, and is left as it is).
    pub fn annotate(&self, errors: &mut [ConfigError]) {
        for e in errors.iter_mut().filter(|e| e.line.is_none()) {
            let Some(field) = e.field.as_deref() else {
                continue;
            };
            let by: Vec<&str> = self
                .values
                .iter()
                .filter(|(i, name, _)| {
                    let key = SETTABLE[*i].key;
                    (key == field || key.starts_with(&format!("{field}.")))
                        && !e.message.starts_with(name.as_str())
                })
                .map(|(_, name, _)| name.as_str())
                .collect();
            if !by.is_empty() {
                e.message.push_str(&format!(" (set by {})", by.join(", ")));
            }
        }
    }

    /// One sentence per `CURFEW_` variable that names no setting, except those the file
    /// itself names (`token_env`, `url_env`, … may well start with `CURFEW_`).
    pub fn warnings(&self, raw: &RawFile) -> Vec<String> {
        let named = named_variables(raw);
        self.unknown
            .iter()
            .filter(|name| !named.contains(&name.as_str()))
            .map(|name| {
                let hint = closest(name)
                    .map(|known| format!("; did you mean {known}?"))
                    .unwrap_or_default();
                let name = crate::text::printable(name);
                format!("the environment variable {name} names no setting and is ignored{hint}")
            })
            .collect()
    }

    /// Whether any variable overrides a setting.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// `true` or `false`, in any case.
fn read_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The variables the file names for secrets and tokens.
fn named_variables(raw: &RawFile) -> Vec<&str> {
    let mut names = Vec::new();
    if let Some(d) = &raw.daemon {
        names.extend(d.value.admin_token_env.as_ref().map(|a| a.value.as_str()));
    }
    if let Some(At {
        value: RawPlatform::Detailed(d),
        ..
    }) = &raw.platform
    {
        names.extend(d.qovery.as_ref().and_then(|q| q.token_env.as_deref()));
    }
    for target in raw.notify.values() {
        names.extend(target.value.url_env.as_ref().map(|a| a.value.as_str()));
        names.extend(target.value.secret_env.as_ref().map(|a| a.value.as_str()));
    }
    names
}

/// The known variable closest to a misspelt one, if one is close.
fn closest(name: &str) -> Option<String> {
    SETTABLE
        .iter()
        .map(|s| variable(s.key))
        .chain(NOT_SETTINGS.iter().map(|s| s.to_string()))
        .map(|known| (strsim::damerau_levenshtein(name, &known), known))
        .filter(|(distance, known)| *distance <= 2.max(known.len() / 6))
        .min()
        .map(|(_, known)| known)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf of the schema under the settings sections, as `daemon.listen`.
    fn schema_settings() -> Vec<String> {
        let schema: serde_json::Value = serde_json::from_str(&crate::cli::schema_json()).unwrap();
        let mut out = Vec::new();
        for section in [
            "timezone", "currency", "daemon", "platform", "safety", "defaults",
        ] {
            leaves(&schema, &schema["properties"][section], section, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    fn leaves(
        root: &serde_json::Value,
        node: &serde_json::Value,
        path: &str,
        out: &mut Vec<String>,
    ) {
        if let Some(r) = node["$ref"].as_str() {
            let name = r.trim_start_matches("#/$defs/");
            return leaves(root, &root["$defs"][name], path, out);
        }
        let variants = node["anyOf"].as_array().or(node["oneOf"].as_array());
        if let Some(variants) = variants {
            for v in variants.iter().filter(|v| v["type"] != "null") {
                leaves(root, v, path, out);
            }
            return;
        }
        match node["properties"].as_object() {
            Some(props) => {
                for (k, v) in props {
                    leaves(root, v, &format!("{path}.{k}"), out);
                }
            }
            None => out.push(path.to_string()),
        }
    }

    #[test]
    fn every_setting_of_the_schema_can_be_overridden() {
        let mut table: Vec<String> = SETTABLE.iter().map(|s| s.key.to_string()).collect();
        table.sort();
        assert_eq!(table, schema_settings());
    }

    #[test]
    fn variables_are_sorted_into_settings_and_unknown_names() {
        let env: HashMap<String, String> = [
            ("CURFEW_SAFETY__DRY_RUN", "true"),
            ("CURFEW_ADMIN_TOKEN", "secret-token-0123456789"),
            ("CURFEW_LOG", "debug"),
            ("CURFEW_SERVER", "http://x"),
            ("CURFEW_SAFTY__DRY_RUN", "true"),
            ("CURFEW_DEFAULTS__PRICES__VCPU_HOUR", ""),
            ("CURFEW_OPS_TOKEN", "named by the file"),
            ("HOME", "/root"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let o = Overrides::from_env(&env);
        assert_eq!(o.values.len(), 1, "{o:?}");
        let raw: RawFile =
            serde_saphyr::from_str("daemon: { admin_token_env: CURFEW_OPS_TOKEN }\n").unwrap();
        assert_eq!(
            o.warnings(&raw),
            [
                "the environment variable CURFEW_SAFTY__DRY_RUN names no setting and is ignored; did you mean CURFEW_SAFETY__DRY_RUN?"
            ]
        );
    }

    #[test]
    fn a_far_name_gets_no_suggestion() {
        assert_eq!(closest("CURFEW_WHATEVER"), None);
        assert_eq!(
            closest("CURFEW_DAEMON__LISTN").as_deref(),
            Some("CURFEW_DAEMON__LISTEN")
        );
        assert_eq!(closest("CURFEW_LGO").as_deref(), Some("CURFEW_LOG"));
    }
}
