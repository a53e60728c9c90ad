//! Listing 10,000 environments in 200 projects through the Qovery adapter, against the
//! sandbox with 25 ms of latency per request. Prints the requests made, the wall time and
//! the lower bound (requests ÷ concurrency × latency); the goal is within 1.2× of it.
//!
//! `cargo bench --bench qovery_list`

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew::clock::SystemClock;
use curfew::platform::Platform;
use curfew::platform::qovery::{Qovery, QoveryOptions, Token};
use curfew::sandbox::{Sandbox, SandboxOptions};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let latency = Duration::from_millis(25);
    let concurrency = 16usize;
    let sandbox = Sandbox::new(
        SandboxOptions {
            projects: 200,
            environments: 10_000,
            seed: 1,
            token: "bench".into(),
            latency,
            ..SandboxOptions::default()
        },
        Arc::new(SystemClock),
    );
    let running = common::serve_apart(sandbox.clone());
    let mut options = QoveryOptions::new(
        running.url.clone(),
        running.organization_id.clone(),
        Token::new(running.token.clone()),
    );
    options.max_concurrency = concurrency;
    options.requests_per_second = 100_000.0;
    let qovery = Qovery::new(options, None).expect("adapter");
    // Warm up connections once, and let the background cluster refresh it starts finish
    // (it is not part of a listing), then measure.
    qovery.list().await.expect("listing");
    common::quiet(&sandbox).await;
    let runs = 5;
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    let before = sandbox.requests().total;
    for _ in 0..runs {
        let started = Instant::now();
        let snapshot = qovery.list().await.expect("listing");
        let took = started.elapsed();
        assert_eq!(snapshot.environments.len(), 10_000);
        best = best.min(took);
        total += took;
    }
    let requests = (sandbox.requests().total - before) / runs as u64;
    let bound = latency.as_secs_f64() * requests as f64 / concurrency as f64;
    let mean = total.as_secs_f64() / runs as f64;
    println!(
        "qovery list: 10000 environments, 200 projects, latency {} ms, concurrency {concurrency}",
        latency.as_millis()
    );
    println!("  requests per listing: {requests}");
    println!(
        "  wall time: mean {:.0} ms, best {:.0} ms",
        mean * 1000.0,
        best.as_secs_f64() * 1000.0
    );
    println!(
        "  lower bound (requests / concurrency x latency): {:.0} ms",
        bound * 1000.0
    );
    println!(
        "  ratio (mean / bound): {:.2}  (goal <= 1.20)",
        mean / bound
    );
}
