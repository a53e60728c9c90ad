//! A rule's schedule: `run:`, `stop:`, `events:` or Qovery's deployment-rule fields (one of
//! them), parsed in the rule's zone with its holidays.

use chrono_tz::Tz;

use super::{Compiler, Place};
use crate::config::raw::{At, OneOrMany, RawEventFields, RawEvents, RawRule, RawWindows};
use crate::policy::Wake;
use crate::schedule::{Holiday, RuleSchedule, Schedule};

/// The rule's schedule, if it has one: its one schedule field parsed; `None` (and errors)
/// when it gives several or one does not parse.
pub(super) fn compile_schedule(
    c: &mut Compiler<'_>,
    raw: &RawRule,
    rule: Option<&str>,
    tz: Tz,
    holidays: &[Holiday],
) -> Option<RuleSchedule> {
    let given = schedule_fields(raw);
    if given.len() > 1 {
        let place = Place {
            rule,
            field: given[0],
            ..first_schedule_place(raw)
        };
        c.error(
            place,
            format!("give one schedule, not several: {}", given.join(", ")),
        );
        return None;
    }
    let parse = Parse { rule, tz };
    if let Some(run) = &raw.run {
        let windows = parse.windows(c, run, "run")?;
        Some(RuleSchedule::Run(windows.with_holidays(holidays)))
    } else if let Some(stop) = &raw.stop {
        let windows = parse.windows(c, stop, "stop")?;
        Some(RuleSchedule::stop(windows, holidays, tz))
    } else if let Some(events) = &raw.events {
        let events = parse.events(c, events)?;
        Some(RuleSchedule::Events(events.with_holidays(holidays)))
    } else if given.is_empty() || raw.auto_stop == Some(false) {
        None
    } else {
        let window = parse.qovery(c, raw)?;
        Some(RuleSchedule::Run(window.with_holidays(holidays)))
    }
}

/// The schedule fields the rule gives.
fn schedule_fields(raw: &RawRule) -> Vec<&'static str> {
    let qovery = raw.weekdays.is_some() || raw.start_time.is_some() || raw.stop_time.is_some();
    [
        (raw.run.is_some(), "run"),
        (raw.stop.is_some(), "stop"),
        (raw.events.is_some(), "events"),
        (qovery, "weekdays/start_time/stop_time"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect()
}

/// Where the first of `run:`, `stop:` and `events:` is written.
fn first_schedule_place(raw: &RawRule) -> Place<'static> {
    let (line, column) = raw
        .run
        .as_ref()
        .map(|a| (a.line, a.column))
        .or(raw.stop.as_ref().map(|a| (a.line, a.column)))
        .or(raw.events.as_ref().map(|a| (a.line, a.column)))
        .unwrap_or((0, 0));
    Place {
        rule: None,
        field: "run",
        line,
        column,
    }
}

/// A schedule that never lets an environment run in the coming year is a mistake, unless
/// the rule only stops (`wake: never`): then what it matches is stopped once, and a
/// person's start is left alone. The error says how to write either.
pub(super) fn runs_or_only_stops(
    c: &mut Compiler<'_>,
    raw: &RawRule,
    rule: Option<&str>,
    schedule: &RuleSchedule,
    wake: Wake,
) -> bool {
    if wake == Wake::Never || !schedule.never_runs(c.now) {
        return true;
    }
    let field = schedule_fields(raw).first().copied().unwrap_or("run");
    let (line, column) = raw
        .run
        .as_ref()
        .map(|a| (a.line, a.column))
        .or(raw.stop.as_ref().map(|a| (a.line, a.column)))
        .unwrap_or((0, 0));
    let place = Place {
        rule,
        field,
        line,
        column,
    };
    c.error(
        place,
        format!(
            "the schedule \"{}\" never lets an environment run in the coming year: give the windows they may run in (such as `run: Mon-Fri 08:00-19:00`), or, to keep them stopped unless a person starts them, add `wake: never` (stop-only)",
            schedule.describe()
        ),
    );
    false
}

/// Parses a rule's schedule fields in its zone, reporting errors at their place.
struct Parse<'r> {
    rule: Option<&'r str>,
    tz: Tz,
}

impl Parse<'_> {
    /// A spec written at `at` (line, column) in `field`.
    fn spec(
        &self,
        c: &mut Compiler<'_>,
        text: &str,
        field: &str,
        at: (usize, usize),
    ) -> Option<Schedule> {
        match Schedule::parse(text, self.tz) {
            Ok(s) => Some(s),
            Err(e) => {
                let column = c.inner_column(at.0, at.1, e.column);
                let place = Place {
                    rule: self.rule,
                    field,
                    line: at.0,
                    column,
                };
                c.error(place, e.to_string());
                None
            }
        }
    }

    /// `run:` or `stop:` windows (an event spec belongs under `events:`).
    fn windows(&self, c: &mut Compiler<'_>, at: &At<RawWindows>, field: &str) -> Option<Schedule> {
        let pos = list_aware_position(&at.value, at);
        let s = self.spec(c, &at.value.joined(), field, pos)?;
        if s.events().is_some() {
            c.error(
                Place::of(self.rule, field, at),
                format!("an event schedule (stop=…, off=…) belongs under `events`, not `{field}`"),
            );
            return None;
        }
        Some(s)
    }

    /// `events:`: a spec, or the fields of kube-green or of crons (windows belong under
    /// `run:` or `stop:`).
    fn events(&self, c: &mut Compiler<'_>, events: &At<RawEvents>) -> Option<Schedule> {
        let text = match &events.value {
            RawEvents::Spec(s) => s.clone(),
            RawEvents::Fields(f) => match event_fields(f) {
                Ok(t) => t,
                Err(e) => {
                    c.error(Place::of(self.rule, "events", events), e.to_string());
                    return None;
                }
            },
        };
        let s = self.spec(c, &text, "events", (events.line, events.column))?;
        if s.events().is_none() {
            c.error(Place::of(self.rule, "events", events), "`events` takes stop=/start= crons or a Cloud Custodian tag; windows belong under `run` or `stop`");
            return None;
        }
        Some(s)
    }

    /// Qovery's `weekdays`/`start_time`/`stop_time` as one window.
    fn qovery(&self, c: &mut Compiler<'_>, raw: &RawRule) -> Option<Schedule> {
        let text = qovery_window(raw)
            .map_err(|(field, line, column, e)| {
                let place = Place {
                    rule: self.rule,
                    field,
                    line,
                    column,
                };
                c.error(place, e);
            })
            .ok()?;
        self.spec(c, &text, "weekdays", (0, 0))
    }
}

