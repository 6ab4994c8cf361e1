//! Helm hooks with Helm's semantics, on a real cluster with the fake
//! kubelet: install and upgrade hooks run around the component in weight
//! order, only when their content changed; delete policies are honoured;
//! test hooks run only under `rekube test`; none of them is an ApplySet
//! member, so a second plan is empty, drift is clean, and destroy removes
//! what the policies left.

mod common;

use std::process::Output;

use common::{Workdir, err, ok, out};
use rekube_testbed::{FAIL_LABEL, TestCluster};

const CHART: &str = "apiVersion: v2\nname: hooked\nversion: 0.1.0\n";

fn job(name: &str, hook: &str, extra: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    helm.sh/hook: {hook}\n{extra}\
         spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n\
         \x20       - name: run\n          image: busybox:1.36\n          args: [\"{{{{ .Values.migration }}}}\"]\n"
    )
}

fn write_chart(w: &Workdir, migration: &str, fail_test: bool) {
    w.write("chart/Chart.yaml", CHART);
    w.write("chart/values.yaml", &format!("migration: {migration}\n"));
    w.write("chart/templates/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n");
    w.write(
        "chart/templates/migrate.yaml",
        &job("migrate", "pre-install,pre-upgrade", "    helm.sh/hook-weight: \"-5\"\n"),
    );
    w.write(
        "chart/templates/announce.yaml",
        &job("announce", "post-install", "    helm.sh/hook-delete-policy: hook-succeeded\n"),
    );
    let label = if fail_test { format!("\n  labels:\n    {FAIL_LABEL}: Error") } else { String::new() };
    w.write(
        "chart/templates/test.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hooked-test\n  annotations:\n    helm.sh/hook: test{label}\n\
             spec:\n  restartPolicy: Never\n  containers:\n    - name: t\n      image: busybox:1.36\n"
        ),
    );
}

fn kubectl(cluster: &TestCluster, args: &[&str]) -> Output {
    cluster.kubectl().args(args).output().unwrap()
}

