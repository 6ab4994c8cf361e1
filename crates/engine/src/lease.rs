//! One writer at a time per cluster and environment: a `coordination.k8s.io`
//! Lease in `rekube-system`, named after the project and environment,
//! holding the holder's host, PID, command and start, renewed while the
//! command runs. A second writer, on this machine or any other, is refused
//! with the holder's details; a crashed holder stops renewing, and its
//! lease expires. Local files cannot do this: two laptops and a CI runner
//! share only the cluster.
//!
//! Within one process the lease is re-entrant (`up` runs `apply`), and it
//! is released when the last guard ends.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease as LeaseType;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Api, Client};
use rekube_plan::applyset::PARENT_NAMESPACE;
use serde_json::{Value, json};

use rekube_kube::{KubeError, describe};

/// Why the lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another rekube command holds the environment's lease.
    #[error("environment `{environment}` is busy: {holder} holds Lease {lease}")]
    Busy {
        /// The environment.
        environment: String,
        /// `rekube-system/rekube.<project>.<env>`.
        lease: String,
        /// Who holds it.
        holder: Box<Holder>,
    },
    /// A request about the lease failed.
    #[error("{what}: {}", describe(error))]
    Api {
        /// What was being done.
        what: String,
        /// The cause.
        error: kube::Error,
    },
    /// `rekube-system` could not be made.
    #[error(transparent)]
    Kube(#[from] KubeError),
}

fn api_error(what: String) -> impl FnOnce(kube::Error) -> LeaseError {
    move |error| LeaseError::Api { what, error }
}

/// How long a lease lives without renewal.
pub const LEASE_SECONDS: i64 = 30;
const RENEW_EVERY: Duration = Duration::from_secs(10);
const COMMAND_ANNOTATION: &str = "rekube.dev/command";
const STARTED_ANNOTATION: &str = "rekube.dev/started";

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `host/pid`.
    pub identity: String,
    /// The command (`apply prod`).
    pub command: String,
    /// When it started.
    pub started: String,
    /// When the lease expires unless renewed.
    pub expires: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`rekube {}` on {} (started {}, lease expires {} unless renewed)",
            self.command, self.identity, self.started, self.expires
        )
    }
}

struct Held {
    count: usize,
    renew: tokio::task::JoinHandle<()>,
}

fn held() -> &'static Mutex<HashMap<String, Held>> {
    static HELD: OnceLock<Mutex<HashMap<String, Held>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A held lease. Call [`LeaseGuard::release`] when done; dropping it only
/// stops renewal (the lease then expires).
#[must_use = "release the lease when the command ends"]
pub struct LeaseGuard {
    client: Client,
    name: String,
    key: String,
    released: bool,
}

fn lease_api(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), PARENT_NAMESPACE, &ApiResource::erase::<LeaseType>(&()))
}

fn micro(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// This machine's host name (`localhost` when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `host/pid` of this process.
pub fn this_holder() -> String {
    format!("{}/{}", hostname(), std::process::id())
}

/// The lease's name for `project`'s `environment`.
pub fn lease_name(project: &str, environment: &str) -> String {
    format!("rekube.{project}.{environment}")
}

fn holder_of(o: &DynamicObject) -> Holder {
    let spec = &o.data["spec"];
    let ann = o.metadata.annotations.clone().unwrap_or_default();
    let renew =
        spec["renewTime"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
    let secs = spec["leaseDurationSeconds"].as_i64().unwrap_or(LEASE_SECONDS);
    Holder {
        identity: spec["holderIdentity"].as_str().unwrap_or("?").to_string(),
        command: ann.get(COMMAND_ANNOTATION).cloned().unwrap_or_else(|| "?".into()),
        started: ann.get(STARTED_ANNOTATION).cloned().unwrap_or_else(|| "?".into()),
        expires: renew.map_or_else(|| "?".into(), |r| micro(r + chrono::Duration::seconds(secs))),
    }
}

/// Whether `identity` (`host/pid`) is a process of this machine that no
/// longer runs: a rekube killed with -9 leaves its Lease behind, and on the
/// same machine there is no need to wait for it to expire.
fn dead_here(identity: &str) -> bool {
    let Some((host, pid)) = identity.rsplit_once('/') else { return false };
    let Ok(pid) = pid.parse::<i32>() else { return false };
    host == hostname() && pid > 0 && !crate::journal::alive(pid)
}

fn expired(o: &DynamicObject) -> bool {
    let spec = &o.data["spec"];
    let secs = spec["leaseDurationSeconds"].as_i64().unwrap_or(LEASE_SECONDS);
    match spec["renewTime"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(r) => r.with_timezone(&Utc) + chrono::Duration::seconds(secs) < Utc::now(),
        None => true,
    }
}

fn body(name: &str, command: &str, resource_version: Option<&str>) -> Value {
    let now = micro(Utc::now());
    let mut v = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": PARENT_NAMESPACE,
            "annotations": {COMMAND_ANNOTATION: command, STARTED_ANNOTATION: now}
        },
        "spec": {
            "holderIdentity": this_holder(),
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": now,
            "renewTime": now
        },
    });
    if let Some(rv) = resource_version {
        v["metadata"]["resourceVersion"] = json!(rv);
    }
    v
}

