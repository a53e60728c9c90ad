//! The status page on the daemon's port: the fleet on `/`, one environment on
//! `/environments/{id}` (its reasoning, its timeline, its savings, its history), the
//! one-click actions for the readers allowed them, the login, and the confirmation pages
//! of signed action links (`/link/{token}`).
//!
//! The page reads what the last pass produced ([`Daemon::last_pass`]: its listing and
//! decisions, shared with the daemon, not copied) and the ledger; a page view never calls
//! the platform. Actions go through the admin API's operator paths
//! ([`crate::reconcile`]), so caps, protection and the ledger apply as they do there, and
//! the ledger names who acted.
//!
//! HTML is made with maud, which escapes every value (environment names are user input);
//! every response carries a strict Content-Security-Policy, `X-Content-Type-Options`,
//! `frame-ancestors 'none'` and `Referrer-Policy: no-referrer` (a link's token must not
//! leak to another site). Assets (CSS, a little JavaScript, the icon) are in the binary.

mod auth;
mod confirm;
mod environment;
mod fleet;
mod layout;
pub mod links;
#[cfg(test)]
mod tests;
pub mod timeline;

pub use auth::{SESSION_COOKIE, Sessions};
pub use layout::head_common;
pub use links::{LinkAction, LinkKeyError, LinkKeys, Signer};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::admin::AdminTokens;
use crate::config::page::PageAccess;
use crate::reconcile::Daemon;
use auth::User;
use layout::Reader;

/// Longest form body read (a login or an action's form is a few fields).
const MAX_FORM: usize = 4 * 1024;

/// What the status page needs besides the daemon.
pub struct UiOptions {
    pub access: PageAccess,
    /// The admin tokens a person logs in with; `None`: no login.
    pub tokens: Option<AdminTokens>,
    pub sessions: Sessions,
    /// Signed links' signer; `None`: links are off.
    pub signer: Option<Arc<Signer>>,
}

/// The page's shared state.
#[derive(Clone)]
struct Ui(Arc<Inner>);

struct Inner {
    daemon: Arc<Daemon>,
    access: PageAccess,
    tokens: Option<AdminTokens>,
    sessions: Sessions,
    signer: Option<Arc<Signer>>,
}

impl std::ops::Deref for Ui {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The page's routes, for the daemon's port. With access `off` only the signed links'
/// pages are served (when links are on); the paths of the page then answer 404.
pub fn router(daemon: Arc<Daemon>, options: UiOptions) -> Router {
    let links_on = options.signer.is_some();
    let ui = Ui(Arc::new(Inner {
        daemon,
        access: options.access,
        tokens: options.tokens,
        sessions: options.sessions,
        signer: options.signer,
    }));
    let mut router = Router::new();
    if ui.access != PageAccess::Off {
        router = router
            .route("/", get(fleet::page))
            .route("/environments/{id}", get(environment::page))
            .route("/environments/{id}/actions", post(environment::act))
            .route("/login", get(login_form).post(login))
            .route("/logout", post(logout));
    }
    if links_on {
        router = router.route("/link/{token}", get(confirm::show).post(confirm::act));
    }
    if ui.access == PageAccess::Off && !links_on {
        // Nothing to serve (and a layer on no route is a mistake axum refuses).
        return Router::new();
    }
    router
        .route("/assets/{name}", get(asset))
        .route_layer(middleware::from_fn(security_headers))
        .with_state(ui)
}

/// The headers every page and asset carries.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(layout::CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The address the request came from, when the server knows it.
struct Peer(Option<ConnectInfo<SocketAddr>>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
        ))
    }
}

impl Ui {
    fn now(&self) -> DateTime<Utc> {
        self.daemon.clock().now()
    }

    /// Who reads: a user, or nobody.
    fn user(&self, headers: &HeaderMap, peer: &Peer) -> Option<User> {
        self.sessions.user(headers, peer.0.as_ref(), self.now())
    }

    fn reader<'a>(&self, user: Option<&'a User>) -> Reader<'a> {
        Reader {
            user,
            can_log_in: self.tokens.is_some(),
            csrf: user.map(|u| self.sessions.csrf(u)),
        }
    }

    /// The page's gate: the answer to send instead of the page (a redirect to the login),
    /// if the reader may not see it.
    fn gate(&self, user: Option<&User>, path: &str) -> Option<Response> {
        match (self.access, user) {
            (PageAccess::Login, None) => {
                let next = urlencoding(path);
                Some(Redirect::to(&format!("/login?next={next}")).into_response())
            }
            _ => None,
        }
    }

    /// The last pass's decision for the environment `id`.
    fn last_decision(&self, id: &str) -> Option<crate::policy::Decision> {
        let last = self.daemon.last_pass()?;
        last.decisions
            .iter()
            .find(|d| *d.environment_id == *id)
            .cloned()
    }

    /// The zone the environment `id`'s instants are read in (its rule's, else the file's).
    fn zone_of(&self, id: &str) -> chrono_tz::Tz {
        let rules = self.daemon.rules();
        let decision = self.last_decision(id);
        rules.zone_of(decision.as_ref().and_then(|d| d.rule.as_deref()))
    }

    /// When the environment `id`'s delete comes, as the last pass planned it.
    fn delete_at(&self, id: &str) -> Option<DateTime<Utc>> {
        self.last_decision(id)?.delete?.at
    }

    /// Reads the ledger off the async workers (SQLite blocks); when it fails, the page to
    /// send instead.
    async fn read_ledger<T: Send + 'static>(
        &self,
        user: Option<&User>,
        read: impl FnOnce(&crate::ledger::Ledger) -> Result<T, crate::ledger::LedgerError>
        + Send
        + 'static,
    ) -> Result<T, Box<Response>> {
        let ledger = self.daemon.ledger().clone();
        match tokio::task::spawn_blocking(move || read(&ledger)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Box::new(self.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The ledger cannot be read",
                &e.to_string(),
                user,
            ))),
            Err(_) => Err(Box::new(self.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page failed",
                "Reading the ledger did not finish.",
                user,
            ))),
        }
    }

    /// A page that says something went wrong, in the frame.
    fn message(
        &self,
        status: StatusCode,
        title: &str,
        text: &str,
        user: Option<&User>,
    ) -> Response {
        layout::message(status, title, text, &self.reader(user))
    }
}

