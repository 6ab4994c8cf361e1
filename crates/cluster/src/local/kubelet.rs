//! A fake kubelet: just enough of a node for the real controller-manager to
//! see workloads become Available. The `local` provider runs it (as a
//! detached `rekube` helper process) and so does the test bed (on a thread).
//!
//! There is no scheduler and no container runtime in the test bed, so this:
//! - registers Nodes (Ready, with capacity) and renews their Leases, so the
//!   node-lifecycle controller never taints them or evicts their Pods;
//! - binds pending Pods (DaemonSet Pods to the node their affinity names);
//! - reports bound Pods Running and Ready with container statuses, or
//!   Succeeded when they run to completion (`restartPolicy` Never/OnFailure);
//! - fails Pods that carry [`FAIL_LABEL`], with the label's value as the
//!   reason (`CrashLoopBackOff` when empty), so a user can rehearse a failure
//!   (health gates, `status`, failure output) without a broken image;
//! - finishes graceful deletions, as a kubelet does once containers stop;
//! - gives every LoadBalancer Service an ingress address, as k3s's ServiceLB
//!   or cloud-provider-kind do, from [`LB_RANGE`] (nothing listens there:
//!   it lets health gates and charts see a provisioned load balancer);
//! - provisions volumes for PersistentVolumeClaims (see [`super::volumes`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{client_for, volumes};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The label that makes the local provider's kubelet fail a Pod; its value is
/// the reason (`ImagePull...` reasons keep the Pod Pending). Documented for
/// users in docs/providers.md.
pub const FAIL_LABEL: &str = "local.rekube.dev/fail";

/// Where LoadBalancer addresses come from: 198.18.0.0/15, the range RFC 2544
/// reserves for benchmarks, so it is never routed anywhere real. Each
/// Service's address is derived from its namespace and name, so a rebuilt
/// cluster gives it the same one.
pub const LB_RANGE: &str = "198.18.0.0/15";

const MANAGER: &str = "rekube-fake-kubelet";
const LEASE_NS: &str = "kube-node-lease";

/// A running fake kubelet. Dropping it stops it (its Nodes stay registered).
///
/// It runs on a thread of its own, with its own runtime and client, so a test
/// may block (say, on `helm install --wait`) without starving it.
#[derive(Debug)]
pub struct FakeKubelet {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    nodes: Vec<String>,
}

impl FakeKubelet {
    /// Registers `nodes` in the cluster of `kubeconfig` and starts serving
    /// Pods on them; returns once the nodes are registered.
    pub fn start(kubeconfig: &Path, nodes: &[&str]) -> Result<Self, String> {
        let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let kubeconfig = kubeconfig.to_path_buf();
        let thread_nodes = nodes.clone();
        let thread = std::thread::Builder::new()
            .name("fake-kubelet".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                rt.block_on(async move {
                    let client = match client_for(&kubeconfig).await {
                        Ok(c) => c,
                        Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                    };
                    for name in &thread_nodes {
                        if let Err(e) = register_node(&client, name).await {
                            return drop(ready_tx.send(Err(format!("register node {name}: {e}"))));
                        }
                    }
                    if let Err(e) = volumes::ensure_storage_class(&client).await {
                        return drop(ready_tx.send(Err(format!("default storage class: {e}"))));
                    }
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = stop_rx => {}
                        _ = heartbeat(client.clone(), thread_nodes.clone()) => {}
                        _ = serve_load_balancers(client.clone()) => {}
                        _ = volumes::serve_volumes(client.clone()) => {}
                        _ = serve_pods(client, thread_nodes) => {}
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let mut kubelet = Self { stop: Some(stop_tx), thread: Some(thread), nodes };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(kubelet),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                kubelet.stop.take();
                Err("fake kubelet thread ended before registering its nodes".into())
            }
        }
    }

    /// The names of the registered nodes.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn node_status(name: &str) -> Value {
    let now = Time(now());
    let cond = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": {"cpu": "16", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"},
        "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"},
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            cond("Ready", "True", "KubeletReady"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "nodeInfo": {
            "machineID": name, "systemUUID": name, "bootID": name,
            "kernelVersion": "fake", "osImage": "rekube fake kubelet",
            "containerRuntimeVersion": "fake://1.0", "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64",
        },
    })
}

