//! Diagnostics about the user's files: what is wrong, where (file, line,
//! column), the offending line with a caret, and a hint that says what to do.
//!
//! Every error about an input file goes through [`Diagnostic`], whatever
//! produced it (the YAML parser, validation, a rendered manifest), so they all
//! look the same and are snapshot-tested the same way.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl Pos {
    /// From a serde-saphyr location; `None` when it is unknown.
    pub fn from_location(loc: serde_saphyr::Location) -> Option<Self> {
        (loc.line() > 0).then(|| Self { line: loc.line(), column: loc.column().max(1) })
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it (relative to the spec when possible).
    pub file: PathBuf,
    /// Where in the file, when known.
    pub pos: Option<Pos>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The offending source line, for the caret display.
    pub source_line: Option<String>,
    /// Warnings do not fail validation.
    pub warning: bool,
}

impl Diagnostic {
    /// An error at `pos` in `file`; the source line is filled from `source`.
    pub fn new(file: &Path, source: Option<&str>, pos: Option<Pos>, message: impl Into<String>) -> Self {
        let source_line = match (source, pos) {
            (Some(src), Some(p)) => {
                src.lines().nth(usize::try_from(p.line).unwrap_or(usize::MAX).saturating_sub(1)).map(str::to_string)
            }
            _ => None,
        };
        Self { file: file.to_path_buf(), pos, message: message.into(), hint: None, source_line, warning: false }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Makes it a warning.
    pub fn warning(mut self) -> Self {
        self.warning = true;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.warning { "warning" } else { "error" };
        write!(f, "{level}: {}", self.file.display())?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        writeln!(f, ": {}", self.message)?;
        if let (Some(line), Some(p)) = (&self.source_line, self.pos) {
            let num = p.line.to_string();
            let pad = " ".repeat(num.len());
            // Tabs would shift the caret; show them as one space each.
            let shown = line.replace('\t', " ");
            let col = usize::try_from(p.column).unwrap_or(1).saturating_sub(1);
            let caret_at = shown.chars().take(col).count();
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {shown}")?;
            writeln!(f, "{pad} | {}^", " ".repeat(caret_at))?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "hint: {h}")?;
        }
        Ok(())
    }
}

/// Several diagnostics; the `Err` side of loading and validating.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Errors only (warnings left out).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.warning)
    }

    /// Whether any entry is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Jaro-Winkler ranks prefixes well ("need" → "needs"); Damerau-Levenshtein
    // catches swapped letters in short words ("wbe" → "web").
    let max_edits = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), strsim::damerau_levenshtein(word, c), c))
        .filter(|(score, edits, _)| *score > 0.8 || *edits <= max_edits)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, _, c)| c)
}
