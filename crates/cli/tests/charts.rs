//! Public charts at their default values, vendored under
//! `tests/fixtures/charts` (sources, versions and licenses in SOURCES.md).
//! A chart that works with `helm install` must converge with rekube and
//! stay converged: validate, a health-gated apply, an empty second plan, no
//! drift, its Helm tests pass, a backup of it restores completely into a
//! fresh cluster, and a destroy leaves nothing of it behind.

mod common;

use std::sync::Mutex;

use age::secrecy::ExposeSecret;
use common::{Workdir, err, ok, out};
use rekube_testbed::TestCluster;
use serde_json::Value;

/// One chart of the corpus.
struct Chart {
    archive: &'static str,
    /// Release, component and namespace name.
    release: &'static str,
    /// How many `helm.sh/hook: test` Pods it has.
    tests: usize,
    /// How many PersistentVolumeClaims its StatefulSets make (kept by
    /// destroy, as by `helm uninstall`: data is never deleted with the app).
    claims: usize,
    /// The Kubernetes minor versions whose API server refuses the chart
    /// itself (so `helm install` fails there too), with the server's words.
    refused: Option<(&'static [u32], &'static str)>,
}

const CORPUS: &[Chart] = &[
    Chart { archive: "metrics-server-3.13.1.tgz", release: "metrics-server", tests: 0, claims: 0, refused: None },
    Chart { archive: "reloader-2.2.16.tgz", release: "reloader", tests: 0, claims: 0, refused: None },
    Chart { archive: "traefik-10.33.0.tgz", release: "traefik", tests: 0, claims: 0, refused: None },
    Chart { archive: "ingress-nginx-4.4.2.tgz", release: "ingress-nginx", tests: 0, claims: 0, refused: None },
    Chart { archive: "vault-0.25.0.tgz", release: "vault", tests: 1, claims: 1, refused: None },
    Chart { archive: "fluent-bit-0.37.0.tgz", release: "fluent-bit", tests: 1, claims: 0, refused: None },
    Chart {
        archive: "prometheus-operator-crds-0.1.1.tgz",
        release: "prometheus-operator-crds",
        tests: 0,
        claims: 0,
        // v1.20.2's API server reads the CRD's `default: ''` as null and refuses it; so does `kubectl create`.
        refused: Some((&[20], "partial_response_strategy].default: Invalid value: \"null\"")),
    },
    Chart { archive: "cert-manager-v1.10.2.tgz", release: "cert-manager", tests: 0, claims: 0, refused: None },
    Chart {
        archive: "kube-state-metrics-5.10.1.tgz",
        release: "kube-state-metrics",
        tests: 0,
        claims: 0,
        refused: None,
    },
    Chart {
        archive: "prometheus-node-exporter-4.21.0.tgz",
        release: "prometheus-node-exporter",
        tests: 0,
        claims: 0,
        refused: None,
    },
];

/// Charts converging at once on the shared cluster (each its own project).
const WORKERS: usize = 3;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charts").join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn public_charts_converge_stay_converged_and_restore() {
    let (cluster, fresh) = tokio::join!(TestCluster::with_kubelet("corpus"), TestCluster::start("corpus-fresh"));
    let queue = Mutex::new(CORPUS.iter().collect::<Vec<_>>());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                while let Some(chart) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                    converge(&cluster, &fresh, chart);
                }
            });
        }
    });
}

