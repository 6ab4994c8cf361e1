//! Running external programs (kind, k3d, exec providers, prerequisite
//! commands): arguments as a list, never through a shell; stderr goes to
//! the user as it comes (these can take minutes), stdout is captured while
//! stdin is written, so a program that prints before it reads cannot
//! deadlock; each has a deadline ([`timeout`]), after which it is killed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// The environment variable that sets every external program's deadline.
pub const TIMEOUT_VAR: &str = "REKUBE_TOOL_TIMEOUT";

/// How long a provider or prerequisite command may run by default: making
/// a managed cluster takes a quarter of an hour.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `REKUBE_TOOL_TIMEOUT` (`90s`, `10m`, `1h`), if set; an error says why
/// it is not a duration.
pub fn timeout_override() -> Result<Option<Duration>, String> {
    let Some(text) = std::env::var_os(TIMEOUT_VAR) else { return Ok(None) };
    let text = text.to_string_lossy();
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        Ok(_) => Err(format!("{TIMEOUT_VAR}=`{text}` is zero")),
        Err(e) => Err(format!("{TIMEOUT_VAR}=`{text}` is not a duration ({e})")),
    }
}

/// The deadline of provider and prerequisite commands.
pub fn timeout() -> Duration {
    timeout_override().ok().flatten().unwrap_or(DEFAULT_TIMEOUT)
}

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
    /// It ran past its deadline and was killed.
    #[error("`{command}` did not finish within {} and was stopped", humantime::format_duration(*timeout))]
    TimedOut {
        /// The command line.
        command: String,
        /// Its deadline.
        timeout: Duration,
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

/// Runs `program args...` in `dir`, feeding `stdin`; stderr is inherited;
/// killed after [`timeout`].
pub async fn run(program: &str, args: &[String], dir: &Path, stdin: Option<&[u8]>) -> Result<Ran, ToolError> {
    run_within(program, args, dir, stdin, timeout()).await
}

/// [`run`] with an explicit deadline.
pub async fn run_within(
    program: &str,
    args: &[String],
    dir: &Path,
    stdin: Option<&[u8]>,
    deadline: Duration,
) -> Result<Ran, ToolError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn { program: program.to_string(), cause: source })?;
    let pipe = child.stdin.take();
    let feed = async move {
        if let (Some(data), Some(mut pipe)) = (stdin, pipe) {
            // A program that does not read its input is not an error.
            let _ = pipe.write_all(data).await;
        }
    };
    // Both at once: the program's output is read while its input is written.
    let both = async { tokio::join!(feed, child.wait_with_output()).1 };
    let out = match tokio::time::timeout(deadline, both).await {
        Ok(out) => out.map_err(|source| ToolError::Spawn { program: program.to_string(), cause: source })?,
        // Dropping the child (kill_on_drop) stops it.
        Err(_) => return Err(ToolError::TimedOut { command: command_line(program, args), timeout: deadline }),
    };
    Ok(Ran { code: out.status.code(), stdout: String::from_utf8_lossy(&out.stdout).into_owned() })
}

fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program).chain(args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
}

/// Like [`run`], but a non-zero exit is an error.
pub async fn run_ok(program: &str, args: &[String], dir: &Path, stdin: Option<&[u8]>) -> Result<String, ToolError> {
    let ran = run(program, args, dir, stdin).await?;
    if ran.code == Some(0) {
        return Ok(ran.stdout);
    }
    let detail = ran.stdout.trim();
    Err(ToolError::Failed {
        command: command_line(program, args),
        status: ran.code.map_or("killed by a signal".into(), |c| format!("exit {c}")),
        detail: if detail.is_empty() {
            String::new()
        } else {
            format!(": {}", detail.lines().last().unwrap_or(detail))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".into(), script.into()]
    }

    #[tokio::test]
    async fn a_program_past_its_deadline_is_named_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("finished");
        let script = format!("sleep 1; touch {}", marker.display());
        let err = run_within("sh", &sh(&script), dir.path(), None, Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(&err, ToolError::TimedOut { .. }), "{err}");
        assert_eq!(err.to_string(), format!("`sh -c {script}` did not finish within 100ms and was stopped"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the program was stopped, not left running");
    }

    #[tokio::test]
    async fn a_program_that_prints_before_it_reads_does_not_deadlock() {
        // 1 MiB out before reading 1 MiB in: far more than a pipe holds, both ways.
        let dir = tempfile::tempdir().unwrap();
        let input = vec![b'y'; 1 << 20];
        let script = "head -c 1048576 /dev/zero | tr '\\0' x; wc -c";
        let ran = run_within("sh", &sh(script), dir.path(), Some(&input), Duration::from_secs(10)).await.unwrap();
        assert_eq!(ran.code, Some(0));
        assert_eq!(ran.stdout.len(), (1 << 20) + "1048576\n".len(), "all of its output, then what it read");
        assert!(ran.stdout.ends_with("1048576\n"));
    }
}
