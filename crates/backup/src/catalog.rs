//! Backups in a store: list, read a manifest, verify, delete, retention.

use serde_json::Value;
use tokio_util::io::SyncIoBridge;

use crate::BackupError;
use crate::archive::{self, Manifest};
use crate::crypt::Identities;
use crate::sign::Provenance;
use crate::store::Store;

/// One backup found in a store.
#[derive(Debug)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// Its manifest, or why it cannot be read (an interrupted backup has none).
    pub manifest: Result<Manifest, String>,
}

/// Every backup in the store, oldest name first.
pub async fn list(store: &Store) -> Result<Vec<Listed>, BackupError> {
    let mut out = Vec::new();
    for name in store.names().await? {
        let manifest = match store.read_small(&store.path(&name, archive::MANIFEST_FILE)).await? {
            None => Err("incomplete: no manifest (interrupted?)".to_string()),
            Some(bytes) => serde_json::from_slice::<Manifest>(&bytes).map_err(|e| format!("unreadable manifest: {e}")),
        };
        out.push(Listed { name, manifest });
    }
    Ok(out)
}

/// Which signers a verify or restore trusts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// `backup.trusted-signers`.
    pub signers: Vec<String>,
    /// `--allow-unsigned`: accept an unsigned or unknown-signer backup.
    pub allow_unsigned: bool,
}

/// The manifest of backup `name`, once its signature is checked against
/// `trust`. The manifest is read once: what is used is parsed from the very
/// bytes the signature covered, and it pins the archive's sha256, which
/// every read of the archive checks, so a swap of either after this is caught.
pub async fn load_trusted(store: &Store, name: &str, trust: &Trust) -> Result<(Manifest, Provenance), BackupError> {
    let bytes = manifest_bytes(store, name).await?;
    let manifest = parse_manifest(name, &bytes)?;
    let signature = store.read_small(&store.path(name, crate::sign::SIGNATURE_FILE)).await?;
    let provenance = crate::sign::check(name, &bytes, signature.as_deref(), &trust.signers, trust.allow_unsigned)?;
    Ok((manifest, provenance))
}

/// The manifest of backup `name`.
pub async fn load_manifest(store: &Store, name: &str) -> Result<Manifest, BackupError> {
    parse_manifest(name, &manifest_bytes(store, name).await?)
}

/// Parses a manifest, refusing one that is damaged or of another format.
fn parse_manifest(name: &str, bytes: &[u8]) -> Result<Manifest, BackupError> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
        BackupError::refused(format!("backup {name}: unreadable manifest: {e}"), "the backup is damaged; pick another")
    })?;
    if m.format != archive::FORMAT {
        return Err(BackupError::refused(
            format!("backup {name} has format `{}`", m.format),
            format!("this rekube reads `{}`", archive::FORMAT),
        ));
    }
    Ok(m)
}

/// The bytes of backup `name`'s manifest; a missing one is refused with the
/// names the store does hold.
async fn manifest_bytes(store: &Store, name: &str) -> Result<bytes::Bytes, BackupError> {
    match store.read_small(&store.path(name, archive::MANIFEST_FILE)).await? {
        Some(bytes) => Ok(bytes),
        None => {
            let names = store.names().await.unwrap_or_default();
            let hint = match rekube_spec::diag::did_you_mean(name, names.iter().map(String::as_str)) {
                Some(best) => format!("did you mean `{best}`?"),
                None if names.is_empty() => format!("{} holds no backups", store.display()),
                None => "`rekube backup list` shows the backups".to_string(),
            };
            Err(BackupError::refused(format!("no backup `{name}` in {}", store.display()), hint))
        }
    }
}

/// What `verify` read.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    /// Entries checked.
    pub entries: usize,
    /// Bytes read (compressed).
    pub bytes: u64,
    /// Secrets decrypted.
    pub decrypted: usize,
}

