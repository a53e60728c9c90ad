//! The monitoring that ships in `deploy/`, proven with a real Prometheus.
//!
//! - `promtool` checks the alert rules and runs their unit tests, and checks the compose
//!   stack's Prometheus configuration.
//! - A live `curfew run` (the sandbox, a scaled clock) is scraped every second by a real
//!   `prometheus` that also loads the alert rules. Then `promtool check metrics` accepts
//!   curfew's exposition, every query of the Grafana dashboard (panels and variables)
//!   returns data through Prometheus' HTTP API, every alert expression is valid and
//!   evaluates without error, and the alerts that the run provokes fire while those it
//!   does not stay quiet.
//!
//! Needs Prometheus 2.x: `apt-get install prometheus` (Debian) gives both binaries. They
//! are found through `PROMETHEUS_BIN` and `PROMTOOL_BIN`, else on `PATH`. These tests are
//! ignored by a plain `cargo test`; run with `--ignored` (as `.ci/run` does), they fail,
//! not skip, when a binary is missing.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DASHBOARD: &str = "deploy/grafana/dashboards/curfew.json";
const ALERTS: &str = "deploy/prometheus/curfew-alerts.yaml";

/// How Grafana would fill the dashboard's variables for this test's Prometheus: the job
/// of the scrape config below, every rule, and intervals that fit a 1 s scrape.
const GRAFANA_VARIABLES: &[(&str, &str)] = &[
    ("job", "curfew"),
    ("rule", ".*"),
    ("__rate_interval", "10s"),
    ("__interval", "10s"),
    ("__range", "5m"),
];

/// The daemon's rule file: the sandbox, with schedules that flip every quarter of an hour
/// of its clock (1.5 s of real time at speed 600) whatever day the test runs, a stop cap
/// low enough to be hit, and deletes with a short warning.
const RULES: &str = r#"timezone: UTC
currency: EUR
platform:
  sandbox: { projects: 4, environments: 32, seed: 7 }
daemon:
  ledger: {ledger}
  resync: 1s
  per_environment_metrics: true
safety:
  max_stops_per_pass: 2
defaults:
  hourly_cost: 0.40
  prices: { vcpu_hour: 0.035, gib_hour: 0.005 }
rules:
  - name: previews
    match: { mode: preview }
    events: "stop=0,30 * * * *; start=15,45 * * * *"
    wake: all
    delete_after: 14d
    warn_before_delete: 1h
  - name: development
    match: { mode: development }
    events: "stop=10,40 * * * *; start=25,55 * * * *"
    wake: all
  - name: staging
    match: { mode: staging }
    stop_when_idle: 1h
"#;

/// A binary named by `var`, else found on `PATH`; a missing one fails the test.
fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: set {var} or install it (`apt-get install prometheus`)")
        })
}

fn repo(path: &str) -> PathBuf {
    Path::new(ROOT).join(path)
}

/// A folder of its own under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("curfew-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process whose output goes to a log file; killed on drop.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn spawn(command: &mut Command, log: PathBuf) -> Running {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Running { child, log }
    }

    /// The end of its log, for failure messages.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(command: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read_yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `$name` and `${name}` replaced as in [`GRAFANA_VARIABLES`]; an unknown variable fails.
fn substitute(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (braced, after) = match after.strip_prefix('{') {
            Some(inner) => (true, inner),
            None => (false, after),
        };
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..len];
        let value = GRAFANA_VARIABLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("unknown Grafana variable ${name} in {expr}"));
        out.push_str(value);
        rest = &after[len..];
        if braced {
            rest = rest
                .strip_prefix('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {expr}"));
        }
    }
    out.push_str(rest);
    out
}

/// One PromQL expression to run, and where it comes from.
struct Query {
    origin: String,
    expr: String,
}

/// Every query of the dashboard: each panel's targets, and each variable's
/// `label_values(SELECTOR, LABEL)`, run as `count by (LABEL) (SELECTOR)`.
fn dashboard_queries() -> Vec<Query> {
    let text = std::fs::read_to_string(repo(DASHBOARD)).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                origin: format!(
                    "panel {:?} target {}",
                    panel["title"].as_str().unwrap_or_default(),
                    target["refId"].as_str().unwrap_or_default()
                ),
                expr: substitute(target["expr"].as_str().expect("a target with expr")),
            });
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        // The query Grafana runs: a string, or an object holding it (newer exports).
        let definition = variable["query"]
            .as_str()
            .or(variable["query"]["query"].as_str())
            .unwrap_or_else(|| panic!("variable {}: no query", variable["name"]));
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: {definition}", variable["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        queries.push(Query {
            origin: format!("variable {}", variable["name"]),
            expr: substitute(&format!("count by ({}) ({selector})", label.trim())),
        });
    }
    assert!(queries.len() > 20, "the dashboard has its queries");
    queries
}

