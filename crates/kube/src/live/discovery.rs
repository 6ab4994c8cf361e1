//! Which resources the cluster serves, resolved per group-version on demand
//! and cached for the run. Only the groups the platform uses are asked, so
//! one broken aggregated API (a metrics-server that is down) cannot fail a
//! plan that does not use it.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::core::GroupVersion;
use kube::discovery::{Scope, pinned_group};

use crate::request::Resolved;

/// Resolves `apiVersion` + `kind` against the cluster, with a cache.
pub struct Resolver {
    client: Client,
    cache: Mutex<HashMap<String, Option<Vec<Resolved>>>>,
}

impl Resolver {
    /// A resolver for `client`'s cluster.
    pub fn new(client: Client) -> Self {
        Self { client, cache: Mutex::new(HashMap::new()) }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Forgets what is known about `group` (after its CRD was applied).
    pub fn forget_group(&self, group: &str) {
        self.cache.lock().expect("not poisoned").retain(|gv, _| !gv.starts_with(&format!("{group}/")));
    }

    /// The kind, or `Ok(None)` when the cluster does not serve it.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>, kube::Error> {
        let cached = self.cache.lock().expect("not poisoned").get(api_version).cloned();
        let resources = match cached {
            Some(r) => r,
            None => {
                let gv = match api_version.split_once('/') {
                    Some((g, v)) => GroupVersion::gv(g, v),
                    None => GroupVersion::gv("", api_version),
                };
                let found = match pinned_group(&self.client, &gv).await {
                    Ok(group) => Some(
                        group
                            .versioned_resources(&gv.version)
                            .into_iter()
                            .map(|(resource, caps)| Resolved { resource, namespaced: caps.scope == Scope::Namespaced })
                            .collect(),
                    ),
                    Err(kube::Error::Api(s)) if s.code == 404 => None,
                    Err(e) => return Err(e),
                };
                self.cache.lock().expect("not poisoned").insert(api_version.to_string(), found.clone());
                found
            }
        };
        Ok(resources.and_then(|rs| rs.into_iter().find(|r| r.resource.kind == kind)))
    }

    /// The kind by `Kind.group` (the ApplySet annotation form), at the
    /// group's preferred version.
    pub async fn resolve_group_kind(&self, group_kind: &str) -> Result<Option<Resolved>, kube::Error> {
        let (kind, group) = group_kind.split_once('.').unwrap_or((group_kind, ""));
        if group.is_empty() {
            return self.resolve("v1", kind).await;
        }
        match kube::discovery::group(&self.client, group).await {
            Ok(g) => self.resolve(&format!("{group}/{}", g.preferred_version_or_latest()), kind).await,
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How long one group-version's discovery may take before it counts as down.
const DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One group-version the cluster serves, with its resources, or why they
/// could not be read (an aggregated API that is down).
pub struct Served {
    /// The group (`""` for core).
    pub group: String,
    /// The version.
    pub version: String,
    /// Its resources.
    pub resources: Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList, kube::Error>,
}

impl Served {
    /// `apps/v1`, or `v1` for core.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// Every group-version the cluster serves (with `preferred_only`, each
/// group's preferred one), its resources read concurrently.
pub async fn served(client: &Client, preferred_only: bool) -> Result<Vec<Served>, kube::Error> {
    use futures::StreamExt;
    let mut gvs = vec![(String::new(), "v1".to_string())];
    for g in client.list_api_groups().await?.groups {
        let versions = match (preferred_only, g.preferred_version.or_else(|| g.versions.first().cloned())) {
            (true, Some(p)) => vec![p],
            _ => g.versions,
        };
        gvs.extend(versions.into_iter().map(|v| (g.name.clone(), v.version)));
    }
    let down = &unavailable_apis(client).await;
    Ok(futures::stream::iter(gvs)
        .map(|(group, version)| async move {
            let gv = if group.is_empty() { version.clone() } else { format!("{group}/{version}") };
            if let Some(why) = down.get(&gv) {
                let err = std::io::Error::new(std::io::ErrorKind::NotConnected, why.clone());
                return Served { group, version, resources: Err(kube::Error::Service(Box::new(err))) };
            }
            let read = async {
                if group.is_empty() {
                    client.list_core_api_resources(&version).await
                } else {
                    client.list_api_group_resources(&format!("{group}/{version}")).await
                }
            };
            // An aggregated API whose Service is gone may hang rather than answer.
            let resources = tokio::time::timeout(DISCOVERY_TIMEOUT, read).await.unwrap_or_else(|_| {
                let why = format!("did not answer within {}s", DISCOVERY_TIMEOUT.as_secs());
                Err(kube::Error::Service(Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, why))))
            });
            Served { group, version, resources }
        })
        .buffered(8)
        .collect()
        .await)
}

/// The aggregated group-versions whose APIService is not Available, with
/// why: reading them would only wait for a backend that is not there (a
/// metrics-server whose Pods are not up yet). Empty when APIServices cannot
/// be listed (say, RBAC forbids it); the per-read timeout still bounds those.
async fn unavailable_apis(client: &Client) -> std::collections::HashMap<String, String> {
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    let api: kube::Api<APIService> = kube::Api::all(client.clone());
    let Ok(list) = api.list(&kube::api::ListParams::default()).await else { return Default::default() };
    let mut down = std::collections::HashMap::new();
    for svc in list.items {
        let Some(spec) = &svc.spec else { continue };
        let conditions = svc.status.as_ref().and_then(|s| s.conditions.as_ref());
        let available = conditions.into_iter().flatten().find(|c| c.type_ == "Available");
        if let Some(c) = available.filter(|c| c.status == "False") {
            let gv = format!(
                "{}/{}",
                spec.group.as_deref().unwrap_or_default(),
                spec.version.as_deref().unwrap_or_default()
            );
            let name = svc.metadata.name.unwrap_or_default();
            let why = format!(
                "APIService {name} is not available ({}: {})",
                c.reason.as_deref().unwrap_or("no reason"),
                c.message.as_deref().unwrap_or_default()
            );
            down.insert(gv, why);
        }
    }
    down
}

/// What the cluster serves, as Helm's `--api-versions` takes it: every
/// `group/version` and `group/version/Kind` (core as `v1`, `v1/Pod`), sorted.
/// Charts test these with `.Capabilities.APIVersions.Has` (a ServiceMonitor
/// only when Prometheus' CRDs exist, `policy/v1` over `policy/v1beta1`), so
/// rendering without them renders for a cluster that is not there. A group
/// that does not answer (an aggregated API that is down) is left out.
pub async fn api_versions(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for s in served(client, false).await.unwrap_or_default() {
        let gv = s.group_version();
        for r in s.resources.into_iter().flat_map(|l| l.resources) {
            if !r.name.contains('/') {
                out.push(format!("{gv}/{}", r.kind));
            }
        }
        out.push(gv);
    }
    out.sort();
    out.dedup();
    out
}
