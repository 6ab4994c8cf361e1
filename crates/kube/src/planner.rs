//! Building the plan from rendered objects and live state.
//!
//! Live state costs one LIST per resource type, not one GET per object. An
//! object whose hash annotation matches and whose fields we set still hold
//! their values is unchanged without further requests; only the others get a
//! server-side dry-run, which yields the exact field diff (server defaults
//! included).
//!
//! Ownership is decided here, before anything is written: an object that
//! exists and is not a member of this (project, environment, component)'s
//! ApplySet is `adopt` (nobody owns it), `conflict` (another ApplySet or
//! another tool owns it) or, for a Namespace, `use` (never a member). Prunes
//! and removed components come only from this project and environment's own
//! ApplySets, so an object rekube did not label as ours is never deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use rekube_plan::applyset::{
    self, COMPONENT_LABEL, CONTAINS_ANNOTATION, ENVIRONMENT_LABEL, FIELD_MANAGER, ID_LABEL, Identity, PARENT_NAMESPACE,
    PROJECT_LABEL, SOURCE_ANNOTATION,
};
use rekube_plan::diff::{field_diff, subset_matches};
use rekube_plan::normalize::{is_namespace, live_hash, prepare_for};
use rekube_plan::{Action, ComponentPlan, Op, Plan};
use rekube_render::Rendered;
use serde_json::Value;

use crate::{KubeError, Resolved, Resolver};

/// An `ignore-differences` rule: kind, name (both optional) and field paths.
pub type IgnoreRule = (Option<String>, Option<String>, Vec<String>);

/// What the environment wants.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    /// The project.
    pub project: &'a str,
    /// Whether the spec names its project (`project:`); an implicit name
    /// (the directory's) is pinned to the spec file it was first applied from.
    pub explicit_project: bool,
    /// Where the spec is: `host:/path/rekube.yaml`, recorded on every parent.
    pub source: &'a str,
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
    /// Components that may adopt existing objects.
    pub adopt: BTreeSet<String>,
}

impl Desired<'_> {
    /// The ApplySet of a rendered component (or of the namespace set).
    pub fn identity(&self, component: &str) -> Identity {
        if component == rekube_render::NAMESPACES {
            Identity::namespaces(self.project, self.environment)
        } else {
            Identity::component(self.project, self.environment, component)
        }
    }
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

/// A live ApplySet parent in `rekube-system`.
#[derive(Debug, Clone)]
pub(crate) struct Parent {
    /// The ConfigMap's name.
    pub name: String,
    /// Whose it is; `None` for a parent of a release before 0.2 (or not rekube's).
    pub identity: Option<Identity>,
    /// A pre-0.2 parent's component (`rekube.<component>`).
    pub legacy_component: Option<String>,
    pub id: String,
    pub group_kinds: Vec<String>,
    /// Where it was last applied from.
    pub source: Option<String>,
}

impl Parent {
    /// Who owns its members, for messages.
    pub fn owner(&self) -> String {
        let from = self.source.as_deref().map(|s| format!(" (applied from {s})")).unwrap_or_default();
        match (&self.identity, &self.legacy_component) {
            (Some(i), _) => format!("{i}{from}"),
            (None, Some(c)) => format!("component `{c}` of a rekube release before 0.2"),
            (None, None) => format!("the ApplySet of rekube-system/{}", self.name),
        }
    }

    /// Its component, for ApplySets of `project`'s `environment`.
    pub fn component_in(&self, project: &str, environment: &str) -> Option<&str> {
        self.identity.as_ref().filter(|i| i.is_in(project, environment)).and_then(|i| i.component.as_deref())
    }
}

