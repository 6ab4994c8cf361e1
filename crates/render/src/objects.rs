//! Kubernetes objects out of YAML streams, with where each came from.
//!
//! A stream is split into documents by hand (at `---` lines) so every object
//! keeps its first line, and Helm's `# Source: chart/templates/x.yaml`
//! comments name the template file. Each object is checked for what apply
//! needs (`apiVersion`, `kind`, `metadata.name`), with the position.

use std::fmt;
use std::path::{Path, PathBuf};

use rekube_spec::{Diagnostic, Pos, yaml_diagnostic, yaml_options};
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

/// Where an object was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file (for Helm output: the template, as `chart/templates/x.yaml (rendered)`).
    pub file: PathBuf,
    /// The document's first line in that file (or in the rendered output).
    pub line: u64,
}

/// One object of a component's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The object as it will be applied.
    pub value: Value,
    /// Where it came from.
    pub origin: Origin,
}

/// Identity of an object in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// API group (`""` for the core group).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of an object as JSON (`apiVersion`, `kind`, `metadata`), live or rendered.
    pub fn of(v: &Value) -> Self {
        let api = v["apiVersion"].as_str().unwrap_or_default();
        Self {
            group: api.rsplit_once('/').map_or("", |(g, _)| g).to_string(),
            kind: v["kind"].as_str().unwrap_or_default().to_string(),
            namespace: v.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
            name: v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) };
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

impl Object {
    fn str_at(&self, path: &[&str]) -> Option<&str> {
        let mut v = &self.value;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str()
    }

    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"]).unwrap_or_default()
    }

    /// The API group, from `apiVersion`.
    pub fn group(&self) -> &str {
        self.api_version().rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.str_at(&["kind"]).unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"]).unwrap_or_default()
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at(&["metadata", "namespace"])
    }

    /// Its identity.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: self.group().to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }

    /// Sets `metadata.namespace`.
    pub fn set_namespace(&mut self, ns: &str) {
        if let Some(meta) = self.value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        }
    }

    /// Drops `metadata.namespace` (a cluster-scoped object has none).
    pub fn clear_namespace(&mut self) {
        if let Some(meta) = self.value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
    }
}

/// A document of a stream: its text, first line and Helm source file.
struct Doc<'a> {
    text: &'a str,
    start_line: u64,
    helm_source: Option<&'a str>,
}

fn split_docs(text: &str) -> Vec<Doc<'_>> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u64;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((start, offset, start_line));
            start = offset + line.len();
            start_line = i as u64 + 2;
        }
        offset += line.len();
    }
    docs.push((start, text.len(), start_line));
    docs.into_iter()
        .map(|(s, e, line)| {
            let text = &text[s..e];
            let helm_source = text.lines().find_map(|l| l.strip_prefix("# Source: ")).map(str::trim);
            Doc { text, start_line: line, helm_source }
        })
        .collect()
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion")]
    api_version: Option<Spanned<Value>>,
    kind: Option<Spanned<Value>>,
    metadata: Option<Spanned<Value>>,
}

