//! The `rules:` list: each rule's name, selector, schedule, wake, clocks, deletes and
//! targets, every mistake reported where it is.

use std::collections::{BTreeMap, HashSet};

use chrono::TimeDelta;
use chrono_tz::Tz;

use super::schedule::{compile_schedule, runs_or_only_stops};
use super::{Compiler, Place, check_name, compile_selector};
use crate::config::error::ConfigError;
use crate::config::raw::{At, RawFile, RawGitOps, RawRule};
use crate::platform::kubernetes::{Extras, ObjectPatch, Target as KindTarget};
use crate::platform::{GitOps, Mode};
use crate::policy::{Defaults, Glob, Rule, Selector, Target, Wake};
use crate::schedule::{Holiday, format_seconds};
use crate::text::printable;

/// What every rule is compiled with: the file's zone, its defaults and its targets.
pub(super) struct RuleContext<'a> {
    pub timezone: Tz,
    pub defaults: &'a Defaults,
    pub targets: &'a BTreeMap<String, Target>,
}

/// Every rule of the file, in order; a rule with a mistake is left out (its errors are
/// reported).
pub(super) fn compile_rules(
    c: &mut Compiler<'_>,
    raw: &RawFile,
    ctx: &RuleContext<'_>,
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
        let place = Place::of(None, "rules", rules_at);
        c.error(place, "the rules list is empty");
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut rules = Vec::new();
    for (i, at) in rules_at.value.iter().enumerate() {
        let label = match &at.value.name {
            Some(n) if !n.value.trim().is_empty() => format!("\"{}\"", printable(n.value.trim())),
            _ => format!("#{}", i + 1),
        };
        let name = rule_name(c, at, &label, &mut seen);
        if let Some(rule) = compile_rule(c, ctx, at, &label, name) {
            rules.push(rule);
        }
    }
    rules
}

/// The rule's name: given, printable, and not taken by an earlier rule.
fn rule_name(
    c: &mut Compiler<'_>,
    at: &At<RawRule>,
    label: &str,
    seen: &mut HashSet<String>,
) -> String {
    match &at.value.name {
        Some(n) if !n.value.trim().is_empty() => {
            let name = n.value.trim().to_string();
            check_name(c, &name, label, "name", n);
            if !seen.insert(name.clone()) {
                c.error(
                    Place::of(Some(label), "name", n),
                    format!("duplicate rule name \"{name}\"; names must be unique"),
                );
            }
            name
        }
        _ => {
            c.error(Place::of(Some(label), "name", at), "a rule needs a `name`");
            String::new()
        }
    }
}

