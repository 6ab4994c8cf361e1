//! Health gates, kstatus-like: a component is done only when its objects are.
//!
//! Workloads are rolled out (observedGeneration caught up; updated, ready and
//! available counts complete), Jobs Complete, CRDs Established, PVCs Bound,
//! LoadBalancer Services have an address; everything else is healthy once
//! applied. A Pod whose container waits for a reason that does not heal by
//! itself (CrashLoopBackOff, ImagePullBackOff, ...) fails the check at once,
//! naming the pod and the reason, with the object's recent Events.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

/// An object's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Done.
    Ready,
    /// Still converging; says what it waits for.
    Pending(String),
    /// Will not converge by itself; says why.
    Failed(String),
}

const FATAL_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CreateContainerError",
    "RunContainerError",
];

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == type_)
}

fn cond_true(v: &Value, type_: &str) -> bool {
    condition(v, type_).is_some_and(|c| c["status"] == "True")
}

/// The rule for one live object, from its status alone.
pub fn evaluate(group: &str, kind: &str, v: &Value) -> Health {
    let generation = int(v, "/metadata/generation");
    let observed = int(v, "/status/observedGeneration");
    let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    match (group, kind) {
        ("apps", "Deployment") => {
            let want = v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let (updated, ready, available) = (
                int(v, "/status/updatedReplicas"),
                int(v, "/status/readyReplicas"),
                int(v, "/status/availableReplicas"),
            );
            if let Some(c) = condition(v, "Progressing")
                && c["reason"] == "ProgressDeadlineExceeded"
            {
                return Health::Failed(format!(
                    "Deployment {name}: progress deadline exceeded ({available}/{want} available)"
                ));
            }
            if observed < generation {
                Health::Pending(format!("Deployment {name}: generation {generation} not yet observed"))
            } else if updated < want || ready < want || available < want || int(v, "/status/replicas") > want {
                Health::Pending(format!("Deployment {name}: {available}/{want} available, {updated}/{want} updated"))
            } else {
                Health::Ready
            }
        }
        ("apps", "StatefulSet") => {
            let want = v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let (ready, updated) = (int(v, "/status/readyReplicas"), int(v, "/status/updatedReplicas"));
            let revisions_match = v.pointer("/status/currentRevision") == v.pointer("/status/updateRevision");
            if observed < generation || ready < want || (updated < want && !revisions_match) {
                Health::Pending(format!("StatefulSet {name}: {ready}/{want} ready"))
            } else {
                Health::Ready
            }
        }
        ("apps", "DaemonSet") => {
            let want = int(v, "/status/desiredNumberScheduled");
            let (ready, updated, available) = (
                int(v, "/status/numberReady"),
                int(v, "/status/updatedNumberScheduled"),
                int(v, "/status/numberAvailable"),
            );
            if observed < generation || ready < want || updated < want || available < want {
                Health::Pending(format!("DaemonSet {name}: {available}/{want} available"))
            } else {
                Health::Ready
            }
        }
        ("batch", "Job") => {
            if cond_true(v, "Failed") {
                let msg = condition(v, "Failed").and_then(|c| c["message"].as_str()).unwrap_or("failed");
                Health::Failed(format!("Job {name}: {msg}"))
            } else if cond_true(v, "Complete") {
                Health::Ready
            } else {
                Health::Pending(format!("Job {name}: {} succeeded, not complete", int(v, "/status/succeeded")))
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if cond_true(v, "Established") {
                Health::Ready
            } else {
                Health::Pending(format!("CustomResourceDefinition {name}: not Established"))
            }
        }
        ("", "PersistentVolumeClaim") => match v.pointer("/status/phase").and_then(Value::as_str) {
            Some("Bound") => Health::Ready,
            Some("Lost") => Health::Failed(format!("PersistentVolumeClaim {name}: Lost")),
            phase => Health::Pending(format!("PersistentVolumeClaim {name}: {}", phase.unwrap_or("Pending"))),
        },
        ("", "Service") if v.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") => {
            let has_ingress =
                v.pointer("/status/loadBalancer/ingress").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
            if has_ingress {
                Health::Ready
            } else {
                Health::Pending(format!("Service {name}: no load-balancer address yet"))
            }
        }
        _ => Health::Ready,
    }
}

