//! Every console example of `README.md` and `docs/` is run against the built binary, and
//! what it prints must be what the page shows: the docs cannot drift from the program.
//!
//! The convention, for whoever writes a page:
//!
//! - A fenced block whose info string is `console` is a session, run top to bottom in one
//!   `bash`. A line starting with `$ ` is a command (a line ending in `\` goes on with the
//!   next); the lines after it, up to the next command, are what it prints, stdout and
//!   stderr together as a terminal shows them. Trailing blank lines and trailing spaces do
//!   not count. Other blocks (`sh` for commands that need what a test machine lacks, such
//!   as cargo, docker or a cluster; `text`, `yaml`, `json`) are not run.
//! - In what a command prints, `[..]` stands for any text within a line, and a line `...`
//!   for any number of lines: for what really varies (an id drawn by the platform, a
//!   timestamp of the real clock), nothing else.
//! - A command ending in ` &` runs in the background until the block ends, its output
//!   discarded; when it has `--listen ADDR`, the next command waits until ADDR answers
//!   HTTP (and, for `curfew run`, until `/readyz` says the first pass is done).
//! - A session runs in a scratch folder where the repository's `config/`, `examples/`,
//!   `schema/` and `deploy/` are visible, with `curfew` (this build) first on the PATH and
//!   no `CURFEW_*` variable set; it keeps its variables (`export`) from one command to the
//!   next. Dates must not rot: examples decide at fixed instants (`--at`, `--clock-start`)
//!   or use relative forms (`--for 4h`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// What a session may see of the repository.
const SHARED: [&str; 4] = ["config", "examples", "schema", "deploy"];
/// The longest a single command may take (a daemon's first pass included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// Ends each command's output: not a line any command prints.
const DONE: &str = "\u{1e}curfew-docs-done";

/// One command of a session and what the page says it prints.
#[derive(Debug)]
struct Example {
    /// Where the command is written (file:line).
    at: String,
    command: String,
    expected: Vec<String>,
}

/// The `console` blocks of a page, each as its examples.
fn sessions(path: &Path) -> Vec<Vec<Example>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path
        .strip_prefix(REPO)
        .unwrap_or(path)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        // A block inside a list item is indented like its fence.
        let indent = line.len() - line.trim_start().len();
        let console = info.split_whitespace().next() == Some("console");
        let mut block: Vec<Example> = Vec::new();
        let mut continued = false;
        for (n, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            if !console {
                continue;
            }
            let line = line
                .get(indent..)
                .filter(|_| line[..indent].trim().is_empty())
                .unwrap_or(line.trim_start());
            if continued {
                let example = block.last_mut().expect("a continued command");
                example.command.push('\n');
                example.command.push_str(line);
                continued = line.ends_with('\\');
            } else if let Some(command) = line.strip_prefix("$ ") {
                block.push(Example {
                    at: format!("{name}:{}", n + 1),
                    command: command.to_string(),
                    expected: Vec::new(),
                });
                continued = command.ends_with('\\');
            } else {
                let example = block
                    .last_mut()
                    .unwrap_or_else(|| panic!("{name}:{}: output before any `$ ` command", n + 1));
                example.expected.push(line.to_string());
            }
        }
        if console {
            assert!(!block.is_empty(), "{name}: an empty console block");
            out.push(block);
        }
    }
    out
}

