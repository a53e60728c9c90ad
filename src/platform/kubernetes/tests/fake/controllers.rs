//! What real controllers and admission plugins do to the objects the tests hold, at once
//! (no reconcile delay): each rule cites where Kubernetes does it.

use serde_json::{Value, json};

use super::{Key, Store};

/// Runs the controllers on the object at `key` after it was created or changed.
pub fn settle(store: &mut Store, key: &Key) {
    argocd_self_heal(store, key);
    let Some(object) = store.objects.get(key).cloned() else {
        return;
    };
    match key.0.as_str() {
        "deployments" => deployment(store, &object),
        // Argo Rollouts' controller keeps ReplicaSets of a Rollout's template with as many
        // pods as it asks for, as the Deployment controller does (argo-rollouts docs,
        // Architecture: "the Rollout controller ... manages ReplicaSets"); the canary and
        // blue-green steps between templates are not modelled.
        "rollouts" if object["spec"]["template"].is_object() => deployment(store, &object),
        "statefulsets" => stateful_set(store, &object),
        _ => {}
    }
}

fn replicas(object: &Value) -> i64 {
    object["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// The status a Deployment or StatefulSet controller writes: its replicas, and of them
/// those ready. Pods removed are no longer ready; pods made are not ready yet (their
/// readiness comes from the kubelet: [`super::FakeApi::pods_ready`]).
fn set_status_replicas(store: &mut Store, key: &Key, replicas: i64) {
    if let Some(o) = store.objects.get_mut(key)
        && o.get("status").is_some()
    {
        let ready = o["status"]["readyReplicas"]
            .as_i64()
            .unwrap_or(0)
            .min(replicas);
        o["status"]["replicas"] = json!(replicas);
        o["status"]["readyReplicas"] = json!(ready);
    }
}

/// A reference from an object to its controller.
fn controller_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    }])
}

/// Stores an object a controller made, without running the controllers on it; created
/// now, unless it says when.
fn insert(store: &mut Store, mut object: Value) {
    let key = super::key_of(&object);
    object["metadata"]["uid"] = json!(format!("uid-{}-{}-{}", key.0, key.1, key.2));
    object["metadata"]["resourceVersion"] = json!(store.version());
    if object["metadata"]["creationTimestamp"].is_null() {
        object["metadata"]["creationTimestamp"] = json!(store.stamp());
    }
    store.objects.insert(key, object);
}

fn owned_by<'a>(store: &'a Store, resource: &str, namespace: &str, owner: &str) -> Vec<&'a Value> {
    store
        .objects
        .iter()
        .filter(|((r, ns, _), _)| r == resource && ns == namespace)
        .map(|(_, o)| o)
        .filter(|o| o["metadata"]["ownerReferences"][0]["name"] == owner)
        .collect()
}

/// The pod-template-hash a Deployment's ReplicaSet is named after (FNV-1a of the
/// template, as pkg/controller/controller_utils.go ComputeHash hashes it).
fn template_hash(template: &Value) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in template.to_string().bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    format!("{:x}", hash % 0xff_ffff)
}

/// The Deployment controller keeps one ReplicaSet per template, the ReplicaSet
/// controller as many pods as it asks for; pods of older templates go away.
fn deployment(store: &mut Store, d: &Value) {
    let ns = d["metadata"]["namespace"].as_str().unwrap().to_string();
    let name = d["metadata"]["name"].as_str().unwrap().to_string();
    let rs_name = format!("{name}-{}", template_hash(&d["spec"]["template"]));
    let wanted = replicas(d);
    if store.get("replicasets", &ns, &rs_name).is_none() {
        insert(
            store,
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                // Made with its Deployment (or its template): a fixture without a creation
                // time is a Deployment from long ago.
                "metadata": {
                    "name": rs_name, "namespace": ns, "ownerReferences": controller_ref(d),
                    "creationTimestamp": d["metadata"].get("creationTimestamp").cloned().unwrap_or(json!("2026-01-01T00:00:00Z")),
                },
                "spec": {"replicas": wanted, "selector": d["spec"]["selector"], "template": d["spec"]["template"]},
            }),
        );
    }
    let sets: Vec<String> = owned_by(store, "replicasets", &ns, &name)
        .iter()
        .map(|rs| rs["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for set in sets {
        let count = if set == rs_name { wanted } else { 0 };
        let rs = store.get("replicasets", &ns, &set).unwrap().clone();
        let pods = (0..count).map(|i| format!("{set}-{i}")).collect();
        reconcile_pods(store, &rs, &d["spec"]["template"], pods);
    }
    set_status_replicas(store, &super::key_of(d), wanted);
}

