//! Raw rule file → validated [`RuleSet`], collecting every error with where it is: the
//! file's own settings here, the rules in `rule.rs`, their schedules in `schedule.rs`.

mod rule;
mod schedule;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::error::ConfigError;
use super::raw::{At, OneOrMany, RawDefaults, RawFile, RawSafety, RawSelector};
use crate::platform::Mode;
use crate::policy::{Defaults, Glob, Protection, RuleSet, Safety, Selector, Target};
use crate::schedule::{format_seconds, parse_duration, zone};
use crate::text::printable;

/// Collects errors while compiling; every check reports here and carries on.
pub(in crate::config) struct Compiler<'a> {
    pub file: &'a str,
    /// The YAML text, to place columns inside quoted strings.
    pub text: &'a str,
    pub errors: Vec<ConfigError>,
    pub now: DateTime<Utc>,
}

/// Where an error is: rule and field, plus the value's position.
#[derive(Clone, Copy)]
struct Place<'p> {
    rule: Option<&'p str>,
    field: &'p str,
    line: usize,
    column: usize,
}

impl<'p> Place<'p> {
    /// `field` of `rule`, where the value `at` is written.
    fn of<T>(rule: Option<&'p str>, field: &'p str, at: &At<T>) -> Place<'p> {
        Place {
            rule,
            field,
            line: at.line,
            column: at.column,
        }
    }
}

impl<'a> Compiler<'a> {
    fn error(&mut self, place: Place<'_>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: (place.line > 0).then_some(place.line),
            column: (place.column > 0).then_some(place.column),
            rule: place.rule.map(str::to_string),
            field: Some(place.field.to_string()),
            message: message.into(),
        });
    }

    /// Column of character `offset` (1-based) of a scalar starting at `line:column`,
    /// stepping over the opening quote of a quoted scalar.
    fn inner_column(&self, line: usize, column: usize, offset: usize) -> usize {
        let quoted = self
            .text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.chars().nth(column.saturating_sub(1)))
            .is_some_and(|c| c == '"' || c == '\'');
        column + usize::from(quoted) + offset.saturating_sub(1)
    }

    fn duration(
        &mut self,
        value: &Option<At<String>>,
        rule: Option<&str>,
        field: &str,
    ) -> Option<TimeDelta> {
        let at = value.as_ref()?;
        let place = Place {
            rule,
            field,
            line: at.line,
            column: at.column,
        };
        match parse_duration(&at.value) {
            Ok(secs) => match i64::try_from(secs).ok().and_then(TimeDelta::try_seconds) {
                Some(d) => Some(d),
                None => {
                    self.error(place, format!("duration \"{}\" is too long", at.value));
                    None
                }
            },
            Err(e) => {
                self.error(place, e.to_string());
                None
            }
        }
    }

    fn zone(&mut self, value: &At<String>, rule: Option<&str>, field: &str) -> Option<Tz> {
        let tz = zone::parse_zone(value.value.trim());
        if tz.is_none() {
            let place = Place {
                rule,
                field,
                line: value.line,
                column: value.column,
            };
            let hint = zone_hint(&value.value);
            self.error(
                place,
                format!("unknown time zone \"{}\"{hint}", value.value),
            );
        }
        tz
    }

    /// A mode name in any case, or an error at `place`.
    fn mode(&mut self, text: &str, place: Place<'_>) -> Option<Mode> {
        let mode = Mode::parse(text);
        if mode.is_none() {
            self.error(
                place,
                format!(
                    "unknown mode \"{text}\"; expected production, staging, development or preview"
                ),
            );
        }
        mode
    }

    fn cost(&mut self, value: &Option<At<f64>>, rule: Option<&str>, field: &str) -> Option<f64> {
        let at = value.as_ref()?;
        if !(at.value.is_finite() && at.value >= 0.0) {
            let place = Place {
                rule,
                field,
                line: at.line,
                column: at.column,
            };
            self.error(
                place,
                format!("{} is not a cost: expected a number 0 or more", at.value),
            );
            return None;
        }
        Some(at.value)
    }
}

/// Suggests the closest IANA names for an unknown zone.
fn zone_hint(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let best = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            (
                strsim::damerau_levenshtein(&lower, &tz.name().to_ascii_lowercase()),
                tz.name(),
            )
        })
        .min();
    match best {
        Some((d, candidate)) if d <= 3 => format!("; did you mean {candidate}?"),
        _ => "; expected an IANA zone such as Europe/Paris or America/New_York".into(),
    }
}

