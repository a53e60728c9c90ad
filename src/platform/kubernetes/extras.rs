//! The objects beyond Deployments, StatefulSets and CronJobs that a stop changes (see
//! `patches.rs`): read fresh from the namespace right before acting, as the workloads
//! are, and written with the resourceVersion they were read at.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{GetParams, ListParams, Patch, PatchParams};
use kube::core::Request;
use serde_json::Value;

use super::patches::{Extras, Patched, Scaled, ScaledStart, Target, release_patch};
use super::{
    CONFLICT_ATTEMPTS, CallError, Change, FIELD_MANAGER, Kubernetes, Object, ObjectError, PAGE,
    Step, namespace,
};

impl Kubernetes {
    /// What the rule of `ns` adds to a stop, as the daemon's rules say now.
    fn extras(&self, ns: &Namespace) -> Extras {
        match self.inner.wake_routing.get() {
            Some(rules) => {
                let env = namespace::environment(ns, None, &self.inner.mapping, None);
                rules.extras(&env)
            }
            None => Extras::default(),
        }
    }

    /// The extra objects of namespace `id` a stop or start writes: on stop, those the
    /// rule's patches and `release_load_balancers` change and those of the scaled kinds;
    /// on start, every object curfew recorded a change on, whatever the rules say now.
    pub(super) async fn extra_objects(
        &self,
        id: &str,
        ns: &Namespace,
        step: Step,
    ) -> Result<Vec<Object>, CallError> {
        let mut out = Vec::new();
        for target in &self.inner.options.scale_kinds {
            for object in self.list_json(id, target).await? {
                let scaled = Scaled::from_json(target.clone(), &object, &Value::Null);
                let wanted = match step {
                    Step::Stop(_) => !super::workload::excluded(&scaled.annotations),
                    Step::Start => scaled.recorded().is_some(),
                };
                if wanted && let Some(scaled) = self.read_scaled(id, target, &scaled.name).await? {
                    out.push(Object::Scaled(scaled));
                }
            }
        }
        match step {
            Step::Stop(_) => {
                let extras = self.extras(ns);
                for p in &extras.patches {
                    for object in self.list_json(id, &p.target).await? {
                        let object = Patched::from_json(p.target.clone(), object);
                        out.push(Object::Patched(object, Some(p.patch.clone())));
                    }
                }
                if extras.release_load_balancers {
                    let target = Target::services();
                    for object in self.list_json(id, &target).await? {
                        if let Some(patch) = release_patch(&object) {
                            let object = Patched::from_json(target.clone(), object);
                            out.push(Object::Patched(object, Some(patch)));
                        }
                    }
                }
            }
            Step::Start => {
                let targets = match self.inner.wake_routing.get() {
                    Some(rules) => rules.patched_kinds(),
                    None => Vec::new(),
                };
                for target in targets {
                    for object in self.list_json(id, &target).await? {
                        let object = Patched::from_json(target.clone(), object);
                        if object.recorded().is_some() {
                            out.push(Object::Patched(object, None));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every object of `target` in the namespace, read fresh, page by page. A kind the
    /// cluster does not serve (its CRD not installed: 404) has none.
    async fn list_json(&self, namespace: &str, target: &Target) -> Result<Vec<Value>, CallError> {
        let mut params = ListParams::default().limit(PAGE);
        let mut items = Vec::new();
        loop {
            let request = Request::new(target.path(namespace))
                .list(&params)
                .map_err(|e| CallError::Other(e.to_string()))?;
            let page: Value = match self
                .call("list_objects", self.inner.client.request::<Value>(request))
                .await
            {
                Ok(page) => page,
                Err(e) if e.code() == Some(404) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            items.extend(page["items"].as_array().into_iter().flatten().cloned());
            match page["metadata"]["continue"]
                .as_str()
                .filter(|c| !c.is_empty())
            {
                Some(token) => params = params.continue_token(token),
                None => return Ok(items),
            }
        }
    }

    async fn get_json(&self, path: String, name: &str) -> Result<Option<Value>, CallError> {
        let request = Request::new(path)
            .get(name, &GetParams::default())
            .map_err(|e| CallError::Other(e.to_string()))?;
        match self
            .call("get_object", self.inner.client.request::<Value>(request))
            .await
        {
            Ok(object) => Ok(Some(object)),
            Err(e) if e.code() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An object of a scaled kind with its Scale, read fresh; None once it is gone.
    async fn read_scaled(
        &self,
        namespace: &str,
        target: &Target,
        name: &str,
    ) -> Result<Option<Scaled>, CallError> {
        let Some(object) = self.get_json(target.path(namespace), name).await? else {
            return Ok(None);
        };
        let scale_path = format!("{}/{name}", target.path(namespace));
        let Some(scale) = self.get_json(scale_path, "scale").await? else {
            return Ok(None);
        };
        Ok(Some(Scaled::from_json(target.clone(), &object, &scale)))
    }

    /// An object a patch applies to, read fresh; None once it is gone.
    pub(super) async fn read_patched(
        &self,
        namespace: &str,
        target: &Target,
        name: &str,
    ) -> Result<Option<Patched>, CallError> {
        Ok(self
            .get_json(target.path(namespace), name)
            .await?
            .map(|o| Patched::from_json(target.clone(), o)))
    }

    /// A JSON merge patch of the object at `path/name` (`name/scale` for its Scale): the
    /// object as the API server holds it after the write.
    pub(super) async fn merge_patch(
        &self,
        endpoint: &'static str,
        path: String,
        name: &str,
        patch: Value,
    ) -> Result<Value, CallError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let request = Request::new(path).patch(name, &params, &Patch::Merge(patch));
        self.write::<Value>(endpoint, request).await
    }

    /// Brings an object of a scaled kind to the asked state. A stop records its replicas
    /// on the object, then scales it to zero through its Scale (both on the
    /// resourceVersion read); a start scales it back through its Scale if it is still at
    /// zero, then drops the record. On 409 it is read again and decided again.
    pub(super) async fn converge_scaled(
        &self,
        namespace: &str,
        mut object: Scaled,
        step: Step,
    ) -> Result<Option<Change>, ObjectError> {
        // This call recorded the replicas (a stop) or restored them (a start): the next
        // write finishes what it began.
        let mut begun = false;
        for _ in 0..CONFLICT_ATTEMPTS {
            if !self.inner.leader.is_leader() {
                return Err(ObjectError::NotLeader);
            }
            match self
                .write_scaled(namespace, &mut object, step, &mut begun)
                .await
            {
                Ok(change) => return Ok(change),
                Err(e) => {
                    if !self.after_conflict(namespace, &mut object, e).await? {
                        return Ok(None);
                    }
                }
            }
        }
        Err(ObjectError::Conflicts)
    }

    /// The writes of one attempt at a scaled object (see [`Self::converge_scaled`]).
    async fn write_scaled(
        &self,
        namespace: &str,
        object: &mut Scaled,
        step: Step,
        begun: &mut bool,
    ) -> Result<Option<Change>, CallError> {
        let path = object.target.path(namespace);
        let scale_path = format!("{path}/{}", object.name);
        let version = |v: &Value| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        };
        match step {
            Step::Stop(now) => {
                if !*begun {
                    let Some(record) = object.stop_record(now) else {
                        return Ok(None);
                    };
                    let after = self
                        .merge_patch("patch_object", path, &object.name, record)
                        .await?;
                    *begun = true;
                    object.resource_version = version(&after);
                }
                if object.replicas > 0 {
                    self.merge_patch("patch_scale", scale_path, "scale", object.scale_to(0))
                        .await?;
                }
                Ok(Some(Change::Stopped))
            }
            Step::Start => {
                let Some(plan) = object.start() else {
                    return Ok(None);
                };
                if let (ScaledStart::Restore(r), false) = (plan, *begun) {
                    let scale = self
                        .merge_patch("patch_scale", scale_path, "scale", object.scale_to(r))
                        .await?;
                    *begun = true;
                    object.resource_version = version(&scale);
                }
                self.merge_patch("patch_object", path, &object.name, object.forget())
                    .await?;
                Ok(Some(if *begun {
                    Change::Restored
                } else {
                    Change::LeftAsChanged
                }))
            }
        }
    }

    /// After a failed write of a scaled object: on 409 it is read again (what this call
    /// began is kept), and the answer is whether it is still there; any other error ends
    /// the attempt.
    async fn after_conflict(
        &self,
        namespace: &str,
        object: &mut Scaled,
        e: CallError,
    ) -> Result<bool, ObjectError> {
        match e {
            e if e.code() == Some(409) => {
                match self
                    .read_scaled(namespace, &object.target, &object.name)
                    .await
                {
                    Ok(Some(fresh)) => {
                        *object = fresh;
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(ObjectError::Call(e)),
                }
            }
            e if e.code() == Some(404) => Ok(false),
            CallError::LostLease => Err(ObjectError::NotLeader),
            e => Err(ObjectError::Call(e)),
        }
    }
}
