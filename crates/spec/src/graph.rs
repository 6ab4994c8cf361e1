//! The `needs` graph: components grouped into waves, each wave depending only
//! on earlier ones, so independent components can run in parallel.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Spec;

/// Components in dependency order, in waves (sorted by name within a wave).
/// The spec must be valid (no cycles, no dangling `needs`); otherwise the
/// leftover components form a last wave.
pub fn waves(spec: &Spec) -> Vec<Vec<String>> {
    let mut pending: BTreeMap<&str, BTreeSet<&str>> = spec
        .components
        .iter()
        .map(|(n, c)| {
            (
                n.as_str(),
                c.needs.iter().map(|s| s.value.as_str()).filter(|d| spec.components.contains_key(*d)).collect(),
            )
        })
        .collect();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<&str> = pending.iter().filter(|(_, deps)| deps.is_empty()).map(|(n, _)| *n).collect();
        let wave = if ready.is_empty() { pending.keys().copied().collect() } else { ready };
        for n in &wave {
            pending.remove(n);
        }
        for deps in pending.values_mut() {
            for n in &wave {
                deps.remove(n);
            }
        }
        out.push(wave.into_iter().map(str::to_string).collect());
    }
    out
}

/// `name` and everything it needs, transitively.
pub fn with_needs(spec: &Spec, names: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<String> = names.to_vec();
    while let Some(n) = stack.pop() {
        if out.insert(n.clone())
            && let Some(c) = spec.components.get(&n)
        {
            stack.extend(c.needs.iter().map(|s| s.value.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_components_share_a_wave_and_dependents_follow() {
        let spec = crate::parse(
            std::path::Path::new("t.yaml"),
            concat!(
                "components:\n",
                "  cert-manager: {manifests: .}\n",
                "  ingress: {manifests: ., needs: [cert-manager]}\n",
                "  monitoring: {manifests: ., needs: [cert-manager]}\n",
                "  app: {manifests: ., needs: [ingress]}\n",
                "  db: {manifests: .}\n",
            ),
        )
        .unwrap();
        assert_eq!(waves(&spec), vec![vec!["cert-manager", "db"], vec!["ingress", "monitoring"], vec!["app"]]);
        let app: Vec<String> = with_needs(&spec, &["app".to_string()]).into_iter().collect();
        assert_eq!(app, ["app", "cert-manager", "ingress"]);
    }
}
