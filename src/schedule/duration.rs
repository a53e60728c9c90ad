//! Durations for TTLs and idle limits (`30s 10m 4h 7d 2w`, compound `1d12h`, `forever`), and
//! absolute expiry dates in kube-janitor's formats.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A TTL: a number of seconds, or `forever`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    Forever,
    Seconds(u64),
}

/// Unit letters and their seconds, largest first (the order a compound must follow).
const UNITS: [(char, u64); 5] = [
    ('w', 604_800),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration \"{input}\": {problem}")]
pub struct DurationError {
    pub input: String,
    pub problem: DurationProblem,
}

/// What is wrong with a duration, and where (1-based columns).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationProblem {
    #[error("empty; expected a number and a unit such as 30m, 4h, 7d or 1d12h")]
    Empty,
    #[error(
        "unexpected \"{found}\" at column {column}; expected a digit or one of the units s, m, h, d, w"
    )]
    Unexpected { found: char, column: usize },
    #[error("unit \"{unit}\" at column {column} has no number before it")]
    NoNumber { unit: char, column: usize },
    #[error(
        "unit \"{unit}\" at column {column} is out of order; write units largest first, each once (1w2d3h4m5s)"
    )]
    OutOfOrder { unit: char, column: usize },
    #[error("number too large")]
    NumberTooLarge,
    #[error("too large")]
    TooLarge,
    #[error("\"{number}\" has no unit; add one of s, m, h, d, w (e.g. {number}m)")]
    NoUnit { number: String },
}

/// Why an expiry instant did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid expiry \"{0}\"; expected YYYY-MM-DDTHH:MM:SSZ, YYYY-MM-DDTHH:MM or YYYY-MM-DD (UTC)"
)]
pub struct ExpiryError(pub String);

impl Ttl {
    /// Parses `forever`, `30s`, `10m`, `4h`, `7d`, `2w` or a compound such as `1d12h`
    /// (units largest first, each at most once).
    pub fn parse(input: &str) -> Result<Ttl, DurationError> {
        let text = input.trim();
        if text.eq_ignore_ascii_case("forever") {
            return Ok(Ttl::Forever);
        }
        parse_seconds(text)
            .map(Ttl::Seconds)
            .map_err(|problem| DurationError {
                input: input.to_string(),
                problem,
            })
    }

    /// The number of seconds, or `None` for `forever`.
    pub fn seconds(self) -> Option<u64> {
        match self {
            Ttl::Forever => None,
            Ttl::Seconds(s) => Some(s),
        }
    }
}

/// Parses a finite duration (no `forever`) into seconds.
pub fn parse_duration(input: &str) -> Result<u64, DurationError> {
    parse_seconds(input.trim()).map_err(|problem| DurationError {
        input: input.to_string(),
        problem,
    })
}

fn parse_seconds(text: &str) -> Result<u64, DurationProblem> {
    if text.is_empty() {
        return Err(DurationProblem::Empty);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit: Option<usize> = None;
    for (col, c) in text.chars().enumerate() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let column = col + 1;
        let Some(index) = UNITS.iter().position(|(u, _)| *u == c) else {
            return Err(DurationProblem::Unexpected { found: c, column });
        };
        if number.is_empty() {
            return Err(DurationProblem::NoNumber { unit: c, column });
        }
        if last_unit.is_some_and(|last| index <= last) {
            return Err(DurationProblem::OutOfOrder { unit: c, column });
        }
        last_unit = Some(index);
        let n: u64 = number
            .parse()
            .map_err(|_| DurationProblem::NumberTooLarge)?;
        total = n
            .checked_mul(UNITS[index].1)
            .and_then(|s| total.checked_add(s))
            .ok_or(DurationProblem::TooLarge)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(DurationProblem::NoUnit { number });
    }
    Ok(total)
}

/// Writes seconds the way kube-janitor does: largest units first, `1d12h`, `2w`, `0s`.
pub fn format_seconds(mut secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ttl::Forever => f.write_str("forever"),
            Ttl::Seconds(s) => f.write_str(&format_seconds(*s)),
        }
    }
}

/// Parses an absolute expiry: kube-janitor's `YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DDTHH:MM`
/// and `YYYY-MM-DD` (the last two taken as UTC, a date as its midnight), or any RFC 3339
/// instant with an offset.
pub fn parse_expiry(input: &str) -> Result<DateTime<Utc>, ExpiryError> {
    let text = input.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(ExpiryError(input.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janitor_units_and_compounds_parse_to_seconds() {
        let cases: &[(&str, Option<u64>)] = &[
            ("30s", Some(30)),
            ("10m", Some(600)),
            ("4h", Some(14_400)),
            ("7d", Some(604_800)),
            ("2w", Some(1_209_600)),
            ("1d12h", Some(129_600)),
            ("1w2d3h4m5s", Some(604_800 + 172_800 + 10_800 + 240 + 5)),
            ("0s", Some(0)),
            ("forever", None),
            ("FOREVER", None),
        ];
        for (input, want) in cases {
            assert_eq!(Ttl::parse(input).map(Ttl::seconds), Ok(*want), "{input}");
        }
    }

    #[test]
    fn durations_display_largest_units_first_and_round_trip() {
        for (secs, text) in [
            (129_600, "1d12h"),
            (1_209_600, "2w"),
            (61, "1m1s"),
            (0, "0s"),
        ] {
            assert_eq!(format_seconds(secs), text);
            assert_eq!(parse_duration(text), Ok(secs));
        }
        assert_eq!(Ttl::Forever.to_string(), "forever");
    }

    #[test]
    fn bad_durations_name_the_problem_and_where() {
        let cases = [
            ("", "empty"),
            ("10", "\"10\" has no unit"),
            ("10x", "unexpected \"x\" at column 3"),
            ("h", "unit \"h\" at column 1 has no number"),
            ("12h1d", "unit \"d\" at column 5 is out of order"),
            ("1h1h", "unit \"h\" at column 4 is out of order"),
            ("99999999999999999999s", "number too large"),
            ("9999999999999999w", "too large"),
            ("-5m", "unexpected \"-\" at column 1"),
        ];
        for (input, want) in cases {
            let err = Ttl::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn expiry_dates_in_janitor_formats_are_utc() {
        let want = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse_expiry("2026-12-24T18:30:00Z"),
            Ok(want("2026-12-24T18:30:00Z"))
        );
        assert_eq!(
            parse_expiry("2026-12-24T18:30"),
            Ok(want("2026-12-24T18:30:00Z"))
        );
        assert_eq!(parse_expiry("2026-12-24"), Ok(want("2026-12-24T00:00:00Z")));
        assert_eq!(
            parse_expiry("2026-12-24T18:30:00+01:00"),
            Ok(want("2026-12-24T17:30:00Z"))
        );
        assert!(
            parse_expiry("24/12/2026")
                .unwrap_err()
                .to_string()
                .contains("expected YYYY-MM-DDTHH:MM:SSZ")
        );
    }
}
