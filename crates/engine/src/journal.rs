//! Journals and locks for every lifecycle operation, under
//! `.rekube/journal/`.
//!
//! A journal records each finished step as it finishes (written to a
//! temporary file and renamed, so a kill -9 never leaves half a file). A run
//! that dies leaves its journal unfinished; the next run of the same command
//! reads it, says what was done, and skips steps that need not run twice.
//! Every step is idempotent anyway, so a journal that is lost costs time,
//! never correctness.
//!
//! The lock is an OS file lock (`flock`, through std's `File::try_lock`) on
//! `<env>.lock`, which also holds the owner's PID, command and start time.
//! A second run is refused with those. The kernel releases the lock when its
//! holder dies (kill -9 included), so there is no stale lock to take over
//! and no race between two runs that both find one. Every file here is
//! created 0600: journals name clusters and may hold kubeconfig paths.

use std::path::{Path, PathBuf};

use rekube_cluster::files::write_private;
use serde::{Deserialize, Serialize};

/// Journal and lock failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another run holds the environment.
    #[error("environment `{env}` is busy: `rekube {command}` (PID {pid}, started {started}) holds {path}")]
    Locked {
        /// The environment.
        env: String,
        /// The holder's command.
        command: String,
        /// The holder's PID.
        pid: u32,
        /// When it started.
        started: String,
        /// The lock file.
        path: PathBuf,
    },
    /// Local I/O.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// Where rekube keeps local state for this spec: `<spec dir>/.rekube`.
pub fn state_root(loaded: &rekube_spec::Loaded) -> PathBuf {
    loaded.dir.join(".rekube")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + use<> {
    let path = path.to_path_buf();
    move |cause| JournalError::Io { path, cause }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), JournalError> {
    write_private(path, data).map_err(io(path))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockInfo {
    pid: u32,
    command: String,
    started: String,
}

/// An environment held by this process; released when dropped (or when
/// the process dies: the kernel drops the file lock).
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl Lock {
    /// Takes the lock of `env` for `command`, or says who holds it.
    pub fn acquire(state_root: &Path, env: &str, command: &str) -> Result<Self, JournalError> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let dir = state_root.join("journal");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{env}.lock"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let held: Option<LockInfo> = serde_json::from_str(&text).ok();
                let h = held.unwrap_or(LockInfo { pid: 0, command: "?".into(), started: "?".into() });
                return Err(JournalError::Locked {
                    env: env.to_string(),
                    command: h.command,
                    pid: h.pid,
                    started: h.started,
                    path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let info = LockInfo { pid: std::process::id(), command: command.to_string(), started: now() };
        file.set_len(0).map_err(io(&path))?;
        file.rewind().map_err(io(&path))?;
        file.write_all(serde_json::to_string(&info).unwrap_or_default().as_bytes()).map_err(io(&path))?;
        Ok(Self { _file: file })
    }
}

/// A finished step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Its name (`prerequisite state-bucket`, `cluster`, `components`).
    pub name: String,
    /// When it finished.
    pub finished: String,
    /// A note (what it did).
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    command: String,
    environment: String,
    pid: u32,
    started: String,
    steps: Vec<Step>,
    finished: Option<String>,
}

/// What an interrupted earlier run left.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// Its PID.
    pub pid: u32,
    /// When it started.
    pub started: String,
    /// What it finished.
    pub steps: Vec<Step>,
}

/// The journal of one run.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: Record,
    resumed: Vec<Step>,
}

impl Journal {
    /// Starts the journal of `command` on `env`, picking up an unfinished
    /// one left by an interrupted run of the same command.
    pub fn begin(state_root: &Path, env: &str, command: &str) -> Result<(Self, Option<Interrupted>), JournalError> {
        let dir = state_root.join("journal");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{env}.{command}.json"));
        let previous: Option<Record> = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let interrupted = previous.filter(|r| r.finished.is_none()).map(|r| Interrupted {
            pid: r.pid,
            started: r.started,
            steps: r.steps,
        });
        // The steps the interrupted run finished stay recorded, so a run
        // killed again before it re-records them loses nothing.
        let record = Record {
            command: command.into(),
            environment: env.into(),
            pid: std::process::id(),
            started: now(),
            steps: interrupted.as_ref().map(|i| i.steps.clone()).unwrap_or_default(),
            finished: None,
        };
        let j = Self { path, record, resumed: interrupted.as_ref().map(|i| i.steps.clone()).unwrap_or_default() };
        j.save()?;
        Ok((j, interrupted))
    }

