//! The command line: `curfew schedule …`, `curfew plan …`, `curfew simulate …`, `curfew
//! run …` and the others; arguments and printing only.
//!
//! Exit codes: 0 success, 2 invalid input (a bad spec, instant or duration), 1 anything
//! else.

mod admin;
mod reference;
mod rules;

pub use rules::{plan_table, rule_set_json, schema_json};
mod run;
mod sandbox;
mod schedule;
mod simulate;

use std::path::PathBuf;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// curfew: stops preview environments outside their schedules and reports the savings.
#[derive(Debug, Parser)]
#[command(name = "curfew", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate schedules: is a spec on at an instant, and when does that change?
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Check a rule file: exit 0 and a summary, or every error and exit 1.
    Validate {
        /// The rule file.
        file: PathBuf,
        /// Print the compiled rule set (durations in seconds, schedules normalized).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limit: rules::FileLimit,
    },
    /// Print the JSON Schema of the rule file (or, with --markdown, its reference).
    Schema {
        /// The reference as Markdown (docs/reference.md), generated from the schema.
        #[arg(long)]
        markdown: bool,
    },
    /// Show what curfew would do with each environment, and why: from a running daemon
    /// (`--server`), from the live platform (`--config`, read-only), or from a snapshot
    /// file (`--config --snapshot`).
    Plan {
        /// The rule file: decide from the live platform (read-only) or a --snapshot,
        /// without a daemon.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A snapshot file (JSON: {"environments": [...], "complete": true}) instead of the
        /// live platform.
        #[arg(long, requires = "config")]
        snapshot: Option<PathBuf>,
        /// Decide as of this instant (RFC 3339; default now; with --snapshot only).
        #[arg(long, requires = "snapshot")]
        at: Option<String>,
        /// Ask a running daemon (its admin API), e.g. http://127.0.0.1:9464 (default:
        /// `CURFEW_SERVER`; `--config` wins over the variable).
        #[arg(long)]
        server: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limit: rules::FileLimit,
    },
    /// Why an environment (id or name) is where it is: the rules tried and matched, what
    /// the schedule says now and next, idle and TTL clocks, and its history.
    Explain {
        env: String,
        #[command(flatten)]
        server: admin::Server,
    },
    /// No schedule or idle stop (and no delete) for an environment until a given time.
    Snooze {
        env: String,
        #[command(flatten)]
        span: admin::Span,
        /// End the environment's snooze now.
        #[arg(long, conflicts_with_all = ["for_", "until"])]
        end: bool,
        /// Why, for the ledger.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        server: admin::Server,
    },
    /// Start an environment now and keep it up (by default until its next scheduled stop).
    Wake {
        env: String,
        #[command(flatten)]
        span: admin::Span,
        #[command(flatten)]
        server: admin::Server,
    },
    /// Protect an environment from every action until the protection is removed.
    Protect {
        env: String,
        /// Remove the protection.
        #[arg(long)]
        remove: bool,
        /// Why, for the ledger.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        server: admin::Server,
    },
    /// Replay the rules over the coming days against the fleet as it is now (the live
    /// platform, read-only, or a snapshot): hours running and stopped, money saved, deletes,
    /// untouched environments and the busiest moments; `--against OLD` compares two rule
    /// files.
    Simulate(simulate::SimulateArgs),
    /// Parse TTL durations (`30s 10m 4h 7d 2w`, `1d12h`, `forever`) into seconds.
    Duration {
        /// Durations to parse.
        #[arg(required = true)]
        durations: Vec<String>,
    },
    /// Serve a Qovery-compatible API over a generated fleet (demos, trying rules) until
    /// Ctrl-C or SIGTERM.
    Sandbox(sandbox::SandboxArgs),
    /// Run the daemon: reconcile environments against the rules until SIGTERM.
    Run(run::RunArgs),
}

/// `curfew plan`: from the daemon (`--server`, else `CURFEW_SERVER` unless `--config` is
/// given), or without one (`--config`, the live platform or a `--snapshot`).
fn plan(
    config: Option<PathBuf>,
    snapshot: Option<PathBuf>,
    at: Option<String>,
    server: Option<String>,
    json: bool,
    limit: &rules::FileLimit,
) -> anyhow::Result<ExitCode> {
    let from_env = || {
        std::env::var(admin::SERVER_VARIABLE)
            .ok()
            .filter(|s| !s.trim().is_empty())
    };
    match (server, config, snapshot) {
        (Some(_), Some(_), _) => {
            eprintln!("error: give --server (a running daemon) or --config (no daemon), not both");
            Ok(ExitCode::from(2))
        }
        (Some(server), None, _) => admin::plan_from_server(&admin::Server { server, json }),
        (None, Some(config), Some(snapshot)) => {
            rules::plan(&limit.source(&config), &snapshot, at.as_deref(), json)
        }
        (None, Some(config), None) => admin::plan_live(&limit.source(&config), json),
        (None, None, _) => match from_env() {
            Some(server) => admin::plan_from_server(&admin::Server { server, json }),
            None => {
                eprintln!(
                    "error: ask a running daemon with --server URL (or set {}), or decide without one with --config FILE [--snapshot FILE]",
                    admin::SERVER_VARIABLE
                );
                Ok(ExitCode::from(2))
            }
        },
    }
}

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schedule(cmd) => schedule::run(cmd),
        Command::Duration { durations } => schedule::durations(&durations),
        Command::Validate { file, json, limit } => rules::validate(&limit.source(&file), json),
        Command::Schema { markdown: false } => {
            print!("{}", rules::schema_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { markdown: true } => match serde_json::from_str(&rules::schema_json()) {
            Ok(schema) => {
                print!("{}", reference::reference_markdown(&schema));
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(anyhow::anyhow!("the schema is not JSON: {e}")),
        },
        Command::Plan {
            config,
            snapshot,
            at,
            server,
            json,
            limit,
        } => plan(config, snapshot, at, server, json, &limit),
        Command::Explain { env, server } => admin::explain(&server, &env),
        Command::Snooze {
            env,
            span,
            end,
            note,
            server,
        } => admin::snooze(&server, &env, &span, end, note.as_deref()),
        Command::Wake { env, span, server } => admin::wake(&server, &env, &span),
        Command::Protect {
            env,
            remove,
            note,
            server,
        } => admin::protect(&server, &env, remove, note.as_deref()),
        Command::Simulate(args) => simulate::run(args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Run(args) => run::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
