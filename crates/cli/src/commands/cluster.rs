//! `rekube up`, `down` and `status`: the environment's cluster.
//!
//! Only the `local` provider creates clusters so far; `existing` is reached
//! through its kubeconfig context; the others are refused with a clear error
//! until they land.

use anyhow::Context;
use rekube_cluster::local::{LocalCluster, LocalStatus, UpOutcome};
use rekube_spec::{Loaded, Provider};
use serde_json::json;

use crate::Failure;
use crate::args::{Global, Output};
use crate::commands::{environment, load_valid, state_root};
use crate::printer;

fn local_cluster(loaded: &Loaded, env: &str) -> Result<(String, Provider, u32), Failure> {
    let e = environment(loaded, env)?;
    let name = e.cluster.value.clone();
    let cluster = &loaded.spec.clusters[&name];
    let nodes = cluster.nodes.as_ref().map_or(1, |n| n.value);
    Ok((name, cluster.provider.value, nodes))
}

fn unsupported(provider: Provider, what: &str) -> Failure {
    Failure::Error(
        anyhow::anyhow!("`rekube {what}` does not support provider `{}` yet", provider.as_str()),
        Some("use provider `local` for now; kind, k3d and exec providers are planned (docs/providers.md)".into()),
    )
}

pub async fn up(g: &Global, env: &str) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let (name, provider, nodes) = local_cluster(&loaded, env)?;
    if provider != Provider::Local {
        return Err(unsupported(provider, "up"));
    }
    let cluster = LocalCluster::new(&state_root(&loaded), &name);
    if g.output == Output::Text {
        printer::message(format!("rekube: bringing up cluster `{name}` (local) for environment `{env}`..."));
    }
    let exe = std::env::current_exe().context("cannot find the rekube executable for the fake kubelet")?;
    let args = ["internal".to_string(), "fake-kubelet".to_string()];
    let (outcome, cp) = cluster.up(nodes, &exe, &args).await.map_err(|e| {
        let hint = matches!(e, rekube_cluster::local::LocalError::BinariesMissing { .. })
            .then(|| "scripts/testbed-setup.sh builds them (about 10 minutes, once)".to_string());
        Failure::Error(e.into(), hint)
    })?;
    let kubeconfig = cluster.kubeconfig();
    let version = cp.state().version.clone().unwrap_or_else(|| "unknown".into());
    match g.output {
        // JSON goes out once the components are applied too (below).
        Output::Json => printer::json(&json!({
            "environment": env, "cluster": name, "provider": "local",
            "outcome": match outcome { UpOutcome::Started => "started", UpOutcome::AlreadyRunning => "already-running" },
            "endpoint": cp.endpoint(), "version": version, "nodes": nodes,
            "kubeconfig": kubeconfig, "ready_seconds": cp.startup().as_secs_f64(),
        })),
        Output::Text | Output::Yaml => {
            let how = match outcome {
                UpOutcome::Started => format!("ready in {:.1}s", cp.startup().as_secs_f64()),
                UpOutcome::AlreadyRunning => "already running".to_string(),
            };
            printer::message(format!("cluster `{name}` {how}: {} (Kubernetes {version}, {nodes} node(s))", cp.endpoint()));
            printer::message(format!("  kubeconfig: {}", kubeconfig.display()));
            printer::message(format!("  try:        kubectl --kubeconfig {} get nodes", kubeconfig.display()));
        }
    }
    // Then everything the environment declares, health-gated.
    let quiet = Global { file: g.file.clone(), output: Output::Text };
    let code = crate::commands::converge::apply(&quiet, env, rekube_kube::ApplyOptions::default(), &Default::default(), &Default::default()).await?;
    Ok(code)
}

pub fn down(g: &Global, env: &str) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    let (name, provider, _) = local_cluster(&loaded, env)?;
    if provider != Provider::Local {
        return Err(unsupported(provider, "down"));
    }
    let removed = LocalCluster::new(&state_root(&loaded), &name).down()?;
    match g.output {
        Output::Json => printer::json(&json!({"environment": env, "cluster": name, "removed": removed})),
        Output::Text | Output::Yaml if removed => printer::message(format!("cluster `{name}` stopped and deleted")),
        Output::Text | Output::Yaml => printer::message(format!("cluster `{name}` does not exist; nothing to do")),
    }
    Ok(0)
}

pub async fn status(g: &Global, only: Option<&str>) -> Result<u8, Failure> {
    let loaded = load_valid(g)?;
    if let Some(env) = only {
        environment(&loaded, env)?;
    }
    let mut rows = Vec::new();
    for (env, e) in &loaded.spec.environments {
        if only.is_some_and(|o| o != env) {
            continue;
        }
        let cluster = &loaded.spec.clusters[&e.cluster.value];
        let provider = cluster.provider.value;
        let (state, endpoint, version) = if provider == Provider::Local {
            match LocalCluster::new(&state_root(&loaded), &e.cluster.value).status() {
                LocalStatus::Absent => ("absent".to_string(), None, None),
                LocalStatus::Stopped => ("stopped".to_string(), None, None),
                LocalStatus::Running { endpoint, version, dead } if dead.is_empty() => ("running".to_string(), Some(endpoint), version),
                LocalStatus::Running { endpoint, version, dead } => (format!("degraded ({} not running)", dead.join(", ")), Some(endpoint), version),
            }
        } else {
            ("unknown".to_string(), None, None)
        };
        rows.push(json!({"environment": env, "cluster": e.cluster.value, "provider": provider.as_str(),
                         "state": state, "endpoint": endpoint, "version": version}));
    }
    match g.output {
        Output::Json => printer::json(&json!(rows)),
        Output::Text | Output::Yaml => {
            printer::data(format!("{:<14} {:<12} {:<9} {:<10} {:<9} {}", "ENVIRONMENT", "CLUSTER", "PROVIDER", "STATE", "VERSION", "ENDPOINT"));
            for r in &rows {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                printer::data(format!("{:<14} {:<12} {:<9} {:<10} {:<9} {}", s("environment"), s("cluster"), s("provider"), s("state"), s("version"), s("endpoint")));
            }
        }
    }
    Ok(0)
}
