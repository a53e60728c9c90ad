//! The rule file: what users write ([`raw`]), what curfew understands ([`RuleSet`]), and the
//! loading in between.
//!
//! Loading is two-phase, like ripgrep's arguments: the YAML is parsed into raw serde structs
//! (unknown fields rejected, every value with its line and column), then compiled into a
//! validated [`RuleSet`], collecting *every* error. Between the two, `CURFEW_*` environment
//! variables override the daemon's settings (everything but `protect`, `notify` and
//! `rules`; [`overrides`]). The file itself is read by [`Source`]: a regular file, bounded
//! in size and time, once it has stopped changing ([`crate::files`]).

mod compile;
mod error;
pub mod overrides;
pub mod raw;
pub mod settings;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use wildmatch::WildMatch;

pub use error::{ConfigError, ConfigErrors};
pub use overrides::Overrides;
pub use settings::Settings;

use crate::platform::{Environment, Mode};
use crate::schedule::Schedule;

/// A validated rule file.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub timezone: Tz,
    pub currency: String,
    pub safety: Safety,
    pub defaults: Defaults,
    /// Checked before any rule; the built-in production protection comes first.
    pub protect: Vec<Protection>,
    /// In order: the first match decides.
    pub rules: Vec<Rule>,
    pub notify: BTreeMap<String, Target>,
}

/// Limits that hold whatever the rules say.
#[derive(Debug, Clone, PartialEq)]
pub struct Safety {
    pub dry_run: bool,
    pub max_stops_per_pass: u32,
    pub max_deletes_per_hour: u32,
    pub protect_production: bool,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            dry_run: false,
            max_stops_per_pass: 100,
            max_deletes_per_hour: 10,
            protect_production: true,
        }
    }
}

/// Defaults for every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub hourly_cost: Option<f64>,
    pub vcpu_hour: Option<f64>,
    pub gib_hour: Option<f64>,
    pub grace_period: TimeDelta,
    pub warn_before_delete: TimeDelta,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            hourly_cost: None,
            vcpu_hour: None,
            gib_hour: None,
            grace_period: TimeDelta::minutes(30),
            warn_before_delete: TimeDelta::zero(),
        }
    }
}

/// A protect entry.
#[derive(Debug, Clone)]
pub struct Protection {
    pub selector: Selector,
    /// Why, for people: "protected by protect[1] (project=billing-*)".
    pub description: String,
}

/// A notification target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub slack: bool,
    pub url_env: Option<String>,
    pub url: Option<String>,
    pub secret_env: Option<String>,
    pub digest_at: Option<NaiveTime>,
    pub digest_timezone: Option<Tz>,
}

/// A `*`/`?` pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    matcher: WildMatch,
}

impl Glob {
    pub fn matches(&self, text: &str) -> bool {
        self.matcher.matches(text)
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// How many patterns of one field a selector's description names.
const SELECTOR_PATTERNS: usize = 5;

/// Which environments: every non-empty part must fit; within a part, any entry.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub modes: Vec<Mode>,
    pub projects: Vec<Glob>,
    pub environments: Vec<Glob>,
    pub clusters: Vec<Glob>,
    pub labels: Vec<(String, Glob)>,
}

impl Selector {
    /// Whether `env` fits. An environment whose cluster is not known yet does not fit a
    /// selector that names clusters (so no rule acts on it by mistake); protections use
    /// [`Selector::may_match`] instead.
    pub fn matches(&self, env: &Environment) -> bool {
        self.matches_when_cluster_unknown(env, false)
    }

    /// Whether `env` fits or might: an unknown cluster counts as fitting, so a `protect`
    /// entry naming clusters protects environments whose cluster is not known yet.
    pub fn may_match(&self, env: &Environment) -> bool {
        self.matches_when_cluster_unknown(env, true)
    }

