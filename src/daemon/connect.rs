//! From the rule file's `platform:` settings to a running [`Platform`].
//!
//! `platform: sandbox` starts the sandbox in-process on a loopback port and points the
//! real Qovery adapter at it, so the demo exercises the same code path as production.
//! `platform: {kubernetes: …}` connects to a cluster, with a Lease election if asked.

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::settings::{KubernetesSettings, PlatformSettings};
use crate::platform::kubernetes::{
    self, Alone, Election, ElectionOptions, Kubernetes, KubernetesOptions, Leader, TrafficOptions,
};
use crate::platform::qovery::{Qovery, QoveryOptions, Token};
use crate::platform::{Operation, Platform, PlatformError, Prices, RequestObserver};
use crate::sandbox::{RunningSandbox, Sandbox, SandboxOptions};

/// A connected platform, and the sandbox behind it when there is one (kept alive here).
pub struct Connected {
    pub platform: Arc<dyn Platform>,
    pub sandbox: Option<(Sandbox, RunningSandbox)>,
    /// The Lease election when `platform.kubernetes.leader_election` is on: nobody takes
    /// or renews the lease until [`Election::run`] is spawned.
    pub election: Option<Election>,
    /// Which namespaces wake on request (Kubernetes): answered from the daemon's rules
    /// once the daemon exists ([`RulesInForce::follow`]).
    pub wake_routing: Option<Arc<RulesInForce>>,
}

/// The rules in force, as the Kubernetes adapter asks them: a namespace wakes on request
/// when the first rule that matches it says `wake_on_request: true` (as `decide` picks
/// the rule). Before the daemon is followed, and after it is gone, nothing does.
#[derive(Default)]
pub struct RulesInForce(std::sync::OnceLock<std::sync::Weak<crate::reconcile::Daemon>>);

impl RulesInForce {
    /// Answers from `daemon`'s rules from now on (a reload changes the answer).
    pub fn follow(&self, daemon: &Arc<crate::reconcile::Daemon>) {
        let _ = self.0.set(Arc::downgrade(daemon));
    }
}

impl kubernetes::WakeRouting for RulesInForce {
    fn wakes_on_request(&self, environment: &crate::platform::Environment) -> bool {
        let Some(daemon) = self.0.get().and_then(std::sync::Weak::upgrade) else {
            return false;
        };
        let rules = daemon.rules();
        rules
            .rules
            .iter()
            .find(|r| r.selector.matches(environment))
            .is_some_and(|r| r.wake_on_request)
    }

    fn extras(&self, environment: &crate::platform::Environment) -> kubernetes::Extras {
        let Some(daemon) = self.0.get().and_then(std::sync::Weak::upgrade) else {
            return kubernetes::Extras::default();
        };
        let rules = daemon.rules();
        rules
            .rules
            .iter()
            .find(|r| r.selector.matches(environment))
            .map(|r| r.extras.clone())
            .unwrap_or_default()
    }

    fn patched_kinds(&self) -> Vec<kubernetes::Target> {
        let Some(daemon) = self.0.get().and_then(std::sync::Weak::upgrade) else {
            return Vec::new();
        };
        let rules = daemon.rules();
        let mut kinds: Vec<kubernetes::Target> = Vec::new();
        for rule in &rules.rules {
            let services = rule
                .extras
                .release_load_balancers
                .then(kubernetes::Target::services);
            let patched = rule.extras.patches.iter().map(|p| p.target.clone());
            for kind in patched.chain(services) {
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        kinds
    }
}

fn failure(platform: &'static str, message: String) -> PlatformError {
    PlatformError {
        platform,
        operation: Operation::List,
        retryable: false,
        message,
    }
}

/// Why the Qovery API token could not be read: where curfew looked, never what it found.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the Qovery token file cannot be read: {0}")]
    File(#[source] crate::files::ReadError),
    #[error("the Qovery token file {} is empty", .0.display())]
    Empty(std::path::PathBuf),
    #[error(
        "the Qovery API token is not set: put it in the environment variable {0} (or name a file with platform.qovery.token_file)"
    )]
    NotSet(String),
}

