//! Throughput of the schedule engine, printed as plain figures next to their goals.
//!
//! `cargo bench --bench schedule` builds the release binary too (cargo builds a package's
//! binaries for its benchmarks and passes their paths as `CARGO_BIN_EXE_<name>`), so the
//! end-to-end figure measures exactly what users run.
//!
//! Three figures, all on one thread:
//! - evaluations per second (`Schedule::is_active`),
//! - next-change computations per second (`Schedule::next_change`),
//! - lines per second through `curfew schedule eval --batch` on a 1,000,000-line file.
//!
//! The specs mix office hours in several zones, window lists, midnight-crossing windows,
//! absolute ranges and holidays; the instants are spread over 2026-2027 and generated
//! before timing starts by a fixed-seed PRNG, so every run measures the same work.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use curfew::schedule::Schedule;

/// (spec, zone for windows that name none).
const SPECS: &[(&str, &str)] = &[
    ("Mon-Fri 08:00-19:00 Europe/Paris", "UTC"),
    ("Mon-Fri 08:00-19:00 America/New_York", "UTC"),
    ("Mon-Fri 09:00-18:00 Asia/Tokyo", "UTC"),
    ("Mon-Fri 08:30-17:30 Australia/Sydney", "UTC"),
    ("Mon-Fri 08:00-19:00", "Europe/Paris"),
    (
        "Mon-Fri 07:30-12:00 Europe/Berlin, Mon-Fri 13:00-20:30 Europe/Berlin, Sat 10:00-14:00 Europe/Berlin",
        "UTC",
    ),
    (
        "Mon-Fri 08:00-18:00 Europe/London, Mon-Fri 08:00-18:00 America/Chicago, Sun-Thu 09:00-17:00 Asia/Jerusalem",
        "UTC",
    ),
    ("Mon-Fri 22:00-06:00 Europe/Paris", "UTC"),
    ("Fri-Mon 20:00-08:00 America/Los_Angeles", "UTC"),
    (
        "2026-03-01T00:00:00+01:00-2026-09-01T00:00:00+02:00, 2027-03-01T00:00:00Z - 2027-09-01T00:00:00Z",
        "UTC",
    ),
    (
        "Mon-Fri 08:00-19:00 Europe/Paris, 2026-12-24T00:00:00+01:00-2027-01-02T00:00:00+01:00",
        "UTC",
    ),
    (
        "Mon-Fri 08:00-19:00, except 2026-12-24..2027-01-01, except 2026-07-14, except 2027-05-01",
        "Europe/Paris",
    ),
    (
        "Mon-Fri 22:00-06:00 Australia/Sydney, except 2026-12-25..2026-12-26, except 2027-01-26",
        "UTC",
    ),
];

const EVALS: usize = 10_000_000;
const NEXT_CHANGES: usize = 2_000_000;
const BATCH_LINES: usize = 1_000_000;
/// Distinct (spec, instant) pairs; the measured loops cycle through them.
const SAMPLES: usize = 1 << 16;
/// Each in-process figure is the best of this many runs.
const RUNS: usize = 3;

const GOAL_EVALS: f64 = 5_000_000.0;
const GOAL_NEXT: f64 = 1_000_000.0;
const GOAL_BATCH: f64 = 500_000.0;

/// splitmix64: small, deterministic, good enough to spread instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn zone(name: &str) -> Tz {
    name.parse()
        .unwrap_or_else(|_| panic!("unknown zone {name}"))
}

fn instant(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("instant in range")
}

/// 2026-01-01T00:00:00Z and 2028-01-01T00:00:00Z.
const FROM: i64 = 1_767_225_600;
const UNTIL: i64 = 1_830_297_600;

/// (spec index, instant) pairs, uniformly over the specs and over 2026-2027.
fn samples(rng: &mut Rng, count: usize) -> Vec<(usize, DateTime<Utc>)> {
    (0..count)
        .map(|_| {
            let spec = rng.below(SPECS.len() as u64) as usize;
            let secs = FROM + rng.below((UNTIL - FROM) as u64) as i64;
            (spec, instant(secs))
        })
        .collect()
}

fn best_rate(ops: usize, mut run: impl FnMut() -> Duration) -> f64 {
    (0..RUNS)
        .map(|_| ops as f64 / run().as_secs_f64())
        .fold(0.0, f64::max)
}

fn verdict(rate: f64, goal: f64) -> &'static str {
    if rate >= goal { "ok" } else { "MISSED" }
}

