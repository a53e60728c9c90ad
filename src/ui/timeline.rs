//! An environment's timeline as an SVG made on the server: one row per local day in its
//! rule's zone, the past 14 days from the ledger (curfew's stops, and marks for actions,
//! warnings and people's changes) and the next 7 from the schedule (planned stops).
//!
//! A row is as long as its day really is: 23 hours the night the clocks go forward, 25 the
//! night they go back. Positions are real time since local midnight, and each row carries
//! its own hour marks at the instants the wall clock shows them, so a 19:00 stop sits under
//! that row's 19:00 and the stopped night before a clock change is as long as it really
//! was (and as long as it was paid for).

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};

use crate::ledger::HistoryEntry;
use crate::schedule::RuleSchedule;
use crate::schedule::zone;

/// Width of the day labels.
const LEFT: f64 = 96.0;
/// Width of one hour.
pub const HOUR: f64 = 26.0;
/// Height of one day's row, and of its band.
const ROW: f64 = 26.0;
const BAND: f64 = 14.0;
/// Room above the first row.
const TOP: f64 = 8.0;
/// The most schedule changes drawn (a week of a minute-by-minute schedule is not a picture).
const MAX_CHANGES: usize = 2000;

/// What a stretch of time was (or will be) for the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Stopped by curfew (the ledger's stop intervals).
    Stopped,
    /// The schedule will have it stopped.
    PlannedStop,
    /// Kept up by a snooze or a wake.
    Kept,
}

impl Span {
    fn class(self) -> &'static str {
        match self {
            Span::Stopped => "tl-stopped",
            Span::PlannedStop => "tl-planned",
            Span::Kept => "tl-kept",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Span::Stopped => "stopped by curfew",
            Span::PlannedStop => "planned stop",
            Span::Kept => "kept up",
        }
    }
}

/// A stretch of time and what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub span: Span,
}

/// Everything the timeline is drawn from.
pub struct Facts<'a> {
    pub tz: Tz,
    pub now: DateTime<Utc>,
    /// curfew's stops: when, and until when (`None`: still stopped).
    pub stops: &'a [crate::ledger::StopSpan],
    /// The rule's schedule, for the days ahead.
    pub schedule: Option<&'a RuleSchedule>,
    /// A snooze or wake in force until then.
    pub kept_until: Option<DateTime<Utc>>,
    /// When the delete comes, if one does.
    pub delete_at: Option<DateTime<Utc>>,
    /// The ledger's entries (actions, people's changes), any order.
    pub events: &'a [HistoryEntry],
}

/// The days drawn: 14 before today, today, 6 after.
pub const PAST_DAYS: u64 = 14;
pub const FUTURE_DAYS: u64 = 7;

/// One local day: its date and the instants it starts and ends at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    pub date: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Day {
    pub fn hours(&self) -> f64 {
        (self.end - self.start).num_seconds() as f64 / 3600.0
    }

    /// Where `t` falls on the row, in pixels from the row's start.
    pub fn x(&self, t: DateTime<Utc>) -> f64 {
        let t = t.clamp(self.start, self.end);
        LEFT + (t - self.start).num_seconds() as f64 / 3600.0 * HOUR
    }
}

/// The local days from `PAST_DAYS` before `now`'s to `FUTURE_DAYS - 1` after it.
pub fn days(tz: Tz, now: DateTime<Utc>) -> Vec<Day> {
    let today = now.with_timezone(&tz).date_naive();
    let first = today
        .checked_sub_days(Days::new(PAST_DAYS))
        .unwrap_or(today);
    let start_of = |d: NaiveDate| zone::resolve(tz, d.and_time(NaiveTime::MIN));
    first
        .iter_days()
        .take((PAST_DAYS + FUTURE_DAYS) as usize)
        .map(|date| Day {
            date,
            start: start_of(date),
            end: start_of(date.succ_opt().unwrap_or(date)),
        })
        .collect()
}

