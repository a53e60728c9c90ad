//! Notifications: Slack incoming webhooks and generic JSON webhooks, named under the rule
//! file's `notify` and referenced by rules.
//!
//! After each pass the daemon hands its results to [`Notifier::after_pass`], which turns
//! them into messages: a warning `warn_before_delete` ahead of a delete (with how to snooze
//! it), the delete itself, an action that failed [`NotifyOptions::failure_threshold`]
//! passes in a row (once, not every pass), and each target's optional daily digest.
//!
//! A notifier never holds an action up: messages are rendered in the pass and put on a
//! bounded queue with `try_send`; a full queue drops the message (counted as `dropped`).
//! A background task ([`Drain`]) empties the queue, a few deliveries at a time, each with
//! bounded retries and backoff. Target URLs come from the environment and are secrets: they
//! are never logged, put in an error or shown by `Debug`.

mod deliver;
mod digest;
mod message;
mod sign;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{Semaphore, mpsc, watch};

pub use deliver::{DELIVERY_HEADER, Endpoint, KIND_HEADER, SecretUrl};
pub use digest::{DIGEST_HORIZON, next_digest_after};
pub use message::{
    Digest, EnvironmentRef, Event, Kind, Message, Saved, UpcomingDelete, WEBHOOK_SCHEMA_VERSION,
    slack, snooze_command, snooze_path, text, webhook,
};
pub use sign::{SIGNATURE_HEADER, SigningKey, TIMESTAMP_HEADER, signature};

use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::metrics::{Metrics, NotificationResult};
use crate::platform::{Outcome, Snapshot};
use crate::policy::{Action, Decision, LedgerView};
use crate::policy::{RuleSet, Target};
use crate::reconcile::ActResult;
use deliver::{Courier, Delivery};

/// How notifications are queued and delivered.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// Messages waiting to be sent; past this, new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Deliveries in flight at once (a receiver that hangs holds one until its timeout).
    pub max_in_flight: usize,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Retries after the first attempt, for timeouts, connection errors, 429 and 5xx.
    pub retries: usize,
    /// First backoff between attempts; doubles each time (with jitter), at most 60 s.
    pub backoff: Duration,
    /// Consecutive failed passes of the same action on the same environment before one
    /// `failure` message is sent.
    pub failure_threshold: u32,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            queue_capacity: 256,
            max_in_flight: 4,
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_secs(1),
            failure_threshold: 3,
        }
    }
}

/// The notifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot build the notifications' HTTP client: {0}")]
    Client(String),
}

/// What one pass saw and did, as the notifier reads it.
pub struct PassFacts<'a> {
    pub rules: &'a RuleSet,
    pub snapshot: &'a Snapshot,
    /// The ledger's records after the pass.
    pub view: &'a LedgerView,
    pub decisions: &'a [Decision],
    /// What became of the decisions that called for an action, by index in `decisions`.
    pub acted: &'a [crate::reconcile::Acted],
    /// For the digest's savings (stop intervals), after the pass's accrual.
    pub ledger: &'a Ledger,
    pub now: DateTime<Utc>,
}

/// Turns pass results into messages and queues them. Clones share the queue and memory.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    queue: mpsc::Sender<Delivery>,
    /// Messages queued or being delivered.
    pending: Arc<watch::Sender<usize>>,
    metrics: Arc<Metrics>,
    /// The process environment, for `url_env` and `secret_env` (read once, at start).
    env: HashMap<String, String>,
    failure_threshold: u32,
    memory: Mutex<Memory>,
}

/// What passes remember for notifications (not worth the ledger: after a restart a failure
/// streak starts over, and the next digest is the next one due from then).
#[derive(Default)]
struct Memory {
    /// Consecutive failed passes by (environment id, action).
    failures: HashMap<(Arc<str>, Action), u32>,
    /// Next digest instant by target.
    digests: HashMap<String, DigestClock>,
}

