//! Dynamic shell completion of environment and component names, read from
//! `rekube.yaml` in the current directory when the shell asks
//! (`source <(COMPLETE=bash rekube)`; zsh and fish alike, see the README).
//! A spec that is missing or does not parse completes nothing: completion
//! never prints errors into the user's prompt.

use std::ffi::OsStr;

use clap_complete::CompletionCandidate;

fn names(section: &str, current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let Ok(text) = std::fs::read_to_string("rekube.yaml") else { return Vec::new() };
    let Ok(doc) = serde_saphyr::from_str::<serde_json::Value>(&text) else { return Vec::new() };
    doc[section]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| k.starts_with(prefix.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// The spec's environment names.
pub fn environments(current: &OsStr) -> Vec<CompletionCandidate> {
    names("environments", current)
}

/// The spec's component names.
pub fn components(current: &OsStr) -> Vec<CompletionCandidate> {
    names("components", current)
}
