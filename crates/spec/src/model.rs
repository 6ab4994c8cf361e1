//! The shape of `rekube.yaml`. Decoding is strict: unknown keys are errors.
//! Every value that later checks may point at is `Spanned`, so an error about
//! it names its line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A whole `rekube.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    /// The project's stable name: it scopes every ApplySet, Lease and
    /// backup of this spec on a shared cluster. Default: the name of the
    /// spec's directory (see `Loaded::project`).
    pub project: Option<Spanned<String>>,
    /// Clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
    /// Components (add-ons and apps) by name.
    #[serde(default)]
    pub components: BTreeMap<String, Component>,
    /// Environments by name: each binds a cluster and layers values.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Where backups go, who can decrypt their Secrets, how many to keep.
    pub backup: Option<Spanned<Backup>>,
}

/// `backup:`: the store, the age recipients of Secrets, and retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Backup {
    /// `s3://bucket/prefix`, `file:///dir`, or a directory relative to the spec.
    pub store: Spanned<String>,
    /// age recipients (`age1...`) that Secrets are encrypted to.
    #[serde(default)]
    pub encrypt_secrets: Vec<Spanned<String>>,
    /// How many backups of each environment to keep (default: all).
    pub keep: Option<Spanned<u32>>,
    /// S3: the endpoint URL, for S3-compatible stores (default: AWS, or `$AWS_ENDPOINT`).
    pub endpoint: Option<Spanned<String>>,
    /// S3: the region (default: `$AWS_REGION`, else us-east-1).
    pub region: Option<Spanned<String>>,
}

/// Who creates and destroys a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A real etcd + kube-apiserver + kube-controller-manager from local binaries.
    Local,
    /// A kubeconfig context that rekube never creates or deletes.
    Existing,
    /// kind's CLI.
    Kind,
    /// k3d's CLI.
    K3d,
    /// Any executable speaking rekube's JSON provider protocol.
    Exec,
}

impl Provider {
    /// The name used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Existing => "existing",
            Self::Kind => "kind",
            Self::K3d => "k3d",
            Self::Exec => "exec",
        }
    }
}

/// A cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Cluster {
    /// Its provider.
    pub provider: Spanned<Provider>,
    /// `existing`: the kubeconfig context.
    pub context: Option<Spanned<String>>,
    /// `existing`: the kubeconfig file (default: `$KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<Spanned<String>>,
    /// `exec`: the provider executable, relative to the spec.
    pub exec: Option<Spanned<String>>,
    /// The Kubernetes version to create (exec, kind, k3d).
    pub kubernetes: Option<Spanned<String>>,
    /// `local`: how many fake nodes run Pods (default 1; 0 for none).
    pub nodes: Option<Spanned<u32>>,
    /// May be destroyed and rebuilt by `rekube rebuild-check`.
    #[serde(default)]
    pub disposable: bool,
    /// Steps that must exist before the cluster (a state bucket, a DNS zone,
    /// IAM), in order; torn down in reverse by `down`.
    #[serde(default)]
    pub prerequisites: Vec<Spanned<Prerequisite>>,
}

/// One idempotent prerequisite: commands are argument lists, run from the
/// spec's directory without a shell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Prerequisite {
    /// Its name, for progress and the journal.
    pub name: String,
    /// Exits 0 when the thing exists.
    pub check: Vec<String>,
    /// Makes it.
    pub create: Vec<String>,
    /// Removes it (on `down`); none leaves it in place.
    #[serde(default)]
    pub delete: Vec<String>,
}

/// Where a component's chart comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChartRef {
    /// An HTTP(S) chart repository URL.
    pub repo: Option<Spanned<String>>,
    /// The chart's name in that repository.
    pub name: Option<Spanned<String>>,
    /// The chart version: exact, or a range/`latest` that the lock file pins.
    pub version: Option<Spanned<String>>,
    /// A chart directory (or `.tgz`), relative to the spec.
    pub path: Option<Spanned<String>>,
}

/// An add-on or app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Component {
    /// A Helm chart.
    pub chart: Option<Spanned<ChartRef>>,
    /// A directory of plain YAML, or a kustomization (has `kustomization.yaml`).
    pub manifests: Option<Spanned<String>>,
    /// The namespace its namespaced objects default to (and the Helm release's).
    pub namespace: Option<Spanned<String>>,
    /// Values, lowest precedence first: a file path, or an inline mapping.
    #[serde(default)]
    pub values: Vec<Spanned<serde_json::Value>>,
    /// Components that must be healthy before this one starts.
    #[serde(default)]
    pub needs: Vec<Spanned<String>>,
    /// Fields that are not drift when changed on the cluster (like Argo CD's
    /// `ignoreDifferences`): e.g. replicas set by a custom autoscaler.
    #[serde(default)]
    pub ignore_differences: Vec<Spanned<IgnoreRule>>,
    /// Take over objects that already exist on the cluster and belong to no
    /// other owner (as `apply --adopt` does for every component).
    #[serde(default)]
    pub adopt: bool,
}

/// Fields of some objects that drift reports leave out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IgnoreRule {
    /// Only objects of this kind (default: all).
    pub kind: Option<String>,
    /// Only the object with this name (default: all).
    pub name: Option<String>,
    /// Field paths as rekube prints them: `spec.replicas`, `data.token`,
    /// `metadata.labels["team"]`; a path covers everything below it.
    pub paths: Vec<String>,
}

impl IgnoreRule {
    /// Whether the rule covers an object.
    pub fn matches(&self, kind: &str, name: &str) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind) && self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// An environment: a cluster and the values layered onto the components.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Environment {
    /// The cluster it runs on.
    pub cluster: Spanned<String>,
    /// Per-component values for this environment, after the component's own.
    #[serde(default)]
    pub components: BTreeMap<String, EnvComponent>,
    /// Inline overrides, applied last: `component.path.to.key: value`.
    #[serde(default)]
    pub values: BTreeMap<String, Spanned<serde_json::Value>>,
}

/// What an environment changes about one component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvComponent {
    /// Values files or inline mappings, after the component's own.
    #[serde(default)]
    pub values: Vec<Spanned<serde_json::Value>>,
}
