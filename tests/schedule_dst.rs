//! Windows against the days the clocks change, for every zone chrono-tz knows.
//!
//! DESIGN.md's rules, checked here against an oracle that knows nothing of the engine (nor
//! of chrono's local-time lookups): it sees a zone only as the list of its UTC-offset
//! changes, found by scanning, and applies the rules to that list.
//! - a wall time that exists once takes effect at that instant;
//! - a wall time inside a gap takes effect at the first instant after the gap;
//! - a wall time inside a repeated stretch takes effect at its first occurrence, and is not
//!   crossed again on the second pass (nothing starts or stops twice).
//!
//! So a window `Mon-Sun S-E` is, for each local day, the instants `[resolve(S), resolve(E))`
//! (an empty set when both resolve to the same instant), and the schedule is their union.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use curfew::schedule::Schedule;

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Transitions in `[CHECK_FROM, CHECK_UNTIL)` are checked; the scan reaches `SCAN_MARGIN`
/// further on both sides so that the oracle also knows a zone's neighbouring changes.
const CHECK_FROM: &str = "2020-01-01T00:00:00Z";
const CHECK_UNTIL: &str = "2036-01-01T00:00:00Z";
const SCAN_MARGIN: i64 = 20 * DAY;
/// Offsets are compared this far apart, then the change is found to the second.
const SCAN_STEP: i64 = 6 * HOUR;
/// Each transition is checked from this long before it to this long after: its local day
/// and a day of margin on each side.
const CHECK_SPAN: i64 = 2 * DAY;

fn unix(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test instant is RFC 3339")
        .timestamp()
}

fn instant(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).expect("instant in chrono's range")
}

fn offset_at(tz: Tz, unix: i64) -> i32 {
    tz.offset_from_utc_datetime(&instant(unix).naive_utc())
        .fix()
        .local_minus_utc()
}

/// One change of a zone's UTC offset, at `at` (Unix seconds), offsets in seconds east.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shift {
    at: i64,
    before: i32,
    after: i32,
}

impl Shift {
    /// The wall times `[low, high)` (local seconds, as if UTC) that are skipped (a gap) or
    /// repeated (a fold) at this change.
    fn walls(&self) -> (i64, i64) {
        let (a, b) = (i64::from(self.before), i64::from(self.after));
        (self.at + a.min(b), self.at + a.max(b))
    }

    fn is_gap(&self) -> bool {
        self.after > self.before
    }
}

/// Every offset change of `tz` in `[from, to)`: offsets compared every `SCAN_STEP`, then the
/// first differing second found by bisection.
fn shifts(tz: Tz, from: i64, to: i64) -> Vec<Shift> {
    let mut found = Vec::new();
    let (mut lo, mut lo_offset) = (from, offset_at(tz, from));
    while lo < to {
        let hi = lo + SCAN_STEP;
        let hi_offset = offset_at(tz, hi);
        if hi_offset == lo_offset {
            lo = hi;
            continue;
        }
        let (mut before, mut after) = (lo, hi);
        while after - before > 1 {
            let mid = before + (after - before) / 2;
            if offset_at(tz, mid) == lo_offset {
                before = mid;
            } else {
                after = mid;
            }
        }
        let shift = Shift {
            at: after,
            before: lo_offset,
            after: offset_at(tz, after),
        };
        found.push(shift);
        (lo, lo_offset) = (shift.at, shift.after);
    }
    found
}

/// A zone's local time line near some instant, known only through its offset changes.
struct Timeline<'a> {
    /// The offset before `shifts[0]`.
    first: i32,
    shifts: &'a [Shift],
}

impl Timeline<'_> {
    fn offset(&self, unix: i64) -> i64 {
        let i = self.shifts.partition_point(|s| s.at <= unix);
        i64::from(if i == 0 {
            self.first
        } else {
            self.shifts[i - 1].after
        })
    }

    /// The wall time (local seconds, as if UTC) at `unix`.
    fn wall(&self, unix: i64) -> i64 {
        unix + self.offset(unix)
    }

    /// DESIGN.md: the first instant at which the wall time `wall` is reached; for a wall
    /// time in a gap, the first instant after the gap.
    fn resolve(&self, wall: i64) -> i64 {
        // Walk the stretches of constant offset in time order; the first that shows
        // `wall` is its first occurrence.
        for k in 0..=self.shifts.len() {
            if k > 0 {
                let s = self.shifts[k - 1];
                let (low, high) = s.walls();
                if s.is_gap() && (low..high).contains(&wall) {
                    return s.at;
                }
            }
            let offset = if k == 0 {
                self.first
            } else {
                self.shifts[k - 1].after
            };
            let at = wall - i64::from(offset);
            let starts = if k == 0 {
                i64::MIN
            } else {
                self.shifts[k - 1].at
            };
            let ends = self.shifts.get(k).map_or(i64::MAX, |s| s.at);
            if (starts..ends).contains(&at) {
                return at;
            }
        }
        unreachable!("every wall time is either shown or skipped")
    }
}

