//! A local cluster that outlives the command that made it: `rekube up`
//! starts it detached under `.rekube/clusters/<name>/`, later commands find
//! it there, and `rekube down` stops exactly its processes and deletes it.
//!
//! Its nodes are a fake kubelet running as a detached helper process (the
//! `rekube` binary itself, with a hidden subcommand), so Deployments become
//! Available without a container runtime.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use super::process::{Lifetime, Proc, pid_runs_in};
use super::{ControlPlane, LocalError, Options};

/// What `up` found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpOutcome {
    /// Started now (after a `down`, a reboot or a crash).
    Started,
    /// Was already running and healthy.
    AlreadyRunning,
}

/// What `status` sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalStatus {
    /// Never created, or removed by `down`.
    Absent,
    /// State on disk but processes gone (reboot, kill): `up` restarts it with its data.
    Stopped,
    /// Running; `dead` lists processes that are not.
    Running {
        /// API endpoint.
        endpoint: String,
        /// `kube-apiserver --version`.
        version: Option<String>,
        /// Processes that died.
        dead: Vec<&'static str>,
    },
}

/// A `local` cluster managed under a state directory.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    name: String,
    dir: PathBuf,
}

const KUBELET_PID: &str = "kubelet.pid";

impl LocalCluster {
    /// The cluster `name` under `state_root` (usually `<spec dir>/.rekube`).
    pub fn new(state_root: &Path, name: &str) -> Self {
        let dir = state_root.join("clusters").join(name);
        Self { name: name.to_string(), dir: std::path::absolute(&dir).unwrap_or(dir) }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its admin kubeconfig (exists once it has been started).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Starts the cluster unless it is already running; with `nodes > 0`, also
    /// starts `kubelet` (a command that runs the fake kubelet until killed;
    /// `--kubeconfig`, `--dir` and `--node` arguments are appended).
    /// `kubernetes` picks the build (`"1.34"`; `None`: the newest).
    pub async fn up(
        &self,
        nodes: u32,
        kubernetes: Option<&str>,
        kubelet: &Path,
        kubelet_args: &[String],
    ) -> Result<(UpOutcome, ControlPlane), LocalError> {
        if let LocalStatus::Running { dead, .. } = self.status()
            && dead.is_empty()
            && (nodes == 0 || self.kubelet_running())
        {
            return Ok((UpOutcome::AlreadyRunning, ControlPlane::attach(&self.dir)?));
        }
        // Half-alive (a crash, a kill -9): stop the rest, keep etcd's data.
        self.stop_processes();
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| LocalError::Io { path: self.dir.clone(), cause: source })?;
        let mut opts = Options::ephemeral(&self.name);
        opts.dir = Some(self.dir.clone());
        opts.lifetime = Lifetime::Detached;
        opts.kubernetes = kubernetes.map(str::to_string);
        let cp = ControlPlane::start(opts).await?;
        if nodes > 0 {
            let mut args = kubelet_args.to_vec();
            args.push(format!("--kubeconfig={}", cp.kubeconfig().display()));
            args.push(format!("--dir={}", self.dir.display()));
            for n in 1..=nodes {
                args.push(format!("--node=node-{n}"));
            }
            let mut proc = Proc::spawn("fake-kubelet", kubelet, &args, &self.dir, Lifetime::Detached)?;
            super::pki::write_file(&self.dir.join(KUBELET_PID), &proc.pid.to_string())?;
            let client = cp.client().await?;
            let began = Instant::now();
            loop {
                let ready = Api::<Node>::all(client.clone())
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items.len() as u32 >= nodes)
                    .unwrap_or(false);
                if ready {
                    break;
                }
                if let Some(status) = proc.exited() {
                    return Err(LocalError::Exited {
                        name: "fake-kubelet",
                        status,
                        log: proc.log.clone(),
                        tail: proc.log_tail(20),
                    });
                }
                if began.elapsed() > Duration::from_secs(30) {
                    return Err(LocalError::NotReady {
                        waited: began.elapsed(),
                        what: format!("{nodes} node(s) from the fake kubelet"),
                        tail: proc.log_tail(20),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            proc.release();
        }
        Ok((UpOutcome::Started, cp))
    }

    fn kubelet_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(KUBELET_PID)).ok()?.trim().parse().ok()
    }

    fn kubelet_running(&self) -> bool {
        self.kubelet_pid().is_some_and(|pid| pid_runs_in(pid, &self.dir))
    }

    fn stop_processes(&self) -> bool {
        let mut any = false;
        if let Some(pid) = self.kubelet_pid() {
            let mut p = Proc::adopt("fake-kubelet", pid, self.dir.join("fake-kubelet.log"));
            any |= pid_runs_in(pid, &self.dir);
            p.stop(Duration::from_secs(2), &self.dir);
            let _ = std::fs::remove_file(self.dir.join(KUBELET_PID));
        }
        if let Ok(mut cp) = ControlPlane::attach(&self.dir) {
            any |= cp.dead_processes().len() < cp.pids().len();
            cp.stop_now();
        }
        any
    }

    /// Stops its processes and deletes its data. `Ok(false)` when there was
    /// nothing to remove.
    pub fn down(&self) -> Result<bool, LocalError> {
        if !self.dir.exists() {
            return Ok(false);
        }
        self.stop_processes();
        std::fs::remove_dir_all(&self.dir)
            .map_err(|source| LocalError::Io { path: self.dir.clone(), cause: source })?;
        Ok(true)
    }

    /// What is on disk and running.
    pub fn status(&self) -> LocalStatus {
        match ControlPlane::attach(&self.dir) {
            Err(_) if self.dir.exists() => LocalStatus::Stopped,
            Err(_) => LocalStatus::Absent,
            Ok(mut cp) => {
                let mut dead = cp.dead_processes();
                if dead.len() == cp.pids().len() {
                    return LocalStatus::Stopped;
                }
                if self.kubelet_pid().is_some() && !self.kubelet_running() {
                    dead.push("fake-kubelet");
                }
                LocalStatus::Running { endpoint: cp.endpoint().to_string(), version: cp.state().version.clone(), dead }
            }
        }
    }
}