/// Every alerting rule's expression, by alert name.
fn alert_queries() -> Vec<Query> {
    let rules = read_yaml(ALERTS);
    let queries: Vec<Query> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| Query {
            origin: format!("alert {}", r["alert"].as_str().unwrap()),
            expr: r["expr"].as_str().unwrap().to_owned(),
        })
        .collect();
    assert_eq!(queries.len(), 8, "{ALERTS} has its eight alerts");
    queries
}

/// The metric names an expression reads (curfew's and the process collector's).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("curfew_") || word.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// A client of one Prometheus server's HTTP API.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// The result of an instant query; panics when Prometheus refuses it.
    async fn query(&self, q: &Query) -> Vec<Value> {
        let answer = self
            .get("/api/v1/query", &[("query", &q.expr)])
            .await
            .unwrap_or_else(|| panic!("{}: no answer for {}", q.origin, q.expr));
        assert_eq!(
            answer["status"], "success",
            "{}: {} was refused: {answer}",
            q.origin, q.expr
        );
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Alerting rules by name: (health, state, last error).
    async fn rules(&self) -> Vec<(String, String, String, String)> {
        let Some(answer) = self.get("/api/v1/rules", &[("type", "alert")]).await else {
            return Vec::new();
        };
        answer["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                (s("name"), s("health"), s("state"), s("lastError"))
            })
            .collect()
    }
}

