//! Rendering against the test bed: a chart repository served on 127.0.0.1
//! (charts packaged by the real helm), local charts, plain YAML and
//! kustomize; values layering; the lock file; the chart cache.

use std::path::{Path, PathBuf};

use rekube_render::{ChartCache, Helm, RenderError, RenderOptions, Rendered};
use rekube_spec::Loaded;
use rekube_testbed::{ChartRepo, tools};

fn hello_chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform/charts/hello").canonicalize().unwrap()
}

/// A copy of the hello chart with another version (and a marker in its output).
fn hello_version(dir: &Path, version: &str, marker: &str) -> PathBuf {
    let chart = dir.join(format!("hello-{version}-{marker}")).join("hello");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    for f in ["values.yaml", "templates/deployment.yaml", "templates/service.yaml", "templates/configmap.yaml"] {
        std::fs::copy(hello_chart().join(f), chart.join(f)).unwrap();
    }
    let chart_yaml = std::fs::read_to_string(hello_chart().join("Chart.yaml"))
        .unwrap()
        .replace("version: 0.1.0", &format!("version: {version}"));
    std::fs::write(chart.join("Chart.yaml"), chart_yaml).unwrap();
    let cm = std::fs::read_to_string(chart.join("templates/configmap.yaml")).unwrap();
    std::fs::write(chart.join("templates/configmap.yaml"), format!("{cm}  marker: {marker}\n")).unwrap();
    chart
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A platform with every kind of source, in a temporary directory.
fn platform(repo_url: &str, constraint: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "rekube.yaml",
        &format!(
            "clusters:\n  dev: {{ provider: local }}\n\
         components:\n\
         \x20 published:\n    chart: {{ repo: {repo_url}, name: hello, version: \"{constraint}\" }}\n\
         \x20   namespace: pub\n    values: [values/pub.yaml, {{ message: inline }}]\n\
         \x20 local:\n    chart: {{ path: {} }}\n    namespace: loc\n\
         \x20 plain:\n    manifests: ./plain\n    namespace: plain\n    needs: [published]\n\
         \x20 kust:\n    manifests: ./kust\n    needs: [plain]\n\
         environments:\n  dev:\n    cluster: dev\n    components:\n\
         \x20     published: {{ values: [values/pub-dev.yaml] }}\n    values: {{ published.replicas: 5 }}\n",
            hello_chart().display()
        ),
    );
    write(d, "values/pub.yaml", "replicas: 2\nmessage: from-file\nimage:\n  tag: \"1.0\"\n");
    write(d, "values/pub-dev.yaml", "image:\n  tag: \"2.0\"\n");
    write(
        d,
        "plain/a.yaml",
        concat!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain-a\ndata:\n  mode: 0755\n",
            "---\n",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain-b\nstringData:\n  password: hunter2\n",
        ),
    );
    write(
        d,
        "plain/sub/c.yml",
        // A namespace on a cluster-scoped object (charts template one onto PSPs) is dropped.
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
         metadata:\n  name: plain-reader\n  namespace: x\nrules: []\n",
    );
    write(d, "kust/kustomization.yaml", "namespace: kust\nnamePrefix: k-\nresources: [cm.yaml]\n");
    write(d, "kust/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n");
    dir
}

fn options(cache: &Path) -> RenderOptions {
    RenderOptions {
        cache_dir: cache.to_path_buf(),
        kube_version: Some("1.20.2".into()),
        api_versions: Vec::new(),
        concurrency: 4,
        use_cache: true,
        only: None,
        helm: Some(tools::helm()),
        kubectl: Some(tools::kubectl()),
        release_prefix: None,
        tool_timeout: rekube_render::TOOL_TIMEOUT,
    }
}

fn load(dir: &Path) -> Loaded {
    rekube_spec::load(&dir.join("rekube.yaml")).unwrap()
}

