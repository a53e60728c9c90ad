//! `curfew simulate`: what the rules will do over the coming days (and what changing them
//! would), printed as tables, JSON, or a daily CSV. The simulation is [`crate::simulate`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use clap::Args;
use serde_json::json;

use super::rules::{FileLimit, aligned, env_vars, load_or_exit, read_snapshot};
use crate::config::Loaded;
use crate::platform::Snapshot;
use crate::policy::{LedgerView, local};
use crate::simulate::compare::{Comparison, EnvironmentChange, compare};
use crate::simulate::{self, MAX_DAYS, Options, Projection, Totals};

/// How many deletes, untouched or changed environments a table lists (`--json` has all).
const LISTED: usize = 20;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The rule file.
    #[arg(long)]
    config: PathBuf,
    /// A snapshot file (JSON: {"environments": [...], "complete": true}) instead of the
    /// live platform (read-only either way).
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Start at this instant (RFC 3339; default now).
    #[arg(long, value_name = "INSTANT")]
    from: Option<String>,
    /// How many days: calendar days in the rule file's zone, 1 to 366.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    days: u32,
    /// Another rule file (the one in force): show what changing from it to --config does
    /// to the savings and to who is stopped when.
    #[arg(long, value_name = "OLD")]
    against: Option<PathBuf>,
    /// JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Write the daily series (one row per day and rule) to this CSV file; `-` prints it.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    #[command(flatten)]
    limit: FileLimit,
}

/// Loads a rule file, printing its warnings, or its errors and the exit code.
fn load(
    limit: &FileLimit,
    path: &Path,
    from: DateTime<Utc>,
) -> anyhow::Result<Result<Loaded, ExitCode>> {
    load_or_exit(&limit.source(path), from)
}

