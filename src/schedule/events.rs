//! Event schedules: a stop cron and an optional start cron in a zone.
//!
//! The state at T is set by the most recent event at or before T (a stop and a start at the
//! same instant: the stop wins). Before the first event the schedule asks for nothing to be
//! stopped. A stop-only schedule never starts anything. On holidays the start events are
//! skipped, so an environment stopped the evening before stays stopped.
//!
//! Cron matching, including the days the clocks change (a time in a gap fires at the first
//! instant after it, a repeated time fires once, at its first occurrence), is croner's.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::holiday::{Holiday, is_holiday};

/// Why a cron pattern was refused.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("invalid cron \"{text}\": {source}")]
    Invalid {
        text: String,
        #[source]
        source: croner::errors::CronError,
    },
    #[error("cron \"{0}\" never fires")]
    NeverFires(String),
}

/// Why a Cloud Custodian `off=`/`on=` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustodianError {
    #[error("\"{value}\": expected (DAYS,HOUR) such as (M-F,19)")]
    Shape { value: String },
    #[error("\"{value}\": hour \"{hour}\" is not 0..23")]
    Hour { value: String, hour: String },
    #[error("\"{value}\": days \"{days}\" are not M,T,W,H,F,S,U or a range of them")]
    Days { value: String, days: String },
}

/// A cron pattern and the text it was written as.
#[derive(Debug, Clone)]
pub struct CronSpec {
    text: String,
    cron: Cron,
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl CronSpec {
    /// Parses a cron pattern (5 fields, or 6 with seconds first), checking that it fires.
    pub fn parse(text: &str) -> Result<CronSpec, CronError> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let cron = match Cron::from_str(&text) {
            Ok(cron) => cron,
            Err(source) => return Err(CronError::Invalid { text, source }),
        };
        // A pattern such as `0 0 30 2 *` parses but never fires: refuse it here rather than
        // search to the year 5000 on every evaluation.
        let probe = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single();
        let fires = probe
            .and_then(|p| cron.find_next_occurrence(&p, false).ok())
            .is_some_and(|next| {
                next.timestamp()
                    < Utc
                        .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
                        .single()
                        .map_or(0, |t| t.timestamp())
            });
        if !fires {
            return Err(CronError::NeverFires(text));
        }
        Ok(CronSpec { text, cron })
    }

    /// The pattern as written (whitespace normalized).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn previous(&self, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&tz);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|x| x.with_timezone(&Utc))
    }

    fn next(&self, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|x| x.with_timezone(&Utc))
    }
}

/// Kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Stop,
    Start,
}

/// An event schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Events {
    pub stops: Vec<CronSpec>,
    pub starts: Vec<CronSpec>,
    pub tz: Tz,
    pub holidays: Vec<Holiday>,
}

/// How many start events in a row may fall on holidays before the search gives up.
const MAX_SKIPPED: usize = 4000;
/// How many events `next_change` looks through before deciding the state never changes.
const MAX_EVENTS_AHEAD: usize = 10_000;

impl Events {
    /// Whether a start event at `t` counts (it does not on a holiday).
    fn start_counts(&self, t: DateTime<Utc>) -> bool {
        self.holidays.is_empty()
            || !is_holiday(&self.holidays, t.with_timezone(&self.tz).date_naive())
    }

    /// The most recent event at or before `t`, if any.
    pub fn last_event(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, Edge)> {
        let stop = self
            .stops
            .iter()
            .filter_map(|c| c.previous(self.tz, t))
            .max();
        let start = self
            .starts
            .iter()
            .filter_map(|c| self.previous_counting_start(c, t))
            .max();
        match (stop, start) {
            (Some(s), Some(g)) if g > s => Some((g, Edge::Start)),
            (Some(s), _) => Some((s, Edge::Stop)),
            (None, Some(g)) => Some((g, Edge::Start)),
            (None, None) => None,
        }
    }

    fn previous_counting_start(&self, cron: &CronSpec, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut at = t;
        for _ in 0..MAX_SKIPPED {
            let prev = cron.previous(self.tz, at)?;
            if self.start_counts(prev) {
                return Some(prev);
            }
            at = prev - chrono::TimeDelta::seconds(1);
        }
        None
    }

    /// Whether the schedule lets environments run at `t`.
    pub fn active_at(&self, t: DateTime<Utc>) -> bool {
        !matches!(self.last_event(t), Some((_, Edge::Stop)))
    }

