//! Which resources the cluster serves, resolved per group-version on demand
//! and cached for the run. Only the groups the platform uses are asked, so
//! one broken aggregated API (a metrics-server that is down) cannot fail a
//! plan that does not use it.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{Scope, pinned_group};

/// A served kind.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// How to reach it.
    pub resource: ApiResource,
    /// Whether it lives in namespaces.
    pub namespaced: bool,
}

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
