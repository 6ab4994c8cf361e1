//! Safe ownership on a shared cluster, through the real binary against a
//! real control plane: projects and environments never touch each other's
//! objects, pre-existing objects are adopted only when asked, Namespaces are
//! deleted only when rekube created them, one writer holds an environment
//! at a time, and clusters applied by releases before 0.2 migrate in place.
//! Every step compares objects by UID.

use std::collections::BTreeMap;
use std::process::Output;

use rekube_testbed::TestCluster;

mod common;

use common::{Workdir, err, get, ok, out};

/// Every object the tests make, by `kind ns/name` → UID (rekube's own
/// parents and leases left out: they are rekube's bookkeeping).
fn uids(cluster: &TestCluster) -> BTreeMap<String, String> {
    let text = get(
        cluster,
        &[
            "get",
            "ns,cm,svc,deploy,secret",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind} {.metadata.namespace}/{.metadata.name}={.metadata.uid}\n{end}",
        ],
    );
    text.lines()
        .filter(|l| {
            !l.contains(" rekube-system/")
                && !l.contains("kube-root-ca.crt")
                && !l.contains("default-token")
                && !l.contains("Namespace /rekube-system")
        })
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// The entries of `before` that are not in `after` with the same UID.
fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    before.iter().filter(|(k, v)| after.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect()
}

fn exists(cluster: &TestCluster, args: &[&str]) -> bool {
    cluster.kubectl().args(["get"]).args(args).output().unwrap().status.success()
}

/// A spec directory with one `existing` cluster and `components`.
struct Project {
    w: Workdir,
    cluster: String,
    file: String,
}

impl Project {
    /// The spec at `<tmp>/<subdir>/rekube.yaml` (`subdir` names the project when it has no `project:`).
    fn new(cluster: &TestCluster, context: &str, subdir: &str) -> Self {
        Self {
            w: Workdir::new(),
            cluster: common::existing("shared", cluster, context),
            file: format!("{subdir}/rekube.yaml"),
        }
    }

    fn write(&self, rel: &str, text: &str) {
        let dir = self.file.trim_end_matches("rekube.yaml");
        self.w.write(&format!("{dir}{rel}"), text);
    }

    fn spec(&self, head: &str, components: &str, environments: &str) {
        // `environments` may end with further top-level keys (`backup:`).
        self.write(
            "rekube.yaml",
            &format!("{head}clusters:\n{}components:\n{components}environments:\n{environments}", self.cluster),
        );
    }

    fn rekube(&self, args: &[&str]) -> Output {
        let mut all = vec!["-f", self.file.as_str()];
        all.extend_from_slice(args);
        self.w.rekube(&all)
    }
}

fn configmap(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: \"{data}\"\n")
}

const PROD: &str = "  prod: { cluster: shared }\n";

