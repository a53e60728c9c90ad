//! What curfew tells people, and how it looks on the wire: Slack's incoming-webhook JSON
//! (`text` plus simple `blocks`) and the generic webhook's documented schema
//! (`docs/notifications.md`). Rendering is pure: a [`Message`] in, JSON out.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Value, json};

use crate::platform::{ActionLink, EnvState, Mode};
use crate::policy::Action;

/// Version of the generic webhook's JSON schema (the `version` field). Fields may be added
/// within a version; none is removed or changes meaning.
pub const WEBHOOK_SCHEMA_VERSION: u32 = 1;

/// Most upcoming deletions listed one by one in a digest (the count is always complete).
pub(crate) const DIGEST_LIST_MAX: usize = 20;

/// What a message is about, as in `curfew_notifications_total{kind}` and the webhook's
/// `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A delete is coming (`warn_before_delete` ahead of it).
    DeleteWarning,
    /// curfew deleted an environment.
    Deleted,
    /// The same action on the same environment failed several passes in a row.
    Failure,
    /// The daily digest of a target.
    Digest,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeleteWarning => "delete_warning",
            Kind::Deleted => "deleted",
            Kind::Failure => "failure",
            Kind::Digest => "digest",
        }
    }
}

/// The environment a message is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentRef {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub project: Arc<str>,
    pub state: EnvState,
    /// Not sent: it decides whether the message may carry action links.
    #[serde(skip)]
    pub mode: Mode,
}

/// Money not spent over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Saved {
    /// Hourly cost × hours stopped, in the file's currency.
    pub amount: f64,
    /// Environment-hours spent stopped by curfew.
    pub stopped_hours: f64,
}

/// A delete planned within the digest's horizon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpcomingDelete {
    pub environment: EnvironmentRef,
    pub rule: Arc<str>,
    /// The earliest instant the delete may happen, if nothing changes before then.
    pub at: DateTime<Utc>,
}

/// A target's daily digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// The local day the digest is for (its sending day).
    pub date: NaiveDate,
    pub timezone: Tz,
    pub currency: String,
    /// Environments curfew keeps stopped right now.
    pub stopped_now: usize,
    /// What they would cost per hour if running.
    pub cost_per_hour_now: f64,
    /// The previous local day, midnight to midnight.
    pub yesterday: Saved,
    /// From the first of the local month to now.
    pub this_month: Saved,
    /// Deletes planned in the next 24 hours, earliest first.
    pub upcoming_deletes: Vec<UpcomingDelete>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    DeleteWarning {
        environment: EnvironmentRef,
        rule: Arc<str>,
        reason: Arc<str>,
        delete_at: DateTime<Utc>,
    },
    Deleted {
        environment: EnvironmentRef,
        rule: Arc<str>,
        reason: Arc<str>,
    },
    Failure {
        environment: EnvironmentRef,
        rule: Arc<str>,
        action: Action,
        /// Consecutive failed attempts so far.
        failures: u32,
        /// The last error (platform errors never hold a credential).
        error: String,
    },
    Digest(Digest),
}

/// One message to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Unique per message (also sent as `X-Curfew-Delivery`): receivers can drop a retried
    /// duplicate.
    pub id: String,
    /// When curfew decided to send it (the pass's instant).
    pub at: DateTime<Utc>,
    /// Zone instants are shown in (the rule's, or the digest's).
    pub timezone: Tz,
    pub event: Event,
    /// Signed action links by environment id (the warned one, or a digest's coming
    /// deletes), made for this message's target; empty when links are off.
    pub links: BTreeMap<Arc<str>, Vec<ActionLink>>,
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self.event {
            Event::DeleteWarning { .. } => Kind::DeleteWarning,
            Event::Deleted { .. } => Kind::Deleted,
            Event::Failure { .. } => Kind::Failure,
            Event::Digest(_) => Kind::Digest,
        }
    }

    fn environment(&self) -> Option<&EnvironmentRef> {
        match &self.event {
            Event::DeleteWarning { environment, .. }
            | Event::Deleted { environment, .. }
            | Event::Failure { environment, .. } => Some(environment),
            Event::Digest(_) => None,
        }
    }

    fn rule(&self) -> Option<&str> {
        match &self.event {
            Event::DeleteWarning { rule, .. }
            | Event::Deleted { rule, .. }
            | Event::Failure { rule, .. } => Some(rule),
            Event::Digest(_) => None,
        }
    }
}

