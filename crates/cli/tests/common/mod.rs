//! What the CLI tests share: a scratch directory holding a spec, the real
//! binary run in it with the test bed's tools, and output helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use rekube_testbed::{TestCluster, tools};

/// A spec directory with its own render cache.
pub struct Workdir {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Workdir {
    /// An empty directory.
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), cache: tempfile::tempdir().unwrap(), envs: Vec::new() }
    }

    /// A path inside it.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating directories.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, key: &str, value: &str) {
        self.envs.push((key.to_string(), value.to_string()));
    }

    /// Lets the `local` provider pick any control-plane build of the
    /// machine by `kubernetes:` (instead of the test matrix's one): the
    /// builds are linked into this directory's cache.
    pub fn any_version(&mut self) {
        let builds = rekube_cluster::local::cache_dir().join("k8s");
        std::os::unix::fs::symlink(&builds, self.cache.path().join("k8s")).unwrap();
        self.env("REKUBE_K8S_ASSETS", "");
    }

    /// The real `rekube` binary, to run here.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rekube"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("REKUBE_HELM", tools::helm())
            .env("REKUBE_KUBECTL", tools::kubectl())
            .env("REKUBE_CACHE", self.cache.path())
            // The render cache is per test; the control-plane build is the machine's.
            .env("REKUBE_K8S_ASSETS", k8s_assets())
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Runs the real `rekube` binary here.
    pub fn rekube(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

/// Where the test bed's control-plane binaries are (panics with the set-up
/// command when they are missing).
pub fn k8s_assets() -> PathBuf {
    let b = rekube_cluster::local::Binaries::discover_version(rekube_testbed::k8s_version().as_deref())
        .unwrap_or_else(|e| panic!("test bed: {e}\n(set it up with `scripts/testbed-setup.sh`)"));
    b.etcd.parent().unwrap().to_path_buf()
}

/// A `clusters:` entry for a test cluster started as `context`.
pub fn existing(name: &str, cluster: &TestCluster, context: &str) -> String {
    format!("  {name}: {{ provider: existing, kubeconfig: {}, context: {context} }}\n", cluster.kubeconfig().display())
}

/// stdout.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout, after asserting success.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "rekube failed ({}):\nstdout:\n{}\nstderr:\n{}", o.status, out(o), err(o));
    out(o)
}

/// Filters times and ports out of output.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"\d+\.\ds", "[TIME]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    // The test matrix runs every test on each Kubernetes version.
    s.add_filter(r"v1\.\d+\.\d+ +", "[K8S-VERSION] ");
    s.add_filter(r"v1\.\d+\.\d+", "[K8S-VERSION]");
    // Ids hash the project, which is the temporary directory's name.
    s.add_filter(r"applyset-[A-Za-z0-9_-]{43}-v1", "[APPLYSET-ID]");
    s
}

/// `s` for an output that really differs between Kubernetes versions: its
/// snapshot is kept once per version of the test matrix (`name@k8s-1.34`).
pub fn per_version(mut s: insta::Settings) -> insta::Settings {
    s.set_snapshot_suffix(format!("k8s-1.{}", rekube_testbed::k8s_minor()));
    s
}

/// `kubectl` on a test cluster, asserting success.
pub fn get(cluster: &TestCluster, args: &[&str]) -> String {
    let o = cluster.kubectl().args(args).output().unwrap();
    assert!(o.status.success(), "kubectl {args:?}: {}", err(&o));
    out(&o)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Copies the example platform's charts, manifests and values into `w`, and
/// returns its `components:` section (starting with a newline), to put in
/// a spec of the test's own.
pub fn example_components(w: &Workdir) -> String {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform");
    for dir in ["charts", "deploy", "values"] {
        std::fs::create_dir_all(w.path(dir)).unwrap();
        copy_dir(&example.join(dir), &w.path(dir));
    }
    let spec = std::fs::read_to_string(example.join("rekube.yaml")).unwrap();
    spec[spec.find("\ncomponents:\n").unwrap()..spec.find("\nenvironments:\n").unwrap()].to_string()
}
