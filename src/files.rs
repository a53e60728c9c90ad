//! Files from outside the process (the rule file, token files, a snapshot), read the one
//! way that can neither hang the daemon nor exhaust its memory.
//!
//! - Only a regular file is read, checked on the opened file itself (`fstat`), after the
//!   path's symlinks are followed: a ConfigMap's `..data` links work, while a FIFO, a
//!   device (`/dev/zero`), a socket or a folder is refused. Opening never blocks
//!   (`O_NONBLOCK`: a FIFO without a writer would block `open` for ever), and there is no
//!   window between the check and the read for the path to change under us.
//! - At most `max_bytes` are read (`Read::take`), whatever size the file claims or grows to.
//! - The read happens on a blocking thread, never on an async worker, under a timeout (a
//!   hung network mount leaves one blocking thread waiting, not the daemon).
//! - [`read_settled`] reads until two reads a moment apart agree, so a file being written
//!   in place is not taken half-written.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest rule file read by default: a ConfigMap holds at most 1 MiB.
pub const RULE_FILE_MAX_BYTES: u64 = 4 << 20;
/// The largest token file read (the admin tokens, the Qovery token).
pub const TOKEN_FILE_MAX_BYTES: u64 = 64 << 10;
/// The largest snapshot read by `curfew plan --snapshot` (10,000 environments are about
/// 3 MB).
pub const SNAPSHOT_MAX_BYTES: u64 = 64 << 20;
/// How long reading one file may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between the two reads of [`read_settled`].
pub const SETTLE_PAUSE: Duration = Duration::from_millis(100);

/// What may be read, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub timeout: Duration,
}

impl Limits {
    /// At most `max_bytes`, within [`READ_TIMEOUT`].
    pub fn bytes(max_bytes: u64) -> Limits {
        Limits {
            max_bytes,
            timeout: READ_TIMEOUT,
        }
    }
}

/// Why a file was not read: the file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .path.display())]
pub struct ReadError {
    pub path: PathBuf,
    pub problem: Problem,
}

/// What is wrong with a file, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot read it: {0}")]
    Io(std::io::Error),
    #[error(
        "not a regular file but {0}: curfew reads only regular files (a symlink to one is fine)"
    )]
    NotAFile(&'static str),
    #[error("larger than {}: curfew reads at most that much{hint}", size(*.max_bytes))]
    TooLarge {
        max_bytes: u64,
        /// How to raise the limit, where it can be raised.
        hint: &'static str,
    },
    #[error("not UTF-8 text")]
    NotText,
    #[error("not read within {}s (a hung mount?)", .0.as_secs())]
    TimedOut(Duration),
    #[error("kept changing while it was read for {}s: write the new file beside it and rename it into place", .0.as_secs())]
    Unsettled(Duration),
}

/// `4 MiB`, `64 KiB`, `100 bytes`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Reads a size as people write it: `4194304`, `4MiB`, `512KiB` (or `K`, `M`, `KB`, `MB`:
/// powers of 1024 all).
pub fn parse_size(text: &str) -> Result<u64, NotASize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(NotASize(text.to_string())),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| NotASize(text.to_string()))
}

/// A text that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a size such as 4194304, 512KiB or 4MiB")]
pub struct NotASize(pub String);

/// What kind of file a non-regular file is, for people.
fn kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads `path` as text, on the calling thread: a regular file of at most `max_bytes`.
/// Blocks; async code calls [`read`].
pub fn read_blocking(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    read_limited(path, max_bytes, "")
}

fn read_limited(path: &Path, max_bytes: u64, hint: &'static str) -> Result<String, ReadError> {
    let fail = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    let io = |e| fail(Problem::Io(e));
    // O_NONBLOCK: opening a FIFO for reading waits for a writer otherwise. Reads of a
    // regular file ignore it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(fail(Problem::NotAFile(kind(meta.file_type()))));
    }
    let too_large = || fail(Problem::TooLarge { max_bytes, hint });
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    // Sized from what the file says, read up to one byte past the limit whatever it
    // grows to meanwhile.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| fail(Problem::NotText))
}

/// Reads `path` as text on a blocking thread, within `limits`. `hint` ends the too-large
/// error (how to raise the limit, or "").
pub async fn read(path: &Path, limits: Limits, hint: &'static str) -> Result<String, ReadError> {
    let owned = path.to_path_buf();
    let task = tokio::task::spawn_blocking(move || read_limited(&owned, limits.max_bytes, hint));
    let problem = match tokio::time::timeout(limits.timeout, task).await {
        Ok(Ok(result)) => return result,
        Ok(Err(join)) => Problem::Io(std::io::Error::other(join.to_string())),
        Err(_) => Problem::TimedOut(limits.timeout),
    };
    Err(ReadError {
        path: path.to_path_buf(),
        problem,
    })
}

