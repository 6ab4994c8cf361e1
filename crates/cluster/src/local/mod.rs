//! The `local` provider: a real etcd, kube-apiserver and kube-controller-manager
//! on free loopback ports, in a directory of their own.
//!
//! There are no nodes and no scheduler: the test bed's fake kubelet binds and
//! runs Pods. What this proves is that every object is accepted, defaulted and
//! reconciled by a real API server and real controllers, in a few seconds.
//!
//! Several control planes run side by side (parallel tests, blue/green): each
//! gets its own ports (including etcd's peer port and the controller-manager's
//! secure port, which default to fixed numbers), and v1.20's insecure ports are
//! switched off.

mod binaries;
mod kubelet;
mod managed;
mod pki;
mod process;
mod volumes;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use serde::{Deserialize, Serialize};

pub use binaries::{BINARIES_HINT, Binaries, builds, cache_dir, minor_of, version_matches};
pub use kubelet::{FAIL_LABEL, FakeKubelet, LB_RANGE, lb_address};
pub use managed::{LocalCluster, LocalStatus, UpOutcome};
use process::Proc;
pub use process::{Lifetime, pid_alive, pid_runs_in};

/// The service IP range: a /16, because a /24 runs out at 254 Services.
pub const SERVICE_CIDR: &str = "10.0.0.0/16";

