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

impl PageSettings {
    /// Who may see the page: `daemon.page`, else, by default, behind the login when someone
    /// can log in (`admin_token`: an admin token is configured; or a proxy names users),
    /// and off otherwise. `None`: the page is `login` but nobody can log in.
    pub fn access(&self, admin_token: bool) -> Option<PageAccess> {
        let someone_can_log_in = admin_token || self.proxy.is_some();
        let access = self.access.unwrap_or(if someone_can_log_in {
            PageAccess::Login
        } else {
            PageAccess::Off
        });
        (access != PageAccess::Login || someone_can_log_in).then_some(access)
    }

    /// Whether the session cookie is `Secure`: curfew is reached over TLS (`public_url`
    /// is `https://`).
    pub fn secure_cookie(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
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

/// The addresses (`10.0.0.7`) and ranges (`10.0.0.0/8`) of a list setting; each that is
/// neither is reported under `field`.
pub(super) fn addresses(list: &[At<String>], field: &str, error: &mut Report<'_>) -> Vec<IpNet> {
    let mut addresses = Vec::new();
    for a in list {
        let text = a.value.trim();
        match text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(net) => addresses.push(net),
            Err(_) => error(
                field,
                Some((a.line, a.column)),
                format!("\"{text}\" is not an address (10.0.0.7) or a range (10.0.0.0/8)"),
            ),
        }
    }
    addresses
}

fn proxy_settings(daemon: &RawDaemon, error: &mut Report<'_>) -> Option<ProxySettings> {
    let addresses = addresses(&daemon.proxy_addresses, "daemon.proxy_addresses", error);
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn page(daemon: &str) -> Result<PageSettings, String> {
        super::super::settings::of_daemon(daemon).map(|s| s.page)
    }

    #[test]
    fn by_default_the_page_is_behind_the_login_with_an_admin_token_and_off_without() {
        let d = page("  resync: 30s\n").unwrap();
        assert_eq!(d.access, None);
        assert_eq!(d.access(true), Some(PageAccess::Login));
        assert_eq!(d.access(false), Some(PageAccess::Off));
        assert_eq!(d.link_expiry, Duration::from_secs(72 * 3600), "links: 72 h");
        assert_eq!(d.session, Duration::from_secs(12 * 3600));
        assert!(!d.secure_cookie());
        // A proxy that names users is a way in too.
        let proxied = page(
            "  proxy_user_header: X-Forwarded-User\n  proxy_addresses: [10.0.0.0/8, 192.168.1.7]\n",
        )
        .unwrap();
        assert_eq!(proxied.access(false), Some(PageAccess::Login));
        let proxy = proxied.proxy.unwrap();
        assert_eq!(proxy.user_header, "x-forwarded-user");
        assert_eq!(proxy.addresses.len(), 2);
    }

    #[test]
    fn a_chosen_access_is_kept_and_a_login_nobody_can_use_is_refused() {
        for (word, want) in [
            ("off", PageAccess::Off),
            ("read-only", PageAccess::ReadOnly),
            ("login", PageAccess::Login),
        ] {
            let p = page(&format!("  page: {word}\n")).unwrap();
            assert_eq!(p.access(true), Some(want), "{word}");
        }
        assert_eq!(page("  page: login\n").unwrap().access(false), None);
        assert_eq!(
            page("  page: read-only\n").unwrap().access(false),
            Some(PageAccess::ReadOnly)
        );
        let tls = page("  public_url: https://curfew.example.com/\n").unwrap();
        assert_eq!(
            tls.public_url.as_deref(),
            Some("https://curfew.example.com")
        );
        assert!(tls.secure_cookie());
    }

    /// The README's first command (`curfew run --config config/sandbox.yaml`) shows the
    /// page at http://127.0.0.1:9464/ with no token set.
    #[test]
    fn the_sandbox_file_turns_the_page_on_read_only_at_9464() {
        let text = include_str!("../../config/sandbox.yaml");
        let loaded = crate::config::parse(
            "config/sandbox.yaml",
            text,
            &HashMap::new(),
            "2026-11-25T10:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            loaded.settings.page.access(false),
            Some(PageAccess::ReadOnly)
        );
        assert_eq!(loaded.settings.listen.to_string(), "127.0.0.1:9464");
    }

    #[test]
    fn page_settings_errors_are_located() {
        let cases = [
            ("  page: public\n", "unknown page access \"public\""),
            ("  public_url: curfew.example.com\n", "is not a base URL"),
            (
                "  proxy_user_header: X-Forwarded-User\n",
                "trusted only from the proxy",
            ),
            (
                "  proxy_addresses: [10.0.0.0/8]\n",
                "without proxy_user_header",
            ),
            (
                "  proxy_user_header: X-User\n  proxy_addresses: [ten.0.0.1]\n",
                "is not an address",
            ),
            ("  link_expiry: 0s\n", "daemon.link_expiry"),
        ];
        for (daemon, want) in cases {
            let e = page(daemon).unwrap_err();
            assert!(e.contains(want), "{daemon}: {e}");
        }
    }
}
