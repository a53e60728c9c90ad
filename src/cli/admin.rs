//! `curfew plan`, `explain`, `snooze`, `wake` and `protect` against a running daemon's
//! admin API (`--server`, token from `CURFEW_ADMIN_TOKEN`), and `curfew plan --config`
//! without a daemon, reading the live platform directly (read-only).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::rules::{action_words, env_vars, plan_table};
use crate::admin::TOKEN_VARIABLE;
use crate::clock::SystemClock;
use crate::config::Source;
use crate::daemon::connect;
use crate::policy::{self, LedgerView};
use crate::reconcile::{EnvironmentReport, Plan};
use crate::text::Printable;

/// The variable that names the daemon the admin commands talk to.
pub const SERVER_VARIABLE: &str = "CURFEW_SERVER";

/// The daemon to talk to.
#[derive(Debug, Clone, Args)]
pub struct Server {
    /// The daemon's address (default: `CURFEW_SERVER`, else http://127.0.0.1:9464).
    #[arg(long, env = SERVER_VARIABLE, default_value = "http://127.0.0.1:9464")]
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

/// How long a command waits in silence before it says what it is waiting for.
const QUIET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Awaits `work`; if it takes longer than `after`, tells `say` what is being waited for
/// (once), and goes on waiting.
async fn telling<T>(
    work: impl std::future::Future<Output = T>,
    after: std::time::Duration,
    say: impl FnOnce(),
) -> T {
    tokio::pin!(work);
    tokio::select! {
        out = &mut work => out,
        () = tokio::time::sleep(after) => {
            say();
            work.await
        }
    }
}

/// One call to the admin API. `Err` carries the daemon's own error message.
async fn request(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Result<Value, Refused>> {
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
    let answer = async {
        let response = call.send().await?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        Ok::<_, reqwest::Error>((status, value))
    };
    // The daemon reads the platform for every request: with the platform failing, its
    // retries take a while, and silence would look like a hang.
    let (status, value) = telling(answer, QUIET_WAIT, || {
        eprintln!(
            "waiting for the daemon at {}: it reads the platform for each request, and retries for a while when the platform fails…",
            server.server
        );
    })
    .await
    .with_context(|| {
        format!(
            "cannot reach the daemon at {} (is it running there? name it with --server URL or {SERVER_VARIABLE})",
            server.server
        )
    })?;
    Ok(answer_of(status, value, &server.server, path))
}

/// Why the daemon did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refused {
    #[error(
        "{status}: the daemon at {server} has no admin API: it is off until the daemon has a token ({TOKEN_VARIABLE} or daemon.admin_token_file; see docs/operations.md)"
    )]
    ApiOff {
        status: reqwest::StatusCode,
        server: String,
    },
    /// The daemon's own words (escaped when shown: they may quote names from the platform).
    #[error("{status}: {}", Printable(.message))]
    Said {
        status: reqwest::StatusCode,
        message: String,
    },
    #[error("{0}: the daemon answered {0}")]
    Bare(reqwest::StatusCode),
}

