//! The status page's settings under `daemon:`: who may see it (`page`), how long a login
//! lasts, the authenticating proxy curfew trusts, and the signed action links (their key,
//! their lifetime, and the public URL they are made from).

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::raw::{At, RawDaemon};
use super::settings::{Report, positive_duration};

/// The variable read for link keys when the settings name none.
pub const LINK_KEY_VARIABLE: &str = "CURFEW_LINK_KEY";

/// Who may see the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAccess {
    /// No page: `/` answers 404.
    Off,
    /// Anyone who reaches the port sees it; acting needs a login (or the proxy's user).
    ReadOnly,
    /// Seeing it needs a login with an admin token, or the trusted proxy's user.
    Login,
}

impl PageAccess {
    /// The word the rule file uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PageAccess::Off => "off",
            PageAccess::ReadOnly => "read-only",
            PageAccess::Login => "login",
        }
    }
}

/// An authenticating proxy in front of curfew, trusted for who the user is.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// The header naming the user (`X-Forwarded-User`).
    pub user_header: String,
    /// Where the proxy connects from; the header is ignored from anywhere else.
    pub addresses: Vec<IpNet>,
}

/// The status page and signed links.
#[derive(Debug, Clone, PartialEq)]
pub struct PageSettings {
    /// `None`: the default (a login when an admin token is set, else off), decided where
    /// the tokens are known.
    pub access: Option<PageAccess>,
    pub session: Duration,
    pub proxy: Option<ProxySettings>,
    /// `https://curfew.example.com`, without a trailing slash.
    pub public_url: Option<String>,
    pub link_key_env: Option<String>,
    pub link_key_file: Option<PathBuf>,
    pub link_expiry: Duration,
}

impl Default for PageSettings {
    fn default() -> Self {
        PageSettings {
            access: None,
            session: Duration::from_secs(12 * 3600),
            proxy: None,
            public_url: None,
            link_key_env: None,
            link_key_file: None,
            link_expiry: Duration::from_secs(72 * 3600),
        }
    }
}

/// The page's settings of `daemon:`, every problem reported through `error`.
pub(super) fn page_settings(daemon: &RawDaemon, error: &mut Report<'_>) -> PageSettings {
    let d = PageSettings::default();
    let pos = |a: &At<String>| Some((a.line, a.column));
    let access = daemon.page.as_ref().and_then(|a| {
        let access = match a.value.trim() {
            "off" => Some(PageAccess::Off),
            "read-only" | "readonly" => Some(PageAccess::ReadOnly),
            "login" => Some(PageAccess::Login),
            _ => None,
        };
        if access.is_none() {
            error(
                "daemon.page",
                pos(a),
                format!(
                    "unknown page access \"{}\"; expected off, read-only or login",
                    a.value
                ),
            );
        }
        access
    });
    let public_url = daemon.public_url.as_ref().and_then(|a| {
        let url = a.value.trim().trim_end_matches('/');
        let ok = ["http://", "https://"]
            .iter()
            .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
        if !ok || url.contains(['?', '#', ' ']) {
            error(
                "daemon.public_url",
                pos(a),
                format!(
                    "\"{}\" is not a base URL such as https://curfew.example.com",
                    a.value
                ),
            );
            return None;
        }
        Some(url.to_string())
    });
    PageSettings {
        access,
        session: positive_duration(
            &daemon.page_session,
            "daemon.page_session",
            "a login's length",
            d.session,
            error,
        ),
        proxy: proxy_settings(daemon, error),
        public_url,
        link_key_env: daemon.link_key_env.as_ref().map(|a| a.value.trim().into()),
        link_key_file: daemon
            .link_key_file
            .as_ref()
            .map(|a| PathBuf::from(a.value.trim())),
        link_expiry: positive_duration(
            &daemon.link_expiry,
            "daemon.link_expiry",
            "a link's lifetime",
            d.link_expiry,
            error,
        ),
    }
}

fn proxy_settings(daemon: &RawDaemon, error: &mut Report<'_>) -> Option<ProxySettings> {
    let mut addresses = Vec::new();
    for a in &daemon.proxy_addresses {
        let text = a.value.trim();
        match text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(net) => addresses.push(net),
            Err(_) => error(
                "daemon.proxy_addresses",
                Some((a.line, a.column)),
                format!("\"{text}\" is not an address (10.0.0.7) or a range (10.0.0.0/8)"),
            ),
        }
    }
    match &daemon.proxy_user_header {
        None if addresses.is_empty() => None,
        None => {
            error(
                "daemon.proxy_addresses",
                None,
                "proxy addresses without proxy_user_header: name the header the proxy puts the user in (X-Forwarded-User)".into(),
            );
            None
        }
        Some(h) => {
            let header = h.value.trim();
            let valid = axum::http::HeaderName::from_bytes(header.as_bytes()).is_ok();
            if !valid {
                error(
                    "daemon.proxy_user_header",
                    Some((h.line, h.column)),
                    format!("\"{header}\" is not an HTTP header name"),
                );
            }
            if addresses.is_empty() {
                error(
                    "daemon.proxy_user_header",
                    Some((h.line, h.column)),
                    "a proxy user header is trusted only from the proxy: list its addresses under daemon.proxy_addresses".into(),
                );
            }
            (valid && !addresses.is_empty()).then(|| ProxySettings {
                user_header: header.to_ascii_lowercase(),
                addresses,
            })
        }
    }
}
