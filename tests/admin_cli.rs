//! The operator's command line against a real daemon: `curfew run` on its in-process
//! sandbox as a child process, and `curfew plan/explain/snooze/wake/protect --server`
//! talking to its admin API; and `curfew plan --config` reading the platform directly.

mod common;
use common::{Killed, free_port};

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");
const TOKEN: &str = "cli-test-token-0123456789";

/// Starts `curfew run` on `config` (with `token` as its admin token, if any) and waits
/// until it is ready.
fn daemon(config: &std::path::Path, port: u16, token: Option<&str>) -> Killed {
    let mut command = Command::new(CURFEW);
    command
        .args(["run", "--config", config.to_str().unwrap()])
        .env_remove("CURFEW_ADMIN_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(t) = token {
        command.env("CURFEW_ADMIN_TOKEN", t);
    }
    let daemon = Killed(command.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(port) {
        assert!(Instant::now() < deadline, "the daemon never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200")
}

fn rules(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let file = dir.join("rules.yaml");
    std::fs::write(
        &file,
        format!(
            "timezone: Europe/Paris\nplatform:\n  sandbox:\n    projects: 2\n    environments: 8\n    seed: 3\n\
             daemon:\n  listen: 127.0.0.1:{port}\n  ledger: {}\n  resync: 30s\n\
             rules:\n  - name: previews\n    match: {{ mode: [preview, development, staging] }}\n    run: Mon-Fri 08:00-19:00\n",
            dir.join("ledger.db").display()
        ),
    )
    .unwrap();
    file
}

fn curfew(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(CURFEW);
    command.args(args).env_remove("CURFEW_SERVER");
    match token {
        Some(t) => command.env("CURFEW_ADMIN_TOKEN", t),
        None => command.env_remove("CURFEW_ADMIN_TOKEN"),
    };
    command.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_operator_commands_drive_a_running_daemon() {
    let dir = std::env::temp_dir().join(format!("curfew-admin-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = rules(&dir, port);
    let _daemon = daemon(&config, port, Some(&format!("ops:{TOKEN}")));
    let server = format!("http://127.0.0.1:{port}");
    let s = server.as_str();

    // The plan, as a table and as JSON; CURFEW_SERVER names the daemon as it does for the
    // other commands.
    let out = curfew(&["plan", "--server", s], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let from_variable = Command::new(CURFEW)
        .args(["plan"])
        .env("CURFEW_SERVER", s)
        .env("CURFEW_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        from_variable.status.success(),
        "{}",
        text(&from_variable.stderr)
    );
    assert_eq!(text(&from_variable.stdout), text(&out.stdout));
    let table = text(&out.stdout);
    assert!(table.starts_with("ENVIRONMENT"), "{table}");
    assert!(table.contains("previews"), "{table}");
    let out = curfew(&["plan", "--server", s, "--json"], Some(TOKEN));
    assert!(out.status.success());
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let envs = plan["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 8);
    let name = envs
        .iter()
        .find(|e| e["rule"] == "previews")
        .and_then(|e| e["environment"].as_str())
        .unwrap()
        .to_string();

    // Explain by name: the reasoning, the decision, the history.
    let out = curfew(&["explain", &name, "--server", s], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let explained = text(&out.stdout);
    for part in ["Reasoning:", "rule \"previews\" matches", "Decision:"] {
        assert!(explained.contains(part), "{part}: {explained}");
    }

    // Snooze, with the token's name as who; a bad duration is refused with the reason.
    let out = curfew(
        &[
            "snooze", &name, "--for", "4h", "--note", "demo", "--server", s,
        ],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("snoozed until"),
        "{}",
        text(&out.stdout)
    );
    let out = curfew(&["explain", &name, "--server", s, "--json"], Some(TOKEN));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["record"]["snoozed_by"], "ops");
    let out = curfew(
        &["snooze", &name, "--for", "4 parsecs", "--server", s],
        Some(TOKEN),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("400") && err.contains("`for`"), "{err}");
    let out = curfew(&["snooze", &name, "--end", "--server", s], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Protect and remove the protection.
    let out = curfew(&["protect", &name, "--server", s], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("protected through the admin API by ops"));
    let out = curfew(&["protect", &name, "--remove", "--server", s], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Wake for two hours.
    let out = curfew(&["wake", &name, "--for", "2h", "--server", s], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("woken"), "{}", text(&out.stdout));

    // Unknown environment, missing token, wrong token.
    let out = curfew(&["explain", "no-such-env", "--server", s], Some(TOKEN));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    let out = curfew(&["plan", "--server", s], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("CURFEW_ADMIN_TOKEN"));
    let out = curfew(&["plan", "--server", s], Some("wrong-token-0123456789"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plan_with_a_config_reads_the_live_platform_without_a_daemon() {
    let dir = std::env::temp_dir().join(format!("curfew-plan-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = rules(&dir, free_port());
    let out = curfew(
        &["plan", "--config", config.to_str().unwrap(), "--json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let decisions: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decisions.as_array().unwrap().len(), 8);
    // Read-only: no ledger was written.
    assert!(!dir.join("ledger.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The two messages a newcomer meets first: a daemon started without an admin token, and a
/// second daemon on a taken port. Each says what is wrong and what to do.
#[test]
fn an_admin_api_that_is_off_and_a_taken_port_say_what_to_do() {
    let dir = std::env::temp_dir().join(format!("curfew-api-off-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = rules(&dir, port);
    let _daemon = daemon(&config, port, None);
    let server = format!("http://127.0.0.1:{port}");
    let out = curfew(&["plan", "--server", &server], Some(TOKEN));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: 404 Not Found: the daemon at {server} has no admin API: it is off until the daemon has a token (CURFEW_ADMIN_TOKEN or daemon.admin_token_file; see docs/operations.md)\n"
        )
    );
    let second = dir.join("second.yaml");
    std::fs::write(
        &second,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("ledger.db", "second.db"),
    )
    .unwrap();
    let out = curfew(&["run", "--config", second.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "error: cannot listen on 127.0.0.1:{port}: the address is in use (another curfew, or another program); choose another address with --listen ADDR or `daemon.listen` in the rule file"
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
