//! Wall time in a zone, with curfew's rules for the days the clocks change.
//!
//! Two rules, both from DESIGN.md, live here and nowhere else:
//! - a wall time inside a gap (02:30 on a spring-forward night) takes effect at the first
//!   instant after the gap ([`resolve`]);
//! - a wall time inside a repeated hour takes effect at its first occurrence, and during the
//!   second pass of the repeated hour the clock is read as if it had not gone back
//!   ([`effective_local`]), so nothing starts or stops twice.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The wall time that schedules compare against at instant `t`.
///
/// Outside a repeated hour this is simply the local time. During the *second* pass of a
/// repeated hour it is the last second before the clocks went back, so a boundary inside
/// the repeated hour, already passed on the first pass, is not crossed again.
pub fn effective_local(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    let utc = t.naive_utc();
    let offset = tz.offset_from_utc_datetime(&utc).fix();
    let local = utc + offset;
    match tz.offset_from_local_datetime(&local) {
        LocalResult::Ambiguous(first, second) => {
            let (first, second) = (first.fix(), second.fix());
            // `t` is on the second pass when its offset is the later one of the two.
            let later = if first.local_minus_utc() > second.local_minus_utc() {
                second
            } else {
                first
            };
            let earlier = if later == first { second } else { first };
            if offset == later && earlier != later {
                let changed_at = transition_before(tz, t, later);
                changed_at.naive_utc() + earlier - TimeDelta::seconds(1)
            } else {
                local
            }
        }
        _ => local,
    }
}

/// The first instant at which the wall time `local` is reached in `tz`.
///
/// A wall time that exists once maps to its instant; a repeated one to its first
/// occurrence; one in a gap to the first instant after the gap.
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    resolve_with_wall(tz, local).0
}

/// [`resolve`], and also the effective wall time at the instant found
/// ([`effective_local`]) when it is known without another lookup: a wall time that exists
/// exactly once is the effective wall time of its instant.
pub(crate) fn resolve_with_wall(
    tz: Tz,
    local: NaiveDateTime,
) -> (DateTime<Utc>, Option<NaiveDateTime>) {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => (t.with_timezone(&Utc), Some(local)),
        LocalResult::Ambiguous(a, b) => (a.min(b).with_timezone(&Utc), None),
        LocalResult::None => (first_instant_at_or_after(tz, local), None),
    }
}

/// The earliest instant whose wall time is at or past `local` (used for gaps): a binary
/// search over the instants that could carry that wall time. Offsets lie within ±26 hours.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let reached = |u: i64| -> bool {
        DateTime::from_timestamp(u, 0).is_some_and(|t| {
            let off = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
            t.naive_utc() + off >= local
        })
    };
    let mut lo = local.and_utc().timestamp() - 26 * 3600;
    let mut hi = local.and_utc().timestamp() + 26 * 3600;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    DateTime::from_timestamp(lo, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The instant at which `tz` switched to offset `to`, searching back from `t` (which is
/// known to carry `to`). A fold lasts hours at most; the search looks back two days.
fn transition_before(tz: Tz, t: DateTime<Utc>, to: chrono::FixedOffset) -> DateTime<Utc> {
    let has_new = |u: i64| -> bool {
        DateTime::from_timestamp(u, 0)
            .is_some_and(|x| tz.offset_from_utc_datetime(&x.naive_utc()).fix() == to)
    };
    let mut hi = t.timestamp();
    let mut lo = hi - 2 * 86_400;
    // Invariant: `hi` carries the new offset; find the earliest such second after `lo`.
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if has_new(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(t)
}

/// chrono-tz tabulates each zone's offset changes up to 2100 and keeps the last offset after.
const TABULATED_UNTIL: i64 = 4_102_444_800; // 2100-01-01T00:00:00Z

/// The first instant after `t` at which `tz`'s UTC offset differs from its offset at `t`;
/// `None` when it never changes again. Offsets are compared a day apart, then the change is
/// found to the second, so an offset that lasts less than a day may be missed.
pub fn next_offset_change(tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let offset = |u: i64| {
        DateTime::from_timestamp(u, 0).map(|x| tz.offset_from_utc_datetime(&x.naive_utc()).fix())
    };
    let now = offset(t.timestamp());
    let mut lo = t.timestamp();
    while lo < TABULATED_UNTIL {
        let mut hi = lo + 86_400;
        if offset(hi) != now {
            // Invariant: `lo` carries the old offset, `hi` a new one.
            while lo + 1 < hi {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == now {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            return DateTime::from_timestamp(hi, 0);
        }
        lo = hi;
    }
    None
}

/// Looks a zone up by IANA name, ignoring case (`europe/paris` is `Europe/Paris`).
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.parse::<Tz>()
        .ok()
        .or_else(|| Tz::from_str_insensitive(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn wall(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_wall_time_in_the_spring_gap_resolves_to_the_end_of_the_gap() {
        // Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
        let tz = chrono_tz::Europe::Paris;
        assert_eq!(
            resolve(tz, wall(2026, 3, 29, 2, 30)),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            resolve(tz, wall(2026, 3, 29, 2, 0)),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            resolve(tz, wall(2026, 3, 29, 3, 0)),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            resolve(tz, wall(2026, 3, 29, 1, 59)),
            utc("2026-03-29T00:59:00Z")
        );
    }

    #[test]
    fn a_repeated_wall_time_resolves_to_its_first_occurrence() {
        // Paris, 2026-10-25: 03:00 CEST goes back to 02:00 CET at 01:00 UTC.
        let tz = chrono_tz::Europe::Paris;
        assert_eq!(
            resolve(tz, wall(2026, 10, 25, 2, 30)),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn the_second_pass_of_a_repeated_hour_reads_as_the_second_before_it_ended() {
        let tz = chrono_tz::Europe::Paris;
        // First pass: plain local time.
        assert_eq!(
            effective_local(tz, utc("2026-10-25T00:30:00Z")),
            wall(2026, 10, 25, 2, 30)
        );
        // Second pass (02:00..03:00 CET): held at 02:59:59.
        let held = wall(2026, 10, 25, 2, 59) + TimeDelta::seconds(59);
        assert_eq!(effective_local(tz, utc("2026-10-25T01:00:00Z")), held);
        assert_eq!(effective_local(tz, utc("2026-10-25T01:59:59Z")), held);
        // After the repeated hour: plain local time again.
        assert_eq!(
            effective_local(tz, utc("2026-10-25T02:00:00Z")),
            wall(2026, 10, 25, 3, 0)
        );
    }

    #[test]
    fn zones_are_found_whatever_their_case() {
        assert_eq!(parse_zone("Europe/Paris"), Some(chrono_tz::Europe::Paris));
        assert_eq!(parse_zone("europe/paris"), Some(chrono_tz::Europe::Paris));
        assert_eq!(parse_zone("UTC"), Some(chrono_tz::UTC));
        assert_eq!(parse_zone("Mars/Olympus"), None);
    }
}
