//! The offline commands through the real binary: what a user sees on stderr
//! and stdout, and the exit codes CI relies on.

use std::path::Path;
use std::process::{Command, Output};

fn rekube(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rekube"))
        .args(args)
        .current_dir(dir)
        .env("REKUBE_HELM", rekube_testbed::tools::helm())
        .env("REKUBE_KUBECTL", rekube_testbed::tools::kubectl())
        .env("REKUBE_CACHE", dir.join(".cache"))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn spec_dir(spec: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rekube.yaml"), spec).unwrap();
    dir
}

#[test]
fn validate_reports_every_error_with_position_and_exits_1() {
    let dir = spec_dir(concat!(
        "clusters:\n",
        "  dev: { provider: local }\n",
        "components:\n",
        "  web:\n",
        "    manifests: ./web\n",
        "    need: [db]\n",
        "environments:\n",
        "  dev: { cluster: dve }\n",
    ));
    let out = rekube(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "", "nothing on stdout");
    insta::assert_snapshot!(text(&out.stderr));

    // Once the key is fixed, the remaining problems are all listed at once.
    std::fs::write(
        dir.path().join("rekube.yaml"),
        concat!(
            "clusters:\n",
            "  dev: { provider: local }\n",
            "components:\n",
            "  web:\n",
            "    manifests: ./web\n",
            "    needs: [db]\n",
            "environments:\n",
            "  dev: { cluster: dve }\n",
        ),
    )
    .unwrap();
    let out = rekube(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(text(&out.stderr));
}

#[test]
fn validate_render_and_json_of_the_example_platform() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform");
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rekube"))
            .args(args)
            .current_dir(&example)
            .env("REKUBE_HELM", rekube_testbed::tools::helm())
            .env("REKUBE_CACHE", cache.path())
            .output()
            .unwrap()
    };
    let out = run(&["validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!(
        text(&out.stderr),
        @"rekube.yaml: valid (4 clusters, 2 components, 3 environments rendered: 24 objects)"
    );

    let out = run(&["validate", "dev", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["objects"], 8);

    let out = run(&["render", "dev"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!("render_dev", text(&out.stdout));

    // The picture of the platform, offline, in both formats.
    let out = run(&["graph", "dev"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!("graph_dev_mermaid", text(&out.stdout));
    let out = run(&["graph", "dev", "--format", "dot"]);
    insta::assert_snapshot!("graph_dev_dot", text(&out.stdout));
    let out = run(&["graph", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no environment `nope`"), "{}", text(&out.stderr));

    let out = run(&["render", "staging", "-c", "web", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deploy = list["items"].as_array().unwrap().iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deploy["spec"]["replicas"], 3, "staging's override");

    let out = run(&["render", "dev", "-c", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: no component `nope`\nhint: declared components: app, web\n");
}

#[test]
fn lock_check_fails_without_a_lock_and_passes_after_lock() {
    let repo = rekube_testbed::ChartRepo::serve(&[
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform/charts/hello")
    ]);
    let dir = spec_dir(&format!(
        "clusters: {{ dev: {{ provider: local }} }}\
         \ncomponents:\
         \n  web:\
         \n    chart: {{ repo: {}, name: hello, version: \"~0.1\" }}\
         \n    namespace: web\
         \nenvironments: {{ dev: {{ cluster: dev }} }}\n",
        repo.url()
    ));
    let out = rekube(dir.path(), &["lock", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("chart version `~0.1` of component `web` is not pinned"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("rekube.lock").exists(), "--check writes nothing");

    let out = rekube(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1), "an unpinned range is refused until locked");

    let out = rekube(dir.path(), &["lock"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut filters = insta::Settings::clone_current();
    filters.add_filter(r"sha256:[0-9a-f]+", "sha256:[DIGEST]");
    filters.bind(|| insta::assert_snapshot!("lock_output", text(&out.stderr)));
    let lock = std::fs::read_to_string(dir.path().join("rekube.lock")).unwrap();
    assert!(lock.contains("version: \"0.1.0\"") && lock.contains("digest: sha256:"), "{lock}");

    let out = rekube(dir.path(), &["lock", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = rekube(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn schema_is_valid_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = rekube(dir.path(), &["schema"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "rekube.yaml");
}

#[test]
fn backup_bad_input_is_refused_before_any_cluster_or_store_is_touched() {
    let dir = spec_dir("clusters:\n  dev: { provider: local }\nenvironments:\n  dev: { cluster: dev }\n");
    let out = rekube(dir.path(), &["backup", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: rekube.yaml has no `backup:` section\
         \nhint: add `backup: { store: ./backups, encrypt-secrets: [age1...] }` (or `store: s3://bucket/prefix`)\n"
    );

    std::fs::write(
        dir.path().join("rekube.yaml"),
        "clusters:\n  dev: { provider: local }\nenvironments:\n  dev: { cluster: dev }\nbackup: { store: ./backups }\n",
    )
    .unwrap();
    let out = rekube(dir.path(), &["backup", "create", "dev", "--name", "../escape"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: --name `../escape` is not a backup name\n"), "{}", text(&out.stderr));
    let out = rekube(dir.path(), &["backup", "restore", "x", "--to", "dev", "--namespace-map", "shop"]);
    assert_eq!(
        text(&out.stderr),
        "error: --namespace-map `shop` is not OLD:NEW\
         \nhint: write it like `--namespace-map shop:shop-restored`; both are namespace names\n"
    );
    let out = rekube(dir.path(), &["backup", "describe", "nope"]);
    assert!(text(&out.stderr).starts_with("error: no backup `nope` in "), "{}", text(&out.stderr));
    assert!(!dir.path().join(".rekube").exists(), "no cluster state was made");

    // keygen: an identity whose public key the spec accepts.
    let out = rekube(dir.path(), &["backup", "keygen"]);
    let key = text(&out.stdout);
    let public = key.lines().next().unwrap().strip_prefix("# public key: ").unwrap().to_string();
    assert!(key.lines().nth(1).unwrap().starts_with("AGE-SECRET-KEY-1"));
    std::fs::write(
        dir.path().join("rekube.yaml"),
        format!("clusters: {{}}\nbackup: {{ store: ./backups, encrypt-secrets: [{public}] }}\n"),
    )
    .unwrap();
    assert_eq!(rekube(dir.path(), &["validate"]).status.code(), Some(0));
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_rekube")).args(args).output().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        for cmd in ["validate", "plan", "apply", "drift", "destroy", "up", "down", "graph", "backup", "completions"] {
            assert!(script.contains(cmd), "{shell} completions lack `{cmd}`");
        }
        assert!(script.contains("adopt") && script.contains("break-lock"), "{shell} completions lack flags");
    }
    let bad = run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "clap refuses an unknown shell");
    let man = run(&["man"]);
    assert!(man.status.success());
    let page = text(&man.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH rekube"), "{}", &page[..200.min(page.len())]);
    assert!(
        page.contains("rebuild\\-check") && page.contains("Exit codes"),
        "the man page lists the commands and the exit codes"
    );
}

#[test]
fn status_names_a_missing_kubeconfig_its_context_and_how_to_point_elsewhere() {
    let dir = spec_dir(
        "clusters:\n  prod: { provider: existing, kubeconfig: ./nope/kubeconfig, context: prod-admin }\n\
         environments:\n  prod: { cluster: prod }\n",
    );
    let out = rekube(dir.path(), &["status", "prod"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("nope/kubeconfig (looking for context `prod-admin`): No such file or directory"),
        "names the file, the context and the cause:\n{said}"
    );
    assert!(
        said.contains("`kubeconfig: PATH`") && said.contains("$KUBECONFIG"),
        "says how to point elsewhere:\n{said}"
    );
    assert!(!said.contains("'\""), "no doubly quoted path:\n{said}");
}

/// What the shell's dynamic completion offers at `words` (fish's protocol,
/// the simplest to read: one candidate per line, a tab before its help).
fn completions(dir: &Path, words: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rekube"))
        .arg("--")
        .args(words)
        .current_dir(dir)
        .env("COMPLETE", "fish")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(|l| l.split('\t').next().unwrap_or_default().to_string()).collect()
}

#[test]
fn the_shell_completes_environment_and_component_names_from_the_spec_here() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform");
    let envs = completions(&example, &["rekube", "plan", ""]);
    assert!(envs.starts_with(&["dev".to_string(), "staging".to_string()]), "{envs:?}");
    assert_eq!(completions(&example, &["rekube", "apply", "dev", "-c", ""]), ["web", "app"]);
    assert_eq!(completions(&example, &["rekube", "drift", "st"]), ["staging"]);
    // No spec here: nothing, and no error in the user's prompt.
    let empty = tempfile::tempdir().unwrap();
    assert!(completions(empty.path(), &["rekube", "plan", "x"]).is_empty());
}

#[test]
fn lock_against_a_repository_that_is_down_says_how_to_check_it() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let dir = spec_dir(
        "clusters:\n  dev: { provider: local }\ncomponents:\n  web:\n\
         \x20   chart: { repo: http://127.0.0.1:9, name: hello, version: ^0.1 }\n    namespace: web\n\
         environments:\n  dev: { cluster: dev }\n",
    );
    let out = rekube(dir.path(), &["lock"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("helm show chart hello (^0.1) from http://127.0.0.1:9 failed"), "{said}");
    assert!(said.contains("hint: is http://127.0.0.1:9 up? `curl http://127.0.0.1:9/index.yaml`"), "{said}");
    assert!(!dir.path().join("rekube.lock").exists(), "nothing is written");
}

#[test]
fn preview_input_is_checked_before_any_cluster_is_asked() {
    // The cluster does not exist: every refusal below comes before rekube would look for it.
    let dir = spec_dir(concat!(
        "clusters:\n",
        "  dev: { provider: existing, context: nowhere, kubeconfig: ./missing }\n",
        "components:\n",
        "  web:\n",
        "    chart: { path: ./chart }\n",
        "    namespace: web\n",
        "  app:\n",
        "    manifests: ./app\n",
        "    namespace: app\n",
        "environments:\n",
        "  dev: { cluster: dev }\n",
    ));
    std::fs::create_dir_all(dir.path().join("chart")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("chart/Chart.yaml"), "apiVersion: v2\nname: c\nversion: 0.1.0\n").unwrap();
    std::fs::write(dir.path().join("pr.yaml"), "web:\n  tag: abc\nwbe:\n  tag: def\n").unwrap();
    let long = "a".repeat(60);
    let cases: &[&[&str]] = &[
        &["preview", "up", "PR_1", "--from", "dev"],
        &["preview", "up", "pr-1", "--from", "prod"],
        &["preview", "up", "pr-1", "--from", "dev", "-c", "wbe"],
        &["preview", "up", "pr-1", "--from", "dev", "--set", "web.tag"],
        &["preview", "up", "pr-1", "--from", "dev", "--set", "app.tag=1"],
        &["preview", "up", "pr-1", "--from", "dev", "--set", "web=1"],
        &["preview", "up", "pr-1", "--from", "dev", "--values", "pr.yaml"],
        &["preview", "up", "pr-1", "--from", "dev", "--ttl", "soon"],
        &["preview", "up", &long, "--from", "dev"],
    ];
    let mut shown = String::new();
    for args in cases {
        let out = rekube(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out.stderr));
        shown.push_str(&format!("$ rekube {}\n{}\n", args.join(" "), text(&out.stderr)));
    }
    insta::assert_snapshot!(shown);

    // A host template that every preview would share is a spec error, with its line.
    let spec = std::fs::read_to_string(dir.path().join("rekube.yaml")).unwrap();
    let spec = spec.replace("    namespace: web\n", "    namespace: web\n    preview: { host: web.example.com }\n")
        + "previews: { cluster: dve, ttl: 10s }\n";
    std::fs::write(dir.path().join("rekube.yaml"), spec).unwrap();
    let out = rekube(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("preview_spec_errors", text(&out.stderr));
}

#[test]
fn an_external_program_past_its_deadline_is_stopped_and_named() {
    let dir = spec_dir(concat!(
        "clusters:\n",
        "  dev:\n",
        "    provider: local\n",
        "    prerequisites:\n",
        "      - { name: state-bucket, check: [sleep, \"30\"], create: [\"true\"] }\n",
        "environments:\n",
        "  dev: { cluster: dev }\n",
    ));
    let run = |timeout: &str| {
        Command::new(env!("CARGO_BIN_EXE_rekube"))
            .args(["up", "dev"])
            .current_dir(dir.path())
            .env("REKUBE_TOOL_TIMEOUT", timeout)
            .env("REKUBE_CACHE", dir.path().join(".cache"))
            .output()
            .unwrap()
    };
    let out = run("1s");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("prerequisite `state-bucket`: `sleep 30` did not finish within 1s and was stopped"), "{err}");
    assert!(err.contains("hint: it may be waiting for input") && err.contains("REKUBE_TOOL_TIMEOUT=1h"), "{err}");
    assert!(!dir.path().join(".rekube/clusters/dev").exists(), "no cluster was started after it");

    let out = run("soon");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("bad_tool_timeout", text(&out.stderr));
}

#[test]
fn upgrade_dry_run_lists_the_steps_and_refusals_need_no_cluster() {
    let dir = spec_dir(concat!(
        "clusters:\n",
        "  blue: { provider: local }\n",
        "  green: { provider: local, kubernetes: \"1.34\" }\n",
        "  dev: { provider: local }\n",
        "environments:\n",
        "  dev: { cluster: dev }\n",
        "  prod:\n",
        "    blue-green:\n",
        "      clusters: [blue, green]\n",
        "      traffic: { exec: /bin/true }\n",
        "      steps: [25, 100]\n",
        "      soak: 2m\n",
        "      checks:\n",
        "        - http: { url: \"https://{address}/healthz\" }\n",
        "backup: { store: ./backups }\n",
    ));
    let dry = rekube(dir.path(), &["upgrade", "prod", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    insta::assert_snapshot!("upgrade_dry_run", text(&dry.stdout));
    assert!(!dir.path().join(".rekube").exists(), "a dry run writes nothing");

    let single = rekube(dir.path(), &["upgrade", "dev"]);
    assert_eq!(single.status.code(), Some(1));
    insta::assert_snapshot!("upgrade_single_cluster", text(&single.stderr));
    for (flag, said) in
        [("--finish", "no upgrade of `prod` is under way (`blue` is live)"), ("--rollback", "no upgrade")]
    {
        let o = rekube(dir.path(), &["upgrade", "prod", flag]);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        assert!(text(&o.stderr).contains(said), "{flag}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("hint: `rekube upgrade prod` starts one"), "{}", text(&o.stderr));
    }
    let both = rekube(dir.path(), &["upgrade", "prod", "--finish", "--rollback"]);
    assert_eq!(both.status.code(), Some(2), "clap refuses the pair");
}

/// Bad input beyond the spec itself: charts, kustomize and kubeconfigs.
/// Each is refused with a message naming what is wrong, and a hint.
#[test]
fn broken_charts_kustomizations_and_kubeconfigs_are_named_with_a_hint() {
    let chart = |dir: &Path, chart_yaml: Option<&str>, template: &str| {
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        if let Some(c) = chart_yaml {
            std::fs::write(dir.join("Chart.yaml"), c).unwrap();
        }
        std::fs::write(dir.join("templates/t.yaml"), template).unwrap();
    };
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\ndata: { a: b }\n";
    let spec = |component: &str| {
        format!(
            "clusters:\n  dev: {{ provider: local }}\n  \
             far: {{ provider: existing, kubeconfig: ./kubeconfig, context: nope }}\n  \
             junk: {{ provider: existing, kubeconfig: ./junk.kubeconfig, context: c }}\n\
             components:\n  c: {{ {component}, namespace: c }}\nenvironments:\n  dev: {{ cluster: dev }}\n  \
             far: {{ cluster: far }}\n  junk: {{ cluster: junk }}\n"
        )
    };
    struct Case {
        name: &'static str,
        component: &'static str,
        args: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
        says: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "no Chart.yaml",
            component: "chart: { path: ./nochart }",
            args: &["validate"],
            env: &[],
            says: &["nochart", "Chart.yaml"],
        },
        Case {
            name: "a dependency that is not there",
            component: "chart: { path: ./deps }",
            args: &["validate"],
            env: &[],
            says: &["missing in charts/ directory", "hint:"],
        },
        Case {
            name: "a template that never ends",
            component: "chart: { path: ./forever }",
            args: &["validate"],
            env: &[("REKUBE_TOOL_TIMEOUT", "3s")],
            says: &["did not finish within 3s and was stopped", "hint:"],
        },
        Case {
            name: "a kustomization naming a missing file",
            component: "manifests: ./kust",
            args: &["validate"],
            env: &[],
            says: &["kustomize failed", "missing.yaml", "hint: run `kubectl kustomize`"],
        },
        Case {
            name: "a kubeconfig context that does not exist",
            component: "manifests: ./plain",
            args: &["plan", "far"],
            env: &[],
            says: &["nope", "kubeconfig", "hint:"],
        },
        Case {
            name: "a kubeconfig that is not YAML",
            component: "manifests: ./plain",
            args: &["plan", "junk"],
            env: &[],
            says: &["junk.kubeconfig", "hint:"],
        },
    ];
    for case in cases {
        let dir = spec_dir(&spec(case.component));
        chart(&dir.path().join("nochart"), None, cm);
        chart(
            &dir.path().join("deps"),
            Some(
                "apiVersion: v2\nname: deps\nversion: 0.1.0\ndependencies:\n  \
                 - { name: redis, version: 1.0.0, repository: https://charts.example.test }\n",
            ),
            cm,
        );
        chart(
            &dir.path().join("forever"),
            Some("apiVersion: v2\nname: forever\nversion: 0.1.0\n"),
            "{{- range until 2000000000 }}{{ end }}\n",
        );
        std::fs::create_dir_all(dir.path().join("kust")).unwrap();
        std::fs::write(dir.path().join("kust/kustomization.yaml"), "resources: [missing.yaml]\n").unwrap();
        std::fs::create_dir_all(dir.path().join("plain")).unwrap();
        std::fs::write(dir.path().join("plain/cm.yaml"), cm).unwrap();
        std::fs::write(
            dir.path().join("kubeconfig"),
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\ncurrent-context: \"\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("junk.kubeconfig"), "::: {{ not yaml ][\n\x01\x02").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rekube"));
        cmd.args(case.args)
            .current_dir(dir.path())
            .env("REKUBE_HELM", rekube_testbed::tools::helm())
            .env("REKUBE_KUBECTL", rekube_testbed::tools::kubectl())
            .env("REKUBE_CACHE", dir.path().join(".cache"));
        for (k, v) in case.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {said}", case.name);
        for s in case.says {
            assert!(said.contains(s), "{}: `{s}` not in:\n{said}", case.name);
        }
        assert!(!said.contains("panicked"), "{}: {said}", case.name);
    }
}
