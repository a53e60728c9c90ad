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

fn is_dns_label(text: &str) -> bool {
    !text.is_empty() && text.len() <= 63 && !text.contains('.') && is_dns_subdomain(text)
}

fn port_ok(value: &Value) -> bool {
    value.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

/// An Ingress backend (pkg/apis/networking/validation/validation.go,
/// validateIngressBackend): exactly one of `service` or `resource`; a service names a
/// Service (a DNS-1035 label) and exactly one of a port name or a port number (1-65535).
fn ingress_backend(backend: &Value, at: &str, errors: &mut Vec<String>) {
    let service = &backend["service"];
    match (service.is_null(), backend["resource"].is_null()) {
        (false, false) => errors.push(format!(
            "{at}: Invalid value: \"\": cannot set both resource and service backends"
        )),
        (true, true) => errors.push(format!(
            "{at}: Required value: one of `service` or `resource` must be specified"
        )),
        (true, false) => {}
        (false, true) => {
            let name = service["name"].as_str().unwrap_or_default();
            let label =
                !name.is_empty() && name.as_bytes()[0].is_ascii_lowercase() && is_dns_label(name);
            if !label {
                errors.push(format!(
                    "{at}.service.name: Invalid value: \"{name}\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"
                ));
            }
            let port = &service["port"];
            match (port["name"].is_null(), port["number"].is_null()) {
                (false, false) => errors.push(format!(
                    "{at}.service.port: Invalid value: \"\": cannot set both port name & port number"
                )),
                (true, true) => errors.push(format!(
                    "{at}.service.port: Invalid value: \"\": port name or number is required"
                )),
                (true, false) if !port_ok(&port["number"]) => errors.push(format!(
                    "{at}.service.port.number: Invalid value: {}: must be between 1 and 65535, inclusive",
                    port["number"]
                )),
                _ => {}
            }
        }
    }
}

/// An Ingress's spec (pkg/apis/networking/validation/validation.go, ValidateIngressSpec
/// and validateHTTPIngressRuleValue): a default backend or rules; each path a pathType
/// (Exact, Prefix or ImplementationSpecific) and a backend.
pub fn ingress(object: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let spec = &object["spec"];
    let rules = spec["rules"].as_array().cloned().unwrap_or_default();
    if rules.is_empty() && spec["defaultBackend"].is_null() {
        errors.push(
            "spec: Invalid value: \"\": either `defaultBackend` or `rules` must be specified"
                .into(),
        );
    }
    if !spec["defaultBackend"].is_null() {
        ingress_backend(&spec["defaultBackend"], "spec.defaultBackend", &mut errors);
    }
    for (i, rule) in rules.iter().enumerate() {
        for (j, path) in rule["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            if !matches!(
                path["pathType"].as_str(),
                Some("Exact" | "Prefix" | "ImplementationSpecific")
            ) {
                errors.push(format!(
                    "{at}.pathType: Required value: pathType must be specified"
                ));
            }
            ingress_backend(&path["backend"], &format!("{at}.backend"), &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// An HTTPRoute's spec as its CRD's schema checks it (gateway-api,
/// config/crd/standard/gateway.networking.k8s.io_httproutes.yaml): at most 16 rules and 16
/// backendRefs a rule; a backendRef a name (1-253 characters), a namespace that is a DNS
/// label, a port of 1-65535, and a port whenever it names a Service (the CEL rule "Must
/// have port for Service reference").
pub fn http_route(object: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let rules = object["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rules.len() > 16 {
        errors.push(format!(
            "spec.rules: Too many: {}: must have at most 16 items",
            rules.len()
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        if refs.len() > 16 {
            errors.push(format!(
                "spec.rules[{i}].backendRefs: Too many: {}: must have at most 16 items",
                refs.len()
            ));
        }
        for (j, r) in refs.iter().enumerate() {
            let at = format!("spec.rules[{i}].backendRefs[{j}]");
            let name = r["name"].as_str().unwrap_or_default();
            if name.is_empty() || name.len() > 253 {
                errors.push(format!(
                    "{at}.name: Invalid value: \"{name}\": should be 1 to 253 characters"
                ));
            }
            if let Some(ns) = r.get("namespace").filter(|v| !v.is_null())
                && !ns.as_str().is_some_and(is_dns_label)
            {
                errors.push(format!("{at}.namespace: Invalid value: {ns}: should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"));
            }
            let service = r["group"].as_str().unwrap_or_default().is_empty()
                && r["kind"].as_str().unwrap_or("Service") == "Service";
            match r.get("port").filter(|v| !v.is_null()) {
                None if service => errors.push(format!(
                    "{at}: Invalid value: \"object\": Must have port for Service reference"
                )),
                Some(p) if !port_ok(p) => errors.push(format!(
                    "{at}.port: Invalid value: {p}: should be between 1 and 65535"
                )),
                _ => {}
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A Service (pkg/apis/core/validation/validation.go, ValidateService): of type
/// ExternalName, `externalName` required and a DNS-1123 subdomain (a trailing dot
/// allowed), no cluster IP; ports of 1-65535, each named when there are several; no node
/// port on a ClusterIP Service, and the load balancer's fields only on a LoadBalancer.
pub fn service(object: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let spec = &object["spec"];
    if spec["type"] == "ExternalName" {
        match spec["externalName"].as_str() {
            None | Some("") => errors.push("spec.externalName: Required value".into()),
            Some(name) if !is_dns_subdomain(name.trim_end_matches('.')) => errors.push(format!(
                "spec.externalName: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain"
            )),
            _ => {}
        }
        if spec["clusterIP"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty() && ip != "None")
        {
            errors.push(
                "spec.clusterIPs: Invalid value: must be empty for ExternalName services".into(),
            );
        }
    }
    // The fields of the types with node ports or a load balancer (ValidateService, and
    // validateServiceExternalTrafficPolicy): refused on the other types.
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    let load_balancer = kind == "LoadBalancer";
    for field in [
        "loadBalancerSourceRanges",
        "allocateLoadBalancerNodePorts",
        "loadBalancerClass",
    ] {
        if !load_balancer && !spec[field].is_null() {
            errors.push(format!(
                "spec.{field}: Forbidden: may only be used when `type` is 'LoadBalancer'"
            ));
        }
    }
    let externally_accessible = load_balancer
        || kind == "NodePort"
        || spec["externalIPs"]
            .as_array()
            .is_some_and(|ips| !ips.is_empty());
    if !externally_accessible && !spec["externalTrafficPolicy"].is_null() {
        errors.push(
            "spec.externalTrafficPolicy: Invalid value: may only be set for externally-accessible services".into(),
        );
    }
    let health_check_allowed = load_balancer && spec["externalTrafficPolicy"] == "Local";
    if !health_check_allowed && !spec["healthCheckNodePort"].is_null() {
        errors.push("spec.healthCheckNodePort: Forbidden: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'".into());
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    for (i, port) in ports.iter().enumerate() {
        if kind == "ClusterIP" && port["nodePort"].as_i64().is_some_and(|p| p != 0) {
            errors.push(format!(
                "spec.ports[{i}].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
            ));
        }
        if !port_ok(&port["port"]) {
            errors.push(format!(
                "spec.ports[{i}].port: Invalid value: {}: must be between 1 and 65535, inclusive",
                port["port"]
            ));
        }
        if ports.len() > 1 && port["name"].as_str().unwrap_or_default().is_empty() {
            errors.push(format!("spec.ports[{i}].name: Required value"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The validation kube-apiserver runs on a create or update of `resource`, if the fake
/// knows it.
pub fn object(resource: &str, namespace: &str, object: &Value) -> Result<(), Vec<String>> {
    match resource {
        "events" => event(namespace, object),
        "ingresses" => ingress(object),
        "httproutes" => http_route(object),
        "services" => service(object),
        _ => Ok(()),
    }
}
