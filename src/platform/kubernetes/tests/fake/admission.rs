//! A ValidatingAdmissionPolicy evaluated as kube-apiserver evaluates one
//! (staging/src/k8s.io/apiserver/pkg/admission/plugin/policy/validating): the request
//! must match a resource rule and every match condition; the variables are computed in
//! order (lazily in Kubernetes: here a variable that fails is left out, so only an
//! expression that reads it fails); then each validation must be true, and the first that
//! is false (or fails, under `failurePolicy: Fail`) denies the request with its message:
//! "ValidatingAdmissionPolicy 'P' with binding 'B' denied request: MESSAGE".
//!
//! The expressions run in the `cel` crate, not in cel-go with Kubernetes' libraries:
//! objects are untyped maps here (typed in Kubernetes), there are no cost limits, and
//! Kubernetes' extension functions and the `?` optional syntax do not exist here (the
//! shipped policy uses neither).

use std::collections::HashMap;

use cel::{Context, Program};
use serde_json::Value;

use super::Seen;

struct Rule {
    groups: Vec<String>,
    resources: Vec<String>,
    operations: Vec<String>,
}

/// A policy and its binding, ready to admit requests.
pub struct Policy {
    name: String,
    binding: String,
    rules: Vec<Rule>,
    conditions: Vec<Program>,
    variables: Vec<(String, Program)>,
    validations: Vec<(Program, String)>,
    /// Who makes the requests (`request.userInfo.username`).
    pub username: String,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn compile(expression: &Value) -> Program {
    let text = expression.as_str().expect("an expression");
    Program::compile(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

impl Policy {
    /// The policy and binding as shipped (YAML).
    pub fn load(policy: &str, binding: &str) -> Policy {
        let policy: Value = serde_saphyr::from_str(policy).unwrap();
        let binding: Value = serde_saphyr::from_str(binding).unwrap();
        assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
        let spec = &policy["spec"];
        Policy {
            name: policy["metadata"]["name"].as_str().unwrap().into(),
            binding: binding["metadata"]["name"].as_str().unwrap().into(),
            rules: spec["matchConstraints"]["resourceRules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| Rule {
                    groups: strings(&r["apiGroups"]),
                    resources: strings(&r["resources"]),
                    operations: strings(&r["operations"]),
                })
                .collect(),
            conditions: spec["matchConditions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| compile(&c["expression"]))
                .collect(),
            variables: spec["variables"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap().to_string(),
                        compile(&v["expression"]),
                    )
                })
                .collect(),
            validations: spec["validations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        compile(&v["expression"]),
                        v["message"].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
            username: String::new(),
        }
    }

    fn operation(seen: &Seen) -> &'static str {
        match seen.verb() {
            "create" => "CREATE",
            "delete" => "DELETE",
            _ => "UPDATE",
        }
    }

    /// Whether the request passes; the denial's message if not.
    pub fn admit(
        &self,
        seen: &Seen,
        object: &Value,
        old: &Value,
        namespace_object: &Value,
    ) -> Result<(), String> {
        let operation = Policy::operation(seen);
        let matched = self.rules.iter().any(|r| {
            r.groups.contains(&seen.group)
                && r.resources.contains(&seen.resource)
                && r.operations.iter().any(|o| o == operation)
        });
        if !matched {
            return Ok(());
        }
        // A subresource's request names its resource and its subresource apart
        // (`rollouts`, `scale`), as admission.k8s.io/v1 AdmissionRequest does; the rules
        // above match `rollouts/scale` as a whole, as RBAC names it.
        let (resource, sub_resource) = seen
            .resource
            .split_once('/')
            .unwrap_or((seen.resource.as_str(), ""));
        let request = serde_json::json!({
            "operation": operation,
            "userInfo": {"username": self.username},
            "resource": {"group": seen.group, "version": "v1", "resource": resource},
            "subResource": sub_resource,
            "namespace": seen.namespace.clone().unwrap_or_default(),
            "name": seen.name.clone().or_else(|| object["metadata"]["name"].as_str().map(str::to_string)).unwrap_or_default(),
        });
        let mut context = Context::default();
        for (name, value) in [
            ("request", &request),
            ("object", object),
            ("oldObject", old),
            ("namespaceObject", namespace_object),
        ] {
            context.add_variable(name, value.clone()).unwrap();
        }
        let deny = |message: String| {
            format!(
                "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {message}",
                self.name, self.binding
            )
        };
        for condition in &self.conditions {
            match condition.execute(&context) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(_) => return Ok(()),
                Err(e) => return Err(deny(format!("match condition failed: {e}"))),
            }
        }
        let mut variables: HashMap<String, cel::Value> = HashMap::new();
        for (name, program) in &self.variables {
            if let Ok(value) = program.execute(&context) {
                variables.insert(name.clone(), value);
                context.add_variable_from_value("variables", variables.clone());
            }
        }
        context.add_variable_from_value("variables", variables);
        for (program, message) in &self.validations {
            match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(_) => return Err(deny(message.clone())),
                Err(e) => return Err(deny(format!("{message} (expression failed: {e})"))),
            }
        }
        Ok(())
    }
}
