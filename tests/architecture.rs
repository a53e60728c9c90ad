//! The layering of `src/`, checked: every `crate::…` and `super::…` path in production code
//! is mapped to the part it names, and an import of a part higher in the order of
//! `docs/architecture.md` ("The parts, in dependency order"), or one that closes a cycle
//! between parts of the same level, fails this test. The order is read from that page, so
//! the page and the check cannot drift apart.
//!
//! Test code (`#[cfg(test)]` items and the files they declare) is not held to the order: a
//! part's tests may reach any part for fixtures (policy's tests write their rules as YAML
//! and load them with `config`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One import against the layering: which file, which line, from which part to which.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
    why: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} imports {}: {}",
            self.file, self.line, self.from, self.to, self.why
        )
    }
}

/// The parts by level, lowest first, as `docs/architecture.md` lists them: the rows of the
/// table under the heading "The parts, in dependency order", whose second column names the
/// parts of that level in backticks.
fn order_from_doc(doc: &str) -> Result<Vec<Vec<String>>, String> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("The parts, in dependency order"))
        .ok_or("no section \"## The parts, in dependency order\"")?;
    let mut levels = Vec::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(parts) = cells.get(2) else { continue };
        // The header and the separator row name no part in backticks.
        let names: Vec<String> = parts
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        if !names.is_empty() {
            levels.push(names);
        }
    }
    if levels.is_empty() {
        return Err("the section's table names no part".into());
    }
    Ok(levels)
}

/// Text with comments and string and character literals blanked (newlines kept, so lines
/// still count), and lifetimes left alone.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &str| {
        out.extend(s.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
    };
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if let Some(body) = rest.strip_prefix("/*") {
            let end = body.find("*/").map_or(rest.len(), |e| e + 4);
            blank(&mut out, &rest[..end]);
            i += end;
        } else if let Some(len) = raw_string(rest, i == 0 || !is_ident(bytes[i - 1])) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && !rest[j..].starts_with('"') {
                j += if rest[j..].starts_with('\\') { 2 } else { 1 };
                while !rest.is_char_boundary(j.min(rest.len())) {
                    j += 1;
                }
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if let Some(len) = char_literal(rest) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) starting `text`.
fn raw_string(text: &str, at_token_start: bool) -> Option<usize> {
    if !at_token_start {
        return None;
    }
    let after_b = text.strip_prefix('b').unwrap_or(text);
    let after_r = after_b.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)? + close.len();
    Some(text.len() - body.len() + end)
}

/// The length of a character literal (`'a'`, `'\n'`, `'\u{1b}'`) starting `text`; `None`
/// for a lifetime.
fn char_literal(text: &str) -> Option<usize> {
    let inner = text.strip_prefix('\'')?;
    let len = if let Some(escaped) = inner.strip_prefix('\\') {
        if escaped.starts_with("u{") {
            escaped.find('}')? + 2
        } else {
            1 + escaped.chars().next()?.len_utf8()
        }
    } else {
        inner.chars().next()?.len_utf8()
    };
    inner[len..].starts_with('\'').then_some(len + 2)
}

/// Blanks every item marked `#[cfg(test)]` (to its closing brace or semicolon), and returns
/// the names of the modules so declared in a file of their own (`#[cfg(test)] mod tests;`).
fn without_test_items(code: &str) -> (String, Vec<String>) {
    let mut out = code.to_string();
    let mut test_files = Vec::new();
    let mut from = 0;
    while let Some(found) = out[from..].find("#[cfg(test)]") {
        let start = from + found;
        let after = start + "#[cfg(test)]".len();
        let Some(stop) = out[after..].find(['{', ';']).map(|e| after + e) else {
            break;
        };
        let end = if out.as_bytes()[stop] == b';' {
            let item = out[after..stop].trim();
            if let Some(name) = item.split_whitespace().skip_while(|w| *w != "mod").nth(1) {
                test_files.push(name.to_string());
            }
            stop + 1
        } else {
            matching_brace(&out, stop).map_or(out.len(), |e| e + 1)
        };
        let blanked: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blanked);
        from = start;
    }
    (out, test_files)
}

fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in code.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The module path of a file under `src/`: `policy/decide.rs` → `[policy, decide]`,
/// `platform/kubernetes/mod.rs` → `[platform, kubernetes]`.
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every part that `code` (the file `file`, test items blanked) names with `crate::` or
/// with `super::` paths that leave its own part, with the line of each.
fn imports(file: &str, code: &str) -> Vec<(usize, String)> {
    let module = module_path(file);
    let mut found = Vec::new();
    // Inline modules deepen `super::`: their spans, to count the ones around a path.
    let inline = inline_modules(code);
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let at_start = i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b':');
        if at_start && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let line = code[..i].matches('\n').count() + 1;
            let (len, targets) = path_targets(rest, &module, inline_depth(&inline, i));
            for t in targets {
                found.push((line, t));
            }
            i += len.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// The byte spans of inline `mod name { … }` blocks.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("mod ") {
        let start = from + found;
        from = start + 4;
        if start > 0 && is_ident(code.as_bytes()[start - 1]) {
            continue;
        }
        let rest = &code[from..];
        let name_len = rest.bytes().take_while(|b| is_ident(*b)).count();
        let after = rest[name_len..].trim_start();
        if name_len > 0 && after.starts_with('{') {
            let open = code.len() - after.len();
            if let Some(close) = matching_brace(code, open) {
                spans.push((open, close));
            }
        }
    }
    spans
}

fn inline_depth(spans: &[(usize, usize)], at: usize) -> usize {
    spans.iter().filter(|(o, c)| *o < at && at < *c).count()
}

/// The parts a path starting `text` (`crate::a::b`, `crate::{a, b::c}`, `super::super::x`)
/// reaches from `module` (nested `depth` inline modules deep), and the path's length.
fn path_targets(text: &str, module: &[String], depth: usize) -> (usize, Vec<String>) {
    let mut rest = text;
    let mut base: Vec<String> = if let Some(r) = rest.strip_prefix("crate::") {
        rest = r;
        Vec::new()
    } else {
        // `super` from a file is its parent module; from an inline module, the file itself.
        let mut base = module.to_vec();
        let mut ups = 0usize;
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r;
            ups += 1;
        }
        let from_file = ups.saturating_sub(depth);
        if ups > depth && from_file > base.len() {
            return (text.len() - rest.len(), Vec::new());
        }
        base.truncate(base.len() - from_file.min(base.len()));
        base
    };
    let consumed = text.len() - rest.len();
    if !base.is_empty() {
        // Still inside a part: the path stays in it.
        return (consumed, Vec::new());
    }
    base.clear();
    let rest_trim = rest.trim_start();
    if let Some(group) = rest_trim.strip_prefix('{') {
        let close = matching_group(group).unwrap_or(group.len());
        let names = top_level_items(&group[..close]);
        let len = consumed + (rest.len() - rest_trim.len()) + 1 + close + 1;
        return (len, names);
    }
    let name: String = rest
        .bytes()
        .take_while(|b| is_ident(*b))
        .map(char::from)
        .collect();
    let len = consumed + name.len();
    if name.is_empty() || name == "self" {
        return (len, Vec::new());
    }
    (len, vec![name])
}

