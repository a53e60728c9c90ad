//! `curfew plan`, `explain`, `snooze`, `wake` and `protect` against a running daemon's
//! admin API (`--server`, token from `CURFEW_ADMIN_TOKEN`), and `curfew plan --config`
//! without a daemon, reading the live platform directly (read-only).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::rules::{env_vars, plan_table};
use crate::admin::TOKEN_VARIABLE;
use crate::clock::SystemClock;
use crate::config::Source;
use crate::platform::connect::connect;
use crate::policy::{self, LedgerView};
use crate::reconcile::{EnvironmentReport, Plan};
use crate::text::Printable;

/// The daemon to talk to.
#[derive(Debug, Clone, Args)]
pub struct Server {
    /// The daemon's address (default: `CURFEW_SERVER`, else http://127.0.0.1:9464).
    #[arg(long, env = "CURFEW_SERVER", default_value = "http://127.0.0.1:9464")]
    pub server: String,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How long a change lasts.
#[derive(Debug, Clone, Args)]
pub struct Span {
    /// For this long from now (`30m`, `4h`, `1d12h`).
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
    pub for_: Option<String>,
    /// Until this instant (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
}

impl Span {
    fn body(&self, note: Option<&str>) -> Value {
        let mut body = json!({});
        if let Some(d) = &self.for_ {
            body["for"] = json!(d);
        }
        if let Some(u) = &self.until {
            body["until"] = json!(u);
        }
        if let Some(n) = note {
            body["note"] = json!(n);
        }
        body
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// One call to the admin API. `Err` carries the daemon's own error message.
async fn request(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Result<Value, String>> {
    let token = std::env::var(TOKEN_VARIABLE)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .with_context(|| format!("set {TOKEN_VARIABLE} to an admin token of the daemon"))?;
    // A named token line (`alice:TOKEN`) is accepted as it is written in the token file.
    let token = match token.split_once(':') {
        Some((name, t)) if !name.contains(char::is_whitespace) && !t.is_empty() => t.to_string(),
        _ => token,
    };
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .context("cannot build the HTTP client")?;
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let mut call = client.request(method, &url).bearer_auth(token.trim());
    if let Some(b) = body {
        call = call.json(&b);
    }
    let response = call
        .send()
        .await
        .with_context(|| format!("cannot reach the daemon at {}", server.server))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(Ok(value))
    } else {
        let message = value["error"]
            .as_str()
            .map_or_else(|| format!("the daemon answered {status}"), str::to_string);
        Ok(Err(format!("{status}: {message}")))
    }
}

/// Runs one admin call and prints its answer: 0, or 1 with the daemon's error.
fn call_and_print(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
    print: impl FnOnce(Value) -> anyhow::Result<String>,
) -> anyhow::Result<ExitCode> {
    let answer = runtime()?.block_on(request(server, method, path, body))?;
    match answer {
        Ok(value) if server.json => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(value) => {
            print!("{}", print(value)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(message) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(1))
        }
    }
}

fn env_path(env: &str, verb: &str) -> String {
    let mut path = format!("/api/v1/environments/{}", urlencode(env));
    if !verb.is_empty() {
        path.push('/');
        path.push_str(verb);
    }
    path
}

/// Percent-encodes a path segment (ids and names are usually plain; this keeps the odd one
/// from breaking the URL).
fn urlencode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `curfew plan --server URL`.
pub fn plan_from_server(server: &Server) -> anyhow::Result<ExitCode> {
    call_and_print(server, Method::GET, "/api/v1/plan", None, |v| {
        let plan: Plan = serde_json::from_value(v).context("the daemon's plan is unreadable")?;
        let decisions: Vec<_> = plan.environments.into_iter().map(|e| e.decision).collect();
        let mut text = plan_table(&decisions);
        if !plan.complete {
            text.push_str("(the platform's listing was partial: no delete would be made)\n");
        }
        Ok(text)
    })
}

/// `curfew plan --config FILE` without a snapshot: the live platform, read-only.
pub fn plan_live(source: &Source, as_json: bool) -> anyhow::Result<ExitCode> {
    let env = env_vars();
    let now = Utc::now();
    let loaded = match super::rules::load_or_exit(source, now)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async move {
        let prices = crate::platform::qovery::Prices {
            vcpu_hour: loaded.rules.defaults.vcpu_hour,
            gib_hour: loaded.rules.defaults.gib_hour,
        };
        let connected = match connect(
            &loaded.settings.platform,
            prices,
            &env,
            Arc::new(SystemClock),
            None,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        let snapshot = connected
            .platform
            .list()
            .await
            .context("the platform could not be listed")?;
        // Without the daemon's ledger: its snoozes, protections and own stops are not
        // known here (ask the daemon with --server for those).
        let decisions = policy::decide(&loaded.rules, &snapshot, &LedgerView::default(), now);
        if as_json {
            println!("{}", serde_json::to_string_pretty(&decisions)?);
        } else {
            print!("{}", plan_table(&decisions));
            eprintln!(
                "read-only, from the platform as it is now, without the daemon's ledger (snoozes, protections and curfew's own stops are not shown: use --server)"
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `curfew explain ENV`.
pub fn explain(server: &Server, env: &str) -> anyhow::Result<ExitCode> {
    call_and_print(server, Method::GET, &env_path(env, ""), None, |v| {
        let r: EnvironmentReport =
            serde_json::from_value(v).context("the daemon's answer is unreadable")?;
        Ok(report_text(&r))
    })
}

/// `curfew snooze ENV --for D | --until T | --end`.
pub fn snooze(
    server: &Server,
    env: &str,
    span: &Span,
    end: bool,
    note: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (method, body) = if end {
        (Method::DELETE, None)
    } else if span.for_.is_none() && span.until.is_none() {
        eprintln!("error: give --for DURATION or --until INSTANT (or --end to end a snooze)");
        return Ok(ExitCode::from(2));
    } else {
        (Method::POST, Some(span.body(note)))
    };
    call_and_print(server, method, &env_path(env, "snooze"), body, |v| {
        changed(v, if end { "snooze ended" } else { "snoozed" })
    })
}

/// `curfew wake ENV [--for D | --until T]`.
pub fn wake(server: &Server, env: &str, span: &Span) -> anyhow::Result<ExitCode> {
    call_and_print(
        server,
        Method::POST,
        &env_path(env, "wake"),
        Some(span.body(None)),
        |v| changed(v, "woken"),
    )
}

/// `curfew protect ENV [--remove]`.
pub fn protect(
    server: &Server,
    env: &str,
    remove: bool,
    note: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (method, body, word) = if remove {
        (Method::DELETE, None, "protection removed")
    } else {
        (Method::POST, Some(span_note(note)), "protected")
    };
    call_and_print(server, method, &env_path(env, "protect"), body, |v| {
        changed(v, word)
    })
}

fn span_note(note: Option<&str>) -> Value {
    note.map_or_else(|| json!({}), |n| json!({ "note": n }))
}

fn changed(v: Value, word: &str) -> anyhow::Result<String> {
    let r: EnvironmentReport =
        serde_json::from_value(v).context("the daemon's answer is unreadable")?;
    let mut text = format!(
        "{} ({}): {word}\n",
        Printable(&r.environment.name),
        Printable(&r.environment.id)
    );
    if let Some(u) = r.record.snoozed_until {
        text.push_str(&format!("  snoozed until {}\n", u.to_rfc3339()));
    }
    text.push_str(&format!("  now: {}\n", Printable(&r.decision.reason)));
    Ok(text)
}

/// An environment's report as text: the reasoning, the decision, what the ledger holds.
/// Everything that comes from outside (names, labels, notes, reasons) is escaped: a line
/// of the report is one line.
pub fn report_text(r: &EnvironmentReport) -> String {
    let e = &r.environment;
    let p = |s: &str| Printable(s).to_string();
    let mut t = format!(
        "{} ({}), project {}, {} {}, state {}\n",
        p(&e.name),
        p(&e.id),
        p(&e.project),
        e.mode,
        e.cluster
            .as_deref()
            .map_or(String::new(), |c| format!("on {}", p(c))),
        e.state
    );
    t.push_str("\nReasoning:\n");
    for (i, step) in r.steps.iter().enumerate() {
        t.push_str(&format!("  {}. {}\n", i + 1, p(step)));
    }
    let d = &r.decision;
    t.push_str(&format!(
        "\nDecision: {}{} — {}\n",
        d.action,
        if d.dry_run { " (dry run)" } else { "" },
        p(&d.reason)
    ));
    if let Some(next) = d.next_check {
        t.push_str(&format!("Next change: {}\n", next.to_rfc3339()));
    }
    if let Some(u) = r.record.snoozed_until {
        t.push_str(&format!(
            "Snoozed until {} by {}\n",
            u.to_rfc3339(),
            p(r.record.snoozed_by.as_deref().unwrap_or("someone"))
        ));
    }
    if let Some(by) = &r.record.protected_by {
        t.push_str(&format!("Protected by {}\n", p(by)));
    }
    t.push_str(&format!(
        "Saved by curfew: {:.2} {} over {} stop(s), {:.1} h stopped\n",
        r.savings.saved,
        r.currency,
        r.savings.stops,
        r.savings.stopped_seconds / 3600.0
    ));
    if !r.history.is_empty() {
        t.push_str("\nHistory (newest first):\n");
        for h in &r.history {
            t.push_str(&format!(
                "  {}  {}  {}\n",
                h.at.to_rfc3339(),
                p(&h.what),
                p(&h.detail)
            ));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `explain` prints what the platform and operators wrote: each escaped, so a name or
    /// a note cannot add a line of its own or send an escape sequence to the terminal.
    #[test]
    fn a_report_prints_names_and_notes_escaped() {
        let report: EnvironmentReport = serde_json::from_value(json!({
            "at": "2026-11-27T19:00:00Z",
            "environment": {
                "id": "e1", "name": "pr-1\nDecision: delete", "project": "web\u{1b}[2J",
                "mode": "preview", "state": "running", "created_at": "2026-11-24T09:12:00Z"
            },
            "decision": {
                "environment_id": "e1", "environment": "pr-1", "project": "web",
                "state": "running", "action": "none", "reason": "running", "dry_run": false
            },
            "steps": ["not protected"],
            "record": {"snoozed_until": "2026-11-27T21:00:00Z", "snoozed_by": "alice"},
            "savings": {"stops": 0, "stopped_seconds": 0.0, "saved": 0.0},
            "currency": "EUR",
            "history": [{"at": "2026-11-27T18:00:00Z", "what": "snooze by alice", "detail": "demo\r\nForged: line"}]
        }))
        .unwrap();
        let text = report_text(&report);
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
        assert!(
            text.starts_with("pr-1\\nDecision: delete (e1), project web\\u{1b}[2J,"),
            "{text}"
        );
        assert!(text.contains("demo\\r\\nForged: line\n"), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("Forged") || l.starts_with("Decision: delete"))
        );
    }
}
