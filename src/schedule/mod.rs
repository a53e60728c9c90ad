//! The schedule language: when environments may run.
//!
//! A [`Schedule`] answers two questions for any instant: is it *active* (environments may
//! run), and when does that next change ([`Schedule::next_change`]). Its grammar and
//! semantics are the user documentation in `docs/schedules.md`; this module is the one
//! place they are implemented.
//!
//! Two shapes of schedule exist:
//! - *window lists* (level): `Mon-Fri 08:00-19:00 Europe/Paris, Sat 10:00-12:00`, `always`,
//!   absolute ranges, `from`/`until`, holidays (`except 2026-12-24..2027-01-01`); active when
//!   any window covers the instant;
//! - *event schedules* (edge): `stop=0 19 * * 1-5; start=0 8 * * 1-5; tz=Europe/Rome`, or a
//!   Cloud Custodian tag value `off=(M-F,19);on=(M-F,7);tz=pt`; the most recent event rules.

mod duration;
mod events;
mod holiday;
mod parse;
mod weekly;
pub mod zone;

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Tz;

pub use duration::{DurationError, Ttl, format_seconds, parse_duration, parse_expiry};
pub use events::{CronSpec, Edge, Events};
pub use holiday::Holiday;
pub use parse::ParseError;
pub use weekly::{DaySet, Weekly};

use holiday::is_holiday;

/// A parsed schedule. Build one with [`Schedule::parse`]; its `Display` is the normalized
/// form, which parses back to the same schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Windows(Windows),
    Events(Events),
}

/// One entry of a window list.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    Always,
    Never,
    Weekly(Weekly),
    /// `[from, until)`; either end may be open (`from T`, `until T`).
    Absolute {
        from: Option<DateTime<FixedOffset>>,
        until: Option<DateTime<FixedOffset>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Windows {
    windows: Vec<Window>,
    holidays: Vec<Holiday>,
    /// Instants where the weekly pattern itself is interrupted (absolute ends, holiday
    /// edges in each window's zone), sorted. Derived from the two fields above.
    aperiodic: Vec<DateTime<Utc>>,
}

/// After this long with no change and no interruption of the weekly pattern, the weekly
/// pattern is known to be constant: a week and a day covers every weekday and every
/// window that crosses midnight.
const QUIET_WEEK: TimeDelta = TimeDelta::days(8);

impl Schedule {
    /// Parses a schedule; windows without a zone of their own (and event schedules without
    /// `tz=`) use `default_tz`.
    pub fn parse(text: &str, default_tz: Tz) -> Result<Schedule, ParseError> {
        parse::parse(text, default_tz)
    }

    /// A window-list schedule.
    pub fn from_windows(windows: Vec<Window>, holidays: Vec<Holiday>) -> Schedule {
        Schedule {
            kind: Kind::Windows(Windows::new(windows, holidays)),
        }
    }

    /// An event schedule.
    pub fn from_events(events: Events) -> Schedule {
        Schedule {
            kind: Kind::Events(events),
        }
    }

    /// The same schedule with more holidays.
    pub fn with_holidays(self, extra: &[Holiday]) -> Schedule {
        match self.kind {
            Kind::Windows(w) => {
                let mut holidays = w.holidays;
                holidays.extend_from_slice(extra);
                Schedule::from_windows(w.windows, holidays)
            }
            Kind::Events(mut e) => {
                e.holidays.extend_from_slice(extra);
                Schedule::from_events(e)
            }
        }
    }

    /// Whether the schedule lets environments run at `t`.
    pub fn is_active(&self, t: DateTime<Utc>) -> bool {
        match &self.kind {
            Kind::Windows(w) => w.active_at(t),
            Kind::Events(e) => e.active_at(t),
        }
    }

    /// The first instant after `t` at which [`Schedule::is_active`] differs from its value at
    /// `t`; `None` when it never changes again.
    pub fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Windows(w) => w.next_change(t),
            Kind::Events(e) => e.next_change(t),
        }
    }

    /// Every change in `(from, to]`, with the state it changes to.
    pub fn transitions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, bool)> + '_ {
        let mut at = from;
        std::iter::from_fn(move || {
            let next = self.next_change(at).filter(|n| *n <= to)?;
            at = next;
            Some((next, self.is_active(next)))
        })
    }

    /// The event schedule, if this is one.
    pub fn events(&self) -> Option<&Events> {
        match &self.kind {
            Kind::Events(e) => Some(e),
            Kind::Windows(_) => None,
        }
    }

    /// Whether the schedule is active at no instant of the coming `horizon` from `t`
    /// (a rule whose schedule never runs is a mistake worth reporting).
    pub fn never_active_within(&self, t: DateTime<Utc>, horizon: TimeDelta) -> bool {
        !self.is_active(t) && self.next_change(t).is_none_or(|n| n > t + horizon)
    }
}

