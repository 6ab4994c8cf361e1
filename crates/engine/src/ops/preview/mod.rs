//! Previews: a copy of an environment's components on a shared cluster,
//! under its own identity (`preview.<name>`), in its own namespaces, with
//! its own values, host and lifetime. Everything rekube knows of safe
//! ownership applies: a preview's ApplySets, Lease and namespaces are its
//! own, so `down` of one never touches another or its source.
//!
//! Cluster-scoped objects are not copied: one whose name carries the
//! preview's Helm release is the preview's own; any other is shared with
//! the live object when they are the same (labels and annotations aside),
//! and refused before anything is written when they are not.

pub mod record;
pub mod shape;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rekube_kube::{ApplyOptions, DestroyWait, Resolver};
use rekube_render::{Object, Scope};
use rekube_spec::Loaded;
use serde::Serialize;
use serde_json::Value;

use crate::EngineError;
use crate::context::{Context, Select, running_client};
use crate::ops::converge::{apply_planned, leased};
use crate::steps::{ApplyRun, DestroyRun, Event, Observer};
use crate::workspace::{RenderFlags, named_cluster, project_scope, provider_cluster, spec_source};
pub use record::Record;
pub use shape::{Request, env_id};

/// `preview up` ended.
#[derive(Debug, Clone)]
pub struct UpRun {
    /// The preview's record as written.
    pub record: Record,
    /// Its cluster.
    pub cluster: String,
    /// The apply.
    pub apply: ApplyRun,
    /// Whether the record existed before (an update in place).
    pub updated: bool,
    /// Secrets copied from the source environment.
    pub copied_secrets: Vec<String>,
    /// How long it took.
    pub seconds: f64,
}

/// Brings preview `req.name` up (or updates it in place) and waits for it
/// to be healthy, unless `opts.no_wait`.
pub async fn up(
    loaded: &Loaded,
    req: &Request,
    flags: &RenderFlags,
    opts: ApplyOptions,
    break_lock: bool,
    on: Observer<'_>,
) -> Result<UpRun, EngineError> {
    let began = Instant::now();
    let derived = shape::derive(loaded, req)?;
    let flags = RenderFlags { release_prefix: Some(req.name.clone()), ..flags.clone() };
    let mut ctx = Context::new(derived.loaded, &derived.env, &Select::default(), &flags).await?;
    shape::reshape(&mut ctx.rendered, &derived.namespaces, &derived.hosts);
    for c in ctx.rendered.spec_components().filter(|c| !derived.hosts.contains_key(&c.name)) {
        if let Some(ing) = c.objects.iter().find(|o| o.kind() == "Ingress") {
            on(Event::Line(format!(
                "warning: component `{}` has no `preview: {{ host }}`: its Ingress {} keeps the source's host",
                c.name,
                ing.name()
            )));
        }
    }
    let shared = share_cluster_scoped(&mut ctx, &req.name).await?;
    let copied_secrets =
        if req.copy_secrets { copy_secrets(loaded, &req.from, &mut ctx, &derived.namespaces).await? } else { vec![] };
    let client = ctx.resolver.client().clone();
    let project = ctx.loaded.project().0;
    // `leased` names the environment after it: `rekube preview up preview.feat-1`.
    let command = "preview up".to_string();
    let body = async {
        let plan = ctx.plan().await?;
        rekube_kube::check_ownership(&plan, &opts)?;
        let existing = Record::get(&client, &project, &req.name).await?;
        if let Some(r) = existing.as_ref().filter(|r| r.from != req.from) {
            return Err(EngineError::Preview {
                message: format!("preview `{}` exists, copied from environment `{}`", req.name, r.from),
                hint: format!("`rekube preview down {}` first, or choose another name", req.name),
            });
        }
        let now = Utc::now();
        let record = Record {
            name: req.name.clone(),
            from: req.from.clone(),
            created: existing.as_ref().map_or(now, |r| r.created),
            // parse_ttl caps a lifetime at a year: no overflow here.
            expires: now + chrono::Duration::from_std(derived.ttl).unwrap_or(chrono::Duration::days(366)),
            waves: derived.waves.clone(),
            hosts: derived.hosts.clone(),
            namespaces: derived.namespaces.values().cloned().collect(),
            shared: shared.clone(),
            applied_from: spec_source(loaded),
        };
        // Written before the first object: a preview killed half-way is still listed and collected.
        record.save(&client, &project).await?;
        let mut opts = opts;
        opts.source = ctx.source.clone();
        let apply = apply_planned(&ctx, plan, opts, began, on).await?;
        Ok((record, apply, existing.is_some()))
    };
    let (record, apply, updated) = leased(&client, &ctx.loaded, &ctx.env, &command, break_lock, on, body).await?;
    let cluster = derived.cluster;
    Ok(UpRun { record, cluster, apply, updated, copied_secrets, seconds: began.elapsed().as_secs_f64() })
}

