//! `backup create` and `backup restore`, the two that talk to a cluster:
//! the store and recipients come from the spec's `backup:` section; restore
//! writes under the environment's lease.

use std::time::Instant;

use rekube_backup::archive::Filter;
use rekube_backup::sign::Provenance;
use rekube_backup::{CreateOptions, Manifest, RestoreOptions, RestoreReport, Store, StoreOptions, Trust};
use rekube_spec::Loaded;

use crate::EngineError;
use crate::context::cluster_client;
use crate::ops::converge::leased;
use crate::steps::{Event, Observer};
use crate::workspace::{environment, project_scope};

/// The spec's backup store and its `backup:` section.
pub fn open_store(loaded: &Loaded) -> Result<(Store, &rekube_spec::Backup), EngineError> {
    let Some(b) = &loaded.spec.backup else {
        return Err(EngineError::NoBackupSection { spec: loaded.path.clone() });
    };
    let b = &b.value;
    let opts = StoreOptions {
        endpoint: b.endpoint.as_ref().map(|e| e.value.clone()),
        region: b.region.as_ref().map(|r| r.value.clone()),
    };
    Ok((Store::open(&b.store.value, &loaded.dir, &opts)?, b))
}

/// What `backup create` was asked.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// The environment.
    pub env: String,
    /// Only these namespaces (empty: all but the system ones).
    pub namespaces: Vec<String>,
    /// Only objects with these labels.
    pub selector: Option<String>,
    /// Cluster-scoped objects too (the default when nothing is filtered).
    pub include_cluster_resources: bool,
    /// Only what this project applied to this environment.
    pub own: bool,
    /// The backup's name (default: environment and time).
    pub name: Option<String>,
    /// Store Secrets unencrypted when the spec has no recipients.
    pub allow_plaintext_secrets: bool,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
}

/// What `backup create` made.
#[derive(Debug)]
pub struct Created {
    /// Its manifest.
    pub manifest: Manifest,
    /// What was noticed on the way.
    pub warnings: Vec<String>,
    /// Older backups deleted by `keep:`.
    pub pruned: Vec<String>,
    /// How long it took.
    pub seconds: f64,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !n.starts_with('.')
}

/// Backs `req.env` up into the spec's store, then applies retention.
pub async fn create(loaded: &Loaded, req: &CreateRequest, on: Observer<'_>) -> Result<Created, EngineError> {
    let (store, spec) = open_store(loaded)?;
    let env = req.env.as_str();
    environment(loaded, env)?;
    if let Some(n) = req.name.as_deref().filter(|n| !valid_name(n)) {
        return Err(EngineError::BadBackupName { name: n.to_string() });
    }
    let (client, cluster) = cluster_client(loaded, env).await?;
    let mut filter = Filter {
        namespaces: req.namespaces.clone(),
        selector: req.selector.clone(),
        cluster_resources: req.include_cluster_resources || (req.namespaces.is_empty() && req.selector.is_none()),
        kinds: req.kinds.clone(),
    };
    if req.own {
        let (project, source) = project_scope(loaded);
        let ids = rekube_kube::environment_applysets(&client, &project, env, source.as_deref()).await?;
        if ids.is_empty() {
            return Err(EngineError::NothingOwned { project, environment: env.to_string(), cluster });
        }
        let own_selector = format!("{} in ({})", rekube_plan::applyset::PART_OF_LABEL, ids.join(","));
        filter.selector = Some(match &filter.selector {
            Some(s) => format!("{s},{own_selector}"),
            None => own_selector,
        });
        filter.cluster_resources = true;
    }
    let opts = CreateOptions {
        name: req.name.clone().unwrap_or_else(|| rekube_backup::default_name(env)),
        project: loaded.project().0,
        environment: env.to_string(),
        cluster,
        filter,
        recipients: spec.encrypt_secrets.iter().map(|r| r.value.clone()).collect(),
        allow_plaintext_secrets: req.allow_plaintext_secrets,
        signer: match &spec.sign_with {
            Some(path) => Some(rekube_backup::sign::Signer::from_file(&loaded.dir.join(&path.value))?),
            None => None,
        },
    };
    let began = Instant::now();
    on(Event::Line(format!("backing up `{env}` (cluster `{}`) into {}...", opts.cluster, store.display())));
    let (manifest, warnings) = rekube_backup::create(&client, &store, &opts).await?;
    let pruned = match &spec.keep {
        Some(k) => rekube_backup::retain(&store, &loaded.project().0, env, k.value as usize).await?,
        None => Vec::new(),
    };
    Ok(Created { manifest, warnings, pruned, seconds: began.elapsed().as_secs_f64() })
}

/// What `backup restore` did.
#[derive(Debug)]
pub struct Restored {
    /// The backup.
    pub manifest: Manifest,
    /// The cluster restored into.
    pub cluster: String,
    /// What happened to each object.
    pub report: RestoreReport,
}

/// Whom verify and restore trust: the spec's `trusted-signers`, and
/// whether unsigned backups pass (`--allow-unsigned`).
pub fn trust(spec: &rekube_spec::Backup, allow_unsigned: bool) -> Trust {
    Trust { signers: spec.trusted_signers.iter().map(|s| s.value.trim().to_string()).collect(), allow_unsigned }
}

/// Restores backup `name` into environment `to` (under its lease, unless a
/// dry-run), once its signature is trusted (see [`trust`]).
pub async fn restore(
    loaded: &Loaded,
    name: &str,
    to: &str,
    opts: &RestoreOptions,
    allow_unsigned: bool,
    break_lock: bool,
    on: Observer<'_>,
) -> Result<Restored, EngineError> {
    let (store, spec) = open_store(loaded)?;
    environment(loaded, to)?;
    let (manifest, provenance) = rekube_backup::load_trusted(&store, name, &trust(spec, allow_unsigned)).await?;
    if let Provenance::Unchecked { why } = &provenance {
        on(Event::Line(format!("warning: backup {name} is {why}; restoring it anyway (--allow-unsigned)")));
    }
    let (client, cluster) = cluster_client(loaded, to).await?;
    on(Event::Line(format!(
        "verifying backup {} ({} objects), then restoring into `{to}`...",
        manifest.name,
        manifest.objects.len()
    )));
    let restore = async { Ok::<_, EngineError>(rekube_backup::restore(&client, &store, &manifest, opts).await?) };
    let report = if opts.dry_run {
        restore.await?
    } else {
        leased(&client, loaded, to, "backup restore", break_lock, on, restore).await?
    };
    Ok(Restored { manifest, cluster, report })
}
