//! Child processes of a local control plane: spawn with a log file, stop
//! exactly the process that was started, never a stranger that reused its PID.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::LocalError;

/// How a process relates to the one that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed by the kernel (`PR_SET_PDEATHSIG`) when the spawning *thread*
    /// exits, so a crashed or killed test never leaks a control plane. Spawn
    /// from a thread that lives as long as the cluster (not `spawn_blocking`).
    TiedToCaller,
    /// In its own session, outliving the caller: for `rekube up`, where the
    /// cluster must survive the command. Stopped later from its PID file.
    Detached,
}

/// A running control-plane process.
#[derive(Debug)]
pub struct Proc {
    /// Short name: `etcd`, `kube-apiserver`, `kube-controller-manager`.
    pub name: &'static str,
    /// Its PID.
    pub pid: u32,
    /// Its combined stdout and stderr.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Starts `bin` with `args`, logging to `<dir>/<name>.log`.
    pub fn spawn(
        name: &'static str,
        bin: &Path,
        args: &[String],
        dir: &Path,
        lifetime: Lifetime,
    ) -> Result<Self, LocalError> {
        let log = dir.join(format!("{name}.log"));
        let io = |source| LocalError::Io { path: log.clone(), cause: source };
        let out = File::create(&log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let mut cmd = Command::new(bin);
        cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: both closures only make async-signal-safe syscalls.
        unsafe {
            use std::os::unix::process::CommandExt;
            match lifetime {
                Lifetime::TiedToCaller => cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                }),
                Lifetime::Detached => cmd.pre_exec(|| {
                    if libc::setsid() == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                }),
            };
        }
        let child = cmd.spawn().map_err(|source| LocalError::Spawn { bin: bin.to_path_buf(), cause: source })?;
        Ok(Self { name, pid: child.id(), log, child: Some(child) })
    }

    /// A process started earlier by another rekube invocation, known by PID.
    pub fn adopt(name: &'static str, pid: u32, log: PathBuf) -> Self {
        Self { name, pid, log, child: None }
    }

    /// `Some(status text)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match &mut self.child {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(e) => Some(e.to_string()),
            },
            None => (!pid_alive(self.pid)).then(|| "exited".to_string()),
        }
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Forgets the child handle so dropping it neither waits nor kills.
    pub fn release(&mut self) {
        self.child = None;
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the process is gone.
    /// An adopted PID is only signalled while its command line still names
    /// `owner_dir`, so a recycled PID is never killed.
    pub fn stop(&mut self, grace: Duration, owner_dir: &Path) {
        if self.child.is_none() && !pid_runs_in(self.pid, owner_dir) {
            return;
        }
        signal(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while self.exited().is_none() {
            if Instant::now() >= deadline {
                signal(self.pid, libc::SIGKILL);
                if let Some(child) = &mut self.child {
                    let _ = child.wait();
                } else {
                    while pid_alive(self.pid) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a concrete PID has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "123 (etcd) S ...".
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` is alive and its command line mentions `dir`.
pub fn pid_runs_in(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = dir.as_os_str().as_encoded_bytes();
    pid_alive(pid) && cmdline.windows(needle.len()).any(|w| w == needle)
}

/// The last `lines` lines of a file, or a note that it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            // The apiserver logs every flag at start-up; they bury the cause.
            let all: Vec<&str> = text.lines().filter(|l| !l.contains("] FLAG: --")).collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