/// rekube's ApplySet parents on the cluster, of every project and environment.
pub(crate) async fn parents(client: &Client) -> Result<Vec<Parent>, KubeError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), PARENT_NAMESPACE, &configmap_resource());
    let list =
        api.list(&ListParams::default().labels(ID_LABEL)).await.map_err(KubeError::api("list ApplySet parents"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| {
            let name = o.metadata.name.clone()?;
            let labels = o.metadata.labels.clone().unwrap_or_default();
            let annotations = o.metadata.annotations.clone().unwrap_or_default();
            let id = labels.get(ID_LABEL)?.clone();
            let identity = match (labels.get(PROJECT_LABEL), labels.get(ENVIRONMENT_LABEL)) {
                (Some(p), Some(e)) => Some(Identity {
                    project: p.clone(),
                    environment: e.clone(),
                    component: labels.get(COMPONENT_LABEL).cloned(),
                }),
                _ => None,
            };
            let legacy_component = match &identity {
                None => name
                    .strip_prefix("rekube.")
                    .filter(|c| !c.contains('.') && id == applyset::legacy_id(c))
                    .map(str::to_string),
                Some(_) => None,
            };
            let group_kinds = annotations
                .get(CONTAINS_ANNOTATION)
                .map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            let source = annotations.get(SOURCE_ANNOTATION).cloned();
            Some(Parent { name, identity, legacy_component, id, group_kinds, source })
        })
        .collect())
}

/// The ids of every ApplySet of `project`'s `environment` on the cluster.
/// `source`: where the spec is, when its project name is implicit (see
/// [`Desired::explicit_project`]); another spec's ApplySets are refused.
pub async fn environment_applysets(
    client: &Client,
    project: &str,
    environment: &str,
    source: Option<&str>,
) -> Result<Vec<String>, KubeError> {
    let all = parents(client).await?;
    check_project_source(project, environment, source, &all)?;
    Ok(all
        .into_iter()
        .filter(|p| p.identity.as_ref().is_some_and(|i| i.is_in(project, environment)))
        .map(|p| p.id)
        .collect())
}

pub(crate) fn configmap_resource() -> kube::core::ApiResource {
    kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
}

/// Every live object of one type (all namespaces), by key.
pub(crate) async fn list_type(
    client: &Client,
    r: &Resolved,
    selector: Option<&str>,
) -> Result<Vec<DynamicObject>, KubeError> {
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
            o.types = Some(kube::core::TypeMeta {
                api_version: r.resource.api_version.clone(),
                kind: r.resource.kind.clone(),
            });
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
    Action {
        op,
        api_version: v["apiVersion"].as_str().unwrap_or_default().to_string(),
        kind,
        namespace,
        name,
        changes: Vec::new(),
        object,
        reverts: Vec::new(),
        owner: None,
    }
}

fn with_owner(mut a: Action, owner: String) -> Action {
    a.owner = Some(owner);
    a
}