/// Reads the whole archive: every checksum, every document, and every
/// Secret decrypted with `identities`. Encrypted Secrets without an identity
/// are refused, since decryption could not be proven.
pub async fn verify(
    store: &Store,
    manifest: &Manifest,
    identities: Option<&Identities>,
) -> Result<Verified, BackupError> {
    if manifest.secrets.encrypted && manifest.secrets.count > 0 && identities.is_none() {
        return Err(BackupError::refused(
            format!(
                "backup {} holds {} encrypted Secrets, and no identity was given to decrypt them",
                manifest.name, manifest.secrets.count
            ),
            "pass --identity <age key file> (or set REKUBE_AGE_IDENTITY)",
        ));
    }
    let reader = store.reader(&store.path(&manifest.name, &manifest.archive.file)).await?;
    let bridge = SyncIoBridge::new(reader);
    let m = manifest.clone();
    let name = manifest.name.clone();
    let identities = identities.cloned();
    let work = tokio::task::spawn_blocking(move || {
        let mut v = Verified::default();
        archive::read(bridge, &m, |_, entry, data| {
            let doc = if entry.path.ends_with(".age") {
                let ids = identities.as_ref().ok_or("an encrypted entry needs an identity")?;
                v.decrypted += 1;
                ids.decrypt(&data).map_err(|e| format!("entry {} cannot be decrypted: {e}", entry.path))?
            } else {
                data
            };
            let obj: Value =
                serde_json::from_slice(&doc).map_err(|e| format!("entry {} is not JSON: {e}", entry.path))?;
            if obj["apiVersion"].as_str().is_none()
                || obj["kind"].as_str().is_none()
                || obj["metadata"]["name"].as_str().is_none()
            {
                return Err(format!("entry {} is not a Kubernetes object", entry.path));
            }
            v.entries += 1;
            Ok(())
        })
        .map_err(|source| BackupError::Damaged { name, cause: source })?;
        v.bytes = m.archive.size;
        Ok(v)
    });
    work.await.map_err(|e| BackupError::Io { what: "verify stopped".into(), cause: std::io::Error::other(e) })?
}

/// Deletes backup `name`; refuses names that are not in the store.
pub async fn delete(store: &Store, name: &str) -> Result<usize, BackupError> {
    if !store.names().await?.iter().any(|n| n == name) {
        load_manifest(store, name).await?;
    }
    store.delete(name).await
}

/// Keeps the newest `keep` complete backups of `environment`; returns the
/// names deleted.
pub async fn retain(store: &Store, project: &str, environment: &str, keep: usize) -> Result<Vec<String>, BackupError> {
    // Only this project's backups of this environment: a bucket may be
    // shared, and another project's `prod` is not ours to prune.
    let ours = |m: &crate::Manifest| m.project.as_deref() == Some(project) && m.environment == environment;
    let mut mine: Vec<(String, String)> = list(store)
        .await?
        .into_iter()
        .filter_map(|l| l.manifest.ok().filter(ours).map(|m| (m.created, l.name)))
        .collect();
    mine.sort();
    let excess = mine.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for (_, name) in mine.into_iter().take(excess) {
        store.delete(&name).await?;
        deleted.push(name);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    /// A manifest as `backup create` writes it, for `project`'s `environment`.
    fn manifest(name: &str, project: Option<&str>, environment: &str, created: &str) -> String {
        serde_json::json!({
            "format": crate::archive::FORMAT, "name": name, "project": project, "environment": environment,
            "created": created, "tool_version": "0", "cluster": {"name": "c", "version": "v1.34.12"},
            "filter": {"namespaces": [], "selector": null, "cluster_resources": true},
            "archive": {"file": archive::ARCHIVE_FILE, "compression": "zstd", "size": 0, "sha256": ""},
            "secrets": {"count": 0, "encrypted": false, "recipients": []},
            "counts": {}, "excluded": {}, "objects": []
        })
        .to_string()
    }

    #[tokio::test]
    async fn retention_deletes_only_this_projects_backups_of_this_environment() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, project: Option<&str>, env: &str, created: &str| {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(archive::MANIFEST_FILE), manifest(name, project, env, created))
                .unwrap();
        };
        put("shop-prod-1", Some("shop"), "prod", "2026-12-01T00:00:00Z");
        put("shop-prod-2", Some("shop"), "prod", "2026-12-02T00:00:00Z");
        put("shop-prod-3", Some("shop"), "prod", "2026-12-03T00:00:00Z");
        put("shop-dev-1", Some("shop"), "dev", "2026-11-01T00:00:00Z");
        put("blog-prod-1", Some("blog"), "prod", "2026-11-01T00:00:00Z");
        put("old-prod-1", None, "prod", "2026-10-01T00:00:00Z");
        let store = Store::open(dir.path().to_str().unwrap(), dir.path(), &StoreOptions::default()).unwrap();
        let deleted = retain(&store, "shop", "prod", 1).await.unwrap();
        assert_eq!(deleted, ["shop-prod-1", "shop-prod-2"], "the oldest of shop's prod, nothing else");
        let mut left: Vec<String> = list(&store).await.unwrap().into_iter().map(|l| l.name).collect();
        left.sort();
        assert_eq!(left, ["blog-prod-1", "old-prod-1", "shop-dev-1", "shop-prod-3"]);
    }
}