async fn get_text(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Polls `check` every 200 ms until it returns `Ok`, or fails with its last `Err` once
/// `limit` has passed.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => {
                panic!("{what}: still not true after {limit:?}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[test]
#[ignore = "needs promtool; run by .ci/run"]
fn promtool_checks_the_alert_rules_runs_their_unit_tests_and_checks_the_compose_config() {
    let promtool = tool("PROMTOOL_BIN", "promtool");
    let checks: [(&str, &[&str]); 3] = [
        ("promtool check rules", &["check", "rules", ALERTS]),
        (
            "promtool test rules",
            &["test", "rules", "deploy/prometheus/curfew-alerts.test.yaml"],
        ),
        (
            "promtool check config",
            &["check", "config", "deploy/compose/prometheus.yml"],
        ),
    ];
    for (what, args) in checks {
        let output = run(Command::new(&promtool).args(args).current_dir(ROOT), None);
        assert_success(what, &output);
        println!("{what}: {}", String::from_utf8_lossy(&output.stdout).trim());
    }
}

#[tokio::test]
#[ignore = "needs prometheus; run by .ci/run"]
async fn every_dashboard_and_alert_query_works_against_a_live_daemon() {
    let prometheus_bin = tool("PROMETHEUS_BIN", "prometheus");
    let promtool = tool("PROMTOOL_BIN", "promtool");
    // Dropped last: the processes are killed before their folder goes.
    let dir = TempDir::new("prometheus");
    let rules_file = dir.0.join("rules.yaml");
    let good_rules = RULES.replace("{ledger}", &dir.0.join("ledger.db").display().to_string());
    std::fs::write(&rules_file, &good_rules).unwrap();

    let curfew_port = free_port();
    let curfew = Running::spawn(
        Command::new(CURFEW)
            .arg("run")
            .arg("--config")
            .arg(&rules_file)
            .args(["--clock-speed", "600", "--log-format", "json", "--listen"])
            .arg(format!("127.0.0.1:{curfew_port}")),
        dir.0.join("curfew.log"),
    );
    let curfew_url = format!("http://127.0.0.1:{curfew_port}");
    wait_for(Duration::from_secs(60), "curfew is ready", || async {
        match get_text(&format!("{curfew_url}/readyz")).await {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}\n{}", curfew.tail())),
        }
    })
    .await;

    let prometheus_port = free_port();
    let config = json!({
        "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
        "rule_files": [repo(ALERTS)],
        "scrape_configs": [{
            "job_name": "curfew",
            "static_configs": [{ "targets": [format!("127.0.0.1:{curfew_port}")] }],
        }],
    });
    // JSON is YAML: Prometheus reads it as it is.
    let config_file = dir.0.join("prometheus.yml");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let prometheus = Running::spawn(
        Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .arg("--log.level=warn"),
        dir.0.join("prometheus.log"),
    );
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{prometheus_port}"),
    };
    wait_for(Duration::from_secs(60), "prometheus is ready", || async {
        match get_text(&format!("{}/-/ready", api.base)).await {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}\n{}", prometheus.tail())),
        }
    })
    .await;

    // Prometheus has seen several passes.
    let passes = Query {
        origin: "passes".into(),
        expr: r#"sum(curfew_reconcile_total{job="curfew"}) >= 5"#.into(),
    };
    wait_for(
        Duration::from_secs(60),
        "five passes are scraped",
        || async {
            if api.query(&passes).await.is_empty() {
                Err(curfew.tail())
            } else {
                Ok(())
            }
        },
    )
    .await;

    // A broken rule file is rejected, then the good one is taken again: the reload
    // panels and CurfewConfigReloadFailing get something to show.
    let reloads = |result: &'static str| {
        let url = format!("{curfew_url}/metrics");
        async move {
            let series = format!("curfew_config_reloads_total{{result=\"{result}\"}}");
            match get_text(&url).await {
                Some((200, text)) if text.contains(&series) => Ok(()),
                _ => Err(format!("no {series} yet")),
            }
        }
    };
    std::fs::write(&rules_file, format!("{good_rules}  - name: [broken\n")).unwrap();
    wait_for(
        Duration::from_secs(30),
        "the broken file is rejected",
        || reloads("error"),
    )
    .await;
    std::fs::write(&rules_file, &good_rules).unwrap();
    wait_for(Duration::from_secs(30), "the good file is reloaded", || {
        reloads("ok")
    })
    .await;

    // (1) promtool accepts the exposition as curfew serves it.
    let (_, exposition) = get_text(&format!("{curfew_url}/metrics")).await.unwrap();
    let output = run(
        Command::new(&promtool).args(["check", "metrics"]),
        Some(&exposition),
    );
    assert_success("promtool check metrics", &output);
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // (2) Every dashboard query returns data, once the scaled clock has driven enough
    // passes, stops, starts, deletes, capped actions and savings through Prometheus.
    let dashboard = dashboard_queries();
    wait_for(
        Duration::from_secs(120),
        "every dashboard query returns data",
        || async {
            let mut empty = Vec::new();
            for q in &dashboard {
                if api.query(q).await.is_empty() {
                    empty.push(format!("{}: {}", q.origin, q.expr));
                }
            }
            if empty.is_empty() {
                Ok(())
            } else {
                Err(format!("empty:\n{}\n{}", empty.join("\n"), curfew.tail()))
            }
        },
    )
    .await;

    // Alert expressions may be empty on a healthy daemon, but each must be valid and read
    // only metrics that curfew really exports.
    let names = api
        .get("/api/v1/label/__name__/values", &[])
        .await
        .expect("metric names");
    let names: BTreeSet<String> = serde_json::from_value(names["data"].clone()).unwrap();
    for q in alert_queries().iter().chain(&dashboard) {
        api.query(q).await;
        for name in metric_names(&q.expr) {
            assert!(
                names.contains(&name),
                "{}: {name} is not exported by curfew",
                q.origin
            );
        }
    }

    // The loaded rules evaluate without error; the rejected reload fires its alert, a
    // cap hit on every pass makes CurfewCapsHit pending (it fires after 30 minutes), and
    // the daemon is neither down nor stuck.
    let expected: &[(&str, &[&str])] = &[
        ("CurfewDown", &["inactive"]),
        ("CurfewNoSuccessfulPass", &["inactive"]),
        ("CurfewActionsFailing", &["inactive"]),
        ("CurfewConfigReloadFailing", &["firing"]),
        ("CurfewCapsHit", &["pending"]),
        ("CurfewStopsReverted", &["inactive"]),
        ("CurfewWakesFailing", &["inactive"]),
    ];
    wait_for(
        Duration::from_secs(30),
        "the alerts are in their expected states",
        || async {
            let rules = api.rules().await;
            let mut wrong = Vec::new();
            for (name, health, state, error) in &rules {
                if health != "ok" {
                    wrong.push(format!("{name}: health {health}: {error}"));
                }
                if let Some((_, states)) = expected.iter().find(|(n, _)| n == name)
                    && !states.contains(&state.as_str())
                {
                    wrong.push(format!("{name}: {state}, expected {states:?}"));
                }
            }
            match (rules.len(), wrong.is_empty()) {
                (8, true) => Ok(()),
                (n, _) => Err(format!("{n} rules; {}", wrong.join("; "))),
            }
        },
    )
    .await;
    drop(prometheus);
    drop(curfew);
}
