//! `backup restore`: verify the whole archive, then stream it into the
//! target cluster in archive order (CRDs, Namespaces, Velero's order, custom
//! resources), relinking owner references to the owners' new UIDs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use rekube_kube::Resolver;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::io::SyncIoBridge;

use crate::BackupError;
use crate::archive::{self, Manifest};
use crate::catalog::verify;
use crate::crypt::Identities;
use crate::rules::{self, NamespaceMap, str_at};
use crate::store::Store;

/// What to do with an object that already exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Leave it, and list it as skipped.
    Skip,
    /// Replace it with the backed-up version.
    Update,
}

/// How to restore.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    /// `old:new` namespace renames.
    pub namespace_map: NamespaceMap,
    /// Objects that exist already.
    pub existing: Option<Existing>,
    /// Use the server's dry-run; write nothing.
    pub dry_run: bool,
    /// Restore `status` too.
    pub restore_status: bool,
    /// To decrypt Secrets.
    pub identities: Option<Identities>,
    /// Called as entries are handled: (done, total).
    pub progress: Option<Progress>,
}

/// A progress callback: (done, total).
pub type Progress = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// What a restore did (or, with dry-run, would do).
#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Dry-run: nothing was written.
    pub dry_run: bool,
    /// Objects created, by resource.
    pub created: BTreeMap<String, usize>,
    /// Objects replaced (`--existing update`), by resource.
    pub updated: BTreeMap<String, usize>,
    /// Objects left as they were, with why.
    pub skipped: Vec<String>,
    /// Objects that failed, with the server's answer.
    pub failed: Vec<String>,
    /// Dry run: each object with what would happen to it (`+` create,
    /// `~` replace, `=` leave), sorted.
    pub plan: Vec<String>,
    /// Namespaces created because objects needed them.
    pub namespaces_created: Vec<String>,
    /// Owner references dropped, and other things worth knowing.
    pub warnings: Vec<String>,
}

const FIELD_MANAGER: &str = "rekube-restore";
const BATCH: usize = 64;
const CONCURRENCY: usize = 16;

struct Restorer<'a> {
    client: Client,
    resolver: Resolver,
    opts: &'a RestoreOptions,
    uids: std::sync::Mutex<HashMap<String, String>>,
    namespaces: Mutex<HashSet<String>>,
    /// CRDs restored in this run, by group, not yet waited for.
    crds: std::sync::Mutex<HashMap<String, Vec<String>>>,
    /// Held while waiting for CRDs, so their custom resources queue behind.
    crd_gate: Mutex<()>,
    /// Groups whose CRDs a dry run would create.
    planned_groups: std::sync::Mutex<HashSet<String>>,
    /// Namespaces a dry run would create from their own entries.
    planned_namespaces: std::sync::Mutex<HashSet<String>>,
    deferred: std::sync::Mutex<Vec<Pending>>,
    report: std::sync::Mutex<RestoreReport>,
}

struct Pending {
    key: String,
    obj: Value,
    old_uid: String,
}

/// The server's message without the status struct around it.
use rekube_kube::describe as brief;

fn describe(key: &str, obj: &Value) -> String {
    match str_at(obj, "/metadata/namespace") {
        "" => format!("{key} {}", str_at(obj, "/metadata/name")),
        ns => format!("{key} {ns}/{}", str_at(obj, "/metadata/name")),
    }
}

