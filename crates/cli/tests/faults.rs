//! Under a bad network: the real binary against a real API server through
//! the test bed's fault proxy, with a tenth of all requests answered by a
//! fault (500, 503, 429 with Retry-After, 409, a dropped connection, a reset
//! mid-body, a 2 s stall). Every operation must converge to the state a
//! fault-free run leaves: checked through a second spec that reaches the
//! same cluster directly, whose plan must be empty.

use std::collections::BTreeMap;
use std::path::Path;

use rekube_testbed::{FaultProxy, TestCluster};

mod common;

use common::{Workdir, err, get, out};

/// The example platform's components, as project `shop`, on cluster `prod`
/// reached through `kubeconfig` (and `lab`, an exec provider that hands out
/// the same kubeconfig).
fn spec(w: &Workdir, kubeconfig: &Path, context: &str, recipient: &str) -> String {
    let components = common::example_components(w);
    format!(
        "project: shop\nclusters:\n  prod: {{ provider: existing, kubeconfig: {k}, context: {context} }}\n  \
         lab: {{ provider: exec, exec: ./lab.sh }}\n{components}\n\
         environments:\n  prod: {{ cluster: prod }}\n  lab: {{ cluster: lab }}\n\
         backup: {{ store: ./backups, encrypt-secrets: [{recipient}] }}\n",
        k = kubeconfig.display()
    )
}

/// An exec provider whose cluster is already there: its kubeconfig is the proxy's.
const LAB: &str = r#"#!/bin/sh
cat > /dev/null
case "$1" in
  create) echo '{}' ;;
  delete) echo '{"deleted": true}' ;;
  status) echo '{"exists": true}' ;;
  kubeconfig) printf '{"kubeconfig_path": "%s"}\n' "$PROXY_KUBECONFIG" ;;
esac
"#;

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::print_stderr, reason = "the faults injected per scenario are this test's report")]
async fn with_a_tenth_of_requests_faulted_every_operation_converges() {
    let cluster = TestCluster::with_kubelet("faults").await;
    let proxy = FaultProxy::start(cluster.client(), 0.10, 20261204).await;
    let mut w = Workdir::new();
    let faulty = proxy.kubeconfig(&w.path(""), "c");
    // The same cluster, reached directly: what a fault-free run would see.
    let text = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let context = text.lines().find_map(|l| l.strip_prefix("current-context: ")).unwrap().trim().to_string();
    let id = age::x25519::Identity::generate();
    {
        use age::secrecy::ExposeSecret;
        w.write("key.txt", &format!("{}\n", id.to_string().expose_secret()));
    }
    let recipient = id.to_public().to_string();
    w.write("rekube.yaml", &spec(&w, &faulty, "c", &recipient));
    w.write("direct.yaml", &spec(&w, cluster.kubeconfig(), &context, &recipient));
    w.env("REKUBE_AGE_IDENTITY", w.path("key.txt").to_str().unwrap());
    w.write("lab.sh", LAB);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(w.path("lab.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    w.env("PROXY_KUBECONFIG", faulty.to_str().unwrap());
    w.env("REKUBE_API_RETRY_FOR", "60s");

    let empty_plan = |w: &Workdir, what: &str| {
        let plan = w.rekube(&["-f", "direct.yaml", "plan", "prod", "--detailed-exitcode"]);
        assert_eq!(
            plan.status.code(),
            Some(0),
            "after {what}, the state is not what a fault-free run leaves:\n{}",
            out(&plan)
        );
    };
    let mut report: Vec<(String, u64, BTreeMap<&'static str, u64>)> = Vec::new();
    let mut scenario = |name: &str, args: &[&str]| -> String {
        proxy.reset_counts();
        let o = w.rekube(args);
        assert!(o.status.success(), "{name} under faults failed:\nstdout:\n{}\nstderr:\n{}", out(&o), err(&o));
        report.push((name.to_string(), proxy.requests(), proxy.injected()));
        out(&o)
    };

    // The exec provider's cluster is reached through the proxy too.
    scenario("up (exec provider)", &["up", "lab"]);
    scenario("down (exec provider)", &["down", "lab"]);
    assert!(!get(&cluster, &["get", "ns", "-o", "name"]).contains("namespace/app"), "down under faults left app");
    scenario("apply", &["apply", "prod"]);
    empty_plan(&w, "apply");
    let plan = scenario("plan", &["plan", "prod", "--detailed-exitcode"]);
    assert!(plan.contains("0 to create, 0 to update, 0 to delete"), "{plan}");
    scenario("drift", &["drift", "prod"]);
    let before = get(&cluster, &["get", "cm,svc,deploy", "-n", "web", "-o", "name"]);
    scenario("backup create", &["backup", "create", "prod", "--name", "under-faults", "--namespace", "web"]);
    scenario("destroy", &["destroy", "prod"]);
    assert!(!get(&cluster, &["get", "ns", "-o", "name"]).contains("namespace/web"), "destroy under faults left web");
    scenario("backup restore", &["backup", "restore", "under-faults", "--to", "prod", "--allow-unsigned"]);
    assert_eq!(get(&cluster, &["get", "cm,svc,deploy", "-n", "web", "-o", "name"]), before, "restore under faults");

    let mut total: BTreeMap<&'static str, u64> = BTreeMap::new();
    eprintln!("faults injected per scenario (10% of requests, seed 20261204):");
    for (name, requests, injected) in &report {
        let n: u64 = injected.values().sum();
        eprintln!("  {name:<22} {requests:>4} requests, {n:>3} faulted: {injected:?}");
        assert!(*requests > 0, "{name} never reached the proxy");
        for (k, v) in injected {
            *total.entry(k).or_default() += v;
        }
    }
    let all: u64 = total.values().sum();
    eprintln!("  total {all}: {total:?}");
    assert!(all >= 20, "too few faults to prove anything: {total:?}");
    for (kind, n) in &total {
        assert!(*n > 0, "no `{kind}` fault was injected: {total:?}");
    }
}
