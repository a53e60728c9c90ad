//! The command line: `curfew schedule …`, `curfew duration …`, `curfew sandbox …`.
//!
//! Exit codes: 0 success, 2 invalid input (a bad spec, instant or duration), 1 anything
//! else.

mod rules;

pub use rules::{plan_table, rule_set_json, schema_json};
mod run;
mod sandbox;
mod schedule;

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
    },
    /// Print the JSON Schema of the rule file.
    Schema,
    /// Show what curfew would do with each environment of a snapshot, and why.
    Plan {
        /// The rule file.
        #[arg(long)]
        config: PathBuf,
        /// A snapshot file (JSON: {"environments": [...], "complete": true}).
        #[arg(long)]
        snapshot: PathBuf,
        /// Decide as of this instant (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schedule(cmd) => schedule::run(cmd),
        Command::Duration { durations } => schedule::durations(&durations),
        Command::Validate { file, json } => rules::validate(&file, json),
        Command::Schema => {
            print!("{}", rules::schema_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            config,
            snapshot,
            at,
            json,
        } => rules::plan(&config, &snapshot, at.as_deref(), json),
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