/// The expected behaviour of `Mon-Sun start-end` (seconds after midnight; `end` may be
/// 0 or 86 400 for midnight) between two instants.
struct Expected {
    /// One `[on, off)` per local day, in order; `on == off` when the day is empty.
    days: Vec<(i64, i64)>,
}

impl Expected {
    fn new(line: &Timeline<'_>, start: i64, end: i64, from: i64, to: i64) -> Expected {
        let first_day = line.wall(from).div_euclid(DAY) - 2;
        let last_day = line.wall(to).div_euclid(DAY) + 1;
        let days = (first_day..=last_day)
            .map(|d| {
                let end_day = if end > start { d } else { d + 1 };
                (
                    line.resolve(d * DAY + start),
                    line.resolve(end_day * DAY + end),
                )
            })
            .collect();
        Expected { days }
    }

    fn active(&self, unix: i64) -> bool {
        self.days
            .iter()
            .any(|(on, off)| (*on..*off).contains(&unix))
    }

    /// Every change in `(from, to]`, with the state it changes to.
    fn changes(&self, from: i64, to: i64) -> Vec<(i64, bool)> {
        let mut edges: Vec<i64> = self
            .days
            .iter()
            .flat_map(|(on, off)| [*on, *off])
            .filter(|t| from < *t && *t <= to)
            .collect();
        edges.sort_unstable();
        edges.dedup();
        edges
            .into_iter()
            .filter(|t| self.active(*t) != self.active(t - 1))
            .map(|t| (t, self.active(t)))
            .collect()
    }
}

fn hhmm(secs: i64) -> String {
    format!("{:02}:{:02}", secs / HOUR, secs % HOUR / MINUTE)
}

/// The wall times (seconds after midnight) to put window boundaries at for one shift:
/// just before, at, in the middle of, at the last minute of, at the end of and just after
/// the gap or fold, minute-aligned (a change at an odd second or minute rounds inwards
/// for "at" and outwards for "before"/"after").
fn key_times(shift: &Shift) -> Vec<i64> {
    let (low, high) = shift.walls();
    let floor = |w: i64| w - w.rem_euclid(MINUTE);
    let ceil = |w: i64| floor(w + MINUTE - 1);
    let mut keys: Vec<i64> = [
        ceil(low) - MINUTE,
        ceil(low),
        floor(low + (high - low) / 2),
        floor(high - 1),
        ceil(high),
        ceil(high) + MINUTE,
    ]
    .iter()
    .map(|w| w.rem_euclid(DAY))
    .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Windows `(start, end)` with a boundary at each key time: each key as a start and as an
/// end with a partner three hours away, and, when `pairs`, every ordered pair of keys (an
/// end before the start crosses midnight). An end at midnight is tried both as `00:00` and
/// as `24:00`.
fn windows(keys: &[i64], pairs: bool) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &k in keys {
        out.push((k, (k + 3 * HOUR) % DAY));
        out.push(((k - 3 * HOUR).rem_euclid(DAY), k));
        if pairs {
            out.extend(keys.iter().map(|&other| (k, other)));
        }
    }
    let midnight_ends: Vec<(i64, i64)> = out
        .iter()
        .filter(|(_, e)| *e == 0)
        .map(|(s, _)| (*s, DAY))
        .collect();
    out.extend(midnight_ends);
    out.retain(|(s, e)| s != e);
    let mut seen = HashSet::new();
    out.retain(|w| seen.insert(*w));
    out
}

/// What makes two transitions alike for a `Mon-Sun` window: the time of day they happen
/// at and the zone's offset changes nearby, relative to them.
type Pattern = (i64, i32, Vec<(i64, i32, i32)>);

