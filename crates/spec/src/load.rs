//! Reading `rekube.yaml` into a [`Spec`], turning every parser error into a
//! [`Diagnostic`] with the file, the position and, for unknown keys, the
//! closest known key.

use std::path::{Path, PathBuf};

use serde_saphyr::{DuplicateKeyPolicy, Error as YamlError, Options};

use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::model::Spec;

/// A parsed spec and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The model.
    pub spec: Spec,
    /// The spec file as given.
    pub path: PathBuf,
    /// The directory relative paths in the spec are resolved against.
    pub dir: PathBuf,
    /// The file's text, for diagnostics.
    pub source: String,
}

impl Loaded {
    /// `rel` resolved against the spec's directory.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A diagnostic pointing into the spec file.
    pub fn diag(&self, pos: Option<Pos>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.path, Some(&self.source), pos, message)
    }
}

/// YAML options shared by every file rekube reads: duplicate keys are errors,
/// and `0755` is an octal number as kubectl reads it, not 755.
pub fn yaml_options() -> Options {
    let mut options = Options::default();
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.legacy_octal_numbers = true;
    options
}

/// Reads and decodes the spec at `path`.
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(path, None, None, format!("cannot read the spec: {e}")).hint(
            "run rekube in the directory holding rekube.yaml, or pass its path with -f",
        )])
    })?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let spec = parse(path, &source)?;
    Ok(Loaded {
        spec,
        path: path.to_path_buf(),
        dir,
        source,
    })
}

/// Decodes spec text; `path` is only used in diagnostics.
pub fn parse(path: &Path, source: &str) -> Result<Spec, Diagnostics> {
    if source.trim().is_empty() {
        return Err(Diagnostics(vec![Diagnostic::new(path, None, None, "the spec is empty")
            .hint("declare at least `clusters`, `components` and `environments`; see docs/spec.md")]));
    }
    serde_saphyr::from_str_with_options::<Spec>(source, yaml_options())
        .map_err(|e| Diagnostics(vec![yaml_diagnostic(path, source, &e)]))
}

/// Turns a serde-saphyr error into a diagnostic with position and hint.
pub fn yaml_diagnostic(path: &Path, source: &str, err: &YamlError) -> Diagnostic {
    let pos = err.location().and_then(Pos::from_location);
    let (message, hint) = describe(err);
    let mut d = Diagnostic::new(path, Some(source), pos, message);
    if let Some(h) = hint {
        d = d.hint(h);
    }
    // YAML forbids tabs for indentation; the parser's message does not say so.
    if d.source_line.as_deref().is_some_and(|l| l.trim_end().starts_with('\t') || l.contains("\t")) && d.hint.is_none() {
        d = d.hint("this line contains a tab; YAML indentation must use spaces");
    }
    d
}

fn describe(err: &YamlError) -> (String, Option<String>) {
    match err {
        YamlError::SerdeUnknownField { field, expected, .. } => {
            let hint = match did_you_mean(field, expected.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if expected.is_empty() => "remove it".to_string(),
                None => format!("known keys here: {}", expected.join(", ")),
            };
            (format!("unknown key `{field}`"), Some(hint))
        }
        YamlError::SerdeMissingField { field, .. } => (
            format!("missing required key `{field}`"),
            Some(format!("add `{field}:` to this mapping")),
        ),
        YamlError::SerdeUnknownVariant { variant, expected, .. } => {
            let hint = match did_you_mean(variant, expected.iter().copied()) {
                Some(best) => format!("did you mean `{best}`? (one of: {})", expected.join(", ")),
                None => format!("use one of: {}", expected.join(", ")),
            };
            (format!("unknown value `{variant}`"), Some(hint))
        }
        YamlError::DuplicateMappingKey { key, .. } => (
            match key {
                Some(k) => format!("duplicate key `{k}`"),
                None => "duplicate key".to_string(),
            },
            Some("each key may appear once per mapping; merge the two entries".to_string()),
        ),
        other => {
            // serde-saphyr's Display appends its own snippet; keep the first line.
            let text = other.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML").to_string();
            (strip_location_suffix(&first), None)
        }
    }
}

/// Drops a trailing " at line X column Y" that we show ourselves.
fn strip_location_suffix(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].trim_end_matches(':').to_string(),
        None => msg.to_string(),
    }
}