/// 12345678.9 -> "12,345,679".
fn thousands(rate: f64) -> String {
    let digits = format!("{:.0}", rate);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(label: &str, rate: f64, unit: &str, goal: f64) {
    println!(
        "{label:<28} {:>12} {unit:<15} (goal >= {}) {}",
        thousands(rate),
        thousands(goal),
        verdict(rate, goal)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported, so ignore args.
    let schedules: Vec<Schedule> = SPECS
        .iter()
        .map(|(spec, tz)| Schedule::parse(spec, zone(tz)).unwrap_or_else(|e| panic!("{spec}: {e}")))
        .collect();
    let mut rng = Rng(0x00c0_ffee);
    let work = samples(&mut rng, SAMPLES);

    println!(
        "curfew schedule benchmark: one thread, {} specs, instants over 2026-2027",
        SPECS.len()
    );
    // Other processes skew every figure; say how busy the machine was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("load average (1, 5, 15 min): {}", load.join(" "));
    }

    let evals = best_rate(EVALS, || {
        let started = Instant::now();
        let mut active = 0usize;
        for i in 0..EVALS {
            let (spec, t) = work[i % SAMPLES];
            active += usize::from(black_box(&schedules[spec]).is_active(black_box(t)));
        }
        black_box(active);
        started.elapsed()
    });
    report("is_active", evals, "evals/s", GOAL_EVALS);

    let nexts = best_rate(NEXT_CHANGES, || {
        let started = Instant::now();
        let mut found = 0usize;
        for i in 0..NEXT_CHANGES {
            let (spec, t) = work[i % SAMPLES];
            found += usize::from(
                black_box(&schedules[spec])
                    .next_change(black_box(t))
                    .is_some(),
            );
        }
        black_box(found);
        started.elapsed()
    });
    report("next_change", nexts, "next-change/s", GOAL_NEXT);

    per_spec(&schedules, &mut rng);

    match batch(&mut rng) {
        Ok(rate) => report("batch (release binary)", rate, "lines/s", GOAL_BATCH),
        Err(e) => {
            println!("batch (release binary)       FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// The same two figures per spec, to show where time goes.
fn per_spec(schedules: &[Schedule], rng: &mut Rng) {
    const EACH: usize = 200_000;
    println!("per spec (evals/s, next-change/s):");
    for ((spec, _), schedule) in SPECS.iter().zip(schedules) {
        let times: Vec<DateTime<Utc>> = (0..4096)
            .map(|_| instant(FROM + rng.below((UNTIL - FROM) as u64) as i64))
            .collect();
        let evals = best_rate(EACH, || {
            let started = Instant::now();
            for i in 0..EACH {
                black_box(black_box(schedule).is_active(black_box(times[i % times.len()])));
            }
            started.elapsed()
        });
        let nexts = best_rate(EACH / 4, || {
            let started = Instant::now();
            for i in 0..EACH / 4 {
                black_box(black_box(schedule).next_change(black_box(times[i % times.len()])));
            }
            started.elapsed()
        });
        let short: String = spec.chars().take(60).collect();
        println!(
            "  {:>12} {:>12}  {short}{}",
            thousands(evals),
            thousands(nexts),
            if spec.len() > 60 { "…" } else { "" }
        );
    }
}

/// Writes the batch input, runs the release binary on it and returns lines per second.
fn batch(rng: &mut Rng) -> Result<f64, String> {
    let binary = curfew_binary()?;
    println!("batch binary: {}", binary.display());
    let input = std::env::temp_dir().join(format!("curfew-bench-{}.jsonl", std::process::id()));
    write_batch_input(&input, rng).map_err(|e| format!("writing {}: {e}", input.display()))?;
    let result = run_batch(&binary, &input);
    let _ = std::fs::remove_file(&input);
    result
}

fn write_batch_input(path: &Path, rng: &mut Rng) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for (spec, t) in samples(rng, BATCH_LINES) {
        let (text, tz) = SPECS[spec];
        // Instants written in the zone they are asked in, as a caller would.
        let at = t
            .with_timezone(&zone(tz))
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let line = serde_json::json!({ "spec": text, "at": at, "tz": tz });
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn run_batch(binary: &Path, input: &Path) -> Result<f64, String> {
    let stdin = File::open(input).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["schedule", "eval", "--batch"])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let (mut lines, mut errors) = (0usize, 0usize);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        lines += 1;
        errors += usize::from(line.starts_with(b"{\"error\""));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("{} exited with {status}", binary.display()));
    }
    println!(
        "batch: {lines} output lines for {BATCH_LINES} input lines, {errors} errors, {:.2} s",
        elapsed.as_secs_f64()
    );
    if lines != BATCH_LINES {
        return Err(format!("expected {BATCH_LINES} output lines, got {lines}"));
    }
    if errors != 0 {
        return Err(format!("{errors} lines answered with an error"));
    }
    Ok(BATCH_LINES as f64 / elapsed.as_secs_f64())
}

/// The release binary: cargo's path for it when this runs under `cargo bench`, else
/// `target/release/curfew` beside this executable, built first if missing.
fn curfew_binary() -> Result<PathBuf, String> {
    if let Some(path) = option_env!("CARGO_BIN_EXE_curfew").map(PathBuf::from)
        && path.exists()
    {
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/release/deps/schedule-<hash> -> target/release/curfew
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let binary = release.join("curfew");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-j2", "--bin", "curfew"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|e| format!("cargo build --release: {e}"))?;
        if !status.success() || !binary.exists() {
            return Err(format!(
                "cargo build --release did not produce {}",
                binary.display()
            ));
        }
    }
    Ok(binary)
}
