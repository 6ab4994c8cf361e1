//! An environment read through its ApplySets alone, without the spec:
//! how many objects it has and how healthy they are (what `preview list`
//! shows), and one object's live state by its type and name.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::KubeError;
use crate::live::{Health, Resolved, Resolver, check, parents};

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

/// Counts each of `project`'s `environments` on the cluster (one read of
/// the ApplySet parents for all) and checks each member's health.
pub async fn census(
    res: &Resolver,
    project: &str,
    environments: &[String],
) -> Result<BTreeMap<String, Census>, KubeError> {
    let all = parents(res.client()).await?;
    let mut out: BTreeMap<String, Census> = environments.iter().map(|e| (e.clone(), Census::default())).collect();
    for p in &all {
        let Some(count) =
            p.identity.as_ref().filter(|i| i.project == project).and_then(|i| out.get_mut(&i.environment))
        else {
            continue;
        };
        for (r, objects) in p.members(res).await? {
            for v in objects {
                count.objects += 1;
                match check(res.client(), &r.resource.group, &r.resource.kind, &v).await {
                    Health::Ready => count.ready += 1,
                    Health::Pending(why) | Health::Failed(why) => {
                        let key = rekube_render::ObjectKey::of(&v);
                        let ns = key.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default();
                        count.waiting.push(format!("{} {ns}{}: {why}", r.resource.kind, key.name));
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
