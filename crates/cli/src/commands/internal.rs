//! Hidden helpers that rekube starts as detached processes.

use crate::Failure;
use crate::args::Internal;

pub async fn run(cmd: &Internal) -> Result<u8, Failure> {
    match cmd {
        Internal::FakeKubelet { kubeconfig, dir: _, nodes } => {
            let (nodes, kubeconfig) = (nodes.clone(), kubeconfig.clone());
            // FakeKubelet runs on its own thread; park this one until killed.
            let kubelet = tokio::task::spawn_blocking(move || {
                {
                    let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
                    rekube_cluster::local::FakeKubelet::start(&kubeconfig, &names)
                }
                .map_err(anyhow::Error::msg)
            })
            .await
            .map_err(anyhow::Error::from)??;
            tokio::signal::ctrl_c().await.ok();
            drop(kubelet);
            Ok(0)
        }
    }
}
