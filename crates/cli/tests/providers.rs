//! Clusters as code through the real binary: the exec protocol driven by a
//! provider that itself starts a local cluster, kind and k3d through fake
//! CLIs (they cannot run here) in front of a real control plane,
//! prerequisites, the lock, and `up` killed with -9 at three steps.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rekube_testbed::TestCluster;

mod common;

use common::{Workdir, err, get, ok, out};

/// Runs `rekube down ENV` when dropped, so a failing test leaves no
/// detached local cluster running.
struct DownOnDrop<'a>(&'a Workdir, &'static str);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.rekube(&["down", self.1]);
    }
}

/// One component on a cluster from the exec provider that fronts `local`.
const LAB_SPEC: &str = concat!(
    "clusters:\n",
    "  lab: { provider: exec, exec: ./providers/rekube-local.sh }\n",
    "components:\n",
    "  app: { manifests: ./app, namespace: app }\n",
    "environments:\n",
    "  lab: { cluster: lab }\n",
);

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  colour: blue\n";

/// Processes whose command line mentions `dir` (what a cluster left running).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
        if cmd.contains(&needle) && !zombie {
            found.push(format!("{pid}: {cmd}"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_provider_runs_a_local_cluster_through_the_protocol() {
    let mut w = Workdir::new();
    w.env("REKUBE", env!("CARGO_BIN_EXE_rekube"));
    let _down = DownOnDrop(&w, "lab");
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/providers/rekube-local.sh"))
            .unwrap();
    w.write("providers/rekube-local.sh", &script);
    std::fs::set_permissions(w.path("providers/rekube-local.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    w.write("app/settings.yaml", CONFIGMAP);
    w.write("rekube.yaml", LAB_SPEC);
    let up = w.rekube(&["up", "lab"]);
    ok(&up);
    assert!(err(&up).contains("cluster `lab` ready in"), "{}", err(&up));
    let status = ok(&w.rekube(&["status", "lab"]));
    let minor = rekube_testbed::k8s_minor();
    let row = |l: &str| {
        let w: Vec<&str> = l.split_whitespace().take(5).collect();
        w.len() == 5 && w[..4] == ["lab", "lab", "exec", "running"] && w[4].starts_with(&format!("v1.{minor}."))
    };
    assert!(status.lines().any(row), "{status}");
    assert!(status.contains("  app: healthy, no drift"), "{status}");
    // Again: the provider says it exists, nothing is created twice.
    let again = w.rekube(&["up", "lab"]);
    assert!(
        err(&again).contains("cluster `lab` already there") && err(&again).contains("no changes"),
        "{}",
        err(&again)
    );

    let down = w.rekube(&["down", "lab"]);
    ok(&down);
    assert!(err(&down).contains("cluster `lab`: deleted"), "{}", err(&down));
    assert_eq!(processes_under(&w.path("")), Vec::<String>::new(), "down left processes running");
    let status = ok(&w.rekube(&["status", "lab"]));
    assert!(
        status.lines().any(|l| l.split_whitespace().take(4).collect::<Vec<_>>() == ["lab", "lab", "exec", "absent"]),
        "{status}"
    );
}

/// A fake `kind`/`k3d` that records its arguments and fronts `kubeconfig`.
fn fake_tool(w: &Workdir, name: &str, body: &str) {
    let script = format!("#!/bin/sh\necho \"{name} $*\" >> \"$FAKE_LOG\"\n{body}\nexit 1\n");
    w.write(&format!("bin/{name}"), &script);
    std::fs::set_permissions(w.path(&format!("bin/{name}")), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kind_and_k3d_are_driven_with_argument_lists() {
    let cluster = TestCluster::start("fake-kind").await;
    let mut w = Workdir::new();
    fake_tool(
        &w,
        "kind",
        r#"case "$1 $2" in
  "get clusters") [ -f "$FAKE_STATE" ] && cat "$FAKE_STATE"; exit 0;;
  "create cluster") echo "$4" > "$FAKE_STATE"; cp "$FAKE_KUBECONFIG" "$6"; exit 0;;
  "get kubeconfig") cat "$FAKE_KUBECONFIG"; exit 0;;
  "delete cluster") rm -f "$FAKE_STATE"; exit 0;;
esac"#,
    );
    fake_tool(
        &w,
        "k3d",
        concat!(
            r#"case "$1 $2" in
  "cluster list") if [ -f "$FAKE_STATE" ]; then echo "[{\"name\":\"$(cat "$FAKE_STATE")\"}]"; "#,
            r#"else echo "[]"; fi; exit 0;;
  "cluster create") echo "$3" > "$FAKE_STATE"; exit 0;;
  "kubeconfig get") cat "$FAKE_KUBECONFIG"; exit 0;;
  "cluster delete") rm -f "$FAKE_STATE"; exit 0;;
esac"#
        ),
    );
    w.env("PATH", &format!("{}:{}", w.path("bin").display(), std::env::var("PATH").unwrap()));
    w.env("FAKE_LOG", w.path("calls.log").to_str().unwrap());
    w.env("FAKE_STATE", w.path("fake.state").to_str().unwrap());
    w.env("FAKE_KUBECONFIG", cluster.kubeconfig().to_str().unwrap());
    w.write("app/settings.yaml", CONFIGMAP);
    for (tool, create) in [
        (
            "kind",
            "kind create cluster --name dev --kubeconfig {STATE}/kubeconfig --wait 5m --image kindest/node:v1.20.2",
        ),
        (
            "k3d",
            "k3d cluster create dev --kubeconfig-update-default=false --kubeconfig-switch-context=false \
             --wait --image rancher/k3s:v1.20.2-k3s1",
        ),
    ] {
        let _ = std::fs::remove_file(w.path("calls.log"));
        w.write(
            "rekube.yaml",
            &format!(
                "clusters:\
                 \n  dev: {{ provider: {tool}, kubernetes: \"1.20.2\" }}\
                 \ncomponents:\
                 \n  app: {{ manifests: ./app, namespace: app }}\
                 \nenvironments:\
                 \n  dev: {{ cluster: dev }}\n"
            ),
        );
        ok(&w.rekube(&["up", "dev"]));
        assert_eq!(
            get(&cluster, &["-n", "app", "get", "configmap", "settings", "-o", "jsonpath={.data.colour}"]),
            "blue",
            "{tool}: the component reached the cluster"
        );
        ok(&w.rekube(&["down", "dev"]));
        let calls = std::fs::read_to_string(w.path("calls.log")).unwrap();
        let state = w.path(".rekube/clusters/dev");
        let create = create.replace("{STATE}", &std::path::absolute(&state).unwrap().display().to_string());
        let creates: Vec<&str> = calls.lines().filter(|l| l.contains(" create")).collect();
        assert_eq!(creates, [create.as_str()], "{tool} calls:\n{calls}");
        assert!(
            calls.lines().any(|l| l.starts_with(&format!("{tool} ")) && l.contains("delete") && l.contains(" dev")),
            "{tool} calls:\n{calls}"
        );
        assert!(!w.path("fake.state").exists(), "{tool}: the cluster was not deleted");
        let gone = cluster.kubectl().args(["get", "ns", "app"]).output().unwrap();
        assert!(!gone.status.success(), "{tool}: down destroys the components before deleting the cluster");
    }
}

