//! Drift: what changed by hand since rekube applied, and who changed it.
//!
//! An object is compared with the current rendered intent only when that
//! intent is what rekube last applied (same hash annotation); otherwise the
//! spec changed since, and the object is reported as pending apply, not as
//! drift. A Deployment's or StatefulSet's `spec.replicas` is not drift when
//! a HorizontalPodAutoscaler targets it.

use std::collections::BTreeSet;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::ListParams;
use rekube_plan::applyset::{self, FIELD_MANAGER};
use rekube_plan::drift::{FieldDrift, object_drift};
use rekube_plan::normalize::{fold_string_data, is_namespace, live_hash, prepare_for};
use serde::Serialize;

use crate::KubeError;
use crate::desired::Desired;
use crate::live::{ObjectKey, Resolver, load_live, made_by_the_system};

/// What happened to a managed object since rekube applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftState {
    /// Fields changed by hand.
    Changed,
    /// Deleted by hand (or new in the spec since the last apply).
    Deleted,
    /// Added by hand to a namespace rekube created; never pruned.
    Added,
    /// The spec changed since the last apply: not drift, a pending change.
    PendingApply,
}

impl DriftState {
    /// Whether someone other than rekube made it so (everything but a pending apply).
    pub fn is_drift(self) -> bool {
        self != Self::PendingApply
    }
}

/// Drift of one managed object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDrift {
    /// Its component.
    pub component: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// What happened to it.
    pub state: DriftState,
    /// Fields changed by hand.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDrift>,
    /// For `added` objects: the manager that created it (`kubectl-create`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// For `added` objects: when it was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl ObjectDrift {
    /// `Kind namespace/name`.
    pub fn display_name(&self) -> String {
        rekube_plan::model::display_name(&self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// Every drifted object of the environment's applied components.
pub async fn drift(res: &Resolver, want: &Desired<'_>) -> Result<Vec<ObjectDrift>, KubeError> {
    let state = load_live(res, want).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::all(res.client().clone());
    let scaled: BTreeSet<(String, String, String)> = hpas
        .list(&ListParams::default())
        .await
        .map_err(KubeError::api("list HorizontalPodAutoscalers"))?
        .items
        .into_iter()
        .filter_map(|h| {
            let t = h.spec?.scale_target_ref;
            Some((h.metadata.namespace?, t.kind, t.name))
        })
        .collect();
    let mut out = Vec::new();
    for comp in &want.rendered.components {
        let identity = want.identity(&comp.name);
        let Some(parent) = state.own_parents(want).find(|p| {
            p.identity.as_ref() == Some(&identity) || p.legacy_component.as_deref() == Some(comp.name.as_str())
        }) else {
            continue;
        }; // never applied
        for o in &comp.objects {
            let applied = prepare_for(&o.value, &identity);
            let key = ObjectKey::of(&applied);
            let gk = applyset::group_kind(o.group(), o.kind());
            let base = |state: DriftState, fields: Vec<FieldDrift>| ObjectDrift {
                component: comp.name.clone(),
                kind: o.kind().to_string(),
                namespace: o.namespace().map(str::to_string),
                name: o.name().to_string(),
                state,
                fields,
                manager: None,
                time: None,
            };
            match state.live.get(&key) {
                // A namespace rekube only uses is not its to report.
                _ if is_namespace(&o.value)
                    && state
                        .live
                        .get(&key)
                        .is_some_and(|l| applyset::created_by(l) != Some(identity.scope().as_str())) => {}
                None if parent.group_kinds.contains(&gk) => out.push(base(DriftState::Deleted, Vec::new())),
                None => out.push(base(DriftState::PendingApply, Vec::new())),
                Some(live) if live_hash(live) != live_hash(&applied) => {
                    out.push(base(DriftState::PendingApply, Vec::new()))
                }
                Some(live) => {
                    let mut ignore: Vec<String> = want
                        .ignore
                        .get(&comp.name)
                        .into_iter()
                        .flatten()
                        .filter(|r| {
                            r.kind.as_deref().is_none_or(|k| k == o.kind())
                                && r.name.as_deref().is_none_or(|n| n == o.name())
                        })
                        .flat_map(|r| r.paths.iter().cloned())
                        .collect();
                    if scaled.contains(&(
                        o.namespace().unwrap_or_default().to_string(),
                        o.kind().to_string(),
                        o.name().to_string(),
                    )) {
                        ignore.push("spec.replicas".to_string());
                    }
                    let fields = object_drift(o.kind(), &fold_string_data(&applied), live, FIELD_MANAGER, &ignore);
                    if !fields.is_empty() {
                        out.push(base(DriftState::Changed, fields));
                    }
                }
            }
        }
    }
    // Objects added by hand to namespaces rekube created (of the kinds it uses),
    // reported under the first component that uses the namespace.
    let scope = want.identity(rekube_render::NAMESPACES).scope();
    let created: BTreeSet<&str> = state
        .live
        .values()
        .filter(|v| is_namespace(v) && applyset::created_by(v) == Some(scope.as_str()))
        .filter_map(|v| v.pointer("/metadata/name").and_then(serde_json::Value::as_str))
        .collect();
    let mut owned_ns: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for c in want.rendered.spec_components() {
        let uses = c
            .namespace
            .iter()
            .cloned()
            .chain(c.objects.iter().filter(|o| is_namespace(&o.value)).map(|o| o.name().to_string()));
        for ns in uses.filter(|ns| created.contains(ns.as_str())) {
            owned_ns.entry(ns).or_insert_with(|| c.name.clone());
        }
    }
    let mut added: Vec<ObjectDrift> = state
        .live
        .iter()
        .filter(|(k, v)| {
            k.namespace.as_ref().is_some_and(|ns| owned_ns.contains_key(ns))
                && applyset::part_of(v).is_none()
                && !made_by_the_system(v)
        })
        .map(|(ObjectKey { kind, namespace: ns, name, .. }, v)| {
            let creator =
                v.pointer("/metadata/managedFields").and_then(serde_json::Value::as_array).and_then(|m| m.first());
            ObjectDrift {
                component: owned_ns[ns.as_ref().expect("filtered")].clone(),
                kind: kind.clone(),
                namespace: ns.clone(),
                name: name.clone(),
                state: DriftState::Added,
                fields: Vec::new(),
                manager: creator.and_then(|c| c["manager"].as_str()).map(str::to_string),
                time: v.pointer("/metadata/creationTimestamp").and_then(serde_json::Value::as_str).map(str::to_string),
            }
        })
        .collect();
    added.sort_by(|a, b| (&a.namespace, &a.kind, &a.name).cmp(&(&b.namespace, &b.kind, &b.name)));
    out.extend(added);
    Ok(out)
}
