//! Previews on a real control plane with the fake kubelet, through the real
//! binary: ten previews of the example platform at once, each healthy,
//! reachable by its own host rule and isolated (compared by UID and
//! resourceVersion); `down` and `gc` remove exactly theirs; a preview
//! killed half-way is listed and completed by a rerun; a held lease
//! refuses a second writer; cluster-scoped objects are shared or refused
//! before any write.

use std::collections::BTreeMap;
use std::process::{Output, Stdio};

use rekube_testbed::TestCluster;

mod common;

use common::{Workdir, err, get, ok, out};

const PROJECT: &str = "shop";

/// The example platform's components, on the test cluster, as project `shop`.
fn example(cluster: &TestCluster, context: &str) -> Workdir {
    let w = Workdir::new();
    let components = common::example_components(&w);
    w.write(
        "rekube.yaml",
        &format!(
            "project: {PROJECT}\nclusters:\n{}{components}\nenvironments:\n  dev: {{ cluster: shared }}\n\
             previews: {{ cluster: shared, ttl: 4h }}\n",
            common::existing("shared", cluster, context)
        ),
    );
    w
}

/// `kind ns/name` → `uid rv` of what the tests look at: the objects rekube
/// makes, the parents and preview records.
fn state(cluster: &TestCluster) -> BTreeMap<String, String> {
    let text = get(
        cluster,
        &[
            "get",
            "ns,cm,svc,deploy,ingress,clusterrole,crd",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind} {.metadata.namespace}/{.metadata.name}=\
             {.metadata.uid} {.metadata.resourceVersion}\n{end}",
        ],
    );
    text.lines()
        .filter(|l| !l.contains("kube-root-ca.crt") && !l.contains(" kube-system/") && !l.contains("system:"))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn exists(cluster: &TestCluster, args: &[&str]) -> bool {
    cluster.kubectl().arg("get").args(args).output().unwrap().status.success()
}

fn failed(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected a refusal (exit 1):\nstdout:\n{}\nstderr:\n{}", out(o), err(o));
    err(o)
}

fn list(w: &Workdir) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&ok(&w.rekube(&["preview", "list", "-o", "json"]))).unwrap();
    v["previews"].as_array().unwrap().clone()
}

fn names(w: &Workdir) -> Vec<String> {
    list(w).iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
}

/// The entries of `state` (`Kind namespace/name`) that belong to preview
/// `name`: its namespaces and what they hold, its parents, its record.
fn of_preview(state: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    let ours = format!("{name}-");
    let parent = format!("rekube.{PROJECT}.preview.{name}");
    state
        .keys()
        .filter(|k| {
            let (ns, object) = k.split_once(' ').unwrap().1.split_once('/').unwrap();
            ns.starts_with(&ours)
                || (k.starts_with("Namespace ") && object.starts_with(&ours))
                || (ns == "rekube-system"
                    && (object == parent
                        || object.starts_with(&format!("{parent}."))
                        || object == format!("rekube-preview.{PROJECT}.{name}")))
        })
        .cloned()
        .collect()
}

fn without(state: &BTreeMap<String, String>, gone: &[&str]) -> BTreeMap<String, String> {
    let mut s = state.clone();
    for g in gone {
        for k in of_preview(state, g) {
            s.remove(&k);
        }
    }
    s
}