/// How a stream was produced, for naming files in diagnostics.
#[derive(Debug, Clone)]
pub enum StreamSource<'a> {
    /// A file the user wrote.
    File(&'a Path),
    /// `helm template` output for a component; documents name their template.
    Helm {
        /// The component.
        component: &'a str,
    },
    /// `kubectl kustomize DIR` output.
    Kustomize(&'a Path),
}

/// Parses a YAML stream into checked objects. Problems go to `diags`.
pub fn parse_stream(text: &str, source: &StreamSource<'_>, diags: &mut Vec<Diagnostic>) -> Vec<Object> {
    let mut out = Vec::new();
    for doc in split_docs(text) {
        // Positions inside a document are relative to it; shift them.
        let (file, doc_text, base): (PathBuf, &str, u64) = match source {
            StreamSource::File(p) => (p.to_path_buf(), text, doc.start_line - 1),
            StreamSource::Helm { component } => match doc.helm_source {
                Some(src) => {
                    (PathBuf::from(format!("{src} (rendered by helm for component `{component}`)")), doc.text, 0)
                }
                None => (PathBuf::from(format!("helm output for component `{component}`")), doc.text, 0),
            },
            StreamSource::Kustomize(dir) => {
                (PathBuf::from(format!("{} (rendered by kustomize)", dir.display())), text, doc.start_line - 1)
            }
        };
        let shift = |p: Option<Pos>| p.map(|p| Pos { line: p.line + base, column: p.column });
        let value: Value = match serde_saphyr::from_str_with_options(doc.text, yaml_options()) {
            Ok(v) => v,
            Err(e) => {
                let mut d = yaml_diagnostic(&file, doc.text, &e);
                d = Diagnostic { pos: shift(d.pos), ..d };
                d.source_line = d.pos.and_then(|p| doc_text.lines().nth(p.line as usize - 1).map(str::to_string));
                diags.push(d);
                continue;
            }
        };
        if value.is_null() {
            continue; // empty document, or comments only (Helm emits these)
        }
        let first_line =
            doc.text.lines().position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).unwrap_or(0) as u64
                + 1;
        let doc_pos = Some(Pos { line: first_line + base, column: 1 });
        let diag = |pos: Option<Pos>, msg: String| Diagnostic::new(&file, Some(doc_text), pos, msg);
        let Value::Object(map) = &value else {
            diags.push(
                diag(doc_pos, "a manifest must be a mapping (an object with apiVersion, kind and metadata)".into())
                    .hint("remove the stray list or scalar, or indent it under a key"),
            );
            continue;
        };
        let head: Option<Head> = serde_saphyr::from_str(doc.text).ok();
        let head_pos = |f: fn(&Head) -> Option<serde_saphyr::Location>| {
            shift(head.as_ref().and_then(f).and_then(Pos::from_location))
        };
        if !map.get("apiVersion").is_some_and(Value::is_string) {
            let pos = head_pos(|h| h.api_version.as_ref().map(|s| s.referenced)).or(doc_pos);
            diags.push(
                diag(pos, "manifest has no `apiVersion`".into())
                    .hint("every object needs `apiVersion`, `kind` and `metadata.name`, e.g. `apiVersion: v1`"),
            );
            continue;
        }
        if !map.get("kind").is_some_and(Value::is_string) {
            let pos = head_pos(|h| h.kind.as_ref().map(|s| s.referenced)).or(doc_pos);
            diags.push(
                diag(pos, "manifest has no `kind`".into())
                    .hint("every object needs `apiVersion`, `kind` and `metadata.name`, e.g. `kind: ConfigMap`"),
            );
            continue;
        }
        let origin = Origin { file: file.clone(), line: doc_pos.map_or(1, |p| p.line) };
        // `kind: List` (kubectl's format) holds objects in `items`.
        if map.get("kind").and_then(Value::as_str) == Some("List") {
            for item in map.get("items").and_then(Value::as_array).into_iter().flatten() {
                out.push(Object { value: item.clone(), origin: origin.clone() });
            }
            continue;
        }
        let name = map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            let pos = head_pos(|h| h.metadata.as_ref().map(|s| s.referenced)).or(doc_pos);
            let generated = map.get("metadata").and_then(|m| m.get("generateName")).is_some();
            let hint = if generated {
                "`generateName` makes a new object on every apply; set `metadata.name` so rekube can track it"
            } else {
                "add `metadata.name`"
            };
            let kind = map["kind"].as_str().unwrap_or_default();
            diags.push(diag(pos, format!("{kind} has no `metadata.name`")).hint(hint));
            continue;
        }
        out.push(Object { value, origin });
    }
    out
}

/// Kinds that are cluster-scoped in every Kubernetes the project targets.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

/// API groups built into the API server (objects of other groups need a CRD).
pub const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "extensions",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "admissionregistration.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "node.k8s.io",
    "scheduling.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "internal.apiserver.k8s.io",
    "resource.k8s.io",
];

/// Whether objects of a kind live in namespaces, as far as is known offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Lives in a namespace.
    Namespaced,
    /// Cluster-wide.
    Cluster,
    /// A custom kind whose CRD is not in the platform: the cluster decides.
    Unknown,
}

/// The scope of `group`/`kind`, using the platform's own CRDs for custom kinds.
pub fn scope(group: &str, kind: &str, crds: &[Object]) -> Scope {
    if CLUSTER_SCOPED.contains(&(group, kind)) {
        return Scope::Cluster;
    }
    if BUILTIN_GROUPS.contains(&group) {
        return Scope::Namespaced;
    }
    for crd in crds {
        let spec = &crd.value["spec"];
        if spec["group"].as_str() == Some(group) && spec["names"]["kind"].as_str() == Some(kind) {
            return if spec["scope"].as_str() == Some("Cluster") { Scope::Cluster } else { Scope::Namespaced };
        }
    }
    Scope::Unknown
}

/// Whether the object is a CustomResourceDefinition.
pub fn is_crd(o: &Object) -> bool {
    o.group() == "apiextensions.k8s.io" && o.kind() == "CustomResourceDefinition"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_lines_and_helm_sources() {
        let text = concat!(
            "# Source: hello/templates/a.yaml\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            "---\n",
            "# Source: hello/templates/b.yaml\n",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n",
        );
        let docs = split_docs(text);
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].start_line, docs[0].helm_source), (1, Some("hello/templates/a.yaml")));
        assert_eq!((docs[1].start_line, docs[1].helm_source), (6, Some("hello/templates/b.yaml")));
    }

    #[test]
    fn list_kind_is_expanded() {
        let mut d = Vec::new();
        let objs = parse_stream(
            concat!(
                "apiVersion: v1\nkind: List\nitems:\n",
                "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n",
                "- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n",
            ),
            &StreamSource::File(Path::new("l.yaml")),
            &mut d,
        );
        assert!(d.is_empty());
        assert_eq!(objs.iter().map(Object::name).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn octal_file_modes_stay_octal_like_kubectl() {
        let mut d = Vec::new();
        let objs = parse_stream(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {mode: 0755}\n",
            &StreamSource::File(Path::new("p.yaml")),
            &mut d,
        );
        assert_eq!(objs[0].value["spec"]["mode"], 493);
    }
}