/// One rule, in the order a reader checks it: zone, selector, holidays, schedule, wake,
/// clocks (idle, delete, warning, grace), cost, what it may delete, its targets; then
/// whether it does anything at all.
fn compile_rule(
    c: &mut Compiler<'_>,
    ctx: &RuleContext<'_>,
    at: &At<RawRule>,
    label: &str,
    name: String,
) -> Option<Rule> {
    let raw = &at.value;
    let errors_before = c.errors.len();
    let rule = Some(label);
    let tz = match &raw.timezone {
        Some(z) => c.zone(z, rule, "timezone").unwrap_or(ctx.timezone),
        None => ctx.timezone,
    };
    let selector = rule_selector(c, raw, rule);
    let holidays = holidays(c, raw, rule);
    let schedule = compile_schedule(c, raw, rule, tz, &holidays);
    let wake = wake(c, raw, rule);
    let schedule = schedule.filter(|s| runs_or_only_stops(c, raw, rule, s, wake));
    let clocks = clocks(c, raw, rule, ctx.defaults);
    let hourly_cost = c
        .cost(&raw.hourly_cost, rule, "hourly_cost")
        .or(ctx.defaults.hourly_cost);
    let allow_delete = allow_delete(c, raw, rule, clocks.deletes());
    let extras = extras(c, raw, rule);
    check_targets(c, raw, rule, ctx.targets);
    let does_nothing = schedule.is_none() && clocks.stop_when_idle.is_none() && !clocks.deletes();
    if does_nothing && c.errors.len() == errors_before {
        c.error(Place::of(rule, "name", at), "this rule does nothing: give it a schedule (run, stop, events, or Qovery's weekdays/start_time/stop_time), stop_when_idle or a delete condition");
    }
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Rule {
        name: name.into(),
        selector,
        schedule,
        wake,
        stop_when_idle: clocks.stop_when_idle,
        delete_after: clocks.delete_after,
        delete_when_stopped_for: clocks.delete_when_stopped_for,
        delete_when_idle_for: clocks.delete_when_idle_for,
        warn_before_delete: clocks.warn_before_delete,
        grace_period: clocks.grace_period,
        hourly_cost,
        dry_run: raw.dry_run.unwrap_or(false),
        wake_on_request: raw.wake_on_request.unwrap_or(false),
        allow_delete,
        notify: raw
            .notify
            .iter()
            .map(|n| n.value.trim().to_string())
            .collect(),
        timezone: tz,
        gitops: match raw.gitops {
            None | Some(RawGitOps::Pause) => GitOps::Pause,
            Some(RawGitOps::SelfHealOnly) => GitOps::SelfHealOnly,
            Some(RawGitOps::Off) => GitOps::Off,
        },
        extras,
    })
}

/// `patches:` and `release_load_balancers:`: each patch's target and patch checked, one
/// patch per kind, and no patch of Services when their load balancers are released.
fn extras(c: &mut Compiler<'_>, raw: &RawRule, rule: Option<&str>) -> Extras {
    let release_load_balancers = raw.release_load_balancers.unwrap_or(false);
    let mut patches: Vec<ObjectPatch> = Vec::new();
    for (i, p) in raw.patches.iter().enumerate() {
        let field = format!("patches[{i}]");
        let place = Place::of(rule, &field, p);
        let target = match KindTarget::parse(&p.value.target) {
            Ok(t) => t,
            Err(e) => {
                c.error(place, format!("target: {e}"));
                continue;
            }
        };
        if patches.iter().any(|q| q.target == target) {
            c.error(
                place,
                format!("a second patch of {target}: give one patch per kind"),
            );
            continue;
        }
        if release_load_balancers && target == KindTarget::services() {
            c.error(place, "this rule releases load balancers (release_load_balancers: true), which patches its Services: give Services no patch of their own".to_string());
            continue;
        }
        match ObjectPatch::new(target, p.value.patch.clone()) {
            Ok(patch) => patches.push(patch),
            Err(e) => c.error(place, format!("patch: {e}")),
        }
    }
    Extras {
        patches,
        release_load_balancers,
    }
}

/// `match:`, with Qovery's deployment-rule selectors (`wildcard`, `mode`, `cluster_id`).
fn rule_selector(c: &mut Compiler<'_>, raw: &RawRule, rule: Option<&str>) -> Selector {
    let mut selector = match &raw.selector {
        Some(s) => compile_selector(c, &s.value, rule, "match").unwrap_or_default(),
        None => Selector::default(),
    };
    if let Some(w) = &raw.wildcard
        && !w.value.is_empty()
    {
        selector.environments.push(Glob::new(&w.value));
    }
    if let Some(m) = &raw.mode {
        let place = Place::of(rule, "mode", m);
        selector.modes.extend(c.mode(&m.value, place));
    }
    if let Some(id) = &raw.cluster_id {
        selector.clusters.push(Glob::new(&id.value));
    }
    selector
}

fn holidays(c: &mut Compiler<'_>, raw: &RawRule, rule: Option<&str>) -> Vec<Holiday> {
    let mut holidays = Vec::new();
    for h in &raw.holidays {
        match Holiday::parse(h.value.trim()) {
            Ok(day) => holidays.push(day),
            Err(e) => c.error(Place::of(rule, "holidays", h), e.to_string()),
        }
    }
    holidays
}

