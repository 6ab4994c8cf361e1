//! plan, apply and destroy through the real binary, against a real control
//! plane with the fake kubelet (an `existing` cluster pointing at it).

use std::path::PathBuf;
use std::process::Output;

use rekube_testbed::{FAIL_LABEL, TestCluster};

mod common;

use common::{Workdir, err, get, ok, out, settings};

struct Platform {
    w: Workdir,
    cluster: String,
}

impl Platform {
    fn new(cluster: &TestCluster, context: &str) -> Self {
        Self { w: Workdir::new(), cluster: common::existing("test", cluster, context) }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.w.path(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        self.w.write(rel, text);
    }

    /// Writes rekube.yaml with `components` under an `existing` cluster.
    fn spec(&self, components: &str) {
        self.write(
            "rekube.yaml",
            &format!(
                "clusters:\n{}components:\n{components}environments:\n  test: {{ cluster: test }}\n",
                self.cluster
            ),
        );
    }

    fn rekube(&self, args: &[&str]) -> Output {
        self.w.rekube(args)
    }
}

fn kubectl(cluster: &TestCluster, args: &[&str]) -> Output {
    cluster.kubectl().args(args).output().unwrap()
}

const WEB: &str = "  web:\n    manifests: ./web\n    namespace: web\n";
const APP: &str = "  app:\n    manifests: ./app\n    namespace: app\n    needs: [web]\n";

fn web_files(p: &Platform, message: &str) {
    p.write(
        "web/config.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  message: {message}\n"),
    );
    p.write("web/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-extra\ndata:\n  a: b\n");
    // No `protocol`: v1.20 refuses this in server-side apply unless defaulted.
    p.write(
        "web/service.yaml",
        concat!(
            "apiVersion: v1\n",
            "kind: Service\n",
            "metadata:\n",
            "  name: web\n",
            "spec:\n",
            "  selector: {app: web}\n",
            "  ports:\n",
            "    - port: 80\n",
            "      targetPort: 8080\n",
        ),
    );
    p.write(
        "web/deploy.yaml",
        concat!(
            "apiVersion: apps/v1\n",
            "kind: Deployment\n",
            "metadata:\n",
            "  name: web\n",
            "spec:\n",
            "  replicas: 2\n",
            "  selector:\n",
            "    matchLabels: {app: web}\n",
            "  template:\n",
            "    metadata:\n",
            "      labels: {app: web}\n",
            "    spec:\n",
            "      containers:\n",
            "        - name: web\n",
            "          image: nginx:1.25\n",
            "          ports:\n",
            "            - containerPort: 8080\n",
        ),
    );
}

fn app_files(p: &Platform) {
    p.write(
        "app/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-db\nstringData:\n  password: hunter2\n",
    );
    p.write(
        "app/deploy.yaml",
        concat!(
            "apiVersion: apps/v1\n",
            "kind: Deployment\n",
            "metadata:\n",
            "  name: app\n",
            "spec:\n",
            "  replicas: 1\n",
            "  selector:\n",
            "    matchLabels: {app: app}\n",
            "  template:\n",
            "    metadata:\n",
            "      labels: {app: app}\n",
            "    spec:\n",
            "      containers:\n",
            "        - name: app\n",
            "          image: busybox:1.36\n",
        ),
    );
}

