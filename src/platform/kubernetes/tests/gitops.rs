//! GitOps-aware sleep against the fake API server: an Argo CD Application with self-heal
//! puts a stop back unless curfew paused it; pausing and resuming Applications, Flux
//! Kustomizations and HelmReleases exactly; a person's change in between left alone.

use serde_json::{Value, json};

use super::fake::{
    FakeApi, Fixture, Then, application, deployment, helm_release, kustomization, namespace,
    scaled_object,
};
use super::{adapter, listed, patched, validate_with_node};
use crate::platform::kubernetes::gitops::{OwnerKind, OwnerRef, owners_of};
use crate::platform::kubernetes::workload::Workload;
use crate::platform::kubernetes::{
    ARGOCD_INSTANCE, KEDA_PAUSED_REPLICAS, ORIGINAL_GITOPS, ORIGINAL_REPLICAS, PERMISSIONS,
    STOPPED_AT,
};
use crate::platform::{GitOps, Outcome, Platform};

/// pr-1 deployed by the Argo CD Application `shop-pr-1` (automated sync, self-heal or
/// not): web (3 replicas) and worker (1), both from git.
fn argo_preview(fake: &FakeApi, self_heal: bool) {
    fake.put(namespace("pr-1"));
    fake.put(application("shop-pr-1", "pr-1", self_heal));
    fake.put_from_git(deployment("pr-1", "web", 3).tracked_by("shop-pr-1"));
    fake.put_from_git(deployment("pr-1", "worker", 1).tracked_by("shop-pr-1"));
}

/// Flux's previews of pr-1 besides what is there: api (2 replicas) from the Kustomization
/// `api`, db (1) from the HelmRelease `db`, both in `flux-system`.
fn flux_preview(fake: &FakeApi, api: &str, db: &str) {
    fake.put(kustomization(api, "pr-1"));
    fake.put(helm_release(db, "pr-1"));
    let flux = |d: Value, prefix: &str, name: &str| {
        d.labelled(&format!("{prefix}/name"), name)
            .labelled(&format!("{prefix}/namespace"), "flux-system")
    };
    fake.put(flux(
        deployment("pr-1", "api", 2),
        "kustomize.toolkit.fluxcd.io",
        api,
    ));
    fake.put(flux(
        deployment("pr-1", "db", 1),
        "helm.toolkit.fluxcd.io",
        db,
    ));
}

fn sync_policy(fake: &FakeApi) -> Value {
    fake.object("applications", "argocd", "shop-pr-1")["spec"]["syncPolicy"].clone()
}

#[tokio::test]
async fn an_application_with_self_heal_puts_a_stop_back_unless_curfew_paused_it() {
    // gitops: off — Argo CD's self-heal scales web straight back to git's 3.
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    let k8s = adapter(&fake);
    k8s.stop_under("pr-1", GitOps::Off).await.unwrap();
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 3);
    assert_eq!(fake.replicas("deployments", "pr-1", "worker"), 1);
    assert!(
        !patched(&fake)
            .iter()
            .any(|p| p.starts_with("applications/")),
        "gitops: off writes no Application"
    );
    // The listing names who put it back (managedFields), and the owner.
    let env = listed(&k8s, "pr-1").await;
    let state = env.platform_state.as_deref().unwrap();
    assert!(
        state.contains("deployments/web scaled back to 3 by argocd-controller (Update)"),
        "{state}"
    );
    let owners = env.owners.as_deref().unwrap();
    assert!(
        owners.starts_with("Application argocd/shop-pr-1 (automated sync with self-heal"),
        "{owners}"
    );
    // Reported as a revert, naming Argo CD's field manager.
    let revert = env
        .reverted
        .as_deref()
        .expect("the listing reports the revert");
    assert_eq!(&*revert.by, "argocd-controller (Update)");

    // gitops: pause — the Application is paused first, and the stop holds.
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    let k8s = adapter(&fake);
    assert_eq!(
        k8s.stop_under("pr-1", GitOps::Pause).await,
        Ok(Outcome::Accepted)
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
    assert_eq!(fake.replicas("deployments", "pr-1", "worker"), 0);
    assert_eq!(
        patched(&fake)[0],
        "applications/shop-pr-1",
        "paused before any workload is scaled"
    );
    assert!(sync_policy(&fake).get("automated").is_none());
    assert_eq!(
        fake.annotation("applications", "argocd", "shop-pr-1", ORIGINAL_GITOPS)
            .as_deref(),
        Some(r#"{"prune":true,"selfHeal":true}"#)
    );
    let note = fake.events().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("GitOps: paused Application argocd/shop-pr-1"),
        "{note}"
    );
}