async fn register_node(client: &Client, name: &str) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "fake",
        }},
        // Nodes, unlike other kinds, take their status on create.
        "status": node_status(name),
    }))
    .expect("static node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    renew_lease(client, name).await
}

async fn renew_lease(client: &Client, name: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NS);
    let lease = Lease {
        metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_string()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(now())),
            ..Default::default()
        }),
    };
    let mut body = serde_json::to_value(&lease).expect("lease serialises");
    body["apiVersion"] = json!("coordination.k8s.io/v1");
    body["kind"] = json!("Lease");
    leases.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(body)).await.map(|_| ())
}

async fn heartbeat(client: Client, nodes: Vec<String>) {
    let api: Api<Node> = Api::all(client.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        for name in &nodes {
            if let Err(e) = renew_lease(&client, name).await {
                tracing::warn!("fake kubelet: lease of {name}: {e}");
            }
            let patch = json!({"status": node_status(name)});
            if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch)).await {
                tracing::warn!("fake kubelet: status of node {name}: {e}");
            }
        }
    }
}

/// The address of a LoadBalancer Service in [`LB_RANGE`] (FNV-1a of `ns/name`).
pub fn lb_address(namespace: &str, name: &str) -> String {
    let hash = format!("{namespace}/{name}")
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let host = hash % (2 * 65536 - 2) + 1; // 198.18.0.1 .. 198.19.255.254
    format!("198.{}.{}.{}", 18 + host / 65536, (host / 256) % 256, host % 256)
}

async fn serve_load_balancers(client: Client) {
    let all: Api<Service> = Api::all(client.clone());
    let stream = watcher(all, watcher::Config::default()).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let Ok(svc) = item else { continue };
        let (Some(name), Some(ns)) = (&svc.metadata.name, &svc.metadata.namespace) else { continue };
        let is_lb = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        let has_address = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_some_and(|i| !i.is_empty());
        if !is_lb || has_address {
            continue;
        }
        let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": lb_address(ns, name)}]}}});
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch)).await {
            tracing::debug!("fake kubelet: load balancer of {ns}/{name}: {e}");
        }
    }
}

async fn serve_pods(client: Client, nodes: Vec<String>) {
    let all: Api<Pod> = Api::all(client.clone());
    let next_ip = Arc::new(AtomicU32::new(2));
    let mut rr = 0usize;
    let stream = watcher(all, watcher::Config::default()).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let pod = match item {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!("fake kubelet: watch: {e}");
                continue;
            }
        };
        if let Err(e) = handle_pod(&client, &nodes, &mut rr, &next_ip, &pod).await {
            tracing::debug!("fake kubelet: pod {:?}: {e}", pod.metadata.name);
        }
    }
}

async fn handle_pod(
    client: &Client,
    nodes: &[String],
    rr: &mut usize,
    next_ip: &AtomicU32,
    pod: &Pod,
) -> Result<(), kube::Error> {
    let (Some(name), Some(ns)) = (&pod.metadata.name, &pod.metadata.namespace) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let spec = pod.spec.clone().unwrap_or_default();
    let Some(node) = spec.node_name.clone() else {
        if pod.metadata.deletion_timestamp.is_some() {
            return force_delete(&api, name).await;
        }
        let target = affinity_node(pod).unwrap_or_else(|| {
            *rr += 1;
            nodes[*rr % nodes.len()].clone()
        });
        if !nodes.contains(&target) {
            return Ok(());
        }
        let binding = Binding {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(ns.clone()), ..Default::default() },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(target),
                ..Default::default()
            },
        };
        // The bound Pod comes back through the watch and is started then.
        return api
            .create_subresource::<Binding, serde_json::Value>("binding", name, &PostParams::default(), &binding)
            .await
            .map(|_| ());
    };
    if !nodes.contains(&node) {
        return Ok(());
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return force_delete(&api, name).await;
    }
    let desired = desired_status(pod, next_ip);
    let phase = desired["phase"].as_str().unwrap_or_default();
    let current = pod.status.as_ref();
    let same_phase = current.and_then(|s| s.phase.as_deref()) == Some(phase);
    let has_statuses = current.and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| !c.is_empty());
    if same_phase && has_statuses {
        return Ok(());
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": desired}))).await.map(|_| ())
}

