//! What a preview is, before any cluster is asked: its identity, its
//! names, and the spec it renders, derived from its source environment
//! with the namespaces moved, the Helm releases renamed and the values
//! overridden. And the pure rewrite of the rendered objects: namespace
//! fields and Ingress hosts.
//!
//! Naming (docs/previews.md): preview `feat-1` of project `shop` is the
//! environment `preview.feat-1` on the cluster (a name no spec environment
//! can have: they are DNS labels); namespace `web` becomes `feat-1-web`;
//! the Helm release of component `web` becomes `feat-1-web`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rekube_render::Rendered;
use rekube_spec::{Environment, Loaded, is_dns_label};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use crate::EngineError;
use crate::workspace::{check_components, environment};

/// The environment name of preview `name` (its ApplySets, Lease and journal).
pub fn env_id(name: &str) -> String {
    format!("{ENV_PREFIX}{name}")
}

/// What every preview's environment name starts with.
pub const ENV_PREFIX: &str = "preview.";

/// Helm's limit on a release name.
const RELEASE_MAX: usize = 53;

/// What `preview up` asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The preview's name.
    pub name: String,
    /// The environment it copies.
    pub from: String,
    /// Only these components, with what they need (empty: all).
    pub components: Vec<String>,
    /// `component.path=value` overrides.
    pub sets: Vec<String>,
    /// A YAML file of `component: {values}`.
    pub values_file: Option<std::path::PathBuf>,
    /// Its lifetime (`8h`); default `previews.ttl`, else 24h.
    pub ttl: Option<String>,
    /// Copy Secrets the source environment's namespaces hold beyond the spec.
    pub copy_secrets: bool,
}

/// A preview's spec, ready to render.
pub struct Derived {
    /// The spec, with only the preview's components and its environment.
    pub loaded: Loaded,
    /// `preview.<name>`.
    pub env: String,
    /// Source namespace → the preview's.
    pub namespaces: BTreeMap<String, String>,
    /// Component → the host its Ingresses get.
    pub hosts: BTreeMap<String, String>,
    /// The components, in dependency waves.
    pub waves: Vec<Vec<String>>,
    /// Its cluster.
    pub cluster: String,
    /// Its lifetime.
    pub ttl: std::time::Duration,
}

fn refuse(message: String, hint: impl Into<String>) -> EngineError {
    EngineError::Preview { message, hint: hint.into() }
}

/// The longest preview name: `preview.<name>` is a label value (63 characters).
pub const NAME_MAX: usize = 63 - ENV_PREFIX.len();

/// Checks a preview's name: a DNS label that leaves room for the names made from it.
pub fn check_name(name: &str) -> Result<(), EngineError> {
    if name.len() > NAME_MAX && is_dns_label(name) {
        return Err(refuse(
            format!("preview name `{name}` is {} characters; previews allow {NAME_MAX}", name.len()),
            format!("its environment `{ENV_PREFIX}<name>` labels every object, and a label holds 63 characters"),
        ));
    }
    if is_dns_label(name) {
        return Ok(());
    }
    Err(refuse(
        format!("preview name `{name}` is not a valid name"),
        "use lower-case letters, digits and '-' (it prefixes namespaces and Helm releases), e.g. `pr-123`",
    ))
}

/// The hint for a name made from the preview's that is too long by itself.
fn shorter(limit: usize, fixed: usize, what: &str) -> String {
    match limit.checked_sub(fixed + 1) {
        Some(n) if n > 0 => format!("use a preview name of at most {} characters", n.min(NAME_MAX)),
        _ => format!("{what} is too long to be previewed: shorten it in the spec"),
    }
}

