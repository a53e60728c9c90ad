//! Wake on request against the fake API server: Ingresses and HTTPRoutes sent to curfew's
//! wake Service by a stop and restored exactly by a start, a person's edit in between left
//! alone, the ExternalName Service and the ReferenceGrant made and removed, and `serving`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::fake::{FakeApi, Fixture, deployment, http_route, ingress, namespace, stateful_set};
use super::{adapter_with, options, patched, validate_with_node};
use crate::platform::kubernetes::routes::{MANAGED_BY, grant_name};
use crate::platform::kubernetes::*;
use crate::platform::{Environment, Outcome, Platform, Serving};

/// The rules, as the daemon would answer: every environment wakes on request, or none.
pub(super) struct Rules(pub(super) bool);

impl WakeRouting for Rules {
    fn wakes_on_request(&self, _environment: &Environment) -> bool {
        self.0
    }
}

pub(super) fn wake() -> WakeService {
    WakeService::parse("curfew-wake.curfew:8080", "cluster.local").unwrap()
}

pub(super) fn waking(fake: &FakeApi, on: bool) -> Kubernetes {
    let mut o = options();
    o.wake_service = Some(wake());
    let k8s = adapter_with(fake, o, Arc::new(Alone));
    k8s.route_wakes(Arc::new(Rules(on)));
    k8s
}

/// pr-1: web (2 replicas), an Ingress with TLS, an HTTPRoute, the Gateway API installed.
pub(super) fn preview_with_routes(fake: &FakeApi) {
    fake.install_gateway_api();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 2));
    fake.put(ingress("pr-1", "web", "pr-1.preview.example.com", true));
    fake.put(http_route("pr-1", "web", "pr-1.gw.example.com"));
}

fn spec(fake: &FakeApi, resource: &str, name: &str) -> Value {
    fake.object(resource, "pr-1", name)["spec"].clone()
}

#[tokio::test]
async fn ingress_and_http_route_backends_are_sent_to_the_wake_service_and_restored_exactly() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    let k8s = waking(&fake, true);
    let (ingress_before, route_before) = (
        spec(&fake, "ingresses", "web"),
        spec(&fake, "httproutes", "web"),
    );

    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    let to_wake = json!({"service": {"name": LOCAL_WAKE_SERVICE, "port": {"number": 8080}}});
    let ing = spec(&fake, "ingresses", "web");
    for path in ing["rules"][0]["http"]["paths"].as_array().unwrap() {
        assert_eq!(path["backend"], to_wake);
    }
    assert_eq!(ing["tls"], ingress_before["tls"], "only backends change");
    assert_eq!(ing["rules"][0]["host"], "pr-1.preview.example.com");
    let route = spec(&fake, "httproutes", "web");
    assert_eq!(
        route["rules"][0]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "curfew-wake", "namespace": "curfew", "port": 8080}])
    );
    assert!(
        route["rules"][1].get("backendRefs").is_none(),
        "the redirect rule keeps no backend"
    );
    assert_eq!(
        route["rules"][1]["filters"],
        route_before["rules"][1]["filters"]
    );
    assert!(
        fake.annotation("ingresses", "pr-1", "web", ORIGINAL_BACKENDS)
            .is_some()
    );
    // The Ingress's ExternalName Service, and the HTTPRoute's ReferenceGrant, both curfew's.
    let service = fake.object("services", "pr-1", LOCAL_WAKE_SERVICE);
    assert_eq!(service["spec"]["type"], "ExternalName");
    assert_eq!(
        service["spec"]["externalName"],
        "curfew-wake.curfew.svc.cluster.local"
    );
    assert_eq!(service["metadata"]["labels"][MANAGED_BY.0], MANAGED_BY.1);
    let grant = fake.object("referencegrants", "curfew", &grant_name("pr-1"));
    assert_eq!(grant["spec"]["from"][0]["namespace"], "pr-1");
    assert_eq!(grant["spec"]["to"][0]["name"], "curfew-wake");
    let stopped = fake.events()[0]["note"].as_str().unwrap().to_string();
    assert!(
        stopped.contains("1 ingresses, 1 httproutes sent to curfew's wake Service"),
        "{stopped}"
    );

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    // The routes go back once the workloads serve (here: asked by the waiting page).
    fake.pods_ready("deployments", "pr-1", "web");
    assert!(k8s.serving("pr-1").await.unwrap().ready);
    assert_eq!(spec(&fake, "ingresses", "web"), ingress_before);
    assert_eq!(spec(&fake, "httproutes", "web"), route_before);
    assert_eq!(
        fake.annotation("ingresses", "pr-1", "web", ORIGINAL_BACKENDS),
        None
    );
    assert_eq!(
        fake.annotation("httproutes", "pr-1", "web", ORIGINAL_BACKENDS),
        None
    );
    assert!(
        fake.names("services", "pr-1").is_empty(),
        "the ExternalName Service is gone"
    );
    assert!(
        fake.names("referencegrants", "curfew").is_empty(),
        "the grant is gone"
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 2);
}

