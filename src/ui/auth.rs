//! Who reads the status page, and whether they may act.
//!
//! A person logs in with an admin token (the admin API's, checked the same way) and gets
//! a signed session cookie: `HttpOnly`, `SameSite=Strict`, `Secure` when curfew is reached
//! over TLS (`daemon.public_url` is `https://…`). Or an authenticating proxy in front of
//! curfew names the user in a header, which is believed only from the proxy's configured
//! addresses. Every action is a POST carrying a CSRF token bound to the reader's session
//! (or, behind the proxy, to the user); a POST without a valid one is refused.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::page::ProxySettings;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "curfew_session";

/// Longest user name kept from a session or a proxy header.
const MAX_USER_LEN: usize = 128;

/// How the reader was recognized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A login with an admin token: the session's nonce.
    Session(String),
    /// The trusted proxy's header.
    Proxy,
}

/// Someone the page recognizes, who may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The admin token's name, or the proxy's user.
    pub name: String,
    pub via: Via,
}

/// The claims of a session cookie, as signed.
#[derive(Debug, Serialize, Deserialize)]
struct Session {
    #[serde(rename = "u")]
    user: String,
    /// Unix seconds.
    #[serde(rename = "x")]
    expires: i64,
    #[serde(rename = "n")]
    nonce: String,
}

/// Signs session cookies and CSRF tokens with a key made at start (a restart ends every
/// login), and knows the proxy to trust.
pub struct Sessions {
    key: [u8; 32],
    lifetime: TimeDelta,
    secure: bool,
    proxy: Option<ProxySettings>,
}

impl Sessions {
    /// `secure`: the cookie is only sent over TLS (curfew is reached at an `https` URL).
    pub fn new(lifetime: TimeDelta, secure: bool, proxy: Option<ProxySettings>) -> Sessions {
        Sessions {
            key: rand::random(),
            lifetime,
            secure,
            proxy,
        }
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac
    }

