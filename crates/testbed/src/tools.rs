//! The real `helm` and `kubectl` binaries, as `scripts/testbed-setup.sh`
//! extracted them into the cache (`REKUBE_HELM` / `REKUBE_KUBECTL` override).

use std::path::{Path, PathBuf};
use std::process::Command;

use rekube_cluster::local::cache_dir;

use crate::SETUP_HINT;

fn tool(name: &str, var: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("tools").join(name));
    assert!(path.is_file(), "test bed: {name} not found at {}\n(set it up with `{SETUP_HINT}`)", path.display());
    path
}

/// The `helm` v4 binary.
pub fn helm() -> PathBuf {
    tool("helm", "REKUBE_HELM")
}

/// The `kubectl` binary shipped beside helm.
pub fn kubectl() -> PathBuf {
    tool("kubectl", "REKUBE_KUBECTL")
}

/// `helm` with its config, cache and data directories under `home`, so tests
/// never read or write the user's Helm state.
pub fn helm_command(home: &Path) -> Command {
    let mut cmd = Command::new(helm());
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// Runs `cmd`, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