struct DigestClock {
    at: NaiveTime,
    tz: Tz,
    next: DateTime<Utc>,
}

// By hand: the environment holds secrets.
impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("pending", &*self.inner.pending.borrow())
            .field("failure_threshold", &self.inner.failure_threshold)
            .finish_non_exhaustive()
    }
}

/// The background half of a notifier: empties its queue. Run it with [`Drain::run`] (or
/// let [`Notifier::start`] spawn it).
pub struct Drain {
    queue: mpsc::Receiver<Delivery>,
    courier: Courier,
    max_in_flight: usize,
    pending: Arc<watch::Sender<usize>>,
}

impl Notifier {
    /// A notifier and its drain, not yet running. `wall` dates the signatures (receivers
    /// compare them with their own clocks); `env` is where `url_env` and `secret_env` are
    /// looked up.
    pub fn new(
        options: NotifyOptions,
        metrics: Arc<Metrics>,
        wall: Arc<dyn Clock>,
        env: HashMap<String, String>,
    ) -> Result<(Notifier, Drain), NotifyError> {
        let courier = Courier::new(
            options.timeout,
            options.retries,
            options.backoff,
            metrics.clone(),
            wall,
        )
        .map_err(|e| NotifyError::Client(e.without_url().to_string()))?;
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let pending = Arc::new(watch::Sender::new(0usize));
        let notifier = Notifier {
            inner: Arc::new(Inner {
                queue: tx,
                pending: pending.clone(),
                metrics,
                env,
                failure_threshold: options.failure_threshold.max(1),
                memory: Mutex::new(Memory::default()),
            }),
        };
        let drain = Drain {
            queue: rx,
            courier,
            max_in_flight: options.max_in_flight.max(1),
            pending,
        };
        Ok((notifier, drain))
    }

    /// [`Notifier::new`], with the drain spawned on the current Tokio runtime.
    pub fn start(
        options: NotifyOptions,
        metrics: Arc<Metrics>,
        wall: Arc<dyn Clock>,
        env: HashMap<String, String>,
    ) -> Result<Notifier, NotifyError> {
        let (notifier, drain) = Notifier::new(options, metrics, wall, env)?;
        tokio::spawn(drain.run());
        Ok(notifier)
    }

