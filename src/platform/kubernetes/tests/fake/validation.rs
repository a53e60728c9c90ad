//! How kube-apiserver validates an `events.k8s.io/v1` Event on create
//! (pkg/apis/core/validation/events.go: ValidateEventCreate, which runs
//! legacyValidateEvent first). Errors use the internal field names, as the server's do.

use serde_json::Value;

/// reportingInstance, action and reason: at most 128 characters; the note 1024 (bytes,
/// Go's `len`).
const NAME_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A qualified name (`prefix/name`, the prefix a DNS subdomain, the name at most 63
/// characters of alphanumerics, `-`, `_` and `.`).
fn is_qualified_name(text: &str) -> bool {
    let (prefix, name) = match text.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, text),
    };
    prefix.is_none_or(is_dns_subdomain)
        && !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// The Event's errors, or none.
pub fn event(namespace: &str, event: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let text = |field: &str| event[field].as_str().unwrap_or_default();
    let regarding_namespace = event["regarding"]["namespace"].as_str().unwrap_or_default();
    // legacyValidateEvent, for an Event with eventTime: an object without a namespace
    // (a Node, a Namespace) may only be reported in `default` or `kube-system`.
    if regarding_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
        errors.push(
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace".into(),
        );
    }
    let controller = text("reportingController");
    if controller.is_empty() {
        errors.push("reportingController: Required value".into());
    } else if !is_qualified_name(controller) {
        errors.push(format!(
            "reportingController: Invalid value: \"{controller}\": must be a qualified name"
        ));
    }
    for field in ["reportingInstance", "action", "reason"] {
        if text(field).is_empty() {
            errors.push(format!("{field}: Required value"));
        } else if text(field).len() > NAME_LIMIT {
            errors.push(format!(
                "{field}: Invalid value: \"\": can have at most {NAME_LIMIT} characters"
            ));
        }
    }
    if text("note").len() > NOTE_LIMIT {
        errors.push(format!(
            "message: Invalid value: \"\": can have at most {NOTE_LIMIT} characters"
        ));
    }
    if !is_dns_subdomain(namespace) {
        errors.push(format!("namespace: Invalid value: \"{namespace}\""));
    }
    // ValidateEventCreate, for events.k8s.io/v1 and later.
    if !is_dns_subdomain(event["metadata"]["name"].as_str().unwrap_or_default()) {
        errors.push("metadata.name: Invalid value: a lowercase RFC 1123 subdomain".into());
    }
    if event["eventTime"].is_null() {
        errors.push("eventTime: Required value".into());
    }
    if !matches!(text("type"), "Normal" | "Warning") {
        errors.push(format!(
            "type: Invalid value: \"\": has invalid value: {}",
            text("type")
        ));
    }
    for (field, internal) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("deprecatedSource", "source"),
    ] {
        if !event[field].is_null() {
            errors.push(format!(
                "{internal}: Invalid value: \"\": needs to be unset"
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