/// The daemon's answer to `path`: its value, or what it refused.
fn answer_of(
    status: reqwest::StatusCode,
    value: Value,
    server: &str,
    path: &str,
) -> Result<Value, Refused> {
    if status.is_success() {
        return Ok(value);
    }
    let not_found = status == reqwest::StatusCode::NOT_FOUND;
    let off = || Refused::ApiOff {
        status,
        server: server.to_string(),
    };
    match value["error"].as_str() {
        // The plan always exists where the admin API is on; the API's own errors are
        // JSON: so a 404 there, or a bare one, is a daemon without the API.
        _ if not_found && path == "/api/v1/plan" => Err(off()),
        None if not_found => Err(off()),
        Some(message) => Err(Refused::Said {
            status,
            message: message.to_string(),
        }),
        None => Err(Refused::Bare(status)),
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
    let snapshot = match live_snapshot(&loaded, &env)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
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
}

/// Lists the platform a rule file names, read-only: the snapshot, or the exit code of a
/// platform that cannot be reached (the error said).
pub fn live_snapshot(
    loaded: &crate::config::Loaded,
    env: &std::collections::HashMap<String, String>,
) -> anyhow::Result<Result<crate::platform::Snapshot, ExitCode>> {
    runtime()?.block_on(async move {
        let prices = crate::platform::Prices {
            vcpu_hour: loaded.rules.defaults.vcpu_hour,
            gib_hour: loaded.rules.defaults.gib_hour,
        };
        let connected = match connect(
            &loaded.settings.platform,
            prices,
            env,
            Arc::new(SystemClock),
            None,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(Err(ExitCode::from(1)));
            }
        };
        let snapshot = telling(connected.platform.list(), QUIET_WAIT, || {
            eprintln!("reading the platform (a failing platform is retried for a while)…");
        })
        .await
        .context("the platform could not be listed")?;
        Ok(Ok(snapshot))
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
    let at = |t| local(t, &r.timezone);
    let p = |s: &str| Printable(s).to_string();
    let mut text = format!(
        "{} ({}): {word}\n",
        p(&r.environment.name),
        p(&r.environment.id)
    );
    if let Some(u) = r.record.snoozed_until {
        text.push_str(&format!("  snoozed until {}\n", at(u)));
    }
    text.push_str(&format!(
        "  now: {} — {}\n",
        action_sentence(&r.decision),
        p(&r.decision.reason)
    ));
    Ok(text)
}

/// What a decision does, for a sentence: the table's words, or "nothing to do".
fn action_sentence(d: &crate::policy::Decision) -> String {
    match action_words(d).as_str() {
        "-" => "nothing to do".to_string(),
        words => words.to_string(),
    }
}

/// An instant for people: local time in `zone` (a report's), to the minute, zone named.
fn local(t: DateTime<Utc>, zone: &str) -> String {
    policy::local(t, zone.parse().unwrap_or(chrono_tz::UTC))
}

/// An environment's report as text: the reasoning, the decision, what the ledger holds.
/// Everything that comes from outside (names, labels, notes, reasons) is escaped: a line
/// of the report is one line.
pub fn report_text(r: &EnvironmentReport) -> String {
    let e = &r.environment;
    let at = |t| local(t, &r.timezone);
    let p = |s: &str| Printable(s).to_string();
    let cluster = e
        .cluster
        .as_deref()
        .map_or(String::new(), |c| format!(" on {}", p(c)));
    let mut t = format!(
        "{} ({}), project {}, {}{cluster}, state {}\n",
        p(&e.name),
        p(&e.id),
        p(&e.project),
        e.mode,
        e.state
    );
    t.push_str("\nReasoning:\n");
    for (i, step) in r.steps.iter().enumerate() {
        t.push_str(&format!("  {}. {}\n", i + 1, p(step)));
    }
    let d = &r.decision;
    t.push_str(&format!(
        "\nDecision: {} — {}\n",
        action_sentence(d),
        p(&d.reason)
    ));
    if let Some(delete) = &d.delete {
        t.push_str(&format!("Delete: {}\n", p(&delete.reason)));
    }
    if let Some(next) = d.next_check {
        t.push_str(&format!("Next change: {}\n", at(next)));
    }
    if let Some(u) = r.record.snoozed_until {
        t.push_str(&format!(
            "Snoozed until {} by {}\n",
            at(u),
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
            let until = h
                .until
                .map(|u| format!(" until {}", at(u)))
                .unwrap_or_default();
            t.push_str(&format!("  {}  {}{until}", at(h.at), p(&h.what)));
            if !h.detail.is_empty() {
                t.push_str(&format!(" — {}", p(&h.detail)));
            }
            t.push('\n');
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use reqwest::StatusCode;
    use serde_json::json;

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
            "timezone": "UTC",
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

    /// A slow answer (the platform's retries behind the daemon) is announced once, after
    /// the quiet wait; a quick one is not.
    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_says_what_it_waits_for_and_a_quick_one_does_not() {
        for (takes, told) in [
            (Duration::from_secs(13), true),
            (Duration::from_secs(1), false),
        ] {
            let said = Cell::new(0);
            let out = telling(
                async {
                    tokio::time::sleep(takes).await;
                    "answer"
                },
                QUIET_WAIT,
                || said.set(said.get() + 1),
            )
            .await;
            assert_eq!((out, said.get()), ("answer", u32::from(told)), "{takes:?}");
        }
    }

    #[test]
    fn a_404_from_a_daemon_without_an_admin_api_says_how_to_turn_it_on() {
        let server = "http://127.0.0.1:9464";
        let off = "404 Not Found: the daemon at http://127.0.0.1:9464 has no admin API: it is off until the daemon has a token (CURFEW_ADMIN_TOKEN or daemon.admin_token_file; see docs/operations.md)";
        let unknown = json!({"error": "no environment with the id or name \"x\""});
        let cases = [
            (Value::Null, "/api/v1/environments/x", Err(off.to_string())),
            (Value::Null, "/api/v1/plan", Err(off.to_string())),
            (
                json!({"error": "not found"}),
                "/api/v1/plan",
                Err(off.to_string()),
            ),
            (
                unknown,
                "/api/v1/environments/x",
                Err("404 Not Found: no environment with the id or name \"x\"".to_string()),
            ),
        ];
        for (body, path, want) in cases {
            assert_eq!(
                answer_of(StatusCode::NOT_FOUND, body, server, path).map_err(|e| e.to_string()),
                want,
                "{path}"
            );
        }
        assert_eq!(
            answer_of(StatusCode::OK, json!({"a": 1}), server, "/api/v1/plan"),
            Ok(json!({"a": 1}))
        );
    }
}
