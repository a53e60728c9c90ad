//! Restart tests: the daemon, a real child process, is killed with SIGKILL mid-pass again
//! and again while it stops environments on a sandbox running in another process.
//! Afterwards the ledger is consistent (no intent left without an outcome once the daemon
//! has started again), no stop was taken twice or lost, and the savings counters never
//! went down.

mod common;
use common::{Killed, free_port};

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");

fn start_sandbox(port: u16) -> (Killed, String) {
    let mut child = Command::new(CURFEW)
        .args([
            "sandbox",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token",
            "restart-token",
            "--projects",
            "3",
            "--environments",
            "40",
            "--seed",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the organization line");
    let org = line
        .split("organization ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("an organization id")
        .to_string();
    (Killed(child), org)
}

fn metrics(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn killing_the_daemon_mid_pass_loses_and_duplicates_nothing() {
    let dir = std::env::temp_dir().join(format!("curfew-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sandbox_port = free_port();
    let (_sandbox, org) = start_sandbox(sandbox_port);
    let metrics_port = free_port();
    let config = dir.join("rules.yaml");
    let ledger = dir.join("ledger.db");
    std::fs::write(
        &config,
        format!(
            "timezone: UTC\nplatform:\n  qovery:\n    organization: {org}\n    api_url: http://127.0.0.1:{sandbox_port}\n    token_env: RESTART_TOKEN\n    requests_per_second: 500\n\
             daemon:\n  listen: 127.0.0.1:{metrics_port}\n  ledger: {}\n  resync: 1s\ndefaults:\n  hourly_cost: 1.0\n  grace_period: 1m\n\
             safety:\n  max_stops_per_pass: 3\nrules:\n  - name: idle\n    match: {{ mode: [preview, development, staging] }}\n    stop_when_idle: 1m\n",
            ledger.display()
        ),
    )
    .unwrap();
    let run = || {
        Command::new(CURFEW)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RESTART_TOKEN", "restart-token")
            .env("CURFEW_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon starts")
    };
    let mut last_stopped = 0.0;
    let mut last_saved = 0.0;
    for round in 0..6 {
        let daemon = Killed(run());
        // Let it make some passes, then kill it without warning at a different moment.
        let started = Instant::now();
        let life = Duration::from_millis(700 + 230 * round);
        while started.elapsed() < life {
            if let Some(m) = metrics(metrics_port) {
                let stopped = sum(&m, "curfew_stopped_seconds_total{");
                let saved = sum(&m, "curfew_saved_cost_total{");
                assert!(
                    stopped >= last_stopped && saved >= last_saved,
                    "a savings counter went down: {stopped} < {last_stopped} or {saved} < {last_saved}"
                );
                last_stopped = stopped;
                last_saved = saved;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut daemon = daemon;
        let _ = daemon.0.kill(); // SIGKILL
        let _ = daemon.0.wait();
    }
    // A last, clean run resolves whatever the kills interrupted and finishes the work.
    let mut last = Killed(run());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(m) = metrics(metrics_port)
            && sum(&m, "curfew_environments{rule=\"idle\",state=\"running\"}") == 0.0
            && m.contains("curfew_environments{")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "previews still running after 30 s"
        );
    }
    terminate(&mut last.0);
    // The ledger: every intent has its outcome, and no environment was stopped twice.
    let conn = ledger_counts(&ledger);
    assert_eq!(
        conn.pending, 0,
        "intents without outcome after a clean restart"
    );
    assert!(
        conn.max_stops_done_per_env <= 1,
        "an environment was stopped {} times",
        conn.max_stops_done_per_env
    );
    assert!(conn.environments_stopped > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM, then wait: the last run ends cleanly.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct LedgerCounts {
    pending: i64,
    max_stops_done_per_env: i64,
    environments_stopped: i64,
}

fn ledger_counts(path: &std::path::Path) -> LedgerCounts {
    let ledger = curfew::ledger::Ledger::open(path).expect("the ledger opens");
    let pending = ledger.pending().expect("pending").len() as i64;
    let (max, envs) = ledger.stop_counts().expect("counts");
    LedgerCounts {
        pending,
        max_stops_done_per_env: max,
        environments_stopped: envs,
    }
}
