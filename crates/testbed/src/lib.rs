//! Test support for rekube: the real components every integration test runs
//! against, started and stopped by the test itself.
//!
//! - [`TestCluster`]: a real etcd + kube-apiserver + kube-controller-manager
//!   (built by `scripts/testbed-setup.sh`: v1.20.2 and v1.34.x; the test
//!   matrix picks one with `REKUBE_TEST_K8S`, see [`k8s_version`]),
//!   optionally with a [`FakeKubelet`]; stopped on drop.
//! - [`tools`]: the real `helm` v4 and `kubectl` binaries from the cache.
//! - [`ChartRepo`]: packaged charts and an `index.yaml` served on 127.0.0.1.
//! - [`Moto`]: an S3 (and Route53) server on 127.0.0.1.
//! - [`FaultProxy`]: an HTTP proxy in front of an API server that injects
//!   errors, throttling, conflicts, drops, resets and stalls at a seeded rate.
//!
//! Nothing here skips: when a piece of the test bed is missing, the test fails
//! and names the command that installs it.

mod chart_repo;
mod faults;
mod moto;
pub mod tools;

use std::path::Path;
use std::process::Command;

pub use chart_repo::ChartRepo;
pub use faults::FaultProxy;
pub use moto::Moto;
use rekube_cluster::local::{ControlPlane, Options};
pub use rekube_cluster::local::{FAIL_LABEL, FakeKubelet};

/// The command that installs the whole test bed.
pub const SETUP_HINT: &str = "scripts/testbed-setup.sh";

/// The test matrix: the Kubernetes version every test of this run uses,
/// from `REKUBE_TEST_K8S` (`1.20`, `1.34`); unset, the newest build.
/// `scripts/test.sh` runs the suite once per version.
pub fn k8s_version() -> Option<String> {
    std::env::var("REKUBE_TEST_K8S").ok().filter(|v| !v.is_empty())
}

/// The minor version the tests of this run talk to (`20`, `34`), for
/// assertions where Kubernetes versions really differ.
pub fn k8s_minor() -> u32 {
    let bins = rekube_cluster::local::Binaries::discover_version(k8s_version().as_deref())
        .unwrap_or_else(|e| panic!("test bed: {e}\n(set it up with `{SETUP_HINT}`)"));
    bins.minor().unwrap_or_else(|| panic!("test bed: cannot read the version of {}", bins.apiserver.display()))
}

/// A real control plane for one test, with an optional fake kubelet.
pub struct TestCluster {
    // Field order matters: the kubelet stops before the control plane.
    kubelet: Option<FakeKubelet>,
    client: kube::Client,
    control_plane: ControlPlane,
}

impl TestCluster {
    /// Starts a control plane with no nodes. Panics (failing the test) with the
    /// set-up command when the binaries are missing.
    pub async fn start(name: &str) -> Self {
        let mut opts = Options::ephemeral(name);
        opts.kubernetes = k8s_version();
        let control_plane = match ControlPlane::start(opts).await {
            Ok(cp) => cp,
            Err(e) => panic!("test bed: cannot start a control plane: {e}\n(set it up with `{SETUP_HINT}`)"),
        };
        let client = control_plane.client().await.unwrap_or_else(|e| panic!("test bed: {e}"));
        Self { kubelet: None, client, control_plane }
    }

    /// Starts a control plane plus a fake kubelet serving `node-1`.
    pub async fn with_kubelet(name: &str) -> Self {
        let mut cluster = Self::start(name).await;
        let kubelet = FakeKubelet::start(cluster.kubeconfig(), &["node-1"])
            .unwrap_or_else(|e| panic!("test bed: fake kubelet: {e}"));
        cluster.kubelet = Some(kubelet);
        cluster
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        self.control_plane.kubeconfig()
    }

    /// The control plane, for its PIDs, directory and start-up time.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The real `kubectl`, pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(tools::kubectl());
        cmd.arg("--kubeconfig").arg(self.kubeconfig());
        cmd
    }

    /// The real `helm`, pointed at this cluster, with its caches in `home`.
    pub fn helm(&self, home: &Path) -> Command {
        let mut cmd = tools::helm_command(home);
        cmd.arg("--kubeconfig").arg(self.kubeconfig());
        cmd
    }

    /// Stops everything now (dropping does the same).
    pub fn stop(self) {
        let Self { kubelet, control_plane, .. } = self;
        drop(kubelet);
        control_plane.stop();
    }
}