/// Errors of the local provider.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The binaries found are not the version the cluster asks for.
    #[error("the cluster asks for Kubernetes {want}, but {found_in} holds {have}")]
    WrongVersion {
        /// The version asked for.
        want: String,
        /// The version found.
        have: String,
        /// Where they were found.
        found_in: String,
    },
    /// The control-plane binaries are not where rekube looks for them;
    /// [`BINARIES_HINT`] says what to do.
    #[error("control-plane binaries not found ({}); looked in, in order: {}", missing.join(", "), searched.join(", "))]
    BinariesMissing {
        /// Where rekube looked.
        searched: Vec<String>,
        /// Which binaries were missing.
        missing: Vec<String>,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A binary could not be started.
    #[error("cannot start {}: {cause}", bin.display())]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A process exited while the control plane was starting.
    #[error("{name} exited during start-up ({status}); last lines of {}:\n{tail}", log.display())]
    Exited {
        /// Which process.
        name: &'static str,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// The control plane did not become ready in time.
    #[error("control plane not ready after {waited:?}: {what}; last lines of kube-apiserver.log:\n{tail}")]
    NotReady {
        /// How long rekube waited.
        waited: Duration,
        /// What was still missing.
        what: String,
        /// The end of the apiserver's log.
        tail: String,
    },
    /// Certificates or keys could not be made.
    #[error("cannot create certificates: {0}")]
    Pki(String),
    /// The state file of a detached control plane is missing or unreadable.
    #[error("no running local cluster in {}: {reason}", dir.display())]
    NoState {
        /// The cluster directory.
        dir: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// The Kubernetes client could not be built.
    #[error("cannot build a client for {}: {cause}", kubeconfig.display())]
    Client {
        /// The kubeconfig.
        kubeconfig: PathBuf,
        /// The cause.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Used in the kubeconfig's cluster, user and context names.
    pub name: String,
    /// Where its data, certificates, logs and kubeconfig live. `None`: a fresh
    /// temporary directory, removed on stop.
    pub dir: Option<PathBuf>,
    /// Whether the processes outlive this one.
    pub lifetime: Lifetime,
    /// The binaries; `None`: [`Binaries::discover_version`] of `kubernetes`.
    pub binaries: Option<Binaries>,
    /// The Kubernetes version (`"1.34"`); `None`: the newest built.
    pub kubernetes: Option<String>,
    /// How long to wait for readiness.
    pub ready_timeout: Duration,
}

impl Options {
    /// A throw-away control plane tied to the caller (tests).
    pub fn ephemeral(name: &str) -> Self {
        Self {
            name: name.to_string(),
            dir: None,
            lifetime: Lifetime::TiedToCaller,
            binaries: None,
            kubernetes: None,
            ready_timeout: Duration::from_secs(90),
        }
    }
}

/// What a detached control plane leaves on disk so later commands can find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Kubeconfig context name.
    pub name: String,
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// `kube-apiserver --version`.
    pub version: Option<String>,
    /// `(name, pid)` of each process, in start order.
    pub pids: Vec<(String, u32)>,
}

/// A running local control plane. Dropping it stops a [`Lifetime::TiedToCaller`]
/// one; a detached one keeps running until [`ControlPlane::stop`].
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    owns_dir: bool,
    lifetime: Lifetime,
    procs: Vec<Proc>,
    state: State,
    startup: Duration,
    stopped: bool,
    /// The minor version (`20` of v1.20.2); readiness differs by it.
    minor: u32,
}

const STATE_FILE: &str = "state.json";

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until
    /// the API is ready and the default ServiceAccount has its token (so Pods
    /// can be created).
    pub async fn start(opts: Options) -> Result<Self, LocalError> {
        let bins = match &opts.binaries {
            Some(b) => b.clone(),
            None => Binaries::discover_version(opts.kubernetes.as_deref())?,
        };
        // A port picked as free can be taken by a parallel start before our
        // process binds it; that shows up as an early exit, so retry.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(&opts, &bins).await {
                Err(LocalError::Exited { tail, .. }) if attempt < 3 && tail.contains("address already in use") => {
                    tracing::warn!("port collision while starting {}, retrying", opts.name);
                }
                other => return other,
            }
        }
    }

    async fn try_start(opts: &Options, bins: &Binaries) -> Result<Self, LocalError> {
        let began = Instant::now();
        let (dir, owns_dir) = match &opts.dir {
            // Absolute: the processes run inside `dir`, and PIDs are matched
            // against it in their command lines.
            Some(d) => {
                (std::path::absolute(d).map_err(|source| LocalError::Io { path: d.clone(), cause: source })?, false)
            }
            None => (make_temp_dir(&opts.name)?, true),
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalError::Io { path, cause: source }
        };
        std::fs::create_dir_all(dir.join("etcd")).map_err(io(&dir))?;
        let [etcd_client, etcd_peer, api_port, cm_port] = free_ports::<4>().map_err(io(&dir))?;
        let pki = pki::load_or_write(&dir)?;
        let admin_token = pki::random_token()?;
        let cm_token = pki::random_token()?;
        let tokens = dir.join("tokens.csv");
        // The controller-manager runs with system:masters for brevity: one
        // credential for every controller, no --use-service-account-credentials.
        pki::write_file(
            &tokens,
            &format!(
                "{admin_token},rekube-admin,rekube-admin,\"system:masters\"\n\
                 {cm_token},system:kube-controller-manager,kube-controller-manager,\"system:masters\"\n"
            ),
        )?;
        let endpoint = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &opts.name, &endpoint, &pki.ca_pem, &admin_token)?;
        let cm_kubeconfig = dir.join("controller-manager.kubeconfig");
        write_kubeconfig(&cm_kubeconfig, "controller-manager", &endpoint, &pki.ca_pem, &cm_token)?;

        let p = |path: &Path| path.display().to_string();
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd_args = vec![
            "--name=default".into(),
            format!("--data-dir={}", p(&dir.join("etcd"))),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--log-level=warn".into(),
        ];
        let api_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", p(&dir)),
            format!("--tls-cert-file={}", p(&pki.serving_cert)),
            format!("--tls-private-key-file={}", p(&pki.serving_key)),
            format!("--client-ca-file={}", p(&pki.ca_cert)),
            format!("--token-auth-file={}", p(&tokens)),
            "--authorization-mode=RBAC".into(),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p(&pki.sa_pub)),
            format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
            "--allow-privileged=true".into(),
            "--v=1".into(),
        ];
        let cm_args = vec![
            format!("--kubeconfig={}", p(&cm_kubeconfig)),
            format!("--authentication-kubeconfig={}", p(&cm_kubeconfig)),
            format!("--authorization-kubeconfig={}", p(&cm_kubeconfig)),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={cm_port}"),
            "--leader-elect=false".into(),
            // The default client QPS (20) throttles status updates once a
            // platform has hundreds of workloads; a local cluster has room.
            "--kube-api-qps=200".into(),
            "--kube-api-burst=400".into(),
            format!("--root-ca-file={}", p(&pki.ca_cert)),
            format!("--service-account-private-key-file={}", p(&pki.sa_key)),
            format!("--cluster-signing-cert-file={}", p(&pki.ca_cert)),
            format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
            format!("--cert-dir={}", p(&dir)),
            "--v=1".into(),
        ];

        // Before 1.24 both also served plain HTTP unless told not to (the
        // flags were removed in 1.24).
        let version = bins.version();
        let minor = version.as_deref().and_then(minor_of).unwrap_or(u32::MAX);
        let (mut api_args, mut cm_args) = (api_args, cm_args);
        if minor < 24 {
            api_args.push("--insecure-port=0".into());
            cm_args.push("--port=0".into());
        }

        let mut cp = Self {
            dir: dir.clone(),
            owns_dir,
            lifetime: opts.lifetime,
            procs: Vec::new(),
            state: State { name: opts.name.clone(), endpoint, kubeconfig, version, pids: Vec::new() },
            startup: Duration::ZERO,
            stopped: false,
            minor,
        };
        // On any error below, dropping `cp` stops what was started (even a
        // detached start: a half-started cluster is worth nothing).
        let spawn = |cp: &mut Self, name, bin: &Path, args: &[String]| -> Result<(), LocalError> {
            let proc = Proc::spawn(name, bin, args, &dir, opts.lifetime)?;
            cp.state.pids.push((name.to_string(), proc.pid));
            cp.procs.push(proc);
            Ok(())
        };
        let result = async {
            spawn(&mut cp, "etcd", &bins.etcd, &etcd_args)?;
            // The apiserver retries etcd itself; no need to wait here.
            spawn(&mut cp, "kube-apiserver", &bins.apiserver, &api_args)?;
            spawn(&mut cp, "kube-controller-manager", &bins.controller_manager, &cm_args)?;
            cp.wait_ready(opts.ready_timeout).await
        }
        .await;
        if let Err(e) = result {
            cp.stop_now();
            return Err(e);
        }
        cp.startup = began.elapsed();
        if opts.lifetime == Lifetime::Detached {
            let json = serde_json::to_string_pretty(&cp.state).expect("State serialises");
            pki::write_file(&dir.join(STATE_FILE), &json)?;
        }
        Ok(cp)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), LocalError> {
        let began = Instant::now();
        let client = self.client().await?;
        let mut what = "GET /readyz".to_string();
        loop {
            for proc in &mut self.procs {
                if let Some(status) = proc.exited() {
                    return Err(LocalError::Exited {
                        name: proc.name,
                        status,
                        log: proc.log.clone(),
                        tail: proc.log_tail(20),
                    });
                }
            }
            if began.elapsed() > timeout {
                return Err(LocalError::NotReady {
                    waited: began.elapsed(),
                    what,
                    tail: process::log_tail(&self.dir.join("kube-apiserver.log"), 20),
                });
            }
            let req = http::Request::get("/readyz").body(Vec::new()).expect("static request");
            match client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => {
                    // Before 1.24 a Pod is refused until its ServiceAccount has a
                    // token Secret; from 1.24 tokens are requested per Pod.
                    what = "the default ServiceAccount (and before 1.24 its token), made by kube-controller-manager"
                        .into();
                    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
                    if let Ok(Some(sa)) = sas.get_opt("default").await
                        && (self.minor >= 24 || sa.secrets.is_some_and(|s| !s.is_empty()))
                    {
                        return Ok(());
                    }
                }
                Ok(body) => what = format!("GET /readyz answered {body:?}"),
                Err(e) => what = format!("GET /readyz: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Finds a detached control plane started earlier in `dir`.
    pub fn attach(dir: &Path) -> Result<Self, LocalError> {
        let path = dir.join(STATE_FILE);
        let no_state = |reason: String| LocalError::NoState { dir: dir.to_path_buf(), reason };
        let text = std::fs::read_to_string(&path).map_err(|e| no_state(e.to_string()))?;
        let state: State = serde_json::from_str(&text).map_err(|e| no_state(e.to_string()))?;
        let procs = state
            .pids
            .iter()
            .map(|(name, pid)| {
                let name: &'static str = match name.as_str() {
                    "etcd" => "etcd",
                    "kube-apiserver" => "kube-apiserver",
                    _ => "kube-controller-manager",
                };
                Proc::adopt(name, *pid, dir.join(format!("{name}.log")))
            })
            .collect();
        let state_minor = state.version.as_deref().and_then(minor_of).unwrap_or(u32::MAX);
        Ok(Self {
            dir: dir.to_path_buf(),
            owns_dir: false,
            lifetime: Lifetime::Detached,
            procs,
            state,
            startup: Duration::ZERO,
            stopped: false,
            minor: state_minor,
        })
    }

    /// Names of processes that are no longer running (empty when healthy).
    pub fn dead_processes(&mut self) -> Vec<&'static str> {
        let dir = self.dir.clone();
        self.procs
            .iter_mut()
            .filter_map(|p| {
                let gone = match p.exited() {
                    Some(_) => true,
                    None => !pid_runs_in(p.pid, &dir),
                };
                gone.then_some(p.name)
            })
            .collect()
    }

    /// An admin client for this cluster.
    pub async fn client(&self) -> Result<kube::Client, LocalError> {
        client_for(&self.state.kubeconfig).await
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.state.kubeconfig
    }

    /// The directory holding data, certificates, logs and the kubeconfig.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The API endpoint, `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.state.endpoint
    }

    /// What a later command needs to find this control plane.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// PIDs of the processes, in start order.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.pid).collect()
    }

    /// How long [`ControlPlane::start`] took until ready.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Stops the processes (controller-manager, apiserver, etcd) and removes
    /// the directory if it was a temporary one.
    pub fn stop(mut self) {
        self.stop_now();
    }

    pub(crate) fn stop_now(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        for proc in self.procs.iter_mut().rev() {
            proc.stop(Duration::from_secs(5), &self.dir);
        }
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.lifetime == Lifetime::Detached && !self.stopped {
            for proc in &mut self.procs {
                proc.release();
            }
            return;
        }
        self.stop_now();
    }
}

