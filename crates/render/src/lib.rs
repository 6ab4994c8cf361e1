//! Rendering: every component of an environment becomes an ordered list of
//! plain Kubernetes objects, the very objects apply will send. This is the
//! only crate that knows about Helm and kustomize; nothing after it does.
//!
//! Components render concurrently (helm and kustomize are subprocesses).
//! Charts are cached by digest and rendered output by the digest of all its
//! inputs, so a warm render needs no network and runs no helm at all.

mod helm;
pub mod hooks;
pub mod lock;
mod objects;
mod source;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use rekube_spec::{Diagnostic, Diagnostics, Loaded, LockFile};
use serde_json::json;

pub use helm::{ChartCache, Helm, RenderCache, dir_digest, sha256};

/// The kubectl rekube runs: `REKUBE_KUBECTL`, then `<cache>/tools/kubectl`, then `PATH`'s.
pub fn kubectl_path(cache: &std::path::Path) -> std::path::PathBuf {
    helm::find_tool(cache, None, "REKUBE_KUBECTL", "kubectl")
}
pub use objects::{BUILTIN_GROUPS, Object, ObjectKey, Origin, Scope, StreamSource, is_crd, parse_stream, scope};

/// Errors of rendering that are not about one position in the user's files.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Problems in the user's files (spec, values, manifests, rendered output).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// helm failed.
    #[error("{what} failed:\n{stderr}")]
    Helm {
        /// The command.
        what: String,
        /// Its error output.
        stderr: String,
    },
    /// A tool could not be run.
    #[error("cannot run {tool}: {detail}")]
    ToolMissing {
        /// helm or kubectl.
        tool: String,
        /// Why.
        detail: String,
    },
    /// A downloaded chart is not the one the lock file pins.
    #[error("chart {chart} has digest {got}, but rekube.lock pins {locked}: the published chart was replaced")]
    DigestMismatch {
        /// Which chart.
        chart: String,
        /// The digest in the lock.
        locked: String,
        /// The digest downloaded.
        got: String,
    },
    /// helm or kubectl ran past its deadline and was stopped.
    #[error("`{what}` did not finish within {} and was stopped", humantime::format_duration(*timeout))]
    TimedOut {
        /// The command.
        what: String,
        /// Its deadline.
        timeout: std::time::Duration,
    },
    /// helm or kustomize printed more than [`OUTPUT_LIMIT`] (a template that
    /// loops): stopped before it filled the memory.
    #[error("`{what}` rendered more than {} MiB and was stopped", OUTPUT_LIMIT >> 20)]
    TooLarge {
        /// The command.
        what: String,
    },
    /// A file could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// An error while rendering one component.
    #[error("component `{component}`: {cause}")]
    Component {
        /// The component.
        component: String,
        /// What went wrong.
        cause: Box<RenderError>,
    },
}

/// How to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// rekube's cache directory (charts, rendered output, tools).
    pub cache_dir: PathBuf,
    /// `--kube-version` for helm, when the target cluster's version is known.
    pub kube_version: Option<String>,
    /// `--api-versions` for helm, from the cluster's discovery.
    pub api_versions: Vec<String>,
    /// How many components render at once.
    pub concurrency: usize,
    /// Use and fill the render cache.
    pub use_cache: bool,
    /// Only these components (`None`: all).
    pub only: Option<BTreeSet<String>>,
    /// The helm binary (`None`: `REKUBE_HELM`, the cache's, or `PATH`'s).
    pub helm: Option<PathBuf>,
    /// The kubectl binary for kustomize (`None`: `REKUBE_KUBECTL`, the cache's, or `PATH`'s).
    pub kubectl: Option<PathBuf>,
    /// Helm releases are named `<prefix>-<component>` instead of the
    /// component's name (a preview's own releases).
    pub release_prefix: Option<String>,
    /// How long one helm or kustomize run may take before it is stopped.
    pub tool_timeout: std::time::Duration,
}

/// How long one helm or kustomize run may take by default.
pub const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// `fut` (a program's run), or [`RenderError::TimedOut`] after `timeout`; the
/// program is killed when its future is dropped (`kill_on_drop`).
pub(crate) async fn within<T>(
    timeout: std::time::Duration,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, RenderError> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| RenderError::TimedOut { what: what.to_string(), timeout })
}

/// The most a helm or kustomize run may print: the largest public charts
/// render a few MiB (CRDs included); 64 MiB is a template gone wrong.
pub const OUTPUT_LIMIT: u64 = 64 << 20;

