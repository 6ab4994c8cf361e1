//! `rekube backup create|list|describe|verify|restore|delete`: the store and
//! recipients come from the spec's `backup:` section.

use std::time::Instant;

use rekube_backup::archive::Filter;
use rekube_backup::crypt::Identities;
use rekube_backup::{BackupError, Existing, Manifest, RestoreOptions, RestoreReport, Store, StoreOptions};
use rekube_spec::Loaded;
use serde_json::json;

use crate::Failure;
use crate::args::{Backup, ExistingMode, Global, Identity, Output};
use crate::commands::converge::cluster_client;
use crate::commands::{environment, load_valid};
use crate::printer;

fn failure(e: BackupError) -> Failure {
    let hint = e.hint();
    Failure::Error(e.into(), hint)
}

fn open_store(loaded: &Loaded) -> Result<(Store, &rekube_spec::Backup), Failure> {
    let Some(b) = &loaded.spec.backup else {
        return Err(Failure::Error(
            anyhow::anyhow!("{} has no `backup:` section", loaded.path.display()),
            Some(
                "add `backup: { store: ./backups, encrypt-secrets: [age1...] }` (or `store: s3://bucket/prefix`)"
                    .into(),
            ),
        ));
    };
    let b = &b.value;
    let opts = StoreOptions {
        endpoint: b.endpoint.as_ref().map(|e| e.value.clone()),
        region: b.region.as_ref().map(|r| r.value.clone()),
    };
    Ok((Store::open(&b.store.value, &loaded.dir, &opts).map_err(failure)?, b))
}

fn identities(i: &Identity) -> Result<Option<Identities>, Failure> {
    i.identity
        .as_deref()
        .map(|p| {
            Identities::read(p).map_err(|e| {
                Failure::Error(
                    anyhow::anyhow!(e),
                    Some("pass the age identity file whose public key is in `backup.encrypt-secrets`".into()),
                )
            })
        })
        .transpose()
}

