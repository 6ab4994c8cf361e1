//! Where the control-plane binaries come from.
//!
//! Order of precedence, first match wins:
//! 1. `REKUBE_K8S_ASSETS`: a directory with `etcd`, `kube-apiserver` and
//!    `kube-controller-manager`;
//! 2. `KUBEBUILDER_ASSETS`: the same, in controller-runtime's envtest layout,
//!    so a user can test against a newer Kubernetes;
//! 3. rekube's cache, one directory per build: `$REKUBE_CACHE/k8s/v1.20.2-r2`,
//!    `$REKUBE_CACHE/k8s/v1.34.12-r1` (default `~/.cache/rekube`). A
//!    cluster's `kubernetes: "1.34"` picks the newest build of that minor
//!    version; without it, the newest build.
//!
//! docs/providers.md says how to build or get the binaries; an installed
//! rekube has no repository scripts, so no message names one.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::LocalError;

/// What to do about [`LocalError::BinariesMissing`]: the places rekube looks,
/// in order, and the page that says how to build or get the binaries.
pub const BINARIES_HINT: &str = "point REKUBE_K8S_ASSETS (or KUBEBUILDER_ASSETS) at a directory holding etcd, \
    kube-apiserver and kube-controller-manager, or put them in rekube's cache as `k8s/v<version>/` \
    (e.g. `~/.cache/rekube/k8s/v1.34.12/`); docs/providers.md says how to build or get them";

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
    dirs::cache_dir().unwrap_or_else(|| std::env::temp_dir().join("rekube-cache")).join("rekube")
}

impl Binaries {
    /// Finds the binaries of Kubernetes `want` (`"1.34"` or `"1.34.12"`;
    /// `None`: the newest), from the environment or the cache.
    pub fn discover_version(want: Option<&str>) -> Result<Self, LocalError> {
        let mut searched = Vec::new();
        for var in ["REKUBE_K8S_ASSETS", "KUBEBUILDER_ASSETS"] {
            if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                // An explicit setting that is wrong is an error, never a silent fallback.
                let bins = Self::in_dir(Path::new(&dir)).map_err(|missing| LocalError::BinariesMissing {
                    searched: vec![format!("{var}={}", dir.to_string_lossy())],
                    missing,
                })?;
                if let Some(want) = want {
                    let have = bins.version().unwrap_or_default();
                    if !version_matches(have.trim_start_matches('v'), want) {
                        return Err(LocalError::WrongVersion {
                            want: want.to_string(),
                            have,
                            found_in: format!("{var}={}", dir.to_string_lossy()),
                        });
                    }
                }
                return Ok(bins);
            }
            searched.push(format!("${var} (unset)"));
        }
        let root = cache_dir().join("k8s");
        let builds = builds(&root);
        let pick = builds.iter().rev().find(|(v, _)| want.is_none_or(|w| version_matches(v, w)));
        match pick {
            Some((_, dir)) => Self::in_dir(dir)
                .map_err(|missing| LocalError::BinariesMissing { searched: vec![dir.display().to_string()], missing }),
            None => {
                let have: Vec<String> = builds.iter().map(|(v, _)| v.clone()).collect();
                searched.push(match want {
                    Some(w) => format!(
                        "{} (for Kubernetes {w}; built there: {})",
                        root.display(),
                        if have.is_empty() { "none".to_string() } else { have.join(", ") }
                    ),
                    None => root.display().to_string(),
                });
                Err(LocalError::BinariesMissing {
                    searched,
                    missing: vec!["etcd".into(), "kube-apiserver".into(), "kube-controller-manager".into()],
                })
            }
        }
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
            (Some(etcd), Some(apiserver), Some(controller_manager)) => Ok(Self { etcd, apiserver, controller_manager }),
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

    /// The minor version (`20` of `v1.20.2`); flags and readiness differ by it.
    pub fn minor(&self) -> Option<u32> {
        minor_of(&self.version()?)
    }
}

/// `20` of `v1.20.2` or `1.20`.
pub fn minor_of(version: &str) -> Option<u32> {
    version.trim_start_matches('v').split('.').nth(1)?.parse().ok()
}

/// Whether `have` (`1.34.12`) is what `want` asks for (`1.34`, `1.34.12`, `v1.34`).
pub fn version_matches(have: &str, want: &str) -> bool {
    let want = want.trim_start_matches('v');
    have == want || have.starts_with(&format!("{want}."))
}

/// The builds in the cache (`v1.34.12-r1` → `1.34.12`), oldest first.
pub fn builds(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(Vec<u32>, String, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix('v')?.split('-').next()?.to_string();
            let key: Vec<u32> = version.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
            Binaries::in_dir(&e.path()).ok()?;
            Some((key, version, e.path()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, v, p)| (v, p)).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_by_prefix_of_whole_parts() {
        assert!(version_matches("1.34.12", "1.34"));
        assert!(version_matches("1.34.12", "v1.34.12"));
        assert!(!version_matches("1.34.12", "1.3"));
        assert!(!version_matches("1.20.2", "1.34"));
        assert_eq!(minor_of("v1.20.2"), Some(20));
        assert_eq!(minor_of("1.34"), Some(34));
    }
}
