//! Building the plan from rendered objects and live state.
//!
//! Live state costs one LIST per resource type, not one GET per object. An
//! object whose hash annotation matches and whose fields we set still hold
//! their values is unchanged without further requests; only the others get a
//! server-side dry-run, which yields the exact field diff (server defaults
//! included). Prunes come from ApplySet labels, so an object rekube did not
//! label is never deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use rekube_plan::applyset::{self, CONTAINS_ANNOTATION, FIELD_MANAGER, ID_LABEL, PARENT_NAMESPACE};
use rekube_plan::diff::{field_diff, subset_matches};
use rekube_plan::normalize::{live_hash, prepare};
use rekube_plan::{Action, ComponentPlan, Op, Plan};
use rekube_render::Rendered;
use serde_json::Value;

use crate::{KubeError, Resolved, Resolver};

/// An `ignore-differences` rule: kind, name (both optional) and field paths.
pub type IgnoreRule = (Option<String>, Option<String>, Vec<String>);

/// What the environment wants.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    /// The environment.
    pub environment: &'a str,
    /// Its cluster.
    pub cluster: &'a str,
    /// Rendered components (in dependency order).
    pub rendered: &'a Rendered,
    /// Waves of component names.
    pub waves: Vec<Vec<String>>,
    /// Every component in the spec (a parent for anything else is a removed component).
    pub spec_components: BTreeSet<String>,
    /// Whether only some components are planned (then nothing is removed).
    pub partial: bool,
    /// Per component: (kind, name, paths) whose changes are not drift.
    pub ignore: BTreeMap<String, Vec<IgnoreRule>>,
}

pub(crate) type Key = (String, String, Option<String>, String); // group, kind, namespace, name

pub(crate) fn key_of(v: &Value) -> Key {
    let api = v["apiVersion"].as_str().unwrap_or_default();
    let group = api.rsplit_once('/').map_or("", |(g, _)| g).to_string();
    (
        group,
        v["kind"].as_str().unwrap_or_default().to_string(),
        v.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
        v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
    )
}

/// A live ApplySet parent.
#[derive(Debug, Clone)]
pub(crate) struct Parent {
    pub component: String,
    pub id: String,
    pub group_kinds: Vec<String>,
}

/// rekube's ApplySet parents on the cluster.
pub(crate) async fn parents(client: &Client) -> Result<Vec<Parent>, KubeError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), PARENT_NAMESPACE, &configmap_resource());
    let list = api.list(&ListParams::default().labels(ID_LABEL)).await.map_err(KubeError::api("list ApplySet parents"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| {
            let name = o.metadata.name.clone()?;
            let component = applyset::component_of(&name)?.to_string();
            let id = o.metadata.labels.as_ref()?.get(ID_LABEL)?.clone();
            let group_kinds = o
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONTAINS_ANNOTATION))
                .map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            Some(Parent { component, id, group_kinds })
        })
        .collect())
}

pub(crate) fn configmap_resource() -> kube::core::ApiResource {
    kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
}

/// Every live object of one type (all namespaces), by key.
pub(crate) async fn list_type(client: &Client, r: &Resolved, selector: Option<&str>) -> Result<Vec<DynamicObject>, KubeError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &r.resource);
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(500);
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    loop {
        let page = api.list(&lp).await.map_err(KubeError::api(format!("list {}", r.resource.plural)))?;
        // Items of a LIST carry no apiVersion/kind: stamp them, or every
        // live object would look anonymous (and unmatched).
        out.extend(page.items.into_iter().map(|mut o| {
            o.types = Some(kube::core::TypeMeta { api_version: r.resource.api_version.clone(), kind: r.resource.kind.clone() });
            o
        }));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    Ok(out)
}

pub(crate) fn api_for(client: &Client, r: &Resolved, ns: Option<&str>) -> Api<DynamicObject> {
    match (r.namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &r.resource),
        _ => Api::all_with(client.clone(), &r.resource),
    }
}

pub(crate) fn action(op: Op, v: &Value, object: Option<Value>) -> Action {
    let (_, kind, namespace, name) = key_of(v);
    Action { op, api_version: v["apiVersion"].as_str().unwrap_or_default().to_string(), kind, namespace, name, changes: Vec::new(), object, reverts: Vec::new() }
}

fn apply_rank(a: &Action) -> u8 {
    match a.op {
        Op::Delete => 3,
        _ if a.is_namespace() => 0,
        _ if a.is_crd() => 1,
        _ => 2,
    }
}

/// Live state for a plan: resolved types, live objects by key, ApplySet parents.
pub(crate) struct LiveState {
    pub types: BTreeMap<String, Resolved>,
    pub live: HashMap<Key, Value>,
    pub parents: Vec<Parent>,
}

