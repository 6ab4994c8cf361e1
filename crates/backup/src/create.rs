//! `backup create`: list every selected object one page at a time and stream
//! it into the archive, Secrets encrypted, then write the manifest.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use serde_json::Value;
use tokio_util::io::SyncIoBridge;

use crate::BackupError;
use crate::archive::{self, ArchiveInfo, ArchiveWriter, ClusterInfo, Filter, Manifest, SecretsInfo};
use crate::crypt::Recipients;
use crate::rules::{self, Context};
use crate::store::Store;

/// What to back up, and how.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The backup's name.
    pub name: String,
    /// The project (recorded, so that retention deletes only its own).
    pub project: String,
    /// The environment.
    pub environment: String,
    /// The cluster's name in the spec.
    pub cluster: String,
    /// The selection.
    pub filter: Filter,
    /// age recipients for Secrets.
    pub recipients: Vec<String>,
    /// Store Secrets in plaintext when there are no recipients.
    pub allow_plaintext_secrets: bool,
    /// Signs the manifest (`backup.sign-with`).
    pub signer: Option<crate::sign::Signer>,
}

/// `<env>-<UTC time>`, e.g. `prod-2026-11-27T10-00-00`.
pub fn default_name(env: &str) -> String {
    format!("{env}-{}", chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S"))
}

/// A listable kind the cluster serves, at its group's preferred version.
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub key: String,
    pub resource: ApiResource,
    pub namespaced: bool,
    pub custom: bool,
}

/// Every listable kind, in restore order, leaving out [`rules::NEVER`] and
/// groups served by an aggregated API server (their data lives elsewhere).
pub(crate) async fn kinds(client: &Client) -> Result<(Vec<Kind>, Vec<String>), BackupError> {
    let served = rekube_kube::served(client, true).await.map_err(BackupError::kube("cannot list API groups"))?;
    let aggregated = aggregated_groups(client).await;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for s in served {
        let api_version = s.group_version();
        if aggregated.contains(&s.group) {
            warnings.push(format!(
                "group {} is served by an aggregated API server: its objects are not backed up",
                s.group
            ));
            continue;
        }
        let list = match s.resources {
            Ok(l) => l,
            Err(e) => {
                warnings.push(format!(
                    "cannot read {api_version}: {}; its objects are not backed up",
                    rekube_kube::describe(&e)
                ));
                continue;
            }
        };
        for r in list.resources {
            let key = rules::resource_key(&r.name, &s.group);
            if r.name.contains('/') || !r.verbs.iter().any(|v| v == "list") || rules::NEVER.contains(&key.as_str()) {
                continue;
            }
            let resource = ApiResource {
                group: s.group.clone(),
                version: s.version.clone(),
                api_version: api_version.clone(),
                kind: r.kind,
                plural: r.name,
            };
            out.push(Kind {
                key,
                resource,
                namespaced: r.namespaced,
                custom: !rekube_render::BUILTIN_GROUPS.contains(&s.group.as_str()),
            });
        }
    }
    out.sort_by_key(|k| rules::rank(&k.key, k.custom));
    Ok((out, warnings))
}

async fn aggregated_groups(client: &Client) -> HashSet<String> {
    let ar = ApiResource {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiregistration.k8s.io/v1".into(),
        kind: "APIService".into(),
        plural: "apiservices".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let Ok(list) = api.list(&ListParams::default()).await else { return HashSet::new() };
    list.items
        .iter()
        .filter(|s| !s.data["spec"]["service"].is_null())
        .filter_map(|s| s.data["spec"]["group"].as_str().map(str::to_string))
        .collect()
}

/// Where to list a kind: each named namespace, or everywhere.
fn scopes(kind: &Kind, filter: &Filter) -> Vec<Option<String>> {
    if kind.namespaced && !filter.namespaces.is_empty() {
        filter.namespaces.iter().cloned().map(Some).collect()
    } else {
        vec![None]
    }
}

/// Whether objects in `ns` are in the selection.
fn namespace_selected(ns: &str, filter: &Filter) -> bool {
    if filter.namespaces.is_empty() {
        !rules::SYSTEM_NAMESPACES.contains(&ns)
    } else {
        filter.namespaces.iter().any(|n| n == ns)
    }
}

/// Lists one kind page by page, handing each object to `each`.
async fn list_pages(
    client: &Client,
    kind: &Kind,
    filter: &Filter,
    mut each: impl AsyncFnMut(DynamicObject) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    for scope in scopes(kind, filter) {
        let api: Api<DynamicObject> = match &scope {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.resource),
            None => Api::all_with(client.clone(), &kind.resource),
        };
        let mut lp = ListParams::default().limit(500);
        // Namespaces a user named are kept even when they lack the label.
        if let Some(sel) = &filter.selector
            && (kind.key != "namespaces" || filter.namespaces.is_empty())
        {
            lp = lp.labels(sel);
        }
        loop {
            let page = api.list(&lp).await.map_err(BackupError::kube(format!("cannot list {}", kind.key)))?;
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            for item in page.items {
                each(item).await?;
            }
            match next {
                Some(c) => lp.continue_token = Some(c),
                None => break,
            }
        }
    }
    Ok(())
}

