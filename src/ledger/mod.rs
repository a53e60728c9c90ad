//! The ledger: SQLite (bundled, WAL, synchronous FULL), the daemon's memory.
//!
//! It holds every action as an *intent* written before the platform is called and an
//! *outcome* written after; curfew's stop intervals (who stopped what, why, when, and when
//! it started again); the per-environment records `decide` reads ([`EnvRecord`]); snoozes
//! and protections; and the savings totals, so exported counters resume after a restart.
//! Each write is a transaction: a `kill -9` loses nothing that was written, and an intent
//! without an outcome is found and resolved on the next start ([`Ledger::pending`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

pub use error::{LedgerError, Problem};

use crate::events::ActResult;
use crate::platform::Outcome as Answer;
use crate::policy::{Action, Cause, EnvRecord, LedgerView, Step, StopCause};

mod error;

/// What the ledger writes as an action's outcome: what became of it in a pass (or a
/// wake), or how the start after a crash resolved it. Its words (`ok`, `already`, `gone`,
/// `error`, `dry_run`, `skipped_cap`, `confirming`, `recovered_done`,
/// `recovered_not_done`) are derived here, and only here.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Acted(ActResult),
    /// An intent found without its outcome at start, and whether the platform shows it
    /// done.
    Recovered {
        done: bool,
    },
}

impl Outcome {
    /// The word in `actions.outcome`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Acted(ActResult::Done(Answer::Accepted)) => "ok",
            Outcome::Acted(ActResult::Done(Answer::AlreadyThereOrBusy)) => "already",
            Outcome::Acted(ActResult::Done(Answer::Gone)) => "gone",
            Outcome::Acted(ActResult::DryRun) => "dry_run",
            Outcome::Acted(ActResult::SkippedCap(_)) => "skipped_cap",
            Outcome::Acted(ActResult::Confirming) => "confirming",
            Outcome::Acted(ActResult::Failed(_)) => "error",
            Outcome::Recovered { done: true } => "recovered_done",
            Outcome::Recovered { done: false } => "recovered_not_done",
        }
    }

    /// The text in `actions.error`.
    fn error(&self) -> Option<&str> {
        match self {
            Outcome::Acted(ActResult::Failed(e)) => Some(e),
            _ => None,
        }
    }
}

/// The outcomes that count as the platform having done the action (the delete cap's last
/// hour, the restart checks): it took it, had it already, or a restart found it done.
fn done_words() -> [&'static str; 3] {
    [
        Outcome::Acted(ActResult::Done(Answer::Accepted)).word(),
        Outcome::Acted(ActResult::Done(Answer::AlreadyThereOrBusy)).word(),
        Outcome::Recovered { done: true }.word(),
    ]
}

/// Whether [`Ledger::open`] may make a fresh ledger where its marker says one was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// Refused (the default): a fresh ledger forgets what curfew stopped.
    Refused,
    /// Allowed (`curfew run --new-ledger`).
    Allowed,
}

/// The file beside the ledger that says one is kept there: `curfew.db` → `curfew.db.marker`.
pub fn marker_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".marker");
    path.with_file_name(name)
}

/// Which file a path names: its device and inode.
fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// An action whose intent was written but whose outcome was not (the daemon died).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: i64,
    pub environment_id: String,
    pub action: Action,
    pub cause: Option<Cause>,
    /// The rule that decided (every step has one; a row from before rules were kept may
    /// not).
    pub rule: Option<String>,
    pub intent_at: DateTime<Utc>,
}

/// Savings of one rule in one currency, since the ledger was created.
#[derive(Debug, Clone, PartialEq)]
pub struct Savings {
    pub rule: String,
    pub currency: String,
    pub stopped_seconds: f64,
    pub saved: f64,
}

/// One of curfew's stop intervals, as far as it has been accrued.
#[derive(Debug, Clone, PartialEq)]
pub struct StopInterval {
    pub environment_id: String,
    pub rule: String,
    pub hourly_cost: Option<f64>,
    pub stopped_at: DateTime<Utc>,
    /// When it ended (started again, or gone), or for an open stop how far savings were
    /// accrued (the last pass).
    pub until: DateTime<Utc>,
}

/// One line of an environment's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    /// `stop: ok`, `wake by alice`, …
    pub what: String,
    /// Until when an operator's change lasts (a snooze, a wake); `null` otherwise.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    pub detail: String,
}

/// What curfew's stops of one environment saved, over the stops the ledger still holds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnvironmentSavings {
    pub stops: i64,
    pub stopped_seconds: f64,
    pub saved: f64,
}

