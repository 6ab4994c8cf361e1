//! The `rekube` binary: parse arguments, run one command, map the outcome to
//! a documented exit code. Everything else lives in the library crates.

mod args;
mod commands;
mod printer;

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

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Error(e.into(), None)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            printer::error(&e.into(), None);
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Reported) => ExitCode::from(1),
        Err(Failure::Error(e, hint)) => {
            printer::error(&e, hint.as_deref());
            ExitCode::from(1)
        }
    }
}