    fn save(&self) -> Result<(), JournalError> {
        write_atomic(&self.path, serde_json::to_string_pretty(&self.record).unwrap_or_default().as_bytes())
    }

    /// Whether the interrupted run this one resumes had finished `step`.
    pub fn done_before(&self, step: &str) -> bool {
        self.resumed.iter().any(|s| s.name == step)
    }

    /// Records that `step` finished.
    pub fn done(&mut self, step: &str, note: impl Into<String>) -> Result<(), JournalError> {
        if !self.record.steps.iter().any(|s| s.name == step) {
            self.record.steps.push(Step { name: step.to_string(), finished: now(), note: note.into() });
        }
        self.save()
    }

    /// Marks the run finished.
    pub fn finish(mut self) -> Result<(), JournalError> {
        self.record.finished = Some(now());
        self.save()
    }
}

/// Ends an unfinished journal of `command` on `env` without resuming it:
/// what it recorded belongs to an operation that is over (an upgrade rolled
/// back, or replaced by a new one). Call it under the environment's lock.
pub fn discard(state_root: &Path, env: &str, command: &str) -> Result<(), JournalError> {
    let path = state_root.join("journal").join(format!("{env}.{command}.json"));
    let Some(mut record) = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Record>(&t).ok())
    else {
        return Ok(());
    };
    if record.finished.is_none() {
        record.finished = Some(now());
        write_atomic(&path, serde_json::to_string_pretty(&record).unwrap_or_default().as_bytes())?;
    }
    Ok(())
}

/// Whether a live process holds `env`'s lock (read from the lock file: its
/// PID), without taking the lock.
pub fn held(state_root: &Path, env: &str) -> bool {
    let path = state_root.join("journal").join(format!("{env}.lock"));
    let info: Option<LockInfo> = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok());
    info.is_some_and(|i| i.pid != std::process::id() && i32::try_from(i.pid).is_ok_and(alive))
}

/// Whether process `pid` of this machine exists (`kill(pid, 0)`; a process
/// of another user answers EPERM, and exists too).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Applied {
    time: String,
    written: usize,
}

/// Records a successful apply of `env` (for `status`).
pub fn record_applied(state_root: &Path, env: &str, written: usize) -> Result<(), JournalError> {
    let dir = state_root.join("journal");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let a = Applied { time: now(), written };
    write_atomic(&dir.join(format!("{env}.applied.json")), serde_json::to_string(&a).unwrap_or_default().as_bytes())
}

/// When `env` was last applied from this directory.
pub fn last_applied(state_root: &Path, env: &str) -> Option<String> {
    let a: Applied = serde_json::from_str(
        &std::fs::read_to_string(state_root.join("journal").join(format!("{env}.applied.json"))).ok()?,
    )
    .ok()?;
    Some(a.time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_naming_the_holder_and_is_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(dir.path(), "dev", "up").unwrap();
        // flock is per open file: a second open in this process conflicts as another process would.
        let err = Lock::acquire(dir.path(), "dev", "down").unwrap_err().to_string();
        assert!(err.contains(&format!("`rekube up` (PID {}", std::process::id())), "{err}");
        let other_env = Lock::acquire(dir.path(), "prod", "up");
        assert!(other_env.is_ok(), "environments lock separately");
        drop(lock);
        Lock::acquire(dir.path(), "dev", "down").expect("free again");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("journal/dev.lock")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn an_unfinished_journal_is_resumed_and_a_finished_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, prev) = Journal::begin(dir.path(), "dev", "up").unwrap();
        assert!(prev.is_none());
        j.done("prerequisite bucket", "created").unwrap();
        drop(j); // killed here
        let (j, prev) = Journal::begin(dir.path(), "dev", "up").unwrap();
        let prev = prev.unwrap();
        assert_eq!(prev.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["prerequisite bucket"]);
        assert!(j.done_before("prerequisite bucket") && !j.done_before("cluster"));
        j.finish().unwrap();
        let (_, prev) = Journal::begin(dir.path(), "dev", "up").unwrap();
        assert!(prev.is_none());
    }
}
