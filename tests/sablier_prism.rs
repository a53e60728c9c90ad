//! curfew speaks Sablier's protocol as Sablier publishes it, checked by a tool we did not
//! write: a live `curfew run` on the sandbox serves its public port, Stoplight Prism's
//! proxy (`--errors`) stands in front of it with `reference/sablier-api.yaml`, and every
//! answer that passes through must satisfy the description: the waiting page and the
//! blocking wait, not ready then ready, a group, an unknown instance.
//!
//! Needs the `prism` binary: `.ci/run` installs it (`.ci/prism`) and runs this test.

mod common;
use common::{Killed, free_port};

use std::process::{Command, Stdio};
use std::time::Duration;

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");
const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/sablier-api.yaml"
);

/// The previews may be woken by a request and are stopped by every pass otherwise. Prism
/// is one client sending every check in a row: the per-client rate limit is off here.
const RULES: &str = r#"timezone: UTC
platform:
  sandbox: { projects: 2, environments: 12, seed: 7 }
daemon:
  ledger: {ledger}
  resync: 2s
  public_listen: 127.0.0.1:{public}
  public_rate_per_client: off
rules:
  - name: previews
    match: { mode: preview }
    run: never
    wake: never
    wake_on_request: true
"#;

fn prism_bin() -> String {
    std::env::var("PRISM_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.ci/prism/node_modules/.bin/prism"
        )
        .to_string()
    })
}

async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not listen on port {port}");
}

struct Seen {
    status: u16,
    session: String,
    body: String,
}

/// One request through Prism; any violation of the description fails the test.
async fn through(client: &reqwest::Client, prism: u16, path: &str) -> Seen {
    let r = client
        .get(format!("http://127.0.0.1:{prism}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = r.status().as_u16();
    let violations = r
        .headers()
        .get("sl-violations")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let session = r
        .headers()
        .get("x-sablier-session-status")
        .map_or(String::new(), |v| v.to_str().unwrap_or("?").to_string());
    let body = r.text().await.unwrap_or_default();
    assert!(
        violations.is_none(),
        "{path}: Prism found violations: {violations:?}\n{body}"
    );
    assert!(
        !body.contains("stoplight.io/prism/errors"),
        "{path}: Prism refused it: {body}"
    );
    Seen {
        status,
        session,
        body,
    }
}

#[tokio::test]
#[ignore = "needs Stoplight Prism (.ci/run installs it)"]
async fn curfews_sablier_answers_satisfy_sablier_s_published_description() {
    let dir = std::env::temp_dir().join(format!("curfew-sablier-prism-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let public = free_port();
    let listen = free_port();
    let rules = RULES
        .replace("{ledger}", &dir.join("ledger.db").display().to_string())
        .replace("{public}", &public.to_string());
    let config = dir.join("rules.yaml");
    std::fs::write(&config, rules).unwrap();
    let log = std::fs::File::create(dir.join("curfew.log")).unwrap();
    let _curfew = Killed(
        Command::new(CURFEW)
            .args(["run", "--config"])
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{listen}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("curfew runs"),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    // Ready once a pass has succeeded: the previews' stops are asked for.
    let mut ready = false;
    for _ in 0..600 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{listen}/readyz"))
            .send()
            .await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let curfew_log = || std::fs::read_to_string(dir.join("curfew.log")).unwrap_or_default();
    assert!(ready, "curfew never became ready:\n{}", curfew_log());
    // Until the previews' stops are done (a start asked for while one is stopping is
    // refused as busy by the platform): the last pass's counts on the daemon's port.
    let mut stopped = false;
    for _ in 0..1200 {
        let text = client
            .get(format!("http://127.0.0.1:{listen}/metrics"))
            .send()
            .await
            .ok()
            .map(|r| r.text());
        let text = match text {
            Some(t) => t.await.unwrap_or_default(),
            None => String::new(),
        };
        let previews = |state: &str| {
            text.lines().any(|l| {
                l.starts_with(&format!(
                    "curfew_environments{{rule=\"previews\",state=\"{state}\"}}"
                )) && !l.ends_with(" 0")
            })
        };
        if previews("stopped") && !previews("stopping") && !previews("running") {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stopped,
        "the previews were never stopped:\n{}",
        curfew_log()
    );
    let prism_port = free_port();
    let _prism = Killed(
        Command::new(prism_bin())
            .args(["proxy", SPEC])
            .arg(format!("http://127.0.0.1:{public}"))
            .args(["--errors", "--port", &prism_port.to_string()])
            .args(["--host", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prism ({}): {e}", prism_bin())),
    );
    wait_for_port(prism_port, "prism").await;

    // A preview of the daemon's sandbox (the same seed makes the same fleet), stopped by
    // the first pass; the request wakes it.
    let fleet = curfew::sandbox::Sandbox::new(
        curfew::sandbox::SandboxOptions {
            projects: 2,
            environments: 12,
            seed: 7,
            ..curfew::sandbox::SandboxOptions::default()
        },
        std::sync::Arc::new(curfew::clock::SystemClock),
    );
    let name = fleet
        .environments()
        .into_iter()
        .find(|e| {
            e.mode == curfew::platform::Mode::Preview
                && ["DEPLOYED", "STOPPED"].contains(&e.state.as_str())
        })
        .map(|e| e.name)
        .expect("the fleet has a preview");
    let page = through(
        &client,
        prism_port,
        &format!("/api/strategies/dynamic?names={name}&theme=ghost&refresh_frequency=5s"),
    )
    .await;
    assert_eq!(
        (page.status, page.session.as_str()),
        (200, "not-ready"),
        "{}\n{}",
        page.body,
        curfew_log()
    );
    // Not ready within a second (the sandbox deploys in steps of 10 s): 504, not-ready.
    let late = through(
        &client,
        prism_port,
        &format!("/api/strategies/blocking?names={name}&timeout=1s"),
    )
    .await;
    assert_eq!(
        (late.status, late.session.as_str()),
        (504, "not-ready"),
        "{}",
        late.body
    );
    // Held until it serves.
    let woken = through(
        &client,
        prism_port,
        &format!("/api/strategies/blocking?names={name}&timeout=3m&session_duration=10m"),
    )
    .await;
    assert_eq!(
        (woken.status, woken.session.as_str()),
        (200, "ready"),
        "{}\n{}",
        woken.body,
        curfew_log()
    );
    let page = through(
        &client,
        prism_port,
        &format!("/api/strategies/dynamic?names={name}&display_name=Preview"),
    )
    .await;
    assert_eq!(
        (page.status, page.session.as_str()),
        (200, "ready"),
        "{}",
        page.body
    );
    // A group: the rule's previews (woken by this request, each through its flight).
    let group = through(
        &client,
        prism_port,
        "/api/strategies/blocking?group=previews&timeout=1s",
    )
    .await;
    assert!(
        [200, 504].contains(&group.status) && !group.session.is_empty(),
        "{}",
        group.body
    );
    // An unknown instance, an unknown group: RFC 7807 problems as described. (Not through
    // the dynamic strategy: its description gives it `text/html` alone and a Problem
    // object for 404, which no answer can satisfy at once; curfew answers a problem there,
    // as Sablier itself does.)
    for path in [
        "/api/strategies/blocking?names=no-such-environment",
        "/api/strategies/blocking?group=no-such-group",
    ] {
        let unknown = through(&client, prism_port, path).await;
        assert_eq!(unknown.status, 404, "{path}: {}", unknown.body);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