    fn matches_when_cluster_unknown(&self, env: &Environment, unknown_fits: bool) -> bool {
        let any = |globs: &[Glob], value: &str| {
            globs.is_empty() || globs.iter().any(|g| g.matches(value))
        };
        (self.modes.is_empty() || self.modes.contains(&env.mode))
            && any(&self.projects, &env.project)
            && any(&self.environments, &env.name)
            && (self.clusters.is_empty()
                || env
                    .cluster
                    .as_deref()
                    .map_or(unknown_fits, |c| self.clusters.iter().any(|g| g.matches(c))))
            && self
                .labels
                .iter()
                .all(|(k, v)| env.labels.get(k).is_some_and(|value| v.matches(value)))
    }

    /// `mode=preview project=web-*`, for people; `everything` when empty.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        // A few patterns each, and how many more: a description goes into reasons.
        let list = |globs: &[Glob]| {
            let mut shown = globs
                .iter()
                .take(SELECTOR_PATTERNS)
                .map(Glob::pattern)
                .collect::<Vec<_>>()
                .join("|");
            if globs.len() > SELECTOR_PATTERNS {
                shown.push_str(&format!("|…({} more)", globs.len() - SELECTOR_PATTERNS));
            }
            shown
        };
        if !self.modes.is_empty() {
            parts.push(format!(
                "mode={}",
                self.modes
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join("|")
            ));
        }
        if !self.projects.is_empty() {
            parts.push(format!("project={}", list(&self.projects)));
        }
        if !self.environments.is_empty() {
            parts.push(format!("environment={}", list(&self.environments)));
        }
        if !self.clusters.is_empty() {
            parts.push(format!("cluster={}", list(&self.clusters)));
        }
        for (k, v) in &self.labels {
            parts.push(format!("label {k}={}", v.pattern()));
        }
        if parts.is_empty() {
            "everything".into()
        } else {
            parts.join(" ")
        }
    }
}

/// Which stopped environments a window's start wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wake {
    /// Only those curfew stopped for the schedule (default): a person's stop, or an idle
    /// stop, is respected.
    StoppedByCurfew,
    /// Every stopped environment the rule matches.
    All,
    /// None: the schedule only stops.
    Never,
}

/// When a rule lets environments run.
#[derive(Debug, Clone)]
pub enum RuleSchedule {
    /// `run:` windows (holidays included): running inside, stopped outside.
    Run(Schedule),
    /// `stop:` windows: stopped inside (and on holidays), running outside.
    Stop {
        windows: Schedule,
        /// Every day but the holidays, when there are holidays.
        holidays: Option<Schedule>,
    },
    /// Stop and start events.
    Events(Schedule),
}

/// How many steps a combined (`stop:` + holidays) schedule looks ahead for a change.
const MAX_COMBINED_STEPS: usize = 1000;

impl RuleSchedule {
    /// Whether environments may run at `t`.
    pub fn is_active(&self, t: DateTime<Utc>) -> bool {
        match self {
            RuleSchedule::Run(s) | RuleSchedule::Events(s) => s.is_active(t),
            RuleSchedule::Stop { windows, holidays } => {
                !windows.is_active(t) && holidays.as_ref().is_none_or(|h| h.is_active(t))
            }
        }
    }

