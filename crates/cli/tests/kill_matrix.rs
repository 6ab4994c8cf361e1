//! The kill -9 matrix for the operations that talk to the API without a
//! journal: apply, destroy and backup restore, each killed as it sends its
//! Nth request (`REKUBE_KILL_AT_REQUEST`, honoured by test builds only),
//! then run again. After every rerun: converged (a second plan is empty),
//! nothing lost (objects that existed before keep their UIDs), nothing
//! doubled, no stale lock (the rerun is not refused). The journaled
//! operations have their own kill points: `up`, `down` and `rebuild-check`
//! in providers.rs, `upgrade` in upgrade.rs, `preview up` in previews.rs.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use rekube_testbed::TestCluster;

mod common;

use common::{Workdir, err, get, ok, out};

/// `kind ns/name` → uid, of what lives in the platform's namespaces.
fn uids(cluster: &TestCluster) -> BTreeMap<String, String> {
    let text = get(
        cluster,
        &[
            "get",
            "cm,svc,deploy,ingress,secret",
            "-n",
            "web",
            "-o",
            "jsonpath={range .items[*]}{.kind} {.metadata.name}={.metadata.uid}\n{end}",
        ],
    );
    let app = get(
        cluster,
        &[
            "get",
            "cm,deploy",
            "-n",
            "app",
            "-o",
            "jsonpath={range .items[*]}{.kind} app/{.metadata.name}={.metadata.uid}\n{end}",
        ],
    );
    format!("{text}{app}")
        .lines()
        .filter(|l| !l.contains("kube-root-ca.crt") && !l.contains("default-token"))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// Runs `args` killed at its `n`th API request; asserts it was killed there.
fn killed_at(w: &Workdir, args: &[&str], n: u32) {
    let o = w.command(args).env("REKUBE_KILL_AT_REQUEST", n.to_string()).output().unwrap();
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "`rekube {}` finished before its request {n}: pick a smaller point\n{}",
        args.join(" "),
        err(&o)
    );
}

fn plan_is_empty(w: &Workdir, after: &str) {
    let plan = w.rekube(&["plan", "dev", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "after {after}, not converged:\n{}{}", out(&plan), err(&plan));
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_destroy_and_restore_killed_at_any_request_converge_on_the_rerun() {
    let cluster = TestCluster::with_kubelet("kills").await;
    let mut w = Workdir::new();
    let components = common::example_components(&w);
    let id = age::x25519::Identity::generate();
    {
        use age::secrecy::ExposeSecret;
        w.write("key.txt", &format!("{}\n", id.to_string().expose_secret()));
    }
    w.env("REKUBE_AGE_IDENTITY", w.path("key.txt").to_str().unwrap());
    let spec = |message: &str| {
        format!(
            "project: kills\nclusters:\n{}{components}\nenvironments:\n  dev:\n    cluster: dev\n    \
             values: {{ web.message: \"{message}\" }}\n\
             backup: {{ store: ./backups, encrypt-secrets: [{}] }}\n",
            common::existing("dev", &cluster, &current_context(cluster.kubeconfig())),
            id.to_public()
        )
    };
    w.write("rekube.yaml", &spec("v0"));
    ok(&w.rekube(&["apply", "dev"]));
    let before = uids(&cluster);
    assert!(before.len() >= 6, "{before:?}");

    // apply: a change to roll out, killed at five points of its work.
    for (i, n) in [2, 6, 12, 20, 30].into_iter().enumerate() {
        w.write("rekube.yaml", &spec(&format!("v{}", i + 1)));
        killed_at(&w, &["apply", "dev"], n);
        ok(&w.rekube(&["apply", "dev"]));
        plan_is_empty(&w, &format!("apply killed at request {n}"));
        assert_eq!(uids(&cluster), before, "apply killed at request {n}: an object was lost or made again");
    }
    let message = get(&cluster, &["get", "cm", "web-content", "-n", "web", "-o", "jsonpath={.data.index\\.html}"]);
    assert!(message.contains("v5"), "the last change is live: {message}");

    // backup, then destroy killed at three points, each finished by a rerun.
    ok(&w.rekube(&["backup", "create", "dev", "--name", "before-kills", "--namespace", "web", "--namespace", "app"]));
    for n in [3, 15, 40] {
        ok(&w.rekube(&["apply", "dev"]));
        killed_at(&w, &["destroy", "dev"], n);
        ok(&w.rekube(&["destroy", "dev"]));
        let left = get(&cluster, &["get", "cm,deploy,svc", "-A", "-l", "applyset.kubernetes.io/part-of", "-o", "name"]);
        assert_eq!(left.trim(), "", "destroy killed at request {n} left objects behind");
        let parents =
            get(&cluster, &["get", "cm", "-n", "rekube-system", "-l", "rekube.dev/project=kills", "-o", "name"]);
        assert_eq!(parents.trim(), "", "destroy killed at request {n} left its ApplySet parents");
    }

    // restore, killed at three points: what the killed run restored keeps its UID.
    let want: Vec<String> = before.keys().cloned().collect();
    for n in [3, 6, 9] {
        killed_at(&w, &["backup", "restore", "before-kills", "--to", "dev", "--allow-unsigned"], n);
        let partial = uids(&cluster);
        ok(&w.rekube(&["backup", "restore", "before-kills", "--to", "dev", "--allow-unsigned"]));
        let after = uids(&cluster);
        assert_eq!(after.keys().cloned().collect::<Vec<_>>(), want, "restore killed at request {n}");
        for (k, uid) in &partial {
            assert_eq!(after.get(k), Some(uid), "restore killed at request {n}: {k} was made again");
        }
        ok(&w.rekube(&["apply", "dev", "--adopt"]));
        plan_is_empty(&w, &format!("restore killed at request {n}"));
        ok(&w.rekube(&["destroy", "dev"]));
    }
}

fn current_context(kubeconfig: &Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    text.lines().find_map(|l| l.strip_prefix("current-context: ")).unwrap().trim().trim_matches('"').to_string()
}
