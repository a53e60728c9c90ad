//! Kubernetes Events: what curfew did to a namespace, warnings before a delete, and what it
//! did not stop and why (regarding that workload).
//!
//! `events.k8s.io/v1` Events, created in the namespace itself, so that `kubectl get events
//! -n pr-123` shows them to the people who own the environment. One about the namespace
//! names the namespace in `regarding.namespace` too: the API server refuses an Event
//! outside `default` and `kube-system` whose object has no namespace
//! (pkg/apis/core/validation/events.go, legacyValidateEvent: "involvedObject.namespace:
//! does not match event.namespace"), and the cluster-scoped Namespace has none of its own.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::leader::micro_time;

/// `reportingController` of every Event curfew posts.
pub const REPORTING_CONTROLLER: &str = "curfew.dev/curfew";
/// The API's limit on an Event's note, in bytes.
pub(super) const MAX_NOTE: usize = 1024;

/// `Normal` (an action) or `Warning` (something people should look at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What to say about a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub type_: EventType,
    /// CamelCase, machine-readable (`Stopped`, `DeleteWarning`).
    pub reason: String,
    /// What curfew did or would do (`Stop`, `Start`, `Delete`, `Warn`).
    pub action: String,
    pub note: String,
}

/// What an Event is about: a namespace, or a workload in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Regarding {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

impl Regarding {
    /// The namespace `name` itself (its `uid` when known).
    pub fn namespace(name: &str, uid: Option<&str>) -> Regarding {
        Regarding {
            api_version: "v1",
            kind: "Namespace",
            namespace: name.to_string(),
            name: name.to_string(),
            uid: uid.map(str::to_string),
        }
    }
}

/// The Event for `notice` about `regarding`, in its namespace.
pub fn event(regarding: &Regarding, notice: &Notice, instance: &str, now: DateTime<Utc>) -> Event {
    // The API server completes a generateName with five characters, within a name's 253.
    let prefix: String = regarding.name.chars().take(200).collect();
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}.curfew.")),
            namespace: Some(regarding.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(micro_time(now)),
        type_: Some(notice.type_.as_str().to_string()),
        reason: Some(truncate(&notice.reason, 128)),
        action: Some(truncate(&notice.action, 128)),
        note: Some(truncate(&notice.note, MAX_NOTE)),
        regarding: Some(ObjectReference {
            api_version: Some(regarding.api_version.into()),
            kind: Some(regarding.kind.into()),
            namespace: Some(regarding.namespace.clone()),
            name: Some(regarding.name.clone()),
            uid: regarding.uid.clone(),
            ..ObjectReference::default()
        }),
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(truncate(instance, 128)),
        ..Event::default()
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
