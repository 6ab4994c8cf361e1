//! Before a cluster is deleted: release what holds cloud resources outside
//! it. LoadBalancer Services and Ingresses own load balancers (and their
//! security groups, DNS records) that eksctl and kops deletions trip over,
//! so `down` deletes the ones rekube manages first and waits until the API
//! server has let them go (finalizers included).

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};

use crate::KubeError;
use crate::live::Resolver;

/// Deletes the LoadBalancer Services and Ingresses that are members of one
/// of `ids` (the ApplySets of the environment going down) and waits until
/// they are gone; returns `Kind namespace/name` of each.
pub async fn release_load_balancers(
    resolver: &Resolver,
    ids: &[String],
    timeout: Duration,
) -> Result<Vec<String>, KubeError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let lp = ListParams::default().labels(&format!("{} in ({})", rekube_plan::applyset::PART_OF_LABEL, ids.join(",")));
    let mut targets = Vec::new();
    for (api_version, kind) in [
        ("v1", "Service"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1beta1", "Ingress"),
        ("extensions/v1beta1", "Ingress"),
    ] {
        if kind == "Ingress" && targets.iter().any(|(k, _, _, _): &(String, _, _, _)| k == "Ingress") {
            continue;
        }
        let Some(res) =
            resolver.resolve(api_version, kind).await.map_err(KubeError::api(format!("cannot discover {kind}")))?
        else {
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(resolver.client().clone(), &res.resource);
        for o in api.list(&lp).await.map_err(KubeError::api(format!("cannot list {kind}s")))?.items {
            if kind == "Service" && o.data["spec"]["type"] != "LoadBalancer" {
                continue;
            }
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            targets.push((kind.to_string(), ns, o.metadata.name.clone().unwrap_or_default(), res.resource.clone()));
        }
    }
    for (_, ns, name, ar) in &targets {
        let api: Api<DynamicObject> = Api::namespaced_with(resolver.client().clone(), ns, ar);
        match api.delete(name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(KubeError::Api { what: format!("cannot delete {name}"), error: e }),
        }
    }
    let began = Instant::now();
    for (kind, ns, name, ar) in &targets {
        let api: Api<DynamicObject> = Api::namespaced_with(resolver.client().clone(), ns, ar);
        while api.get_opt(name).await.map_err(KubeError::api(format!("cannot read {kind} {name}")))?.is_some() {
            if began.elapsed() > timeout {
                let object = format!("{kind} {ns}/{name}");
                return Err(KubeError::LoadBalancerStuck { object, seconds: timeout.as_secs() });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(targets.into_iter().map(|(k, ns, n, _)| format!("{k} {ns}/{n}")).collect())
}
