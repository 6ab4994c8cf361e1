//! Executing a plan: nothing at all when any object belongs to someone else
//! or would be adopted without leave; then the environment's namespace set;
//! then waves in order, the components of a wave in parallel; within a
//! component the ApplySet parent first, then Namespaces and CRDs (waiting
//! until CRDs are Established), then everything else in parallel, then
//! prunes, then the health gate. Unchanged objects are not written, so a
//! second apply writes nothing. Namespaces are created with a plain create,
//! never an apply, so one that appeared since the plan is never taken over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, Patch};
use kube::runtime::wait::{await_condition, conditions::is_crd_established};
use rekube_plan::applyset::{
    self, COMPONENT_LABEL, CONTAINS_ANNOTATION, DELETE_HOOKS_KEY, ENVIRONMENT_LABEL, FIELD_MANAGER, HOOKS_ANNOTATION,
    ID_LABEL, Identity, NAMESPACES_ANNOTATION, PARENT_NAMESPACE, PROJECT_LABEL, SOURCE_ANNOTATION, TOOLING_ANNOTATION,
};
use rekube_plan::{Action, ComponentPlan, HookRun, Op, Plan};
use rekube_render::Rendered;
use serde_json::{Value, json};

use crate::KubeError;
use crate::delete::{delete_object, delete_parent, emptied_namespaces, wait_gone};
use crate::hooks::{remove_all, run_hooks};
use crate::live::{Health, Resolver, check, has_rule};
use crate::report::{ApplyReport, ComponentOutcome, Event};
use crate::request::{api_for, apply_params, dropped, ensure_parent_namespace, parents_api, retry};

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Components applied at once (each starts when what it needs is done).
    pub concurrency: usize,
    /// Objects applied at once within a component.
    pub object_concurrency: usize,
    /// How long a component may take to become healthy.
    pub timeout: Duration,
    /// Server-side dry-run: nothing is persisted, no health waits.
    pub dry_run: bool,
    /// Skip health gates (CRDs still wait until Established).
    pub no_wait: bool,
    /// Adopt existing objects in every component (`--adopt`).
    pub adopt: bool,
    /// Replace objects whose immutable fields change (`--force-replace`).
    pub force_replace: bool,
    /// Where the spec is (`host:/path/rekube.yaml`), recorded on parents.
    pub source: String,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            object_concurrency: 16,
            timeout: Duration::from_secs(300),
            dry_run: false,
            no_wait: false,
            adopt: false,
            force_replace: false,
            source: String::new(),
        }
    }
}

/// Writes an ApplySet parent listing `group_kinds` and `namespaces`,
/// labelled with its identity.
async fn write_parent(
    res: &Resolver,
    identity: &Identity,
    group_kinds: &[String],
    namespaces: &[String],
    hooks: &str,
    delete_hooks: &[HookRun],
    opts: &ApplyOptions,
) -> Result<(), KubeError> {
    let api = parents_api(res.client());
    let name = identity.parent_name();
    let mut labels =
        json!({ID_LABEL: identity.id(), PROJECT_LABEL: identity.project, ENVIRONMENT_LABEL: identity.environment});
    if let Some(c) = &identity.component {
        labels[COMPONENT_LABEL] = json!(c);
    }
    let mut body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name, "namespace": PARENT_NAMESPACE,
            "labels": labels,
            "annotations": {
                TOOLING_ANNOTATION: concat!("rekube/v", env!("CARGO_PKG_VERSION")),
                CONTAINS_ANNOTATION: group_kinds.join(","),
                NAMESPACES_ANNOTATION: namespaces.join(","),
                SOURCE_ANNOTATION: opts.source,
                HOOKS_ANNOTATION: hooks,
            },
        },
    });
    // Left out when there are none: server-side apply then drops the old ones.
    if !delete_hooks.is_empty() {
        body["data"] = json!({DELETE_HOOKS_KEY: HookRun::encode_all(delete_hooks)});
    }
    let (params, patch) = (apply_params(opts.dry_run), Patch::Apply(&body));
    retry(|| api.patch(&name, &params, &patch))
        .await
        .map_err(KubeError::api(format!("write ApplySet parent {name}")))?;
    Ok(())
}

