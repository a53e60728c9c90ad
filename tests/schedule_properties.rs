//! Properties of schedules over random specs and instants, and parsers that never panic.
//!
//! - `next_change(t)` is the first change after `t`: the state flips there, not a second
//!   before, and nowhere in between; `None` means the state holds.
//! - A schedule's `Display` parses back to a schedule that displays the same and agrees
//!   with the original everywhere we look.
//! - `Schedule::parse`, `Ttl::parse` and `parse_expiry` return errors, never panic, on any
//!   text.
//!
//! Specs are generated as structures (windows, absolute ranges, holidays, crons) around an
//! anchor instant, often a day the clocks change in one of the zones, so that the
//! interesting cases are common rather than lucky.

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use curfew::schedule::{Schedule, Ttl, parse_expiry, zone};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// 2020-01-01T00:00:00Z and 2036-01-01T00:00:00Z.
const YEARS: std::ops::Range<i64> = 1_577_836_800..2_082_758_400;

const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
    "America/Santiago",
    "America/Havana",
    "Europe/London",
    "Asia/Beirut",
];

fn zone_at(i: usize) -> Tz {
    ZONES[i].parse().expect("known zone")
}

fn instant(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).expect("instant in chrono's range")
}

/// Runs a property with its own case count, and says how many inputs it ran.
fn run<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let count = AtomicUsize::new(0);
    let began = Instant::now();
    let result = runner.run(&strategy, |value| {
        count.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    eprintln!(
        "{name}: {} inputs run ({cases} cases asked), {:.1?}",
        count.load(Ordering::Relaxed),
        began.elapsed()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Window-list specs

const DAY_NAMES: [[&str; 3]; 7] = [
    ["Mon", "mon", "Monday"],
    ["Tue", "TUE", "tues"],
    ["Wed", "wed", "Wednesday"],
    ["Thu", "thu", "Thursday"],
    ["Fri", "fri", "Friday"],
    ["Sat", "SAT", "saturday"],
    ["Sun", "sun", "Sunday"],
];

/// `Mon`, or `Fri-Mon` when `to` is given (ranges wrap past Sunday).
#[derive(Debug, Clone)]
struct DayItem {
    from: usize,
    to: Option<usize>,
    spelling: usize,
}

#[derive(Debug, Clone)]
struct WeeklySpec {
    /// Empty: no day token, so every day.
    days: Vec<DayItem>,
    /// Minutes after midnight.
    start: i64,
    /// Minutes after midnight, `0..=1440`; at or before `start` crosses midnight.
    end: i64,
    /// Index into `ZONES`; `None` uses the default zone.
    zone: Option<usize>,
}

/// Absolute instants are seconds from the anchor, written at `offset` seconds east.
#[derive(Debug, Clone)]
enum Entry {
    Weekly(WeeklySpec),
    Range {
        from: i64,
        length: i64,
        offset: i32,
        spaced: bool,
    },
    From {
        at: i64,
        offset: i32,
        joined: bool,
    },
    Until {
        at: i64,
        offset: i32,
        joined: bool,
    },
    Always,
    Never,
}

#[derive(Debug, Clone)]
struct HolidaySpec {
    /// Days from the anchor's UTC date.
    first: i64,
    extra_days: i64,
}

#[derive(Debug, Clone)]
struct Spec {
    entries: Vec<Entry>,
    holidays: Vec<HolidaySpec>,
    default_zone: usize,
}

fn hhmm(minutes: i64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn rfc3339(unix: i64, offset: i32) -> String {
    let offset = FixedOffset::east_opt(offset).expect("offset in range");
    instant(unix)
        .with_timezone(&offset)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn date(unix: i64, days: i64) -> NaiveDate {
    instant(unix).date_naive() + Duration::days(days)
}

impl Spec {
    fn render(&self, anchor: i64) -> String {
        let mut parts: Vec<String> = self.entries.iter().map(|e| e.render(anchor)).collect();
        for h in &self.holidays {
            let first = date(anchor, h.first);
            parts.push(if h.extra_days == 0 {
                format!("except {first}")
            } else {
                format!("except {first}..{}", first + Duration::days(h.extra_days))
            });
        }
        parts.join(", ")
    }

    fn default_tz(&self) -> Tz {
        zone_at(self.default_zone)
    }

    /// Instants near which the state could change: absolute ends, and the local midnights
    /// that start and end holidays in each zone the spec uses.
    fn aperiodic(&self, anchor: i64) -> Vec<i64> {
        let mut out = Vec::new();
        for e in &self.entries {
            match e {
                Entry::Range { from, length, .. } => {
                    out.extend([anchor + from, anchor + from + length])
                }
                Entry::From { at, .. } | Entry::Until { at, .. } => out.push(anchor + at),
                _ => {}
            }
        }
        for tz in self.zones() {
            for h in &self.holidays {
                for day in [h.first, h.first + h.extra_days + 1] {
                    let midnight = date(anchor, day).and_hms_opt(0, 0, 0).expect("midnight");
                    if let Some(t) = tz.from_local_datetime(&midnight).earliest() {
                        out.push(t.timestamp());
                    }
                }
            }
        }
        out
    }

    fn weekly(&self) -> impl Iterator<Item = (&WeeklySpec, Tz)> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Weekly(w) => Some((w, w.zone.map_or(self.default_tz(), zone_at))),
            _ => None,
        })
    }

    fn zones(&self) -> Vec<Tz> {
        let mut zones: Vec<Tz> = self.weekly().map(|(_, tz)| tz).collect();
        zones.sort_by_key(|z| z.name());
        zones.dedup();
        zones
    }

    /// Instants within a minute of every weekly boundary in `[from, to]`, and of every
    /// offset change of the zones used, where the state could change.
    fn boundaries(&self, from: i64, to: i64) -> Vec<i64> {
        let mut out = Vec::new();
        for (w, tz) in self.weekly() {
            let first = instant(from).with_timezone(&tz).date_naive() - Duration::days(1);
            let days = (to - from) / DAY + 2;
            for d in 0..=days {
                let day = first + Duration::days(d);
                for minutes in [w.start, w.end] {
                    let local =
                        day.and_hms_opt(0, 0, 0).expect("midnight") + Duration::minutes(minutes);
                    let found = tz.from_local_datetime(&local);
                    for t in found.earliest().into_iter().chain(found.latest()) {
                        out.extend([-MINUTE, -1, 0, MINUTE].map(|d| t.timestamp() + d));
                    }
                }
            }
        }
        for tz in self.zones() {
            let mut at = instant(from);
            while let Some(change) = zone::next_offset_change(tz, at).filter(|c| *c <= instant(to))
            {
                out.extend([-1, 0, MINUTE].map(|d| change.timestamp() + d));
                at = change;
            }
        }
        out.retain(|t| (from..=to).contains(t));
        out
    }
}

impl Entry {
    fn render(&self, anchor: i64) -> String {
        match self {
            Entry::Weekly(w) => {
                let days: Vec<String> = w
                    .days
                    .iter()
                    .map(|d| match d.to {
                        None => DAY_NAMES[d.from][d.spelling].to_string(),
                        Some(to) => format!(
                            "{}-{}",
                            DAY_NAMES[d.from][d.spelling], DAY_NAMES[to][d.spelling]
                        ),
                    })
                    .collect();
                let mut text = days.join(",");
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&format!("{}-{}", hhmm(w.start), hhmm(w.end)));
                if let Some(z) = w.zone {
                    text.push(' ');
                    text.push_str(ZONES[z]);
                }
                text
            }
            Entry::Range {
                from,
                length,
                offset,
                spaced,
            } => {
                let (a, b) = (
                    rfc3339(anchor + from, *offset),
                    rfc3339(anchor + from + length, *offset),
                );
                if *spaced {
                    format!("{a} - {b}")
                } else {
                    format!("{a}-{b}")
                }
            }
            Entry::From { at, offset, joined } => {
                format!(
                    "from{}{}",
                    if *joined { "-" } else { " " },
                    rfc3339(anchor + at, *offset)
                )
            }
            Entry::Until { at, offset, joined } => {
                format!(
                    "until{}{}",
                    if *joined { "-" } else { " " },
                    rfc3339(anchor + at, *offset)
                )
            }
            Entry::Always => "always".into(),
            Entry::Never => "never".into(),
        }
    }
}

fn day_item() -> impl Strategy<Value = DayItem> {
    (0..7usize, prop::option::of(0..7usize), 0..3usize).prop_map(|(from, to, spelling)| DayItem {
        from,
        to,
        spelling,
    })
}

/// Minutes after midnight, often on the hours the clocks change at.
fn clock_minutes() -> impl Strategy<Value = i64> {
    prop_oneof![
        0..1440i64,
        prop::sample::select(vec![
            0, 30, 45, 60, 90, 120, 135, 150, 165, 180, 210, 1380, 1410, 1439
        ]),
        (0..24i64).prop_map(|h| h * 60),
    ]
}

fn weekly() -> impl Strategy<Value = WeeklySpec> {
    (
        prop_oneof![Just(vec![]), prop::collection::vec(day_item(), 1..=3)],
        clock_minutes(),
        prop_oneof![clock_minutes(), Just(1440i64), Just(0i64)],
        prop::option::of(0..ZONES.len()),
    )
        .prop_map(|(days, start, end, zone)| WeeklySpec {
            days,
            start,
            // Start equal to end is refused by the parser (00:00-24:00 is fine).
            end: if end == start {
                (start + 60) % 1440
            } else {
                end
            },
            zone,
        })
}

/// Offsets for absolute instants: `Z`, whole hours, and the odd ones.
fn fixed_offset() -> impl Strategy<Value = i32> {
    prop::sample::select(vec![0, 3600, -18000, 19800, 45900, -34200, 7200])
}

/// Seconds around the anchor: often minute-aligned, sometimes not.
fn near(span: i64) -> impl Strategy<Value = i64> {
    prop_oneof![
        (-span / MINUTE..span / MINUTE).prop_map(|m| m * MINUTE),
        -span..span,
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        12 => weekly().prop_map(Entry::Weekly),
        2 => (near(10 * DAY), 60..5 * DAY, fixed_offset(), any::<bool>()).prop_map(
            |(from, length, offset, spaced)| Entry::Range { from, length, offset, spaced }
        ),
        1 => (near(10 * DAY), fixed_offset(), any::<bool>())
            .prop_map(|(at, offset, joined)| Entry::From { at, offset, joined }),
        1 => (near(10 * DAY), fixed_offset(), any::<bool>())
            .prop_map(|(at, offset, joined)| Entry::Until { at, offset, joined }),
        1 => Just(Entry::Always),
        1 => Just(Entry::Never),
    ]
}

/// Two every-day windows in two zones that overlap by up to three hours: together they
/// cover every instant, or leave a hole only while the zones' offsets differ enough.
fn covering_pair() -> impl Strategy<Value = Vec<Entry>> {
    (60..1380i64, 0..=180i64, 0..ZONES.len(), 0..ZONES.len()).prop_map(|(split, overlap, a, b)| {
        let window = |start: i64, end: i64, zone: usize| {
            Entry::Weekly(WeeklySpec {
                days: vec![],
                start,
                end,
                zone: Some(zone),
            })
        };
        vec![
            window(0, split, a),
            window((split - overlap).max(0), 1440, b),
        ]
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![
            7 => prop::collection::vec(entry(), 1..=3),
            2 => covering_pair(),
        ],
        prop::collection::vec(
            (-10..10i64, 0..3i64).prop_map(|(first, extra_days)| HolidaySpec { first, extra_days }),
            0..=2,
        ),
        0..ZONES.len(),
    )
        .prop_map(|(entries, holidays, default_zone)| Spec {
            entries,
            holidays,
            default_zone,
        })
}

/// Every offset change of the test zones in 2020-2035: anchors near them make the days
/// the clocks change common.
fn offset_changes() -> Vec<i64> {
    let mut out = Vec::new();
    for i in 0..ZONES.len() {
        let mut at = instant(YEARS.start);
        while let Some(c) =
            zone::next_offset_change(zone_at(i), at).filter(|c| c.timestamp() < YEARS.end)
        {
            out.push(c.timestamp());
            at = c;
        }
    }
    out
}

fn anchor(changes: Vec<i64>) -> impl Strategy<Value = i64> {
    prop_oneof![YEARS, prop::sample::select(changes)]
}

// ---------------------------------------------------------------------------------------
// The properties

/// (a) and (b): `next_change(t)` against sampling. Says whether there was a next change.
fn check_next_change(
    schedule: &Schedule,
    t: i64,
    probes: impl Fn(i64, i64) -> Vec<i64>,
) -> Result<bool, TestCaseError> {
    let at = |u: i64| schedule.is_active(instant(u));
    let state = at(t);
    match schedule.next_change(instant(t)) {
        Some(n) => {
            let n = n.timestamp();
            prop_assert!(
                n > t,
                "next change {} is not after {}",
                instant(n),
                instant(t)
            );
            prop_assert_ne!(at(n), state, "no change at next_change {}", instant(n));
            prop_assert_eq!(
                at(n - 1),
                state,
                "changed before next_change {}",
                instant(n)
            );
            // Nothing changes in between: every minute up to 9 days, else every hour for
            // 120 days, else 3 000 even steps.
            let gap = n - t;
            let step = match gap {
                g if g <= 9 * DAY => MINUTE,
                g if g <= 120 * DAY => HOUR,
                g => (g / 3_000).max(HOUR),
            };
            let mut u = t + step;
            while u < n {
                prop_assert_eq!(
                    at(u),
                    state,
                    "changed at {} before next_change {}",
                    instant(u),
                    instant(n)
                );
                u += step;
            }
            for u in probes(t, n - 1) {
                if t < u && u < n {
                    prop_assert_eq!(
                        at(u),
                        state,
                        "changed at {} before next_change {}",
                        instant(u),
                        instant(n)
                    );
                }
            }
        }
        None => {
            let end = t + 30 * DAY;
            let hourly = (1..=30 * 24).map(|h| t + h * HOUR);
            let probes = probes(t, end).into_iter().filter(|u| t < *u && *u <= end);
            for u in hourly.chain(probes) {
                prop_assert_eq!(
                    at(u),
                    state,
                    "changed at {} though next_change is None",
                    instant(u)
                );
            }
            return Ok(false);
        }
    }
    Ok(true)
}

/// How many checked instants had a next change, and how many had none.
#[derive(Default)]
struct Outcomes {
    some: AtomicUsize,
    none: AtomicUsize,
}

impl Outcomes {
    fn count(&self, some: bool) {
        let counter = if some { &self.some } else { &self.none };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self, name: &str) {
        let (some, none) = (
            self.some.load(Ordering::Relaxed),
            self.none.load(Ordering::Relaxed),
        );
        eprintln!("{name}: {some} instants with a next change, {none} without");
        assert!(
            some > 0 && none > 0,
            "{name}: both outcomes must be exercised"
        );
    }
}

#[test]
fn next_change_is_the_first_change_of_a_window_list() {
    // Instants up to 40 days from the anchor: a change the weekly pattern hides for weeks
    // must still be found.
    let dt = prop_oneof![near(3 * DAY), near(40 * DAY)];
    let strategy = (spec(), anchor(offset_changes()), dt);
    let outcomes = Outcomes::default();
    run(
        "next_change (window lists)",
        1_500,
        strategy,
        |(spec, anchor, dt)| {
            let text = spec.render(anchor);
            let schedule = Schedule::parse(&text, spec.default_tz())
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let probes = |from: i64, to: i64| {
                let mut p = spec.boundaries(from, to);
                p.extend(spec.aperiodic(anchor).into_iter().flat_map(|a| [a - 1, a]));
                p
            };
            let some = check_next_change(&schedule, anchor + dt, probes).map_err(|e| {
                TestCaseError::fail(format!("{text} at {}: {e}", instant(anchor + dt)))
            })?;
            outcomes.count(some);
            Ok(())
        },
    );
    outcomes.report("next_change (window lists)");
}

/// (c): the display parses back to the same display and the same states.
fn check_round_trip(
    schedule: &Schedule,
    default_tz: Tz,
    instants: &[i64],
) -> Result<(), TestCaseError> {
    let shown = schedule.to_string();
    let again = Schedule::parse(&shown, default_tz)
        .map_err(|e| TestCaseError::fail(format!("display `{shown}` does not parse: {e}")))?;
    prop_assert_eq!(again.to_string(), shown.clone());
    for &u in instants {
        prop_assert_eq!(
            again.is_active(instant(u)),
            schedule.is_active(instant(u)),
            "`{}` and its display disagree at {}",
            shown,
            instant(u)
        );
    }
    Ok(())
}

#[test]
fn a_window_list_display_round_trips() {
    let strategy = (
        spec(),
        anchor(offset_changes()),
        prop::collection::vec(prop_oneof![near(40 * DAY), near(3 * DAY)], 50),
    );
    run(
        "display round trip (window lists)",
        1_000,
        strategy,
        |(spec, anchor, offsets)| {
            let text = spec.render(anchor);
            let schedule = Schedule::parse(&text, spec.default_tz())
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let instants: Vec<i64> = offsets.iter().map(|d| anchor + d).collect();
            check_round_trip(&schedule, spec.default_tz(), &instants)
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))
        },
    );
}

