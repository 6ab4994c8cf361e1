//! The shape of `rekube.yaml`. Decoding is strict: unknown keys are errors.
//! Every value that later checks may point at is `Spanned`, so an error about
//! it names its line and column.
//!
//! The same types derive the JSON Schema for editors ([`crate::schema`]), so
//! their doc comments are what an editor shows: write them for users.
//! `Spanned<T>` is foreign to schemars, so each such field names its plain
//! type with `#[schemars(with = ...)]`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// What `validate::is_dns_label` accepts: names that become label values or Helm releases.
const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

/// A values file, or an inline mapping.
// Only the schema uses it: the model keeps each entry as a raw value.
#[derive(JsonSchema)]
#[schemars(untagged)]
// `allow`, not `expect`: `expect` here makes incremental builds crash (rust-lang/rust#144271).
#[allow(dead_code, reason = "describes the schema of `values:` entries, never built")]
enum ValuesLayer {
    /// A values file, relative to the spec.
    File(String),
    /// Inline values.
    Inline(serde_json::Map<String, serde_json::Value>),
}

/// A rekube platform: clusters, components (charts, YAML, kustomize) and
/// environments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "rekube.yaml")]
pub struct Spec {
    /// The project's stable name: it scopes every ApplySet, Lease and
    /// backup of this spec on a shared cluster. Default: the name of the
    /// spec's directory.
    // The default comes from `Loaded::project`.
    #[schemars(with = "Option<String>", regex(pattern = DNS_LABEL))]
    pub project: Option<Spanned<String>>,
    /// Clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
    /// Components (add-ons and apps) by name: lower-case letters, digits and
    /// '-'.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": DNS_LABEL }))]
    pub components: BTreeMap<String, Component>,
    /// Environments by name: each binds a cluster and layers values.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": DNS_LABEL }))]
    pub environments: BTreeMap<String, Environment>,
    /// Where backups go, who can decrypt their Secrets, how many to keep.
    #[schemars(with = "Option<Backup>")]
    pub backup: Option<Spanned<Backup>>,
    /// Per-feature previews (`rekube preview up NAME --from ENV`): where they
    /// run and how long they live.
    #[schemars(with = "Option<Previews>")]
    pub previews: Option<Spanned<Previews>>,
}

/// `previews:`: the cluster previews run on and their default lifetime.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Previews {
    /// The cluster previews run on (default: their source environment's).
    #[schemars(with = "Option<String>")]
    pub cluster: Option<Spanned<String>>,
    /// How long a preview lives when `preview up` gives no `--ttl`: `30m`,
    /// `8h`, `2d` (default `24h`). `rekube preview gc` deletes expired ones.
    #[schemars(with = "Option<String>")]
    pub ttl: Option<Spanned<String>>,
}

/// What a component becomes in a preview.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentPreview {
    /// The host every rule and TLS entry of the component's Ingresses gets in
    /// a preview; `{preview}` is the preview's name: `{preview}.preview.example.com`.
    #[schemars(with = "String")]
    pub host: Spanned<String>,
}

/// `backup:`: the store, the age recipients of Secrets, and retention.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Backup {
    /// `s3://bucket/prefix`, `file:///dir`, or a directory relative to the spec.
    #[schemars(with = "String")]
    pub store: Spanned<String>,
    /// age recipients (`age1...`) that Secrets are encrypted to.
    #[serde(default)]
    #[schemars(with = "Vec<String>", inner(regex(pattern = "^age1[a-z0-9]{58}$")))]
    pub encrypt_secrets: Vec<Spanned<String>>,
    /// How many backups of each environment to keep (default: all).
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub keep: Option<Spanned<u32>>,
    /// S3: the endpoint URL, for S3-compatible stores (default: AWS, or `$AWS_ENDPOINT`).
    #[schemars(with = "Option<String>", regex(pattern = "^https?://"))]
    pub endpoint: Option<Spanned<String>>,
    /// S3: the region (default: `$AWS_REGION`, else us-east-1).
    #[schemars(with = "Option<String>")]
    pub region: Option<Spanned<String>>,
    /// A signing key file (`rekube backup keygen --signing`), relative to the
    /// spec: `backup create` signs each backup's manifest with it.
    #[schemars(with = "Option<String>")]
    pub sign_with: Option<Spanned<String>>,
    /// Public keys (`ed25519:<64 hex>`) whose backups `verify` and `restore`
    /// trust; others are refused unless `--allow-unsigned`.
    #[serde(default)]
    #[schemars(with = "Vec<String>", inner(regex(pattern = "^ed25519:[0-9a-f]{64}$")))]
    pub trusted_signers: Vec<Spanned<String>>,
}