/// Takes the lease of `project`'s `environment` for `command`, or says who
/// holds it. With `break_lock`, a lease held by someone else is deleted
/// first (its holder is returned, to be reported).
pub async fn acquire(
    client: &Client,
    project: &str,
    environment: &str,
    command: &str,
    break_lock: bool,
) -> Result<(LeaseGuard, Option<Holder>), LeaseError> {
    let name = lease_name(project, environment);
    let key = format!("{}|{name}", client.default_namespace());
    {
        let mut map = held().lock().expect("not poisoned");
        if let Some(h) = map.get_mut(&key) {
            h.count += 1;
            return Ok((LeaseGuard { client: client.clone(), name, key, released: false }, None));
        }
    }
    rekube_kube::request::ensure_parent_namespace(client, false).await?;
    let api = lease_api(client);
    let mut broken = None;
    for _ in 0..5 {
        let current = api.get_opt(&name).await.map_err(api_error(format!("read Lease {PARENT_NAMESPACE}/{name}")))?;
        // A holder of this machine whose process is gone: taken over at once.
        let stale = current.as_ref().map(holder_of).filter(|h| dead_here(&h.identity));
        let result = match current {
            None => {
                let o: DynamicObject = serde_json::from_value(body(&name, command, None)).expect("a valid Lease");
                api.create(&PostParams::default(), &o).await.map(|_| ())
            }
            Some(o) if expired(&o) || holder_of(&o).identity == this_holder() || stale.is_some() => {
                if !expired(&o) {
                    broken = stale;
                }
                let o: DynamicObject =
                    serde_json::from_value(body(&name, command, o.metadata.resource_version.as_deref()))
                        .expect("a valid Lease");
                api.replace(&name, &PostParams::default(), &o).await.map(|_| ())
            }
            Some(o) if break_lock => {
                broken = Some(holder_of(&o));
                let dp = DeleteParams {
                    preconditions: o
                        .metadata
                        .uid
                        .clone()
                        .map(|uid| kube::api::Preconditions { uid: Some(uid), resource_version: None }),
                    ..Default::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => continue,
                    Err(kube::Error::Api(s)) if s.code == 404 => continue,
                    Err(e) => Err(e),
                }
            }
            Some(o) => {
                return Err(LeaseError::Busy {
                    environment: environment.to_string(),
                    lease: format!("{PARENT_NAMESPACE}/{name}"),
                    holder: Box::new(holder_of(&o)),
                });
            }
        };
        match result {
            Ok(()) => {
                let renew = tokio::spawn(renew_loop(client.clone(), name.clone()));
                held().lock().expect("not poisoned").insert(key.clone(), Held { count: 1, renew });
                return Ok((LeaseGuard { client: client.clone(), name, key, released: false }, broken));
            }
            // Someone else created or renewed it between our read and write: look again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(LeaseError::Api { what: format!("take Lease {PARENT_NAMESPACE}/{name}"), error: e }),
        }
    }
    Err(LeaseError::Api {
        what: format!("take Lease {PARENT_NAMESPACE}/{name}"),
        error: kube::Error::Service("the lease kept changing hands".into()),
    })
}

async fn renew_loop(client: Client, name: String) {
    let api = lease_api(&client);
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let patch = json!({"spec": {"renewTime": micro(Utc::now())}});
        if let Err(e) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::warn!("cannot renew Lease {PARENT_NAMESPACE}/{name}: {e}");
        }
    }
}

impl LeaseGuard {
    /// Ends this hold; the last one in the process deletes the lease.
    pub async fn release(mut self) {
        self.released = true;
        if self.stop() {
            let _ = lease_api(&self.client).delete(&self.name, &DeleteParams::default()).await;
        }
    }

    /// Drops one hold; true when it was the last (renewal stopped).
    fn stop(&self) -> bool {
        let mut map = held().lock().expect("not poisoned");
        let Some(h) = map.get_mut(&self.key) else { return false };
        h.count -= 1;
        if h.count > 0 {
            return false;
        }
        if let Some(h) = map.remove(&self.key) {
            h.renew.abort();
        }
        true
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.released {
            // Not released (an error path): stop renewing, so it expires.
            self.stop();
        }
    }
}