/// Reads the API token from the environment variable or file the settings name (a regular
/// file of at most 64 KiB).
pub async fn read_token(
    settings: &crate::config::settings::QoverySettings,
    env: &HashMap<String, String>,
) -> Result<Token, TokenError> {
    if let Some(path) = &settings.token_file {
        let limits = crate::files::Limits::bytes(crate::files::TOKEN_FILE_MAX_BYTES);
        let text = crate::files::read(path, limits, "")
            .await
            .map_err(TokenError::File)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenError::Empty(path.clone()));
        }
        return Ok(Token::new(token));
    }
    match env.get(&settings.token_env).map(|t| t.trim()) {
        Some(t) if !t.is_empty() => Ok(Token::new(t)),
        _ => Err(TokenError::NotSet(settings.token_env.clone())),
    }
}

/// Connects to the configured platform.
pub async fn connect(
    settings: &PlatformSettings,
    prices: Prices,
    env: &HashMap<String, String>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<Connected, PlatformError> {
    match settings {
        PlatformSettings::Qovery(q) => {
            let token = read_token(q, env)
                .await
                .map_err(|e| failure("qovery", e.to_string()))?;
            let mut options = QoveryOptions::new(q.api_url.clone(), q.organization.clone(), token);
            options.max_concurrency = q.max_concurrency as usize;
            options.requests_per_second = q.requests_per_second;
            options.timeout = q.timeout;
            options.prices = prices;
            let platform = Qovery::new(options, observer)?;
            Ok(Connected {
                platform: Arc::new(platform),
                sandbox: None,
                election: None,
                wake_routing: None,
            })
        }
        PlatformSettings::Kubernetes(k) => {
            connect_kubernetes(k, prices, env, clock, observer).await
        }
        PlatformSettings::Sandbox(s) => {
            let token = format!("sandbox-{}", s.seed);
            let sandbox = Sandbox::new(
                SandboxOptions {
                    projects: s.projects,
                    environments: s.environments,
                    seed: s.seed,
                    token,
                    ..SandboxOptions::default()
                },
                clock,
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| {
                    failure(
                        "sandbox",
                        format!("cannot open a loopback port for the sandbox: {e}"),
                    )
                })?;
            let running = sandbox
                .clone()
                .spawn(listener)
                .await
                .map_err(|e| failure("sandbox", format!("cannot start the sandbox: {e}")))?;
            let mut options = QoveryOptions::new(
                running.url.clone(),
                running.organization_id.clone(),
                Token::new(running.token.clone()),
            );
            options.name = "sandbox";
            options.requests_per_second = 1000.0;
            options.prices = prices;
            let platform = Qovery::new(options, observer)?;
            Ok(Connected {
                platform: Arc::new(platform),
                sandbox: Some((sandbox, running)),
                election: None,
                wake_routing: None,
            })
        }
    }
}

/// This replica's name in the Lease and in Events: the pod's name (the Deployment sets
/// `POD_NAME` from the downward API; `HOSTNAME` is the pod's name too) and a random part,
/// so that a restarted container does not inherit its predecessor's lease.
fn identity(env: &HashMap<String, String>) -> String {
    let host = ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|k| env.get(*k).map(|v| v.trim()).filter(|v| !v.is_empty()))
        .unwrap_or("curfew");
    format!("{host}_{:08x}", rand::random::<u32>())
}