/// One of curfew's stops of an environment: when, and until when (`None`: still stopped).
pub type StopSpan = (DateTime<Utc>, Option<DateTime<Utc>>);

/// A stop of curfew's that someone else put back: the environment, the rule whose stop it
/// was, who (as the platform names them: `argocd-controller (Update)`), when it was put
/// back and when curfew saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RevertEntry {
    pub environment_id: String,
    pub rule: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// The most characters of a revert's `by` kept (a field manager's name comes from any client).
const REVERT_BY_MAX: usize = 128;

/// One use of a signed action link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkUse<'a> {
    pub nonce: &'a str,
    pub environment_id: &'a str,
    /// `wake`, `keep`, `delay_delete`.
    pub action: &'a str,
    /// The notification target the link was sent to.
    pub target: &'a str,
    pub at: DateTime<Utc>,
}

/// An operator's change, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct OverrideEntry {
    /// `snooze`, `end_snooze`, `wake`, `protect`, `unprotect`.
    pub kind: &'static str,
    /// The admin token's name.
    pub who: String,
    pub at: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    /// The operator's note, or what the change did.
    pub detail: String,
}

/// The ledger. Its methods block (SQLite with `synchronous FULL` waits for the disk): from
/// async code, call them inside [`Ledger::run`], which runs them on a blocking thread.
pub struct Ledger {
    conn: Mutex<Connection>,
    /// The file, and which file it was when opened (`None` in memory).
    file: Option<(PathBuf, (u64, u64))>,
    /// Tests: refuse any use outside [`Ledger::run`].
    #[cfg(test)]
    strict: bool,
}

#[cfg(test)]
thread_local! {
    /// Whether this thread runs the ledger's work for [`Ledger::run`].
    static IN_RUN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    environment_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    action TEXT NOT NULL,
    cause TEXT,
    rule TEXT,
    reason TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    intent_at TEXT NOT NULL,
    outcome TEXT,
    outcome_at TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS actions_env ON actions(environment_id, intent_at);
CREATE INDEX IF NOT EXISTS actions_pending ON actions(outcome) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS stops (
    id INTEGER PRIMARY KEY,
    environment_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT NOT NULL,
    hourly_cost REAL,
    stopped_at TEXT NOT NULL,
    accrued_until TEXT NOT NULL,
    started_at TEXT
);
CREATE INDEX IF NOT EXISTS stops_open ON stops(environment_id) WHERE started_at IS NULL;
CREATE INDEX IF NOT EXISTS stops_env ON stops(environment_id, stopped_at);
CREATE TABLE IF NOT EXISTS records (
    environment_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS savings (
    rule TEXT NOT NULL,
    currency TEXT NOT NULL,
    stopped_seconds REAL NOT NULL,
    saved REAL NOT NULL,
    PRIMARY KEY (rule, currency)
);
CREATE TABLE IF NOT EXISTS overrides (
    id INTEGER PRIMARY KEY,
    environment_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    who TEXT NOT NULL,
    at TEXT NOT NULL,
    until TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS overrides_env ON overrides(environment_id, at);
CREATE TABLE IF NOT EXISTS savings_hours (
    hour TEXT NOT NULL,
    currency TEXT NOT NULL,
    stopped_seconds REAL NOT NULL,
    saved REAL NOT NULL,
    PRIMARY KEY (hour, currency)
);
CREATE TABLE IF NOT EXISTS reverts (
    id INTEGER PRIMARY KEY,
    environment_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reverts_env ON reverts(environment_id, at);
CREATE TABLE IF NOT EXISTS link_uses (
    nonce TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    used_at TEXT NOT NULL
);
";

/// The UTC hour an instant falls in, as `savings_hours` keys it (`2026-11-27T18`).
fn hour_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(text: &str) -> Result<DateTime<Utc>, rusqlite::Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

/// One environment's record, if the ledger holds one.
fn read_record(conn: &Connection, env: &str) -> Result<Option<EnvRecord>, LedgerError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT record FROM records WHERE environment_id = ?1",
            params![env],
            |r| r.get(0),
        )
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|source| {
            Problem::Record {
                environment: env.to_string(),
                source,
            }
            .into()
        })
    })
    .transpose()
}

/// Writes (inserts or replaces) one environment's record.
fn write_record(conn: &Connection, env: &str, record: &EnvRecord) -> Result<(), LedgerError> {
    let json = serde_json::to_string(record).map_err(Problem::Encode)?;
    conn.prepare_cached(
        "INSERT INTO records (environment_id, record) VALUES (?1, ?2)
         ON CONFLICT(environment_id) DO UPDATE SET record = excluded.record",
    )?
    .execute(params![env, json])?;
    Ok(())
}

