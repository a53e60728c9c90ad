//! Kubernetes Events on a namespace: what curfew did to it, and warnings before a delete.
//!
//! `events.k8s.io/v1` Events, created in the namespace itself and regarding it, so that
//! both `kubectl get events -n pr-123` and `kubectl describe namespace pr-123` show them
//! to the people who own the environment.

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

/// The Event for `notice` on namespace `name` (its `uid` when known).
pub fn event(
    name: &str,
    uid: Option<&str>,
    notice: &Notice,
    instance: &str,
    now: DateTime<Utc>,
) -> Event {
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.curfew.")),
            namespace: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        event_time: Some(micro_time(now)),
        type_: Some(notice.type_.as_str().to_string()),
        reason: Some(notice.reason.clone()),
        action: Some(notice.action.clone()),
        note: Some(truncate(&notice.note, MAX_NOTE)),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Namespace".into()),
            name: Some(name.to_string()),
            uid: uid.map(str::to_string),
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
