//! The watch cache: the chosen namespaces and everything a pass reads in them, kept by one
//! cluster-wide list and watch per kind, so that a pass makes no list request.
//!
//! Per kind (namespaces by the selector; Deployments, StatefulSets, CronJobs, pods; the
//! metadata of ReplicaSets and ControllerRevisions), a feed of its own, as the API
//! concepts page has clients do
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>):
//!
//! 1. list the whole cluster in pages ([`WATCH_PAGE`], then each page's `continue` token; a token
//!    that expired, 410, starts the list again), and keep what each object is as curfew
//!    reads it (a [`Workload`] with only the labels and annotations curfew reads, a pod's
//!    owner and requests), not the object: each object of a page is folded as it is
//!    read, so neither a page of whole objects nor whole objects between passes are kept;
//! 2. watch from the list's `resourceVersion`, with bookmarks (`allowWatchBookmarks`), each
//!    event and bookmark moving the version on; a watch the server ends (its
//!    `timeoutSeconds`, a dropped connection) starts again from the last version, without
//!    a list;
//! 3. when the server says the version is too old (410 Gone, as an answer or as an `ERROR`
//!    event), list again (step 1) and replace what the kind held.
//!
//! Failures wait (backon's exponential backoff, 1 s to 30 s) and try again: the cache keeps
//! what it had meanwhile. The cache has synced once each kind has listed once; until then a
//! pass waits, so `/readyz` (which needs a successful pass) is not ready before.
//!
//! What a pass reads from here is as fresh as the watch (about a second behind the API
//! server); curfew still reads a namespace and its objects afresh right before it acts on
//! them (`Kubernetes::act`), as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::core::Request;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny};
use tokio::task::AbortHandle;

use super::CallError;
use super::leader::from_jiff;
use super::namespace::Contents;
use super::pods::{self, Pod};
use super::workload::{Kind, Workload};

/// Page size of the cache's cluster-wide lists: 10,000 namespaces with 40,000 workloads
/// sync in about a hundred pages of the seven kinds (a page of 1,000 pods is about 2 MB of
/// JSON, read and dropped page by page).
pub(super) const WATCH_PAGE: u32 = 1000;

/// How long the API server keeps one watch open before it ends it (and curfew starts
/// another from the last version).
const WATCH_SECONDS: u32 = 290;

/// The kinds a pass reads, one feed each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Namespaces,
    Deployments,
    StatefulSets,
    CronJobs,
    ReplicaSets,
    Revisions,
    Pods,
}

const FEEDS: [Feed; 7] = [
    Feed::Namespaces,
    Feed::Deployments,
    Feed::StatefulSets,
    Feed::CronJobs,
    Feed::ReplicaSets,
    Feed::Revisions,
    Feed::Pods,
];

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Feed::Namespaces => "namespaces",
            Feed::Deployments => "deployments",
            Feed::StatefulSets => "statefulsets",
            Feed::CronJobs => "cronjobs",
            Feed::ReplicaSets => "replicasets",
            Feed::Revisions => "controllerrevisions",
            Feed::Pods => "pods",
        }
    }
}

/// One object as a pass reads it. Boxed, so that the maps' slots are small (110,000 of
/// them for 10,000 namespaces).
#[derive(Debug, Clone)]
enum Entry {
    Namespace(Box<Namespace>),
    Workload(Box<Workload>),
    /// A ReplicaSet or ControllerRevision: when it was made, and its controller
    /// (`Deployment/web`).
    Revision {
        created: Option<DateTime<Utc>>,
        controller: Option<Box<str>>,
    },
    Pod(Box<Pod>),
}

/// (namespace, or "" for a namespace; name). The namespace is shared by every object of
/// it (interned, see [`State::intern`]).
type Key = (Arc<str>, Box<str>);

/// An object of a feed as read: (namespace, name), its resourceVersion, what a pass reads
/// of it.
type Item = ((String, Box<str>), Option<String>, Entry);

#[derive(Default)]
struct State {
    /// Per feed (in the order of [`FEEDS`]), its objects by key.
    objects: [BTreeMap<Key, Entry>; 7],
    /// Feeds that have listed once.
    synced: [bool; 7],
    /// Each namespace's name once, shared by the keys of its objects.
    names: HashSet<Arc<str>>,
}

