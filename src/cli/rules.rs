//! `curfew validate`, `curfew schema`, `curfew plan`.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use serde_json::{Value, json};

use crate::config::settings::PlatformSettings;
use crate::config::{self, ConfigErrors, Loaded, Settings, Source};
use crate::files;
use crate::platform::Snapshot;
use crate::policy::{self, Action, Decision, LedgerView, Rule, RuleSet};
use crate::text::printable;

fn seconds(d: Option<TimeDelta>) -> Value {
    d.map_or(Value::Null, |d| json!(d.num_seconds()))
}

/// The compiled rule set as JSON: durations in seconds, schedules normalized.
pub fn rule_set_json(loaded: &Loaded) -> Value {
    let rules: &RuleSet = &loaded.rules;
    let rule = |r: &Rule| {
        json!({
            "name": r.name,
            "match": r.selector.describe(),
            "schedule": r.schedule.as_ref().map(|s| s.describe()),
            "timezone": r.timezone.name(),
            "wake": r.wake,
            "stop_when_idle": seconds(r.stop_when_idle),
            "delete_after": seconds(r.delete_after),
            "delete_when_stopped_for": seconds(r.delete_when_stopped_for),
            "delete_when_idle_for": seconds(r.delete_when_idle_for),
            "warn_before_delete": seconds(Some(r.warn_before_delete)),
            "grace_period": seconds(Some(r.grace_period)),
            "hourly_cost": r.hourly_cost,
            "dry_run": r.dry_run,
            "allow_delete": r.allow_delete,
            "notify": r.notify,
        })
    };
    let s: &Settings = &loaded.settings;
    let platform = match &s.platform {
        PlatformSettings::Sandbox(sb) => {
            json!({"kind": "sandbox", "projects": sb.projects, "environments": sb.environments, "seed": sb.seed, "clock_speed": sb.clock_speed})
        }
        PlatformSettings::Qovery(q) => {
            json!({"kind": "qovery", "organization": q.organization, "token_env": q.token_env, "token_file": q.token_file, "api_url": q.api_url, "max_concurrency": q.max_concurrency, "requests_per_second": q.requests_per_second, "timeout": q.timeout.as_secs()})
        }
        PlatformSettings::Kubernetes(k) => {
            json!({"kind": "kubernetes", "namespace_selector": k.namespace_selector, "project_label": k.project_label, "mode_label": k.mode_label, "default_mode": k.default_mode, "cluster": k.cluster, "leader_election": k.leader_election, "traffic": k.traffic.as_ref().map(|t| &t.prometheus_url)})
        }
    };
    json!({
        "timezone": rules.timezone.name(),
        "currency": rules.currency,
        "daemon": {
            "listen": s.listen.to_string(),
            "ledger": s.ledger,
            "log_format": format!("{:?}", s.log_format).to_lowercase(),
            "resync": s.resync.as_secs(),
            "per_environment_metrics": s.per_environment_metrics,
        },
        "platform": platform,
        "safety": {
            "dry_run": rules.safety.dry_run,
            "max_stops_per_pass": rules.safety.max_stops_per_pass,
            "max_deletes_per_hour": rules.safety.max_deletes_per_hour,
            "protect_production": rules.safety.protect_production,
        },
        "defaults": {
            "hourly_cost": rules.defaults.hourly_cost,
            "vcpu_hour": rules.defaults.vcpu_hour,
            "gib_hour": rules.defaults.gib_hour,
            "grace_period": rules.defaults.grace_period.num_seconds(),
            "warn_before_delete": rules.defaults.warn_before_delete.num_seconds(),
        },
        "protect": rules.protect.iter().map(|p| p.description.clone()).collect::<Vec<_>>(),
        "notify": rules.notify.keys().collect::<Vec<_>>(),
        "rules": rules.rules.iter().map(rule).collect::<Vec<_>>(),
    })
}

pub(super) fn env_vars() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// How large a rule file may be (`--max-rule-file-size`), for every command that reads one.
#[derive(Debug, Clone, Args)]
pub struct FileLimit {
    /// The largest rule file read (`4194304`, `512KiB`, `8MiB`).
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = files::parse_size)]
    max_rule_file_size: u64,
}

impl FileLimit {
    /// The rule file at `path`, with this process's `CURFEW_*` overrides.
    pub fn source(&self, path: &Path) -> Source {
        Source {
            max_bytes: self.max_rule_file_size,
            ..Source::new(path, &env_vars())
        }
    }
}

/// Loads a rule file from synchronous code (a command, or `curfew run` before its
/// runtime starts).
pub(super) fn load(
    source: &Source,
    now: DateTime<Utc>,
) -> anyhow::Result<Result<Loaded, ConfigErrors>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(source.load(now)))
}

/// Loads a rule file for a command: its warnings on stderr, or its errors and exit code 1.
pub(super) fn load_or_exit(
    source: &Source,
    now: DateTime<Utc>,
) -> anyhow::Result<Result<Loaded, ExitCode>> {
    Ok(match load(source, now)? {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            Ok(loaded)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Err(ExitCode::from(1))
        }
    })
}

