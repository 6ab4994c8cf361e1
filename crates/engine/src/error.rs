//! Every way an operation fails, typed down to the CLI, with the hint a
//! user needs next. A message shows its cause once.

use std::path::PathBuf;

use rekube_cluster::local::LocalError;
use rekube_cluster::prereq::PrereqError;
use rekube_cluster::provider::ProviderError;
use rekube_cluster::tool::ToolError;
use rekube_kube::KubeError;
use rekube_render::RenderError;

use crate::journal::JournalError;
use crate::lease::{LEASE_SECONDS, LeaseError};

/// Why an operation stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spec, the lock file or a rendered input is invalid: the text is
    /// the formatted diagnostics (file, line, field, hint), printed as is.
    #[error("{0}")]
    Invalid(String),
    /// A component named on the command line is not in the spec.
    #[error("no component `{name}`")]
    NoComponent {
        /// The name given.
        name: String,
        /// The declared ones.
        declared: Vec<String>,
    },
    /// The environment's cluster does not exist.
    #[error("cluster `{cluster}` does not exist")]
    ClusterAbsent {
        /// The cluster.
        cluster: String,
        /// The environment.
        environment: String,
    },
    /// A local cluster whose processes are not running.
    #[error("cluster `{cluster}` is not running: {problem}")]
    ClusterStopped {
        /// The cluster.
        cluster: String,
        /// The environment.
        environment: String,
        /// What is wrong.
        problem: String,
    },
    /// No client could be made for the cluster.
    #[error("cannot reach cluster `{cluster}`: {reason}")]
    Unreachable {
        /// The cluster.
        cluster: String,
        /// Why (the kubeconfig or the connection).
        reason: String,
    },
    /// rebuild-check of a cluster that may not be deleted.
    #[error("cluster `{cluster}` is not disposable: rebuild-check would delete it")]
    NotDisposable {
        /// The cluster.
        cluster: String,
    },
    /// rebuild-check of an empty environment.
    #[error("`{environment}` has no objects to compare")]
    NothingToCompare {
        /// The environment.
        environment: String,
    },
    /// `backup` without a `backup:` section in the spec.
    #[error("{} has no `backup:` section", spec.display())]
    NoBackupSection {
        /// The spec file.
        spec: PathBuf,
    },
    /// `backup create --name` that cannot be a directory in the store.
    #[error("--name `{name}` is not a backup name")]
    BadBackupName {
        /// The name given.
        name: String,
    },
    /// `backup create --own` of an environment with nothing applied.
    #[error("project `{project}` has nothing of environment `{environment}` on cluster `{cluster}`")]
    NothingOwned {
        /// The project.
        project: String,
        /// The environment.
        environment: String,
        /// Its cluster.
        cluster: String,
    },
    /// A preview that cannot be made as asked (its name, values, or an
    /// object it would share).
    #[error("{message}")]
    Preview {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// `upgrade` refused, or stopped before traffic moved.
    #[error("{message}")]
    Upgrade {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The traffic split (Route53 or the exec program).
    #[error(transparent)]
    Traffic(#[from] rekube_cluster::traffic::TrafficError),
    /// `preview down` of a preview that is not on the cluster.
    #[error("no preview `{name}` of project `{project}` on cluster `{cluster}`")]
    NoPreview {
        /// The preview.
        name: String,
        /// The project.
        project: String,
        /// The cluster asked.
        cluster: String,
    },
    /// The backup store, an archive, or a restore.
    #[error(transparent)]
    Backup(#[from] rekube_backup::BackupError),
    /// A local file could not be read or written.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// `create`, `write`, ...
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A prerequisite's command failed.
    #[error(transparent)]
    Prerequisite(#[from] PrereqError),
    /// Talking to the cluster failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The local journal or lock.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The cluster-side lease.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

fn too_large_hint() -> String {
    "a template that loops (a `range` over a huge list, a recursive `include`)? run `helm template` on the chart \
     with the same values and look at the size of what it prints"
        .into()
}

impl EngineError {
    /// What to do next, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        use EngineError as E;
        match self {
            E::Unreachable { reason, .. } if reason.contains("has no context") => Some(
                "fix the cluster's `context:` in rekube.yaml, or point its `kubeconfig:` at the file that has it \
                 (`kubectl config get-contexts` lists them)"
                    .into(),
            ),
            E::Unreachable { reason, .. } if reason.contains("cannot read kubeconfig") => {
                Some("`kubectl --kubeconfig <file> config get-contexts` shows whether the file is usable".into())
            }
            E::NoComponent { declared, .. } => Some(format!("declared components: {}", declared.join(", "))),
            E::ClusterAbsent { environment, .. } => Some(format!("create it with `rekube up {environment}`")),
            E::ClusterStopped { environment, .. } => Some(format!("start it with `rekube up {environment}`")),
            E::NotDisposable { .. } => {
                Some("mark it `disposable: true` if it may be torn down and rebuilt, or use a `local` cluster".into())
            }
            E::NoBackupSection { .. } => Some(
                "add `backup: { store: ./backups, encrypt-secrets: [age1...] }` (or `store: s3://bucket/prefix`)"
                    .into(),
            ),
            E::BadBackupName { .. } => {
                Some("use letters, digits, '.', '_' and '-' (it becomes a directory in the store)".into())
            }
            E::NothingOwned { environment, .. } => {
                Some(format!("apply it first (`rekube apply {environment}`), or back up without --own"))
            }
            E::Backup(b) => b.hint(),
            E::Preview { hint, .. } | E::Upgrade { hint, .. } => Some(hint.clone()),
            E::NoPreview { .. } => Some("`rekube preview list` shows the previews on it".into()),
            E::NothingToCompare { environment } => Some(format!("bring it up first: `rekube up {environment}`")),
            E::Journal(JournalError::Locked { .. }) => {
                Some("wait for it to finish, or stop it; the lock is released the moment its process ends".into())
            }
            E::Provider(ProviderError::Local(LocalError::BinariesMissing { .. })) => {
                Some(rekube_cluster::local::BINARIES_HINT.to_string())
            }
            E::Render(RenderError::Component { cause, .. }) if matches!(**cause, RenderError::TooLarge { .. }) => {
                Some(too_large_hint())
            }
            E::Render(RenderError::TooLarge { .. }) => Some(too_large_hint()),
            E::Provider(ProviderError::Tool(ToolError::TimedOut { .. }))
            | E::Prerequisite(PrereqError::Tool { cause: ToolError::TimedOut { .. }, .. })
            | E::Render(RenderError::TimedOut { .. }) => Some(format!(
                "it may be waiting for input or for a network that does not answer; to allow it longer, set \
                 {}=1h (defaults: 5m for helm and kustomize, 30m for providers and prerequisites)",
                rekube_cluster::tool::TIMEOUT_VAR
            )),
            E::Render(RenderError::Component { cause, .. }) if matches!(**cause, RenderError::TimedOut { .. }) => {
                Some(format!(
                    "a template that loops, or a chart waiting on a network? to allow it longer, set {}=1h \
                     (default 5m for helm and kustomize)",
                    rekube_cluster::tool::TIMEOUT_VAR
                ))
            }
            E::Provider(ProviderError::Tool(ToolError::Spawn { program, .. })) => {
                Some(format!("is `{program}` installed, executable and on PATH? (docs/providers.md)"))
            }
            E::Lease(LeaseError::Busy { .. }) => Some(format!(
                "wait for it to finish; if its process died, the lease expires within {LEASE_SECONDS}s of its last \
                 renewal; `--break-lock` takes it at once (only when you are sure it is not running)"
            )),
            E::Lease(LeaseError::Kube(k)) | E::Kube(k) => kube_hint(k),
            E::Render(RenderError::ToolMissing { .. }) => Some(
                "put helm (and kubectl, for kustomize) on PATH, or point REKUBE_HELM and REKUBE_KUBECTL at them \
                 (docs/spec.md)"
                    .into(),
            ),
            E::Render(RenderError::Helm { what, stderr })
                if stderr.contains("cannot be reached") || stderr.contains("connection refused") =>
            {
                let repo = what.rsplit_once(" from ").map_or("the chart repository", |(_, r)| r);
                Some(format!(
                    "is {repo} up? `curl {}/index.yaml` should print its index; a chart already in rekube.lock \
                     renders from rekube's cache without it",
                    repo.trim_end_matches('/')
                ))
            }
            E::Render(RenderError::Component { cause, .. })
                if matches!(**cause, RenderError::DigestMismatch { .. }) =>
            {
                Some(
                    "do not apply it: check with the chart's publisher; if the change is expected, run \
                     `rekube lock --update`"
                        .into(),
                )
            }
            _ => None,
        }
    }
}

fn kube_hint(e: &KubeError) -> Option<String> {
    use KubeError as K;
    match e {
        K::UnknownKind { .. } => Some(
            "install the CustomResourceDefinition first (in a component this one `needs`), or fix apiVersion/kind"
                .into(),
        ),
        K::ProjectClash(c) => Some(format!(
            "the project name `{p}` comes from the spec's directory; if both specs are one project, write \
             `project: {p}` in each rekube.yaml; if not, give this one its own `project:`",
            p = c.project
        )),
        K::Refused { conflicts, adoptions } if conflicts.is_empty() && !adoptions.is_empty() => Some(
            "to take them over, run `rekube apply --adopt` (or set `adopt: true` on the component); or remove \
             them from the spec"
                .into(),
        ),
        K::Api { what, error } if rekube_kube::request::dropped(error) => Some(format!(
            "the API server dropped the connection during `{what}` (rekube retried 6 times); run the command \
             again; if it repeats, read the API server's log, and `kubectl get apiservices` for an aggregated API \
             that is down"
        )),
        K::ForeignHook { .. } => Some(
            "rekube replaces only the hooks it created; delete or rename that object, or give the hook another name"
                .into(),
        ),
        K::ReplaceRefused { .. } => Some(
            "run `rekube apply --force-replace` to delete and create them again (what they run restarts), or \
             annotate each `rekube.dev/replace: \"true\"`; or keep the old value of the field"
                .into(),
        ),
        K::Refused { .. } => Some(
            "rename the objects, remove them from the spec, or release them from their owner first; rekube never \
             takes over what another owner manages"
                .into(),
        ),
        _ => None,
    }
}

/// `map_err` for local I/O.
pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io { what, path, source }
}