#[tokio::test]
async fn an_application_paused_stopped_and_started_is_restored_exactly() {
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    let before = fake.object("applications", "argocd", "shop-pr-1");
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    // A second stop changes nothing: already paused, already at zero.
    fake.forget_log();
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::AlreadyThereOrBusy));
    assert!(patched(&fake).is_empty(), "{:?}", patched(&fake));

    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    let after = fake.object("applications", "argocd", "shop-pr-1");
    assert_eq!(after["spec"], before["spec"], "the spec exactly as it was");
    assert_eq!(
        after["metadata"]
            .get("annotations")
            .cloned()
            .unwrap_or(json!({})),
        json!({}),
        "curfew's record is gone"
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 3);
    assert_eq!(fake.replicas("deployments", "pr-1", "worker"), 1);
    // Self-heal is back: a change is synced back to git again.
    fake.scale("deployments", "pr-1", "web", 1);
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 3);
}

#[tokio::test]
async fn a_person_who_turns_sync_back_on_while_stopped_keeps_their_setting() {
    let fake = FakeApi::new();
    argo_preview(&fake, false);
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    assert!(sync_policy(&fake).get("automated").is_none());
    // Someone turns automated sync back on, with self-heal this time.
    fake.store()
        .edit("applications", "argocd", "shop-pr-1", |o| {
            o["spec"]["syncPolicy"]["automated"] = json!({"selfHeal": true});
        });
    k8s.start("pr-1").await.unwrap();
    assert_eq!(
        sync_policy(&fake)["automated"],
        json!({"selfHeal": true}),
        "their value stays"
    );
    assert_eq!(
        fake.annotation("applications", "argocd", "shop-pr-1", ORIGINAL_GITOPS),
        None
    );
    assert_eq!(
        fake.annotation("applications", "argocd", "shop-pr-1", STOPPED_AT),
        None
    );
}

#[tokio::test]
async fn self_heal_only_pauses_an_application_with_self_heal_and_leaves_the_others() {
    let fake = FakeApi::new();
    argo_preview(&fake, false);
    let k8s = adapter(&fake);
    k8s.stop_under("pr-1", GitOps::SelfHealOnly).await.unwrap();
    assert_eq!(
        sync_policy(&fake)["automated"],
        json!({"prune": true, "selfHeal": false}),
        "no self-heal: left alone"
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);

    let fake = FakeApi::new();
    argo_preview(&fake, true);
    let k8s = adapter(&fake);
    k8s.stop_under("pr-1", GitOps::SelfHealOnly).await.unwrap();
    assert!(sync_policy(&fake).get("automated").is_none());
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
}