/// The segments to draw between `from` and `to`: curfew's stops until now, and after now
/// the schedule's stops (or the time a snooze keeps the environment up).
pub fn segments(f: &Facts<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Segment> {
    let mut out: Vec<Segment> = f
        .stops
        .iter()
        .map(|&(start, end)| Segment {
            from: start.max(from),
            to: end.unwrap_or(f.now).min(f.now).min(to),
            span: Span::Stopped,
        })
        .filter(|s| s.from < s.to)
        .collect();
    let end = f.delete_at.map_or(to, |d| d.min(to));
    let mut ahead_from = f.now;
    if let Some(kept) = f.kept_until.filter(|k| *k > f.now) {
        out.push(Segment {
            from: f.now,
            to: kept.min(end),
            span: Span::Kept,
        });
        ahead_from = kept;
    }
    if let Some(schedule) = f.schedule {
        let mut at = ahead_from;
        for _ in 0..MAX_CHANGES {
            if at >= end {
                break;
            }
            let next = schedule.next_change(at).map_or(end, |n| n.min(end));
            if !schedule.is_active(at) {
                out.push(Segment {
                    from: at,
                    to: next,
                    span: Span::PlannedStop,
                });
            }
            if next <= at {
                break;
            }
            at = next;
        }
    }
    out.retain(|s| s.from < s.to);
    out
}

/// `HH:MM` in `tz`.
fn clock(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%H:%M").to_string()
}

/// What a row says about its clock change, if its day is not 24 hours long.
fn clock_change(day: &Day, tz: Tz) -> Option<String> {
    let hours = day.hours();
    if (hours - 24.0).abs() < 0.01 {
        return None;
    }
    // The first hour mark that differs from the elapsed hours is the change.
    let mut at = day.start;
    while at < day.end {
        let next = at + TimeDelta::hours(1);
        let elapsed = (next - day.start).num_hours();
        let shown = i64::from(next.with_timezone(&tz).hour());
        if shown != elapsed % 24 {
            let way = if hours < 24.0 { "forward" } else { "back" };
            return Some(format!(
                "{hours:.0} h: clocks go {way} at {}",
                clock(next, tz)
            ));
        }
        at = next;
    }
    Some(format!("{hours:.0} h"))
}

/// The hour marks of a row: each instant the local clock shows a whole hour, with the
/// hour, for every hour (lines) and every third (labels).
fn hour_marks(day: &Day, tz: Tz) -> Vec<(f64, u32)> {
    let mut marks = Vec::new();
    let mut at = day.start;
    while at <= day.end {
        marks.push((day.x(at), at.with_timezone(&tz).hour()));
        at += TimeDelta::hours(1);
    }
    marks
}

/// The timeline, drawn.
pub fn svg(f: &Facts<'_>) -> Markup {
    let days = days(f.tz, f.now);
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return html! {};
    };
    let segments = segments(f, first.start, last.end);
    let width = LEFT + 25.0 * HOUR + 150.0;
    let height = TOP + days.len() as f64 * ROW + 4.0;
    let today = f.now.with_timezone(&f.tz).date_naive();
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            aria-labelledby="tl-title tl-desc" {
            title #tl-title { "Timeline: the past 14 days and the next 7, one row per day" }
            desc #tl-desc {
                "Days in " (f.tz.name()) " as rows; stopped time as bands, actions and changes as marks. "
                "Each row is as long as its day: 23 or 25 hours when the clocks change."
            }
            @for (i, day) in days.iter().enumerate() {
                (row(f, day, TOP + i as f64 * ROW, day.date == today, &segments))
            }
        }
    }
}

