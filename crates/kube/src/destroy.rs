//! Destroy: every ApplySet of one project's environment, its components in
//! reverse dependency order and its namespace set last, waiting until the
//! members are really gone (finalizers, namespaces), then the parent.
//! Objects without this environment's `part-of` label are never touched,
//! and a Namespace goes only when rekube created it and it holds nothing
//! that is not rekube's.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use rekube_plan::applyset::{self, Identity, PARENT_NAMESPACE, PART_OF_LABEL};
use rekube_plan::{Action, Op};
use serde_json::Value;

use crate::apply::{ComponentOutcome, Event, delete_object};
use crate::planner::{Parent, action, api_for, configmap_resource, list_type, parents};
use crate::{ApplyReport, KubeError, Resolver};

pub(crate) async fn delete_parent(res: &Resolver, name: &str) -> Result<(), KubeError> {
    let api: Api<DynamicObject> = Api::namespaced_with(res.client().clone(), PARENT_NAMESPACE, &configmap_resource());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(KubeError::Api { what: format!("delete ApplySet parent {name}"), error: e }),
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
                Ok(Some(_)) if began.elapsed() > timeout => {
                    return Err(format!("{} still exists after {}s (finalizers?)", a.display_name(), timeout.as_secs()));
                }
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(format!("{}: {}", a.display_name(), crate::describe(&e))),
            }
        }
    }
    Ok(())
}

/// Objects a controller or the API server makes in every namespace, or
/// that belong to an object (ownerReferences): they go with the namespace.
pub(crate) fn made_by_the_system(v: &Value) -> bool {
    let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    v.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
        || (kind == "ConfigMap" && name == "kube-root-ca.crt")
        || (kind == "ServiceAccount" && name == "default")
        || (kind == "Secret" && v["type"] == "kubernetes.io/service-account-token")
        || kind == "Endpoints"
        || kind == "EndpointSlice"
        || kind == "Event"
}

/// Why a live object in a namespace rekube would delete is not rekube's to
/// delete: a member of an ApplySet not in `ours`, or made by a person or
/// another tool (its first manager is kubectl or helm, or it carries
/// Helm's, Argo CD's or Flux's marks). Objects already being deleted and
/// objects the system makes go with the namespace.
fn foreign(v: &Value, ours: &BTreeSet<String>) -> Option<String> {
    if v.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) || made_by_the_system(v) {
        return None;
    }
    if let Some(p) = applyset::part_of(v) {
        return (!ours.contains(p)).then(|| format!("a member of another ApplySet ({p})"));
    }
    let creator = v.pointer("/metadata/managedFields/0/manager").and_then(Value::as_str).unwrap_or_default();
    if creator.starts_with("kubectl") || creator == "helm" {
        return Some(format!("made by {creator}"));
    }
    applyset::foreign_owner(v).map(|o| format!("managed by {o}"))
}

