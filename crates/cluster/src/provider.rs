//! Providers: who creates, deletes, describes and hands out a kubeconfig for
//! a cluster. `local` runs a real control plane here; `existing` is a
//! kubeconfig context rekube never creates or deletes; `kind` and `k3d` wrap
//! their CLIs; `exec` drives any program through a small JSON protocol
//! (docs/providers.md), which is how eksctl, kops or Terraform plug in.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use crate::local::{LocalCluster, LocalStatus, UpOutcome};
use crate::tool::{self, ToolError};

/// The exec protocol's version string.
pub const EXEC_PROTOCOL: &str = "rekube.dev/provider/v1";

/// Which provider, with its settings.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A local control plane with `nodes` fake nodes.
    Local {
        /// Fake nodes.
        nodes: u32,
    },
    /// A kubeconfig context.
    Existing {
        /// The kubeconfig file (default: `$KUBECONFIG` or `~/.kube/config`).
        kubeconfig: Option<PathBuf>,
        /// The context.
        context: Option<String>,
    },
    /// `kind`.
    Kind,
    /// `k3d`.
    K3d,
    /// An exec provider program.
    Exec {
        /// The program.
        program: PathBuf,
    },
}

impl Kind {
    /// The provider's name in the spec.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::Existing { .. } => "existing",
            Self::Kind => "kind",
            Self::K3d => "k3d",
            Self::Exec { .. } => "exec",
        }
    }
}

/// A cluster of an environment.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Its name in the spec.
    pub name: String,
    /// The provider.
    pub kind: Kind,
    /// The Kubernetes version to create.
    pub kubernetes: Option<String>,
    /// The spec's directory (commands run there).
    pub spec_dir: PathBuf,
    /// `.rekube/clusters/<name>`: kubeconfigs and local state.
    pub state_dir: PathBuf,
}

/// What a provider reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Does not exist.
    Absent,
    /// Exists; `detail` says more when it is not fully up.
    Present {
        /// Server version, when known.
        version: Option<String>,
        /// API endpoint, when known.
        endpoint: Option<String>,
        /// What is wrong, if anything (`stopped`, `degraded: ...`).
        problem: Option<String>,
    },
}

