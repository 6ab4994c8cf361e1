//! `status`: per environment, its cluster's state and version, when it was
//! last applied, and each component's health, pending changes and drift.

use rekube_cluster::provider::{Cluster, State};
use rekube_kube::Health;
use rekube_plan::Op;
use rekube_spec::Loaded;
use serde::Serialize;

use crate::EngineError;
use crate::context::{Context, Select};
use crate::workspace::{RenderFlags, environment, provider_cluster, state_root};

/// One component's state.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    /// The component (`*` when its cluster could not be read).
    pub component: String,
    /// `healthy`, `progressing: ...`, `failed: ...`, `not applied` or `unknown: ...`.
    pub health: String,
    /// Objects that are ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<usize>,
    /// Objects apply would change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_changes: Option<usize>,
    /// Objects changed by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drifted: Option<usize>,
}

/// One environment's state.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStatus {
    /// The environment.
    pub environment: String,
    /// Its cluster.
    pub cluster: String,
    /// The provider.
    pub provider: &'static str,
    /// `running`, `absent`, `unreachable`, `unknown: ...`, or the provider's problem.
    pub state: String,
    /// The cluster's Kubernetes version.
    pub version: Option<String>,
    /// Its API endpoint.
    pub endpoint: Option<String>,
    /// Why it is unreachable.
    pub problem: Option<String>,
    /// When apply last succeeded from this spec directory.
    pub last_applied: Option<String>,
    /// Its components, when the cluster is running.
    pub components: Option<Vec<ComponentStatus>>,
    /// Both colors, the traffic split and the upgrade, for a blue/green environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<crate::ops::upgrade::status::BlueGreenStatus>,
}

/// Each component's health, pending changes and drift.
pub async fn components(loaded: &Loaded, env: &str) -> Result<Vec<ComponentStatus>, EngineError> {
    let ctx = Context::new(loaded.clone(), env, &Select::default(), &RenderFlags::default()).await?;
    let plan = ctx.plan().await?;
    let drift = ctx.drift().await?;
    let healths = rekube_kube::health_of(&ctx.resolver, &ctx.desired()).await?;
    let mut out = Vec::new();
    let mut comps: Vec<_> = plan.components.iter().filter(|c| c.identity.component.is_some()).collect();
    comps.sort_by_key(|c| (c.wave, c.name.clone()));
    for c in comps {
        let pending = c.actions.iter().filter(|a| a.op != Op::Unchanged).count();
        let drifted = drift.iter().filter(|d| d.component == c.name && d.state.is_drift()).count();
        let (mut ready, mut waiting, mut failed) = (0, Vec::new(), Vec::new());
        for h in healths.iter().filter(|h| h.component == c.name) {
            match &h.health {
                Health::Ready => ready += 1,
                Health::Pending(why) => waiting.push(why.clone()),
                Health::Failed(why) => failed.push(why.clone()),
            }
        }
        let health = match (failed.first(), waiting.first()) {
            (Some(f), _) => format!("failed: {f}"),
            (None, Some(w)) => format!("progressing: {w}"),
            (None, None) if c.actions.iter().all(|a| a.op == Op::Create) => "not applied".to_string(),
            (None, None) => "healthy".to_string(),
        };
        out.push(ComponentStatus {
            component: c.name.clone(),
            health,
            ready: Some(ready),
            pending_changes: Some(pending),
            drifted: Some(drifted),
        });
    }
    Ok(out)
}

/// What a cluster's provider and its API server say of it.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// `running`, `absent`, `unreachable`, `unknown: ...`, or the provider's problem.
    pub state: String,
    /// Its Kubernetes version.
    pub version: Option<String>,
    /// Its API endpoint.
    pub endpoint: Option<String>,
    /// Why it is unreachable.
    pub problem: Option<String>,
}

/// Asks the provider, then (when it runs) the API server for its version.
pub(crate) async fn observe(cluster: &Cluster) -> Observed {
    let (mut state, mut version, endpoint) = match cluster.state().await {
        Ok(State::Absent) => ("absent".to_string(), None, None),
        Ok(State::Present { version, endpoint, problem: Some(p) }) => (p, version, endpoint),
        Ok(State::Present { version, endpoint, problem: None }) => ("running".to_string(), version, endpoint),
        Err(e) => (format!("unknown: {e}"), None, None),
    };
    let mut problem = None;
    if state == "running" {
        let reached = match cluster.client().await {
            Ok(c) => c.apiserver_version().await.map(|v| v.git_version).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match reached {
            Ok(v) => version = version.or(Some(v)),
            Err(e) => {
                state = "unreachable".into();
                problem = Some(e);
            }
        }
    }
    Observed { state, version, endpoint, problem }
}

/// Every environment's state (or only `only`'s).
pub async fn status(loaded: &Loaded, only: Option<&str>) -> Result<Vec<EnvironmentStatus>, EngineError> {
    if let Some(env) = only {
        environment(loaded, env)?;
    }
    let root = state_root(loaded);
    let mut rows = Vec::new();
    for env in loaded.spec.environments.keys() {
        if only.is_some_and(|o| o != env) {
            continue;
        }
        let (cluster, _) = provider_cluster(loaded, env)?;
        let seen = observe(&cluster).await;
        let components = if seen.state == "running" {
            Some(components(loaded, env).await.unwrap_or_else(|e| {
                vec![ComponentStatus {
                    component: "*".into(),
                    health: format!("unknown: {e}"),
                    ready: None,
                    pending_changes: None,
                    drifted: None,
                }]
            }))
        } else {
            None
        };
        let blue_green = crate::ops::upgrade::status::status(loaded, env, (&cluster.name, &seen)).await?;
        rows.push(EnvironmentStatus {
            environment: env.clone(),
            cluster: cluster.name.clone(),
            provider: cluster.kind.name(),
            state: seen.state,
            version: seen.version,
            endpoint: seen.endpoint,
            problem: seen.problem,
            last_applied: crate::journal::last_applied(&root, env),
            components,
            blue_green,
        });
    }
    Ok(rows)
}