/// Takes the cluster-scoped objects that are not the preview's own out of
/// its rendering when the cluster has them as they are; refuses the
/// preview, before any write, when one differs or is missing.
async fn share_cluster_scoped(ctx: &mut Context, name: &str) -> Result<Vec<String>, EngineError> {
    let crds: Vec<Object> =
        ctx.rendered.objects().filter(|(_, o)| rekube_render::is_crd(o)).map(|(_, o)| o.clone()).collect();
    let mut shared = Vec::new();
    let mut refused = Vec::new();
    for comp in ctx.rendered.components.iter_mut().filter(|c| c.name != rekube_render::NAMESPACES) {
        let release = format!("{name}-{}", comp.name);
        let mut kept = Vec::new();
        for obj in std::mem::take(&mut comp.objects) {
            let cluster_scoped = match rekube_render::scope(obj.group(), obj.kind(), &crds) {
                Scope::Cluster => true,
                Scope::Namespaced => false,
                Scope::Unknown => obj.namespace().is_none(),
            };
            if !cluster_scoped || rekube_plan::normalize::is_namespace(&obj.value) || carries(obj.name(), &release) {
                kept.push(obj);
                continue;
            }
            let what = format!("{} {}", obj.kind(), obj.name());
            match rekube_kube::members::get_object(&ctx.resolver, obj.api_version(), obj.kind(), None, obj.name())
                .await?
            {
                Some((live, _)) => match differs_at(&obj.value, &live) {
                    None => shared.push(what),
                    Some(at) => refused
                        .push(format!("{what}: differs from the one on the cluster at `{at}` ({})", owner(&live))),
                },
                None => refused.push(format!("{what}: not on the cluster, and its name does not carry the preview's")),
            }
        }
        comp.objects = kept;
    }
    if refused.is_empty() {
        return Ok(shared);
    }
    Err(EngineError::Preview {
        message: format!(
            "preview `{name}` would need its own copy of cluster-scoped objects:\n  {}",
            refused.join("\n  ")
        ),
        hint: "previews share cluster-scoped objects (CRDs, ClusterRoles, webhooks) with the source environment \
               when they are the same: apply the source environment to this cluster first, keep its values for \
               them, or template their names with `{{ .Release.Name }}` so each preview gets its own"
            .into(),
    })
}

/// Whether `name` starts with `release` as a whole part, or after a `:`
/// (`feat-1-web-editor`, `system:feat-1-web`), as Helm charts name
/// cluster-scoped objects from the release; not `team-feat-1-web` (a fixed
/// name that happens to end so) nor `feat-1-webhook`.
fn carries(name: &str, release: &str) -> bool {
    name.match_indices(release).any(|(i, _)| {
        let before = name[..i].chars().next_back();
        let after = name[i + release.len()..].chars().next();
        matches!(before, None | Some(':')) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// The first field of `desired` outside `metadata` that is not so on
/// `live` (`rules[0].verbs`), or `None` when the cluster's copy will do.
fn differs_at(desired: &Value, live: &Value) -> Option<String> {
    let mut d = desired.clone();
    rekube_plan::normalize::default_port_protocols(&mut d);
    if let Some(m) = d.as_object_mut() {
        // The server's: a CRD's status, an aggregated ClusterRole's rules.
        m.remove("metadata");
        m.remove("status");
        if m.contains_key("aggregationRule") {
            m.remove("rules");
        }
    }
    rekube_plan::diff::subset_mismatch(&d, live).map(|at| if at.is_empty() { "(the object)".into() } else { at })
}

fn owner(live: &Value) -> String {
    if let Some(o) = rekube_plan::applyset::foreign_owner(live) {
        return format!("owned by {o}");
    }
    match rekube_plan::applyset::part_of(live) {
        Some(id) => format!("a member of rekube ApplySet {id}"),
        None => "made outside rekube".into(),
    }
}

/// `--copy-secrets`: the Secrets of the source environment's namespaces
/// that the preview does not render itself, into the preview's namespaces
/// (as its members, so `down` deletes them).
async fn copy_secrets(
    loaded: &Loaded,
    from: &str,
    ctx: &mut Context,
    namespaces: &BTreeMap<String, String>,
) -> Result<Vec<String>, EngineError> {
    let (source_cluster, _) = provider_cluster(loaded, from)?;
    let client = running_client(&source_cluster, from).await?;
    let rendered: BTreeSet<(String, String)> = ctx
        .rendered
        .objects()
        .filter(|(_, o)| o.kind() == "Secret" && o.group().is_empty())
        .map(|(_, o)| (o.namespace().unwrap_or_default().to_string(), o.name().to_string()))
        .collect();
    let mut copied = Vec::new();
    for (old, new) in namespaces {
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), old);
        let list = api
            .list(&Default::default())
            .await
            .map_err(rekube_kube::KubeError::api(format!("list the Secrets of namespace {old}")))?;
        let Some(comp) = ctx.rendered.components.iter_mut().find(|c| c.namespace.as_deref() == Some(new.as_str()))
        else {
            continue;
        };
        for s in list.items {
            let name = s.metadata.name.clone().unwrap_or_default();
            let kind = s.type_.as_deref().unwrap_or("Opaque");
            let made_by_rekube =
                s.metadata.labels.as_ref().is_some_and(|l| l.contains_key(rekube_plan::applyset::PART_OF_LABEL));
            if made_by_rekube
                || rendered.contains(&(new.clone(), name.clone()))
                || kind == "kubernetes.io/service-account-token"
                || kind.starts_with("helm.sh/")
            {
                continue;
            }
            let value = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": new},
                "type": kind,
                "data": s.data,
            });
            let origin =
                rekube_render::Origin { file: format!("(copied from {old}/{name} by --copy-secrets)").into(), line: 1 };
            copied.push(format!("{old}/{name} → {new}/{name}"));
            comp.objects.push(Object { value, origin });
        }
    }
    Ok(copied)
}