/// The StatefulSet controller: pods `NAME-0…`, each with a claim per volume claim
/// template, made with the pod and kept when it goes, unless
/// `persistentVolumeClaimRetentionPolicy.whenScaled` is `Delete`: then a scale down deletes
/// the claims of the pods it removes (pkg/controller/statefulset/stateful_set_utils.go,
/// updateClaimOwnerRefForSetAndPod makes the condemned pod the claim's owner, and the
/// garbage collector deletes the claim with it; GA in Kubernetes 1.32).
fn stateful_set(store: &mut Store, s: &Value) {
    let ns = s["metadata"]["namespace"].as_str().unwrap().to_string();
    let name = s["metadata"]["name"].as_str().unwrap().to_string();
    let wanted = replicas(s);
    let pods = (0..wanted).map(|i| format!("{name}-{i}")).collect();
    reconcile_pods(store, s, &s["spec"]["template"], pods);
    let templates: Vec<String> = s["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let delete_scaled = s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete";
    for claim in templates {
        let existing = store
            .all("persistentvolumeclaims", &ns)
            .into_iter()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
            .filter(|c| c.starts_with(&format!("{claim}-{name}-")))
            .collect::<Vec<_>>();
        for i in 0..wanted {
            let pvc = format!("{claim}-{name}-{i}");
            if !existing.contains(&pvc) {
                insert(
                    store,
                    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": pvc, "namespace": ns}, "status": {"phase": "Bound"}}),
                );
            }
        }
        for pvc in existing {
            let ordinal: i64 = pvc.rsplit('-').next().unwrap().parse().unwrap();
            if delete_scaled && ordinal >= wanted {
                store.remove("persistentvolumeclaims", &ns, &pvc);
            }
        }
    }
    set_status_replicas(store, &super::key_of(s), wanted);
}

/// Makes the pods named `wanted` (from `template`, owned by `owner`) and deletes the
/// owner's other pods.
fn reconcile_pods(store: &mut Store, owner: &Value, template: &Value, wanted: Vec<String>) {
    let ns = owner["metadata"]["namespace"].as_str().unwrap().to_string();
    let owner_name = owner["metadata"]["name"].as_str().unwrap();
    let existing: Vec<String> = owned_by(store, "pods", &ns, owner_name)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for name in &existing {
        if !wanted.contains(name) {
            store.remove("pods", &ns, name);
        }
    }
    for name in wanted {
        if !existing.contains(&name) {
            let pod = admitted_pod(store, &ns, &name, template, controller_ref(owner));
            insert(store, pod);
        }
    }
}

/// A pod as the API server stores it after defaulting and admission.
fn admitted_pod(store: &Store, ns: &str, name: &str, template: &Value, owners: Value) -> Value {
    let mut spec = template["spec"].clone();
    let namespace = store.get("namespaces", "", ns).cloned().unwrap_or_default();
    // An injected sidecar: Istio's injector adds istio-proxy (requests 100m, 128Mi by
    // default) to pods of namespaces labelled istio-injection=enabled.
    if namespace["metadata"]["labels"]["istio-injection"] == "enabled" {
        spec["containers"].as_array_mut().unwrap().push(json!({
            "name": "istio-proxy", "image": "istio/proxyv2",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }));
    }
    let defaults = limit_range_defaults(store, ns);
    for container in spec["containers"].as_array_mut().unwrap() {
        default_requests(container, &defaults);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": template["metadata"]["labels"], "ownerReferences": owners},
        "spec": spec,
        "status": {"phase": "Running"},
    })
}

/// The LimitRanger admission plugin's defaults for containers
/// (plugin/pkg/admission/limitranger/admission.go, defaultContainerResourceRequirements):
/// `defaultRequest`, else `default`.
fn limit_range_defaults(store: &Store, ns: &str) -> Value {
    let mut out = json!({});
    for range in store.all("limitranges", ns) {
        for limit in range["spec"]["limits"].as_array().into_iter().flatten() {
            if limit["type"] != "Container" {
                continue;
            }
            for source in ["default", "defaultRequest"] {
                if let Some(values) = limit[source].as_object() {
                    for (k, v) in values {
                        out[k] = v.clone();
                    }
                }
            }
        }
    }
    out
}

/// A container's requests after admission and defaulting: LimitRange defaults for what it
/// does not ask, then its limits for what is still unset (pkg/apis/core/v1/defaults.go,
/// SetDefaults_Pod: "if a container has limits but no requests, requests default to
/// limits").
fn default_requests(container: &mut Value, defaults: &Value) {
    let limits = container["resources"]["limits"].clone();
    for (resource, value) in defaults.as_object().into_iter().flatten() {
        if container["resources"]["requests"][resource].is_null() {
            container["resources"]["requests"][resource] = value.clone();
        }
    }
    for (resource, value) in limits.as_object().into_iter().flatten() {
        if container["resources"]["requests"][resource].is_null() {
            container["resources"]["requests"][resource] = value.clone();
        }
    }
}

/// A bare pod (no owner) asking for 500m and 1Gi.
pub fn pod(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "example/app:1", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
        "status": {"phase": "Running"},
    })
}

/// A running pod of Job `job` (100m, 128Mi).
pub fn job_pod(namespace: &str, job: &str) -> Value {
    let mut pod = pod(namespace, &format!("{job}-x1"));
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": format!("uid-{job}"), "controller": true}]);
    pod["spec"]["containers"][0]["resources"]["requests"] =
        json!({"cpu": "100m", "memory": "128Mi"});
    pod
}