/// Where to report a column inside `run:`/`stop:`: a one-string value maps columns into the
/// line; a list does not (the error then names the value's start).
fn list_aware_position(value: &RawWindows, at: &At<RawWindows>) -> (usize, usize) {
    match value {
        RawWindows::One(_) => (at.line, at.column),
        RawWindows::List(_) => (at.line, 0),
    }
}

/// Why `events:` fields do not make an event spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EventFieldsError {
    #[error("use either stop/start crons or kube-green's weekdays/sleepAt/wakeUpAt, not both")]
    Both,
    #[error("\"{0}\" is not HH:MM")]
    NotATime(String),
    #[error("kube-green fields need sleepAt")]
    NoSleepAt,
}

/// kube-green's SleepInfo fields, or cron fields, as an event spec string.
fn event_fields(f: &RawEventFields) -> Result<String, EventFieldsError> {
    let mut parts = Vec::new();
    let kube_green = f.weekdays.is_some() || f.sleep_at.is_some() || f.wake_up_at.is_some();
    if kube_green {
        if f.stop.is_some() || f.start.is_some() {
            return Err(EventFieldsError::Both);
        }
        let weekdays = f.weekdays.clone().unwrap_or_else(|| "*".into());
        let cron = |hm: &str| -> Result<String, EventFieldsError> {
            let (h, m) = hm
                .split_once(':')
                .ok_or_else(|| EventFieldsError::NotATime(hm.to_string()))?;
            Ok(format!("{} {} * * {weekdays}", m.trim(), h.trim()))
        };
        let sleep = f.sleep_at.as_deref().ok_or(EventFieldsError::NoSleepAt)?;
        parts.push(format!("stop={}", cron(sleep)?));
        if let Some(wake) = &f.wake_up_at {
            parts.push(format!("start={}", cron(wake)?));
        }
    } else {
        for s in f.stop.as_ref().map(OneOrMany::to_vec).unwrap_or_default() {
            parts.push(format!("stop={s}"));
        }
        for s in f.start.as_ref().map(OneOrMany::to_vec).unwrap_or_default() {
            parts.push(format!("start={s}"));
        }
    }
    match &f.time_zone {
        Some(tz) => parts.push(format!("tz={tz}")),
        // kube-green's SleepInfo without timeZone means UTC.
        None if kube_green => parts.push("tz=UTC".into()),
        None => {}
    }
    Ok(parts.join("; "))
}

type FieldError = (&'static str, usize, usize, String);

/// Qovery's deployment-rule fields as one window: `Mon,Tue 08:00-19:00`.
fn qovery_window(raw: &RawRule) -> Result<String, FieldError> {
    let time = |value: &Option<At<String>>, field: &'static str| -> Result<String, FieldError> {
        let at =
            value
                .as_ref()
                .ok_or((field, 0, 0, format!("Qovery rules need {field} as well")))?;
        let text = at.value.trim();
        // `1970-01-01T08:00:00.000Z` (the API's form) or `08:00`.
        let hm = text.split_once('T').map_or(text, |(_, t)| t);
        let hm: String = hm.chars().take(5).collect();
        let valid = hm.len() == 5 && chrono::NaiveTime::parse_from_str(&hm, "%H:%M").is_ok();
        if !valid {
            return Err((
                field,
                at.line,
                at.column,
                format!("\"{text}\" is not a time; expected 08:00 or 1970-01-01T08:00:00.000Z"),
            ));
        }
        Ok(hm)
    };
    let start = time(&raw.start_time, "start_time")?;
    let stop = time(&raw.stop_time, "stop_time")?;
    let days_at = raw.weekdays.as_ref().ok_or((
        "weekdays",
        0,
        0,
        "Qovery rules need weekdays as well".to_string(),
    ))?;
    if days_at.value.is_empty() {
        return Err((
            "weekdays",
            days_at.line,
            days_at.column,
            "weekdays is empty".into(),
        ));
    }
    let mut days = Vec::new();
    for d in &days_at.value {
        let lower = d.trim().to_ascii_lowercase();
        let short = match lower.as_str() {
            "monday" => "Mon",
            "tuesday" => "Tue",
            "wednesday" => "Wed",
            "thursday" => "Thu",
            "friday" => "Fri",
            "saturday" => "Sat",
            "sunday" => "Sun",
            _ => {
                return Err((
                    "weekdays",
                    days_at.line,
                    days_at.column,
                    format!("unknown weekday \"{d}\"; expected MONDAY..SUNDAY"),
                ));
            }
        };
        days.push(short);
    }
    Ok(format!("{} {start}-{stop}", days.join(",")))
}