#[tokio::test]
async fn a_person_who_changed_a_route_while_asleep_keeps_their_change() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    let k8s = waking(&fake, true);
    k8s.stop("pr-1").await.unwrap();
    // Someone points the Ingress at a maintenance page while the preview sleeps.
    let theirs = json!({"service": {"name": "maintenance", "port": {"number": 80}}});
    let backend = theirs.clone();
    fake.store().edit("ingresses", "pr-1", "web", move |o| {
        o["spec"]["rules"][0]["http"]["paths"][0]["backend"] = backend;
    });
    let edited = spec(&fake, "ingresses", "web");

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    fake.pods_ready("deployments", "pr-1", "web");
    k8s.serving("pr-1").await.unwrap();
    assert_eq!(
        spec(&fake, "ingresses", "web"),
        edited,
        "their edit stays, whole"
    );
    assert_eq!(
        fake.annotation("ingresses", "pr-1", "web", ORIGINAL_BACKENDS),
        None
    );
    // The HTTPRoute nobody touched is restored.
    assert_eq!(
        spec(&fake, "httproutes", "web")["rules"][0]["backendRefs"][1]["name"],
        "web-canary"
    );
    let started = fake.events().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        started.contains("left as changed since the stop: ingresses/web"),
        "{started}"
    );
}

#[tokio::test]
async fn a_change_racing_the_swap_is_a_conflict_and_the_new_backends_are_the_ones_recorded() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    let k8s = waking(&fake, true);
    let mut raced = false;
    fake.on(move |seen, store| {
        if seen.verb() == "patch" && seen.resource == "ingresses" && !raced {
            raced = true;
            store.edit("ingresses", "pr-1", "web", |o| {
                o["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] =
                    json!("web-v2");
            });
        }
        super::fake::Then::Proceed
    });
    k8s.stop("pr-1").await.unwrap();
    let ingress_patches = patched(&fake)
        .iter()
        .filter(|p| p.as_str() == "ingresses/web")
        .count();
    assert_eq!(
        ingress_patches, 2,
        "refused once (409), then planned again on the new version"
    );
    k8s.start("pr-1").await.unwrap();
    fake.pods_ready("deployments", "pr-1", "web");
    k8s.serving("pr-1").await.unwrap();
    assert_eq!(
        spec(&fake, "ingresses", "web")["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-v2"
    );
}

#[tokio::test]
async fn without_wake_on_request_a_stop_leaves_routes_alone() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    let k8s = waking(&fake, false);
    k8s.stop("pr-1").await.unwrap();
    assert_eq!(patched(&fake), ["deployments/web"]);
    assert!(fake.names("services", "pr-1").is_empty());
    let k8s = adapter_with(&fake, options(), Arc::new(Alone));
    fake.forget_log();
    k8s.start("pr-1").await.unwrap();
    assert!(
        fake.log()
            .iter()
            .all(|s| !["ingresses", "httproutes", "services"].contains(&s.resource.as_str())),
        "no wake Service set: routes are never read"
    );
}

