//! The schedule parser: text in, [`Schedule`] or a [`ParseError`] naming the token, its
//! column and what was expected.

use std::fmt;

use chrono::{DateTime, FixedOffset, Weekday};
use chrono_tz::Tz;

use super::events::{CronSpec, Events, custodian_crons, custodian_zone};
use super::holiday::Holiday;
use super::weekly::{DAY_SECONDS, DaySet, Weekly};
use super::{Schedule, Window, zone};

/// Why a schedule did not parse: what was found, where (1-based column, in characters),
/// and what would have been accepted there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub problem: String,
    pub column: usize,
    pub expected: Option<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.problem, self.column)?;
        if let Some(expected) = &self.expected {
            write!(f, "; expected {expected}")?;
        }
        Ok(())
    }
}

fn error(problem: impl ToString, column: usize, expected: Option<&str>) -> ParseError {
    ParseError {
        problem: problem.to_string(),
        column,
        expected: expected.map(str::to_string),
    }
}

const EXPECTED_WINDOW: &str = "a window such as \"Mon-Fri 08:00-19:00 Europe/Paris\", \"always\", \"never\", \
an absolute range, \"from <RFC 3339>\", \"until <RFC 3339>\" or \"except <date>\"";

pub fn parse(text: &str, default_tz: Tz) -> Result<Schedule, ParseError> {
    if text.trim().is_empty() {
        return Err(error("empty schedule", 1, Some(EXPECTED_WINDOW)));
    }
    if text.contains('=') {
        return parse_events(text, default_tz).map(Schedule::from_events);
    }
    let tokens = tokenize(text);
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        default_tz,
        text_len: text.chars().count(),
    };
    parser.list()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Token<'a> {
    text: &'a str,
    column: usize,
}

/// Splits on whitespace; each comma is a token of its own.
fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (byte, column) of the open token
    for (column, (byte, c)) in text.char_indices().enumerate() {
        let column = column + 1;
        if c.is_whitespace() || c == ',' {
            if let Some((from, col)) = start.take() {
                tokens.push(Token {
                    text: &text[from..byte],
                    column: col,
                });
            }
            if c == ',' {
                tokens.push(Token {
                    text: &text[byte..byte + 1],
                    column,
                });
            }
        } else if start.is_none() {
            start = Some((byte, column));
        }
    }
    if let Some((from, col)) = start {
        tokens.push(Token {
            text: &text[from..],
            column: col,
        });
    }
    tokens
}

struct Parser<'a> {
    tokens: &'a [Token<'a>],
    pos: usize,
    default_tz: Tz,
    text_len: usize,
}