// ---------------------------------------------------------------------------------------
// Event schedules

#[derive(Debug, Clone)]
struct EventSpec {
    stops: Vec<String>,
    starts: Vec<String>,
    zone: Option<usize>,
    /// Days from the anchor's date, and length, of an `except=`.
    except: Option<(i64, i64)>,
    default_zone: usize,
    /// Written as Cloud Custodian's `off=(...);on=(...)` instead (then `stops`/`starts`
    /// are ignored).
    custodian: Option<(String, String)>,
}

impl EventSpec {
    fn render(&self, anchor: i64) -> String {
        let mut parts: Vec<String> = match &self.custodian {
            Some((off, on)) => vec![format!("off={off}"), format!("on={on}")],
            None => self
                .stops
                .iter()
                .map(|c| format!("stop={c}"))
                .chain(self.starts.iter().map(|c| format!("start={c}")))
                .collect(),
        };
        if let Some(z) = self.zone {
            parts.push(format!("tz={}", ZONES[z]));
        }
        if let Some((first, extra)) = self.except {
            let first = date(anchor, first);
            parts.push(format!("except={first}..{}", first + Duration::days(extra)));
        }
        parts.join("; ")
    }
}

fn cron() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["0", "15", "30", "45", "59", "0,30"]),
        prop::sample::select(vec![
            "0", "1", "2", "3", "7", "8", "19", "23", "2,14", "*/6",
        ]),
        prop::sample::select(vec!["*", "1-5", "0,6", "1", "5", "6", "MON-FRI"]),
    )
        .prop_map(|(m, h, dow)| format!("{m} {h} * * {dow}"))
}