impl State {
    fn intern(&mut self, namespace: &str) -> Arc<str> {
        if let Some(name) = self.names.get(namespace) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(namespace);
        self.names.insert(name.clone());
        name
    }
}

/// The cache, shared by its feeds (which write it) and the passes (which read it).
pub(super) struct Cache {
    state: Mutex<State>,
    synced: tokio::sync::watch::Sender<usize>,
    /// One feed lists at a time: a page's text is held while it is read, and seven at
    /// once would make the first sync the daemon's peak of memory.
    listing: tokio::sync::Semaphore,
}

/// The feeds' tasks, ended when the adapter is dropped.
pub(super) struct Feeds(Vec<AbortHandle>);

impl Drop for Feeds {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What the feeds need to reach the API server.
#[derive(Clone)]
pub(super) struct Source {
    pub client: kube::Client,
    pub namespace_selector: String,
    pub timeout: Duration,
}

impl Cache {
    /// A cache and its running feeds.
    pub fn start(source: Source) -> (Arc<Cache>, Feeds) {
        let (synced, _) = tokio::sync::watch::channel(0);
        let cache = Arc::new(Cache {
            state: Mutex::new(State::default()),
            synced,
            listing: tokio::sync::Semaphore::new(1),
        });
        let tasks = FEEDS
            .iter()
            .map(|feed| {
                let (cache, source) = (cache.clone(), source.clone());
                tokio::spawn(run(cache, source, *feed)).abort_handle()
            })
            .collect();
        (cache, Feeds(tasks))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every kind has listed once.
    pub async fn synced(&self) {
        let mut seen = self.synced.subscribe();
        // The sender lives as long as the cache: waiting cannot fail while it is borrowed.
        let _ = seen.wait_for(|n| *n >= FEEDS.len()).await;
    }

    /// Replaces what a feed held by a fresh list.
    fn replace(&self, feed: Feed, items: Vec<Item>) {
        let mut state = self.state();
        let i = feed as usize;
        state.objects[i] = BTreeMap::new();
        let objects: BTreeMap<Key, Entry> = items
            .into_iter()
            .map(|((ns, name), _, e)| ((state.intern(&ns), name), e))
            .collect();
        state.objects[i] = objects;
        // Names no object holds any more (namespaces gone) are forgotten.
        state.names.retain(|n| Arc::strong_count(n) > 1);
        if !state.synced[i] {
            state.synced[i] = true;
            let count = state.synced.iter().filter(|s| **s).count();
            self.synced.send_replace(count);
        }
    }

    fn apply(&self, feed: Feed, item: Item, deleted: bool) {
        let mut state = self.state();
        let ((ns, name), _, entry) = item;
        let key = (state.intern(&ns), name);
        let objects = &mut state.objects[feed as usize];
        if deleted {
            objects.remove(&key);
        } else {
            objects.insert(key, entry);
        }
    }

    /// Hands `each` the chosen namespaces (by name) one at a time, each with what runs in
    /// it (a namespace being deleted with only its pods: what it still costs). What runs
    /// in one namespace is made for it and dropped before the next: a pass over 10,000
    /// namespaces never holds a copy of the whole cache beside it.
    pub fn visit(&self, chosen: impl Fn(&str) -> bool, mut each: impl FnMut(&Namespace, Contents)) {
        let state = self.state();
        let objects = &state.objects;
        let namespaces = objects[Feed::Namespaces as usize]
            .iter()
            .filter_map(|(key, e)| match e {
                Entry::Namespace(ns) => Some((&key.1, ns)),
                _ => None,
            });
        for (name, ns) in namespaces.filter(|(name, _)| chosen(name)) {
            // Its objects are keyed by the interned name; a namespace holding none has none.
            let owned: Arc<str>;
            let name = match state.names.get(&**name) {
                Some(interned) => interned,
                None => {
                    owned = Arc::from(&**name);
                    &owned
                }
            };
            let pods =
                in_namespace(&objects[Feed::Pods as usize], name).filter_map(|(_, e)| match e {
                    Entry::Pod(p) => Some(&**p),
                    _ => None,
                });
            if super::terminating(ns) {
                let pods = pods::classify(pods, &[], &HashMap::<&str, &str>::new());
                each(
                    ns,
                    Contents {
                        pods,
                        ..Contents::default()
                    },
                );
                continue;
            }
            let workloads: Vec<Workload> = [Feed::Deployments, Feed::StatefulSets, Feed::CronJobs]
                .into_iter()
                .flat_map(|feed| in_namespace(&objects[feed as usize], name))
                .filter_map(|(_, e)| match e {
                    Entry::Workload(w) => Some((**w).clone()),
                    _ => None,
                })
                .collect();
            let revisions = |feed: Feed| {
                in_namespace(&objects[feed as usize], name).filter_map(|(name, e)| match e {
                    Entry::Revision {
                        created,
                        controller,
                    } => Some((name, created, controller)),
                    _ => None,
                })
            };
            let mut last_rollout = revisions(Feed::ReplicaSets)
                .filter_map(|(_, c, _)| *c)
                .max();
            // As a listing does: StatefulSets roll out through ControllerRevisions.
            if workloads.iter().any(|w| w.kind == Kind::StatefulSet) {
                last_rollout =
                    last_rollout.max(revisions(Feed::Revisions).filter_map(|(_, c, _)| *c).max());
            }
            let replica_sets: HashMap<&str, &str> = revisions(Feed::ReplicaSets)
                .filter_map(|(rs, _, c)| Some((&**rs, c.as_deref()?)))
                .collect();
            let pods = pods::classify(pods, &workloads, &replica_sets);
            each(
                ns,
                Contents {
                    workloads,
                    last_rollout,
                    pods,
                },
            );
        }
    }
}

/// A namespace's objects of a kind, by name.
fn in_namespace<'a>(
    objects: &'a BTreeMap<Key, Entry>,
    ns: &'a Arc<str>,
) -> impl Iterator<Item = (&'a Box<str>, &'a Entry)> + 'a {
    objects
        .range((ns.clone(), Box::<str>::from(""))..)
        .take_while(move |((n, _), _)| n == ns)
        .map(|((_, name), e)| (name, e))
}

