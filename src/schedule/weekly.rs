//! Recurring windows in local wall time: `Mon-Fri 08:00-19:00 Europe/Paris`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use super::zone;

/// A set of weekdays (bit 0 is Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DaySet(u8);

impl DaySet {
    /// Every day of the week.
    pub const ALL: DaySet = DaySet(0x7f);

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    /// Adds `day` to the set.
    pub fn insert(&mut self, day: Weekday) {
        self.0 |= 1 << day.num_days_from_monday();
    }

    /// Adds every day from `from` to `to`, wrapping past Sunday (`Fri-Mon`).
    pub fn insert_range(&mut self, from: Weekday, to: Weekday) {
        let mut day = from;
        loop {
            self.insert(day);
            if day == to {
                break;
            }
            day = day.succ();
        }
    }

    /// Whether the set holds no day.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Normalized form: maximal runs of consecutive days (wrapping around the week), each run
/// of two or more written as a range, runs listed from Monday on: `Mon-Fri`, `Sun-Thu`,
/// `Mon,Wed,Fri`, `Fri-Mon`.
impl fmt::Display for DaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == DaySet::ALL {
            return f.write_str("Mon-Sun");
        }
        let days: Vec<Weekday> = (0..7)
            .filter_map(|i| Weekday::try_from(i as u8).ok())
            .collect();
        let mut runs: Vec<(Weekday, Weekday)> = Vec::new();
        for &day in &days {
            if !self.contains(day) || self.contains(day.pred()) {
                continue; // not the first day of a run
            }
            let mut end = day;
            while self.contains(end.succ()) {
                end = end.succ();
            }
            runs.push((day, end));
        }
        for (i, (from, to)) in runs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if from == to {
                write!(f, "{from}")?;
            } else {
                write!(f, "{from}-{to}")?;
            }
        }
        Ok(())
    }
}

/// Seconds in a day; a window may end at `24:00`, which is this.
pub const DAY_SECONDS: u32 = 86_400;

/// A weekly window: on each day in `days`, from `start` to `end` local time in `tz`.
///
/// When `end <= start` the window crosses midnight and belongs to the day it starts on:
/// `Fri 22:00-06:00` runs from Friday 22:00 to Saturday 06:00.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weekly {
    pub days: DaySet,
    /// Seconds after local midnight, `0..DAY_SECONDS`.
    pub start: u32,
    /// Seconds after local midnight, `1..=DAY_SECONDS`.
    pub end: u32,
    pub tz: Tz,
}

impl Weekly {
    /// Whether the window crosses midnight.
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the window covers the effective local wall time `local`.
    /// Holidays are applied by the caller.
    pub fn covers(&self, local: NaiveDateTime) -> bool {
        let day = local.weekday();
        let secs = local.num_seconds_from_midnight_u32();
        if self.crosses_midnight() {
            (self.days.contains(day) && secs >= self.start)
                || (self.days.contains(day.pred()) && secs < self.end)
        } else {
            self.days.contains(day) && secs >= self.start && secs < self.end
        }
    }

    /// The window's boundaries as instants, in order, from the local day before `from`'s.
    pub fn boundaries_from(&self, from: DateTime<Utc>) -> Boundaries<'_> {
        let day = zone::effective_local(self.tz, from).date() - TimeDelta::days(1);
        Boundaries {
            window: self,
            day,
            pending: None,
        }
    }

    /// The window's boundaries strictly after an instant `t`, given `wall`, the effective
    /// wall time at `t` (see [`zone::effective_local`]). These are the instants
    /// [`Weekly::boundaries_from`] yields after `t`, in order; the ones already passed are
    /// never resolved.
    ///
    /// A boundary at wall time `w` resolves to an instant at or before `t` exactly when
    /// `w <= wall` (effective wall time never goes backwards, and a boundary takes effect
    /// at the first instant that reaches it), so passed boundaries are recognized by
    /// comparing wall times, which needs no zone lookup.
    pub(crate) fn upcoming(&self, wall: NaiveDateTime) -> Upcoming<'_> {
        // A window that crosses midnight can still end on `wall`'s day after starting on
        // the day before; any other window's boundaries on the day before have passed.
        let first = if self.crosses_midnight() {
            wall.date() - TimeDelta::days(1)
        } else {
            wall.date()
        };
        Upcoming {
            window: self,
            day: first,
            passed: wall,
            end: None,
        }
    }

    fn wall(day: NaiveDate, secs: u32) -> NaiveDateTime {
        day.and_time(NaiveTime::MIN) + TimeDelta::seconds(i64::from(secs))
    }

    fn at(&self, day: NaiveDate, secs: u32) -> DateTime<Utc> {
        let local = day.and_time(NaiveTime::MIN) + TimeDelta::seconds(i64::from(secs));
        zone::resolve(self.tz, local)
    }
}

