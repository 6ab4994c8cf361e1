//! Paths into JSON objects: how `plan`'s diff and `rekube drift` walk two
//! objects side by side, name a field, and decide what is secret. One place,
//! so that the two cannot drift apart (they did: drift once forgot to mask
//! the last-applied annotation of Secrets). Imports nothing from the crate,
//! so every other module may use it.

use serde_json::Value;

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key of an object.
    Key(String),
    /// An index into a list.
    Index(usize),
}

impl Seg {
    /// The key, if this step is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Seg::Key(k) => Some(k),
            Seg::Index(_) => None,
        }
    }
}

/// Appends `seg` to the rendered path `out`.
fn push(out: &mut String, seg: &Seg) {
    match seg {
        Seg::Index(i) => out.push_str(&format!("[{i}]")),
        Seg::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(k);
        }
        Seg::Key(k) => out.push_str(&format!("[{}]", serde_json::to_string(k).expect("string"))),
    }
}

/// The path as users read it: `spec.template.spec.containers[0].image`,
/// with keys that are not plain words quoted (`metadata.labels["app.kubernetes.io/name"]`).
pub fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        push(&mut out, seg);
    }
    out
}

/// Which keys of two objects a walk compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// The keys of either side, sorted: a full diff, where fields come and go.
    Both,
    /// The left side's keys only, in its order: whether what was set is still
    /// so, whatever else was added.
    Left,
}

/// A place where two values differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch<'v> {
    /// Where.
    pub path: Vec<Seg>,
    /// The left value (`None`: absent).
    pub left: Option<&'v Value>,
    /// The right value (`None`: absent).
    pub right: Option<&'v Value>,
}

/// The deepest places where `left` and `right` differ. Objects are compared
/// key by key (which keys: `keys`), lists of the same length element by
/// element; anything else differs as a whole. Numbers are equal when they
/// are as floats (`2` and `2.0`). Subtrees whose path `skip` accepts are
/// left out.
pub fn mismatches<'v>(
    left: &'v Value,
    right: &'v Value,
    keys: Keys,
    skip: impl Fn(&[Seg]) -> bool,
) -> Vec<Mismatch<'v>> {
    let mut walk = Walk { keys, skip: &skip, path: Vec::new(), out: Vec::new() };
    walk.walk(Some(left), Some(right));
    walk.out
}

/// A walk in progress.
struct Walk<'s, 'v> {
    keys: Keys,
    skip: &'s dyn Fn(&[Seg]) -> bool,
    path: Vec<Seg>,
    out: Vec<Mismatch<'v>>,
}

impl<'v> Walk<'_, 'v> {
    fn walk(&mut self, left: Option<&'v Value>, right: Option<&'v Value>) {
        if (self.skip)(&self.path) {
            return;
        }
        match (left, right) {
            (Some(Value::Object(l)), Some(Value::Object(r))) => {
                let keys: Vec<&String> = match self.keys {
                    Keys::Both => {
                        let mut keys: Vec<&String> = l.keys().chain(r.keys()).collect();
                        keys.sort();
                        keys.dedup();
                        keys
                    }
                    Keys::Left => l.keys().collect(),
                };
                for k in keys {
                    self.path.push(Seg::Key(k.clone()));
                    self.walk(l.get(k), r.get(k));
                    self.path.pop();
                }
            }
            (Some(Value::Array(l)), Some(Value::Array(r))) if l.len() == r.len() => {
                for (i, (x, y)) in l.iter().zip(r).enumerate() {
                    self.path.push(Seg::Index(i));
                    self.walk(Some(x), Some(y));
                    self.path.pop();
                }
            }
            (l, r) if l == r => {}
            (Some(Value::Number(x)), Some(Value::Number(y))) if x.as_f64() == y.as_f64() => {}
            // What was applied is compared with what the server stores, which
            // omits empty values (Go's omitempty): `initialDelaySeconds: 0`
            // comes back absent. That is not a change.
            (Some(l), None) if self.keys == Keys::Left && is_empty(l) => {}
            // An applied `null` (charts render `resources: null`) sets nothing.
            (Some(Value::Null), _) if self.keys == Keys::Left => {}
            (l, r) => self.out.push(Mismatch { path: self.path.clone(), left: l, right: r }),
        }
    }
}