/// Runs one backup subcommand.
pub async fn run(g: &Global, cmd: &Backup) -> Result<u8, Failure> {
    if let Backup::Keygen = cmd {
        let (public, secret) = rekube_backup::crypt::generate();
        printer::message(format!("Public key: {public}"));
        printer::data(format!("# public key: {public}\n{secret}"));
        return Ok(0);
    }
    let loaded = load_valid(g)?;
    let (store, spec) = open_store(&loaded)?;
    match cmd {
        Backup::Create { env, namespaces, selector, include_cluster_resources, own, name, allow_plaintext_secrets } => {
            environment(&loaded, env)?;
            if let Some(n) = name.as_deref().filter(|n| {
                n.is_empty()
                    || n.len() > 128
                    || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    || n.starts_with('.')
            }) {
                return Err(Failure::Error(
                    anyhow::anyhow!("--name `{n}` is not a backup name"),
                    Some("use letters, digits, '.', '_' and '-' (it becomes a directory in the store)".into()),
                ));
            }
            let (client, cluster) = cluster_client(&loaded, env).await?;
            let mut filter = Filter {
                namespaces: namespaces.clone(),
                selector: selector.clone(),
                cluster_resources: *include_cluster_resources || (namespaces.is_empty() && selector.is_none()),
            };
            if *own {
                let (project, source) = crate::commands::project_scope(&loaded);
                let ids = rekube_kube::environment_applysets(&client, &project, env, source.as_deref())
                    .await
                    .map_err(crate::commands::converge::kube_failure)?;
                if ids.is_empty() {
                    return Err(Failure::Error(
                        anyhow::anyhow!(
                            "project `{project}` has nothing of environment `{env}` on cluster `{cluster}`"
                        ),
                        Some(format!("apply it first (`rekube apply {env}`), or back up without --own")),
                    ));
                }
                let own_selector = format!("{} in ({})", rekube_plan::applyset::PART_OF_LABEL, ids.join(","));
                filter.selector = Some(match &filter.selector {
                    Some(s) => format!("{s},{own_selector}"),
                    None => own_selector,
                });
                filter.cluster_resources = true;
            }
            let opts = rekube_backup::CreateOptions {
                name: name.clone().unwrap_or_else(|| rekube_backup::default_name(env)),
                environment: env.clone(),
                cluster,
                filter,
                recipients: spec.encrypt_secrets.iter().map(|r| r.value.clone()).collect(),
                allow_plaintext_secrets: *allow_plaintext_secrets,
            };
            let began = Instant::now();
            printer::message(format!("backing up `{env}` (cluster `{}`) into {}...", opts.cluster, store.display()));
            let (manifest, warnings) = rekube_backup::create(&client, &store, &opts).await.map_err(failure)?;
            for w in warnings {
                printer::message(format!("warning: {w}"));
            }
            let pruned = match &spec.keep {
                Some(k) => rekube_backup::retain(&store, env, k.value as usize).await.map_err(failure)?,
                None => Vec::new(),
            };
            if g.output == Output::Json {
                printer::json(
                    &json!({"name": manifest.name, "store": store.display(), "objects": manifest.objects.len(), "secrets": manifest.secrets.count, "size": manifest.archive.size, "sha256": manifest.archive.sha256, "deleted_by_retention": pruned}),
                );
            } else {
                printer::data(created_text(&manifest, store.display(), began.elapsed().as_secs_f64(), &pruned));
            }
            Ok(0)
        }
        Backup::List => {
            let all = rekube_backup::list(&store).await.map_err(failure)?;
            if g.output == Output::Json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|l| match &l.manifest {
                        Ok(m) => json!({"name": l.name, "environment": m.environment, "created": m.created, "objects": m.objects.len(), "size": m.archive.size, "cluster_version": m.cluster.version}),
                        Err(e) => json!({"name": l.name, "error": e}),
                    })
                    .collect();
                printer::json(&json!(rows));
            } else {
                printer::data(list_text(&all, store.display()));
            }
            Ok(0)
        }
        Backup::Describe { name } => {
            let m = rekube_backup::load_manifest(&store, name).await.map_err(failure)?;
            if g.output == Output::Json {
                printer::json(&serde_json::to_value(&m).unwrap_or_default());
            } else {
                printer::data(describe_text(&m));
            }
            Ok(0)
        }
        Backup::Verify { name, identity } => {
            let ids = identities(identity)?;
            let m = rekube_backup::load_manifest(&store, name).await.map_err(failure)?;
            let v = rekube_backup::verify(&store, &m, ids.as_ref()).await.map_err(failure)?;
            if g.output == Output::Json {
                printer::json(
                    &json!({"name": m.name, "intact": true, "entries": v.entries, "bytes": v.bytes, "decrypted": v.decrypted, "sha256": m.archive.sha256}),
                );
            } else {
                printer::data(format!(
                    "Backup {} is intact: {} entries, {} read, {} Secret(s) decrypted, sha256 {}.",
                    m.name,
                    v.entries,
                    size(v.bytes),
                    v.decrypted,
                    m.archive.sha256
                ));
            }
            Ok(0)
        }
        Backup::Restore { name, to, namespace_map, existing, dry_run, restore_status, identity } => {
            environment(&loaded, to)?;
            let map = parse_map(namespace_map)?;
            let ids = identities(identity)?;
            let m = rekube_backup::load_manifest(&store, name).await.map_err(failure)?;
            let (client, cluster) = cluster_client(&loaded, to).await?;
            let opts = RestoreOptions {
                namespace_map: map,
                existing: Some(match existing {
                    ExistingMode::Skip => Existing::Skip,
                    ExistingMode::Update => Existing::Update,
                }),
                dry_run: *dry_run,
                restore_status: *restore_status,
                identities: ids,
                progress: Some(throttled_progress(format!("restoring {}", m.name))),
            };
            printer::message(format!(
                "verifying backup {} ({} objects), then restoring into `{to}`...",
                m.name,
                m.objects.len()
            ));
            let restore = async { rekube_backup::restore(&client, &store, &m, &opts).await.map_err(failure) };
            let report = if *dry_run {
                restore.await?
            } else {
                crate::commands::converge::leased(g, &client, &loaded, to, "backup restore", restore).await?
            };
            if g.output == Output::Json {
                printer::json(&serde_json::to_value(&report).unwrap_or_default());
            } else {
                printer::data(restore_text(&m, to, &cluster, &report));
            }
            Ok(if report.failed.is_empty() { 0 } else { 1 })
        }
        Backup::Keygen => unreachable!("handled above"),
        Backup::Delete { name } => {
            let n = rekube_backup::delete(&store, name).await.map_err(failure)?;
            printer::data(format!("Deleted backup {name} ({n} files) from {}.", store.display()));
            Ok(0)
        }
    }
}

