//! The files in `deploy/`, checked on every `cargo test` without outside tools: the
//! PrometheusRule carries exactly the alert rules of `deploy/prometheus`, every rule file
//! that ships validates, the dashboard names no datasource of its own and its panels do
//! not overlap, the compose stack mounts files that exist, and the image builds and runs
//! on the C library the tests and benchmarks run on.
//!
//! The tools that check the rest (promtool, a live Prometheus, kustomize and the
//! Kubernetes schemas) run in `tests/prometheus.rs` and `.ci/check_deploy.py`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ALERTS: &str = "deploy/prometheus/curfew-alerts.yaml";
const PROMETHEUS_RULE: &str = "deploy/kubernetes/base/prometheusrule.yaml";
const DASHBOARD: &str = "deploy/grafana/dashboards/curfew.json";
const COMPOSE: &str = "deploy/compose/compose.yaml";
const DOCKERFILE: &str = "Dockerfile";
const DAEMON_DOCS: &str = "docs/daemon.md";

/// Debian releases an image of curfew may be built on, each with the glibc it ships: its
/// codename (the official Rust images' suffix), its distroless suffix, its glibc.
const DEBIAN: &[(&str, &str, &str)] = &[
    ("bookworm", "debian12", "2.36"),
    ("trixie", "debian13", "2.41"),
];

fn repo(path: &str) -> PathBuf {
    Path::new(ROOT).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The PrometheusRule for the alert rules file `alerts`: its `groups:` and everything
/// after, comments included, become the resource's `spec`.
fn prometheus_rule(alerts: &str) -> String {
    let start = alerts
        .find("\ngroups:")
        .map(|i| i + 1)
        .expect("the alert rules start with `groups:`");
    let mut text = format!(
        "# Generated from {ALERTS} by `UPDATE_DEPLOY=1 cargo test --test deploy`:\n\
         # edit that file, not this one (tests/deploy.rs fails when the two differ).\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: curfew\n  labels:\n    app.kubernetes.io/name: curfew\n\
         spec:\n"
    );
    for line in alerts[start..].lines() {
        if !line.is_empty() {
            text.push_str("  ");
            text.push_str(line);
        }
        text.push('\n');
    }
    text
}

#[test]
fn the_prometheus_rule_carries_the_alert_rules_of_deploy_prometheus() {
    let want = prometheus_rule(&read(ALERTS));
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(repo(PROMETHEUS_RULE), &want).unwrap();
    }
    let have = std::fs::read_to_string(repo(PROMETHEUS_RULE)).unwrap_or_default();
    assert!(
        have == want,
        "{PROMETHEUS_RULE} is not the PrometheusRule of {ALERTS}: \
         regenerate it with `UPDATE_DEPLOY=1 cargo test --test deploy`"
    );
    // And as data, not only as text: the same groups, rules, labels and annotations.
    assert_eq!(yaml(PROMETHEUS_RULE)["spec"], yaml(ALERTS));
}

#[test]
fn every_rule_file_that_ships_validates() {
    for file in [
        "deploy/kubernetes/base/curfew.yaml",
        "deploy/kubernetes/overlays/example/curfew.yaml",
        "deploy/kubernetes/overlays/kubernetes-namespaces/curfew.yaml",
        "deploy/compose/rules/curfew.yaml",
    ] {
        let output = Command::new(CURFEW)
            .args(["validate", file])
            .current_dir(ROOT)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every panel of the dashboard, rows' panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    let mut todo: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = todo.pop() {
        todo.extend(panel["panels"].as_array().into_iter().flatten());
        all.push(panel);
    }
    all
}

#[test]
fn the_dashboard_queries_the_chosen_datasource_and_its_panels_do_not_overlap() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let datasource = serde_json::json!({ "type": "prometheus", "uid": "${datasource}" });
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
        "a datasource variable, so that no installation's datasource uid is baked in"
    );
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(variable["datasource"], datasource, "{}", variable["name"]);
    }

    let mut ids = HashSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "{title}: id reused"
        );
        let g = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap());
        assert!(x >= 0 && w > 0 && x + w <= 24 && h > 0, "{title}: {g}");
        for (other, [ox, oy, ow, oh]) in &boxes {
            let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((title.clone(), [x, y, w, h]));
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title}: say what the panel shows"
        );
        assert_eq!(panel["datasource"], datasource, "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(target["datasource"], datasource, "{title}");
            assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
}

/// The file on the host that a service sees at `inside`, through its bind mounts.
fn host_path(service: &Value, inside: &str) -> Option<PathBuf> {
    let compose_dir = repo(COMPOSE).parent().unwrap().to_path_buf();
    service["volumes"]
        .as_array()?
        .iter()
        .filter_map(|v| {
            let mut parts = v.as_str()?.split(':');
            let (host, target) = (parts.next()?, parts.next()?);
            let rest = inside.strip_prefix(target)?;
            host.starts_with('.')
                .then(|| compose_dir.join(host).join(rest.trim_start_matches('/')))
        })
        .next()
}