/// Whether `line` fits `pattern`, where `[..]` stands for any text.
fn line_fits(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    let (first, rest) = parts.split_first().expect("split gives one part at least");
    let Some(mut left) = line.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(i) => left = &left[i + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

/// Whether `lines` fit `pattern`, where a line `...` stands for any number of lines.
fn lines_fit(pattern: &[String], lines: &[&str]) -> bool {
    match pattern.split_first() {
        None => lines.is_empty(),
        Some((p, rest)) if p == "..." => (0..=lines.len()).any(|k| lines_fit(rest, &lines[k..])),
        Some((p, rest)) => lines
            .split_first()
            .is_some_and(|(l, others)| line_fits(p, l) && lines_fit(rest, others)),
    }
}

/// Lines as compared: trailing spaces and trailing blank lines dropped.
fn trimmed<S: AsRef<str>>(lines: &[S]) -> Vec<&str> {
    let mut out: Vec<&str> = lines.iter().map(|l| l.as_ref().trim_end()).collect();
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// A scratch folder that sees the repository's shared folders.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("curfew-docs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for folder in SHARED {
        std::os::unix::fs::symlink(Path::new(REPO).join(folder), dir.join(folder)).unwrap();
    }
    dir
}

/// A `bash` fed one command at a time, in its own process group (so that what it started
/// in the background goes with it).
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path) -> Shell {
        use std::os::unix::process::CommandExt;
        let bin = Path::new(env!("CARGO_BIN_EXE_curfew"))
            .parent()
            .unwrap()
            .to_path_buf();
        let path = std::env::var("PATH").unwrap_or_default();
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .env_clear()
            .env("PATH", format!("{}:{path}", bin.display()))
            .env("HOME", dir)
            .env("LANG", "C.UTF-8")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("bash runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Shell {
            child,
            stdin,
            lines,
        }
    }

    /// Runs one command of the page; what it printed (stdout and stderr), or why not.
    fn run(&mut self, command: &str) -> Result<Vec<String>, String> {
        let background = command.trim_end().strip_suffix('&').map(str::trim_end);
        if let Some(addr) = background.and_then(listen_address) {
            // Otherwise the page's commands would talk to whoever holds it, and fail in
            // ways that say nothing about the docs.
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Err(format!(
                    "{addr} is taken by another process: the page's daemon needs it"
                ));
            }
        }
        let script = match background {
            Some(c) => {
                format!("{{ {c}\n}} </dev/null >/dev/null 2>&1 &\nprintf '\\n{DONE} 0\\n'\n")
            }
            None => format!("{{ {command}\n}} </dev/null 2>&1\nprintf '\\n{DONE} %d\\n' $?\n"),
        };
        self.stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("bash: {e}"))?;
        let mut out = Vec::new();
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(DONE) => break,
                Ok(line) => out.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no end within {COMMAND_TIMEOUT:?}: {out:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(format!("bash quit: {out:?}")),
            }
        }
        // The line break printed before the marker, for output that did not end in one.
        if out.last().is_some_and(String::is_empty) {
            out.pop();
        }
        if let Some(c) = background {
            wait_for_listener(c)?;
        }
        Ok(out)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: kill(2) with a process group id we own; no memory is involved.
        unsafe {
            libc::kill(-group, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// For a background command with `--listen ADDR`: waits until ADDR answers HTTP, and
/// until `/readyz` stops answering 503 (a daemon's first pass).
fn wait_for_listener(command: &str) -> Result<(), String> {
    let Some(addr) = listen_address(command) else {
        return Ok(());
    };
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if let Some(status) = http_status(&addr, "/readyz")
            && status != 503
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{addr} never answered"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address a command's `--listen ADDR` names.
fn listen_address(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "--listen")
        .map(|w| w[1].to_string())
}

/// The status of `GET path` on `addr`, if it answers.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docs\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The pages whose console examples are run.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![Path::new(REPO).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(REPO).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

#[test]
fn every_console_example_of_the_docs_prints_what_the_page_shows() {
    let mut failures = Vec::new();
    let mut run = 0;
    // Every page is read before anything runs: a malformed block fails at once.
    let sessions: Vec<Vec<Example>> = pages().iter().flat_map(|p| sessions(p)).collect();
    for (i, session) in sessions.iter().enumerate() {
        let dir = scratch(&i.to_string());
        let mut shell = Shell::start(&dir);
        for example in session {
            run += 1;
            let printed = match shell.run(&example.command) {
                Ok(p) => p,
                Err(why) => {
                    failures.push(format!("{}: $ {}\n{why}", example.at, example.command));
                    break;
                }
            };
            let background = example.command.trim_end().ends_with('&');
            let expected: Vec<String> = trimmed(&example.expected)
                .into_iter()
                .map(str::to_string)
                .collect();
            if !background && !lines_fit(&expected, &trimmed(&printed)) {
                failures.push(format!(
                    "{}: $ {}\n--- the page shows:\n{}\n--- it printed:\n{}",
                    example.at,
                    example.command,
                    example.expected.join("\n"),
                    printed.join("\n")
                ));
            }
        }
        drop(shell);
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        failures.is_empty(),
        "{} of {run} console examples print something else than their page shows:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        run > 50,
        "only {run} examples found: is the convention still `console`?"
    );
}

#[test]
fn patterns_stand_for_what_varies_and_nothing_else() {
    let lines = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(line_fits("a [..] c", "a b c"));
    assert!(line_fits("a [..] c", "a  c"));
    assert!(line_fits("[..]", ""));
    assert!(line_fits("id [..]-[..]", "id 12-34-56"));
    assert!(!line_fits("a [..] c", "a b d"));
    assert!(!line_fits("abc", "abcd"));
    assert!(!line_fits("ab[..]ba", "aba"));
    assert!(lines_fit(
        &lines(&["x", "...", "z"]),
        &["x", "y1", "y2", "z"]
    ));
    assert!(lines_fit(&lines(&["x", "...", "z"]), &["x", "z"]));
    assert!(!lines_fit(&lines(&["x", "z"]), &["x", "y", "z"]));
    assert!(!lines_fit(&lines(&["x"]), &[]));
    assert_eq!(trimmed(&["a  ", "", ""]), ["a"]);
}

/// `docs/daemon.md` names the ledger's tables and their columns (people query the ledger
/// with `sqlite3`): they must be the ones a ledger has.
#[test]
fn the_ledger_tables_of_the_daemon_page_are_the_ledgers() {
    let page = std::fs::read_to_string(Path::new(REPO).join("docs/daemon.md")).unwrap();
    let section = page
        .split("\n| table | holds | columns |\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("docs/daemon.md has a table of the ledger's tables");
    let backticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let documented: Vec<(String, Vec<String>)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
            (
                backticked(cells[0]).remove(0),
                backticked(cells[cells.len() - 1]),
            )
        })
        .collect();
    let dir = scratch("ledger");
    let path = dir.join("curfew.db");
    curfew::ledger::Ledger::open(&path).unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    let mut tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut named: Vec<String> = documented.iter().map(|(t, _)| t.clone()).collect();
    tables.sort();
    named.sort();
    assert_eq!(named, tables, "the tables docs/daemon.md lists");
    for (table, columns) in documented {
        let actual: Vec<String> = db
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap()
            .query_map([], |r| r.get(1))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(columns, actual, "the columns of {table} in docs/daemon.md");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The issue's editor that found no schema: every `yaml-language-server` modeline of the
/// pages and the example rule files points at a schema the user has, a path relative to
/// the file that holds it (not an address nobody serves), and that file is the schema
/// `curfew schema` prints.
#[test]
fn every_schema_modeline_points_at_the_schema_the_user_has() {
    let schema =
        std::fs::read_to_string(Path::new(REPO).join("schema/curfew.schema.json")).unwrap();
    let mut files = pages();
    for dir in ["config", "examples"] {
        let mut yaml: Vec<PathBuf> = std::fs::read_dir(Path::new(REPO).join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        yaml.sort();
        files.extend(yaml);
    }
    let mut seen = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some(target) = line.split("yaml-language-server: $schema=").nth(1) else {
                continue;
            };
            seen += 1;
            let target = target.trim();
            let at = format!("{}:{}", file.display(), n + 1);
            if target.contains("://") {
                failures.push(format!(
                    "{at}: {target} is an address, not a file the user has"
                ));
                continue;
            }
            let resolved = file.parent().unwrap().join(target);
            match std::fs::read_to_string(&resolved) {
                Ok(found) if found == schema => {}
                Ok(_) => failures.push(format!("{at}: {target} is not schema/curfew.schema.json")),
                Err(e) => failures.push(format!("{at}: {target}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The README's example and the rule page's both have one.
    assert!(seen >= 2, "{seen} modelines");
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    assert!(
        readme.contains("curfew schema >") && readme.contains("yaml.schemas"),
        "the README says how to get the schema and wire it into an editor"
    );
}
