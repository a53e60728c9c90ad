//! The process's log: human lines (names from outside escaped) or JSON, on stderr.

use crate::config::settings::LogFormat;

/// Sets up the process's log (once; later calls do nothing).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CURFEW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Names from outside (environments, projects, labels) are escaped in human lines.
        LogFormat::Human => builder.fmt_fields(crate::text::human_fields()).try_init(),
    };
}