#[test]
fn the_compose_stack_mounts_files_that_exist() {
    let compose = yaml(COMPOSE);
    let services = compose["services"].as_object().unwrap();
    let compose_dir = repo(COMPOSE).parent().unwrap().to_path_buf();
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') {
                let path = compose_dir.join(host);
                assert!(path.exists(), "{name}: {} is missing", path.display());
            }
        }
    }
    let curfew = &services["curfew"];
    let context = compose_dir.join(curfew["build"]["context"].as_str().unwrap());
    assert!(context.join("Dockerfile").is_file());
    let args: Vec<&str> = curfew["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let rules = host_path(curfew, config).expect("the rule file is mounted");
    assert_eq!(rules, compose_dir.join("rules/curfew.yaml"));

    let grafana = &services["grafana"];
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    let home = host_path(grafana, home).expect("the home dashboard is mounted");
    assert!(home.is_file(), "{}", home.display());
    let provisioned = host_path(grafana, "/etc/grafana/provisioning/dashboards/curfew.yaml")
        .expect("the dashboard provider is mounted");
    let provider = std::fs::read_to_string(&provisioned).unwrap();
    let provider: Value = serde_saphyr::from_str(&provider).unwrap();
    let folder = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        host_path(grafana, &format!("{folder}/curfew.json")).is_some_and(|p| p.is_file()),
        "the provider's folder holds the dashboard"
    );
}

/// The image of each `FROM` line of the Dockerfile, in order.
fn stages(dockerfile: &str) -> Vec<&str> {
    dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// The glibc the build stage `image` links against: an official Rust image on a Debian
/// release (`rust:${RUST_VERSION}-slim-bookworm`), None for anything else.
fn build_glibc(image: &str) -> Option<&'static str> {
    let variant = image.strip_prefix("rust:${RUST_VERSION}-")?;
    let codename = variant.strip_prefix("slim-").unwrap_or(variant);
    DEBIAN.iter().find(|r| r.0 == codename).map(|r| r.2)
}

/// The glibc the runtime `image` carries: distroless with glibc and non-root
/// (`gcr.io/distroless/cc-debian12:nonroot`), None for anything else (`static-…` has none).
fn runtime_glibc(image: &str) -> Option<&'static str> {
    let release = image
        .strip_prefix("gcr.io/distroless/cc-")?
        .strip_suffix(":nonroot")?;
    DEBIAN.iter().find(|r| r.1 == release).map(|r| r.2)
}

/// The figures in docs/daemon.md, the release profile and the image are one binary: built
/// for glibc (whose allocator `src/memory.rs` tunes), on the Debian release whose glibc the
/// tests and benchmarks run on, and run on a distroless image with that same glibc. A
/// static musl build (what the image once shipped) has another allocator and no figures.
#[test]
fn the_image_builds_and_runs_on_the_libc_the_benchmarks_ran_on() {
    let dockerfile = read(DOCKERFILE);
    let stages = stages(&dockerfile);
    assert_eq!(stages.len(), 2, "a build stage and a runtime: {stages:?}");
    let (build, runtime) = (stages[0], stages[1]);
    let built_on = build_glibc(build).unwrap_or_else(|| {
        panic!("the build stage {build} is not an official Rust image on Debian (glibc)")
    });
    let runs_on = runtime_glibc(runtime).unwrap_or_else(|| {
        panic!("the runtime {runtime} is not distroless with glibc (cc-debianN:nonroot)")
    });
    assert_eq!(
        built_on, runs_on,
        "the binary is linked against glibc {built_on} and runs on glibc {runs_on}"
    );
    let here = curfew::memory::libc();
    assert_eq!(
        here,
        format!("glibc {built_on}"),
        "the tests and benchmarks run on {here}, the image on glibc {built_on}"
    );
    let docs = read(DAEMON_DOCS);
    assert!(
        docs.contains(&format!("glibc {built_on}")),
        "{DAEMON_DOCS} names the build its figures were measured on (glibc {built_on})"
    );
}

/// The image ships the build the benchmarks measure: the release profile as `Cargo.toml`
/// sets it. A `CARGO_PROFILE_*` override in the Dockerfile would change every symbol's
/// name (the profile is part of each crate's hash), so the code layout that build.rs hands
/// the linker (`link/symbol-order.txt`) would no longer apply to the image's binary.
#[test]
fn the_image_builds_the_release_profile_the_benchmarks_measure() {
    let dockerfile = read(DOCKERFILE);
    let commands: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        commands
            .iter()
            .any(|l| l.contains("cargo build --release --locked --bin curfew")),
        "the image builds with CI's command"
    );
    for line in &commands {
        assert!(
            !line.contains("CARGO_PROFILE_") && !line.contains("RUSTFLAGS"),
            "the Dockerfile overrides the release profile: {line}"
        );
    }
    // build.rs and the layout it reads are in the build context.
    let ignored = read(".dockerignore");
    for needed in ["build.rs", "link"] {
        assert!(
            !ignored
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| l.trim().trim_end_matches('/') == needed),
            ".dockerignore leaves out {needed}"
        );
    }
    assert!(repo("build.rs").is_file() && repo("link/symbol-order.txt").is_file());
}

#[test]
fn the_libc_check_tells_musl_static_and_mismatched_images_apart() {
    let build = [
        ("rust:${RUST_VERSION}-alpine", None),
        ("rust:${RUST_VERSION}-slim-bookworm", Some("2.36")),
        ("rust:${RUST_VERSION}-trixie", Some("2.41")),
        ("rust:1.95-slim-bookworm", None),
    ];
    for (image, glibc) in build {
        assert_eq!(build_glibc(image), glibc, "{image}");
    }
    let runtime = [
        ("gcr.io/distroless/static-debian12:nonroot", None),
        ("gcr.io/distroless/cc-debian12:nonroot", Some("2.36")),
        ("gcr.io/distroless/cc-debian13:nonroot", Some("2.41")),
        ("gcr.io/distroless/cc-debian12:latest", None),
    ];
    for (image, glibc) in runtime {
        assert_eq!(runtime_glibc(image), glibc, "{image}");
    }
}