async fn lock(loaded: &Loaded, cache: &Path) -> rekube_spec::LockFile {
    let helm = Helm::discover(cache, Some(&tools::helm())).await.unwrap();
    rekube_render::lock::resolve(loaded, None, &helm, &ChartCache::new(cache), false).await.unwrap()
}

fn find<'a>(r: &'a Rendered, kind: &str, name: &str) -> &'a serde_json::Value {
    r.objects()
        .map(|(_, o)| o)
        .find(|o| o.kind() == kind && o.name() == name)
        .map(|o| &o.value)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

#[tokio::test]
async fn renders_every_source_with_values_layered_in_order() {
    let charts = tempfile::tempdir().unwrap();
    let repo = ChartRepo::serve(&[&hello_chart(), &hello_version(charts.path(), "0.2.0", "two")]);
    let dir = platform(repo.url(), "^0.1");
    let cache = tempfile::tempdir().unwrap();
    let loaded = load(dir.path());

    // Unpinned range, no lock: validation refuses, pointing at the version.
    let errors = rekube_spec::validate(&loaded).unwrap_err();
    assert!(errors.to_string().contains("chart version `^0.1` of component `published` is not pinned"), "{errors}");

    let lock = lock(&loaded, cache.path()).await;
    let entry = &lock.charts["published"];
    assert_eq!(entry.version, "0.1.0", "^0.1 resolves to 0.1.0, not 0.2.0");
    let archive = std::fs::read(repo.archive("hello-0.1.0.tgz")).unwrap();
    assert_eq!(entry.digest, rekube_render::sha256(&archive), "the lock holds the served archive's sha256");
    rekube_spec::lock::write_lock(&dir.path().join("rekube.lock"), &lock).unwrap();
    let loaded = load(dir.path());
    rekube_spec::validate(&loaded).expect("valid once locked");

    let r = rekube_render::render(&loaded, "dev", Some(&lock), &options(cache.path())).await.unwrap();
    let order: Vec<&str> = r.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        order,
        [rekube_render::NAMESPACES, "local", "published", "plain", "kust"],
        "the namespace set, then dependency order, independent ones by name"
    );

    let deploy = find(&r, "Deployment", "published");
    assert_eq!(deploy["spec"]["replicas"], 5, "the environment's inline override wins");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2.0",
        "the environment's file beats the component's"
    );
    assert_eq!(deploy["metadata"]["namespace"], "pub", "namespaced objects get the component's namespace");
    assert_eq!(
        find(&r, "ConfigMap", "published-content")["data"]["index.html"],
        "inline",
        "inline component values beat its file"
    );
    assert_eq!(find(&r, "Deployment", "local")["spec"]["replicas"], 1, "chart defaults where nothing overrides");
    assert_eq!(find(&r, "ConfigMap", "plain-a")["data"]["mode"], 493, "0755 is octal, as kubectl reads it");
    assert!(
        find(&r, "ClusterRole", "plain-reader")["metadata"].get("namespace").is_none(),
        "cluster-scoped objects get no namespace, even when the file gives one"
    );
    assert_eq!(find(&r, "ConfigMap", "k-settings")["metadata"]["namespace"], "kust", "kustomize ran");
    for ns in ["pub", "loc", "plain"] {
        find(&r, "Namespace", ns);
    }
    let set: Vec<&str> = r.components[0].objects.iter().map(|o| o.name()).collect();
    assert!(
        ["pub", "loc", "plain"].iter().all(|ns| set.contains(ns)),
        "components' namespaces belong to the namespace set: {set:?}"
    );
    assert!(r.components[0].objects[0].kind() == "Namespace", "a component's namespace comes first");

    // A second render needs no network: the chart comes from the cache by digest.
    let before = repo.requests();
    let mut cold_render = options(cache.path());
    cold_render.use_cache = false;
    let again = rekube_render::render(&loaded, "dev", Some(&lock), &cold_render).await.unwrap();
    assert_eq!(repo.requests(), before, "no request to the chart repository");
    assert_eq!(again.objects().count(), r.objects().count());
    assert!(again.components.iter().all(|c| !c.cached));
    // And with the render cache, helm is not even run for unchanged inputs.
    let warm = rekube_render::render(&loaded, "dev", Some(&lock), &options(cache.path())).await.unwrap();
    let cached: Vec<&str> = warm.components.iter().filter(|c| c.cached).map(|c| c.name.as_str()).collect();
    assert_eq!(
        cached,
        ["local", "published", "kust"],
        "helm and kustomize output from the render cache (plain files are just read)"
    );
    let values = |r: &Rendered| r.objects().map(|(c, o)| (c.to_string(), o.value.clone())).collect::<Vec<_>>();
    assert_eq!(values(&warm), values(&r), "cached output is identical");
}

