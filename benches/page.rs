//! The status page's figures with 10,000 environments, printed (no timed assertions):
//! 1. the fleet page's first screen: time at the server (goal ≤ 50 ms) and weight (goal
//!    ≤ 300 KB), and an environment page's;
//! 2. page views call the platform: the sandbox's requests counted over the views (goal 0);
//! 3. passes with page views beside them (10 a second) against passes alone (goal ≤ 5 %
//!    longer);
//! 4. the daemon's peak RSS with the page on and read during passes (goal ≤ 30 MB), on
//!    real processes: the sandbox and the daemon each run as their own `curfew`.
//!
//! `cargo bench --bench page`

#[path = "common/mod.rs"]
mod common;
use common::{free_port, status_kb};

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::Request;
use chrono::{DateTime, TimeDelta, Utc};
use curfew::admin::AdminTokens;
use curfew::clock::ManualClock;
use curfew::config::page::PageAccess;
use curfew::config::parse_rules;
use curfew::ledger::Ledger;
use curfew::metrics::Metrics;
use curfew::platform::Platform;
use curfew::platform::qovery::{Qovery, QoveryOptions, Token};
use curfew::reconcile::{Daemon, DaemonOptions};
use curfew::sandbox::{Sandbox, SandboxOptions};
use curfew::ui::{Sessions, UiOptions};
use tower::ServiceExt;

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");
const ENVIRONMENTS: u32 = 10_000;

