//! Who may act: one curfew replica at a time, elected on a Kubernetes Lease.
//!
//! The algorithm is client-go's (`tools/leaderelection`), on `coordination.k8s.io/v1` Leases
//! through kube's typed API:
//!
//! - a candidate takes the Lease when it is free (no holder), or when its record has not
//!   changed for the record's `leaseDurationSeconds`, measured on the candidate's own
//!   monotonic clock from when it first received that record, after the answer as client-go
//!   stamps it (so clock skew between nodes does not matter, and a slow answer does not
//!   make a fresh record look old);
//! - the holder renews every `retry_period`; every write carries the Lease's
//!   resourceVersion, so of two candidates racing for it one gets 409 Conflict;
//! - the holder counts itself the leader only until `renew_deadline` after the start of its
//!   last successful renewal. The deadline is shorter than the lease duration, so a leader
//!   that cannot renew (API unreachable, process stalled) stops acting before any other
//!   replica may take over;
//! - each Lease request gives up after `request_timeout` (a renewal stuck behind a slow API
//!   server must not outlive the deadline), and the adapter gives each write at most the
//!   time left as leader ([`Leader::time_left`]), which the API server holds it to as well.
//!
//! Why not the kube-lease-manager crate: its watch loop keeps reporting leadership while
//! renewals fail, and it measures expiry with `SystemTime`, which no test can move; curfew
//! needs "stop acting at the deadline" and a test of a leader losing the lease mid-pass.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;

/// Whether this replica may act. The Kubernetes adapter asks before every write; the
/// daemon may ask before a pass.
pub trait Leader: Send + Sync {
    /// How long this replica may still act: None without an election (no limit), zero
    /// once it does not hold the lease.
    fn time_left(&self) -> Option<Duration>;

    /// True while this replica holds the lease (or when there is no election).
    fn is_leader(&self) -> bool {
        self.time_left().is_none_or(|left| !left.is_zero())
    }
}

/// No election: one replica, always allowed to act.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl Leader for Alone {
    fn time_left(&self) -> Option<Duration> {
        None
    }
}

/// Where the Lease is and how long it lasts.
#[derive(Debug, Clone)]
pub struct ElectionOptions {
    /// Namespace of the Lease (curfew's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity in the Lease (`holderIdentity`): pod name and a random part.
    pub identity: String,
    /// How long a lease lasts without renewal before others may take it (client-go: 15 s).
    pub lease_duration: Duration,
    /// How long the holder goes on acting without a successful renewal (client-go: 10 s).
    pub renew_deadline: Duration,
    /// Time between two attempts to take or renew the lease (client-go: 2 s).
    pub retry_period: Duration,
    /// How long one Lease request may take (2 s): a round is at most two requests, well
    /// within the renew deadline.
    pub request_timeout: Duration,
}

impl ElectionOptions {
    /// client-go's defaults (15 s, 10 s, 2 s) for a Lease and an identity.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        ElectionOptions {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
        }
    }
}

/// A Lease record as last seen, and when this replica first saw it.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    duration: Option<i32>,
    transitions: i32,
    acquired: Option<MicroTime>,
    seen_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Leader until this instant (start of the last successful renewal + renew deadline).
    leading_until: Option<Instant>,
    observed: Option<Observed>,
}

/// Leader election on a Lease. Clones share one state; it is a [`Leader`].
#[derive(Clone)]
pub struct Election {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api<Lease>,
    options: ElectionOptions,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    changes: watch::Sender<bool>,
}

impl Leader for Election {
    fn time_left(&self) -> Option<Duration> {
        let until = self.state().leading_until;
        Some(until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        }))
    }
}

/// A failed Lease request, for the log.
#[derive(Debug, thiserror::Error)]
#[error("lease {lease}: {message}")]
pub struct ElectionError {
    lease: String,
    message: String,
}

impl Election {
    pub fn new(client: kube::Client, options: ElectionOptions, clock: Arc<dyn Clock>) -> Self {
        let api = Api::namespaced(client, &options.namespace);
        Election {
            inner: Arc::new(Inner {
                api,
                options,
                clock,
                state: Mutex::new(State::default()),
                changes: watch::channel(false).0,
            }),
        }
    }

    pub fn options(&self) -> &ElectionOptions {
        &self.inner.options
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One Lease request, given up after `request_timeout`.
    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        let limit = self.inner.options.request_timeout;
        tokio::time::timeout(limit, request)
            .await
            .unwrap_or_else(|_| {
                Err(kube::Error::Service(
                    format!("no answer within {limit:?}").into(),
                ))
            })
    }

    fn lease_name(&self) -> String {
        format!(
            "{}/{}",
            self.inner.options.namespace, self.inner.options.name
        )
    }

    fn error(&self, e: kube::Error) -> ElectionError {
        ElectionError {
            lease: self.lease_name(),
            message: match e {
                kube::Error::Api(s) => format!("{} {}", s.code, s.message),
                other => other.to_string(),
            },
        }
    }

