//! `curfew run --config FILE`: the daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::admin::AdminTokens;
use crate::clock::{Clock, ScaledClock, SystemClock};
use crate::config::settings::{LogFormat, PlatformSettings};
use crate::config::{Loaded, Source};
use crate::ledger::{Fresh, Ledger};
use crate::metrics::{Metrics, PlatformRequests};
use crate::platform::connect::connect;
use crate::platform::qovery::Prices;
use crate::reconcile::{Daemon, DaemonOptions};
use crate::server;

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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CURFEW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Names from outside (environments, projects, labels) are escaped in human lines.
        LogFormat::Human => builder.fmt_fields(crate::text::human_fields()).try_init(),
    };
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
    init_logging(format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(daemon(args, source, start, loaded, env))
}

async fn daemon(
    args: RunArgs,
    source: Source,
    start: Option<DateTime<Utc>>,
    loaded: Loaded,
    env: HashMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let settings = loaded.settings.clone();
    let speed = args.clock_speed.or(match &settings.platform {
        PlatformSettings::Sandbox(s) if s.clock_speed != 1.0 => Some(s.clock_speed),
        _ => None,
    });
    let clock: Arc<dyn Clock> = match (speed, start) {
        (None, None) => Arc::new(SystemClock),
        (speed, start) => {
            let start = start.unwrap_or_else(Utc::now);
            let speed = speed.unwrap_or(1.0);
            tracing::info!(speed, start = %start.to_rfc3339(), "running a scaled clock");
            Arc::new(ScaledClock::new(start, speed))
        }
    };
    let metrics = Arc::new(Metrics::new(
        env!("CARGO_PKG_VERSION"),
        settings.per_environment_metrics,
    ));
    let fresh = if args.new_ledger {
        Fresh::Allowed
    } else {
        Fresh::Refused
    };
    let ledger = match Ledger::open_with(&settings.ledger, fresh) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            tracing::error!(error = %e, "the ledger cannot be opened");
            return Ok(ExitCode::from(1));
        }
    };
    let prices = Prices {
        vcpu_hour: loaded.rules.defaults.vcpu_hour,
        gib_hour: loaded.rules.defaults.gib_hour,
    };
    let platform_name = match settings.platform {
        PlatformSettings::Sandbox(_) => "sandbox",
        PlatformSettings::Qovery(_) => "qovery",
        PlatformSettings::Kubernetes(_) => "kubernetes",
    };
    let observer = Arc::new(PlatformRequests::new(metrics.clone(), platform_name));
    let connected = match connect(
        &settings.platform,
        prices,
        &env,
        clock.clone(),
        Some(observer),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot connect to the platform");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some((_, running)) = &connected.sandbox {
        tracing::info!(url = %running.url, organization = %running.organization_id, "sandbox started in-process");
    }
    let admin_tokens = match AdminTokens::load(
        &env,
        settings.admin_token_env.as_deref(),
        settings.admin_token_file.as_deref(),
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "the admin API's tokens cannot be read");
            return Ok(ExitCode::from(1));
        }
    };
    let notifier = crate::notify::Notifier::start(
        crate::notify::NotifyOptions::default(),
        metrics.clone(),
        // Signatures carry real time (receivers compare it with theirs), even on a scaled
        // demo clock.
        Arc::new(SystemClock),
        env.clone(),
    )?;
    for (target, problem) in notifier.check(&loaded.rules) {
        tracing::warn!(target_name = %target, %problem, "notification target unusable");
    }
    let resync = settings.resync;
    let max_snooze = chrono::TimeDelta::from_std(settings.admin_max_snooze)
        .unwrap_or(crate::reconcile::DEFAULT_MAX_SNOOZE);
    let daemon = Arc::new(
        Daemon::new(
            connected.platform.clone(),
            ledger.clone(),
            metrics.clone(),
            clock.clone(),
            Arc::new(loaded.rules),
            DaemonOptions {
                resync,
                // Readiness reads the (possibly scaled) clock: three resyncs in its time.
                max_pass_age: resync.mul_f64(3.0 * speed.unwrap_or(1.0)),
                max_in_flight: 8,
            },
        )
        .with_max_snooze(max_snooze)
        .with_max_note(settings.admin_max_note_bytes as usize)
        .with_notifier(notifier.clone()),
    );
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

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let listen = args.listen.unwrap_or(settings.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| listen_error(listen, &e))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let mut routes = server::routes(metrics.clone(), daemon.health(), clock.clone());
    match admin_tokens {
        Some(tokens) => {
            tracing::info!(tokens = tokens.len(), "admin API on /api/v1");
            routes.app =
                server::merge_admin(routes.app, crate::admin::router(daemon.clone(), tokens));
        }
        None => {
            tracing::info!(
                "admin API off: no admin token ({} or daemon.admin_token_file)",
                crate::admin::TOKEN_VARIABLE
            );
            routes.app = server::merge_admin(routes.app, crate::admin::off_router());
        }
    }
    let limits = server::HttpLimits {
        max_connections: settings.max_connections as usize,
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
    };
    let mut server_shutdown = shutdown_rx.clone();
    let server_task = tokio::spawn(server::serve(listener, routes, limits, async move {
        let _ = server_shutdown.wait_for(|stop| *stop).await;
    }));

    // Periodic jobs in UTC, through tokio-cron-scheduler: the resync tick and the ledger's
    // housekeeping. Schedule boundaries in users' zones are NOT put here (see docs/daemon.md).
    let (resync_tx, resync_rx) = mpsc::channel::<()>(1);
    let scheduler = tokio_cron_scheduler::JobScheduler::new().await?;
    let tick = resync_tx.clone();
    scheduler
        .add(tokio_cron_scheduler::Job::new_repeated_async(
            resync,
            move |_, _| {
                let tick = tick.clone();
                Box::pin(async move {
                    let _ = tick.try_send(());
                })
            },
        )?)
        .await?;
    let housekeeping_ledger = ledger.clone();
    scheduler
        .add(tokio_cron_scheduler::Job::new_async(
            "0 17 3 * * *",
            move |_, _| {
                let ledger = housekeeping_ledger.clone();
                Box::pin(async move {
                    match ledger.prune(Utc::now() - chrono::TimeDelta::days(400)) {
                        Ok(n) => tracing::info!(removed = n, "ledger housekeeping"),
                        Err(e) => tracing::warn!(error = %e, "ledger housekeeping failed"),
                    }
                })
            },
        )?)
        .await?;
    scheduler.start().await?;

    // Hot reload: the rule file is watched, and SIGHUP reloads it too.
    let (reload_tx, reload_rx) = watch::channel(0u64);
    let (file_tx, mut file_rx) = mpsc::channel::<()>(8);
    let _watcher = watch_file(&args.config, file_tx);
    let reload_daemon = daemon.clone();
    tokio::spawn(async move {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut generation = 0u64;
        loop {
            tokio::select! {
                Some(()) = file_rx.recv() => {
                    // Editors and ConfigMaps write in steps: let the file settle.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while file_rx.try_recv().is_ok() {}
                }
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading the rule file");
                }
            }
            if reload_daemon.reload(&source).await.is_ok() {
                generation += 1;
                let _ = reload_tx.send(generation);
            }
        }
    });

    // Leader election (platform.kubernetes.leader_election): a standby waits for the Lease
    // before its first pass; a leader that loses it stops (fail-stop, as
    // kube-controller-manager does) and restarts as a standby. The lease is given up only
    // after the last pass, so no other replica acts while this one still does.
    let election = connected.election.clone();
    let (lease_stop_tx, lease_stop_rx) = watch::channel(false);
    let lease_task = election.clone().map(|e| tokio::spawn(e.run(lease_stop_rx)));
    let loop_task = tokio::spawn({
        let (election, daemon, mut shutdown) =
            (election.clone(), daemon.clone(), shutdown_rx.clone());
        async move {
            if let Some(e) = &election {
                tracing::info!(lease = %e.options().name, identity = %e.options().identity, "standing by until this replica holds the lease");
                if !e.wait_to_lead(&mut shutdown).await {
                    return;
                }
                tracing::info!("this replica holds the lease: acting");
            }
            daemon.run(resync_rx, reload_rx, shutdown_rx).await
        }
    });
    let lost_lease = tokio::select! {
        () = wait_for_signal() => false,
        () = async { match &election { Some(e) => e.lost().await, None => std::future::pending().await } } => true,
    };
    if lost_lease {
        tracing::error!("this replica lost the lease: stopping, to restart as a standby");
    }
    tracing::info!("stopping: no new actions; waiting for the current pass to finish");
    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(60), loop_task)
        .await
        .is_err()
    {
        tracing::warn!("the current pass did not finish within 60 s; stopping anyway");
    }
    let _ = lease_stop_tx.send(true);
    if let Some(task) = lease_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let mut scheduler = scheduler;
    let _ = scheduler.shutdown().await;
    // Messages already queued (a delete just made, say) get a few seconds to go out.
    let _ = tokio::time::timeout(Duration::from_secs(5), notifier.settled()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server_task).await;
    drop(connected);
    tracing::info!("stopped; ledger flushed");
    Ok(if lost_lease {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Why the daemon's address cannot be served, and how to choose another.
fn listen_error(listen: std::net::SocketAddr, e: &std::io::Error) -> anyhow::Error {
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the address is in use (another curfew, or another program)".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => "no interface of this machine has it".to_string(),
        _ => e.to_string(),
    };
    anyhow::anyhow!(
        "cannot listen on {listen}: {why}; choose another address with --listen ADDR or `daemon.listen` in the rule file"
    )
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

/// Watches the rule file's folder (a Kubernetes ConfigMap swaps a symlink there).
fn watch_file(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let name = path.file_name()?.to_os_string();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            // Reading the file (as each reload does) is not a change.
            && !matches!(event.kind, notify::EventKind::Access(_))
            && event.paths.iter().any(|p| {
                p.file_name() == Some(&name) || p.file_name().is_some_and(|f| f == "..data")
            })
        {
            let _ = tx.try_send(());
        }
    })
    .ok()?;
    match watcher.watch(&dir, RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the rule file; reload it with SIGHUP");
            None
        }
    }
}