#[derive(Default)]
struct Tally {
    zones: usize,
    transitions: usize,
    patterns: usize,
    gaps: usize,
    folds: usize,
    windows: usize,
    changes: usize,
    empty_days: usize,
    failures: Vec<String>,
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.zones += other.zones;
        self.transitions += other.transitions;
        self.patterns += other.patterns;
        self.gaps += other.gaps;
        self.folds += other.folds;
        self.windows += other.windows;
        self.changes += other.changes;
        self.empty_days += other.empty_days;
        self.failures.extend(other.failures);
    }
}

/// Checks one window around one shift; returns how many changes it checked, or why it
/// failed.
fn check_window(
    tz: Tz,
    line: &Timeline<'_>,
    shift: &Shift,
    (start, end): (i64, i64),
) -> Result<(usize, usize), String> {
    let spec = format!("Mon-Sun {}-{} {}", hhmm(start), hhmm(end), tz.name());
    let schedule = Schedule::parse(&spec, chrono_tz::UTC).map_err(|e| format!("{spec}: {e}"))?;
    let (from, to) = (shift.at - CHECK_SPAN, shift.at + CHECK_SPAN);
    let expected = Expected::new(line, start, end, from, to);
    let want = expected.changes(from, to);
    let got: Vec<(i64, bool)> = schedule
        .transitions(instant(from), instant(to))
        .map(|(t, on)| (t.timestamp(), on))
        .collect();
    let context = || {
        format!(
            "{spec} around the {} at {} ({} -> {}):\n  want {}\n  got  {}",
            if shift.is_gap() { "gap" } else { "fold" },
            instant(shift.at),
            shift.before,
            shift.after,
            show(&want),
            show(&got)
        )
    };
    if got != want {
        return Err(context());
    }
    // Alternating, starting from the state at `from`.
    let mut state = schedule.is_active(instant(from));
    if state != expected.active(from) {
        return Err(format!("{} (state at the start differs)", context()));
    }
    for &(t, on) in &got {
        if on == state {
            return Err(format!("{} (two changes to {on} in a row)", context()));
        }
        state = on;
        if schedule.is_active(instant(t - 1)) == on || schedule.is_active(instant(t)) != on {
            return Err(format!(
                "{} (is_active disagrees at {})",
                context(),
                instant(t)
            ));
        }
    }
    // Every non-empty day inside the span starts and stops (unless it runs straight into
    // the next day's window), and an empty day changes nothing.
    let mut empty_days = 0;
    for (i, &(on, off)) in expected.days.iter().enumerate() {
        if on <= from || off > to {
            continue;
        }
        if on == off {
            empty_days += 1;
            continue;
        }
        let merged_before = i > 0 && expected.days[i - 1].1 >= on;
        let merged_after = expected.days.get(i + 1).is_some_and(|next| next.0 <= off);
        if !merged_before && !got.contains(&(on, true)) {
            return Err(format!(
                "{} (day starting {} never starts)",
                context(),
                instant(on)
            ));
        }
        if !merged_after && !got.contains(&(off, false)) {
            return Err(format!(
                "{} (day ending {} never stops)",
                context(),
                instant(off)
            ));
        }
    }
    Ok((got.len(), empty_days))
}

