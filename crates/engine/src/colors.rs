//! Which cluster of a blue/green environment is live, and where its
//! upgrade stands: `.rekube/upgrade/<env>.json`, written atomically at
//! every change of stage, so that every command (plan, apply, drift,
//! backup, down) acts on the live color, and a killed upgrade resumes
//! from what was recorded rather than from a guess.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rekube_spec::{BlueGreen, Loaded};
use serde::{Deserialize, Serialize};

use crate::EngineError;
use crate::error::io;
use crate::journal::state_root;

/// Where an upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The new color is being built and verified; no traffic on it.
    Building,
    /// Traffic is moving to the new color, step by step.
    Shifting,
    /// All traffic is on the new color; the old one waits for `--finish`.
    Shifted,
    /// All traffic is going back to the old color; the reason is recorded.
    RollingBack,
    /// All traffic went back to the old color (a check failed, or `--rollback`).
    RolledBack,
    /// `--finish`: the new color is live; the old one is being retired.
    Finishing,
}

impl Stage {
    /// As `status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Building => "building",
            Stage::Shifting => "shifting",
            Stage::Shifted => "shifted",
            Stage::RollingBack => "rolling back",
            Stage::RolledBack => "rolled back",
            Stage::Finishing => "finishing",
        }
    }
}

/// An upgrade under way (or rolled back, until the next one starts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upgrade {
    /// The color that served when it started.
    pub from: String,
    /// The color it builds.
    pub to: String,
    /// `--kubernetes`, if given.
    pub kubernetes: Option<String>,
    /// When it started.
    pub started: String,
    /// Its stage.
    pub stage: Stage,
    /// Percent of traffic on `to`, as last set and in sync.
    pub percent: u32,
    /// When the current soak ends.
    pub soak_until: Option<String>,
    /// Why it was rolled back.
    pub reason: Option<String>,
    /// When this record last changed.
    pub updated: String,
}

/// The last finished upgrade.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished {
    /// The retired color.
    pub from: String,
    /// The color that became live.
    pub to: String,
    /// When.
    pub at: String,
}

/// The record of one blue/green environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Colors {
    /// The environment.
    pub environment: String,
    /// The live color (cluster name).
    pub live: String,
    /// Kubernetes versions asked for with `upgrade --kubernetes`, by cluster.
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// The upgrade under way, if any.
    #[serde(default)]
    pub upgrade: Option<Upgrade>,
    /// The last finished upgrade.
    #[serde(default)]
    pub finished: Option<Finished>,
}

/// Now, as records write it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn path(loaded: &Loaded, env: &str) -> PathBuf {
    state_root(loaded).join("upgrade").join(format!("{env}.json"))
}

impl Colors {
    /// The record of `env`, or the initial one: its first cluster is live.
    /// `None` when `env` is not blue/green.
    pub fn read(loaded: &Loaded, env: &str) -> Result<Option<Self>, EngineError> {
        match loaded.spec.environments.get(env).and_then(|e| e.blue_green.as_ref()) {
            Some(bg) => Self::of(loaded, env, &bg.value).map(Some),
            None => Ok(None),
        }
    }

    /// The record of `env`, whose `blue-green:` is `bg`, or the initial one.
    pub fn of(loaded: &Loaded, env: &str, bg: &BlueGreen) -> Result<Self, EngineError> {
        let p = path(loaded, env);
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                let c: Colors = serde_json::from_str(&text).map_err(|e| {
                    EngineError::Invalid(format!(
                        "{}: not a blue/green record ({e})\n  hint: it is rekube's; restore it from a copy, \
                         or delete it to start again from `blue-green.clusters[0]` as live",
                        p.display()
                    ))
                })?;
                let declared = |name: &str| bg.clusters.iter().any(|x| x.value == name);
                let upgrade = c.upgrade.as_ref().map(|u| [u.from.as_str(), u.to.as_str()]).unwrap_or_default();
                if let Some(gone) = upgrade.iter().find(|n| !n.is_empty() && !declared(n)) {
                    return Err(EngineError::Invalid(format!(
                        "{}: the upgrade under way uses cluster `{gone}`, which is no longer in \
                         `blue-green.clusters` of `{env}`\n  hint: put it back in the spec until the upgrade is \
                         finished or rolled back",
                        p.display()
                    )));
                }
                if !declared(&c.live) {
                    return Err(EngineError::Invalid(format!(
                        "{}: the live cluster `{}` is no longer in `blue-green.clusters` of `{env}`\n  hint: \
                         put it back in the spec, or retire it by hand and delete this record",
                        p.display(),
                        c.live
                    )));
                }
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Colors {
                environment: env.to_string(),
                live: bg.clusters.first().map(|c| c.value.clone()).unwrap_or_default(),
                versions: BTreeMap::new(),
                upgrade: None,
                finished: None,
            }),
            Err(e) => Err(io("read", &p)(e)),
        }
    }

    /// Writes the record (atomically, 0600).
    pub fn save(&self, loaded: &Loaded) -> Result<(), EngineError> {
        let p = path(loaded, &self.environment);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        rekube_cluster::files::write_private(&p, &text).map_err(io("write", &p))
    }

    /// The other color of `env`.
    pub fn idle(&self, loaded: &Loaded) -> String {
        let bg = loaded.spec.environments.get(&self.environment).and_then(|e| e.blue_green.as_ref());
        bg.and_then(|b| b.value.clusters.iter().find(|c| c.value != self.live))
            .map(|c| c.value.clone())
            .unwrap_or_default()
    }
}
