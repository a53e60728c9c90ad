//! Notifications: Slack incoming webhooks and generic JSON webhooks, named under the rule
//! file's `notify` and referenced by rules.
//!
//! The notifier hears each pass's report ([`crate::events::PassReport`]) and turns it into
//! messages: a warning `warn_before_delete` ahead of a delete (with how to snooze it), the
//! delete itself, and an action that failed [`NotifyOptions::failure_threshold`] passes in
//! a row (once, not every pass). Each target's optional daily digest is a job of its own
//! ([`digest::run`]), on the daemon's clock.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc, watch};

pub use deliver::{DELIVERY_HEADER, Endpoint, KIND_HEADER, SecretUrl};
pub use digest::{DIGEST_HORIZON, Digests, next_digest_after, run as run_digests};
pub use message::{
    Digest, EnvironmentRef, Event, Kind, Message, Saved, UpcomingDelete, WEBHOOK_SCHEMA_VERSION,
    slack, snooze_command, snooze_path, text, webhook,
};
pub use sign::{SIGNATURE_HEADER, SigningKey, TIMESTAMP_HEADER, signature};

use crate::clock::Clock;
use crate::events::{ActResult, Notification, PassListener, PassReport};
use crate::metrics::Metrics;
use crate::platform::{ActionLink, ActionLinks, NoticeKind, Outcome};
use crate::policy::{Action, RuleSet, Step, Target};
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

