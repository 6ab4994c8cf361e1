//! Layer 2, live state: what is on the cluster, read with one LIST per
//! type. rekube's ApplySet parents, the objects of the types a plan needs,
//! and the keys that compare them with rendered objects.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use kube::Api;
use kube::Client;
use kube::ResourceExt;
use kube::api::{DynamicObject, ListParams};
use rekube_plan::applyset::{
    self, COMPONENT_LABEL, CONTAINS_ANNOTATION, DELETE_HOOKS_KEY, ENVIRONMENT_LABEL, HOOK_OF_LABEL, HOOKS_ANNOTATION,
    ID_LABEL, Identity, PROJECT_LABEL, SOURCE_ANNOTATION,
};
use rekube_plan::{Action, Op};
use serde_json::Value;

pub use rekube_render::ObjectKey;

use crate::KubeError;
use crate::desired::Desired;
use crate::live::{Resolved, Resolver};
use crate::request::parents_api;

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
    /// The digests of its component's hooks when last applied.
    pub hooks: BTreeMap<String, String>,
    /// Its component's `pre-delete` and `post-delete` hooks, for destroy.
    pub delete_hooks: Vec<rekube_plan::HookRun>,
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

    /// The hooks its component left on the cluster (a completed Job kept by
    /// its policy until it runs again): those recorded in the parent that
    /// still carry this ApplySet's hook label, typed for deletion.
    pub async fn hook_leftovers(&self, res: &Resolver) -> Result<Vec<Value>, KubeError> {
        let mut out = Vec::new();
        for key in self.hooks.keys() {
            let Some((gk, rest)) = key.split_once(' ') else { continue };
            let (ns, name) = match rest.split_once('/') {
                Some((ns, name)) => (Some(ns), name),
                None => (None, rest),
            };
            let Some(r) = res.resolve_group_kind(gk).await.map_err(KubeError::api(format!("discover {gk}")))? else {
                continue;
            };
            let api = crate::request::api_for(res.client(), &r, ns);
            let live = api.get_opt(name).await.map_err(KubeError::api(format!("read {key}")))?;
            if let Some(o) = live.filter(|o| o.labels().get(HOOK_OF_LABEL) == Some(&self.id)) {
                let mut v = serde_json::to_value(&o).expect("serialises");
                v["apiVersion"] = r.resource.api_version.clone().into();
                v["kind"] = r.resource.kind.clone().into();
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Its members on the cluster, by type: one LIST per kind its inventory
    /// names (kinds the cluster no longer serves are left out).
    pub async fn members(&self, res: &Resolver) -> Result<Vec<(Resolved, Vec<Value>)>, KubeError> {
        let mut out = Vec::new();
        for gk in &self.group_kinds {
            let Some(r) = res.resolve_group_kind(gk).await.map_err(KubeError::api(format!("discover {gk}")))? else {
                continue;
            };
            let objects = list_type(res.client(), &r, Some(&format!("{}={}", applyset::PART_OF_LABEL, self.id)))
                .await?
                .iter()
                .map(|o| serde_json::to_value(o).expect("objects serialise"))
                .collect();
            out.push((r, objects));
        }
        Ok(out)
    }

    /// Its component, for ApplySets of `project`'s `environment`.
    pub fn component_in(&self, project: &str, environment: &str) -> Option<&str> {
        self.identity.as_ref().filter(|i| i.is_in(project, environment)).and_then(|i| i.component.as_deref())
    }
}

/// rekube's ApplySet parents on the cluster, of every project and environment.
pub(crate) async fn parents(client: &Client) -> Result<Vec<Parent>, KubeError> {
    let api = parents_api(client);
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
            let hooks =
                annotations.get(HOOKS_ANNOTATION).and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
            let delete_hooks =
                o.data["data"][DELETE_HOOKS_KEY].as_str().map(rekube_plan::HookRun::decode_all).unwrap_or_default();
            Some(Parent { name, identity, legacy_component, id, group_kinds, source, hooks, delete_hooks })
        })
        .collect())
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

pub(crate) fn action(op: Op, v: &Value, object: Option<Value>) -> Action {
    let ObjectKey { kind, namespace, name, .. } = ObjectKey::of(v);
    Action {
        op,
        api_version: v["apiVersion"].as_str().unwrap_or_default().to_string(),
        kind,
        namespace,
        name,
        changes: Vec::new(),
        object,
        reverts: Vec::new(),
        immutable: Vec::new(),
        owner: None,
    }
}

/// Live state for a plan: resolved types, live objects by key, ApplySet parents.
pub(crate) struct LiveState {
    pub types: BTreeMap<String, Resolved>,
    pub live: HashMap<ObjectKey, Value>,
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
        Some(p) => Err(KubeError::ProjectClash(Box::new(crate::error::Clash {
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
    let mut live: HashMap<ObjectKey, Value> = HashMap::new();
    for list in lists {
        for o in list? {
            let v = serde_json::to_value(&o).expect("objects serialise");
            live.insert(ObjectKey::of(&v), v);
        }
    }

    Ok(LiveState { types, live, parents: live_parents })
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
