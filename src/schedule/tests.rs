//! Table tests of the schedule language: every form, both sides of every boundary, every
//! error. Property tests and the exhaustive DST test live in `tests/`.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::*;

const PARIS: Tz = chrono_tz::Europe::Paris;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad instant {s}: {e}"))
        .with_timezone(&Utc)
}

fn spec(s: &str) -> Schedule {
    Schedule::parse(s, PARIS).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

/// (spec, instant, active?) checked one by one, each naming itself on failure.
fn check_states(cases: &[(&str, &str, bool)]) {
    for (text, instant, want) in cases {
        assert_eq!(
            spec(text).is_active(at(instant)),
            *want,
            "{text:?} at {instant}"
        );
    }
}

#[test]
fn office_hours_are_on_from_the_start_up_to_but_not_at_the_end() {
    let s = "Mon-Fri 08:00-19:00";
    check_states(&[
        // 2026-11-27 is a Friday; Paris is at +01:00.
        (s, "2026-11-27T07:59:59+01:00", false),
        (s, "2026-11-27T08:00:00+01:00", true),
        (s, "2026-11-27T18:59:59+01:00", true),
        (s, "2026-11-27T19:00:00+01:00", false),
        (s, "2026-11-28T12:00:00+01:00", false), // Saturday
        (s, "2026-11-30T08:00:00+01:00", true),  // Monday
    ]);
}

#[test]
fn single_days_lists_and_wrapping_ranges_select_the_right_days() {
    check_states(&[
        ("Sat", "2026-11-28T00:00:00+01:00", true),
        ("Sat", "2026-11-28T23:59:59+01:00", true),
        ("Sat", "2026-11-29T00:00:00+01:00", false),
        ("Sat", "2026-11-27T23:59:59+01:00", false),
        ("Mon,Wed,Fri 09:00-10:00", "2026-11-25T09:30:00+01:00", true), // Wednesday
        (
            "Mon,Wed,Fri 09:00-10:00",
            "2026-11-26T09:30:00+01:00",
            false,
        ), // Thursday
        ("Sun-Thu 09:00-17:00", "2026-11-29T10:00:00+01:00", true),     // Sunday
        ("Sun-Thu 09:00-17:00", "2026-11-26T10:00:00+01:00", true),     // Thursday
        ("Sun-Thu 09:00-17:00", "2026-11-27T10:00:00+01:00", false),    // Friday
        ("Fri-Mon 09:00-17:00", "2026-11-30T10:00:00+01:00", true),     // Monday
        ("Fri-Mon 09:00-17:00", "2026-12-01T10:00:00+01:00", false),    // Tuesday
        ("Sat, Sun 10:00-12:00", "2026-11-28T11:00:00+01:00", true),    // one day list
        ("Sat, Sun 10:00-12:00", "2026-11-28T13:00:00+01:00", false),
        ("08:00-19:00", "2026-11-28T08:00:00+01:00", true), // no days: every day
    ]);
}

#[test]
fn twenty_four_hundred_ends_a_window_at_midnight() {
    check_states(&[
        ("Fri 22:00-24:00", "2026-11-27T23:59:59+01:00", true),
        ("Fri 22:00-24:00", "2026-11-28T00:00:00+01:00", false),
        ("Mon-Sun 00:00-24:00", "2026-11-28T00:00:00+01:00", true),
    ]);
    assert_eq!(
        spec("Mon-Sun 00:00-24:00").next_change(at("2026-11-28T00:00:00Z")),
        None
    );
}

#[test]
fn a_window_crossing_midnight_belongs_to_the_day_it_starts_on() {
    let s = "Mon-Fri 22:00-06:00";
    check_states(&[
        (s, "2026-11-27T21:59:59+01:00", false), // Friday
        (s, "2026-11-27T22:00:00+01:00", true),
        (s, "2026-11-28T05:59:59+01:00", true), // Saturday morning: Friday's window
        (s, "2026-11-28T06:00:00+01:00", false),
        (s, "2026-11-28T22:00:00+01:00", false), // Saturday night: no window
        (s, "2026-11-30T05:00:00+01:00", false), // Monday morning: Sunday had none
        (s, "2026-11-30T22:30:00+01:00", true),
    ]);
    let sched = spec(s);
    assert_eq!(
        sched.next_change(at("2026-11-28T06:00:00+01:00")),
        Some(at("2026-11-30T22:00:00+01:00"))
    );
}

#[test]
fn each_window_may_name_its_zone_else_the_default_applies() {
    let s = spec("Mon-Fri 07:30-20:30 Europe/Berlin, Mon-Fri 09:00-17:00 America/New_York");
    assert!(s.is_active(at("2026-11-27T07:30:00+01:00")));
    // 23:30 in Paris is 17:30 in New York: both windows are off.
    assert!(!s.is_active(at("2026-11-27T23:30:00+01:00")));
    // 22:00 in Paris is 16:00 in New York: the second window is on.
    assert!(s.is_active(at("2026-11-27T22:00:00+01:00")));
    assert!(!s.is_active(at("2026-11-27T17:00:00-05:00")));
    let default_zone = Schedule::parse("Mon-Fri 08:00-19:00", chrono_tz::Asia::Tokyo).unwrap();
    assert!(default_zone.is_active(at("2026-11-27T08:00:00+09:00")));
    assert!(!default_zone.is_active(at("2026-11-27T20:00:00+01:00"))); // Sat 04:00 in Tokyo
}

#[test]
fn always_never_and_their_aliases() {
    check_states(&[
        ("always", "2026-11-27T03:00:00Z", true),
        ("true", "2026-11-27T03:00:00Z", true),
        ("never", "2026-11-27T03:00:00Z", false),
        ("FALSE", "2026-11-27T03:00:00Z", false),
    ]);
    for s in ["always", "never"] {
        assert_eq!(spec(s).next_change(at("2026-11-27T03:00:00Z")), None, "{s}");
    }
}

#[test]
fn absolute_ranges_are_half_open_and_may_be_open_ended() {
    let range = "2026-12-24T00:00:00+01:00-2027-01-02T00:00:00+01:00";
    let spaced = "2026-12-24T00:00:00+01:00 - 2027-01-02T00:00:00+01:00";
    for s in [range, spaced] {
        check_states(&[
            (s, "2026-12-23T23:59:59+01:00", false),
            (s, "2026-12-24T00:00:00+01:00", true),
            (s, "2027-01-01T23:59:59+01:00", true),
            (s, "2027-01-02T00:00:00+01:00", false),
        ]);
    }
    check_states(&[
        (
            "2026-12-24T00:00:00Z-2026-12-25T00:00:00Z",
            "2026-12-24T12:00:00Z",
            true,
        ),
        ("from 2026-12-24T00:00:00Z", "2026-12-23T23:59:59Z", false),
        ("from 2026-12-24T00:00:00Z", "2026-12-24T00:00:00Z", true),
        ("until 2026-12-24T00:00:00Z", "2026-12-23T23:59:59Z", true),
        ("until 2026-12-24T00:00:00Z", "2026-12-24T00:00:00Z", false),
    ]);
    assert_eq!(
        spec(range).next_change(at("2026-01-01T00:00:00Z")),
        Some(at("2026-12-23T23:00:00Z"))
    );
    assert_eq!(
        spec(range).next_change(at("2027-01-02T00:00:00+01:00")),
        None
    );
}

#[test]
fn holidays_remove_whole_local_days_from_recurring_windows_only() {
    let s = "Mon-Fri 08:00-19:00, except 2026-12-24..2027-01-01, except 2027-05-01";
    check_states(&[
        (s, "2026-12-23T12:00:00+01:00", true),
        (s, "2026-12-24T12:00:00+01:00", false),
        (s, "2027-01-01T12:00:00+01:00", false),
        (s, "2027-01-04T12:00:00+01:00", true),
        // An absolute range is not a recurring window: holidays do not touch it.
        (
            "2026-12-25T10:00:00+01:00-2026-12-25T11:00:00+01:00, except 2026-12-25",
            "2026-12-25T10:30:00+01:00",
            true,
        ),
        // The part of a night window past midnight on a holiday is removed too.
        (
            "Thu 22:00-06:00, except 2026-12-25",
            "2026-12-24T23:00:00+01:00",
            true,
        ),
        (
            "Thu 22:00-06:00, except 2026-12-25",
            "2026-12-25T01:00:00+01:00",
            false,
        ),
    ]);
    // Across the holidays and the year end, the next start is the Monday after.
    assert_eq!(
        spec(s).next_change(at("2026-12-23T19:00:00+01:00")),
        Some(at("2027-01-04T08:00:00+01:00"))
    );
}

#[test]
fn holidays_are_read_in_each_windows_own_zone() {
    // 2026-12-25 in Tokyo starts at 16:00 on the 24th in Paris.
    let s = spec("Mon-Sun 00:00-24:00 Asia/Tokyo, except 2026-12-25");
    assert!(s.is_active(at("2026-12-24T15:59:59+01:00")));
    assert!(!s.is_active(at("2026-12-24T16:00:00+01:00")));
    assert_eq!(
        s.next_change(at("2026-12-24T12:00:00+01:00")),
        Some(at("2026-12-24T16:00:00+01:00"))
    );
    assert_eq!(
        s.next_change(at("2026-12-24T16:00:00+01:00")),
        Some(at("2026-12-25T16:00:00+01:00"))
    );
}

#[test]
fn a_long_holiday_is_crossed_without_walking_every_day() {
    let s = spec("Mon 08:00-09:00, except 2027-01-01..2036-12-31");
    assert_eq!(
        s.next_change(at("2026-12-29T00:00:00+01:00")),
        Some(at("2037-01-05T08:00:00+01:00"))
    );
}

#[test]
fn next_change_is_exact_to_the_second_across_the_year_end() {
    let s = spec("Mon-Fri 08:00-19:00");
    assert_eq!(
        s.next_change(at("2026-12-31T18:59:59.5+01:00")),
        Some(at("2026-12-31T19:00:00+01:00"))
    );
    assert_eq!(
        s.next_change(at("2026-12-31T19:00:00+01:00")),
        Some(at("2027-01-01T08:00:00+01:00"))
    );
}

#[test]
fn overlapping_windows_change_only_when_the_union_changes() {
    let s = spec("Mon-Fri 08:00-12:00, Mon-Fri 11:00-19:00");
    assert_eq!(
        s.next_change(at("2026-11-27T09:00:00+01:00")),
        Some(at("2026-11-27T19:00:00+01:00"))
    );
}

#[test]
fn paris_at_19_on_the_nights_the_clocks_change() {
    let s = spec("Mon-Sun 08:00-19:00");
    // Spring forward on Sunday 2026-03-29, fall back on Sunday 2026-10-25.
    assert_eq!(
        s.next_change(at("2026-03-29T12:00:00+02:00")),
        Some(at("2026-03-29T19:00:00+02:00"))
    );
    assert_eq!(
        s.next_change(at("2026-10-25T12:00:00+01:00")),
        Some(at("2026-10-25T19:00:00+01:00"))
    );
    // The night before each change, the next morning's start is at 08:00 local.
    assert_eq!(
        s.next_change(at("2026-03-28T19:00:00+01:00")),
        Some(at("2026-03-29T08:00:00+02:00"))
    );
    assert_eq!(
        s.next_change(at("2026-10-24T19:00:00+02:00")),
        Some(at("2026-10-25T08:00:00+01:00"))
    );
}

#[test]
fn a_boundary_in_the_spring_gap_takes_effect_when_the_gap_ends() {
    let s = spec("Mon-Sun 02:30-05:00");
    assert!(!s.is_active(at("2026-03-29T01:59:59+01:00")));
    assert!(s.is_active(at("2026-03-29T03:00:00+02:00")));
    assert_eq!(
        s.next_change(at("2026-03-29T01:00:00+01:00")),
        Some(at("2026-03-29T03:00:00+02:00"))
    );
}

#[test]
fn a_boundary_in_the_repeated_hour_takes_effect_once_at_its_first_occurrence() {
    let s = spec("Mon-Sun 02:30-05:00");
    let first = at("2026-10-25T02:30:00+02:00");
    assert_eq!(s.next_change(at("2026-10-25T01:00:00+02:00")), Some(first));
    // Back at 02:00 (CET) after the clocks went back, it stays on: no second start, no stop.
    assert!(s.is_active(at("2026-10-25T02:00:00+01:00")));
    assert!(s.is_active(at("2026-10-25T02:15:00+01:00")));
    assert_eq!(s.next_change(first), Some(at("2026-10-25T05:00:00+01:00")));
    let stop_in_fold = spec("Mon-Sun 01:00-02:30");
    let stop = at("2026-10-25T02:30:00+02:00");
    assert_eq!(
        stop_in_fold.next_change(at("2026-10-25T01:30:00+02:00")),
        Some(stop)
    );
    assert!(!stop_in_fold.is_active(at("2026-10-25T02:00:00+01:00")));
    assert_eq!(
        stop_in_fold.next_change(stop),
        Some(at("2026-10-26T01:00:00+01:00"))
    );
}

#[test]
fn new_york_office_hours_keep_their_local_times_across_both_changes() {
    let s = Schedule::parse("Mon-Fri 09:00-17:00", chrono_tz::America::New_York).unwrap();
    let changes: Vec<_> = s
        .transitions(at("2026-03-06T00:00:00Z"), at("2026-03-10T00:00:00Z"))
        .map(|(t, on)| (t.to_rfc3339(), on))
        .collect();
    assert_eq!(
        changes,
        [
            ("2026-03-06T14:00:00+00:00".to_string(), true), // Fri 09:00 EST
            ("2026-03-06T22:00:00+00:00".to_string(), false),
            ("2026-03-09T13:00:00+00:00".to_string(), true), // Mon 09:00 EDT
            ("2026-03-09T21:00:00+00:00".to_string(), false),
        ]
    );
}

#[test]
fn event_schedules_follow_the_most_recent_event() {
    let s = spec("stop=0 19 * * 1-5; start=0 8 * * 1-5; tz=Europe/Rome");
    check_states(&[
        (
            "stop=0 19 * * 1-5; start=0 8 * * 1-5",
            "2026-11-27T18:59:59+01:00",
            true,
        ),
        (
            "stop=0 19 * * 1-5; start=0 8 * * 1-5",
            "2026-11-27T19:00:00+01:00",
            false,
        ),
        // Saturday: the last event was Friday's stop.
        (
            "stop=0 19 * * 1-5; start=0 8 * * 1-5",
            "2026-11-28T12:00:00+01:00",
            false,
        ),
        (
            "stop=0 19 * * 1-5; start=0 8 * * 1-5",
            "2026-11-30T08:00:00+01:00",
            true,
        ),
    ]);
    assert_eq!(
        s.next_change(at("2026-11-27T19:00:00+01:00")),
        Some(at("2026-11-30T08:00:00+01:00"))
    );
}

#[test]
fn a_stop_only_schedule_never_starts_anything() {
    let s = spec("stop=0 20 * * *");
    assert!(!s.is_active(at("2026-11-27T08:00:00+01:00")));
    assert_eq!(s.next_change(at("2026-11-27T08:00:00+01:00")), None);
    let events = s.events().unwrap();
    assert_eq!(
        events.next_event(at("2026-11-27T08:00:00+01:00")),
        Some((at("2026-11-27T20:00:00+01:00"), Edge::Stop))
    );
}

#[test]
fn a_stop_and_a_start_at_the_same_instant_resolve_to_stopped() {
    let s = spec("stop=0 8 * * *; start=0 8 * * 1");
    assert!(!s.is_active(at("2026-11-30T08:00:00+01:00")));
}

#[test]
fn event_holidays_skip_the_morning_start() {
    let s = spec("stop=0 19 * * 1-5; start=0 8 * * 1-5; except=2026-12-24..2026-12-25");
    assert!(!s.is_active(at("2026-12-24T12:00:00+01:00")));
    assert_eq!(
        s.next_change(at("2026-12-23T19:00:00+01:00")),
        Some(at("2026-12-28T08:00:00+01:00"))
    );
}

#[test]
fn custodian_tags_mean_what_custodian_means() {
    let s = spec("off=(M-F,19);on=(M-F,7);tz=pt");
    // 19:00 in Los Angeles.
    assert!(s.is_active(at("2026-11-27T18:59:59-08:00")));
    assert!(!s.is_active(at("2026-11-27T19:00:00-08:00")));
    assert_eq!(
        s.next_change(at("2026-11-27T19:00:00-08:00")),
        Some(at("2026-11-30T07:00:00-08:00"))
    );
    // Several specs per half, brackets, Sunday hours.
    let multi = spec("off=[(M-F,21),(U,18)];on=[(M-F,6),(U,10)];tz=pt");
    assert!(multi.is_active(at("2026-11-29T10:00:00-08:00")));
    assert!(!multi.is_active(at("2026-11-29T18:00:00-08:00")));
    // Only `off` given: `on` is Custodian's default, 07:00 Monday to Friday.
    let off_only = spec("off=(M-F,18);tz=et");
    assert_eq!(
        off_only.next_change(at("2026-11-27T18:00:00-05:00")),
        Some(at("2026-11-30T07:00:00-05:00"))
    );
    // Custodian reads EST as New York; curfew's own display of the fixed zone EST reads back
    // as the fixed zone.
    assert_eq!(
        spec("off=(M-F,19);tz=EST").to_string(),
        "stop=0 19 * * 1,2,3,4,5; start=0 7 * * 1,2,3,4,5; tz=America/New_York"
    );
    let fixed = Schedule::parse("stop=0 19 * * *", chrono_tz::EST).unwrap();
    assert_eq!(fixed.to_string(), "stop=0 19 * * *; tz=EST");
    assert_eq!(Schedule::parse(&fixed.to_string(), PARIS).unwrap(), fixed);
    // Custodian lower-cases and strips quotes; a trailing semicolon is fine.
    assert_eq!(
        spec("'OFF=(M-F,19);ON=(M-F,7);TZ=PT;'").to_string(),
        s.to_string()
    );
}

#[test]
fn every_form_round_trips_through_its_normalized_display() {
    let cases = [
        ("Mon-Fri 08:00-19:00", "Mon-Fri 08:00-19:00 Europe/Paris"),
        (
            "mon-fri 8:00-19:00 europe/berlin",
            "Mon-Fri 08:00-19:00 Europe/Berlin",
        ),
        ("Sat", "Sat 00:00-24:00 Europe/Paris"),
        ("Mon,Wed,Fri 09:00-10:00 UTC", "Mon,Wed,Fri 09:00-10:00 UTC"),
        ("Sun-Thu 09:00-17:00", "Sun-Thu 09:00-17:00 Europe/Paris"),
        ("Fri-Mon 22:00-06:00", "Fri-Mon 22:00-06:00 Europe/Paris"),
        ("08:00-19:00", "Mon-Sun 08:00-19:00 Europe/Paris"),
        ("ALWAYS", "always"),
        ("false", "never"),
        (
            "2026-12-24T00:00:00+01:00 - 2027-01-02T00:00:00Z",
            "2026-12-24T00:00:00+01:00-2027-01-02T00:00:00Z",
        ),
        (
            "from 2026-12-24T00:00:00+01:00",
            "from 2026-12-24T00:00:00+01:00",
        ),
        ("until 2026-12-24T00:00:00Z", "until 2026-12-24T00:00:00Z"),
        (
            "Mon-Fri 08:00-19:00,except 2026-12-24..2027-01-01",
            "Mon-Fri 08:00-19:00 Europe/Paris, except 2026-12-24..2027-01-01",
        ),
        (
            "stop=0 19 * * 1-5 ; start=0   8 * * 1-5",
            "stop=0 19 * * 1-5; start=0 8 * * 1-5; tz=Europe/Paris",
        ),
        (
            "off=(M-F,19);on=(M-F,7);tz=pt",
            "stop=0 19 * * 1,2,3,4,5; start=0 7 * * 1,2,3,4,5; tz=America/Los_Angeles",
        ),
    ];
    for (input, normalized) in cases {
        let parsed = spec(input);
        assert_eq!(parsed.to_string(), normalized, "{input}");
        let again = spec(normalized);
        assert_eq!(
            again, parsed,
            "{input}: the normalized form parses back to the same"
        );
    }
}

#[test]
fn every_error_names_the_token_its_column_and_what_was_expected() {
    let cases = [
        (
            "Mno-Fri 08:00-19:00",
            "unknown weekday \"Mno\" at column 1; expected Mon..Sun",
        ),
        (
            "Mon-Frx 08:00-19:00",
            "unknown weekday \"Frx\" at column 5; expected Mon..Sun",
        ),
        (
            "Mon-Fri 08:00-25:00",
            "invalid time \"25:00\" at column 15; expected HH:MM from 00:00 to 24:00",
        ),
        (
            "Mon-Fri 24:00-06:00",
            "invalid time \"24:00\" at column 9; expected HH:MM from 00:00 to 23:59",
        ),
        ("Mon-Fri 08:60-19:00", "invalid time \"08:60\" at column 9"),
        ("Mon-Fri 0800-1900", "invalid time \"0800\" at column 9"),
        (
            "Mon-Fri 08:00",
            "invalid time range \"08:00\" at column 9; expected HH:MM-HH:MM",
        ),
        (
            "Mon-Fri 08:00-08:00",
            "empty window \"08:00-08:00\" (start equals end) at column 9",
        ),
        (
            "Mon-Fri 08:00-19:00 Europe/Pariss",
            "unknown time zone \"Europe/Pariss\" at column 21",
        ),
        (
            "Mon-Fri 08:00-19:00 UTC extra",
            "unexpected \"extra\" at column 25",
        ),
        ("Mon-Fri 08:00-19:00,", "trailing comma at column 20"),
        (
            "Mon-Fri 08:00-19:00,, Sat",
            "empty window between commas at column 21",
        ),
        ("", "empty schedule at column 1"),
        ("   ", "empty schedule at column 1"),
        (
            "2026-12-24T00:00:00+01:00-2026-12-23T00:00:00+01:00",
            "absolute range ends before it starts at column 1",
        ),
        (
            "2026-12-24T00:00:00-2027-01-02T00:00:00",
            "invalid absolute range",
        ),
        (
            "2026-12-24T00:00:00+01:00 - tomorrow",
            "invalid instant \"tomorrow\"",
        ),
        ("from", "\"from\" without an instant at column 1"),
        (
            "from 2026-12-24",
            "invalid instant \"2026-12-24\" at column 6",
        ),
        ("except 2026-12-24", "holidays alone are not a schedule"),
        (
            "Mon-Fri 08:00-19:00, except",
            "\"except\" without a date at column 22",
        ),
        (
            "Mon-Fri 08:00-19:00, except 2026-12-32",
            "invalid date \"2026-12-32\"",
        ),
        ("stop=0 25 * * *", "invalid cron \"0 25 * * *\""),
        (
            "stop=0 19 * * 1-5; tz=Mars/Base",
            "unknown time zone \"Mars/Base\" at column 23",
        ),
        (
            "start=0 8 * * 1-5",
            "an event schedule needs at least one stop=",
        ),
        (
            "stop=0 19 * * *; wake=0 8 * * *",
            "unknown key \"wake\" at column 18",
        ),
        ("off=(M-F,19);start=0 8 * * *", "mixed with stop=/start="),
        ("off=(M-F,24)", "hour \"24\" is not 0..23"),
        (
            "stop=0 19 * * *;oops",
            "\"oops\" is not key=value at column 17",
        ),
    ];
    for (input, want) in cases {
        let err = Schedule::parse(input, PARIS).expect_err(input).to_string();
        assert!(
            err.contains(want),
            "{input:?}\n  got:  {err}\n  want: {want}"
        );
    }
}

#[test]
fn never_active_within_spots_schedules_that_cannot_run() {
    let now = at("2026-11-27T12:00:00Z");
    assert!(spec("never").never_active_within(now, TimeDelta::days(365)));
    assert!(spec("until 2026-01-01T00:00:00Z").never_active_within(now, TimeDelta::days(365)));
    assert!(!spec("Sat").never_active_within(now, TimeDelta::days(7)));
    assert!(
        spec("Mon-Fri 08:00-19:00, except 2026-11-01..2030-01-01")
            .never_active_within(now, TimeDelta::days(365))
    );
}
