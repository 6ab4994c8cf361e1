//! Command-line arguments. Only clap structs live here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Kubernetes clusters you can destroy and bring back, identical, with one command.
#[derive(Debug, Parser)]
#[command(name = "rekube", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Exit codes, printed under `--help`.
pub const EXIT_CODES: &str = "Exit codes:\n  0  success\n  1  invalid input, or the operation failed\n  2  changes or drift present (with --detailed-exitcode)\n  3  internal error (a bug: please report it)";

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The spec file.
    #[arg(short = 'f', long = "file", global = true, default_value = "rekube.yaml")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For CI and scripts.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the spec offline: YAML, keys, references, cycles, files.
    Validate {
        /// Also check that this environment can be resolved.
        env: Option<String>,
    },
    /// Create the environment's cluster if needed and bring it up.
    Up {
        /// The environment.
        env: String,
    },
    /// Stop and delete the environment's cluster (local provider).
    Down {
        /// The environment.
        env: String,
    },
    /// Show every environment's cluster: running, endpoint, version.
    Status {
        /// Only this environment.
        env: Option<String>,
    },
    /// Internal helpers that rekube starts itself.
    #[command(hide = true, subcommand)]
    Internal(Internal),
}

/// Hidden subcommands.
#[derive(Debug, Subcommand)]
pub enum Internal {
    /// Run the fake kubelet of a local cluster until killed.
    FakeKubelet {
        /// The cluster's kubeconfig.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// The cluster directory (marks the process as that cluster's).
        #[arg(long)]
        dir: PathBuf,
        /// Node names to register.
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
    },
}
