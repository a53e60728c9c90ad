//! The command line: `curfew schedule …`, `curfew duration …`.
//!
//! Exit codes: 0 success, 2 invalid input (a bad spec, instant or duration), 1 anything
//! else.

mod schedule;

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
    /// Parse TTL durations (`30s 10m 4h 7d 2w`, `1d12h`, `forever`) into seconds.
    Duration {
        /// Durations to parse.
        #[arg(required = true)]
        durations: Vec<String>,
    },
}

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schedule(cmd) => schedule::run(cmd),
        Command::Duration { durations } => schedule::durations(&durations),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