    /// The next event strictly after `t` (a start on a holiday is not an event).
    pub fn next_event(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, Edge)> {
        let stop = self.stops.iter().filter_map(|c| c.next(self.tz, t)).min();
        let start = self
            .starts
            .iter()
            .filter_map(|c| self.next_counting_start(c, t))
            .min();
        match (stop, start) {
            (Some(s), Some(g)) if g < s => Some((g, Edge::Start)),
            (Some(s), _) => Some((s, Edge::Stop)),
            (None, Some(g)) => Some((g, Edge::Start)),
            (None, None) => None,
        }
    }

    fn next_counting_start(&self, cron: &CronSpec, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut at = t;
        for _ in 0..MAX_SKIPPED {
            let next = cron.next(self.tz, at)?;
            if self.start_counts(next) {
                return Some(next);
            }
            at = next;
        }
        None
    }

    /// The first instant after `t` at which the state differs from the state at `t`.
    pub fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let now = self.active_at(t);
        let mut at = t;
        for _ in 0..MAX_EVENTS_AHEAD {
            let (when, _) = self.next_event(at)?;
            if self.active_at(when) != now {
                return Some(when);
            }
            at = when;
        }
        None
    }
}

impl Events {
    /// See [`super::Schedule::describe_at`].
    pub(super) fn describe_at(&self, t: DateTime<Utc>) -> String {
        let listed = self.stops.len() + self.starts.len() + self.holidays.len();
        if listed <= super::DESCRIBED_IN_FULL {
            return self.to_string();
        }
        let mut parts: Vec<String> = Vec::new();
        for (word, crons) in [("stop", &self.stops), ("start", &self.starts)] {
            parts.extend(
                crons
                    .iter()
                    .take(super::SUMMARY_NAMES)
                    .map(|c| format!("{word}={}", c.text)),
            );
            let more = crons.len().saturating_sub(super::SUMMARY_NAMES);
            if more > 0 {
                parts.push(format!(
                    "and {more} other {word} event{}",
                    super::plural(more)
                ));
            }
        }
        parts.push(format!("tz={}", self.tz.name()));
        let day = t.with_timezone(&self.tz).date_naive();
        parts.extend(super::holidays_at(&self.holidays, day, "except="));
        parts.join("; ")
    }
}

impl fmt::Display for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.stops.iter().map(|c| format!("stop={}", c.text)));
        parts.extend(self.starts.iter().map(|c| format!("start={}", c.text)));
        parts.push(format!("tz={}", self.tz.name()));
        parts.extend(self.holidays.iter().map(|h| format!("except={h}")));
        f.write_str(&parts.join("; "))
    }
}

/// Cloud Custodian's time zone aliases (`c7n/filters/offhours.py`), lower case. Custodian's
/// `Etc/GMT` and `Etc/UTC` are written `GMT` and `UTC` (the same zones) so that a schedule in
/// chrono-tz's `UTC` displays as `tz=UTC` and parses back to `UTC`, not `Etc/UTC`.
pub const CUSTODIAN_ZONES: &[(&str, &str)] = &[
    ("pdt", "America/Los_Angeles"),
    ("pt", "America/Los_Angeles"),
    ("pst", "America/Los_Angeles"),
    ("ast", "America/Phoenix"),
    ("at", "America/Phoenix"),
    ("est", "America/New_York"),
    ("edt", "America/New_York"),
    ("et", "America/New_York"),
    ("cst", "America/Chicago"),
    ("cdt", "America/Chicago"),
    ("ct", "America/Chicago"),
    ("mst", "America/Denver"),
    ("mdt", "America/Denver"),
    ("mt", "America/Denver"),
    ("gmt", "GMT"),
    ("gt", "GMT"),
    ("bst", "Europe/London"),
    ("ist", "Europe/Dublin"),
    ("cet", "Europe/Berlin"),
    ("it", "Asia/Kolkata"),
    ("jst", "Asia/Tokyo"),
    ("kst", "Asia/Seoul"),
    ("sgt", "Asia/Singapore"),
    ("aet", "Australia/Sydney"),
    ("brt", "America/Sao_Paulo"),
    ("utc", "UTC"),
];

/// The zone a `tz=` value names. In a Cloud Custodian tag (`custodian`), Custodian's
/// aliases come first, in any case (Custodian lower-cases tag values: `EST` is New York).
/// In curfew's own form an IANA name as written comes first (`EST` is the fixed zone, as
/// curfew displays it), then the aliases. Either way an IANA name in any case is accepted.
pub fn custodian_zone(value: &str, custodian: bool) -> Option<Tz> {
    let lower = value.to_ascii_lowercase();
    let alias = || {
        CUSTODIAN_ZONES
            .iter()
            .find(|(alias, _)| *alias == lower)
            .and_then(|(_, name)| name.parse::<Tz>().ok())
    };
    let exact = || value.parse::<Tz>().ok();
    let first = if custodian {
        alias().or_else(exact)
    } else {
        exact().or_else(alias)
    };
    first.or_else(|| super::zone::parse_zone(value))
}

