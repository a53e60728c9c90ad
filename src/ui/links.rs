//! Signed action links: a link in a Slack message, a webhook or a Kubernetes Event that
//! lets whoever holds it keep, wake or delay one environment, once, without a login.
//!
//! A link is a capability. It names one environment, one action and its span, the target
//! it was sent to, when it expires, and a random nonce; all of that is signed with
//! HMAC-SHA256 under a key from a file or a variable (two keys at once, for rotation: the
//! first signs, both verify). Opening it shows a confirmation page (a GET never acts: link
//! previewers must not act for anyone); confirming acts once, through the admin API's
//! operator paths, and puts the nonce in the ledger so that it cannot act again.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::page::LINK_KEY_VARIABLE;
use crate::platform::{ActionLink, ActionLinks, Mode, NoticeKind};
use crate::schedule::format_seconds;

/// Shorter keys are refused: a link key must not be guessable.
const MIN_KEY_LEN: usize = 32;

/// Keys at once: the one that signs, and the one being retired.
const MAX_KEYS: usize = 2;

/// A token longer than this is not one of ours (read before any decoding).
const MAX_TOKEN_LEN: usize = 1024;

/// The version of the signed claims.
const VERSION: u8 = 1;

/// What a link does, with its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum LinkAction {
    /// Start it now, until its rule's next scheduled stop.
    Wake,
    /// Keep it up for this long from the click: a stopped one is woken, a running one
    /// snoozed.
    Keep { seconds: u64 },
    /// Keep it up until this local time tomorrow (in its rule's zone), from the click.
    KeepUntil { hour: u32, minute: u32 },
    /// Delay its delete by this long (from the deadline it has, or from the click).
    DelayDelete { seconds: u64 },
}

impl LinkAction {
    /// What it does, in a few words: `keep 4 h`.
    pub fn label(self) -> String {
        match self {
            LinkAction::Wake => "wake now".into(),
            LinkAction::Keep { seconds } => format!("keep {}", words(seconds)),
            LinkAction::KeepUntil { hour, minute } => {
                format!("keep until tomorrow {hour:02}:{minute:02}")
            }
            LinkAction::DelayDelete { seconds } => {
                format!("delay the delete by {}", words(seconds))
            }
        }
    }

    /// The ledger's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkAction::Wake => "wake",
            LinkAction::Keep { .. } | LinkAction::KeepUntil { .. } => "keep",
            LinkAction::DelayDelete { .. } => "delay_delete",
        }
    }

    /// The longest span it asks for, to hold it to `admin_max_snooze` when it is made
    /// (confirming checks the actual instant again).
    fn span(self) -> TimeDelta {
        let seconds = match self {
            LinkAction::Wake => 0,
            LinkAction::Keep { seconds } | LinkAction::DelayDelete { seconds } => seconds,
            LinkAction::KeepUntil { .. } => 2 * 86_400,
        };
        TimeDelta::try_seconds(i64::try_from(seconds).unwrap_or(i64::MAX)).unwrap_or(TimeDelta::MAX)
    }

    /// The actions a notice offers.
    pub fn for_notice(notice: NoticeKind) -> &'static [LinkAction] {
        const TWO_DAYS: u64 = 2 * 86_400;
        match notice {
            NoticeKind::DeleteWarning => &[
                LinkAction::DelayDelete { seconds: TWO_DAYS },
                LinkAction::KeepUntil { hour: 9, minute: 0 },
            ],
            NoticeKind::Stopped => &[LinkAction::Wake, LinkAction::Keep { seconds: 4 * 3600 }],
            NoticeKind::Digest => &[LinkAction::DelayDelete { seconds: TWO_DAYS }],
        }
    }
}

/// `4 h`, `2 days`, `90 min`, for people.
fn words(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => match s / 86_400 {
            1 => "1 day".into(),
            n => format!("{n} days"),
        },
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format_seconds(s),
    }
}

/// The next `hour:minute` on the local day after `now`'s, in `tz` (a wall time the clocks
/// skip resolves to the first instant after the gap).
pub fn tomorrow_at(tz: Tz, now: DateTime<Utc>, hour: u32, minute: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hour.min(23), minute.min(59), 0).unwrap_or(NaiveTime::MIN);
    let today = now.with_timezone(&tz).date_naive();
    let tomorrow = today.succ_opt().unwrap_or(today);
    crate::schedule::zone::resolve(tz, tomorrow.and_time(time))
}

