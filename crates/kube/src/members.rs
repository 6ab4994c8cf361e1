//! An environment read through its ApplySets alone, without the spec:
//! how many objects it has and how healthy they are (what `preview list`
//! shows), and one object's live state by its type and name.

use rekube_plan::applyset::PART_OF_LABEL;
use serde_json::Value;

use crate::KubeError;
use crate::live::{Health, Resolved, Resolver, check, list_type, parents};

/// The members of one environment's ApplySets, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Its objects (members of its ApplySets).
    pub objects: usize,
    /// Those that are ready.
    pub ready: usize,
    /// The others: `Kind namespace/name: why`.
    pub waiting: Vec<String>,
}

/// Counts `project`'s `environment` on the cluster and checks each member's health.
pub async fn census(res: &Resolver, project: &str, environment: &str) -> Result<Census, KubeError> {
    let mut out = Census::default();
    let all = parents(res.client()).await?;
    for p in all.iter().filter(|p| p.identity.as_ref().is_some_and(|i| i.is_in(project, environment))) {
        for gk in &p.group_kinds {
            let Some(r) = res.resolve_group_kind(gk).await.map_err(KubeError::api(format!("discover {gk}")))? else {
                continue;
            };
            for o in list_type(res.client(), &r, Some(&format!("{PART_OF_LABEL}={}", p.id))).await? {
                let v = serde_json::to_value(&o).expect("objects serialise");
                out.objects += 1;
                match check(res.client(), &r.resource.group, &r.resource.kind, &v).await {
                    Health::Ready => out.ready += 1,
                    Health::Pending(why) | Health::Failed(why) => {
                        let ns = o.metadata.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default();
                        let name = o.metadata.name.as_deref().unwrap_or_default();
                        out.waiting.push(format!("{} {ns}{name}: {why}", r.resource.kind));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The live object of `apiVersion`/`kind` named `name` (in `namespace`,
/// when its type is namespaced), with its type; `None` when the type or
/// the object does not exist.
pub async fn get_object(
    res: &Resolver,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<(Value, Resolved)>, KubeError> {
    let what = format!("read {kind} {name}");
    let Some(r) = res.resolve(api_version, kind).await.map_err(KubeError::api(what.clone()))? else {
        return Ok(None);
    };
    let api = crate::request::api_for(res.client(), &r, namespace);
    let live = api.get_opt(name).await.map_err(KubeError::api(what))?;
    Ok(live.map(|o| (serde_json::to_value(&o).expect("objects serialise"), r)))
}