pub(crate) async fn load_live(res: &Resolver, want: &Desired<'_>) -> Result<LiveState, KubeError> {
    let client = res.client();
    let live_parents = parents(client).await?;
    let platform_crds: BTreeSet<(String, String)> = want
        .rendered
        .objects()
        .filter(|(_, o)| rekube_render::is_crd(o))
        .map(|(_, o)| (o.value["spec"]["group"].as_str().unwrap_or_default().to_string(), o.value["spec"]["names"]["kind"].as_str().unwrap_or_default().to_string()))
        .collect();

    // Resolve every type in use: desired kinds, and kinds the inventories hold.
    let mut types: BTreeMap<String, Resolved> = BTreeMap::new(); // "Kind.group" -> resolved
    for (_, o) in want.rendered.objects() {
        let gk = applyset::group_kind(o.group(), o.kind());
        if types.contains_key(&gk) {
            continue;
        }
        match res.resolve(o.api_version(), o.kind()).await.map_err(KubeError::api(format!("discover {}", o.api_version())))? {
            Some(r) => {
                types.insert(gk, r);
            }
            None if platform_crds.contains(&(o.group().to_string(), o.kind().to_string())) => {}
            None => {
                return Err(KubeError::UnknownKind {
                    api_version: o.api_version().to_string(),
                    kind: o.kind().to_string(),
                    file: o.origin.file.display().to_string(),
                    line: o.origin.line,
                });
            }
        }
    }
    for p in &live_parents {
        for gk in &p.group_kinds {
            if !types.contains_key(gk)
                && let Some(r) = res.resolve_group_kind(gk).await.map_err(KubeError::api(format!("discover {gk}")))? {
                    types.insert(gk.clone(), r);
                }
        }
    }

    // Live state: one LIST per type, in parallel.
    let lists = futures::stream::iter(types.values().cloned())
        .map(|r| async move { list_type(client, &r, None).await })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let mut live: HashMap<Key, Value> = HashMap::new();
    for list in lists {
        for o in list? {
            let v = serde_json::to_value(&o).expect("objects serialise");
            live.insert(key_of(&v), v);
        }
    }

    Ok(LiveState { types, live, parents: live_parents })
}

/// Every object rekube manages on the cluster (members of its ApplySets,
/// among the kinds the platform uses and its inventories name) and the
/// ApplySet parents themselves, as the server has them.
pub async fn managed_objects(res: &Resolver, want: &Desired<'_>) -> Result<Vec<Value>, KubeError> {
    let state = load_live(res, want).await?;
    let mut out: Vec<Value> = state.live.into_values().filter(|v| applyset::part_of(v).is_some()).collect();
    let api: Api<DynamicObject> = Api::namespaced_with(res.client().clone(), PARENT_NAMESPACE, &configmap_resource());
    for mut p in api.list(&ListParams::default().labels(ID_LABEL)).await.map_err(KubeError::api("list ApplySet parents"))?.items {
        p.types = Some(kube::core::TypeMeta { api_version: "v1".into(), kind: "ConfigMap".into() });
        out.push(serde_json::to_value(&p).expect("objects serialise"));
    }
    Ok(out)
}

/// The health of every object of every component, from one LIST per type
/// (Pods are read only for workloads that are not ready). Objects not on the
/// cluster are left out; `(component, object, health)` in render order.
pub async fn health_of(res: &Resolver, want: &Desired<'_>) -> Result<Vec<(String, String, crate::Health)>, KubeError> {
    let state = load_live(res, want).await?;
    let mut out = Vec::new();
    for comp in &want.rendered.components {
        for o in &comp.objects {
            let prepared = prepare(&o.value, &applyset::id(&comp.name));
            let Some(live) = state.live.get(&key_of(&prepared)) else { continue };
            let h = crate::check_health(res.client(), o.group(), o.kind(), live).await;
            out.push((comp.name.clone(), format!("{} {}", o.kind(), o.name()), h));
        }
    }
    Ok(out)
}