#[tokio::test]
async fn a_flux_kustomization_and_helm_release_are_suspended_and_resumed_exactly() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    flux_preview(&fake, "shop-pr-1", "db-pr-1");
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    let spec =
        |resource: &str, name: &str| fake.object(resource, "flux-system", name)["spec"].clone();
    assert_eq!(spec("kustomizations", "shop-pr-1")["suspend"], json!(true));
    assert_eq!(spec("helmreleases", "db-pr-1")["suspend"], json!(true));
    assert_eq!(
        fake.annotation(
            "kustomizations",
            "flux-system",
            "shop-pr-1",
            ORIGINAL_GITOPS
        )
        .as_deref(),
        Some("null"),
        "suspend was unset"
    );
    assert_eq!(
        fake.annotation("helmreleases", "flux-system", "db-pr-1", ORIGINAL_GITOPS)
            .as_deref(),
        Some("false")
    );
    k8s.start("pr-1").await.unwrap();
    assert!(
        spec("kustomizations", "shop-pr-1").get("suspend").is_none(),
        "unset again, not false"
    );
    assert_eq!(spec("helmreleases", "db-pr-1")["suspend"], json!(false));
    assert_eq!(fake.replicas("deployments", "pr-1", "api"), 2);
    assert_eq!(fake.replicas("deployments", "pr-1", "db"), 1);
}

#[tokio::test]
async fn an_application_of_that_name_deploying_elsewhere_is_not_paused() {
    // Label tracking: Helm sets app.kubernetes.io/instance to its release name, which may
    // name an unrelated Application.
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(application("web", "production", true));
    fake.put(deployment("pr-1", "web", 2).labelled(ARGOCD_INSTANCE, "web"));
    let k8s = adapter(&fake);
    k8s.stop("pr-1").await.unwrap();
    assert!(sync_policy_of(&fake, "web").get("automated").is_some());
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
}

fn sync_policy_of(fake: &FakeApi, app: &str) -> Value {
    fake.object("applications", "argocd", app)["spec"]["syncPolicy"].clone()
}

#[tokio::test]
async fn without_argo_cd_or_flux_installed_a_stop_goes_on() {
    let fake = FakeApi::new();
    fake.store().not_installed = vec!["applications".into(), "kustomizations".into()];
    fake.put(namespace("pr-1"));
    fake.put(
        deployment("pr-1", "web", 2)
            .tracked_by("shop-pr-1")
            .labelled("kustomize.toolkit.fluxcd.io/name", "shop")
            .labelled("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
    );
    let k8s = adapter(&fake);
    assert_eq!(listed(&k8s, "pr-1").await.owners, None);
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
}

#[tokio::test]
async fn an_owner_that_cannot_be_paused_stops_nothing() {
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    fake.on(|seen, _| {
        if seen.resource == "applications" && seen.verb() == "patch" {
            return super::fake::Then::Fail(403, "applications.argoproj.io is forbidden");
        }
        super::fake::Then::Proceed
    });
    let k8s = adapter(&fake);
    let e = k8s.stop("pr-1").await.unwrap_err();
    assert!(
        e.message
            .contains("GitOps owner not paused (Application argocd/shop-pr-1: 403"),
        "{}",
        e.message
    );
    assert!(!e.retryable);
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 3);
    assert_eq!(
        fake.annotation("deployments", "pr-1", "web", ORIGINAL_REPLICAS),
        None
    );
}

#[tokio::test]
async fn the_listing_says_when_an_application_set_would_undo_the_pause() {
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    fake.store()
        .edit("applications", "argocd", "shop-pr-1", |o| {
            o["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
                "name": "previews", "uid": "uid-previews", "controller": true,
            }]);
        });
    let env = listed(&adapter(&fake), "pr-1").await;
    let owners = env.owners.unwrap();
    assert!(
        owners.contains(
            "generated by ApplicationSet previews, whose controller puts its sync policy back unless the ApplicationSet sets ignoreApplicationDifferences with jsonPointers [/spec/syncPolicy]"
        ),
        "{owners}"
    );
    // It reverts a stop whatever the rule's gitops: says (plan warns).
    assert_eq!(env.reverters.len(), 1);
    assert!(env.reverters[0].paused_under.is_empty());
}

