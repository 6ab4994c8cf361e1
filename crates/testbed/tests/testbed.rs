//! The test bed itself, proven against the real components: a Deployment
//! becomes Available through the real controller-manager with Pods bound by
//! the fake kubelet; two clusters run at once and stop cleanly.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::api::{ListParams, PostParams};
use rekube_cluster::local::pid_alive;
use rekube_testbed::{FAIL_LABEL, TestCluster};
use serde_json::json;

fn deployment(name: &str, replicas: i32, extra_labels: serde_json::Value) -> Deployment {
    let mut pod_labels = json!({"app": name});
    if let Some(extra) = extra_labels.as_object() {
        for (k, v) in extra {
            pod_labels[k] = v.clone();
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                         "ports": [{"containerPort": 80}]}]},
            },
        },
    }))
    .unwrap()
}

/// Polls until `check` returns `Some`, or fails the test after `limit` with `what`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let began = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(began.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Available" && c.status == "True"))
}

#[tokio::test]
async fn deployment_becomes_available_with_pods_on_a_fake_node() {
    let cluster = TestCluster::with_kubelet("available").await;
    let client = cluster.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    deployments.create(&PostParams::default(), &deployment("web", 2, json!({}))).await.unwrap();
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]},
    }))
    .unwrap();
    let svc = services.create(&PostParams::default(), &svc).await.unwrap();
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    assert!(cluster_ip.starts_with("10.0."), "service IP {cluster_ip} from the /16 range");

    let d = eventually(Duration::from_secs(60), "Deployment web Available", || async {
        let d = deployments.get("web").await.ok()?;
        (available(&d) && d.status.as_ref()?.available_replicas == Some(2)).then_some(d)
    })
    .await;
    assert_eq!(d.status.unwrap().ready_replicas, Some(2));

    let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(list.items.len(), 2);
    for pod in &list.items {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        // The ServiceAccount admission plugin mounted a token: the token
        // controller (root CA + SA key on the controller-manager) works. Before
        // 1.22 it is a Secret volume; since, a projected `kube-api-access-` one.
        let prefix = if rekube_testbed::k8s_minor() < 22 { "default-token-" } else { "kube-api-access-" };
        assert!(
            spec.volumes.iter().flatten().any(|v| v.name.starts_with(prefix)),
            "pod has a service-account token volume named {prefix}*"
        );
    }

    // The real Endpoints controller sees the ready Pods behind the Service.
    let endpoints: Api<k8s_openapi::api::core::v1::Endpoints> = Api::namespaced(client.clone(), "default");
    eventually(Duration::from_secs(30), "2 ready endpoints for Service web", || async {
        let ep = endpoints.get("web").await.ok()?;
        let n: usize = ep.subsets?.iter().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum();
        (n == 2).then_some(())
    })
    .await;

    // The node stays Ready: lease and heartbeat keep the lifecycle controller calm.
    let node = Api::<Node>::all(client).get("node-1").await.unwrap();
    let ready = node.status.unwrap().conditions.unwrap();
    assert!(ready.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
}

#[tokio::test]
async fn fake_kubelet_fails_pods_carrying_the_failure_label() {
    let cluster = TestCluster::with_kubelet("failing").await;
    let client = cluster.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    deployments
        .create(&PostParams::default(), &deployment("broken", 1, json!({FAIL_LABEL: "CrashLoopBackOff"})))
        .await
        .unwrap();

    let reason = eventually(Duration::from_secs(60), "a waiting container in pod broken-*", || async {
        let list = pods.list(&ListParams::default().labels("app=broken")).await.ok()?;
        let status = list.items.first()?.status.clone()?;
        status.container_statuses?.first()?.state.clone()?.waiting?.reason
    })
    .await;
    assert_eq!(reason, "CrashLoopBackOff");
    let d = deployments.get("broken").await.unwrap();
    assert!(!available(&d), "a Deployment with crashing pods is not Available");
    assert_eq!(d.status.unwrap().available_replicas.unwrap_or(0), 0);
}

#[tokio::test]
async fn two_clusters_run_at_once_and_stop_without_leftovers() {
    let (a, b) = tokio::join!(TestCluster::start("blue"), TestCluster::start("green"));
    assert_ne!(a.control_plane().endpoint(), b.control_plane().endpoint());

    // Each is a separate cluster: a namespace made in one is absent from the other.
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "only-in-blue"}})).unwrap();
    Api::all(a.client()).create(&PostParams::default(), &ns).await.unwrap();
    let in_b = Api::<k8s_openapi::api::core::v1::Namespace>::all(b.client()).get_opt("only-in-blue").await.unwrap();
    assert!(in_b.is_none());

    // kubectl (the real client) reads each kubeconfig and reaches its own cluster.
    let out = rekube_testbed::tools::run(a.kubectl().args(["get", "namespace", "only-in-blue", "-o", "name"]));
    assert_eq!(out.trim(), "namespace/only-in-blue");

    let pids: Vec<u32> = a.control_plane().pids().into_iter().chain(b.control_plane().pids()).collect();
    let dirs = [a.control_plane().dir().to_path_buf(), b.control_plane().dir().to_path_buf()];
    assert_eq!(pids.len(), 6);
    assert!(pids.iter().all(|p| pid_alive(*p)));
    a.stop();
    b.stop();
    for pid in pids {
        assert!(!pid_alive(pid), "process {pid} still running after stop");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
