//! The daemon's port: `/metrics`, `/healthz` and `/readyz`, the admin API when it has
//! tokens, and the status page with its signed links.

use std::net::SocketAddr;

use tokio::sync::watch;

use super::Parts;
use crate::config::settings::Settings;
use crate::server::{self, HttpLimits};

/// Binds `listen` and serves the port until `shutdown` says stop.
pub(super) async fn start(
    parts: &Parts,
    page: Option<crate::ui::UiOptions>,
    listen: SocketAddr,
    settings: &Settings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| listen_error(listen, &e, "--listen ADDR or `daemon.listen`"))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let daemon = &parts.daemon;
    let mut routes = server::routes(daemon.metrics.clone(), daemon.health(), daemon.clock());
    let admin = match parts.admin_tokens.clone() {
        Some(tokens) => {
            tracing::info!(tokens = tokens.len(), "admin API on /api/v1");
            crate::admin::router(daemon.clone(), tokens)
        }
        None => {
            tracing::info!(
                "admin API off: no admin token ({} or daemon.admin_token_file)",
                crate::admin::TOKEN_VARIABLE
            );
            crate::admin::off_router()
        }
    };
    routes.app = server::merge_admin(routes.app, admin);
    if let Some(page) = page {
        tracing::info!(
            access = page.access.as_str(),
            links = page.signer.is_some(),
            "status page"
        );
        routes.app = server::merge_admin(routes.app, crate::ui::router(daemon.clone(), page));
    }
    Ok(spawn(listener, routes, settings, shutdown))
}

/// Binds `daemon.public_listen` and serves the public port (the waiting page, the signed
/// links) until `shutdown` says stop, within the same limits as the daemon's port.
pub(super) async fn start_public(
    parts: &Parts,
    links: Option<crate::ui::UiOptions>,
    public: SocketAddr,
    settings: &Settings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(public)
        .await
        .map_err(|e| listen_error(public, &e, "`daemon.public_listen`"))?;
    tracing::info!(address = %listener.local_addr()?, "public port: /wake/…, signed links");
    let daemon = &parts.daemon;
    let links = links.map(|options| crate::ui::router(daemon.clone(), options));
    let options = crate::wake::WakeOptions {
        session: chrono::TimeDelta::from_std(settings.wake_session)
            .unwrap_or(chrono::TimeDelta::minutes(30)),
        max_wakes_per_hour: settings.max_wakes_per_hour,
        clients: settings.public_clients.clone(),
    };
    let routes = crate::wake::public_routes(daemon.clone(), options, links);
    Ok(spawn(listener, routes, settings, shutdown))
}

/// Serves `routes` on `listener` within the daemon's connection limits until `shutdown`
/// says stop: the daemon's port and the public port alike.
fn spawn(
    listener: tokio::net::TcpListener,
    routes: server::Routes,
    settings: &Settings,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let limits = HttpLimits {
        max_connections: settings.max_connections as usize,
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
    };
    tokio::spawn(server::serve(listener, routes, limits, async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    }))
}

/// Why the daemon's address cannot be served, and how to choose another.
fn listen_error(listen: SocketAddr, e: &std::io::Error, setting: &str) -> anyhow::Error {
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the address is in use (another curfew, or another program)".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => "no interface of this machine has it".to_string(),
        _ => e.to_string(),
    };
    anyhow::anyhow!(
        "cannot listen on {listen}: {why}; choose another address with {setting} in the rule file"
    )
}
