//! Where each simulated environment spends the horizon, in hours and money: per rule, per
//! day of the rule file's zone, and before each horizon mark (the daemon's 7 and 30 days).
//!
//! Time is counted in whole seconds of real time, so the night the clocks go back counts
//! its 25 hours and the night they go forward its 23.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::policy::Action;
use crate::schedule::zone::resolve;

/// What an environment costs while it is in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Running, or in a state curfew leaves alone (an error): it costs money.
    Running,
    Stopped,
    /// Deleted by a rule.
    Gone,
}

/// Seconds and money of one rule, over the horizon or over one day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Tally {
    pub running: i64,
    pub stopped: i64,
    pub gone: i64,
    /// Hourly cost × hours running.
    pub cost: f64,
    /// Hourly cost × hours in the span, had every environment run all along.
    pub always_on: f64,
    pub stops: u32,
    pub starts: u32,
    pub deletes: u32,
    pub warnings: u32,
}

impl Tally {
    fn add(&mut self, status: Status, seconds: i64, per_hour: f64) {
        let hours = seconds as f64 / 3600.0;
        self.always_on += per_hour * hours;
        match status {
            Status::Running => {
                self.running += seconds;
                self.cost += per_hour * hours;
            }
            Status::Stopped => self.stopped += seconds,
            Status::Gone => self.gone += seconds,
        }
    }

    fn count(&mut self, action: Action) {
        match action {
            Action::Stop => self.stops += 1,
            Action::Start => self.starts += 1,
            Action::Delete => self.deletes += 1,
            Action::Warn => self.warnings += 1,
            Action::None => {}
        }
    }
}

/// The accounts of one simulation.
pub(super) struct Account {
    rules: usize,
    /// Where each day of the rule file's zone starts, clipped to the horizon, and the
    /// horizon's end last.
    day_starts: Vec<DateTime<Utc>>,
    dates: Vec<NaiveDate>,
    pub totals: Vec<Tally>,
    /// Day `k`, rule `r` at `k * rules + r`.
    daily: Vec<Tally>,
    /// Instants before which savings are summed separately, and each one's tallies by rule.
    marks: Vec<DateTime<Utc>>,
    before_mark: Vec<Vec<Tally>>,
}

impl Account {
    pub fn new(
        rules: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tz: Tz,
        marks: &[DateTime<Utc>],
    ) -> Account {
        let mut day_starts = vec![from];
        let mut dates = vec![from.with_timezone(&tz).date_naive()];
        while let Some(next) = dates
            .last()
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
        {
            let start = resolve(tz, next);
            if start >= to {
                break;
            }
            day_starts.push(start);
            dates.push(next.date());
        }
        day_starts.push(to);
        Account {
            rules,
            daily: vec![Tally::default(); dates.len() * rules],
            day_starts,
            dates,
            totals: vec![Tally::default(); rules],
            marks: marks.to_vec(),
            before_mark: vec![vec![Tally::default(); rules]; marks.len()],
        }
    }

    /// `rule`'s environment costing `per_hour` spent `[a, b)` in `status`.
    pub fn span(
        &mut self,
        rule: usize,
        per_hour: f64,
        status: Status,
        a: DateTime<Utc>,
        b: DateTime<Utc>,
    ) {
        if b <= a {
            return;
        }
        self.totals[rule].add(status, seconds(b - a), per_hour);
        let first = self
            .day_starts
            .partition_point(|s| *s <= a)
            .saturating_sub(1);
        for k in first..self.dates.len() {
            let (start, end) = (self.day_starts[k].max(a), self.day_starts[k + 1].min(b));
            if start >= b {
                break;
            }
            if end > start {
                self.daily[k * self.rules + rule].add(status, seconds(end - start), per_hour);
            }
        }
        for (m, mark) in self.marks.iter().enumerate() {
            let end = b.min(*mark);
            if end > a {
                self.before_mark[m][rule].add(status, seconds(end - a), per_hour);
            }
        }
    }

    /// An action of `rule` at `at`.
    pub fn action(&mut self, rule: usize, at: DateTime<Utc>, action: Action) {
        self.totals[rule].count(action);
        let k = self
            .day_starts
            .partition_point(|s| *s <= at)
            .saturating_sub(1);
        if k < self.dates.len() {
            self.daily[k * self.rules + rule].count(action);
        }
    }

    /// Each day's date and its tallies by rule.
    pub fn days(&self) -> impl Iterator<Item = (NaiveDate, &[Tally])> {
        self.dates
            .iter()
            .zip(self.daily.chunks(self.rules.max(1)))
            .map(|(d, t)| (*d, t))
    }

    /// The tallies by rule before the `m`-th mark.
    pub fn before(&self, m: usize) -> &[Tally] {
        &self.before_mark[m]
    }
}

fn seconds(d: TimeDelta) -> i64 {
    d.num_seconds()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn days_follow_the_zone_and_the_night_the_clocks_go_back_has_25_hours() {
        let from = at("2026-10-24T12:00:00+02:00");
        let to = at("2026-10-26T12:00:00+01:00");
        let mut a = Account::new(1, from, to, chrono_tz::Europe::Paris, &[]);
        a.span(0, 2.0, Status::Running, from, to);
        let days: Vec<(String, i64)> = a
            .days()
            .map(|(d, t)| (d.to_string(), t[0].running))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-10-24".to_string(), 12 * 3600),
                ("2026-10-25".to_string(), 25 * 3600),
                ("2026-10-26".to_string(), 12 * 3600),
            ]
        );
        assert_eq!(a.totals[0].running, 49 * 3600);
        assert!((a.totals[0].cost - 98.0).abs() < 1e-9);
    }

    #[test]
    fn a_span_is_split_at_days_and_marks_and_counts_as_its_status() {
        let from = at("2026-11-02T00:00:00Z");
        let to = at("2026-11-05T00:00:00Z");
        let mark = at("2026-11-03T06:00:00Z");
        let mut a = Account::new(2, from, to, chrono_tz::UTC, &[mark]);
        a.span(
            1,
            1.0,
            Status::Stopped,
            at("2026-11-02T18:00:00Z"),
            at("2026-11-03T12:00:00Z"),
        );
        a.span(1, 1.0, Status::Running, from, at("2026-11-02T18:00:00Z"));
        a.action(1, at("2026-11-02T18:00:00Z"), Action::Stop);
        let days: Vec<(i64, i64, u32)> = a
            .days()
            .map(|(_, t)| (t[1].running / 3600, t[1].stopped / 3600, t[1].stops))
            .collect();
        assert_eq!(days, [(18, 6, 1), (0, 12, 0), (0, 0, 0)]);
        assert_eq!(a.totals[0], Tally::default());
        let before = a.before(0)[1];
        assert_eq!((before.running / 3600, before.stopped / 3600), (18, 12));
        assert!((before.always_on - 30.0).abs() < 1e-9);
        assert!((before.cost - 18.0).abs() < 1e-9);
    }
}