/// Who creates and destroys a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Cluster {
    /// Its provider.
    #[schemars(with = "Provider")]
    pub provider: Spanned<Provider>,
    /// `existing`: the kubeconfig context.
    #[schemars(with = "Option<String>")]
    pub context: Option<Spanned<String>>,
    /// `existing`: the kubeconfig file (default: `$KUBECONFIG` or `~/.kube/config`).
    #[schemars(with = "Option<String>")]
    pub kubeconfig: Option<Spanned<String>>,
    /// `exec`: the provider executable, relative to the spec.
    #[schemars(with = "Option<String>")]
    pub exec: Option<Spanned<String>>,
    /// The Kubernetes version to create (exec, kind, k3d).
    #[schemars(with = "Option<String>")]
    pub kubernetes: Option<Spanned<String>>,
    /// `local`: how many fake nodes run Pods (default 1; 0 for none).
    #[schemars(with = "Option<u32>")]
    pub nodes: Option<Spanned<u32>>,
    /// May be destroyed and rebuilt by `rekube rebuild-check`.
    #[serde(default)]
    pub disposable: bool,
    /// Steps that must exist before the cluster (a state bucket, a DNS zone,
    /// IAM), in order; torn down in reverse by `down`.
    #[serde(default)]
    #[schemars(with = "Vec<Prerequisite>")]
    pub prerequisites: Vec<Spanned<Prerequisite>>,
}

/// One idempotent prerequisite: commands are argument lists, run from the
/// spec's directory without a shell.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Prerequisite {
    /// Its name, for progress and the journal.
    pub name: String,
    /// Exits 0 when the thing exists.
    #[schemars(length(min = 1))]
    pub check: Vec<String>,
    /// Makes it.
    #[schemars(length(min = 1))]
    pub create: Vec<String>,
    /// Removes it (on `down`); none leaves it in place.
    #[serde(default)]
    pub delete: Vec<String>,
}

/// Where a component's chart comes from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChartRef {
    /// An HTTP(S) chart repository URL, or `oci://registry/path`.
    #[schemars(with = "Option<String>", regex(pattern = "^(https?|oci)://"))]
    pub repo: Option<Spanned<String>>,
    /// The chart's name in that repository.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// The chart version: exact, or a range/`latest` that the lock file pins.
    #[schemars(with = "Option<String>")]
    pub version: Option<Spanned<String>>,
    /// A chart directory (or `.tgz`), relative to the spec.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
}

/// An add-on or app.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Component {
    /// A Helm chart.
    #[schemars(with = "Option<ChartRef>")]
    pub chart: Option<Spanned<ChartRef>>,
    /// A directory of plain YAML, or a kustomization (has `kustomization.yaml`).
    #[schemars(with = "Option<String>")]
    pub manifests: Option<Spanned<String>>,
    /// The namespace its namespaced objects default to (and the Helm release's).
    #[schemars(with = "Option<String>", regex(pattern = DNS_LABEL))]
    pub namespace: Option<Spanned<String>>,
    /// Values, lowest precedence first: a file path, or an inline mapping.
    #[serde(default)]
    #[schemars(with = "Vec<ValuesLayer>")]
    pub values: Vec<Spanned<serde_json::Value>>,
    /// Components that must be healthy before this one starts.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub needs: Vec<Spanned<String>>,
    /// Fields that are not drift when changed on the cluster (like Argo CD's
    /// `ignoreDifferences`): e.g. replicas set by a custom autoscaler.
    #[serde(default)]
    #[schemars(with = "Vec<IgnoreRule>")]
    pub ignore_differences: Vec<Spanned<IgnoreRule>>,
    /// Take over objects that already exist on the cluster and belong to no
    /// other owner (as `apply --adopt` does for every component).
    #[serde(default)]
    pub adopt: bool,
    /// What the component becomes in a preview: its Ingresses' host.
    #[schemars(with = "Option<ComponentPreview>")]
    pub preview: Option<Spanned<ComponentPreview>>,
}

/// Fields of some objects that drift reports leave out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IgnoreRule {
    /// Only objects of this kind (default: all).
    pub kind: Option<String>,
    /// Only the object with this name (default: all).
    pub name: Option<String>,
    /// Field paths as rekube prints them: `spec.replicas`, `data.token`,
    /// `metadata.labels["team"]`; a path covers everything below it.
    #[schemars(length(min = 1))]
    pub paths: Vec<String>,
}

impl IgnoreRule {
    /// Whether the rule covers an object.
    pub fn matches(&self, kind: &str, name: &str) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind) && self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// An environment: a cluster and the values layered onto the components.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Environment {
    /// The cluster it runs on (or `blue-green:`, two clusters that take
    /// turns).
    #[schemars(with = "Option<String>")]
    pub cluster: Option<Spanned<String>>,
    /// Two clusters that take turns: `rekube upgrade ENV` builds the idle
    /// one from the spec, verifies it, shifts traffic to it step by step and
    /// keeps the old one until `--finish` (docs/upgrade.md).
    #[schemars(with = "Option<BlueGreen>")]
    pub blue_green: Option<Spanned<BlueGreen>>,
    /// Per-component values for this environment, after the component's own.
    #[serde(default)]
    pub components: BTreeMap<String, EnvComponent>,
    /// Inline overrides, applied last: `component.path.to.key: value`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub values: BTreeMap<String, Spanned<serde_json::Value>>,
}

