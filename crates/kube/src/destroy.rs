//! Destroy: every component's ApplySet members, in reverse dependency
//! order, waiting until they are really gone (finalizers, namespaces), then
//! the parent. Objects without rekube's `part-of` label are never touched.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject};
use rekube_plan::applyset::{self, PARENT_NAMESPACE, PART_OF_LABEL};
use rekube_plan::{Action, Op};

use crate::apply::{ComponentOutcome, Event, delete_object};
use crate::planner::{Parent, action, api_for, configmap_resource, list_type, parents};
use crate::{ApplyReport, KubeError, Resolver};

pub(crate) async fn delete_parent(res: &Resolver, component: &str) -> Result<(), KubeError> {
    let api: Api<DynamicObject> = Api::namespaced_with(res.client().clone(), PARENT_NAMESPACE, &configmap_resource());
    match api.delete(&applyset::parent_name(component), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(KubeError::Api { what: format!("delete ApplySet parent of {component}"), source: e }),
    }
}

pub(crate) async fn wait_gone(res: &Resolver, objects: &[&Action], timeout: Duration) -> Result<(), String> {
    let began = Instant::now();
    for a in objects {
        let Ok(Some(r)) = res.resolve(&a.api_version, &a.kind).await else { continue };
        let api = api_for(res.client(), &r, a.namespace.as_deref());
        loop {
            match api.get_opt(&a.name).await {
                Ok(None) => break,
                Ok(Some(_)) if began.elapsed() > timeout => return Err(format!("{} still exists after {}s (finalizers?)", a.display_name(), timeout.as_secs())),
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(format!("{}: {e}", a.display_name())),
            }
        }
    }
    Ok(())
}

/// Destroys components wave by wave in the order given (reverse dependency
/// order), the components of a wave in parallel, after any rekube ApplySet
/// left on the cluster by components no longer in the spec.
pub async fn destroy(res: &Resolver, waves: &[Vec<String>], timeout: Duration, on: &(dyn Fn(Event) + Sync)) -> Result<ApplyReport, KubeError> {
    let live = parents(res.client()).await?;
    let known: Vec<&String> = waves.iter().flatten().collect();
    let orphans: Vec<String> = live.iter().filter(|p| !known.contains(&&p.component)).map(|p| p.component.clone()).collect();
    let mut report = ApplyReport::default();
    for wave in std::iter::once(&orphans).chain(waves) {
        let comps: Vec<&Parent> = wave.iter().filter_map(|n| live.iter().find(|p| &p.component == n)).collect();
        let outcomes = futures::stream::iter(comps)
            .map(|parent| async move {
                let outcome = match destroy_component(res, parent, timeout, on).await {
                    Ok(o) => o,
                    Err(e) => ComponentOutcome::Failed(e.to_string()),
                };
                on(Event::Done { component: parent.component.clone(), outcome: outcome.clone() });
                (parent.component.clone(), outcome)
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

async fn destroy_component(res: &Resolver, parent: &Parent, timeout: Duration, on: &(dyn Fn(Event) + Sync)) -> Result<ComponentOutcome, KubeError> {
    let name = &parent.component;
    on(Event::Applying { component: name.clone(), done: 0, total: 0 });
    let mut members = Vec::new();
    for gk in &parent.group_kinds {
        let Some(r) = res.resolve_group_kind(gk).await.map_err(KubeError::api(format!("discover {gk}")))? else { continue };
        for o in list_type(res.client(), &r, Some(&format!("{PART_OF_LABEL}={}", parent.id))).await? {
            members.push(action(Op::Delete, &serde_json::to_value(&o).expect("serialises"), None));
        }
    }
    let (namespaces, others): (Vec<&Action>, Vec<&Action>) = members.iter().partition(|a| a.is_namespace());
    for batch in [others, namespaces] {
        let results = futures::stream::iter(batch.iter().copied()).map(|a| delete_object(res, a, false)).buffer_unordered(16).collect::<Vec<_>>().await;
        for r in results {
            r?;
        }
        on(Event::WaitingHealth { component: name.clone(), pending: format!("{} object(s) to disappear", batch.len()) });
        if let Err(e) = wait_gone(res, &batch, timeout).await {
            return Ok(ComponentOutcome::Failed(e));
        }
    }
    delete_parent(res, name).await?;
    Ok(ComponentOutcome::Done { written: 0, deleted: members.len(), unchanged: 0 })
}
