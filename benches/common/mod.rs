//! Shared by the benchmarks: the sandbox served from its own thread and runtime, as
//! Qovery's servers would be, so its work (building a 2.7 MB listing) never blocks the
//! client's tokio workers and the figures measure curfew, not the simulator's scheduling.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use curfew::sandbox::Sandbox;

/// A child process, killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The build the figures are about (the image ships the same one: tests/deploy.rs).
pub fn print_build() {
    println!(
        "curfew {} for {}-linux-{} on {}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        if cfg!(target_env = "gnu") {
            "gnu"
        } else {
            "other"
        },
        curfew::memory::libc()
    );
}

/// How much of `link/symbol-order.txt` (the functions a running daemon executes, which
/// build.rs has the linker lay out together) the binary `curfew` has, by its symbol table
/// (binutils' `nm`): a list the code has moved away from makes the resident code grow
/// back, and `.ci/symbol-order` makes it again.
pub fn print_layout(curfew: &str) {
    let order = concat!(env!("CARGO_MANIFEST_DIR"), "/link/symbol-order.txt");
    let listed: std::collections::HashSet<String> = std::fs::read_to_string(order)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let defined = Command::new("nm")
        .args(["--defined-only", curfew])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match defined {
        Some(nm) => {
            let found = nm
                .lines()
                .filter_map(|l| l.split_whitespace().nth(2))
                .filter(|name| listed.contains(*name))
                .count();
            println!(
                "code layout: {found} of the {} functions link/symbol-order.txt names are in this binary",
                listed.len()
            );
        }
        None => println!("code layout: unknown (no nm)"),
    }
}

/// A loopback port nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// A field of `/proc/PID/status` in kB (`VmHWM:`, the peak RSS).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `curfew run --config CONFIG` (JSON log lines on stderr, as `stderr` says; the token
/// `bench` in `BENCH_TOKEN`) as its own process.
pub fn daemon_process(curfew: &str, config: &std::path::Path, stderr: Stdio) -> Proc {
    let daemon = Command::new(curfew)
        .args([
            "run",
            "--config",
            config.to_str().expect("path"),
            "--log-format",
            "json",
        ])
        .env("BENCH_TOKEN", "bench")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("daemon");
    Proc(daemon)
}

/// `curfew sandbox` as its own process (token `bench`, 200 projects, 5 ms latency) on
/// `port`: the process, and the organization's id it prints first.
pub fn sandbox_process(curfew: &str, port: u16, environments: u32) -> (Proc, String) {
    let mut sandbox = Command::new(curfew)
        .args([
            "sandbox",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token",
            "bench",
            "--projects",
            "200",
            "--environments",
            &environments.to_string(),
            "--latency-ms",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox");
    let mut line = String::new();
    BufReader::new(sandbox.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("org line");
    let org = line
        .split("organization ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("org")
        .to_string();
    (Proc(sandbox), org)
}

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