/// `curfew simulate`.
pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let from = match args.from.as_deref().map(DateTime::parse_from_rfc3339) {
        None => Utc::now(),
        Some(Ok(t)) => t.with_timezone(&Utc),
        Some(Err(_)) => {
            eprintln!(
                "error: --from {:?} is not an RFC 3339 instant with an offset",
                args.from.unwrap_or_default()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let new = match load(&args.limit, &args.config, from)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let old = match args.against.as_deref() {
        None => None,
        Some(path) => match load(&args.limit, path, from)? {
            Ok(l) => Some(l),
            Err(code) => return Ok(code),
        },
    };
    let snapshot = match &args.snapshot {
        Some(path) => match read_snapshot(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
        },
        None => match super::admin::live_snapshot(&new, &env_vars())? {
            Ok(s) => s,
            Err(code) => return Ok(code),
        },
    };
    let project = |loaded: &Loaded, snapshot: Snapshot| {
        let resync = TimeDelta::from_std(loaded.settings.resync).unwrap_or(TimeDelta::seconds(60));
        let mut options = Options::new(from, args.days, resync);
        options.per_environment = old.is_some();
        simulate::simulate(&loaded.rules, snapshot, LedgerView::default(), &options)
    };
    let tz = new.rules.timezone;
    let new_file = args.config.display().to_string();
    match &old {
        None => {
            let p = project(&new, snapshot);
            write_csv(args.csv.as_deref(), &p)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else if args.csv.as_deref() != Some(Path::new("-")) {
                print!("{}", projection_text(&p, tz, &new_file));
            }
        }
        Some(old_rules) => {
            let mut before = project(old_rules, snapshot.clone());
            let mut after = project(&new, snapshot);
            let c = compare(&before, &after);
            before.per_environment.clear();
            after.per_environment.clear();
            write_csv(args.csv.as_deref(), &after)?;
            if args.json {
                let out = json!({"projection": after, "against": before, "comparison": c});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if args.csv.as_deref() != Some(Path::new("-")) {
                let old_file = args.against.as_deref().unwrap_or(Path::new("")).display();
                print!(
                    "{}",
                    comparison_text(&after, &c, tz, &new_file, &old_file.to_string())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The daily series to `path` (`-`: standard output).
fn write_csv(path: Option<&Path>, p: &Projection) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let text = daily_csv(p);
    if path == Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The daily series as CSV: one row per day of the rule file's zone and per rule.
pub fn daily_csv(p: &Projection) -> String {
    let mut out = String::from(
        "date,rule,hours_running,hours_stopped,hours_deleted,always_on_cost,projected_cost,saved,currency,stops,starts,deletes\n",
    );
    for d in &p.daily {
        let _ = writeln!(
            out,
            "{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{},{},{},{}",
            d.date,
            csv_field(&d.rule),
            d.hours_running,
            d.hours_stopped,
            d.hours_deleted,
            d.always_on_cost,
            d.projected_cost,
            d.saved,
            csv_field(&p.currency),
            d.stops,
            d.starts,
            d.deletes
        );
    }
    out
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `1,234.50`: two decimals, thousands grouped.
fn grouped(x: f64) -> String {
    let text = format!("{:.2}", x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let sign = if x < 0.0 && !text.trim_start_matches(['0', '.']).is_empty() {
        "-"
    } else {
        ""
    };
    format!("{sign}{out}.{frac}")
}

/// Hours with one decimal, thousands grouped.
fn hours(h: f64) -> String {
    let two = grouped(h);
    two[..two.len() - 1].to_string()
}

fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{p:.1}%"))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The first lines: what was simulated, and on which assumptions.
fn heading(p: &Projection, tz: Tz, what: &str) -> String {
    let mut out = format!(
        "Simulated {} of {what}: {} to {}, {}, {}.\nAssuming:\n",
        plural(p.days as usize, "day", "days"),
        local(p.from, tz),
        local(p.to, tz),
        plural(p.environments, "environment", "environments"),
        plural(p.passes as usize, "pass", "passes"),
    );
    for a in &p.assumptions {
        let _ = writeln!(out, "- {a}");
    }
    out
}

/// The projection as people read it.
pub fn projection_text(p: &Projection, tz: Tz, file: &str) -> String {
    let mut out = heading(p, tz, file);
    out.push('\n');
    let header = [
        "RULE",
        "ENVS",
        "RUNNING h",
        "STOPPED h",
        "DELETED h",
        "ALWAYS ON",
        "PROJECTED",
        "SAVED",
        "SAVED %",
        "STOPS",
        "STARTS",
        "DELETES",
    ];
    let row = |name: &str, t: &Totals| {
        vec![
            name.to_string(),
            t.environments.to_string(),
            hours(t.hours_running),
            hours(t.hours_stopped),
            hours(t.hours_deleted),
            grouped(t.always_on_cost),
            grouped(t.projected_cost),
            grouped(t.saved),
            percent(t.saved_percent),
            t.stops.to_string(),
            t.starts.to_string(),
            t.deletes.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = p.rules.iter().map(|r| row(&r.rule, &r.totals)).collect();
    rows.push(row("total", &p.total));
    out.push_str(&aligned(&header, &rows, &(1..12).collect::<Vec<_>>()));
    let _ = writeln!(out, "Money in {}.", p.currency);
    deletes_text(&mut out, p, tz);
    untouched_text(&mut out, p);
    busiest_text(&mut out, p, tz);
    out
}

fn more(out: &mut String, shown: usize, all: usize) {
    if all > shown {
        let _ = writeln!(out, "… and {} more (--json lists them all)", all - shown);
    }
}

fn deletes_text(out: &mut String, p: &Projection, tz: Tz) {
    let _ = writeln!(out, "\nDeletes ({}):", p.deletes.len());
    if p.deletes.is_empty() {
        out.push_str("none\n");
        return;
    }
    let rows: Vec<Vec<String>> = p
        .deletes
        .iter()
        .take(LISTED)
        .map(|d| {
            vec![
                local(d.at, tz),
                d.environment.to_string(),
                d.project.to_string(),
                d.reason.to_string(),
            ]
        })
        .collect();
    out.push_str(&aligned(
        &["AT", "ENVIRONMENT", "PROJECT", "WHY"],
        &rows,
        &[],
    ));
    more(out, rows.len(), p.deletes.len());
}

fn untouched_text(out: &mut String, p: &Projection) {
    let cost: f64 = p.untouched.iter().map(|u| u.cost).sum();
    let _ = writeln!(
        out,
        "\nNever touched ({}, {} {} over the {}):",
        plural(p.untouched.len(), "environment", "environments"),
        grouped(cost),
        p.currency,
        plural(p.days as usize, "day", "days"),
    );
    if p.untouched.is_empty() {
        out.push_str("none\n");
        return;
    }
    let rows: Vec<Vec<String>> = p
        .untouched
        .iter()
        .take(LISTED)
        .map(|u| {
            vec![
                u.environment.to_string(),
                u.project.to_string(),
                u.state.to_string(),
                u.hourly_cost
                    .map_or_else(|| "-".into(), |c| format!("{c:.2}/h")),
                grouped(u.cost),
                u.reason.to_string(),
            ]
        })
        .collect();
    out.push_str(&aligned(
        &[
            "ENVIRONMENT",
            "PROJECT",
            "STATE",
            "COST",
            "OVER THE DAYS",
            "WHY",
        ],
        &rows,
        &[3, 4],
    ));
    more(out, rows.len(), p.untouched.len());
}

fn busiest_text(out: &mut String, p: &Projection, tz: Tz) {
    let b = &p.busiest;
    let _ = writeln!(
        out,
        "\nBusiest moments (max_stops_per_pass {}, max_deletes_per_hour {}; {} held actions back):",
        b.max_stops_per_pass,
        b.max_deletes_per_hour,
        plural(b.passes_capped as usize, "pass", "passes"),
    );
    if b.moments.is_empty() {
        out.push_str("none: nothing to do\n");
    }
    for m in &b.moments {
        let parts: Vec<String> = [
            (m.stops, "stop", "stops"),
            (m.starts, "start", "starts"),
            (m.deletes, "delete", "deletes"),
            (m.held_back, "held back by a cap", "held back by the caps"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| plural(n as usize, one, many))
        .collect();
        let _ = writeln!(out, "{}  {}", local(m.at, tz), parts.join(", "));
    }
}

/// `before → after`, or just one when they are the same.
fn change(before: &str, after: &str) -> String {
    if before == after {
        before.to_string()
    } else {
        format!("{before} → {after}")
    }
}

/// What changing from the old rules to the new does, as people read it.
pub fn comparison_text(
    new: &Projection,
    c: &Comparison,
    tz: Tz,
    file: &str,
    old_file: &str,
) -> String {
    let mut out = heading(new, tz, &format!("{file} against {old_file}"));
    out.push('\n');
    let line = |what: &str, f: &dyn Fn(&Totals) -> String, delta: String| {
        vec![what.to_string(), f(&c.old), f(&c.new), delta]
    };
    let signed =
        |x: f64, f: fn(f64) -> String| format!("{}{}", if x > 0.0 { "+" } else { "" }, f(x));
    let rows = vec![
        line(
            "saved",
            &|t| grouped(t.saved),
            signed(c.new.saved - c.old.saved, grouped),
        ),
        line("saved %", &|t| percent(t.saved_percent), String::new()),
        line(
            "projected cost",
            &|t| grouped(t.projected_cost),
            signed(c.new.projected_cost - c.old.projected_cost, grouped),
        ),
        line(
            "running h",
            &|t| hours(t.hours_running),
            signed(c.new.hours_running - c.old.hours_running, hours),
        ),
        line("stops", &|t| t.stops.to_string(), String::new()),
        line("starts", &|t| t.starts.to_string(), String::new()),
        line("deletes", &|t| t.deletes.to_string(), String::new()),
    ];
    out.push_str(&aligned(&["", "OLD", "NEW", "CHANGE"], &rows, &[1, 2, 3]));
    let _ = writeln!(out, "Money in {}.\n", new.currency);
    let rows: Vec<Vec<String>> = c
        .rules
        .iter()
        .map(|r| {
            let saved =
                |t: &Option<Totals>| t.as_ref().map_or_else(|| "-".into(), |t| grouped(t.saved));
            let running = |t: &Option<Totals>| {
                t.as_ref()
                    .map_or_else(|| "-".into(), |t| hours(t.hours_running))
            };
            let envs = |t: &Option<Totals>| {
                t.as_ref()
                    .map_or_else(|| "-".into(), |t| t.environments.to_string())
            };
            vec![
                r.rule.clone(),
                change(&envs(&r.old), &envs(&r.new)),
                change(&running(&r.old), &running(&r.new)),
                saved(&r.old),
                saved(&r.new),
            ]
        })
        .collect();
    out.push_str(&aligned(
        &["RULE", "ENVS", "RUNNING h", "SAVED (OLD)", "SAVED (NEW)"],
        &rows,
        &[1, 2, 3, 4],
    ));
    let _ = writeln!(
        out,
        "\nEnvironments whose actions change ({}):",
        c.environments.len()
    );
    if c.environments.is_empty() {
        out.push_str("none\n");
        return out;
    }
    let rows: Vec<Vec<String>> = c
        .environments
        .iter()
        .take(LISTED)
        .map(|e| environment_change_row(e, tz))
        .collect();
    out.push_str(&aligned(
        &[
            "ENVIRONMENT",
            "PROJECT",
            "RULE",
            "RUNNING h",
            "COST",
            "FIRST DIFFERENCE",
        ],
        &rows,
        &[],
    ));
    more(&mut out, rows.len(), c.environments.len());
    out
}

fn environment_change_row(e: &EnvironmentChange, tz: Tz) -> Vec<String> {
    let rule = |r: &Option<std::sync::Arc<str>>| r.as_deref().unwrap_or("-").to_string();
    let step = |s: &Option<crate::simulate::compare::Moment>| match s {
        Some(m) => {
            let actions: Vec<&str> = m.actions.iter().map(|a| a.as_str()).collect();
            format!("{} {}", actions.join(" + "), local(m.at, tz))
        }
        None => "nothing".into(),
    };
    vec![
        e.environment.to_string(),
        e.project.to_string(),
        change(&rule(&e.old_rule), &rule(&e.new_rule)),
        change(&hours(e.old_hours_running), &hours(e.new_hours_running)),
        change(&grouped(e.old_cost), &grouped(e.new_cost)),
        format!(
            "{} → {}",
            step(&e.first_difference.0),
            step(&e.first_difference.1)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_writes_them() {
        assert_eq!(grouped(1234567.891), "1,234,567.89");
        assert_eq!(grouped(794.5), "794.50");
        assert_eq!(grouped(-1234.0), "-1,234.00");
        assert_eq!(grouped(-0.001), "0.00");
        assert_eq!(hours(1011.0), "1,011.0");
        assert_eq!(percent(Some(67.3591)), "67.4%");
        assert_eq!(csv_field("office"), "office");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
