//! Which environment a request's host names: a swapped Ingress or HTTPRoute forwards every
//! path of a sleeping preview's host to the public port, so the port maps the `Host` of a
//! request (and its path, for links that have one) to the environment whose link it is.
//!
//! The map is made from the platform's links of the environments in the daemon's last
//! pass that are not running (the ones a request may find asleep), and made again at most
//! once per pass, only when a request's host is not in it. A host several environments
//! share at the same path names none of them.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::platform::{EnvState, Mode};
use crate::reconcile::Daemon;

/// The longest `Host` read from a request (a DNS name is at most 253 bytes, and a port).
pub(super) const MAX_HOST: usize = 260;
/// Environments whose links are asked for in one refresh, at most.
const MAX_LINKED: usize = 2_000;
/// Links asked for at once.
const CONCURRENCY: usize = 8;

/// One link of an environment: where it is (`scheme://host[:port]`, a path) and whose.
#[derive(Debug, Clone)]
struct Link {
    origin: Arc<str>,
    /// The link's path without its last `/` (empty for the host's root).
    path: Arc<str>,
    id: Arc<str>,
}

/// A request's environment, found by its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub id: Arc<str>,
    /// `scheme://host[:port]` of the environment's link: where the reader returns.
    pub origin: Arc<str>,
}

#[derive(Default)]
pub(super) struct Hosts {
    /// Links by lower-case `host[:port]`.
    map: RwLock<Arc<HashMap<String, Vec<Link>>>>,
    /// The pass the map was made from; one refresh at a time.
    made_from: tokio::sync::Mutex<Option<DateTime<Utc>>>,
}

impl Hosts {
    /// The environment whose link `host` and `path` are on, refreshing the map from the
    /// last pass first if the host is not in it.
    pub(super) async fn find(&self, daemon: &Daemon, host: &str, path: &str) -> Option<Found> {
        let host = host.to_ascii_lowercase();
        if let Some(found) = self.lookup(&host, path) {
            return Some(found);
        }
        self.refresh(daemon).await;
        self.lookup(&host, path)
    }

    fn lookup(&self, host: &str, path: &str) -> Option<Found> {
        let map = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let links = map.get(host).or_else(|| {
            // `pr-1.example.com:443` is `pr-1.example.com`'s link too.
            let (name, port) = host.rsplit_once(':')?;
            port.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            map.get(name)
        })?;
        let under = |l: &&Link| {
            path.strip_prefix(&*l.path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let longest = links.iter().filter(under).map(|l| l.path.len()).max()?;
        let mut best = links
            .iter()
            .filter(under)
            .filter(|l| l.path.len() == longest);
        let first = best.next()?;
        if best.any(|l| l.id != first.id) {
            return None;
        }
        Some(Found {
            id: first.id.clone(),
            origin: first.origin.clone(),
        })
    }

    /// Makes the map again from the last pass, unless it was made from that pass already.
    async fn refresh(&self, daemon: &Daemon) {
        let Some(pass) = daemon.last_pass() else {
            return;
        };
        let mut made_from = self.made_from.lock().await;
        if *made_from == Some(pass.at) {
            return;
        }
        let old = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut known: HashMap<&str, Vec<Link>> = HashMap::new();
        for link in old.values().flatten() {
            known.entry(&link.id).or_default().push(link.clone());
        }
        let envs = &pass.snapshot.environments;
        let asleep: Vec<Arc<str>> = envs
            .iter()
            .filter(|e| e.mode != Mode::Production)
            .filter(|e| !matches!(e.state, EnvState::Running | EnvState::Deleting))
            .map(|e| e.id.clone())
            .take(MAX_LINKED)
            .collect();
        let asked: Vec<(Arc<str>, Vec<String>)> = futures::stream::iter(asleep)
            .map(|id| async move {
                let links = daemon.links(&id).await.unwrap_or_else(|e| {
                    tracing::warn!(environment = %id, error = %e, "cannot read its links");
                    Vec::new()
                });
                (id, links)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut map: HashMap<String, Vec<Link>> = HashMap::new();
        let asked_ids: std::collections::HashSet<&str> =
            asked.iter().map(|(id, _)| &**id).collect();
        // An environment asked for now has the links it has now; one still listed but not
        // asked (it runs now) keeps those it had, as its routes may still come here.
        for e in envs.iter().filter(|e| !asked_ids.contains(&*e.id)) {
            for link in known.get(&*e.id).into_iter().flatten() {
                if let Some((_, authority)) = link.origin.split_once("://") {
                    map.entry(authority.to_string())
                        .or_default()
                        .push(link.clone());
                }
            }
        }
        for (id, urls) in &asked {
            for url in urls {
                let Ok(parsed) = reqwest::Url::parse(url) else {
                    continue;
                };
                let Some(host) = parsed.host_str() else {
                    continue;
                };
                let authority = match parsed.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                }
                .to_ascii_lowercase();
                let link = Link {
                    origin: format!("{}://{authority}", parsed.scheme()).into(),
                    path: parsed.path().trim_end_matches('/').into(),
                    id: id.clone(),
                };
                map.entry(authority).or_default().push(link);
            }
        }
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
        *made_from = Some(pass.at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(links: &[(&str, &str, &str)]) -> Hosts {
        let mut map: HashMap<String, Vec<Link>> = HashMap::new();
        for (authority, path, id) in links {
            map.entry(authority.to_string()).or_default().push(Link {
                origin: format!("https://{authority}").into(),
                path: (*path).into(),
                id: (*id).into(),
            });
        }
        Hosts {
            map: RwLock::new(Arc::new(map)),
            made_from: Default::default(),
        }
    }

    fn id(h: &Hosts, host: &str, path: &str) -> Option<String> {
        h.lookup(host, path).map(|f| f.id.to_string())
    }

    #[test]
    fn a_host_names_its_environment_with_or_without_its_port_and_the_longest_path_wins() {
        let h = hosts(&[
            ("pr-1.example.com", "", "e1"),
            ("shared.example.com", "/app/a", "ea"),
            ("shared.example.com", "/app/ab", "eab"),
        ]);
        assert_eq!(
            id(&h, "pr-1.example.com", "/orders/42").as_deref(),
            Some("e1")
        );
        assert_eq!(id(&h, "pr-1.example.com:443", "/").as_deref(), Some("e1"));
        assert_eq!(
            id(&h, "shared.example.com", "/app/a/x").as_deref(),
            Some("ea")
        );
        assert_eq!(
            id(&h, "shared.example.com", "/app/ab").as_deref(),
            Some("eab")
        );
        // `/app/abc` is under neither `/app/a` nor `/app/ab`.
        assert_eq!(id(&h, "shared.example.com", "/app/abc"), None);
        assert_eq!(id(&h, "pr-2.example.com", "/"), None);
        assert_eq!(id(&h, "pr-1.example.com:x", "/"), None);
    }

    #[test]
    fn a_host_two_environments_serve_on_at_the_same_path_names_neither() {
        let h = hosts(&[
            ("pr-1.example.com", "", "e1"),
            ("pr-1.example.com", "", "e2"),
        ]);
        assert_eq!(id(&h, "pr-1.example.com", "/"), None);
    }
}