    /// A `Set-Cookie` value that logs `user` in until `now` + the session's lifetime.
    pub fn login_cookie(&self, user: &str, now: DateTime<Utc>) -> HeaderValue {
        let claims = Session {
            user: user.to_string(),
            expires: (now + self.lifetime).timestamp(),
            nonce: format!("{:032x}", rand::random::<u128>()),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        self.cookie(
            &format!("{payload}.{signature}"),
            self.lifetime.num_seconds(),
        )
    }

    /// A `Set-Cookie` value that ends the session.
    pub fn logout_cookie(&self) -> HeaderValue {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Who is reading: the proxy's user (from the proxy only), else the session's, else
    /// nobody.
    pub fn user(
        &self,
        headers: &HeaderMap,
        peer: Option<&ConnectInfo<SocketAddr>>,
        now: DateTime<Utc>,
    ) -> Option<User> {
        self.proxy_user(headers, peer)
            .or_else(|| self.session_user(headers, now))
    }

    fn proxy_user(
        &self,
        headers: &HeaderMap,
        peer: Option<&ConnectInfo<SocketAddr>>,
    ) -> Option<User> {
        let proxy = self.proxy.as_ref()?;
        let ip: IpAddr = peer?.0.ip();
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if !proxy.addresses.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        let name = headers
            .get(proxy.user_header.as_str())?
            .to_str()
            .ok()?
            .trim();
        valid_user(name).then(|| User {
            name: name.to_string(),
            via: Via::Proxy,
        })
    }

    fn session_user(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<User> {
        let value = cookie(headers, SESSION_COOKIE)?;
        let (payload, signature) = value.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(payload.as_bytes()).verify_slice(&signature).ok()?;
        let claims: Session =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let valid = now.timestamp() < claims.expires && valid_user(&claims.user);
        valid.then_some(User {
            name: claims.user,
            via: Via::Session(claims.nonce),
        })
    }

    /// The MAC of `user`'s CSRF token: bound to the session (or the proxy's user).
    fn csrf_mac(&self, user: &User) -> Hmac<Sha256> {
        let bound = match &user.via {
            Via::Session(nonce) => format!("csrf|session|{nonce}"),
            Via::Proxy => format!("csrf|proxy|{}", user.name),
        };
        self.mac(bound.as_bytes())
    }

    /// The CSRF token of `user`'s forms.
    pub fn csrf(&self, user: &User) -> String {
        URL_SAFE_NO_PAD.encode(self.csrf_mac(user).finalize().into_bytes())
    }

    /// Whether `presented` is `user`'s CSRF token (compared in constant time).
    pub fn csrf_ok(&self, user: &User, presented: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(presented)
            .is_ok_and(|p| self.csrf_mac(user).verify_slice(&p).is_ok())
    }
}

/// A user name curfew keeps in the ledger: printable, not empty, bounded.
fn valid_user(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_USER_LEN && !name.chars().any(char::is_control)
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a POST comes from a page of curfew's own: a browser sends `Origin` (or
/// `Sec-Fetch-Site`) with every POST; one from another site is refused even with a valid
/// token. Requests without either (scripts, old browsers) are judged by the token alone.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-27T18:00:00Z".parse().unwrap()
    }

    fn with_cookie(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        h
    }

    #[test]
    fn a_session_cookie_names_its_user_until_it_expires_and_only_when_intact() {
        let s = Sessions::new(TimeDelta::hours(12), true, None);
        let set = s.login_cookie("alice", now());
        let text = set.to_str().unwrap();
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=43200",
        ] {
            assert!(text.contains(attribute), "{text}");
        }
        let h = with_cookie(&set);
        assert_eq!(s.user(&h, None, now()).unwrap().name, "alice");
        assert!(s.user(&h, None, now() + TimeDelta::hours(12)).is_none());
        // Signed by another daemon (another key): refused.
        let other = Sessions::new(TimeDelta::hours(12), true, None);
        assert!(other.user(&h, None, now()).is_none());
        // Changed by hand: refused.
        let value = text
            .split(';')
            .next()
            .unwrap()
            .replace("curfew_session=", "");
        let (payload, signature) = value.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"u":"mallory","x":9999999999,"n":"00"}"#);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={forged}.{signature}")).unwrap(),
        );
        assert!(s.user(&h, None, now()).is_none(), "{payload}");
        assert!(
            !Sessions::new(TimeDelta::hours(1), false, None)
                .login_cookie("a", now())
                .to_str()
                .unwrap()
                .contains("Secure"),
            "no Secure without TLS"
        );
    }

    #[test]
    fn the_proxy_user_is_believed_only_from_the_proxy() {
        let proxy = ProxySettings {
            user_header: "x-forwarded-user".into(),
            addresses: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let s = Sessions::new(TimeDelta::hours(12), false, Some(proxy));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-user", HeaderValue::from_static("bob"));
        let from = |ip: &str| ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 5000));
        assert_eq!(
            s.user(&h, Some(&from("10.1.2.3")), now()),
            Some(User {
                name: "bob".into(),
                via: Via::Proxy
            })
        );
        assert_eq!(
            s.user(&h, Some(&from("::ffff:10.1.2.3")), now())
                .map(|u| u.name),
            Some("bob".into())
        );
        assert_eq!(s.user(&h, Some(&from("192.168.1.1")), now()), None);
        assert_eq!(s.user(&h, None, now()), None, "no peer: not believed");
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session() {
        let s = Sessions::new(TimeDelta::hours(12), false, None);
        let alice = s
            .user(&with_cookie(&s.login_cookie("alice", now())), None, now())
            .unwrap();
        let again = s
            .user(&with_cookie(&s.login_cookie("alice", now())), None, now())
            .unwrap();
        let token = s.csrf(&alice);
        assert!(s.csrf_ok(&alice, &token));
        assert!(
            !s.csrf_ok(&again, &token),
            "another session of the same user"
        );
        assert!(!s.csrf_ok(&alice, ""));
        assert!(!s.csrf_ok(&alice, "not base64!"));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&h(&[])));
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin(&h(&[
            ("origin", "http://127.0.0.1:9464"),
            ("host", "127.0.0.1:9464")
        ])));
        assert!(!same_origin(&h(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:9464")
        ])));
    }
}