#[tokio::test]
async fn the_listing_names_each_owner_that_would_revert_a_stop_and_under_which_settings_curfew_pauses_it()
 {
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    flux_preview(&fake, "api-pr-1", "db-pr-1");
    // KEDA is always paused: never a reverter.
    fake.put(scaled_object("pr-1", "web", "web"));
    let k8s = adapter(&fake);
    let reverters = |env: &crate::platform::Environment| -> Vec<(String, Vec<GitOps>)> {
        let mut r: Vec<_> = env
            .reverters
            .iter()
            .map(|r| (r.owner.to_string(), r.paused_under.clone()))
            .collect();
        r.sort_by(|a, b| a.0.cmp(&b.0));
        r
    };
    let both = vec![GitOps::Pause, GitOps::SelfHealOnly];
    assert_eq!(
        reverters(&listed(&k8s, "pr-1").await),
        [
            (
                "Application argocd/shop-pr-1 (Argo CD automated sync with self-heal, within seconds)".to_string(),
                both.clone()
            ),
            (
                "HelmRelease flux-system/db-pr-1 (Flux, at its next upgrade)".to_string(),
                vec![GitOps::Pause]
            ),
            (
                "Kustomization flux-system/api-pr-1 (Flux drift correction, at its next reconcile)".to_string(),
                both
            ),
        ]
    );
    // Paused by curfew's stop, they revert nothing while it sleeps.
    k8s.stop_under("pr-1", GitOps::Pause).await.unwrap();
    assert_eq!(reverters(&listed(&k8s, "pr-1").await), []);
}

#[tokio::test]
async fn the_owners_are_listed_in_pages_and_one_on_a_later_page_is_found() {
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    // 600 Applications sort before `shop-pr-1`: it is on the second page of 500.
    for i in 0..600 {
        fake.put(application(
            &format!("app-{i:04}"),
            &format!("other-{i}"),
            false,
        ));
    }
    let owners = listed(&adapter(&fake), "pr-1").await.owners.unwrap();
    assert!(
        owners.starts_with("Application argocd/shop-pr-1 (automated sync with self-heal"),
        "{owners}"
    );
    let lists: Vec<_> = fake
        .log()
        .into_iter()
        .filter(|s| s.resource == "applications" && s.verb() == "list")
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert_eq!(lists[0].query.get("limit").map(String::as_str), Some("500"));
    assert!(lists[1].query.contains_key("continue"), "{lists:?}");
}

#[tokio::test]
async fn a_list_of_owners_whose_continue_token_expired_starts_again() {
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    for i in 0..600 {
        fake.put(application(
            &format!("app-{i:04}"),
            &format!("other-{i}"),
            false,
        ));
    }
    let mut first = true;
    fake.on(move |seen, store| {
        if seen.resource == "applications"
            && seen.query.contains_key("continue")
            && std::mem::take(&mut first)
        {
            store.compact();
        }
        Then::Proceed
    });
    let owners = listed(&adapter(&fake), "pr-1").await.owners.unwrap();
    assert!(
        owners.starts_with("Application argocd/shop-pr-1"),
        "{owners}"
    );
    let firsts = fake
        .log()
        .into_iter()
        .filter(|s| s.resource == "applications" && s.verb() == "list")
        .filter(|s| !s.query.contains_key("continue"))
        .count();
    assert_eq!(firsts, 2, "the list started again once");
}

