//! Everything plan, apply, drift and status share: the rendered environment
//! and a way to its cluster. Rendering comes first, so a bad input stops
//! everything before the cluster is asked anything but its version.

use std::collections::BTreeSet;

use rekube_cluster::provider::{Cluster, Kind, State};
use rekube_kube::{Desired, IgnoreRule, Resolver};
use rekube_plan::Plan;
use rekube_render::Rendered;
use rekube_spec::Loaded;

use crate::EngineError;
use crate::workspace::{RenderFlags, environment, provider_cluster, render, render_options, selection, spec_source};

/// A client for the environment's cluster, which must exist; and its name.
pub async fn cluster_client(loaded: &Loaded, env: &str) -> Result<(kube::Client, String), EngineError> {
    let (cluster, _) = provider_cluster(loaded, env)?;
    let name = cluster.name.clone();
    Ok((running_client(&cluster, env).await?, name))
}

/// A client for `cluster`, which must exist and run (`env` names the
/// environment whose `up` makes it, for the hint).
pub async fn running_client(cluster: &Cluster, env: &str) -> Result<kube::Client, EngineError> {
    let name = cluster.name.clone();
    match cluster.state().await? {
        State::Absent => {
            return Err(EngineError::ClusterAbsent { cluster: name, environment: env.to_string() });
        }
        State::Present { problem: Some(problem), .. } if matches!(cluster.kind, Kind::Local { .. }) => {
            return Err(EngineError::ClusterStopped { cluster: name, environment: env.to_string(), problem });
        }
        State::Present { .. } => {}
    }
    connect(cluster).await
}

/// A client for `cluster`, or an error naming it.
pub async fn connect(cluster: &Cluster) -> Result<kube::Client, EngineError> {
    cluster
        .client()
        .await
        .map_err(|e| EngineError::Unreachable { cluster: cluster.name.clone(), reason: e.to_string() })
}

/// Which components to work on (`-c`), and whether with what they need.
#[derive(Debug, Clone, Default)]
pub struct Select {
    /// Only these components (empty: all).
    pub components: Vec<String>,
    /// Also what they need.
    pub with_needs: bool,
}

/// One environment, rendered, with a client for its cluster.
pub struct Context {
    /// The spec.
    pub loaded: Loaded,
    project: (String, bool),
    /// Where the spec is (`host:/path/rekube.yaml`).
    pub source: String,
    /// The environment.
    pub env: String,
    cluster: String,
    /// What it renders to.
    pub rendered: Rendered,
    /// The cluster's types, with a client.
    pub resolver: Resolver,
    partial: bool,
}

impl Context {
    /// Renders `env` (for the cluster's own version and APIs) and connects.
    pub async fn new(loaded: Loaded, env: &str, select: &Select, flags: &RenderFlags) -> Result<Self, EngineError> {
        environment(&loaded, env)?;
        let only = selection(&loaded, &select.components, select.with_needs)?;
        let partial = only.is_some();
        let mut opts = render_options(&loaded, env, flags, only);
        let (client, cluster) = cluster_client(&loaded, env).await?;
        if let Ok(v) = client.apiserver_version().await {
            let plain = v.git_version.trim_start_matches('v').split(['-', '+']).next().unwrap_or_default();
            opts.kube_version = Some(plain.to_string());
        }
        opts.api_versions = rekube_kube::api_versions(&client).await;
        let mut rendered = render(&loaded, env, &opts).await?;
        let resolver = Resolver::new(client);
        place_custom_resources(&mut rendered, &resolver).await;
        let (project, source) = (loaded.project(), spec_source(&loaded));
        Ok(Self { loaded, project, source, env: env.to_string(), cluster, rendered, resolver, partial })
    }

    /// What the environment wants, for the kube crate.
    pub fn desired(&self) -> Desired<'_> {
        let spec = &self.loaded.spec;
        Desired {
            project: &self.project.0,
            explicit_project: self.project.1,
            source: &self.source,
            environment: &self.env,
            cluster: &self.cluster,
            rendered: &self.rendered,
            waves: rekube_spec::graph::waves(spec),
            needs: spec
                .components
                .iter()
                .map(|(n, c)| (n.clone(), c.needs.iter().map(|x| x.value.clone()).collect()))
                .collect(),
            spec_components: spec.components.keys().cloned().collect(),
            partial: self.partial,
            ignore: spec
                .components
                .iter()
                .map(|(n, c)| {
                    let rules = c
                        .ignore_differences
                        .iter()
                        .map(|r| IgnoreRule {
                            kind: r.value.kind.clone(),
                            name: r.value.name.clone(),
                            paths: r.value.paths.clone(),
                        })
                        .collect();
                    (n.clone(), rules)
                })
                .collect(),
            adopt: spec.components.iter().filter(|(_, c)| c.adopt).map(|(n, _)| n.clone()).collect::<BTreeSet<_>>(),
        }
    }

    /// The plan.
    pub async fn plan(&self) -> Result<Plan, EngineError> {
        Ok(rekube_kube::build_plan(&self.resolver, &self.desired()).await?)
    }

    /// The drift report.
    pub async fn drift(&self) -> Result<Vec<rekube_kube::ObjectDrift>, EngineError> {
        Ok(rekube_kube::drift(&self.resolver, &self.desired()).await?)
    }
}

/// Custom resources whose CRD is on the cluster but in no component: only
/// the cluster knows whether they are namespaced. Those that are go into
/// their component's namespace, as `helm install` would put them.
async fn place_custom_resources(rendered: &mut Rendered, resolver: &Resolver) {
    for comp in rendered.components.iter_mut() {
        let Some(ns) = comp.namespace.clone() else { continue };
        for obj in comp
            .objects
            .iter_mut()
            .filter(|o| o.namespace().is_none() && !rekube_render::BUILTIN_GROUPS.contains(&o.group()))
        {
            if let Ok(Some(r)) = resolver.resolve(obj.api_version(), obj.kind()).await
                && r.namespaced
            {
                obj.set_namespace(&ns);
            }
        }
    }
}
