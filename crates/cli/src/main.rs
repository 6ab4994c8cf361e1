//! The `rekube` binary: parse arguments, run one command, map the outcome to
//! a documented exit code. Everything else lives in the library crates.

mod args;
mod commands;
mod complete;
mod printer;
mod table;

use std::process::ExitCode;

use clap::Parser;

use args::Cli;

/// How a command ended, beyond plain success.
#[derive(Debug)]
pub enum Failure {
    /// Invalid input; diagnostics already printed.
    Reported,
    /// An error to print, with an optional hint.
    Error(anyhow::Error, Option<String>),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e, None)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Error(e.into(), None)
    }
}

impl From<rekube_engine::lease::LeaseError> for Failure {
    fn from(e: rekube_engine::lease::LeaseError) -> Self {
        rekube_engine::EngineError::from(e).into()
    }
}

/// An engine error carries its own hint; invalid input is printed as the
/// diagnostics it is.
impl From<rekube_engine::EngineError> for Failure {
    fn from(e: rekube_engine::EngineError) -> Self {
        match e {
            rekube_engine::EngineError::Invalid(text) => {
                printer::diagnostics(text);
                Failure::Reported
            }
            e => {
                let hint = e.hint();
                Failure::Error(e.into(), hint)
            }
        }
    }
}

fn main() -> ExitCode {
    // `COMPLETE=bash rekube` (zsh, fish...): the shell's completion protocol, then exit.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    if let Err(e) = rekube_cluster::tool::timeout_override() {
        printer::error(
            &anyhow::anyhow!(e),
            Some(
                "write a duration such as `90s`, `10m` or `1h` (it bounds every helm, kustomize, provider and \
                  prerequisite run), or unset it for the defaults: 5m for helm and kustomize, 30m for the others",
            ),
        );
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            printer::error(&e.into(), None);
            return ExitCode::from(3);
        }
    };
    let ended = runtime.block_on(async {
        tokio::spawn(watch_signals());
        commands::run(cli).await
    });
    let code = match ended {
        Ok(code) => code,
        Err(Failure::Reported) => 1,
        Err(Failure::Error(e, hint)) => {
            printer::error(&e, hint.as_deref());
            1
        }
    };
    // A command that ended well despite the signal (`drift --watch` stops on
    // Ctrl-C; a run whose last requests were in flight) exits as it ended.
    if rekube_kube::stop::requested() && code != 0 {
        let again: Vec<String> = std::env::args().skip(1).collect();
        printer::message(format!(
            "interrupted: what finished is reported above; `rekube {}` again picks up from there",
            again.join(" ")
        ));
        return ExitCode::from(130);
    }
    ExitCode::from(code)
}

/// Ctrl-C or SIGTERM: the first asks every operation to start no new work
/// (requests in flight finish, the lease is released, journals keep what
/// was done); a second, or 10 s without the command ending, quits at once.
async fn watch_signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    rekube_kube::stop::request();
    printer::message("stopping: requests in flight finish, nothing new starts (Ctrl-C again quits at once)");
    tokio::select! {
        _ = int.recv() => printer::message("quit at once: a rerun takes the lease over and resumes"),
        _ = term.recv() => printer::message("quit at once: a rerun takes the lease over and resumes"),
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            printer::message("quit: in-flight work did not finish within 10 s; a rerun resumes it");
        }
    }
    std::process::exit(130);
}