/// When a ReplicaSet or ControllerRevision was made, and its controller (`Deployment/web`).
pub(super) fn revision(metadata: &ObjectMeta) -> (Option<DateTime<Utc>>, Option<String>) {
    let created = metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| from_jiff(t.0));
    let controller = metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name));
    (created, controller)
}

fn key_of(metadata: &ObjectMeta) -> ((String, Box<str>), Option<String>) {
    (
        (
            metadata.namespace.clone().unwrap_or_default(),
            metadata.name.as_deref().unwrap_or_default().into(),
        ),
        metadata.resource_version.clone(),
    )
}

/// What `kubectl apply` leaves on an object: a copy of the whole manifest, often the
/// biggest part of it, which no pass reads.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn namespace_item(ns: Namespace) -> Item {
    let (key, version) = key_of(&ns.metadata);
    // What a pass reads of a namespace (its labels all: rules match on any), not its
    // managedFields, spec or other status.
    let mut annotations = ns.metadata.annotations;
    if let Some(a) = annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    let slim = Namespace {
        metadata: ObjectMeta {
            name: ns.metadata.name,
            creation_timestamp: ns.metadata.creation_timestamp,
            deletion_timestamp: ns.metadata.deletion_timestamp,
            labels: ns.metadata.labels,
            annotations,
            ..ObjectMeta::default()
        },
        status: ns.status.map(|s| NamespaceStatus {
            phase: s.phase,
            conditions: s.conditions,
        }),
        ..Namespace::default()
    };
    (key, version, Entry::Namespace(Box::new(slim)))
}

fn workload_item(metadata: &ObjectMeta, workload: Workload) -> Item {
    let (key, version) = key_of(metadata);
    (key, version, Entry::Workload(Box::new(workload.slim())))
}

fn revision_item<K>(object: PartialObjectMeta<K>) -> Item {
    let (key, version) = key_of(&object.metadata);
    let (created, controller) = revision(&object.metadata);
    (
        key,
        version,
        Entry::Revision {
            created,
            controller: controller.map(String::into_boxed_str),
        },
    )
}

fn pod_item(pod: Pod) -> Item {
    let (namespace, name, version) = pod.key();
    let key = (namespace.to_string(), name.into());
    let version = version.map(str::to_string);
    (key, version, Entry::Pod(Box::new(pod.without_key())))
}