/// The command that snoozes an environment (keeps it from being stopped or deleted).
pub fn snooze_command(env: &EnvironmentRef) -> String {
    format!("curfew snooze {} --for 24h", env.id)
}

/// The admin API path that snoozes an environment (`POST`).
pub fn snooze_path(env: &EnvironmentRef) -> String {
    format!("/api/v1/environments/{}/snooze", env.id)
}

/// An instant as people in `tz` read it.
fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn money(amount: f64, currency: &str) -> String {
    format!("{amount:.2} {currency}")
}

/// How text is marked up: plain, or Slack's mrkdwn (`*bold*`, `` `code` ``, escaped
/// `&<>`).
#[derive(Clone, Copy, PartialEq)]
enum Markup {
    Plain,
    Slack,
}

impl Markup {
    /// User-provided text (names, reasons, errors), escaped for the markup.
    fn text(self, s: &str) -> String {
        match self {
            Markup::Plain => s.to_string(),
            Markup::Slack => s
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;"),
        }
    }

    fn bold(self, s: &str) -> String {
        match self {
            Markup::Plain => self.text(s),
            Markup::Slack => format!("*{}*", self.text(s)),
        }
    }

    fn code(self, s: &str) -> String {
        format!("`{}`", self.text(s))
    }

    /// Signed action links on one line (`Act: <url|keep 4 h> · …` on Slack, `keep 4 h:
    /// URL · …` in plain text); `None` without any.
    fn links(self, links: Option<&Vec<ActionLink>>) -> Option<String> {
        let links = links.filter(|l| !l.is_empty())?;
        Some(match self {
            Markup::Plain => format!("Act: {}", crate::platform::links_text(links)),
            Markup::Slack => format!(
                "Act: {}",
                links
                    .iter()
                    .map(|l| format!("<{}|{}>", l.url, self.text(&l.label)))
                    .collect::<Vec<_>>()
                    .join(" · ")
            ),
        })
    }

    fn env(self, e: &EnvironmentRef) -> String {
        format!("{} (project {})", self.bold(&e.name), self.text(&e.project))
    }
}

/// The message in sentences: the headline, then details.
fn lines(m: &Message, markup: Markup) -> Vec<String> {
    let tz = m.timezone;
    match &m.event {
        Event::DeleteWarning {
            environment,
            rule,
            reason,
            delete_at,
        } => vec![
            format!(
                "{} will be deleted at {} by rule {}.",
                markup.env(environment),
                local(*delete_at, tz),
                markup.code(rule)
            ),
            format!("Why: {}.", markup.text(reason)),
            format!(
                "To keep it, snooze it: {} or POST {}",
                markup.code(&snooze_command(environment)),
                markup.code(&snooze_path(environment))
            ),
        ]
        .into_iter()
        .chain(markup.links(m.links.get(&environment.id)))
        .collect(),
        Event::Deleted {
            environment,
            rule,
            reason,
        } => vec![
            format!(
                "{} was deleted by rule {}.",
                markup.env(environment),
                markup.code(rule)
            ),
            format!("Why: {}.", markup.text(reason)),
        ],
        Event::Failure {
            environment,
            rule,
            action,
            failures,
            error,
        } => vec![
            format!(
                "curfew failed to {action} {} {failures} times in a row (rule {}).",
                markup.env(environment),
                markup.code(rule)
            ),
            format!("Last error: {}", markup.text(error)),
            "curfew keeps trying on each pass; this is the only message until it succeeds."
                .to_string(),
        ],
        Event::Digest(d) => digest_lines(d, &m.links, markup),
    }
}