/// `curfew validate FILE [--json]`.
pub fn validate(source: &Source, as_json: bool) -> anyhow::Result<ExitCode> {
    let file = &source.path;
    match load(source, Utc::now())? {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            if as_json {
                println!("{}", serde_json::to_string_pretty(&rule_set_json(&loaded))?);
            } else {
                let r = &loaded.rules;
                let platform = match &loaded.settings.platform {
                    PlatformSettings::Sandbox(_) => "sandbox".to_string(),
                    PlatformSettings::Qovery(q) => {
                        format!("qovery organization {}", q.organization)
                    }
                    PlatformSettings::Kubernetes(k) => {
                        format!("kubernetes namespaces {}", k.namespace_selector)
                    }
                };
                println!(
                    "{}: OK: {} rule{}, {} protection{}, platform {platform}, timezone {}{}",
                    file.display(),
                    r.rules.len(),
                    if r.rules.len() == 1 { "" } else { "s" },
                    r.protect.len(),
                    if r.protect.len() == 1 { "" } else { "s" },
                    r.timezone.name(),
                    if r.safety.dry_run { ", dry run" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: {} error{}",
                file.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The JSON Schema of the rule file.
pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(config::raw::RawFile);
    schema.insert("title".into(), json!("curfew rule file"));
    schema.insert(
        "$id".into(),
        json!("https://curfew.dev/schema/curfew.schema.json"),
    );
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// `curfew plan --config FILE --snapshot FILE [--at T] [--json]`.
pub fn plan(
    source: &Source,
    snapshot_file: &Path,
    at: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let now = match at {
        None => Utc::now(),
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                eprintln!("error: --at \"{t}\" is not an RFC 3339 instant with an offset");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let loaded = match load_or_exit(source, now)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let snapshot = match read_snapshot(snapshot_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let decisions = policy::decide(&loaded.rules, &snapshot, &LedgerView::default(), now);
    let warnings = revert_warnings(&loaded.rules, &snapshot, &decisions);
    if as_json {
        let out = json!({
            "at": now,
            "next_wakeup": policy::next_wakeup(&decisions),
            "decisions": decisions,
            "warnings": warnings
                .iter()
                .map(|(env, w)| json!({"environment": env, "warning": w}))
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", plan_table(&decisions));
        if !warnings.is_empty() {
            println!("\nwarnings, before the first stop:");
            for (env, w) in &warnings {
                println!("  {}: {}", printable(env), printable(w));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// For each environment a rule will stop (not protected), who will put its stop back
/// under the rule's `gitops:` ([`policy::revert_warnings`]), whatever it does now: said
/// before the first stop, not after it.
pub fn revert_warnings<'d>(
    rules: &policy::RuleSet,
    snapshot: &Snapshot,
    decisions: &'d [Decision],
) -> Vec<(&'d str, String)> {
    snapshot
        .environments
        .iter()
        .zip(decisions)
        .filter(|(env, _)| policy::protection(rules, env, None).is_none())
        .filter_map(|(env, d)| Some((rules.rule(d.rule.as_deref()?)?, env, d)))
        .flat_map(|(rule, env, d)| {
            policy::revert_warnings(rule, env)
                .into_iter()
                .map(|w| (d.environment.as_ref(), w))
        })
        .collect()
}

/// The largest snapshot file read (a listing of 10,000 environments is about 3 MB).
/// Reads a snapshot file (JSON: `{"environments": [...], "complete": true}`): a regular
/// file of at most [`files::SNAPSHOT_MAX_BYTES`], read with a timeout. The error names the
/// file, and the line and column where it is not a snapshot.
pub(super) fn read_snapshot(path: &Path) -> Result<Snapshot, String> {
    let text = files::read_blocking(path, files::SNAPSHOT_MAX_BYTES).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a snapshot: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// What a decision does in this pass, in a word or two: `stop`, `stop + warn`,
/// `delete (else stop)` (a stop made if the executor holds the delete back), `-`.
pub fn action_words(d: &Decision) -> String {
    let delete = d.delete.as_ref().map_or(Action::None, |p| p.action);
    let words = match (d.action, delete) {
        (Action::None, Action::None) => return "-".to_string(),
        (own, Action::None) => own.to_string(),
        (Action::None, delete) => delete.to_string(),
        (own, Action::Delete) => format!("delete (else {own})"),
        (own, delete) => format!("{own} + {delete}"),
    };
    if d.dry_run {
        format!("{words} (dry run)")
    } else {
        words
    }
}

/// Decisions as an aligned table, one environment a line.
pub fn plan_table(decisions: &[Decision]) -> String {
    let header = [
        "ENVIRONMENT",
        "PROJECT",
        "STATE",
        "ACTION",
        "RULE",
        "REASON",
    ];
    let rows: Vec<[String; 6]> = decisions
        .iter()
        .map(|d| {
            let reason = match &d.delete {
                Some(delete) => format!("{} — {}", d.reason, delete.reason),
                None => d.reason.to_string(),
            };
            // Names from the platform, escaped: a newline in one cannot forge a row.
            [
                printable(&d.environment).into_owned(),
                printable(&d.project).into_owned(),
                d.state.to_string(),
                action_words(d),
                printable(d.rule.as_deref().unwrap_or("-")).into_owned(),
                printable(&reason).into_owned(),
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    aligned(&header, &rows, &[])
}

/// A table for people: columns two spaces apart, each as wide as its widest cell, those
/// listed in `right` aligned to the right (numbers); the last column is never padded.
pub(super) fn aligned(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let w = *w;
            if right.contains(&i) {
                s.push_str(&format!("{cell:>w$}  "));
            } else if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
