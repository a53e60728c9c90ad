//! `/link/{token}`: a signed action link's confirmation page (GET, which never acts, so a
//! chat's link previewer cannot act for anyone) and its confirmation (POST, which acts
//! once). Expired, changed and used links are refused with a page that says why; nothing
//! changes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::html;

use super::environment::operator_error;
use super::layout::{self, Reader, when};
use super::links::{Link, LinkAction, after, tomorrow_at};
use super::{Peer, Ui};
use crate::ledger::LinkUse;
use crate::reconcile::OperatorError;

/// A reader of a link page: nobody in particular (the link is the authority).
fn anonymous() -> Reader<'static> {
    Reader {
        user: None,
        can_log_in: false,
        csrf: None,
    }
}

/// The link `token` names, if it may still be used; else the page that says why not.
async fn usable(ui: &Ui, token: &str) -> Result<Link, Box<Response>> {
    let refused = |status, title: &str, text: &str| {
        Err(Box::new(layout::message(status, title, text, &anonymous())))
    };
    let Some(signer) = &ui.signer else {
        return refused(
            StatusCode::NOT_FOUND,
            "Links are off",
            "This curfew makes no action links.",
        );
    };
    let link = match signer.verify(token, ui.now()) {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(reason = %e, "signed link refused");
            let status = match e {
                super::links::LinkRefused::Expired(_) => StatusCode::GONE,
                _ => StatusCode::BAD_REQUEST,
            };
            return refused(
                status,
                "This link cannot be used",
                &format!("{}. Nothing was changed.", capitalized(&e.to_string())),
            );
        }
    };
    let ledger = ui.daemon.ledger().clone();
    let nonce = link.nonce.clone();
    let used = tokio::task::spawn_blocking(move || ledger.link_used_at(&nonce)).await;
    match used {
        Ok(Ok(None)) => Ok(link),
        Ok(Ok(Some(at))) => {
            let tz = ui.daemon.rules().timezone;
            refused(
                StatusCode::GONE,
                "This link was used already",
                &format!(
                    "A link acts once; this one did at {}. Nothing was changed.",
                    crate::policy::local(at, tz)
                ),
            )
        }
        _ => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The ledger cannot be read",
            "Nothing was changed; try again later.",
        ),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// What the link will do, in words, as of `now`, and the environment's name if the last
/// pass listed it.
fn describe(ui: &Ui, link: &Link, now: DateTime<Utc>) -> (String, String) {
    let name = ui.last_decision(&link.environment_id).map_or_else(
        || link.environment_id.clone(),
        |d| d.environment.to_string(),
    );
    let tz = ui.zone_of(&link.environment_id);
    let local = |t: DateTime<Utc>| crate::policy::local(t, tz);
    let what = match link.action {
        LinkAction::Wake => {
            "Start it now, and keep it up until its rule's next scheduled stop".to_string()
        }
        LinkAction::Keep { seconds } => format!(
            "Keep it up until {} (a stopped environment is started)",
            after(now, seconds).map_or_else(|| "much later".into(), local)
        ),
        LinkAction::KeepUntil { hour, minute } => format!(
            "Keep it up until {} (a stopped environment is started)",
            local(tomorrow_at(tz, now, hour, minute))
        ),
        LinkAction::DelayDelete { seconds } => format!(
            "Delay its delete by {}",
            crate::schedule::format_seconds(seconds)
        ),
    };
    (name, what)
}

/// GET: the confirmation page. Never acts.
pub async fn show(State(ui): State<Ui>, Path(token): Path<String>) -> Response {
    let link = match usable(&ui, &token).await {
        Ok(link) => link,
        Err(page) => return *page,
    };
    let now = ui.now();
    let (name, what) = describe(&ui, &link, now);
    let tz = ui.daemon.rules().timezone;
    let body = html! {
        h1 { (link.action.label()) ": " (name) }
        p.message { (what) "." }
        form method="post" action=(format!("/link/{token}")) {
            button type="submit" { "Confirm: " (link.action.label()) }
        }
        p.hint {
            "This link was sent to " strong { (link.target) } ". It works once, until "
            (when(link.expires_at(), tz, now)) "; the ledger records its use as a change made by the link sent to " (link.target) "."
        }
    };
    layout::page("Confirm", &anonymous(), body).into_response()
}

/// POST: acts once.
pub async fn act(
    State(ui): State<Ui>,
    Path(token): Path<String>,
    _headers: HeaderMap,
    _peer: Peer,
) -> Response {
    let link = match usable(&ui, &token).await {
        Ok(link) => link,
        Err(page) => return *page,
    };
    let now = ui.now();
    let ledger = ui.daemon.ledger().clone();
    let claim = {
        let link = link.clone();
        tokio::task::spawn_blocking(move || {
            ledger.claim_link(&LinkUse {
                nonce: &link.nonce,
                environment_id: &link.environment_id,
                action: link.action.as_str(),
                target: &link.target,
                at: now,
            })
        })
        .await
    };
    match claim {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return layout::message(
                StatusCode::GONE,
                "This link was used already",
                "A link acts once. Nothing was changed.",
                &anonymous(),
            );
        }
        _ => {
            return layout::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The ledger cannot be written",
                "Nothing was changed; try again later.",
                &anonymous(),
            );
        }
    }
    let who = format!("link sent to {}", link.target);
    match carry_out(&ui, &link, &who, now).await {
        Ok(()) => {
            tracing::info!(environment = %link.environment_id, action = link.action.as_str(), target = %link.target, "signed link used");
            let (name, what) = describe(&ui, &link, now);
            let body = html! {
                h1 { "Done: " (link.action.label()) }
                p.message { (name) ": " (what) "." }
                p { a href=(format!("/environments/{}", super::urlencoding(&link.environment_id))) { "See the environment" } }
            };
            layout::page("Done", &anonymous(), body).into_response()
        }
        Err(e) => {
            // Not done: the link may be used again.
            let ledger = ui.daemon.ledger().clone();
            let nonce = link.nonce.clone();
            let _ = tokio::task::spawn_blocking(move || ledger.release_link(&nonce)).await;
            operator_error(&ui, e, None)
        }
    }
}

/// The link's action, through the operator paths, by `who`; never for a production or a
/// protected environment.
async fn carry_out(
    ui: &Ui,
    link: &Link,
    who: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    let daemon = &ui.daemon;
    let id = link.environment_id.as_str();
    daemon.actionable(id).await?;
    let note = format!("via link sent to {}", link.target);
    let too_far = || OperatorError::Invalid("the link asks for a span too long".into());
    match link.action {
        LinkAction::Wake => daemon.wake(id, None, who, &note).await.map(drop),
        LinkAction::Keep { seconds } => {
            let until = after(now, seconds).ok_or_else(too_far)?;
            daemon.keep(id, until, who, &note).await.map(drop)
        }
        LinkAction::KeepUntil { hour, minute } => {
            let until = tomorrow_at(ui.zone_of(id), now, hour, minute);
            daemon.keep(id, until, who, &note).await.map(drop)
        }
        LinkAction::DelayDelete { seconds } => {
            let from = ui.delete_at(id).unwrap_or(now).max(now);
            let until = after(from, seconds).ok_or_else(too_far)?;
            daemon.delay_delete(id, until, who, &note).await.map(drop)
        }
    }
}