/// Iterator over a window's start and end instants, in time order, forever.
pub struct Boundaries<'a> {
    window: &'a Weekly,
    day: NaiveDate,
    pending: Option<DateTime<Utc>>,
}

impl Iterator for Boundaries<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        if let Some(end) = self.pending.take() {
            return Some(end);
        }
        // Eight days always hold a day of the set; an empty set yields nothing.
        for _ in 0..8 {
            let day = self.day;
            self.day = day.succ_opt()?;
            if self.window.days.contains(day.weekday()) {
                let w = self.window;
                let start = w.at(day, w.start);
                let end_day = if w.crosses_midnight() {
                    day.succ_opt()?
                } else {
                    day
                };
                self.pending = Some(w.at(end_day, w.end));
                return Some(start);
            }
        }
        None
    }
}

/// Iterator over a window's boundaries after a given wall time, in time order, forever
/// (see [`Weekly::upcoming`]).
pub(crate) struct Upcoming<'a> {
    window: &'a Weekly,
    /// The next day whose start is to be considered.
    day: NaiveDate,
    /// Boundaries at or before this wall time have passed and are not yielded.
    passed: NaiveDateTime,
    /// The wall time of the end that follows the start just yielded or skipped.
    end: Option<NaiveDateTime>,
}

impl Iterator for Upcoming<'_> {
    /// A boundary, and the effective wall time there when known (see
    /// [`zone::resolve_with_wall`]).
    type Item = (DateTime<Utc>, Option<NaiveDateTime>);

    fn next(&mut self) -> Option<Self::Item> {
        let w = self.window;
        // Each round looks at one pending end or one day. Walls only grow, and every start
        // from the day after `passed` on is past it, so with any day in the set a boundary
        // comes within a dozen rounds; the bound ends the search for an empty set.
        for _ in 0..32 {
            if let Some(end) = self.end.take() {
                if end > self.passed {
                    return Some(zone::resolve_with_wall(w.tz, end));
                }
                continue;
            }
            let day = self.day;
            self.day = day.succ_opt()?;
            if !w.days.contains(day.weekday()) {
                continue;
            }
            let end_day = if w.crosses_midnight() {
                day.succ_opt()?
            } else {
                day
            };
            self.end = Some(Weekly::wall(end_day, w.end));
            let start = Weekly::wall(day, w.start);
            if start > self.passed {
                return Some(zone::resolve_with_wall(w.tz, start));
            }
        }
        None
    }
}

trait SecondsFromMidnight {
    fn num_seconds_from_midnight_u32(&self) -> u32;
}

impl SecondsFromMidnight for NaiveDateTime {
    fn num_seconds_from_midnight_u32(&self) -> u32 {
        use chrono::Timelike;
        self.num_seconds_from_midnight()
    }
}

/// `HH:MM` for a number of seconds after midnight (`24:00` for a whole day).
pub fn format_hhmm(secs: u32) -> String {
    format!("{:02}:{:02}", secs / 3600, (secs % 3600) / 60)
}

impl fmt::Display for Weekly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{} {}",
            self.days,
            format_hhmm(self.start),
            format_hhmm(self.end),
            self.tz.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(list: &[Weekday]) -> DaySet {
        let mut set = DaySet::default();
        for d in list {
            set.insert(*d);
        }
        set
    }

    #[test]
    fn day_sets_display_as_runs_from_monday() {
        use Weekday::*;
        let cases: &[(&[Weekday], &str)] = &[
            (&[Mon, Tue, Wed, Thu, Fri], "Mon-Fri"),
            (&[Sat], "Sat"),
            (&[Mon, Wed, Fri], "Mon,Wed,Fri"),
            (&[Sun, Mon, Tue, Wed, Thu], "Sun-Thu"),
            (&[Fri, Sat, Sun, Mon], "Fri-Mon"),
            (&[Mon, Tue, Wed, Thu, Fri, Sat, Sun], "Mon-Sun"),
            (&[Sat, Sun], "Sat-Sun"),
            (&[Mon, Tue, Thu, Sun], "Thu,Sun-Tue"),
        ];
        for (list, want) in cases {
            assert_eq!(days(list).to_string(), *want, "{list:?}");
        }
    }

    #[test]
    fn ranges_wrap_past_sunday() {
        use Weekday::*;
        let mut set = DaySet::default();
        set.insert_range(Fri, Mon);
        assert_eq!(set, days(&[Fri, Sat, Sun, Mon]));
    }
}
