//! `rekube up`, `status` and `down` of the example platform on the `local`
//! provider: a real control plane and fake node that outlive the command,
//! and nothing left behind after `down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rekube_cluster::local::pid_runs_in;
use rekube_testbed::tools::{kubectl, run};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == ".rekube" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn example_platform() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform"), dir.path());
    // The test matrix's Kubernetes instead of the example's.
    let spec = dir.path().join("rekube.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains("kubernetes: \"1.34\""), "the example names its version");
    std::fs::write(
        &spec,
        text.replace("kubernetes: \"1.34\"", &format!("kubernetes: \"1.{}\"", rekube_testbed::k8s_minor())),
    )
    .unwrap();
    dir
}

fn rekube(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rekube")).args(args).current_dir(dir).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "rekube failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// PIDs of every process whose command line names `dir`.
fn processes_in(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| pid_runs_in(*pid, dir))
        .collect()
}

/// Kills whatever a failed test left, so one failure does not leak processes.
/// Files under `dir` that group or others may read, logs and public
/// certificates left out (they hold no credentials).
fn readable_by_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(readable_by_others(&path));
        } else if meta.is_file()
            && meta.permissions().mode() & 0o044 != 0
            && path.extension().is_none_or(|e| e != "log" && e != "crt")
        {
            out.push(format!("{} {:o}", path.display(), meta.permissions().mode() & 0o777));
        }
    }
    out
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = rekube(&self.0, &["down", "dev"]);
    }
}

#[test]
fn up_status_down_of_the_example_platform() {
    let dir = example_platform();
    let _cleanup = Cleanup(dir.path().to_path_buf());

    let up: serde_json::Value = serde_json::from_str(&ok(&rekube(dir.path(), &["up", "dev", "-o", "json"]))).unwrap();
    assert_eq!(up["created"], true);
    assert!(up["version"].as_str().unwrap().starts_with(&format!("v1.{}.", rekube_testbed::k8s_minor())), "{up}");
    let kubeconfig = PathBuf::from(up["kubeconfig"].as_str().unwrap());

    // The cluster outlives the command: the real kubectl sees a Ready node.
    let nodes = run(Command::new(kubectl()).arg("--kubeconfig").arg(&kubeconfig).args([
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
    ]));
    assert_eq!(nodes, "True");

    let status: serde_json::Value =
        serde_json::from_str(&ok(&rekube(dir.path(), &["status", "dev", "-o", "json"]))).unwrap();
    assert_eq!(status[0]["state"], "running");
    assert_eq!(status[0]["components"][0]["component"], "web");
    assert_eq!(status[0]["components"][0]["health"], "healthy");
    assert!(status[0]["last_applied"].as_str().is_some_and(|t| t.starts_with("20")), "{status}");
    let mut filters = insta::Settings::clone_current();
    filters.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    filters.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", "[TIME]");
    filters.add_filter(r"v1\.\d+\.\d+ +", "[K8S-VERSION] ");
    // Why `staging` cannot be reached depends on this machine's ~/.kube/config.
    filters.add_filter(r"(?m)^(staging .*)\n  .*$", "$1\n  [WHY]");
    filters.bind(|| insta::assert_snapshot!("status_running", ok(&rekube(dir.path(), &["status"]))));
    assert_eq!(status[0]["endpoint"], up["endpoint"]);

    // The picture, colored by health: both components are healthy.
    let graph = ok(&rekube(dir.path(), &["graph", "dev", "--health"]));
    assert!(graph.contains("  class web healthy\n") && graph.contains("  class app healthy\n"), "{graph}");

    // A second `up` finds it running and changes nothing.
    let again: serde_json::Value =
        serde_json::from_str(&ok(&rekube(dir.path(), &["up", "dev", "-o", "json"]))).unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["endpoint"], up["endpoint"]);

    let cluster_dir = dir.path().join(".rekube/clusters/dev");
    let cluster_dir = std::path::absolute(&cluster_dir).unwrap();
    assert_eq!(processes_in(&cluster_dir).len(), 4, "etcd, apiserver, controller-manager and fake kubelet run");
    // Keys, tokens, kubeconfigs, journals: none readable by group or others.
    assert_eq!(readable_by_others(&dir.path().join(".rekube")), Vec::<String>::new());

    let down = rekube(dir.path(), &["down", "dev"]);
    ok(&down);
    let mut filters = insta::Settings::clone_current();
    filters.add_filter(r"\d+\.\ds", "[TIME]");
    filters.add_filter(r"(?m)^\w+: waiting: .*\n", "");
    filters.bind(|| insta::assert_snapshot!("down", String::from_utf8_lossy(&down.stderr)));
    assert_eq!(processes_in(&cluster_dir), Vec::<u32>::new(), "no process of the cluster survives `down`");
    assert!(!cluster_dir.exists(), "`down` deletes the cluster's data");
    let status: serde_json::Value =
        serde_json::from_str(&ok(&rekube(dir.path(), &["status", "dev", "-o", "json"]))).unwrap();
    assert_eq!(status[0]["state"], "absent");
}

#[test]
fn up_with_a_missing_environment_names_the_declared_ones() {
    let dir = example_platform();
    let out = rekube(dir.path(), &["up", "stagin"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "error: rekube.yaml: no environment `stagin`\nhint: did you mean `staging`?\n");
    assert!(!dir.path().join(".rekube").exists(), "nothing was created");
}