/// Builds the plan. CRs whose CRD is in the platform but not yet on the
/// cluster are planned as creates; any other kind the cluster does not serve
/// is an error naming the manifest.
pub async fn build_plan(res: &Resolver, want: &Desired<'_>) -> Result<Plan, KubeError> {
    let client = res.client();
    let LiveState { types, live, parents: live_parents } = load_live(res, want).await?;
    let wave_of: HashMap<&str, usize> = want.waves.iter().enumerate().flat_map(|(i, w)| w.iter().map(move |c| (c.as_str(), i))).collect();
    let mut components = Vec::new();
    for comp in &want.rendered.components {
        let id = applyset::id(&comp.name);
        let mut actions = Vec::new();
        let mut desired_keys = BTreeSet::new();
        for o in &comp.objects {
            let prepared = prepare(&o.value, &id);
            let key = key_of(&prepared);
            desired_keys.insert(key.clone());
            let a = match live.get(&key) {
                None => action(Op::Create, &prepared, Some(prepared.clone())),
                Some(l) if live_hash(l) == live_hash(&prepared) && subset_matches(&prepared, l) => action(Op::Unchanged, &prepared, None),
                Some(_) => action(Op::Update, &prepared, Some(prepared.clone())),
            };
            actions.push(a);
        }
        // Prune: members of this component's ApplySet that left it.
        let prunes = live
            .iter()
            .filter(|(k, v)| !k.1.is_empty() && !k.3.is_empty() && !desired_keys.contains(*k) && applyset::part_of(v) == Some(id.as_str()))
            .map(|(_, v)| action(Op::Delete, v, None));
        actions.extend(deletion_order(prunes));
        // Stable: Namespaces, CRDs, everything else in render order, deletes.
        let mut indexed: Vec<(usize, Action)> = actions.into_iter().enumerate().collect();
        indexed.sort_by_key(|(i, a)| (apply_rank(a), *i));
        let wave = wave_of.get(comp.name.as_str()).copied().unwrap_or(0);
        components.push(ComponentPlan { name: comp.name.clone(), wave, removed: false, actions: indexed.into_iter().map(|(_, a)| a).collect() });
    }
    // Every update candidate gets the server's dry-run, below.
    let dry_run: Vec<(usize, usize)> = components
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| c.actions.iter().enumerate().filter(|(_, a)| a.op == Op::Update).map(move |(ai, _)| (ci, ai)))
        .collect();

    // Components that left the spec: everything in their ApplySet goes.
    if !want.partial {
        let mut removed: Vec<&Parent> = live_parents.iter().filter(|p| !want.spec_components.contains(&p.component)).collect();
        removed.sort_by(|a, b| b.component.cmp(&a.component));
        for p in removed {
            let actions = deletion_order(live.values().filter(|v| applyset::part_of(v) == Some(p.id.as_str())).map(|v| action(Op::Delete, v, None)));
            components.push(ComponentPlan { name: p.component.clone(), wave: usize::MAX, removed: true, actions });
        }
    }

    // Exact diffs for the candidates, from the server's own dry-run.
    let results = futures::stream::iter(dry_run.iter().copied())
        .map(|(ci, ai)| {
            let a = &components[ci].actions[ai];
            let obj = a.object.clone().expect("updates carry their object");
            let key = key_of(&obj);
            let gk = applyset::group_kind(&key.0, &key.1);
            let r = types.get(&gk).cloned();
            async move {
                let Some(r) = r else { return Ok((ci, ai, None)) };
                let api = api_for(client, &r, key.2.as_deref());
                let pp = PatchParams::apply(FIELD_MANAGER).force().dry_run();
                let after = api.patch(&key.3, &pp, &Patch::Apply(&obj)).await.map_err(KubeError::api(format!("dry-run apply of {} {}", key.1, key.3)))?;
                Ok::<_, KubeError>((ci, ai, Some(serde_json::to_value(&after).expect("serialises"))))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for r in results {
        let (ci, ai, after) = r?;
        let a = &components[ci].actions[ai];
        let Some(after) = after else { continue };
        let before = &live[&key_of(a.object.as_ref().expect("object"))];
        let changes = field_diff(&a.kind, before, &after);
        let a = &mut components[ci].actions[ai];
        // Same hash: the spec is what rekube last applied.
        let same_spec = live_hash(before) == live_hash(a.object.as_ref().expect("object"));
        if changes.is_empty() && same_spec {
            a.op = Op::Unchanged;
            a.object = None;
        } else {
            a.changes = changes;
            // The spec is unchanged, so each difference is a hand change; name who made it.
            if same_spec {
                let applied = rekube_plan::normalize::fold_string_data(a.object.as_ref().expect("object"));
                a.reverts = rekube_plan::drift::object_drift(&a.kind, &applied, before, FIELD_MANAGER, &[]);
            }
        }
    }
    Ok(Plan { environment: want.environment.to_string(), cluster: want.cluster.to_string(), components })
}

/// Deletes in a stable order, Namespaces last (their contents go first).
pub(crate) fn deletion_order(actions: impl Iterator<Item = Action>) -> Vec<Action> {
    let mut v: Vec<Action> = actions.collect();
    v.sort_by_key(|a| (a.is_namespace(), a.display_name()));
    v
}
