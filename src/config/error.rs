//! Rule file errors: each names the file, the line and column, the rule and the field.

use std::fmt;

use crate::text::Printable;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Name (or position, `#3`) of the rule the problem is in.
    pub rule: Option<String>,
    /// The field, as a path (`run`, `match.mode`, `safety.max_stops_per_pass`).
    pub field: Option<String>,
    pub message: String,
}

/// One line per error: whatever the file holds (a name with a newline, an escape sequence)
/// is escaped, so an error cannot print a line of its own.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Printable(&self.file))?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        match (&self.rule, &self.field) {
            (Some(rule), Some(field)) => {
                write!(f, "rule {} field `{}`: ", Printable(rule), Printable(field))?;
            }
            (Some(rule), None) => write!(f, "rule {}: ", Printable(rule))?,
            (None, Some(field)) => write!(f, "`{}`: ", Printable(field))?,
            (None, None) => {}
        }
        write!(f, "{}", Printable(&self.message))
    }
}

/// Every problem found in a rule file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Adds "did you mean" to serde's unknown-field messages, and the reason a secret field
/// does not exist.
pub fn explain_unknown_field(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_string();
    };
    let Some((field, rest)) = rest.split_once('`') else {
        return message.to_string();
    };
    // serde writes "expected one of `a`, `b`"; some deserializers drop the backticks.
    let list = rest.split("expected").nth(1).unwrap_or_default();
    let list = list.trim_start_matches(" one of");
    let expected: Vec<&str> = list
        .split(',')
        .map(|s| s.trim().trim_matches('`'))
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = message.trim_end().to_string();
    if matches!(
        field,
        "token" | "api_token" | "password" | "secret" | "webhook_url"
    ) {
        out.push_str(
            "; secrets are never written in the rule file: name an environment variable \
             (`token_env`, `url_env`, `secret_env`) or a file (`token_file`) instead",
        );
        return out;
    }
    let best = expected
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(field, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min();
    if let Some((_, candidate)) = best {
        out.push_str(&format!("; did you mean `{candidate}`?"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_get_the_closest_known_one() {
        let m = "unknown field `stpo`, expected one of `name`, `run`, `stop`, `events`";
        assert!(explain_unknown_field(m).ends_with("did you mean `stop`?"));
        let far = "unknown field `zzzzzz`, expected one of `name`, `run`";
        assert_eq!(explain_unknown_field(far), far);
        let secret = "unknown field `token`, expected one of `organization`, `token_env`";
        assert!(explain_unknown_field(secret).contains("secrets are never written"));
    }

    #[test]
    fn errors_print_file_line_column_rule_and_field() {
        let e = ConfigError {
            file: "rules.yaml".into(),
            line: Some(14),
            column: Some(11),
            rule: Some("\"previews\"".into()),
            field: Some("run".into()),
            message: "unknown weekday \"Mno\" at column 1; expected Mon..Sun".into(),
        };
        assert_eq!(
            e.to_string(),
            "rules.yaml:14:11: rule \"previews\" field `run`: unknown weekday \"Mno\" at column 1; expected Mon..Sun"
        );
    }
}