/// The spec of preview `req.name` of environment `req.from`.
pub fn derive(loaded: &Loaded, req: &Request) -> Result<Derived, EngineError> {
    check_name(&req.name)?;
    let source = environment(loaded, &req.from)?.clone();
    let spec = &loaded.spec;
    check_components(loaded, &req.components)?;
    let selected: BTreeSet<String> = if req.components.is_empty() {
        spec.components.keys().cloned().collect()
    } else {
        rekube_spec::graph::with_needs(spec, &req.components)
    };
    let previews = spec.previews.as_ref().map(|p| &p.value);
    let cluster = match previews.and_then(|p| p.cluster.as_ref()) {
        Some(c) => c.value.clone(),
        None => crate::workspace::live_cluster(loaded, &req.from)?,
    };
    let ttl = match (&req.ttl, previews.and_then(|p| p.ttl.as_ref())) {
        (Some(t), _) => rekube_spec::parse_ttl(t).map_err(|e| refuse(format!("--ttl: {e}"), "e.g. `--ttl 8h`"))?,
        (None, Some(t)) => rekube_spec::parse_ttl(&t.value).map_err(|e| refuse(e, "fix `previews.ttl`"))?,
        (None, None) => rekube_spec::DEFAULT_PREVIEW_TTL,
    };

    let mut out = loaded.clone();
    out.spec.components.retain(|n, _| selected.contains(n));
    let mut namespaces = BTreeMap::new();
    let mut hosts = BTreeMap::new();
    for (comp_name, comp) in out.spec.components.iter_mut() {
        // A preview takes over nothing: what it finds in its way is refused, never adopted.
        comp.adopt = false;
        if let Some(ns) = &mut comp.namespace {
            let new = format!("{}-{}", req.name, ns.value);
            if new.len() > 63 {
                return Err(refuse(
                    format!(
                        "namespace `{new}` of component `{comp_name}` is {} characters; Kubernetes allows 63",
                        new.len()
                    ),
                    shorter(63, ns.value.len(), &format!("namespace `{}`", ns.value)),
                ));
            }
            namespaces.insert(ns.value.clone(), new.clone());
            ns.value = new;
        }
        let release = format!("{}-{comp_name}", req.name);
        if comp.chart.is_some() && release.len() > RELEASE_MAX {
            return Err(refuse(
                format!("Helm release `{release}` is {} characters; Helm allows {RELEASE_MAX}", release.len()),
                shorter(RELEASE_MAX, comp_name.len(), &format!("component name `{comp_name}`")),
            ));
        }
        if let Some(p) = &comp.preview {
            let host = rekube_spec::preview_host(&p.value.host.value, &req.name)
                .map_err(|e| refuse(format!("component `{comp_name}`: {e}"), "shorten the preview name"))?;
            hosts.insert(comp_name.clone(), host);
        }
    }

    let mut env = Environment {
        cluster: Some(Spanned::new(cluster.clone(), Location::UNKNOWN, Location::UNKNOWN)),
        blue_green: None,
        components: source.components.into_iter().filter(|(c, _)| selected.contains(c)).collect(),
        values: source.values.into_iter().filter(|(k, _)| selected.contains(component_of(k))).collect(),
    };
    // --values, then --set, over everything the source environment says (its inline values included).
    if let Some(file) = &req.values_file {
        for (comp, values) in values_file(&out, file)? {
            let mut leaves = Vec::new();
            flatten(&comp, values, &mut leaves);
            for (key, value) in leaves {
                if key == comp {
                    // Keys with dots right under the component: a layer of its own.
                    let layers = &mut env.components.entry(comp.clone()).or_default().values;
                    layers.push(Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN));
                } else {
                    override_value(&mut env, key, value);
                }
            }
        }
    }
    for set in &req.sets {
        let (key, value) = parse_set(&out, set)?;
        override_value(&mut env, key, value);
    }
    let id = env_id(&req.name);
    out.spec.environments = BTreeMap::from([(id.clone(), env)]);
    let waves = rekube_spec::graph::waves(&out.spec);
    Ok(Derived { loaded: out, env: id, namespaces, hosts, waves, cluster, ttl })
}

/// Sets `key` in the environment's inline values, after (and over) every
/// source key below it: keys merge in sorted order, so `web.image.tag` of
/// the source would otherwise land on top of a `--set web.image=...`.
fn override_value(env: &mut Environment, key: String, value: Value) {
    let below = format!("{key}.");
    env.values.retain(|k, _| !k.starts_with(&below));
    env.values.insert(key, Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN));
}

