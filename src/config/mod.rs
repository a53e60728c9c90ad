//! The rule file's loader: what users write ([`raw`]) compiled into what curfew understands
//! ([`crate::policy::RuleSet`]), and the daemon's [`settings`].
//!
//! Loading is two-phase, like ripgrep's arguments: the YAML is parsed into raw serde structs
//! (unknown fields rejected, every value with its line and column), then compiled into a
//! validated [`RuleSet`], collecting *every* error. Between the two, `CURFEW_*` environment
//! variables override the daemon's settings (everything but `protect`, `notify` and
//! `rules`; [`overrides`]). The file itself is read by [`Source`]: a regular file, bounded
//! in size and time, once it has stopped changing ([`crate::files`]).

mod compile;
mod error;
pub mod overrides;
pub mod page;
pub mod public;
pub mod raw;
pub mod settings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use error::{ConfigError, ConfigErrors};
pub use overrides::Overrides;
pub use settings::Settings;

use crate::policy::RuleSet;

/// A loaded rule file: the rules and the daemon's settings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rules: RuleSet,
    pub settings: Settings,
    /// What deserves a look but does not stop the file (a `CURFEW_` variable that names
    /// no setting).
    pub warnings: Vec<String>,
}

/// Parses and compiles rule file text, with the `CURFEW_*` overrides named in `env`.
/// See [`parse_with`].
pub fn parse(
    file: &str,
    text: &str,
    env: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Loaded, ConfigErrors> {
    parse_with(file, text, &Overrides::from_env(env), now)
}

/// Parses and compiles rule file text, then applies `overrides`. `file` names it in
/// errors; `now` is when the file is checked (a schedule that never runs is measured
/// from it). Every error found is returned, not just the first.
pub fn parse_with(
    file: &str,
    text: &str,
    overrides: &Overrides,
    now: DateTime<Utc>,
) -> Result<Loaded, ConfigErrors> {
    let mut raw = parse_raw(file, text)?;
    let mut errors = overrides.apply(file, &mut raw);
    let mut compiler = compile::Compiler {
        file,
        text,
        errors: Vec::new(),
        now,
    };
    let rules = compile::compile(&mut compiler, &raw);
    let settings = settings::settings(file, &raw);
    errors.extend(compiler.errors);
    if let Err(e) = &settings {
        errors.extend(e.iter().cloned());
    }
    overrides.annotate(&mut errors);
    match (rules, settings) {
        (Some(rules), Ok(settings)) if errors.is_empty() => Ok(Loaded {
            rules,
            settings,
            warnings: overrides.warnings(&raw),
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

/// [`parse`] without environment overrides, keeping only the rules.
pub fn parse_rules(file: &str, text: &str, now: DateTime<Utc>) -> Result<RuleSet, ConfigErrors> {
    parse(file, text, &HashMap::new(), now).map(|l| l.rules)
}

/// Parses the YAML into raw structs, turning serde's error into a located [`ConfigError`].
pub fn parse_raw(file: &str, text: &str) -> Result<raw::RawFile, ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            rule: None,
            field: None,
            message: "the rule file is empty; it needs at least a `rules:` list".into(),
        }]));
    }
    serde_saphyr::from_str::<raw::RawFile>(text).map_err(|e| {
        let location = e.location();
        let message = plain_message(&e);
        let line = location.map(|l| l.line() as usize);
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line,
            column: location.map(|l| l.column() as usize),
            rule: line.and_then(|l| rule_at_line(text, l)),
            field: None,
            message: error::explain_unknown_field(&message),
        }])
    })
}

/// serde-saphyr's message without its own location and snippet.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or_default().trim();
    let first = first.trim_start_matches("error: ");
    // "line 7 column 5: unknown field …": the location is reported separately.
    match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => {
            rest.to_string()
        }
        _ => first.to_string(),
    }
}

/// The rule a line of the file belongs to, found by the nearest `- name:` above it (used
/// when the file is too broken to be read as rules).
fn rule_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    let rules_start = lines.iter().rposition(|l| l.starts_with("rules:"))?;
    lines[rules_start..].iter().rev().find_map(|l| {
        let item = l.trim_start().strip_prefix("- ")?.trim_start();
        let name = item
            .strip_prefix("name:")?
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        (!name.is_empty()).then(|| format!("\"{name}\""))
    })
}

/// Where the rule file is and how it is read: the same for the daemon's start and its
/// reloads, `validate` and `plan`.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// Built once from the process's environment.
    pub overrides: Overrides,
    /// The largest file read.
    pub max_bytes: u64,
}

/// How to raise the rule file's size limit, for its error.
const MAX_SIZE_HINT: &str = "; raise the limit with --max-rule-file-size";

impl Source {
    /// The rule file at `path`, with the overrides of `env`, read up to
    /// [`crate::files::RULE_FILE_MAX_BYTES`].
    pub fn new(path: &Path, env: &HashMap<String, String>) -> Source {
        Source {
            path: path.to_path_buf(),
            overrides: Overrides::from_env(env),
            max_bytes: crate::files::RULE_FILE_MAX_BYTES,
        }
    }

    /// Reads the file (a regular file, bounded in size and time, once it has stopped
    /// changing) and [`parse_with`]s it.
    pub async fn load(&self, now: DateTime<Utc>) -> Result<Loaded, ConfigErrors> {
        let file = self.path.display().to_string();
        let limits = crate::files::Limits::bytes(self.max_bytes);
        let pause = crate::files::SETTLE_PAUSE;
        let text = crate::files::read_settled(&self.path, limits, pause, MAX_SIZE_HINT)
            .await
            .map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    file: file.clone(),
                    line: None,
                    column: None,
                    rule: None,
                    field: None,
                    message: e.problem.to_string(),
                }])
            })?;
        parse_with(&file, &text, &self.overrides, now)
    }
}

#[cfg(test)]
mod tests;