fn show(changes: &[(i64, bool)]) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|(t, on)| {
            format!(
                "{}{}",
                instant(*t).format("%m-%dT%H:%M:%S"),
                if *on { "+" } else { "-" }
            )
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

/// Checks every transition of `tz`. The first transition of each local pattern (`seen`
/// is shared by all zones) gets every pair of key times as a window; the others, which the
/// engine cannot tell apart from it, get each key time as a start and as an end.
fn check_zone(tz: Tz, seen: &Mutex<HashSet<Pattern>>, tally: &mut Tally) {
    let (from, until) = (unix(CHECK_FROM), unix(CHECK_UNTIL));
    let all = shifts(tz, from - SCAN_MARGIN, until + SCAN_MARGIN);
    let first_offset = offset_at(tz, from - SCAN_MARGIN);
    let mut checked_any = false;
    for shift in &all {
        if !(from..until).contains(&shift.at) {
            continue;
        }
        checked_any = true;
        // The oracle sees the zone's changes within ten days either side.
        let lo = all.partition_point(|s| s.at < shift.at - 10 * DAY);
        let hi = all.partition_point(|s| s.at <= shift.at + 10 * DAY);
        let line = Timeline {
            first: if lo == 0 {
                first_offset
            } else {
                all[lo - 1].after
            },
            shifts: &all[lo..hi],
        };
        tally.transitions += 1;
        if shift.is_gap() {
            tally.gaps += 1;
        } else {
            tally.folds += 1;
        }
        let pattern: Pattern = (
            shift.at.rem_euclid(DAY),
            line.first,
            line.shifts
                .iter()
                .map(|s| (s.at - shift.at, s.before, s.after))
                .collect(),
        );
        let new_pattern = seen.lock().unwrap().insert(pattern);
        if new_pattern {
            tally.patterns += 1;
        }
        for window in windows(&key_times(shift), new_pattern) {
            tally.windows += 1;
            match check_window(tz, &line, shift, window) {
                Ok((changes, empty)) => {
                    tally.changes += changes;
                    tally.empty_days += empty;
                }
                Err(e) => tally.failures.push(e),
            }
        }
    }
    if checked_any {
        tally.zones += 1;
    }
}

#[test]
fn every_zone_every_transition_2020_to_2035_follows_the_design_rules() {
    let began = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let next = AtomicUsize::new(0);
    let seen = Mutex::new(HashSet::new());
    let total = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut tally = Tally::default();
                while let Some(tz) = TZ_VARIANTS.get(next.fetch_add(1, Ordering::Relaxed)) {
                    check_zone(*tz, &seen, &mut tally);
                }
                total.lock().unwrap().absorb(tally);
            });
        }
    });
    let t = total.into_inner().unwrap();
    eprintln!(
        "schedule_dst: {} zones scanned, {} with offset changes in 2020-2035: \
         {} transitions ({} gaps, {} folds, {} local patterns), {} windows, \
         {} changes checked, {} empty days, {} failures, {:.1?}",
        TZ_VARIANTS.len(),
        t.zones,
        t.transitions,
        t.gaps,
        t.folds,
        t.patterns,
        t.windows,
        t.changes,
        t.empty_days,
        t.failures.len(),
        began.elapsed()
    );
    for failure in t.failures.iter().take(20) {
        eprintln!("{failure}");
    }
    assert!(t.failures.is_empty(), "{} windows failed", t.failures.len());
    // Guard against a scan that silently finds nothing.
    assert!(t.zones > 150, "only {} zones change offset", t.zones);
    assert!(t.transitions > 5_000, "only {} transitions", t.transitions);
    assert!(t.patterns > 50, "only {} local patterns", t.patterns);
    assert!(t.windows > 50_000, "only {} windows", t.windows);
    assert!(t.empty_days > 0, "no window fell wholly inside a gap");
}

/// A hand-checked case: every change of `spec` in `(from, to]`.
struct Case {
    name: &'static str,
    spec: &'static str,
    from: &'static str,
    to: &'static str,
    /// `(instant, state it changes to)`; `+` starts, `-` stops.
    changes: &'static [(&'static str, char)],
}