fn apply_rank(a: &Action) -> u8 {
    match a.op {
        Op::Delete => 3,
        Op::Conflict => 0,
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

impl Parent {
    /// Whether it is one of `want`'s: of its project and environment, or the
    /// pre-0.2 parent of one of its components (which it migrates).
    fn is_own(&self, want: &Desired<'_>) -> bool {
        self.identity.as_ref().is_some_and(|i| i.is_in(want.project, want.environment))
            || self.legacy_component.as_ref().is_some_and(|c| want.spec_components.contains(c))
    }
}

impl LiveState {
    /// This project and environment's parents (see [`Parent::is_own`]).
    pub fn own_parents<'a>(&'a self, want: &'a Desired<'_>) -> impl Iterator<Item = &'a Parent> + 'a {
        self.parents.iter().filter(move |p| p.is_own(want))
    }
}

/// Refuses when this project's name is taken from its directory and the
/// environment's ApplySets were applied from another spec file: two
/// unrelated specs in directories of the same name must not share them.
pub(crate) fn check_project_source(
    project: &str,
    environment: &str,
    source: Option<&str>,
    parents: &[Parent],
) -> Result<(), KubeError> {
    let Some(source) = source else { return Ok(()) };
    let foreign = parents
        .iter()
        .filter(|p| p.identity.as_ref().is_some_and(|i| i.is_in(project, environment)))
        .find(|p| p.source.as_deref().is_some_and(|s| s != source));
    match foreign {
        None => Ok(()),
        Some(p) => Err(KubeError::ProjectClash(Box::new(crate::Clash {
            project: project.to_string(),
            environment: environment.to_string(),
            parent: p.name.clone(),
            theirs: p.source.clone().unwrap_or_default(),
            ours: source.to_string(),
        }))),
    }
}

pub(crate) async fn load_live(res: &Resolver, want: &Desired<'_>) -> Result<LiveState, KubeError> {
    let client = res.client();
    let live_parents = parents(client).await?;
    check_project_source(
        want.project,
        want.environment,
        (!want.explicit_project).then_some(want.source),
        &live_parents,
    )?;
    let platform_crds: BTreeSet<(String, String)> = want
        .rendered
        .objects()
        .filter(|(_, o)| rekube_render::is_crd(o))
        .map(|(_, o)| {
            (
                o.value["spec"]["group"].as_str().unwrap_or_default().to_string(),
                o.value["spec"]["names"]["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();

    // Resolve every type in use: desired kinds, and kinds the inventories hold.
    let mut types: BTreeMap<String, Resolved> = BTreeMap::new(); // "Kind.group" -> resolved
    for (_, o) in want.rendered.objects() {
        let gk = applyset::group_kind(o.group(), o.kind());
        if types.contains_key(&gk) {
            continue;
        }
        match res
            .resolve(o.api_version(), o.kind())
            .await
            .map_err(KubeError::api(format!("discover {}", o.api_version())))?
        {
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
    for p in live_parents.iter().filter(|p| p.is_own(want)) {
        for gk in &p.group_kinds {
            if !types.contains_key(gk)
                && let Some(r) = res.resolve_group_kind(gk).await.map_err(KubeError::api(format!("discover {gk}")))?
            {
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
    let ids: BTreeSet<String> = state.own_parents(want).map(|p| p.id.clone()).collect();
    let names: BTreeSet<String> = state.own_parents(want).map(|p| p.name.clone()).collect();
    let mut out: Vec<Value> =
        state.live.into_values().filter(|v| applyset::part_of(v).is_some_and(|id| ids.contains(id))).collect();
    let api: Api<DynamicObject> = Api::namespaced_with(res.client().clone(), PARENT_NAMESPACE, &configmap_resource());
    for mut p in
        api.list(&ListParams::default().labels(ID_LABEL)).await.map_err(KubeError::api("list ApplySet parents"))?.items
    {
        if !p.metadata.name.as_ref().is_some_and(|n| names.contains(n)) {
            continue;
        }
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
        let id = want.identity(&comp.name);
        for o in &comp.objects {
            let prepared = prepare_for(&o.value, &id);
            let Some(live) = state.live.get(&key_of(&prepared)) else { continue };
            let h = crate::check_health(res.client(), o.group(), o.kind(), live).await;
            out.push((comp.name.clone(), format!("{} {}", o.kind(), o.name()), h));
        }
    }
    Ok(out)
}

/// Whether every manager of a live object is rekube: a pre-0.2 member
/// Namespace that nobody else ever wrote was created by rekube.
fn only_rekube_wrote(live: &Value) -> bool {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|e| e["manager"] == FIELD_MANAGER))
}

/// Whose a live object is, seen from one ApplySet of this environment.
enum Ownership {
    /// A member (or moving between this environment's ApplySets).
    Ours,
    /// Nobody's.
    Adopt,
    /// Someone else's: who.
    Conflict(String),
    /// A Namespace that is used, never owned: why.
    Use(String),
}

struct Owners<'a> {
    /// Ids of this environment's ApplySets (live or planned).
    ours: BTreeSet<String>,
    /// Ids of the pre-0.2 ApplySets of the spec's components.
    legacy: BTreeSet<String>,
    by_id: HashMap<&'a str, &'a Parent>,
}

impl Owners<'_> {
    fn describe(&self, id: &str) -> String {
        self.by_id.get(id).map_or_else(|| format!("another ApplySet (id {id})"), |p| p.owner())
    }

    /// `prepared` is the object as this ApplySet would apply it.
    fn of(&self, live: &Value, id: &str, prepared: &Value) -> Ownership {
        let part_of = applyset::part_of(live);
        if is_namespace(live) {
            let name = live.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            return match part_of {
                _ if applyset::SYSTEM_NAMESPACES.contains(&name) => {
                    Ownership::Use("a system namespace: never a member".into())
                }
                Some(p) if p == id || (self.ours.contains(p) && applyset::created_by(live).is_some()) => {
                    Ownership::Ours
                }
                Some(p) if self.legacy.contains(p) && only_rekube_wrote(live) => Ownership::Ours,
                Some(p) if self.ours.contains(p) || self.legacy.contains(p) => {
                    Ownership::Use("existed before rekube applied it: used, never deleted".into())
                }
                Some(p) => Ownership::Use(format!("created for {}: used, never deleted here", self.describe(p))),
                None => Ownership::Use(match applyset::foreign_owner(live) {
                    Some(o) => format!("managed by {o}: used, never deleted"),
                    None => "existed before rekube: used, never deleted".into(),
                }),
            };
        }
        match part_of {
            Some(p) if p == id || self.ours.contains(p) || self.legacy.contains(p) => Ownership::Ours,
            // Its hash is of this very object with this ApplySet's label: rekube
            // applied it here, and someone relabelled it by hand (drift).
            Some(_) if live_hash(live).is_some() && live_hash(live) == live_hash(prepared) => Ownership::Ours,
            Some(p) => Ownership::Conflict(self.describe(p)),
            None => match applyset::foreign_owner(live) {
                Some(o) => Ownership::Conflict(o),
                None => Ownership::Adopt,
            },
        }
    }
}

/// Builds the plan. CRs whose CRD is in the platform but not yet on the
/// cluster are planned as creates; any other kind the cluster does not serve
/// is an error naming the manifest.
pub async fn build_plan(res: &Resolver, want: &Desired<'_>) -> Result<Plan, KubeError> {
    let client = res.client();
    let state = load_live(res, want).await?;
    let own: Vec<&Parent> = state.own_parents(want).collect();
    let LiveState { types, live, parents: live_parents } = &state;
    let wave_of: HashMap<&str, usize> =
        want.waves.iter().enumerate().flat_map(|(i, w)| w.iter().map(move |c| (c.as_str(), i))).collect();
    let scope = Identity::namespaces(want.project, want.environment).scope();

    let mut ours: BTreeSet<String> = own.iter().filter(|p| p.identity.is_some()).map(|p| p.id.clone()).collect();
    ours.extend(want.spec_components.iter().map(|c| Identity::component(want.project, want.environment, c).id()));
    ours.insert(Identity::namespaces(want.project, want.environment).id());
    let owners = Owners {
        ours,
        legacy: want.spec_components.iter().map(|c| applyset::legacy_id(c)).collect(),
        by_id: live_parents.iter().map(|p| (p.id.as_str(), p)).collect(),
    };
    // Every object as it will be applied, once, per component in render order.
    let prepared: Vec<(Identity, Vec<Value>)> = want
        .rendered
        .components
        .iter()
        .map(|c| {
            let identity = want.identity(&c.name);
            let objects = c.objects.iter().map(|o| prepare_for(&o.value, &identity)).collect();
            (identity, objects)
        })
        .collect();
    // Every key some component wants: never pruned, whichever ApplySet holds it now.
    let desired_all: BTreeSet<Key> = prepared.iter().flat_map(|(_, objects)| objects.iter().map(key_of)).collect();
    // Only what rekube created goes: a Namespace without its created-by mark is kept.
    let deletable = |v: &Value| !is_namespace(v) || applyset::created_by(v) == Some(scope.as_str());

    let mut components = Vec::new();
    for (comp, (identity, objects)) in want.rendered.components.iter().zip(prepared) {
        let id = identity.id();
        let mut actions = Vec::new();
        for prepared in objects {
            let key = key_of(&prepared);
            let a = match live.get(&key) {
                None => action(Op::Create, &prepared, Some(prepared.clone())),
                Some(l) => match owners.of(l, &id, &prepared) {
                    Ownership::Use(why) => with_owner(action(Op::Use, &prepared, None), why),
                    Ownership::Conflict(who) => with_owner(action(Op::Conflict, &prepared, None), who),
                    Ownership::Adopt => action(Op::Adopt, &prepared, Some(prepared.clone())),
                    Ownership::Ours if live_hash(l) == live_hash(&prepared) && subset_matches(&prepared, l) => {
                        action(Op::Unchanged, &prepared, None)
                    }
                    Ownership::Ours => action(Op::Update, &prepared, Some(prepared.clone())),
                },
            };
            actions.push(a);
        }
        // Prune: members of this ApplySet that no component wants any more
        // (the namespace set only when every component was rendered).
        let partial_set = want.partial && identity.component.is_none();
        let prunes = live
            .iter()
            .filter(|(k, v)| {
                !partial_set
                    && !k.1.is_empty()
                    && !k.3.is_empty()
                    && !desired_all.contains(*k)
                    && applyset::part_of(v) == Some(id.as_str())
                    && deletable(v)
            })
            .map(|(_, v)| action(Op::Delete, v, None));
        actions.extend(deletion_order(prunes));
        // Stable: conflicts, Namespaces, CRDs, everything else in render order, deletes.
        let mut indexed: Vec<(usize, Action)> = actions.into_iter().enumerate().collect();
        indexed.sort_by_key(|(i, a)| (apply_rank(a), *i));
        let wave = wave_of.get(comp.name.as_str()).copied().unwrap_or(0);
        let legacy_parent =
            own.iter().find(|p| p.legacy_component.as_deref() == Some(comp.name.as_str())).map(|p| p.name.clone());
        let parent_missing = legacy_parent.is_none()
            && !own.iter().any(|p| p.identity.as_ref() == Some(&identity))
            && indexed.iter().any(|(_, a)| matches!(a.op, Op::Unchanged | Op::Update | Op::Delete));
        components.push(ComponentPlan {
            name: comp.name.clone(),
            identity,
            wave,
            removed: false,
            adopt: want.adopt.contains(&comp.name),
            legacy_parent,
            parent_missing,
            actions: indexed.into_iter().map(|(_, a)| a).collect(),
        });
    }
    // Every update candidate gets the server's dry-run, below.
    let dry_run: Vec<(usize, usize)> = components
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| {
            c.actions.iter().enumerate().filter(|(_, a)| a.op == Op::Update).map(move |(ai, _)| (ci, ai))
        })
        .collect();

    // Components of this environment that left the spec: their members go.
    if !want.partial {
        let mut removed: Vec<(&str, &Parent)> = own
            .iter()
            .filter_map(|p| p.component_in(want.project, want.environment).map(|c| (c, *p)))
            .filter(|(c, _)| !want.spec_components.contains(*c))
            .collect();
        removed.sort_by(|a, b| b.0.cmp(a.0));
        for (name, p) in removed {
            let actions = deletion_order(
                live.iter()
                    .filter(|(k, v)| {
                        applyset::part_of(v) == Some(p.id.as_str()) && !desired_all.contains(*k) && deletable(v)
                    })
                    .map(|(_, v)| action(Op::Delete, v, None)),
            );
            components.push(ComponentPlan {
                name: name.to_string(),
                identity: Identity::component(want.project, want.environment, name),
                wave: usize::MAX,
                removed: true,
                adopt: false,
                legacy_parent: None,
                parent_missing: false,
                actions,
            });
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
                let after = api
                    .patch(&key.3, &pp, &Patch::Apply(&obj))
                    .await
                    .map_err(KubeError::api(format!("dry-run apply of {} {}", key.1, key.3)))?;
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
    Ok(Plan {
        project: want.project.to_string(),
        environment: want.environment.to_string(),
        cluster: want.cluster.to_string(),
        components,
    })
}

/// Deletes in a stable order, Namespaces last (their contents go first).
pub(crate) fn deletion_order(actions: impl Iterator<Item = Action>) -> Vec<Action> {
    let mut v: Vec<Action> = actions.collect();
    v.sort_by_key(|a| (a.is_namespace(), a.display_name()));
    v
}
