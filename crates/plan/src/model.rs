//! The plan as data: per component, one action per object, and the field
//! changes and hand changes it shows. Plain types only, so that diff and
//! drift (which produce them) depend on this module and not on each other.

use serde::Serialize;
use serde_json::Value;

/// `Kind namespace/name` (or `Kind name`), as every message names an object.
pub fn display_name(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// What apply will do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The object does not exist (or is not yet rekube's).
    Create,
    /// It exists and differs.
    Update,
    /// It left the spec (prune), or its component did.
    Delete,
    /// It exists and matches.
    Unchanged,
    /// It exists and belongs to no ApplySet or other tool: apply takes it
    /// over only when told to (`--adopt`, or `adopt: true` on the component).
    Adopt,
    /// It exists and belongs to someone else (another project, environment
    /// or component, or another tool): apply refuses, naming the owner.
    Conflict,
    /// A Namespace that rekube did not create (or a system namespace): used
    /// as it is, never written, never a member, never deleted.
    Use,
    /// It exists and differs in a field the server will not change in place
    /// (a Job's template, a selector, ...): it is deleted and created again,
    /// only with `--force-replace` or the object's `rekube.dev/replace: "true"`.
    Replace,
}

/// One changed field. Values of Secrets are never carried here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// `spec.template.spec.containers[0].image`.
    pub path: String,
    /// The live value (`None`: absent).
    pub before: Option<Value>,
    /// The value after apply (`None`: removed).
    pub after: Option<Value>,
}

/// One field changed by hand (drift), or reverted by an update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDrift {
    /// `spec.template.spec.containers[0].image`.
    pub path: String,
    /// What rekube applied (`None`: rekube did not set it).
    pub applied: Option<Value>,
    /// What is live (`None`: removed).
    pub live: Option<Value>,
    /// The field manager that owns the live value (`kubectl-edit`, ...).
    pub manager: Option<String>,
    /// `Update` or `Apply`.
    pub operation: Option<String>,
    /// When that manager last wrote the object (servers record no time
    /// for some subresource writes).
    pub time: Option<String>,
    /// The subresource it wrote through (`scale`), if any: since 1.22
    /// servers record `/scale` writers; before, nobody.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// One object's action.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// What happens.
    pub op: Op,
    /// `apiVersion`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Field changes (updates only), masked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// The object to apply (creates and updates), prepared; never printed.
    #[serde(skip)]
    pub object: Option<Value>,
    /// `Conflict`: who owns it. `Use`: why it is only used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `Replace`: the immutable fields the server named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub immutable: Vec<String>,
    /// Hand changes this update reverts (the spec is unchanged since the
    /// last apply, so every difference was made by someone else).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<FieldDrift>,
}

impl Action {
    /// `Kind namespace/name`.
    pub fn display_name(&self) -> String {
        display_name(&self.kind, self.namespace.as_deref(), &self.name)
    }

    /// The API group.
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// Whether it is a Namespace (created first, deleted last).
    pub fn is_namespace(&self) -> bool {
        self.group().is_empty() && self.kind == "Namespace"
    }

    /// Whether the object allows being deleted and created again:
    /// `rekube.dev/replace: "true"`, or Argo CD's `sync-options: Replace=true`.
    pub fn replace_allowed(&self) -> bool {
        let annotations = self.object.as_ref().and_then(|o| o.pointer("/metadata/annotations"));
        let text = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
        text("rekube.dev/replace") == Some("true")
            || text("argocd.argoproj.io/sync-options").is_some_and(|o| o.split(',').any(|x| x.trim() == "Replace=true"))
    }

    /// Whether it is a CustomResourceDefinition (created first, waited for).
    pub fn is_crd(&self) -> bool {
        self.group() == "apiextensions.k8s.io" && self.kind == "CustomResourceDefinition"
    }
}

/// One component's part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentPlan {
    /// The component.
    pub name: String,
    /// Its ApplySet.
    #[serde(skip)]
    pub identity: crate::applyset::Identity,
    /// Its wave (0-based): its depth in the `needs` graph, for display.
    pub wave: usize,
    /// The components it needs: apply starts it the moment they are all
    /// healthy (needs outside the plan, under `-c`, count as met).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Whether it left the spec (everything is deleted).
    pub removed: bool,
    /// Whether it may adopt existing objects (`adopt: true` or `--adopt`).
    pub adopt: bool,
    /// The pre-0.2 parent this component's members are migrated from; it is
    /// deleted once the component is applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_parent: Option<String>,
    /// Members exist but the ApplySet parent does not (deleted by hand, or
    /// kept objects of an earlier destroy): apply writes it again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub parent_missing: bool,
    /// Actions in apply order (Namespaces and CRDs first), deletes last.
    pub actions: Vec<Action>,
    /// Helm hooks this apply runs (pre ones before the actions, post ones
    /// once the component is healthy), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
    /// The digest of every hook of the component, recorded on its parent
    /// after the apply: a hook runs again only when its content changes.
    #[serde(skip)]
    pub hook_digests: std::collections::BTreeMap<String, String>,
    /// Its `pre-delete` and `post-delete` hooks, in order, recorded on its
    /// parent for destroy to run.
    #[serde(skip)]
    pub delete_hooks: Vec<HookRun>,
    /// Its hooks changed since they were recorded, though none runs now (a
    /// new `pre-delete` hook): apply records them again.
    #[serde(skip)]
    pub record_hooks: bool,
}