impl Windows {
    fn new(windows: Vec<Window>, holidays: Vec<Holiday>) -> Windows {
        let mut aperiodic = Vec::new();
        for window in &windows {
            if let Window::Absolute { from, until } = window {
                aperiodic.extend(
                    from.iter()
                        .chain(until.iter())
                        .map(|t| t.with_timezone(&Utc)),
                );
            }
        }
        let mut zones: Vec<Tz> = windows
            .iter()
            .filter_map(|w| match w {
                Window::Weekly(w) => Some(w.tz),
                _ => None,
            })
            .collect();
        zones.sort_by_key(|z| z.name());
        zones.dedup();
        for tz in zones {
            for h in &holidays {
                let midnight = |d: chrono::NaiveDate| d.and_time(chrono::NaiveTime::MIN);
                aperiodic.push(zone::resolve(tz, midnight(h.first)));
                if let Some(after) = h.last.succ_opt() {
                    aperiodic.push(zone::resolve(tz, midnight(after)));
                }
            }
        }
        aperiodic.sort();
        aperiodic.dedup();
        Windows {
            windows,
            holidays,
            aperiodic,
        }
    }

    fn active_at(&self, t: DateTime<Utc>) -> bool {
        // Windows in the same zone share one conversion to local time.
        let mut local: Option<(Tz, NaiveDateTime, bool)> = None;
        for window in &self.windows {
            let on = match window {
                Window::Always => true,
                Window::Never => false,
                Window::Absolute { from, until } => {
                    from.is_none_or(|f| t >= f) && until.is_none_or(|u| t < u)
                }
                Window::Weekly(w) => {
                    let (wall, holiday) = match local {
                        Some((tz, wall, holiday)) if tz == w.tz => (wall, holiday),
                        _ => {
                            let wall = zone::effective_local(w.tz, t);
                            let holiday = !self.holidays.is_empty()
                                && is_holiday(&self.holidays, wall.date());
                            local = Some((w.tz, wall, holiday));
                            (wall, holiday)
                        }
                    };
                    !holiday && w.covers(wall)
                }
            };
            if on {
                return true;
            }
        }
        false
    }

    fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.windows.contains(&Window::Always) {
            return None;
        }
        let now = self.active_at(t);
        let weekly: Vec<&Weekly> = self
            .windows
            .iter()
            .filter_map(|w| match w {
                Window::Weekly(w) => Some(w),
                _ => None,
            })
            .collect();
        let start = |from: DateTime<Utc>| -> Vec<_> {
            weekly
                .iter()
                .map(|w| w.boundaries_from(from).peekable())
                .collect()
        };
        let mut boundaries = start(t);
        let mut next_aperiodic = self.aperiodic.partition_point(|a| *a <= t);
        let mut last = t;
        let mut quiet_since = t;
        loop {
            let mut weekly_next: Option<DateTime<Utc>> = None;
            for it in &mut boundaries {
                while it.next_if(|c| *c <= last).is_some() {}
                if let Some(&c) = it.peek() {
                    weekly_next = Some(weekly_next.map_or(c, |w| w.min(c)));
                }
            }
            let aperiodic = self.aperiodic.get(next_aperiodic).copied();
            let (candidate, is_aperiodic) = match (weekly_next, aperiodic) {
                (None, None) => return None,
                (Some(w), Some(a)) if a <= w => (a, true),
                (None, Some(a)) => (a, true),
                (Some(w), _) => (w, false),
            };
            if self.active_at(candidate) != now {
                return Some(candidate);
            }
            last = candidate;
            if is_aperiodic {
                next_aperiodic += 1;
                quiet_since = candidate;
            } else if candidate - quiet_since > QUIET_WEEK {
                // The weekly pattern is constant from here to the next interruption.
                let resume = *self.aperiodic.get(next_aperiodic)? - TimeDelta::seconds(1);
                boundaries = start(resume);
                last = resume;
                quiet_since = resume;
            }
        }
    }
}

fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Always => f.write_str("always"),
            Window::Never => f.write_str("never"),
            Window::Weekly(w) => write!(f, "{w}"),
            Window::Absolute {
                from: Some(a),
                until: Some(b),
            } => write!(f, "{}-{}", rfc3339(a), rfc3339(b)),
            Window::Absolute {
                from: Some(a),
                until: None,
            } => write!(f, "from {}", rfc3339(a)),
            Window::Absolute {
                from: None,
                until: Some(b),
            } => write!(f, "until {}", rfc3339(b)),
            Window::Absolute {
                from: None,
                until: None,
            } => f.write_str("always"),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Events(e) => write!(f, "{e}"),
            Kind::Windows(w) => {
                let parts: Vec<String> = w
                    .windows
                    .iter()
                    .map(ToString::to_string)
                    .chain(w.holidays.iter().map(|h| format!("except {h}")))
                    .collect();
                f.write_str(&parts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests;
