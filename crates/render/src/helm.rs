//! The real `helm` binary: `template`, `pull` and `show chart`, with its
//! caches kept under rekube's cache (never the user's Helm state), plus the
//! two caches that make a warm render need no network and no helm run:
//!
//! - charts by digest: `charts/sha256/<hex>.tgz`, and `charts/refs.json`
//!   mapping `repo|name|version` to a digest;
//! - rendered output by the digest of every input: `render/<hex>.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::RenderError;

/// A helm binary and the directories it may write.
#[derive(Debug, Clone)]
pub struct Helm {
    bin: PathBuf,
    home: PathBuf,
    /// `helm version --short`, part of every render-cache key.
    pub version: String,
    /// How long one helm command may run before it is stopped.
    timeout: std::time::Duration,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A digest of a whole directory (relative paths and contents, sorted), for
/// local charts and kustomizations in cache keys.
pub fn dir_digest(dir: &Path) -> std::io::Result<String> {
    fn walk(base: &Path, dir: &Path, h: &mut Sha256) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap_or(&path);
            if e.file_type()?.is_dir() {
                walk(base, &path, h)?;
            } else {
                h.update(rel.to_string_lossy().as_bytes());
                h.update([0]);
                h.update(std::fs::read(&path)?);
                h.update([0]);
            }
        }
        Ok(())
    }
    let mut h = Sha256::new();
    if dir.is_dir() {
        walk(dir, dir, &mut h)?;
    } else {
        h.update(std::fs::read(dir)?);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Where a tool is: `explicit`, else `$var`, else `<cache>/tools/<name>` (as
/// `scripts/testbed-setup.sh` installs it), else `name` on `PATH`.
pub(crate) fn find_tool(cache: &Path, explicit: Option<&Path>, var: &str, name: &str) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(var).map(PathBuf::from))
        .filter(|v| !v.as_os_str().is_empty())
        .or_else(|| Some(cache.join("tools").join(name)).filter(|p| p.is_file()))
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Helm {
    /// Finds helm (`REKUBE_HELM`, then `<cache>/tools/helm`, then `PATH`) and
    /// reads its version.
    pub async fn discover(cache: &Path, explicit: Option<&Path>) -> Result<Self, RenderError> {
        let bin = find_tool(cache, explicit, "REKUBE_HELM", "helm");
        let mut helm = Self { bin, home: cache.join("helm"), version: String::new(), timeout: crate::TOOL_TIMEOUT };
        let out = helm.command().args(["version", "--short"]).output().await.map_err(|e| RenderError::ToolMissing {
            tool: "helm".into(),
            detail: format!("{}: {e}", helm.bin.display()),
        })?;
        helm.version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(helm)
    }

    /// Stops each helm command after `timeout` (default [`crate::TOOL_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, cmd: Command, what: &str) -> Result<String, RenderError> {
        let out = crate::within(self.timeout, what, crate::bounded_output(cmd, what))
            .await??
            .map_err(|e| RenderError::ToolMissing { tool: "helm".into(), detail: e.to_string() })?;
        if !out.status.success() {
            return Err(RenderError::Helm {
                what: what.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        String::from_utf8(out.stdout)
            .map_err(|_| RenderError::Helm { what: what.to_string(), stderr: "output is not UTF-8".into() })
    }

    /// `helm template`.
    #[allow(clippy::too_many_arguments)]
    pub async fn template(
        &self,
        release: &str,
        chart: &Path,
        namespace: &str,
        values: &Path,
        kube_version: Option<&str>,
        api_versions: &[String],
    ) -> Result<String, RenderError> {
        let mut cmd = self.command();
        cmd.arg("template")
            .arg(release)
            .arg(chart)
            .args(["--namespace", namespace, "--include-crds", "-f"])
            .arg(values);
        if let Some(v) = kube_version {
            cmd.args(["--kube-version", v]);
        }
        for a in api_versions {
            cmd.args(["--api-versions", a]);
        }
        self.run(cmd, &format!("helm template {release}")).await
    }

    /// `helm pull` of one exact version into `dest`; returns the archive.
    pub async fn pull(&self, repo: &str, name: &str, version: &str, dest: &Path) -> Result<PathBuf, RenderError> {
        let mut cmd = self.command();
        cmd.arg("pull");
        if repo.starts_with("oci://") {
            cmd.arg(format!("{}/{name}", repo.trim_end_matches('/')));
        } else {
            cmd.args([name, "--repo", repo]);
        }
        cmd.args(["--version", version, "--destination"]).arg(dest);
        self.run(cmd, &format!("helm pull {name} {version} from {repo}")).await?;
        let mut found = std::fs::read_dir(dest)
            .map_err(|e| RenderError::Io { path: dest.to_path_buf(), cause: e })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "tgz"));
        found.next().ok_or_else(|| RenderError::Helm {
            what: format!("helm pull {name} {version}"),
            stderr: "no chart archive was written".into(),
        })
    }

    /// The exact version `helm show chart` picks for a constraint (`latest`: newest stable).
    pub async fn resolve_version(&self, repo: &str, name: &str, constraint: &str) -> Result<String, RenderError> {
        let mut cmd = self.command();
        cmd.args(["show", "chart"]);
        if repo.starts_with("oci://") {
            cmd.arg(format!("{}/{name}", repo.trim_end_matches('/')));
        } else {
            cmd.args([name, "--repo", repo]);
        }
        if constraint != "latest" {
            cmd.args(["--version", constraint]);
        }
        let text = self.run(cmd, &format!("helm show chart {name} ({constraint}) from {repo}")).await?;
        text.lines()
            .find_map(|l| l.strip_prefix("version:"))
            .map(|v| v.trim().trim_matches('"').to_string())
            .ok_or_else(|| RenderError::Helm {
                what: format!("helm show chart {name}"),
                stderr: "Chart.yaml has no version".into(),
            })
    }
}

/// Chart archives by digest, shared by every spec on the machine.
#[derive(Debug, Clone)]
pub struct ChartCache {
    dir: PathBuf,
}

fn ref_key(repo: &str, name: &str, version: &str) -> String {
    format!("{}|{name}|{version}", repo.trim_end_matches('/'))
}

impl ChartCache {
    /// The cache under `<cache>/charts`.
    pub fn new(cache: &Path) -> Self {
        Self { dir: cache.join("charts") }
    }

    fn archive(&self, digest: &str) -> PathBuf {
        self.dir.join("sha256").join(format!("{}.tgz", digest.trim_start_matches("sha256:")))
    }

    fn refs(&self) -> BTreeMap<String, String> {
        std::fs::read(self.dir.join("refs.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn remember(&self, key: String, digest: &str) -> std::io::Result<()> {
        let mut refs = self.refs();
        refs.insert(key, digest.to_string());
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::fs::write(tmp.path(), serde_json::to_vec_pretty(&refs).map_err(std::io::Error::other)?)?;
        tmp.persist(self.dir.join("refs.json")).map(|_| ()).map_err(|e| e.error)
    }

    /// The archive of `name` `version` from `repo`, from the cache when its
    /// digest is known (from the lock, or from an earlier download), else
    /// downloaded with helm. A download whose digest differs from `expected`
    /// is refused.
    pub async fn fetch(
        &self,
        helm: &Helm,
        repo: &str,
        name: &str,
        version: &str,
        expected: Option<&str>,
    ) -> Result<(PathBuf, String), RenderError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RenderError::Io { path, cause: source }
        };
        let key = ref_key(repo, name, version);
        let known = expected.map(str::to_string).or_else(|| self.refs().get(&key).cloned());
        if let Some(digest) = &known {
            let path = self.archive(digest);
            if path.is_file() {
                return Ok((path, digest.clone()));
            }
        }
        std::fs::create_dir_all(self.dir.join("sha256")).map_err(io(&self.dir))?;
        let tmp = tempfile::tempdir_in(&self.dir).map_err(io(&self.dir))?;
        let pulled = helm.pull(repo, name, version, tmp.path()).await?;
        let bytes = std::fs::read(&pulled).map_err(io(&pulled))?;
        let digest = sha256(&bytes);
        if let Some(want) = expected
            && want != digest
        {
            return Err(RenderError::DigestMismatch {
                chart: format!("{name} {version} from {repo}"),
                locked: want.to_string(),
                got: digest,
            });
        }
        let path = self.archive(&digest);
        std::fs::rename(&pulled, &path).map_err(io(&path))?;
        self.remember(key, &digest).map_err(io(&self.dir))?;
        Ok((path, digest))
    }
}

/// Rendered output by the digest of all its inputs.
#[derive(Debug, Clone)]
pub struct RenderCache {
    dir: PathBuf,
}

impl RenderCache {
    /// The cache under `<cache>/render`.
    pub fn new(cache: &Path) -> Self {
        Self { dir: cache.join("render") }
    }

    /// The cached output for `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(format!("{key}.yaml"))).ok()
    }

    /// Stores output (best effort: a cache that cannot be written only costs time).
    pub fn put(&self, key: &str, text: &str) {
        if std::fs::create_dir_all(&self.dir).is_ok()
            && let Ok(tmp) = tempfile::NamedTempFile::new_in(&self.dir)
            && std::fs::write(tmp.path(), text).is_ok()
        {
            let _ = tmp.persist(self.dir.join(format!("{key}.yaml")));
        }
    }
}

/// The cache key of a render: a digest over every input, in a fixed order.
pub fn render_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}