fn names(cluster: &TestCluster, kind: &str) -> String {
    out(&kubectl(cluster, &["get", kind, "-n", "app", "-o", "name"]))
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_around_the_component_and_tests_only_under_rekube_test() {
    let cluster = TestCluster::with_kubelet("hooks").await;
    let w = Workdir::new();
    write_chart(&w, "v1", false);
    w.write(
        "rekube.yaml",
        &format!(
            "clusters:\n{}components:\n  app:\n    chart: {{ path: ./chart }}\n    namespace: app\n\
             environments:\n  test: {{ cluster: test }}\n",
            common::existing("test", &cluster, "hooks")
        ),
    );

    // The first plan names the install hooks, in weight order; never the test.
    let plan = out(&w.rekube(&["plan", "test"]));
    common::settings().bind(|| insta::assert_snapshot!("plan_install_hooks", plan.trim_end()));
    let pre = plan.find("  hooks: run Job app/migrate (pre-install)").unwrap_or_else(|| panic!("{plan}"));
    let post = plan.find("  hooks: run Job app/announce (post-install)").unwrap_or_else(|| panic!("{plan}"));
    assert!(pre < post, "{plan}");
    assert!(!plan.contains("hooked-test") && plan.contains("2 hook(s) to run"), "{plan}");

    let apply = w.rekube(&["apply", "test", "--timeout", "120"]);
    ok(&apply);
    // before-hook-creation (the default) keeps the finished Job; hook-succeeded deletes it.
    assert_eq!(names(&cluster, "jobs"), "job.batch/migrate\n", "{}", err(&apply));
    assert_eq!(
        names(&cluster, "pods").lines().filter(|l| l.contains("hooked-test")).count(),
        0,
        "apply never runs tests"
    );
    let migrate = out(&kubectl(&cluster, &["get", "job", "migrate", "-n", "app", "-o", "json"]));
    assert!(!migrate.contains("applyset.kubernetes.io/part-of"), "a hook is not an ApplySet member: {migrate}");

    // Converged: nothing to run again, nothing drifted.
    let again = w.rekube(&["plan", "test", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", out(&again));
    assert_eq!(w.rekube(&["drift", "test"]).status.code(), Some(0));

    // `rekube test` runs the test Pod and keeps it (before-hook-creation).
    let test = w.rekube(&["test", "test"]);
    ok(&test);
    assert!(err(&test).contains("app: Pod app/hooked-test passed"), "{}", err(&test));
    assert!(err(&test).contains("tests of `test`: 1 passed, 0 failed"), "{}", err(&test));

    // A changed hook runs again as an upgrade hook, replaced (not patched).
    write_chart(&w, "v2", true);
    let plan = out(&w.rekube(&["plan", "test"]));
    common::settings().bind(|| insta::assert_snapshot!("plan_upgrade_hook", plan.trim_end()));
    assert!(plan.contains("  hooks: run Job app/migrate (pre-upgrade)") && !plan.contains("announce"), "{plan}");
    let uid =
        |c: &TestCluster| out(&kubectl(c, &["get", "job", "migrate", "-n", "app", "-o", "jsonpath={.metadata.uid}"]));
    let before = uid(&cluster);
    ok(&w.rekube(&["apply", "test", "--timeout", "120"]));
    assert_ne!(uid(&cluster), before, "the hook was deleted and created again");
    assert_eq!(w.rekube(&["plan", "test", "--detailed-exitcode"]).status.code(), Some(0));

    // A failing test fails `rekube test`, naming why.
    let test = w.rekube(&["test", "test"]);
    assert_eq!(test.status.code(), Some(1), "{}", err(&test));
    common::settings().bind(|| insta::assert_snapshot!("test_failed", err(&test).trim_end()));
    assert!(
        err(&test).contains("app: Pod app/hooked-test FAILED: Pod hooked-test: a container exited with Error"),
        "{}",
        err(&test)
    );

    // destroy removes what the policies left: the Job and the test Pod.
    ok(&w.rekube(&["destroy", "test"]));
    assert!(!kubectl(&cluster, &["get", "ns", "app"]).status.success(), "the namespace and everything in it are gone");

    // A hook's name taken by someone else's object: never deleted, the apply fails naming it.
    ok(&kubectl(&cluster, &["create", "namespace", "app"]));
    ok(&kubectl(&cluster, &["create", "job", "migrate", "--image=busybox:1.36", "-n", "app"]));
    let theirs = uid(&cluster);
    let refused = w.rekube(&["apply", "test", "--timeout", "60"]);
    assert_eq!(refused.status.code(), Some(1), "{}", err(&refused));
    assert!(err(&refused).contains("Job app/migrate exists and is not a hook of this component"), "{}", err(&refused));
    assert_eq!(uid(&cluster), theirs, "someone else's Job is left alone");
}

/// A chart with Helm delete hooks: a pre-delete Job (whose Pod fails when
/// `fail_pre`) and a post-delete Job deleted once it succeeded.
fn write_delete_hooks(w: &Workdir, fail_pre: bool) {
    w.write("del/Chart.yaml", "apiVersion: v2\nname: leaving\nversion: 0.1.0\n");
    w.write("del/values.yaml", "migration: none\n");
    w.write("del/templates/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n");
    let labels =
        if fail_pre { format!("    metadata:\n      labels:\n        {FAIL_LABEL}: Error\n") } else { String::new() };
    w.write(
        "del/templates/drain.yaml",
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: drain\n  annotations:\n    helm.sh/hook: pre-delete\n\
             spec:\n  backoffLimit: 0\n  template:\n{labels}    spec:\n      restartPolicy: Never\n      containers:\n\
             \x20       - name: run\n          image: busybox:1.36\n"
        ),
    );
    w.write(
        "del/templates/farewell.yaml",
        &job("farewell", "post-delete", "    helm.sh/hook-delete-policy: hook-succeeded\n"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_hooks_run_around_destroy_and_removal_and_a_failing_one_stops_it() {
    let cluster = TestCluster::with_kubelet("delete-hooks").await;
    let w = Workdir::new();
    let spec = |components: &str| {
        format!(
            "clusters:\n{}components:\n{components}environments:\n  test: {{ cluster: test }}\n",
            common::existing("test", &cluster, "delete-hooks")
        )
    };
    let with_app = "  app:\n    chart: { path: ./del }\n    namespace: app\n";
    w.write("rekube.yaml", &spec(with_app));
    write_delete_hooks(&w, true);
    let plan = out(&w.rekube(&["plan", "test"]));
    assert!(!plan.contains("drain") && !plan.contains("farewell"), "apply never runs delete hooks:\n{plan}");
    ok(&w.rekube(&["apply", "test", "--timeout", "120"]));
    assert_eq!(names(&cluster, "jobs"), "", "no delete hook ran at apply");

    // A failing pre-delete hook stops the destroy before anything is deleted.
    let refused = w.rekube(&["destroy", "test", "--timeout", "60"]);
    assert_eq!(refused.status.code(), Some(1), "{}", err(&refused));
    assert!(err(&refused).contains("hook Job app/drain (pre-delete) failed"), "{}", err(&refused));
    assert!(names(&cluster, "configmaps").contains("configmap/app"), "the component is still there");

    // Fixed: the apply records the new hook (nothing else changed), and destroy runs both, in order.
    write_delete_hooks(&w, false);
    ok(&w.rekube(&["apply", "test", "--timeout", "120"]));
    let destroyed = w.rekube(&["destroy", "test", "--timeout", "60"]);
    let said = err(&destroyed);
    assert_eq!(destroyed.status.code(), Some(0), "{said}");
    let pre = said.find("hook Job app/drain (pre-delete)").unwrap_or_else(|| panic!("{said}"));
    let post = said.find("hook Job app/farewell (post-delete)").unwrap_or_else(|| panic!("{said}"));
    assert!(pre < post, "pre-delete before post-delete:\n{said}");
    assert!(!kubectl(&cluster, &["get", "ns", "app"]).status.success(), "nothing left, hooks included:\n{said}");

    // Removing the component from the spec uninstalls it the same way.
    ok(&w.rekube(&["apply", "test", "--timeout", "120"]));
    w.write("rekube.yaml", &spec("  other:\n    manifests: ./other\n    namespace: other\n"));
    w.write("other/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: b\n");
    let pruned = w.rekube(&["apply", "test", "--timeout", "120"]);
    let said = err(&pruned);
    assert_eq!(pruned.status.code(), Some(0), "{said}");
    assert!(
        said.contains("hook Job app/drain (pre-delete)") && said.contains("hook Job app/farewell (post-delete)"),
        "{said}"
    );
    assert!(!kubectl(&cluster, &["get", "ns", "app"]).status.success(), "its namespace goes too:\n{said}");
    ok(&w.rekube(&["destroy", "test"]));
}