    /// Waits until every queued message has been delivered or given up on (tests, and a
    /// graceful shutdown under a timeout).
    pub async fn settled(&self) {
        let mut rx = self.inner.pending.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot see it closed.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Targets whose URL or key cannot be read, with what is wrong (never the URL): to log
    /// at start and after a reload.
    pub fn check(&self, rules: &RuleSet) -> Vec<(String, String)> {
        rules
            .notify
            .values()
            .filter_map(|t| self.endpoint(t).err().map(|e| (t.name.clone(), e)))
            .collect()
    }

    /// Turns a pass's results into messages and queues them. Returns when the next digest
    /// is due, for the daemon to wake then. Never waits for a delivery.
    pub fn after_pass(&self, f: &PassFacts<'_>) -> Option<DateTime<Utc>> {
        let mut outgoing: Vec<(&Target, Message)> = Vec::new();
        let next_digest = {
            let mut memory = self
                .inner
                .memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.action_messages(&mut memory, f, &mut outgoing);
            self.digests(&mut memory, f, &mut outgoing)
        };
        for (target, message) in outgoing {
            self.send(target, message);
        }
        next_digest
    }

    /// Warnings, deletes and failure streaks.
    fn action_messages<'r>(
        &self,
        memory: &mut Memory,
        f: &PassFacts<'r>,
        outgoing: &mut Vec<(&'r Target, Message)>,
    ) {
        for (d, result) in crate::reconcile::acted(f.decisions, f.acted) {
            let d = &*d;
            let key = (d.environment_id.clone(), d.action);
            let event = match result {
                ActResult::Done(outcome) => {
                    memory.failures.remove(&key);
                    match d.action {
                        Action::Warn => Some(Event::DeleteWarning {
                            environment: environment_ref(d),
                            rule: d.rule.clone().unwrap_or_default(),
                            reason: d.reason.clone(),
                            delete_at: d.next_check.unwrap_or(f.now),
                        }),
                        // Gone: somebody else deleted it first.
                        Action::Delete if *outcome != Outcome::Gone => Some(Event::Deleted {
                            environment: environment_ref(d),
                            rule: d.rule.clone().unwrap_or_default(),
                            reason: d.reason.clone(),
                        }),
                        _ => None,
                    }
                }
                ActResult::Failed(error) => {
                    let streak = memory.failures.entry(key).or_insert(0);
                    *streak += 1;
                    (*streak == self.inner.failure_threshold).then(|| Event::Failure {
                        environment: environment_ref(d),
                        rule: d.rule.clone().unwrap_or_default(),
                        action: d.action,
                        failures: *streak,
                        error: error.clone(),
                    })
                }
                _ => None,
            };
            let (Some(event), Some(rule)) =
                (event, d.rule.as_deref().and_then(|r| f.rules.rule(r)))
            else {
                continue;
            };
            for target in rule.notify.iter().filter_map(|n| f.rules.notify.get(n)) {
                outgoing.push((
                    target,
                    Message {
                        id: message_id(),
                        at: f.now,
                        timezone: rule.timezone,
                        event: event.clone(),
                    },
                ));
            }
        }
        // A streak ends when its action is no longer due (it succeeded, or the reason for
        // it went away).
        let due: HashSet<(&str, Action)> = f
            .decisions
            .iter()
            .flat_map(|d| d.actions().map(|a| (d.environment_id.as_ref(), a)))
            .collect();
        memory
            .failures
            .retain(|(id, action), _| due.contains(&(id.as_ref(), *action)));
    }

    /// Digests due at this pass; returns the next digest instant over all targets.
    fn digests<'r>(
        &self,
        memory: &mut Memory,
        f: &PassFacts<'r>,
        outgoing: &mut Vec<(&'r Target, Message)>,
    ) -> Option<DateTime<Utc>> {
        let now = f.now;
        let mut due: Vec<(&Target, Tz)> = Vec::new();
        let mut next: Option<DateTime<Utc>> = None;
        for target in f.rules.notify.values() {
            let Some(at) = target.digest_at else {
                continue;
            };
            let tz = target.digest_timezone.unwrap_or(f.rules.timezone);
            let clock = memory
                .digests
                .entry(target.name.clone())
                .or_insert_with(|| DigestClock {
                    at,
                    tz,
                    next: next_digest_after(at, tz, now),
                });
            // A new time or zone (a reload) counts from now: nothing is sent late.
            if clock.at != at || clock.tz != tz {
                *clock = DigestClock {
                    at,
                    tz,
                    next: next_digest_after(at, tz, now),
                };
            }
            if now >= clock.next {
                due.push((target, tz));
                clock.next = next_digest_after(at, tz, now);
            }
            next = Some(next.map_or(clock.next, |n| n.min(clock.next)));
        }
        memory.digests.retain(|name, _| {
            f.rules
                .notify
                .get(name)
                .is_some_and(|t| t.digest_at.is_some())
        });
        if due.is_empty() {
            return next;
        }
        let since = due
            .iter()
            .map(|(_, tz)| digest::needs_stops_since(*tz, now))
            .min()
            .unwrap_or(now);
        let stops = match f.ledger.stop_intervals_since(since) {
            Ok(stops) => stops,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the ledger for the daily digest; skipped today");
                for (target, _) in &due {
                    self.inner.metrics.notification(
                        &target.name,
                        Kind::Digest.as_str(),
                        NotificationResult::Error,
                    );
                }
                return next;
            }
        };
        let upcoming = digest::upcoming_deletes(f.rules, f.snapshot, f.view, now, DIGEST_HORIZON);
        let fleet = digest::Fleet {
            rules: f.rules,
            snapshot: f.snapshot,
            view: f.view,
            decisions: f.decisions,
            stops: &stops,
            upcoming: &upcoming,
        };
        for (target, tz) in due {
            let scope = digest::scope(f.rules, &target.name);
            let d = digest::digest(&fleet, &scope, tz, now);
            outgoing.push((
                target,
                Message {
                    id: message_id(),
                    at: now,
                    timezone: tz,
                    event: Event::Digest(d),
                },
            ));
        }
        next
    }

