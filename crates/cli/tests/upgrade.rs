//! Blue/green upgrades on two real local clusters, through the real binary:
//! Route53 weighted records on moto, read all along through boto3 (the AWS
//! SDK, not rekube's client); the reference `exec` traffic program; a check
//! that fails half-way and rolls back; kill -9 after every journal step;
//! `copy:` carried through the backup store; preflight refusing the APIs
//! the new version dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rekube_testbed::Moto;

mod common;

use common::{Workdir, err, ok, out};

/// The matrix version: both colors start on it (green may go further).
fn matrix() -> String {
    format!("1.{}", rekube_testbed::k8s_minor())
}

const EDGE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: { name: edge }
spec:
  replicas: 2
  selector: { matchLabels: { app: edge } }
  template:
    metadata: { labels: { app: edge } }
    spec: { containers: [{ name: edge, image: nginx:1.27 }] }
---
apiVersion: v1
kind: Service
metadata: { name: edge }
spec:
  type: LoadBalancer
  selector: { app: edge }
  ports: [{ port: 80 }]
";

/// Tears both colors down however the test ends: a second spec that names
/// each color as its own environment, over the same state directory.
struct DownBoth<'a>(&'a Workdir, String);

impl Drop for DownBoth<'_> {
    fn drop(&mut self) {
        self.0.write("cleanup.yaml", &self.1);
        for env in ["b", "g"] {
            let _ = self.0.rekube(&["-f", "cleanup.yaml", "down", env]);
        }
    }
}

fn cleanup_spec(blue: &str, green: &str) -> String {
    format!(
        "clusters:\n  prod-blue: {{ provider: local, kubernetes: \"{blue}\" }}\n  \
         prod-green: {{ provider: local, kubernetes: \"{green}\" }}\n\
         environments:\n  b: {{ cluster: prod-blue }}\n  g: {{ cluster: prod-green }}\n"
    )
}

/// `kubectl` on one color.
fn kubectl(w: &Workdir, color: &str, args: &[&str]) -> String {
    let o = Command::new(rekube_testbed::tools::kubectl())
        .arg("--kubeconfig")
        .arg(w.path(&format!(".rekube/clusters/{color}/kubeconfig")))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "kubectl {args:?} on {color}: {}", err(&o));
    out(&o)
}

/// `kind ns/name` → `uid rv` of the namespaced objects rekube makes and
/// the ones made by hand, on one color.
fn uids(w: &Workdir, color: &str) -> BTreeMap<String, String> {
    let text = kubectl(
        w,
        color,
        &[
            "get",
            "ns,cm,secret,svc,deploy",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind} {.metadata.namespace}/{.metadata.name}=\
             {.metadata.uid} {.metadata.resourceVersion}\n{end}",
        ],
    );
    text.lines()
        .filter(|l| !l.contains("kube-root-ca.crt") && !l.contains(" kube-") && !l.contains("default-token"))
        .filter(|l| !l.starts_with("Namespace /kube-") && !l.starts_with("Namespace /default"))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// A tiny HTTP server for the `http` check: 200 on every request.
fn health_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

