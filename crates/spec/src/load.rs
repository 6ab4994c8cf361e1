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

    /// The project name and whether the spec declares it. Without a
    /// `project:` key it is the spec directory's name made a DNS label
    /// (`Team A/` becomes `team-a`), as docker compose names its projects.
    pub fn project(&self) -> (String, bool) {
        if let Some(p) = &self.spec.project {
            return (p.value.clone(), true);
        }
        let dir = std::fs::canonicalize(&self.dir)
            .unwrap_or_else(|_| std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()));
        (project_from_dir(dir.file_name().and_then(|n| n.to_str()).unwrap_or_default()), false)
    }

    /// A diagnostic pointing into the spec file.
    pub fn diag(&self, pos: Option<Pos>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.path, Some(&self.source), pos, message)
    }
}

/// A directory name made a DNS label: lower-case, runs of other characters
/// become one '-', at most 63 characters; `default` when nothing is left.
pub fn project_from_dir(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        let ch = ch.to_ascii_lowercase();
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            out.push(ch);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() { "default".to_string() } else { trimmed }
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
        Diagnostics(vec![
            Diagnostic::new(path, None, None, format!("cannot read the spec: {e}"))
                .hint("run rekube in the directory holding rekube.yaml, or pass its path with -f"),
        ])
    })?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let spec = parse(path, &source)?;
    Ok(Loaded { spec, path: path.to_path_buf(), dir, source })
}

/// Decodes spec text; `path` is only used in diagnostics.
pub fn parse(path: &Path, source: &str) -> Result<Spec, Diagnostics> {
    if source.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(Diagnostics(vec![
            Diagnostic::new(path, None, None, "the spec is empty")
                .hint("declare at least `clusters`, `components` and `environments`; see docs/spec.md"),
        ]));
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
    if d.source_line.as_deref().is_some_and(|l| l.trim_end().starts_with('\t') || l.contains("\t")) && d.hint.is_none()
    {
        d = d.hint("this line contains a tab; YAML indentation must use spaces");
    }
    d
}

fn describe(mut err: &YamlError) -> (String, Option<String>) {
    while let YamlError::WithSnippet { error, .. } | YamlError::AliasError { error, .. } = err {
        err = error;
    }
    match err {
        YamlError::SerdeUnknownField { field, expected, .. } => {
            let hint = match did_you_mean(field, expected.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if expected.is_empty() => "remove it".to_string(),
                None => format!("known keys here: {}", expected.join(", ")),
            };
            (format!("unknown key `{field}`"), Some(hint))
        }
        YamlError::SerdeMissingField { field, .. } => {
            (format!("missing required key `{field}`"), Some(format!("add `{field}:` to this mapping")))
        }
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
            let text = other.to_string();
            // Structural mismatches read better in the spec's own terms.
            for (needle, message, hint) in [
                ("expected sequence start", "expected a list here", "write `[a, b]`, or one `- item` per line"),
                (
                    "expected mapping start",
                    "expected a mapping here",
                    "write `key: value` pairs, indented under this key",
                ),
                (
                    "did not find expected ',' or '}'",
                    "",
                    "a `{` above is not closed, or two entries lack a `,` between them",
                ),
                (
                    "did not find expected ',' or ']'",
                    "",
                    "a `[` above is not closed, or two items lack a `,` between them",
                ),
                ("invalid u", "expected a whole number", "write digits only, e.g. `3`"),
                ("invalid i", "expected a whole number", "write digits only, e.g. `3`"),
                ("invalid bool", "expected `true` or `false`", "write `true` or `false`"),
            ] {
                if text.contains(needle) {
                    let message = if message.is_empty() {
                        strip_location(text.lines().next().unwrap_or_default())
                    } else {
                        message.to_string()
                    };
                    return (message, Some(hint.to_string()));
                }
            }
            // serde-saphyr's Display appends its own snippet; keep the first line.
            let text = other.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML");
            (strip_location(first), None)
        }
    }
}

/// Drops the "error: line X column Y: " prefix (or " at line X column Y"
/// suffix) that serde-saphyr adds: the diagnostic shows the position itself.
fn strip_location(msg: &str) -> String {
    let msg = msg.strip_prefix("error: ").unwrap_or(msg);
    let msg = match msg.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(msg, |(_, m)| m),
        None => msg,
    };
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].trim_end_matches(':').to_string(),
        None => msg.to_string(),
    }
}