fn wake(c: &mut Compiler<'_>, raw: &RawRule, rule: Option<&str>) -> Wake {
    let Some(w) = &raw.wake else {
        return Wake::StoppedByCurfew;
    };
    match w.value.trim() {
        "stopped-by-curfew" => Wake::StoppedByCurfew,
        "all" => Wake::All,
        "never" => Wake::Never,
        other => {
            c.error(
                Place::of(rule, "wake", w),
                format!(
                    "unknown wake policy \"{other}\"; expected stopped-by-curfew, all or never"
                ),
            );
            Wake::StoppedByCurfew
        }
    }
}

/// A rule's clocks: how long idle before a stop, when a delete comes, how long before it
/// people are warned, and the grace period of new environments.
struct Clocks {
    stop_when_idle: Option<TimeDelta>,
    delete_after: Option<TimeDelta>,
    delete_when_stopped_for: Option<TimeDelta>,
    delete_when_idle_for: Option<TimeDelta>,
    warn_before_delete: TimeDelta,
    grace_period: TimeDelta,
}

impl Clocks {
    /// Whether the rule deletes.
    fn deletes(&self) -> bool {
        self.delete_after.is_some()
            || self.delete_when_stopped_for.is_some()
            || self.delete_when_idle_for.is_some()
    }
}

fn clocks(c: &mut Compiler<'_>, raw: &RawRule, rule: Option<&str>, defaults: &Defaults) -> Clocks {
    let clocks = Clocks {
        stop_when_idle: c.duration(&raw.stop_when_idle, rule, "stop_when_idle"),
        delete_after: c.duration(&raw.delete_after, rule, "delete_after"),
        delete_when_stopped_for: c.duration(
            &raw.delete_when_stopped_for,
            rule,
            "delete_when_stopped_for",
        ),
        delete_when_idle_for: c.duration(&raw.delete_when_idle_for, rule, "delete_when_idle_for"),
        warn_before_delete: c
            .duration(&raw.warn_before_delete, rule, "warn_before_delete")
            .unwrap_or(defaults.warn_before_delete),
        grace_period: c
            .duration(&raw.grace_period, rule, "grace_period")
            .unwrap_or(defaults.grace_period),
    };
    if let (Some(d), Some(at_d)) = (clocks.delete_after, &raw.delete_after)
        && d < clocks.grace_period
    {
        c.error(Place::of(rule, "delete_after", at_d), format!(
            "delete_after ({}) is shorter than the grace period ({}): new environments would be deleted as soon as they may be touched",
            at_d.value.trim(),
            format_seconds(clocks.grace_period.num_seconds().max(0).unsigned_abs())
        ));
    }
    clocks
}

/// The modes the rule may delete (previews unless it says otherwise), and only where it
/// deletes at all.
fn allow_delete(
    c: &mut Compiler<'_>,
    raw: &RawRule,
    rule: Option<&str>,
    deletes: bool,
) -> Vec<Mode> {
    let Some(list) = &raw.allow_delete else {
        return vec![Mode::Preview];
    };
    let place = Place::of(rule, "allow_delete", list);
    let modes = list.value.iter().filter_map(|m| c.mode(m, place)).collect();
    if !deletes {
        c.error(place, "allow_delete without delete_after, delete_when_stopped_for or delete_when_idle_for has no effect");
    }
    modes
}

/// Each target the rule notifies is defined under `notify`.
fn check_targets(
    c: &mut Compiler<'_>,
    raw: &RawRule,
    rule: Option<&str>,
    targets: &BTreeMap<String, Target>,
) {
    for n in raw
        .notify
        .iter()
        .filter(|n| !targets.contains_key(n.value.trim()))
    {
        let known: Vec<&str> = targets.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        c.error(
            Place::of(rule, "notify", n),
            format!(
                "unknown notification target \"{}\"; targets defined under `notify`: {known}",
                n.value
            ),
        );
    }
}