/// boto3 polling the weighted records of `name` all along; one JSON line
/// per change: `[[set id, weight, value], ...]`.
const WATCHER: &str = r#"
import boto3, json, os, sys, time
endpoint, zone, name, stop = sys.argv[1:5]
c = boto3.client("route53", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
last, polls = None, 0
while not os.path.exists(stop):
    sets = c.list_resource_record_sets(HostedZoneId=zone, StartRecordName=name)["ResourceRecordSets"]
    now = sorted([r["SetIdentifier"], r["Weight"], r["ResourceRecords"][0]["Value"]]
                 for r in sets if r["Name"] == name and "SetIdentifier" in r)
    polls += 1
    if now != last:
        print(json.dumps(now), flush=True)
        last = now
    time.sleep(0.02)
print(json.dumps({"polls": polls}), flush=True)
"#;

const CREATE_ZONE: &str = r#"
import boto3, sys
c = boto3.client("route53", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
z = c.create_hosted_zone(Name="example.test.", CallerReference="rekube-test")
print(z["HostedZone"]["Id"])
"#;

fn python(moto: &Moto, script: &str, args: &[&str]) -> Command {
    let mut c = Command::new(moto.python());
    c.arg("-c").arg(script).args(args);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn route53_weights_move_step_by_step_with_a_record_serving_at_every_instant_then_finish() {
    let moto = Moto::start().await;
    let zone = {
        let o = python(&moto, CREATE_ZONE, &[moto.endpoint()]).output().unwrap();
        assert!(o.status.success(), "create zone: {}", err(&o));
        out(&o).trim().to_string()
    };
    let mut w = Workdir::new();
    w.any_version();
    for (k, v) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")] {
        w.env(k, v);
    }
    let (blue_v, green_v) = (matrix(), "1.34".to_string());
    let id = age::x25519::Identity::generate();
    {
        use age::secrecy::ExposeSecret;
        w.write("key.txt", &format!("{}\n", id.to_string().expose_secret()));
    }
    w.env("REKUBE_AGE_IDENTITY", w.path("key.txt").to_str().unwrap());
    let _down = DownBoth(&w, cleanup_spec(&blue_v, &green_v));
    let port = health_server();
    w.write("edge/edge.yaml", EDGE);
    w.write(
        "rekube.yaml",
        &format!(
            "project: shop\n\
             clusters:\n  prod-blue: {{ provider: local, kubernetes: \"{blue_v}\" }}\n  \
             prod-green: {{ provider: local, kubernetes: \"{blue_v}\" }}\n\
             components:\n  edge: {{ manifests: ./edge, namespace: edge }}\n\
             environments:\n  prod:\n    blue-green:\n      clusters: [prod-blue, prod-green]\n      \
             address: edge/edge\n      \
             traffic:\n        route53: {{ zone: example.test., record: app.example.test,\n          \
             ttl: 30, endpoint: \"{}\" }}\n      \
             steps: [10, 50, 100]\n      soak: 1s\n      checks:\n        \
             - http: {{ url: \"http://127.0.0.1:{port}/healthz\", expect: 200 }}\n        \
             - command: [sh, -c, '\"$KUBECTL\" get deploy edge -n edge -o name']\n      \
             copy: {{ namespaces: [orders] }}\n\
             backup: {{ store: ./backups, encrypt-secrets: [{}] }}\n",
            moto.endpoint(),
            id.to_public()
        ),
    );
    ok(&w.rekube(&["validate"]));

    // `up` brings the live color up and gives it the record, at 100%.
    let up = w.rekube(&["up", "prod"]);
    ok(&up);
    assert!(err(&up).contains("`prod-blue` 100%"), "{}", err(&up));
    let blue_addr = kubectl(
        &w,
        "prod-blue",
        &["get", "svc", "edge", "-n", "edge", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    );
    // Made by hand on blue: what `copy:` carries.
    kubectl(&w, "prod-blue", &["create", "namespace", "orders"]);
    kubectl(&w, "prod-blue", &["create", "secret", "generic", "db", "-n", "orders", "--from-literal=password=hunter2"]);
    kubectl(&w, "prod-blue", &["create", "configmap", "limits", "-n", "orders", "--from-literal=max=7"]);
    let blue_before = uids(&w, "prod-blue");

    let stop = w.path("watch.stop");
    let mut watcher = python(&moto, WATCHER, &[moto.endpoint(), &zone, "app.example.test.", stop.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let stdout = watcher.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    // The watcher has seen blue's record before anything moves.
    let began = Instant::now();
    while lines.lock().unwrap().is_empty() {
        assert!(began.elapsed() < Duration::from_secs(20), "the watcher never read the zone");
        std::thread::sleep(Duration::from_millis(20));
    }

    let dry = w.rekube(&["upgrade", "prod", "--kubernetes", &green_v, "--dry-run"]);
    assert!(ok(&dry).contains("traffic `prod-blue` 50% / `prod-green` 50%"), "{}", out(&dry));
    assert!(!w.path(".rekube/upgrade/prod.json").exists(), "a dry run records nothing");

    // Killed at 50%, then rolled back: the watcher sees the weights go back.
    let o = w
        .command(&["upgrade", "prod", "--kubernetes", &green_v])
        .env("REKUBE_KILL_AFTER", "set traffic 50%")
        .output()
        .unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{}", err(&o));
    let back = w.rekube(&["upgrade", "prod", "--rollback"]);
    assert!(ok(&back).starts_with("ROLLED BACK: all traffic of `prod` is on `prod-blue` again"), "{}", out(&back));

    let upgrade = w.rekube(&["upgrade", "prod", "--kubernetes", &green_v]);
    let text = ok(&upgrade);
    assert!(text.starts_with("SHIFTED: 100% of `prod` on `prod-green` (v1.34."), "{text}");
    let log = err(&upgrade);
    for step in ["preflight: all", "verify: `prod-green` is drift-free", "copy: 2 object(s)", "checks: 2 passed"] {
        assert!(log.contains(step), "{step}:\n{log}");
    }
    let green_addr = kubectl(
        &w,
        "prod-green",
        &["get", "svc", "edge", "-n", "edge", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    );
    assert!(kubectl(&w, "prod-green", &["version", "-o", "json"]).contains("\"minor\": \"34\""));
    // The copy: the hand-made Secret and ConfigMap are on green, the Secret
    // encrypted in the store (the archive never holds its value).
    let secret = kubectl(&w, "prod-green", &["get", "secret", "db", "-n", "orders", "-o", "jsonpath={.data.password}"]);
    assert_eq!(secret, "aHVudGVyMg==");
    assert_eq!(kubectl(&w, "prod-green", &["get", "cm", "limits", "-n", "orders", "-o", "jsonpath={.data.max}"]), "7");
    let archives: Vec<_> = walk(&w.path("backups")).into_iter().filter(|p| p.ends_with("resources.tar.zst")).collect();
    assert_eq!(archives.len(), 2, "one copy per upgrade started: {archives:?}");
    for a in &archives {
        let plain = zstd::decode_all(std::fs::File::open(a).unwrap()).unwrap();
        let plain = String::from_utf8_lossy(&plain);
        assert!(plain.contains("limits") && !plain.contains("hunter2") && !plain.contains("aHVudGVyMg=="));
    }

    // status: both colors, the split, the stage.
    let status: serde_json::Value = serde_json::from_str(&ok(&w.rekube(&["-o", "json", "status", "prod"]))).unwrap();
    let bg = &status[0]["blue_green"];
    assert_eq!(bg["stage"], "shifted", "{bg}");
    assert_eq!(bg["colors"][0]["weight"], 0);
    assert_eq!(bg["colors"][1]["weight"], 100);
    assert_eq!(bg["colors"][1]["role"], "new");
    assert!(bg["colors"][1]["version"].as_str().unwrap().starts_with("v1.34."), "{bg}");
    assert_eq!(uids(&w, "prod-blue"), blue_before, "blue untouched by the upgrade");

    let finish = w.rekube(&["upgrade", "prod", "--finish"]);
    assert!(ok(&finish).starts_with("FINISHED: `prod-green` is live for `prod`; `prod-blue` is retired"));
    w.write("cleanup.yaml", &cleanup_spec(&blue_v, &green_v));
    let gone = ok(&w.rekube(&["-f", "cleanup.yaml", "-o", "json", "status", "b"]));
    let gone: serde_json::Value = serde_json::from_str(&gone).unwrap();
    assert_eq!(gone[0]["state"], "absent", "blue is retired: {gone}");
    let refused = w.rekube(&["upgrade", "prod", "--rollback"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        err(&refused).contains("finished at") && err(&refused).contains("nothing to roll back to"),
        "{}",
        err(&refused)
    );
    assert!(err(&refused).contains("hint: to go back, run `rekube upgrade prod`"), "{}", err(&refused));
    // Everything now acts on green.
    let plan = w.rekube(&["plan", "prod", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}{}", out(&plan), err(&plan));

    std::fs::write(&stop, "").unwrap();
    assert!(watcher.wait().unwrap().success());
    reader.join().unwrap();
    let seen = lines.lock().unwrap().clone();
    let (last, changes) = seen.split_last().unwrap();
    let polls: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(polls["polls"].as_u64().unwrap() > 20, "{last}");
    let mut splits = Vec::new();
    for l in changes {
        let sets: Vec<(String, u64, String)> = serde_json::from_str(l).unwrap();
        assert!(!sets.is_empty(), "an instant with no record: {seen:?}");
        let total: u64 = sets.iter().map(|s| s.1).sum();
        assert_eq!(total, 100, "weights that do not sum to a step's split: {l}");
        for (color, weight, value) in &sets {
            let want = if color == "prod-blue" { &blue_addr } else { &green_addr };
            assert!(*weight == 0 || value == want, "{color} points at {value}, not its address {want}");
        }
        let weight = |c: &str| sets.iter().find(|s| s.0 == c).map_or(0, |s| s.1);
        splits.push((weight("prod-blue"), weight("prod-green")));
    }
    splits.dedup();
    let cycle = [(100, 0), (90, 10), (50, 50), (100, 0), (90, 10), (50, 50), (0, 100)];
    assert_eq!(splits, cycle, "{seen:?}");
    assert_eq!(changes.last().unwrap().matches("prod-").count(), 1, "only green's record is left: {seen:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The split in the reference program's state file: color → weight.
fn split(w: &Workdir) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(w.path(".rekube/upgrade/prod.traffic/traffic.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("traffic.json: {e}\n{text}"));
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["color"].as_str().unwrap().to_string(), t["weight"].as_u64().unwrap()))
        .filter(|(_, w)| *w > 0)
        .collect()
}

fn valid_split(s: &BTreeMap<String, u64>, steps: &[u64]) -> bool {
    let total: u64 = s.values().sum();
    let ok_step = s.values().all(|w| *w == 100 || steps.contains(w) || steps.contains(&(100 - w)));
    total == 100 && ok_step
}

fn spawn(w: &Workdir, args: &[&str], kill_at: &str) -> Child {
    w.command(args).env("REKUBE_KILL_AFTER", kill_at).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_every_step_an_upgrade_resumes_and_a_failing_check_rolls_back() {
    let mut w = Workdir::new();
    w.any_version();
    let v = matrix();
    let _down = DownBoth(&w, cleanup_spec(&v, &v));
    w.write("edge/edge.yaml", EDGE);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform/traffic/file-traffic.sh");
    std::fs::copy(script, w.path("file-traffic.sh")).unwrap();
    // The check fails while a file `fail-at-<percent>` exists.
    w.write(
        "rekube.yaml",
        &format!(
            "project: shop\n\
             clusters:\n  prod-blue: {{ provider: local, kubernetes: \"{v}\" }}\n  \
             prod-green: {{ provider: local, kubernetes: \"{v}\" }}\n\
             components:\n  edge: {{ manifests: ./edge, namespace: edge }}\n\
             environments:\n  prod:\n    blue-green:\n      clusters: [prod-blue, prod-green]\n      \
             address: edge/edge\n      traffic: {{ exec: ./file-traffic.sh }}\n      steps: [10, 50, 100]\n      \
             soak: 0s\n      checks:\n        - command: [sh, -c, 'test ! -e \"fail-at-$REKUBE_PERCENT\"']\n"
        ),
    );
    ok(&w.rekube(&["up", "prod"]));
    assert_eq!(split(&w), BTreeMap::from([("prod-blue".to_string(), 100)]));
    let blue_before = uids(&w, "prod-blue");
    let steps = [10, 50, 100];

    // Killed right after each journal step (and between setting a split and
    // journaling it): each rerun resumes, and traffic is always on a valid split.
    let points = [
        "cluster",
        "preflight",
        "components",
        "verify",
        "checks",
        // Killed again before the resumed run got far: what the first run did is still journaled.
        "cluster",
        "set traffic 10%",
        "traffic 10%",
        "set traffic 50%",
        "traffic 50%",
        "set traffic 100%",
    ];
    let mut green_after_apply = None;
    for (i, point) in points.iter().enumerate() {
        let child = spawn(&w, &["upgrade", "prod"], point);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.signal(), Some(libc::SIGKILL), "not killed at `{point}`:\n{}", err(&o));
        if i > 0 {
            assert!(err(&o).contains("resuming `rekube upgrade prod` interrupted"), "{point}: {}", err(&o));
        }
        if i == 6 {
            assert!(
                err(&o).contains("checks: done by the interrupted run"),
                "a second kill lost progress: {}",
                err(&o)
            );
        }
        let s = split(&w);
        assert!(valid_split(&s, &steps), "after a kill at `{point}` traffic is {s:?}");
        if *point == "components" {
            green_after_apply = Some(uids(&w, "prod-green"));
        }
    }
    // `down` of the live color is refused while an upgrade is under way.
    let down = w.rekube(&["down", "prod"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        err(&down).contains("an upgrade of `prod` from `prod-blue` to `prod-green` is under way"),
        "{}",
        err(&down)
    );
    let last = w.rekube(&["upgrade", "prod"]);
    assert!(ok(&last).starts_with("SHIFTED: 100% of `prod` on `prod-green`"), "{}", out(&last));
    assert!(err(&last).contains("traffic 50%: done by the interrupted run"), "{}", err(&last));
    assert_eq!(split(&w), BTreeMap::from([("prod-green".to_string(), 100)]));
    // No object of green was made twice or lost across the kills.
    assert_eq!(uids(&w, "prod-green"), green_after_apply.unwrap(), "green's objects kept their UIDs");
    assert_eq!(uids(&w, "prod-blue"), blue_before, "blue untouched");

    // --finish, killed after each of its steps, then completed.
    for point in ["promote", "remove record prod-blue"] {
        let o = spawn(&w, &["upgrade", "prod", "--finish"], point).wait_with_output().unwrap();
        assert_eq!(o.status.signal(), Some(libc::SIGKILL), "not killed at `{point}`:\n{}", err(&o));
        assert_eq!(split(&w), BTreeMap::from([("prod-green".to_string(), 100)]), "after `{point}`");
    }
    ok(&w.rekube(&["upgrade", "prod", "--finish"]));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.path(".rekube/upgrade/prod.json")).unwrap()).unwrap();
    assert_eq!(record["live"], "prod-green");
    assert!(record["upgrade"].is_null(), "{record}");
    let lock = w.rekube(&["upgrade", "prod", "--dry-run"]);
    assert!(ok(&lock).contains("build `prod-blue`"), "the next upgrade builds blue again: {}", out(&lock));

    // The next upgrade (green -> blue), killed half-way, is rolled back by hand.
    let green_before = uids(&w, "prod-green");
    let o = spawn(&w, &["upgrade", "prod"], "set traffic 50%").wait_with_output().unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{}", err(&o));
    assert!(err(&o).contains("preflight: all"), "a new upgrade builds afresh: {}", err(&o));
    assert_eq!(split(&w), BTreeMap::from([("prod-blue".to_string(), 50), ("prod-green".to_string(), 50)]));
    let back = w.rekube(&["upgrade", "prod", "--rollback"]);
    assert!(ok(&back).starts_with("ROLLED BACK: all traffic of `prod` is on `prod-green` again"), "{}", out(&back));
    assert_eq!(split(&w), BTreeMap::from([("prod-green".to_string(), 100)]));

    // The one after that fails its check at 50%: all traffic goes back to
    // green, which is left exactly as it was.
    w.write("fail-at-50", "");
    let failed = w.rekube(&["upgrade", "prod"]);
    assert!(!err(&failed).contains("done by the interrupted run"), "a rolled-back upgrade is not resumed");
    assert_eq!(failed.status.code(), Some(1), "{}{}", out(&failed), err(&failed));
    let text = out(&failed);
    assert!(text.starts_with("ROLLED BACK: all traffic of `prod` is on `prod-green` again"), "{text}");
    assert!(text.contains("why: at 50%: check `sh -c test ! -e \"fail-at-$REKUBE_PERCENT\"`"), "{text}");
    assert_eq!(split(&w), BTreeMap::from([("prod-green".to_string(), 100)]));
    assert_eq!(uids(&w, "prod-green"), green_before, "green untouched by the failed upgrade");
    let status = ok(&w.rekube(&["status", "prod"]));
    assert!(status.contains("upgrade: rolled back, 0% on the new color (at 50%: check"), "{status}");
    // A rolled-back upgrade cannot be finished; a new one can start.
    let finish = w.rekube(&["upgrade", "prod", "--finish"]);
    assert!(err(&finish).contains("was rolled back"), "{}", err(&finish));
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_names_the_apis_the_new_version_removed_before_anything_is_built() {
    let mut w = Workdir::new();
    w.any_version();
    let _down = DownBoth(&w, cleanup_spec("1.20", "1.34"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform/traffic/file-traffic.sh");
    std::fs::copy(script, w.path("file-traffic.sh")).unwrap();
    // policy/v1beta1 PodDisruptionBudget: served by 1.20, removed in 1.25.
    w.write(
        "app/pdb.yaml",
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: { name: web }\n\
         spec: { minAvailable: 1, selector: { matchLabels: { app: web } } }\n",
    );
    let spec = |blue: &str| {
        format!(
            "clusters:\n  prod-blue: {{ provider: local, kubernetes: \"{blue}\" }}\n  \
             prod-green: {{ provider: local, kubernetes: \"1.34\" }}\n\
             components:\n  app: {{ manifests: ./app, namespace: app }}\n\
             environments:\n  prod:\n    blue-green:\n      clusters: [prod-blue, prod-green]\n      \
             traffic: {{ exec: ./file-traffic.sh }}\n      soak: 0s\n"
        )
    };
    w.write("rekube.yaml", &spec("1.20"));
    ok(&w.rekube(&["up", "prod"]));
    let refused = w.rekube(&["upgrade", "prod"]);
    assert_eq!(refused.status.code(), Some(1), "{}", err(&refused));
    let e = err(&refused);
    assert!(
        e.contains("preflight: 1 object(s) of `prod` use an API that `prod-green` (Kubernetes 1.34) does not serve"),
        "{e}"
    );
    assert!(
        e.contains(
            "app: policy/v1beta1 PodDisruptionBudget `app/web` (app/pdb.yaml:1): removed in Kubernetes 1.25; \
                    use policy/v1"
        ),
        "{e}"
    );
    assert!(!w.path(".rekube/clusters/prod-green").exists(), "green was never built");
    assert_eq!(split(&w), BTreeMap::from([("prod-blue".to_string(), 100)]));

    // A custom resource whose CRD blue got by hand: the table knows nothing of
    // it, green's own discovery refuses it before anything is applied there.
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
               metadata: { name: widgets.example.com }\nspec:\n  group: example.com\n  scope: Namespaced\n  \
               names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }\n  versions:\n  \
               - name: v1alpha1\n    served: true\n    storage: true\n    \
               schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }\n";
    w.write("crd.yaml", crd);
    let o = Command::new(rekube_testbed::tools::kubectl())
        .arg("--kubeconfig")
        .arg(w.path(".rekube/clusters/prod-blue/kubeconfig"))
        .args(["apply", "-f"])
        .arg(w.path("crd.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    std::fs::remove_file(w.path("app/pdb.yaml")).unwrap();
    w.write("app/widget.yaml", "apiVersion: example.com/v1alpha1\nkind: Widget\nmetadata: { name: w1 }\n");
    std::thread::sleep(Duration::from_secs(2)); // the CRD becomes established
    ok(&w.rekube(&["apply", "prod"]));
    let refused = w.rekube(&["upgrade", "prod"]);
    assert_eq!(refused.status.code(), Some(1), "{}", err(&refused));
    let e = err(&refused);
    assert!(e.contains("app: example.com/v1alpha1 Widget `w1` (app/widget.yaml:1): no CRD of the platform"), "{e}");
    assert!(
        !kubectl(&w, "prod-green", &["get", "ns", "-o", "name"]).contains("namespace/app"),
        "nothing applied to green"
    );
    assert_eq!(split(&w), BTreeMap::from([("prod-blue".to_string(), 100)]));
}