/// The live parent's group-kinds and recorded hook digests (as written).
async fn existing_parent(res: &Resolver, parent: &str) -> (Vec<String>, String) {
    let annotations = match parents_api(res.client()).get_opt(parent).await {
        Ok(Some(p)) => p.metadata.annotations.unwrap_or_default(),
        _ => Default::default(),
    };
    let kinds = annotations
        .get(CONTAINS_ANNOTATION)
        .map(|s| s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    (kinds, annotations.get(HOOKS_ANNOTATION).cloned().unwrap_or_else(|| "{}".into()))
}

/// Writes one object; `Some(note)` when it had to be written another way
/// than server-side apply (said in the output).
async fn write_object(res: &Resolver, a: &Action, dry_run: bool) -> Result<Option<String>, KubeError> {
    let obj = a.object.as_ref().expect("writes carry their object");
    let r =
        res.resolve(&a.api_version, &a.kind).await.map_err(KubeError::api(format!("discover {}", a.api_version)))?;
    let r = r.ok_or_else(|| KubeError::UnknownKind {
        api_version: a.api_version.clone(),
        kind: a.kind.clone(),
        file: a.display_name(),
        line: 0,
    })?;
    let api = api_for(res.client(), &r, a.namespace.as_deref());
    if a.op == Op::Create && a.is_namespace() {
        // A plain create: if it appeared since the plan, it is not ours.
        let body: DynamicObject = serde_json::from_value(obj.clone()).map_err(|e| KubeError::Api {
            what: format!("create {}", a.display_name()),
            error: kube::Error::SerdeError(e),
        })?;
        let mut cp = kube::api::PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        cp.dry_run = dry_run;
        return match retry(|| api.create(&cp, &body)).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(KubeError::AppearedSincePlan { object: a.display_name() }),
            Err(e) => Err(KubeError::Api { what: format!("create {}", a.display_name()), error: e }),
        };
    }
    if a.op == Op::Replace {
        // A server dry-run cannot show a replacement: the apply would be refused again.
        if dry_run {
            return Ok(None);
        }
        delete_object(res, a, false).await?;
        wait_gone(res, &[a], Duration::from_secs(300)).await?;
    }
    let (params, patch) = (apply_params(dry_run), Patch::Apply(obj));
    match retry(|| api.patch(&a.name, &params, &patch)).await {
        Ok(_) => Ok(None),
        // A server dry-run cannot place objects in a namespace this same
        // apply would create; they are checked when it exists.
        Err(kube::Error::Api(s))
            if dry_run && s.code == 404 && s.details.as_ref().is_some_and(|d| d.kind == "namespaces") =>
        {
            Ok(None)
        }
        // Some servers cannot server-side-apply some kinds at all (v1.20
        // drops the connection on every SSA of an APIService): create or
        // replace it instead, as rekube's field manager.
        Err(e) if dropped(&e) => {
            write_without_ssa(&api, a, obj, dry_run).await?;
            Ok(Some(format!(
                "{}: the server dropped the connection on every server-side apply of it; written with \
                 create/replace instead (field manager {FIELD_MANAGER})",
                a.display_name()
            )))
        }
        Err(e) => Err(KubeError::Api { what: format!("apply {}", a.display_name()), error: e }),
    }
}

/// Creates `obj`, or replaces the live one with it (a whole-object PUT).
async fn write_without_ssa(api: &Api<DynamicObject>, a: &Action, obj: &Value, dry_run: bool) -> Result<(), KubeError> {
    let what = || format!("create or replace {}", a.display_name());
    let serde = |e| KubeError::Api { what: what(), error: kube::Error::SerdeError(e) };
    let mut pp = kube::api::PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    pp.dry_run = dry_run;
    let live = retry(|| api.get_opt(&a.name)).await.map_err(KubeError::api(what()))?;
    let mut body: DynamicObject = serde_json::from_value(obj.clone()).map_err(serde)?;
    match live {
        None => retry(|| api.create(&pp, &body)).await.map(|_| ()),
        Some(l) => {
            body.metadata.resource_version = l.metadata.resource_version;
            retry(|| api.replace(&a.name, &pp, &body)).await.map(|_| ())
        }
    }
    .map_err(KubeError::api(what()))
}

/// One object a health gate waits for.
struct HealthTarget<'a> {
    api_version: &'a str,
    group: &'a str,
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
}