fn custodian_value() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["M-F", "U", "S", "S-U", "m-f", "H"]),
        prop::sample::select(vec![0u32, 1, 2, 3, 7, 19, 23]),
    )
        .prop_map(|(days, hour)| format!("({days},{hour})"))
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (
        prop::collection::vec(cron(), 1..=2),
        prop::collection::vec(cron(), 0..=2),
        prop::option::of(0..ZONES.len()),
        prop::option::of((-5..5i64, 0..2i64)),
        0..ZONES.len(),
        prop::option::weighted(0.2, (custodian_value(), custodian_value())),
    )
        .prop_map(
            |(stops, starts, zone, except, default_zone, custodian)| EventSpec {
                stops,
                starts,
                zone,
                except,
                default_zone,
                custodian,
            },
        )
}

#[test]
fn event_schedules_change_when_they_say_and_round_trip() {
    let strategy = (
        event_spec(),
        anchor(offset_changes()),
        near(3 * DAY),
        prop::collection::vec(near(20 * DAY), 50),
    );
    let outcomes = Outcomes::default();
    run(
        "next_change and round trip (event schedules)",
        40,
        strategy,
        |(spec, anchor, dt, offsets)| {
            let text = spec.render(anchor);
            let default_tz = zone_at(spec.default_zone);
            let schedule = Schedule::parse(&text, default_tz)
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let tz = spec.zone.map_or(default_tz, zone_at);
            // Crons fire on minutes; look a minute either side of each offset change too.
            let probes = |from: i64, to: i64| {
                let mut p = Vec::new();
                let mut at = instant(from);
                while let Some(c) = zone::next_offset_change(tz, at).filter(|c| c.timestamp() <= to)
                {
                    p.extend([-MINUTE, -1, 0, MINUTE].map(|d| c.timestamp() + d));
                    at = c;
                }
                p
            };
            let t = anchor + dt;
            let some = check_next_change(&schedule, t, probes)
                .map_err(|e| TestCaseError::fail(format!("{text} at {}: {e}", instant(t))))?;
            outcomes.count(some);
            let instants: Vec<i64> = offsets.iter().map(|d| anchor + d).collect();
            check_round_trip(&schedule, default_tz, &instants)
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))
        },
    );
    outcomes.report("next_change (event schedules)");
}