/// A progress line at most every two seconds (long restores are not silent).
fn throttled_progress(what: String) -> rekube_backup::Progress {
    let last = std::sync::Mutex::new(Instant::now());
    std::sync::Arc::new(move |done, total| {
        let mut last = last.lock().expect("not poisoned");
        if last.elapsed().as_secs() >= 2 && done < total {
            *last = Instant::now();
            printer::message(format!("{what}: {done}/{total} objects"));
        }
    })
}

/// `old:new` pairs; both sides must be namespace names.
fn parse_map(pairs: &[String]) -> Result<rekube_backup::rules::NamespaceMap, Failure> {
    let mut map = rekube_backup::rules::NamespaceMap::new();
    for p in pairs {
        match p.split_once(':') {
            Some((old, new)) if rekube_spec::is_dns_label(old) && rekube_spec::is_dns_label(new) => {
                map.insert(old.to_string(), new.to_string());
            }
            _ => {
                return Err(Failure::Error(
                    anyhow::anyhow!("--namespace-map `{p}` is not OLD:NEW"),
                    Some("write it like `--namespace-map shop:shop-restored`; both are namespace names".into()),
                ));
            }
        }
    }
    Ok(map)
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}

fn created_text(m: &Manifest, store: &str, secs: f64, pruned: &[String]) -> String {
    let secrets = match (m.secrets.count, m.secrets.encrypted) {
        (0, _) => "no Secrets".to_string(),
        (n, true) => format!("{n} Secret(s) encrypted to {} age recipient(s)", m.secrets.recipients.len()),
        (n, false) => format!("{n} Secret(s) IN PLAINTEXT (--allow-plaintext-secrets)"),
    };
    let excluded: usize = m.excluded.values().sum();
    let mut out = format!(
        "Backup {} written to {store} in {secs:.1}s:\n  {} objects, {secrets}\n  {excluded} left out on purpose (the cluster recreates them; see `rekube backup describe {}`)\n  {}, sha256 {}",
        m.name,
        m.objects.len(),
        m.name,
        size(m.archive.size),
        m.archive.sha256
    );
    if !pruned.is_empty() {
        out.push_str(&format!("\nRetention deleted {} older backup(s): {}", pruned.len(), pruned.join(", ")));
    }
    out
}

fn list_text(all: &[rekube_backup::Listed], store: &str) -> String {
    if all.is_empty() {
        return format!("No backups in {store}.");
    }
    let mut out = format!(
        "{:<36} {:<12} {:<21} {:>8} {:>10}  {}\n",
        "NAME", "ENVIRONMENT", "CREATED", "OBJECTS", "SIZE", "KUBERNETES"
    );
    for l in all {
        match &l.manifest {
            Ok(m) => out.push_str(&format!(
                "{:<36} {:<12} {:<21} {:>8} {:>10}  {}\n",
                l.name,
                m.environment,
                m.created,
                m.objects.len(),
                size(m.archive.size),
                m.cluster.version
            )),
            Err(e) => out.push_str(&format!("{:<36} {e}\n", l.name)),
        }
    }
    out.trim_end().to_string()
}

