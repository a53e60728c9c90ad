//! `curfew schedule eval|timeline` and `curfew duration`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::rc::Rc;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use clap::Subcommand;
use serde::{Deserialize, Serialize};

use crate::schedule::{Schedule, Ttl, zone};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print, for each instant, whether SPEC is active and when that next changes (JSON
    /// lines). With --batch, read `{"spec","at","tz"}` JSON lines from stdin instead.
    Eval {
        /// The schedule, e.g. "Mon-Fri 08:00-19:00 Europe/Paris".
        #[arg(required_unless_present = "batch")]
        spec: Option<String>,
        /// Instants to evaluate (RFC 3339 with an offset). Repeatable.
        #[arg(long = "at", required_unless_present = "batch")]
        at: Vec<String>,
        /// Zone for windows that name none; also the zone printed instants are shown in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Read JSON lines from stdin, write one result line per input line, in order.
        #[arg(long, conflicts_with_all = ["spec", "at"])]
        batch: bool,
    },
    /// Print every change of SPEC between two instants, one JSON line each.
    Timeline {
        /// The schedule.
        spec: String,
        /// Start of the range (exclusive), RFC 3339.
        #[arg(long)]
        from: String,
        /// End of the range (inclusive), RFC 3339.
        #[arg(long)]
        to: String,
        /// Zone for windows that name none; also the zone printed instants are shown in.
        #[arg(long, default_value = "UTC")]
        tz: String,
    },
}

const INVALID: u8 = 2;

pub fn run(cmd: ScheduleCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ScheduleCommand::Eval { batch: true, .. } => batch(io::stdin().lock(), io::stdout().lock()),
        ScheduleCommand::Eval { spec, at, tz, .. } => {
            eval(spec.as_deref().unwrap_or_default(), &at, &tz)
        }
        ScheduleCommand::Timeline { spec, from, to, tz } => timeline(&spec, &from, &to, &tz),
    }
}

fn invalid(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(INVALID))
}

/// Why an argument (or a batch line's field) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ArgError {
    #[error("unknown time zone \"{name}\" in {what}")]
    Zone { name: String, what: &'static str },
    #[error("{flag} \"{text}\" is not an RFC 3339 instant with an offset")]
    Instant { flag: &'static str, text: String },
    #[error("invalid schedule \"{spec}\": {error}")]
    Spec {
        spec: String,
        error: crate::schedule::ParseError,
    },
    #[error("not a {{\"spec\",\"at\",\"tz\"}} object: {0}")]
    Line(String),
}

/// A zone named by `--tz` (`what`) or a batch line's `tz`.
fn zone_arg(name: &str, what: &'static str) -> Result<Tz, ArgError> {
    zone::parse_zone(name).ok_or_else(|| ArgError::Zone {
        name: name.to_string(),
        what,
    })
}

fn instant_arg(text: &str, flag: &'static str) -> Result<DateTime<Utc>, ArgError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ArgError::Instant {
            flag,
            text: text.to_string(),
        })
}

/// `spec` parsed in `tz`.
fn spec_arg(spec: &str, tz: Tz) -> Result<Schedule, ArgError> {
    Schedule::parse(spec, tz).map_err(|error| ArgError::Spec {
        spec: spec.to_string(),
        error,
    })
}

fn show(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[derive(Serialize)]
struct Evaluation {
    at: String,
    active: bool,
    next_change: Option<String>,
}

fn evaluate(schedule: &Schedule, at: DateTime<Utc>, tz: Tz) -> Evaluation {
    let (active, next_change) = schedule.active_and_next_change(at);
    Evaluation {
        at: show(at, tz),
        active,
        next_change: next_change.map(|t| show(t, tz)),
    }
}

impl Evaluation {
    /// Writes the line `serde_json` would write, without its per-byte escaping scan: the
    /// two strings are RFC 3339 instants, which hold nothing JSON escapes.
    fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"{\"at\":\"")?;
        out.write_all(self.at.as_bytes())?;
        out.write_all(if self.active {
            b"\",\"active\":true,\"next_change\":"
        } else {
            b"\",\"active\":false,\"next_change\":"
        })?;
        match &self.next_change {
            Some(next) => {
                out.write_all(b"\"")?;
                out.write_all(next.as_bytes())?;
                out.write_all(b"\"}")
            }
            None => out.write_all(b"null}"),
        }
    }
}