fn row(f: &Facts<'_>, day: &Day, y: f64, today: bool, segments: &[Segment]) -> Markup {
    let band_y = y + ROW - BAND - 2.0;
    let row_end = day.x(day.end);
    let change = clock_change(day, f.tz);
    let marks = hour_marks(day, f.tz);
    let events: Vec<&HistoryEntry> = f
        .events
        .iter()
        .filter(|e| e.at >= day.start && e.at < day.end)
        .collect();
    html! {
        g.tl-day.tl-today[today] data-date=(day.date) data-hours=(format!("{:.0}", day.hours())) {
            text.tl-date x="4" y=(band_y + BAND - 3.0) { (day.date.format("%a %d %b")) }
            rect.tl-row x=(LEFT) y=(band_y) width=(row_end - LEFT) height=(BAND) {}
            @for s in segments.iter().filter(|s| s.from < day.end && s.to > day.start) {
                rect class=(s.span.class()) x=(day.x(s.from)) y=(band_y)
                    width=((day.x(s.to) - day.x(s.from)).max(1.0)) height=(BAND) {
                    title { (s.span.words()) " " (clock(s.from.max(day.start), f.tz)) "–" (clock(s.to.min(day.end), f.tz)) }
                }
            }
            @for (x, hour) in &marks {
                line.tl-hour x1=(x) x2=(x) y1=(band_y) y2=(band_y + BAND) {}
                @if hour % 3 == 0 && *x < row_end - 1.0 {
                    text.tl-hour-label x=(x + 1.0) y=(band_y - 1.5) { (format!("{hour:02}")) }
                }
            }
            @if let Some(change) = &change {
                text.tl-change x=(row_end + 6.0) y=(band_y + BAND - 3.0) { (change) }
            }
            @if let Some(delete) = f.delete_at.filter(|d| *d >= day.start && *d < day.end) {
                line.tl-delete x1=(day.x(delete)) x2=(day.x(delete)) y1=(band_y - 2.0) y2=(band_y + BAND + 2.0) {
                    title { "deleted at " (clock(delete, f.tz)) }
                }
            }
            @for e in &events {
                circle class=(event_class(&e.what)) cx=(day.x(e.at)) cy=(band_y + BAND / 2.0) r="4" {
                    title { (clock(e.at, f.tz)) " " (e.what) @if !e.detail.is_empty() { " — " (e.detail) } }
                }
            }
            @if today {
                line.tl-now x1=(day.x(f.now)) x2=(day.x(f.now)) y1=(band_y - 4.0) y2=(band_y + BAND + 4.0) {
                    title { "now, " (clock(f.now, f.tz)) }
                }
            }
        }
    }
}