// ---------------------------------------------------------------------------------------
// Parsers never panic

/// Parses `text` every way there is, counting what parsed; whatever parses as a schedule
/// must display and parse back the same.
fn parse_everything(text: &str, parsed: &AtomicUsize) -> Result<(), TestCaseError> {
    let ok = usize::from(Ttl::parse(text).is_ok()) + usize::from(parse_expiry(text).is_ok());
    parsed.fetch_add(ok, Ordering::Relaxed);
    for tz in [chrono_tz::UTC, chrono_tz::Europe::Paris] {
        if let Ok(schedule) = Schedule::parse(text, tz) {
            parsed.fetch_add(1, Ordering::Relaxed);
            let t = instant(1_774_746_000); // 2026-03-29T01:00:00Z, the Paris gap
            let _ = schedule.is_active(t);
            check_round_trip(&schedule, tz, &[t.timestamp(), t.timestamp() - 1])
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        }
    }
    Ok(())
}

#[test]
fn parsers_never_panic_on_arbitrary_text() {
    let parsed = AtomicUsize::new(0);
    // Any text at all, printable ASCII, and the characters schedules are made of.
    let text = prop_oneof![
        ".*",
        "[ -~]{0,60}",
        "[0-9MTWFSuaoehrnitz:,;=()\\[\\]*/+. -]{0,40}"
    ];
    run("arbitrary text", 20_000, text, |text| {
        parse_everything(&text, &parsed)
    });
    eprintln!("arbitrary text: {} parses succeeded", parsed.into_inner());
}