fn main() {
    println!(
        "curfew {} for {}-linux, {} environments",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        ENVIRONMENTS
    );
    common::print_layout(CURFEW);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(in_process());
    processes();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn view(router: &axum::Router, path: &str) -> (Duration, usize) {
    let started = Instant::now();
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let body = to_bytes(response.into_body(), 64 << 20)
        .await
        .expect("body");
    (started.elapsed(), body.len())
}

async fn in_process() {
    // Tuesday 09:30 UTC: inside the window; the first pass has stopped what is idle.
    let start: DateTime<Utc> = "2026-11-24T09:30:00Z".parse().expect("instant");
    let clock = ManualClock::new(start);
    let sandbox = Sandbox::new(
        SandboxOptions {
            projects: 200,
            environments: ENVIRONMENTS,
            seed: 9,
            token: "b".into(),
            latency: Duration::from_millis(5),
            ..SandboxOptions::default()
        },
        Arc::new(clock.clone()),
    );
    let served = common::serve_apart(sandbox.clone());
    let mut o = QoveryOptions::new(
        served.url.clone(),
        served.organization_id.clone(),
        Token::new(served.token.clone()),
    );
    o.max_concurrency = 16;
    o.requests_per_second = 100_000.0;
    let platform = Arc::new(Qovery::new(o, None).expect("adapter"));
    platform.list().await.expect("listing");
    common::quiet(&sandbox).await;
    let rules = parse_rules(
        "bench.yaml",
        "timezone: Europe/Paris\nsafety:\n  max_stops_per_pass: 20000\ndefaults:\n  grace_period: 1m\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n    stop_when_idle: 3h\n    delete_after: 30d\n",
        start,
    )
    .expect("rules");
    let dir = std::env::temp_dir().join(format!("curfew-page-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let daemon = Arc::new(Daemon::new(
        platform,
        Arc::new(Ledger::open(&dir.join("ledger.db")).expect("ledger")),
        Arc::new(Metrics::new("bench", false)),
        Arc::new(clock.clone()),
        Arc::new(rules),
        DaemonOptions {
            resync: Duration::from_secs(60),
            max_pass_age: Duration::from_secs(180),
            max_in_flight: 16,
        },
    ));
    daemon.pass().await.expect("first pass");
    clock.set(start + TimeDelta::minutes(2));
    common::quiet(&sandbox).await;
    daemon.pass().await.expect("second pass");
    let router = curfew::ui::router(
        daemon.clone(),
        UiOptions {
            access: PageAccess::ReadOnly,
            tokens: AdminTokens::parse("bench:0123456789abcdef0123", "bench").ok(),
            sessions: Sessions::new(TimeDelta::hours(12), false, None),
            signer: None,
        },
    );

    // 1 and 2: first screens, and the platform's requests meanwhile.
    let before = sandbox.requests().total;
    let mut times = Vec::new();
    let mut weight = 0;
    for _ in 0..50 {
        let (took, bytes) = view(&router, "/").await;
        times.push(took.as_secs_f64() * 1000.0);
        weight = bytes;
    }
    let sorted = view(&router, "/?sort=next&order=desc").await;
    let filtered = view(&router, "/?q=pr-1&state=stopped").await;
    let last = daemon.last_pass().expect("a pass");
    let ids: Vec<String> = last
        .decisions
        .iter()
        .step_by(500)
        .map(|d| d.environment_id.to_string())
        .collect();
    let mut env_times = Vec::new();
    let mut env_weight = 0;
    for id in &ids {
        let (took, bytes) = view(&router, &format!("/environments/{id}")).await;
        env_times.push(took.as_secs_f64() * 1000.0);
        env_weight = env_weight.max(bytes);
    }
    let calls = sandbox.requests().total - before;
    println!("fleet page, first screen (100 of {ENVIRONMENTS} rows):");
    println!(
        "  at the server: median {:.1} ms, max {:.1} ms over 50 views (goal <= 50 ms)",
        median(times.clone()),
        times.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "  weight: {:.1} KB (goal <= 300 KB)",
        weight as f64 / 1024.0
    );
    println!(
        "  sorted by next step: {:.1} ms; filtered: {:.1} ms",
        sorted.0.as_secs_f64() * 1000.0,
        filtered.0.as_secs_f64() * 1000.0
    );
    println!(
        "environment page: median {:.1} ms, at most {:.1} KB, over {} environments",
        median(env_times),
        env_weight as f64 / 1024.0,
        ids.len()
    );
    println!(
        "platform requests during {} page views: {calls} (goal 0)",
        50 + 2 + ids.len()
    );

    // 3: passes alone and with 10 page views a second beside them, alternating which
    // comes first; each a minute after the last (the steady state: little to do).
    let mut alone = Vec::new();
    let mut viewed = Vec::new();
    let mut minute = 3;
    for round in 0..10 {
        for with_views in [round % 2 == 0, round % 2 == 1] {
            clock.set(start + TimeDelta::minutes(minute));
            minute += 1;
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let viewer = with_views.then(|| {
                let (router, stop, ids) = (router.clone(), stop.clone(), ids.clone());
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let path = if n.is_multiple_of(2) {
                            "/".to_string()
                        } else {
                            format!("/environments/{}", ids[n % ids.len()])
                        };
                        view(&router, &path).await;
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            });
            let started = Instant::now();
            daemon.pass().await.expect("pass");
            let took = started.elapsed().as_secs_f64();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(viewer) = viewer {
                viewer.await.expect("viewer");
                viewed.push(took);
            } else {
                alone.push(took);
            }
        }
    }
    let (a, v) = (median(alone), median(viewed));
    println!(
        "passes: alone median {:.0} ms; with 10 page views a second {:.0} ms; {:+.1} % (goal <= 5 %)",
        a * 1000.0,
        v * 1000.0,
        (v / a - 1.0) * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A GET over a plain socket: the status and the body's length.
fn http_get(port: u16, path: &str) -> Option<(u16, usize)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let text = String::from_utf8_lossy(&reply);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    Some((status, body))
}

fn processes() {
    let dir = std::env::temp_dir().join(format!("curfew-page-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let sandbox_port = free_port();
    let (_sandbox, org) = common::sandbox_process(CURFEW, sandbox_port, ENVIRONMENTS);
    let port = free_port();
    let config = dir.join("rules.yaml");
    std::fs::write(
        &config,
        format!(
            "timezone: UTC\nplatform:\n  qovery:\n    organization: {org}\n    api_url: http://127.0.0.1:{sandbox_port}\n    token_env: BENCH_TOKEN\n    requests_per_second: 2000\n    max_concurrency: 16\n\
             daemon:\n  listen: 127.0.0.1:{port}\n  ledger: {}\n  resync: 10s\n  page: read-only\nsafety:\n  max_stops_per_pass: 20000\ndefaults:\n  grace_period: 1m\n\
             rules:\n  - name: office\n    match: {{ mode: [preview, development, staging] }}\n    run: Mon-Sun 00:00-23:59\n    stop_when_idle: 3h\n",
            dir.join("ledger.db").display()
        ),
    )
    .expect("config");
    let daemon = common::daemon_process(CURFEW, &config, Stdio::null());
    let pid = daemon.0.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && http_get(port, "/readyz").map(|r| r.0) != Some(200) {
        std::thread::sleep(Duration::from_millis(500));
    }
    // 40 s of passes (one every 10 s), with 10 page views a second beside them.
    let until = Instant::now() + Duration::from_secs(40);
    let mut views = 0;
    let mut biggest = 0;
    while Instant::now() < until {
        let path = match views % 3 {
            0 => "/".to_string(),
            1 => format!("/?page={}", 1 + views % 100),
            _ => "/?sort=next".to_string(),
        };
        if let Some((200, bytes)) = http_get(port, &path) {
            biggest = biggest.max(bytes);
        }
        views += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(kb) = status_kb(pid, "VmHWM:") {
        println!(
            "daemon peak RSS with the page read during passes ({views} views, largest {:.0} KB): {:.1} MB (goal <= 30 MB)",
            biggest as f64 / 1024.0,
            kb as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