/// The CRDs to include without `--include-cluster-resources`: those of
/// custom kinds that have objects in the selection.
async fn needed_crds(client: &Client, kinds: &[Kind], filter: &Filter) -> Result<BTreeSet<String>, BackupError> {
    let mut needed = BTreeSet::new();
    for kind in kinds.iter().filter(|k| k.custom && k.namespaced) {
        for scope in scopes(kind, filter) {
            let api: Api<DynamicObject> = match &scope {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.resource),
                None => Api::all_with(client.clone(), &kind.resource),
            };
            let mut lp = ListParams::default();
            if let Some(sel) = &filter.selector {
                lp = lp.labels(sel);
            }
            let list = api.list_metadata(&lp).await.map_err(BackupError::kube(format!("cannot list {}", kind.key)))?;
            if list.items.iter().any(|o| namespace_selected(o.metadata.namespace.as_deref().unwrap_or(""), filter)) {
                needed.insert(kind.key.clone());
                break;
            }
        }
    }
    Ok(needed)
}

/// Whether an object of `kind` belongs in the backup, by scope.
fn in_scope(kind: &Kind, obj: &DynamicObject, filter: &Filter, crds: &BTreeSet<String>) -> bool {
    let name = obj.metadata.name.as_deref().unwrap_or("");
    match kind.key.as_str() {
        "namespaces" => namespace_selected(name, filter),
        "customresourcedefinitions.apiextensions.k8s.io" => filter.cluster_resources || crds.contains(name),
        _ if !kind.namespaced => filter.cluster_resources,
        _ => namespace_selected(obj.metadata.namespace.as_deref().unwrap_or(""), filter),
    }
}