fn describe_text(m: &Manifest) -> String {
    let f = &m.filter;
    let namespaces = if f.namespaces.is_empty() {
        "all but kube-system, kube-public, kube-node-lease".to_string()
    } else {
        f.namespaces.join(", ")
    };
    let mut out = format!("Backup {}\n", m.name);
    out.push_str(&format!(
        "  environment  {} (cluster {}, Kubernetes {})\n",
        m.environment, m.cluster.name, m.cluster.version
    ));
    out.push_str(&format!("  created      {} by rekube {}\n", m.created, m.tool_version));
    out.push_str(&format!(
        "  namespaces   {namespaces}\n  selector     {}\n",
        f.selector.as_deref().unwrap_or("(none)")
    ));
    out.push_str(&format!(
        "  cluster-wide {}\n",
        if f.cluster_resources { "included" } else { "only the CRDs of included custom resources" }
    ));
    out.push_str(&format!(
        "  archive      {} ({}), {}, sha256 {}\n",
        m.archive.file,
        m.archive.compression,
        size(m.archive.size),
        m.archive.sha256
    ));
    let secrets = if m.secrets.encrypted {
        format!("{} encrypted to {}", m.secrets.count, m.secrets.recipients.join(", "))
    } else {
        format!("{} in plaintext", m.secrets.count)
    };
    out.push_str(&format!("  secrets      {secrets}\n"));
    out.push_str(&format!(
        "  checksums    {} per-object sha256 sums (first: {} {})\n",
        m.objects.len(),
        m.objects.first().map_or("-", |o| short(&o.sha256)),
        m.objects.first().map_or("", |o| o.path.as_str())
    ));
    let width = m.counts.keys().chain(m.excluded.keys()).map(String::len).max().unwrap_or(0);
    out.push_str(&format!("  objects      {}\n", m.objects.len()));
    for (k, n) in &m.counts {
        out.push_str(&format!("    {k:<width$} {n:>6}\n"));
    }
    if !m.excluded.is_empty() {
        out.push_str("  left out on purpose (the cluster makes them again)\n");
        for (why, n) in &m.excluded {
            out.push_str(&format!("    {why:<width$} {n:>6}\n"));
        }
    }
    out.trim_end().to_string()
}

fn restore_text(m: &Manifest, env: &str, cluster: &str, r: &RestoreReport) -> String {
    let verb = if r.dry_run { "Dry run: restoring" } else { "Restored" };
    let mut out = format!(
        "{verb} backup {} into environment `{env}` (cluster `{cluster}`){}\n",
        m.name,
        if r.dry_run { " would do this; nothing was written:" } else { ":" }
    );
    for p in &r.plan {
        out.push_str(&format!("  {p}\n"));
    }
    if !r.plan.is_empty() {
        out.push('\n');
    }
    let line = |label: &str, counts: &std::collections::BTreeMap<String, usize>| {
        let total: usize = counts.values().sum();
        let each: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!("  {label:<9}{total:>6}  {}", each.join(", ")).trim_end().to_string() + "\n"
    };
    out.push_str(&line(if r.dry_run { "create" } else { "created" }, &r.created));
    out.push_str(&line(if r.dry_run { "update" } else { "updated" }, &r.updated));
    out.push_str(&format!("  {:<9}{:>6}\n", if r.dry_run { "leave" } else { "skipped" }, r.skipped.len()));
    if !r.dry_run {
        for s in &r.skipped {
            out.push_str(&format!("    {s}\n"));
        }
    }
    if !r.namespaces_created.is_empty() {
        out.push_str(&format!(
            "  namespaces {} {}\n",
            if r.dry_run { "to create:" } else { "created:" },
            r.namespaces_created.join(", ")
        ));
    }
    for w in &r.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    if !r.failed.is_empty() {
        let total = m.objects.len();
        out.push_str(&format!("PARTIALLY FAILED: {} of {total} objects could not be restored:\n", r.failed.len()));
        for f in &r.failed {
            out.push_str(&format!("    {f}\n"));
        }
    }
    out.trim_end().to_string()
}