    /// Renders `message` for `target` and queues it; never waits. A message that cannot be
    /// queued (full queue) or addressed (no URL) is counted and logged, and that is all.
    pub fn send(&self, target: &Target, message: Message) {
        let kind = message.kind();
        let count = |result| {
            self.inner
                .metrics
                .notification(&target.name, kind.as_str(), result)
        };
        let endpoint = match self.endpoint(target) {
            Ok(e) => e,
            Err(problem) => {
                count(NotificationResult::Error);
                tracing::warn!(target_name = %target.name, kind = kind.as_str(), %problem, "notification not sent");
                return;
            }
        };
        let body = if target.slack {
            message::slack(&message)
        } else {
            message::webhook(&message)
        };
        let delivery = Delivery {
            target: target.name.clone(),
            kind,
            id: message.id,
            endpoint,
            body: body.to_string().into_bytes(),
        };
        self.inner.pending.send_modify(|n| *n += 1);
        if let Err(e) = self.inner.queue.try_send(delivery) {
            self.inner.pending.send_modify(|n| *n = n.saturating_sub(1));
            count(NotificationResult::Dropped);
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the notification queue is full",
                mpsc::error::TrySendError::Closed(_) => "notifications are shutting down",
            };
            tracing::warn!(target_name = %target.name, kind = kind.as_str(), "notification dropped: {why}");
        }
    }

    /// Where `target`'s messages go. The error names the variable, never its value.
    fn endpoint(&self, target: &Target) -> Result<Endpoint, String> {
        let read = |var: &str, field: &str| {
            self.inner
                .env
                .get(var)
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .ok_or_else(|| format!("environment variable {var} ({field}) is not set"))
        };
        let url = match (&target.url, &target.url_env) {
            (Some(url), _) => SecretUrl::parse(url).map_err(|why| format!("its url {why}"))?,
            (None, Some(var)) => SecretUrl::parse(&read(var, "url_env")?)
                .map_err(|why| format!("the value of {var} (url_env) {why}"))?,
            (None, None) => return Err("it has neither url nor url_env".into()),
        };
        let key = match &target.secret_env {
            // Asked to sign: never send unsigned.
            Some(var) => Some(SigningKey::new(read(var, "secret_env")?.into_bytes())),
            None => None,
        };
        Ok(Endpoint { url, key })
    }
}

impl Drain {
    /// Delivers queued messages, at most `max_in_flight` at once, until every [`Notifier`]
    /// clone is dropped.
    pub async fn run(self) {
        let limit = Arc::new(Semaphore::new(self.max_in_flight));
        let courier = Arc::new(self.courier);
        let mut queue = self.queue;
        loop {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let Some(delivery) = queue.recv().await else {
                break;
            };
            let courier = courier.clone();
            let pending = self.pending.clone();
            tokio::spawn(async move {
                courier.deliver(delivery).await;
                drop(permit);
                pending.send_modify(|n| *n = n.saturating_sub(1));
            });
        }
    }
}

fn environment_ref(d: &Decision) -> EnvironmentRef {
    EnvironmentRef {
        id: d.environment_id.clone(),
        name: d.environment.clone(),
        project: d.project.clone(),
        state: d.state,
    }
}

/// 128 random bits, in hex.
fn message_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod receiver_tests;
#[cfg(test)]
mod tests;
