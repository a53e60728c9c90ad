//! The rule file reference (`docs/reference.md`), generated from the JSON Schema so the
//! two cannot disagree: one table per section, each field with its type and description.
//! `curfew schema --markdown` prints it; a test checks the checked-in copy is current.

use serde_json::Value;

/// The sections, in the order people read a rule file: the top level first, then each
/// object it refers to.
const SECTIONS: &[(&str, &str)] = &[
    ("RawRule", "rules[]: a rule"),
    ("RawSelector", "match, protect[]: which environments"),
    ("RawEvents", "events: stop and start instants"),
    ("RawEventFields", "events as kube-green fields"),
    (
        "RawPatch",
        "rules[].patches[]: a merge patch applied on stop",
    ),
    ("RawDefaults", "defaults"),
    ("RawPrices", "defaults.prices"),
    ("RawSafety", "safety"),
    ("RawDaemon", "daemon"),
    ("RawPlatformDetail", "platform"),
    ("RawQovery", "platform.qovery"),
    ("RawKubernetes", "platform.kubernetes"),
    ("RawTraffic", "platform.kubernetes.traffic"),
    ("RawSandbox", "platform.sandbox"),
    ("RawTarget", "notify.<name>: a notification target"),
];

/// The reference as Markdown, from the schema `curfew schema` prints.
pub fn reference_markdown(schema: &Value) -> String {
    let mut out = String::from(
        "# Rule file reference\n\n\
         Generated from the rule file's JSON Schema (`schema/curfew.schema.json`) by\n\
         `curfew schema --markdown`; a test keeps it current. What each setting means in\n\
         practice, with examples, is in [rules.md](rules.md) and [schedules.md](schedules.md).\n\
         Durations are written `30s`, `10m`, `4h`, `7d`, `2w` or combined (`1d12h`).\n",
    );
    out.push_str("\n## The file\n\n");
    out.push_str(&table(schema));
    let defs = schema.get("$defs");
    for (name, title) in SECTIONS {
        if let Some(def) = defs.and_then(|d| d.get(*name)) {
            out.push_str(&format!("\n## {title}\n\n"));
            if let Some(d) = def.get("description").and_then(Value::as_str) {
                out.push_str(&one_line(d));
                out.push_str("\n\n");
            }
            out.push_str(&table(def));
        }
    }
    out
}

fn table(object: &Value) -> String {
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        // A value of several forms (a spec string, or fields): name each form.
        return format!("Written as: {}.\n", type_of(object));
    };
    let mut t = String::from("| field | type | description |\n| --- | --- | --- |\n");
    for (field, p) in properties {
        if field == "$schema" {
            continue;
        }
        let description = p
            .get("description")
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        t.push_str(&format!(
            "| `{field}` | {} | {} |\n",
            type_of(p),
            description.replace('|', "\\|")
        ));
    }
    t
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A short type for people: `string`, `duration list`, `see daemon`…
fn type_of(p: &Value) -> String {
    // One value of a set (`gitops: pause`): the value itself.
    if let Some(value) = p.get("const").and_then(Value::as_str) {
        return format!("`{value}`");
    }
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        return link(r);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = p.get(key).and_then(Value::as_array) {
            let kinds: Vec<String> = options
                .iter()
                .map(type_of)
                .filter(|k| k != "null")
                .collect();
            return kinds.join(" or ");
        }
    }
    let kinds: Vec<&str> = match p.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|k| *k != "null")
            .collect(),
        _ => vec![],
    };
    let mut names = Vec::new();
    for k in kinds {
        let name = match k {
            "array" => format!(
                "list of {}",
                p.get("items").map_or_else(|| "values".into(), type_of)
            ),
            "object" => match p.get("additionalProperties") {
                Some(v @ Value::Object(_)) => format!("map of {}", type_of(v)),
                _ => "map".into(),
            },
            "integer" => "integer".into(),
            other => other.to_string(),
        };
        names.push(name);
    }
    if names.is_empty() {
        "any".into()
    } else {
        names.join(" or ")
    }
}

fn link(reference: &str) -> String {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    match SECTIONS.iter().find(|(n, _)| *n == name) {
        Some((_, title)) => {
            let section = title.split(':').next().unwrap_or(title);
            format!("*{section}*")
        }
        None => match name {
            "OneOrMany" => "string or list of strings".into(),
            "RawWindows" => "schedule string or list of windows".into(),
            "RawPlatform" => "`sandbox`, or *platform*".into(),
            other => other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> String {
        let schema: Value = serde_json::from_str(&crate::cli::schema_json()).unwrap();
        reference_markdown(&schema)
    }

    #[test]
    fn the_checked_in_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");
        let stored = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            stored == generated(),
            "docs/reference.md is stale: run `cargo run -- schema --markdown > docs/reference.md`"
        );
    }

    #[test]
    fn every_section_of_the_schema_is_in_the_reference() {
        let schema: Value = serde_json::from_str(&crate::cli::schema_json()).unwrap();
        let defs = schema["$defs"].as_object().unwrap();
        for (name, def) in defs {
            if def.get("properties").is_some() {
                assert!(
                    SECTIONS.iter().any(|(n, _)| n == name),
                    "{name} has fields but no section in the reference"
                );
            }
        }
        let text = generated();
        for field in [
            "`run`",
            "`stop_when_idle`",
            "`admin_max_snooze`",
            "`max_stops_per_pass`",
        ] {
            assert!(text.contains(field), "{field} missing");
        }
    }
}