async fn force_delete(api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default().grace_period(0)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The node a DaemonSet Pod must run on: `matchFields metadata.name In [node]`.
fn affinity_node(pod: &Pod) -> Option<String> {
    let terms = &pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

fn desired_status(pod: &Pod, next_ip: &AtomicU32) -> Value {
    let spec = pod.spec.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
    let failure = labels.get(FAIL_LABEL).map(|v| if v.is_empty() { "CrashLoopBackOff".to_string() } else { v.clone() });
    let completes = matches!(spec.restart_policy.as_deref(), Some("Never" | "OnFailure"));
    let now = Time(now());
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_else(|| {
        let n = next_ip.fetch_add(1, Ordering::Relaxed);
        format!("10.244.{}.{}", (n >> 8) & 0xff, n & 0xff)
    });
    // A failing container of a `restartPolicy: Never` Pod ends the Pod, as a
    // real kubelet does; otherwise it is restarted (CrashLoopBackOff).
    let never = spec.restart_policy.as_deref() == Some("Never");
    let (phase, ready) = match (&failure, completes) {
        (Some(r), _) if r.contains("ImagePull") || r == "ErrImagePull" => ("Pending", false),
        (Some(_), true) if never => ("Failed", false),
        (Some(_), _) => ("Running", false),
        (None, true) => ("Succeeded", false),
        (None, false) => ("Running", true),
    };
    let container_status = |c: &k8s_openapi::api::core::v1::Container| {
        let state = match (&failure, phase) {
            (Some(reason), "Failed") => json!({"terminated": {"exitCode": 1, "reason": reason,
                "message": format!("fake kubelet: pod is labelled {FAIL_LABEL}={reason}"),
                "startedAt": now, "finishedAt": now}}),
            (Some(reason), _) => json!({"waiting": {"reason": reason,
                "message": format!("fake kubelet: pod is labelled {FAIL_LABEL}={reason}")}}),
            (None, "Succeeded") => json!({"terminated": {"exitCode": 0, "reason": "Completed",
                "startedAt": now, "finishedAt": now}}),
            _ => json!({"running": {"startedAt": now}}),
        };
        let mut status = json!({
            "name": c.name, "image": c.image.clone().unwrap_or_default(),
            "imageID": format!("fake://{}", c.image.clone().unwrap_or_default()),
            "containerID": format!("fake://{}-{}", pod.metadata.name.clone().unwrap_or_default(), c.name),
            "ready": ready, "started": phase == "Running" && failure.is_none(),
            "restartCount": if failure.is_some() && phase == "Running" { 5 } else { 0 },
            "state": state,
        });
        if failure.is_some() && phase == "Running" {
            status["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": now, "finishedAt": now}});
        }
        status
    };
    let init: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(),
            "imageID": "", "ready": true, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}})
        })
        .collect();
    let cond = |type_: &str, ok: bool| {
        let status = if ok { "True" } else { "False" };
        json!({"type": type_, "status": status, "lastTransitionTime": now})
    };
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [
            cond("PodScheduled", true), cond("Initialized", true),
            cond("ContainersReady", ready), cond("Ready", ready),
        ],
        "initContainerStatuses": init,
        "containerStatuses": spec.containers.iter().map(container_status).collect::<Vec<_>>(),
    });
    if let (Some(reason), "Failed") = (&failure, phase) {
        status["reason"] = json!(reason);
        status["message"] = json!(format!("a container exited with {reason}"));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancer_addresses_are_stable_and_in_the_range() {
        let a = lb_address("ingress-nginx", "ingress-nginx-controller");
        assert_eq!(a, lb_address("ingress-nginx", "ingress-nginx-controller"), "the same Service, the same address");
        assert_ne!(a, lb_address("ingress-nginx", "other"));
        for (ns, n) in [("a", "b"), ("default", "lb"), ("x", "y")] {
            let ip: std::net::Ipv4Addr = lb_address(ns, n).parse().unwrap();
            let [o1, o2, ..] = ip.octets();
            assert!(o1 == 198 && (18..=19).contains(&o2), "{ip}");
        }
    }
}
