//! The public port's per-client rate limit under `daemon:`: the rate and burst, the
//! reverse proxies trusted to name the client, and the header they name it in.

use std::time::Duration;

use ipnet::IpNet;

use super::page::addresses;
use super::raw::RawDaemon;
use super::settings::Report;

/// The rate when the file names none.
const DEFAULT_RATE: Rate = Rate {
    count: 20,
    per: Duration::from_secs(1),
};

/// `count` requests `per` unit of time (`20/s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// The header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHeader {
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=…`.
    Forwarded,
}

/// The public port's per-client rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLimit {
    /// `None`: off.
    pub rate: Option<Rate>,
    /// Requests a client may make at once (at least 1).
    pub burst: u32,
    /// The reverse proxies in front of the public port: from them, `header` names the
    /// client.
    pub trusted_proxies: Vec<IpNet>,
    pub header: ClientHeader,
}

impl Default for ClientLimit {
    fn default() -> Self {
        ClientLimit {
            rate: Some(DEFAULT_RATE),
            burst: DEFAULT_RATE.count,
            trusted_proxies: Vec::new(),
            header: ClientHeader::XForwardedFor,
        }
    }
}

/// `20/s`, `600/m`, `1000/h` (or `off`: `Ok(None)`).
pub fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    let wrong = || format!("\"{text}\" is not a rate such as 20/s, 600/m or 1000/h, nor off");
    let (count, unit) = text.split_once('/').ok_or_else(wrong)?;
    let count: u32 = count.trim().parse().map_err(|_| wrong())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(wrong()),
    };
    if count == 0 {
        return Err(format!("\"{text}\": a rate is at least 1 (or off)"));
    }
    Ok(Some(Rate { count, per }))
}

/// The per-client limit of `daemon`, each wrong value reported.
pub(super) fn client_limit(daemon: &RawDaemon, error: &mut Report<'_>) -> ClientLimit {
    let d = ClientLimit::default();
    let rate = match &daemon.public_rate_per_client {
        None => d.rate,
        Some(a) => parse_rate(&a.value).unwrap_or_else(|e| {
            error("daemon.public_rate_per_client", Some((a.line, a.column)), e);
            d.rate
        }),
    };
    let burst = match (&daemon.public_rate_burst, rate) {
        (Some(a), _) if a.value == 0 => {
            error(
                "daemon.public_rate_burst",
                Some((a.line, a.column)),
                "the burst must be at least 1".into(),
            );
            d.burst
        }
        (Some(a), None) => {
            error(
                "daemon.public_rate_burst",
                Some((a.line, a.column)),
                "a burst without a rate: public_rate_per_client is off".into(),
            );
            d.burst
        }
        (Some(a), Some(_)) => a.value,
        (None, rate) => rate.map_or(d.burst, |r| r.count),
    };
    let header = match daemon.public_client_header.as_ref() {
        None => d.header,
        Some(a) => match a.value.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => ClientHeader::XForwardedFor,
            "forwarded" => ClientHeader::Forwarded,
            other => {
                error(
                    "daemon.public_client_header",
                    Some((a.line, a.column)),
                    format!("\"{other}\" is neither X-Forwarded-For nor Forwarded"),
                );
                d.header
            }
        },
    };
    ClientLimit {
        rate,
        burst,
        trusted_proxies: addresses(
            &daemon.public_trusted_proxies,
            "daemon.public_trusted_proxies",
            error,
        ),
        header,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(daemon: &str) -> Result<ClientLimit, String> {
        super::super::settings::of_daemon(daemon).map(|s| s.public_clients)
    }

    #[test]
    fn the_rate_is_20_a_second_per_client_by_default_and_can_be_off() {
        let d = limit("  resync: 30s\n").unwrap();
        assert_eq!(d, ClientLimit::default());
        assert_eq!(d.rate.map(|r| (r.count, r.per.as_secs())), Some((20, 1)));
        assert_eq!(d.burst, 20);
        let off = limit("  public_rate_per_client: \"off\"\n").unwrap();
        assert_eq!(off.rate, None);
        let set = limit(
            "  public_rate_per_client: 600/m\n  public_rate_burst: 30\n  public_trusted_proxies: [10.42.0.0/16, 192.168.1.7]\n  public_client_header: Forwarded\n",
        )
        .unwrap();
        assert_eq!(
            set.rate.map(|r| (r.count, r.per.as_secs())),
            Some((600, 60))
        );
        assert_eq!(set.burst, 30);
        assert_eq!(set.header, ClientHeader::Forwarded);
        assert_eq!(set.trusted_proxies.len(), 2);
        // Without a burst, the rate's count.
        assert_eq!(limit("  public_rate_per_client: 5/h\n").unwrap().burst, 5);
    }

    #[test]
    fn wrong_values_are_reported_where_they_are() {
        for (daemon, want) in [
            (
                "  public_rate_per_client: 20/d\n",
                "rules.yaml:3:27: `daemon.public_rate_per_client`: \"20/d\" is not a rate such as 20/s",
            ),
            (
                "  public_rate_per_client: 0/s\n",
                "a rate is at least 1 (or off)",
            ),
            (
                "  public_rate_burst: 0\n",
                "`daemon.public_rate_burst`: the burst must be at least 1",
            ),
            (
                "  public_rate_per_client: \"off\"\n  public_rate_burst: 5\n",
                "rules.yaml:4:22: `daemon.public_rate_burst`: a burst without a rate",
            ),
            (
                "  public_trusted_proxies: [10.0.0.300]\n",
                "`daemon.public_trusted_proxies`: \"10.0.0.300\" is not an address",
            ),
            (
                "  public_client_header: X-Real-IP\n",
                "\"x-real-ip\" is neither X-Forwarded-For nor Forwarded",
            ),
        ] {
            let e = limit(daemon).unwrap_err();
            assert!(e.contains(want), "{daemon}: {e}");
        }
    }
}