#[tokio::test]
async fn a_chart_replaced_upstream_is_refused_and_a_changed_spec_makes_the_lock_stale() {
    let charts = tempfile::tempdir().unwrap();
    let repo = ChartRepo::serve(&[&hello_chart()]);
    let dir = platform(repo.url(), "0.1.0");
    let loaded = load(dir.path());
    let lock = lock(&loaded, tempfile::tempdir().unwrap().path()).await;
    rekube_spec::lock::write_lock(&dir.path().join("rekube.lock"), &lock).unwrap();
    assert!(rekube_spec::lock::check_lock(&loaded, Some(&lock)).is_empty(), "fresh lock");

    // Someone republishes hello 0.1.0 with other content.
    repo.add(&hello_version(charts.path(), "0.1.0", "tampered"));
    let cache = tempfile::tempdir().unwrap();
    let err = rekube_render::render(&loaded, "dev", Some(&lock), &options(cache.path())).await.unwrap_err();
    let RenderError::Component { component, cause: source } = &err else { panic!("unexpected error: {err}") };
    assert_eq!(component, "published");
    assert!(matches!(**source, RenderError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&lock.charts["published"].digest), "{err}");

    // The spec asks for another version: the lock is stale, and says where.
    std::fs::write(
        dir.path().join("rekube.yaml"),
        std::fs::read_to_string(dir.path().join("rekube.yaml")).unwrap().replace("\"0.1.0\"", "\"^0.2\""),
    )
    .unwrap();
    let loaded = load(dir.path());
    let stale = rekube_spec::lock::check_lock(&loaded, Some(&lock));
    assert_eq!(stale.len(), 1);
    assert_eq!(
        stale[0].message,
        "rekube.lock pins component `published` for version `0.1.0`, but the spec says `^0.2`"
    );
    assert_eq!(stale[0].pos.map(|p| p.line), Some(5));
}

#[tokio::test]
async fn a_null_in_a_later_layer_deletes_the_charts_default_even_when_an_earlier_layer_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "chart/Chart.yaml", "apiVersion: v2\nname: limits\nversion: 0.1.0\n");
    write(d, "chart/values.yaml", "resources:\n  limits: {cpu: 1}\n  requests: {cpu: 100m}\n");
    write(
        d,
        "chart/templates/cm.yaml",
        concat!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: r}\n",
            "data:\n  resources: {{ toJson .Values.resources | quote }}\n",
        ),
    );
    write(
        d,
        "rekube.yaml",
        concat!(
            "clusters: {dev: {provider: local}}\n",
            "components:\n  web:\n    chart: {path: ./chart}\n    namespace: web\n",
            "    values: [{resources: {limits: {cpu: 2}}}, {resources: {limits: null}}]\n",
            "environments: {dev: {cluster: dev}}\n",
        ),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = rekube_render::render(&load(d), "dev", None, &options(cache.path())).await.unwrap();
    // As `helm template -f a.yaml -f b.yaml` renders it: no limits at all, not the chart's cpu: 1.
    assert_eq!(find(&r, "ConfigMap", "r")["data"]["resources"], r#"{"requests":{"cpu":"100m"}}"#);
}