impl Ledger {
    /// Opens the ledger at `path`, or creates it (and its folder) where none was kept: a
    /// missing ledger beside its marker ([`marker_path`]) is refused, since a fresh one
    /// forgets what curfew stopped, its savings and the delete cap's last hour.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Self::open_with(path, Fresh::Refused)
    }

    /// [`Ledger::open`], saying whether a fresh ledger may replace a missing one.
    pub fn open_with(path: &Path, fresh: Fresh) -> Result<Ledger, LedgerError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Problem::File {
                doing: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let marker = marker_path(path);
        let exists = |p: &Path| {
            p.try_exists().map_err(|source| Problem::File {
                doing: "look at",
                path: p.to_path_buf(),
                source,
            })
        };
        let created = !exists(path)?;
        let kept = exists(&marker)?;
        if created && kept && fresh == Fresh::Refused {
            // Our own small file, read like any file from outside all the same.
            let kept = crate::files::read_blocking(&marker, 4096).unwrap_or_default();
            let since = kept
                .lines()
                .find_map(|l| l.strip_prefix("created: "))
                .unwrap_or("an earlier run");
            return Err(Problem::Gone {
                path: path.to_path_buf(),
                marker,
                since: since.to_string(),
            }
            .into());
        }
        if created {
            // A journal left by the ledger that was here must not be replayed into the new one.
            for suffix in ["-wal", "-shm"] {
                let mut name = path.as_os_str().to_os_string();
                name.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(name));
            }
        }
        let conn = Connection::open(path).map_err(|source| Problem::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut ledger = Self::init(conn).map_err(|e| Problem::Unusable {
            path: path.to_path_buf(),
            problem: e.into_problem(),
        })?;
        let id = identity(path).map_err(|source| Problem::File {
            doing: "look at",
            path: path.to_path_buf(),
            source,
        })?;
        ledger.file = Some((path.to_path_buf(), id));
        if created && kept {
            tracing::warn!(ledger = %path.display(), "a fresh ledger replaces the one kept here (--new-ledger): what curfew stopped before is forgotten");
        }
        if created || !kept {
            let text = format!(
                "curfew keeps its ledger in {}; while this file is here, curfew refuses to start with a fresh ledger in its place (unless run with --new-ledger).\ncreated: {}\n",
                path.display(),
                ts(Utc::now())
            );
            std::fs::write(&marker, text).map_err(|source| Problem::File {
                doing: "write",
                path: marker,
                source,
            })?;
        }
        Ok(ledger)
    }

    /// A ledger that lives in memory (tests, `plan`).
    pub fn in_memory() -> Result<Ledger, LedgerError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Ledger, LedgerError> {
        // SQLite opens a file it may not write read-only, without a word: say so now
        // rather than at the first action.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(Problem::OpenedReadOnly.into());
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // 256 KiB of page cache instead of 2 MiB: the records are read once a pass and
        // every write goes to the log; a pass of 1,000 stops is no slower for it.
        conn.pragma_update(None, "cache_size", -256)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Ledger {
            conn: Mutex::new(conn),
            file: None,
            #[cfg(test)]
            strict: false,
        })
    }

    /// A ledger in memory that panics when used outside [`Ledger::run`] (tests that check
    /// that async code keeps the ledger's blocking work off its workers).
    #[cfg(test)]
    pub(crate) fn in_memory_strict() -> Result<Ledger, LedgerError> {
        let mut ledger = Self::in_memory()?;
        ledger.strict = true;
        Ok(ledger)
    }

    /// Runs `work` on the ledger on one of the runtime's blocking threads, off the async
    /// workers: a disk sync holds up that thread, never a worker that serves `/healthz`.
    pub async fn run<T, F>(self: &Arc<Self>, work: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
    {
        let ledger = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            IN_RUN.with(|r| r.set(true));
            work(&ledger)
        })
        .await
        .map_err(|e| LedgerError::from(Problem::Blocking(e)))?
    }

    /// Makes the connection refuse writes, as a disk remounted read-only would (tests).
    #[cfg(test)]
    pub(crate) fn refuse_writes(&self) {
        self.conn()
            .pragma_update(None, "query_only", true)
            .expect("query_only");
    }

    /// Whether the ledger's path still names the file curfew has open. A ledger deleted
    /// (or replaced) under a running daemon would take its writes to a file nobody will
    /// read again: every pass and every operator's change checks first, and is refused.
    pub fn check(&self) -> Result<(), LedgerError> {
        #[cfg(test)]
        assert!(
            !self.strict || IN_RUN.with(|r| r.get()),
            "the ledger was used outside Ledger::run (on an async worker)"
        );
        let Some((path, opened)) = &self.file else {
            return Ok(());
        };
        let what = match identity(path) {
            Ok(now) if now == *opened => return Ok(()),
            Ok(_) => "was replaced by another file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was deleted",
            Err(source) => {
                return Err(Problem::File {
                    doing: "look at",
                    path: path.clone(),
                    source,
                }
                .into());
            }
        };
        Err(Problem::Swapped {
            path: path.clone(),
            what,
        }
        .into())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        #[cfg(test)]
        assert!(
            !self.strict || IN_RUN.with(|r| r.get()),
            "the ledger was used outside Ledger::run (on an async worker)"
        );
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the intent of an action before the platform is called.
    pub fn intent(&self, step: &Step, at: DateTime<Utc>) -> Result<i64, LedgerError> {
        self.check()?;
        insert_intent(&self.conn(), step, at)
    }

    /// Writes the intents of several actions in one transaction (one disk sync), before
    /// any of them is called. Returns their ids, in order.
    pub fn intents<'s>(
        &self,
        steps: impl IntoIterator<Item = &'s Step>,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, LedgerError> {
        self.check()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids = steps
            .into_iter()
            .map(|s| insert_intent(&tx, s, at))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(ids)
    }

    /// Writes the outcomes of a pass's calls and opens the stop intervals of the stops that
    /// were taken, in one transaction.
    pub fn finish<'s>(
        &self,
        outcomes: &[(i64, Outcome)],
        stops: impl IntoIterator<Item = &'s Step>,
        finished: DateTime<Utc>,
        decided: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        write_outcomes(&tx, outcomes, finished)?;
        for s in stops {
            insert_stop(
                &tx,
                &s.environment_id,
                &s.rule,
                StopCause::of(s.cause),
                &s.reason,
                s.hourly_cost,
                decided,
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes several outcomes in one transaction.
    pub fn outcomes(
        &self,
        outcomes: &[(i64, Outcome)],
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        write_outcomes(&tx, outcomes, at)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes the outcome of an action.
    pub fn outcome(&self, id: i64, outcome: Outcome, at: DateTime<Utc>) -> Result<(), LedgerError> {
        self.outcomes(&[(id, outcome)], at)
    }

    /// Intents without an outcome: actions in flight when the daemon last died.
    pub fn pending(&self) -> Result<Vec<Pending>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, environment_id, action, cause, rule, intent_at FROM actions WHERE outcome IS NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                parse_ts(&r.get::<_, String>(5)?)?,
            ))
        })?;
        let mut pending = Vec::new();
        for row in rows {
            let (id, environment_id, action, cause, rule, intent_at) = row?;
            pending.push(Pending {
                id,
                environment_id,
                action: Action::from_word(&action).ok_or(Problem::Word {
                    column: "actions.action",
                    word: action,
                })?,
                cause: cause
                    .map(|c| {
                        Cause::from_ledger_word(&c).ok_or(Problem::Word {
                            column: "actions.cause",
                            word: c,
                        })
                    })
                    .transpose()?,
                rule,
                intent_at,
            });
        }
        Ok(pending)
    }

    /// The per-environment records, as `decide` reads them.
    pub fn view(&self) -> Result<LedgerView, LedgerError> {
        self.check()?;
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT environment_id, record FROM records")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        // Straight into the view, without a second map of every record beside it.
        let mut failed = None;
        // Thousands of stops name the same few rules: one copy of each name.
        let mut rules = crate::platform::Words::default();
        let records = rows.filter_map(|row| {
            let (id, json) = row
                .map_err(|e| {
                    failed.get_or_insert(e);
                })
                .ok()?;
            match serde_json::from_str::<EnvRecord>(&json) {
                Ok(mut record) => {
                    if let Some(stop) = &mut record.curfew_stop {
                        stop.rule = rules.get(stop.rule.clone());
                    }
                    Some((id, record))
                }
                Err(e) => {
                    tracing::warn!(environment = %id, error = %e, "unreadable ledger record ignored");
                    None
                }
            }
        });
        let view = LedgerView::stored(records);
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(view),
        }
    }

    /// Stores the records of `view` that changed since it was read, in one transaction,
    /// and marks them stored.
    pub fn store(&self, view: &mut LedgerView) -> Result<(), LedgerError> {
        let (changed, removed) = view.changes();
        if changed.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare(
                "INSERT INTO records (environment_id, record) VALUES (?1, ?2)
                 ON CONFLICT(environment_id) DO UPDATE SET record = excluded.record",
            )?;
            for (id, record) in changed {
                let json = serde_json::to_string(record).map_err(Problem::Encode)?;
                upsert.execute(params![id, json])?;
            }
            let mut delete = tx.prepare("DELETE FROM records WHERE environment_id = ?1")?;
            for id in removed {
                delete.execute(params![id])?;
            }
        }
        tx.commit()?;
        drop(conn);
        view.mark_stored();
        Ok(())
    }

    /// Opens a stop interval for curfew's stop of an environment (decided now).
    pub fn open_stop(
        &self,
        step: &Step,
        hourly_cost: Option<f64>,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let cause = StopCause::of(step.cause);
        self.open_stop_for(
            &step.environment_id,
            &step.rule,
            cause,
            &step.reason,
            hourly_cost,
            at,
        )
    }

    /// Opens a stop interval unless one is open already for this environment.
    pub fn open_stop_for(
        &self,
        env: &str,
        rule: &str,
        cause: StopCause,
        reason: &str,
        hourly_cost: Option<f64>,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        insert_stop(&self.conn(), env, rule, cause, reason, hourly_cost, at)
    }

    /// Accrues savings of every open stop up to `now`, and closes the stops of environments
    /// that are no longer stopped (`still_stopped` says: running again, started, or gone).
    /// Read the totals with [`Ledger::savings`].
    pub fn accrue(
        &self,
        now: DateTime<Utc>,
        currency: &str,
        still_stopped: &dyn Fn(&str) -> bool,
    ) -> Result<(), LedgerError> {
        self.accrue_ending(now, currency, still_stopped, &|_| None)
    }

    /// [`Ledger::accrue`], where `ended_at` may say when an environment's stop ended before
    /// now (someone put it back up at that instant): its savings accrue up to then, not
    /// later, and its interval ends there.
    pub fn accrue_ending(
        &self,
        now: DateTime<Utc>,
        currency: &str,
        still_stopped: &dyn Fn(&str) -> bool,
        ended_at: &dyn Fn(&str) -> Option<DateTime<Utc>>,
    ) -> Result<(), LedgerError> {
        /// Open intervals are read this many at a time (in the order of their index), so
        /// that 10,000 of them are never all held at once.
        const CHUNK: i64 = 512;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Σ seconds and savings by rule, written once per rule.
        let mut by_rule: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        {
            let mut read = tx.prepare(
                "SELECT id, environment_id, rule, hourly_cost, accrued_until FROM stops
                 WHERE started_at IS NULL AND (environment_id, id) > (?1, ?2)
                 ORDER BY environment_id, id LIMIT ?3",
            )?;
            let mut accrued = tx.prepare("UPDATE stops SET accrued_until = ?2 WHERE id = ?1")?;
            let mut ended = tx.prepare("UPDATE stops SET started_at = ?2 WHERE id = ?1")?;
            let mut after = (String::new(), i64::MIN);
            loop {
                let open: Vec<(i64, String, String, Option<f64>, String)> = read
                    .query_map(params![after.0, after.1, CHUNK], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let Some((last_id, last_env, ..)) = open.last() else {
                    break;
                };
                after = (last_env.clone(), *last_id);
                for (id, env, rule, cost, until) in open {
                    let from = parse_ts(&until)?;
                    // Savings already counted cannot be taken back: an end before the last
                    // accrual ends the interval there.
                    let end = ended_at(&env).map(|t| t.clamp(from.min(now), now));
                    let to = end.unwrap_or(now);
                    let seconds = (to - from).num_milliseconds().max(0) as f64 / 1000.0;
                    if seconds > 0.0 {
                        let total = by_rule.entry(rule).or_default();
                        total.0 += seconds;
                        total.1 += cost.unwrap_or(0.0) * seconds / 3600.0;
                        accrued.execute(params![id, ts(to.max(from))])?;
                    }
                    if end.is_some() || !still_stopped(&env) {
                        ended.execute(params![id, ts(to.max(from))])?;
                    }
                }
            }
            let (seconds, saved) = by_rule
                .values()
                .fold((0.0, 0.0), |(s, m), (rs, rm)| (s + rs, m + rm));
            if seconds > 0.0 {
                tx.execute(
                    "INSERT INTO savings_hours (hour, currency, stopped_seconds, saved) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(hour, currency) DO UPDATE SET stopped_seconds = stopped_seconds + excluded.stopped_seconds,
                     saved = saved + excluded.saved",
                    params![hour_key(now), currency, seconds, saved],
                )?;
            }
            for (rule, (seconds, saved)) in by_rule {
                tx.execute(
                    "INSERT INTO savings (rule, currency, stopped_seconds, saved) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(rule, currency) DO UPDATE SET stopped_seconds = stopped_seconds + excluded.stopped_seconds,
                     saved = saved + excluded.saved",
                    params![rule, currency, seconds, saved],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a stop of curfew's that someone else put back (once per revert: the pass
    /// records it when it first sees it).
    pub fn revert(&self, entry: &RevertEntry) -> Result<(), LedgerError> {
        self.check()?;
        let by = match entry.by.char_indices().nth(REVERT_BY_MAX) {
            Some((end, _)) => &entry.by[..end],
            None => entry.by.as_str(),
        };
        self.conn()
            .prepare_cached(
                "INSERT INTO reverts (environment_id, rule, by, at, seen_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                entry.environment_id,
                entry.rule,
                by,
                ts(entry.at),
                ts(entry.seen_at)
            ])?;
        Ok(())
    }

    /// The reverts of one environment's stops since `since`, oldest first.
    pub fn reverts_of(
        &self,
        env: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RevertEntry>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT environment_id, rule, by, at, seen_at FROM reverts
             WHERE environment_id = ?1 AND at >= ?2 ORDER BY at, id",
        )?;
        let rows = stmt.query_map(params![env, ts(since)], |r| {
            Ok(RevertEntry {
                environment_id: r.get(0)?,
                rule: r.get(1)?,
                by: r.get(2)?,
                at: parse_ts(&r.get::<_, String>(3)?)?,
                seen_at: parse_ts(&r.get::<_, String>(4)?)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Savings totals by rule and currency.
    pub fn savings(&self) -> Result<Vec<Savings>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT rule, currency, stopped_seconds, saved FROM savings ORDER BY rule, currency",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Savings {
                rule: r.get(0)?,
                currency: r.get(1)?,
                stopped_seconds: r.get(2)?,
                saved: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The stop intervals that were open at some point since `since` (for savings over a
    /// period, such as the notifications' daily digest).
    pub fn stop_intervals_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<StopInterval>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT environment_id, rule, hourly_cost, stopped_at, COALESCE(started_at, accrued_until)
             FROM stops WHERE started_at IS NULL OR started_at >= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![ts(since)], |r| {
            Ok(StopInterval {
                environment_id: r.get(0)?,
                rule: r.get(1)?,
                hourly_cost: r.get(2)?,
                stopped_at: parse_ts(&r.get::<_, String>(3)?)?,
                until: parse_ts(&r.get::<_, String>(4)?)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Records an operator's change (snooze, wake, protect…).
    pub fn override_entry(
        &self,
        env: &str,
        kind: &str,
        who: &str,
        at: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        detail: &str,
    ) -> Result<(), LedgerError> {
        self.conn().execute(
            "INSERT INTO overrides (environment_id, kind, who, at, until, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![env, kind, who, ts(at), until.map(ts), detail],
        )?;
        Ok(())
    }

    /// One environment's record, if the ledger holds one.
    pub fn record(&self, env: &str) -> Result<Option<EnvRecord>, LedgerError> {
        read_record(&self.conn(), env)
    }

    /// Changes one environment's record and writes the operator's entry, in one
    /// transaction. Returns the record as written.
    pub fn change_record(
        &self,
        env: &str,
        change: impl FnOnce(&mut EnvRecord),
        entry: &OverrideEntry,
    ) -> Result<EnvRecord, LedgerError> {
        self.check()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut record = read_record(&tx, env)?.unwrap_or_default();
        change(&mut record);
        write_record(&tx, env, &record)?;
        tx.execute(
            "INSERT INTO overrides (environment_id, kind, who, at, until, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![env, entry.kind, entry.who, ts(entry.at), entry.until.map(ts), entry.detail],
        )?;
        tx.commit()?;
        Ok(record)
    }

    /// What curfew's stops of one environment saved (open stops up to their last accrual).
    pub fn environment_savings(&self, env: &str) -> Result<EnvironmentSavings, LedgerError> {
        environment_savings(&self.conn(), env)
    }

    /// [`Ledger::environment_savings`] of each of `envs` (a page of the fleet), by id.
    pub fn environments_savings(
        &self,
        envs: &[&str],
    ) -> Result<HashMap<String, EnvironmentSavings>, LedgerError> {
        let conn = self.conn();
        envs.iter()
            .map(|env| Ok((env.to_string(), environment_savings(&conn, env)?)))
            .collect()
    }

    /// Money saved (and stopped seconds) in `currency` since `since`, to the hour: savings
    /// are kept by the UTC hour of the pass that accrued them.
    pub fn saved_since(
        &self,
        since: DateTime<Utc>,
        currency: &str,
    ) -> Result<(f64, f64), LedgerError> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(SUM(stopped_seconds), 0), COALESCE(SUM(saved), 0) FROM savings_hours
             WHERE currency = ?1 AND hour >= ?2",
            params![currency, hour_key(since)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// curfew's stop intervals of one environment that were open at some point since
    /// `since`, oldest first: when it was stopped, and when it started again (`None`: still
    /// stopped).
    pub fn stops_of(&self, env: &str, since: DateTime<Utc>) -> Result<Vec<StopSpan>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT stopped_at, started_at FROM stops WHERE environment_id = ?1
             AND (started_at IS NULL OR started_at >= ?2) ORDER BY stopped_at",
        )?;
        let rows = stmt.query_map(params![env, ts(since)], |r| {
            let started: Option<String> = r.get(1)?;
            Ok((
                parse_ts(&r.get::<_, String>(0)?)?,
                started.map(|s| parse_ts(&s)).transpose()?,
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Takes a signed link's nonce for its one use: `false` when it was used already.
    /// Written before the action; [`Ledger::release_link`] gives it back if the action
    /// fails, so a link is spent only by what it did.
    pub fn claim_link(&self, used: &LinkUse<'_>) -> Result<bool, LedgerError> {
        let inserted = self.conn().execute(
            "INSERT INTO link_uses (nonce, environment_id, action, target, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(nonce) DO NOTHING",
            params![
                used.nonce,
                used.environment_id,
                used.action,
                used.target,
                ts(used.at)
            ],
        )?;
        Ok(inserted == 1)
    }

    /// Gives a claimed nonce back (its action failed: the link may be used again).
    pub fn release_link(&self, nonce: &str) -> Result<(), LedgerError> {
        self.conn()
            .execute("DELETE FROM link_uses WHERE nonce = ?1", params![nonce])?;
        Ok(())
    }

    /// When a link's nonce was used, if it was.
    pub fn link_used_at(&self, nonce: &str) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let at: Option<String> = self
            .conn()
            .query_row(
                "SELECT used_at FROM link_uses WHERE nonce = ?1",
                params![nonce],
                |r| r.get(0),
            )
            .optional()?;
        Ok(at.map(|a| parse_ts(&a)).transpose()?)
    }

    /// An environment's recent history: actions, stops and operator changes, newest first.
    pub fn history(&self, env: &str, limit: usize) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.history_since(env, DateTime::UNIX_EPOCH, limit)
    }

    /// [`Ledger::history`] from `since` on (the status page's timeline).
    pub fn history_since(
        &self,
        env: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        let since = ts(since);
        let conn = self.conn();
        let mut out = Vec::new();
        let mut actions = conn.prepare(
            "SELECT intent_at, action, COALESCE(outcome, 'pending'), reason, COALESCE(error, '') FROM actions WHERE environment_id = ?1 AND intent_at >= ?3 ORDER BY id DESC LIMIT ?2",
        )?;
        for row in actions.query_map(params![env, limit as i64, since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })? {
            let (at, action, outcome, reason, error) = row?;
            let detail = if error.is_empty() {
                reason
            } else {
                format!("{reason} ({error})")
            };
            out.push(HistoryEntry {
                at: parse_ts(&at)?,
                what: format!("{action}: {outcome}"),
                until: None,
                detail,
            });
        }
        let mut overrides = conn.prepare("SELECT at, kind, who, COALESCE(until, ''), detail FROM overrides WHERE environment_id = ?1 AND at >= ?3 ORDER BY id DESC LIMIT ?2")?;
        for row in overrides.query_map(params![env, limit as i64, since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })? {
            let (at, kind, who, until, detail) = row?;
            out.push(HistoryEntry {
                at: parse_ts(&at)?,
                what: format!("{kind} by {who}"),
                until: (!until.is_empty()).then(|| parse_ts(&until)).transpose()?,
                detail,
            });
        }
        let mut reverts = conn.prepare(
            "SELECT at, by, rule FROM reverts WHERE environment_id = ?1 AND at >= ?3 ORDER BY id DESC LIMIT ?2",
        )?;
        for row in reverts.query_map(params![env, limit as i64, since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (at, by, rule) = row?;
            out.push(HistoryEntry {
                at: parse_ts(&at)?,
                what: format!("reverted by {by}"),
                until: None,
                detail: format!(
                    "curfew's stop (rule \"{rule}\") put back; not stopped again before the rule's next boundary"
                ),
            });
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.at));
        out.truncate(limit);
        Ok(out)
    }

    /// How many `action`s the platform took since `since` (for `max_deletes_per_hour`).
    pub fn count_done_since(
        &self,
        action: Action,
        since: DateTime<Utc>,
    ) -> Result<i64, LedgerError> {
        let done = done_words();
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM actions WHERE action = ?1 AND outcome IN (?3, ?4, ?5) AND intent_at >= ?2",
            params![action.as_str(), ts(since), done[0], done[1], done[2]],
            |r| r.get(0),
        )?)
    }

    /// Removes actions, closed stops and reverts older than `before` (savings totals are
    /// kept).
    pub fn prune(&self, before: DateTime<Utc>) -> Result<usize, LedgerError> {
        let conn = self.conn();
        let a = conn.execute(
            "DELETE FROM actions WHERE outcome IS NOT NULL AND intent_at < ?1",
            params![ts(before)],
        )?;
        let s = conn.execute(
            "DELETE FROM stops WHERE started_at IS NOT NULL AND started_at < ?1",
            params![ts(before)],
        )?;
        let r = conn.execute("DELETE FROM reverts WHERE at < ?1", params![ts(before)])?;
        Ok(a + s + r)
    }

    /// The most stops the platform took for any one environment (as `ok` or
    /// `recovered_done`), and how many environments were stopped: restart checks.
    pub fn stop_counts(&self) -> Result<(i64, i64), LedgerError> {
        let taken = Outcome::Acted(ActResult::Done(Answer::Accepted)).word();
        let recovered = Outcome::Recovered { done: true }.word();
        Ok(self.conn().query_row(
            "SELECT COALESCE(MAX(n), 0), COUNT(*) FROM (SELECT COUNT(*) AS n FROM actions
             WHERE action = ?1 AND outcome IN (?2, ?3) GROUP BY environment_id)",
            params![Action::Stop.as_str(), taken, recovered],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Number of actions with each outcome (tests and restart checks).
    pub fn count_actions(&self, action: Action) -> Result<i64, LedgerError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM actions WHERE action = ?1",
            params![action.as_str()],
            |r| r.get(0),
        )?)
    }
}

/// What curfew's stops of one environment saved (through its index on the environment).
fn environment_savings(conn: &Connection, env: &str) -> Result<EnvironmentSavings, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT hourly_cost, stopped_at, COALESCE(started_at, accrued_until) FROM stops WHERE environment_id = ?1",
    )?;
    let rows = stmt.query_map(params![env], |r| {
        Ok((
            r.get::<_, Option<f64>>(0)?,
            parse_ts(&r.get::<_, String>(1)?)?,
            parse_ts(&r.get::<_, String>(2)?)?,
        ))
    })?;
    let mut out = EnvironmentSavings::default();
    for row in rows {
        let (cost, from, to) = row?;
        let seconds = (to - from).num_milliseconds().max(0) as f64 / 1000.0;
        out.stops += 1;
        out.stopped_seconds += seconds;
        out.saved += cost.unwrap_or(0.0) * seconds / 3600.0;
    }
    Ok(out)
}

/// One action's intent; its id.
fn insert_intent(conn: &Connection, d: &Step, at: DateTime<Utc>) -> Result<i64, LedgerError> {
    conn.prepare_cached(
        "INSERT INTO actions (environment_id, environment, action, cause, rule, reason, dry_run, intent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        d.environment_id,
        d.environment,
        d.action.as_str(),
        d.cause.map(Cause::ledger_word),
        &*d.rule,
        d.reason,
        d.dry_run,
        ts(at)
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Outcomes `(action id, outcome)` of intents, at `at`, inside `tx`.
fn write_outcomes(
    tx: &rusqlite::Transaction<'_>,
    outcomes: &[(i64, Outcome)],
    at: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let mut update =
        tx.prepare("UPDATE actions SET outcome = ?2, outcome_at = ?3, error = ?4 WHERE id = ?1")?;
    for (id, outcome) in outcomes {
        update.execute(params![id, outcome.word(), ts(at), outcome.error()])?;
    }
    Ok(())
}

/// Opens a stop interval unless one is open already for this environment.
fn insert_stop(
    conn: &Connection,
    env: &str,
    rule: &str,
    cause: StopCause,
    reason: &str,
    hourly_cost: Option<f64>,
    at: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let cause = cause.ledger_word();
    let open: Option<i64> = conn
        .query_row(
            "SELECT id FROM stops WHERE environment_id = ?1 AND started_at IS NULL",
            params![env],
            |r| r.get(0),
        )
        .optional()?;
    if open.is_none() {
        conn.execute(
            "INSERT INTO stops (environment_id, rule, cause, reason, hourly_cost, stopped_at, accrued_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![env, rule, cause, reason, hourly_cost, ts(at)],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