fn converge(cluster: &TestCluster, fresh: &TestCluster, chart: &Chart) {
    let Chart { archive, release, tests, claims, refused } = chart;
    let mut w = Workdir::new();
    std::fs::copy(fixture(archive), w.path(archive)).unwrap();
    let id = age::x25519::Identity::generate();
    w.write("key.txt", &format!("{}\n", id.to_string().expose_secret()));
    let signer = rekube_backup::sign::Signer::generate().unwrap();
    w.write("signing.key", &signer.to_text());
    w.write(
        "rekube.yaml",
        &format!(
            "clusters:\n{}{}components:\n  {release}:\n    chart: {{ path: ./{archive} }}\n    namespace: {release}\n\
             environments:\n  test: {{ cluster: test }}\n  fresh: {{ cluster: fresh }}\n\
             backup:\n  store: ./backups\n  encrypt-secrets: [{}]\n  sign-with: signing.key\n  trusted-signers: [{}]\n",
            common::existing("test", cluster, "corpus"),
            common::existing("fresh", fresh, "corpus-fresh"),
            id.to_public(),
            signer.public()
        ),
    );
    w.env("REKUBE_AGE_IDENTITY", w.path("key.txt").to_str().unwrap());
    ok(&w.rekube(&["validate"]));
    let apply = w.rekube(&["apply", "test", "--timeout", "180"]);
    if let Some((_, why)) = refused.filter(|(minors, _)| minors.contains(&rekube_testbed::k8s_minor())) {
        // Not rekube's to fix: the failure names the object and passes the server's reason on.
        assert_eq!(apply.status.code(), Some(1), "{archive}: {}", err(&apply));
        assert!(err(&apply).contains(why), "{archive}: the server's reason is shown:\n{}", err(&apply));
        ok(&w.rekube(&["destroy", "test"]));
        return;
    }
    assert_eq!(apply.status.code(), Some(0), "{archive}: {}", err(&apply));
    let plan = w.rekube(&["plan", "test", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{archive}: the second plan is empty:\n{}", out(&plan));
    let drift = w.rekube(&["drift", "test"]);
    assert_eq!(drift.status.code(), Some(0), "{archive}: no drift:\n{}{}", out(&drift), err(&drift));

    let test = w.rekube(&["test", "test"]);
    assert_eq!(test.status.code(), Some(0), "{archive}: rekube test:\n{}{}", out(&test), err(&test));
    let said = format!("{}{}", out(&test), err(&test));
    let want = if *tests == 0 { "no tests".to_string() } else { format!("{tests} passed, 0 failed") };
    assert!(said.contains(&want), "{archive}: each of its Helm tests passes ({want}):\n{said}");

    // Everything rekube made for it, backed up and restored into an empty cluster.
    ok(&w.rekube(&["backup", "create", "test", "--own", "--name", release]));
    let manifest: Value = serde_json::from_str(&ok(&w.rekube(&["-o", "json", "backup", "describe", release]))).unwrap();
    let backed_up = manifest["objects"].as_array().map_or(0, Vec::len);
    assert!(backed_up > 0, "{archive}: the backup holds its objects");
    let restore = w.rekube(&["-o", "json", "backup", "restore", release, "--to", "fresh"]);
    assert_eq!(restore.status.code(), Some(0), "{archive}: restore:\n{}{}", out(&restore), err(&restore));
    let report: Value = serde_json::from_str(&out(&restore)).unwrap();
    let created: u64 = report["created"].as_object().unwrap().values().filter_map(Value::as_u64).sum();
    assert_eq!(report["failed"], serde_json::json!([]), "{archive}: nothing fails to restore");
    assert_eq!(created as usize, backed_up, "{archive}: 100% of the backup restored:\n{report:#}");

    // Its volume claims were provisioned and bound by the local provider.
    let selector = format!("app.kubernetes.io/instance={release}");
    let phases = ["get", "pvc", "-A", "-l", &selector, "-o", "jsonpath={.items[*].status.phase}"];
    let bound = out(&cluster.kubectl().args(phases).output().unwrap());
    assert_eq!(bound.matches("Bound").count(), *claims, "{archive}: its claims are Bound: {bound}");

    let destroyed = w.rekube(&["destroy", "test"]);
    let said = format!("{}{}", out(&destroyed), err(&destroyed));
    assert_eq!(destroyed.status.code(), Some(0), "{archive}: destroy:\n{said}");
    if *claims > 0 {
        assert!(
            said.contains("kept: it holds PersistentVolumeClaim"),
            "{archive}: says why its namespace stays:\n{said}"
        );
    }
    let kinds = "all,cm,secret,sa,role,rolebinding,clusterrole,clusterrolebinding,apiservice,crd,ingressclass,\
                 mutatingwebhookconfiguration,validatingwebhookconfiguration";
    let left = cluster.kubectl().args(["get", kinds, "-A", "-l", &selector, "-o", "name"]).output().unwrap();
    assert_eq!(out(&left), "", "{archive}: destroy leaves nothing of it behind");
    let kept = cluster.kubectl().args(["get", "pvc", "-A", "-l", &selector, "-o", "name"]).output().unwrap();
    assert_eq!(out(&kept).lines().count(), *claims, "{archive}: its data is kept, as helm uninstall keeps it");
}
