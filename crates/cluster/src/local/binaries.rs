//! Where the control-plane binaries come from.
//!
//! Order of precedence, first match wins:
//! 1. `REKUBE_K8S_ASSETS`: a directory with `etcd`, `kube-apiserver` and
//!    `kube-controller-manager`;
//! 2. `KUBEBUILDER_ASSETS`: the same, in controller-runtime's envtest layout,
//!    so a user can test against a newer Kubernetes;
//! 3. the cache that `scripts/testbed-setup.sh` fills:
//!    `$REKUBE_CACHE/k8s/v1.20.2-r2` (default `~/.cache/rekube`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::LocalError;

/// The Kubernetes version that `scripts/testbed-setup.sh` builds.
pub const DEFAULT_VERSION: &str = "1.20.2";

/// The cache directory of the build `scripts/testbed-setup.sh` makes (the
/// suffix is its build revision: see the script).
pub const BUILD_ID: &str = "v1.20.2-r2";

/// The command a user runs to fill the cache; every "binaries missing" error names it.
pub const SETUP_COMMAND: &str = "scripts/testbed-setup.sh";

/// Paths of the three binaries a local control plane needs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub controller_manager: PathBuf,
}

/// rekube's cache root: `$REKUBE_CACHE`, else `$XDG_CACHE_HOME/rekube`, else `~/.cache/rekube`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REKUBE_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("rekube-cache"))
        .join("rekube")
}

impl Binaries {
    /// Finds the binaries from the environment or the cache (see the module docs).
    pub fn discover() -> Result<Self, LocalError> {
        let mut searched = Vec::new();
        for var in ["REKUBE_K8S_ASSETS", "KUBEBUILDER_ASSETS"] {
            if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                // An explicit setting that is wrong is an error, never a silent fallback.
                return Self::in_dir(Path::new(&dir))
                    .map_err(|missing| LocalError::BinariesMissing {
                        searched: vec![format!("{var}={}", dir.to_string_lossy())],
                        missing,
                    });
            }
            searched.push(format!("${var} (unset)"));
        }
        let dir = cache_dir().join("k8s").join(BUILD_ID);
        Self::in_dir(&dir).map_err(|missing| {
            searched.push(dir.display().to_string());
            LocalError::BinariesMissing { searched, missing }
        })
    }

    /// Uses the binaries in `dir`, or returns the names that are missing there.
    pub fn in_dir(dir: &Path) -> Result<Self, Vec<String>> {
        let find = |name: &str| {
            let path = dir.join(name);
            is_executable(&path).then_some(path)
        };
        let (etcd, apiserver, controller_manager) =
            (find("etcd"), find("kube-apiserver"), find("kube-controller-manager"));
        match (etcd, apiserver, controller_manager) {
            (Some(etcd), Some(apiserver), Some(controller_manager)) => Ok(Self {
                etcd,
                apiserver,
                controller_manager,
            }),
            (e, a, c) => Err([("etcd", e), ("kube-apiserver", a), ("kube-controller-manager", c)]
                .into_iter()
                .filter(|(_, p)| p.is_none())
                .map(|(n, _)| n.to_string())
                .collect()),
        }
    }

    /// The apiserver's own version, e.g. `v1.20.2`, from `kube-apiserver --version`.
    pub fn version(&self) -> Option<String> {
        let out = Command::new(&self.apiserver).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().last().map(str::to_string)
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
