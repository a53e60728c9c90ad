//! `metadata.managedFields` as kube-apiserver keeps them (server-side apply's field
//! ownership, staging/src/k8s.io/apimachinery/pkg/util/managedfields): an update (a merge
//! patch) makes its field manager the owner of the fields it changed, taking them from
//! whoever had them; an apply owns every field it sets and, unless forced, fails with a
//! 409 Conflict on a field another manager owns and the apply would change.

use serde_json::{Map, Value, json};

/// Fields the API server sets itself, never owned.
const IGNORED: &[&[&str]] = &[
    &["metadata", "resourceVersion"],
    &["metadata", "managedFields"],
    &["metadata", "uid"],
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
];

/// Every leaf of `value` (a scalar, a list or null) with its path.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
        leaf => {
            if !IGNORED.iter().any(|p| p.iter().eq(path.iter())) {
                out.push((path.clone(), leaf.clone()));
            }
        }
    }
}

fn at<'a>(value: &'a Value, path: &[String]) -> &'a Value {
    path.iter().fold(value, |v, k| &v[k.as_str()])
}

/// `.spec.replicas`, as conflicts name a field.
fn dotted(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

fn owns(tree: &Value, path: &[String]) -> bool {
    let mut node = tree;
    for k in path {
        match node.get(format!("f:{k}")) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

fn own(tree: &mut Value, path: &[String]) {
    let mut node = tree;
    for k in path {
        node = node
            .as_object_mut()
            .unwrap()
            .entry(format!("f:{k}"))
            .or_insert_with(|| json!({}));
    }
}

/// Removes `path` from a fields tree; true when the tree is empty afterwards.
fn disown(tree: &mut Value, path: &[String]) -> bool {
    let Some(map) = tree.as_object_mut() else {
        return false;
    };
    if let Some((first, rest)) = path.split_first() {
        let key = format!("f:{first}");
        let empty = match map.get_mut(&key) {
            Some(_) if rest.is_empty() => true,
            Some(child) => disown(child, rest),
            None => false,
        };
        if empty {
            map.remove(&key);
        }
    }
    map.is_empty()
}

fn entries(object: &mut Value) -> &mut Vec<Value> {
    if !object["metadata"]["managedFields"].is_array() {
        object["metadata"]["managedFields"] = json!([]);
    }
    object["metadata"]["managedFields"].as_array_mut().unwrap()
}

/// `manager` now owns `paths`; the others lose them (and a manager left with nothing goes).
fn take(object: &mut Value, manager: &str, operation: &str, paths: &[Vec<String>], time: &str) {
    if paths.is_empty() {
        return;
    }
    let api_version = object["apiVersion"].clone();
    let list = entries(object);
    for entry in list.iter_mut() {
        if entry["manager"] != manager || entry["operation"] != operation {
            for path in paths {
                disown(&mut entry["fieldsV1"], path);
            }
        }
    }
    list.retain(|e| e["fieldsV1"].as_object().is_some_and(|m| !m.is_empty()));
    let position = list
        .iter()
        .position(|e| e["manager"] == manager && e["operation"] == operation);
    let entry = match position {
        Some(i) => &mut list[i],
        None => {
            list.push(json!({
                "manager": manager, "operation": operation, "apiVersion": api_version,
                "fieldsType": "FieldsV1", "fieldsV1": Value::Object(Map::new()),
            }));
            list.last_mut().unwrap()
        }
    };
    entry["time"] = json!(time);
    for path in paths {
        own(&mut entry["fieldsV1"], path);
    }
}

/// After a merge patch by `manager`: it owns what the patch changed; removed fields are
/// nobody's.
pub fn updated(object: &mut Value, old: &Value, patch: &Value, manager: &str, time: &str) {
    let mut all = Vec::new();
    leaves(patch, &mut Vec::new(), &mut all);
    let (removed, set): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, v)| v.is_null());
    for (path, _) in &removed {
        for entry in entries(object).iter_mut() {
            disown(&mut entry["fieldsV1"], path);
        }
    }
    entries(object).retain(|e| e["fieldsV1"].as_object().is_some_and(|m| !m.is_empty()));
    let changed: Vec<Vec<String>> = set
        .into_iter()
        .filter(|(path, value)| at(old, path) != value)
        .map(|(path, _)| path)
        .collect();
    take(object, manager, "Update", &changed, time);
}

/// A server-side apply of `config` by `manager`. The conflict message is kube-apiserver's
/// (staging/src/k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go,
/// NewConflictError).
pub fn apply(
    object: &mut Value,
    manager: &str,
    force: bool,
    config: &Value,
    time: &str,
) -> Result<(), String> {
    let mut set = Vec::new();
    leaves(config, &mut Vec::new(), &mut set);
    let mut conflicts = Vec::new();
    for (path, value) in &set {
        if at(object, path) == value {
            continue;
        }
        for entry in object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let other = entry["manager"] != manager || entry["operation"] != "Apply";
            if other && owns(&entry["fieldsV1"], path) {
                conflicts.push(format!(
                    "conflict with {} using {}: {}",
                    entry["manager"],
                    entry["apiVersion"].as_str().unwrap_or_default(),
                    dotted(path)
                ));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let n = conflicts.len();
        return Err(format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            conflicts.join("\n")
        ));
    }
    super::merge(object, config);
    let paths: Vec<Vec<String>> = set.into_iter().map(|(p, _)| p).collect();
    take(object, manager, "Apply", &paths, time);
    Ok(())
}
