//! The process's log: human lines (names from outside escaped) or JSON, on stderr. Human
//! lines are coloured only on a terminal, never with `NO_COLOR`; other crates log at `warn`
//! unless `CURFEW_LOG` asks for more.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::settings::LogFormat;

/// The filter without `CURFEW_LOG`: curfew's own events from `info`, every other crate's
/// (HTTP clients, the Kubernetes client) from `warn`.
pub const DEFAULT_FILTER: &str = "warn,curfew=info";

/// What the log's setup reads from the process: `CURFEW_LOG`, `NO_COLOR` and whether stderr
/// is a terminal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogEnv {
    pub curfew_log: Option<String>,
    pub no_color: bool,
    pub terminal: bool,
}

impl LogEnv {
    pub fn from_process() -> LogEnv {
        LogEnv {
            curfew_log: std::env::var("CURFEW_LOG").ok(),
            // https://no-color.org: set and not empty.
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Colour codes only for a person at a terminal who has not said `NO_COLOR`: a file or
    /// a pipe gets plain text.
    pub fn colour(&self) -> bool {
        self.terminal && !self.no_color
    }

    /// `CURFEW_LOG` when it is a valid filter, else [`DEFAULT_FILTER`].
    pub fn filter(&self) -> EnvFilter {
        self.curfew_log
            .as_deref()
            .and_then(|f| EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER))
    }
}

/// Sets up the process's log (once; later calls do nothing).
pub fn init_logging(format: LogFormat) {
    let _ = subscriber(format, &LogEnv::from_process(), std::io::stderr).try_init();
}

/// The log's subscriber for `format` and `env`, writing to `writer`.
pub fn subscriber<W>(
    format: LogFormat,
    env: &LogEnv,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env.filter())
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.with_ansi(false).json().flatten_event(true).finish()),
        // Names from outside (environments, projects, labels) are escaped in human lines.
        LogFormat::Human => Box::new(
            builder
                .with_ansi(env.colour())
                .fmt_fields(crate::text::human_fields())
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What `env`'s human log prints for one INFO event of curfew's and one of another
    /// crate's (tokio-cron-scheduler's start-up line).
    fn printed(format: LogFormat, env: &LogEnv) -> String {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer = buffer.clone();
        let subscriber = subscriber(format, env, move || Buffer(writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "curfew::events", environment = "pr-1", "action");
            tracing::info!(target: "tokio_cron_scheduler::job_scheduler", "Uninited");
        });
        let bytes = buffer.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log file full of `\x1b[2m`: a file or a pipe gets plain lines, and so does
    /// a terminal under `NO_COLOR`; a terminal otherwise gets colour.
    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        let file = LogEnv::default();
        let text = printed(LogFormat::Human, &file);
        assert!(text.contains("action environment=\"pr-1\""), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        let no_color = LogEnv {
            terminal: true,
            no_color: true,
            ..LogEnv::default()
        };
        assert!(!printed(LogFormat::Human, &no_color).contains('\u{1b}'));
        let terminal = LogEnv {
            terminal: true,
            ..LogEnv::default()
        };
        assert!(printed(LogFormat::Human, &terminal).contains('\u{1b}'));
        assert!(!printed(LogFormat::Json, &terminal).contains('\u{1b}'));
    }

    /// The "Uninited" and "Job creator created" at start: another crate's INFO lines
    /// stay out of the log unless `CURFEW_LOG` asks for them.
    #[test]
    fn other_crates_log_at_warn_unless_asked() {
        let text = printed(LogFormat::Human, &LogEnv::default());
        assert!(text.contains("action"), "{text}");
        assert!(!text.contains("Uninited"), "{text}");
        let asked = LogEnv {
            curfew_log: Some("info".into()),
            ..LogEnv::default()
        };
        assert!(printed(LogFormat::Human, &asked).contains("Uninited"));
        // A filter that does not parse falls back to the default, as it did.
        let broken = LogEnv {
            curfew_log: Some("info,=[".into()),
            ..LogEnv::default()
        };
        let text = printed(LogFormat::Human, &broken);
        assert!(
            text.contains("action") && !text.contains("Uninited"),
            "{text}"
        );
    }
}
