//! Backups of a cluster's objects, and restores into any cluster.
//!
//! `create` streams every selected object, one LIST page at a time, into a
//! zstd-compressed tar in a directory or an S3 bucket, with Secrets
//! encrypted to age recipients, and writes a manifest of per-object sha256
//! sums last. `verify` re-reads all of it. `restore` verifies first and only
//! then writes: CRDs, Namespaces, the rest in Velero's order, custom
//! resources once their CRD is Established, with owner references relinked
//! to the new UIDs. The format is described in docs/backup-format.md.

pub mod archive;
mod catalog;
mod create;
pub mod crypt;
mod restore;
pub mod rules;
pub mod sign;
mod store;
pub mod text;

pub use archive::{ArchiveError, Manifest};
pub use catalog::{Listed, Trust, Verified, delete, list, load_manifest, load_trusted, retain, verify};
pub use create::{CreateOptions, create, default_name};
pub use restore::{Existing, Progress, RestoreOptions, RestoreReport, restore};
pub use store::{Store, StoreOptions};

/// Why a backup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store refused or failed.
    #[error("store {store}: {cause}")]
    Store {
        /// The store.
        store: String,
        /// The cause.
        cause: object_store::Error,
    },
    /// Local I/O failed.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The cluster refused or failed.
    #[error("{what}: {cause}")]
    Kube {
        /// What was being done.
        what: String,
        /// The cause.
        cause: kube::Error,
    },
    /// The archive is damaged; nothing was written anywhere.
    #[error("backup {name} is damaged: {cause}")]
    Damaged {
        /// The backup.
        name: String,
        /// What is wrong.
        cause: ArchiveError,
    },
    /// The operation was refused before it started; the hint says what to do.
    #[error("{message}")]
    Refused {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
}

impl BackupError {
    /// A hint for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Refused { hint, .. } => Some(hint.clone()),
            Self::Damaged { .. } => {
                Some("nothing was written; restore an older backup (`rekube backup list`) and check the store".into())
            }
            Self::Store { cause: object_store::Error::NotFound { .. }, .. } => {
                Some("check `backup.store` in the spec and the AWS_* credentials".into())
            }
            _ => None,
        }
    }

    pub(crate) fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Refused { message: message.into(), hint: hint.into() }
    }

    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Kube { what, cause: source }
    }
}
