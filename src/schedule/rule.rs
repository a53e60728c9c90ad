//! A rule's schedule: its `run:` or `stop:` windows (holidays included) or its events, and
//! the boundaries people and the daemon read from it (the last change, the next one, the
//! next stop).

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::{DaySet, Holiday, Schedule, Weekly, Window};

/// When a rule lets environments run.
#[derive(Debug, Clone)]
pub enum RuleSchedule {
    /// `run:` windows (holidays included): running inside, stopped outside.
    Run(Schedule),
    /// `stop:` windows: stopped inside (and on holidays), running outside.
    Stop {
        windows: Schedule,
        /// Every day but the holidays, when there are holidays.
        holidays: Option<Schedule>,
    },
    /// Stop and start events.
    Events(Schedule),
}

/// How many steps a combined (`stop:` + holidays) schedule looks ahead for a change.
const MAX_COMBINED_STEPS: usize = 1000;

impl RuleSchedule {
    /// Whether environments may run at `t`.
    pub fn is_active(&self, t: DateTime<Utc>) -> bool {
        match self {
            RuleSchedule::Run(s) | RuleSchedule::Events(s) => s.is_active(t),
            RuleSchedule::Stop { windows, holidays } => {
                !windows.is_active(t) && holidays.as_ref().is_none_or(|h| h.is_active(t))
            }
        }
    }

    /// The first instant after `t` where [`RuleSchedule::is_active`] changes.
    pub fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            RuleSchedule::Run(s) | RuleSchedule::Events(s) => s.next_change(t),
            RuleSchedule::Stop {
                windows,
                holidays: None,
            } => windows.next_change(t),
            RuleSchedule::Stop {
                windows,
                holidays: Some(h),
            } => {
                let now = self.is_active(t);
                let mut at = t;
                for _ in 0..MAX_COMBINED_STEPS {
                    let next = [windows.next_change(at), h.next_change(at)]
                        .into_iter()
                        .flatten()
                        .min()?;
                    if self.is_active(next) != now {
                        return Some(next);
                    }
                    at = next;
                }
                None
            }
        }
    }

    /// The latest boundary at or before `t`: the last change of state, or for event
    /// schedules the last event (a stop after a stop is a boundary too: a person's start in
    /// between is undone by it).
    pub fn last_boundary(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let RuleSchedule::Events(s) = self {
            return s.events().and_then(|e| e.last_event(t)).map(|(at, _)| at);
        }
        // Walk forward from a week back; if nothing changed in that week, look further.
        let mut lookback = TimeDelta::days(8);
        for _ in 0..8 {
            let from = t - lookback;
            let mut last = None;
            let mut at = from;
            while let Some(next) = self.next_change(at).filter(|n| *n <= t) {
                last = Some(next);
                at = next;
            }
            if last.is_some() {
                return last;
            }
            lookback = lookback * 4;
        }
        None
    }

    /// The next boundary after `t` (for event schedules, the next event).
    pub fn next_boundary(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let RuleSchedule::Events(s) = self {
            return s.events().and_then(|e| e.next_event(t)).map(|(at, _)| at);
        }
        self.next_change(t)
    }

    /// The first boundary after `t` at which environments must stop (a person's wake lasts
    /// until then). `None` when the schedule never stops again.
    pub fn next_stop(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut at = t;
        for _ in 0..MAX_COMBINED_STEPS {
            let boundary = self.next_boundary(at)?;
            if !self.is_active(boundary) {
                return Some(boundary);
            }
            at = boundary;
        }
        None
    }

    /// The schedule for a reason read at `t`: normalized, a long one summarized
    /// ([`Schedule::describe_at`]).
    pub fn describe_at(&self, t: DateTime<Utc>) -> String {
        match self {
            RuleSchedule::Run(s) => format!("run {}", s.describe_at(t)),
            RuleSchedule::Events(s) => format!("events {}", s.describe_at(t)),
            RuleSchedule::Stop { windows, holidays } => match holidays {
                None => format!("stop {}", windows.describe_at(t)),
                Some(h) => format!(
                    "stop {}; and all day on holidays ({})",
                    windows.describe_at(t),
                    h.describe_at(t)
                ),
            },
        }
    }

    /// The schedule as written in normalized form, whole (`validate --json`).
    pub fn describe(&self) -> String {
        match self {
            RuleSchedule::Run(s) => format!("run {s}"),
            RuleSchedule::Events(s) => format!("events {s}"),
            RuleSchedule::Stop { windows, holidays } => match holidays {
                None => format!("stop {windows}"),
                Some(h) => format!("stop {windows}; and all day on holidays ({h})"),
            },
        }
    }
}

impl RuleSchedule {
    /// `stop:` windows, with the rule's holidays stopped all day.
    pub fn stop(windows: Schedule, holidays: &[Holiday], tz: Tz) -> RuleSchedule {
        let holidays = (!holidays.is_empty()).then(|| {
            Schedule::from_windows(
                vec![Window::Weekly(Weekly {
                    days: DaySet::ALL,
                    start: 0,
                    end: 86_400,
                    tz,
                })],
                holidays.to_vec(),
            )
        });
        RuleSchedule::Stop { windows, holidays }
    }

    /// Whether the schedule keeps environments stopped over the whole coming year.
    pub fn never_runs(&self, now: DateTime<Utc>) -> bool {
        let year = TimeDelta::days(366);
        match self {
            RuleSchedule::Run(s) => s.never_active_within(now, year),
            RuleSchedule::Events(_) => false,
            RuleSchedule::Stop { .. } => {
                !self.is_active(now) && self.next_change(now).is_none_or(|n| n > now + year)
            }
        }
    }
}
