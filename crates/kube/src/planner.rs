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
use kube::Client;
use kube::api::{ListParams, Patch};
use rekube_plan::applyset::{self, FIELD_MANAGER, HOOK_OF_LABEL, ID_LABEL, Identity};
use rekube_plan::diff::{field_diff, subset_matches};
use rekube_plan::normalize::{is_namespace, live_hash, prepare_for};
use rekube_plan::{Action, ComponentPlan, HookRun, Op, Plan};
use rekube_render::hooks::{DeletePolicy, Hook, HookEvent};
use serde_json::Value;

use crate::KubeError;
use crate::desired::Desired;
use crate::live::{self, LiveState, ObjectKey, Parent, Resolver, action, check_project_source, load_live, parents};
use crate::request::{api_for, apply_params, dropped, parents_api};

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

/// What rekube manages in an environment, read once: see [`managed_objects`].
pub struct Inventory {
    /// Every member of its ApplySets and the parents, as the server has them.
    pub objects: Vec<Value>,
    /// Its ApplySet ids.
    ids: BTreeSet<String>,
}

impl Inventory {
    /// What lives in the environment's own namespaces (those rekube created
    /// for it) without being made by the spec, its hooks or the cluster: a
    /// Secret made by hand, say. A rebuild from the spec does not bring it back.
    pub async fn unmanaged(&self, res: &Resolver) -> Result<Vec<String>, KubeError> {
        let namespaces: Vec<String> = self
            .objects
            .iter()
            .filter(|v| rekube_plan::normalize::is_namespace(v) && applyset::part_of(v).is_some())
            .filter_map(|v| v.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
            .collect();
        Ok(crate::delete::foreign_objects(res, &namespaces, &self.ids).await?.into_values().flatten().collect())
    }
}

/// Every object rekube manages on the cluster (members of its ApplySets,
/// among the kinds the platform uses and its inventories name) and the
/// ApplySet parents themselves, as the server has them.
pub async fn managed_objects(res: &Resolver, want: &Desired<'_>) -> Result<Inventory, KubeError> {
    let state = load_live(res, want).await?;
    let ids: BTreeSet<String> = state.own_parents(want).map(|p| p.id.clone()).collect();
    let names: BTreeSet<String> = state.own_parents(want).map(|p| p.name.clone()).collect();
    let mut out: Vec<Value> =
        state.live.into_values().filter(|v| applyset::part_of(v).is_some_and(|id| ids.contains(id))).collect();
    for mut p in parents_api(res.client())
        .list(&ListParams::default().labels(ID_LABEL))
        .await
        .map_err(KubeError::api("list ApplySet parents"))?
        .items
    {
        if !p.metadata.name.as_ref().is_some_and(|n| names.contains(n)) {
            continue;
        }
        p.types = Some(kube::core::TypeMeta { api_version: "v1".into(), kind: "ConfigMap".into() });
        out.push(serde_json::to_value(&p).expect("objects serialise"));
    }
    Ok(Inventory { objects: out, ids })
}

/// One object's health, as `status` shows it.
#[derive(Debug, Clone)]
pub struct ObjectHealth {
    /// Its component.
    pub component: String,
    /// `Kind name`.
    pub object: String,
    /// Its health.
    pub health: live::Health,
}

/// The health of every object of every component, from one LIST per type
/// (Pods are read only for workloads that are not ready). Objects not on the
/// cluster are left out; `(component, object, health)` in render order.
pub async fn health_of(res: &Resolver, want: &Desired<'_>) -> Result<Vec<ObjectHealth>, KubeError> {
    let state = load_live(res, want).await?;
    let mut out = Vec::new();
    for comp in &want.rendered.components {
        let id = want.identity(&comp.name);
        for o in &comp.objects {
            let prepared = prepare_for(&o.value, &id);
            let Some(live) = state.live.get(&ObjectKey::of(&prepared)) else { continue };
            let health = live::check(res.client(), o.group(), o.kind(), live).await;
            out.push(ObjectHealth {
                component: comp.name.clone(),
                object: format!("{} {}", o.kind(), o.name()),
                health,
            });
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
    let desired_all: BTreeSet<ObjectKey> =
        prepared.iter().flat_map(|(_, objects)| objects.iter().map(ObjectKey::of)).collect();
    // Only what rekube created goes: a Namespace without its created-by mark is kept.
    let deletable = |v: &Value| !is_namespace(v) || applyset::created_by(v) == Some(scope.as_str());

    let mut components = Vec::new();
    for (comp, (identity, objects)) in want.rendered.components.iter().zip(prepared) {
        let id = identity.id();
        let mut actions = Vec::new();
        for prepared in objects {
            let key = ObjectKey::of(&prepared);
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
                    && !k.kind.is_empty()
                    && !k.name.is_empty()
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
        let parent = own.iter().find(|p| p.identity.as_ref() == Some(&identity));
        let first_apply = parent.is_none() && legacy_parent.is_none() && !parent_missing;
        let recorded = parent.map(|p| p.hooks.clone()).unwrap_or_default();
        let (hooks, hook_digests) = hook_runs(&comp.hooks, &identity, first_apply, &recorded);
        let delete_hooks = delete_hook_runs(&comp.hooks, &identity);
        let record_hooks = !first_apply && recorded != hook_digests;
        components.push(ComponentPlan {
            name: comp.name.clone(),
            identity,
            wave,
            needs: want.needs.get(&comp.name).cloned().unwrap_or_default(),
            removed: false,
            adopt: want.adopt.contains(&comp.name),
            legacy_parent,
            parent_missing,
            actions: indexed.into_iter().map(|(_, a)| a).collect(),
            hooks,
            hook_digests,
            delete_hooks,
            record_hooks,
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
            // Its hooks' leftovers go with it: they would keep its namespace.
            let leftovers = p.hook_leftovers(res).await?;
            let actions = deletion_order(
                live.iter()
                    .filter(|(k, v)| {
                        applyset::part_of(v) == Some(p.id.as_str()) && !desired_all.contains(*k) && deletable(v)
                    })
                    .map(|(_, v)| action(Op::Delete, v, None))
                    .chain(leftovers.iter().map(|v| action(Op::Delete, v, None))),
            );
            components.push(ComponentPlan {
                name: name.to_string(),
                identity: Identity::component(want.project, want.environment, name),
                wave: usize::MAX,
                needs: Vec::new(),
                removed: true,
                adopt: false,
                legacy_parent: None,
                parent_missing: false,
                actions,
                hooks: Vec::new(),
                hook_digests: BTreeMap::new(),
                delete_hooks: p.delete_hooks.clone(),
                record_hooks: false,
            });
        }
    }

    // Exact diffs for the candidates, from the server's own dry-run.
    let results = futures::stream::iter(dry_run.iter().copied())
        .map(|(ci, ai)| {
            let a = &components[ci].actions[ai];
            let obj = a.object.clone().expect("updates carry their object");
            let key = ObjectKey::of(&obj);
            let gk = applyset::group_kind(&key.group, &key.kind);
            let r = types.get(&gk).cloned();
            async move {
                let Some(r) = r else { return Ok((ci, ai, DryRun::Skipped)) };
                let api = api_for(client, &r, key.namespace.as_deref());
                // Bounded: a server that cannot apply a kind may hang on it instead of answering.
                let (params, patch) = (apply_params(true), Patch::Apply(&obj));
                let dry = tokio::time::timeout(DRY_RUN_TIMEOUT, api.patch(&key.name, &params, &patch));
                let Ok(result) = dry.await else { return Ok((ci, ai, DryRun::Unavailable)) };
                match result {
                    Ok(after) => Ok((ci, ai, DryRun::After(serde_json::to_value(&after).expect("serialises")))),
                    Err(kube::Error::Api(s)) if !immutable_fields(&s).is_empty() => {
                        Ok((ci, ai, DryRun::Immutable(immutable_fields(&s))))
                    }
                    // v1.20 drops the connection on every SSA of an APIService: compare here.
                    Err(e) if dropped(&e) => Ok((ci, ai, DryRun::Unavailable)),
                    Err(error) => {
                        Err(KubeError::Api { what: format!("dry-run apply of {} {}", key.kind, key.name), error })
                    }
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for r in results {
        let (ci, ai, after) = r?;
        let after = match after {
            DryRun::Skipped => continue,
            DryRun::Immutable(fields) => {
                let a = &mut components[ci].actions[ai];
                a.op = Op::Replace;
                a.immutable = fields;
                continue;
            }
            DryRun::After(after) => after,
            DryRun::Unavailable => {
                let a = &mut components[ci].actions[ai];
                let desired = a.object.as_ref().expect("object");
                let before = &live[&ObjectKey::of(desired)];
                let applied = rekube_plan::normalize::fold_string_data(desired);
                a.changes = rekube_plan::drift::object_drift(&a.kind, &applied, before, FIELD_MANAGER, &[])
                    .into_iter()
                    .map(|f| rekube_plan::FieldChange { path: f.path, before: f.live, after: f.applied })
                    .collect();
                if a.changes.is_empty() && live_hash(before) == live_hash(desired) {
                    a.op = Op::Unchanged;
                    a.object = None;
                }
                continue;
            }
        };
        let a = &components[ci].actions[ai];
        let before = &live[&ObjectKey::of(a.object.as_ref().expect("object"))];
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

/// The hooks an apply runs, and the digest of every hook to record. On a
/// component's first apply its install hooks run; later, its upgrade hooks
/// whose content changed since the last apply (so an unchanged platform runs
/// none). `test` hooks only run under `rekube test`.
pub fn hook_runs(
    hooks: &[Hook],
    identity: &Identity,
    first_apply: bool,
    recorded: &BTreeMap<String, String>,
) -> (Vec<HookRun>, BTreeMap<String, String>) {
    let (pre, post) = if first_apply {
        (HookEvent::PreInstall, HookEvent::PostInstall)
    } else {
        (HookEvent::PreUpgrade, HookEvent::PostUpgrade)
    };
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut digests = BTreeMap::new();
    for h in hooks {
        let object = prepare_hook(&h.object.value, identity);
        let key = ObjectKey::of(&object).to_string();
        let digest = rekube_plan::normalize::digest(&object);
        // Test hooks are recorded too (destroy deletes what `rekube test` left), never run here.
        let runs = !h.runs_at(HookEvent::Test) && (first_apply || recorded.get(&key) != Some(&digest));
        digests.insert(key, digest);
        if runs && h.runs_at(pre) {
            before.push(hook_run(h, pre, true, object.clone()));
        }
        if runs && h.runs_at(post) {
            after.push(hook_run(h, post, false, object));
        }
    }
    let mut runs = before;
    runs.extend(after);
    (runs, digests)
}

/// The `pre-delete` and `post-delete` hooks of a component, in order, as
/// destroy runs them.
pub fn delete_hook_runs(hooks: &[Hook], identity: &Identity) -> Vec<HookRun> {
    let mut runs = Vec::new();
    for (event, before) in [(HookEvent::PreDelete, true), (HookEvent::PostDelete, false)] {
        for h in hooks.iter().filter(|h| h.runs_at(event)) {
            runs.push(hook_run(h, event, before, prepare_hook(&h.object.value, identity)));
        }
    }
    runs
}

/// A hook as it runs: created as `object`, deleted as its policy says.
pub fn hook_run(h: &Hook, event: HookEvent, before: bool, object: Value) -> HookRun {
    HookRun {
        event: event.as_str().to_string(),
        api_version: h.object.api_version().to_string(),
        kind: h.object.kind().to_string(),
        namespace: h.object.namespace().map(str::to_string),
        name: h.object.name().to_string(),
        before,
        delete_on_success: h.deleted_on(DeletePolicy::HookSucceeded),
        delete_on_failure: h.deleted_on(DeletePolicy::HookFailed),
        object,
    }
}

/// A hook object labelled with the ApplySet it belongs to (not as a member).
pub fn prepare_hook(value: &Value, identity: &Identity) -> Value {
    let mut v = value.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Default::default()));
        if let Some(l) = labels.as_object_mut() {
            l.insert(HOOK_OF_LABEL.into(), Value::String(identity.id()));
        }
    }
    v
}

/// How long a server-side dry-run of one object may take (they take
/// milliseconds; v1.20 hangs on some APIService updates).
const DRY_RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What the server's dry-run of an update said.
enum DryRun {
    /// The object as it would be stored.
    After(Value),
    /// It refuses: these fields cannot change in place.
    Immutable(Vec<String>),
    /// Its type is not served yet (a CRD of this apply).
    Skipped,
    /// The server dropped the connection on it: the fields the spec sets are compared here.
    Unavailable,
}

/// The fields a refused update may not change, from the server's answer:
/// `field is immutable`, `may not change once set`, `updates to ... are
/// forbidden` (a StatefulSet's volumeClaimTemplates).
pub fn immutable_fields(s: &kube::core::Status) -> Vec<String> {
    let refusal = |m: &str| m.contains("immutable") || m.contains("may not change") || m.contains("are forbidden");
    if s.code != 422 {
        return Vec::new();
    }
    let mut fields: Vec<String> = s
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .filter(|c| refusal(&c.message) && !c.field.is_empty())
        .map(|c| c.field.clone())
        .collect();
    if fields.is_empty() && refusal(&s.message) {
        fields.push("(the server did not name the field)".into());
    }
    fields.sort();
    fields.dedup();
    fields
}

/// Deletes in a stable order, Namespaces last (their contents go first).
pub(crate) fn deletion_order(actions: impl Iterator<Item = Action>) -> Vec<Action> {
    let mut v: Vec<Action> = actions.collect();
    v.sort_by_key(|a| (a.is_namespace(), a.display_name()));
    v
}
