//! Prerequisites: idempotent steps before a cluster exists (the state
//! bucket, DNS zone and IAM that kops-style tools expect). `check` exits 0
//! when the thing exists; `create` makes it; `delete` removes it.

use std::path::Path;

use crate::tool::{self, ToolError};

/// One prerequisite.
#[derive(Debug, Clone)]
pub struct Prerequisite {
    /// Its name.
    pub name: String,
    /// Exits 0 when present.
    pub check: Vec<String>,
    /// Makes it.
    pub create: Vec<String>,
    /// Removes it (empty: left in place).
    pub delete: Vec<String>,
}

/// What happened to a prerequisite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was there: nothing ran.
    Present,
    /// It was made (or removed) now.
    Changed,
    /// It was not there (on removal), or has no `delete`.
    Absent,
}

/// Prerequisite failures.
#[derive(Debug, thiserror::Error)]
pub enum PrereqError {
    /// A command failed.
    #[error("prerequisite `{name}`: {cause}")]
    Tool {
        /// The prerequisite.
        name: String,
        /// The cause.
        cause: ToolError,
    },
    /// `create` succeeded but `check` still fails: not idempotent, or broken.
    #[error("prerequisite `{name}`: `create` succeeded but `check` still says it is missing")]
    StillMissing {
        /// The prerequisite.
        name: String,
    },
}

async fn present(p: &Prerequisite, dir: &Path) -> Result<bool, PrereqError> {
    let ran = tool::run(&p.check[0], &p.check[1..], dir, None)
        .await
        .map_err(|source| PrereqError::Tool { name: p.name.clone(), cause: source })?;
    Ok(ran.code == Some(0))
}

async fn run(p: &Prerequisite, argv: &[String], dir: &Path) -> Result<(), PrereqError> {
    tool::run_ok(&argv[0], &argv[1..], dir, None)
        .await
        .map(drop)
        .map_err(|source| PrereqError::Tool { name: p.name.clone(), cause: source })
}

/// Makes sure it exists: runs `create` only when `check` fails, then
/// checks again.
pub async fn ensure(p: &Prerequisite, dir: &Path) -> Result<Outcome, PrereqError> {
    if present(p, dir).await? {
        return Ok(Outcome::Present);
    }
    run(p, &p.create, dir).await?;
    if !present(p, dir).await? {
        return Err(PrereqError::StillMissing { name: p.name.clone() });
    }
    Ok(Outcome::Changed)
}

/// Removes it when it exists and has a `delete`.
pub async fn remove(p: &Prerequisite, dir: &Path) -> Result<Outcome, PrereqError> {
    if p.delete.is_empty() || !present(p, dir).await? {
        return Ok(Outcome::Absent);
    }
    run(p, &p.delete, dir).await?;
    Ok(Outcome::Changed)
}