    /// One round: takes or renews the lease if this replica may. Returns whether it leads
    /// afterwards. A failed request leaves leadership to run out at its deadline.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, ElectionError> {
        let started = Instant::now();
        let result = self.round(started).await;
        let leading = self.is_leader();
        self.inner.changes.send_if_modified(|was| {
            let changed = *was != leading;
            *was = leading;
            changed
        });
        result.map(|()| leading)
    }

    async fn round(&self, started: Instant) -> Result<(), ElectionError> {
        let options = &self.inner.options;
        let now = self.inner.clock.now();
        let Some(lease) = self
            .bounded(self.inner.api.get_opt(&options.name))
            .await
            .map_err(|e| self.error(e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(options.name.clone()),
                    namespace: Some(options.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec_as_holder(now, None)),
            };
            let created = self
                .bounded(self.inner.api.create(&PostParams::default(), &lease))
                .await;
            return match created {
                Ok(_) => {
                    self.now_leading(started);
                    Ok(())
                }
                // Another candidate created it first: it leads; this one observes next round.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(self.error(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let me = options.identity.as_str();
        let held_by_me = spec.holder_identity.as_deref() == Some(me);
        let expired = self.observe(&spec, held_by_me, started);
        if !held_by_me && !expired {
            return Ok(());
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!held_by_me);
        let acquired = if held_by_me {
            spec.acquire_time.clone()
        } else {
            None
        };
        let mut next = lease.clone();
        next.spec = Some(LeaseSpec {
            lease_transitions: Some(transitions),
            ..self.spec_as_holder(now, acquired)
        });
        // The resourceVersion read above makes this a compare-and-swap: 409 if it moved.
        let written = self
            .bounded(
                self.inner
                    .api
                    .replace(&options.name, &PostParams::default(), &next),
            )
            .await;
        match written {
            Ok(_) => {
                if !held_by_me {
                    tracing::info!(lease = %options.name, identity = %me, "took the lease: this replica leads");
                }
                self.now_leading(started);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Someone else wrote it in between: they lead.
                self.state().leading_until = None;
                Ok(())
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records the Lease as this replica now sees it, and says whether another replica's
    /// hold on it has run out (free, or unchanged for its duration since first seen).
    fn observe(&self, spec: &LeaseSpec, held_by_me: bool, started: Instant) -> bool {
        let mut state = self.state();
        let fresh = Observed {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.clone(),
            duration: spec.lease_duration_seconds,
            transitions: spec.lease_transitions.unwrap_or(0),
            acquired: spec.acquire_time.clone(),
            // When the answer arrived, not when it was asked for: a slow answer shows the
            // record as it was then, and its lease runs from no earlier.
            seen_at: Instant::now(),
        };
        let same = state.observed.as_ref().is_some_and(|o| {
            (&o.holder, &o.renew_time, o.duration)
                == (&fresh.holder, &fresh.renew_time, fresh.duration)
        });
        if !same {
            state.observed = Some(fresh);
        }
        let observed = state.observed.as_ref();
        let free = observed.is_none_or(|o| o.holder.is_none());
        let duration = observed
            .and_then(|o| o.duration)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.inner.options.lease_duration, Duration::from_secs);
        let lapsed = observed.is_some_and(|o| o.seen_at + duration <= started);
        if !held_by_me {
            // Someone else holds it (or it is free): this replica is not the leader.
            state.leading_until = None;
        }
        free || lapsed
    }

    fn spec_as_holder(&self, now: DateTime<Utc>, acquired: Option<MicroTime>) -> LeaseSpec {
        let options = &self.inner.options;
        let stamp = micro_time(now);
        LeaseSpec {
            holder_identity: Some(options.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(options.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or_else(|| stamp.clone())),
            renew_time: Some(stamp),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }
    }

    fn now_leading(&self, started: Instant) {
        let mut state = self.state();
        state.leading_until = Some(started + self.inner.options.renew_deadline);
        state.observed = None;
    }

    /// Takes and renews the lease every `retry_period` until `stop` turns true, then gives
    /// it up (so a standby takes over at once rather than after the lease duration).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let period = self.inner.options.retry_period;
        loop {
            if let Err(e) = self.try_acquire_or_renew().await {
                tracing::warn!(error = %e, leading = self.is_leader(), "lease request failed");
            }
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        self.release().await;
    }

    /// Gives the lease up if this replica holds it. Best effort: a failure is logged.
    pub async fn release(&self) {
        let was_leading = self.state().leading_until.take().is_some();
        self.inner.changes.send_replace(false);
        if !was_leading {
            return;
        }
        let options = &self.inner.options;
        let result = async {
            let Some(mut lease) = self.bounded(self.inner.api.get_opt(&options.name)).await? else {
                return Ok(());
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(options.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(micro_time(self.inner.clock.now()));
            self.bounded(
                self.inner
                    .api
                    .replace(&options.name, &PostParams::default(), &lease),
            )
            .await
            .map(|_| ())
        }
        .await;
        match result {
            Ok(()) => tracing::info!(lease = %options.name, "gave up the lease"),
            Err(e) => {
                tracing::warn!(error = %self.error(e), "could not give up the lease; it runs out by itself")
            }
        }
    }

    /// Waits until this replica leads; false if `stop` turned true first.
    pub async fn wait_to_lead(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut changes = self.inner.changes.subscribe();
        let stopped = async {
            // A dropped sender never says stop.
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            led = changes.wait_for(|l| *l) => led.is_ok(),
            () = stopped => false,
        }
    }

    /// Completes as soon as this replica does not lead (at once if it does not now).
    pub async fn until_not_leading(&self) {
        let mut changes = self.inner.changes.subscribe();
        if changes.wait_for(|l| !*l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A Kubernetes MicroTime from a chrono instant.
pub(super) fn micro_time(t: DateTime<Utc>) -> MicroTime {
    MicroTime(to_jiff(t))
}

pub(super) fn to_jiff(t: DateTime<Utc>) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

pub(super) fn from_jiff(t: k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}
