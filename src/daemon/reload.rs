//! Hot reload: the rule file's folder is watched (a Kubernetes ConfigMap swaps a symlink
//! there), and SIGHUP reloads it too. A file that does not compile leaves the last good
//! rules in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::Source;
use crate::reconcile::Daemon;

/// How long a change is left to settle before the file is read: editors and ConfigMaps
/// write in steps.
const SETTLE: Duration = Duration::from_millis(300);

/// Starts reloading `source` into `daemon` on every change of the file and on SIGHUP.
/// Returns the watcher, which must be kept (dropped, it stops watching).
pub(super) fn start(daemon: Arc<Daemon>, source: Source) -> Option<notify::RecommendedWatcher> {
    let (file_tx, file_rx) = mpsc::channel::<()>(8);
    let watcher = watch_file(&source.path, file_tx);
    tokio::spawn(reload_on_change(daemon, source, file_rx));
    watcher
}

/// Reloads at each change the watcher reports, and at each SIGHUP.
async fn reload_on_change(daemon: Arc<Daemon>, source: Source, mut file_rx: mpsc::Receiver<()>) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        tokio::select! {
            Some(()) = file_rx.recv() => {
                tokio::time::sleep(SETTLE).await;
                while file_rx.try_recv().is_ok() {}
            }
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reloading the rule file");
            }
        }
        // A rejected file is logged and counted by the reload itself.
        let _ = daemon.reload(&source).await;
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