/// Where the group opened just before `text` closes.
fn matching_group(text: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The first name of each comma-separated entry of a group (`a, b::c, d::{e}` → a, b, d).
fn top_level_items(group: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut entry = String::new();
    for c in group.chars().chain([',']) {
        match c {
            '{' => {
                depth += 1;
                entry.push(c);
            }
            '}' => {
                depth -= 1;
                entry.push(c);
            }
            ',' if depth == 0 => {
                let first: String = entry
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !first.is_empty() && first != "self" {
                    names.push(first);
                }
                entry.clear();
            }
            c => entry.push(c),
        }
    }
    names
}

/// Checks `files` (paths under `src/`, their text) against `levels`; every violation, in
/// file order. A file's part is its first path component; `lib.rs` and `main.rs` belong to
/// none. A part missing from the order is a violation of its own.
fn check(files: &[(String, String)], levels: &[Vec<String>]) -> Vec<Violation> {
    let level_of: BTreeMap<&str, usize> = levels
        .iter()
        .enumerate()
        .flat_map(|(i, parts)| parts.iter().map(move |p| (p.as_str(), i)))
        .collect();
    let test_files = test_only_files(files);
    let mut violations = Vec::new();
    // Imports between parts of one level, to look for cycles among them.
    let mut same_level: BTreeMap<(String, String), (String, usize)> = BTreeMap::new();
    for (file, text) in files {
        if matches!(file.as_str(), "lib.rs" | "main.rs") || test_files.contains(file) {
            continue;
        }
        let part = file
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs");
        let Some(&from_level) = level_of.get(part) else {
            violations.push(Violation {
                file: file.clone(),
                line: 1,
                from: part.to_string(),
                to: part.to_string(),
                why: "this part is not in docs/architecture.md's order",
            });
            continue;
        };
        let (code, _) = without_test_items(&code_only(text));
        for (line, to) in imports(file, &code) {
            if to == part {
                continue;
            }
            let Some(&to_level) = level_of.get(to.as_str()) else {
                continue; // not a part: a crate-root item such as a macro
            };
            if to_level > from_level {
                violations.push(Violation {
                    file: file.clone(),
                    line,
                    from: part.to_string(),
                    to,
                    why: "an import of a higher part",
                });
            } else if to_level == from_level {
                same_level
                    .entry((part.to_string(), to))
                    .or_insert((file.clone(), line));
            }
        }
    }
    for ((from, to), (file, line)) in &same_level {
        if reaches(&same_level, to, from) {
            violations.push(Violation {
                file: file.clone(),
                line: *line,
                from: from.clone(),
                to: to.clone(),
                why: "closes a cycle between parts",
            });
        }
    }
    violations.sort();
    violations
}

/// Files that only tests compile: declared `#[cfg(test)] mod x;`, and everything under
/// them.
fn test_only_files(files: &[(String, String)]) -> BTreeSet<String> {
    let mut roots = Vec::new();
    for (file, text) in files {
        let (_, declared) = without_test_items(&code_only(text));
        let dir = if file == "lib.rs" {
            String::new()
        } else if let Some(dir) = file.strip_suffix("mod.rs") {
            dir.to_string()
        } else {
            format!("{}/", file.trim_end_matches(".rs"))
        };
        for name in declared {
            roots.push(format!("{dir}{name}"));
        }
    }
    files
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| {
            roots
                .iter()
                .any(|r| f == &format!("{r}.rs") || f.starts_with(&format!("{r}/")))
        })
        .collect()
}

