//! Backup and restore through the real binary, between two real control
//! planes at once, to a directory and to moto's S3.

use std::collections::BTreeMap;

use age::secrecy::ExposeSecret;
use rekube_testbed::{Moto, TestCluster};
use serde_json::Value;

mod common;

use common::{Workdir, err, get, ok, out, settings};

const PLATFORM: &str = "\
apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: shop }
data: { colour: blue }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: web, image: nginx:1.25 }] }
";

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.example.com }
spec:
  group: example.com
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      subresources: { status: {} }
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
";

/// An age key pair: the identity file's path and the recipient.
fn age_key(w: &Workdir, file: &str) -> String {
    let id = age::x25519::Identity::generate();
    w.write(file, &format!("{}\n", id.to_string().expose_secret()));
    id.to_public().to_string()
}

/// The signing key of `w`'s backups (made once); its public key.
fn signing_key(w: &Workdir) -> String {
    let path = w.path("signing.key");
    if !path.exists() {
        let key = rekube_backup::sign::Signer::generate().unwrap();
        std::fs::write(&path, key.to_text()).unwrap();
    }
    rekube_backup::sign::Signer::from_file(&path).unwrap().public()
}

/// The spec, every backup signed and only its own signer trusted.
fn spec(w: &Workdir, clusters: &str, backup: &str) {
    let backup = format!("{backup}  sign-with: signing.key\n  trusted-signers: [{}]\n", signing_key(w));
    w.write(
        "rekube.yaml",
        &format!(
            "clusters:\
             \n{clusters}components:\
             \n  shop:\
             \n    manifests: ./shop\
             \nenvironments:\
             \n  a: {{ cluster: a }}\
             \n  b: {{ cluster: b }}\
             \nbackup:\
             \n{backup}"
        ),
    );
}

fn kubectl_json(c: &TestCluster, args: &[&str]) -> Value {
    serde_json::from_str(&get(c, &[args, &["-o", "json"]].concat())).unwrap()
}

/// Objects made at run time, beside the platform: a Secret, a ConfigMap, a
/// CRD with custom resources, and owner/owned pairs (one whose owner comes
/// later in restore order than the object it owns).
fn fill_at_runtime(a: &TestCluster, w: &Workdir) {
    w.write("runtime/crd.yaml", CRD);
    get(a, &["apply", "-f", w.path("runtime/crd.yaml").to_str().unwrap()]);
    get(a, &["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=60s"]);
    get(a, &["-n", "shop", "create", "secret", "generic", "db", "--from-literal=password=hunter2-s3cr3t"]);
    get(a, &["-n", "shop", "create", "configmap", "runtime", "--from-literal=made=by-hand"]);
    get(a, &["-n", "shop", "create", "configmap", "owner", "--from-literal=role=owner"]);
    w.write(
        "runtime/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: gear, namespace: shop }\nspec: { size: 3 }\n",
    );
    get(a, &["apply", "-f", w.path("runtime/widget.yaml").to_str().unwrap()]);
    get(
        a,
        &[
            "-n",
            "shop",
            "patch",
            "widget",
            "gear",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Spinning"}}"#,
        ],
    );
    let owner_uid =
        kubectl_json(a, &["-n", "shop", "get", "configmap", "owner"])["metadata"]["uid"].as_str().unwrap().to_string();
    let widget_uid =
        kubectl_json(a, &["-n", "shop", "get", "widget", "gear"])["metadata"]["uid"].as_str().unwrap().to_string();
    let owned = format!(
        "apiVersion: v1\
         \nkind: ConfigMap\
         \nmetadata:\
         \n  name: owned\
         \n  namespace: shop\
         \n  ownerReferences: [{{ apiVersion: v1, kind: ConfigMap, name: owner, uid: {owner_uid} }}]\
         \ndata: {{ role: owned }}\
         \n---\
         \napiVersion: v1\
         \nkind: Secret\
         \nmetadata:\
         \n  name: gear-token\
         \n  namespace: shop\
         \n  ownerReferences: [{{ apiVersion: example.com/v1, kind: Widget, name: gear, \
         uid: {widget_uid}, controller: true }}]\
         \nstringData: {{ token: gear-s3cr3t }}\n"
    );
    w.write("runtime/owned.yaml", &owned);
    get(a, &["apply", "-f", w.path("runtime/owned.yaml").to_str().unwrap()]);
}

