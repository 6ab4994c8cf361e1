//! Signed backups. The manifest holds the archive's sha256 and every
//! entry's, so one ed25519 signature over its bytes covers the whole backup.
//! `create` signs with `backup.sign-with`; `verify` and `restore` accept only
//! a signature by one of `backup.trusted-signers`, and refuse an unsigned or
//! unknown-signer backup unless told `--allow-unsigned`. Whoever can write to
//! the bucket but does not hold the key cannot slip an object (a
//! cluster-admin ClusterRoleBinding, say) into a restore.
//!
//! Keys are text: `rekube-ed25519-secret:<64 hex>` for the signing key (a
//! file, like an age identity), `ed25519:<64 hex>` for the public one.

use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Value, json};

use crate::BackupError;

/// Next to `manifest.json`, written before it (a backup is complete only
/// once its manifest exists, so a signed one always has its signature).
pub const SIGNATURE_FILE: &str = "manifest.json.sig";
const SECRET_PREFIX: &str = "rekube-ed25519-secret:";
const PUBLIC_PREFIX: &str = "ed25519:";
const FORMAT: &str = "rekube.dev/backup-signature/v1";

/// A signing key.
pub struct Signer(SigningKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public())
    }
}

impl Clone for Signer {
    fn clone(&self) -> Self {
        Self(SigningKey::from_bytes(&self.0.to_bytes()))
    }
}

impl Signer {
    /// A new random key.
    pub fn generate() -> Result<Self, BackupError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| BackupError::Io {
            what: "generate a signing key".into(),
            cause: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key as its file holds it.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", hex::encode(self.0.to_bytes()))
    }

    /// Reads a key file (`backup.sign-with`).
    pub fn from_file(path: &Path) -> Result<Self, BackupError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BackupError::Io { what: format!("read signing key {}", path.display()), cause: e })?;
        let refused = || {
            BackupError::refused(
                format!("{} is not a rekube signing key", path.display()),
                "make one with `rekube backup keygen --signing > signing.key`",
            )
        };
        // `# public key: ...` comment lines, as `keygen --signing` writes them, are skipped.
        let hex_key = text.lines().find_map(|l| l.trim().strip_prefix(SECRET_PREFIX)).ok_or_else(refused)?;
        let bytes: [u8; 32] = hex::decode(hex_key).ok().and_then(|b| b.try_into().ok()).ok_or_else(refused)?;
        Ok(Self(SigningKey::from_bytes(&bytes)))
    }

    /// Its public key, as `trusted-signers` lists it.
    pub fn public(&self) -> String {
        public_text(&self.0.verifying_key())
    }

    /// The signature file for these manifest bytes.
    pub fn sign(&self, manifest: &[u8]) -> Vec<u8> {
        let signature = self.0.sign(manifest);
        let file = json!({"format": FORMAT, "signer": self.public(), "signature": hex::encode(signature.to_bytes())});
        serde_json::to_vec_pretty(&file).expect("serialises")
    }
}

fn public_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", hex::encode(key.to_bytes()))
}

/// Whether `text` is a public key as `trusted-signers` takes it.
pub fn is_public_key(text: &str) -> bool {
    parse_public(text).is_some()
}

fn parse_public(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.strip_prefix(PUBLIC_PREFIX)?).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Who signed a backup, as far as it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// A trusted signer's valid signature.
    Signed {
        /// The signer's public key.
        signer: String,
    },
    /// Not signed, or not by a trusted signer, accepted with `--allow-unsigned`.
    Unchecked {
        /// Why it could not be trusted.
        why: String,
    },
}

/// Checks backup `name`'s `manifest` bytes against its signature file and
/// the `trusted` signers. Refuses what cannot be trusted unless
/// `allow_unsigned`; a signature that does not match is refused even then
/// (the manifest was changed after signing).
pub fn check(
    name: &str,
    manifest: &[u8],
    signature: Option<&[u8]>,
    trusted: &[String],
    allow_unsigned: bool,
) -> Result<Provenance, BackupError> {
    let untrusted = |why: String, hint: &str| {
        if allow_unsigned {
            Ok(Provenance::Unchecked { why })
        } else {
            Err(BackupError::refused(format!("backup {name}: {why}; nothing was written"), hint))
        }
    };
    let Some(signature) = signature else {
        return untrusted(
            "not signed".into(),
            "sign backups with `backup.sign-with` and list its public key in `backup.trusted-signers`; \
             restore an unsigned one only if you know where it came from, with --allow-unsigned",
        );
    };
    let file: Value = serde_json::from_slice(signature).unwrap_or_default();
    let signer = file["signer"].as_str().unwrap_or_default().to_string();
    let (Some(key), Some(sig)) = (
        parse_public(&signer),
        file["signature"]
            .as_str()
            .and_then(|s| hex::decode(s).ok())
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b)),
    ) else {
        return Err(BackupError::refused(
            format!("backup {name}: its signature file is unreadable; nothing was written"),
            "the backup is damaged or was tampered with; pick another",
        ));
    };
    if key.verify_strict(manifest, &sig).is_err() {
        return Err(BackupError::refused(
            format!(
                "backup {name}: the manifest does not match its signature (changed after it was signed); \
                 nothing was written"
            ),
            "the backup was tampered with or damaged; do not restore it, pick another",
        ));
    }
    if !trusted.iter().any(|t| t == &signer) {
        return untrusted(
            format!("signed by {signer}, which is not in `backup.trusted-signers`"),
            "add that key to `backup.trusted-signers` if you trust it, or pass --allow-unsigned",
        );
    }
    Ok(Provenance::Signed { signer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_the_manifest_and_only_trusted_signers_pass() {
        let key = Signer::generate().unwrap();
        let manifest = br#"{"name":"b","archive":{"sha256":"ab"}}"#;
        let sig = key.sign(manifest);
        let trusted = vec![key.public()];
        assert_eq!(
            check("b", manifest, Some(&sig), &trusted, false).unwrap(),
            Provenance::Signed { signer: key.public() }
        );

        let forged = br#"{"name":"b","archive":{"sha256":"cd"}}"#;
        let e = check("b", forged, Some(&sig), &trusted, true).unwrap_err().to_string();
        assert!(e.contains("does not match its signature"), "a changed manifest is refused, even when allowed: {e}");

        let stranger = Signer::generate().unwrap();
        let theirs = stranger.sign(manifest);
        assert!(check("b", manifest, Some(&theirs), &trusted, false).unwrap_err().to_string().contains("not in"));
        assert!(matches!(check("b", manifest, Some(&theirs), &trusted, true), Ok(Provenance::Unchecked { .. })));
        assert!(check("b", manifest, None, &trusted, false).unwrap_err().to_string().contains("not signed"));
    }

    #[test]
    fn keys_round_trip_through_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let key = Signer::generate().unwrap();
        std::fs::write(dir.path().join("k"), format!("# public key: {}\n{}\n", key.public(), key.to_text())).unwrap();
        let back = Signer::from_file(&dir.path().join("k")).unwrap();
        assert_eq!(back.public(), key.public());
        assert!(is_public_key(&key.public()) && !is_public_key("ed25519:00"));
        std::fs::write(dir.path().join("bad"), "age1...").unwrap();
        assert!(
            Signer::from_file(&dir.path().join("bad")).unwrap_err().to_string().contains("not a rekube signing key")
        );
    }
}
