//! Command-line arguments. Only clap structs live here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCompleter;

use crate::complete;

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
pub const EXIT_CODES: &str = concat!(
    "Exit codes:\n",
    "  0  success\n",
    "  1  invalid input, or the operation failed\n",
    "  2  changes or drift present (with --detailed-exitcode)\n",
    "  3  internal error (a bug: please report it)",
);

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The spec file.
    #[arg(short = 'f', long = "file", global = true, default_value = "rekube.yaml")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Take the environment's lease even when another rekube holds it (only
    /// when you are sure that one is no longer running).
    #[arg(long = "break-lock", global = true)]
    pub break_lock: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// YAML (`render`; elsewhere the same as text).
    Yaml,
    /// For CI and scripts.
    Json,
}

/// `rekube graph` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Mermaid `flowchart`.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check everything offline: spec, lock, values, rendered manifests.
    Validate {
        /// Only this environment (default: every environment).
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: Option<String>,
        #[command(flatten)]
        render: RenderFlags,
    },
    /// Print the exact objects that would be applied, in order.
    Render {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Only these components (repeatable).
        #[arg(long = "component", short = 'c', add = ArgValueCompleter::new(complete::components))]
        components: Vec<String>,
        #[command(flatten)]
        render: RenderFlags,
    },
    /// Show what apply would change, field by field (Secret values masked).
    Plan {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Exit 0 when nothing would change, 2 when something would.
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        render: RenderFlags,
    },
    /// Converge the environment: ordered server-side apply, health gates, pruning.
    Apply {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Use the server's dry-run: nothing is persisted.
        #[arg(long)]
        dry_run: bool,
        /// Delete and create again the objects whose immutable fields change
        /// (a Job's template, a selector); without it, apply refuses them.
        #[arg(long)]
        force_replace: bool,
        /// Do not wait for components to become healthy (order is kept).
        #[arg(long)]
        no_wait: bool,
        /// Components applied at once (each starts once everything it needs is healthy).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seconds a component may take to become healthy.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Take over objects that already exist and belong to no other owner
        /// (the plan lists them as `adopt`); never Namespaces.
        #[arg(long)]
        adopt: bool,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        render: RenderFlags,
    },
    /// Hand-made changes since the last apply, and who made them (exit 2 when any).
    Drift {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Keep watching: print each new hand change as it appears, until interrupted.
        #[arg(long)]
        watch: bool,
        /// Seconds between checks with --watch.
        #[arg(long, default_value_t = 5, requires = "watch")]
        interval: u64,
        #[command(flatten)]
        render: RenderFlags,
    },
    /// Delete every component in reverse dependency order and wait until gone.
    Destroy {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Seconds to wait for each component's objects to disappear.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Run the components' Helm test hooks, as `helm test` does (exit 1 when one fails).
    Test {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Seconds each test may take.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        render: RenderFlags,
    },
    /// Resolve chart versions to exact versions and digests in rekube.lock.
    Lock {
        /// Exit 1 if rekube.lock is missing or stale, without writing it (for CI).
        #[arg(long)]
        check: bool,
        /// Re-resolve every range, even where the lock already satisfies it.
        #[arg(long, conflicts_with = "check")]
        update: bool,
    },
    /// Run the prerequisites, create the cluster if needed, apply every component (resumable).
    Up {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
    },
    /// Release load balancers, destroy the components, delete the cluster, tear down prerequisites (resumable).
    Down {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Delete the cluster even when some component cannot be destroyed
        /// (reported first); prerequisites are still torn down.
        #[arg(long)]
        force: bool,
        /// Seconds to wait for each component's objects to disappear.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Shell completions (`rekube completions bash > /etc/bash_completion.d/rekube`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The manual page, in roff (`rekube man | man -l -`).
    Man,
    /// A picture of an environment: components, their `needs`, their cluster (Mermaid or DOT).
    Graph {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// `mermaid` (GitHub renders it in Markdown) or `dot` (Graphviz).
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        /// Color each component by its health on the live cluster.
        #[arg(long)]
        health: bool,
    },
    /// Every environment: cluster, version, each component's health and drift, last apply.
    Status {
        /// Only this environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: Option<String>,
    },
    /// Prove the environment can be rebuilt: fingerprint, down, up, compare (exit 2 when different).
    RebuildCheck {
        /// The environment (its cluster must be `local` or `disposable: true`).
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
    },
    /// Blue/green: build the idle cluster from the spec, verify it, shift traffic step by step (docs/upgrade.md).
    Upgrade {
        /// The environment (it declares `blue-green:`).
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// The new cluster's Kubernetes version (default: as the spec says).
        #[arg(long, value_name = "VERSION", conflicts_with_all = ["finish", "rollback"])]
        kubernetes: Option<String>,
        /// Retire the old cluster once all traffic is on the new one.
        #[arg(long, conflicts_with = "rollback")]
        finish: bool,
        /// Put all traffic back on the old cluster (any time before --finish).
        #[arg(long)]
        rollback: bool,
        /// With --rollback: also retire the new cluster (its record, components and cluster).
        #[arg(long, requires = "rollback")]
        discard: bool,
        /// With --finish or --rollback --discard: delete the cluster even when some component cannot be destroyed.
        #[arg(long)]
        force: bool,
        /// With --finish or --discard: seconds to wait for each component's objects to disappear.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Print the steps it would take; change nothing.
        #[arg(long, conflicts_with_all = ["finish", "rollback"])]
        dry_run: bool,
        /// An age identity file, to open the Secrets that `copy:` carries.
        #[arg(long, short = 'i', env = "REKUBE_AGE_IDENTITY")]
        identity: Option<PathBuf>,
    },
    /// Back up a cluster's objects (Secrets encrypted), and restore them anywhere.
    #[command(subcommand)]
    Backup(Backup),
    /// Per-feature previews of an environment on a shared cluster (docs/previews.md).
    #[command(subcommand)]
    Preview(Preview),
    /// Print the JSON Schema of rekube.yaml, for editor completion.
    Schema,
    /// Internal helpers that rekube starts itself.
    #[command(hide = true, subcommand)]
    Internal(Internal),
}

/// `rekube backup ...`: the store and recipients come from `backup:` in the spec.
#[derive(Debug, Subcommand)]
pub enum Backup {
    /// Back up an environment's cluster into the store.
    Create {
        /// The environment.
        #[arg(add = ArgValueCompleter::new(complete::environments))]
        env: String,
        /// Only these namespaces (repeatable; default: all but kube-system, kube-public, kube-node-lease).
        #[arg(long = "namespace", short = 'n')]
        namespaces: Vec<String>,
        /// Only objects with these labels (`app=web,tier!=db`).
        #[arg(long, short = 'l')]
        selector: Option<String>,
        /// Include cluster-scoped objects (the default when neither --namespace nor --selector is given).
        #[arg(long)]
        include_cluster_resources: bool,
        /// Only objects of this kind (`Secret`, `ConfigMap`); repeatable.
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<String>,
        /// Only this project's and environment's objects: the members of its
        /// ApplySets (namespaced and cluster-scoped), nothing another team made.
        #[arg(long)]
        own: bool,
        /// The backup's name (default: `<env>-<UTC time>`).
        #[arg(long)]
        name: Option<String>,
        /// Write Secrets unencrypted when the spec names no age recipient.
        #[arg(long)]
        allow_plaintext_secrets: bool,
    },
    /// List the backups in the store.
    List,
    /// Show a backup: counts by kind, size, cluster version, checksums.
    Describe {
        /// The backup.
        name: String,
    },
    /// Read the whole backup: every checksum, every document, every Secret decrypted.
    Verify {
        /// The backup.
        name: String,
        #[command(flatten)]
        identity: Identity,
    },
    /// Restore a backup into an environment's cluster (verified whole first).
    Restore {
        /// The backup.
        name: String,
        /// The environment to restore into.
        #[arg(long)]
        to: String,
        /// Rename a namespace on the way (`old:new`, repeatable).
        #[arg(long = "namespace-map", value_name = "OLD:NEW")]
        namespace_map: Vec<String>,
        /// What to do with objects that already exist.
        #[arg(long, value_enum, default_value_t = ExistingMode::Skip)]
        existing: ExistingMode,
        /// Show what would be restored; write nothing (the server checks each object).
        #[arg(long)]
        dry_run: bool,
        /// Restore `status` as it was (controllers usually rewrite it).
        #[arg(long)]
        restore_status: bool,
        #[command(flatten)]
        identity: Identity,
    },
    /// Delete a backup from the store.
    Delete {
        /// The backup.
        name: String,
    },
    /// Print a new age identity (like `age-keygen`); its public key goes under `encrypt-secrets`.
    Keygen {
        /// An ed25519 signing key instead: its file goes under `sign-with`,
        /// its public key under `trusted-signers`.
        #[arg(long)]
        signing: bool,
    },
}

/// `rekube preview ...`.
#[derive(Debug, Subcommand)]
pub enum Preview {
    /// Brings preview NAME up as a copy of environment --from (or updates it in place), and waits until it is healthy.
    Up {
        /// The preview's name: lower-case letters, digits and '-' (it prefixes its namespaces and Helm releases).
        name: String,
        /// The environment to copy.
        #[arg(long, add = ArgValueCompleter::new(complete::environments))]
        from: String,
        /// Only these components, with what they need.
        #[arg(long = "component", short = 'c', add = ArgValueCompleter::new(complete::components))]
        components: Vec<String>,
        /// A value for this preview: `component.path=value` (the value is read as YAML).
        #[arg(long = "set", value_name = "C.PATH=VALUE")]
        sets: Vec<String>,
        /// A YAML file of values for this preview: `component: {path: value}`.
        #[arg(long = "values", value_name = "FILE")]
        values: Option<PathBuf>,
        /// How long it lives before `preview gc` deletes it: `30m`, `8h`, `2d` (default: `previews.ttl`, else 24h).
        #[arg(long)]
        ttl: Option<String>,
        /// Also copy the Secrets of the source environment's namespaces that the spec does not make.
        #[arg(long)]
        copy_secrets: bool,
        /// Do not wait for health.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for each component's health.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        render: RenderFlags,
    },
    /// Lists the previews on the cluster: source, age, time left, health, objects, URL.
    List {
        /// Without `previews.cluster` in the spec: look only on this environment's cluster
        /// (default: every environment's).
        #[arg(long, add = ArgValueCompleter::new(complete::environments))]
        from: Option<String>,
    },
    /// Deletes everything of preview NAME, and nothing else.
    Down {
        /// The preview.
        name: String,
        /// Return once its objects are deleted and its namespaces terminating, without waiting the
        /// 5 s or more Kubernetes takes to remove a namespace.
        #[arg(long)]
        no_wait: bool,
        /// Without `previews.cluster` in the spec: look only on this environment's cluster
        /// (default: every environment's).
        #[arg(long, add = ArgValueCompleter::new(complete::environments))]
        from: Option<String>,
        /// Seconds to wait for objects to disappear.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Deletes every preview whose time is up (by the expiry recorded on the cluster).
    Gc {
        /// Without `previews.cluster` in the spec: look only on this environment's cluster
        /// (default: every environment's).
        #[arg(long, add = ArgValueCompleter::new(complete::environments))]
        from: Option<String>,
        /// Only say which previews would go.
        #[arg(long)]
        dry_run: bool,
        /// Do not wait for their namespaces to be gone (see `preview down --no-wait`).
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for objects to disappear.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

/// The age key that opens encrypted Secrets, and whom to trust.
#[derive(Debug, Args)]
pub struct Identity {
    /// An age identity file (`AGE-SECRET-KEY-1...`).
    #[arg(long, short = 'i', env = "REKUBE_AGE_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Accept a backup not signed by one of `backup.trusted-signers` (only
    /// when you know where it came from).
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// `--existing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExistingMode {
    /// Leave it and list it as skipped.
    Skip,
    /// Replace it with the backed-up version.
    Update,
}

/// Choosing components.
#[derive(Debug, Default, Args)]
pub struct Select {
    /// Only these components (repeatable).
    #[arg(long = "component", short = 'c', add = ArgValueCompleter::new(complete::components))]
    pub components: Vec<String>,
    /// With --component: also what they need.
    #[arg(long)]
    pub with_needs: bool,
}

/// Flags of commands that render.
#[derive(Debug, Args)]
pub struct RenderFlags {
    /// Render every component again, ignoring the render cache.
    #[arg(long)]
    pub no_cache: bool,
    /// How many components render at once.
    #[arg(long, default_value_t = 8)]
    pub render_concurrency: usize,
}

impl Default for RenderFlags {
    fn default() -> Self {
        Self { no_cache: false, render_concurrency: 8 }
    }
}

impl RenderFlags {
    /// As the engine takes them.
    pub fn engine(&self) -> rekube_engine::workspace::RenderFlags {
        rekube_engine::workspace::RenderFlags {
            no_cache: self.no_cache,
            concurrency: self.render_concurrency,
            release_prefix: None,
        }
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