/// An object as a user compares it across clusters: without what the
/// server sets, without status, without the Service's cluster IP (which
/// belongs to the cluster), and with owners by name (their UIDs are checked
/// separately).
fn normalise(mut v: Value) -> Value {
    let m = v["metadata"].as_object_mut().unwrap();
    for f in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink"] {
        m.remove(f);
    }
    if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    for r in m.get_mut("ownerReferences").and_then(Value::as_array_mut).into_iter().flatten() {
        r.as_object_mut().unwrap().remove("uid");
    }
    let o = v.as_object_mut().unwrap();
    o.remove("status");
    let service = o.get("kind").and_then(Value::as_str) == Some("Service");
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut).filter(|_| service) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    v
}

/// `resources/<resource>/namespaces/<ns>/<name>.json[.age]` as kubectl arguments.
fn kubectl_target(path: &str, map: &BTreeMap<&str, &str>) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let name = parts.last().unwrap().trim_end_matches(".age").trim_end_matches(".json");
    match parts[2] {
        "namespaces" => {
            let ns = map.get(parts[3]).copied().unwrap_or(parts[3]);
            vec!["-n".into(), ns.into(), "get".into(), parts[1].into(), name.into()]
        }
        _ => {
            let name = if parts[1] == "namespaces" { map.get(name).copied().unwrap_or(name) } else { name };
            vec!["get".into(), parts[1].into(), name.into()]
        }
    }
}

