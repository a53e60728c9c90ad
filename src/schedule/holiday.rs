//! Holidays: whole local days on which a schedule does not run.

use std::fmt;

use chrono::NaiveDate;

/// One day or an inclusive range of days, in the schedule's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Holiday {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

/// Why a holiday did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolidayError {
    #[error("invalid date \"{0}\"; expected YYYY-MM-DD")]
    Date(String),
    #[error("holiday range \"{0}\" ends before it starts")]
    Backwards(String),
}

impl Holiday {
    /// Whether `day` falls on this holiday.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.first <= day && day <= self.last
    }

    /// Parses `2026-12-25` or `2026-12-24..2027-01-01`.
    pub fn parse(text: &str) -> Result<Holiday, HolidayError> {
        let date = |s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| HolidayError::Date(s.to_string()))
        };
        let (first, last) = match text.split_once("..") {
            Some((a, b)) => (date(a)?, date(b)?),
            None => {
                let d = date(text)?;
                (d, d)
            }
        };
        if last < first {
            return Err(HolidayError::Backwards(text.to_string()));
        }
        Ok(Holiday { first, last })
    }
}

impl fmt::Display for Holiday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}..{}", self.first, self.last)
        }
    }
}

/// Whether `day` is one of `holidays`.
pub fn is_holiday(holidays: &[Holiday], day: NaiveDate) -> bool {
    holidays.iter().any(|h| h.contains(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holidays_parse_as_days_or_inclusive_ranges() {
        let h = Holiday::parse("2026-12-24..2027-01-01").unwrap();
        assert!(h.contains(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()));
        assert!(h.contains(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
        assert!(!h.contains(NaiveDate::from_ymd_opt(2027, 1, 2).unwrap()));
        assert!(!h.contains(NaiveDate::from_ymd_opt(2026, 12, 23).unwrap()));
        assert_eq!(h.to_string(), "2026-12-24..2027-01-01");
        assert_eq!(
            Holiday::parse("2027-05-01").unwrap().to_string(),
            "2027-05-01"
        );
    }

    #[test]
    fn bad_holidays_say_what_is_wrong() {
        assert_eq!(
            Holiday::parse("2027-01-01..2026-12-24")
                .unwrap_err()
                .to_string(),
            "holiday range \"2027-01-01..2026-12-24\" ends before it starts"
        );
        assert_eq!(
            Holiday::parse("2026-13-01").unwrap_err().to_string(),
            "invalid date \"2026-13-01\"; expected YYYY-MM-DD"
        );
    }
}
