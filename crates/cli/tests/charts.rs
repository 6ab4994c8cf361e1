//! Public charts at their default values, vendored under
//! `tests/fixtures/charts` (sources, versions and licenses in SOURCES.md).
//! A chart that works with `helm install` must converge with rekube and
//! stay converged: validate, a health-gated apply, an empty second plan, no
//! drift, and a destroy that leaves nothing of it behind.

mod common;

use common::{Workdir, err, ok, out};
use rekube_testbed::TestCluster;

/// (archive, release and namespace)
const CORPUS: &[(&str, &str)] = &[
    ("metrics-server-3.13.1.tgz", "metrics-server"),
    ("reloader-2.2.16.tgz", "reloader"),
    ("traefik-10.33.0.tgz", "traefik"),
];

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charts").join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn public_charts_converge_and_stay_converged() {
    let cluster = TestCluster::with_kubelet("corpus").await;
    for (archive, release) in CORPUS {
        let w = Workdir::new();
        std::fs::copy(fixture(archive), w.path(archive)).unwrap();
        w.write(
            "rekube.yaml",
            &format!(
                "clusters:\n{}components:\n  {release}:\n    chart: {{ path: ./{archive} }}\n    namespace: {release}\n\
                 environments:\n  test: {{ cluster: test }}\n",
                common::existing("test", &cluster, "corpus")
            ),
        );
        ok(&w.rekube(&["validate"]));
        let apply = w.rekube(&["apply", "test", "--timeout", "180"]);
        assert_eq!(apply.status.code(), Some(0), "{archive}: {}", err(&apply));
        let plan = w.rekube(&["plan", "test", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "{archive}: the second plan is empty:\n{}", out(&plan));
        let drift = w.rekube(&["drift", "test"]);
        assert_eq!(drift.status.code(), Some(0), "{archive}: no drift:\n{}{}", out(&drift), err(&drift));

        ok(&w.rekube(&["destroy", "test"]));
        let left = cluster
            .kubectl()
            .args(["get", "all,cm,secret,sa,role,rolebinding,clusterrole,clusterrolebinding,apiservice", "-A"])
            .args(["-l", &format!("app.kubernetes.io/instance={release}"), "-o", "name"])
            .output()
            .unwrap();
        assert_eq!(out(&left), "", "{archive}: destroy leaves nothing of it behind");
    }
}
