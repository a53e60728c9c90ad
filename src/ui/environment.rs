//! `/environments/{id}`: one environment as the last pass saw it. The `explain` steps in
//! plain words, what comes next, the timeline (14 days back from the ledger, 7 ahead from
//! the schedule), its savings and its history; and for a reader allowed to act, the
//! buttons (wake now, keep 4 h, keep until tomorrow 09:00, delay the delete, protect),
//! each a POST with the reader's CSRF token, carried out by the admin API's operator
//! paths with the reader's name in the ledger.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::User;
use super::fleet::next_step;
use super::layout::{self, hours, money, when};
use super::links::tomorrow_at;
use super::timeline::{self, Facts};
use super::{Peer, Ui};
use crate::ledger::{EnvironmentSavings, HistoryEntry, Ledger, LedgerError, StopSpan};
use crate::platform::{EnvState, Environment, Mode, Snapshot};
use crate::policy::RuleSet;
use crate::policy::{self, Decision, EnvRecord, Explanation, LedgerView};
use crate::reconcile::OperatorError;

/// History lines shown under the timeline.
const HISTORY: usize = 50;

/// A button of the page: its form value, and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Wake,
    Keep4h,
    KeepTomorrow,
    DelayDelete,
    Protect,
    Unprotect,
}

impl Button {
    const ALL: [Button; 6] = [
        Button::Wake,
        Button::Keep4h,
        Button::KeepTomorrow,
        Button::DelayDelete,
        Button::Protect,
        Button::Unprotect,
    ];

    fn value(self) -> &'static str {
        match self {
            Button::Wake => "wake",
            Button::Keep4h => "keep-4h",
            Button::KeepTomorrow => "keep-tomorrow",
            Button::DelayDelete => "delay-delete",
            Button::Protect => "protect",
            Button::Unprotect => "unprotect",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Button::Wake => "Wake now",
            Button::Keep4h => "Keep 4 h",
            Button::KeepTomorrow => "Keep until tomorrow 09:00",
            Button::DelayDelete => "Delay the delete by 2 days",
            Button::Protect => "Protect",
            Button::Unprotect => "Remove the protection",
        }
    }

    fn parse(value: &str) -> Option<Button> {
        Button::ALL.into_iter().find(|b| b.value() == value)
    }
}

/// What the ledger holds about one environment, for its page.
struct Stored {
    record: Option<EnvRecord>,
    savings: EnvironmentSavings,
    history: Vec<HistoryEntry>,
    stops: Vec<StopSpan>,
}

fn stored(ledger: &Ledger, id: &str, now: DateTime<Utc>) -> Result<Stored, LedgerError> {
    let since = now - TimeDelta::days(timeline::PAST_DAYS as i64 + 1);
    Ok(Stored {
        record: ledger.record(id)?,
        savings: ledger.environment_savings(id)?,
        history: ledger.history(id, HISTORY)?,
        stops: ledger.stops_of(id, since)?,
    })
}

/// The environment `id` of the last pass's listing, with its decision.
fn listed(ui: &Ui, id: &str) -> Option<(Environment, Decision, bool, DateTime<Utc>)> {
    let last = ui.daemon.last_pass()?;
    let index = last
        .snapshot
        .environments
        .iter()
        .position(|e| &*e.id == id)?;
    Some((
        last.snapshot.environments[index].clone(),
        last.decisions.get(index)?.clone(),
        last.snapshot.complete,
        last.at,
    ))
}