fn digest_lines(
    d: &Digest,
    links: &BTreeMap<Arc<str>, Vec<ActionLink>>,
    markup: Markup,
) -> Vec<String> {
    let mut out = vec![
        format!(
            "curfew daily digest for {} ({})",
            markup.bold(&d.date.format("%A %Y-%m-%d").to_string()),
            d.timezone
        ),
        format!(
            "Stopped now: {} environments ({} per hour not spent).",
            d.stopped_now,
            money(d.cost_per_hour_now, &d.currency)
        ),
        format!(
            "Saved yesterday: {} ({:.1} environment-hours stopped).",
            money(d.yesterday.amount, &d.currency),
            d.yesterday.stopped_hours
        ),
        format!(
            "Saved this month: {} ({:.1} environment-hours stopped).",
            money(d.this_month.amount, &d.currency),
            d.this_month.stopped_hours
        ),
    ];
    if d.upcoming_deletes.is_empty() {
        out.push("Deletions in the next 24 hours: none.".into());
    } else {
        out.push(format!(
            "Deletions in the next 24 hours: {}.",
            d.upcoming_deletes.len()
        ));
        for u in d.upcoming_deletes.iter().take(DIGEST_LIST_MAX) {
            out.push(format!(
                "• {} at {} (rule {}){}",
                markup.env(&u.environment),
                local(u.at, d.timezone),
                markup.code(&u.rule),
                markup
                    .links(links.get(&u.environment.id))
                    .map(|l| format!(" — {l}"))
                    .unwrap_or_default()
            ));
        }
        if d.upcoming_deletes.len() > DIGEST_LIST_MAX {
            out.push(format!(
                "… and {} more.",
                d.upcoming_deletes.len() - DIGEST_LIST_MAX
            ));
        }
    }
    out
}

/// The message as plain text (the webhook's `text`).
pub fn text(m: &Message) -> String {
    lines(m, Markup::Plain).join("\n")
}

/// Slack's incoming-webhook body: `text` (shown in notifications) and blocks: a section
/// with the headline, then the details as a second section (or as context lines).
pub fn slack(m: &Message) -> Value {
    let lines = lines(m, Markup::Slack);
    let headline = match m.kind() {
        Kind::DeleteWarning => format!(":warning: {}", lines[0]),
        Kind::Deleted => format!(":wastebasket: {}", lines[0]),
        Kind::Failure => format!(":x: {}", lines[0]),
        Kind::Digest => format!(":crescent_moon: {}", lines[0]),
    };
    let rest = lines[1..].join("\n");
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": headline},
    })];
    if !rest.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": rest},
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("curfew · {} · {}", m.kind().as_str(), local(m.at, m.timezone))}],
    }));
    json!({
        "text": lines.join("\n"),
        "blocks": blocks,
    })
}

/// The generic webhook's body (schema in `docs/notifications.md`): always `version`, `id`,
/// `kind`, `at`, `text`, `environment` and `rule` (null for a digest), then the fields of
/// the kind.
pub fn webhook(m: &Message) -> Value {
    let mut body = json!({
        "version": WEBHOOK_SCHEMA_VERSION,
        "id": m.id,
        "kind": m.kind().as_str(),
        "at": m.at,
        "timezone": m.timezone.name(),
        "text": text(m),
        "environment": m.environment(),
        "rule": m.rule(),
    });
    let extra = match &m.event {
        Event::DeleteWarning {
            environment,
            reason,
            delete_at,
            ..
        } => {
            let mut extra = json!({
                "reason": reason,
                "delete_at": delete_at,
                "snooze": {
                    "command": snooze_command(environment),
                    "method": "POST",
                    "path": snooze_path(environment),
                },
            });
            if let Some(links) = m.links.get(&environment.id).filter(|l| !l.is_empty()) {
                extra["links"] = json!(links);
            }
            extra
        }
        Event::Deleted { reason, .. } => json!({ "reason": reason }),
        Event::Failure {
            action,
            failures,
            error,
            ..
        } => json!({
            "action": action,
            "failures": failures,
            "error": error,
        }),
        Event::Digest(d) => json!({
            "digest": {
                "date": d.date,
                "timezone": d.timezone.name(),
                "currency": d.currency,
                "stopped_now": {
                    "environments": d.stopped_now,
                    "cost_per_hour": d.cost_per_hour_now,
                },
                "saved_yesterday": d.yesterday,
                "saved_this_month": d.this_month,
                "deletions_next_24h": d.upcoming_deletes.iter().map(|u| {
                    let mut entry = json!(u);
                    if let Some(links) = m.links.get(&u.environment.id).filter(|l| !l.is_empty()) {
                        entry["links"] = json!(links);
                    }
                    entry
                }).collect::<Vec<_>>(),
            }
        }),
    };
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body
}
