//! Text from outside curfew (environment, project and rule names, labels, notes, paths),
//! made safe for a terminal or a human log line: control characters and the invisible
//! marks that reorder a line are written as escapes (`\n`, `\u{1b}`), so a name can
//! neither end a line (and forge the next one) nor move the cursor or recolour the screen.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1) or a
/// bidirectional formatting mark.
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unprintable character escaped; borrowed when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unprintable) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unprintable(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes `text` to `f` escaped like [`printable`] (for `Display` impls and log fields).
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(self.0))
    }
}

/// The human log's fields, `name=value` (the message bare), each value escaped like
/// [`printable`]: tracing's own format escapes ESC in messages only, and nothing in fields,
/// so a name holding a newline could print a line of its own. (JSON logs escape by
/// themselves.)
pub fn human_fields()
-> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let value = format!("{value:?}");
        match field.name() {
            "message" => write!(writer, "{}", printable(&value)),
            name => write!(writer, "{name}={}", printable(&value)),
        }
    })
    .delimited(" ")
}

/// Collects what curfew logs on this thread, in the human format (tests run on a
/// current-thread runtime, so spawned tasks log here too).
#[cfg(test)]
pub(crate) struct LogCapture {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[cfg(test)]
impl LogCapture {
    pub(crate) fn start() -> LogCapture {
        let buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = Default::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("curfew=trace"))
            .with_ansi(false)
            .fmt_fields(human_fields())
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        LogCapture {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub(crate) fn text(&self) -> String {
        let buffer = self
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

#[cfg(test)]
struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's forged line: a name with a newline and ESC, logged by the human format,
    /// stays on its one line, escaped.
    #[test]
    fn a_name_cannot_forge_a_line_of_the_human_log() {
        let log = LogCapture::start();
        let name = "pr-1\n2026-11-27T19:00:00Z ERROR curfew: \u{1b}[31mledger deleted";
        tracing::info!(environment = %name, id = "x", "action");
        tracing::warn!("{name}");
        let text = log.text();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            text.contains(
                "environment=pr-1\\n2026-11-27T19:00:00Z ERROR curfew: \\u{1b}[31mledger deleted"
            ),
            "{text}"
        );
    }

    #[test]
    fn control_characters_and_reordering_marks_are_escaped() {
        let cases = [
            ("pr-1234", "pr-1234"),
            ("a\nERROR fake", "a\\nERROR fake"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("tab\there\r", "tab\\there\\r"),
            ("c1\u{9b}31m", "c1\\u{9b}31m"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            ("é ✓ 日本", "é ✓ 日本"),
        ];
        for (raw, want) in cases {
            assert_eq!(printable(raw), want, "{raw:?}");
            assert_eq!(Printable(raw).to_string(), want);
        }
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }
}