#[test]
fn owners_are_found_by_both_of_argo_cds_tracking_methods_and_by_fluxs_labels() {
    let with = |labels: &[(&str, &str)], annotations: &[(&str, &str)]| {
        let mut w = Workload::from_deployment(&Default::default());
        w.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        w.annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        w
    };
    let owner = |kind, namespace: &str, name: &str| OwnerRef {
        kind,
        namespace: namespace.into(),
        name: name.into(),
    };
    let cases = [
        (
            with(&[(ARGOCD_INSTANCE, "shop")], &[]),
            vec![owner(OwnerKind::Application, "argocd", "shop")],
        ),
        (
            // The annotation wins over the label (Helm's release name).
            with(
                &[(ARGOCD_INSTANCE, "release")],
                &[(
                    "argocd.argoproj.io/tracking-id",
                    "shop:apps/Deployment:pr-1/web",
                )],
            ),
            vec![owner(OwnerKind::Application, "argocd", "shop")],
        ),
        (
            // Applications in any namespace: `NAMESPACE_NAME`.
            with(
                &[],
                &[(
                    "argocd.argoproj.io/tracking-id",
                    "team-a_shop:apps/Deployment:pr-1/web",
                )],
            ),
            vec![owner(OwnerKind::Application, "team-a", "shop")],
        ),
        (
            with(
                &[
                    ("kustomize.toolkit.fluxcd.io/name", "apps"),
                    ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
                    ("helm.toolkit.fluxcd.io/name", "db"),
                    ("helm.toolkit.fluxcd.io/namespace", "team-a"),
                ],
                &[],
            ),
            vec![
                owner(OwnerKind::Kustomization, "flux-system", "apps"),
                owner(OwnerKind::HelmRelease, "team-a", "db"),
            ],
        ),
        // A name without its namespace label names nothing.
        (
            with(&[("kustomize.toolkit.fluxcd.io/name", "apps")], &[]),
            vec![],
        ),
    ];
    for (workload, want) in cases {
        let got: Vec<OwnerRef> = owners_of(std::slice::from_ref(&workload), "argocd")
            .into_iter()
            .collect();
        assert_eq!(
            got, want,
            "{:?} {:?}",
            workload.labels, workload.annotations
        );
    }
}

#[test]
fn the_owner_permissions_are_in_the_table() {
    for kind in OwnerKind::ALL {
        for verb in ["list", "get", "patch"] {
            assert!(
                PERMISSIONS.contains(&(kind.group(), kind.plural(), verb)),
                "{kind:?} {verb}"
            );
        }
    }
}

#[tokio::test]
async fn a_keda_scaled_object_is_paused_at_zero_while_stopped_and_resumed_exactly() {
    let fake = FakeApi::new();
    fake.put(namespace("pr-1"));
    fake.put(deployment("pr-1", "web", 2));
    fake.put(deployment("pr-1", "worker", 1));
    fake.put(scaled_object("pr-1", "web", "web"));
    // A person already holds `worker` at 1 with KEDA's own pause.
    fake.put(scaled_object("pr-1", "worker", "worker").annotated(KEDA_PAUSED_REPLICAS, "1"));
    // One scaling a workload of another name is not this stop's business.
    fake.put(scaled_object("pr-1", "other", "elsewhere"));
    let k8s = adapter(&fake);
    // Whatever the rule says of GitOps tools: KEDA is paused.
    k8s.stop_under("pr-1", GitOps::Off).await.unwrap();
    let paused = |name: &str| fake.annotation("scaledobjects", "pr-1", name, KEDA_PAUSED_REPLICAS);
    assert_eq!(paused("web").as_deref(), Some("0"));
    assert_eq!(paused("worker").as_deref(), Some("0"));
    assert_eq!(paused("other"), None);
    assert_eq!(
        fake.annotation("scaledobjects", "pr-1", "worker", ORIGINAL_GITOPS)
            .as_deref(),
        Some(r#""1""#)
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 0);
    k8s.start("pr-1").await.unwrap();
    assert_eq!(paused("web"), None, "KEDA scales it again");
    assert_eq!(
        paused("worker").as_deref(),
        Some("1"),
        "the person's pause is back"
    );
    assert_eq!(
        fake.annotation("scaledobjects", "pr-1", "web", ORIGINAL_GITOPS),
        None
    );
    assert_eq!(fake.replicas("deployments", "pr-1", "web"), 2);
}

#[tokio::test]
async fn the_shipped_admission_policy_admits_the_pauses_and_refuses_any_other_change_to_an_owner() {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};

    use super::rules::{CURFEW, shipped_policy};

    let fake = FakeApi::new();
    argo_preview(&fake, true);
    fake.put(scaled_object("pr-1", "web", "web"));
    fake.put(namespace("pr-2"));
    fake.put(kustomization("shop-pr-2", "pr-2"));
    fake.put(
        deployment("pr-2", "web", 2)
            .labelled("kustomize.toolkit.fluxcd.io/name", "shop-pr-2")
            .labelled("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
    );
    let before = fake.object("applications", "argocd", "shop-pr-1");
    fake.admit_with(shipped_policy(), CURFEW);
    let k8s = adapter(&fake);
    assert_eq!(k8s.stop("pr-1").await, Ok(Outcome::Accepted));
    assert!(sync_policy(&fake).get("automated").is_none());
    assert_eq!(
        fake.annotation("scaledobjects", "pr-1", "web", KEDA_PAUSED_REPLICAS)
            .as_deref(),
        Some("0")
    );
    assert_eq!(k8s.start("pr-1").await, Ok(Outcome::Accepted));
    assert_eq!(
        fake.object("applications", "argocd", "shop-pr-1")["spec"],
        before["spec"]
    );
    assert_eq!(k8s.stop("pr-2").await, Ok(Outcome::Accepted));
    assert_eq!(
        fake.object("kustomizations", "flux-system", "shop-pr-2")["spec"]["suspend"],
        json!(true)
    );
    assert_eq!(k8s.start("pr-2").await, Ok(Outcome::Accepted));

    // Anything else of an owner, written with curfew's account, is refused.
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
    let apps: Api<DynamicObject> =
        Api::namespaced_with(fake.client(), "argocd", &ApiResource::from_gvk(&gvk));
    let moved = json!({"spec": {"source": {"targetRevision": "main"}}});
    match apps
        .patch("shop-pr-1", &PatchParams::default(), &Patch::Merge(moved))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            assert!(s.message.contains("automated sync"), "{}", s.message)
        }
        other => panic!("not refused: {other:?}"),
    }
}