/// `prefix.path = value` for every non-mapping value under `v`, as an
/// environment's `values:` keys (maps merge, lists and scalars replace). A
/// mapping with a key that holds a dot (`prometheus.io/scrape`) stays whole:
/// a key path cannot name it.
fn flatten(prefix: &str, v: Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() && !m.keys().any(|k| k.contains('.')) => {
            for (k, child) in m {
                flatten(&format!("{prefix}.{k}"), child, out);
            }
        }
        other => out.push((prefix.to_string(), other)),
    }
}

fn component_of(key: &str) -> &str {
    key.split_once('.').map_or(key, |(c, _)| c)
}

/// `component.path=value`: the key as an environment's `values:` takes it,
/// and the value as YAML reads it.
fn parse_set(loaded: &Loaded, set: &str) -> Result<(String, Value), EngineError> {
    let example = "write `--set web.image.tag=abc123`";
    let Some((key, text)) = set.split_once('=') else {
        return Err(refuse(format!("--set `{set}` has no `=`"), example));
    };
    let (comp, path) = key.split_once('.').unwrap_or((key, ""));
    chart_component(loaded, comp, &format!("--set `{set}`"))?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(refuse(format!("--set `{set}` has no value path"), example));
    }
    let value: Value = if text.is_empty() {
        Value::String(String::new())
    } else {
        serde_saphyr::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    };
    Ok((key.to_string(), value))
}

/// Fails unless `comp` is one of the preview's chart components.
fn chart_component(loaded: &Loaded, comp: &str, what: &str) -> Result<(), EngineError> {
    match loaded.spec.components.get(comp) {
        Some(c) if c.chart.is_some() => Ok(()),
        Some(_) => Err(refuse(format!("{what}: component `{comp}` is not a chart"), "values only apply to charts")),
        None => {
            let names: Vec<&str> = loaded.spec.components.keys().map(String::as_str).collect();
            let hint = match rekube_spec::diag::did_you_mean(comp, names.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("the preview's components: {}", names.join(", ")),
            };
            Err(refuse(format!("{what}: component `{comp}` is not in the preview"), hint))
        }
    }
}

/// `--values FILE`: `component: {values}` for the preview's chart components.
fn values_file(loaded: &Loaded, file: &Path) -> Result<Vec<(String, Value)>, EngineError> {
    let text = std::fs::read_to_string(file).map_err(crate::error::io("read", file))?;
    let map: BTreeMap<String, Spanned<Value>> = serde_saphyr::from_str(&text).map_err(|e| {
        let d = rekube_spec::yaml_diagnostic(file, &text, &e);
        EngineError::Invalid(
            d.hint("the file maps component names to their values: `web: {image: {tag: abc}}`").to_string(),
        )
    })?;
    let mut out = Vec::new();
    for (comp, v) in map {
        let at = format!("{}:{}", file.display(), v.referenced.line());
        chart_component(loaded, &comp, &at)?;
        if !v.value.is_object() {
            return Err(refuse(
                format!("{at}: the values of component `{comp}` must be a mapping"),
                "write `web: {image: {tag: abc}}`",
            ));
        }
        out.push((comp, v.value));
    }
    Ok(out)
}

/// Moves the rendered objects into the preview: every `namespace` field
/// naming a source namespace (and a Namespace of that name) now names the
/// preview's, and the Ingresses of components with a preview host get it.
pub fn reshape(rendered: &mut Rendered, namespaces: &BTreeMap<String, String>, hosts: &BTreeMap<String, String>) {
    for comp in &mut rendered.components {
        let host = hosts.get(&comp.name);
        let objects = comp.objects.iter_mut().map(|o| &mut o.value);
        for v in objects.chain(comp.hooks.iter_mut().map(|h| &mut h.object.value)) {
            move_namespaces(v, namespaces);
            if rekube_plan::normalize::is_namespace(v)
                && let Some(new) = v.pointer("/metadata/name").and_then(Value::as_str).and_then(|n| namespaces.get(n))
            {
                v["metadata"]["name"] = Value::String(new.clone());
            }
            if let Some(host) = host {
                set_ingress_host(v, host);
            }
        }
    }
    // A component that renders its own Namespace now renders the preview's: the set made for it goes.
    let own: BTreeSet<String> = rendered
        .spec_components()
        .flat_map(|c| &c.objects)
        .filter(|o| rekube_plan::normalize::is_namespace(&o.value))
        .map(|o| o.name().to_string())
        .collect();
    if let Some(set) = rendered.components.iter_mut().find(|c| c.name == rekube_render::NAMESPACES) {
        set.objects.retain(|o| !own.contains(o.name()));
    }
}