/// Like [`read`], but reads again after `pause` until two reads in a row agree: a file
/// being written in place (an editor saving slowly, a `cat > file`) is not taken
/// half-written. Gives up when it has not settled within `limits.timeout`.
pub async fn read_settled(
    path: &Path,
    limits: Limits,
    pause: Duration,
    hint: &'static str,
) -> Result<String, ReadError> {
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut last = read(path, limits, hint).await?;
    loop {
        tokio::time::sleep(pause).await;
        let again = read(path, limits, hint).await?;
        if again == last {
            return Ok(again);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ReadError {
                path: path.to_path_buf(),
                problem: Problem::Unsettled(limits.timeout),
            });
        }
        last = again;
    }
}

/// Makes a FIFO at `path` (for tests of hostile files).
#[cfg(test)]
pub(crate) fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("curfew-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The hostile files: each refused with a sentence that says why, none read
    /// for long, none read whole.
    #[tokio::test]
    async fn only_regular_files_of_bounded_size_are_read() {
        let d = dir("kinds");
        let fifo = d.join("fifo.yaml");
        mkfifo(&fifo);
        let zero = d.join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let big = d.join("big.yaml");
        std::fs::write(&big, vec![b'#'; 5000]).unwrap();
        let binary = d.join("binary.yaml");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let cases: [(&Path, &str); 6] = [
            (&fifo, "not a regular file but a FIFO (named pipe)"),
            (&zero, "not a regular file but a character device"),
            (&d, "not a regular file but a folder"),
            (&big, "larger than 4 KiB: curfew reads at most that much"),
            (&binary, "not UTF-8 text"),
            (&d.join("missing.yaml"), "cannot read it: No such file"),
        ];
        for (path, want) in cases {
            let e = read(path, Limits::bytes(4096), "").await.unwrap_err();
            assert!(e.to_string().contains(want), "{}: {e}", path.display());
            assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A ConfigMap mounts `curfew.yaml -> ..data/curfew.yaml` and `..data -> ..2026_…`:
    /// links to a regular file are followed.
    #[tokio::test]
    async fn a_configmap_s_symlinks_are_followed() {
        let d = dir("configmap");
        std::fs::create_dir(d.join("..2026_11_27")).unwrap();
        std::fs::write(d.join("..2026_11_27/curfew.yaml"), "rules: []\n").unwrap();
        std::os::unix::fs::symlink("..2026_11_27", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/curfew.yaml", d.join("curfew.yaml")).unwrap();
        let text = read(&d.join("curfew.yaml"), Limits::bytes(100), "")
            .await
            .unwrap();
        assert_eq!(text, "rules: []\n");
        assert_eq!(
            read_blocking(&d.join("curfew.yaml"), 10).unwrap(),
            "rules: []\n"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn sizes_read_and_print_as_people_write_them() {
        assert_eq!(size(4 << 20), "4 MiB");
        assert_eq!(size(64 << 10), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["", "0", "4 parsecs", "MiB", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    /// A file written in place in two steps, the second after the first read: the reader
    /// waits for the whole of it.
    #[tokio::test(start_paused = true)]
    async fn a_file_written_slowly_is_read_once_it_is_whole() {
        let d = dir("settle");
        let path = d.join("rules.yaml");
        std::fs::write(&path, "rules:\n  - name: a\n").unwrap();
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE_PAUSE / 2).await;
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(b"protect:\n  - project: billing\n").unwrap();
            })
        };
        let text = read_settled(&path, Limits::bytes(1000), SETTLE_PAUSE, "")
            .await
            .unwrap();
        writer.await.unwrap();
        assert!(text.ends_with("project: billing\n"), "{text}");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A writer that never stops is not waited for forever.
    #[tokio::test(start_paused = true)]
    async fn a_file_that_keeps_changing_is_refused() {
        let d = dir("unsettled");
        let path = d.join("rules.yaml");
        std::fs::write(&path, "0").unwrap();
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                // Each version whole (written beside, renamed into place), so a read
                // never meets one half-written: only the changes keep it from settling.
                let beside = path.with_extension("new");
                for i in 1.. {
                    tokio::time::sleep(SETTLE_PAUSE / 2).await;
                    std::fs::write(&beside, i.to_string()).unwrap();
                    std::fs::rename(&beside, &path).unwrap();
                }
            })
        };
        let limits = Limits {
            max_bytes: 100,
            timeout: Duration::from_secs(2),
        };
        let e = read_settled(&path, limits, SETTLE_PAUSE, "")
            .await
            .unwrap_err();
        writer.abort();
        assert!(e.to_string().contains("kept changing"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