/// Why a target's messages cannot be sent: the variable named, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("environment variable {var} ({field}) is not set")]
    NotSet { var: String, field: &'static str },
    #[error("its url {0}")]
    Url(&'static str),
    #[error("the value of {var} (url_env) {why}")]
    UrlIn { var: String, why: &'static str },
    #[error("it has neither url nor url_env")]
    NoUrl,
}

/// The notifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot build the notifications' HTTP client: {0}")]
    Client(String),
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
    /// Makes the signed action links of warnings and digests, once set.
    links: std::sync::OnceLock<Arc<dyn ActionLinks>>,
}

/// What passes remember for notifications (not worth the ledger: after a restart a failure
/// streak starts over).
#[derive(Default)]
struct Memory {
    /// Consecutive failed passes by (environment id, action).
    failures: HashMap<(Arc<str>, Action), u32>,
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
                links: std::sync::OnceLock::new(),
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

    /// Has delete warnings and digests carry signed action links (keep, delay the delete),
    /// each made for the target it is sent to.
    pub fn set_links(&self, links: Arc<dyn ActionLinks>) {
        let _ = self.inner.links.set(links);
    }

    /// The links of `notice` about each of `environments`, for `target`.
    pub(super) fn links<'e>(
        &self,
        environments: impl IntoIterator<Item = &'e EnvironmentRef>,
        notice: NoticeKind,
        target: &str,
        now: DateTime<Utc>,
    ) -> BTreeMap<Arc<str>, Vec<ActionLink>> {
        let Some(links) = self.inner.links.get() else {
            return BTreeMap::new();
        };
        environments
            .into_iter()
            .map(|e| {
                let made = links.links(&e.id, e.mode, notice, target, now);
                (e.id.clone(), made)
            })
            .filter(|(_, l)| !l.is_empty())
            .collect()
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
            .filter_map(|t| {
                let e = self.endpoint(t).err()?;
                Some((t.name.clone(), e.to_string()))
            })
            .collect()
    }

    /// Warnings, deletes and failure streaks of one pass, each to the targets its rule
    /// names.
    fn action_messages<'r>(&self, report: &'r PassReport) -> Vec<(&'r Target, Message)> {
        let mut outgoing = Vec::new();
        let mut memory = self
            .inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (step, result) in report.acted() {
            let Some(event) = self.event(&mut memory, &step, result, report) else {
                continue;
            };
            let Some(rule) = report.rules.rule(&step.rule) else {
                continue;
            };
            for target in rule
                .notify
                .iter()
                .filter_map(|n| report.rules.notify.get(n))
            {
                let links = match &event {
                    Event::DeleteWarning { environment, .. } => self.links(
                        [environment],
                        NoticeKind::DeleteWarning,
                        &target.name,
                        report.at,
                    ),
                    _ => BTreeMap::new(),
                };
                outgoing.push((
                    target,
                    Message {
                        id: message_id(),
                        at: report.at,
                        timezone: rule.timezone,
                        event: event.clone(),
                        links,
                    },
                ));
            }
        }
        // A streak ends when its action is no longer due (it succeeded, or the reason for
        // it went away).
        let due: HashSet<(&str, Action)> = report
            .decisions
            .iter()
            .flat_map(|d| d.actions().map(|a| (d.environment_id.as_ref(), a)))
            .collect();
        memory
            .failures
            .retain(|(id, action), _| due.contains(&(id.as_ref(), *action)));
        outgoing
    }

    /// What one action of a pass tells people, if anything: a warning, a delete, or the
    /// failure that makes a streak.
    fn event(
        &self,
        memory: &mut Memory,
        step: &Step,
        result: &ActResult,
        report: &PassReport,
    ) -> Option<Event> {
        let key = (step.environment_id.clone(), step.action);
        match result {
            ActResult::Done(outcome) => {
                memory.failures.remove(&key);
                match step.action {
                    Action::Warn => Some(Event::DeleteWarning {
                        environment: environment_ref(step),
                        rule: step.rule.clone(),
                        reason: step.reason.clone(),
                        delete_at: step.delete_at.unwrap_or(report.at),
                    }),
                    // Gone: somebody else deleted it first.
                    Action::Delete if *outcome != Outcome::Gone => Some(Event::Deleted {
                        environment: environment_ref(step),
                        rule: step.rule.clone(),
                        reason: step.reason.clone(),
                    }),
                    _ => None,
                }
            }
            ActResult::Failed(error) => {
                let streak = memory.failures.entry(key).or_insert(0);
                *streak += 1;
                (*streak == self.inner.failure_threshold).then(|| Event::Failure {
                    environment: environment_ref(step),
                    rule: step.rule.clone(),
                    action: step.action,
                    failures: *streak,
                    error: error.clone(),
                })
            }
            _ => None,
        }
    }

    /// Renders `message` for `target` and queues it; never waits. A message that cannot be
    /// queued (full queue) or addressed (no URL) is counted and logged, and that is all.
    pub fn send(&self, target: &Target, message: Message) {
        let kind = message.kind();
        let endpoint = match self.endpoint(target) {
            Ok(e) => e,
            Err(problem) => {
                Notification::Unsendable {
                    target: &target.name,
                    kind: kind.as_str(),
                    problem: &problem.to_string(),
                }
                .emit(&*self.inner.metrics);
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
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the notification queue is full",
                mpsc::error::TrySendError::Closed(_) => "notifications are shutting down",
            };
            Notification::Dropped {
                target: &target.name,
                kind: kind.as_str(),
                why,
            }
            .emit(&*self.inner.metrics);
        }
    }

    /// Where `target`'s messages go. The error names the variable, never its value.
    fn endpoint(&self, target: &Target) -> Result<Endpoint, Unusable> {
        let read = |var: &str, field: &'static str| {
            self.inner
                .env
                .get(var)
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .ok_or_else(|| Unusable::NotSet {
                    var: var.to_string(),
                    field,
                })
        };
        let url = match (&target.url, &target.url_env) {
            (Some(url), _) => SecretUrl::parse(url).map_err(Unusable::Url)?,
            (None, Some(var)) => {
                SecretUrl::parse(&read(var, "url_env")?).map_err(|why| Unusable::UrlIn {
                    var: var.to_string(),
                    why,
                })?
            }
            (None, None) => return Err(Unusable::NoUrl),
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

impl PassListener for Notifier {
    /// Turns the pass's warnings, deletes and failure streaks into messages and queues
    /// them; never waits for a delivery.
    fn pass_done(&self, report: &PassReport) {
        for (target, message) in self.action_messages(report) {
            self.send(target, message);
        }
    }
}

fn environment_ref(step: &Step) -> EnvironmentRef {
    EnvironmentRef {
        id: step.environment_id.clone(),
        name: step.environment.clone(),
        project: step.project.clone(),
        state: step.state,
        mode: step.mode,
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