enum Entry {
    Window(Window),
    Holiday(Holiday),
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<Token<'a>> {
        self.tokens.get(self.pos + ahead).copied()
    }

    fn end_column(&self) -> usize {
        self.text_len + 1
    }

    fn list(&mut self) -> Result<Schedule, ParseError> {
        let mut windows = Vec::new();
        let mut holidays = Vec::new();
        loop {
            match self.entry()? {
                Entry::Window(w) => windows.push(w),
                Entry::Holiday(h) => holidays.push(h),
            }
            match self.peek() {
                None => break,
                Some(t) if t.text == "," => {
                    self.pos += 1;
                    if self.peek().is_none() {
                        return Err(error(
                            "trailing comma",
                            t.column,
                            Some("another window after the comma"),
                        ));
                    }
                }
                Some(t) => {
                    return Err(error(
                        format!("unexpected \"{}\"", t.text),
                        t.column,
                        Some("a comma between windows, or the end of the schedule"),
                    ));
                }
            }
        }
        if windows.is_empty() {
            return Err(error(
                "holidays alone are not a schedule",
                1,
                Some(EXPECTED_WINDOW),
            ));
        }
        Ok(Schedule::from_windows(windows, holidays))
    }

    fn entry(&mut self) -> Result<Entry, ParseError> {
        let Some(token) = self.peek() else {
            return Err(error(
                "missing window",
                self.end_column(),
                Some(EXPECTED_WINDOW),
            ));
        };
        if token.text == "," {
            return Err(error(
                "empty window between commas",
                token.column,
                Some(EXPECTED_WINDOW),
            ));
        }
        let lower = token.text.to_ascii_lowercase();
        match lower.as_str() {
            "always" | "true" => {
                self.pos += 1;
                return Ok(Entry::Window(Window::Always));
            }
            "never" | "false" => {
                self.pos += 1;
                return Ok(Entry::Window(Window::Never));
            }
            "from" | "until" => {
                self.pos += 1;
                let at = self.instant_token(&lower)?;
                return Ok(Entry::Window(open_range(&lower, at)));
            }
            "except" => {
                self.pos += 1;
                let Some(date) = self.peek().filter(|t| t.text != ",") else {
                    return Err(error(
                        "\"except\" without a date",
                        token.column,
                        Some("a date or range such as 2026-12-24..2027-01-01"),
                    ));
                };
                self.pos += 1;
                return Holiday::parse(date.text)
                    .map(Entry::Holiday)
                    .map_err(|e| error(e, date.column, None));
            }
            _ => {}
        }
        for prefix in ["from-", "until-"] {
            if lower.starts_with(prefix) {
                let keyword = &prefix[..prefix.len() - 1];
                let at = rfc3339(&token.text[prefix.len()..], token.column + prefix.len())?;
                self.pos += 1;
                return Ok(Entry::Window(open_range(keyword, at)));
            }
        }
        if looks_like_instant(token.text) {
            return self.absolute().map(Entry::Window);
        }
        self.weekly().map(Entry::Window)
    }

    fn instant_token(&mut self, keyword: &str) -> Result<DateTime<FixedOffset>, ParseError> {
        let Some(t) = self.peek().filter(|t| t.text != ",") else {
            let column = self.tokens[self.pos - 1].column;
            return Err(error(
                format!("\"{keyword}\" without an instant"),
                column,
                Some("an RFC 3339 instant with an offset, such as 2026-12-24T00:00:00+01:00"),
            ));
        };
        self.pos += 1;
        rfc3339(t.text, t.column)
    }

    /// `A-B` in one token, or `A - B` in three.
    fn absolute(&mut self) -> Result<Window, ParseError> {
        let token = self.tokens[self.pos];
        if self.peek_at(1).is_some_and(|t| t.text == "-") {
            let from = rfc3339(token.text, token.column)?;
            self.pos += 2;
            let until = self.instant_token("-")?;
            return range(from, until, token.column);
        }
        self.pos += 1;
        // The separator is a '-' whose left side is a whole instant (ends in Z or an offset).
        for (i, c) in token.text.char_indices() {
            if c != '-' || i < 19 {
                continue;
            }
            let (a, b) = (&token.text[..i], &token.text[i + 1..]);
            if let (Ok(from), Ok(until)) = (
                DateTime::parse_from_rfc3339(a),
                DateTime::parse_from_rfc3339(b),
            ) {
                return range(from, until, token.column);
            }
        }
        Err(error(
            format!("invalid absolute range \"{}\"", token.text),
            token.column,
            Some(
                "two RFC 3339 instants with offsets joined by '-', such as 2026-12-24T00:00:00+01:00-2027-01-02T00:00:00+01:00",
            ),
        ))
    }

    fn weekly(&mut self) -> Result<Window, ParseError> {
        let first = self.tokens[self.pos];
        let mut days = DaySet::default();
        let mut has_days = false;
        if !first.text.starts_with(|c: char| c.is_ascii_digit()) {
            day_item(first, &mut days)?;
            self.pos += 1;
            has_days = true;
            // `Mon,Wed,Fri`: a comma followed by another day continues the list.
            while self.peek().is_some_and(|t| t.text == ",")
                && self.peek_at(1).is_some_and(|t| is_day_item(t.text))
            {
                let item = self.tokens[self.pos + 1];
                day_item(item, &mut days)?;
                self.pos += 2;
            }
        }
        let (start, end) = match self.peek() {
            Some(t) if t.text.starts_with(|c: char| c.is_ascii_digit()) => {
                self.pos += 1;
                time_range(t)?
            }
            _ if has_days => (0, DAY_SECONDS),
            _ => return Err(invalid_time_range(first)),
        };
        let tz = match self.peek() {
            Some(t) if t.text != "," => {
                self.pos += 1;
                zone::parse_zone(t.text).ok_or_else(|| {
                    error(
                        format!("unknown time zone \"{}\"", t.text),
                        t.column,
                        Some("an IANA zone such as Europe/Paris, America/New_York or UTC"),
                    )
                })?
            }
            _ => self.default_tz,
        };
        Ok(Window::Weekly(Weekly {
            days: if has_days { days } else { DaySet::ALL },
            start,
            end,
            tz,
        }))
    }
}