pub(in crate::config) fn compile(c: &mut Compiler<'_>, raw: &RawFile) -> Option<RuleSet> {
    let timezone = match &raw.timezone {
        Some(at) => c.zone(at, None, "timezone").unwrap_or(chrono_tz::UTC),
        None => chrono_tz::UTC,
    };
    let currency = raw
        .currency
        .as_ref()
        .map_or("USD".to_string(), |at| at.value.trim().to_string());
    if currency.is_empty()
        || currency.len() > 8
        || !currency.chars().all(|ch| ch.is_ascii_alphanumeric())
    {
        let (line, column) = raw.currency.as_ref().map_or((0, 0), |a| (a.line, a.column));
        c.error(
            Place {
                rule: None,
                field: "currency",
                line,
                column,
            },
            format!("currency \"{currency}\" should be a code such as EUR or USD"),
        );
    }
    let safety = compile_safety(c, raw.safety.as_ref().map(|a| &a.value));
    let defaults = compile_defaults(c, raw.defaults.as_ref().map(|a| &a.value));
    let mut protect = Vec::new();
    if safety.protect_production {
        protect.push(Protection {
            selector: Selector {
                modes: vec![Mode::Production],
                ..Selector::default()
            },
            description: "production environments are protected (safety.protect_production)".into(),
        });
    }
    for (i, entry) in raw.protect.iter().enumerate() {
        let field = format!("protect[{i}]");
        if let Some(selector) = compile_selector(c, &entry.value, None, &field) {
            if selector.is_empty() {
                let place = Place::of(None, &field, entry);
                c.error(place, "an empty protect entry would protect every environment; name a mode, project, environment, cluster or label");
                continue;
            }
            let description = format!("protected by protect[{i}] ({})", selector.describe());
            protect.push(Protection {
                selector,
                description,
            });
        }
    }
    let mut notify = BTreeMap::new();
    for (name, target) in &raw.notify {
        if let Some(t) = compile_target(c, name, &target.value, target) {
            notify.insert(name.clone(), t);
        }
    }
    let context = rule::RuleContext {
        timezone,
        defaults: &defaults,
        targets: &notify,
    };
    let rules = rule::compile_rules(c, raw, &context);
    check_traffic_lookback(c, raw);
    Some(RuleSet {
        timezone,
        currency,
        safety,
        defaults,
        protect,
        rules,
        notify,
    })
}

/// With traffic from Prometheus (`platform.kubernetes.traffic`), requests older than the
/// lookback are not seen: a rule whose idle duration is longer could stop or delete an
/// environment that had requests within that duration.
fn check_traffic_lookback(c: &mut Compiler<'_>, raw: &RawFile) {
    use super::raw::RawPlatform;
    let Some(RawPlatform::Detailed(detail)) = raw.platform.as_ref().map(|p| &p.value) else {
        return;
    };
    let Some(traffic) = detail.kubernetes.as_ref().and_then(|k| k.traffic.as_ref()) else {
        return;
    };
    // A lookback that does not parse is reported with the platform settings.
    let Ok(lookback) = traffic
        .lookback
        .as_deref()
        .map_or(Ok(7 * 86_400), parse_duration)
    else {
        return;
    };
    let rules = raw
        .rules
        .as_ref()
        .map(|r| r.value.as_slice())
        .unwrap_or_default();
    for rule in rules {
        let name = rule.value.name.as_ref().map(|n| n.value.as_str());
        for (field, at) in [
            ("stop_when_idle", &rule.value.stop_when_idle),
            ("delete_when_idle_for", &rule.value.delete_when_idle_for),
        ] {
            let Some(at) = at else { continue };
            let Ok(idle) = parse_duration(&at.value) else {
                continue;
            };
            if idle > lookback {
                let place = Place::of(name, field, at);
                c.error(
                    place,
                    format!(
                        "{field} {} is longer than platform.kubernetes.traffic.lookback {}: requests older than the lookback are not seen, so this rule could act on an environment in use; set the lookback to {} or more",
                        format_seconds(idle),
                        format_seconds(lookback),
                        format_seconds(idle)
                    ),
                );
            }
        }
    }
}

fn compile_safety(c: &mut Compiler<'_>, raw: Option<&RawSafety>) -> Safety {
    let mut safety = Safety::default();
    let Some(raw) = raw else { return safety };
    safety.dry_run = raw.dry_run.unwrap_or(false);
    safety.protect_production = raw.protect_production.unwrap_or(true);
    if let Some(at) = &raw.max_stops_per_pass {
        safety.max_stops_per_pass = at.value;
    }
    if let Some(at) = &raw.max_deletes_per_hour {
        safety.max_deletes_per_hour = at.value;
    }
    let _ = c;
    safety
}