const CASES: &[Case] = &[
    // Europe/Paris, 2026-03-29 (Sunday): 02:00 CET jumps to 03:00 CEST at 01:00Z.
    Case {
        name: "Paris spring: office hours either side of the gap keep their wall times",
        spec: "Mon-Fri 08:00-19:00 Europe/Paris",
        from: "2026-03-27T00:00:00Z",
        to: "2026-03-31T00:00:00Z",
        changes: &[
            ("2026-03-27T07:00:00Z", '+'),
            ("2026-03-27T18:00:00Z", '-'),
            ("2026-03-30T06:00:00Z", '+'),
            ("2026-03-30T17:00:00Z", '-'),
        ],
    },
    Case {
        name: "Paris spring: a start at 02:30 takes effect when the gap ends",
        spec: "Sun 02:30-04:00 Europe/Paris",
        from: "2026-03-28T00:00:00Z",
        to: "2026-03-30T00:00:00Z",
        changes: &[("2026-03-29T01:00:00Z", '+'), ("2026-03-29T02:00:00Z", '-')],
    },
    Case {
        name: "Paris spring: a night window ending at 02:30 stops when the gap ends",
        spec: "Sat 22:00-02:30 Europe/Paris",
        from: "2026-03-28T00:00:00Z",
        to: "2026-03-30T00:00:00Z",
        changes: &[("2026-03-28T21:00:00Z", '+'), ("2026-03-29T01:00:00Z", '-')],
    },
    Case {
        name: "Paris spring: a window wholly inside the gap does nothing that day",
        spec: "Sun 02:15-02:45 Europe/Paris",
        from: "2026-03-28T00:00:00Z",
        to: "2026-03-30T00:00:00Z",
        changes: &[],
    },
    Case {
        name: "Paris spring: a window ending in the gap stops when the gap ends",
        spec: "Sun 01:30-02:30 Europe/Paris",
        from: "2026-03-28T00:00:00Z",
        to: "2026-03-30T00:00:00Z",
        changes: &[("2026-03-29T00:30:00Z", '+'), ("2026-03-29T01:00:00Z", '-')],
    },
    // Europe/Paris, 2026-10-25 (Sunday): 03:00 CEST goes back to 02:00 CET at 01:00Z.
    Case {
        name: "Paris autumn: office hours either side of the fold keep their wall times",
        spec: "Mon-Fri 08:00-19:00 Europe/Paris",
        from: "2026-10-23T00:00:00Z",
        to: "2026-10-27T00:00:00Z",
        changes: &[
            ("2026-10-23T06:00:00Z", '+'),
            ("2026-10-23T17:00:00Z", '-'),
            ("2026-10-26T07:00:00Z", '+'),
            ("2026-10-26T18:00:00Z", '-'),
        ],
    },
    Case {
        name: "Paris autumn: a start at 02:30 takes effect at its first occurrence, once",
        spec: "Sun 02:30-08:00 Europe/Paris",
        from: "2026-10-24T00:00:00Z",
        to: "2026-10-26T00:00:00Z",
        changes: &[("2026-10-25T00:30:00Z", '+'), ("2026-10-25T07:00:00Z", '-')],
    },
    Case {
        name: "Paris autumn: a stop at 02:30 is not undone by the second 02:00-02:30",
        spec: "Sat 20:00-02:30 Europe/Paris",
        from: "2026-10-24T00:00:00Z",
        to: "2026-10-26T00:00:00Z",
        changes: &[("2026-10-24T18:00:00Z", '+'), ("2026-10-25T00:30:00Z", '-')],
    },
    Case {
        name: "Paris autumn: a window inside the repeated hour runs once",
        spec: "Sun 02:15-02:45 Europe/Paris",
        from: "2026-10-24T00:00:00Z",
        to: "2026-10-26T00:00:00Z",
        changes: &[("2026-10-25T00:15:00Z", '+'), ("2026-10-25T00:45:00Z", '-')],
    },
    Case {
        name: "Paris autumn: 03:00 exists once, after the repeated hour",
        spec: "Sun 03:00-04:00 Europe/Paris",
        from: "2026-10-24T00:00:00Z",
        to: "2026-10-26T00:00:00Z",
        changes: &[("2026-10-25T02:00:00Z", '+'), ("2026-10-25T03:00:00Z", '-')],
    },
    // America/New_York, 2026-03-08 (Sunday): 02:00 EST jumps to 03:00 EDT at 07:00Z.
    Case {
        name: "New York spring: office hours either side of the gap",
        spec: "Mon-Fri 09:00-17:00 America/New_York",
        from: "2026-03-06T00:00:00Z",
        to: "2026-03-10T00:00:00Z",
        changes: &[
            ("2026-03-06T14:00:00Z", '+'),
            ("2026-03-06T22:00:00Z", '-'),
            ("2026-03-09T13:00:00Z", '+'),
            ("2026-03-09T21:00:00Z", '-'),
        ],
    },
    Case {
        name: "New York spring: a start at 02:30 takes effect when the gap ends",
        spec: "Sun 02:30-09:00 America/New_York",
        from: "2026-03-07T00:00:00Z",
        to: "2026-03-09T00:00:00Z",
        changes: &[("2026-03-08T07:00:00Z", '+'), ("2026-03-08T13:00:00Z", '-')],
    },
    Case {
        name: "New York spring: a stop at 02:00 (the gap's first minute) takes effect at its end",
        spec: "Sat 23:00-02:00 America/New_York",
        from: "2026-03-07T00:00:00Z",
        to: "2026-03-09T00:00:00Z",
        changes: &[("2026-03-08T04:00:00Z", '+'), ("2026-03-08T07:00:00Z", '-')],
    },
    // America/New_York, 2026-11-01 (Sunday): 02:00 EDT goes back to 01:00 EST at 06:00Z.
    Case {
        name: "New York autumn: a start at 01:30 takes effect at its first occurrence",
        spec: "Sun 01:30-03:00 America/New_York",
        from: "2026-10-31T00:00:00Z",
        to: "2026-11-02T00:00:00Z",
        changes: &[("2026-11-01T05:30:00Z", '+'), ("2026-11-01T08:00:00Z", '-')],
    },
    Case {
        name: "New York autumn: a stop at 01:30 holds through the second 01:00-01:30",
        spec: "Sat 22:00-01:30 America/New_York",
        from: "2026-10-31T00:00:00Z",
        to: "2026-11-02T00:00:00Z",
        changes: &[("2026-11-01T02:00:00Z", '+'), ("2026-11-01T05:30:00Z", '-')],
    },
    // Australia/Lord_Howe: half-hour daylight saving time.
    // 2026-04-05 (Sunday): 02:00 (+11) goes back to 01:30 (+10:30) at 15:00Z the day before.
    Case {
        name: "Lord Howe autumn: a start in the repeated half hour, first occurrence",
        spec: "Sun 01:45-03:00 Australia/Lord_Howe",
        from: "2026-04-03T00:00:00Z",
        to: "2026-04-06T00:00:00Z",
        changes: &[("2026-04-04T14:45:00Z", '+'), ("2026-04-04T16:30:00Z", '-')],
    },
    Case {
        name: "Lord Howe autumn: a stop in the repeated half hour, once",
        spec: "Sat 22:00-01:45 Australia/Lord_Howe",
        from: "2026-04-03T00:00:00Z",
        to: "2026-04-06T00:00:00Z",
        changes: &[("2026-04-04T11:00:00Z", '+'), ("2026-04-04T14:45:00Z", '-')],
    },
    // 2026-10-04 (Sunday): 02:00 (+10:30) jumps to 02:30 (+11) at 15:30Z the day before.
    Case {
        name: "Lord Howe spring: a start in the half-hour gap takes effect when it ends",
        spec: "Sun 02:15-04:00 Australia/Lord_Howe",
        from: "2026-10-02T00:00:00Z",
        to: "2026-10-05T00:00:00Z",
        changes: &[("2026-10-03T15:30:00Z", '+'), ("2026-10-03T17:00:00Z", '-')],
    },
    Case {
        name: "Lord Howe spring: 02:00-02:30 is the gap exactly, so that day is empty",
        spec: "Sun 02:00-02:30 Australia/Lord_Howe",
        from: "2026-10-02T00:00:00Z",
        to: "2026-10-05T00:00:00Z",
        changes: &[],
    },
    // America/Havana, 2026-03-08 (Sunday): midnight CST jumps to 01:00 CDT at 05:00Z.
    Case {
        name: "Havana spring: a window ending at 24:00 stops when the midnight gap ends",
        spec: "Sat 20:00-24:00 America/Havana",
        from: "2026-03-07T00:00:00Z",
        to: "2026-03-09T00:00:00Z",
        changes: &[("2026-03-08T01:00:00Z", '+'), ("2026-03-08T05:00:00Z", '-')],
    },
    Case {
        name: "Havana spring: a start at 00:30 takes effect when the midnight gap ends",
        spec: "Sun 00:30-08:00 America/Havana",
        from: "2026-03-07T00:00:00Z",
        to: "2026-03-09T00:00:00Z",
        changes: &[("2026-03-08T05:00:00Z", '+'), ("2026-03-08T12:00:00Z", '-')],
    },
    Case {
        name: "Havana spring: Sunday 00:00-01:00 does not exist, so that day is empty",
        spec: "Sun 00:00-01:00 America/Havana",
        from: "2026-03-07T00:00:00Z",
        to: "2026-03-09T00:00:00Z",
        changes: &[],
    },
    // America/Havana, 2026-11-01 (Sunday): 01:00 CDT goes back to midnight CST at 05:00Z.
    Case {
        name: "Havana autumn: a start at 00:30 on the repeated hour after midnight, once",
        spec: "Sun 00:30-06:00 America/Havana",
        from: "2026-10-31T00:00:00Z",
        to: "2026-11-02T00:00:00Z",
        changes: &[("2026-11-01T04:30:00Z", '+'), ("2026-11-01T11:00:00Z", '-')],
    },
    // America/Santiago, 2026-04-05: Saturday 24:00 (-03) goes back to Saturday 23:00 (-04)
    // at 03:00Z, so Saturday 23:00-24:00 happens twice.
    Case {
        name: "Santiago autumn: a stop at Saturday 23:30 is not undone by the second 23:00",
        spec: "Sat 20:00-23:30 America/Santiago",
        from: "2026-04-03T00:00:00Z",
        to: "2026-04-06T00:00:00Z",
        changes: &[("2026-04-04T23:00:00Z", '+'), ("2026-04-05T02:30:00Z", '-')],
    },
    Case {
        name: "Santiago autumn: a start at Saturday 23:30 runs through the repeated hour",
        spec: "Sat 23:30-02:00 America/Santiago",
        from: "2026-04-03T00:00:00Z",
        to: "2026-04-06T00:00:00Z",
        changes: &[("2026-04-05T02:30:00Z", '+'), ("2026-04-05T06:00:00Z", '-')],
    },
    Case {
        name: "Santiago autumn: 24:00 on the Saturday is the midnight after both 23:00s",
        spec: "Sat 20:00-24:00 America/Santiago",
        from: "2026-04-03T00:00:00Z",
        to: "2026-04-06T00:00:00Z",
        changes: &[("2026-04-04T23:00:00Z", '+'), ("2026-04-05T04:00:00Z", '-')],
    },
    // America/Santiago, 2026-09-06: Sunday 00:00 (-04) jumps to 01:00 (-03) at 04:00Z.
    Case {
        name: "Santiago spring: Saturday 24:00 falls in the midnight gap",
        spec: "Sat 20:00-24:00 America/Santiago",
        from: "2026-09-04T00:00:00Z",
        to: "2026-09-07T00:00:00Z",
        changes: &[("2026-09-06T00:00:00Z", '+'), ("2026-09-06T04:00:00Z", '-')],
    },
    Case {
        name: "Santiago spring: Sunday 00:00 takes effect when the midnight gap ends",
        spec: "Sun 00:00-08:00 America/Santiago",
        from: "2026-09-04T00:00:00Z",
        to: "2026-09-07T00:00:00Z",
        changes: &[("2026-09-06T04:00:00Z", '+'), ("2026-09-06T11:00:00Z", '-')],
    },
    // Regression: windows in two zones that together cover every instant while Paris is
    // on CET leave 10:00-11:00Z uncovered once it is on CEST. The weekly pattern is quiet
    // for months in winter, which once made next_change answer "never".
    Case {
        name: "two zones covering winter but not summer: the first summer hole is found",
        spec: "Mon-Sun 00:00-12:00 Europe/Paris, Mon-Sun 11:00-24:00 UTC",
        from: "2026-01-10T12:00:00Z",
        to: "2026-03-30T12:00:00Z",
        changes: &[
            ("2026-03-29T10:00:00Z", '-'),
            ("2026-03-29T11:00:00Z", '+'),
            ("2026-03-30T10:00:00Z", '-'),
            ("2026-03-30T11:00:00Z", '+'),
        ],
    },
];

#[test]
fn named_days_the_clocks_change() {
    let mut failures = Vec::new();
    for case in CASES {
        let schedule = Schedule::parse(case.spec, chrono_tz::UTC).expect(case.spec);
        let (from, to) = (unix(case.from), unix(case.to));
        let want: Vec<(i64, bool)> = case
            .changes
            .iter()
            .map(|(t, sign)| (unix(t), *sign == '+'))
            .collect();
        let got: Vec<(i64, bool)> = schedule
            .transitions(instant(from), instant(to))
            .map(|(t, on)| (t.timestamp(), on))
            .collect();
        let agrees = want.iter().all(|&(t, on)| {
            schedule.is_active(instant(t - 1)) != on && schedule.is_active(instant(t)) == on
        });
        if got != want || !agrees {
            failures.push(format!(
                "{}: `{}`\n  want {}\n  got  {}{}",
                case.name,
                case.spec,
                show(&want),
                show(&got),
                if agrees { "" } else { " (is_active disagrees)" }
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
