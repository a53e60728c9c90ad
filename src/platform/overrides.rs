//! What an environment's own labels ask of curfew: a protection (`curfew.dev/protect`) or
//! a snooze (`curfew.dev/snooze-until`). Read once, where the environment is listed (an
//! adapter, a snapshot file), into typed values: `decide` and the digest read the instant,
//! never the label's text again.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::schedule::{ExpiryError, parse_expiry};

/// Label (or annotation) that protects an environment: `curfew.dev/protect: "true"`.
pub const PROTECT_LABEL: &str = "curfew.dev/protect";
/// Label (or annotation) that snoozes an environment until an instant.
pub const SNOOZE_LABEL: &str = "curfew.dev/snooze-until";

/// What an environment's labels ask of curfew.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelOverrides {
    /// Protected: never stopped, started or deleted.
    pub protected: bool,
    /// Snoozed until an instant (or a value that is none).
    pub snooze: Option<LabelSnooze>,
}

/// A snooze label's value.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSnooze {
    Until(DateTime<Utc>),
    /// Not an instant: ignored, and `explain` says why.
    Unreadable {
        value: String,
        error: ExpiryError,
    },
}

impl LabelSnooze {
    /// The latest instant of `values` (a label and an annotation may both hold one), else
    /// the first value that is none; `None` without values.
    pub fn latest<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<LabelSnooze> {
        let mut unreadable = None;
        let mut latest: Option<DateTime<Utc>> = None;
        for value in values {
            match parse_expiry(value) {
                Ok(t) => latest = Some(latest.map_or(t, |l| l.max(t))),
                Err(error) => {
                    unreadable.get_or_insert_with(|| LabelSnooze::Unreadable {
                        value: value.to_string(),
                        error,
                    });
                }
            }
        }
        latest.map(LabelSnooze::Until).or(unreadable)
    }

    /// The label's value as curfew writes it back (an instant in RFC 3339, UTC).
    pub fn label_value(&self) -> String {
        match self {
            LabelSnooze::Until(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
            LabelSnooze::Unreadable { value, .. } => value.clone(),
        }
    }
}

/// Whether a protect label's value protects: `true`, in any case.
pub fn protects(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

impl LabelOverrides {
    /// What `labels` ask; `None` when they ask nothing (most environments: no allocation).
    pub fn of_labels(labels: &BTreeMap<String, String>) -> Option<Box<LabelOverrides>> {
        LabelOverrides {
            protected: labels.get(PROTECT_LABEL).is_some_and(|v| protects(v)),
            snooze: LabelSnooze::latest(labels.get(SNOOZE_LABEL).map(String::as_str)),
        }
        .boxed()
    }

    /// Boxed, or `None` when it asks nothing.
    pub fn boxed(self) -> Option<Box<LabelOverrides>> {
        (self != LabelOverrides::default()).then(|| Box::new(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_are_read_once_into_typed_overrides() {
        assert_eq!(LabelOverrides::of_labels(&labels(&[("team", "web")])), None);
        let read = LabelOverrides::of_labels(&labels(&[
            (PROTECT_LABEL, "TRUE"),
            (SNOOZE_LABEL, "2026-12-01T18:00:00+01:00"),
        ]))
        .unwrap();
        assert!(read.protected);
        let until = DateTime::parse_from_rfc3339("2026-12-01T17:00:00Z").unwrap();
        assert_eq!(read.snooze, Some(LabelSnooze::Until(until.to_utc())));
        let broken = LabelOverrides::of_labels(&labels(&[(SNOOZE_LABEL, "next week")])).unwrap();
        assert!(!broken.protected);
        assert!(
            matches!(&broken.snooze, Some(LabelSnooze::Unreadable { value, .. }) if value == "next week"),
            "{broken:?}"
        );
        // Two values: the latest instant wins over an unreadable one.
        let both = LabelSnooze::latest(["soon", "2026-12-01", "2026-12-03"]);
        assert_eq!(both.unwrap().label_value(), "2026-12-03T00:00:00Z");
    }
}
