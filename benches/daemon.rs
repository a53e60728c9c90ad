//! The daemon's figures, printed (no timed assertions):
//! 1. one pass over 10,000 environments in 200 projects at 25 ms latency with 1,000 stops
//!    due, against the lower bound (requests ÷ concurrency × latency), goal ≤ 1.25×;
//! 2. peak RSS of `curfew run` tracking 10,000 environments (goal ≤ 25 MB), and its CPU
//!    while idle between passes (goal about zero), measured on real processes: the sandbox
//!    and the daemon each run as their own `curfew` process;
//! 3. the delay between a schedule boundary and the daemon's first stop request (goal ≤ 1 s).
//!
//! `cargo bench --bench daemon`

use std::io::{BufRead, BufReader};
use std::process::Stdio;
#[path = "common/mod.rs"]
mod common;
use common::{free_port, status_kb};

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use curfew::clock::ManualClock;
use curfew::config::parse_rules;
use curfew::events::ActResult;
use curfew::ledger::Ledger;
use curfew::metrics::Metrics;
use curfew::platform::Platform;
use curfew::platform::qovery::{Qovery, QoveryOptions, Token};
use curfew::reconcile::{Daemon, DaemonOptions};
use curfew::sandbox::{Sandbox, SandboxOptions};

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");

fn main() {
    common::print_build();
    common::print_layout(CURFEW);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(one_pass());
    processes();
}

async fn one_pass() {
    let latency = Duration::from_millis(25);
    let concurrency = 16;
    let saturday: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().expect("instant");
    let clock = ManualClock::new(saturday);
    let sandbox = Sandbox::new(
        SandboxOptions {
            projects: 200,
            environments: 10_000,
            seed: 9,
            token: "b".into(),
            latency,
            ..SandboxOptions::default()
        },
        Arc::new(clock.clone()),
    );
    let running = common::serve_apart(sandbox.clone());
    let mut o = QoveryOptions::new(
        running.url.clone(),
        running.organization_id.clone(),
        Token::new(running.token.clone()),
    );
    o.max_concurrency = concurrency;
    o.requests_per_second = 100_000.0;
    let platform = Arc::new(Qovery::new(o, None).expect("adapter"));
    // A daemon that has run a while: connections open, clusters and costs cached.
    platform.list().await.expect("listing");
    common::quiet(&sandbox).await;
    let rules = parse_rules(
        "bench.yaml",
        "timezone: UTC\nsafety:\n  max_stops_per_pass: 1000\ndefaults:\n  grace_period: 1m\nrules:\n  - name: office\n    match: { mode: [preview, development, staging] }\n    run: Mon-Fri 08:00-19:00\n",
        saturday,
    )
    .expect("rules");
    let daemon = Daemon::new(
        platform,
        Arc::new(Ledger::in_memory().expect("ledger")),
        Arc::new(Metrics::new("bench", false)),
        Arc::new(clock.clone()),
        Arc::new(rules),
        DaemonOptions {
            resync: Duration::from_secs(60),
            max_pass_age: Duration::from_secs(180),
            max_in_flight: concurrency,
        },
    );
    let before = sandbox.requests().total;
    let started = Instant::now();
    let report = daemon.pass().await.expect("pass");
    let took = started.elapsed();
    let requests = sandbox.requests().total - before;
    let stops = report
        .acted()
        .filter(|(_, r)| matches!(r, ActResult::Done(_)))
        .count();
    let bound = latency.as_secs_f64() * requests as f64 / concurrency as f64;
    println!(
        "daemon pass: 10000 environments, 200 projects, latency 25 ms, concurrency {concurrency}"
    );
    println!("  stops done: {stops} (cap 1000)");
    println!("  requests: {requests}");
    println!(
        "  wall time: {:.0} ms; lower bound {:.0} ms; ratio {:.2} (goal <= 1.25)",
        took.as_secs_f64() * 1000.0,
        bound * 1000.0,
        took.as_secs_f64() / bound
    );
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = text.rsplit(')').next()?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn processes() {
    let dir = std::env::temp_dir().join(format!("curfew-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let sandbox_port = free_port();
    let (_sandbox, org) = common::sandbox_process(CURFEW, sandbox_port, 10_000);
    // A window that starts at the next minute boundary, in UTC: every running preview is
    // due for a stop right then.
    let now = Utc::now();
    let boundary = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("minute")
        + chrono::TimeDelta::minutes(1);
    let wait_s = (boundary - now).num_seconds();
    let boundary = if wait_s < 15 {
        boundary + chrono::TimeDelta::minutes(1)
    } else {
        boundary
    };
    let end = boundary.format("%H:%M");
    let config = dir.join("rules.yaml");
    std::fs::write(
        &config,
        format!(
            "timezone: UTC\nplatform:\n  qovery:\n    organization: {org}\n    api_url: http://127.0.0.1:{sandbox_port}\n    token_env: BENCH_TOKEN\n    requests_per_second: 2000\n    max_concurrency: 16\n\
             daemon:\n  listen: 127.0.0.1:{}\n  ledger: {}\n  resync: 60s\nsafety:\n  max_stops_per_pass: 20000\ndefaults:\n  grace_period: 1m\n\
             rules:\n  - name: until-boundary\n    match: {{ mode: [preview, development, staging] }}\n    run: Mon-Sun 00:00-{end}\n",
            free_port(),
            dir.join("ledger.db").display()
        ),
    )
    .expect("config");
    let mut daemon = common::daemon_process(CURFEW, &config, Stdio::piped());
    let pid = daemon.0.id();
    let stderr = daemon.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Idle: after the first pass, until shortly before the boundary.
    std::thread::sleep(Duration::from_secs(8));
    let idle_from = cpu_ticks(pid);
    let idle_started = Instant::now();
    let idle_for = (boundary - Utc::now())
        .to_std()
        .unwrap_or_default()
        .saturating_sub(Duration::from_secs(2));
    std::thread::sleep(idle_for);
    let idle_to = cpu_ticks(pid);
    let ticks_per_s = 100.0; // USER_HZ on Linux
    if let (Some(a), Some(b)) = (idle_from, idle_to) {
        let cpu = (b - a) as f64 / ticks_per_s;
        println!(
            "daemon idle between passes: {:.2} s CPU over {:.1} s ({:.2}%)",
            cpu,
            idle_started.elapsed().as_secs_f64(),
            100.0 * cpu / idle_started.elapsed().as_secs_f64()
        );
    }
    // The first stop after the boundary.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first_stop: Option<DateTime<Utc>> = None;
    while Instant::now() < deadline && first_stop.is_none() {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1))
            && line.contains("calling the platform")
            && let Some(ts) = line
                .split("\"timestamp\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
        {
            first_stop = ts.parse().ok();
        }
    }
    match first_stop {
        Some(t) => println!(
            "boundary {} -> first stop requests sent {:.3} s later (goal <= 1 s)",
            boundary.format("%H:%M:%S"),
            (t - boundary).num_milliseconds() as f64 / 1000.0
        ),
        None => println!("no stop seen within 60 s of the boundary"),
    }
    std::thread::sleep(Duration::from_secs(3));
    if let Some(kb) = status_kb(pid, "VmHWM:") {
        println!(
            "daemon peak RSS tracking 10000 environments: {:.1} MB (goal <= 25 MB)",
            kb as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
