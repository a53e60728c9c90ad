//! The frame every page shares, the assets inside the binary, and how instants, money and
//! states read on the page.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};

use super::auth::User;

/// The stylesheet (light and dark, readable at 400 px).
pub const STYLE: &str = include_str!("assets/style.css");
/// The little progressive JavaScript: each instant also in the reader's zone, and a
/// refresh every minute while nobody is typing. The page works without it.
pub const SCRIPT: &str = include_str!("assets/app.js");
/// The icon.
pub const ICON: &str = include_str!("assets/icon.svg");

/// The Content-Security-Policy of every page: nothing but curfew's own styles, script,
/// images and forms; never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who is reading, as the frame shows it.
pub struct Reader<'a> {
    pub user: Option<&'a User>,
    /// Whether a login is possible (admin tokens exist).
    pub can_log_in: bool,
    pub csrf: Option<String>,
}

/// What every page's `head` starts with, the status page's and the waiting page's: the
/// character set, a layout for narrow screens, light and dark, no referrer, the title and
/// the style sheet.
pub fn head_common(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="color-scheme" content="light dark";
        meta name="referrer" content="no-referrer";
        title { (title) " · curfew" }
        link rel="stylesheet" href="/assets/style.css";
    }
}

/// A whole page: `title`, then `body` inside the frame.
pub fn page(title: &str, reader: &Reader<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head_common(title))
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "curfew" }
                    nav aria-label="Account" {
                        @match (reader.user, reader.can_log_in) {
                            (Some(user), _) => {
                                span.who { "Signed in as " strong { (user.name) } }
                                @if let (super::auth::Via::Session(_), Some(csrf)) = (&user.via, &reader.csrf) {
                                    form.inline method="post" action="/logout" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                            }
                            (None, true) => { a href="/login" { "Sign in to act" } }
                            (None, false) => { span.who { "Read-only" } }
                        }
                    }
                }
                main { (body) }
                footer { "curfew " (env!("CARGO_PKG_VERSION")) " · " a href="/metrics" { "metrics" } }
            }
        }
    }
}

/// A page that says something went wrong (or was refused), with its status.
pub fn message(status: StatusCode, title: &str, text: &str, reader: &Reader<'_>) -> Response {
    let body = html! {
        h1 { (title) }
        p.message { (text) }
        p { a href="/" { "Back to the fleet" } }
    };
    (status, page(title, reader, body)).into_response()
}

/// An asset from inside the binary.
pub fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// The zone as people say it: `Europe/Paris` → `Paris`, `America/New_York` → `New York`.
pub fn place(tz: Tz) -> String {
    tz.name()
        .rsplit('/')
        .next()
        .unwrap_or(tz.name())
        .replace('_', " ")
}

/// An instant in `tz` for the page: `19:00 Paris` today, `tomorrow 08:00 Paris`,
/// `Mon 08:00 Paris` within the week, `30 Nov 08:00 Paris` further; in a `<time>` the
/// script adds the reader's own time to.
pub fn when(t: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> Markup {
    let local = t.with_timezone(&tz);
    let today = now.with_timezone(&tz).date_naive();
    let days = (local.date_naive() - today).num_days();
    let format = match days {
        0 => "%H:%M",
        1 => "tomorrow %H:%M",
        -1 => "yesterday %H:%M",
        2..=6 => "%a %H:%M",
        _ => "%-d %b %H:%M",
    };
    html! {
        time datetime=(local.to_rfc3339()) data-local {
            (local.format(format)) " " (place(tz))
        }
    }
}

/// An amount of money: `12.34 EUR`.
pub fn money(amount: f64, currency: &str) -> String {
    format!("{amount:.2} {currency}")
}

/// Hours, for people: `3.5 h`.
pub fn hours(seconds: f64) -> String {
    format!("{:.1} h", seconds / 3600.0)
}
