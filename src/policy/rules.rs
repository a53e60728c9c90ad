//! The compiled rules: what a rule file means once loaded ([`crate::config`] compiles it):
//! which environments a rule or a protection selects, when its schedule lets them run,
//! what wakes them, the safety limits, and the notification targets.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{NaiveTime, TimeDelta};
use chrono_tz::Tz;
use wildmatch::WildMatch;

use crate::platform::{Environment, GitOps, Mode};
use crate::schedule::RuleSchedule;

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
    /// Environments under this rule may be woken by a request (the waiting page, Sablier's
    /// API); on Kubernetes, a sleeping namespace's Ingresses/HTTPRoutes also send traffic
    /// to curfew's wake Service.
    pub wake_on_request: bool,
    pub allow_delete: Vec<Mode>,
    pub notify: Vec<String>,
    pub timezone: Tz,
    /// What a stop does to the GitOps tool that owns an environment (`gitops:`).
    pub gitops: GitOps,
    /// Kubernetes: what else a stop changes (`patches:`, `release_load_balancers:`).
    pub extras: crate::platform::kubernetes::Extras,
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

impl Glob {
    /// The pattern `pattern`: `*` any run of characters, `?` one.
    pub fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.to_string(),
            matcher: WildMatch::new(pattern),
        }
    }
}

impl Selector {
    /// Whether it names nothing (and so fits every environment).
    pub fn is_empty(&self) -> bool {
        self.modes.is_empty()
            && self.projects.is_empty()
            && self.environments.is_empty()
            && self.clusters.is_empty()
            && self.labels.is_empty()
    }
}