/// What a program printed, read while it runs: stdout up to
/// [`OUTPUT_LIMIT`] (past it the program is killed and `Err(TooLarge)`),
/// stderr up to 1 MiB.
pub(crate) async fn bounded_output(
    mut cmd: tokio::process::Command,
    what: &str,
) -> Result<std::io::Result<std::process::Output>, RenderError> {
    use tokio::io::AsyncReadExt;
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Ok(Err(std::io::Error::other("no pipes")));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let (mut out, mut err) = (out.take(OUTPUT_LIMIT + 1), err.take(1 << 20));
    let (a, b) = tokio::join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr));
    if stdout.len() as u64 > OUTPUT_LIMIT {
        let _ = child.kill().await;
        return Err(RenderError::TooLarge { what: what.to_string() });
    }
    if let Err(e) = a.and(b) {
        return Ok(Err(e));
    }
    Ok(child.wait().await.map(|status| std::process::Output { status, stdout, stderr }))
}

/// The name of the environment's namespace set in `Rendered::components`:
/// the Namespaces that components' `namespace:` keys ask for. It is not a
/// valid component name, so it never clashes with one.
pub const NAMESPACES: &str = "(namespaces)";

/// One component's objects.
#[derive(Debug, Clone)]
pub struct ComponentOutput {
    /// The component.
    pub name: String,
    /// Its namespace, if it declares one.
    pub namespace: Option<String>,
    /// Its objects in output order (a generated Namespace first).
    pub objects: Vec<Object>,
    /// Its Helm hooks, in the order they run; never among `objects`.
    pub hooks: Vec<hooks::Hook>,
    /// Whether the output came from the render cache.
    pub cached: bool,
}

/// A rendered environment.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Components in dependency order.
    pub components: Vec<ComponentOutput>,
    /// Warnings (e.g. custom resources whose CRD is in no component).
    pub warnings: Vec<Diagnostic>,
}

impl Rendered {
    /// The real components, without the namespace set.
    pub fn spec_components(&self) -> impl Iterator<Item = &ComponentOutput> {
        self.components.iter().filter(|c| c.name != NAMESPACES)
    }

    /// Every object with its component, in order.
    pub fn objects(&self) -> impl Iterator<Item = (&str, &Object)> {
        self.components.iter().flat_map(|c| c.objects.iter().map(move |o| (c.name.as_str(), o)))
    }
}

