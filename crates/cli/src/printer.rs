//! All terminal output goes through here: data to stdout, messages to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Display;
use std::io::Write;

/// Writes to stdout; a closed pipe (`rekube render | head`) ends the
/// process quietly, as Unix tools do, instead of panicking.
fn out(text: impl Display) {
    if let Err(e) = writeln!(std::io::stdout().lock(), "{text}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// A line of data (stdout).
pub fn data(line: impl Display) {
    out(line);
}

/// JSON data (stdout), pretty-printed.
pub fn json(value: &serde_json::Value) {
    out(serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// A progress or summary message (stderr).
pub fn message(line: impl Display) {
    eprintln!("{line}");
}

/// Already-formatted diagnostics (stderr).
pub fn diagnostics(text: impl Display) {
    // The same problem found in several environments (a chart they share)
    // is said once.
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let text = text.to_string();
    let mut said = SAID.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !said.contains(&text) {
        eprint!("{text}");
        said.push(text);
    }
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
