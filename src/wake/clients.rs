//! The public port's per-client rate limit (`daemon.public_rate_per_client`): each client
//! may make so many requests, past which it gets `429` with `Retry-After` while the
//! others are served.
//!
//! The client is the connection's peer, except from a trusted reverse proxy
//! (`daemon.public_trusted_proxies`: the ingress controller, through which every request
//! comes): there it is the rightmost address of the forwarded chain (`X-Forwarded-For`,
//! or RFC 7239's `Forwarded`) that is not a trusted proxy, the one address no client can
//! forge, as the proxy appended it. Trusted addresses are never limited themselves (a
//! Sablier plugin calls the API from the proxy for everyone's requests). An IPv6 client
//! counts by its /64, the block one subscriber gets.
//!
//! Memory is bounded: clients whose allowance is whole again are forgotten every
//! [`RETAIN_EVERY`] requests, and past [`MAX_CLIENTS`] tracked at once every request
//! counts against one shared allowance until some are forgotten (looked for at most once
//! a second then).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::public::{ClientHeader, ClientLimit};

/// The most clients tracked at once.
pub(super) const MAX_CLIENTS: usize = 65_536;
/// How often (in requests) clients whose allowance is whole again are forgotten.
const RETAIN_EVERY: u64 = 4_096;
/// The most hops of a forwarded chain read.
const MAX_HOPS: usize = 32;
/// How often a full table of clients is looked through at most.
const RETAIN_WHEN_FULL_EVERY: Duration = Duration::from_secs(1);
/// How often a client past its rate is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// The key every new client shares while [`MAX_CLIENTS`] are tracked.
const CROWD: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// The allowances by client, on the clock `C`.
type Limiter<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The limit and the allowances of the clients seen lately.
pub(super) struct Clients<C: Clock = DefaultClock> {
    limiter: Option<Limiter<C>>,
    clock: C,
    trusted: Vec<IpNet>,
    header: ClientHeader,
    max_clients: usize,
    requests: AtomicU64,
    /// When a full table was last looked through.
    retained_when_full: std::sync::Mutex<Option<C::Instant>>,
    /// The log line of a client past its rate, at most every [`LOG_EVERY`].
    told: std::sync::Mutex<crate::server::Throttle>,
}

/// What a request may do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Served,
    /// Over its client's limit: it may ask again after that long.
    Limited(Duration),
}

impl Clients {
    pub(super) fn new(limit: &ClientLimit) -> Clients {
        Clients::with_clock(limit, DefaultClock::default(), MAX_CLIENTS)
    }
}

impl<C: Clock + Clone> Clients<C> {
    pub(super) fn with_clock(limit: &ClientLimit, clock: C, max_clients: usize) -> Clients<C> {
        let quota = limit.rate.and_then(|r| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
            Quota::with_period(r.per / r.count.max(1)).map(|q| q.allow_burst(burst))
        });
        Clients {
            limiter: quota.map(|q| RateLimiter::dashmap_with_clock(q, clock.clone())),
            clock,
            trusted: limit.trusted_proxies.clone(),
            header: limit.header,
            max_clients,
            requests: AtomicU64::new(0),
            retained_when_full: std::sync::Mutex::new(None),
            told: std::sync::Mutex::new(crate::server::Throttle::new(LOG_EVERY)),
        }
    }

    /// Whether a request from `peer` (none: in-process, no connection) with `headers` is
    /// served.
    pub(super) fn check(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Verdict {
        let Some(limiter) = &self.limiter else {
            return Verdict::Served;
        };
        let client = match peer {
            Some(peer) => match self.client(peer, headers) {
                Some(client) => block(client),
                None => return Verdict::Served,
            },
            None => CROWD,
        };
        let mut tracked = limiter.len();
        let periodic =
            self.requests.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1;
        if periodic || (tracked >= self.max_clients && self.may_retain_when_full()) {
            limiter.retain_recent();
            tracked = limiter.len();
        }
        let key = if tracked >= self.max_clients {
            CROWD
        } else {
            client
        };
        match limiter.check_key(&key) {
            Ok(()) => Verdict::Served,
            Err(not_until) => {
                let told = self.told.lock().map(|mut t| t.tick());
                if let Ok(Some(more)) = told {
                    tracing::warn!(client = %key, repeated = more, "public port: a client went past daemon.public_rate_per_client");
                }
                Verdict::Limited(not_until.wait_time_from(self.clock.now()))
            }
        }
    }

    /// Whether a full table may be looked through now: at most once per
    /// [`RETAIN_WHEN_FULL_EVERY`], as it is long (a flood from many addresses must not make
    /// every request walk it), and by one request at a time.
    fn may_retain_when_full(&self) -> bool {
        let Ok(mut last) = self.retained_when_full.try_lock() else {
            return false;
        };
        let now = self.clock.now();
        let due =
            last.is_none_or(|at| Duration::from(now.duration_since(at)) >= RETAIN_WHEN_FULL_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }

    /// How many clients are tracked.
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, RateLimiter::len)
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client a request from `peer` is for; `None` when that is a trusted proxy (or
    /// only trusted addresses forwarded it), which is not limited.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !self.trusted(peer) {
            return Some(peer);
        }
        let mut nearest = peer;
        let hops = match self.header {
            ClientHeader::XForwardedFor => hops(headers, "x-forwarded-for", Some),
            ClientHeader::Forwarded => hops(headers, "forwarded", forwarded_for),
        };
        for hop in hops.into_iter().rev().take(MAX_HOPS) {
            match hop_address(hop) {
                Some(ip) if self.trusted(ip) => nearest = ip,
                Some(ip) => return Some(ip),
                // `unknown`, an obfuscated `_node`, or garbage a trusted proxy passed on:
                // the request counts against the proxy nearest to it.
                None => return Some(nearest),
            }
        }
        None
    }
}