/// Whether `from` reaches `to` through the same-level imports.
fn reaches(edges: &BTreeMap<(String, String), (String, usize)>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(at) = stack.pop() {
        if at == to {
            return true;
        }
        if seen.insert(at.clone()) {
            stack.extend(
                edges
                    .keys()
                    .filter(|(a, _)| *a == at)
                    .map(|(_, b)| b.clone()),
            );
        }
    }
    false
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn src_follows_the_order_of_docs_architecture() {
    let doc = std::fs::read_to_string(manifest("docs/architecture.md")).unwrap();
    let levels = order_from_doc(&doc).unwrap_or_else(|e| panic!("docs/architecture.md: {e}"));
    let root = manifest("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    let violations = check(&files, &levels);
    assert!(
        violations.is_empty(),
        "imports against docs/architecture.md:\n{}",
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every part of the tree is placed, and every placed part exists.
    let parts: BTreeSet<String> = files
        .iter()
        .map(|(f, _)| {
            f.split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|p| p != "lib" && p != "main")
        .collect();
    let placed: BTreeSet<String> = levels.concat().into_iter().collect();
    assert_eq!(parts, placed, "src/'s parts and docs/architecture.md's");
}

#[test]
fn the_page_answers_where_the_19_00_decision_is_made() {
    let doc = std::fs::read_to_string(manifest("docs/architecture.md")).unwrap();
    let line = doc
        .lines()
        .find(|l| l.contains("Where is the 19:00 decision made"))
        .expect("a line that asks where the 19:00 decision is made");
    // The answer names a file that exists.
    let file = line
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|w| w.starts_with("src/"))
        .expect("the answer names a file under src/");
    assert!(manifest(file).is_file(), "{file} does not exist");
}

// ---- the checker on small trees ------------------------------------------------------

fn levels(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|p| p.to_string()).collect())
        .collect()
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect()
}

fn found(violations: &[Violation]) -> Vec<(&str, usize, &str, &str)> {
    violations
        .iter()
        .map(|v| (v.file.as_str(), v.line, v.from.as_str(), v.to.as_str()))
        .collect()
}

#[test]
fn a_planted_upward_import_fails_and_downward_ones_pass() {
    let order = levels(&[&["clock"], &["policy"], &["reconcile"]]);
    let good = tree(&[
        ("clock.rs", "pub struct Clock;\n"),
        ("policy/mod.rs", "use crate::clock::Clock;\nmod decide;\n"),
        ("policy/decide.rs", "use super::super::clock;\n"),
        ("reconcile/mod.rs", "use crate::{clock, policy::decide};\n"),
    ]);
    assert_eq!(check(&good, &order), []);
    let mut planted = good.clone();
    planted[2]
        .1
        .push_str("fn f() { crate::reconcile::run(); }\n");
    assert_eq!(
        found(&check(&planted, &order)),
        [("policy/decide.rs", 2, "policy", "reconcile")]
    );
}

#[test]
fn grouped_nested_and_super_paths_are_all_read() {
    let order = levels(&[&["clock"], &["policy"], &["reconcile"]]);
    let files = tree(&[
        (
            "clock.rs",
            "use crate::{\n    policy::{self, Decision},\n    reconcile,\n};\n",
        ),
        ("policy/mod.rs", "use super::reconcile::Pass;\n"),
        ("reconcile/mod.rs", ""),
    ]);
    assert_eq!(
        found(&check(&files, &order)),
        [
            ("clock.rs", 1, "clock", "policy"),
            ("clock.rs", 1, "clock", "reconcile"),
            ("policy/mod.rs", 1, "policy", "reconcile"),
        ]
    );
}

#[test]
fn comments_strings_and_test_code_are_not_imports() {
    let order = levels(&[&["clock"], &["reconcile"]]);
    let files = tree(&[
        (
            "clock.rs",
            concat!(
                "//! See [`crate::reconcile`].\n",
                "const S: &str = \"crate::reconcile\";\n",
                "const R: &str = r#\"crate::reconcile\"#;\n",
                "fn f<'a>(c: char) -> bool { c == '{' }\n",
                "#[cfg(test)]\nmod tests { use crate::reconcile; }\n",
                "#[cfg(test)]\nmod more;\n",
            ),
        ),
        ("clock/more.rs", "use crate::reconcile;\n"),
        ("reconcile.rs", ""),
    ]);
    assert_eq!(check(&files, &order), []);
}

#[test]
fn imports_within_a_level_pass_until_they_close_a_cycle() {
    let order = levels(&[&["text", "files"], &["policy"]]);
    let one_way = tree(&[("text.rs", ""), ("files.rs", "use crate::text;\n")]);
    assert_eq!(check(&one_way, &order), []);
    let both = tree(&[
        ("text.rs", "use crate::files::read;\n"),
        ("files.rs", "use crate::text;\n"),
    ]);
    let why: Vec<&str> = check(&both, &order).iter().map(|v| v.why).collect();
    assert_eq!(why, ["closes a cycle between parts"; 2]);
}

#[test]
fn a_part_missing_from_the_order_is_named() {
    let order = levels(&[&["clock"]]);
    let files = tree(&[("clock.rs", ""), ("ui/mod.rs", "")]);
    assert_eq!(
        found(&check(&files, &order)),
        [("ui/mod.rs", 1, "ui", "ui")]
    );
}

#[test]
fn the_order_is_read_from_the_pages_table() {
    let page = "# x\n\n## The parts, in dependency order\n\n| level | parts | job |\n| --- | --- | --- |\n| 1 | `clock`, `schedule` | time |\n| 2 | `platform` | adapters |\n\n## Next\n\n| 9 | `not` | this |\n";
    assert_eq!(
        order_from_doc(page).unwrap(),
        levels(&[&["clock", "schedule"], &["platform"]])
    );
    assert!(order_from_doc("# nothing here\n").is_err());
}
