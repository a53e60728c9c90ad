//! `curfew sandbox`: serves a Qovery-compatible API over a generated fleet until Ctrl-C
//! or SIGTERM, for demos and for trying curfew without a Qovery account.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::clock::SystemClock;
use crate::sandbox::{Sandbox, SandboxOptions};

#[derive(Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8780")]
    listen: SocketAddr,
    /// The token clients must send as `Authorization: Token <token>`.
    #[arg(long, default_value = "sandbox-token")]
    token: String,
    /// Projects in the generated organization.
    #[arg(long, default_value_t = 4)]
    projects: u32,
    /// Environments over all projects (one production per project, mostly previews).
    #[arg(long, default_value_t = 24)]
    environments: u32,
    /// Names the fleet: the same seed gives the same ids, names and states.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction (0..1) of requests answered 503 or 500.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    error_rate: f64,
    /// Fraction (0..1) of requests answered 429 with `Retry-After: 1`.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    throttle_rate: f64,
    /// Fraction (0..1) of requests that hang for 60 s, then answer 504.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    timeout_rate: f64,
    /// Fraction (0..1) of requests answered 200 with truncated JSON.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    malformed_rate: f64,
}

// By hand, so the token never reaches a log line.
impl fmt::Debug for SandboxArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxArgs")
            .field("listen", &self.listen)
            .field("token", &"<redacted>")
            .field("projects", &self.projects)
            .field("environments", &self.environments)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Why a fraction of requests was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NotARate {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{0}` is not a fraction of requests between 0 and 1")]
    OutOfRange(String),
}

/// Parses a fraction of requests.
fn rate(text: &str) -> Result<f64, NotARate> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| NotARate::NotANumber(text.to_string()))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(NotARate::OutOfRange(text.to_string()))
    }
}

impl SandboxArgs {
    fn options(&self) -> SandboxOptions {
        SandboxOptions {
            projects: self.projects,
            environments: self.environments,
            seed: self.seed,
            token: self.token.clone(),
            latency: Duration::from_millis(self.latency_ms),
            error_rate: self.error_rate,
            throttle_rate: self.throttle_rate,
            timeout_rate: self.timeout_rate,
            malformed_rate: self.malformed_rate,
            ..SandboxOptions::default()
        }
    }
}

/// Runs `curfew sandbox` on its own runtime.
pub fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let sandbox = Sandbox::new(args.options(), Arc::new(SystemClock));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    println!(
        "curfew sandbox: organization {} on http://{addr} (token from --token)",
        sandbox.organization_id()
    );
    // Scripts wait for this line before they connect.
    std::io::stdout()
        .flush()
        .context("cannot write to stdout")?;
    tokio::select! {
        served = sandbox.serve(listener) => served.context("the sandbox server stopped")?,
        () = shutdown_signal() => eprintln!("curfew sandbox: stopping"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM (what `docker stop` and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_fractions_between_zero_and_one() {
        assert_eq!(rate("0"), Ok(0.0));
        assert_eq!(rate("0.25"), Ok(0.25));
        assert_eq!(rate("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "NaN", "inf", "ten"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["curfew", "sandbox", "--token", "s3cret-t0ken"])
            .unwrap();
        assert!(!format!("{cli:?}").contains("s3cret-t0ken"));
    }
}