/// Turns one Custodian `off=`/`on=` value (`(M-F,19)`, `[(M-F,21),(U,18)]`, `[m-f,20]`)
/// into cron patterns firing on the hour.
pub fn custodian_crons(value: &str) -> Result<Vec<String>, CustodianError> {
    let bare: String = value.chars().filter(|c| *c != '[' && *c != ']').collect();
    let mut crons = Vec::new();
    for expr in bare.split(",(") {
        let inner: String = expr.chars().filter(|c| *c != '(' && *c != ')').collect();
        let Some((days, hour)) = inner.split_once(',') else {
            return Err(CustodianError::Shape {
                value: value.to_string(),
            });
        };
        let hour: u32 = hour
            .trim()
            .parse()
            .ok()
            .filter(|h| *h < 24)
            .ok_or_else(|| CustodianError::Hour {
                value: value.to_string(),
                hour: hour.to_string(),
            })?;
        let dow = custodian_days(days.trim()).ok_or_else(|| CustodianError::Days {
            value: value.to_string(),
            days: days.to_string(),
        })?;
        crons.push(format!("0 {hour} * * {dow}"));
    }
    Ok(crons)
}

/// Custodian days (`M-F`, `U`, `S-M` wrapping) as a cron day-of-week list (0 = Sunday).
fn custodian_days(days: &str) -> Option<String> {
    let index = |c: &str| match c.to_ascii_lowercase().as_str() {
        "m" => Some(0u32),
        "t" => Some(1),
        "w" => Some(2),
        "h" => Some(3),
        "f" => Some(4),
        "s" => Some(5),
        "u" => Some(6),
        _ => None,
    };
    let list: Vec<u32> = match days.split_once('-') {
        None => vec![index(days)?],
        Some((a, b)) => {
            let (a, b) = (index(a)?, index(b)?);
            if a <= b {
                (a..=b).collect()
            } else {
                (a..7).chain(0..=b).collect()
            }
        }
    };
    // Custodian counts Monday as 0; cron counts Sunday as 0.
    let cron_days: Vec<String> = list.iter().map(|d| ((d + 1) % 7).to_string()).collect();
    Some(cron_days.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custodian_values_become_hourly_crons() {
        assert_eq!(custodian_crons("(M-F,19)").unwrap(), ["0 19 * * 1,2,3,4,5"]);
        assert_eq!(
            custodian_crons("[(M-F,21),(U,18)]").unwrap(),
            ["0 21 * * 1,2,3,4,5", "0 18 * * 0"]
        );
        assert_eq!(custodian_crons("[m-f,20]").unwrap(), ["0 20 * * 1,2,3,4,5"]);
        assert_eq!(custodian_crons("(s-m,7)").unwrap(), ["0 7 * * 6,0,1"]);
    }

    #[test]
    fn bad_custodian_values_say_why() {
        assert!(
            custodian_crons("(M-F,24)")
                .unwrap_err()
                .to_string()
                .contains("is not 0..23")
        );
        assert!(
            custodian_crons("(X,7)")
                .unwrap_err()
                .to_string()
                .contains("days \"X\"")
        );
        assert!(
            custodian_crons("M-F")
                .unwrap_err()
                .to_string()
                .contains("expected (DAYS,HOUR)")
        );
    }

    #[test]
    fn custodian_aliases_and_iana_names_both_resolve() {
        assert_eq!(
            custodian_zone("pt", true),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(
            custodian_zone("ET", true),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(
            custodian_zone("europe/paris", true),
            Some(chrono_tz::Europe::Paris)
        );
        assert_eq!(custodian_zone("nowhere", false), None);
        // In a Custodian tag EST means New York, as Custodian reads it; in curfew's own form
        // (as curfew displays a schedule in the fixed zone EST) it is the fixed zone.
        assert_eq!(
            custodian_zone("EST", true),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(custodian_zone("EST", false), Some(chrono_tz::EST));
        assert_eq!(
            custodian_zone("pt", false),
            Some(chrono_tz::America::Los_Angeles)
        );
    }

    #[test]
    fn a_cron_that_never_fires_is_refused() {
        assert_eq!(
            CronSpec::parse("0 0 30 2 *").unwrap_err().to_string(),
            "cron \"0 0 30 2 *\" never fires"
        );
    }
}