/// The hops of every `name` header, in order (nearest the client first), each read by
/// `hop` (`None`: not a hop).
fn hops<'h>(
    headers: &'h HeaderMap,
    name: &str,
    hop: fn(&'h str) -> Option<&'h str>,
) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        // A header that is not text cannot be read at all: its hops are unknown.
        .flat_map(|v| v.to_str().unwrap_or("unknown").split(','))
        .filter_map(hop)
        .collect()
}

/// The `for=` of one element of a `Forwarded` header (`for=192.0.2.60;proto=https`), as
/// written (maybe quoted); an element without one is no hop.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then_some(value)
    })
}

/// The address of a hop: `192.0.2.60`, `"192.0.2.60:4711"`, `"[2001:db8::17]:4711"`,
/// `2001:db8::17`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (v6, _port) = rest.split_once(']')?;
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

/// The key of a client: its address, or its /64 for IPv6.
fn block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// The middleware: a request over its client's limit gets `429` with `Retry-After` (an
/// RFC 7807 problem, or a small page for a browser) and goes no further.
pub(super) async fn limit(
    axum::extract::State((clients, daemon)): axum::extract::State<(
        std::sync::Arc<Clients>,
        std::sync::Arc<crate::reconcile::Daemon>,
    )>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match clients.check(peer, request.headers()) {
        Verdict::Served => next.run(request).await,
        Verdict::Limited(wait) => {
            daemon.metrics.public_request_limited();
            too_many(wait, super::wants_html(request.headers()))
        }
    }
}