#[tokio::test]
async fn a_service_of_that_name_curfew_did_not_make_is_not_taken_over() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    fake.put(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": LOCAL_WAKE_SERVICE, "namespace": "pr-1"},
        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]},
    }));
    let k8s = waking(&fake, true);
    let err = k8s.stop("pr-1").await.unwrap_err();
    assert!(err.message.contains("that curfew did not make"), "{err}");
    assert_eq!(
        fake.annotation("ingresses", "pr-1", "web", ORIGINAL_BACKENDS),
        None
    );
    assert_eq!(
        fake.replicas("deployments", "pr-1", "web"),
        0,
        "the workloads still stop"
    );
    k8s.start("pr-1").await.unwrap();
    assert_eq!(
        fake.names("services", "pr-1"),
        [LOCAL_WAKE_SERVICE],
        "theirs stays"
    );
}

#[tokio::test]
async fn without_the_gateway_api_only_ingresses_are_swapped() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 1));
    fake.put(ingress("pr-1", "web", "pr-1.preview.example.com", false));
    let k8s = waking(&fake, true);
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert!(
        fake.annotation("ingresses", "pr-1", "web", ORIGINAL_BACKENDS)
            .is_some()
    );
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    fake.pods_ready("deployments", "pr-1", "web");
    assert!(k8s.serving("pr-1").await.unwrap().ready);
    assert_eq!(
        fake.annotation("ingresses", "pr-1", "web", ORIGINAL_BACKENDS),
        None
    );
}

/// Routes restored at the start would send readers to an app still warming up (its 503s):
/// they go back only once every workload the start scaled up has its ready replicas, by
/// the waiting page's `serving` or, with no request at all, a few seconds later by
/// themselves.
#[tokio::test(start_paused = true)]
async fn a_start_restores_the_routes_only_once_the_workloads_have_their_ready_replicas() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    let k8s = waking(&fake, true);
    let (ingress_before, route_before) = (
        spec(&fake, "ingresses", "web"),
        spec(&fake, "httproutes", "web"),
    );
    k8s.stop("pr-1").await.unwrap();
    let asleep = spec(&fake, "ingresses", "web");
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 2);
    assert_eq!(
        spec(&fake, "ingresses", "web"),
        asleep,
        "still the waiting page"
    );
    assert!(!k8s.serving("pr-1").await.unwrap().ready);
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    assert_eq!(
        spec(&fake, "ingresses", "web"),
        asleep,
        "no pod ready a minute later: still the waiting page"
    );
    assert_eq!(fake.names("services", "pr-1"), [LOCAL_WAKE_SERVICE]);
    fake.pods_ready("deployments", "pr-1", "web");
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(spec(&fake, "ingresses", "web"), ingress_before);
    assert_eq!(spec(&fake, "httproutes", "web"), route_before);
    assert!(fake.names("services", "pr-1").is_empty());
    let note = fake.events().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("its workloads serve again, so curfew sent its routes back: 1 ingresses, 1 httproutes restored"),
        "{note}"
    );
    assert!(k8s.serving("pr-1").await.unwrap().ready);
}

/// A namespace whose start scales nothing up (only routes were sent away) gets its routes
/// back at once.
#[tokio::test]
async fn a_start_with_nothing_to_warm_up_restores_the_routes_at_once() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(ingress("pr-1", "web", "pr-1.preview.example.com", false));
    let k8s = waking(&fake, true);
    let before = spec(&fake, "ingresses", "web");
    k8s.stop("pr-1").await.unwrap();
    assert_ne!(spec(&fake, "ingresses", "web"), before);
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(spec(&fake, "ingresses", "web"), before);
}