fn expire(cluster: &TestCluster, name: &str) {
    get(
        cluster,
        &[
            "patch",
            "cm",
            &format!("rekube-preview.{PROJECT}.{name}"),
            "-n",
            "rekube-system",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"expires":"2000-01-01T00:00:00Z"}}"#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_previews_run_side_by_side_and_go_exactly_when_asked() {
    let cluster = TestCluster::with_kubelet("previews").await;
    let w = example(&cluster, "previews");
    ok(&w.rekube(&["apply", "dev"]));
    let dev_before = state(&cluster);

    // Ten at once, each with its own message.
    let names_10: Vec<String> = (1..=10).map(|i| format!("pr-{i}")).collect();
    let children: Vec<_> = names_10
        .iter()
        .map(|n| {
            w.command(&["preview", "up", n, "--from", "dev", "--set", &format!("web.message=hello {n}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }

    let all = list(&w);
    assert_eq!(all.len(), 10, "{all:?}");
    for p in &all {
        let n = p["name"].as_str().unwrap();
        assert_eq!(p["from"], "dev");
        assert_eq!(p["health"], "healthy", "{p}");
        assert_eq!(p["objects"], 8, "{p}");
        assert_eq!(p["urls"], serde_json::json!([format!("http://{n}.preview.example.test/")]));
        let left = p["ttl_left_seconds"].as_i64().unwrap();
        assert!((4 * 3600 - 600..=4 * 3600).contains(&left), "previews.ttl is 4h: {left}");
        // Its own host rule, to its own Service, which has ready Pods behind it.
        let ns = format!("{n}-web");
        let rule = get(
            &cluster,
            &[
                "get",
                "ingress",
                &format!("{n}-web"),
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.rules[0].host} {.spec.rules[0].http.paths[0].backend.service.name}",
            ],
        );
        assert_eq!(rule, format!("{n}.preview.example.test {n}-web"));
        let ready = get(
            &cluster,
            &["get", "endpoints", &format!("{n}-web"), "-n", &ns, "-o", "jsonpath={.subsets[*].addresses[*].ip}"],
        );
        assert_eq!(ready.split_whitespace().count(), 2, "two ready Pods (replicas: 2) behind {n}: {ready}");
        let message = get(
            &cluster,
            &["get", "cm", &format!("{n}-web-content"), "-n", &ns, "-o", "jsonpath={.data.index\\.html}"],
        );
        assert_eq!(message, format!("hello {n}"), "its own values");
        assert!(exists(&cluster, &["deploy", "app", "-n", &format!("{n}-app")]), "plain manifests move too");
    }
    let text = ok(&w.rekube(&["preview", "list"]));
    let mut s = common::settings();
    // Ages and times left, whatever their width.
    s.add_filter(r"\b(?:\d+h\d{2}m|\d+[sm]) +", "[T] ");
    s.bind(|| insta::assert_snapshot!("list", text));

    // down of one leaves the nine others and dev byte-identical.
    let before = state(&cluster);
    let down = w.rekube(&["preview", "down", "pr-3"]);
    ok(&down);
    assert!(err(&down).contains("destroyed `preview.pr-3`: 8 objects"), "{}", err(&down));
    let after = state(&cluster);
    assert!(of_preview(&after, "pr-3").is_empty(), "{:?}", of_preview(&after, "pr-3"));
    assert_eq!(
        of_preview(&before, "pr-3").iter().filter(|k| k.contains("rekube-system/")).count(),
        4,
        "its three parents and its record were there"
    );
    assert_eq!(without(&before, &["pr-3"]), after, "nothing else changed (UID and resourceVersion)");

    // gc: exactly the expired ones, by the expiry recorded on the cluster.
    expire(&cluster, "pr-1");
    expire(&cluster, "pr-7");
    let expired = state(&cluster);
    let dry = w.rekube(&["preview", "gc", "--dry-run"]);
    ok(&dry);
    assert!(err(&dry).contains("expired previews would delete: pr-1, pr-7; 7 not expired"), "{}", err(&dry));
    assert_eq!(state(&cluster), expired, "a dry-run deletes nothing");
    let gc = w.rekube(&["preview", "gc"]);
    ok(&gc);
    assert!(err(&gc).contains("pr-7/web: done") && err(&gc).contains("pr-1/app: done"), "{}", err(&gc));
    let gone = state(&cluster);
    assert_eq!(without(&expired, &["pr-1", "pr-7"]), gone, "gc deleted exactly pr-1 and pr-7");
    assert_eq!(names(&w), ["pr-2", "pr-4", "pr-5", "pr-6", "pr-8", "pr-9", "pr-10"]);

    // Killed half-way: listed (the record comes first), completed by a rerun.
    let mut child = w
        .command(&["preview", "up", "pr-k", "--from", "dev"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = std::time::Instant::now();
    while !exists(&cluster, &["ns", "pr-k-web"]) {
        assert!(began.elapsed().as_secs() < 60, "preview up never made its namespace");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(names(&w).contains(&"pr-k".to_string()), "a killed preview is still listed, so gc can find it");
    // Its lease outlives it, but its holder was a process of this machine that
    // no longer runs: the rerun takes the lease over at once, and says so.
    let rerun = w.rekube(&["preview", "up", "pr-k", "--from", "dev"]);
    ok(&rerun);
    assert!(
        err(&rerun).contains("note: took over the lease of") && err(&rerun).contains(&format!("/{}", child.id())),
        "{}",
        err(&rerun)
    );
    let pk = list(&w).into_iter().find(|p| p["name"] == "pr-k").unwrap();
    assert_eq!((pk["health"].as_str(), pk["objects"].as_u64()), (Some("healthy"), Some(8)), "{pk}");

    // What rekube did not make stays, and so does the preview's record until it can go.
    ok(&w.rekube(&["preview", "up", "pr-h", "--from", "dev"]));
    get(&cluster, &["create", "configmap", "notes", "-n", "pr-h-web", "--from-literal=a=b"]);
    let e = failed(&w.rekube(&["preview", "down", "pr-h"]));
    assert!(e.contains("preview `pr-h` is not gone: 1 of its ApplySets kept what they hold"), "{e}");
    assert!(exists(&cluster, &["cm", "notes", "-n", "pr-h-web"]), "never deleted");
    assert!(names(&w).contains(&"pr-h".to_string()), "still listed, so gc retries it");
    get(&cluster, &["delete", "configmap", "notes", "-n", "pr-h-web"]);
    ok(&w.rekube(&["preview", "down", "pr-h"]));
    assert!(!names(&w).contains(&"pr-h".to_string()));

    // Secrets: a preview copies the source's hand-made Secrets only when asked.
    get(&cluster, &["create", "secret", "generic", "db", "-n", "web", "--from-literal=password=hunter2"]);
    ok(&w.rekube(&["preview", "up", "pr-n", "--from", "dev"]));
    assert!(!exists(&cluster, &["secret", "db", "-n", "pr-n-web"]), "not copied without --copy-secrets");
    let up = w.rekube(&["preview", "up", "pr-s", "--from", "dev", "--copy-secrets"]);
    ok(&up);
    assert!(err(&up).contains("copied Secret web/db → pr-s-web/db"), "{}", err(&up));
    assert!(!format!("{}{}", out(&up), err(&up)).contains("hunter2"), "values are never printed");
    let copied = get(&cluster, &["get", "secret", "db", "-n", "pr-s-web", "-o", "jsonpath={.data.password}"]);
    assert_eq!(copied, "aHVudGVyMg==", "the same value");
    ok(&w.rekube(&["preview", "down", "pr-s"]));
    ok(&w.rekube(&["preview", "down", "pr-n"]));
    assert!(exists(&cluster, &["secret", "db", "-n", "web"]), "the source's Secret stays");
    get(&cluster, &["delete", "secret", "db", "-n", "web"]);

    // Another machine holds pr-x's lease: refused, nothing written.
    let lease_yaml = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: rekube.{PROJECT}.preview.pr-x\
         \n  namespace: rekube-system\
         \n  annotations: {{rekube.dev/command: preview up pr-x --from dev, rekube.dev/started: x}}\
         \nspec:\n  holderIdentity: laptop-b/4242\n  leaseDurationSeconds: 3600\n  renewTime: \"{}\"\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S.000000Z")
    );
    w.write("lease.yaml", &lease_yaml);
    get(&cluster, &["create", "-f", w.path("lease.yaml").to_str().unwrap()]);
    let before = state(&cluster);
    let e = failed(&w.rekube(&["preview", "up", "pr-x", "--from", "dev"]));
    assert!(
        e.contains("environment `preview.pr-x` is busy: `rekube preview up pr-x --from dev` on laptop-b/4242"),
        "{e}"
    );
    assert_eq!(state(&cluster), before, "refused before any write");

    // Everything goes; dev never moved.
    for p in names(&w) {
        expire(&cluster, &p);
    }
    ok(&w.rekube(&["preview", "gc"]));
    assert!(names(&w).is_empty());
    let end = state(&cluster);
    assert_eq!(end.keys().filter(|k| k.contains("rekube-preview") || k.contains(".preview.")).count(), 0, "{end:?}");
    assert_eq!(end, dev_before, "dev is byte-identical to before the first preview");
}

const WIDGETS_CHART: &[(&str, &str)] = &[
    ("Chart.yaml", "apiVersion: v2\nname: widgets\nversion: 0.1.0\n"),
    ("values.yaml", "verbs: [get, list]\n"),
    (
        "templates/crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
         metadata:\n  name: widgets.example.test\n  labels: {app.kubernetes.io/instance: \"{{ .Release.Name }}\"}\n\
         spec:\n  group: example.test\n  scope: Namespaced\n\
         \n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n\
         \n    - name: v1\n      served: true\n      storage: true\n      schema:\n\
         \n        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
    ),
    (
        "templates/reader.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: widget-reader\n\
         rules:\n  - apiGroups: [example.test]\n    resources: [widgets]\n    verbs: {{ toJson .Values.verbs }}\n",
    ),
    (
        "templates/editor.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {{ .Release.Name }}-editor\n\
         rules:\n  - apiGroups: [example.test]\n    resources: [widgets]\n    verbs: [\"*\"]\n",
    ),
    (
        "templates/widget.yaml",
        "apiVersion: example.test/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\nspec: {size: 3}\n",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn cluster_scoped_objects_are_shared_when_identical_and_refused_before_any_write_when_not() {
    let cluster = TestCluster::start("preview-crds").await;
    let w = Workdir::new();
    for (path, text) in WIDGETS_CHART {
        w.write(&format!("widgets/{path}"), text);
    }
    w.write(
        "rekube.yaml",
        &format!(
            "project: {PROJECT}\nclusters:\n{}components:\n  widgets:\n    chart: {{ path: ./widgets }}\n\
             \n    namespace: widgets\nenvironments:\n  dev: {{ cluster: shared }}\n",
            common::existing("shared", &cluster, "preview-crds")
        ),
    );
    ok(&w.rekube(&["apply", "dev"]));
    let crd_uid = get(&cluster, &["get", "crd", "widgets.example.test", "-o", "jsonpath={.metadata.uid}"]);
    let reader_uid = get(&cluster, &["get", "clusterrole", "widget-reader", "-o", "jsonpath={.metadata.uid}"]);

    // The CRD and the fixed-name ClusterRole are shared; the release-named one is the preview's.
    let up = w.rekube(&["preview", "up", "a", "--from", "dev"]);
    ok(&up);
    let e = err(&up);
    assert!(e.contains("shares CustomResourceDefinition widgets.example.test"), "{e}");
    assert!(e.contains("shares ClusterRole widget-reader"), "{e}");
    assert!(exists(&cluster, &["clusterrole", "a-widgets-editor"]));
    assert!(exists(&cluster, &["widget", "a-widgets", "-n", "a-widgets"]));
    let shared = &list(&w)[0]["shared"];
    assert_eq!(
        shared,
        &serde_json::json!(["CustomResourceDefinition widgets.example.test", "ClusterRole widget-reader"])
    );

    // Values that would change a shared object: refused, naming it, before any write.
    let before = state(&cluster);
    let e = failed(&w.rekube(&["preview", "up", "b", "--from", "dev", "--set", "widgets.verbs=[get]"]));
    assert!(
        e.contains("preview `b` would need its own copy of cluster-scoped objects:")
            && e.contains("ClusterRole widget-reader: differs from the one on the cluster at `rules[0].verbs`"),
        "{e}"
    );
    assert!(e.contains("hint: previews share cluster-scoped objects"), "{e}");
    assert_eq!(state(&cluster), before, "nothing was written");
    assert_eq!(names(&w), ["a"]);

    // down takes the preview's own, never the shared ones; --no-wait leaves
    // the namespace to Kubernetes, which removes it (at least 5 s later).
    ok(&w.rekube(&["preview", "down", "a", "--no-wait"]));
    assert!(!exists(&cluster, &["clusterrole", "a-widgets-editor"]));
    assert!(!exists(&cluster, &["widget", "a-widgets", "-n", "a-widgets"]));
    assert!(names(&w).is_empty(), "the record is gone");
    let began = std::time::Instant::now();
    loop {
        let o = cluster.kubectl().args(["get", "ns", "a-widgets", "-o", "jsonpath={.status.phase}"]).output().unwrap();
        if !o.status.success() {
            assert!(err(&o).contains("NotFound"), "{}", err(&o));
            break;
        }
        assert_eq!(out(&o), "Terminating");
        assert!(began.elapsed().as_secs() < 60, "the namespace was never removed");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(get(&cluster, &["get", "crd", "widgets.example.test", "-o", "jsonpath={.metadata.uid}"]), crd_uid);
    assert_eq!(get(&cluster, &["get", "clusterrole", "widget-reader", "-o", "jsonpath={.metadata.uid}"]), reader_uid);
    assert_eq!(w.rekube(&["plan", "dev", "--detailed-exitcode"]).status.code(), Some(0), "dev is untouched");
}