/// A client from a kubeconfig file (its current context).
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client, LocalError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| LocalError::Client {
        kubeconfig: kubeconfig.to_path_buf(),
        cause: source,
    };
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| err(Box::new(e)))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| err(Box::new(e)))?;
    crate::api::client(config).map_err(|e| err(Box::new(e)))
}

/// Writes a kubeconfig whose cluster, user and context are all called `name`
/// and that authenticates with a bearer `token`, trusting the cluster's CA.
fn write_kubeconfig(path: &Path, name: &str, endpoint: &str, ca_pem: &str, token: &str) -> Result<(), LocalError> {
    use base64::Engine;
    use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: name.into(),
            cluster: Some(Cluster {
                server: Some(endpoint.into()),
                certificate_authority_data: Some(base64::engine::general_purpose::STANDARD.encode(ca_pem)),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.into(),
            auth_info: Some(AuthInfo { token: Some(token.into()), ..Default::default() }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: name.into(),
            context: Some(Context { cluster: name.into(), user: Some(name.into()), ..Default::default() }),
            ..Default::default()
        }],
        current_context: Some(name.into()),
        ..Default::default()
    };
    let yaml = serde_saphyr::to_string(&config)
        .map_err(|e| LocalError::Io { path: path.to_path_buf(), cause: std::io::Error::other(e) })?;
    pki::write_file(path, &yaml)
}

fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    // Hold all listeners at once so the N ports differ from each other.
    let listeners = (0..N).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (slot, l) in ports.iter_mut().zip(&listeners) {
        *slot = l.local_addr()?.port();
    }
    Ok(ports)
}

/// A fresh directory under the system's temporary directory (kept: the
/// cluster removes it on stop).
fn make_temp_dir(name: &str) -> Result<PathBuf, LocalError> {
    let base = std::env::temp_dir();
    tempfile::Builder::new()
        .prefix(&format!("rekube-cp-{name}-"))
        .tempdir_in(&base)
        .map(tempfile::TempDir::keep)
        .map_err(|cause| LocalError::Io { path: base, cause })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        write_kubeconfig(&path, "dev", "https://127.0.0.1:6443", ca, "0123abcd").unwrap();

        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        assert_eq!(kc.api_version.as_deref(), Some("v1"));
        assert_eq!(kc.kind.as_deref(), Some("Config"));
        assert_eq!(kc.current_context.as_deref(), Some("dev"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!((kc.clusters.len(), kc.clusters[0].name.as_str()), (1, "dev"));
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        use base64::Engine;
        let ca_data = cluster.certificate_authority_data.as_deref().unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(ca_data).unwrap(), ca.as_bytes());
        // The token is a SecretString; its serialized form shows it.
        assert_eq!(
            serde_json::to_value(&kc.auth_infos).unwrap(),
            serde_json::json!([{"name": "dev", "user": {"token": "0123abcd"}}])
        );
        let context = kc.contexts[0].context.as_ref().unwrap();
        assert_eq!((kc.contexts.len(), kc.contexts[0].name.as_str()), (1, "dev"));
        assert_eq!((context.cluster.as_str(), context.user.as_deref()), ("dev", Some("dev")));

        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn hex_tokens_that_look_like_numbers_stay_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        for token in ["012345", "123456", "123e45", "1e10"] {
            write_kubeconfig(&path, "dev", "https://127.0.0.1:6443", "ca", token).unwrap();
            let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
            assert_eq!(serde_json::to_value(&kc.auth_infos).unwrap()[0]["user"]["token"], token);
        }
    }
}