/// The path as the user would write it: under the spec's directory, without `./`.
pub(crate) fn shown(loaded: &Loaded, rel: &Path) -> PathBuf {
    loaded.dir.join(rel).components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// Renders environment `env`. `Err(Invalid)` lists every problem found.
pub async fn render(
    loaded: &Loaded,
    env: &str,
    lock: Option<&LockFile>,
    opts: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let order: Vec<String> = rekube_spec::graph::waves(&loaded.spec)
        .into_iter()
        .flatten()
        .filter(|c| opts.only.as_ref().is_none_or(|o| o.contains(c)))
        .collect();
    let needs_helm = order.iter().any(|c| loaded.spec.components[c].chart.is_some());
    let helm = if needs_helm {
        Some(Helm::discover(&opts.cache_dir, opts.helm.as_deref()).await?.with_timeout(opts.tool_timeout))
    } else {
        None
    };
    let ctx = source::Ctx { loaded, env, lock, opts, helm: helm.as_ref() };

    let mut raw: BTreeMap<String, source::Raw> = BTreeMap::new();
    let mut stream = futures::stream::iter(order.iter().cloned())
        .map(|name| {
            let ctx = &ctx;
            async move {
                let r = source::produce(ctx, &name).await;
                (name, r)
            }
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut diags = Vec::new();
    let mut errors = Vec::new();
    while let Some((name, r)) = stream.next().await {
        match r {
            Ok(out) => {
                raw.insert(name, out);
            }
            Err(RenderError::Invalid(d)) => diags.extend(d.0),
            Err(e) => errors.push(RenderError::Component { component: name, cause: Box::new(e) }),
        }
    }
    drop(stream);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }

    let mut components = Vec::new();
    for name in &order {
        let Some(r) = raw.remove(name) else { continue };
        let mut objects = Vec::new();
        for (text, src) in &r.streams {
            let source = match src {
                source::Src::File(p) => StreamSource::File(p),
                source::Src::Helm => StreamSource::Helm { component: name },
                source::Src::Kustomize(p) => StreamSource::Kustomize(p),
            };
            objects.extend(parse_stream(text, &source, &mut diags));
        }
        let namespace = loaded.spec.components[name].namespace.as_ref().map(|n| n.value.clone());
        components.push(ComponentOutput {
            name: name.clone(),
            namespace,
            objects,
            hooks: Vec::new(),
            cached: r.cached,
        });
    }
    let warnings = finish(&mut components, &mut diags);
    for c in &mut components {
        c.hooks = hooks::split(&mut c.objects);
    }
    if !diags.is_empty() {
        diags.extend(warnings);
        return Err(RenderError::Invalid(Diagnostics(diags)));
    }
    Ok(Rendered { components, warnings })
}

/// Cross-component work: namespace defaulting, generated Namespaces,
/// duplicates, and CRD presence. Returns warnings; errors go to `diags`.
fn finish(components: &mut Vec<ComponentOutput>, diags: &mut Vec<Diagnostic>) -> Vec<Diagnostic> {
    let crds: Vec<Object> = components.iter().flat_map(|c| c.objects.iter().filter(|o| is_crd(o)).cloned()).collect();
    let mut warnings = Vec::new();
    let declared_ns: BTreeSet<String> = components
        .iter()
        .flat_map(|c| c.objects.iter())
        .filter(|o| o.group().is_empty() && o.kind() == "Namespace")
        .map(|o| o.name().to_string())
        .collect();
    let mut generated_ns: Vec<Object> = Vec::new();
    let mut seen: BTreeMap<ObjectKey, (String, Origin)> = BTreeMap::new();
    for comp in components.iter_mut() {
        for obj in &mut comp.objects {
            let (group, kind) = (obj.group().to_string(), obj.kind().to_string());
            match scope(&group, &kind, &crds) {
                Scope::Namespaced if obj.namespace().is_none() => match &comp.namespace {
                    Some(ns) => obj.set_namespace(ns),
                    None => diags.push(
                        Diagnostic::new(
                            &obj.origin.file,
                            None,
                            Some(rekube_spec::Pos { line: obj.origin.line, column: 1 }),
                            format!(
                                "{kind} `{}` is namespaced but has no namespace, and component `{}` declares none",
                                obj.name(),
                                comp.name
                            ),
                        )
                        .hint(format!(
                            "add `namespace:` to component `{}`, or `metadata.namespace` to the object",
                            comp.name
                        )),
                    ),
                },
                // As kubectl and Helm do: a chart may template a namespace onto a
                // PodSecurityPolicy or a ClusterRole; the server has none for it.
                Scope::Cluster if obj.namespace().is_some() => obj.clear_namespace(),
                Scope::Unknown if !BUILTIN_GROUPS.contains(&group.as_str()) => warnings.push(
                    Diagnostic::new(
                        &obj.origin.file,
                        None,
                        Some(rekube_spec::Pos { line: obj.origin.line, column: 1 }),
                        format!("{kind}.{group} `{}`: no component defines its CustomResourceDefinition", obj.name()),
                    )
                    .hint("it must already exist on the cluster; `rekube plan` checks it there")
                    .warning(),
                ),
                _ => {}
            }
            let key = obj.key();
            if let Some((other, origin)) = seen.get(&key) {
                diags.push(
                    Diagnostic::new(
                        &obj.origin.file,
                        None,
                        Some(rekube_spec::Pos { line: obj.origin.line, column: 1 }),
                        format!(
                            "{key} is rendered twice: by component `{}` and by component `{other}` ({}:{})",
                            comp.name,
                            origin.file.display(),
                            origin.line
                        ),
                    )
                    .hint("an object may belong to one component only; remove it from one of them"),
                );
            } else {
                seen.insert(key, (comp.name.clone(), obj.origin.clone()));
            }
        }
        // The component's namespace is created for it, like `helm install
        // --create-namespace`, unless some component declares it. It belongs
        // to the environment's namespace set, not to the component: two
        // components may share it, and either may be applied alone.
        if let Some(ns) = &comp.namespace
            && !declared_ns.contains(ns)
            && !generated_ns.iter().any(|o| o.name() == ns)
        {
            let value = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let origin = Origin { file: PathBuf::from(format!("(namespace of component `{}`)", comp.name)), line: 1 };
            generated_ns.push(Object { value, origin });
        }
    }
    if !generated_ns.is_empty() {
        components.insert(
            0,
            ComponentOutput {
                name: NAMESPACES.to_string(),
                namespace: None,
                objects: generated_ns,
                hooks: Vec::new(),
                cached: false,
            },
        );
    }
    warnings
}
