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
mod rule;
mod weekly;
pub mod zone;

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Tz;

pub use duration::{
    DurationError, DurationProblem, ExpiryError, Ttl, format_seconds, parse_duration, parse_expiry,
};
pub use events::{CronError, CronSpec, CustodianError, Edge, Events};
pub use holiday::{Holiday, HolidayError};
pub use parse::ParseError;
pub use rule::RuleSchedule;
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

/// How many windows, events and holidays a schedule's description lists in full; a longer
/// schedule is summarized (see [`Schedule::describe_at`]).
const DESCRIBED_IN_FULL: usize = 6;
/// How many windows (or events of a kind) a summary still names.
const SUMMARY_NAMES: usize = 3;

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

    /// [`Schedule::is_active`] and [`Schedule::next_change`] at `t` at once, sharing the
    /// work the two have in common (the wall time at `t`).
    pub fn active_and_next_change(&self, t: DateTime<Utc>) -> (bool, Option<DateTime<Utc>>) {
        match &self.kind {
            Kind::Windows(w) => w.active_and_next_change(t),
            Kind::Events(e) => (e.active_at(t), e.next_change(t)),
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

    /// The schedule in normalized form, short enough for a reason read at `t`: up to
    /// [`DESCRIBED_IN_FULL`] windows, events and holidays it is the whole form; a longer
    /// one names the windows (or events) that apply at `t`, else the first few, and the
    /// holiday `t` falls on, and counts the rest. (20,000 holidays made a reason of 500 KB.)
    pub fn describe_at(&self, t: DateTime<Utc>) -> String {
        match &self.kind {
            Kind::Windows(w) => w.describe_at(t),
            Kind::Events(e) => e.describe_at(t),
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
        let zones = weekly_zones(&windows);
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
        self.active_with(t, |tz| zone::effective_local(tz, t))
    }

    /// See [`Schedule::describe_at`].
    fn describe_at(&self, t: DateTime<Utc>) -> String {
        if self.windows.len() + self.holidays.len() <= DESCRIBED_IN_FULL {
            return Schedule::from_kind_display(&self.windows, &self.holidays);
        }
        let on: Vec<&Window> = self
            .windows
            .iter()
            .filter(|w| self.window_on(w, t))
            .collect();
        let shown: Vec<&Window> = if on.is_empty() {
            self.windows.iter().take(SUMMARY_NAMES).collect()
        } else {
            on.into_iter().take(SUMMARY_NAMES).collect()
        };
        let mut parts: Vec<String> = shown.iter().map(ToString::to_string).collect();
        let more = self.windows.len() - shown.len();
        if more > 0 {
            parts.push(format!("and {more} other window{}", plural(more)));
        }
        let tz = self.windows.iter().find_map(|w| match w {
            Window::Weekly(w) => Some(w.tz),
            _ => None,
        });
        let day = zone::effective_local(tz.unwrap_or(chrono_tz::UTC), t).date();
        parts.extend(holidays_at(&self.holidays, day, "except "));
        parts.join(", ")
    }

    /// Whether `window` alone lets environments run at `t` (holidays included).
    fn window_on(&self, window: &Window, t: DateTime<Utc>) -> bool {
        match window {
            Window::Always => true,
            Window::Never => false,
            Window::Absolute { from, until } => {
                from.is_none_or(|f| t >= f) && until.is_none_or(|u| t < u)
            }
            Window::Weekly(w) => {
                let wall = zone::effective_local(w.tz, t);
                !is_holiday(&self.holidays, wall.date()) && w.covers(wall)
            }
        }
    }

    /// The state at `t`, given the effective wall time at `t` in a zone.
    fn active_with(&self, t: DateTime<Utc>, mut wall_in: impl FnMut(Tz) -> NaiveDateTime) -> bool {
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
                            let wall = wall_in(w.tz);
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
        self.active_and_next_change(t).1
    }

    fn active_and_next_change(&self, t: DateTime<Utc>) -> (bool, Option<DateTime<Utc>>) {
        if self.windows.contains(&Window::Always) {
            return (true, None);
        }
        // The wall time at `t` in each zone, computed once: it gives both the state at `t`
        // and which boundaries have already passed.
        let walls = Walls::at(&self.windows, t);
        let now = self.active_with(t, |tz| walls.get(tz, t));
        (now, self.next_change_from(t, now, &walls))
    }

    /// Each weekly window's boundaries after `from`, given the wall times at `from`.
    fn upcoming(&self, from: DateTime<Utc>, walls: &Walls) -> Upcomings<'_> {
        self.windows
            .iter()
            .filter_map(|w| match w {
                Window::Weekly(w) => Some((w.tz, w.upcoming(walls.get(w.tz, from)).peekable())),
                _ => None,
            })
            .collect()
    }

    fn next_change_from(
        &self,
        t: DateTime<Utc>,
        now: bool,
        walls: &Walls,
    ) -> Option<DateTime<Utc>> {
        let mut boundaries = self.upcoming(t, walls);
        // Only needed after a quiet week, which most searches never reach.
        let mut offset_changes: Option<OffsetChanges> = None;
        let mut next_aperiodic = self.aperiodic.partition_point(|a| *a <= t);
        let mut last = t;
        let mut quiet_since = t;
        loop {
            // The earliest upcoming weekly boundary, with the wall time there in its
            // window's zone when the boundary already told it.
            let mut weekly_next: Option<(DateTime<Utc>, KnownWall)> = None;
            for (tz, it) in &mut boundaries {
                while it.next_if(|(c, _)| *c <= last).is_some() {}
                if let Some(&(c, wall)) = it.peek()
                    && weekly_next.is_none_or(|(w, _)| c < w)
                {
                    weekly_next = Some((c, wall.map(|wall| (*tz, wall))));
                }
            }
            let aperiodic = self.aperiodic.get(next_aperiodic).copied();
            let (candidate, is_aperiodic, known) = match (weekly_next, aperiodic) {
                (None, None) => return None,
                (Some((w, known)), Some(a)) if a <= w => (a, true, known.filter(|_| a == w)),
                (None, Some(a)) => (a, true, None),
                (Some((w, known)), _) => (w, false, known),
            };
            let wall_at = |tz: Tz| match known {
                Some((known_tz, wall)) if known_tz == tz => wall,
                _ => zone::effective_local(tz, candidate),
            };
            if self.active_with(candidate, wall_at) != now {
                return Some(candidate);
            }
            last = candidate;
            if is_aperiodic {
                next_aperiodic += 1;
                quiet_since = candidate;
            } else if candidate - quiet_since > QUIET_WEEK {
                // The weekly pattern is constant from here to the next interruption: an
                // aperiodic instant, or a zone's offset moving against another zone's.
                let shift = offset_changes
                    .get_or_insert_with(|| OffsetChanges::new(&self.windows))
                    .next_after(quiet_since);
                if let Some(shift) = shift.filter(|s| *s <= candidate) {
                    // The offsets changed during this quiet week; the new ones need a
                    // quiet week of their own.
                    quiet_since = shift;
                } else {
                    let aperiodic = self.aperiodic.get(next_aperiodic).copied();
                    let resume = aperiodic.into_iter().chain(shift).min()? - TimeDelta::seconds(1);
                    boundaries = self.upcoming(resume, &Walls::at(&self.windows, resume));
                    last = resume;
                    quiet_since = resume;
                }
            }
        }
    }
}

/// The next UTC-offset change of the zones of a window list, searched for lazily and
/// remembered. Only windows in two or more zones need it: in one zone the state depends on
/// the wall time alone, which any quiet week shows in full, but across zones it also
/// depends on their offsets (00:00-12:00 Europe/Paris and 11:00-24:00 UTC leave a gap in
/// summer only).
struct OffsetChanges {
    /// Per zone, what the last search found.
    zones: Vec<(Tz, Option<Searched>)>,
}

/// A zone's first offset change after `from` (`None`: it never changes again).
#[derive(Clone, Copy)]
struct Searched {
    from: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
}

impl OffsetChanges {
    fn new(windows: &[Window]) -> OffsetChanges {
        let mut zones = weekly_zones(windows);
        if zones.len() < 2 {
            zones.clear();
        }
        OffsetChanges {
            zones: zones.into_iter().map(|z| (z, None)).collect(),
        }
    }

    /// The first instant after `t` at which one of the zones changes offset.
    fn next_after(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.zones
            .iter_mut()
            .filter_map(|(tz, known)| match *known {
                // No change in `[from, next)`, so none between `t` and `next` either.
                Some(s) if s.from <= t && s.next.is_none_or(|n| n > t) => s.next,
                _ => {
                    let next = zone::next_offset_change(*tz, t);
                    *known = Some(Searched { from: t, next });
                    next
                }
            })
            .min()
    }
}

/// A zone and the effective wall time there at an instant, when a boundary already told it.
type KnownWall = Option<(Tz, NaiveDateTime)>;

/// Each weekly window's boundaries after `from`, with the window's zone.
type Upcomings<'a> = Vec<(Tz, std::iter::Peekable<weekly::Upcoming<'a>>)>;

