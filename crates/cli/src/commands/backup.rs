//! `rekube backup create|list|describe|verify|restore|delete`: the store and
//! recipients come from the spec's `backup:` section.

use std::time::Instant;

use rekube_backup::crypt::Identities;
use rekube_backup::{BackupError, Existing, RestoreOptions, text};
use serde_json::json;

use crate::Failure;
use crate::args::{Backup, ExistingMode, Global, Identity, Output};
use crate::commands::load_valid;
use crate::printer;
use rekube_engine::ops::backup::{self as ops, open_store};

fn failure(e: BackupError) -> Failure {
    rekube_engine::EngineError::from(e).into()
}

pub(crate) fn identities(i: &Identity) -> Result<Option<Identities>, Failure> {
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
    if let Backup::Keygen { signing: true } = cmd {
        let key = rekube_backup::sign::Signer::generate().map_err(failure)?;
        printer::message(format!("Public key: {}", key.public()));
        printer::data(format!("# public key: {}\n{}", key.public(), key.to_text()));
        return Ok(0);
    }
    if let Backup::Keygen { signing: false } = cmd {
        let (public, secret) = rekube_backup::crypt::generate();
        printer::message(format!("Public key: {public}"));
        printer::data(format!("# public key: {public}\n{secret}"));
        return Ok(0);
    }
    let loaded = load_valid(g)?;
    let (store, spec) = open_store(&loaded)?;
    let note = |e| {
        if let rekube_engine::steps::Event::Line(l) = e {
            printer::message(l);
        }
    };
    match cmd {
        Backup::Create {
            env,
            namespaces,
            selector,
            include_cluster_resources,
            kinds,
            own,
            name,
            allow_plaintext_secrets,
        } => {
            let req = ops::CreateRequest {
                env: env.clone(),
                namespaces: namespaces.clone(),
                selector: selector.clone(),
                include_cluster_resources: *include_cluster_resources,
                own: *own,
                name: name.clone(),
                allow_plaintext_secrets: *allow_plaintext_secrets,
                kinds: kinds.clone(),
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
                printer::data(text::created(&manifest, store.display(), seconds, &pruned));
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
                printer::data(text::describe(&m));
            }
            Ok(0)
        }
        Backup::Verify { name, identity } => {
            let ids = identities(identity)?;
            let trust = ops::trust(spec, identity.allow_unsigned);
            let (m, provenance) = rekube_backup::load_trusted(&store, name, &trust).await.map_err(failure)?;
            let v = rekube_backup::verify(&store, &m, ids.as_ref()).await.map_err(failure)?;
            let signed = match &provenance {
                rekube_backup::sign::Provenance::Signed { signer } => format!("signed by {signer}"),
                rekube_backup::sign::Provenance::Unchecked { why } => format!("{why} (accepted: --allow-unsigned)"),
            };
            if g.output == Output::Json {
                printer::json(&json!({
                    "name": m.name,
                    "intact": true,
                    "entries": v.entries,
                    "bytes": v.bytes,
                    "decrypted": v.decrypted,
                    "sha256": m.archive.sha256,
                    "signature": signed
                }));
            } else {
                printer::data(format!(
                    "Backup {} is intact: {} entries, {} read, {} Secret(s) decrypted, sha256 {}; {signed}.",
                    m.name,
                    v.entries,
                    text::size(v.bytes),
                    v.decrypted,
                    m.archive.sha256
                ));
            }
            Ok(0)
        }
        Backup::Restore { name, to, namespace_map, existing, dry_run, restore_status, identity } => {
            let opts = RestoreOptions {
                namespace_map: rekube_backup::rules::parse_namespace_map(namespace_map).map_err(failure)?,
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
                ops::restore(&loaded, name, to, &opts, identity.allow_unsigned, g.break_lock, &note).await?;
            if g.output == Output::Json {
                printer::json(&serde_json::to_value(&report).unwrap_or_default());
            } else {
                printer::data(text::restored(&m, to, &cluster, &report));
            }
            Ok(if report.failed.is_empty() { 0 } else { 1 })
        }
        Backup::Keygen { .. } => unreachable!("handled above"),
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
                text::size(m.archive.size),
                m.cluster.version.clone(),
            ],
            Err(e) => vec![l.name.clone(), e.to_string()],
        };
        table.row(cells, Vec::new());
    }
    table.render()
}
