//! Bad rendered input: mistakes in manifests, values files and chart
//! templates, each reported with the file and position it is in. The
//! rendered diagnostics are snapshot-tested (temporary paths filtered).

use std::path::Path;

use rekube_render::{RenderError, RenderOptions};
use rekube_testbed::tools;

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    /// (file suffix, line, column, message substring) of the first error.
    expect: (&'static str, u64, u64, &'static str),
}

const SPEC_PLAIN: &str = concat!(
    "clusters: {dev: {provider: local}}\n",
    "components:\n  app:\n    manifests: ./m\n    namespace: app\n",
    "environments: {dev: {cluster: dev}}\n",
);
const SPEC_CHART: &str = concat!(
    "clusters: {dev: {provider: local}}\n",
    "components:\n  web:\n    chart: {path: ./chart}\n    namespace: web\n    values: [values.yaml]\n",
    "environments: {dev: {cluster: dev}}\n",
);
const CHART_YAML: &str = "apiVersion: v2\nname: chart\nversion: 0.1.0\n";

const CASES: &[Case] = &[
    Case {
        name: "manifest-missing-name",
        files: &[
            ("rekube.yaml", SPEC_PLAIN),
            ("m/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n"),
        ],
        expect: ("m/a.yaml", 4, 3, "ConfigMap has no `metadata.name`"),
    },
    Case {
        name: "manifest-missing-kind",
        files: &[("rekube.yaml", SPEC_PLAIN), ("m/a.yaml", "apiVersion: v1\nmetadata:\n  name: x\n")],
        expect: ("m/a.yaml", 1, 1, "manifest has no `kind`"),
    },
    Case {
        name: "manifest-missing-apiversion",
        files: &[("rekube.yaml", SPEC_PLAIN), ("m/a.yaml", "# a comment\nkind: ConfigMap\nmetadata:\n  name: x\n")],
        expect: ("m/a.yaml", 2, 1, "manifest has no `apiVersion`"),
    },
    Case {
        name: "manifest-syntax-in-second-document",
        files: &[
            ("rekube.yaml", SPEC_PLAIN),
            (
                "m/a.yaml",
                concat!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
                    "---\n",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b\ndata: {}\n",
                ),
            ),
        ],
        expect: ("m/a.yaml", 8, 5, "did not find expected ',' or '}'"),
    },
    Case {
        name: "manifest-duplicate-key",
        files: &[
            ("rekube.yaml", SPEC_PLAIN),
            ("m/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"),
        ],
        expect: ("m/a.yaml", 5, 3, "duplicate key `name`"),
    },
    Case {
        name: "manifest-is-a-list",
        files: &[("rekube.yaml", SPEC_PLAIN), ("m/a.yaml", "- apiVersion: v1\n  kind: ConfigMap\n")],
        expect: ("m/a.yaml", 1, 1, "a manifest must be a mapping"),
    },
    Case {
        name: "manifest-generate-name",
        files: &[
            ("rekube.yaml", SPEC_PLAIN),
            ("m/a.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n"),
        ],
        expect: ("m/a.yaml", 4, 3, "Job has no `metadata.name`"),
    },
    Case {
        name: "manifest-tab",
        files: &[("rekube.yaml", SPEC_PLAIN), ("m/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n")],
        expect: ("m/a.yaml", 4, 2, "tabs disallowed"),
    },
    Case {
        name: "namespaced-without-namespace",
        files: &[
            (
                "rekube.yaml",
                concat!(
                    "clusters: {dev: {provider: local}}\n",
                    "components:\n  app: {manifests: ./m}\n",
                    "environments: {dev: {cluster: dev}}\n",
                ),
            ),
            ("m/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
        ],
        expect: (
            "m/a.yaml",
            1,
            1,
            "ConfigMap `a` is namespaced but has no namespace, and component `app` declares none",
        ),
    },
    Case {
        name: "object-in-two-components",
        files: &[
            (
                "rekube.yaml",
                concat!(
                    "clusters: {dev: {provider: local}}\n",
                    "components:\n  a: {manifests: ./a, namespace: shared}\n  b: {manifests: ./b, namespace: shared}\n",
                    "environments: {dev: {cluster: dev}}\n",
                ),
            ),
            ("a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"),
            ("b/cm.yaml", "# same object\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"),
        ],
        expect: (
            "b/cm.yaml",
            2,
            1,
            "ConfigMap shared/settings is rendered twice: by component `b` and by component `a`",
        ),
    },
    Case {
        name: "values-file-syntax",
        files: &[
            ("rekube.yaml", SPEC_CHART),
            ("values.yaml", "replicas: 2\nimage: {tag: 1\n"),
            ("chart/Chart.yaml", CHART_YAML),
            ("chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
        ],
        expect: ("values.yaml", 2, 8, "unclosed bracket"),
    },
    Case {
        name: "values-file-is-a-list",
        files: &[
            ("rekube.yaml", SPEC_CHART),
            ("values.yaml", "- replicas\n"),
            ("chart/Chart.yaml", CHART_YAML),
            ("chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
        ],
        expect: ("values.yaml", 1, 1, "a values file must be a mapping"),
    },
    Case {
        name: "values-file-duplicate-key",
        files: &[
            ("rekube.yaml", SPEC_CHART),
            ("values.yaml", "replicas: 2\nreplicas: 3\n"),
            ("chart/Chart.yaml", CHART_YAML),
            ("chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
        ],
        expect: ("values.yaml", 2, 1, "duplicate key `replicas`"),
    },
    Case {
        name: "chart-template-nil-value",
        files: &[
            ("rekube.yaml", SPEC_CHART),
            ("values.yaml", "replicas: 2\n"),
            ("chart/Chart.yaml", CHART_YAML),
            (
                "chart/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  tag: {{ .Values.image.tag }}\n",
            ),
        ],
        expect: ("chart/templates/cm.yaml", 6, 17, "nil pointer evaluating interface {}.tag"),
    },
    Case {
        name: "chart-template-parse-error",
        files: &[
            ("rekube.yaml", SPEC_CHART),
            ("values.yaml", "replicas: 2\n"),
            ("chart/Chart.yaml", CHART_YAML),
            ("chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ nosuchfunc }}\n"),
        ],
        expect: ("chart/templates/cm.yaml", 4, 1, "function \"nosuchfunc\" not defined"),
    },
    Case {
        name: "chart-output-missing-name",
        files: &[
            ("rekube.yaml", SPEC_CHART),
            ("values.yaml", "replicas: 2\n"),
            ("chart/Chart.yaml", CHART_YAML),
            (
                "chart/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {replicas: \"{{ .Values.replicas }}\"}\n",
            ),
        ],
        expect: (
            "chart/templates/cm.yaml (rendered by helm for component `web`)",
            5,
            3,
            "ConfigMap has no `metadata.name`",
        ),
    },
    Case {
        name: "kustomize-missing-resource",
        files: &[("rekube.yaml", SPEC_PLAIN), ("m/kustomization.yaml", "resources: [missing.yaml]\n")],
        expect: ("m", 0, 0, "kustomize failed"),
    },
];

fn options(cache: &Path) -> RenderOptions {
    RenderOptions {
        cache_dir: cache.to_path_buf(),
        kube_version: None,
        api_versions: Vec::new(),
        concurrency: 4,
        use_cache: false,
        only: None,
        helm: Some(tools::helm()),
        kubectl: Some(tools::kubectl()),
        release_prefix: None,
        tool_timeout: rekube_render::TOOL_TIMEOUT,
    }
}

#[tokio::test]
async fn rendered_input_errors_name_file_and_position() {
    let cache = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in case.files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let loaded = rekube_spec::load(&dir.path().join("rekube.yaml")).unwrap();
        rekube_spec::validate(&loaded).unwrap_or_else(|d| panic!("{}: spec invalid:\n{d}", case.name));
        let diags = match rekube_render::render(&loaded, "dev", None, &options(cache.path())).await {
            Err(RenderError::Invalid(d)) => d,
            Ok(_) => {
                wrong.push(format!("{}: rendered without error", case.name));
                continue;
            }
            Err(e) => {
                wrong.push(format!("{}: unexpected error {e}", case.name));
                continue;
            }
        };
        let first = diags.errors().next().unwrap();
        let (file, line, col, msg) = case.expect;
        let pos = first.pos.map_or((0, 0), |p| (p.line, p.column));
        let shown = first.file.display().to_string();
        if !shown.ends_with(file) || pos != (line, col) || !first.message.contains(msg) {
            wrong.push(format!(
                "{}: expected {file}:{line}:{col} `{msg}`\n  got {shown}:{}:{} `{}`",
                case.name, pos.0, pos.1, first.message
            ));
            continue;
        }
        let text = diags.to_string().replace(&dir.path().display().to_string(), "[DIR]");
        insta::assert_snapshot!(case.name, text);
    }
    assert!(wrong.is_empty(), "{} of {} cases differ:\n{}", wrong.len(), CASES.len(), wrong.join("\n"));
}

#[tokio::test]
async fn custom_resource_without_crd_is_a_warning_offline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("m")).unwrap();
    std::fs::write(dir.path().join("rekube.yaml"), SPEC_PLAIN).unwrap();
    std::fs::write(
        dir.path().join("m/issuer.yaml"),
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: letsencrypt}\n",
    )
    .unwrap();
    let loaded = rekube_spec::load(&dir.path().join("rekube.yaml")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = rekube_render::render(&loaded, "dev", None, &options(cache.path())).await.unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].warning);
    assert_eq!(
        r.warnings[0].message,
        "ClusterIssuer.cert-manager.io `letsencrypt`: no component defines its CustomResourceDefinition"
    );
    // Its scope is unknown offline, so no namespace is forced on it.
    let issuer = r.objects().find(|(_, o)| o.kind() == "ClusterIssuer").unwrap().1;
    assert_eq!(issuer.namespace(), None);
}

#[tokio::test]
async fn a_helm_that_hangs_is_stopped_at_its_deadline_and_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rekube.yaml"), SPEC_CHART).unwrap();
    std::fs::create_dir_all(dir.path().join("chart/templates")).unwrap();
    std::fs::write(dir.path().join("chart/Chart.yaml"), "apiVersion: v2\nname: c\nversion: 0.1.0\n").unwrap();
    std::fs::write(dir.path().join("values.yaml"), "{}\n").unwrap();
    // Answers `version`, then hangs on `template` (a chart repository that never answers, say).
    let helm = dir.path().join("helm");
    std::fs::write(&helm, "#!/bin/sh\n[ \"$1\" = version ] && { echo v3.99.0; exit 0; }\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&helm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let loaded = rekube_spec::load(&dir.path().join("rekube.yaml")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let opts = RenderOptions {
        helm: Some(helm),
        tool_timeout: std::time::Duration::from_millis(500),
        ..options(cache.path())
    };
    let err = rekube_render::render(&loaded, "dev", None, &opts).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "component `web`: `helm template web` did not finish within 500ms and was stopped",
        "{err:?}"
    );
}
