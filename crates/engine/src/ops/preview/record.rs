//! A preview's record on its cluster: a ConfigMap
//! `rekube-system/rekube-preview.<project>.<name>` written before the
//! preview's first object and deleted after its last. It holds what
//! `list`, `down` and `gc` need without the spec's charts: the source
//! environment, the expiry, the components in dependency order, the hosts.
//! Any machine that reaches the cluster can list and collect previews, and
//! a preview killed half-way still has its record, so it is never lost.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use rekube_kube::KubeError;
use rekube_plan::applyset::{FIELD_MANAGER, PARENT_NAMESPACE, PROJECT_LABEL};
use serde_json::json;

/// The record's label: the preview's name.
pub const PREVIEW_LABEL: &str = "rekube.dev/preview";

/// What the cluster knows about one preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its name.
    pub name: String,
    /// The environment it copies.
    pub from: String,
    /// When it was first made.
    pub created: DateTime<Utc>,
    /// When `preview gc` may delete it.
    pub expires: DateTime<Utc>,
    /// Its components, in dependency waves.
    pub waves: Vec<Vec<String>>,
    /// Component → host.
    pub hosts: BTreeMap<String, String>,
    /// Its namespaces.
    pub namespaces: Vec<String>,
    /// Cluster-scoped objects it shares with their owner (`Kind name`).
    pub shared: Vec<String>,
    /// Where it was last brought up from (`host:/path/rekube.yaml`).
    pub applied_from: String,
}

/// A sort key that orders `pr-2` before `pr-10`: runs of digits compare as numbers.
fn natural(name: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let text_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let (text, after) = rest.split_at(text_len);
        let digits_len = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        let (digits, after) = after.split_at(digits_len);
        out.push((text.to_string(), digits.parse().unwrap_or(u64::MAX)));
        rest = after;
    }
    out
}

/// The ConfigMap's name.
pub fn record_name(project: &str, name: &str) -> String {
    format!("rekube-preview.{project}.{name}")
}

fn api(client: &Client) -> Api<ConfigMap> {
    Api::namespaced(client.clone(), PARENT_NAMESPACE)
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

impl Record {
    /// Writes it (server-side apply), creating `rekube-system` if needed.
    pub async fn save(&self, client: &Client, project: &str) -> Result<(), KubeError> {
        rekube_kube::request::ensure_parent_namespace(client, false).await?;
        let name = record_name(project, &self.name);
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": PARENT_NAMESPACE,
                "labels": {PROJECT_LABEL: project, PREVIEW_LABEL: self.name},
            },
            "data": {
                "from": self.from,
                "created": time(&self.created),
                "expires": time(&self.expires),
                "components": json_text(&self.waves),
                "hosts": json_text(&self.hosts),
                "namespaces": json_text(&self.namespaces),
                "shared": json_text(&self.shared),
                "applied-from": self.applied_from,
            },
        });
        api(client)
            .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
            .await
            .map_err(KubeError::api(format!("write the preview record {PARENT_NAMESPACE}/{name}")))?;
        Ok(())
    }

    /// Deletes it.
    pub async fn delete(client: &Client, project: &str, name: &str) -> Result<(), KubeError> {
        let name = record_name(project, name);
        match api(client).delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(KubeError::api(format!("delete the preview record {PARENT_NAMESPACE}/{name}"))(e)),
        }
    }

    /// Every preview of `project` on the cluster, by name.
    pub async fn list(client: &Client, project: &str) -> Result<Vec<Record>, KubeError> {
        let lp = ListParams::default().labels(&format!("{PROJECT_LABEL}={project},{PREVIEW_LABEL}"));
        let list = api(client).list(&lp).await.map_err(KubeError::api("list preview records"))?;
        let mut out: Vec<Record> = list.items.iter().filter_map(Record::parse).collect();
        out.sort_by_cached_key(|r| natural(&r.name));
        Ok(out)
    }

    /// Preview `name` of `project`, if the cluster has it.
    pub async fn get(client: &Client, project: &str, name: &str) -> Result<Option<Record>, KubeError> {
        let n = record_name(project, name);
        let cm = api(client).get_opt(&n).await.map_err(KubeError::api(format!("read {PARENT_NAMESPACE}/{n}")))?;
        Ok(cm.as_ref().and_then(Record::parse))
    }

    fn parse(cm: &ConfigMap) -> Option<Record> {
        let name = cm.metadata.labels.as_ref()?.get(PREVIEW_LABEL)?.clone();
        let data = cm.data.clone().unwrap_or_default();
        let text = |k: &str| data.get(k).cloned().unwrap_or_default();
        let when = |k: &str| DateTime::parse_from_rfc3339(&text(k)).ok().map(|t| t.with_timezone(&Utc));
        let created = when("created").unwrap_or_default();
        Some(Record {
            name,
            from: text("from"),
            created,
            // An expiry that does not parse (edited by hand) counts as expired: gc collects it.
            expires: when("expires").unwrap_or(created),
            waves: serde_json::from_str(&text("components")).unwrap_or_default(),
            hosts: serde_json::from_str(&text("hosts")).unwrap_or_default(),
            namespaces: serde_json::from_str(&text("namespaces")).unwrap_or_default(),
            shared: serde_json::from_str(&text("shared")).unwrap_or_default(),
            applied_from: text("applied-from"),
        })
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires <= now
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn previews_sort_as_people_count() {
        let mut names = vec!["pr-10", "pr-2", "feat-b", "pr-1", "feat-a", "pr-9"];
        names.sort_by_cached_key(|n| super::natural(n));
        assert_eq!(names, ["feat-a", "feat-b", "pr-1", "pr-2", "pr-9", "pr-10"]);
    }
}