/// Pieces of every syntax the parsers know, and a few they should not.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "Mon", "mon", "Tuesday", "wed", "Thu", "thurs", "Fri", "Sat", "Sun", "Mon-Fri", "Fri-Mon",
    "Sat-Sun", "sun-THU", "Mo", "Mon-", "-Fri", "M-F", "m-f", "U", "H", "08:00-19:00",
    "22:00-06:00", "00:00-24:00", "24:00", "23:59", "02:30", "2:30-3:00", "8:00-9",
    "25:00-26:00", "07:30-20:30", "00:00-00:00", "12:60-13:00", "24:00-01:00", "99:99-00:00",
    "-", "--", ":", "Europe/Paris", "europe/paris", "America/New_York", "Australia/Lord_Howe",
    "Asia/Kolkata", "Pacific/Chatham", "UTC", "Mars/Olympus", "pt", "et", "Etc/GMT+5",
    "EST5EDT", "2026-03-29T02:30:00+01:00", "2026-03-29T02:30:00Z",
    "2026-01-01T00:00:00.123456789-05:00",
    "2026-12-24T00:00:00+01:00-2027-01-02T00:00:00+01:00",
    "2027-01-02T00:00:00Z-2026-12-24T00:00:00Z", "from", "until", "from-2026-01-01T00:00:00Z",
    "until-2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01", "2026-01-01T10:00",
    "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "2026-06-30T23:59:60Z",
    "2026-01-01T00:00:00+23:59", "except", "2026-12-24..2027-01-01", "2026-12-25", "..",
    "2027-01-01..2026-12-24", "9999-12-31", "0001-01-01", "262142-12-31", "-0001-01-01",
    "+10000-01-01", "always", "never", "true", "false", "ALWAYS", ",", ", ", "=", ";", "stop=",
    "start=", "tz=", "except=", "off=(", "on=(", "off=(M-F,19)", "on=[(M-F,7),(U,18)]",
    "off=[m-f,20]", "(", ")", "[", "]", "(M-F,24)", "(X,7)", "stop=0 19 * * 1-5",
    "start=0 8 * * 1-5", "*", "*/5", "0", "19", "1-5", "L", "#", "?", "W", "5L", "1#2",
    "0 0 30 2 *", "0 0 29 2 *", "0 0 31 4 *", "0 0 0 * * *", "60 * * * *", "* * * * * * *",
    "\"", "'", "é", "日本", "\u{200b}", "\u{feff}", "🙂", "\u{0}", "Ⅷ", "\t", "\n", " ", "30s",
    "10m", "4h", "7d", "2w", "1d12h", "forever", "99999999999999999999s", "0s", "1h1h", "12h1d",
    "18446744073709551615s", "9999999999999999w",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(TOKENS),
            prop::sample::select(vec!["", " ", " ", ",", ";", "-", "=", "  "]),
        ),
        0..12,
    )
    .prop_map(|pieces| pieces.iter().map(|(t, sep)| format!("{t}{sep}")).collect())
}

