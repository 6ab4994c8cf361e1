//! Before a cluster is deleted: release what holds cloud resources outside
//! it. LoadBalancer Services and Ingresses own load balancers (and their
//! security groups, DNS records) that eksctl and kops deletions trip over,
//! so `down` deletes the ones rekube manages first and waits until the API
//! server has let them go (finalizers included).

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};

use crate::KubeError;
use crate::delete::{await_gone, live_uid};
use crate::live::Resolver;

/// A Service or Ingress that holds a load balancer.
struct Target {
    kind: &'static str,
    namespace: String,
    name: String,
    resource: kube::core::ApiResource,
}

impl Target {
    fn api(&self, resolver: &Resolver) -> Api<DynamicObject> {
        Api::namespaced_with(resolver.client().clone(), &self.namespace, &self.resource)
    }

    fn display(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

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
        if kind == "Ingress" && targets.iter().any(|t: &Target| t.kind == "Ingress") {
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
            targets.push(Target {
                kind,
                namespace: o.metadata.namespace.clone().unwrap_or_default(),
                name: o.metadata.name.clone().unwrap_or_default(),
                resource: res.resource.clone(),
            });
        }
    }
    for t in &targets {
        match t.api(resolver).delete(&t.name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(KubeError::Api { what: format!("cannot delete {}", t.display()), error: e }),
        }
    }
    let began = Instant::now();
    for t in &targets {
        let (api, object) = (t.api(resolver), t.display());
        let Some(uid) = live_uid(&api, &t.name, &format!("cannot read {object}")).await? else { continue };
        if !await_gone(&api, &t.name, &uid, timeout.saturating_sub(began.elapsed()), &object).await? {
            return Err(KubeError::LoadBalancerStuck { object, seconds: timeout.as_secs() });
        }
    }
    Ok(targets.iter().map(Target::display).collect())
}