/// The buttons `env` offers a reader who may act.
fn buttons(
    env: &Environment,
    d: &Decision,
    rules: &RuleSet,
    record: Option<&EnvRecord>,
) -> Vec<Button> {
    let protected =
        env.mode == Mode::Production || policy::protection(rules, env, record).is_some();
    let mut out = Vec::new();
    if !protected {
        let has_stop = d
            .rule
            .as_deref()
            .and_then(|r| rules.rule(r))
            .is_some_and(|r| r.schedule.is_some());
        if has_stop && matches!(env.state, EnvState::Stopped | EnvState::Stopping) {
            out.push(Button::Wake);
        }
        out.extend([Button::Keep4h, Button::KeepTomorrow]);
        if d.delete.is_some() {
            out.push(Button::DelayDelete);
        }
        out.push(Button::Protect);
    }
    if record.is_some_and(|r| r.protected_by.is_some()) {
        out.push(Button::Unprotect);
    }
    out
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

/// The environment page.
pub async fn page(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    headers: HeaderMap,
    peer: Peer,
    Query(done): Query<Done>,
) -> Response {
    let user = ui.user(&headers, &peer);
    if let Some(answer) = ui.gate(user.as_ref(), &format!("/environments/{id}")) {
        return answer;
    }
    let Some((env, decision, complete, listed_at)) = listed(&ui, &id) else {
        return ui.message(
            StatusCode::NOT_FOUND,
            "No such environment",
            &format!("The last listing has no environment with the id {id:?}. It may have been deleted, or no pass has finished yet."),
            user.as_ref(),
        );
    };
    let now = ui.now();
    let env_id = env.id.to_string();
    let read = move |ledger: &Ledger| stored(ledger, &env_id, now);
    let stored = match ui.read_ledger(user.as_ref(), read).await {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let rules = ui.daemon.rules();
    let mut view = LedgerView::stored(stored.record.clone().map(|r| (env.id.clone(), r)));
    let one = Snapshot {
        environments: vec![env.clone()],
        complete,
    };
    view.observe(&one, now);
    let Explanation { steps, .. } = policy::explain(&rules, &env, complete, &view, now);
    let body = EnvironmentView {
        env: &env,
        d: &decision,
        rules: &rules,
        stored: &stored,
        steps: &steps,
        now,
        listed_at,
        user: user.as_ref(),
        csrf: user.as_ref().map(|u| ui.sessions.csrf(u)),
        done: done.done.as_deref().and_then(Button::parse),
    }
    .render();
    layout::page(&env.name, &ui.reader(user.as_ref()), body).into_response()
}

struct EnvironmentView<'a> {
    env: &'a Environment,
    d: &'a Decision,
    rules: &'a RuleSet,
    stored: &'a Stored,
    steps: &'a [String],
    now: DateTime<Utc>,
    listed_at: DateTime<Utc>,
    user: Option<&'a User>,
    csrf: Option<String>,
    done: Option<Button>,
}

impl EnvironmentView<'_> {
    fn render(&self) -> Markup {
        let env = self.env;
        let d = self.d;
        let tz = self.rules.zone_of(d.rule.as_deref());
        let record = self.stored.record.as_ref();
        let next = next_step(d, self.rules, record, self.now);
        let rule = d.rule.as_deref().and_then(|r| self.rules.rule(r));
        let facts = Facts {
            tz,
            now: self.now,
            stops: &self.stored.stops,
            schedule: rule.and_then(|r| r.schedule.as_ref()),
            kept_until: record
                .and_then(|r| r.snoozed_until)
                .filter(|u| *u > self.now),
            delete_at: d.delete.as_ref().and_then(|p| p.at),
            events: &self.stored.history,
        };
        let s = &self.stored.savings;
        html! {
            div data-refresh="60" {
                p { a href="/" { "← The fleet" } }
                h1 { (env.name) }
                @if let Some(done) = self.done {
                    p.notice.ok role="status" { "Done: " (done.label().to_lowercase()) ". The history below says what was recorded." }
                }
                dl.facts {
                    dt { "Project" } dd { (env.project) }
                    dt { "Mode" } dd { (env.mode) }
                    dt { "State" } dd { span class=(format!("state state-{}", env.state)) { (env.state) }
                        @if let Some(word) = &env.platform_state { " " span.muted { "(" (word) ")" } } }
                    dt { "Rule" } dd { (d.rule.as_deref().unwrap_or("none")) }
                    dt { "Next" } dd { @match &next {
                        Some((what, at)) => { (what) " " (when(*at, tz, self.now)) }
                        None => { "nothing planned" }
                    } }
                    dt { "Cost" } dd { @if let Some(c) = d.hourly_cost { (money(c, &self.rules.currency)) " per hour running" } @else { "unknown" } }
                    dt { "Saved" } dd { (money(s.saved, &self.rules.currency)) " over " (s.stops) " stops (" (hours(s.stopped_seconds)) " stopped)" }
                    dt { "Id" } dd { code { (env.id) } }
                    dt { "Listed" } dd { (when(self.listed_at, tz, self.now)) }
                }
                (self.actions())
                h2 { "Why" }
                p { (d.reason) }
                ol.steps { @for step in self.steps { li { (step) } } }
                h2 { "Timeline" }
                p.legend {
                    span.l-run { "running, or not stopped by curfew" }
                    span.l-stopped { "stopped by curfew" }
                    span.l-planned { "planned stop" }
                    span.l-kept { "kept up" }
                    span.l-now { "now" }
                }
                div.scroll { (timeline::svg(&facts)) }
                p.hint { "Rows are local days in " (tz.name()) ", each as long as it really is. Hover a mark for what happened." }
                h2 { "History" }
                @if self.stored.history.is_empty() { p.muted { "Nothing recorded yet." } }
                @else {
                    div.scroll { table {
                        thead { tr { th { "When" } th { "What" } th { "Until" } th { "Detail" } } }
                        tbody { @for e in &self.stored.history { tr {
                            td { (when(e.at, tz, self.now)) }
                            td { (e.what) }
                            td { @if let Some(u) = e.until { (when(u, tz, self.now)) } }
                            td.why { (e.detail) }
                        } } }
                    } }
                }
            }
        }
    }

    fn actions(&self) -> Markup {
        let record = self.stored.record.as_ref();
        let offered = buttons(self.env, self.d, self.rules, record);
        let (Some(_), Some(csrf)) = (self.user, &self.csrf) else {
            return html! {};
        };
        let tz = self.rules.zone_of(self.d.rule.as_deref());
        let action = format!("/environments/{}/actions", super::urlencoding(&self.env.id));
        html! {
            section aria-labelledby="act" {
                h2 #act { "Act" }
                @if offered.is_empty() { p.muted { "Nothing to do here: curfew does not act on this environment." } }
                div.actions { @for b in &offered {
                    form method="post" action=(action) {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="do" value=(b.value());
                        button.secondary[matches!(b, Button::Protect | Button::Unprotect)] type="submit" { (b.label()) }
                    }
                } }
                p.hint { "Each change is recorded in the ledger under your name; times are in " (tz.name()) "." }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ActForm {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "do")]
    action: String,
}

/// A button pressed: checked (a reader who may act, a valid CSRF token, from this site),
/// then carried out by the operator paths; back to the page.
pub async fn act(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    headers: HeaderMap,
    peer: Peer,
    body: axum::body::Bytes,
) -> Response {
    let user = ui.user(&headers, &peer);
    let Some(user) = user else {
        return ui.message(
            StatusCode::FORBIDDEN,
            "Refused",
            "Only a signed-in reader may act: sign in first.",
            None,
        );
    };
    let form = super::form::<ActForm>(&body);
    let csrf_ok = form
        .as_ref()
        .is_some_and(|f| ui.sessions.csrf_ok(&user, &f.csrf));
    if !csrf_ok || !super::auth::same_origin(&headers) {
        tracing::warn!(who = %user.name, "status page action refused: no valid CSRF token");
        return ui.message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This action was not sent by curfew's own page (its CSRF token was missing or wrong). Nothing was changed.",
            Some(&user),
        );
    }
    let Some(button) = form.and_then(|f| Button::parse(&f.action)) else {
        return ui.message(
            StatusCode::BAD_REQUEST,
            "Unknown action",
            "Nothing was changed.",
            Some(&user),
        );
    };
    match carry_out(&ui, &id, button, &user.name).await {
        Ok(()) => Redirect::to(&format!(
            "/environments/{}?done={}",
            super::urlencoding(&id),
            button.value()
        ))
        .into_response(),
        Err(e) => operator_error(&ui, e, Some(&user)),
    }
}

/// A button's action, through the operator paths, by `who`.
async fn carry_out(ui: &Ui, id: &str, button: Button, who: &str) -> Result<(), OperatorError> {
    let daemon = &ui.daemon;
    let now = ui.now();
    let note = "via the status page";
    if !matches!(button, Button::Protect | Button::Unprotect) {
        daemon.actionable(id).await?;
    }
    match button {
        Button::Wake => daemon.wake(id, None, who, note).await.map(drop),
        Button::Keep4h => daemon
            .keep(id, now + TimeDelta::hours(4), who, note)
            .await
            .map(drop),
        Button::KeepTomorrow => {
            let until = tomorrow_at(ui.zone_of(id), now, 9, 0);
            daemon.keep(id, until, who, note).await.map(drop)
        }
        Button::DelayDelete => {
            let from = ui.delete_at(id).unwrap_or(now).max(now);
            daemon
                .delay_delete(id, from + TimeDelta::days(2), who, note)
                .await
                .map(drop)
        }
        Button::Protect => daemon.protect(id, true, who, note).await.map(drop),
        Button::Unprotect => daemon.protect(id, false, who, note).await.map(drop),
    }
}

/// An operator's refusal as a page.
pub fn operator_error(ui: &Ui, e: OperatorError, user: Option<&User>) -> Response {
    let (status, title) = match &e {
        OperatorError::NotFound(_) => (StatusCode::NOT_FOUND, "No such environment"),
        OperatorError::Ambiguous { .. } | OperatorError::Protected(_) => {
            (StatusCode::CONFLICT, "Not done")
        }
        OperatorError::Invalid(_) => (StatusCode::BAD_REQUEST, "Not done"),
        OperatorError::Platform(_) => (StatusCode::BAD_GATEWAY, "The platform did not answer"),
        OperatorError::Ledger(_) => (StatusCode::INTERNAL_SERVER_ERROR, "The ledger failed"),
    };
    ui.message(status, title, &format!("{e}. Nothing was changed."), user)
}