/// Pieces of schedules by the part of the grammar they belong to: `(right, wrong)`.
#[rustfmt::skip]
mod near {
    type Pieces = (&'static [&'static str], &'static [&'static str]);
    pub const DAYS: Pieces = (
        &["", "Mon", "mon-fri", "Fri-Mon", "Sat,Sun", "Tue,Thu", "sunday", "Mon,Wed,Fri-Sun", "Sun-Sat"],
        &["Mo", "Mon-", "-Fri", "Mon,,Tue"],
    );
    pub const TIMES: Pieces = (
        &["08:00-19:00", "22:00-06:00", "00:00-24:00", "2:30-3:00", "23:59-00:00", "00:00-00:01"],
        &["24:00-01:00", "12:60-13:00", "8-9", "08:00", "00:00-00:00", "08:00-19:00-20:00"],
    );
    pub const ZONES: Pieces = (
        &["", "Europe/Paris", "europe/paris", "UTC", "Etc/GMT+5", "EST", "America/Santiago"],
        &["Mars/Olympus", "pt", "Europe/"],
    );
    pub const OTHER: Pieces = (
        &[
            "always", "never", "from 2026-01-01T00:00:00Z", "until-2026-01-01T00:00:00+01:00",
            "2026-12-24T00:00:00+01:00-2027-01-02T00:00:00+01:00",
            "2026-12-24T00:00:00Z - 2026-12-25T00:00:00-05:00", "except 2026-12-24..2027-01-01",
            "9999-12-31T23:59:59Z-9999-12-31T23:59:59.5Z", "except 0001-01-01",
        ],
        &[
            "2026-12-24T00:00:00Z - 2026-12-23T00:00:00Z", "except 2026-02-30", "except",
            "from", "except 262142-12-31", "except -0001-01-01..0001-01-01",
        ],
    );
    pub const CRONS: Pieces = (
        &[
            "0 19 * * 1-5", "*/15 * * * *", "0 8 * * MON-FRI", "0 2 * * *", "30 2 * * 0",
            "0 0 L * *", "0 0 * * 5#2", "0 0 29 2 *", "0 0 0 * * *", "0 */6 * * *",
        ],
        // Crons that parse but never fire ("0 0 30 2 *") are left to the soup: croner takes
        // some 20 ms to refuse each.
        &["60 * * * *", "* * * *", "0 0 ? * W", "L L L L L", "0 0 * * 8"],
    );
    pub const CUSTODIAN: Pieces = (
        &["(M-F,19)", "(m-f,7)", "[(M-F,21),(U,18)]", "[m-f,20]", "(S-M,0)", "(H,3)"],
        &["(M-F,24)", "(X,7)", "M-F", ""],
    );
    pub const TZ: Pieces = (
        &["pt", "et", "utc", "UTC", "Europe/Paris", "EST", "gmt", "America/Sao_Paulo"],
        &["Mars/Olympus", ""],
    );
}