/// Of the Namespaces to delete, those that hold nothing foreign (see
/// [`foreign`]); each other one is named in `kept` with what it holds.
/// Deleting a namespace deletes everything in it, and rekube deletes only
/// what it created.
pub(crate) async fn emptied_namespaces<'a>(
    res: &Resolver,
    namespaces: Vec<&'a Action>,
    ours: &BTreeSet<String>,
    kept: &mut Vec<String>,
) -> Result<Vec<&'a Action>, KubeError> {
    if namespaces.is_empty() {
        return Ok(namespaces);
    }
    let mut kinds = Vec::new();
    for s in crate::served(res.client(), true).await.map_err(KubeError::api("discover resources"))? {
        let gv = s.group_version();
        for r in s.resources.into_iter().flat_map(|l| l.resources) {
            if r.namespaced && !r.name.contains('/') && r.verbs.iter().any(|v| v == "list") && r.kind != "Event" {
                let (group, version) = gv.split_once('/').unwrap_or(("", gv.as_str()));
                kinds.push(kube::core::ApiResource {
                    group: group.into(),
                    version: version.into(),
                    api_version: gv.clone(),
                    kind: r.kind.clone(),
                    plural: r.name.clone(),
                });
            }
        }
    }
    let mut out = Vec::new();
    for a in namespaces {
        let ns = a.name.clone();
        let found = futures::stream::iter(kinds.iter().cloned())
            .map(|ar| {
                let ns = ns.clone();
                async move {
                    let api: Api<DynamicObject> = Api::namespaced_with(res.client().clone(), &ns, &ar);
                    let items = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
                    items.into_iter().find_map(|mut o| {
                        o.types =
                            Some(kube::core::TypeMeta { api_version: ar.api_version.clone(), kind: ar.kind.clone() });
                        let v = serde_json::to_value(&o).ok()?;
                        foreign(&v, ours)
                            .map(|why| format!("{} {ns}/{} ({why})", ar.kind, o.metadata.name.unwrap_or_default()))
                    })
                }
            })
            .buffer_unordered(16)
            .filter_map(|x| async move { x })
            .collect::<Vec<_>>()
            .await;
        match found.into_iter().min() {
            Some(what) => {
                kept.push(format!("Namespace {ns} kept: it holds {what}; delete that by hand, then run this again"))
            }
            None => out.push(a),
        }
    }
    Ok(out)
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
    timeout: Duration,
    on: &(dyn Fn(Event) + Sync),
) -> Result<ApplyReport, KubeError> {
    let all = parents(res.client()).await?;
    crate::planner::check_project_source(project, environment, source, &all)?;
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
                    let outcome = match destroy_component(res, parent, env_ids, timeout, on).await {
                        Ok(o) => o,
                        Err(e) => ComponentOutcome::Failed(e.to_string()),
                    };
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
    timeout: Duration,
    on: &(dyn Fn(Event) + Sync),
) -> Result<ComponentOutcome, KubeError> {
    let name = display(parent);
    let scope = parent.identity.as_ref().map(Identity::scope).unwrap_or_default();
    on(Event::Applying { component: name.clone(), done: 0, total: 0 });
    let mut members = Vec::new();
    for gk in &parent.group_kinds {
        let Some(r) = res.resolve_group_kind(gk).await.map_err(KubeError::api(format!("discover {gk}")))? else {
            continue;
        };
        for o in list_type(res.client(), &r, Some(&format!("{PART_OF_LABEL}={}", parent.id))).await? {
            let v = serde_json::to_value(&o).expect("serialises");
            // A Namespace goes only when rekube created it for this environment.
            if rekube_plan::normalize::is_namespace(&v) && applyset::created_by(&v) != Some(scope.as_str()) {
                continue;
            }
            members.push(action(Op::Delete, &v, None));
        }
    }
    let (namespaces, others): (Vec<&Action>, Vec<&Action>) = members.iter().partition(|a| a.is_namespace());
    let mut kept = Vec::new();
    let namespaces = emptied_namespaces(res, namespaces, env_ids, &mut kept).await?;
    for k in &kept {
        on(Event::Kept { component: name.clone(), what: k.clone() });
    }
    let mut deleted = 0;
    for batch in [others, namespaces] {
        if batch.is_empty() {
            continue;
        }
        let results = futures::stream::iter(batch.iter().copied())
            .map(|a| delete_object(res, a, false))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for r in results {
            r?;
        }
        deleted += batch.len();
        on(Event::WaitingHealth {
            component: name.clone(),
            pending: format!("{} object(s) to disappear", batch.len()),
        });
        if let Err(e) = wait_gone(res, &batch, timeout).await {
            return Ok(ComponentOutcome::Failed(e));
        }
    }
    // A kept namespace stays in the inventory, so the next destroy tries again.
    if kept.is_empty() {
        delete_parent(res, &parent.name).await?;
    }
    Ok(ComponentOutcome::Done { written: 0, deleted, unchanged: 0 })
}