/// Every backed-up object is in `b` (namespaces renamed by `map`) equal to
/// `a`'s after normalisation, and its owner references point at `b`'s UIDs.
fn assert_restored(a: &TestCluster, b: &TestCluster, manifest: &Value, map: &BTreeMap<&str, &str>) -> usize {
    let mut checked = 0;
    for entry in manifest["objects"].as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        let src = kubectl_target(path, &BTreeMap::new());
        let dst = kubectl_target(path, map);
        let src: Vec<&str> = src.iter().map(String::as_str).collect();
        let dst: Vec<&str> = dst.iter().map(String::as_str).collect();
        let (va, vb) = (kubectl_json(a, &src), kubectl_json(b, &dst));
        for r in vb["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
            let owner = kubectl_json(
                b,
                &[
                    "-n",
                    vb["metadata"]["namespace"].as_str().unwrap(),
                    "get",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap(),
                ],
            );
            assert_eq!(r["uid"], owner["metadata"]["uid"], "{path}: owner reference must point at the restored owner");
        }
        let (mut na, nb) = (normalise(va), normalise(vb));
        if let Some(new) = map.get(na["metadata"]["namespace"].as_str().unwrap_or("")) {
            na["metadata"]["namespace"] = Value::String(new.to_string());
        }
        if na["kind"] == "Namespace"
            && let Some(new) = map.get(na["metadata"]["name"].as_str().unwrap())
        {
            na["metadata"]["name"] = Value::String(new.to_string());
            if let Some(l) = na["metadata"]["labels"].get_mut("kubernetes.io/metadata.name") {
                *l = Value::String(new.to_string());
            }
        }
        assert_eq!(na, nb, "{path} differs after restore");
        checked += 1;
    }
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_into_a_fresh_cluster_from_a_directory_and_from_s3() {
    let (a, b, moto) =
        tokio::join!(TestCluster::with_kubelet("backup-a"), TestCluster::start("backup-b"), Moto::start());
    let mut w = Workdir::new();
    let recipient = age_key(&w, "key.txt");
    w.write("shop/platform.yaml", PLATFORM);
    let clusters = format!("{}{}", common::existing("a", &a, "backup-a"), common::existing("b", &b, "backup-b"));
    spec(&w, &clusters, &format!("  store: ./backups\n  encrypt-secrets: [{recipient}]\n"));
    ok(&w.rekube(&["apply", "a"]));
    fill_at_runtime(&a, &w);

    // To a directory.
    let created = ok(&w.rekube(&["backup", "create", "a", "--name", "full"]));
    assert!(created.contains("Backup full written to"), "{created}");
    let manifest: Value = serde_json::from_str(&ok(&w.rekube(&["-o", "json", "backup", "describe", "full"]))).unwrap();
    let paths: Vec<&str> =
        manifest["objects"].as_array().unwrap().iter().map(|o| o["path"].as_str().unwrap()).collect();
    for want in [
        "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/widgets.example.com.json",
        "resources/namespaces/cluster/shop.json",
        "resources/secrets/namespaces/shop/db.json.age",
        "resources/configmaps/namespaces/shop/owned.json",
        "resources/deployments.apps/namespaces/shop/web.json",
        "resources/widgets.example.com/namespaces/shop/gear.json",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:#?}");
    }
    // CRDs first, then Namespaces, custom resources last.
    let pos = |p: &str| paths.iter().position(|x| x.starts_with(p)).unwrap();
    assert!(pos("resources/customresourcedefinitions") < pos("resources/namespaces/"));
    assert!(pos("resources/namespaces/") < pos("resources/configmaps/"));
    assert!(pos("resources/deployments.apps/") < pos("resources/widgets.example.com/"));
    // What the cluster remakes is not in it: ReplicaSets, Pods, tokens, the root CA.
    assert!(
        !paths.iter().any(|p| p.contains("/pods/")
            || p.contains("/replicasets.apps/")
            || p.contains("kube-root-ca")
            || p.contains("-token-")),
        "{paths:#?}"
    );
    // No Secret value in plaintext anywhere in the archive.
    let raw = std::fs::read(w.path("backups/full/resources.tar.zst")).unwrap();
    let plain = zstd::decode_all(&raw[..]).unwrap();
    let text = String::from_utf8_lossy(&plain);
    for secret in ["hunter2-s3cr3t", "aHVudGVyMi1zM2NyM3Q=", "gear-s3cr3t", "Z2Vhci1zM2NyM3Q="] {
        assert!(!text.contains(secret), "{secret} is readable in the archive");
    }
    assert!(text.contains("\"colour\":\"blue\""), "plain objects are readable JSON");

    let verified = ok(&w.rekube(&["backup", "verify", "full", "--identity", "key.txt"]));
    assert!(
        verified.contains(&format!("{} entries", paths.len())) && verified.contains("2 Secret(s) decrypted"),
        "{verified}"
    );

    let restored = w.rekube(&["backup", "restore", "full", "--to", "b", "--identity", "key.txt"]);
    let text = ok(&restored);
    assert!(!text.contains("FAILED"), "{text}");
    assert_eq!(assert_restored(&a, &b, &manifest, &BTreeMap::new()), paths.len());
    // Status is restored only when asked for.
    assert_eq!(get(&b, &["-n", "shop", "get", "widget", "gear", "-o", "jsonpath={.status}"]), "");
    // The Deployment works in B: its controller made a ReplicaSet there.
    assert!(get(&b, &["-n", "shop", "get", "rs", "-o", "name"]).contains("replicaset.apps/web-"));

    // To S3 (moto), restored under another namespace name.
    let py = format!(
        "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='k', aws_secret_access_key='s', \
         region_name='us-east-1').create_bucket(Bucket='backups')",
        moto.endpoint()
    );
    let made = std::process::Command::new(moto.python()).args(["-c", &py]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for (k, v) in [("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_REGION", "us-east-1")] {
        w.env(k, v);
    }
    spec(
        &w,
        &clusters,
        &format!("  store: s3://backups/rekube\n  endpoint: {}\n  encrypt-secrets: [{recipient}]\n", moto.endpoint()),
    );
    ok(&w.rekube(&["backup", "create", "a", "--name", "to-s3"]));
    let listed = ok(&w.rekube(&["backup", "list"]));
    assert!(listed.contains("to-s3") && listed.contains(&format!(" v1.{}.", rekube_testbed::k8s_minor())), "{listed}");
    ok(&w.rekube(&["backup", "verify", "to-s3", "-i", "key.txt"]));
    let s3_manifest: Value =
        serde_json::from_str(&ok(&w.rekube(&["-o", "json", "backup", "describe", "to-s3"]))).unwrap();
    let restored = ok(&w.rekube(&[
        "backup",
        "restore",
        "to-s3",
        "--to",
        "b",
        "-i",
        "key.txt",
        "--namespace-map",
        "shop:shop-copy",
        "--restore-status",
    ]));
    assert_eq!(get(&b, &["-n", "shop-copy", "get", "widget", "gear", "-o", "jsonpath={.status.phase}"]), "Spinning");
    assert!(!restored.contains("FAILED"), "{restored}");
    let map = BTreeMap::from([("shop", "shop-copy")]);
    // Cluster-wide objects (the CRD) exist already from the first restore: skipped, not failed.
    assert!(
        restored.contains("customresourcedefinitions.apiextensions.k8s.io widgets.example.com: already exists"),
        "{restored}"
    );
    assert_eq!(assert_restored(&a, &b, &s3_manifest, &map), s3_manifest["objects"].as_array().unwrap().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn damage_wrong_keys_and_existing_objects_are_refused_or_reported() {
    let c = TestCluster::start("backup-c").await;
    let w = Workdir::new();
    let recipient = age_key(&w, "key.txt");
    age_key(&w, "other.txt");
    w.write("shop/platform.yaml", PLATFORM);
    let clusters = format!("{}{}", common::existing("a", &c, "backup-c"), common::existing("b", &c, "backup-c"));
    spec(&w, &clusters, "  store: ./backups\n  keep: 2\n");
    ok(&w.rekube(&["apply", "a", "--no-wait"]));
    get(&c, &["-n", "shop", "create", "secret", "generic", "db", "--from-literal=password=hunter2-s3cr3t"]);

    // No recipient: refused, nothing written, unless asked for.
    let refused = w.rekube(&["backup", "create", "a", "-n", "shop", "--name", "plain"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(err(&refused).contains("refusing to write them in plaintext"), "{}", err(&refused));
    assert!(!w.path("backups/plain").exists());
    ok(&w.rekube(&["backup", "create", "a", "-n", "shop", "--name", "plain", "--allow-plaintext-secrets"]));

    spec(&w, &clusters, &format!("  store: ./backups\n  keep: 2\n  encrypt-secrets: [{recipient}]\n"));
    ok(&w.rekube(&["backup", "create", "a", "-n", "shop", "--name", "good"]));
    let mut s = settings();
    s.add_filter(r"[0-9a-f]{64}", "[SHA256]");
    s.add_filter(r"[0-9a-f]{16} ", "[SHA] ");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]");
    s.add_filter(r"age1[0-9a-z]{58}", "[RECIPIENT]");
    s.add_filter(r"\d+\.\d (KiB|MiB)", "[SIZE]");
    // How many Pods the ReplicaSet has made by then depends on timing.
    s.add_filter(r"(recreated by its controller \S+ \S+ \S+)\s+\d+", "$1 [N]");
    s.add_filter(r"\d+ left out on purpose", "[N] left out on purpose");
    // Before 1.24 a ServiceAccount's token Secret is left out too: the describe differs.
    common::per_version(s.clone())
        .bind(|| insta::assert_snapshot!("describe", ok(&w.rekube(&["backup", "describe", "good"]))));

    s.bind(|| insta::assert_snapshot!("verify", ok(&w.rekube(&["backup", "verify", "good", "-i", "key.txt"]))));

    // Damage: a flipped byte, then a truncated file. verify and restore
    // both refuse, and restore writes nothing (the target namespace stays absent).
    let archive = w.path("backups/good/resources.tar.zst");
    let pristine = std::fs::read(&archive).unwrap();
    let mut flipped = pristine.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    for (what, bytes) in [("flipped", flipped), ("truncated", pristine[..pristine.len() - 20].to_vec())] {
        std::fs::write(&archive, &bytes).unwrap();
        let v = w.rekube(&["backup", "verify", "good", "-i", "key.txt"]);
        assert_eq!(v.status.code(), Some(1), "{what}: {}", out(&v));
        assert!(err(&v).contains("backup good is damaged"), "{what}: {}", err(&v));
        let r =
            w.rekube(&["backup", "restore", "good", "--to", "b", "-i", "key.txt", "--namespace-map", "shop:damaged"]);
        assert_eq!(r.status.code(), Some(1), "{what}: {}", out(&r));
        assert!(err(&r).contains("is damaged") && err(&r).contains("nothing was written"), "{what}: {}", err(&r));
        assert!(
            get(&c, &["get", "ns", "-o", "name"]).lines().all(|l| l != "namespace/damaged"),
            "{what}: restore wrote"
        );
    }
    std::fs::write(&archive, &pristine).unwrap();

    // Tampering with the manifest (an object slipped in, the checksums made
    // to fit) breaks its signature: refused, even with --allow-unsigned.
    let manifest_file = w.path("backups/good/manifest.json");
    let signed = std::fs::read_to_string(&manifest_file).unwrap();
    std::fs::write(&manifest_file, signed.replacen("\"good\"", "\"good \"", 1)).unwrap();
    for allow in [false, true] {
        let args = ["backup", "restore", "good", "--to", "b", "-i", "key.txt", "--namespace-map", "shop:forged"];
        let r = w.rekube(&[&args[..], if allow { &["--allow-unsigned"][..] } else { &[][..] }].concat());
        assert_eq!(r.status.code(), Some(1), "{}", out(&r));
        assert!(err(&r).contains("the manifest does not match its signature"), "{}", err(&r));
    }
    std::fs::write(&manifest_file, &signed).unwrap();
    // Unsigned, or signed by a key the spec does not trust: refused unless --allow-unsigned.
    let sig = w.path("backups/good/manifest.json.sig");
    let signature = std::fs::read(&sig).unwrap();
    std::fs::remove_file(&sig).unwrap();
    let unsigned = w.rekube(&["backup", "verify", "good", "-i", "key.txt"]);
    assert_eq!(unsigned.status.code(), Some(1));
    assert!(err(&unsigned).contains("backup good: not signed; nothing was written"), "{}", err(&unsigned));
    let allowed = ok(&w.rekube(&["backup", "verify", "good", "-i", "key.txt", "--allow-unsigned"]));
    assert!(allowed.contains("not signed (accepted: --allow-unsigned)"), "{allowed}");
    std::fs::write(&sig, &signature).unwrap();
    let stranger = rekube_backup::sign::Signer::generate().unwrap().public();
    let trusting = std::fs::read_to_string(w.path("rekube.yaml")).unwrap();
    w.write("rekube.yaml", &trusting.replace(&signing_key(&w), &stranger));
    let unknown = w.rekube(&["backup", "restore", "good", "--to", "b", "-i", "key.txt", "--namespace-map", "shop:x"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(err(&unknown).contains("which is not in `backup.trusted-signers`"), "{}", err(&unknown));
    w.write("rekube.yaml", &trusting);
    assert!(get(&c, &["get", "ns", "-o", "name"]).lines().all(|l| l != "namespace/forged" && l != "namespace/x"));

    // A wrong key, and no key: refused before writing.
    let wrong =
        w.rekube(&["backup", "restore", "good", "--to", "b", "-i", "other.txt", "--namespace-map", "shop:wrongkey"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(err(&wrong).contains("cannot be decrypted"), "{}", err(&wrong));
    let none = w.rekube(&["backup", "verify", "good"]);
    assert!(err(&none).contains("no identity was given"), "{}", err(&none));
    assert!(get(&c, &["get", "ns", "-o", "name"]).lines().all(|l| l != "namespace/wrongkey"));

    // Dry run into a new namespace: the plan is printed, nothing written.
    let dry = ok(&w.rekube(&[
        "backup",
        "restore",
        "good",
        "--to",
        "b",
        "-i",
        "key.txt",
        "--namespace-map",
        "shop:preview",
        "--dry-run",
    ]));
    settings().bind(|| insta::assert_snapshot!("restore_dry_run", dry));
    assert!(get(&c, &["get", "ns", "-o", "name"]).lines().all(|l| l != "namespace/preview"));

    // Into the same namespace: everything exists. skip lists each object and is not a failure.
    let skip = w.rekube(&["backup", "restore", "good", "--to", "b", "-i", "key.txt", "--existing", "skip"]);
    let text = ok(&skip);
    assert!(
        text.contains("configmaps shop/settings: already exists") && text.contains("secrets shop/db: already exists"),
        "{text}"
    );
    assert!(!text.contains("FAILED"), "{text}");
    settings().bind(|| insta::assert_snapshot!("restore_skip", text));

    // A hand change is put back by --existing update.
    get(&c, &["-n", "shop", "patch", "configmap", "settings", "-p", r#"{"data":{"colour":"red"}}"#]);
    get(&c, &["-n", "shop", "delete", "secret", "db"]);
    let upd = ok(&w.rekube(&["backup", "restore", "good", "--to", "b", "-i", "key.txt", "--existing", "update"]));
    assert!(upd.contains("updated"), "{upd}");
    assert_eq!(get(&c, &["-n", "shop", "get", "configmap", "settings", "-o", "jsonpath={.data.colour}"]), "blue");
    assert_eq!(
        get(&c, &["-n", "shop", "get", "secret", "db", "-o", "jsonpath={.data.password}"]),
        "aHVudGVyMi1zM2NyM3Q="
    );

    // Retention (keep: 2) deletes the oldest after the next create.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let third = ok(&w.rekube(&["backup", "create", "a", "-n", "shop", "--name", "third"]));
    assert!(third.contains("Retention deleted 1 older backup(s): plain"), "{third}");
    s.bind(|| insta::assert_snapshot!("create", third));
    let listed = ok(&w.rekube(&["backup", "list"]));
    s.bind(|| insta::assert_snapshot!("list", listed.clone()));
    assert!(listed.contains("good") && listed.contains("third") && !listed.contains("plain"), "{listed}");
    ok(&w.rekube(&["backup", "delete", "third"]));
    let gone = w.rekube(&["backup", "describe", "third"]);
    assert!(err(&gone).contains("no backup `third`"), "{}", err(&gone));
}