/// One feed, for as long as the adapter lives.
async fn run(cache: Arc<Cache>, source: Source, feed: Feed) {
    match feed {
        Feed::Namespaces => {
            let selector = Some(source.namespace_selector.clone());
            keep::<Namespace>(
                &cache,
                &source,
                feed,
                path::<Namespace>(),
                selector,
                false,
                namespace_item,
            )
            .await
        }
        Feed::Deployments => {
            keep::<Deployment>(
                &cache,
                &source,
                feed,
                path::<Deployment>(),
                None,
                false,
                |d| workload_item(&d.metadata, Workload::from_deployment(&d)),
            )
            .await
        }
        Feed::StatefulSets => {
            keep::<StatefulSet>(
                &cache,
                &source,
                feed,
                path::<StatefulSet>(),
                None,
                false,
                |s| workload_item(&s.metadata, Workload::from_stateful_set(&s)),
            )
            .await
        }
        Feed::CronJobs => {
            keep::<CronJob>(&cache, &source, feed, path::<CronJob>(), None, false, |c| {
                workload_item(&c.metadata, Workload::from_cron_job(&c))
            })
            .await
        }
        Feed::ReplicaSets => {
            keep::<PartialObjectMeta<ReplicaSet>>(
                &cache,
                &source,
                feed,
                path::<ReplicaSet>(),
                None,
                true,
                revision_item,
            )
            .await
        }
        Feed::Revisions => {
            keep::<PartialObjectMeta<ControllerRevision>>(
                &cache,
                &source,
                feed,
                path::<ControllerRevision>(),
                None,
                true,
                revision_item,
            )
            .await
        }
        Feed::Pods => {
            keep::<Pod>(
                &cache,
                &source,
                feed,
                path::<k8s_openapi::api::core::v1::Pod>(),
                None,
                false,
                pod_item,
            )
            .await
        }
    }
}

/// The cluster-wide path of a kind.
fn path<K: kube::Resource>() -> String
where
    K::DynamicType: Default,
{
    K::url_path(&K::DynamicType::default(), None)
}

/// Why a feed lists again, or waits before it goes on.
enum Ended {
    /// The version is too old (410 Gone): list again.
    Gone,
    /// Anything else: wait, then watch again from the last version.
    Failed(CallError),
    /// The server ended the watch: watch again at once.
    Closed,
}