/// A value a Go server omits when serialising (`omitempty`).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// The marker shown instead of a secret value.
pub const MASK: &str = "(sensitive)";

/// Whether objects of `kind` hold secret values at all.
fn has_secrets(kind: &str) -> bool {
    kind == "Secret"
}

/// A Secret's annotations that never hold its values, shown as they are
/// (exact keys: a prefix would let any `meta.helm.sh/...` copy through, as
/// fuzzing showed); every other annotation of a Secret is masked, since
/// tools copy the whole object into one (kubectl's last-applied-configuration).
const PLAIN_SECRET_ANNOTATIONS: &[&str] = &[
    "kubernetes.io/service-account.name",
    "kubernetes.io/service-account.uid",
    "meta.helm.sh/release-name",
    "meta.helm.sh/release-namespace",
    "helm.sh/resource-policy",
    "helm.sh/hook",
    "helm.sh/hook-weight",
    "helm.sh/hook-delete-policy",
    "rekube.dev/hash",
    "rekube.dev/replace",
];

/// A Secret's metadata fields that hold no secret (annotations apart).
const PLAIN_METADATA: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
];

/// Whether the field at the rendered `path` of an object of `kind` may hold
/// a secret value. For a Secret that is everything but what is known to
/// hold none: `apiVersion`, `kind`, `type`, `immutable`, and `metadata`
/// without its annotations (but the few known plain ones). `data`,
/// `stringData`, any annotation (tools copy the whole Secret into one, as
/// kubectl's last-applied-configuration does) and any field rekube does not
/// know are sensitive.
pub fn is_sensitive(kind: &str, path: &str) -> bool {
    if !has_secrets(kind) || path.is_empty() {
        return false;
    }
    let top = path.split(['.', '[']).next().unwrap_or_default();
    match top {
        "apiVersion" | "kind" | "type" | "immutable" => false,
        "metadata" if path == "metadata" || path == "metadata.annotations" => false,
        "metadata" => match annotation_key(path) {
            Some(key) => !PLAIN_SECRET_ANNOTATIONS.contains(&key.as_str()),
            None => {
                let field = path["metadata.".len().min(path.len())..].split(['.', '[']).next().unwrap_or_default();
                !PLAIN_METADATA.contains(&field)
            }
        },
        // `data`, `stringData`, and keys nobody knows (or that need quoting: `top` is empty).
        _ => true,
    }
}

/// The annotation a rendered path is in (`metadata.annotations.team`,
/// `metadata.annotations["a.b/c"]`), if it is in one.
fn annotation_key(path: &str) -> Option<String> {
    if let Some(plain) = path.strip_prefix("metadata.annotations.") {
        return Some(plain.split(['.', '[']).next().unwrap_or_default().to_string());
    }
    let quoted = path.strip_prefix("metadata.annotations[")?;
    let quoted = quoted.rsplit_once(']').map_or(quoted, |(k, _)| k);
    Some(serde_json::from_str(quoted).unwrap_or_default())
}

/// The value at the rendered `path` of an object of `kind`, as it may be
/// shown: [`MASK`] instead of a sensitive value (still telling present from
/// absent, so that a diff says added, changed or removed), and instead of
/// every sensitive field inside it (a whole `metadata.annotations`).
pub fn shown(kind: &str, path: &str, value: Option<&Value>) -> Option<Value> {
    let mut value = value?.clone();
    if has_secrets(kind) {
        mask_within(kind, path, &mut value);
    }
    Some(value)
}

