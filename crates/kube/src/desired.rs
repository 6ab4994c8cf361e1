//! What an environment wants, as the caller hands it over: rendered
//! components and the identity they are applied under. A leaf: plain data.

use std::collections::{BTreeMap, BTreeSet};

use rekube_plan::applyset::Identity;
use rekube_render::Rendered;

/// An `ignore-differences` rule: which objects (by kind and name, both
/// optional) and which field paths of them are not drift.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRule {
    /// Only objects of this kind.
    pub kind: Option<String>,
    /// Only objects of this name.
    pub name: Option<String>,
    /// Rendered field paths (`spec.replicas`).
    pub paths: Vec<String>,
}

/// What the environment wants.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    /// The project.
    pub project: &'a str,
    /// Whether the spec names its project (`project:`); an implicit name
    /// (the directory's) is pinned to the spec file it was first applied from.
    pub explicit_project: bool,
    /// Where the spec is: `host:/path/rekube.yaml`, recorded on every parent.
    pub source: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// Its cluster.
    pub cluster: &'a str,
    /// Rendered components (in dependency order).
    pub rendered: &'a Rendered,
    /// Waves of component names.
    pub waves: Vec<Vec<String>>,
    /// Per component: the components it needs.
    pub needs: BTreeMap<String, Vec<String>>,
    /// Every component in the spec (a parent for anything else is a removed component).
    pub spec_components: BTreeSet<String>,
    /// Whether only some components are planned (then nothing is removed).
    pub partial: bool,
    /// Per component: (kind, name, paths) whose changes are not drift.
    pub ignore: BTreeMap<String, Vec<IgnoreRule>>,
    /// Components that may adopt existing objects.
    pub adopt: BTreeSet<String>,
}

impl Desired<'_> {
    /// The ApplySet of a rendered component (or of the namespace set).
    pub fn identity(&self, component: &str) -> Identity {
        if component == rekube_render::NAMESPACES {
            Identity::namespaces(self.project, self.environment)
        } else {
            Identity::component(self.project, self.environment, component)
        }
    }
}
