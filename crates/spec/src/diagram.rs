//! A picture of an environment: its components, their `needs` and their
//! cluster, as Mermaid (which GitHub renders in Markdown) or Graphviz DOT,
//! optionally colored by each component's health on the live cluster.
//! Pure text from the spec; the caller brings the health.

use std::collections::BTreeMap;

use crate::model::Spec;

/// A component's state on the cluster, for coloring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Applied and healthy.
    Healthy,
    /// Applied, still converging.
    Progressing,
    /// Applied and failing.
    Failed,
    /// Not applied yet.
    Absent,
}

impl State {
    fn class(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Progressing => "progressing",
            Self::Failed => "failed",
            Self::Absent => "absent",
        }
    }

    /// Fill and stroke colors (the same in both formats).
    fn colors(self) -> (&'static str, &'static str) {
        match self {
            Self::Healthy => ("#d4edda", "#2e7d32"),
            Self::Progressing => ("#fff3cd", "#b58100"),
            Self::Failed => ("#f8d7da", "#c62828"),
            Self::Absent => ("#eeeeee", "#9e9e9e"),
        }
    }
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Mermaid `flowchart`.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// What a node says about its component: the source and namespace.
fn describe(spec: &Spec, name: &str) -> Vec<String> {
    let c = &spec.components[name];
    let mut lines = vec![name.to_string()];
    if let Some(ch) = &c.chart {
        let ch = &ch.value;
        match (&ch.path, &ch.name, &ch.version) {
            (Some(p), _, _) => lines.push(format!("chart {}", p.value)),
            (None, Some(n), Some(v)) => lines.push(format!("chart {} {}", n.value, v.value)),
            (None, Some(n), None) => lines.push(format!("chart {}", n.value)),
            _ => {}
        }
    }
    if let Some(m) = &c.manifests {
        lines.push(format!("manifests {}", m.value));
    }
    if let Some(ns) = &c.namespace {
        lines.push(format!("namespace {}", ns.value));
    }
    lines
}

/// Mermaid ids must be plain words: a component named `cert-manager` becomes `cert_manager`.
fn node_id(name: &str) -> String {
    name.replace('-', "_")
}

/// The environment `env` of `spec`: one box per component inside its
/// cluster, an arrow from each component to those that need it (the order
/// they are applied in), and with `health`, each box colored by its state.
/// The spec must be valid.
pub fn draw(spec: &Spec, env: &str, format: Format, health: Option<&BTreeMap<String, State>>) -> String {
    let cluster =
        spec.environments.get(env).and_then(|e| e.first_cluster()).map(|c| c.value.clone()).unwrap_or_default();
    let provider = spec.clusters.get(&cluster).map_or("?", |c| c.provider.value.as_str());
    let names: Vec<&String> = crate::graph::waves(spec)
        .into_iter()
        .flatten()
        .filter_map(|n| spec.components.get_key_value(&n).map(|(k, _)| k))
        .collect();
    let edges: Vec<(&str, &str)> = names
        .iter()
        .flat_map(|n| spec.components[*n].needs.iter().map(move |d| (d.value.as_str(), n.as_str())))
        .collect();
    let state = |n: &str| health.map(|h| h.get(n).copied().unwrap_or(State::Absent));
    let mut out = String::new();
    match format {
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            out.push_str(&format!(
                "  subgraph {}[\"environment {env}: cluster {cluster} ({provider})\"]\n",
                node_id(&format!("env_{env}"))
            ));
            for n in &names {
                out.push_str(&format!("    {}[\"{}\"]\n", node_id(n), describe(spec, n).join("<br/>")));
            }
            out.push_str("  end\n");
            for (from, to) in &edges {
                out.push_str(&format!("  {} --> {}\n", node_id(from), node_id(to)));
            }
            if health.is_some() {
                for s in [State::Healthy, State::Progressing, State::Failed, State::Absent] {
                    let (fill, stroke) = s.colors();
                    out.push_str(&format!("  classDef {} fill:{fill},stroke:{stroke}\n", s.class()));
                }
                for n in &names {
                    out.push_str(&format!("  class {} {}\n", node_id(n), state(n).map_or("absent", State::class)));
                }
            }
        }
        Format::Dot => {
            out.push_str(concat!(
                "digraph rekube {\n  rankdir=LR;\n",
                "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\"];\n",
            ));
            out.push_str(&format!(
                "  subgraph \"cluster_{env}\" {{\n    label=\"environment {env}: cluster {cluster} ({provider})\";\n"
            ));
            for n in &names {
                let color = state(n).map(|s| {
                    let (fill, stroke) = s.colors();
                    format!(", fillcolor=\"{fill}\", color=\"{stroke}\", tooltip=\"{}\"", s.class())
                });
                out.push_str(&format!(
                    "    \"{n}\" [label=\"{}\"{}];\n",
                    describe(spec, n).join("\\n"),
                    color.unwrap_or_default()
                ));
            }
            out.push_str("  }\n");
            for (from, to) in &edges {
                out.push_str(&format!("  \"{from}\" -> \"{to}\";\n"));
            }
            out.push_str("}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        crate::parse(
            std::path::Path::new("t.yaml"),
            concat!(
                "clusters: { dev: { provider: local } }\n",
                "components:\n",
                "  cert-manager: {chart: {repo: https://charts.jetstack.io, name: cert-manager, version: 1.15.3}, ",
                "namespace: cert-manager}\n",
                "  app: {manifests: ./app, needs: [cert-manager]}\n",
                "environments: { dev: { cluster: dev } }\n",
            ),
        )
        .unwrap()
    }

    #[test]
    fn mermaid_has_a_box_per_component_and_an_arrow_per_need() {
        let text = draw(&spec(), "dev", Format::Mermaid, None);
        assert!(
            text.contains("cert_manager[\"cert-manager<br/>chart cert-manager 1.15.3<br/>namespace cert-manager\"]"),
            "{text}"
        );
        assert!(text.contains("  cert_manager --> app\n"), "{text}");
        assert!(!text.contains("classDef"), "no colors without health: {text}");
    }

    #[test]
    fn health_colors_each_box_and_unknown_ones_are_absent() {
        let health = BTreeMap::from([("app".to_string(), State::Failed)]);
        let text = draw(&spec(), "dev", Format::Mermaid, Some(&health));
        assert!(text.contains("  class app failed\n") && text.contains("  class cert_manager absent\n"), "{text}");
        let dot = draw(&spec(), "dev", Format::Dot, Some(&health));
        assert!(dot.contains("\"app\" [label=\"app\\nmanifests ./app\", fillcolor=\"#f8d7da\""), "{dot}");
        assert!(dot.contains("\"cert-manager\" -> \"app\";"), "{dot}");
    }
}