/// Polls health of `objects` until all are ready, one fails, or time runs out.
async fn wait_healthy(
    res: &Resolver,
    component: &str,
    objects: &[HealthTarget<'_>],
    timeout: Duration,
    on: &(dyn Fn(Event) + Sync),
) -> Result<(), KubeError> {
    let began = Instant::now();
    let mut last = String::new();
    loop {
        crate::stop::check()?;
        let mut pending = None;
        for o in objects {
            let Ok(Some(r)) = res.resolve(o.api_version, o.kind).await else { continue };
            let live = match api_for(res.client(), &r, o.namespace).get_opt(o.name).await {
                Ok(Some(live)) => serde_json::to_value(&live).expect("serialises"),
                Ok(None) => {
                    pending = Some(format!("{} {}: not found", o.kind, o.name));
                    break;
                }
                Err(error) => return Err(KubeError::Api { what: format!("{} {}", o.kind, o.name), error }),
            };
            match check(res.client(), o.group, o.kind, &live).await {
                Health::Ready => {}
                Health::Pending(p) => {
                    pending = Some(p);
                    break;
                }
                Health::Failed(reason) => return Err(KubeError::Unhealthy { reason }),
            }
        }
        let Some(p) = pending else { return Ok(()) };
        if began.elapsed() > timeout {
            return Err(KubeError::NotHealthy { seconds: timeout.as_secs(), pending: p });
        }
        if p != last {
            on(Event::WaitingHealth { component: component.to_string(), pending: p.clone() });
            last = p;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until each CRD of `crds` is Established, with kube-runtime's
/// condition on a watch (no polling).
async fn wait_established(res: &Resolver, crds: &[&Action], timeout: Duration) -> Result<(), KubeError> {
    let api: Api<CustomResourceDefinition> = Api::all(res.client().clone());
    let began = Instant::now();
    for a in crds {
        let left = timeout.saturating_sub(began.elapsed());
        let not_yet = |what: &str| KubeError::NotHealthy {
            seconds: timeout.as_secs(),
            pending: format!("{}: {what}", a.display_name()),
        };
        match tokio::time::timeout(left, await_condition(api.clone(), &a.name, is_crd_established())).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(KubeError::Watch { what: a.display_name(), error }),
            Err(_) => return Err(not_yet("not Established")),
        }
        // Established comes a moment before discovery serves the new kind.
        let spec = a.object.as_ref().map(|o| &o["spec"]);
        let group = spec.and_then(|s| s["group"].as_str()).unwrap_or_default();
        let kind = spec.and_then(|s| s["names"]["kind"].as_str()).unwrap_or_default();
        let versions = spec.and_then(|s| s["versions"].as_array());
        // What the resolver knew of the group predates the CRD.
        res.forget_group(group);
        let Some(version) = versions.and_then(|v| v.iter().find(|v| v["served"] == true)) else { continue };
        let api_version = format!("{group}/{}", version["name"].as_str().unwrap_or_default());
        while !matches!(res.resolve(&api_version, kind).await, Ok(Some(_))) {
            if began.elapsed() > timeout {
                return Err(not_yet("Established, but not yet served"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            res.forget_group(group);
        }
    }
    Ok(())
}

async fn apply_component(
    res: &Resolver,
    c: &ComponentPlan,
    rendered: &Rendered,
    ours: &BTreeSet<String>,
    opts: &ApplyOptions,
    on: &(dyn Fn(Event) + Sync),
) -> ComponentOutcome {
    match apply_component_inner(res, c, rendered, ours, opts, on).await {
        Ok(o) => o,
        Err(e) => ComponentOutcome::Failed(e.to_string()),
    }
}

async fn apply_component_inner(
    res: &Resolver,
    c: &ComponentPlan,
    rendered: &Rendered,
    ours: &BTreeSet<String>,
    opts: &ApplyOptions,
    on: &(dyn Fn(Event) + Sync),
) -> Result<ComponentOutcome, KubeError> {
    let name = c.name.as_str();
    let writes: Vec<&Action> =
        c.actions.iter().filter(|a| matches!(a.op, Op::Create | Op::Update | Op::Adopt | Op::Replace)).collect();
    let deletes: Vec<&Action> = c.actions.iter().filter(|a| a.op == Op::Delete).collect();
    let unchanged = c.actions.iter().filter(|a| a.op == Op::Unchanged).count();
    let total = writes.len();
    if total > 0 {
        on(Event::Applying { component: name.to_string(), done: 0, total });
    }

    let members = |a: &&Action| matches!(a.op, Op::Create | Op::Update | Op::Adopt | Op::Replace | Op::Unchanged);
    let mut kinds: Vec<String> =
        c.actions.iter().filter(members).map(|a| applyset::group_kind(a.group(), &a.kind)).collect();
    kinds.sort();
    kinds.dedup();
    let mut namespaces: Vec<String> = c.actions.iter().filter(members).filter_map(|a| a.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    let changes = !writes.is_empty()
        || !deletes.is_empty()
        || c.legacy_parent.is_some()
        || c.parent_missing
        || !c.hooks.is_empty()
        || c.record_hooks;
    if !c.removed && !opts.dry_run && changes {
        // Superset first (KEP-3659): a crash mid-apply must not hide members from prune.
        // Hooks are recorded only once they ran: a crash before runs them again.
        let (mut superset, ran) = existing_parent(res, &c.identity.parent_name()).await;
        superset.extend(kinds.iter().cloned());
        superset.sort();
        superset.dedup();
        write_parent(res, &c.identity, &superset, &namespaces, &ran, &c.delete_hooks, opts).await?;
    }
    if !opts.dry_run {
        run_hooks(res, name, c.hooks.iter().filter(|h| h.before), opts.timeout, on).await?;
    }

    let (first, rest): (Vec<&Action>, Vec<&Action>) = writes.iter().partition(|a| a.is_namespace() || a.is_crd());
    let mut done = 0;
    for batch in [first, rest] {
        let results = futures::stream::iter(batch.iter().copied())
            .map(|a| async move {
                crate::stop::check()?;
                write_object(res, a, opts.dry_run).await.map(|note| (a, note))
            })
            .buffer_unordered(opts.object_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut crds = Vec::new();
        for r in results {
            let (a, note) = r?;
            if let Some(what) = note {
                on(Event::Note { component: name.to_string(), what });
            }
            done += 1;
            if a.is_crd() {
                crds.push(a);
            }
        }
        if !batch.is_empty() {
            on(Event::Applying { component: name.to_string(), done, total });
        }
        if !crds.is_empty() && !opts.dry_run {
            wait_established(res, &crds, opts.timeout).await?;
        }
    }

    // A component removed from the spec is uninstalled: its pre-delete hooks first.
    if c.removed && !opts.dry_run {
        run_hooks(res, name, c.delete_hooks.iter().filter(|h| h.before), opts.timeout, on).await?;
    }
    // Prune: everything but namespaces first, so their contents go in order;
    // a namespace that still holds what is not ours is kept.
    let (ns_deletes, other_deletes): (Vec<&Action>, Vec<&Action>) = deletes.iter().partition(|a| a.is_namespace());
    let mut kept = Vec::new();
    for (i, batch) in [other_deletes, ns_deletes].into_iter().enumerate() {
        let batch =
            if i == 1 && !opts.dry_run { emptied_namespaces(res, batch, ours, &mut kept).await? } else { batch };
        let results = futures::stream::iter(batch)
            .map(|a| delete_object(res, a, opts.dry_run))
            .buffer_unordered(opts.object_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        for r in results {
            r?;
        }
    }
    for k in &kept {
        on(Event::Kept { component: name.to_string(), what: k.clone() });
    }
    if c.removed && !opts.dry_run {
        wait_gone(res, &deletes, opts.timeout).await?;
        run_hooks(res, name, c.delete_hooks.iter().filter(|h| !h.before), opts.timeout, on).await?;
        remove_all(res, &c.delete_hooks, opts.timeout).await?;
        delete_parent(res, &c.identity.parent_name()).await?;
    }

    if !opts.dry_run && !opts.no_wait && !c.removed {
        let objs: Vec<_> = rendered
            .components
            .iter()
            .filter(|rc| rc.name == name)
            .flat_map(|rc| rc.objects.iter())
            .filter(|o| has_rule(o.group(), o.kind()))
            .map(|o| HealthTarget {
                api_version: o.api_version(),
                group: o.group(),
                kind: o.kind(),
                namespace: o.namespace(),
                name: o.name(),
            })
            .collect();
        wait_healthy(res, name, &objs, opts.timeout, on).await?;
    }
    if !opts.dry_run && !c.removed {
        run_hooks(res, name, c.hooks.iter().filter(|h| !h.before), opts.timeout, on).await?;
    }
    // The final inventory, and the hooks that ran, once all went well.
    if !c.removed && !opts.dry_run && changes {
        let hooks = serde_json::to_string(&c.hook_digests).unwrap_or_default();
        write_parent(res, &c.identity, &kinds, &namespaces, &hooks, &c.delete_hooks, opts).await?;
        if let Some(legacy) = &c.legacy_parent {
            // Migrated: every member now carries the new id.
            delete_parent(res, legacy).await?;
        }
    }
    Ok(ComponentOutcome::Done { written: total, deleted: deletes.len(), unchanged })
}

/// Refuses a plan that would write what belongs to someone else, or adopt
/// without leave.
pub fn check_ownership(plan: &Plan, opts: &ApplyOptions) -> Result<(), KubeError> {
    let conflicts: Vec<String> = plan
        .conflicts()
        .map(|a| format!("{}: belongs to {}", a.display_name(), a.owner.as_deref().unwrap_or("someone else")))
        .collect();
    let adoptions: Vec<String> = if opts.adopt {
        Vec::new()
    } else {
        plan.unapproved_adoptions().map(|(c, a)| format!("{} (component `{}`)", a.display_name(), c.name)).collect()
    };
    if !conflicts.is_empty() || !adoptions.is_empty() {
        return Err(KubeError::Refused { conflicts, adoptions });
    }
    let replacements: Vec<String> = plan
        .unapproved_replacements(opts.force_replace)
        .map(|a| format!("{}: immutable {}", a.display_name(), a.immutable.join(", ")))
        .collect();
    if replacements.is_empty() { Ok(()) } else { Err(KubeError::ReplaceRefused { objects: replacements }) }
}

/// Applies `plan`: the namespace set first, then every component the moment
/// everything it `needs` has converged, up to `concurrency` at once. A
/// failure skips exactly its transitive dependents; every other component
/// runs to the end. Components removed from the spec go last (nothing in
/// the spec may need them). Refuses the whole plan, before writing
/// anything, when an object belongs to someone else or would be adopted
/// without leave.
pub async fn apply(
    res: &Resolver,
    plan: &Plan,
    rendered: &Rendered,
    opts: &ApplyOptions,
    on: &(dyn Fn(Event) + Sync),
) -> Result<ApplyReport, KubeError> {
    check_ownership(plan, opts)?;
    if plan.has_changes() {
        ensure_parent_namespace(res.client(), opts.dry_run).await?;
    }
    // Objects of any of this environment's ApplySets are ours in a namespace being deleted.
    let ours: BTreeSet<String> = plan.components.iter().map(|c| c.identity.id()).collect();
    let ours = &ours;
    // The namespace set: created before every component, pruned after the last.
    let namespace_set = plan.components.iter().find(|c| c.identity.component.is_none());
    let ns_deletes: Vec<&Action> =
        namespace_set.iter().flat_map(|c| c.actions.iter().filter(|a| a.op == Op::Delete)).collect();
    let wanted: Vec<&ComponentPlan> =
        plan.components.iter().filter(|c| c.identity.component.is_some() && !c.removed).collect();
    let removed: Vec<&ComponentPlan> = plan.components.iter().filter(|c| c.removed).collect();
    let in_plan: BTreeSet<&str> = wanted.iter().map(|c| c.name.as_str()).collect();
    for c in wanted.iter().filter(|c| c.needs.iter().any(|n| in_plan.contains(n.as_str()))) {
        on(Event::Waiting { component: c.name.clone() });
    }
    let mut report = ApplyReport::default();
    if let Some(c) = namespace_set {
        let writes =
            ComponentPlan { actions: c.actions.iter().filter(|a| a.op != Op::Delete).cloned().collect(), ..c.clone() };
        let o = apply_component(res, &writes, rendered, ours, opts, on).await;
        on(Event::Done { component: c.name.clone(), outcome: o.clone() });
        report.components.push((c.name.clone(), o));
    }
    if report.failed() {
        for c in wanted.iter().chain(&removed) {
            let o = ComponentOutcome::Skipped { need: rekube_render::NAMESPACES.to_string(), failed: true };
            on(Event::Done { component: c.name.clone(), outcome: o.clone() });
            report.components.push((c.name.clone(), o));
        }
        return Ok(report);
    }
    report.components.extend(run_graph(res, &wanted, rendered, ours, opts, on).await);
    if report.failed() {
        for c in &removed {
            let o = ComponentOutcome::Skipped { need: "every component of the spec".into(), failed: true };
            on(Event::Done { component: c.name.clone(), outcome: o.clone() });
            report.components.push((c.name.clone(), o));
        }
        return Ok(report);
    }
    report.components.extend(run_graph(res, &removed, rendered, ours, opts, on).await);
    if !report.failed() && !ns_deletes.is_empty() {
        let deleted = prune_namespaces(res, ns_deletes, ours, opts, on).await?;
        if let Some((_, ComponentOutcome::Done { deleted: d, .. })) =
            report.components.iter_mut().find(|(n, _)| *n == rekube_render::NAMESPACES)
        {
            *d += deleted;
        }
    }
    Ok(report)
}

/// Runs `components` as their `needs` allow: each starts once every need in
/// this set is done, up to `concurrency` at once; a need that failed or was
/// skipped skips it. Needs outside the set count as met. Outcomes in the
/// order they ended.
async fn run_graph(
    res: &Resolver,
    components: &[&ComponentPlan],
    rendered: &Rendered,
    ours: &BTreeSet<String>,
    opts: &ApplyOptions,
    on: &(dyn Fn(Event) + Sync),
) -> Vec<(String, ComponentOutcome)> {
    let in_set: BTreeSet<&str> = components.iter().map(|c| c.name.as_str()).collect();
    let mut ended: BTreeMap<String, bool> = BTreeMap::new();
    let mut out = Vec::new();
    let mut waiting: Vec<&ComponentPlan> = components.to_vec();
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        // Skip what needs a failure, start what is ready, in spec order.
        let mut i = 0;
        while i < waiting.len() {
            let c = waiting[i];
            let needs: Vec<&String> = c.needs.iter().filter(|n| in_set.contains(n.as_str())).collect();
            if let Some(n) = needs.iter().find(|n| ended.get(n.as_str()) == Some(&false)) {
                let failed = out.iter().any(|(name, o): &(String, ComponentOutcome)| {
                    name == *n && matches!(o, ComponentOutcome::Failed(_))
                });
                let o = ComponentOutcome::Skipped { need: n.to_string(), failed };
                on(Event::Done { component: c.name.clone(), outcome: o.clone() });
                ended.insert(c.name.clone(), false);
                out.push((c.name.clone(), o));
                waiting.remove(i);
                i = 0; // a skip may skip others before it
                continue;
            }
            let ready = needs.iter().all(|n| ended.get(n.as_str()) == Some(&true));
            if ready && crate::stop::requested() {
                let o = ComponentOutcome::Failed(KubeError::Interrupted.to_string());
                on(Event::Done { component: c.name.clone(), outcome: o.clone() });
                ended.insert(c.name.clone(), false);
                out.push((c.name.clone(), o));
                waiting.remove(i);
                continue;
            }
            if ready && running.len() < opts.concurrency.max(1) {
                waiting.remove(i);
                running.push(async move {
                    let o = apply_component(res, c, rendered, ours, opts, on).await;
                    on(Event::Done { component: c.name.clone(), outcome: o.clone() });
                    (c.name.clone(), o)
                });
                continue;
            }
            i += 1;
        }
        let Some((name, o)) = running.next().await else { break };
        ended.insert(name.clone(), o.is_done());
        out.push((name, o));
    }
    // A cycle (the spec's validation refuses them) leaves components waiting.
    for c in waiting {
        let o = ComponentOutcome::Failed("its `needs` form a cycle".into());
        on(Event::Done { component: c.name.clone(), outcome: o.clone() });
        out.push((c.name.clone(), o));
    }
    out
}

/// Deletes the Namespaces no component uses any more, except those that
/// still hold what is not ours; returns how many went.
async fn prune_namespaces(
    res: &Resolver,
    deletes: Vec<&Action>,
    ours: &BTreeSet<String>,
    opts: &ApplyOptions,
    on: &(dyn Fn(Event) + Sync),
) -> Result<usize, KubeError> {
    let mut kept = Vec::new();
    let go = if opts.dry_run { deletes } else { emptied_namespaces(res, deletes, ours, &mut kept).await? };
    for k in kept {
        on(Event::Kept { component: rekube_render::NAMESPACES.to_string(), what: k });
    }
    for a in &go {
        delete_object(res, a, opts.dry_run).await?;
    }
    if !opts.dry_run && !go.is_empty() {
        on(Event::WaitingHealth {
            component: rekube_render::NAMESPACES.to_string(),
            pending: format!("{} namespace(s) to disappear", go.len()),
        });
        wait_gone(res, &go, opts.timeout).await?;
    }
    Ok(go.len())
}
