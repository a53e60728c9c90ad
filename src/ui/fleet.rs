//! `/`: the fleet. Counts by state and by rule, money saved today, this month and in all
//! (and what the rules in force are projected to save over the coming days),
//! the next boundaries, how the passes went, and a table of every environment (filtered by
//! text, rule and state; sorted by any column; a page of 100 rows at a time) with what
//! curfew will do next, when, and why.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveTime, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, hours, money, when};
use super::{Peer, Ui};
use crate::ledger::{EnvironmentSavings, Ledger, LedgerError};
use crate::platform::EnvState;
use crate::policy::{Action, Decision, EnvRecord};
use crate::policy::{RuleSet, Wake};
use crate::reconcile::{LastPass, PassOutcome};
use crate::schedule::zone;
use crate::simulate::Projection;

/// Rows on one page of the table.
pub const PAGE_ROWS: usize = 100;

/// The table's filters, sort and page, from the query string (the form's GET).
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    page: Option<usize>,
}

/// The columns the table sorts by.
const SORTS: [(&str, &str); 7] = [
    ("name", "Environment"),
    ("project", "Project"),
    ("mode", "Mode"),
    ("state", "State"),
    ("rule", "Rule"),
    ("next", "Next"),
    ("cost", "Cost / h"),
];

impl FleetQuery {
    fn matches(&self, d: &Decision) -> bool {
        let text = self.q.trim();
        (text.is_empty()
            || [&d.environment, &d.project, &d.environment_id]
                .iter()
                .any(|f| contains_ignore_case(f, text)))
            && (self.rule.is_empty() || d.rule.as_deref().unwrap_or("-") == self.rule.as_str())
            && (self.state.is_empty() || d.state.as_str() == self.state)
    }

    fn descending(&self) -> bool {
        self.order == "desc"
    }

