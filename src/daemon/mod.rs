//! The composition root: builds the daemon's parts from the rule file's settings, starts
//! them, and stops them in order.
//!
//! - `mod.rs`: start ([`run`]) and shutdown;
//! - `connect.rs`: the platform the settings name;
//! - `serve.rs`: the port (`/metrics`, the probes, the admin API, the status page);
//! - `page.rs`: the status page's access and the signer of its action links;
//! - `reload.rs`: the rule file watched, and SIGHUP;
//! - `jobs.rs`: the work a leader does (passes, digests, the ledger's housekeeping), on the
//!   daemon's clock;
//! - `logging.rs`: the process's log.

mod connect;
mod jobs;
mod logging;
mod page;
mod reload;
mod serve;

pub use connect::{Connected, TokenError, connect, read_token};
#[cfg(test)]
pub(crate) use jobs::lead_and_work;
pub use jobs::{HOUSEKEEPING_KEEPS, housekeeping_once, next_housekeeping_after};
pub use logging::init_logging;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::admin::{AdminTokens, TokenError as AdminTokenError};
use crate::clock::{Clock, ScaledClock, SystemClock};
use crate::config::settings::{PlatformSettings, Settings};
use crate::config::{Loaded, Source};
use crate::ledger::{Fresh, Ledger, LedgerError};
use crate::metrics::{Metrics, PlatformRequests};
use crate::notify::{Notifier, NotifyError, NotifyOptions};
use crate::platform::{PlatformError, Prices};
use crate::reconcile::{Daemon, DaemonOptions};

/// How `curfew run` was asked to run, beyond the rule file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A scaled clock: simulated seconds per real second.
    pub clock_speed: Option<f64>,
    /// The clock's starting instant instead of now.
    pub clock_start: Option<DateTime<Utc>>,
    /// The port's address, over `daemon.listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// A fresh ledger may replace one kept before (`--new-ledger`).
    pub new_ledger: bool,
}