/// A history entry's mark: curfew's actions by kind, people's changes apart.
fn event_class(what: &str) -> &'static str {
    let kind = what.split([':', ' ']).next().unwrap_or_default();
    match kind {
        "stop" => "tl-ev tl-ev-stop",
        "start" => "tl-ev tl-ev-start",
        "delete" | "warn" => "tl-ev tl-ev-delete",
        _ => "tl-ev tl-ev-person",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn paris() -> Tz {
        "Europe/Paris".parse().unwrap()
    }

    fn office_hours() -> RuleSchedule {
        RuleSchedule::Run(crate::schedule::Schedule::parse("Mon-Fri 08:00-19:00", paris()).unwrap())
    }

    #[test]
    fn the_clocks_change_days_are_23_and_25_hours_long() {
        // Wednesday 1 April 2026: the 29th of March, 14 days before... is in the rows.
        let spring = days(paris(), at("2026-04-01T10:00:00Z"));
        let sunday = spring
            .iter()
            .find(|d| d.date.to_string() == "2026-03-29")
            .unwrap();
        assert_eq!(sunday.hours(), 23.0);
        assert_eq!(
            clock_change(sunday, paris()).unwrap(),
            "23 h: clocks go forward at 03:00"
        );
        let autumn = days(paris(), at("2026-10-28T10:00:00Z"));
        let sunday = autumn
            .iter()
            .find(|d| d.date.to_string() == "2026-10-25")
            .unwrap();
        assert_eq!(sunday.hours(), 25.0);
        assert_eq!(
            clock_change(sunday, paris()).unwrap(),
            "25 h: clocks go back at 02:00"
        );
        assert_eq!(spring.len(), 21);
        assert!(
            spring
                .iter()
                .filter(|d| d.date.to_string() != "2026-03-29")
                .all(|d| d.hours() == 24.0)
        );
    }

    #[test]
    fn hour_marks_sit_where_the_wall_clock_shows_them() {
        let days = days(paris(), at("2026-04-01T10:00:00Z"));
        let sunday = days
            .iter()
            .find(|d| d.date.to_string() == "2026-03-29")
            .unwrap();
        let marks = hour_marks(sunday, paris());
        // 00, 01, then 03: two hours after midnight the clock shows 03:00.
        let hours: Vec<u32> = marks.iter().map(|(_, h)| *h).take(4).collect();
        assert_eq!(hours, [0, 1, 3, 4]);
        assert_eq!(marks[2].0, LEFT + 2.0 * HOUR);
        // 19:00 that day is 18 hours after midnight.
        let nineteen = marks.iter().find(|(_, h)| *h == 19).unwrap();
        assert_eq!(nineteen.0, LEFT + 18.0 * HOUR);
        assert_eq!(sunday.x(at("2026-03-29T17:00:00Z")), nineteen.0);
    }

    #[test]
    fn the_week_ahead_shows_the_schedule_stops_and_a_snooze_keeps_it_up() {
        let schedule = office_hours();
        // Friday 27 November 2026, 17:00 in Paris.
        let now = at("2026-11-27T16:00:00Z");
        let facts = Facts {
            tz: paris(),
            now,
            stops: &[],
            schedule: Some(&schedule),
            kept_until: None,
            delete_at: None,
            events: &[],
        };
        let ahead = segments(&facts, now, now + TimeDelta::days(7));
        assert_eq!(
            ahead[0],
            Segment {
                from: at("2026-11-27T18:00:00Z"),
                to: at("2026-11-30T07:00:00Z"),
                span: Span::PlannedStop
            },
            "from 19:00 Friday to 08:00 Monday"
        );
        let kept = Facts {
            kept_until: Some(at("2026-11-27T22:00:00Z")),
            ..facts
        };
        let ahead = segments(&kept, now, now + TimeDelta::days(7));
        assert_eq!(ahead[0].span, Span::Kept);
        assert_eq!(
            ahead[1].from,
            at("2026-11-27T22:00:00Z"),
            "stopped after the snooze"
        );
    }

    #[test]
    fn the_spring_night_stop_is_drawn_as_long_as_it_was() {
        let stops = [(at("2026-03-27T18:00:00Z"), Some(at("2026-03-30T06:00:00Z")))];
        let now = at("2026-04-01T10:00:00Z");
        let facts = Facts {
            tz: paris(),
            now,
            stops: &stops,
            schedule: None,
            kept_until: None,
            delete_at: None,
            events: &[],
        };
        let svg = svg(&facts).into_string();
        // Sunday the 29th: 23 hours, all of them stopped.
        let sunday = svg
            .split("<g class=\"tl-day")
            .find(|g| g.contains("data-date=\"2026-03-29\""))
            .unwrap();
        assert!(sunday.contains("data-hours=\"23\""), "{sunday}");
        // The 12th row (from the 18th of March): its band, all of its 23 hours stopped.
        let y = TOP + 11.0 * ROW + ROW - BAND - 2.0;
        let band = format!(
            "class=\"tl-stopped\" x=\"{LEFT}\" y=\"{y}\" width=\"{}\"",
            23.0 * HOUR
        );
        assert!(sunday.contains(&band), "{band} in {sunday}");
        assert!(sunday.contains("clocks go forward at 03:00"));
    }

    #[test]
    fn names_in_marks_are_text() {
        let now = at("2026-11-27T16:00:00Z");
        let events = [HistoryEntry {
            at: now - TimeDelta::hours(1),
            what: "snooze by <img src=x onerror=alert(1)>".into(),
            until: None,
            detail: "<script>".into(),
        }];
        let facts = Facts {
            tz: paris(),
            now,
            stops: &[],
            schedule: None,
            kept_until: None,
            delete_at: None,
            events: &events,
        };
        let svg = svg(&facts).into_string();
        assert!(!svg.contains("<img"));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
