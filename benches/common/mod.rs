//! Shared by the benchmarks: the sandbox served from its own thread and runtime, as
//! Qovery's servers would be, so its work (building a 2.7 MB listing) never blocks the
//! client's tokio workers and the figures measure curfew, not the simulator's scheduling.

use curfew::sandbox::Sandbox;

/// Where the sandbox answers.
pub struct Served {
    pub url: String,
    pub organization_id: String,
    pub token: String,
}

/// Serves `sandbox` on a loopback port from a thread of its own (for the benchmark's
/// lifetime).
pub fn serve_apart(sandbox: Sandbox) -> Served {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sandbox")
            .enable_all()
            .build()
            .expect("the sandbox's runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let running = sandbox.spawn(listener).await.expect("sandbox");
            let _ = tx.send(Served {
                url: running.url.clone(),
                organization_id: running.organization_id.clone(),
                token: running.token.clone(),
            });
            // Keep serving until the process ends.
            std::future::pending::<()>().await;
            drop(running);
        });
    });
    rx.recv().expect("the sandbox started")
}

/// Waits until the sandbox has had no request for half a second: the background refresh of
/// clusters and costs that a first listing starts has finished (a running daemon has its
/// cache filled; it is not part of what is measured).
pub async fn quiet(sandbox: &Sandbox) {
    let mut seen = sandbox.requests().total;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = sandbox.requests().total;
        if now == seen {
            return;
        }
        seen = now;
    }
}