/// Effective wall times at one instant, one per zone used by a window list's weekly
/// windows (most lists use one zone; a few, two or three).
struct Walls(Vec<(Tz, NaiveDateTime)>);

impl Walls {
    fn at(windows: &[Window], t: DateTime<Utc>) -> Walls {
        let mut walls: Vec<(Tz, NaiveDateTime)> = Vec::new();
        for window in windows {
            if let Window::Weekly(w) = window
                && !walls.iter().any(|(tz, _)| *tz == w.tz)
            {
                walls.push((w.tz, zone::effective_local(w.tz, t)));
            }
        }
        Walls(walls)
    }

    /// The wall time in `tz` (computed afresh for a zone not collected, which does not
    /// happen: every caller asks for the zone of a weekly window).
    fn get(&self, tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
        self.0
            .iter()
            .find(|(z, _)| *z == tz)
            .map_or_else(|| zone::effective_local(tz, t), |(_, wall)| *wall)
    }
}

/// The distinct zones of a list's weekly windows.
fn weekly_zones(windows: &[Window]) -> Vec<Tz> {
    let mut zones: Vec<Tz> = windows
        .iter()
        .filter_map(|w| match w {
            Window::Weekly(w) => Some(w.tz),
            _ => None,
        })
        .collect();
    zones.sort_by_key(|z| z.name());
    zones.dedup();
    zones
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

impl Schedule {
    /// A window list's normalized form.
    fn from_kind_display(windows: &[Window], holidays: &[Holiday]) -> String {
        let parts: Vec<String> = windows
            .iter()
            .map(ToString::to_string)
            .chain(holidays.iter().map(|h| format!("except {h}")))
            .collect();
        parts.join(", ")
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A long list of holidays, summarized for `day`: the holiday it falls on, if any, and how
/// many there are. Short lists are written whole. `prefix` is `except ` or `except=`.
pub(crate) fn holidays_at(
    holidays: &[Holiday],
    day: chrono::NaiveDate,
    prefix: &str,
) -> Vec<String> {
    if holidays.len() <= SUMMARY_NAMES {
        return holidays.iter().map(|h| format!("{prefix}{h}")).collect();
    }
    let count = holidays.len();
    match holidays.iter().find(|h| h.contains(day)) {
        Some(h) => vec![format!("{prefix}{h} (one of {count} holidays)")],
        None => vec![format!("{prefix}{count} holidays (none on {day})")],
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Events(e) => write!(f, "{e}"),
            Kind::Windows(w) => f.write_str(&Schedule::from_kind_display(&w.windows, &w.holidays)),
        }
    }
}

#[cfg(test)]
mod tests;