/// `seconds` after `now`, unless that is past what an instant can hold.
pub fn after(now: DateTime<Utc>, seconds: u64) -> Option<DateTime<Utc>> {
    now.checked_add_signed(TimeDelta::try_seconds(i64::try_from(seconds).ok()?)?)
}

/// What a link says, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(rename = "v")]
    pub version: u8,
    /// The environment's id.
    #[serde(rename = "e")]
    pub environment_id: String,
    #[serde(rename = "a")]
    pub action: LinkAction,
    /// Unix seconds after which it is refused.
    #[serde(rename = "x")]
    pub expires: i64,
    /// 128 random bits, in hex: its one use is recorded under it.
    #[serde(rename = "n")]
    pub nonce: String,
    /// The notification target it was sent to (`team-slack`).
    #[serde(rename = "t")]
    pub target: String,
}

impl Link {
    /// When it stops working.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.expires, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Why a link was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    #[error("this is not a curfew link (it is cut short or changed)")]
    Malformed,
    #[error(
        "this link's signature does not match: it was changed, or signed with a key curfew no longer has"
    )]
    BadSignature,
    #[error("this link expired at {0}")]
    Expired(DateTime<Utc>),
}

/// Why the link keys could not be read (the daemon does not start). Never shows a key.
#[derive(Debug, thiserror::Error)]
pub enum LinkKeyError {
    #[error("{source_name}, line {line}: a link key is shorter than {MIN_KEY_LEN} characters")]
    Short { source_name: String, line: usize },
    #[error("the link key file cannot be read: {0}")]
    File(#[source] crate::files::ReadError),
    #[error(
        "{0} link keys were given; at most {MAX_KEYS}: the one that signs, then the one being retired"
    )]
    TooMany(usize),
}

/// The keys links are signed with: the first signs, every one verifies.
#[derive(Clone)]
pub struct LinkKeys {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl LinkKeys {
    /// Keys from lines of `text` (blank lines and `#` comments skipped); `source` names
    /// where they came from in errors (never a key).
    pub fn parse(text: &str, source: &str) -> Result<Vec<Vec<u8>>, LinkKeyError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.len() < MIN_KEY_LEN {
                return Err(LinkKeyError::Short {
                    source_name: source.to_string(),
                    line: n + 1,
                });
            }
            keys.push(line.as_bytes().to_vec());
        }
        Ok(keys)
    }

    /// The keys of the variable (`variable`, else `CURFEW_LINK_KEY`), then of the file;
    /// `None` when there are none (links are off). At most two in all.
    pub async fn load(
        env: &HashMap<String, String>,
        variable: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<LinkKeys>, LinkKeyError> {
        let variable = variable.unwrap_or(LINK_KEY_VARIABLE);
        let mut keys = match env.get(variable) {
            Some(text) => Self::parse(text, &format!("the variable {variable}"))?,
            None => Vec::new(),
        };
        if let Some(path) = file {
            let limits = crate::files::Limits::bytes(crate::files::TOKEN_FILE_MAX_BYTES);
            let text = crate::files::read(path, limits, "")
                .await
                .map_err(LinkKeyError::File)?;
            keys.extend(Self::parse(
                &text,
                &format!("the link key file {}", path.display()),
            )?);
        }
        if keys.len() > MAX_KEYS {
            return Err(LinkKeyError::TooMany(keys.len()));
        }
        Ok((!keys.is_empty()).then_some(LinkKeys { keys }))
    }

    /// Keys given directly (tests, benchmarks).
    pub fn new(keys: Vec<Vec<u8>>) -> Option<LinkKeys> {
        (!keys.is_empty() && keys.len() <= MAX_KEYS).then_some(LinkKeys { keys })
    }

    fn mac(key: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
    }
}

/// Makes and checks links.
#[derive(Debug, Clone)]
pub struct Signer {
    keys: LinkKeys,
    /// `https://curfew.example.com`, no trailing slash.
    base: String,
    expiry: TimeDelta,
    /// `admin_max_snooze`: a link asks for no more.
    max_span: TimeDelta,
}

impl Signer {
    pub fn new(keys: LinkKeys, base: &str, expiry: TimeDelta, max_span: TimeDelta) -> Signer {
        Signer {
            keys,
            base: base.trim_end_matches('/').to_string(),
            expiry,
            max_span,
        }
    }