fn failed(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected a refusal (exit 1):\nstdout:\n{}\nstderr:\n{}", out(o), err(o));
    err(o)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_projects_with_the_same_names_never_touch_each_other() {
    let cluster = TestCluster::with_kubelet("two-projects").await;
    // Made by hand before rekube ever ran.
    get(&cluster, &["create", "namespace", "team-a"]);
    get(&cluster, &["create", "configmap", "settings-a", "-n", "team-a", "--from-literal=a=b"]);

    let a = Project::new(&cluster, "two-projects", "team-a-platform");
    a.write("web/cm.yaml", &configmap("web-config", "a"));
    a.spec("", "  web:\n    manifests: ./web\n    namespace: team-a\n", PROD);
    let b = Project::new(&cluster, "two-projects", "team-b-platform");
    b.write("web/cm.yaml", &configmap("web-config", "b"));
    b.spec("", "  web:\n    manifests: ./web\n    namespace: team-b\n", PROD);

    let plan = ok(&a.rekube(&["plan", "prod"]));
    assert!(plan.contains("· Namespace team-a (existed before rekube: used, never deleted)"), "{plan}");
    ok(&a.rekube(&["apply", "prod"]));
    ok(&b.rekube(&["apply", "prod"]));
    let before = uids(&cluster);
    assert!(
        before.contains_key("ConfigMap team-a/web-config") && before.contains_key("ConfigMap team-b/web-config"),
        "{before:?}"
    );

    // Each plan sees only its own project: empty, and nothing of the other.
    for p in [&a, &b] {
        let plan = p.rekube(&["plan", "prod", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "{}{}", out(&plan), err(&plan));
        assert!(!out(&plan).contains("removed from the spec"), "{}", out(&plan));
    }
    ok(&b.rekube(&["apply", "prod"]));
    ok(&a.rekube(&["apply", "prod"]));
    assert_eq!(changed(&before, &uids(&cluster)), Vec::<String>::new(), "re-applies replace nothing");

    // B destroyed: only B's objects go.
    ok(&b.rekube(&["destroy", "prod"]));
    let after = uids(&cluster);
    assert_eq!(
        changed(&before, &after),
        ["ConfigMap team-b/web-config", "Namespace /team-b"],
        "only team B's objects went"
    );
    assert!(!exists(&cluster, &["ns", "team-b"]));

    // A destroyed after B came back: A's namespace existed before rekube, so it stays with the hand-made object.
    ok(&b.rekube(&["apply", "prod"]));
    let before = uids(&cluster);
    ok(&a.rekube(&["destroy", "prod"]));
    let gone = changed(&before, &uids(&cluster));
    assert_eq!(gone, ["ConfigMap team-a/web-config"], "A's namespace and the hand-made ConfigMap stay; B is untouched");
    get(&cluster, &["get", "configmap", "settings-a", "-n", "team-a"]);
    ok(&b.rekube(&["destroy", "prod"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn specs_that_cannot_be_told_apart_are_refused_before_any_write() {
    let cluster = TestCluster::with_kubelet("same-dir-name").await;
    let a = Project::new(&cluster, "same-dir-name", "platform");
    a.write("web/cm.yaml", &configmap("web-config", "a"));
    a.spec("", "  web:\n    manifests: ./web\n    namespace: ns-a\n", PROD);
    ok(&a.rekube(&["apply", "prod"]));
    let before = uids(&cluster);

    // Another team's spec, in a directory of the same name: same implicit project.
    let b = Project::new(&cluster, "same-dir-name", "platform");
    b.write("web/cm.yaml", &configmap("web-config", "b"));
    b.spec("", "  web:\n    manifests: ./web\n    namespace: ns-b\n", PROD);
    for cmd in [&["plan", "prod"][..], &["apply", "prod"], &["destroy", "prod"]] {
        let e = failed(&b.rekube(cmd));
        assert!(e.contains("project `platform`, environment `prod` on this cluster belongs to the spec at"), "{e}");
        assert!(
            e.contains(&format!("{}", std::fs::canonicalize(a.w.path("platform/rekube.yaml")).unwrap().display())),
            "names the owner: {e}"
        );
        assert!(e.contains("write `project: platform`"), "{e}");
    }
    assert_eq!(uids(&cluster), before, "nothing was written");
    assert!(!exists(&cluster, &["ns", "ns-b"]));

    // Named apart, both live side by side.
    b.spec("project: team-b\n", "  web:\n    manifests: ./web\n    namespace: ns-b\n", PROD);
    ok(&b.rekube(&["apply", "prod"]));
    assert!(changed(&before, &uids(&cluster)).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_in_kube_system_never_makes_it_a_member() {
    let cluster = TestCluster::with_kubelet("kube-system").await;
    let p = Project::new(&cluster, "kube-system", "metrics-platform");
    p.write("metrics/cm.yaml", &configmap("metrics-config", "1"));
    p.write("web/cm.yaml", &configmap("web-config", "1"));
    let web = "  web:\n    manifests: ./web\n    namespace: web\n";
    p.spec("", &format!("{web}  metrics:\n    manifests: ./metrics\n    namespace: kube-system\n"), PROD);
    let plan = ok(&p.rekube(&["plan", "prod"]));
    assert!(plan.contains("· Namespace kube-system (a system namespace: never a member)"), "{plan}");
    ok(&p.rekube(&["apply", "prod"]));
    assert_eq!(p.rekube(&["plan", "prod", "--detailed-exitcode"]).status.code(), Some(0));
    assert!(
        !get(&cluster, &["get", "ns", "kube-system", "-o", "jsonpath={.metadata.labels}"]).contains("applyset"),
        "kube-system carries no ApplySet label"
    );

    // The component leaves the spec: its ConfigMap goes, kube-system stays, and the plan converges.
    p.spec("", web, PROD);
    let plan = ok(&p.rekube(&["plan", "prod"]));
    assert!(
        plan.contains("  - ConfigMap kube-system/metrics-config") && !plan.contains("Namespace kube-system"),
        "{plan}"
    );
    ok(&p.rekube(&["apply", "prod"]));
    let again = p.rekube(&["plan", "prod", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", out(&again));
    ok(&p.rekube(&["destroy", "prod"]));
    assert!(exists(&cluster, &["ns", "kube-system"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_objects_are_adopted_only_when_asked_and_foreign_ones_never() {
    let cluster = TestCluster::with_kubelet("adopt").await;
    get(&cluster, &["create", "namespace", "legacy"]);
    get(&cluster, &["create", "configmap", "keep-me", "-n", "legacy", "--from-literal=a=b"]);
    get(&cluster, &["create", "configmap", "app-config", "-n", "legacy", "--from-literal=v=old"]);
    let p = Project::new(&cluster, "adopt", "adopting");
    p.write("app/cm.yaml", &configmap("app-config", "new"));
    p.spec("", "  app:\n    manifests: ./app\n    namespace: legacy\n", PROD);
    let before = uids(&cluster);

    let plan = ok(&p.rekube(&["plan", "prod"]));
    assert!(
        plan.contains("  > ConfigMap legacy/app-config (exists, not rekube's: apply refuses it without --adopt)"),
        "{plan}"
    );
    common::settings().bind(|| insta::assert_snapshot!("plan_adopt", plan.clone()));
    let e = failed(&p.rekube(&["apply", "prod"]));
    assert!(
        e.contains("nothing was written: 1 object(s) already exist and are not rekube's")
            && e.contains("ConfigMap legacy/app-config (component `app`)"),
        "{e}"
    );
    assert!(e.contains("--adopt"), "the hint says how: {e}");
    common::settings().bind(|| insta::assert_snapshot!("apply_refuses_adoption", e.clone()));
    assert_eq!(
        get(&cluster, &["get", "cm", "app-config", "-n", "legacy", "-o", "jsonpath={.data.v}"]),
        "old",
        "nothing was written"
    );
    assert!(
        !exists(&cluster, &["cm", "-n", "rekube-system", "-l", "rekube.dev/project=adopting", "-o", "name"])
            || get(&cluster, &["get", "cm", "-n", "rekube-system", "-l", "rekube.dev/project=adopting", "-o", "name"])
                .is_empty()
    );

    ok(&p.rekube(&["apply", "prod", "--adopt"]));
    assert_eq!(get(&cluster, &["get", "cm", "app-config", "-n", "legacy", "-o", "jsonpath={.data.v}"]), "new");
    assert!(changed(&before, &uids(&cluster)).is_empty(), "adopted in place, not recreated");
    assert_eq!(p.rekube(&["plan", "prod", "--detailed-exitcode"]).status.code(), Some(0));

    // Owned by a Helm release: refused even with --adopt, naming the release.
    get(&cluster, &["create", "configmap", "helm-made", "-n", "legacy", "--from-literal=a=b"]);
    get(
        &cluster,
        &[
            "annotate",
            "configmap",
            "helm-made",
            "-n",
            "legacy",
            "meta.helm.sh/release-name=legacy-app",
            "meta.helm.sh/release-namespace=legacy",
        ],
    );
    p.write("app/helm.yaml", &configmap("helm-made", "mine"));
    let plan = p.rekube(&["plan", "prod"]);
    assert_eq!(plan.status.code(), Some(1), "a plan with conflicts fails");
    assert!(
        out(&plan)
            .contains("  ! ConfigMap legacy/helm-made: belongs to Helm release `legacy/legacy-app` (apply refuses)"),
        "{}",
        out(&plan)
    );
    common::settings().bind(|| insta::assert_snapshot!("plan_conflict", format!("{}{}", out(&plan), err(&plan))));
    let e = failed(&p.rekube(&["apply", "prod", "--adopt"]));
    common::settings().bind(|| insta::assert_snapshot!("apply_refuses_conflict", e.clone()));
    assert!(e.contains("ConfigMap legacy/helm-made: belongs to Helm release `legacy/legacy-app`"), "{e}");
    assert_eq!(get(&cluster, &["get", "cm", "helm-made", "-n", "legacy", "-o", "jsonpath={.data.a}"]), "b");
    std::fs::remove_file(p.w.path("adopting/app/helm.yaml")).unwrap();

    // Destroy: the adopted object is rekube's now; the namespace and the hand-made object are not.
    ok(&p.rekube(&["destroy", "prod"]));
    assert!(!exists(&cluster, &["cm", "app-config", "-n", "legacy"]));
    get(&cluster, &["get", "cm", "keep-me", "-n", "legacy"]);
    get(&cluster, &["get", "cm", "helm-made", "-n", "legacy"]);
}

/// A chart whose namespace comes from the environment's values.
fn per_env_chart(p: &Project) {
    p.write("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
    p.write("chart/values.yaml", "ns: web\n");
    p.write(
        "chart/templates/all.yaml",
        concat!(
            "apiVersion: v1\n",
            "kind: Namespace\n",
            "metadata:\n",
            "  name: {{ .Values.ns }}\n",
            "---\n",
            "apiVersion: v1\n",
            "kind: ConfigMap\n",
            "metadata:\n",
            "  name: web-config\n",
            "  namespace: {{ .Values.ns }}\n",
            "data:\n",
            "  env: {{ .Values.ns }}\n",
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environments_of_one_project_are_destroyed_alone() {
    let cluster = TestCluster::with_kubelet("three-envs").await;
    let p = Project::new(&cluster, "three-envs", "envs");
    per_env_chart(&p);
    let envs: String = ["a", "b", "c"]
        .iter()
        .map(|e| format!("  {e}: {{ cluster: shared, values: {{ web.ns: web-{e} }} }}\n"))
        .collect();
    p.spec("project: shop\n", "  web:\n    chart: { path: ./chart }\n", &envs);
    for e in ["a", "b", "c"] {
        ok(&p.rekube(&["apply", e]));
    }
    let before = uids(&cluster);
    for e in ["a", "b", "c"] {
        assert_eq!(
            p.rekube(&["plan", e, "--detailed-exitcode"]).status.code(),
            Some(0),
            "environment {e} sees only its own ApplySets"
        );
    }
    ok(&p.rekube(&["destroy", "b"]));
    assert_eq!(changed(&before, &uids(&cluster)), ["ConfigMap web-b/web-config", "Namespace /web-b"]);
    ok(&p.rekube(&["destroy", "a"]));
    ok(&p.rekube(&["destroy", "c"]));
    assert!(!exists(&cluster, &["ns", "web-a"]) && !exists(&cluster, &["ns", "web-c"]));

    // Two environments that render the same object: the second is refused, naming the first.
    let clash =
        "  a: { cluster: shared, values: { web.ns: same } }\n  b: { cluster: shared, values: { web.ns: same } }\n";
    p.spec("project: shop\n", "  web:\n    chart: { path: ./chart }\n", clash);
    ok(&p.rekube(&["apply", "a"]));
    let e = failed(&p.rekube(&["apply", "b"]));
    assert!(
        e.contains("ConfigMap same/web-config: belongs to component `web` of project `shop`, environment `a`"),
        "{e}"
    );
    ok(&p.rekube(&["destroy", "a"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_namespace_has_one_owner_whatever_is_applied() {
    let cluster = TestCluster::with_kubelet("shared-ns").await;
    let p = Project::new(&cluster, "shared-ns", "sharing");
    p.write("web/cm.yaml", &configmap("web-config", "1"));
    p.write("app/cm.yaml", &configmap("app-config", "1"));
    p.spec(
        "",
        concat!(
            "  web:\n",
            "    manifests: ./web\n",
            "    namespace: shared\n",
            "  app:\n",
            "    manifests: ./app\n",
            "    namespace: shared\n",
            "    needs: [web]\n",
        ),
        PROD,
    );
    let owner = || {
        get(&cluster, &["get", "ns", "shared", "-o", "jsonpath={.metadata.labels.applyset\\.kubernetes\\.io/part-of}"])
    };
    ok(&p.rekube(&["apply", "prod", "-c", "app"]));
    let first = owner();
    assert!(!first.is_empty());
    for args in [
        &["apply", "prod", "-c", "web"][..],
        &["apply", "prod"],
        &["apply", "prod", "-c", "app"],
        &["apply", "prod", "-c", "web"],
    ] {
        ok(&p.rekube(args));
        assert_eq!(owner(), first, "after {args:?}");
        let plan = p.rekube(&["plan", "prod", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "after {args:?}:\n{}", out(&plan));
    }
    ok(&p.rekube(&["destroy", "prod"]));
    assert!(!exists(&cluster, &["ns", "shared"]), "created by rekube, emptied: deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_holding_hand_made_objects_is_kept() {
    let cluster = TestCluster::with_kubelet("kept-ns").await;
    let p = Project::new(&cluster, "kept-ns", "keeping");
    p.write("web/cm.yaml", &configmap("web-config", "1"));
    p.spec("", "  web:\n    manifests: ./web\n    namespace: web\n", PROD);
    ok(&p.rekube(&["apply", "prod"]));
    get(&cluster, &["create", "configmap", "made-by-hand", "-n", "web", "--from-literal=a=b"]);
    let destroy = p.rekube(&["destroy", "prod"]);
    ok(&destroy);
    assert!(
        err(&destroy)
            .contains("note: Namespace web kept: it holds ConfigMap web/made-by-hand (made by kubectl-create)"),
        "{}",
        err(&destroy)
    );
    get(&cluster, &["get", "configmap", "made-by-hand", "-n", "web"]);
    assert!(!exists(&cluster, &["cm", "web-config", "-n", "web"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_writer_at_a_time_and_a_killed_ones_lease_is_taken_over_on_its_machine() {
    // No kubelet: the Deployment never becomes available, so the first apply waits.
    let cluster = TestCluster::start("lease").await;
    let p = Project::new(&cluster, "lease", "leasing");
    p.write(
        "web/deploy.yaml",
        concat!(
            "apiVersion: apps/v1\n",
            "kind: Deployment\n",
            "metadata:\n",
            "  name: web\n",
            "spec:\n",
            "  replicas: 1\n",
            "  selector:\n",
            "    matchLabels: {app: web}\n",
            "  template:\n",
            "    metadata:\n",
            "      labels: {app: web}\n",
            "    spec:\n",
            "      containers:\n",
            "        - name: web\n",
            "          image: nginx:1.25\n",
        ),
    );
    p.spec("", "  web:\n    manifests: ./web\n    namespace: web\n", PROD);
    let mut first =
        p.w.command(&["-f", &p.file, "apply", "prod", "--timeout", "120"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let lease = ["lease", "rekube.leasing.prod", "-n", "rekube-system"];
    let began = std::time::Instant::now();
    while !exists(&cluster, &lease) {
        assert!(began.elapsed().as_secs() < 60, "the first apply never took the lease");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let holder = get(
        &cluster,
        &["get", "lease", "rekube.leasing.prod", "-n", "rekube-system", "-o", "jsonpath={.spec.holderIdentity}"],
    );
    assert!(holder.ends_with(&format!("/{}", first.id())), "{holder}");

    let e = failed(&p.rekube(&["apply", "prod"]));
    assert!(
        e.contains("environment `prod` is busy: `rekube apply prod` on ") && e.contains(&format!("/{}", first.id())),
        "{e}"
    );
    assert!(e.contains("--break-lock"), "{e}");

    // kill -9: the lease is not released; its holder was a process of this
    // machine that no longer runs, so the rerun takes it over at once.
    first.kill().unwrap();
    first.wait().unwrap();
    let rerun = p.rekube(&["apply", "prod", "--no-wait"]);
    ok(&rerun);
    assert!(
        err(&rerun).contains(&format!("note: took over the lease of `rekube apply prod` on {holder}")),
        "{}",
        err(&rerun)
    );
    assert!(!exists(&cluster, &lease), "released at the end");
    assert_eq!(p.rekube(&["plan", "prod", "--detailed-exitcode"]).status.code(), Some(0), "converged, no duplicate");
    assert_eq!(
        get(&cluster, &["get", "cm", "-n", "rekube-system", "-l", "rekube.dev/project=leasing", "-o", "name"])
            .lines()
            .count(),
        2,
        "one parent for web, one for the namespace set"
    );

    // Someone else's live lease: refused, then taken with --break-lock.
    let lease_yaml = format!(
        "apiVersion: coordination.k8s.io/v1\
         \nkind: Lease\
         \nmetadata:\
         \n  name: rekube.leasing.prod\
         \n  namespace: rekube-system\
         \n  annotations: {{rekube.dev/command: destroy prod, rekube.dev/started: x}}\
         \nspec:\
         \n  holderIdentity: ci-runner/4242\
         \n  leaseDurationSeconds: 3600\
         \n  renewTime: \"{}\"\n",
        now_micro()
    );
    let yaml_path = p.w.path("lease.yaml");
    std::fs::write(&yaml_path, lease_yaml).unwrap();
    get(&cluster, &["create", "-f", yaml_path.to_str().unwrap()]);
    let e = failed(&p.rekube(&["destroy", "prod"]));
    assert!(e.contains("`rekube destroy prod` on ci-runner/4242"), "{e}");
    let broke = p.rekube(&["destroy", "prod", "--break-lock"]);
    ok(&broke);
    assert!(
        err(&broke).contains("note: broke the lease of `rekube destroy prod` on ci-runner/4242"),
        "{}",
        err(&broke)
    );
}

/// Now, as a Lease's MicroTime.
fn now_micro() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let o = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S.000000Z"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_applied_before_0_2_migrates_in_place() {
    let cluster = TestCluster::with_kubelet("migrate").await;
    // What a release before 0.2 left: members labelled with the component's
    // id, written only by rekube's field manager, and a parent `rekube.web`.
    let legacy = rekube_plan::applyset::legacy_id("web");
    let p = Project::new(&cluster, "migrate", "migrating");
    let old = format!(
        "apiVersion: v1\
         \nkind: Namespace\
         \nmetadata:\
         \n  name: old\
         \n  labels: {{applyset.kubernetes.io/part-of: {legacy}}}\
         \n---\
         \napiVersion: v1\
         \nkind: ConfigMap\
         \nmetadata:\
         \n  name: web-config\
         \n  namespace: old\
         \n  labels: {{applyset.kubernetes.io/part-of: {legacy}}}\
         \ndata:\
         \n  v: \"1\"\
         \n---\
         \napiVersion: v1\
         \nkind: Namespace\
         \nmetadata:\
         \n  name: rekube-system\
         \n---\
         \napiVersion: v1\
         \nkind: ConfigMap\
         \nmetadata:\
         \n  name: rekube.web\
         \n  namespace: rekube-system\
         \n  labels: {{applyset.kubernetes.io/id: {legacy}}}\
         \n  annotations:\
         \n    applyset.kubernetes.io/tooling: rekube/v0.1.0\
         \n    applyset.kubernetes.io/contains-group-kinds: ConfigMap,Namespace\n"
    );
    let path = p.w.path("old.yaml");
    std::fs::write(&path, old).unwrap();
    get(&cluster, &["apply", "--server-side", "--field-manager=rekube", "-f", path.to_str().unwrap()]);
    let before = uids(&cluster);

    p.write("web/cm.yaml", &configmap("web-config", "1"));
    p.spec("", "  web:\n    manifests: ./web\n    namespace: old\n", PROD);
    let plan = ok(&p.rekube(&["plan", "prod"]));
    assert!(
        plan.contains("migrate: members move from ApplySet rekube-system/rekube.web (rekube before 0.2)"),
        "{plan}"
    );
    assert!(!plan.contains("  - "), "nothing is deleted: {plan}");
    ok(&p.rekube(&["apply", "prod"]));
    assert!(changed(&before, &uids(&cluster)).is_empty(), "no member was deleted or recreated");
    assert!(!exists(&cluster, &["cm", "rekube.web", "-n", "rekube-system"]), "the old parent is gone");
    let id = get(
        &cluster,
        &[
            "get",
            "cm",
            "web-config",
            "-n",
            "old",
            "-o",
            "jsonpath={.metadata.labels.applyset\\.kubernetes\\.io/part-of}",
        ],
    );
    assert_eq!(id, rekube_plan::applyset::Identity::component("migrating", "prod", "web").id());
    assert_eq!(p.rekube(&["plan", "prod", "--detailed-exitcode"]).status.code(), Some(0));
    // Only rekube ever wrote the namespace: it was rekube's, and destroy removes it.
    ok(&p.rekube(&["destroy", "prod"]));
    assert!(!exists(&cluster, &["ns", "old"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_of_own_objects_holds_nothing_of_another_project() {
    let cluster = TestCluster::with_kubelet("own-backup").await;
    let a = Project::new(&cluster, "own-backup", "team-a");
    a.write("web/cm.yaml", &configmap("web-config", "a"));
    let backup = "backup: { store: ./backups }\n";
    a.spec("", "  web:\n    manifests: ./web\n    namespace: ns-a\n", &format!("{PROD}{backup}"));
    let b = Project::new(&cluster, "own-backup", "team-b");
    b.write("web/cm.yaml", &configmap("web-config", "b"));
    b.spec("", "  web:\n    manifests: ./web\n    namespace: ns-b\n", PROD);
    ok(&a.rekube(&["apply", "prod"]));
    ok(&b.rekube(&["apply", "prod"]));
    get(&cluster, &["create", "configmap", "made-by-hand", "-n", "ns-a", "--from-literal=a=b"]);

    ok(&a.rekube(&["backup", "create", "prod", "--own", "--name", "mine", "--allow-plaintext-secrets"]));
    let described: serde_json::Value =
        serde_json::from_str(&ok(&a.rekube(&["-o", "json", "backup", "describe", "mine"]))).unwrap();
    let mut paths: Vec<&str> =
        described["objects"].as_array().unwrap().iter().map(|o| o["path"].as_str().unwrap()).collect();
    paths.sort();
    assert!(paths.iter().any(|p| p.contains("ns-a") && p.contains("web-config")), "{paths:?}");
    assert!(paths.iter().any(|p| p.contains("namespaces") && p.contains("ns-a")), "its namespace too: {paths:?}");
    assert!(
        !paths.iter().any(|p| p.contains("ns-b") || p.contains("made-by-hand")),
        "nothing of team B, nothing hand-made: {paths:?}"
    );
}