/// Every owner curfew patches (an Argo CD Application, a Flux Kustomization and
/// HelmRelease, a KEDA ScaledObject), as the API server holds it after curfew's stop and
/// after its start, against the CRD schemas published on npm
/// (.ci/kubernetes/validate-gitops.mjs).
#[tokio::test]
#[ignore = "needs node and `npm install` in .ci/kubernetes (.ci/run does both)"]
async fn what_curfew_writes_for_gitops_owners_passes_their_crd_schemas() {
    let fake = FakeApi::new();
    argo_preview(&fake, true);
    flux_preview(&fake, "api-pr-1", "db-pr-1");
    fake.put(scaled_object("pr-1", "web", "web"));
    fake.put(super::kinds::rollout("pr-1", "canary", 2));
    let k8s = adapter(&fake);
    let owners = [
        ("applications", "argocd", "shop-pr-1"),
        ("kustomizations", "flux-system", "api-pr-1"),
        ("helmreleases", "flux-system", "db-pr-1"),
        ("scaledobjects", "pr-1", "web"),
        ("rollouts", "pr-1", "canary"),
    ];
    let mut objects = Vec::new();
    for step in ["stop", "start"] {
        fake.forget_log();
        let done = match step {
            "stop" => k8s.stop_under("pr-1", GitOps::Pause).await,
            _ => k8s.start("pr-1").await,
        };
        assert_eq!(done, Ok(Outcome::Accepted), "{step}");
        let written = patched(&fake);
        for (resource, namespace, name) in owners {
            assert!(
                written.contains(&format!("{resource}/{name}")),
                "the {step} wrote {resource}/{name}: {written:?}"
            );
            objects.push(fake.object(resource, namespace, name));
        }
    }
    let (passed, text) = validate_with_node("validate-gitops.mjs", &Value::Array(objects));
    assert!(passed, "{text}");
    assert_eq!(text.matches("ok    ").count(), 10, "{text}");
}
