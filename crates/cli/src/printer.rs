//! All terminal output goes through here: data to stdout, messages to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Display;

/// A line of data (stdout).
pub fn data(line: impl Display) {
    println!("{line}");
}

/// JSON data (stdout), pretty-printed.
pub fn json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// A progress or summary message (stderr).
pub fn message(line: impl Display) {
    eprintln!("{line}");
}

/// Already-formatted diagnostics (stderr).
pub fn diagnostics(text: impl Display) {
    eprint!("{text}");
}

/// An error with its causes and an optional hint (stderr).
pub fn error(err: &anyhow::Error, hint: Option<&str>) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("caused by: {cause}");
    }
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
}