#[tokio::test]
async fn serving_is_ready_only_when_every_stopped_workload_has_its_ready_replicas_back() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    fake.put(stateful_set("pr-1", "db", 1));
    fake.put(deployment("pr-1", "pinned", 1).annotated(EXCLUDE, "true"));
    let k8s = waking(&fake, true);
    let url = Some("https://pr-1.preview.example.com/".to_string());
    assert_eq!(
        k8s.serving("pr-1").await,
        Ok(Serving {
            url: url.clone(),
            ready: true
        })
    );

    k8s.stop("pr-1").await.unwrap();
    assert!(!k8s.serving("pr-1").await.unwrap().ready, "asleep");
    k8s.start("pr-1").await.unwrap();
    // Scaled back up, no pod ready yet.
    assert_eq!(
        k8s.serving("pr-1").await,
        Ok(Serving {
            url: url.clone(),
            ready: false
        })
    );
    fake.pods_ready("deployments", "pr-1", "web");
    assert!(
        !k8s.serving("pr-1").await.unwrap().ready,
        "db not ready yet"
    );
    fake.pods_ready("statefulsets", "pr-1", "db");
    // `pinned` (excluded, never stopped) has no say.
    fake.store().edit("deployments", "pr-1", "pinned", |o| {
        o["status"]["readyReplicas"] = json!(0)
    });
    assert_eq!(k8s.serving("pr-1").await, Ok(Serving { url, ready: true }));
    assert_eq!(k8s.serving("pr-404").await, Ok(Serving::default()));
}

#[tokio::test]
async fn serving_names_an_http_route_s_host_when_there_is_no_ingress() {
    let fake = FakeApi::new();
    fake.install_gateway_api();
    fake.put(namespace("pr-1"));
    fake.put(http_route("pr-1", "web", "pr-1.gw.example.com"));
    let k8s = waking(&fake, true);
    assert_eq!(
        k8s.serving("pr-1").await.unwrap().url.as_deref(),
        Some("https://pr-1.gw.example.com/")
    );
    fake.put(ingress("pr-1", "plain", "pr-1.plain.example.com", false));
    assert_eq!(
        k8s.serving("pr-1").await.unwrap().url.as_deref(),
        Some("http://pr-1.plain.example.com/"),
        "an Ingress first; http without TLS for its host"
    );
}

#[tokio::test]
async fn the_fake_refuses_route_and_service_shapes_the_api_server_refuses() {
    let fake = FakeApi::new();
    fake.install_gateway_api();
    fake.put(namespace("pr-1"));
    fake.put(ingress("pr-1", "web", "h.example.com", false));
    fake.put(http_route("pr-1", "web", "h.example.com"));
    let client = fake.client();
    let patch = |resource: &'static str, body: Value| {
        let client = client.clone();
        async move {
            let path = match resource {
                "ingresses" => "/apis/networking.k8s.io/v1/namespaces/pr-1/ingresses".to_string(),
                _ => "/apis/gateway.networking.k8s.io/v1/namespaces/pr-1/httproutes".to_string(),
            };
            let request = kube::core::Request::new(path)
                .patch(
                    "web",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(body),
                )
                .unwrap();
            client.request::<Value>(request).await
        }
    };
    let refused = |r: Result<Value, kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("accepted: {other:?}"),
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "ingresses",
            json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80, "name": "http"}}}}]}}]}}),
            "cannot set both port name & port number",
        ),
        (
            "ingresses",
            json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {}}]}}]}}),
            "one of `service` or `resource` must be specified",
        ),
        (
            "ingresses",
            json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}}]}}]}}),
            "port name or number is required",
        ),
        (
            "ingresses",
            json!({"spec": {"rules": null}}),
            "either `defaultBackend` or `rules` must be specified",
        ),
        (
            "httproutes",
            json!({"spec": {"rules": [{"backendRefs": [{"name": "web"}]}]}}),
            "Must have port for Service reference",
        ),
        (
            "httproutes",
            json!({"spec": {"rules": [{"backendRefs": [{"name": "web", "port": 80, "namespace": "Not_A_Label"}]}]}}),
            "namespace: Invalid value",
        ),
    ];
    for (resource, body, message) in cases {
        let (code, text) = refused(patch(resource, body.clone()).await);
        assert_eq!(code, 422, "{body}");
        assert!(text.contains(message), "{body}: {text}");
    }
    // A stale resourceVersion is a conflict, as for every kind.
    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}});
    assert_eq!(refused(patch("ingresses", stale).await).0, 409);
    let service = |spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": spec});
    for (spec, message) in [
        (
            json!({"type": "ExternalName", "ports": [{"port": 80}]}),
            "spec.externalName: Required value",
        ),
        (
            json!({"type": "ExternalName", "externalName": "Bad_Name", "ports": [{"port": 80}]}),
            "a lowercase RFC 1123 subdomain",
        ),
        (
            json!({"type": "ExternalName", "externalName": "a.b", "ports": [{"port": 0}]}),
            "must be between 1 and 65535",
        ),
    ] {
        let request = kube::core::Request::new("/api/v1/namespaces/pr-1/services")
            .create(
                &kube::api::PostParams::default(),
                serde_json::to_vec(&service(spec)).unwrap(),
            )
            .unwrap();
        let (code, text) = refused(client.request::<Value>(request).await);
        assert_eq!(code, 422);
        assert!(text.contains(message), "{text}");
    }
}