fn mask_within(kind: &str, path: &str, value: &mut Value) {
    if is_sensitive(kind, path) {
        *value = Value::String(MASK.into());
        return;
    }
    let visit = |seg: Seg, v: &mut Value| {
        let mut inner = path.to_string();
        push(&mut inner, &seg);
        mask_within(kind, &inner, v);
    };
    match value {
        Value::Object(m) => m.iter_mut().for_each(|(k, v)| visit(Seg::Key(k.clone()), v)),
        Value::Array(a) => a.iter_mut().enumerate().for_each(|(i, v)| visit(Seg::Index(i), v)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn renders_dotted_paths_and_quotes_other_keys() {
        let image = [key("spec"), key("template"), key("spec"), key("containers"), Seg::Index(0), key("image")];
        assert_eq!(render(&image), "spec.template.spec.containers[0].image");
        assert_eq!(
            render(&[key("metadata"), key("labels"), key("app.kubernetes.io/name")]),
            r#"metadata.labels["app.kubernetes.io/name"]"#
        );
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn walks_both_sides_or_only_the_left() {
        let left = json!({"b": 1, "a": [1, 2], "gone": true});
        let right = json!({"a": [1.0, 3], "b": 1, "new": "x"});
        let found = |keys| -> Vec<String> {
            mismatches(&left, &right, keys, |_| false)
                .iter()
                .map(|m| format!("{} {:?} {:?}", render(&m.path), m.left, m.right))
                .collect()
        };
        assert_eq!(
            found(Keys::Both),
            ["a[1] Some(Number(2)) Some(Number(3))", "gone Some(Bool(true)) None", r#"new None Some(String("x"))"#]
        );
        assert_eq!(found(Keys::Left), ["a[1] Some(Number(2)) Some(Number(3))", "gone Some(Bool(true)) None"]);
        let skipped = mismatches(&left, &right, Keys::Both, |p| p.first().and_then(Seg::key) == Some("a"));
        assert_eq!(skipped.len(), 2);
    }

    #[test]
    fn an_applied_empty_value_the_server_omits_is_not_a_change() {
        let applied = json!({"probe": {"initialDelaySeconds": 0, "period": 10}, "off": false, "tags": [], "gone": 1,
            "resources": null});
        let live = json!({"probe": {"period": 10}, "resources": {}});
        let found: Vec<String> =
            mismatches(&applied, &live, Keys::Left, |_| false).iter().map(|m| render(&m.path)).collect();
        assert_eq!(found, ["gone"], "only a value that is really missing");
    }

    #[test]
    fn masks_secret_fields_even_inside_a_whole_object() {
        assert!(is_sensitive("Secret", "data.password"));
        assert!(is_sensitive("Secret", r#"metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]"#));
        assert!(!is_sensitive("Secret", "metadata.labels.app"));
        assert!(is_sensitive("Secret", "metadata.annotations.team"));
        assert!(is_sensitive("Secret", "mtaedata"), "a field rekube does not know (found by fuzzing)");
        assert!(is_sensitive("Secret", "metadata.ttnoaanions"), "nor in metadata (found by fuzzing)");
        assert!(
            !is_sensitive("Secret", "metadata.labels.app") && !is_sensitive("Secret", "metadata.ownerReferences[0]")
        );
        assert!(is_sensitive("Secret", r#"["odd.key"]"#));
        assert!(!is_sensitive("Secret", "type") && !is_sensitive("Secret", "metadata.name"));
        assert!(!is_sensitive("Secret", r#"metadata.annotations["meta.helm.sh/release-name"]"#));
        assert!(
            is_sensitive("Secret", r#"metadata.annotations["meta.helm.sh/netes.io/lart-applied-configuration"]"#),
            "only the exact plain keys (found by fuzzing)"
        );
        assert!(!is_sensitive("ConfigMap", "data.password"));
        assert_eq!(shown("Secret", "stringData.a", Some(&json!("hunter2"))), Some(json!(MASK)));
        assert_eq!(shown("Secret", "data.a", None), None, "absent stays absent");
        let annotations = json!({
            "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"a\":\"aHVudGVyMg==\"}}",
            "backup.example.com/copy": "{\"data\":{\"a\":\"aHVudGVyMg==\"}}",
            "meta.helm.sh/release-name": "db",
        });
        assert_eq!(
            shown("Secret", "metadata.annotations", Some(&annotations)),
            Some(json!({
                "kubectl.kubernetes.io/last-applied-configuration": MASK,
                "backup.example.com/copy": MASK,
                "meta.helm.sh/release-name": "db",
            })),
            "any annotation may copy the Secret (found by fuzzing); the known plain ones stay readable"
        );
        assert_eq!(shown("ConfigMap", "metadata.annotations", Some(&annotations)), Some(annotations));
    }
}