    /// The first instant after `t` where [`RuleSchedule::is_active`] changes.
    pub fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            RuleSchedule::Run(s) | RuleSchedule::Events(s) => s.next_change(t),
            RuleSchedule::Stop {
                windows,
                holidays: None,
            } => windows.next_change(t),
            RuleSchedule::Stop {
                windows,
                holidays: Some(h),
            } => {
                let now = self.is_active(t);
                let mut at = t;
                for _ in 0..MAX_COMBINED_STEPS {
                    let next = [windows.next_change(at), h.next_change(at)]
                        .into_iter()
                        .flatten()
                        .min()?;
                    if self.is_active(next) != now {
                        return Some(next);
                    }
                    at = next;
                }
                None
            }
        }
    }

    /// The latest boundary at or before `t`: the last change of state, or for event
    /// schedules the last event (a stop after a stop is a boundary too: a person's start in
    /// between is undone by it).
    pub fn last_boundary(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let RuleSchedule::Events(s) = self {
            return s.events().and_then(|e| e.last_event(t)).map(|(at, _)| at);
        }
        // Walk forward from a week back; if nothing changed in that week, look further.
        let mut lookback = TimeDelta::days(8);
        for _ in 0..8 {
            let from = t - lookback;
            let mut last = None;
            let mut at = from;
            while let Some(next) = self.next_change(at).filter(|n| *n <= t) {
                last = Some(next);
                at = next;
            }
            if last.is_some() {
                return last;
            }
            lookback = lookback * 4;
        }
        None
    }

    /// The next boundary after `t` (for event schedules, the next event).
    pub fn next_boundary(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let RuleSchedule::Events(s) = self {
            return s.events().and_then(|e| e.next_event(t)).map(|(at, _)| at);
        }
        self.next_change(t)
    }

    /// The first boundary after `t` at which environments must stop (a person's wake lasts
    /// until then). `None` when the schedule never stops again.
    pub fn next_stop(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut at = t;
        for _ in 0..MAX_COMBINED_STEPS {
            let boundary = self.next_boundary(at)?;
            if !self.is_active(boundary) {
                return Some(boundary);
            }
            at = boundary;
        }
        None
    }

    /// The schedule for a reason read at `t`: normalized, a long one summarized
    /// ([`Schedule::describe_at`]).
    pub fn describe_at(&self, t: DateTime<Utc>) -> String {
        match self {
            RuleSchedule::Run(s) => format!("run {}", s.describe_at(t)),
            RuleSchedule::Events(s) => format!("events {}", s.describe_at(t)),
            RuleSchedule::Stop { windows, holidays } => match holidays {
                None => format!("stop {}", windows.describe_at(t)),
                Some(h) => format!(
                    "stop {}; and all day on holidays ({})",
                    windows.describe_at(t),
                    h.describe_at(t)
                ),
            },
        }
    }

    /// The schedule as written in normalized form, whole (`validate --json`).
    pub fn describe(&self) -> String {
        match self {
            RuleSchedule::Run(s) => format!("run {s}"),
            RuleSchedule::Events(s) => format!("events {s}"),
            RuleSchedule::Stop { windows, holidays } => match holidays {
                None => format!("stop {windows}"),
                Some(h) => format!("stop {windows}; and all day on holidays ({h})"),
            },
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Shared with every decision the rule makes.
    pub name: Arc<str>,
    pub selector: Selector,
    pub schedule: Option<RuleSchedule>,
    pub wake: Wake,
    pub stop_when_idle: Option<TimeDelta>,
    pub delete_after: Option<TimeDelta>,
    pub delete_when_stopped_for: Option<TimeDelta>,
    pub delete_when_idle_for: Option<TimeDelta>,
    pub warn_before_delete: TimeDelta,
    pub grace_period: TimeDelta,
    pub hourly_cost: Option<f64>,
    pub dry_run: bool,
    pub allow_delete: Vec<Mode>,
    pub notify: Vec<String>,
    pub timezone: Tz,
}

/// A loaded rule file: the rules and the daemon's settings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rules: RuleSet,
    pub settings: Settings,
    /// What deserves a look but does not stop the file (a `CURFEW_` variable that names
    /// no setting).
    pub warnings: Vec<String>,
}