fn compile_defaults(c: &mut Compiler<'_>, raw: Option<&RawDefaults>) -> Defaults {
    let mut defaults = Defaults::default();
    let Some(raw) = raw else { return defaults };
    defaults.hourly_cost = c.cost(&raw.hourly_cost, None, "defaults.hourly_cost");
    if let Some(prices) = &raw.prices {
        for (value, name) in [
            (prices.value.vcpu_hour, "vcpu_hour"),
            (prices.value.gib_hour, "gib_hour"),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v >= 0.0)
            {
                let field = format!("defaults.prices.{name}");
                let place = Place::of(None, &field, prices);
                c.error(
                    place,
                    format!("{v} is not a price: expected a number 0 or more"),
                );
            }
        }
        defaults.vcpu_hour = prices.value.vcpu_hour;
        defaults.gib_hour = prices.value.gib_hour;
    }
    if let Some(d) = c.duration(&raw.grace_period, None, "defaults.grace_period") {
        defaults.grace_period = d;
    }
    if let Some(d) = c.duration(&raw.warn_before_delete, None, "defaults.warn_before_delete") {
        defaults.warn_before_delete = d;
    }
    defaults
}

/// A name shown in logs, metrics and terminals may hold no control character (a newline
/// in a rule's name printed a forged ERROR line).
fn check_name<T>(c: &mut Compiler<'_>, name: &str, rule: &str, field: &str, at: &At<T>) {
    if let Some(bad) = name.chars().find(|ch| crate::text::is_unprintable(*ch)) {
        let place = Place::of((!rule.is_empty()).then_some(rule), field, at);
        c.error(
            place,
            format!(
                "the name holds the control character U+{:04X}; names appear in logs, metrics and terminals",
                bad as u32
            ),
        );
    }
}

fn compile_target(
    c: &mut Compiler<'_>,
    name: &str,
    raw: &super::raw::RawTarget,
    at: &At<super::raw::RawTarget>,
) -> Option<Target> {
    let field = format!("notify.{}", printable(name));
    check_name(c, name, "", &field, at);
    let place = Place::of(None, &field, at);
    let kind = raw.kind.value.trim().to_ascii_lowercase();
    if kind != "slack" && kind != "webhook" {
        let p = Place {
            line: raw.kind.line,
            column: raw.kind.column,
            ..place
        };
        c.error(
            p,
            format!(
                "unknown kind \"{}\"; expected slack or webhook",
                raw.kind.value
            ),
        );
        return None;
    }
    let url_env = raw.url_env.as_ref().map(|a| a.value.clone());
    let url = raw.url.as_ref().map(|a| a.value.clone());
    if url_env.is_some() == url.is_some() {
        c.error(
            place,
            "give exactly one of url_env (an environment variable holding the URL) or url",
        );
        return None;
    }
    let digest_tz = raw
        .digest_timezone
        .as_ref()
        .and_then(|z| c.zone(z, None, &field));
    let digest_at = raw.digest_at.as_ref().and_then(|a| {
        let parsed = chrono::NaiveTime::parse_from_str(a.value.trim(), "%H:%M").ok();
        if parsed.is_none() {
            let p = Place {
                line: a.line,
                column: a.column,
                ..place
            };
            c.error(p, format!("digest_at \"{}\" is not HH:MM", a.value));
        }
        parsed
    });
    Some(Target {
        name: name.to_string(),
        slack: kind == "slack",
        url_env,
        url,
        secret_env: raw.secret_env.as_ref().map(|a| a.value.clone()),
        digest_at,
        digest_timezone: digest_tz,
    })
}

fn globs(values: &Option<At<OneOrMany<String>>>) -> Vec<Glob> {
    values
        .as_ref()
        .map(|at| {
            at.value
                .to_vec()
                .into_iter()
                .map(|p| Glob::new(&p))
                .collect()
        })
        .unwrap_or_default()
}

fn compile_selector(
    c: &mut Compiler<'_>,
    raw: &RawSelector,
    rule: Option<&str>,
    field: &str,
) -> Option<Selector> {
    let mut ok = true;
    let mut modes = Vec::new();
    if let Some(mode_at) = &raw.mode {
        let f = format!("{field}.mode");
        let place = Place {
            rule,
            field: &f,
            line: mode_at.line,
            column: mode_at.column,
        };
        for m in mode_at.value.to_vec() {
            match c.mode(&m, place) {
                Some(mode) => modes.push(mode),
                None => ok = false,
            }
        }
    }
    let mut labels: Vec<(String, Glob)> = raw
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Glob::new(v)))
        .collect();
    if let Some(label) = &raw.label {
        match label.value.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                labels.push((k.trim().to_string(), Glob::new(v.trim())))
            }
            _ => {
                let f = format!("{field}.label");
                let place = Place {
                    rule,
                    field: &f,
                    line: label.line,
                    column: label.column,
                };
                c.error(place, format!("label \"{}\" is not key=value", label.value));
                ok = false;
            }
        }
    }
    ok.then(|| Selector {
        modes,
        projects: globs(&raw.project),
        environments: globs(&raw.environment),
        clusters: globs(&raw.cluster),
        labels,
    })
}