fn invalid_time_range(token: Token<'_>) -> ParseError {
    error(
        format!("invalid time range \"{}\"", token.text),
        token.column,
        Some("HH:MM-HH:MM"),
    )
}

fn open_range(keyword: &str, at: DateTime<FixedOffset>) -> Window {
    if keyword == "from" {
        Window::Absolute {
            from: Some(at),
            until: None,
        }
    } else {
        Window::Absolute {
            from: None,
            until: Some(at),
        }
    }
}

fn range(
    from: DateTime<FixedOffset>,
    until: DateTime<FixedOffset>,
    column: usize,
) -> Result<Window, ParseError> {
    if until <= from {
        return Err(error(
            "absolute range ends before it starts",
            column,
            Some("the first instant before the second"),
        ));
    }
    Ok(Window::Absolute {
        from: Some(from),
        until: Some(until),
    })
}

fn looks_like_instant(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

fn rfc3339(text: &str, column: usize) -> Result<DateTime<FixedOffset>, ParseError> {
    DateTime::parse_from_rfc3339(text).map_err(|_| {
        error(
            format!("invalid instant \"{text}\""),
            column,
            Some("RFC 3339 with an offset or Z, such as 2026-12-24T00:00:00+01:00"),
        )
    })
}

const EXPECTED_DAY: &str = "Mon..Sun";

fn weekday(name: &str) -> Option<Weekday> {
    let lower = name.to_ascii_lowercase();
    let day = match lower.as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

fn is_day_item(text: &str) -> bool {
    match text.split_once('-') {
        Some((a, b)) => weekday(a).is_some() && weekday(b).is_some(),
        None => weekday(text).is_some(),
    }
}

/// `Mon` or `Mon-Fri` (wrapping: `Fri-Mon`).
fn day_item(token: Token<'_>, days: &mut DaySet) -> Result<(), ParseError> {
    let day = |text: &str, column: usize| {
        weekday(text).ok_or_else(|| {
            error(
                format!("unknown weekday \"{text}\""),
                column,
                Some(EXPECTED_DAY),
            )
        })
    };
    match token.text.split_once('-') {
        Some((a, b)) => {
            let from = day(a, token.column)?;
            let to = day(b, token.column + a.chars().count() + 1)?;
            days.insert_range(from, to);
        }
        None => days.insert(day(token.text, token.column)?),
    }
    Ok(())
}

/// `HH:MM-HH:MM`; `24:00` only as an end; an end at or before the start crosses midnight.
fn time_range(token: Token<'_>) -> Result<(u32, u32), ParseError> {
    let Some((a, b)) = token.text.split_once('-') else {
        return Err(invalid_time_range(token));
    };
    let start = clock_time(a, token.column, false)?;
    let end = clock_time(b, token.column + a.chars().count() + 1, true)?;
    if start == end {
        return Err(error(
            format!("empty window \"{}\" (start equals end)", token.text),
            token.column,
            Some("an end different from the start (00:00-24:00 for whole days, or \"never\")"),
        ));
    }
    Ok((start, end))
}

fn clock_time(text: &str, column: usize, is_end: bool) -> Result<u32, ParseError> {
    let bad = || {
        error(
            format!("invalid time \"{text}\""),
            column,
            Some(if is_end {
                "HH:MM from 00:00 to 24:00"
            } else {
                "HH:MM from 00:00 to 23:59"
            }),
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len: usize| {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (h, m) = (digits(h, 2).ok_or_else(bad)?, digits(m, 2).ok_or_else(bad)?);
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !is_end)) {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

// ---------------------------------------------------------------------------------------
// Event schedules

const EXPECTED_EVENT: &str = "stop=<cron>, start=<cron>, tz=<zone> or except=<dates> \
(or Cloud Custodian's off=, on=, tz=)";

fn parse_events(text: &str, default_tz: Tz) -> Result<Events, ParseError> {
    let mut items = EventItems::default();
    // Custodian users sometimes keep the quotes of the docs' examples around the value.
    let quoted = text.trim().starts_with(['\'', '"']);
    let text = text.trim().trim_matches(|c| c == '"' || c == '\'');
    let mut offset = usize::from(quoted); // in characters
    for piece in text.split(';') {
        let piece_column = offset + 1;
        offset += piece.chars().count() + 1;
        let leading = piece.chars().take_while(|c| c.is_whitespace()).count();
        let item = piece.trim();
        // Custodian tolerates `off=(m-f,1);`.
        if !item.is_empty() {
            items.read(item, piece_column + leading)?;
        }
    }
    items.finish(default_tz)
}

/// What an event spec's items say, as they are read.
#[derive(Default)]
struct EventItems {
    stops: Vec<CronSpec>,
    starts: Vec<CronSpec>,
    tz: Option<(String, usize)>,
    holidays: Vec<Holiday>,
    /// Custodian's `off=` and `on=` values, each with the column it starts at.
    custodian: [Option<(String, usize)>; 2],
    /// Where the first of curfew's own `stop=`/`start=` is.
    curfew_key_seen: Option<usize>,
}

impl EventItems {
    /// One `key=value` item, at `column`.
    fn read(&mut self, item: &str, column: usize) -> Result<(), ParseError> {
        let Some((key, value)) = item.split_once('=') else {
            return Err(error(
                format!("\"{item}\" is not key=value"),
                column,
                Some(EXPECTED_EVENT),
            ));
        };
        let value_column = column + key.chars().count() + 1;
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        let key = key.trim().to_ascii_lowercase();
        let at = |e: &dyn fmt::Display| error(e, value_column, None);
        match key.as_str() {
            "stop" | "start" => {
                self.curfew_key_seen.get_or_insert(column);
                let cron = CronSpec::parse(value).map_err(|e| at(&e))?;
                if key == "stop" {
                    self.stops.push(cron)
                } else {
                    self.starts.push(cron)
                }
            }
            "except" => {
                for date in value.split(',') {
                    self.holidays
                        .push(Holiday::parse(date.trim()).map_err(|e| at(&e))?);
                }
            }
            "tz" if self.tz.is_some() => return Err(error("tz= given twice", column, None)),
            "tz" => self.tz = Some((value.to_string(), value_column)),
            "off" | "on" => {
                let slot = &mut self.custodian[usize::from(key == "on")];
                if slot.is_some() {
                    return Err(error(format!("{key}= given twice"), column, None));
                }
                *slot = Some((value.to_ascii_lowercase(), value_column));
            }
            other => {
                return Err(error(
                    format!("unknown key \"{other}\""),
                    column,
                    Some(EXPECTED_EVENT),
                ));
            }
        }
        Ok(())
    }

    /// The events the items make: the zone resolved, Custodian's values as crons, at
    /// least one stop.
    fn finish(mut self, default_tz: Tz) -> Result<Events, ParseError> {
        let uses_custodian = self.custodian.iter().any(Option::is_some);
        // Custodian lower-cases tag values, so its `tz=EST` is the alias (New York); in
        // curfew's own form an IANA name as written wins (`EST` is the fixed zone).
        let tz = match self.tz.take() {
            None => None,
            Some((value, column)) => Some(custodian_zone(&value, uses_custodian).ok_or_else(|| {
                error(
                    format!("unknown time zone \"{value}\""),
                    column,
                    Some("an IANA zone such as Europe/Paris, or a Custodian alias such as pt or et"),
                )
            })?),
        };
        if uses_custodian {
            self.custodian_crons()?;
        }
        if self.stops.is_empty() {
            return Err(error(
                "an event schedule needs at least one stop=",
                1,
                Some("stop=<cron>, such as stop=0 19 * * 1-5"),
            ));
        }
        Ok(Events {
            stops: self.stops,
            starts: self.starts,
            tz: tz.unwrap_or(default_tz),
            holidays: self.holidays,
        })
    }

    /// Custodian's `off=`/`on=` as stop and start crons; a half that is not given takes
    /// the policy default (off 19:00, on 07:00, Monday to Friday).
    fn custodian_crons(&mut self) -> Result<(), ParseError> {
        if let Some(column) = self.curfew_key_seen {
            return Err(error(
                "Cloud Custodian's off=/on= mixed with stop=/start=",
                column,
                Some("one form or the other"),
            ));
        }
        let [off, on] = std::mem::take(&mut self.custodian);
        let (off, off_col) = off.unwrap_or_else(|| ("(m-f,19)".into(), 1));
        let (on, on_col) = on.unwrap_or_else(|| ("(m-f,7)".into(), 1));
        for text in custodian_crons(&off).map_err(|e| error(e, off_col, None))? {
            self.stops
                .push(CronSpec::parse(&text).map_err(|e| error(e, off_col, None))?);
        }
        for text in custodian_crons(&on).map_err(|e| error(e, on_col, None))? {
            self.starts
                .push(CronSpec::parse(&text).map_err(|e| error(e, on_col, None))?);
        }
        Ok(())
    }
}