async fn connect_kubernetes(
    k: &KubernetesSettings,
    prices: Prices,
    env: &HashMap<String, String>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<Connected, PlatformError> {
    let client = kubernetes::client(k.context.as_deref(), k.timeout)
        .await
        .map_err(|e| failure("kubernetes", e.to_string()))?;
    let identity = identity(env);
    let election = k.leader_election.then(|| {
        let namespace = k
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        Election::new(
            client.clone(),
            ElectionOptions::new(namespace, k.lease_name.clone(), identity.clone()),
            clock.clone(),
        )
    });
    let leader: Arc<dyn Leader> = match &election {
        Some(e) => Arc::new(e.clone()),
        None => Arc::new(Alone),
    };
    // curfew's own namespace is never an environment: the pod's (the component sets
    // POD_NAMESPACE from the downward API), else the Lease's.
    let own_namespace = env
        .get("POD_NAMESPACE")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .or_else(|| k.lease_namespace.clone());
    let options = KubernetesOptions {
        namespace_selector: k.namespace_selector.clone(),
        project_label: k.project_label.clone(),
        mode_label: k.mode_label.clone(),
        default_mode: k.default_mode,
        cluster: k.cluster.clone(),
        max_concurrency: k.max_concurrency as usize,
        timeout: k.timeout,
        events: k.events,
        prices,
        traffic: k.traffic.as_ref().map(|t| TrafficOptions {
            prometheus_url: t.prometheus_url.clone(),
            query: t.query.clone(),
            namespace_label: t.namespace_label.clone(),
            lookback: t.lookback,
            min_rate: t.min_rate,
        }),
        identity,
        own_namespace,
        wake_service: k.wake_service.as_deref().cloned(),
        argocd_namespace: k.argocd_namespace.clone(),
        watch: true,
        scale_kinds: k.scale_kinds.to_vec(),
    };
    let platform = Kubernetes::new(client, options, clock, leader, observer)?;
    let routing = Arc::new(RulesInForce::default());
    platform.route_wakes(routing.clone());
    Ok(Connected {
        platform: Arc::new(platform),
        sandbox: None,
        election,
        wake_routing: Some(routing),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use super::RulesInForce;
    use crate::clock::ManualClock;
    use crate::ledger::Ledger;
    use crate::metrics::Metrics;
    use crate::platform::kubernetes::WakeRouting;
    use crate::platform::{Environment, Outcome, Platform, PlatformError, Snapshot};
    use crate::reconcile::{Daemon, DaemonOptions};

    struct Nothing;

    #[async_trait::async_trait]
    impl Platform for Nothing {
        fn name(&self) -> &'static str {
            "nothing"
        }
        async fn list(&self) -> Result<Snapshot, PlatformError> {
            Ok(Snapshot::default())
        }
        async fn stop(&self, _id: &str) -> Result<Outcome, PlatformError> {
            Ok(Outcome::Gone)
        }
        async fn start(&self, _id: &str) -> Result<Outcome, PlatformError> {
            Ok(Outcome::Gone)
        }
        async fn delete(&self, _id: &str) -> Result<Outcome, PlatformError> {
            Ok(Outcome::Gone)
        }
    }

    fn env(name: &str, project: &str) -> Environment {
        serde_json::from_value(serde_json::json!({
            "id": name, "name": name, "project": project, "mode": "preview",
            "state": "running", "created_at": "2026-11-01T00:00:00Z",
        }))
        .unwrap()
    }

    /// The first rule that matches decides, as in `decide`; a reload changes the answer.
    #[test]
    fn a_namespace_wakes_on_request_when_its_first_matching_rule_says_so() {
        let now = "2026-11-26T10:00:00Z".parse().unwrap();
        let rules = |yaml: &str| {
            Arc::new(
                crate::config::parse("curfew.yaml", yaml, &HashMap::new(), now)
                    .unwrap()
                    .rules,
            )
        };
        let daemon = Arc::new(Daemon::new(
            Arc::new(Nothing),
            Arc::new(Ledger::in_memory().unwrap()),
            Arc::new(Metrics::new("test", false)),
            Arc::new(ManualClock::new(now)),
            rules(
                "rules:\n  - name: shop\n    match: { project: shop }\n    stop_when_idle: 1h\n  - name: rest\n    stop_when_idle: 1h\n    wake_on_request: true\n",
            ),
            DaemonOptions {
                resync: Duration::from_secs(60),
                max_pass_age: Duration::from_secs(180),
                max_in_flight: 4,
            },
        ));
        let routing = RulesInForce::default();
        assert!(
            !routing.wakes_on_request(&env("pr-1", "web")),
            "not following yet"
        );
        routing.follow(&daemon);
        assert!(routing.wakes_on_request(&env("pr-1", "web")));
        assert!(
            !routing.wakes_on_request(&env("pr-2", "shop")),
            "its rule says nothing"
        );
        daemon.set_rules(rules("rules:\n  - name: rest\n    stop_when_idle: 1h\n"));
        assert!(!routing.wakes_on_request(&env("pr-1", "web")), "reloaded");
    }
}
