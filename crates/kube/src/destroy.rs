//! Destroy: every ApplySet of one project's environment, its components in
//! reverse dependency order and its namespace set last, waiting until the
//! members are really gone (finalizers, namespaces), then the parent.
//! Objects without this environment's `part-of` label are never touched,
//! and a Namespace goes only when rekube created it and it holds nothing
//! that is not rekube's.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use rekube_plan::applyset::{self, Identity};
use rekube_plan::{Action, Op};

use crate::KubeError;
use crate::delete::{delete_object, delete_parent, emptied_namespaces, wait_gone};
use crate::hooks::{remove_all, run_hooks};
use crate::live::{Parent, Resolver, action, check_project_source, parents};
use crate::report::{ApplyReport, ComponentOutcome, Event};

/// How long destroy waits, and for what.
#[derive(Debug, Clone, Copy)]
pub struct DestroyWait {
    /// How long a component's objects may take to disappear.
    pub timeout: Duration,
    /// Also wait until deleted Namespaces are gone, not only terminating
    /// (kube-controller-manager starts on a namespace 5 s after its deletion).
    pub namespaces: bool,
}

impl DestroyWait {
    /// Everything, until gone, up to `timeout`.
    pub fn gone(timeout: Duration) -> Self {
        Self { timeout, namespaces: true }
    }
}

/// Destroys `project`'s `environment`: components wave by wave in the order
/// given (reverse dependency order), the components of a wave in parallel,
/// after any ApplySet of this environment whose component left the spec,
/// and the environment's namespace set last. `source`: where the spec is,
/// when its project name is implicit; another spec's ApplySets are refused.
pub async fn destroy(
    res: &Resolver,
    project: &str,
    environment: &str,
    source: Option<&str>,
    waves: &[Vec<String>],
    wait: DestroyWait,
    on: &(dyn Fn(Event) + Sync),
) -> Result<ApplyReport, KubeError> {
    let all = parents(res.client()).await?;
    check_project_source(project, environment, source, &all)?;
    let live: Vec<&Parent> =
        all.iter().filter(|p| p.identity.as_ref().is_some_and(|i| i.is_in(project, environment))).collect();
    let known: Vec<&String> = waves.iter().flatten().collect();
    let orphans: Vec<String> = live
        .iter()
        .filter_map(|p| p.component_in(project, environment))
        .filter(|c| !known.iter().any(|k| k.as_str() == *c))
        .map(str::to_string)
        .collect();
    // Members of any of this environment's ApplySets are not foreign in its namespaces.
    let env_ids: BTreeSet<String> = live.iter().map(|p| p.id.clone()).collect();
    let mut report = ApplyReport::default();
    let namespace_set = vec![String::new()];
    for wave in std::iter::once(&orphans).chain(waves).chain(std::iter::once(&namespace_set)) {
        let comps: Vec<&Parent> = wave
            .iter()
            .filter_map(|n| {
                let want = if n.is_empty() {
                    Identity::namespaces(project, environment)
                } else {
                    Identity::component(project, environment, n)
                };
                live.iter().copied().find(|p| p.identity.as_ref() == Some(&want))
            })
            .collect();
        let outcomes = futures::stream::iter(comps)
            .map(|parent| {
                let env_ids = &env_ids;
                async move {
                    let label = display(parent);
                    let destroyed = async {
                        crate::stop::check()?;
                        destroy_component(res, parent, env_ids, wait, on).await
                    };
                    let outcome = destroyed.await.unwrap_or_else(|e| ComponentOutcome::Failed(e.to_string()));
                    on(Event::Done { component: label.clone(), outcome: outcome.clone() });
                    (label, outcome)
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let failed = outcomes.iter().any(|(_, o)| !matches!(o, ComponentOutcome::Done { .. }));
        report.components.extend(outcomes);
        if failed {
            break; // what they need stays, so it can be retried
        }
    }
    Ok(report)
}

fn display(p: &Parent) -> String {
    p.identity.as_ref().and_then(|i| i.component.clone()).unwrap_or_else(|| rekube_render::NAMESPACES.to_string())
}

async fn destroy_component(
    res: &Resolver,
    parent: &Parent,
    env_ids: &BTreeSet<String>,
    wait: DestroyWait,
    on: &(dyn Fn(Event) + Sync),
) -> Result<ComponentOutcome, KubeError> {
    let timeout = wait.timeout;
    let name = display(parent);
    let scope = parent.identity.as_ref().map(Identity::scope).unwrap_or_default();
    on(Event::Applying { component: name.clone(), done: 0, total: 0 });
    let mut members = Vec::new();
    for (_, objects) in parent.members(res).await? {
        for v in objects {
            // A Namespace goes only when rekube created it for this environment.
            if rekube_plan::normalize::is_namespace(&v) && applyset::created_by(&v) != Some(scope.as_str()) {
                continue;
            }
            members.push(action(Op::Delete, &v, None));
        }
    }
    // Hooks left by their policy (a completed Job kept until it runs again) go too.
    members.extend(parent.hook_leftovers(res).await?.iter().map(|v| action(Op::Delete, v, None)));
    // Helm's pre-delete hooks, before anything goes; one that fails stops this component.
    if let Err(e) = run_hooks(res, &name, parent.delete_hooks.iter().filter(|h| h.before), timeout, on).await {
        return Ok(ComponentOutcome::Failed(e.to_string()));
    }
    let (namespaces, others): (Vec<&Action>, Vec<&Action>) = members.iter().partition(|a| a.is_namespace());
    let mut kept = Vec::new();
    let namespaces = emptied_namespaces(res, namespaces, env_ids, &mut kept).await?;
    for k in &kept {
        on(Event::Kept { component: name.clone(), what: k.clone() });
    }
    let mut deleted = 0;
    for (i, batch) in [others, namespaces].into_iter().enumerate() {
        if !batch.is_empty() {
            let results = futures::stream::iter(batch.iter().copied())
                .map(|a| async move {
                    crate::stop::check()?;
                    delete_object(res, a, false).await
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await;
            for r in results {
                r?;
            }
            deleted += batch.len();
            if i == 1 && !wait.namespaces {
                continue;
            }
            on(Event::WaitingHealth {
                component: name.clone(),
                pending: format!("{} object(s) to disappear", batch.len()),
            });
            if let Err(e) = wait_gone(res, &batch, timeout).await {
                return Ok(ComponentOutcome::Failed(e.to_string()));
            }
        }
        if i == 0 && !parent.delete_hooks.is_empty() {
            // Post-delete hooks once the component's objects are gone, before its namespaces.
            let post = parent.delete_hooks.iter().filter(|h| !h.before);
            if let Err(e) = run_hooks(res, &name, post, timeout, on).await {
                return Ok(ComponentOutcome::Failed(e.to_string()));
            }
            remove_all(res, &parent.delete_hooks, timeout).await?;
        }
    }
    // A kept namespace stays in the inventory, so the next destroy tries again.
    if kept.is_empty() {
        delete_parent(res, &parent.name).await?;
    }
    Ok(ComponentOutcome::Done { written: 0, deleted, unchanged: 0 })
}