/// Restores backup `manifest` into the cluster behind `client`. The archive
/// is verified whole first: a damaged one is refused before any write.
pub async fn restore(
    client: &Client,
    store: &Store,
    manifest: &Manifest,
    opts: &RestoreOptions,
) -> Result<RestoreReport, BackupError> {
    verify(store, manifest, opts.identities.as_ref()).await?;
    let r = Restorer {
        client: client.clone(),
        resolver: Resolver::new(client.clone()),
        opts,
        uids: Default::default(),
        namespaces: Default::default(),
        crds: Default::default(),
        crd_gate: Mutex::new(()),
        planned_groups: Default::default(),
        planned_namespaces: Default::default(),
        deferred: Default::default(),
        report: std::sync::Mutex::new(RestoreReport { dry_run: opts.dry_run, ..Default::default() }),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(BATCH * 2);
    let bridge = SyncIoBridge::new(store.reader(&store.path(&manifest.name, &manifest.archive.file)).await?);
    let m = manifest.clone();
    let reader = tokio::task::spawn_blocking(move || {
        archive::read(bridge, &m, |_, entry, data| {
            tx.blocking_send((entry.path.clone(), data)).map_err(|_| "restore stopped".to_string())
        })
    });

    let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
    let mut done = 0usize;
    loop {
        let next = rx.recv().await;
        let flush = match &next {
            None => true,
            Some((path, _)) => {
                batch.len() >= BATCH
                    || batch.first().is_some_and(|(p, _)| archive::entry_resource(p) != archive::entry_resource(path))
            }
        };
        if flush && !batch.is_empty() {
            done += batch.len();
            futures::stream::iter(std::mem::take(&mut batch))
                .for_each_concurrent(CONCURRENCY, |(path, data)| r.entry(path, data))
                .await;
            if let Some(p) = &opts.progress {
                p(done, manifest.objects.len());
            }
        }
        match next {
            Some(e) => batch.push(e),
            None => break,
        }
    }
    reader
        .await
        .map_err(|e| BackupError::Io { what: "restore stopped".into(), cause: std::io::Error::other(e) })?
        .map_err(|source| BackupError::Damaged { name: manifest.name.clone(), cause: source })?;
    r.finish_deferred().await;
    let mut report = r.report.into_inner().expect("not poisoned");
    report.plan.sort_by(|a, b| a[2..].cmp(&b[2..]));
    report.skipped.sort();
    report.failed.sort();
    Ok(report)
}

impl Restorer<'_> {
    fn fail(&self, what: String) {
        self.report.lock().expect("not poisoned").failed.push(what);
    }

    async fn entry(&self, path: String, data: Vec<u8>) {
        let key = archive::entry_resource(&path).to_string();
        let plain = if path.ends_with(".age") {
            match self.opts.identities.as_ref().map(|i| i.decrypt(&data)) {
                Some(Ok(p)) => p,
                Some(Err(e)) => return self.fail(format!("{path}: cannot decrypt: {e}")),
                None => return self.fail(format!("{path}: encrypted, and no identity was given")),
            }
        } else {
            data
        };
        let mut obj: Value = match serde_json::from_slice(&plain) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("{path}: {e}")),
        };
        let old_uid = str_at(&obj, "/metadata/uid").to_string();
        rules::prepare(&key, &mut obj, &self.opts.namespace_map, self.opts.restore_status);
        if self.relink(&mut obj) {
            self.write(&key, obj, &old_uid).await;
        } else {
            self.deferred.lock().expect("not poisoned").push(Pending { key, obj, old_uid });
        }
    }

    /// Points owner references at the owners' new UIDs; false while an
    /// owner has not been restored yet.
    fn relink(&self, obj: &mut Value) -> bool {
        let uids = self.uids.lock().expect("not poisoned");
        let Some(refs) = obj.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) else {
            return true;
        };
        if refs.iter().any(|r| !uids.contains_key(str_at(r, "/uid"))) {
            return false;
        }
        for r in refs.iter_mut() {
            let new = uids[str_at(r, "/uid")].clone();
            r["uid"] = Value::String(new);
        }
        true
    }

    /// Objects whose owners never came: look the owner up in the target by
    /// kind and name, else drop the reference (the garbage collector would
    /// otherwise delete the object at once).
    async fn finish_deferred(&self) {
        loop {
            let pending = std::mem::take(&mut *self.deferred.lock().expect("not poisoned"));
            if pending.is_empty() {
                return;
            }
            let mut progressed = false;
            let mut still = Vec::new();
            for mut p in pending {
                if self.relink(&mut p.obj) {
                    self.write(&p.key, p.obj, &p.old_uid).await;
                    progressed = true;
                } else {
                    still.push(p);
                }
            }
            if !progressed {
                for mut p in still {
                    self.adopt_or_drop_owners(&mut p.obj).await;
                    self.write(&p.key, p.obj, &p.old_uid).await;
                }
                return;
            }
            self.deferred.lock().expect("not poisoned").extend(still);
        }
    }

    async fn adopt_or_drop_owners(&self, obj: &mut Value) {
        let ns = str_at(obj, "/metadata/namespace").to_string();
        let what = describe(str_at(obj, "/kind"), obj);
        let Some(refs) = obj.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) else { return };
        let mut kept = Vec::new();
        for mut r in std::mem::take(refs) {
            if let Some(new) = self.uids.lock().expect("not poisoned").get(str_at(&r, "/uid")).cloned() {
                r["uid"] = Value::String(new);
                kept.push(r);
                continue;
            }
            let (kind, name) = (str_at(&r, "/kind").to_string(), str_at(&r, "/name").to_string());
            match self.live_uid(str_at(&r, "/apiVersion"), &kind, &ns, &name).await {
                Some(uid) => {
                    r["uid"] = Value::String(uid);
                    kept.push(r);
                }
                None => self.report.lock().expect("not poisoned").warnings.push(format!(
                    "{what}: owner {kind} {name} is neither in the backup nor in the cluster; \
                     the reference was dropped so the garbage collector keeps the object"
                )),
            }
        }
        *refs = kept;
        if refs.is_empty()
            && let Some(m) = obj["metadata"].as_object_mut()
        {
            m.remove("ownerReferences");
        }
    }

    async fn live_uid(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<String> {
        let res = self.resolver.resolve(api_version, kind).await.ok()??;
        let api: Api<DynamicObject> = if res.namespaced {
            Api::namespaced_with(self.client.clone(), ns, &res.resource)
        } else {
            Api::all_with(self.client.clone(), &res.resource)
        };
        api.get_opt(name).await.ok()??.metadata.uid
    }

    /// The kind's resource, waiting first for CRDs of its group restored in
    /// this run to be Established.
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<rekube_kube::Resolved>, kube::Error> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        {
            let _gate = self.crd_gate.lock().await;
            let names = self.crds.lock().expect("not poisoned").remove(group);
            if let Some(names) = names {
                for n in names {
                    self.wait_established(&n).await;
                }
                self.resolver.forget_group(group);
            }
        }
        let began = Instant::now();
        loop {
            let found = self.resolver.resolve(api_version, kind).await?;
            if found.is_some()
                || self.opts.dry_run
                || began.elapsed() > Duration::from_secs(10)
                || rekube_render::BUILTIN_GROUPS.contains(&group)
            {
                return Ok(found);
            }
            // Discovery lags a freshly Established CRD by a moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.resolver.forget_group(group);
        }
    }

    async fn wait_established(&self, crd: &str) {
        let ar = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(60) {
            if let Ok(o) = api.get(crd).await {
                let live = serde_json::to_value(&o).unwrap_or_default();
                // The same rule as apply's health gate.
                if rekube_kube::live::check(&self.client, &ar.group, &ar.kind, &live).await
                    == rekube_kube::Health::Ready
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.report.lock().expect("not poisoned").warnings.push(format!("CRD {crd} was not Established within 60 s"));
    }

    /// Makes sure `ns` exists (creating it plain when no Namespace entry did).
    /// Returns false when, in a dry run, it would only be created.
    async fn ensure_namespace(&self, ns: &str) -> Result<bool, String> {
        let mut known = self.namespaces.lock().await;
        if known.contains(ns) {
            return Ok(true);
        }
        if self.planned_namespaces.lock().expect("not poisoned").contains(ns) {
            return Ok(false);
        }
        let ar = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Namespace".into(),
            plural: "namespaces".into(),
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        match api.get_opt(ns).await {
            Ok(Some(_)) => {
                known.insert(ns.to_string());
                Ok(true)
            }
            Ok(None) if self.opts.dry_run => {
                let mut rep = self.report.lock().expect("not poisoned");
                if !rep.namespaces_created.iter().any(|n| n == ns) {
                    rep.namespaces_created.push(ns.to_string());
                }
                Ok(false)
            }
            Ok(None) => {
                let obj: DynamicObject =
                    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                        .expect("a namespace");
                api.create(&self.post_params(), &obj)
                    .await
                    .map_err(|e| format!("cannot create namespace {ns}: {}", brief(&e)))?;
                known.insert(ns.to_string());
                self.report.lock().expect("not poisoned").namespaces_created.push(ns.to_string());
                Ok(true)
            }
            Err(e) => Err(format!("cannot read namespace {ns}: {}", brief(&e))),
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams { dry_run: self.opts.dry_run, field_manager: Some(FIELD_MANAGER.into()) }
    }

    fn count(&self, key: &str, updated: bool, what: &str) {
        let mut rep = self.report.lock().expect("not poisoned");
        if self.opts.dry_run {
            rep.plan.push(format!("{} {what}", if updated { "~" } else { "+" }));
        }
        *(if updated { &mut rep.updated } else { &mut rep.created }).entry(key.to_string()).or_default() += 1;
    }

    async fn write(&self, key: &str, obj: Value, old_uid: &str) {
        let what = describe(key, &obj);
        let (api_version, kind) = (str_at(&obj, "/apiVersion").to_string(), str_at(&obj, "/kind").to_string());
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g).to_string();
        let res = match self.resolve(&api_version, &kind).await {
            Ok(Some(r)) => r,
            Ok(None) if self.opts.dry_run && self.planned_groups.lock().expect("not poisoned").contains(&group) => {
                return self.count(key, false, &what);
            }
            Ok(None) => return self.fail(format!("{what}: the cluster does not serve {kind} ({api_version})")),
            Err(e) => return self.fail(format!("{what}: {}", brief(&e))),
        };
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        let api: Api<DynamicObject> = if res.namespaced {
            match self.ensure_namespace(&ns).await {
                Ok(true) => {}
                // Dry run into a namespace that does not exist yet: the server cannot check it.
                Ok(false) => return self.count(key, false, &what),
                Err(e) => return self.fail(format!("{what}: {e}")),
            }
            Api::namespaced_with(self.client.clone(), &ns, &res.resource)
        } else {
            Api::all_with(self.client.clone(), &res.resource)
        };
        let mut dynobj: DynamicObject = match serde_json::from_value(obj.clone()) {
            Ok(o) => o,
            Err(e) => return self.fail(format!("{what}: {e}")),
        };
        let name = dynobj.metadata.name.clone().unwrap_or_default();
        let (uid, updated) = match create_when_ready(&api, &self.post_params(), &dynobj).await {
            Ok(created) => {
                if self.opts.dry_run && key == "namespaces" {
                    self.planned_namespaces.lock().expect("not poisoned").insert(name.clone());
                }
                (created.metadata.uid, false)
            }
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let live = match api.get(&name).await {
                    Ok(l) => l,
                    Err(e) => return self.fail(format!("{what}: exists, but cannot be read: {}", brief(&e))),
                };
                if self.opts.existing != Some(Existing::Update) {
                    self.remember(key, &obj, old_uid, live.metadata.uid);
                    let mut rep = self.report.lock().expect("not poisoned");
                    if self.opts.dry_run {
                        rep.plan.push(format!("= {what}"));
                    }
                    rep.skipped.push(format!("{what}: already exists"));
                    return;
                }
                dynobj.metadata.resource_version = live.metadata.resource_version;
                // The cluster IP is the target cluster's, and immutable.
                if key == "services" {
                    for f in ["clusterIP", "clusterIPs"] {
                        if dynobj.data["spec"].get(f).is_none() && !live.data["spec"][f].is_null() {
                            dynobj.data["spec"][f] = live.data["spec"][f].clone();
                        }
                    }
                }
                match api.replace(&name, &self.post_params(), &dynobj).await {
                    Ok(replaced) => (replaced.metadata.uid, true),
                    Err(e) => return self.fail(format!("{what}: exists, and cannot be replaced: {}", brief(&e))),
                }
            }
            Err(e) => return self.fail(format!("{what}: {}", brief(&e))),
        };
        self.remember(key, &obj, old_uid, uid);
        self.count(key, updated, &what);
        if self.opts.restore_status
            && !self.opts.dry_run
            && let Some(status) = obj.get("status").filter(|s| !s.is_null())
        {
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": status }))).await {
                Ok(_) => {}
                // No status subresource: the status went in with the object.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
                Err(e) => self
                    .report
                    .lock()
                    .expect("not poisoned")
                    .warnings
                    .push(format!("{what}: status not restored: {}", brief(&e))),
            }
        }
    }

    /// Records the new UID, and the CRD's group so its resources wait for it.
    fn remember(&self, key: &str, obj: &Value, old_uid: &str, uid: Option<String>) {
        if let Some(uid) = uid.filter(|_| !old_uid.is_empty()) {
            self.uids.lock().expect("not poisoned").insert(old_uid.to_string(), uid);
        }
        if key == "customresourcedefinitions.apiextensions.k8s.io" {
            let group = str_at(obj, "/spec/group").to_string();
            let name = str_at(obj, "/metadata/name").to_string();
            if self.opts.dry_run {
                self.planned_groups.lock().expect("not poisoned").insert(group);
            } else {
                self.crds.lock().expect("not poisoned").entry(group).or_default().push(name);
            }
        }
    }
}

/// Creates `obj`, waiting (up to 30 s) while the server says it is not ready
/// for it yet: before 1.24 a Pod is refused until its ServiceAccount's token
/// Secret exists ("retry after the token is automatically created"), and the
/// restored ServiceAccounts came a moment earlier.
async fn create_when_ready(
    api: &Api<DynamicObject>,
    pp: &PostParams,
    obj: &DynamicObject,
) -> Result<DynamicObject, kube::Error> {
    let began = std::time::Instant::now();
    loop {
        match api.create(pp, obj).await {
            Err(kube::Error::Api(s)) if waits_for_token(&s) && began.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// The refusal of a Pod whose ServiceAccount has no token yet.
fn waits_for_token(s: &kube::core::Status) -> bool {
    s.message.contains("retry after the token is automatically created")
}