/// Backs up the cluster behind `client` into `store`; returns the manifest.
pub async fn create(
    client: &Client,
    store: &Store,
    opts: &CreateOptions,
) -> Result<(Manifest, Vec<String>), BackupError> {
    let recipients = Recipients::parse(&opts.recipients)
        .map_err(|e| BackupError::refused(e, "fix `backup.encrypt-secrets` in the spec"))?;
    if recipients.is_empty() && !opts.allow_plaintext_secrets {
        return Err(BackupError::refused(
            "no age recipient to encrypt Secrets to: refusing to write them in plaintext",
            "add `encrypt-secrets: [age1...]` under `backup:` in the spec (`rekube backup keygen > key.txt` makes a \
             key and prints its public half), or pass --allow-plaintext-secrets",
        ));
    }
    let manifest_path = store.path(&opts.name, archive::MANIFEST_FILE);
    if store.read_small(&manifest_path).await?.is_some() {
        return Err(BackupError::refused(
            format!("backup {} already exists in {}", opts.name, store.display()),
            "pick another --name, or delete it first",
        ));
    }
    let version = client.apiserver_version().await.map_err(BackupError::kube("cannot reach the cluster"))?.git_version;
    let (kinds, warnings) = kinds(client).await?;
    let crds =
        if opts.filter.cluster_resources { BTreeSet::new() } else { needed_crds(client, &kinds, &opts.filter).await? };
    let mut ctx = Context::default();
    if let Some(svc) = kinds.iter().find(|k| k.key == "services") {
        list_pages(client, svc, &Filter { selector: None, ..opts.filter.clone() }, async |s: DynamicObject| {
            if s.data["spec"]["selector"].as_object().is_some_and(|m| !m.is_empty()) {
                ctx.selector_services.insert(format!(
                    "{}/{}",
                    s.metadata.namespace.as_deref().unwrap_or(""),
                    s.metadata.name.as_deref().unwrap_or("")
                ));
            }
            Ok(())
        })
        .await?;
    }

    let created = chrono::Utc::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(256);
    let bridge = SyncIoBridge::new(store.writer(&store.path(&opts.name, archive::ARCHIVE_FILE)));
    let mtime = u64::try_from(created.timestamp()).unwrap_or(0);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let mut w = ArchiveWriter::new(bridge, mtime)?;
        while let Some((path, data)) = rx.blocking_recv() {
            w.append(&path, &data)?;
        }
        let (mut bridge, size, sha, index) = w.finish()?;
        bridge.shutdown()?;
        Ok((size, sha, index))
    });

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut excluded: BTreeMap<String, usize> = BTreeMap::new();
    let mut secrets = 0usize;
    let listed = async {
        let wanted = |k: &&Kind| opts.filter.kinds.is_empty() || opts.filter.kinds.contains(&k.resource.kind);
        for kind in kinds.iter().filter(wanted) {
            list_pages(client, kind, &opts.filter, async |obj: DynamicObject| {
                if !in_scope(kind, &obj, &opts.filter, &crds) {
                    return Ok(());
                }
                let mut value = serde_json::to_value(&obj).map_err(|e| {
                    BackupError::refused(format!("cannot encode {}: {e}", kind.key), "report this as a bug")
                })?;
                value["apiVersion"] = Value::String(kind.resource.api_version.clone());
                value["kind"] = Value::String(kind.resource.kind.clone());
                if let Some(m) = value["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
                if let Some(reason) = rules::excluded(&kind.key, &value, &ctx) {
                    *excluded.entry(reason.to_string()).or_default() += 1;
                    return Ok(());
                }
                let encrypt = kind.key == "secrets" && !recipients.is_empty();
                let mut data = serde_json::to_vec(&value).unwrap_or_default();
                drop(value);
                if kind.key == "secrets" {
                    secrets += 1;
                }
                if encrypt {
                    data = recipients.encrypt(&data).map_err(|e| {
                        BackupError::refused(format!("cannot encrypt a Secret: {e}"), "check `backup.encrypt-secrets`")
                    })?;
                }
                let path = archive::entry_path(
                    &kind.key,
                    obj.metadata.namespace.as_deref(),
                    obj.metadata.name.as_deref().unwrap_or(""),
                    encrypt,
                );
                *counts.entry(kind.key.clone()).or_default() += 1;
                tx.send((path, data))
                    .await
                    .map_err(|_| BackupError::refused("the archive writer stopped", "see the error below"))
            })
            .await?;
        }
        drop(tx);
        Ok::<_, BackupError>(())
    };
    let listed = listed.await;
    let written = writer
        .await
        .map_err(|e| BackupError::Io { what: "the archive writer failed".into(), cause: std::io::Error::other(e) })?;
    let (size, sha256, objects) = match (listed, written) {
        (Err(e), _) => return Err(e),
        (Ok(()), Err(e)) => {
            return Err(BackupError::Io { what: format!("cannot write the archive to {}", store.display()), cause: e });
        }
        (Ok(()), Ok(w)) => w,
    };
    let manifest = Manifest {
        format: archive::FORMAT.into(),
        name: opts.name.clone(),
        project: Some(opts.project.clone()),
        environment: opts.environment.clone(),
        created: created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        cluster: ClusterInfo { name: opts.cluster.clone(), version },
        filter: opts.filter.clone(),
        archive: ArchiveInfo { file: archive::ARCHIVE_FILE.into(), compression: "zstd".into(), size, sha256 },
        secrets: SecretsInfo { count: secrets, encrypted: !recipients.is_empty(), recipients: opts.recipients.clone() },
        counts,
        excluded,
        objects,
    };
    let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    if let Some(signer) = &opts.signer {
        // Before the manifest: a complete backup is never without its signature.
        store.write_small(&store.path(&opts.name, crate::sign::SIGNATURE_FILE), signer.sign(&text)).await?;
    }
    store.write_small(&manifest_path, text).await?;
    Ok((manifest, warnings))
}