fn too_many(wait: Duration, html: bool) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let refusal = super::Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        title: "Too many requests",
        detail: format!("this address asked too often; try again in {seconds} s"),
    };
    let mut r = super::refused(&refusal, html);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    r
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::config::public::Rate;

    /// 1 request a second, 2 at once; the ingress controllers are 10.42.0.0/16.
    fn clients(
        header: ClientHeader,
        max_clients: usize,
    ) -> (Clients<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limit = ClientLimit {
            rate: Some(Rate {
                count: 1,
                per: Duration::from_secs(1),
            }),
            burst: 2,
            trusted_proxies: vec!["10.42.0.0/16".parse().unwrap()],
            header,
        };
        (
            Clients::with_clock(&limit, clock.clone(), max_clients),
            clock,
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_client_past_its_burst_waits_while_another_is_served() {
        let (c, clock) = clients(ClientHeader::XForwardedFor, MAX_CLIENTS);
        let none = HeaderMap::new();
        let a = Some(ip("198.51.100.1"));
        assert_eq!(c.check(a, &none), Verdict::Served);
        assert_eq!(c.check(a, &none), Verdict::Served);
        assert_eq!(c.check(a, &none), Verdict::Limited(Duration::from_secs(1)));
        assert_eq!(c.check(Some(ip("198.51.100.2")), &none), Verdict::Served);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(c.check(a, &none), Verdict::Served);
        assert_eq!(
            c.check(a, &none),
            Verdict::Limited(Duration::from_millis(500))
        );
    }

    #[test]
    fn the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() {
        let (c, _) = clients(ClientHeader::XForwardedFor, MAX_CLIENTS);
        let proxy = ip("10.42.0.7");
        // (peer, X-Forwarded-For headers, the client; None: not limited)
        let cases: &[(IpAddr, &[&str], Option<&str>)] = &[
            // Not from a proxy: the header is the client's own word, ignored.
            (ip("198.51.100.1"), &["1.2.3.4"], Some("198.51.100.1")),
            // A client's own X-Forwarded-For is on the left of what the proxy appended.
            (proxy, &["1.2.3.4, 198.51.100.1"], Some("198.51.100.1")),
            (proxy, &["1.2.3.4", "198.51.100.1"], Some("198.51.100.1")),
            // Two proxies in a row (a load balancer, then the controller).
            (proxy, &["198.51.100.1, 10.42.9.9"], Some("198.51.100.1")),
            // An IPv6 client counts by its /64; an IPv4-mapped one as IPv4.
            (proxy, &["2001:db8:1:2:3:4:5:6"], Some("2001:db8:1:2::")),
            (proxy, &["::ffff:198.51.100.1"], Some("198.51.100.1")),
            // A hop that is no address counts against the proxy that passed it on.
            (proxy, &["198.51.100.1, garbage"], Some("10.42.0.7")),
            // The proxy speaking for itself, or only proxies: not limited.
            (proxy, &[], None),
            (proxy, &["10.42.1.1"], None),
        ];
        for (peer, xff, want) in cases {
            let got = c
                .client(*peer, &forwarded("x-forwarded-for", xff))
                .map(block);
            assert_eq!(got, want.map(ip), "{peer} {xff:?}");
        }
    }

    #[test]
    fn forwarded_names_the_client_as_rfc_7239_writes_it() {
        let (c, _) = clients(ClientHeader::Forwarded, MAX_CLIENTS);
        let proxy = ip("10.42.0.7");
        let cases: &[(&[&str], Option<&str>)] = &[
            (
                &["for=192.0.2.60;proto=http;by=203.0.113.43"],
                Some("192.0.2.60"),
            ),
            (
                &["for=1.2.3.4, For=\"192.0.2.60:4711\""],
                Some("192.0.2.60"),
            ),
            (
                &["for=\"[2001:db8:cafe::17]:4711\""],
                Some("2001:db8:cafe::"),
            ),
            (&["for=192.0.2.60, for=10.42.3.3"], Some("192.0.2.60")),
            (&["for=unknown"], Some("10.42.0.7")),
            (&["proto=https"], None),
        ];
        for (values, want) in cases {
            let got = c.client(proxy, &forwarded("forwarded", values)).map(block);
            assert_eq!(got, want.map(ip), "{values:?}");
        }
        // X-Forwarded-For is not read when the proxies write Forwarded.
        let xff = forwarded("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(c.client(proxy, &xff), None);
    }

    #[test]
    fn a_spoofed_header_from_a_client_changes_nothing() {
        let (c, _) = clients(ClientHeader::XForwardedFor, MAX_CLIENTS);
        let peer = Some(ip("198.51.100.1"));
        for i in 0..2 {
            let spoofed = forwarded("x-forwarded-for", &[&format!("1.1.1.{i}")]);
            assert_eq!(c.check(peer, &spoofed), Verdict::Served);
        }
        let spoofed = forwarded("x-forwarded-for", &["1.1.1.9"]);
        assert!(matches!(c.check(peer, &spoofed), Verdict::Limited(_)));
    }

    #[test]
    fn the_clients_tracked_are_bounded_and_forgotten_once_their_allowance_is_whole() {
        let (c, clock) = clients(ClientHeader::XForwardedFor, 3);
        let none = HeaderMap::new();
        for i in 1..=3 {
            assert_eq!(
                c.check(Some(ip(&format!("198.51.100.{i}"))), &none),
                Verdict::Served
            );
        }
        assert_eq!(c.tracked(), 3);
        // Full: new clients share one allowance (2 at once), and so do known ones.
        assert_eq!(c.check(Some(ip("198.51.100.4")), &none), Verdict::Served);
        assert_eq!(c.check(Some(ip("198.51.100.5")), &none), Verdict::Served);
        assert!(matches!(
            c.check(Some(ip("198.51.100.6")), &none),
            Verdict::Limited(_)
        ));
        assert!(c.tracked() <= 4, "{}", c.tracked());
        // Three seconds later every allowance is whole: all are forgotten on the next check.
        clock.advance(Duration::from_secs(3));
        assert_eq!(c.check(Some(ip("198.51.100.7")), &none), Verdict::Served);
        assert_eq!(c.tracked(), 1);
    }

    #[test]
    fn off_serves_everyone() {
        let limit = ClientLimit {
            rate: None,
            ..ClientLimit::default()
        };
        let c = Clients::new(&limit);
        for _ in 0..100 {
            assert_eq!(
                c.check(Some(ip("198.51.100.1")), &HeaderMap::new()),
                Verdict::Served
            );
        }
    }
}
