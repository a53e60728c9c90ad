//! Why the ledger could not be used, with what caused it (SQLite's error, the file
//! system's) kept as the error's source.

use std::fmt;
use std::path::PathBuf;

/// A ledger problem (disk, corruption, the file gone): the daemon reports it (log,
/// `/readyz`), acts on nothing it cannot record, and keeps running.
#[derive(Debug)]
pub struct LedgerError(Box<Problem>);

/// What is wrong with the ledger, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Sql(#[source] rusqlite::Error),
    #[error(
        "the ledger is read-only ({0}): curfew cannot record its actions, so it takes none; make the file and its folder writable"
    )]
    ReadOnly(#[source] rusqlite::Error),
    #[error(
        "the file is read-only: curfew must record every action before it takes it; make the file and its folder writable"
    )]
    OpenedReadOnly,
    #[error("cannot {doing} {}: {source}", .path.display())]
    File {
        /// `create`, `look at`, `write`.
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot use the ledger {}: {problem}", .path.display())]
    Unusable {
        path: PathBuf,
        #[source]
        problem: Box<Problem>,
    },
    #[error(
        "{} is gone, but {} says curfew kept its ledger there (created {since}): a fresh ledger would forget what curfew stopped (and would not start it again), its savings, snoozes and protections, and the delete cap's last hour. Restore the file, or start with --new-ledger to begin a new one",
        .path.display(),
        .marker.display()
    )]
    Gone {
        path: PathBuf,
        marker: PathBuf,
        since: String,
    },
    #[error(
        "{} {what} while curfew was running: curfew records nothing into a file nobody will read again, so it acts on nothing. Restore the file (or move the new one away) and restart curfew",
        .path.display()
    )]
    Swapped {
        path: PathBuf,
        /// `was deleted`, `was replaced by another file`.
        what: &'static str,
    },
    #[error("the record of {environment} is unreadable: {source}")]
    Record {
        environment: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    #[error("the word {word:?} in {column} is not one this ledger writes")]
    Word { column: &'static str, word: String },
    #[error("its work on a blocking thread stopped: {0}")]
    Blocking(#[source] tokio::task::JoinError),
}

impl LedgerError {
    /// What is wrong.
    pub fn problem(&self) -> &Problem {
        &self.0
    }

    pub(super) fn into_problem(self) -> Box<Problem> {
        self.0
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ledger: {}", self.0)
    }
}

impl std::error::Error for LedgerError {
    /// The problem's own source (SQLite's error, the file system's): the problem itself is
    /// this error's text.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl From<Problem> for LedgerError {
    fn from(problem: Problem) -> Self {
        LedgerError(Box::new(problem))
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
            return Problem::ReadOnly(e).into();
        }
        Problem::Sql(e).into()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn the_cause_is_kept_as_the_source_and_named_in_the_text() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = LedgerError::from(Problem::File {
            doing: "create",
            path: "/var/lib/curfew".into(),
            source: io,
        });
        assert_eq!(
            e.to_string(),
            "ledger: cannot create /var/lib/curfew: denied"
        );
        let source = e.source().expect("the io error");
        assert_eq!(source.to_string(), "denied");
        assert!(source.downcast_ref::<std::io::Error>().is_some());

        let sql = rusqlite::Connection::open_in_memory()
            .unwrap()
            .execute("SELECT x FROM nowhere", [])
            .unwrap_err();
        let e = LedgerError::from(sql);
        assert!(
            e.source()
                .unwrap()
                .downcast_ref::<rusqlite::Error>()
                .is_some()
        );
        assert!(
            e.to_string().starts_with("ledger: no such table: nowhere"),
            "{e}"
        );
    }
}