/// Whether a kind has a health rule (others are ready once applied).
pub fn has_rule(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("", "PersistentVolumeClaim" | "Service")
    )
}

/// Health of a live object, looking at its Pods for workloads so that a
/// crashing container fails the check at once, with reason and Events.
pub async fn check(client: &Client, group: &str, kind: &str, live: &Value) -> Health {
    let h = evaluate(group, kind, live);
    let Health::Pending(summary) = &h else { return h };
    let workload = matches!((group, kind), ("apps", "Deployment" | "StatefulSet" | "DaemonSet") | ("batch", "Job"));
    if !workload {
        return h;
    }
    let ns = live.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let selector = live
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    if selector.is_empty() {
        return h;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else { return h };
    let mut problems = Vec::new();
    for pod in &list.items {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        for cs in statuses {
            if let Some(reason) = cs.state.and_then(|s| s.waiting).and_then(|w| w.reason)
                && FATAL_REASONS.contains(&reason.as_str())
            {
                problems.push((pod_name.clone(), reason));
            }
        }
    }
    if problems.is_empty() {
        return h;
    }
    let name = live.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let mut msg = summary.clone();
    for (pod, reason) in &problems {
        msg.push_str(&format!("; pod {pod}: {reason}"));
    }
    let events = recent_events(client, ns, name, problems.first().map(|p| p.0.as_str())).await;
    if !events.is_empty() {
        msg.push_str(&format!("\n  recent events:\n    {}", events.join("\n    ")));
    }
    Health::Failed(msg)
}

/// The last few Events about an object (and one of its Pods).
async fn recent_events(client: &Client, ns: &str, name: &str, pod: Option<&str>) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for n in std::iter::once(name).chain(pod) {
        if let Ok(list) = api.list(&ListParams::default().fields(&format!("involvedObject.name={n}"))).await {
            for e in list.items.iter().rev().take(3) {
                out.push(format!(
                    "{} {}: {}",
                    e.involved_object.kind.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default().trim()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_rules() {
        let d = |generation: i64, obs: i64, avail: i64| {
            json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 2},
            "status": {
                "observedGeneration": obs,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": avail,
                "availableReplicas": avail
            }})
        };
        assert_eq!(evaluate("apps", "Deployment", &d(2, 2, 2)), Health::Ready);
        assert_eq!(
            evaluate("apps", "Deployment", &d(3, 2, 2)),
            Health::Pending("Deployment web: generation 3 not yet observed".into())
        );
        assert_eq!(
            evaluate("apps", "Deployment", &d(2, 2, 0)),
            Health::Pending("Deployment web: 0/2 available, 2/2 updated".into())
        );
    }

    #[test]
    fn job_crd_pvc_and_load_balancer_rules() {
        assert_eq!(
            evaluate(
                "batch",
                "Job",
                &json!({"metadata": {"name": "j"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}})
            ),
            Health::Ready
        );
        assert!(matches!(
            evaluate(
                "batch",
                "Job",
                &json!({"metadata": {"name": "j"}, "status": {"conditions": [
                    {"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}
                ]}})
            ),
            Health::Failed(_)
        ));
        assert!(matches!(
            evaluate("apiextensions.k8s.io", "CustomResourceDefinition", &json!({"metadata": {"name": "c"}})),
            Health::Pending(_)
        ));
        assert_eq!(
            evaluate("", "PersistentVolumeClaim", &json!({"metadata": {"name": "p"}, "status": {"phase": "Bound"}})),
            Health::Ready
        );
        assert!(matches!(
            evaluate("", "Service", &json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}})),
            Health::Pending(_)
        ));
        assert_eq!(
            evaluate("", "Service", &json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}})),
            Health::Ready
        );
    }
}