/// A Helm hook an apply runs: created (after deleting the one before),
/// waited for (Jobs complete, Pods succeed), deleted as its policy says.
#[derive(Debug, Clone, Serialize)]
pub struct HookRun {
    /// `pre-install`, `post-upgrade`, ...
    pub event: String,
    /// `apiVersion`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Whether it runs before the component's objects (else after).
    pub before: bool,
    /// Deleted once it succeeded (`hook-succeeded`).
    pub delete_on_success: bool,
    /// Deleted when it failed (`hook-failed`).
    pub delete_on_failure: bool,
    /// The object to create; never printed.
    #[serde(skip)]
    pub object: Value,
}

impl HookRun {
    /// `Kind namespace/name`.
    pub fn display_name(&self) -> String {
        display_name(&self.kind, self.namespace.as_deref(), &self.name)
    }

    /// Hooks as kept on the cluster (the ApplySet parent keeps its
    /// component's `pre-delete`/`post-delete` hooks, as Helm's release
    /// record does, so destroy runs what was installed without the spec).
    pub fn encode_all(hooks: &[HookRun]) -> String {
        let stored: Vec<Value> = hooks
            .iter()
            .map(|h| {
                serde_json::json!({"event": h.event, "before": h.before, "deleteOnSuccess": h.delete_on_success,
                    "deleteOnFailure": h.delete_on_failure, "object": h.object})
            })
            .collect();
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// What [`HookRun::encode_all`] wrote; what cannot be read is left out.
    pub fn decode_all(text: &str) -> Vec<HookRun> {
        let stored: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
        stored
            .into_iter()
            .filter_map(|s| {
                let object = s.get("object")?.clone();
                let text = |p: &str| object.pointer(p).and_then(Value::as_str).map(str::to_string);
                Some(HookRun {
                    event: s.get("event")?.as_str()?.to_string(),
                    api_version: text("/apiVersion")?,
                    kind: text("/kind")?,
                    namespace: text("/metadata/namespace"),
                    name: text("/metadata/name")?,
                    before: s.get("before")?.as_bool()?,
                    delete_on_success: s.get("deleteOnSuccess")?.as_bool()?,
                    delete_on_failure: s.get("deleteOnFailure")?.as_bool()?,
                    object,
                })
            })
            .collect()
    }
}

/// Counts of a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects to create.
    pub create: usize,
    /// Objects to update.
    pub update: usize,
    /// Objects to delete.
    pub delete: usize,
    /// Objects left alone.
    pub unchanged: usize,
    /// Existing objects to take over.
    pub adopt: usize,
    /// Objects that belong to someone else.
    pub conflict: usize,
    /// Namespaces used but not owned.
    #[serde(rename = "use")]
    pub used: usize,
    /// Objects deleted and created again (immutable fields).
    pub replace: usize,
}

/// A whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The project.
    pub project: String,
    /// The environment.
    pub environment: String,
    /// The cluster.
    pub cluster: String,
    /// Components in apply order (removed components last, in reverse order).
    pub components: Vec<ComponentPlan>,
}

impl Plan {
    /// Counts by operation.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for a in self.components.iter().flat_map(|c| &c.actions) {
            match a.op {
                Op::Create => s.create += 1,
                Op::Update => s.update += 1,
                Op::Delete => s.delete += 1,
                Op::Unchanged => s.unchanged += 1,
                Op::Adopt => s.adopt += 1,
                Op::Conflict => s.conflict += 1,
                Op::Use => s.used += 1,
                Op::Replace => s.replace += 1,
            }
        }
        s
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        let s = self.summary();
        s.create + s.update + s.delete + s.adopt + s.replace > 0
            || self.components.iter().any(|c| c.legacy_parent.is_some() || c.parent_missing || !c.hooks.is_empty())
    }

    /// Objects owned by someone else: apply refuses the whole plan.
    pub fn conflicts(&self) -> impl Iterator<Item = &Action> {
        self.components.iter().flat_map(|c| &c.actions).filter(|a| a.op == Op::Conflict)
    }

    /// Replacements that are not allowed (no `--force-replace`, no
    /// `rekube.dev/replace: "true"` on the object): apply refuses the whole plan.
    pub fn unapproved_replacements(&self, force: bool) -> impl Iterator<Item = &Action> {
        self.components
            .iter()
            .flat_map(|c| &c.actions)
            .filter(move |a| a.op == Op::Replace && !force && !a.replace_allowed())
    }

    /// Adoptions that are not allowed: apply refuses the whole plan.
    pub fn unapproved_adoptions(&self) -> impl Iterator<Item = (&ComponentPlan, &Action)> {
        self.components
            .iter()
            .filter(|c| !c.adopt)
            .flat_map(|c| c.actions.iter().filter(|a| a.op == Op::Adopt).map(move |a| (c, a)))
    }
}