    /// The query string of this view with one field changed.
    fn with(&self, field: &str, value: &str) -> String {
        let page = self.page.unwrap_or(1).to_string();
        let pairs = [
            ("q", self.q.as_str()),
            ("rule", self.rule.as_str()),
            ("state", self.state.as_str()),
            ("sort", self.sort.as_str()),
            ("order", self.order.as_str()),
            ("page", page.as_str()),
        ];
        let pairs: Vec<(&str, &str)> = pairs
            .into_iter()
            .map(|(k, v)| if k == field { (k, value) } else { (k, v) })
            .filter(|(k, v)| !(v.is_empty() || (*k == "page" && *v == "1")))
            .collect();
        format!(
            "/?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// What the ledger says for the page: savings over three periods and the rows' details.
struct LedgerFacts {
    today: (f64, f64),
    month: (f64, f64),
    total: (f64, f64),
    rows: HashMap<String, (EnvironmentSavings, Option<EnvRecord>)>,
}

fn ledger_facts(
    ledger: &Ledger,
    ids: &[&str],
    currency: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<LedgerFacts, LedgerError> {
    let local = now.with_timezone(&tz).date_naive();
    let midnight = zone::resolve(tz, local.and_time(NaiveTime::MIN));
    let first = local.with_day(1).unwrap_or(local);
    let month = zone::resolve(tz, first.and_time(NaiveTime::MIN));
    let total = ledger
        .savings()?
        .iter()
        .filter(|s| s.currency == currency)
        .fold((0.0, 0.0), |(t, m), s| (t + s.stopped_seconds, m + s.saved));
    let savings = ledger.environments_savings(ids)?;
    let mut rows = HashMap::with_capacity(ids.len());
    for (id, saved) in savings {
        let record = ledger.record(&id)?;
        rows.insert(id, (saved, record));
    }
    Ok(LedgerFacts {
        today: ledger.saved_since(midnight, currency)?,
        month: ledger.saved_since(month, currency)?,
        total,
        rows,
    })
}

/// What curfew does next with an environment, and when, as far as the last pass and its
/// rule tell: a due action, the end of a snooze, the delete, or the schedule's next change
/// for it.
pub fn next_step(
    d: &Decision,
    rules: &RuleSet,
    record: Option<&EnvRecord>,
    now: DateTime<Utc>,
) -> Option<(String, DateTime<Utc>)> {
    if d.action != Action::None {
        let dry = if d.dry_run { " (dry run)" } else { "" };
        return Some((
            format!("{}{dry}, due since", d.action),
            d.due_since.unwrap_or(now),
        ));
    }
    let rule = rules.rule(d.rule.as_deref()?)?;
    if let Some(until) = record.and_then(|r| r.snoozed_until).filter(|u| *u > now) {
        return Some(("kept up until".into(), until));
    }
    let delete = d
        .delete
        .as_ref()
        .and_then(|p| p.at)
        .map(|at| ("deleted".to_string(), at));
    let schedule = rule.schedule.as_ref().and_then(|s| match d.state {
        EnvState::Running => s.next_stop(now).map(|at| ("stops".to_string(), at)),
        EnvState::Stopped if rule.wake != Wake::Never => {
            let stopped_by_curfew = record.is_some_and(|r| r.curfew_stop.is_some());
            let next = s.next_change(now).filter(|at| s.is_active(*at))?;
            (rule.wake == Wake::All || stopped_by_curfew).then(|| ("starts".to_string(), next))
        }
        _ => None,
    });
    [delete, schedule]
        .into_iter()
        .flatten()
        .min_by_key(|(_, at)| *at)
}

/// A rule's next scheduled stop and next scheduled start.
type NextStopAndStart = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The table's rows: the indices of the decisions that pass the filters, sorted.
fn rows(last: &LastPass, q: &FleetQuery, rules: &RuleSet, now: DateTime<Utc>) -> Vec<usize> {
    let decisions = &last.decisions;
    let mut rows: Vec<usize> = (0..decisions.len())
        .filter(|&i| q.matches(&decisions[i]))
        .collect();
    let d = |i: usize| &decisions[i];
    match q.sort.as_str() {
        "project" => rows.sort_by(|&a, &b| {
            (&d(a).project, &d(a).environment).cmp(&(&d(b).project, &d(b).environment))
        }),
        "mode" => rows.sort_by_key(|&i| (d(i).mode, d(i).environment.clone())),
        "state" => rows.sort_by_key(|&i| (d(i).state.as_str(), d(i).environment.clone())),
        "rule" => rows.sort_by_key(|&i| (d(i).rule.clone(), d(i).environment.clone())),
        "cost" => rows.sort_by(|&a, &b| {
            d(a).hourly_cost
                .unwrap_or(0.0)
                .total_cmp(&d(b).hourly_cost.unwrap_or(0.0))
                .then_with(|| d(a).environment.cmp(&d(b).environment))
        }),
        "next" => {
            // Not the ledger for all 10,000, nor each one's schedule: the delete, and each
            // rule's next stop and start, computed once.
            let mut times: HashMap<&str, NextStopAndStart> = HashMap::new();
            for rule in &rules.rules {
                let schedule = rule.schedule.as_ref();
                let stop = schedule.and_then(|s| s.next_stop(now));
                let start = schedule.and_then(|s| s.next_change(now).filter(|at| s.is_active(*at)));
                times.insert(&rule.name, (stop, start));
            }
            let key = |i: usize| {
                let d = d(i);
                let (stop, start) = d
                    .rule
                    .as_deref()
                    .and_then(|r| times.get(r).copied())
                    .unwrap_or_default();
                let scheduled = match d.state {
                    EnvState::Running => stop,
                    EnvState::Stopped => start,
                    _ => None,
                };
                let delete = d.delete.as_ref().and_then(|p| p.at);
                let due = (d.action != Action::None).then_some(now);
                [due, delete, scheduled].into_iter().flatten().min()
            };
            rows.sort_by_cached_key(|&i| {
                let at = key(i);
                (at.is_none(), at)
            });
        }
        _ => rows.sort_by(|&a, &b| d(a).environment.cmp(&d(b).environment)),
    }
    if q.descending() {
        rows.reverse();
    }
    rows
}

/// The fleet page.
pub async fn page(
    State(ui): State<Ui>,
    headers: HeaderMap,
    peer: Peer,
    Query(q): Query<FleetQuery>,
) -> Response {
    let user = ui.user(&headers, &peer);
    if let Some(answer) = ui.gate(user.as_ref(), "/") {
        return answer;
    }
    let reader = ui.reader(user.as_ref());
    let now = ui.now();
    let rules = ui.daemon.rules();
    let Some(last) = ui.daemon.last_pass() else {
        let body = html! {
            div data-refresh="10" {
                h1 { "The fleet" }
                p.notice { "No pass has finished yet: the fleet shows here once the first one does." }
                (health(&ui, now, &rules))
            }
        };
        return layout::page("Fleet", &reader, body).into_response();
    };
    let all = rows(&last, &q, &rules, now);
    let pages = all.len().div_ceil(PAGE_ROWS).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let shown: Vec<usize> = all
        .iter()
        .copied()
        .skip((page_no - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .collect();
    let ids: Vec<Arc<str>> = shown
        .iter()
        .map(|&i| last.decisions[i].environment_id.clone())
        .collect();
    let currency = rules.currency.clone();
    let tz = rules.timezone;
    let read = move |ledger: &Ledger| {
        let ids: Vec<&str> = ids.iter().map(|i| i.as_ref()).collect();
        ledger_facts(ledger, &ids, &currency, tz, now)
    };
    let facts = match ui.read_ledger(user.as_ref(), read).await {
        Ok(f) => f,
        Err(page) => return *page,
    };
    let projection = ui.daemon.projection();
    let view = View {
        last: &last,
        rules: &rules,
        now,
        q: &q,
        facts: &facts,
        projection: projection.as_deref(),
    };
    let body = html! {
        div data-refresh="60" {
            h1 { "The fleet" }
            (view.summary())
            (health(&ui, now, &rules))
            (view.table(&shown, all.len(), page_no, pages))
        }
    };
    layout::page("Fleet", &reader, body).into_response()
}

struct View<'a> {
    last: &'a LastPass,
    rules: &'a RuleSet,
    now: DateTime<Utc>,
    q: &'a FleetQuery,
    facts: &'a LedgerFacts,
    /// The daemon's last projection of what the rules in force will save (none before the
    /// first, made beside the loop after the first pass).
    projection: Option<&'a Projection>,
}

impl View<'_> {
    fn summary(&self) -> Markup {
        let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for d in self.last.decisions.iter() {
            *by_state.entry(d.state.as_str()).or_default() += 1;
            *by_rule
                .entry(d.rule.as_deref().unwrap_or("no rule"))
                .or_default() += 1;
        }
        let c = &self.rules.currency;
        let f = self.facts;
        html! {
            section.cards aria-label="Summary" {
                div.card {
                    h2 { "Environments" }
                    p.big { (self.last.decisions.len()) }
                    ul { @for (state, n) in &by_state {
                        li { a href=(self.q.with("state", state)) { (state) } ": " (n) }
                    } }
                }
                div.card {
                    h2 { "By rule" }
                    ul { @for (rule, n) in &by_rule {
                        li { a href=(self.q.with("rule", if *rule == "no rule" { "-" } else { rule })) { (rule) } ": " (n) }
                    } }
                }
                div.card {
                    h2 { "Saved" }
                    p.big { (money(f.today.1, c)) " " span.muted { "today" } }
                    ul {
                        li { (money(f.month.1, c)) " this month (" (hours(f.month.0)) " stopped)" }
                        li { (money(f.total.1, c)) " in all (" (hours(f.total.0)) " stopped)" }
                        @if let Some(p) = self.projection {
                            li.projected {
                                (money(p.total.saved, &p.currency)) " projected over the next " (p.days) " days"
                                @if let Some(percent) = p.total.saved_percent {
                                    " (" (format!("{percent:.0}")) " % of always-on)"
                                }
                            }
                        }
                    }
                }
                div.card {
                    h2 { "Coming up" }
                    (self.boundaries())
                }
            }
        }
    }

    /// The rules' next boundaries, soonest first, with how many environments each moves.
    fn boundaries(&self) -> Markup {
        let mut coming: Vec<(DateTime<Utc>, &str, bool, usize, chrono_tz::Tz)> = Vec::new();
        for rule in &self.rules.rules {
            let Some(s) = &rule.schedule else { continue };
            let Some(at) = s.next_change(self.now) else {
                continue;
            };
            let starts = s.is_active(at);
            let moved = self
                .last
                .decisions
                .iter()
                .filter(|d| d.rule.as_deref() == Some(rule.name.as_ref()))
                .filter(|d| match starts {
                    true => d.state == EnvState::Stopped,
                    false => d.state == EnvState::Running,
                })
                .count();
            coming.push((at, &rule.name, starts, moved, rule.timezone));
        }
        coming.sort_by_key(|c| c.0);
        html! {
            @if coming.is_empty() { p.muted { "No schedule boundary ahead." } }
            ul { @for (at, rule, starts, moved, tz) in coming.iter().take(6) {
                li {
                    (when(*at, *tz, self.now)) ": " strong { (rule) } " "
                    @if *starts { "starts (" (moved) " stopped now)" } @else { "stops (" (moved) " running now)" }
                }
            } }
        }
    }

    fn table(&self, shown: &[usize], matching: usize, page_no: usize, pages: usize) -> Markup {
        let q = self.q;
        let mut rules: Vec<&str> = self.rules.rules.iter().map(|r| r.name.as_ref()).collect();
        rules.push("-");
        let states = [
            "running", "stopped", "starting", "stopping", "deleting", "error",
        ];
        html! {
            h2 #environments { "Every environment" }
            form.filters method="get" action="/" role="search" {
                label { "Name, project or id" input type="search" name="q" value=(q.q); }
                label { "Rule" select name="rule" {
                    option value="" { "any" }
                    @for r in &rules { option value=(r) selected[q.rule == *r] { @if *r == "-" { "no rule" } @else { (r) } } }
                } }
                label { "State" select name="state" {
                    option value="" { "any" }
                    @for s in states { option value=(s) selected[q.state == s] { (s) } }
                } }
                input type="hidden" name="sort" value=(q.sort);
                input type="hidden" name="order" value=(q.order);
                button type="submit" { "Filter" }
                @if !q.q.is_empty() || !q.rule.is_empty() || !q.state.is_empty() { a href="/" { "Clear" } }
            }
            p.muted { (matching) " of " (self.last.decisions.len()) " environments; listed " (when(self.last.at, self.rules.timezone, self.now))
                @if !self.last.complete { strong { " (the listing was partial)" } } }
            div.scroll {
                table #fleet {
                    thead { tr {
                        @for (key, label) in SORTS {
                            th.num[key == "cost"].opt[matches!(key, "mode" | "project")] scope="col" aria-sort=(self.aria_sort(key)) {
                                a href=(self.sort_link(key)) { (label) }
                            }
                        }
                        th scope="col" { "Why" }
                        th.num scope="col" { "Saved" }
                    } }
                    tbody { @for &i in shown { (self.row(&self.last.decisions[i])) } }
                }
            }
            nav.pages aria-label="Pages" {
                @if page_no > 1 { a rel="prev" href=(q.with("page", &(page_no - 1).to_string())) { "← Previous" } }
                span { "Page " (page_no) " of " (pages) }
                @if page_no < pages { a rel="next" href=(q.with("page", &(page_no + 1).to_string())) { "Next →" } }
            }
        }
    }

    fn aria_sort(&self, key: &str) -> &'static str {
        let current = if self.q.sort.is_empty() {
            "name"
        } else {
            self.q.sort.as_str()
        };
        match (current == key, self.q.descending()) {
            (false, _) => "none",
            (true, false) => "ascending",
            (true, true) => "descending",
        }
    }

    fn sort_link(&self, key: &str) -> String {
        let current = if self.q.sort.is_empty() {
            "name"
        } else {
            self.q.sort.as_str()
        };
        let order = if current == key && !self.q.descending() {
            "desc"
        } else {
            "asc"
        };
        let sorted = FleetQuery {
            q: self.q.q.clone(),
            rule: self.q.rule.clone(),
            state: self.q.state.clone(),
            sort: key.to_string(),
            order: String::new(),
            page: None,
        };
        sorted.with("order", order)
    }

    fn row(&self, d: &Decision) -> Markup {
        let (saved, record) = self
            .facts
            .rows
            .get(d.environment_id.as_ref())
            .map(|(s, r)| (s.saved, r.as_ref()))
            .unwrap_or((0.0, None));
        let tz = self.rules.zone_of(d.rule.as_deref());
        let next = next_step(d, self.rules, record, self.now);
        let href = format!("/environments/{}", super::urlencoding(&d.environment_id));
        html! {
            tr {
                td.name { a href=(href) { (d.environment) } }
                td.opt { (d.project) }
                td.opt { (d.mode) }
                td { span class=(format!("state state-{}", d.state)) { (d.state) } }
                td { (d.rule.as_deref().unwrap_or("—")) }
                td { @match &next {
                    Some((what, at)) => { (what) " " (when(*at, tz, self.now)) }
                    None => { span.muted { "nothing planned" } }
                } }
                td.num { @if let Some(c) = d.hourly_cost { (format!("{c:.2}")) } @else { "—" } }
                td.why { (d.reason) }
                td.num { (format!("{saved:.2}")) }
            }
        }
    }
}

/// How the passes went: readiness, and the last few passes.
fn health(ui: &Ui, now: DateTime<Utc>, rules: &RuleSet) -> Markup {
    let readiness = ui.daemon.health().readiness(now);
    let recent: Vec<PassOutcome> = ui.daemon.recent_passes();
    let tz = rules.timezone;
    html! {
        section aria-labelledby="health" {
            h2 #health { "Passes" }
            @if readiness.ready {
                p.notice.ok { "Ready. Last successful pass: "
                    @if let Some(at) = readiness.last_pass_success { (when(at, tz, now)) } "." }
            } @else {
                div.notice.bad role="status" { "Not ready: " (readiness.failing.join("; ")) }
            }
            @if !recent.is_empty() {
                details {
                    summary { "Recent passes (" (recent.len()) ")" }
                    div.scroll { table {
                        thead { tr { th { "When" } th { "Result" } th.num { "Took" } th { "Listing" } th.num { "Done" } th.num { "Failed" } th.num { "Held by caps" } th { "Error" } } }
                        tbody { @for p in &recent { tr {
                            td { (when(p.at, tz, now)) }
                            td { (p.result.as_str()) }
                            td.num { (format!("{:.2} s", p.took.as_secs_f64())) }
                            td { @if p.error.is_some() { "—" } @else if p.complete { "complete" } @else { strong { "partial" } } }
                            td.num { (p.done) } td.num { (p.failed) } td.num { (p.capped) }
                            td { (p.error.as_deref().unwrap_or("")) }
                        } } }
                    } }
                }
            }
        }
    }
}