/// The clusters that may hold previews: `previews.cluster`; else `from`'s
/// cluster; else every environment's.
fn preview_clusters(loaded: &Loaded, from: Option<&str>) -> Result<Vec<(String, String)>, EngineError> {
    let live = |env: &str| crate::workspace::live_cluster(loaded, env);
    if let Some(c) = loaded.spec.previews.as_ref().and_then(|p| p.value.cluster.as_ref()) {
        let env = loaded.spec.environments.keys().find(|n| live(n).is_ok_and(|l| l == c.value)).cloned();
        let env = env.unwrap_or_else(|| format!("<an environment on cluster {}>", c.value));
        return Ok(vec![(c.value.clone(), env)]);
    }
    if let Some(env) = from {
        return Ok(vec![(live(env)?, env.to_string())]);
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for name in loaded.spec.environments.keys() {
        let cluster = live(name)?;
        if !out.iter().any(|(c, _)| *c == cluster) {
            out.push((cluster, name.clone()));
        }
    }
    Ok(out)
}

/// A client for each cluster that may hold previews and exists.
async fn clients(loaded: &Loaded, from: Option<&str>) -> Result<Vec<(String, kube::Client)>, EngineError> {
    let mut out = Vec::new();
    let candidates = preview_clusters(loaded, from)?;
    let only_one = candidates.len() == 1;
    for (name, env) in candidates {
        let (cluster, _) = named_cluster(loaded, &name);
        match running_client(&cluster, &env).await {
            Ok(c) => out.push((name, c)),
            // With no `previews.cluster`, an environment whose cluster is not up holds none.
            Err(EngineError::ClusterAbsent { .. }) if !only_one => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// One preview, as `preview list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewStatus {
    /// Its name.
    pub name: String,
    /// The environment it copies.
    pub from: String,
    /// Its cluster.
    pub cluster: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it expires.
    pub expires: DateTime<Utc>,
    /// Seconds since it was made.
    pub age_seconds: i64,
    /// Seconds until it expires (negative: expired, `preview gc` deletes it).
    pub ttl_left_seconds: i64,
    /// `healthy`, or what is not ready yet.
    pub health: String,
    /// Its objects.
    pub objects: usize,
    /// Its URLs (`http://<host>/`, one per component with a preview host).
    pub urls: Vec<String>,
    /// Its namespaces.
    pub namespaces: Vec<String>,
    /// Cluster-scoped objects it shares.
    pub shared: Vec<String>,
}

/// Every preview of the project on the clusters that may hold previews.
pub async fn list(loaded: &Loaded, from: Option<&str>) -> Result<Vec<PreviewStatus>, EngineError> {
    let project = loaded.project().0;
    let now = Utc::now();
    let mut out = Vec::new();
    for (cluster, client) in clients(loaded, from).await? {
        let resolver = Resolver::new(client.clone());
        let records = Record::list(&client, &project).await?;
        let envs: Vec<String> = records.iter().map(|r| env_id(&r.name)).collect();
        let mut counts = rekube_kube::members::census(&resolver, &project, &envs).await?;
        for r in records {
            let census = counts.remove(&env_id(&r.name)).unwrap_or_default();
            let health = match census.waiting.first() {
                _ if census.objects == 0 => "nothing applied".to_string(),
                None => "healthy".to_string(),
                Some(w) => format!("progressing: {w}"),
            };
            out.push(PreviewStatus {
                name: r.name.clone(),
                from: r.from.clone(),
                cluster: cluster.clone(),
                created: r.created,
                expires: r.expires,
                age_seconds: (now - r.created).num_seconds(),
                ttl_left_seconds: (r.expires - now).num_seconds(),
                health,
                objects: census.objects,
                urls: r.hosts.values().map(|h| format!("http://{h}/")).collect(),
                namespaces: r.namespaces.clone(),
                shared: r.shared.clone(),
            });
        }
    }
    Ok(out)
}

/// `preview down` ended.
#[derive(Debug, Clone)]
pub struct DownRun {
    /// The preview.
    pub name: String,
    /// Its cluster.
    pub cluster: String,
    /// The destroy.
    pub destroy: DestroyRun,
}

/// Deletes everything of preview `name`, then its record.
pub async fn down(
    loaded: &Loaded,
    name: &str,
    from: Option<&str>,
    wait: DestroyWait,
    break_lock: bool,
    on: Observer<'_>,
) -> Result<DownRun, EngineError> {
    shape::check_name(name)?;
    let project = loaded.project().0;
    let mut searched = Vec::new();
    for (cluster, client) in clients(loaded, from).await? {
        let record = Record::get(&client, &project, name).await?;
        let env = env_id(name);
        let applysets = rekube_kube::environment_applysets(&client, &project, &env, None).await?;
        if record.is_none() && applysets.is_empty() {
            searched.push(cluster);
            continue;
        }
        let waves = record.map(|r| r.waves).unwrap_or_default();
        let destroy = destroy(loaded, &client, name, &waves, wait, break_lock, on, None).await?;
        let Some(destroy) = destroy else { unreachable!("only gc asks to keep a preview that is not expired") };
        return Ok(DownRun { name: name.to_string(), cluster, destroy });
    }
    Err(EngineError::NoPreview { name: name.to_string(), project, cluster: searched.join(", ") })
}

/// Destroys preview `name` under its lease, then deletes its record. With
/// `expired_at`, only when its record (read again under the lease: an `up`
/// may have renewed it since) has expired by then; `None` when it had not.
#[expect(clippy::too_many_arguments, reason = "the one place that destroys a preview; each caller passes all")]
async fn destroy(
    loaded: &Loaded,
    client: &kube::Client,
    name: &str,
    waves: &[Vec<String>],
    wait: DestroyWait,
    break_lock: bool,
    on: Observer<'_>,
    expired_at: Option<DateTime<Utc>>,
) -> Result<Option<DestroyRun>, EngineError> {
    let began = Instant::now();
    let env = env_id(name);
    let resolver = Resolver::new(client.clone());
    let order: Vec<Vec<String>> = waves.iter().rev().cloned().collect();
    let (project, source) = project_scope(loaded);
    let command = "preview down".to_string();
    let report = leased(client, loaded, &env, &command, break_lock, on, async {
        if let Some(at) = expired_at
            && Record::get(client, &project, name).await?.is_some_and(|r| !r.expired(at))
        {
            on(Event::Line(format!("preview `{name}` was renewed since gc listed it: kept")));
            return Ok(None);
        }
        let report = rekube_kube::destroy(&resolver, &project, &env, source.as_deref(), &order, wait, &|e| {
            on(Event::Component(e))
        })
        .await?;
        // The record goes with the last of the preview's ApplySets: one kept (a
        // namespace holding what rekube did not make) keeps it listed and collected.
        let left = rekube_kube::environment_applysets(client, &project, &env, None).await?;
        if !report.failed() && left.is_empty() {
            Record::delete(client, &project, name).await?;
        }
        Ok::<_, EngineError>(Some((report, left.len())))
    })
    .await?;
    let Some((report, left)) = report else { return Ok(None) };
    let deleted = report.deleted();
    let run = DestroyRun { env, report, deleted, seconds: began.elapsed().as_secs_f64() };
    on(Event::Destroyed(Box::new(run.clone())));
    if left > 0 && !run.report.failed() {
        return Err(EngineError::Preview {
            message: format!("preview `{name}` is not gone: {left} of its ApplySets kept what they hold (see above)"),
            hint: format!(
                "rekube deletes only what it made: move or delete what is left in its namespaces, then run \
                 `rekube preview down {name}` again; `preview list` still shows it"
            ),
        });
    }
    Ok(Some(run))
}

/// How many expired previews `gc` deletes at once.
const GC_CONCURRENCY: usize = 8;

/// `preview gc` ended.
#[derive(Debug, Clone, Default)]
pub struct GcRun {
    /// Expired previews deleted (or, in a dry-run, that would be).
    pub deleted: Vec<String>,
    /// Expired previews whose deletion failed, with why.
    pub failed: Vec<(String, String)>,
    /// Previews left because they have not expired.
    pub kept: usize,
}

/// Deletes every expired preview of the project (by the expiry recorded on
/// the cluster, so any machine can run it).
pub async fn gc(
    loaded: &Loaded,
    from: Option<&str>,
    dry_run: bool,
    wait: DestroyWait,
    break_lock: bool,
    on: Observer<'_>,
) -> Result<GcRun, EngineError> {
    let project = loaded.project().0;
    let now = Utc::now();
    let mut run = GcRun::default();
    for (_, client) in clients(loaded, from).await? {
        let (expired, kept): (Vec<Record>, Vec<Record>) =
            Record::list(&client, &project).await?.into_iter().partition(|r| r.expired(now));
        run.kept += kept.len();
        if dry_run {
            run.deleted.extend(expired.into_iter().map(|r| r.name));
            continue;
        }
        // Each preview has its own lease: they go side by side (each namespace takes the
        // controller-manager's 5 s deletion grace).
        let client = &client;
        let results: Vec<(String, Result<Option<DestroyRun>, EngineError>)> = futures::stream::iter(expired)
            .map(|r| async move {
                on(Event::Line(format!("preview `{}` expired at {}: deleting it", r.name, r.expires)));
                // Side by side, each progress line names its preview: `pr-1/web: deleting`.
                let named = |e: Event| match e {
                    Event::Component(mut c) => {
                        let component = c.component_mut();
                        *component = format!("{}/{component}", r.name);
                        on(Event::Component(c));
                    }
                    e => on(e),
                };
                let result = destroy(loaded, client, &r.name, &r.waves, wait, break_lock, &named, Some(now)).await;
                (r.name, result)
            })
            .buffer_unordered(GC_CONCURRENCY)
            .collect()
            .await;
        for (name, result) in results {
            match result {
                Ok(None) => run.kept += 1,
                Ok(Some(d)) if !d.report.failed() => run.deleted.push(name),
                Ok(Some(_)) => run.failed.push((name, "some objects could not be deleted (see above)".into())),
                Err(e) => run.failed.push((name, e.to_string())),
            }
        }
    }
    run.deleted.sort();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::{carries, differs_at};
    use serde_json::json;

    #[test]
    fn a_shared_object_differs_at_the_first_field_the_cluster_lacks() {
        let desired = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r", "labels": {"app.kubernetes.io/instance": "pr-1-web"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        let live = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r", "uid": "u", "labels": {"app.kubernetes.io/instance": "web"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
        assert_eq!(differs_at(&desired, &live).as_deref(), Some("rules[0].verbs"));
        let mut matching = live.clone();
        matching["rules"][0]["verbs"] = json!(["get"]);
        assert_eq!(differs_at(&desired, &matching), None, "labels and annotations aside");
        let crd = json!({"kind": "CustomResourceDefinition", "spec": {"group": "g"},
            "status": {"acceptedNames": {"kind": "", "plural": ""}, "conditions": []}});
        let live_crd = json!({"kind": "CustomResourceDefinition", "spec": {"group": "g"},
            "status": {"acceptedNames": {"kind": "W", "plural": "ws"}, "conditions": [{"type": "Established"}]}});
        assert_eq!(differs_at(&crd, &live_crd), None, "the status is the server's");
    }

    #[test]
    fn a_release_is_carried_only_as_a_whole_part_of_a_name() {
        assert!(carries("feat-1-web-editor", "feat-1-web"));
        assert!(carries("system:feat-1-web", "feat-1-web"));
        assert!(carries("feat-1-web", "feat-1-web"));
        assert!(!carries("data-widgets-reader", "a-widgets"));
        assert!(!carries("team-a-widgets", "a-widgets"));
        assert!(!carries("feat-1-webhook", "feat-1-web"));
    }
}