fn spawn_up(w: &Workdir) -> Child {
    w.command(&["up", "dev"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits until the journal of the running `command` on `dev` records `step`.
fn wait_for_step(w: &Workdir, command: &str, step: &str, within: Duration) {
    let began = Instant::now();
    loop {
        let journal =
            std::fs::read_to_string(w.path(&format!(".rekube/journal/dev.{command}.json"))).unwrap_or_default();
        if journal.contains(&format!("\"name\": \"{step}\"")) {
            return;
        }
        assert!(began.elapsed() < within, "`{command}` never finished step {step}:\n{journal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill9(child: Child) -> String {
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let o = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn prerequisites_lock_and_up_killed_at_three_steps_then_resumed() {
    let w = Workdir::new();
    let _down = DownOnDrop(&w, "dev");
    w.write("app/settings.yaml", CONFIGMAP);
    // The bucket is a directory; making it takes a moment, so `up` can be caught in the middle.
    w.write(
        "rekube.yaml",
        concat!(
            "clusters:\n",
            "  dev:\n",
            "    provider: local\n",
            "    prerequisites:\n",
            "      - name: bucket\n",
            "        check: [test, -d, bucket]\n",
            "        create: [sh, -c, 'echo made >> made.log; sleep 1; mkdir bucket']\n",
            "        delete: [rmdir, bucket]\n",
            "components:\n",
            "  app: { manifests: ./app, namespace: app }\n",
            "environments:\n",
            "  dev: { cluster: dev }\n",
        ),
    );

    // 1. Killed while the prerequisite is being made; a second run meanwhile is refused by the lock.
    let first = spawn_up(&w);
    let began = Instant::now();
    while !w.path("made.log").exists() {
        assert!(began.elapsed() < Duration::from_secs(30), "the prerequisite never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = w.rekube(&["up", "dev"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        err(&second).contains(&format!("environment `dev` is busy: `rekube up` (PID {}", first.id())),
        "{}",
        err(&second)
    );
    kill9(first);
    std::thread::sleep(Duration::from_millis(1200)); // the orphaned `sh` finishes making the bucket

    // 2. Killed after the prerequisite, while the cluster starts.
    let run = spawn_up(&w);
    wait_for_step(&w, "up", "prerequisite bucket", Duration::from_secs(60));
    let stderr = kill9(run);
    assert!(stderr.contains("resuming `rekube up dev` interrupted"), "{stderr}");
    assert!(!stderr.contains("is busy"), "the kernel released the killed run's lock: {stderr}");

    // 3. Killed after the cluster, while the components are applied.
    let run = spawn_up(&w);
    wait_for_step(&w, "up", "cluster", Duration::from_secs(60));
    kill9(run);

    // The rerun converges.
    let done = w.rekube(&["up", "dev"]);
    ok(&done);
    assert!(
        err(&done).contains("resuming `rekube up dev` interrupted")
            && err(&done).contains("finished then: prerequisite bucket, cluster"),
        "{}",
        err(&done)
    );
    let status = ok(&w.rekube(&["status", "dev"]));
    assert!(status.contains("running") && status.contains("  app: healthy, no drift"), "{status}");

    // Prerequisites are skipped when present: `made.log` does not grow.
    let made = std::fs::read_to_string(w.path("made.log")).unwrap().lines().count();
    let again = w.rekube(&["up", "dev"]);
    assert!(
        err(&again).contains("prerequisite bucket: present") && !err(&again).contains("resuming"),
        "{}",
        err(&again)
    );
    assert_eq!(std::fs::read_to_string(w.path("made.log")).unwrap().lines().count(), made);

    // down tears everything down, prerequisites last, and leaves nothing running.
    let down = w.rekube(&["down", "dev"]);
    ok(&down);
    let text = err(&down);
    assert!(text.contains("cluster `dev`: deleted") && text.contains("prerequisite bucket: deleted"), "{text}");
    assert!(text.find("cluster `dev`: deleted") < text.find("prerequisite bucket: deleted"), "{text}");
    assert!(!w.path("bucket").exists());
    assert_eq!(processes_under(&w.path("")), Vec::<String>::new());
}

const RANDOM_CHART: &str = "apiVersion: v2\nname: noisy\nversion: 0.1.0\n";
const RANDOM_TEMPLATE: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: noisy\ndata:\n  token: {{ randAlphaNum 12 | quote }}\n";

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_check_proves_a_rebuild_and_catches_a_random_value() {
    let w = Workdir::new();
    let _down = DownOnDrop(&w, "dev");
    w.write("app/settings.yaml", CONFIGMAP);
    w.write("charts/noisy/Chart.yaml", RANDOM_CHART);
    w.write("charts/noisy/templates/cm.yaml", RANDOM_TEMPLATE);
    let spec = |extra: &str| {
        format!(
            "clusters:\
             \n  dev: {{ provider: local }}\
             \ncomponents:\
             \n  app: {{ manifests: ./app, namespace: app }}\
             \n{extra}environments:\
             \n  dev: {{ cluster: dev }}\n"
        )
    };
    w.write("rekube.yaml", &spec(""));
    ok(&w.rekube(&["up", "dev"]));
    let check = w.rekube(&["rebuild-check", "dev"]);
    let text = ok(&check);
    assert!(text.starts_with("IDENTICAL: `dev` was torn down and rebuilt from the spec:"), "{text}");

    w.write("rekube.yaml", &spec("  noisy: { chart: { path: ./charts/noisy }, namespace: noisy }\n"));
    ok(&w.rekube(&["up", "dev"]));
    let check = w.rekube(&["rebuild-check", "dev"]);
    assert_eq!(check.status.code(), Some(2), "{}{}", out(&check), err(&check));
    let text = out(&check);
    assert!(
        text.contains("DIFFERENT") && text.contains("changed ConfigMap noisy/noisy") && text.contains("data.token: \""),
        "{text}"
    );

    // Refused on a cluster that is neither local nor disposable.
    w.write(
        "rekube.yaml",
        "clusters:\n  prod: { provider: existing, context: prod }\nenvironments:\n  prod: { cluster: prod }\n",
    );
    let refused = w.rekube(&["rebuild-check", "prod"]);
    assert!(
        err(&refused).contains("is not disposable") && err(&refused).contains("hint: mark it `disposable: true`"),
        "{}",
        err(&refused)
    );
    w.write("rekube.yaml", &spec(""));
    ok(&w.rekube(&["down", "dev"]));
}

const LOAD_BALANCED: &str = "\
apiVersion: v1
kind: Service
metadata: { name: lb }
spec:
  type: LoadBalancer
  selector: { app: web }
  ports: [{ port: 80 }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: web }
spec:
  defaultBackend: { service: { name: lb, port: { number: 80 } } }
---
apiVersion: v1
kind: Service
metadata: { name: internal }
spec:
  selector: { app: web }
  ports: [{ port: 80 }]
";

#[tokio::test(flavor = "multi_thread")]
async fn down_releases_load_balancers_before_anything_else_and_keeps_an_existing_cluster() {
    let cluster = TestCluster::start("release").await;
    let w = Workdir::new();
    w.write("edge/objects.yaml", LOAD_BALANCED);
    w.write(
        "rekube.yaml",
        &format!(
            "clusters:\
             \n{}components:\
             \n  edge: {{ manifests: ./edge, namespace: edge }}\
             \nenvironments:\
             \n  prod: {{ cluster: prod }}\n",
            common::existing("prod", &cluster, "release")
        ),
    );
    // No cloud here gives the LoadBalancer an address, so do not wait for health.
    ok(&w.rekube(&["apply", "prod", "--no-wait"]));
    let down = w.rekube(&["down", "prod"]);
    ok(&down);
    let text = err(&down);
    let released =
        text.find("load balancers: released Service edge/lb, Ingress edge/web").unwrap_or_else(|| panic!("{text}"));
    assert!(released < text.find("edge: deleting").unwrap(), "released before the components are destroyed:\n{text}");
    assert!(text.contains("cluster `prod`: kept (provider `existing` never deletes its cluster)"), "{text}");
    // The cluster is still there; the component is gone.
    assert!(get(&cluster, &["get", "ns", "-o", "name"]).lines().any(|l| l == "namespace/default"));
    assert!(!cluster.kubectl().args(["get", "ns", "edge"]).output().unwrap().status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_check_killed_while_rebuilding_resumes_without_tearing_down_again() {
    let w = Workdir::new();
    let _down = DownOnDrop(&w, "dev");
    w.write("app/settings.yaml", CONFIGMAP);
    w.write(
        "rekube.yaml",
        concat!(
            "clusters:\n",
            "  dev:\n",
            "    provider: local\n",
            "    prerequisites:\n",
            "      - { name: bucket, check: [test, -d, bucket], create: [mkdir, bucket], delete: [rmdir, bucket] }\n",
            "components:\n",
            "  app: { manifests: ./app, namespace: app }\n",
            "environments:\n",
            "  dev: { cluster: dev }\n",
        ),
    );
    ok(&w.rekube(&["up", "dev"]));
    let run = w.command(&["rebuild-check", "dev"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_step(&w, "rebuild-check", "down", Duration::from_secs(90));
    kill9(run);
    let resumed = w.rekube(&["rebuild-check", "dev"]);
    let text = ok(&resumed);
    assert!(text.starts_with("IDENTICAL"), "{text}");
    let log = err(&resumed);
    assert!(log.contains("resuming `rekube rebuild-check dev` interrupted"), "{log}");
    assert!(!log.contains("rekube down `dev`"), "the resumed run tore the cluster down again:\n{log}");
    assert!(w.path("bucket").is_dir(), "the prerequisite exists after the rebuild");
    ok(&w.rekube(&["down", "dev"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn down_reports_a_component_it_cannot_destroy_and_force_deletes_the_cluster() {
    let mut w = Workdir::new();
    w.env("REKUBE", env!("CARGO_BIN_EXE_rekube"));
    struct ForceDown<'a>(&'a Workdir);
    impl Drop for ForceDown<'_> {
        fn drop(&mut self) {
            let _ = self.0.rekube(&["down", "lab", "--force", "--timeout", "1"]);
        }
    }
    let _down = ForceDown(&w);
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/providers/rekube-local.sh"))
            .unwrap();
    w.write("providers/rekube-local.sh", &script);
    std::fs::set_permissions(w.path("providers/rekube-local.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    // A finalizer nobody removes: the ConfigMap can never be deleted.
    w.write(
        "app/stuck.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stuck\n  finalizers: [example.com/never]\ndata:\n  a: b\n",
    );
    w.write("rekube.yaml", LAB_SPEC);
    ok(&w.rekube(&["up", "lab"]));

    let stuck = w.rekube(&["down", "lab", "--timeout", "2"]);
    assert_eq!(stuck.status.code(), Some(1), "{}", err(&stuck));
    assert!(err(&stuck).contains("ConfigMap app/stuck still exists after 2s (finalizers?)"), "{}", err(&stuck));
    assert!(err(&stuck).contains("`rekube down --force` deletes the cluster anyway"), "{}", err(&stuck));
    assert!(ok(&w.rekube(&["status", "lab"])).contains("running"), "the cluster is kept without --force");

    let forced = w.rekube(&["down", "lab", "--timeout", "2", "--force"]);
    ok(&forced);
    assert!(
        err(&forced).contains("--force: the cluster is deleted anyway")
            && err(&forced).contains("cluster `lab`: deleted"),
        "{}",
        err(&forced)
    );
    assert_eq!(processes_under(&w.path("")), Vec::<String>::new(), "down --force left processes running");
}