    /// The signed token of `link`: its claims and their signature, both base64url.
    pub fn sign(&self, link: &Link) -> String {
        let claims = serde_json::to_vec(link).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(claims);
        let mut mac = LinkKeys::mac(&self.keys.keys[0]);
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The link's URL on the daemon's public address.
    pub fn url(&self, token: &str) -> String {
        format!("{}/link/{token}", self.base)
    }

    /// A new link for `action` on `environment_id`, sent to `target`, made at `now`.
    pub fn link(
        &self,
        environment_id: &str,
        action: LinkAction,
        target: &str,
        now: DateTime<Utc>,
    ) -> Link {
        Link {
            version: VERSION,
            environment_id: environment_id.to_string(),
            action,
            expires: (now + self.expiry).timestamp(),
            nonce: format!("{:032x}", rand::random::<u128>()),
            target: target.to_string(),
        }
    }

    /// The link `token` names, if it is ours, intact and not expired at `now`. (Whether it
    /// was used already is the ledger's to say.)
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Link, LinkRefused> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(LinkRefused::Malformed);
        }
        let (payload, signature) = token.split_once('.').ok_or(LinkRefused::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkRefused::Malformed)?;
        // Every key is tried, each in constant time.
        let mut good = false;
        for key in &self.keys.keys {
            let mut mac = LinkKeys::mac(key);
            mac.update(payload.as_bytes());
            good |= mac.verify_slice(&signature).is_ok();
        }
        if !good {
            return Err(LinkRefused::BadSignature);
        }
        let claims = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkRefused::Malformed)?;
        let link: Link = serde_json::from_slice(&claims).map_err(|_| LinkRefused::Malformed)?;
        if link.version != VERSION {
            return Err(LinkRefused::Malformed);
        }
        if now.timestamp() >= link.expires {
            return Err(LinkRefused::Expired(link.expires_at()));
        }
        Ok(link)
    }
}