/// A CronJob (every five minutes) whose Job `job` is running now.
pub fn cron_job_with_run(namespace: &str, name: &str, job: &str) -> Value {
    let mut c = super::cron_job(namespace, name, false);
    c["status"]["active"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": job, "namespace": namespace, "uid": format!("uid-{job}")}]);
    c
}

/// The HPA controller's pass: each HPA keeps its target within [min, max], except a
/// target at zero replicas, which it leaves alone (Kubernetes' "implicit maintenance-mode
/// deactivation": pkg/controller/podautoscaler/horizontal.go, reconcileAutoscaler, "if
/// scale.Spec.Replicas == 0 && minReplicas != 0 { // Autoscaling is disabled }").
pub fn hpa_sync(store: &mut Store) {
    for hpa in store.all("horizontalpodautoscalers", "") {
        let ns = hpa["metadata"]["namespace"].as_str().unwrap().to_string();
        let target = hpa["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let resource = super::resource_of(hpa["spec"]["scaleTargetRef"]["kind"].as_str().unwrap());
        let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
        let max = hpa["spec"]["maxReplicas"].as_i64().unwrap();
        let Some(object) = store.get(resource, &ns, &target) else {
            continue;
        };
        let replicas = replicas(object);
        if replicas == 0 && min > 0 {
            continue;
        }
        let wanted = replicas.clamp(min, max);
        if wanted != replicas {
            store.edit(resource, &ns, &target, |o| {
                o["spec"]["replicas"] = json!(wanted);
            });
        }
    }
}

/// The CronJob controller's pass at the store's `now`, for `*/N * * * *` schedules
/// (pkg/controller/cronjob/utils.go, mostRecentScheduleTime, and
/// cronjob_controllerv2.go, syncCronJob): a CronJob that is not suspended starts the most
/// recent scheduled run after its `status.lastScheduleTime`, unless
/// `startingDeadlineSeconds` is set and that run is older than it. Missed runs are counted
/// from `lastScheduleTime`, however long the CronJob was suspended. Returns the Jobs made.
pub fn cron_sync(store: &mut Store) -> Vec<String> {
    let now = store.now;
    let mut started = Vec::new();
    for c in store.all("cronjobs", "") {
        if c["spec"]["suspend"] == true {
            continue;
        }
        let every: i64 = c["spec"]["schedule"]
            .as_str()
            .and_then(|s| s.strip_prefix("*/"))
            .and_then(|s| s.strip_suffix(" * * * *"))
            .and_then(|m| m.parse().ok())
            .expect("the fake's CronJob controller reads */N * * * * only");
        let last: chrono::DateTime<chrono::Utc> = c["status"]["lastScheduleTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let period = every * 60;
        let latest = now.timestamp() - now.timestamp().rem_euclid(period);
        let deadline = c["spec"]["startingDeadlineSeconds"].as_i64();
        let too_late = deadline.is_some_and(|d| latest + d < now.timestamp());
        if latest <= last.timestamp() || too_late {
            continue;
        }
        let ns = c["metadata"]["namespace"].as_str().unwrap().to_string();
        let name = c["metadata"]["name"].as_str().unwrap().to_string();
        let job = format!("{name}-{}", latest / 60);
        insert(
            store,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job, "namespace": ns, "ownerReferences": controller_ref(&c)}}),
        );
        let at = chrono::DateTime::from_timestamp(latest, 0).unwrap();
        store.edit("cronjobs", &ns, &name, |o| {
            o["status"]["lastScheduleTime"] =
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        });
        started.push(job);
    }
    started
}

/// Argo CD's self-heal: an object that an Application with automated sync and `selfHeal`
/// deploys, changed in the cluster, is synced back to git (controller/appcontroller.go,
/// autoSync: with selfHeal an OutOfSync application is synced again once
/// `--self-heal-timeout-seconds` has passed; here at once). The Application is found by
/// its tracking id (util/argo/resource_tracking.go), in `argocd`; only the replicas are
/// compared, the field curfew changes. The sync writes as field manager
/// `argocd-controller`. An Application whose `automated` is gone (curfew's pause) or
/// `enabled: false` does nothing.
fn argocd_self_heal(store: &mut Store, key: &Key) {
    let Some(manifest) = store.git.get(key).cloned() else {
        return;
    };
    let Some(object) = store.objects.get(key).cloned() else {
        return;
    };
    let Some(app) = object["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"]
        .as_str()
        .and_then(|id| id.split(':').next())
    else {
        return;
    };
    let Some(application) = store.get("applications", "argocd", app) else {
        return;
    };
    let automated = &application["spec"]["syncPolicy"]["automated"];
    if automated["selfHeal"] != json!(true) || automated["enabled"] == json!(false) {
        return;
    }
    let wanted = manifest["spec"]["replicas"].clone();
    if object["spec"]["replicas"] == wanted {
        return;
    }
    let patch = json!({"spec": {"replicas": wanted}});
    let mut synced = object.clone();
    super::merge(&mut synced, &patch);
    let time = store.stamp();
    super::fields::updated(&mut synced, &object, &patch, "argocd-controller", &time);
    synced["metadata"]["resourceVersion"] = json!(store.version());
    store.objects.insert(key.clone(), synced);
}
