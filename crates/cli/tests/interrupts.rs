//! Ctrl-C and SIGTERM through the real binary: the first stops new work
//! (what is in flight finishes), releases the lease, says what to run
//! again and exits 130; a second quits at once; either way a rerun
//! converges.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rekube_testbed::TestCluster;

mod common;

use common::{Workdir, err, get, ok, out};

/// A claim no provisioner serves: apply waits on its health (Bound).
const SLOW: &str = "\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: slow }
spec:
  storageClassName: nowhere
  accessModes: [ReadWriteOnce]
  resources: { requests: { storage: 1Gi } }
";

fn exists(cluster: &TestCluster, args: &[&str]) -> bool {
    cluster.kubectl().arg("get").args(args).output().unwrap().status.success()
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) on a child we started.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Starts `rekube apply dev` and returns once it waits on `slow`'s health.
fn apply_waiting(w: &Workdir, cluster: &TestCluster) -> std::process::Child {
    let child = w.command(&["apply", "dev"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let began = Instant::now();
    while !(exists(cluster, &["pvc", "slow", "-n", "slow"])
        && exists(cluster, &["lease", "rekube.intr.dev", "-n", "rekube-system"]))
    {
        assert!(began.elapsed() < Duration::from_secs(60), "apply never reached the health wait");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_new_work_releases_the_lease_and_a_rerun_converges() {
    let cluster = TestCluster::with_kubelet("interrupts").await;
    let w = Workdir::new();
    w.write("slow/deploy.yaml", SLOW);
    w.write("after/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: after }\ndata: { a: b }\n");
    let context = {
        let text = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
        text.lines().find_map(|l| l.strip_prefix("current-context: ")).unwrap().trim().to_string()
    };
    w.write(
        "rekube.yaml",
        &format!(
            "project: intr\nclusters:\n{}components:\n  slow: {{ manifests: ./slow, namespace: slow }}\n  \
             after: {{ manifests: ./after, namespace: after, needs: [slow] }}\n\
             environments:\n  dev: {{ cluster: dev }}\n",
            common::existing("dev", &cluster, &context)
        ),
    );

    // One Ctrl-C: the health wait stops, `after` never starts, the lease goes.
    let child = apply_waiting(&w, &cluster);
    signal(&child, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    let said = err(&o);
    assert_eq!(o.status.code(), Some(130), "{said}");
    assert!(said.contains("stopping: requests in flight finish, nothing new starts"), "{said}");
    assert!(said.contains("interrupted (Ctrl-C or SIGTERM)"), "{said}");
    assert!(said.contains("`rekube apply dev` again picks up from there"), "{said}");
    assert!(
        !said.contains("quit:") && !said.contains("quit at once:"),
        "it stopped by itself, not by the deadline: {said}"
    );
    assert!(!exists(&cluster, &["lease", "rekube.intr.dev", "-n", "rekube-system"]), "the lease was released");
    assert!(!exists(&cluster, &["cm", "after", "-n", "after"]), "nothing new started after the signal");
    let plan = w.rekube(&["plan", "dev"]);
    assert!(out(&plan).contains("1 to create"), "only `after` is left to do:\n{}", out(&plan));

    // SIGTERM, then Ctrl-C: the second quits at once; the rerun takes over the lease.
    let child = apply_waiting(&w, &cluster);
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(20));
    signal(&child, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", err(&o));
    let said = err(&o);
    assert!(said.contains("stopping:") && (said.contains("quit at once") || said.contains("interrupted")), "{said}");

    ok(&w.rekube(&["apply", "dev", "--no-wait"]));
    let plan = w.rekube(&["plan", "dev", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "converged:\n{}", out(&plan));
    assert_eq!(get(&cluster, &["get", "cm", "after", "-n", "after", "-o", "jsonpath={.data.a}"]), "b");
}