impl ActionLinks for Signer {
    fn links(
        &self,
        id: &str,
        mode: Mode,
        notice: NoticeKind,
        target: &str,
        now: DateTime<Utc>,
    ) -> Vec<ActionLink> {
        if mode == Mode::Production {
            return Vec::new();
        }
        LinkAction::for_notice(notice)
            .iter()
            .filter(|a| a.span() <= self.max_span)
            .map(|&action| ActionLink {
                label: action.label(),
                url: self.url(&self.sign(&self.link(id, action, target, now))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const OLD_KEY: &str = "fedcba9876543210fedcba9876543210";

    fn signer(keys: &[&str]) -> Signer {
        Signer::new(
            LinkKeys::new(keys.iter().map(|k| k.as_bytes().to_vec()).collect()).unwrap(),
            "https://curfew.example.com/",
            TimeDelta::hours(72),
            TimeDelta::days(7),
        )
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_link_verifies_until_it_expires() {
        let s = signer(&[KEY]);
        let now = at("2026-11-27T18:00:00Z");
        let link = s.link(
            "env-1",
            LinkAction::Keep { seconds: 14_400 },
            "team-slack",
            now,
        );
        let token = s.sign(&link);
        assert_eq!(s.verify(&token, now), Ok(link.clone()));
        assert_eq!(
            s.verify(&token, now + TimeDelta::hours(72) - TimeDelta::seconds(1)),
            Ok(link.clone())
        );
        assert_eq!(
            s.verify(&token, now + TimeDelta::hours(72)),
            Err(LinkRefused::Expired(at("2026-11-30T18:00:00Z")))
        );
        assert!(
            s.url(&token)
                .starts_with("https://curfew.example.com/link/")
        );
    }

    #[test]
    fn a_changed_link_is_refused() {
        let s = signer(&[KEY]);
        let now = at("2026-11-27T18:00:00Z");
        let token = s.sign(&s.link("env-1", LinkAction::Wake, "team-slack", now));
        let (payload, signature) = token.split_once('.').unwrap();
        // Another environment, same signature.
        let forged = s.link("env-2", LinkAction::Wake, "team-slack", now);
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let mut flipped = signature.to_string().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let cases = [
            (
                format!("{forged_payload}.{signature}"),
                LinkRefused::BadSignature,
            ),
            (
                format!("{payload}.{}", String::from_utf8(flipped).unwrap()),
                LinkRefused::BadSignature,
            ),
            (payload.to_string(), LinkRefused::Malformed),
            (format!("{payload}.!!"), LinkRefused::Malformed),
            ("x".repeat(5000), LinkRefused::Malformed),
            (
                signer(&[OLD_KEY]).sign(&s.link("env-1", LinkAction::Wake, "t", now)),
                LinkRefused::BadSignature,
            ),
        ];
        for (token, want) in cases {
            assert_eq!(s.verify(&token, now), Err(want), "{token:.60}");
        }
    }

    #[test]
    fn two_keys_rotate_the_first_signs_both_verify() {
        let now = at("2026-11-27T18:00:00Z");
        let old = signer(&[OLD_KEY]);
        let rotating = signer(&[KEY, OLD_KEY]);
        let new = signer(&[KEY]);
        let from_old = old.sign(&old.link("e", LinkAction::Wake, "t", now));
        let from_rotating = rotating.sign(&rotating.link("e", LinkAction::Wake, "t", now));
        assert!(rotating.verify(&from_old, now).is_ok());
        assert!(
            new.verify(&from_rotating, now).is_ok(),
            "signed with the first key"
        );
        assert_eq!(
            new.verify(&from_old, now),
            Err(LinkRefused::BadSignature),
            "the retired key is gone"
        );
    }

    #[tokio::test]
    async fn keys_are_read_from_the_variable_and_the_file_two_at_most() {
        let env = |v: &str| HashMap::from([(LINK_KEY_VARIABLE.to_string(), v.to_string())]);
        assert!(
            LinkKeys::load(&HashMap::new(), None, None)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            LinkKeys::load(&env(&format!("{KEY}\n# old\n{OLD_KEY}\n")), None, None)
                .await
                .unwrap()
                .unwrap()
                .keys
                .len(),
            2
        );
        let three = format!("{KEY}\n{OLD_KEY}\n{KEY}x");
        assert!(
            LinkKeys::load(&env(&three), None, None)
                .await
                .unwrap_err()
                .to_string()
                .contains("at most 2")
        );
        let short = LinkKeys::load(&env("short"), None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(short.contains("shorter than 32"), "{short}");
        assert!(
            !short.contains("short\""),
            "the key is never shown: {short}"
        );
        let missing =
            LinkKeys::load(&HashMap::new(), None, Some(Path::new("/nonexistent/k"))).await;
        assert!(missing.unwrap_err().to_string().contains("/nonexistent/k"));
    }

    #[test]
    fn notices_get_links_but_production_never_and_spans_stay_within_the_longest_snooze() {
        let now = at("2026-11-27T18:00:00Z");
        let s = signer(&[KEY]);
        let labels = |s: &Signer, mode, notice| {
            s.links("env-1", mode, notice, "team-slack", now)
                .into_iter()
                .map(|l| l.label)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(&s, Mode::Preview, NoticeKind::DeleteWarning),
            ["delay the delete by 2 days", "keep until tomorrow 09:00"]
        );
        assert_eq!(
            labels(&s, Mode::Preview, NoticeKind::Stopped),
            ["wake now", "keep 4 h"]
        );
        assert!(labels(&s, Mode::Production, NoticeKind::Stopped).is_empty());
        let short = Signer {
            max_span: TimeDelta::days(1),
            ..s.clone()
        };
        assert_eq!(
            labels(&short, Mode::Preview, NoticeKind::DeleteWarning),
            Vec::<String>::new(),
            "a 2-day delay and a keep until tomorrow may both exceed a 1-day limit"
        );
        for link in s.links(
            "env-1",
            Mode::Preview,
            NoticeKind::Stopped,
            "team-slack",
            now,
        ) {
            let token = link.url.rsplit('/').next().unwrap();
            let verified = s.verify(token, now).unwrap();
            assert_eq!(verified.environment_id, "env-1");
            assert_eq!(verified.target, "team-slack");
        }
    }

    #[test]
    fn tomorrow_at_nine_is_on_the_next_local_day_across_a_clock_change() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // Saturday 28 March 2026, 23:30 in Paris; the clocks go forward that night.
        let now = at("2026-03-28T22:30:00Z");
        assert_eq!(tomorrow_at(paris, now, 9, 0), at("2026-03-29T07:00:00Z"));
        // 02:30 does not exist on the 29th: the first instant after the gap.
        assert_eq!(tomorrow_at(paris, now, 2, 30), at("2026-03-29T01:00:00Z"));
    }
}
