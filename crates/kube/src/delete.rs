//! Deleting what rekube owns, and waiting until it is gone: the steps that
//! apply's prune and destroy share. A Namespace is deleted only when it
//! holds nothing that is not rekube's (deleting it would delete that too).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::runtime::wait::{await_condition, conditions::is_deleted};
use rekube_plan::Action;
use rekube_plan::applyset;
use serde_json::Value;

use crate::KubeError;
use crate::live::{Resolver, made_by_the_system, served};
use crate::request::{api_for, parents_api, retry};

/// Deletes one object (background propagation); gone already is fine.
pub(crate) async fn delete_object(res: &Resolver, a: &Action, dry_run: bool) -> Result<(), KubeError> {
    let Some(r) =
        res.resolve(&a.api_version, &a.kind).await.map_err(KubeError::api(format!("discover {}", a.api_version)))?
    else {
        return Ok(());
    };
    let api = api_for(res.client(), &r, a.namespace.as_deref());
    let mut dp = DeleteParams::background();
    if dry_run {
        dp = dp.dry_run();
    }
    match retry(|| api.delete(&a.name, &dp)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(KubeError::Api { what: format!("delete {}", a.display_name()), error: e }),
    }
}

/// Waits until every one of `objects` is gone (finalizers included).
pub(crate) async fn wait_gone(res: &Resolver, objects: &[&Action], timeout: Duration) -> Result<(), KubeError> {
    let began = Instant::now();
    for a in objects {
        let Ok(Some(r)) = res.resolve(&a.api_version, &a.kind).await else { continue };
        let api = api_for(res.client(), &r, a.namespace.as_deref());
        let what = a.display_name();
        let Some(uid) = live_uid(&api, &a.name, &what).await? else { continue };
        if !await_gone(&api, &a.name, &uid, timeout.saturating_sub(began.elapsed()), &what).await? {
            return Err(KubeError::NotDeleted { object: what, seconds: timeout.as_secs() });
        }
    }
    Ok(())
}

/// Waits up to `left` until the object `name` of `uid` is gone, with
/// kube-runtime's `is_deleted` condition on a watch; false when time ran
/// out. A watch that ends because its type went too (a custom resource
/// deleted with its CRD) counts as gone. `what` names it in errors.
pub(crate) async fn await_gone(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    left: Duration,
    what: &str,
) -> Result<bool, KubeError> {
    match tokio::time::timeout(left, await_condition(api.clone(), name, is_deleted(uid))).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(_)) if live_uid(api, name, what).await?.is_none() => Ok(true),
        Ok(Err(error)) => Err(KubeError::Watch { what: what.to_string(), error }),
        Err(_) => Ok(false),
    }
}

/// The live object's uid, `None` when it is gone, or its type is (a 404
/// that is not a Status: the CRD was deleted with it). `what` names it in errors.
pub(crate) async fn live_uid(api: &Api<DynamicObject>, name: &str, what: &str) -> Result<Option<String>, KubeError> {
    match retry(|| api.get_opt(name)).await {
        Ok(live) => Ok(live.and_then(|o| o.metadata.uid)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(error) => Err(KubeError::Api { what: what.to_string(), error }),
    }
}

/// Deletes an ApplySet parent; gone already is fine.
pub(crate) async fn delete_parent(res: &Resolver, name: &str) -> Result<(), KubeError> {
    let (api, dp) = (parents_api(res.client()), DeleteParams::default());
    match retry(|| api.delete(name, &dp)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(KubeError::Api { what: format!("delete ApplySet parent {name}"), error: e }),
    }
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
    // A hook one of ours ran is ours, though its chart labels it `managed-by: Helm`.
    if let Some(id) = applyset::hook_of(v) {
        return (!ours.contains(id)).then(|| format!("a hook of another ApplySet ({id})"));
    }
    // Data: a claim a StatefulSet made from our template outlives it, as with `helm uninstall`.
    if v["kind"] == "PersistentVolumeClaim" {
        return Some("a volume claim rekube did not create: it holds data".into());
    }
    let creator = v.pointer("/metadata/managedFields/0/manager").and_then(Value::as_str).unwrap_or_default();
    // A person (kubectl), Helm, or a restore of what a backup held that was not ours.
    if creator.starts_with("kubectl") || creator == "helm" || creator == "rekube-restore" {
        return Some(format!("made by {creator}"));
    }
    applyset::foreign_owner(v).map(|o| format!("managed by {o}"))
}

/// Everything foreign (see [`foreign`]) in each of `namespaces`, as
/// `Kind ns/name (why)`, sorted.
pub(crate) async fn foreign_objects(
    res: &Resolver,
    namespaces: &[String],
    ours: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<String>>, KubeError> {
    let mut out = BTreeMap::new();
    if namespaces.is_empty() {
        return Ok(out);
    }
    let mut kinds = Vec::new();
    for s in served(res.client(), true).await.map_err(KubeError::api("discover resources"))? {
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
    for ns in namespaces {
        let mut found = futures::stream::iter(kinds.iter().cloned())
            .map(|ar| async move {
                let api: Api<DynamicObject> = Api::namespaced_with(res.client().clone(), ns, &ar);
                let items = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
                items
                    .into_iter()
                    .filter_map(|mut o| {
                        o.types =
                            Some(kube::core::TypeMeta { api_version: ar.api_version.clone(), kind: ar.kind.clone() });
                        let v = serde_json::to_value(&o).ok()?;
                        foreign(&v, ours)
                            .map(|why| format!("{} {ns}/{} ({why})", ar.kind, o.metadata.name.unwrap_or_default()))
                    })
                    .collect::<Vec<_>>()
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .concat();
        found.sort();
        out.insert(ns.clone(), found);
    }
    Ok(out)
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
    let names: Vec<String> = namespaces.iter().map(|a| a.name.clone()).collect();
    let held = foreign_objects(res, &names, ours).await?;
    let mut out = Vec::new();
    for a in namespaces {
        let ns = a.name.clone();
        let found = held.get(&ns).cloned().unwrap_or_default();
        match found.into_iter().min() {
            Some(what) => {
                kept.push(format!("Namespace {ns} kept: it holds {what}; delete that by hand, then run this again"))
            }
            None => out.push(a),
        }
    }
    Ok(out)
}