/// Why the daemon could not start (logged; the process exits 1).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the ledger cannot be opened")]
    Ledger(#[source] LedgerError),
    #[error("cannot connect to the platform")]
    Platform(#[source] PlatformError),
    #[error("the admin API's tokens cannot be read")]
    AdminTokens(#[source] AdminTokenError),
    #[error("the notifications cannot start")]
    Notify(#[source] NotifyError),
    #[error("the signed links' keys cannot be read")]
    LinkKeys(#[source] crate::ui::LinkKeyError),
    #[error(
        "the status page cannot be served: daemon.page is login, but nobody can log in: set an admin token ({} or daemon.admin_token_file) or a proxy (daemon.proxy_user_header)",
        crate::admin::TOKEN_VARIABLE
    )]
    NobodyCanLogIn,
}

impl StartError {
    /// One log line: what could not start, and why.
    fn log(&self) {
        match std::error::Error::source(self) {
            Some(why) => tracing::error!(error = %why, "{self}"),
            None => tracing::error!("{self}"),
        }
    }
}

/// The daemon's parts, built and connected, not yet running.
struct Parts {
    daemon: Arc<Daemon>,
    connected: Connected,
    notifier: Notifier,
    admin_tokens: Option<AdminTokens>,
    /// The status page's access, sessions and link signer (taken when the port is
    /// served).
    page: Option<crate::ui::UiOptions>,
    /// The signed links for the public port (no page, no login), when both are on.
    public_links: Option<crate::ui::UiOptions>,
}

/// Runs the daemon until SIGTERM (or Ctrl-C); a replica that loses its Lease stands by.
pub async fn run(
    options: Options,
    source: Source,
    loaded: Loaded,
    env: HashMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let settings = loaded.settings.clone();
    let clock = clock(&options, &settings);
    let mut parts = match build(&options, loaded, &env, clock).await {
        Ok(parts) => parts,
        Err(e) => {
            e.log();
            return Ok(ExitCode::from(1));
        }
    };
    recover(&parts.daemon).await;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let listen = options.listen.unwrap_or(settings.listen);
    let page = parts.page.take();
    let server = serve::start(&parts, page, listen, &settings, shutdown_rx.clone()).await?;
    let public = match settings.public_listen {
        Some(public) => {
            let links = parts.public_links.take();
            Some(serve::start_public(&parts, links, public, &settings, shutdown_rx.clone()).await?)
        }
        None => None,
    };
    let _watcher = reload::start(parts.daemon.clone(), source);
    let election = parts.connected.election.clone();
    let (lease_stop_tx, lease_stop_rx) = watch::channel(false);
    let lease_task = election.clone().map(|e| tokio::spawn(e.run(lease_stop_rx)));
    let work = tokio::spawn(jobs::lead_and_work(
        parts.daemon.clone(),
        parts.notifier.clone(),
        election.clone(),
        shutdown_rx,
    ));
    // A replica that loses the Lease stands by again in this process (`jobs.rs`): only a
    // signal ends it.
    wait_for_signal().await;
    tracing::info!("stopping: no new actions; waiting for the current pass to finish");
    let _ = shutdown_tx.send(true);
    stop(parts, work, lease_task, lease_stop_tx, server).await;
    if let Some(public) = public {
        let _ = tokio::time::timeout(Duration::from_secs(5), public).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon's clock: the system's, or a scaled one that starts when asked (demos).
fn clock(options: &Options, settings: &Settings) -> Arc<dyn Clock> {
    let speed = options.clock_speed.or(match &settings.platform {
        PlatformSettings::Sandbox(s) if s.clock_speed != 1.0 => Some(s.clock_speed),
        _ => None,
    });
    match (speed, options.clock_start) {
        (None, None) => Arc::new(SystemClock),
        (speed, start) => {
            let start = start.unwrap_or_else(Utc::now);
            let speed = speed.unwrap_or(1.0);
            tracing::info!(speed, start = %start.to_rfc3339(), "running a scaled clock");
            Arc::new(ScaledClock::new(start, speed))
        }
    }
}

/// Opens the ledger, connects to the platform, reads the admin tokens, starts the
/// notifications, and makes the daemon of them.
async fn build(
    options: &Options,
    loaded: Loaded,
    env: &HashMap<String, String>,
    clock: Arc<dyn Clock>,
) -> Result<Parts, StartError> {
    let settings = &loaded.settings;
    let metrics = Arc::new(Metrics::new(
        env!("CARGO_PKG_VERSION"),
        settings.per_environment_metrics,
    ));
    let fresh = if options.new_ledger {
        Fresh::Allowed
    } else {
        Fresh::Refused
    };
    // Opened before anything else runs on the runtime: no task for it to hold up.
    let ledger = Arc::new(Ledger::open_with(&settings.ledger, fresh).map_err(StartError::Ledger)?);
    let connected = connect_platform(&loaded, env, &metrics, clock.clone()).await?;
    let admin_tokens = AdminTokens::load(
        env,
        settings.admin_token_env.as_deref(),
        settings.admin_token_file.as_deref(),
    )
    .await
    .map_err(StartError::AdminTokens)?;
    // Signatures carry real time (receivers compare it with theirs), even on a scaled demo
    // clock.
    let notifier = Notifier::start(
        NotifyOptions::default(),
        metrics.clone(),
        Arc::new(SystemClock),
        env.clone(),
    )
    .map_err(StartError::Notify)?;
    for (target, problem) in notifier.check(&loaded.rules) {
        tracing::warn!(target_name = %target, %problem, "notification target unusable");
    }
    let signer = page::signer(settings, env)
        .await
        .map_err(StartError::LinkKeys)?;
    let page = page::options(settings, admin_tokens.clone(), signer.clone())
        .ok_or(StartError::NobodyCanLogIn)?;
    let mut daemon = daemon(
        &loaded, options, clock, ledger, metrics, &connected, &notifier,
    );
    if let Some(signer) = &signer {
        // Warnings, digests and the platform's own notices carry signed action links.
        let links: Arc<dyn crate::platform::ActionLinks> = signer.clone();
        notifier.set_links(links.clone());
        connected.platform.set_links(links.clone());
        daemon = daemon.with_links(links);
    }
    // The waiting page knows the environments from the last pass, as the page does.
    if page.access == crate::config::page::PageAccess::Off
        && page.signer.is_none()
        && settings.public_listen.is_none()
    {
        daemon = daemon.without_page();
    }
    let daemon = Arc::new(daemon);
    if let Some(routing) = &connected.wake_routing {
        routing.follow(&daemon);
    }
    let public_links =
        settings
            .public_listen
            .and(signer.clone())
            .map(|signer| crate::ui::UiOptions {
                access: crate::config::page::PageAccess::Off,
                tokens: None,
                sessions: crate::ui::Sessions::new(
                    chrono::TimeDelta::hours(1),
                    settings.page.secure_cookie(),
                    settings.page.proxy.clone(),
                ),
                signer: Some(signer),
            });
    Ok(Parts {
        daemon,
        connected,
        notifier,
        admin_tokens,
        page: Some(page),
        public_links,
    })
}

/// The platform the settings name, its requests counted in the metrics.
async fn connect_platform(
    loaded: &Loaded,
    env: &HashMap<String, String>,
    metrics: &Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<Connected, StartError> {
    let settings = &loaded.settings;
    let prices = Prices {
        vcpu_hour: loaded.rules.defaults.vcpu_hour,
        gib_hour: loaded.rules.defaults.gib_hour,
    };
    let name = match settings.platform {
        PlatformSettings::Sandbox(_) => "sandbox",
        PlatformSettings::Qovery(_) => "qovery",
        PlatformSettings::Kubernetes(_) => "kubernetes",
    };
    let observer = Arc::new(PlatformRequests::new(metrics.clone(), name));
    let connected = connect(&settings.platform, prices, env, clock, Some(observer))
        .await
        .map_err(StartError::Platform)?;
    if let Some((_, running)) = &connected.sandbox {
        tracing::info!(url = %running.url, organization = %running.organization_id, "sandbox started in-process");
    }
    Ok(connected)
}

/// The reconcile daemon over these parts, the notifier listening to its passes.
fn daemon(
    loaded: &Loaded,
    options: &Options,
    clock: Arc<dyn Clock>,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    connected: &Connected,
    notifier: &Notifier,
) -> Daemon {
    let settings = &loaded.settings;
    let resync = settings.resync;
    let speed = options.clock_speed.unwrap_or(1.0);
    let max_snooze = chrono::TimeDelta::from_std(settings.admin_max_snooze)
        .unwrap_or(crate::reconcile::DEFAULT_MAX_SNOOZE);
    Daemon::new(
        connected.platform.clone(),
        ledger,
        metrics,
        clock,
        Arc::new(loaded.rules.clone()),
        DaemonOptions {
            resync,
            // Readiness reads the (possibly scaled) clock: three resyncs in its time.
            max_pass_age: resync.mul_f64(3.0 * speed),
            max_in_flight: 8,
        },
    )
    .with_max_snooze(max_snooze)
    .with_max_note(settings.admin_max_note_bytes as usize)
    .with_listener(Arc::new(notifier.clone()))
}

/// Resolves the actions the last stop interrupted, before the first pass.
async fn recover(daemon: &Daemon) {
    match daemon.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            resolved = n,
            "resolved actions interrupted by the last stop"
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not resolve interrupted actions yet; the next pass decides again")
        }
    }
}

/// Stops in order: the current pass finishes, then the lease is given up (no other replica
/// acts while this one still does), queued notifications get a few seconds to go out, and
/// the port closes.
async fn stop(
    parts: Parts,
    work: tokio::task::JoinHandle<()>,
    lease_task: Option<tokio::task::JoinHandle<()>>,
    lease_stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    if tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .is_err()
    {
        tracing::warn!("the current pass did not finish within 60 s; stopping anyway");
    }
    let _ = lease_stop.send(true);
    if let Some(task) = lease_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // Messages already queued (a delete just made, say) get a few seconds to go out.
    let _ = tokio::time::timeout(Duration::from_secs(5), parts.notifier.settled()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    drop(parts);
    tracing::info!("stopped; ledger flushed");
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
