//! `rekube backup create|list|describe|verify|restore|delete`: the store and
//! recipients come from the spec's `backup:` section.

use std::time::Instant;

use rekube_backup::crypt::Identities;
use rekube_backup::{BackupError, Existing, Manifest, RestoreOptions, RestoreReport};
use serde_json::json;

use crate::Failure;
use crate::args::{Backup, ExistingMode, Global, Identity, Output};
use crate::commands::load_valid;
use crate::printer;
use rekube_engine::ops::backup::{self as ops, open_store};

fn failure(e: BackupError) -> Failure {
    rekube_engine::EngineError::from(e).into()
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
    let (store, _) = open_store(&loaded)?;
    let note = |e| {
        if let rekube_engine::steps::Event::Line(l) = e {
            printer::message(l);
        }
    };
    match cmd {
        Backup::Create { env, namespaces, selector, include_cluster_resources, own, name, allow_plaintext_secrets } => {
            let req = ops::CreateRequest {
                env: env.clone(),
                namespaces: namespaces.clone(),
                selector: selector.clone(),
                include_cluster_resources: *include_cluster_resources,
                own: *own,
                name: name.clone(),
                allow_plaintext_secrets: *allow_plaintext_secrets,
            };
            let ops::Created { manifest, warnings, pruned, seconds } = ops::create(&loaded, &req, &note).await?;
            for w in warnings {
                printer::message(format!("warning: {w}"));
            }
            if g.output == Output::Json {
                printer::json(&json!({
                    "name": manifest.name,
                    "store": store.display(),
                    "objects": manifest.objects.len(),
                    "secrets": manifest.secrets.count,
                    "size": manifest.archive.size,
                    "sha256": manifest.archive.sha256,
                    "deleted_by_retention": pruned
                }));
            } else {
                printer::data(created_text(&manifest, store.display(), seconds, &pruned));
            }
            Ok(0)
        }
        Backup::List => {
            let all = rekube_backup::list(&store).await.map_err(failure)?;
            if g.output == Output::Json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|l| match &l.manifest {
                        Ok(m) => json!({
                            "name": l.name,
                            "environment": m.environment,
                            "created": m.created,
                            "objects": m.objects.len(),
                            "size": m.archive.size,
                            "cluster_version": m.cluster.version
                        }),
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
                printer::json(&json!({
                    "name": m.name,
                    "intact": true,
                    "entries": v.entries,
                    "bytes": v.bytes,
                    "decrypted": v.decrypted,
                    "sha256": m.archive.sha256
                }));
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
            let opts = RestoreOptions {
                namespace_map: parse_map(namespace_map)?,
                existing: Some(match existing {
                    ExistingMode::Skip => Existing::Skip,
                    ExistingMode::Update => Existing::Update,
                }),
                dry_run: *dry_run,
                restore_status: *restore_status,
                identities: identities(identity)?,
                progress: Some(throttled_progress(format!("restoring {name}"))),
            };
            let ops::Restored { manifest: m, cluster, report } =
                ops::restore(&loaded, name, to, &opts, g.break_lock, &note).await?;
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
        "Backup {} written to {store} in {secs:.1}s:\
         \n  {} objects, {secrets}\
         \n  {excluded} left out on purpose (the cluster recreates them; see `rekube backup describe {}`)\
         \n  {}, sha256 {}",
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
    use crate::table::{Table, left, right};
    let mut table = Table::new([
        left("NAME", 36),
        left("ENVIRONMENT", 12),
        left("CREATED", 21),
        right("OBJECTS", 8),
        right("SIZE", 10).gap(2),
        left("KUBERNETES", 0),
    ]);
    for l in all {
        let cells = match &l.manifest {
            Ok(m) => vec![
                l.name.clone(),
                m.environment.clone(),
                m.created.clone(),
                m.objects.len().to_string(),
                size(m.archive.size),
                m.cluster.version.clone(),
            ],
            Err(e) => vec![l.name.clone(), e.to_string()],
        };
        table.row(cells, Vec::new());
    }
    table.render()
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
