//! The command line as users and scripts call it: exit codes, output shapes.

use std::process::{Command, Output};

fn curfew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CURFEW_TIMEZONE")
        .output()
        .expect("the curfew binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn schedule_eval_prints_one_json_line_per_instant_and_exits_2_on_a_bad_spec() {
    let o = curfew(&[
        "schedule",
        "eval",
        "Mon-Fri 08:00-19:00",
        "--tz",
        "Europe/Paris",
        "--at",
        "2026-11-27T18:59:59+01:00",
        "--at",
        "2026-11-27T19:00:00+01:00",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "{\"at\":\"2026-11-27T18:59:59+01:00\",\"active\":true,\"next_change\":\"2026-11-27T19:00:00+01:00\"}\n\
         {\"at\":\"2026-11-27T19:00:00+01:00\",\"active\":false,\"next_change\":\"2026-11-30T08:00:00+01:00\"}\n"
    );
    let bad = curfew(&[
        "schedule",
        "eval",
        "Mno-Fri 08:00-19:00",
        "--at",
        "2026-11-27T19:00:00+01:00",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("unknown weekday \"Mno\" at column 1; expected Mon..Sun"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(
        curfew(&["schedule", "eval", "always", "--at", "now"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn schedule_timeline_lists_every_change_in_the_range() {
    let o = curfew(&[
        "schedule",
        "timeline",
        "Mon-Fri 08:00-19:00",
        "--tz",
        "Europe/Paris",
        "--from",
        "2026-11-27T00:00:00+01:00",
        "--to",
        "2026-11-30T23:00:00+01:00",
    ]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        [
            "{\"at\":\"2026-11-27T08:00:00+01:00\",\"active\":true}",
            "{\"at\":\"2026-11-27T19:00:00+01:00\",\"active\":false}",
            "{\"at\":\"2026-11-30T08:00:00+01:00\",\"active\":true}",
            "{\"at\":\"2026-11-30T19:00:00+01:00\",\"active\":false}",
        ]
    );
}

#[test]
fn duration_prints_seconds_or_an_error_per_argument() {
    let o = curfew(&["duration", "1d12h", "forever", "10x"]);
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "{\"input\":\"1d12h\",\"seconds\":129600}");
    assert_eq!(lines[1], "{\"input\":\"forever\",\"seconds\":null}");
    assert!(lines[2].starts_with("{\"input\":\"10x\",\"error\":\"invalid duration"));
    assert!(curfew(&["duration", "30s", "2w"]).status.success());
}

#[test]
fn validate_summarizes_a_good_file_and_lists_every_error_of_a_bad_one() {
    let good = curfew(&["validate", "config/previews-office-hours.yaml"]);
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(
        stdout(&good).starts_with("config/previews-office-hours.yaml: OK: 2 rules, 3 protections"),
        "{}",
        stdout(&good)
    );
    let json = curfew(&["validate", "config/previews-office-hours.yaml", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(v["rules"][0]["stop_when_idle"], 10800);
    assert_eq!(
        v["rules"][0]["schedule"],
        "run Mon-Fri 08:00-19:00 Europe/Paris"
    );
    let dir = std::env::temp_dir().join(format!("curfew-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_path = dir.join("bad.yaml");
    std::fs::write(
        &bad_path,
        "rules:\n  - name: a\n    run: Mno\n  - name: a\n    run: Sat\n",
    )
    .unwrap();
    let bad = curfew(&["validate", bad_path.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(
        err.contains("bad.yaml:3:10: rule \"a\" field `run`: unknown weekday \"Mno\""),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:4:11: rule \"a\" field `name`: duplicate rule name"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("2 errors"), "{err}");
}

#[test]
fn schema_is_valid_json_and_matches_the_checked_in_copy() {
    let o = curfew(&["schema"]);
    let stored = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/curfew.schema.json"
    ))
    .unwrap();
    assert_eq!(stdout(&o), stored);
    let v: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert!(v["properties"]["rules"].is_object());
}

/// The example snapshot decided on a Friday evening.
const PLAN_FRIDAY_EVENING: [&str; 7] = [
    "plan",
    "--config",
    "config/previews-office-hours.yaml",
    "--snapshot",
    "examples/snapshot.json",
    "--at",
    "2026-11-27T20:00:00+01:00",
];

#[test]
fn plan_explains_every_environment_of_a_snapshot() {
    let o = curfew(&PLAN_FRIDAY_EVENING);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{table}"))
            .to_string()
    };
    assert!(line("pr-1432-checkout").contains("stop"), "{table}");
    assert!(
        line("pr-1432-checkout")
            .contains("outside run Mon-Fri 08:00-19:00 Europe/Paris since 2026-11-27 19:00 CET"),
        "{table}"
    );
    assert!(
        line("main ").contains("production environments are protected"),
        "{table}"
    );
    assert!(
        line("feature-flags").contains("protected by protect[0]"),
        "{table}"
    );
    assert!(
        line("pr-1440-cart").contains("in state DEPLOYING"),
        "{table}"
    );
    assert!(line("pr-1390-legacy").contains("warn"), "{table}");
    assert!(
        line("pr-1433-search").contains("stopped, as wanted"),
        "{table}"
    );
    let json = curfew(&[&PLAN_FRIDAY_EVENING[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["decisions"].as_array().unwrap().len(), 7);
    assert_eq!(v["decisions"][0]["action"], "stop");
}

/// The rule file shown in the README is a valid one.
#[test]
fn the_readme_rule_file_validates() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("## A rule file\n\n```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README's rule file");
    let dir = std::env::temp_dir().join(format!("curfew-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yaml");
    std::fs::write(&file, block).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["validate", file.to_str().unwrap()])
        .env("QOVERY_API_TOKEN", "x")
        .env("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs curfew, killing it if it has not finished within a minute (a bound against
/// hanging for ever, not a speed goal).
fn curfew_bounded(args: &[&str]) -> Output {
    curfew_bounded_with(args, &[])
}

/// [`curfew_bounded`] with these variables set.
fn curfew_bounded_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CURFEW_TIMEZONE")
        .env_remove("CURFEW_ADMIN_TOKEN")
        .env_remove("CURFEW_LINK_KEY")
        .envs(vars.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the curfew binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("curfew {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The issue's probe: `curfew validate` on a FIFO hung for ever, and `curfew run` froze.
/// Both refuse anything but a regular file, and a rule file larger than the limit.
#[test]
fn a_rule_file_that_is_no_regular_file_or_too_large_is_refused_by_every_command() {
    let dir = std::env::temp_dir().join(format!("curfew-cli-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("rules.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["validate", fifo],
        vec!["run", "--config", fifo],
        vec![
            "plan",
            "--config",
            fifo,
            "--snapshot",
            "examples/snapshot.json",
        ],
    ] {
        let o = curfew_bounded(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&o).contains(&format!(
                "{fifo}: not a regular file but a FIFO (named pipe)"
            )),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let big = dir.join("big.yaml");
    std::fs::write(
        &big,
        format!(
            "rules:\n  - name: a\n    run: Sat\n# {}\n",
            "x".repeat(2000)
        ),
    )
    .unwrap();
    let big = big.to_str().unwrap();
    let refused = curfew_bounded(&["validate", big, "--max-rule-file-size", "1KiB"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("larger than 1 KiB: curfew reads at most that much; raise the limit with --max-rule-file-size"),
        "{}",
        stderr(&refused)
    );
    assert!(curfew_bounded(&["validate", big]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Names from the platform reach the terminal escaped: an environment named with a newline
/// and ESC cannot forge a row of `plan`'s table, nor colour the screen.
#[test]
fn plan_prints_names_from_the_platform_escaped() {
    let dir = std::env::temp_dir().join(format!("curfew-cli-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = dir.join("snapshot.json");
    std::fs::write(
        &snapshot,
        r#"{"complete": true, "environments": [
            {"id": "e1", "name": "pr-1\nmain  web  running  -  -  production environments are protected",
             "project": "web-shop\u001b[31m", "mode": "preview", "state": "running",
             "created_at": "2026-11-24T09:12:00Z"}]}"#,
    )
    .unwrap();
    let o = curfew(&[
        "plan",
        "--config",
        "config/previews-office-hours.yaml",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--at",
        "2026-11-27T20:00:00+01:00",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(!table.contains('\u{1b}'), "{table}");
    assert!(
        table.contains("pr-1\\nmain  web  running") && table.contains("web-shop\\u{1b}[31m"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A ledger gone where its marker says one was kept: `curfew run` refuses to start with a
/// fresh one, and says how to get one anyway.
#[test]
fn run_refuses_a_fresh_ledger_where_one_was_kept() {
    let dir = std::env::temp_dir().join(format!("curfew-cli-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ledger = dir.join("curfew.db");
    std::fs::write(
        dir.join("curfew.db.marker"),
        "created: 2026-11-01T00:00:00.000Z\n",
    )
    .unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "platform: sandbox\ndaemon:\n  listen: 127.0.0.1:0\n  ledger: {}\nrules:\n  - name: a\n    run: Sat\n",
            ledger.display()
        ),
    )
    .unwrap();
    let o = curfew_bounded(&["run", "--config", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("is gone, but")
            && err.contains("(created 2026-11-01T00:00:00.000Z)")
            && err.contains("--new-ledger"),
        "{err}"
    );
    assert!(!ledger.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `daemon.page: login` with nobody able to sign in (no admin token, no proxy) is refused
/// at start, naming what to set; so is a link key too short to be one (never shown).
#[test]
fn run_refuses_a_page_nobody_can_sign_in_to_and_a_short_link_key() {
    let dir = std::env::temp_dir().join(format!("curfew-cli-page-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rules = |page: &str| {
        let path = dir.join(format!("rules-{page}.yaml"));
        std::fs::write(
            &path,
            format!(
                "platform: sandbox\ndaemon:\n  listen: 127.0.0.1:0\n  ledger: {}\n  page: {page}\nrules:\n  - name: a\n    run: Sat\n",
                dir.join(format!("{page}.db")).display()
            ),
        )
        .unwrap();
        path
    };
    let login = rules("login");
    let o = curfew_bounded(&["run", "--config", login.to_str().unwrap(), "--new-ledger"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("daemon.page is login, but nobody can log in")
            && err.contains("CURFEW_ADMIN_TOKEN"),
        "{err}"
    );
    let read_only = rules("read-only");
    let o = curfew_bounded_with(
        &[
            "run",
            "--config",
            read_only.to_str().unwrap(),
            "--new-ledger",
        ],
        &[("CURFEW_LINK_KEY", "tiny-secret")],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("a link key is shorter than 32 characters") && !err.contains("tiny-secret"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bare `curfew plan` names both ways to plan; `--server` and `--config` together are
/// refused rather than one silently winning.
#[test]
fn a_bare_plan_names_the_daemon_and_the_file_ways() {
    let o = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .arg("plan")
        .env_remove("CURFEW_SERVER")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: ask a running daemon with --server URL (or set CURFEW_SERVER), or decide without one with --config FILE [--snapshot FILE]\n"
    );
    let both = curfew(&[
        "plan",
        "--server",
        "http://127.0.0.1:9",
        "--config",
        "config/sandbox.yaml",
    ]);
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("not both"), "{}", stderr(&both));
    // CURFEW_SERVER, set for the admin commands, does not get in the way of --config.
    let from_file = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(PLAN_FRIDAY_EVENING)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CURFEW_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(from_file.status.success(), "{}", stderr(&from_file));
}

/// `curfew simulate` over the docs' fortnight (examples/fortnight.*): Monday 19 October
/// 00:00 in Paris to Monday 2 November, across the night the clocks go back.
fn simulate(extra: &[&str]) -> Output {
    let mut args = vec![
        "simulate",
        "--config",
        "examples/fortnight.yaml",
        "--snapshot",
        "examples/fortnight.json",
        "--from",
        "2026-10-19T00:00:00+02:00",
        "--days",
        "14",
    ];
    args.extend(extra);
    curfew(&args)
}

#[test]
fn simulate_prints_json_for_scripts_and_the_daily_series_as_csv() {
    let o = simulate(&["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["to"], "2026-11-01T23:00:00Z");
    assert_eq!(p["currency"], "EUR");
    assert_eq!(p["total"]["saved"], 2289.5);
    assert_eq!(p["rules"][0]["rule"], "office");
    assert_eq!(p["rules"][0]["hours_running"], 330.0);
    assert_eq!(p["deletes"][0]["environment"], "spike-42");
    assert_eq!(p["deletes"][0]["at"], "2026-10-20T10:00:00Z");
    assert_eq!(p["untouched"][0]["protected"], true);
    assert!(p["assumptions"].as_array().unwrap().len() >= 5);

    let dir = std::env::temp_dir().join(format!("curfew-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("daily.csv");
    let o = simulate(&["--csv", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("RULE "), "the table still prints");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 14 * 3, "a header, then each day × rule");
    assert_eq!(
        lines[0],
        "date,rule,hours_running,hours_stopped,hours_deleted,always_on_cost,projected_cost,saved,currency,stops,starts,deletes"
    );
    assert!(
        lines.contains(&"2026-10-25,office,0.00,75.00,0.00,87.50,0.00,87.50,EUR,0,0,0"),
        "the Sunday the clocks go back has 25 hours: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // `-` prints the series alone.
    let o = simulate(&["--csv", "-"]);
    assert!(stdout(&o).starts_with("date,rule,"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("RULE "));
}

#[test]
fn simulate_against_an_older_file_names_who_is_stopped_differently() {
    let dir = std::env::temp_dir().join(format!("curfew-against-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("old.yaml");
    let text = std::fs::read_to_string("examples/fortnight.yaml").unwrap();
    std::fs::write(&old, text.replace("08:00-19:00", "08:00-20:00")).unwrap();
    let o = simulate(&["--against", old.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &v["comparison"];
    // An hour less each weekday for 3 environments costing 3.50 an hour in all.
    let delta = c["new"]["saved"].as_f64().unwrap() - c["old"]["saved"].as_f64().unwrap();
    assert!((delta - 35.0).abs() < 1e-9, "{delta}");
    let changed: Vec<&str> = c["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["environment"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["pr-102-search", "pr-101-cart", "pr-103-login"]);
    assert_eq!(
        c["environments"][0]["first_difference"][0]["at"],
        "2026-10-19T18:00:00Z"
    );
    assert!(v["projection"].get("per_environment").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn simulate_refuses_a_bad_instant_range_or_snapshot_with_a_clear_error() {
    let o = curfew(&[
        "simulate",
        "--config",
        "examples/fortnight.yaml",
        "--snapshot",
        "examples/fortnight.json",
        "--from",
        "monday",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--from \"monday\" is not an RFC 3339 instant with an offset"),
        "{}",
        stderr(&o)
    );
    let o = simulate(&["--days", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = curfew(&[
        "simulate",
        "--config",
        "examples/fortnight.yaml",
        "--snapshot",
        "examples/fortnight.yaml",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("examples/fortnight.yaml:1:1: not a snapshot"),
        "{}",
        stderr(&o)
    );
    let o = curfew(&[
        "simulate",
        "--config",
        "examples/fortnight.yaml",
        "--snapshot",
        "examples",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

#[test]
fn plan_warns_before_the_first_stop_which_owner_will_revert_it_under_the_rule_s_gitops() {
    let dir = std::env::temp_dir().join(format!("curfew-cli-reverters-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = dir.join("snapshot.json");
    std::fs::write(
        &snapshot,
        r#"{"complete": true, "environments": [
            {"id": "pr-1", "name": "pr-1", "mode": "preview", "state": "running",
             "created_at": "2026-11-24T09:12:00Z",
             "reverters": [{"owner": "Application argocd/shop-pr-1 (Argo CD automated sync with self-heal, within seconds)",
                            "paused_under": ["pause", "self-heal-only"]}]},
            {"id": "pr-2", "name": "pr-2", "mode": "preview", "state": "running",
             "created_at": "2026-11-24T09:12:00Z"}]}"#,
    )
    .unwrap();
    let plan = |gitops: &str, json: bool| {
        let rules = dir.join(format!("rules-{gitops}.yaml"));
        std::fs::write(
            &rules,
            format!("timezone: UTC\nrules:\n  - name: previews\n    match: {{ mode: preview }}\n    run: Mon-Fri 08:00-19:00\n    gitops: {gitops}\n"),
        )
        .unwrap();
        let mut args = vec![
            "plan",
            "--config",
            rules.to_str().unwrap(),
            "--snapshot",
            snapshot.to_str().unwrap(),
            // Wednesday noon: nothing is stopped yet.
            "--at",
            "2026-11-25T12:00:00Z",
        ];
        if json {
            args.push("--json");
        }
        let o = curfew(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let text = plan("off", false);
    assert!(
        text.ends_with(
            "\nwarnings, before the first stop:\n  pr-1: will be reverted by Application argocd/shop-pr-1 (Argo CD automated sync with self-heal, within seconds) unless gitops: pause or self-heal-only (rule \"previews\" has gitops: off)\n"
        ),
        "{text}"
    );
    assert!(!text.contains("pr-2:"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&plan("off", true)).unwrap();
    assert_eq!(json["warnings"][0]["environment"], "pr-1");
    // Paused by curfew under the default: nothing to warn about.
    assert!(!plan("pause", false).contains("warnings"));
}