/// Parses and compiles rule file text, with the `CURFEW_*` overrides named in `env`.
/// See [`parse_with`].
pub fn parse(
    file: &str,
    text: &str,
    env: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Loaded, ConfigErrors> {
    parse_with(file, text, &Overrides::from_env(env), now)
}

/// Parses and compiles rule file text, then applies `overrides`. `file` names it in
/// errors; `now` is when the file is checked (a schedule that never runs is measured
/// from it). Every error found is returned, not just the first.
pub fn parse_with(
    file: &str,
    text: &str,
    overrides: &Overrides,
    now: DateTime<Utc>,
) -> Result<Loaded, ConfigErrors> {
    let mut raw = parse_raw(file, text)?;
    let mut errors = overrides.apply(file, &mut raw);
    let mut compiler = compile::Compiler {
        file,
        text,
        errors: Vec::new(),
        now,
    };
    let rules = compile::compile(&mut compiler, &raw);
    let settings = settings::settings(file, &raw);
    errors.extend(compiler.errors);
    if let Err(e) = &settings {
        errors.extend(e.iter().cloned());
    }
    overrides.annotate(&mut errors);
    match (rules, settings) {
        (Some(rules), Ok(settings)) if errors.is_empty() => Ok(Loaded {
            rules,
            settings,
            warnings: overrides.warnings(&raw),
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

/// [`parse`] without environment overrides, keeping only the rules.
pub fn parse_rules(file: &str, text: &str, now: DateTime<Utc>) -> Result<RuleSet, ConfigErrors> {
    parse(file, text, &HashMap::new(), now).map(|l| l.rules)
}

/// Parses the YAML into raw structs, turning serde's error into a located [`ConfigError`].
pub fn parse_raw(file: &str, text: &str) -> Result<raw::RawFile, ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            rule: None,
            field: None,
            message: "the rule file is empty; it needs at least a `rules:` list".into(),
        }]));
    }
    serde_saphyr::from_str::<raw::RawFile>(text).map_err(|e| {
        let location = e.location();
        let message = plain_message(&e);
        let line = location.map(|l| l.line() as usize);
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line,
            column: location.map(|l| l.column() as usize),
            rule: line.and_then(|l| rule_at_line(text, l)),
            field: None,
            message: error::explain_unknown_field(&message),
        }])
    })
}

/// serde-saphyr's message without its own location and snippet.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or_default().trim();
    let first = first.trim_start_matches("error: ");
    // "line 7 column 5: unknown field …": the location is reported separately.
    match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => {
            rest.to_string()
        }
        _ => first.to_string(),
    }
}

/// The rule a line of the file belongs to, found by the nearest `- name:` above it (used
/// when the file is too broken to be read as rules).
fn rule_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    let rules_start = lines.iter().rposition(|l| l.starts_with("rules:"))?;
    lines[rules_start..].iter().rev().find_map(|l| {
        let item = l.trim_start().strip_prefix("- ")?.trim_start();
        let name = item
            .strip_prefix("name:")?
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        (!name.is_empty()).then(|| format!("\"{name}\""))
    })
}

/// Where the rule file is and how it is read: the same for the daemon's start and its
/// reloads, `validate` and `plan`.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// Built once from the process's environment.
    pub overrides: Overrides,
    /// The largest file read.
    pub max_bytes: u64,
}

/// How to raise the rule file's size limit, for its error.
const MAX_SIZE_HINT: &str = "; raise the limit with --max-rule-file-size";

impl Source {
    /// The rule file at `path`, with the overrides of `env`, read up to
    /// [`crate::files::RULE_FILE_MAX_BYTES`].
    pub fn new(path: &Path, env: &HashMap<String, String>) -> Source {
        Source {
            path: path.to_path_buf(),
            overrides: Overrides::from_env(env),
            max_bytes: crate::files::RULE_FILE_MAX_BYTES,
        }
    }

    /// Reads the file (a regular file, bounded in size and time, once it has stopped
    /// changing) and [`parse_with`]s it.
    pub async fn load(&self, now: DateTime<Utc>) -> Result<Loaded, ConfigErrors> {
        let file = self.path.display().to_string();
        let limits = crate::files::Limits::bytes(self.max_bytes);
        let pause = crate::files::SETTLE_PAUSE;
        let text = crate::files::read_settled(&self.path, limits, pause, MAX_SIZE_HINT)
            .await
            .map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    file: file.clone(),
                    line: None,
                    column: None,
                    rule: None,
                    field: None,
                    message: e.problem.to_string(),
                }])
            })?;
        parse_with(&file, &text, &self.overrides, now)
    }
}

impl RuleSet {
    /// The rule with this name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.name == name)
    }

    /// The zone people read a decision's instants in: its rule's, else the file's.
    pub fn zone_of(&self, rule: Option<&str>) -> Tz {
        rule.and_then(|name| self.rule(name))
            .map_or(self.timezone, |r| r.timezone)
    }
}

#[cfg(test)]
mod tests;
