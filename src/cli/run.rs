//! `curfew run --config FILE`: the daemon's arguments; [`crate::daemon`] runs it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;

use crate::config::settings::LogFormat;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The rule file.
    #[arg(long)]
    config: PathBuf,
    /// `human` or `json` (overrides daemon.log_format).
    #[arg(long)]
    log_format: Option<String>,
    /// Run a scaled clock: simulated seconds per real second (60: an hour a minute). For
    /// demos on the sandbox.
    #[arg(long)]
    clock_speed: Option<f64>,
    /// Start the daemon's clock at this instant (RFC 3339) instead of now, running at
    /// `--clock-speed` (default 1). For demos and docs on the sandbox: against a real
    /// platform curfew would act as if it were then.
    #[arg(long, value_name = "INSTANT")]
    clock_start: Option<String>,
    /// Address of /metrics, /healthz, /readyz and the admin API (overrides daemon.listen).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    limit: super::rules::FileLimit,
    /// Start with a fresh, empty ledger although one was kept at daemon.ledger before (it
    /// is gone: its marker file says so). The fresh one forgets what curfew stopped.
    #[arg(long)]
    new_ledger: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Before any thread starts: the allocator's arenas are made per thread.
    crate::memory::tune();
    let env: HashMap<String, String> = std::env::vars().collect();
    let start = match args
        .clock_start
        .as_deref()
        .map(DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        Some(Err(_)) => {
            eprintln!(
                "error: --clock-start {:?} is not an RFC 3339 instant with an offset",
                args.clock_start.unwrap_or_default()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let source = args.limit.source(&args.config);
    let loaded = match super::rules::load(&source, start.unwrap_or_else(Utc::now))? {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    let format = match args.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some("human") => LogFormat::Human,
        Some(other) => {
            eprintln!("error: --log-format {other}: expected human or json");
            return Ok(ExitCode::from(2));
        }
        None => loaded.settings.log_format,
    };
    crate::daemon::init_logging(format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let options = crate::daemon::Options {
        clock_speed: args.clock_speed,
        clock_start: start,
        listen: args.listen,
        new_ledger: args.new_ledger,
    };
    runtime.block_on(crate::daemon::run(options, source, loaded, env))
}