/// Percent-encodes what is not unreserved (a path put in a query).
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after a login: a path of this site only (never `//elsewhere`).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/') && !p.starts_with("//") && !p.contains(['\\', '\r', '\n']) =>
        {
            p.to_string()
        }
        _ => "/".into(),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    layout::asset(&name)
}

/// An asset of the page (its stylesheet, script, icon), for the public port's pages too.
pub fn public_asset(name: &str) -> Response {
    layout::asset(name)
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(
    State(ui): State<Ui>,
    headers: HeaderMap,
    peer: Peer,
    Query(q): Query<LoginQuery>,
) -> Response {
    let user = ui.user(&headers, &peer);
    login_page(&ui, user.as_ref(), q.next.as_deref(), None, StatusCode::OK)
}

fn login_page(
    ui: &Ui,
    user: Option<&User>,
    next: Option<&str>,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    if ui.tokens.is_none() {
        return ui.message(
            StatusCode::NOT_FOUND,
            "No login here",
            "This curfew has no admin token, so nobody can sign in: the page is read-only.",
            user,
        );
    }
    let next = local_path(next);
    let body = maud::html! {
        h1 { "Sign in" }
        @if let Some(problem) = problem { p.notice.bad role="alert" { (problem) } }
        @if let Some(user) = user { p { "You are signed in as " strong { (user.name) } "." } }
        form method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            p {
                label for="token" { "Admin token" } br;
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
            }
            p.hint { "The token of the admin API (" code { "CURFEW_ADMIN_TOKEN" } " or daemon.admin_token_file). It is checked once and never stored; the browser keeps a signed session cookie." }
            button type="submit" { "Sign in" }
        }
    };
    (status, layout::page("Sign in", &ui.reader(user), body)).into_response()
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    State(ui): State<Ui>,
    headers: HeaderMap,
    peer: Peer,
    body: axum::body::Bytes,
) -> Response {
    let user = ui.user(&headers, &peer);
    if !auth::same_origin(&headers) {
        return ui.message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site.",
            user.as_ref(),
        );
    }
    let Some(form) = form::<LoginForm>(&body) else {
        return login_page(
            &ui,
            user.as_ref(),
            None,
            Some("The form was not understood."),
            StatusCode::BAD_REQUEST,
        );
    };
    let name = ui.tokens.as_ref().and_then(|t| t.check(form.token.trim()));
    let Some(name) = name else {
        // Logged and counted with the admin API's refusals: the same tokens, guessed the
        // same way.
        let peer = peer
            .0
            .map_or_else(|| "unknown".to_string(), |c| c.0.to_string());
        crate::events::AdminRefused {
            reason: crate::events::AuthFailure::Refused,
            method: "POST",
            path: "/login",
            peer: &peer,
            also_refused: Some(0),
        }
        .emit(&*ui.daemon.metrics);
        return login_page(
            &ui,
            user.as_ref(),
            form.next.as_deref(),
            Some("That token was refused."),
            StatusCode::UNAUTHORIZED,
        );
    };
    tracing::info!(who = name, "signed in to the status page");
    let mut response = Redirect::to(&local_path(form.next.as_deref())).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, ui.sessions.login_cookie(name, ui.now()));
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(ui): State<Ui>,
    headers: HeaderMap,
    peer: Peer,
    body: axum::body::Bytes,
) -> Response {
    let user = ui.user(&headers, &peer);
    let ok = user
        .as_ref()
        .is_some_and(|u| form::<CsrfForm>(&body).is_some_and(|f| ui.sessions.csrf_ok(u, &f.csrf)));
    if !ok {
        return ui.message(
            StatusCode::FORBIDDEN,
            "Refused",
            "Sign-out needs the form of this page (its CSRF token was missing or wrong).",
            user.as_ref(),
        );
    }
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, ui.sessions.logout_cookie());
    response
}

/// A url-encoded form, bounded.
fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    if body.len() > MAX_FORM {
        return None;
    }
    serde_urlencoded::from_bytes(body).ok()
}