/// Mostly a right piece, sometimes a wrong one.
fn piece(
    (right, wrong): (&'static [&'static str], &'static [&'static str]),
) -> BoxedStrategy<&'static str> {
    prop_oneof![8 => prop::sample::select(right), 1 => prop::sample::select(wrong)].boxed()
}

/// Schedules that are right, or one slip from right: windows, absolute ranges, holidays,
/// crons and Custodian values from the grammar's own pieces, sometimes with one token of
/// the soup dropped in.
fn near_miss() -> impl Strategy<Value = String> {
    let window = prop_oneof![
        3 => (piece(near::DAYS), piece(near::TIMES), piece(near::ZONES))
            .prop_map(|(d, t, z)| format!("{d} {t} {z}")),
        1 => piece(near::OTHER).prop_map(str::to_string),
    ];
    let windows = prop::collection::vec(window, 1..=3).prop_map(|w| w.join(", "));
    let events = (
        piece(near::CRONS),
        prop::option::of(piece(near::CRONS)),
        piece(near::TZ),
        any::<bool>(),
    )
        .prop_map(|(stop, start, tz, except)| {
            let mut parts = vec![format!("stop={stop}")];
            parts.extend(start.map(|s| format!("start={s}")));
            parts.push(format!("tz={tz}"));
            if except {
                parts.push("except=2026-12-25,2026-12-31..2027-01-01".into());
            }
            parts.join("; ")
        });
    let custodian = (
        piece(near::CUSTODIAN),
        piece(near::CUSTODIAN),
        piece(near::TZ),
    )
        .prop_map(|(off, on, tz)| format!("off={off};on={on};tz={tz}"));
    let text = prop_oneof![3 => windows, 2 => events, 1 => custodian];
    let slip = prop::option::weighted(
        0.2,
        (any::<prop::sample::Index>(), prop::sample::select(TOKENS)),
    );
    (text, slip).prop_map(|(text, slip)| match slip {
        None => text,
        Some((at, token)) => {
            let chars: Vec<char> = text.chars().collect();
            let at = at.index(chars.len() + 1);
            let (head, tail) = chars.split_at(at);
            format!(
                "{}{token}{}",
                String::from_iter(head),
                String::from_iter(tail)
            )
        }
    })
}

#[test]
fn parsers_never_panic_on_token_soup() {
    let parsed = AtomicUsize::new(0);
    let soup = prop_oneof![token_soup(), near_miss()];
    run("token soup", 50_000, soup, |text| {
        parse_everything(&text, &parsed)
    });
    let parsed = parsed.into_inner();
    eprintln!("token soup: {parsed} parses succeeded");
    // The soup must get past the first error now and then.
    assert!(parsed > 10_000, "only {parsed} of the soup parsed");
}