/// List, then watch for as long as the version lasts; list again after 410 Gone.
#[allow(clippy::too_many_arguments)]
async fn keep<K>(
    cache: &Cache,
    source: &Source,
    feed: Feed,
    path: String,
    selector: Option<String>,
    metadata_only: bool,
    item: fn(K) -> Item,
) where
    K: DeserializeOwned + Clone + Send + 'static,
{
    let backoff = || {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(30))
            .without_max_times()
            .build()
    };
    let mut delays = backoff();
    loop {
        let listed = {
            // The semaphore is never closed: acquiring cannot fail.
            let _turn = cache.listing.acquire().await;
            list::<K>(source, &path, selector.as_deref(), metadata_only, item).await
        };
        let mut version = match listed {
            Ok((items, version)) => {
                tracing::debug!(kind = feed.name(), objects = items.len(), version = %version, "listed for the watch cache");
                cache.replace(feed, items);
                // The pages' text and what the kind held before are gone: their memory
                // goes back to the system rather than staying in the allocator.
                crate::memory::release_free();
                delays = backoff();
                version
            }
            Err(e) => {
                let wait = delays.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(kind = feed.name(), error = %e, wait_s = wait.as_secs(), "cannot list for the watch cache; trying again");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        loop {
            match watch::<K>(
                cache,
                source,
                feed,
                &path,
                selector.as_deref(),
                metadata_only,
                item,
                &mut version,
            )
            .await
            {
                Ended::Gone => {
                    tracing::info!(
                        kind = feed.name(),
                        "the watch's version is too old (410 Gone); listing again"
                    );
                    break;
                }
                Ended::Closed => {
                    // A server ends a watch after its `timeoutSeconds`; one that ends them
                    // at once (a proxy, say) is not asked again in a tight loop.
                    delays = backoff();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ended::Failed(e) => {
                    let wait = delays.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(kind = feed.name(), error = %e, wait_s = wait.as_secs(), "the watch failed; watching again");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Every page of a cluster-wide list, and the version it was taken at.
async fn list<K>(
    source: &Source,
    path: &str,
    selector: Option<&str>,
    metadata_only: bool,
    item: fn(K) -> Item,
) -> Result<(Vec<Item>, String), CallError>
where
    K: DeserializeOwned + Clone,
{
    let mut params = ListParams::default().limit(WATCH_PAGE);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let mut items = Vec::new();
    loop {
        let request = match metadata_only {
            true => Request::new(path).list_metadata(&params),
            false => Request::new(path).list(&params),
        }
        .map_err(|e| CallError::Other(e.to_string()))?;
        let text =
            match tokio::time::timeout(source.timeout, source.client.request_text(request)).await {
                Ok(answer) => answer.map_err(CallError::from_kube)?,
                Err(_) => return Err(CallError::Timeout),
            };
        // Each object is folded into what the cache keeps as soon as it is read: a page
        // of whole objects is never held.
        let mut reader = serde_json::Deserializer::from_str(&text);
        let metadata = Page {
            item,
            items: &mut items,
        }
        .deserialize(&mut reader)
        .and_then(|m| reader.end().map(|()| m))
        .map_err(|e| CallError::Other(format!("cannot read a page of {path}: {e}")))?;
        drop(text);
        let version = metadata.resource_version.unwrap_or_default();
        match metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((items, version)),
        }
    }
}

/// A page of a list, read with each item folded by `item` into `items`; its list metadata.
struct Page<'a, K> {
    item: fn(K) -> Item,
    items: &'a mut Vec<Item>,
}

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for Page<'_, K> {
    type Value = ListMeta;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<ListMeta, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, K: DeserializeOwned> de::Visitor<'de> for Page<'_, K> {
    type Value = ListMeta;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<ListMeta, A::Error> {
        let Page { item, items } = self;
        let mut metadata = ListMeta::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => metadata = map.next_value()?,
                "items" => map.next_value_seed(Items {
                    item,
                    items: &mut *items,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(metadata)
    }
}

/// A list's `items`, each folded as it is read.
struct Items<'a, K> {
    item: fn(K) -> Item,
    items: &'a mut Vec<Item>,
}

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for Items<'_, K> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: DeserializeOwned> de::Visitor<'de> for Items<'_, K> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list's items")
    }

    /// `"items": null`, as an empty list may be written.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Items { item, items } = self;
        while let Some(object) = seq.next_element::<K>()? {
            items.push(item(object));
        }
        Ok(())
    }
}

/// One watch from `version`, applying each event to the cache and moving `version` on.
#[allow(clippy::too_many_arguments)]
async fn watch<K>(
    cache: &Cache,
    source: &Source,
    feed: Feed,
    path: &str,
    selector: Option<&str>,
    metadata_only: bool,
    item: fn(K) -> Item,
    version: &mut String,
) -> Ended
where
    K: DeserializeOwned + Clone + Send + 'static,
{
    let params = WatchParams {
        label_selector: selector.map(str::to_string),
        timeout: Some(WATCH_SECONDS),
        bookmarks: true,
        ..WatchParams::default()
    };
    let request = match metadata_only {
        true => Request::new(path).watch_metadata(&params, version),
        false => Request::new(path).watch(&params, version),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return Ended::Failed(CallError::Other(e.to_string())),
    };
    let events = match tokio::time::timeout(
        source.timeout,
        source.client.request_events::<K>(request),
    )
    .await
    {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => {
            return match CallError::from_kube(e) {
                e if e.code() == Some(410) => Ended::Gone,
                e => Ended::Failed(e),
            };
        }
        Err(_) => return Ended::Failed(CallError::Timeout),
    };
    let mut events = std::pin::pin!(events);
    loop {
        match events.try_next().await {
            Ok(Some(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                let item = item(o);
                if let Some(v) = &item.1 {
                    version.clone_from(v);
                }
                cache.apply(feed, item, false);
            }
            Ok(Some(WatchEvent::Deleted(o))) => {
                let item = item(o);
                if let Some(v) = &item.1 {
                    version.clone_from(v);
                }
                cache.apply(feed, item, true);
            }
            Ok(Some(WatchEvent::Bookmark(b))) => {
                *version = b.metadata.resource_version;
            }
            Ok(Some(WatchEvent::Error(status))) if status.code == 410 => return Ended::Gone,
            Ok(Some(WatchEvent::Error(status))) => {
                return Ended::Failed(CallError::Status {
                    code: status.code,
                    message: status.message,
                });
            }
            Ok(None) => return Ended::Closed,
            Err(e) => return Ended::Failed(CallError::from_kube(e)),
        }
    }
}
