//! What `status` shows of a blue/green environment: both colors with their
//! state and version, the traffic split as the traffic side reports it,
//! the upgrade's stage and the time left in its soak.

use rekube_spec::Loaded;
use serde::Serialize;

use crate::EngineError;
use crate::colors::Colors;
use crate::ops::status::{Observed, observe};
use crate::ops::upgrade::{on_color, traffic};
use crate::workspace::provider_cluster;

/// One color.
#[derive(Debug, Clone, Serialize)]
pub struct ColorStatus {
    /// The cluster.
    pub cluster: String,
    /// `live`, `new` (being upgraded to), or `idle`.
    pub role: &'static str,
    /// `running`, `absent`, or the provider's problem.
    pub state: String,
    /// Its Kubernetes version.
    pub version: Option<String>,
    /// Its share of traffic, as the traffic side reports it.
    pub weight: Option<u8>,
}

/// A blue/green environment.
#[derive(Debug, Clone, Serialize)]
pub struct BlueGreenStatus {
    /// Both colors.
    pub colors: Vec<ColorStatus>,
    /// Where traffic is split.
    pub traffic: String,
    /// Why the split could not be read.
    pub traffic_error: Option<String>,
    /// The upgrade's stage (`building`, `shifting`, `shifted`, `rolled back`, `finishing`), if one is recorded.
    pub stage: Option<String>,
    /// Percent on the new color, as last set.
    pub percent: Option<u32>,
    /// Seconds left in the current soak (while an upgrade runs).
    pub soak_left_seconds: Option<i64>,
    /// Whether a rekube process holds the environment now (an upgrade
    /// whose stage is `building` or `shifting` and that no process holds
    /// was interrupted: running `rekube upgrade ENV` resumes it).
    pub running: bool,
    /// Why the last upgrade was rolled back.
    pub rolled_back: Option<String>,
    /// When the last upgrade finished.
    pub last_finished: Option<String>,
}

/// `None` when `env` is not blue/green. `live` is the live color as
/// `status` already observed it, so it is not asked twice.
pub(crate) async fn status(
    loaded: &Loaded,
    env: &str,
    live: (&str, &Observed),
) -> Result<Option<BlueGreenStatus>, EngineError> {
    let Some(bg) = loaded.spec.environments.get(env).and_then(|e| e.blue_green.as_ref()).map(|b| &b.value) else {
        return Ok(None);
    };
    let colors = Colors::of(loaded, env, bg)?;
    let names: Vec<String> = bg.clusters.iter().map(|c| c.value.clone()).collect();
    let tr = traffic(loaded, env, bg);
    let (weights, traffic_error) = match tr.read(&names).await {
        Ok(w) => (w, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let up = colors.upgrade.as_ref();
    let mut out = Vec::new();
    for name in &names {
        let role = match up {
            _ if *name == colors.live => "live",
            Some(u) if u.to == *name => "new",
            _ => "idle",
        };
        let seen = match live {
            (n, seen) if n == name => seen.clone(),
            _ => {
                let colored = on_color(loaded, env, name, colors.versions.get(name).map(String::as_str));
                observe(&provider_cluster(&colored, env)?.0).await
            }
        };
        let (state, version) = (seen.state, seen.version);
        let weight = traffic_error.is_none().then(|| weights.iter().find(|t| t.color == *name).map_or(0, |t| t.weight));
        out.push(ColorStatus { cluster: name.clone(), role, state, version, weight });
    }
    let running = crate::journal::held(&crate::journal::state_root(loaded), env);
    let soak_left_seconds = up.filter(|_| running).and_then(|u| u.soak_until.as_deref()).and_then(|s| {
        let until = chrono::DateTime::parse_from_rfc3339(s).ok()?;
        Some((until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds().max(0))
    });
    Ok(Some(BlueGreenStatus {
        colors: out,
        traffic: tr.describe(),
        traffic_error,
        stage: up.map(|u| u.stage.as_str().to_string()),
        percent: up.map(|u| u.percent),
        soak_left_seconds,
        running,
        rolled_back: up.and_then(|u| u.reason.clone()),
        last_finished: colors.finished.as_ref().map(|f| format!("{} -> {} at {}", f.from, f.to, f.at)),
    }))
}