fn eval(spec: &str, instants: &[String], tz: &str) -> anyhow::Result<ExitCode> {
    let tz = match zone_arg(tz, "--tz") {
        Ok(tz) => tz,
        Err(e) => return invalid(e),
    };
    let schedule = match spec_arg(spec, tz) {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let mut times = Vec::with_capacity(instants.len());
    for text in instants {
        match instant_arg(text, "--at") {
            Ok(t) => times.push(t),
            Err(e) => return invalid(e),
        }
    }
    let mut out = BufWriter::new(io::stdout().lock());
    for t in times {
        serde_json::to_writer(&mut out, &evaluate(&schedule, t, tz))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn timeline(spec: &str, from: &str, to: &str, tz: &str) -> anyhow::Result<ExitCode> {
    let parsed = (|| {
        let tz = zone_arg(tz, "--tz")?;
        let from = instant_arg(from, "--from")?;
        let to = instant_arg(to, "--to")?;
        let schedule = spec_arg(spec, tz)?;
        Ok::<_, ArgError>((tz, from, to, schedule))
    })();
    let (tz, from, to, schedule) = match parsed {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    #[derive(Serialize)]
    struct Change {
        at: String,
        active: bool,
    }
    let mut out = BufWriter::new(io::stdout().lock());
    for (at, active) in schedule.transitions(from, to) {
        serde_json::to_writer(
            &mut out,
            &Change {
                at: show(at, tz),
                active,
            },
        )?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct BatchLine<'a> {
    #[serde(borrow)]
    spec: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    at: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    tz: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Serialize)]
struct BatchError {
    error: String,
}

/// Parsed schedules by spec, then by zone name: batches repeat the same few specs many
/// times. Looked up by `&str`, so a hit allocates nothing.
#[derive(Default)]
struct Cache {
    by_spec: HashMap<Box<str>, ByZone, BuildHasherDefault<FxHasher>>,
    entries: usize,
}

type Parsed = Rc<Result<(Schedule, Tz), ArgError>>;

/// One spec's parses, by zone name (a batch rarely gives one spec more than a few zones).
type ByZone = Vec<(Box<str>, Parsed)>;

const CACHE_LIMIT: usize = 10_000;

impl Cache {
    fn get_or_parse(&mut self, spec: &str, tz_name: &str) -> Parsed {
        if let Some(zones) = self.by_spec.get(spec)
            && let Some((_, parsed)) = zones.iter().find(|(name, _)| **name == *tz_name)
        {
            return Rc::clone(parsed);
        }
        let parsed =
            Rc::new(zone_arg(tz_name, "tz").and_then(|tz| spec_arg(spec, tz).map(|s| (s, tz))));
        if self.entries >= CACHE_LIMIT {
            self.by_spec.clear();
            self.entries = 0;
        }
        self.entries += 1;
        self.by_spec
            .entry(spec.into())
            .or_default()
            .push((tz_name.into(), Rc::clone(&parsed)));
        parsed
    }
}

/// The Fx hash (rustc's): fast on short keys; the cache's keys are not adversarial.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Reads `{"spec","at","tz"}` lines and writes one result line per input line, in order.
pub fn batch(mut input: impl BufRead, output: impl Write) -> anyhow::Result<ExitCode> {
    let mut out = BufWriter::with_capacity(1 << 16, output);
    let mut cache = Cache::default();
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        // One buffer for every line; the line ends are dropped as `BufRead::lines` does.
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        number += 1;
        let text = match line.strip_suffix('\n') {
            Some(text) => text.strip_suffix('\r').unwrap_or(text),
            None => &line,
        };
        match batch_line(text, &mut cache) {
            Ok(result) => result.write_json(&mut out)?,
            Err(error) => serde_json::to_writer(
                &mut out,
                &BatchError {
                    error: format!("line {number}: {error}"),
                },
            )?,
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn batch_line(line: &str, cache: &mut Cache) -> Result<Evaluation, ArgError> {
    let request: BatchLine<'_> =
        serde_json::from_str(line).map_err(|e| ArgError::Line(e.to_string()))?;
    let tz_name = request.tz.as_deref().unwrap_or("UTC");
    let parsed = cache.get_or_parse(&request.spec, tz_name);
    let (schedule, tz) = parsed.as_ref().as_ref().map_err(Clone::clone)?;
    let at = instant_arg(&request.at, "at")?;
    Ok(evaluate(schedule, at, *tz))
}

/// `curfew duration D…`: one JSON line per argument; exit 2 if any is invalid.
pub fn durations(inputs: &[String]) -> anyhow::Result<ExitCode> {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Line<'a> {
        Ok {
            input: &'a str,
            seconds: Option<u64>,
        },
        Err {
            input: &'a str,
            error: String,
        },
    }
    let mut out = BufWriter::new(io::stdout().lock());
    let mut all_valid = true;
    for input in inputs {
        let line = match Ttl::parse(input) {
            Ok(ttl) => Line::Ok {
                input,
                seconds: ttl.seconds(),
            },
            Err(e) => {
                all_valid = false;
                Line::Err {
                    input,
                    error: e.to_string(),
                }
            }
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_batch(input: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        batch(input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn batch_lines_are_written_as_serde_json_writes_them() {
        let schedule = Schedule::parse("Mon-Fri 08:00-19:00", chrono_tz::Europe::Paris).unwrap();
        for (at, tz) in [
            ("2026-11-27T18:59:59.25+01:00", chrono_tz::Europe::Paris),
            ("2026-11-28T12:00:00Z", chrono_tz::UTC),
            ("2026-11-27T12:00:00Z", chrono_tz::Asia::Kolkata),
        ] {
            let eval = evaluate(&schedule, instant_arg(at, "at").unwrap(), tz);
            let mut ours = Vec::new();
            eval.write_json(&mut ours).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&eval).unwrap()
            );
        }
        let never = Schedule::parse("never", chrono_tz::UTC).unwrap();
        let eval = evaluate(
            &never,
            instant_arg("2026-11-27T12:00:00Z", "at").unwrap(),
            chrono_tz::UTC,
        );
        let mut ours = Vec::new();
        eval.write_json(&mut ours).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string(&eval).unwrap()
        );
    }

    #[test]
    fn batch_drops_line_ends_as_lines_does() {
        let input = "{\"spec\": \"always\", \"at\": \"2026-11-27T12:00:00Z\"}\r\n\r\nnot json\r";
        let lines = run_batch(input);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["active"], true);
        assert_eq!(
            lines[1]["error"],
            "line 2: not a {\"spec\",\"at\",\"tz\"} object: EOF while parsing a value at line 1 column 0"
        );
        // A last line without a newline keeps its carriage return, as `BufRead::lines` does.
        assert_eq!(
            lines[2]["error"],
            "line 3: not a {\"spec\",\"at\",\"tz\"} object: expected ident at line 1 column 2"
        );
    }

    #[test]
    fn batch_answers_every_line_in_order_with_errors_in_place() {
        let input = [
            r#"{"spec": "Mon-Fri 08:00-19:00", "at": "2026-11-27T18:59:59+01:00", "tz": "Europe/Paris"}"#,
            r#"{"spec": "Mno-Fri 08:00-19:00", "at": "2026-11-27T18:59:59+01:00"}"#,
            r#"not json"#,
            r#"{"spec": "Mon-Fri 08:00-19:00", "at": "2026-11-27T19:00:00+01:00", "tz": "Europe/Paris"}"#,
            r#"{"spec": "always", "at": "yesterday"}"#,
        ]
        .join("\n");
        let lines = run_batch(&input);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["active"], true);
        assert_eq!(lines[0]["next_change"], "2026-11-27T19:00:00+01:00");
        assert!(
            lines[1]["error"]
                .as_str()
                .unwrap()
                .contains("unknown weekday \"Mno\" at column 1")
        );
        assert!(
            lines[2]["error"]
                .as_str()
                .unwrap()
                .starts_with("line 3: not a")
        );
        assert_eq!(lines[3]["active"], false);
        assert_eq!(lines[3]["next_change"], "2026-11-30T08:00:00+01:00");
        assert!(
            lines[4]["error"]
                .as_str()
                .unwrap()
                .contains("\"yesterday\" is not an RFC 3339")
        );
    }
}
