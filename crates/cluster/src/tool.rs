//! Running external programs (kind, k3d, exec providers, prerequisite
//! commands): arguments as a list, never through a shell; stderr goes to
//! the user as it comes (these can take minutes), stdout is captured.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// A program that failed or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// It could not be started.
    #[error("cannot run `{program}`: {cause}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// It ran and failed.
    #[error("`{command}` failed ({status}){detail}")]
    Failed {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stdout, if anything.
        detail: String,
    },
}

/// What a program printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// stdout.
    pub stdout: String,
}

/// Runs `program args...` in `dir`, feeding `stdin`; stderr is inherited.
pub async fn run(program: &str, args: &[String], dir: &Path, stdin: Option<&[u8]>) -> Result<Ran, ToolError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn { program: program.to_string(), cause: source })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A program that does not read its input is not an error.
        let _ = pipe.write_all(data).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| ToolError::Spawn { program: program.to_string(), cause: source })?;
    Ok(Ran { code: out.status.code(), stdout: String::from_utf8_lossy(&out.stdout).into_owned() })
}

/// Like [`run`], but a non-zero exit is an error.
pub async fn run_ok(program: &str, args: &[String], dir: &Path, stdin: Option<&[u8]>) -> Result<String, ToolError> {
    let ran = run(program, args, dir, stdin).await?;
    if ran.code == Some(0) {
        return Ok(ran.stdout);
    }
    let detail = ran.stdout.trim();
    Err(ToolError::Failed {
        command: std::iter::once(program).chain(args.iter().map(String::as_str)).collect::<Vec<_>>().join(" "),
        status: ran.code.map_or("killed by a signal".into(), |c| format!("exit {c}")),
        detail: if detail.is_empty() {
            String::new()
        } else {
            format!(": {}", detail.lines().last().unwrap_or(detail))
        },
    })
}