fn resource_versions(cluster: &TestCluster) -> String {
    get(
        cluster,
        &[
            "get",
            "cm,secret,svc,deploy",
            "-n",
            "web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ],
    ) + &get(
        cluster,
        &[
            "get",
            "cm,secret,deploy",
            "-n",
            "app",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn create_update_unchanged_prune_and_destroy() {
    let cluster = TestCluster::with_kubelet("converge").await;
    let p = Platform::new(&cluster, "converge");
    web_files(&p, "hello");
    app_files(&p);
    p.spec(&format!("{WEB}{APP}"));

    // Create.
    let plan = p.rekube(&["plan", "test", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "changes pending: {}", err(&plan));
    settings().bind(|| insta::assert_snapshot!("plan_create", out(&plan)));
    let apply = p.rekube(&["apply", "test"]);
    ok(&apply);
    // How many health polls happen depends on timing: the snapshot leaves
    // them out. A new Deployment cannot be available at the first poll (its
    // pods are not even created), so at least one wait is reported.
    assert!(err(&apply).contains("web: waiting: Deployment web: "), "{}", err(&apply));
    let mut s = settings();
    s.add_filter(r"(?m)^\w+: waiting: .*\n", "");
    s.bind(|| insta::assert_snapshot!("apply_progress", err(&apply)));
    // Ordered by `needs`: app starts only after web is done (healthy).
    let progress = err(&apply);
    let web_done = progress.find("web: done").expect("web finished");
    let app_start = progress.find("app: applying").expect("app started");
    assert!(web_done < app_start, "app started before web was healthy:\n{progress}");
    assert_eq!(
        get(&cluster, &["get", "deploy", "web", "-n", "web", "-o", "jsonpath={.status.availableReplicas}"]),
        "2"
    );
    assert_eq!(get(&cluster, &["get", "svc", "web", "-n", "web", "-o", "jsonpath={.spec.ports[0].protocol}"]), "TCP");
    // kubectl reads the same inventory: the ApplySet parent and its members.
    let parent = get(
        &cluster,
        &[
            "get",
            "cm",
            "-n",
            "rekube-system",
            "-l",
            "rekube.dev/component=web",
            "-o",
            "jsonpath={.items[*].metadata.annotations.applyset\\.kubernetes\\.io/contains-group-kinds}",
        ],
    );
    assert_eq!(parent, "ConfigMap,Deployment.apps,Service", "its namespace belongs to the environment's namespace set");

    // Unchanged: exit 0, nothing written.
    let before = resource_versions(&cluster);
    assert_eq!(p.rekube(&["plan", "test", "--detailed-exitcode"]).status.code(), Some(0));
    let again = p.rekube(&["apply", "test"]);
    assert!(err(ok_out(&again)).contains("no changes"), "{}", err(&again));
    assert_eq!(resource_versions(&cluster), before, "a second apply writes nothing");

    // Update, field by field, with the Secret's value masked.
    web_files(&p, "changed");
    p.write(
        "app/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-db\nstringData:\n  password: correct-horse\n",
    );
    let plan = p.rekube(&["plan", "test"]);
    let text = ok(&plan);
    assert!(
        !text.contains("hunter2") && !text.contains("correct-horse") && !text.contains("aHVudGVyMg"),
        "a Secret value leaked:\n{text}"
    );
    settings().bind(|| insta::assert_snapshot!("plan_update", text));
    let json: serde_json::Value = serde_json::from_slice(&p.rekube(&["plan", "test", "-o", "json"]).stdout).unwrap();
    assert_eq!(json["summary"]["update"], 2);
    assert!(!json.to_string().contains("correct-horse"), "JSON plans are masked too");
    ok(&p.rekube(&["apply", "test"]));
    assert_eq!(get(&cluster, &["get", "cm", "web-config", "-n", "web", "-o", "jsonpath={.data.message}"]), "changed");

    // Prune: an object removed from a component is deleted; a hand-made one is not.
    get(&cluster, &["create", "configmap", "made-by-hand", "-n", "web", "--from-literal=a=b"]);
    std::fs::remove_file(p.path("web/extra.yaml")).unwrap();
    let plan = ok(&p.rekube(&["plan", "test"]));
    assert!(plan.contains("  - ConfigMap web/web-extra"), "{plan}");
    assert!(!plan.contains("made-by-hand"), "{plan}");
    ok(&p.rekube(&["apply", "test"]));
    assert_eq!(kubectl(&cluster, &["get", "cm", "web-extra", "-n", "web"]).status.code(), Some(1), "pruned");
    get(&cluster, &["get", "cm", "made-by-hand", "-n", "web"]);

    // A component removed from the spec is destroyed.
    p.spec(WEB);
    let plan = ok(&p.rekube(&["plan", "test"]));
    assert!(plan.contains("app (removed from the spec: destroy)"), "{plan}");
    ok(&p.rekube(&["apply", "test"]));
    assert_eq!(kubectl(&cluster, &["get", "ns", "app"]).status.code(), Some(1), "namespace app is gone");
    assert_eq!(
        get(&cluster, &["get", "cm", "-n", "rekube-system", "-l", "rekube.dev/component=app", "-o", "name"]),
        "",
        "its ApplySet parent is gone"
    );

    // Destroy: everything rekube made, waiting until gone; nothing else.
    get(&cluster, &["create", "configmap", "not-ours", "-n", "default", "--from-literal=a=b"]);
    // The hand-made ConfigMap keeps its namespace: deleting it would delete what rekube did not create.
    let destroy = p.rekube(&["destroy", "test"]);
    ok(&destroy);
    settings().bind(|| insta::assert_snapshot!("destroy_progress", err(&destroy)));
    get(&cluster, &["get", "cm", "made-by-hand", "-n", "web"]);
    get(&cluster, &["delete", "cm", "made-by-hand", "-n", "web"]);
    ok(&p.rekube(&["apply", "test"]));
    ok(&p.rekube(&["destroy", "test"]));
    assert_eq!(
        kubectl(&cluster, &["get", "ns", "web"]).status.code(),
        Some(1),
        "namespace web is really gone after destroy returns"
    );
    get(&cluster, &["get", "cm", "not-ours", "-n", "default"]);
    assert_eq!(
        get(&cluster, &["get", "cm", "-n", "rekube-system", "-o", "name"])
            .lines()
            .filter(|l| l.contains("rekube."))
            .count(),
        0
    );
}

fn ok_out(o: &Output) -> &Output {
    ok(o);
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_changes_nothing() {
    let cluster = TestCluster::with_kubelet("dryrun").await;
    let p = Platform::new(&cluster, "dryrun");
    web_files(&p, "hello");
    p.spec(WEB);
    let dry = p.rekube(&["apply", "test", "--dry-run"]);
    ok(&dry);
    assert!(err(&dry).contains("server dry-run"), "{}", err(&dry));
    assert_eq!(kubectl(&cluster, &["get", "ns", "web"]).status.code(), Some(1), "no namespace was created");
    assert_eq!(kubectl(&cluster, &["get", "ns", "rekube-system"]).status.code(), Some(1), "no inventory was created");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_deployment_names_the_pod_reason_and_skips_dependents() {
    let cluster = TestCluster::with_kubelet("failing").await;
    let p = Platform::new(&cluster, "failing");
    p.write(
        "web/deploy.yaml",
        &format!(
            "apiVersion: apps/v1\
             \nkind: Deployment\
             \nmetadata:\
             \n  name: web\
             \nspec:\
             \n  replicas: 2\
             \n  selector:\
             \n    matchLabels: {{app: web}}\
             \n  template:\
             \n    metadata:\
             \n      labels: {{app: web, {FAIL_LABEL}: CrashLoopBackOff}}\
             \n    spec:\
             \n      containers:\
             \n        - name: web\
             \n          image: nginx:1.25\n"
        ),
    );
    app_files(&p);
    // `late` needs only `cfg`, which converges beside the failing `web`: a
    // dependency graph runs it; barrier waves would have skipped it with `app`.
    p.write("cfg/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n");
    p.write("late/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\ndata:\n  a: b\n");
    let side = concat!(
        "  cfg:\n    manifests: ./cfg\n    namespace: side\n",
        "  late:\n    manifests: ./late\n    namespace: side\n    needs: [cfg]\n",
    );
    p.spec(&format!("{WEB}{APP}{side}"));
    let apply = p.rekube(&["apply", "test", "--timeout", "60"]);
    assert_eq!(apply.status.code(), Some(1));
    let e = err(&apply);
    assert!(
        e.contains("late: done (1 written, 0 deleted, 0 unchanged)"),
        "an unrelated component runs to the end:\n{e}"
    );
    assert!(kubectl(&cluster, &["get", "configmap", "late", "-n", "side"]).status.success(), "{e}");
    // What the rollout shows first depends on timing (`0/2 available`, or
    // `generation 1 not yet observed` when the pod fails faster, as on 1.34).
    assert!(e.contains("web: FAILED: Deployment web: "), "{e}");
    assert!(e.contains(": CrashLoopBackOff"), "the pod's reason is named:\n{e}");
    assert!(e.contains("pod web-"), "the pod is named:\n{e}");
    assert!(
        e.contains("app: skipped: needs web, which failed"),
        "exactly its dependents are skipped, naming why:\n{e}"
    );
    // Its namespace comes with the environment's namespace set, before any component; nothing of its own.
    assert_eq!(
        kubectl(&cluster, &["get", "deploy,secret", "-n", "app", "-l", "applyset.kubernetes.io/part-of", "-o", "name"])
            .stdout,
        b"",
        "the dependent never started"
    );

    // status says the same, per component.
    let status: serde_json::Value = serde_json::from_str(&ok(&p.rekube(&["-o", "json", "status", "test"]))).unwrap();
    let comps = status[0]["components"].as_array().unwrap();
    let names: Vec<&str> = comps.iter().map(|c| c["component"].as_str().unwrap()).collect();
    assert_eq!(names, ["cfg", "web", "app", "late"], "by depth in the graph, then by name: {status}");
    let web = comps[1]["health"].as_str().unwrap();
    assert!(web.starts_with("failed: Deployment web: 0/2 available") && web.contains("CrashLoopBackOff"), "{status}");
    assert_eq!(comps[2]["health"], "not applied", "{status}");
    assert!(comps[2]["pending_changes"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(comps[3]["health"], "healthy", "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_balancer_gets_an_address_and_its_health_gate_passes() {
    let cluster = TestCluster::with_kubelet("lb").await;
    let p = Platform::new(&cluster, "lb");
    p.write(
        "edge/svc.yaml",
        concat!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: edge\n",
            "spec:\n  type: LoadBalancer\n  selector: {app: edge}\n  ports: [{port: 80}]\n",
        ),
    );
    p.spec("  edge:\n    manifests: ./edge\n    namespace: edge\n");
    // Health-gated, as charts whose default Service is a LoadBalancer are.
    let apply = p.rekube(&["apply", "test", "--timeout", "60"]);
    assert_eq!(apply.status.code(), Some(0), "{}", err(&apply));
    let ip = out(&kubectl(
        &cluster,
        &["get", "svc", "edge", "-n", "edge", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    ));
    assert_eq!(
        ip,
        rekube_cluster::local::lb_address("edge", "edge"),
        "an address from {}",
        rekube_cluster::local::LB_RANGE
    );
    assert!(ip.starts_with("198.18.") || ip.starts_with("198.19."), "{ip}");
    // The address is status, not spec: the next plan is empty.
    let plan = p.rekube(&["plan", "test", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", out(&plan));
}

fn replaceable(p: &Platform, image: &str, app: &str) {
    p.write(
        "batch/job.yaml",
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n  template:\n    spec:\n\
             \x20     restartPolicy: Never\n      containers:\n        - name: run\n          image: {image}\n"
        ),
    );
    p.write(
        "batch/web.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n\
             \x20   rekube.dev/replace: \"true\"\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {app}}}\n\
             \x20 template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n      containers:\n\
             \x20       - name: web\n          image: nginx:1.25\n"
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn immutable_changes_are_replaced_only_when_allowed() {
    let cluster = TestCluster::with_kubelet("replace").await;
    let p = Platform::new(&cluster, "replace");
    replaceable(&p, "busybox:1.36", "web");
    p.spec("  batch:\n    manifests: ./batch\n    namespace: batch\n");
    ok(&p.rekube(&["apply", "test", "--timeout", "120"]));
    let uid = |kind: &str, name: &str| {
        out(&kubectl(&cluster, &["get", kind, name, "-n", "batch", "-o", "jsonpath={.metadata.uid}"]))
    };
    let (job, web) = (uid("job", "once"), uid("deploy", "web"));

    // A Job's template and a selector cannot change in place: the server's dry-run says which field.
    replaceable(&p, "busybox:1.37", "web2");
    let plan = out(&p.rekube(&["plan", "test"]));
    assert!(
        plan.contains("± Job batch/once (replace: immutable spec.template; apply refuses it without --force-replace)"),
        "{plan}"
    );
    assert!(plan.contains("± Deployment batch/web (replace: immutable spec.selector)\n"), "{plan}");
    assert!(plan.contains("2 to replace"), "{plan}");
    common::settings().bind(|| insta::assert_snapshot!("plan_replace", plan.trim_end()));

    // Without leave, nothing is written at all (not even the allowed one).
    let refused = p.rekube(&["apply", "test", "--timeout", "120"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(err(&refused).contains("Job batch/once: immutable spec.template"), "{}", err(&refused));
    assert!(err(&refused).contains("hint: run `rekube apply --force-replace`"), "{}", err(&refused));
    common::settings().bind(|| insta::assert_snapshot!("apply_refused_replace", err(&refused).trim_end()));
    assert_eq!((uid("job", "once"), uid("deploy", "web")), (job.clone(), web.clone()));

    // With it, both are deleted and created again, and the platform converges.
    ok(&p.rekube(&["apply", "test", "--force-replace", "--timeout", "120"]));
    assert_ne!(uid("job", "once"), job);
    assert_ne!(uid("deploy", "web"), web);
    let again = p.rekube(&["plan", "test", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", out(&again));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apiservice_converges_even_where_the_server_cannot_server_side_apply_it() {
    let cluster = TestCluster::start("apisvc").await;
    let p = Platform::new(&cluster, "apisvc");
    p.write("agg/apiservice.yaml", APISERVICE);
    p.spec("  agg:\n    manifests: ./agg\n    namespace: agg\n");
    // No Service answers for it: do not wait for Available.
    let apply = p.rekube(&["apply", "test", "--no-wait"]);
    assert_eq!(apply.status.code(), Some(0), "{}", err(&apply));
    if rekube_testbed::k8s_minor() < 22 {
        let note = "note: APIService v1beta1.metrics.example.com: the server dropped the connection on every \
                    server-side apply of it; written with create/replace instead (field manager rekube)";
        assert!(err(&apply).contains(note), "the fallback is said: {}", err(&apply));
    }
    let got =
        out(&kubectl(&cluster, &["get", "apiservice", "v1beta1.metrics.example.com", "-o", "jsonpath={.spec.group}"]));
    assert_eq!(got, "metrics.example.com");
    let again = p.rekube(&["plan", "test", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}{}", out(&again), err(&again));
    // A change is written too.
    p.write("agg/apiservice.yaml", &APISERVICE.replace("versionPriority: 100", "versionPriority: 50"));
    let apply = p.rekube(&["apply", "test", "--no-wait"]);
    assert_eq!(apply.status.code(), Some(0), "{}", err(&apply));
    let got = out(&kubectl(
        &cluster,
        &["get", "apiservice", "v1beta1.metrics.example.com", "-o", "jsonpath={.spec.versionPriority}"],
    ));
    assert_eq!(got, "50");
    assert_eq!(p.rekube(&["plan", "test", "--detailed-exitcode"]).status.code(), Some(0));
    ok(&p.rekube(&["destroy", "test"]));
    assert!(!kubectl(&cluster, &["get", "apiservice", "v1beta1.metrics.example.com"]).status.success());
}

const APISERVICE: &str = concat!(
    "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1beta1.metrics.example.com\n",
    "spec:\n  group: metrics.example.com\n  version: v1beta1\n  groupPriorityMinimum: 100\n  versionPriority: 100\n",
    "  insecureSkipTLSVerify: true\n  service: {name: metrics, namespace: agg, port: 443}\n",
);

fn huge_crd(name: &str) -> String {
    // ~400 KiB of schema descriptions: over the 256 KiB that client-side
    // apply's last-applied annotation allows.
    let filler = "x".repeat(4000);
    let props: String = (0..100)
        .map(|i| {
            format!(
                "                f{i}:\n                  type: string\n                  description: \"{filler}\"\n"
            )
        })
        .collect();
    let kind = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
    format!(
        "apiVersion: apiextensions.k8s.io/v1\
         \nkind: CustomResourceDefinition\
         \nmetadata:\
         \n  name: {name}s.example.com\
         \nspec:\
         \n  group: example.com\
         \n  names: {{kind: {kind}, plural: {name}s, singular: {name}}}\
         \n  scope: Namespaced\
         \n  versions:\
         \n    - name: v1\
         \n      served: true\
         \n      storage: true\
         \n      schema:\
         \n        openAPIV3Schema:\
         \n          type: object\
         \n          properties:\
         \n            spec:\
         \n              type: object\
         \n              properties:\
         \n{props}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_resources_wait_for_their_crd_even_a_huge_one() {
    let cluster = TestCluster::with_kubelet("crds").await;
    let p = Platform::new(&cluster, "crds");
    let crd = huge_crd("widget");
    assert!(crd.len() > 300 * 1024, "the CRD is {} bytes", crd.len());
    p.write("crds/widget.yaml", &crd);
    // The CR is in the same component as its CRD, and in a dependent one.
    p.write(
        "crds/default-widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: default\nspec:\n  f1: one\n",
    );
    p.write(
        "uses/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: app-widget\nspec:\n  f2: two\n",
    );
    p.spec(concat!(
        "  crds:\n",
        "    manifests: ./crds\n",
        "    namespace: widgets\n",
        "  uses:\n",
        "    manifests: ./uses\n",
        "    namespace: widgets\n",
        "    needs: [crds]\n",
    ));
    let plan = ok(&p.rekube(&["plan", "test"]));
    assert!(plan.contains("+ Widget widgets/default") && plan.contains("+ Widget widgets/app-widget"), "{plan}");
    ok(&p.rekube(&["apply", "test"]));
    assert_eq!(
        get(&cluster, &["get", "widgets.example.com", "-n", "widgets", "-o", "name"]),
        "widget.example.com/app-widget\nwidget.example.com/default\n"
    );
    assert_eq!(p.rekube(&["plan", "test", "--detailed-exitcode"]).status.code(), Some(0), "and then unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_kind_is_a_clear_error_at_plan_time() {
    let cluster = TestCluster::start("unknown").await;
    let p = Platform::new(&cluster, "unknown");
    p.write("m/gadget.yaml", "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n");
    p.spec("  m:\n    manifests: ./m\n    namespace: m\n");
    let plan = p.rekube(&["plan", "test"]);
    assert_eq!(plan.status.code(), Some(1));
    let e = err(&plan);
    assert!(e.contains("m/gadget.yaml:1: the cluster does not serve Gadget (example.com/v1)"), "{e}");
    assert!(e.contains("hint: install the CustomResourceDefinition first"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn component_selection_applies_only_it_and_what_it_needs() {
    let cluster = TestCluster::with_kubelet("select").await;
    let p = Platform::new(&cluster, "select");
    web_files(&p, "hello");
    app_files(&p);
    p.write("other/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n");
    p.spec(&format!("{WEB}{APP}  other:\n    manifests: ./other\n    namespace: other\n"));

    // Without --with-needs, only the component itself is planned.
    let plan = ok(&p.rekube(&["plan", "test", "-c", "app"]));
    assert!(plan.contains("app (wave 2)") && !plan.contains("web (wave") && !plan.contains("other"), "{plan}");

    ok(&p.rekube(&["apply", "test", "-c", "app", "--with-needs"]));
    get(&cluster, &["get", "deploy", "app", "-n", "app"]);
    get(&cluster, &["get", "deploy", "web", "-n", "web"]);
    assert_eq!(
        kubectl(&cluster, &["get", "ns", "other"]).status.code(),
        Some(1),
        "an unselected component is left alone"
    );

    // A partial plan never proposes to destroy what it did not select.
    let plan = ok(&p.rekube(&["plan", "test", "-c", "other"]));
    assert!(plan.contains("+ ConfigMap other/other") && !plan.contains("destroy") && !plan.contains("  - "), "{plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_names_each_hand_change_with_its_manager_and_apply_reverts_it() {
    let cluster = TestCluster::with_kubelet("drift").await;
    let p = Platform::new(&cluster, "drift");
    web_files(&p, "hello");
    app_files(&p);
    p.write("web/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n");
    p.write(
        "web/autoscaled.yaml",
        concat!(
            "apiVersion: apps/v1\n",
            "kind: Deployment\n",
            "metadata:\n",
            "  name: autoscaled\n",
            "spec:\n",
            "  replicas: 1\n",
            "  selector:\n",
            "    matchLabels: {app: autoscaled}\n",
            "  template:\n",
            "    metadata:\n",
            "      labels: {app: autoscaled}\n",
            "    spec:\n",
            "      containers: [{name: a, image: \"nginx:1.25\"}]\n",
        ),
    );
    p.write("web/tuned.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tuned\ndata:\n  level: \"1\"\n");
    p.spec(&format!("{WEB}    ignore-differences: [{{ kind: ConfigMap, name: tuned, paths: [data.level] }}]\n{APP}"));
    ok(&p.rekube(&["apply", "test"]));
    let clean = p.rekube(&["drift", "test"]);
    assert_eq!(clean.status.code(), Some(0), "no drift right after apply: {}{}", out(&clean), err(&clean));

    // Every change made with the real tool a person would use.
    let editor = p.path("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/^  a: \"1\"/  a: \"edited\"/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let edit =
        cluster.kubectl().args(["edit", "cm", "settings", "-n", "web"]).env("KUBE_EDITOR", &editor).output().unwrap();
    assert!(edit.status.success(), "kubectl edit: {}", err(&edit));
    get(&cluster, &["scale", "deploy", "web", "-n", "web", "--replicas=4"]);
    get(&cluster, &["patch", "cm", "web-config", "-n", "web", "-p", r#"{"data":{"message":"patched"}}"#]);
    get(&cluster, &["label", "svc", "web", "-n", "web", "applyset.kubernetes.io/part-of=someone-else", "--overwrite"]);
    get(&cluster, &["set", "image", "deploy/app", "-n", "app", "app=busybox:1.37"]);
    get(&cluster, &["delete", "cm", "web-extra", "-n", "web"]);
    get(&cluster, &["create", "configmap", "made-by-hand", "-n", "web", "--from-literal=x=y"]);
    get(&cluster, &["patch", "secret", "app-db", "-n", "app", "-p", r#"{"stringData":{"password":"correct-horse"}}"#]);
    // An HPA owns autoscaled's replicas: scaling it is not drift.
    get(&cluster, &["autoscale", "deploy", "autoscaled", "-n", "web", "--min=1", "--max=3"]);
    get(&cluster, &["scale", "deploy", "autoscaled", "-n", "web", "--replicas=3"]);
    // A field the component declares in `ignore-differences` is not drift.
    get(&cluster, &["patch", "cm", "tuned", "-n", "web", "-p", r#"{"data":{"level":"2"}}"#]);

    let text = p.rekube(&["drift", "test"]);
    let mut s = settings();
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]");
    // Since 1.22 the server records who wrote through /scale: the report names them.
    common::per_version(s).bind(|| insta::assert_snapshot!("drift_report", format!("{}{}", out(&text), err(&text))));
    let drift = p.rekube(&["drift", "test", "-o", "json"]);
    assert_eq!(drift.status.code(), Some(2), "drift exits 2: {}", err(&drift));
    let report: serde_json::Value = serde_json::from_slice(&drift.stdout).unwrap();
    assert!(
        !report.to_string().contains("correct-horse") && !report.to_string().contains("hunter2"),
        "Secret values are masked"
    );
    let field = |kind_name: &str, path: &str| -> serde_json::Value {
        let (kind, name) = kind_name.split_once('/').unwrap();
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == kind && o["name"] == name)
            .and_then(|o| o["fields"].as_array().unwrap().iter().find(|f| f["path"] == path).cloned())
            .unwrap_or_else(|| panic!("no drift of {kind_name} {path} in {report:#}"))
    };
    for (name, path, manager) in [
        ("ConfigMap/settings", "data.a", "kubectl-edit"),
        ("ConfigMap/web-config", "data.message", "kubectl-patch"),
        ("Service/web", "metadata.labels[\"applyset.kubernetes.io/part-of\"]", "kubectl-label"),
        ("Deployment/app", "spec.template.spec.containers[0].image", "kubectl-set"),
        ("Secret/app-db", "data.password", "kubectl-patch"),
    ] {
        let f = field(name, path);
        assert_eq!(f["manager"], manager, "{name} {path}: {f}");
        assert!(f["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{name} {path} has a time: {f}");
    }
    assert_eq!(field("Secret/app-db", "data.password")["live"], "(sensitive)");
    // kubectl scale goes through /scale, which v1.20 records without a manager;
    // since 1.22 the writer is recorded, with the subresource.
    let replicas = field("Deployment/web", "spec.replicas");
    assert_eq!((replicas["applied"].clone(), replicas["live"].clone()), (serde_json::json!(2), serde_json::json!(4)));
    if rekube_testbed::k8s_minor() >= 22 {
        assert_eq!(
            (replicas["manager"].as_str(), replicas["subresource"].as_str()),
            (Some("kubectl"), Some("scale")),
            "{replicas}"
        );
    } else {
        assert!(replicas["manager"].is_null(), "{replicas}");
    }
    let deleted = report["objects"].as_array().unwrap().iter().find(|o| o["name"] == "web-extra").unwrap();
    assert_eq!(deleted["state"], "deleted");
    let added = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "made-by-hand")
        .expect("hand-made object listed");
    assert_eq!((added["state"].as_str(), added["manager"].as_str()), (Some("added"), Some("kubectl-create")));
    assert!(added["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        !report["objects"].as_array().unwrap().iter().any(|o| o["name"] == "kube-root-ca.crt"),
        "system-made objects are not listed"
    );
    assert!(
        !report["objects"].as_array().unwrap().iter().any(|o| o["name"] == "autoscaled"),
        "HPA-managed replicas are not drift: {report:#}"
    );
    assert!(
        !report["objects"].as_array().unwrap().iter().any(|o| o["name"] == "tuned"),
        "ignored fields are not drift: {report:#}"
    );

    // plan and apply say what they revert and from whom; then there is no drift.
    let plan = ok(&p.rekube(&["plan", "test"]));
    assert!(plan.contains(r#"data.a: "edited" → "1"  (hand change by kubectl-edit: reverted)"#), "{plan}");
    let apply = p.rekube(&["apply", "test"]);
    ok(&apply);
    let reverted = r#"reverted ConfigMap web/settings data.a: "edited" → "1" (changed by kubectl-edit at "#;
    assert!(err(&apply).contains(reverted), "{}", err(&apply));
    assert!(
        err(&apply).contains("reverted Deployment app/app spec.template.spec.containers[0].image"),
        "{}",
        err(&apply)
    );
    assert_eq!(get(&cluster, &["get", "cm", "settings", "-n", "web", "-o", "jsonpath={.data.a}"]), "1");
    assert_eq!(
        get(
            &cluster,
            &["get", "deploy", "app", "-n", "app", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]
        ),
        "busybox:1.36"
    );
    get(&cluster, &["get", "cm", "web-extra", "-n", "web"]);
    // What apply did not create, it leaves: only the hand-made object remains.
    let after = p.rekube(&["drift", "test"]);
    assert_eq!(after.status.code(), Some(2));
    assert_eq!(out(&after).lines().count(), 1, "{}", out(&after));
    assert!(out(&after).starts_with("web: ConfigMap web/made-by-hand: added by hand"), "{}", out(&after));
    get(&cluster, &["delete", "cm", "made-by-hand", "-n", "web"]);
    let clean = p.rekube(&["drift", "test"]);
    assert_eq!(clean.status.code(), Some(0), "{}{}", out(&clean), err(&clean));
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_watch_reports_a_change_as_it_happens() {
    let cluster = TestCluster::with_kubelet("watch").await;
    let p = Platform::new(&cluster, "watch");
    p.write("web/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n");
    p.spec(WEB);
    ok(&p.rekube(&["apply", "test"]));
    let mut child =
        p.w.command(&["drift", "test", "--watch", "--interval", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    get(&cluster, &["patch", "cm", "settings", "-n", "web", "-p", r#"{"data":{"a":"2"}}"#]);
    let line = rx.recv_timeout(std::time::Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("the watch reported the change within 30 s");
    assert_eq!(line, r#"web: ConfigMap web/settings data.a: "1" → "2" by kubectl-patch"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn charts_render_for_what_the_cluster_serves() {
    let cluster = TestCluster::start("capabilities").await;
    let p = Platform::new(&cluster, "capabilities");
    p.write("chart/Chart.yaml", "apiVersion: v2\nname: mon\nversion: 0.1.0\n");
    p.write(
        "chart/templates/all.yaml",
        concat!(
            "apiVersion: v1\n",
            "kind: ConfigMap\n",
            "metadata:\n",
            "  name: always\n",
            "{{- if .Capabilities.APIVersions.Has \"example.com/v1/Gadget\" }}\n",
            "---\n",
            "apiVersion: example.com/v1\n",
            "kind: Gadget\n",
            "metadata:\n",
            "  name: only-with-crd\n",
            "{{- end }}\n",
        ),
    );
    p.spec("  mon:\n    chart: { path: ./chart }\n    namespace: mon\n");
    let plan = ok(&p.rekube(&["plan", "test"]));
    assert!(plan.contains("always") && !plan.contains("only-with-crd"), "{plan}");
    // Another team installs the CRD: the chart now renders its custom resource.
    p.write(
        "crd.yaml",
        concat!(
            "apiVersion: apiextensions.k8s.io/v1\n",
            "kind: CustomResourceDefinition\n",
            "metadata: { name: gadgets.example.com }\n",
            "spec:\n",
            "  group: example.com\n",
            "  scope: Namespaced\n",
            "  names: { plural: gadgets, singular: gadget, kind: Gadget }\n",
            "  versions:\n",
            "    - name: v1\n",
            "      served: true\n",
            "      storage: true\n",
            "      schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }\n",
        ),
    );
    get(&cluster, &["apply", "-f", p.path("crd.yaml").to_str().unwrap()]);
    get(&cluster, &["wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=60s"]);
    let plan = ok(&p.rekube(&["plan", "test"]));
    assert!(plan.contains("Gadget mon/only-with-crd"), "{plan}");
    ok(&p.rekube(&["apply", "test"]));
    assert_eq!(get(&cluster, &["-n", "mon", "get", "gadget", "-o", "name"]).trim(), "gadget.example.com/only-with-crd");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_write_is_one_readable_line_not_a_status_dump() {
    let cluster = TestCluster::start("refused").await;
    let p = Platform::new(&cluster, "refused");
    p.write(
        "m/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n    - port: 70000\n",
    );
    p.spec("  m:\n    manifests: ./m\n    namespace: m\n");
    let apply = p.rekube(&["apply", "test"]);
    assert_eq!(apply.status.code(), Some(1));
    let e = err(&apply);
    let line = e.lines().find(|l| l.starts_with("m: FAILED:")).unwrap_or_else(|| panic!("{e}"));
    assert!(
        line.contains(
            "apply Service m/bad: Service \"bad\" is invalid: \
             [spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535"
        ),
        "{line}"
    );
    assert!(line.ends_with("(Invalid, HTTP 422)"), "the server's reason and code, once: {line}");
    assert!(!e.contains("Status {") && !e.contains("ErrorResponse") && !e.contains("ApiError"), "no Debug dump:\n{e}");
}