#[test]
fn the_wake_service_setting_is_name_namespace_and_port() {
    assert_eq!(
        WakeService::parse(" curfew-wake.curfew:8080 ", "cluster.local"),
        Ok(WakeService {
            name: "curfew-wake".into(),
            namespace: "curfew".into(),
            port: 8080,
            cluster_domain: "cluster.local".into(),
        })
    );
    assert_eq!(wake().host(), "curfew-wake.curfew.svc.cluster.local");
    for wrong in [
        "curfew-wake:8080",
        "curfew-wake.curfew",
        "curfew-wake.curfew:0",
        "Wake.curfew:80",
        "a.b:http",
    ] {
        assert!(
            WakeService::parse(wrong, "cluster.local").is_err(),
            "{wrong}"
        );
    }
    assert!(WakeService::parse("a.b:80", "bad_domain").is_err());
}

#[tokio::test]
async fn the_shipped_admission_policy_admits_the_swap_and_refuses_other_route_and_service_writes() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    fake.admit_with(super::rules::shipped_policy(), super::rules::CURFEW);
    let k8s = waking(&fake, true);
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.names("services", "pr-1"), [LOCAL_WAKE_SERVICE]);
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    fake.pods_ready("deployments", "pr-1", "web");
    assert!(k8s.serving("pr-1").await.unwrap().ready);
    assert!(fake.names("services", "pr-1").is_empty());

    let client = fake.client();
    let refused = |r: Result<Value, kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("admitted: {other:?}"),
    };
    // The Ingress's TLS is not curfew's to change.
    let request = kube::core::Request::new("/apis/networking.k8s.io/v1/namespaces/pr-1/ingresses")
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"tls": null}})),
        )
        .unwrap();
    let (code, message) = refused(client.request::<Value>(request).await);
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("backends of Ingresses and HTTPRoutes"),
        "{message}"
    );
    // Nor is any Service but its ExternalName curfew-wake.
    let other = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "ExternalName", "externalName": "evil.example.com", "ports": [{"port": 80}]}});
    let request = kube::core::Request::new("/api/v1/namespaces/pr-1/services")
        .create(
            &kube::api::PostParams::default(),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
    let (code, message) = refused(client.request::<Value>(request).await);
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("only its ExternalName Service curfew-wake"),
        "{message}"
    );
}

/// The HTTPRoute as curfew leaves it asleep, and the ReferenceGrant it makes, against the
/// Gateway API's CRD schemas (.ci/kubernetes/validate-gateway.mjs, from npm).
#[tokio::test]
#[ignore = "needs node and `npm install` in .ci/kubernetes (.ci/run does both)"]
async fn what_curfew_writes_for_http_routes_passes_the_gateway_api_schemas() {
    let fake = FakeApi::new();
    preview_with_routes(&fake);
    waking(&fake, true).stop("pr-1").await.unwrap();
    let objects = json!([
        fake.object("httproutes", "pr-1", "web"),
        fake.object("referencegrants", "curfew", &grant_name("pr-1")),
    ]);
    let (passed, text) = validate_with_node("validate-gateway.mjs", &objects);
    assert!(passed, "{text}");
    assert_eq!(text.matches("ok    ").count(), 2, "{text}");
}