/// Provider failures.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A program failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The local provider failed.
    #[error(transparent)]
    Local(#[from] crate::local::LocalError),
    /// An exec provider broke the protocol.
    #[error("provider {program} answered `{command}` with something that is not the protocol's JSON: {problem}")]
    Protocol {
        /// The program.
        program: String,
        /// The command.
        command: String,
        /// What is wrong.
        problem: String,
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

/// What `create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Made (or started) now.
    Created,
    /// Was there already.
    Existed,
}

#[derive(Debug, Deserialize)]
struct ExecStatus {
    exists: bool,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ExecKubeconfig {
    /// The kubeconfig itself...
    #[serde(default)]
    kubeconfig: Option<String>,
    /// ...or the file that holds it.
    #[serde(default)]
    kubeconfig_path: Option<PathBuf>,
    #[serde(default)]
    context: Option<String>,
}

impl Cluster {
    fn local(&self) -> LocalCluster {
        LocalCluster::new(self.state_dir.parent().and_then(Path::parent).unwrap_or(&self.state_dir), &self.name)
    }

    fn kubeconfig_path(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> ProviderError + use<> {
        let path = path.to_path_buf();
        move |source| ProviderError::Io { path, cause: source }
    }

    /// Calls an exec provider: `<program> <command>` with the request on stdin.
    async fn exec(&self, program: &Path, command: &str) -> Result<serde_json::Value, ProviderError> {
        let request = json!({
            "protocol": EXEC_PROTOCOL, "command": command, "cluster": self.name,
            "kubernetes": self.kubernetes, "state_dir": self.state_dir,
        });
        std::fs::create_dir_all(&self.state_dir).map_err(self.io(&self.state_dir))?;
        let program = program.display().to_string();
        let out = tool::run_ok(&program, &[command.to_string()], &self.spec_dir, Some(request.to_string().as_bytes()))
            .await?;
        let text = out.trim();
        if text.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(text).map_err(|e| ProviderError::Protocol {
            program,
            command: command.into(),
            problem: format!("{e} in {text:?}"),
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        program: &Path,
        command: &str,
        v: serde_json::Value,
    ) -> Result<T, ProviderError> {
        serde_json::from_value(v).map_err(|e| ProviderError::Protocol {
            program: program.display().to_string(),
            command: command.into(),
            problem: e.to_string(),
        })
    }

    /// Whether the cluster exists, and how it is.
    pub async fn state(&self) -> Result<State, ProviderError> {
        let dir = &self.spec_dir;
        Ok(match &self.kind {
            Kind::Local { .. } => match self.local().status() {
                LocalStatus::Absent => State::Absent,
                LocalStatus::Stopped => State::Present {
                    version: None,
                    endpoint: None,
                    problem: Some("stopped (`rekube up` restarts it)".into()),
                },
                LocalStatus::Running { endpoint, version, dead } => State::Present {
                    version,
                    endpoint: Some(endpoint),
                    problem: (!dead.is_empty()).then(|| format!("degraded: {} not running", dead.join(", "))),
                },
            },
            Kind::Existing { .. } => State::Present { version: None, endpoint: None, problem: None },
            Kind::Kind => {
                let out = tool::run_ok("kind", &["get".into(), "clusters".into()], dir, None).await?;
                if out.lines().any(|l| l.trim() == self.name) {
                    State::Present { version: None, endpoint: None, problem: None }
                } else {
                    State::Absent
                }
            }
            Kind::K3d => {
                let out =
                    tool::run_ok("k3d", &["cluster".into(), "list".into(), "-o".into(), "json".into()], dir, None)
                        .await?;
                let list: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap_or_default();
                if list.iter().any(|c| c["name"] == self.name.as_str()) {
                    State::Present { version: None, endpoint: None, problem: None }
                } else {
                    State::Absent
                }
            }
            Kind::Exec { program } => {
                let s: ExecStatus = self.parse(program, "status", self.exec(program, "status").await?)?;
                if s.exists {
                    State::Present { version: s.version, endpoint: s.endpoint, problem: None }
                } else {
                    State::Absent
                }
            }
        })
    }

    /// Creates the cluster unless it exists (`existing`: never creates).
    /// `kubelet` is the program and arguments the local provider runs as its
    /// fake nodes.
    pub async fn create(&self, kubelet: (&Path, &[String])) -> Result<Created, ProviderError> {
        let dir = &self.spec_dir;
        if !matches!(self.kind, Kind::Local { .. } | Kind::Existing { .. }) && self.state().await? != State::Absent {
            // `up` refreshes the kept kubeconfig (the cluster may have been remade outside rekube).
            self.fetch_kubeconfig().await?;
            return Ok(Created::Existed);
        }
        std::fs::create_dir_all(&self.state_dir).map_err(self.io(&self.state_dir))?;
        match &self.kind {
            Kind::Local { nodes } => {
                let (outcome, _) = self.local().up(*nodes, self.kubernetes.as_deref(), kubelet.0, kubelet.1).await?;
                return Ok(if outcome == UpOutcome::Started { Created::Created } else { Created::Existed });
            }
            Kind::Existing { .. } => return Ok(Created::Existed),
            Kind::Kind => {
                let mut args = vec![
                    "create".into(),
                    "cluster".into(),
                    "--name".into(),
                    self.name.clone(),
                    "--kubeconfig".into(),
                    self.kubeconfig_path().display().to_string(),
                    "--wait".into(),
                    "5m".into(),
                ];
                if let Some(v) = self.kubernetes.as_ref().filter(|v| v.trim_start_matches('v').split('.').count() == 3)
                {
                    args.extend(["--image".into(), format!("kindest/node:v{}", v.trim_start_matches('v'))]);
                }
                tool::run_ok("kind", &args, dir, None).await?;
            }
            Kind::K3d => {
                let mut args = vec![
                    "cluster".into(),
                    "create".into(),
                    self.name.clone(),
                    "--kubeconfig-update-default=false".into(),
                    "--kubeconfig-switch-context=false".into(),
                    "--wait".into(),
                ];
                if let Some(v) = self.kubernetes.as_ref().filter(|v| v.trim_start_matches('v').split('.').count() == 3)
                {
                    args.extend(["--image".into(), format!("rancher/k3s:v{}-k3s1", v.trim_start_matches('v'))]);
                }
                tool::run_ok("k3d", &args, dir, None).await?;
            }
            Kind::Exec { program } => {
                self.exec(program, "create").await?;
            }
        }
        self.fetch_kubeconfig().await?;
        Ok(Created::Created)
    }

    /// Deletes the cluster; `Ok(false)` when there was none (`existing`:
    /// never deletes).
    pub async fn delete(&self) -> Result<bool, ProviderError> {
        match &self.kind {
            Kind::Local { .. } => return Ok(self.local().down()?),
            Kind::Existing { .. } => return Ok(false),
            Kind::Kind | Kind::K3d | Kind::Exec { .. } => {}
        }
        let existed = self.state().await? != State::Absent;
        if existed {
            let dir = &self.spec_dir;
            match &self.kind {
                Kind::Kind => {
                    tool::run_ok(
                        "kind",
                        &[
                            "delete".into(),
                            "cluster".into(),
                            "--name".into(),
                            self.name.clone(),
                            "--kubeconfig".into(),
                            self.kubeconfig_path().display().to_string(),
                        ],
                        dir,
                        None,
                    )
                    .await?;
                }
                Kind::K3d => {
                    tool::run_ok("k3d", &["cluster".into(), "delete".into(), self.name.clone()], dir, None).await?;
                }
                Kind::Exec { program } => {
                    self.exec(program, "delete").await?;
                }
                Kind::Local { .. } | Kind::Existing { .. } => unreachable!("handled above"),
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
        Ok(existed)
    }

    /// The kubeconfig file and context to reach the cluster. kind, k3d and
    /// exec clusters' are fetched from the provider once (by `create`, or
    /// when missing) and kept under the state directory, so commands do not
    /// run the provider (an eksctl call takes seconds) each time they connect.
    pub async fn kubeconfig(&self) -> Result<(Option<PathBuf>, Option<String>), ProviderError> {
        match &self.kind {
            Kind::Local { .. } => Ok((Some(self.local().kubeconfig()), None)),
            Kind::Existing { kubeconfig, context } => Ok((kubeconfig.clone(), context.clone())),
            _ if self.kubeconfig_path().is_file() => {
                Ok((Some(self.kubeconfig_path()), std::fs::read_to_string(self.context_path()).ok()))
            }
            _ => self.fetch_kubeconfig().await,
        }
    }

    fn context_path(&self) -> PathBuf {
        self.state_dir.join("context")
    }

    /// Asks the provider for the kubeconfig and keeps it (and its context).
    async fn fetch_kubeconfig(&self) -> Result<(Option<PathBuf>, Option<String>), ProviderError> {
        let dir = &self.spec_dir;
        let path = self.kubeconfig_path();
        let (text, context) = match &self.kind {
            Kind::Local { .. } | Kind::Existing { .. } => {
                unreachable!("only kind, k3d and exec kubeconfigs are fetched")
            }
            Kind::Kind => (
                tool::run_ok(
                    "kind",
                    &["get".into(), "kubeconfig".into(), "--name".into(), self.name.clone()],
                    dir,
                    None,
                )
                .await?,
                None,
            ),
            Kind::K3d => {
                (tool::run_ok("k3d", &["kubeconfig".into(), "get".into(), self.name.clone()], dir, None).await?, None)
            }
            Kind::Exec { program } => {
                let k: ExecKubeconfig = self.parse(program, "kubeconfig", self.exec(program, "kubeconfig").await?)?;
                let text = match (k.kubeconfig, k.kubeconfig_path) {
                    (Some(text), _) => text,
                    (None, Some(p)) => {
                        let p = self.spec_dir.join(p);
                        std::fs::read_to_string(&p).map_err(self.io(&p))?
                    }
                    (None, None) => {
                        return Err(ProviderError::Protocol {
                            program: program.display().to_string(),
                            command: "kubeconfig".into(),
                            problem: "neither `kubeconfig` nor `kubeconfig_path` in the answer".into(),
                        });
                    }
                };
                (text, k.context)
            }
        };
        std::fs::create_dir_all(&self.state_dir).map_err(self.io(&self.state_dir))?;
        // Credentials: owner-only from the first byte.
        crate::files::write_private(&path, text.as_bytes()).map_err(self.io(&path))?;
        match &context {
            Some(c) => crate::files::write_private(&self.context_path(), c.as_bytes())
                .map_err(self.io(&self.context_path()))?,
            None => {
                let _ = std::fs::remove_file(self.context_path());
            }
        }
        Ok((Some(path), context))
    }

    /// A client for the cluster.
    pub async fn client(&self) -> Result<kube::Client, Box<dyn std::error::Error + Send + Sync>> {
        let (path, context) = self.kubeconfig().await?;
        let read = match &path {
            Some(p) => kube::config::Kubeconfig::read_from(p),
            None => kube::config::Kubeconfig::read(),
        };
        let kc = read.map_err(|e| unreadable_kubeconfig(path.as_deref(), context.as_deref(), &e))?;
        if let Some(want) = &context
            && !kc.contexts.iter().any(|c| &c.name == want)
        {
            let file = path.as_deref().map_or("the default kubeconfig".to_string(), |p| {
                let clean: PathBuf = p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
                clean.display().to_string()
            });
            let have: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            let have = if have.is_empty() { "none".to_string() } else { have.join(", ") };
            return Err(format!("kubeconfig {file} has no context `{want}` (its contexts: {have})").into());
        }
        let opts = kube::config::KubeConfigOptions { context, ..Default::default() };
        let config = kube::Config::from_custom_kubeconfig(kc, &opts).await?;
        Ok(crate::api::client(config)?)
    }
}

/// Says which kubeconfig could not be read, for which context, and how to
/// point at another (kube's own message quotes the path twice and no more).
fn unreadable_kubeconfig(path: Option<&Path>, context: Option<&str>, e: &kube::config::KubeconfigError) -> String {
    let file = match path {
        Some(p) => p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect::<PathBuf>(),
        None => PathBuf::from(std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into())),
    };
    let file = file.display();
    let context = context.map_or("its current context".to_string(), |c| format!("context `{c}`"));
    // A YAML error comes with a source excerpt over several lines: its first says it all.
    let cause = match e {
        kube::config::KubeconfigError::ReadConfig(io, _) => io.to_string(),
        e => e.to_string().lines().next().unwrap_or_default().to_string(),
    };
    format!(
        "cannot read kubeconfig {file} (looking for {context}): {cause}; \
         point the cluster at another with `kubeconfig: PATH` (and `context:`) in rekube.yaml, or set $KUBECONFIG"
    )
}