/// What an environment changes about one component.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvComponent {
    /// Values files or inline mappings, after the component's own.
    #[serde(default)]
    #[schemars(with = "Vec<ValuesLayer>")]
    pub values: Vec<Spanned<serde_json::Value>>,
}

impl Environment {
    /// The cluster the environment starts on: `cluster:`, or the first of
    /// `blue-green.clusters` (which one is live later is recorded, not in
    /// the spec). Validation makes sure there is one.
    pub fn first_cluster(&self) -> Option<&Spanned<String>> {
        self.cluster.as_ref().or_else(|| self.blue_green.as_ref().and_then(|b| b.value.clusters.first()))
    }
}

/// `blue-green:`: two clusters (colors), how traffic is split between
/// them, and what must hold before and while it moves.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlueGreen {
    /// The two clusters, declared under `clusters:`. The first is live until
    /// an upgrade finishes; after that, which one is live is recorded in
    /// `.rekube/upgrade/<env>.json`.
    #[schemars(with = "Vec<String>", length(min = 2, max = 2))]
    pub clusters: Vec<Spanned<String>>,
    /// The LoadBalancer Service (`namespace/name`) whose address each
    /// color's DNS record points at; `{address}` in checks.
    #[schemars(with = "Option<String>", regex(pattern = "^[a-z0-9-]+/[a-z0-9.-]+$"))]
    pub address: Option<Spanned<String>>,
    /// Where the split is made: Route53 weighted records, or a program.
    #[schemars(with = "Traffic")]
    pub traffic: Spanned<Traffic>,
    /// Percent of traffic on the new color after each step, rising, ending
    /// at 100 (default `[10, 50, 100]`).
    #[schemars(with = "Option<Vec<u8>>", inner(range(min = 1, max = 100)))]
    pub steps: Option<Spanned<Vec<u32>>>,
    /// How long each step holds, checks running, before the next: `0s`,
    /// `60s`, `5m` (default `60s`).
    #[schemars(with = "Option<String>")]
    pub soak: Option<Spanned<String>>,
    /// What must pass on the new color before any traffic moves and during
    /// every soak; a failure puts all traffic back on the old color.
    #[serde(default)]
    #[schemars(with = "Vec<Check>")]
    pub checks: Vec<Spanned<Check>>,
    /// State carried from the old color to the new one through the backup
    /// store (its Secrets encrypted), before any traffic moves.
    #[schemars(with = "Option<CopyState>")]
    pub copy: Option<Spanned<CopyState>>,
}

/// `traffic:`: one of `route53` or `exec`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Traffic {
    /// Route53 weighted records: one per color, same name, `SetIdentifier`
    /// the cluster's name.
    #[schemars(with = "Option<Route53>")]
    pub route53: Option<Spanned<Route53>>,
    /// A program speaking rekube's JSON traffic protocol (read, set,
    /// remove), relative to the spec: any DNS or load balancer.
    #[schemars(with = "Option<String>")]
    pub exec: Option<Spanned<String>>,
}

/// `route53:`: the zone and the record whose weights move.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Route53 {
    /// The hosted zone: its name (`example.com.`) or id (`Z0123...`).
    #[schemars(with = "String")]
    pub zone: Spanned<String>,
    /// The record name (`app.example.com`).
    #[schemars(with = "String")]
    pub record: Spanned<String>,
    /// The records' TTL in seconds (default 60).
    #[schemars(with = "Option<u32>")]
    pub ttl: Option<Spanned<u32>>,
    /// The API endpoint, for Route53-compatible services (default: AWS, or
    /// `$AWS_ENDPOINT_URL_ROUTE_53`, `$AWS_ENDPOINT_URL`).
    #[schemars(with = "Option<String>", regex(pattern = "^https?://"))]
    pub endpoint: Option<Spanned<String>>,
    /// The signing region (default us-east-1).
    #[schemars(with = "Option<String>")]
    pub region: Option<Spanned<String>>,
}

/// One check: `http` or `command`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Check {
    /// A GET that must answer with `expect`.
    #[schemars(with = "Option<HttpCheck>")]
    pub http: Option<Spanned<HttpCheck>>,
    /// A program (argument list, run from the spec's directory) that must
    /// exit 0; it gets the new color's kubeconfig in `$KUBECONFIG`.
    #[schemars(with = "Option<Vec<String>>")]
    pub command: Option<Spanned<Vec<String>>>,
}

/// `http:` check.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpCheck {
    /// The URL; `{address}` is the new color's address.
    #[schemars(with = "String", regex(pattern = "^https?://"))]
    pub url: Spanned<String>,
    /// The status it must answer (default 200).
    #[schemars(with = "Option<u16>")]
    pub expect: Option<Spanned<u16>>,
    /// The host name to ask for (HTTP `Host` and TLS server name), when the
    /// URL's `{address}` is a load balancer that routes by host: the
    /// connection still goes to the new color's address.
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
}

/// `copy:`: objects carried from the old color to the new.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CopyState {
    /// The namespaces to copy from.
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub namespaces: Vec<Spanned<String>>,
    /// The kinds to copy (default `[Secret, ConfigMap]`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub kinds: Vec<Spanned<String>>,
}