fn move_namespaces(v: &mut Value, namespaces: &BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                match child {
                    Value::String(s) if k == "namespace" => {
                        if let Some(new) = namespaces.get(s.as_str()) {
                            *s = new.clone();
                        }
                    }
                    _ => move_namespaces(child, namespaces),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| move_namespaces(i, namespaces)),
        _ => {}
    }
}

fn set_ingress_host(v: &mut Value, host: &str) {
    let api = v["apiVersion"].as_str().unwrap_or_default();
    if v["kind"] != "Ingress" || !(api.starts_with("networking.k8s.io/") || api.starts_with("extensions/")) {
        return;
    }
    if let Some(rules) = v.pointer_mut("/spec/rules").and_then(Value::as_array_mut) {
        for r in rules.iter_mut().filter_map(Value::as_object_mut) {
            r.insert("host".into(), Value::String(host.to_string()));
        }
    }
    if let Some(tls) = v.pointer_mut("/spec/tls").and_then(Value::as_array_mut) {
        for t in tls.iter_mut().filter_map(Value::as_object_mut) {
            t.insert("hosts".into(), Value::Array(vec![Value::String(host.to_string())]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_fields_and_ingress_hosts_move_into_the_preview() {
        let ns = BTreeMap::from([("web".to_string(), "pr-1-web".to_string())]);
        let mut rb = json!({"kind": "RoleBinding", "metadata": {"namespace": "web"},
            "subjects": [{"kind": "ServiceAccount", "name": "a", "namespace": "web"},
                         {"kind": "ServiceAccount", "name": "b", "namespace": "kube-system"}]});
        move_namespaces(&mut rb, &ns);
        assert_eq!(rb["metadata"]["namespace"], "pr-1-web");
        assert_eq!(rb["subjects"][0]["namespace"], "pr-1-web");
        assert_eq!(rb["subjects"][1]["namespace"], "kube-system", "other namespaces are left alone");

        let mut ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "spec": {"rules": [{"host": "web.example.com", "http": {}}, {"http": {}}],
                     "tls": [{"hosts": ["web.example.com"], "secretName": "t"}]}});
        set_ingress_host(&mut ing, "pr-1.preview.example.com");
        assert_eq!(ing["spec"]["rules"][0]["host"], "pr-1.preview.example.com");
        assert_eq!(ing["spec"]["rules"][1]["host"], "pr-1.preview.example.com");
        assert_eq!(ing["spec"]["tls"][0]["hosts"], json!(["pr-1.preview.example.com"]));
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {"rules": [{}]}});
        set_ingress_host(&mut svc, "x");
        assert_eq!(svc["spec"]["rules"][0], json!({}), "only Ingresses");
    }

    #[test]
    fn a_values_file_becomes_keys_that_override_the_source_environment() {
        let mut out = Vec::new();
        flatten(
            "web",
            json!({"image": {"tag": "abc"}, "args": ["a"], "replicas": 1,
                   "podAnnotations": {"prometheus.io/scrape": "true"}}),
            &mut out,
        );
        assert_eq!(
            out,
            [
                ("web.image.tag".to_string(), json!("abc")),
                ("web.args".to_string(), json!(["a"])),
                ("web.replicas".to_string(), json!(1)),
                ("web.podAnnotations".to_string(), json!({"prometheus.io/scrape": "true"})),
            ]
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("pr-12").is_ok());
        for bad in ["PR-12", "pr_12", "-x", "", "a.b", &"a".repeat(56)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(55)).is_ok());
        assert_eq!(shorter(63, 3, "x"), "use a preview name of at most 55 characters");
        assert_eq!(
            shorter(63, 62, "namespace `n`"),
            "namespace `n` is too long to be previewed: shorten it in the spec"
        );
        assert_eq!(shorter(53, 60, "c"), "c is too long to be previewed: shorten it in the spec");
        assert_eq!(env_id("pr-12"), "preview.pr-12");
    }
}
