//! Raw rule file → validated [`RuleSet`], collecting every error with where it is.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use wildmatch::WildMatch;

use super::error::ConfigError;
use super::raw::{
    At, OneOrMany, RawDefaults, RawEvents, RawFile, RawRule, RawSafety, RawSelector, RawWindows,
};
use super::{
    Defaults, Glob, Protection, Rule, RuleSchedule, RuleSet, Safety, Selector, Target, Wake,
};
use crate::platform::Mode;
use crate::schedule::{Holiday, Schedule, format_seconds, parse_duration, zone};
use crate::text::printable;

/// Collects errors while compiling; every check reports here and carries on.
pub(super) struct Compiler<'a> {
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

pub(super) fn compile(c: &mut Compiler<'_>, raw: &RawFile) -> Option<RuleSet> {
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
        if let Some(selector) = compile_selector(c, &entry.value, None, &field, entry) {
            if selector.is_empty() {
                let place = Place {
                    rule: None,
                    field: &field,
                    line: entry.line,
                    column: entry.column,
                };
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
    let rules = compile_rules(c, raw, timezone, &defaults, &notify);
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
                let place = Place {
                    rule: name,
                    field,
                    line: at.line,
                    column: at.column,
                };
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
                let place = Place {
                    rule: None,
                    field: &field,
                    line: prices.line,
                    column: prices.column,
                };
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
        let place = Place {
            rule: (!rule.is_empty()).then_some(rule),
            field,
            line: at.line,
            column: at.column,
        };
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
    let place = Place {
        rule: None,
        field: &field,
        line: at.line,
        column: at.column,
    };
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

fn compile_selector<T>(
    c: &mut Compiler<'_>,
    raw: &RawSelector,
    rule: Option<&str>,
    field: &str,
    at: &At<T>,
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
    let _ = at;
    ok.then(|| Selector {
        modes,
        projects: globs(&raw.project),
        environments: globs(&raw.environment),
        clusters: globs(&raw.cluster),
        labels,
    })
}

fn compile_rules(
    c: &mut Compiler<'_>,
    raw: &RawFile,
    timezone: Tz,
    defaults: &Defaults,
    targets: &BTreeMap<String, Target>,
) -> Vec<Rule> {
    let Some(rules_at) = &raw.rules else {
        c.errors.push(ConfigError {
            file: c.file.to_string(),
            line: None,
            column: None,
            rule: None,
            field: Some("rules".into()),
            message: "no rules: add a `rules:` list (an empty file acts on nothing)".into(),
        });
        return Vec::new();
    };
    if rules_at.value.is_empty() {
        let place = Place {
            rule: None,
            field: "rules",
            line: rules_at.line,
            column: rules_at.column,
        };
        c.error(place, "the rules list is empty");
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut rules = Vec::new();
    for (i, at) in rules_at.value.iter().enumerate() {
        let label = match &at.value.name {
            Some(n) if !n.value.trim().is_empty() => format!("\"{}\"", printable(n.value.trim())),
            _ => format!("#{}", i + 1),
        };
        let name = match &at.value.name {
            Some(n) if !n.value.trim().is_empty() => {
                let name = n.value.trim().to_string();
                check_name(c, &name, &label, "name", n);
                if !seen.insert(name.clone()) {
                    let place = Place {
                        rule: Some(&label),
                        field: "name",
                        line: n.line,
                        column: n.column,
                    };
                    c.error(
                        place,
                        format!("duplicate rule name \"{name}\"; names must be unique"),
                    );
                }
                name
            }
            _ => {
                let place = Place {
                    rule: Some(&label),
                    field: "name",
                    line: at.line,
                    column: at.column,
                };
                c.error(place, "a rule needs a `name`");
                String::new()
            }
        };
        if let Some(rule) =
            compile_rule(c, &at.value, at, &label, name, timezone, defaults, targets)
        {
            rules.push(rule);
        }
    }
    rules
}

#[allow(clippy::too_many_arguments)]
fn compile_rule(
    c: &mut Compiler<'_>,
    raw: &RawRule,
    at: &At<RawRule>,
    label: &str,
    name: String,
    file_tz: Tz,
    defaults: &Defaults,
    targets: &BTreeMap<String, Target>,
) -> Option<Rule> {
    let errors_before = c.errors.len();
    let rule = Some(label);
    let tz = match &raw.timezone {
        Some(z) => c.zone(z, rule, "timezone").unwrap_or(file_tz),
        None => file_tz,
    };
    let mut selector = match &raw.selector {
        Some(s) => compile_selector(c, &s.value, rule, "match", s).unwrap_or_default(),
        None => Selector::default(),
    };
    // Qovery deployment-rule selectors.
    if let Some(w) = &raw.wildcard
        && !w.value.is_empty()
    {
        selector.environments.push(Glob::new(&w.value));
    }
    if let Some(m) = &raw.mode {
        let place = Place {
            rule,
            field: "mode",
            line: m.line,
            column: m.column,
        };
        selector.modes.extend(c.mode(&m.value, place));
    }
    if let Some(id) = &raw.cluster_id {
        selector.clusters.push(Glob::new(&id.value));
    }
    let mut holidays = Vec::new();
    for h in &raw.holidays {
        match Holiday::parse(h.value.trim()) {
            Ok(day) => holidays.push(day),
            Err(e) => {
                let place = Place {
                    rule,
                    field: "holidays",
                    line: h.line,
                    column: h.column,
                };
                c.error(place, e);
            }
        }
    }
    let schedule = compile_schedule(c, raw, rule, tz, &holidays);
    let wake = match &raw.wake {
        None => Wake::StoppedByCurfew,
        Some(w) => {
            match w.value.trim() {
                "stopped-by-curfew" => Wake::StoppedByCurfew,
                "all" => Wake::All,
                "never" => Wake::Never,
                other => {
                    let place = Place {
                        rule,
                        field: "wake",
                        line: w.line,
                        column: w.column,
                    };
                    c.error(place, format!("unknown wake policy \"{other}\"; expected stopped-by-curfew, all or never"));
                    Wake::StoppedByCurfew
                }
            }
        }
    };
    let stop_when_idle = c.duration(&raw.stop_when_idle, rule, "stop_when_idle");
    let delete_after = c.duration(&raw.delete_after, rule, "delete_after");
    let delete_when_stopped_for = c.duration(
        &raw.delete_when_stopped_for,
        rule,
        "delete_when_stopped_for",
    );
    let delete_when_idle_for = c.duration(&raw.delete_when_idle_for, rule, "delete_when_idle_for");
    let warn_before_delete = c
        .duration(&raw.warn_before_delete, rule, "warn_before_delete")
        .unwrap_or(defaults.warn_before_delete);
    let grace_period = c
        .duration(&raw.grace_period, rule, "grace_period")
        .unwrap_or(defaults.grace_period);
    if let (Some(d), Some(at_d)) = (delete_after, &raw.delete_after)
        && d < grace_period
    {
        let place = Place {
            rule,
            field: "delete_after",
            line: at_d.line,
            column: at_d.column,
        };
        c.error(place, format!(
            "delete_after ({}) is shorter than the grace period ({}): new environments would be deleted as soon as they may be touched",
            at_d.value.trim(),
            crate::schedule::format_seconds(grace_period.num_seconds().max(0).unsigned_abs())
        ));
    }
    let hourly_cost = c
        .cost(&raw.hourly_cost, rule, "hourly_cost")
        .or(defaults.hourly_cost);
    let mut allow_delete = vec![Mode::Preview];
    if let Some(list) = &raw.allow_delete {
        allow_delete.clear();
        let place = Place {
            rule,
            field: "allow_delete",
            line: list.line,
            column: list.column,
        };
        for m in &list.value {
            allow_delete.extend(c.mode(m, place));
        }
    }
    let deletes = delete_after.is_some()
        || delete_when_stopped_for.is_some()
        || delete_when_idle_for.is_some();
    if !deletes && raw.allow_delete.is_some() {
        let a = raw
            .allow_delete
            .as_ref()
            .map_or((0, 0), |a| (a.line, a.column));
        let place = Place {
            rule,
            field: "allow_delete",
            line: a.0,
            column: a.1,
        };
        c.error(place, "allow_delete without delete_after, delete_when_stopped_for or delete_when_idle_for has no effect");
    }
    for n in &raw.notify {
        if !targets.contains_key(n.value.trim()) {
            let place = Place {
                rule,
                field: "notify",
                line: n.line,
                column: n.column,
            };
            let known: Vec<&str> = targets.keys().map(String::as_str).collect();
            c.error(
                place,
                format!(
                    "unknown notification target \"{}\"; targets defined under `notify`: {}",
                    n.value,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
    if schedule.is_none() && stop_when_idle.is_none() && !deletes && c.errors.len() == errors_before
    {
        let place = Place {
            rule,
            field: "name",
            line: at.line,
            column: at.column,
        };
        c.error(place, "this rule does nothing: give it a schedule (run, stop, events, or Qovery's weekdays/start_time/stop_time), stop_when_idle or a delete condition");
    }
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Rule {
        name: name.into(),
        selector,
        schedule,
        wake,
        stop_when_idle,
        delete_after,
        delete_when_stopped_for,
        delete_when_idle_for,
        warn_before_delete,
        grace_period,
        hourly_cost,
        dry_run: raw.dry_run.unwrap_or(false),
        allow_delete,
        notify: raw
            .notify
            .iter()
            .map(|n| n.value.trim().to_string())
            .collect(),
        timezone: tz,
    })
}

fn compile_schedule(
    c: &mut Compiler<'_>,
    raw: &RawRule,
    rule: Option<&str>,
    tz: Tz,
    holidays: &[Holiday],
) -> Option<RuleSchedule> {
    let qovery = raw.weekdays.is_some() || raw.start_time.is_some() || raw.stop_time.is_some();
    let given: Vec<&str> = [
        (raw.run.is_some(), "run"),
        (raw.stop.is_some(), "stop"),
        (raw.events.is_some(), "events"),
        (qovery, "weekdays/start_time/stop_time"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if given.len() > 1 {
        let (line, column) = raw
            .run
            .as_ref()
            .map(|a| (a.line, a.column))
            .or(raw.stop.as_ref().map(|a| (a.line, a.column)))
            .or(raw.events.as_ref().map(|a| (a.line, a.column)))
            .unwrap_or((0, 0));
        let place = Place {
            rule,
            field: given[0],
            line,
            column,
        };
        c.error(
            place,
            format!("give one schedule, not several: {}", given.join(", ")),
        );
        return None;
    }
    let parse =
        |c: &mut Compiler<'_>, text: &str, field: &str, at: (usize, usize)| -> Option<Schedule> {
            match Schedule::parse(text, tz) {
                Ok(s) => Some(s),
                Err(e) => {
                    let column = c.inner_column(at.0, at.1, e.column);
                    let place = Place {
                        rule,
                        field,
                        line: at.0,
                        column,
                    };
                    c.error(place, e.to_string());
                    None
                }
            }
        };
    // `run:` and `stop:` take the same windows; an event spec belongs under `events:`.
    let windows = |c: &mut Compiler<'_>, at: &At<RawWindows>, field: &str| -> Option<Schedule> {
        let pos = list_aware_position(&at.value, at);
        let s = parse(c, &at.value.joined(), field, pos)?;
        if s.events().is_some() {
            let place = Place {
                rule,
                field,
                line: at.line,
                column: at.column,
            };
            c.error(
                place,
                format!("an event schedule (stop=…, off=…) belongs under `events`, not `{field}`"),
            );
            return None;
        }
        Some(s)
    };
    let schedule = if let Some(run) = &raw.run {
        RuleSchedule::Run(windows(c, run, "run")?.with_holidays(holidays))
    } else if let Some(stop) = &raw.stop {
        RuleSchedule::stop(windows(c, stop, "stop")?, holidays, tz)
    } else if let Some(events) = &raw.events {
        let text = match &events.value {
            RawEvents::Spec(s) => s.clone(),
            RawEvents::Fields(f) => match event_fields(f) {
                Ok(t) => t,
                Err(e) => {
                    let place = Place {
                        rule,
                        field: "events",
                        line: events.line,
                        column: events.column,
                    };
                    c.error(place, e);
                    return None;
                }
            },
        };
        let s = parse(c, &text, "events", (events.line, events.column))?;
        if s.events().is_none() {
            let place = Place {
                rule,
                field: "events",
                line: events.line,
                column: events.column,
            };
            c.error(place, "`events` takes stop=/start= crons or a Cloud Custodian tag; windows belong under `run` or `stop`");
            return None;
        }
        RuleSchedule::Events(s.with_holidays(holidays))
    } else if qovery {
        if raw.auto_stop == Some(false) {
            return None;
        }
        let text = qovery_window(raw)
            .map_err(|(field, line, column, e)| {
                let place = Place {
                    rule,
                    field,
                    line,
                    column,
                };
                c.error(place, e);
            })
            .ok()?;
        let s = parse(c, &text, "weekdays", (0, 0))?;
        RuleSchedule::Run(s.with_holidays(holidays))
    } else {
        return None;
    };
    if schedule.never_runs(c.now) {
        let field = given.first().copied().unwrap_or("run");
        let (line, column) = raw
            .run
            .as_ref()
            .map(|a| (a.line, a.column))
            .or(raw.stop.as_ref().map(|a| (a.line, a.column)))
            .unwrap_or((0, 0));
        let place = Place {
            rule,
            field,
            line,
            column,
        };
        c.error(
            place,
            format!(
                "the schedule \"{}\" never lets an environment run in the coming year",
                schedule.describe()
            ),
        );
        return None;
    }
    Some(schedule)
}

/// Where to report a column inside `run:`/`stop:`: a one-string value maps columns into the
/// line; a list does not (the error then names the value's start).
fn list_aware_position(value: &RawWindows, at: &At<RawWindows>) -> (usize, usize) {
    match value {
        RawWindows::One(_) => (at.line, at.column),
        RawWindows::List(_) => (at.line, 0),
    }
}

/// kube-green's SleepInfo fields, or cron fields, as an event spec string.
fn event_fields(f: &super::raw::RawEventFields) -> Result<String, String> {
    let mut parts = Vec::new();
    let kube_green = f.weekdays.is_some() || f.sleep_at.is_some() || f.wake_up_at.is_some();
    if kube_green {
        if f.stop.is_some() || f.start.is_some() {
            return Err(
                "use either stop/start crons or kube-green's weekdays/sleepAt/wakeUpAt, not both"
                    .into(),
            );
        }
        let weekdays = f.weekdays.clone().unwrap_or_else(|| "*".into());
        let cron = |hm: &str| -> Result<String, String> {
            let (h, m) = hm
                .split_once(':')
                .ok_or_else(|| format!("\"{hm}\" is not HH:MM"))?;
            Ok(format!("{} {} * * {weekdays}", m.trim(), h.trim()))
        };
        let sleep = f
            .sleep_at
            .as_deref()
            .ok_or("kube-green fields need sleepAt")?;
        parts.push(format!("stop={}", cron(sleep)?));
        if let Some(wake) = &f.wake_up_at {
            parts.push(format!("start={}", cron(wake)?));
        }
    } else {
        for s in f.stop.as_ref().map(OneOrMany::to_vec).unwrap_or_default() {
            parts.push(format!("stop={s}"));
        }
        for s in f.start.as_ref().map(OneOrMany::to_vec).unwrap_or_default() {
            parts.push(format!("start={s}"));
        }
    }
    match &f.time_zone {
        Some(tz) => parts.push(format!("tz={tz}")),
        // kube-green's SleepInfo without timeZone means UTC.
        None if kube_green => parts.push("tz=UTC".into()),
        None => {}
    }
    Ok(parts.join("; "))
}

type FieldError = (&'static str, usize, usize, String);

/// Qovery's deployment-rule fields as one window: `Mon,Tue 08:00-19:00`.
fn qovery_window(raw: &RawRule) -> Result<String, FieldError> {
    let time = |value: &Option<At<String>>, field: &'static str| -> Result<String, FieldError> {
        let at =
            value
                .as_ref()
                .ok_or((field, 0, 0, format!("Qovery rules need {field} as well")))?;
        let text = at.value.trim();
        // `1970-01-01T08:00:00.000Z` (the API's form) or `08:00`.
        let hm = text.split_once('T').map_or(text, |(_, t)| t);
        let hm: String = hm.chars().take(5).collect();
        let valid = hm.len() == 5 && chrono::NaiveTime::parse_from_str(&hm, "%H:%M").is_ok();
        if !valid {
            return Err((
                field,
                at.line,
                at.column,
                format!("\"{text}\" is not a time; expected 08:00 or 1970-01-01T08:00:00.000Z"),
            ));
        }
        Ok(hm)
    };
    let start = time(&raw.start_time, "start_time")?;
    let stop = time(&raw.stop_time, "stop_time")?;
    let days_at = raw.weekdays.as_ref().ok_or((
        "weekdays",
        0,
        0,
        "Qovery rules need weekdays as well".to_string(),
    ))?;
    if days_at.value.is_empty() {
        return Err((
            "weekdays",
            days_at.line,
            days_at.column,
            "weekdays is empty".into(),
        ));
    }
    let mut days = Vec::new();
    for d in &days_at.value {
        let lower = d.trim().to_ascii_lowercase();
        let short = match lower.as_str() {
            "monday" => "Mon",
            "tuesday" => "Tue",
            "wednesday" => "Wed",
            "thursday" => "Thu",
            "friday" => "Fri",
            "saturday" => "Sat",
            "sunday" => "Sun",
            _ => {
                return Err((
                    "weekdays",
                    days_at.line,
                    days_at.column,
                    format!("unknown weekday \"{d}\"; expected MONDAY..SUNDAY"),
                ));
            }
        };
        days.push(short);
    }
    Ok(format!("{} {start}-{stop}", days.join(",")))
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.to_string(),
            matcher: WildMatch::new(pattern),
        }
    }
}

impl Selector {
    fn is_empty(&self) -> bool {
        self.modes.is_empty()
            && self.projects.is_empty()
            && self.environments.is_empty()
            && self.clusters.is_empty()
            && self.labels.is_empty()
    }
}

impl RuleSchedule {
    fn stop(windows: Schedule, holidays: &[Holiday], tz: Tz) -> RuleSchedule {
        let holidays = (!holidays.is_empty()).then(|| {
            Schedule::from_windows(
                vec![crate::schedule::Window::Weekly(crate::schedule::Weekly {
                    days: crate::schedule::DaySet::ALL,
                    start: 0,
                    end: 86_400,
                    tz,
                })],
                holidays.to_vec(),
            )
        });
        RuleSchedule::Stop { windows, holidays }
    }

    /// Whether the schedule keeps environments stopped over the whole coming year.
    fn never_runs(&self, now: DateTime<Utc>) -> bool {
        let year = TimeDelta::days(366);
        match self {
            RuleSchedule::Run(s) => s.never_active_within(now, year),
            RuleSchedule::Events(_) => false,
            RuleSchedule::Stop { .. } => {
                !self.is_active(now) && self.next_change(now).is_none_or(|n| n > now + year)
            }
        }
    }
}
