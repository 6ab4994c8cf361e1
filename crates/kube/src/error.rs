//! Every failure of the kube crate, with the object and the cause. A
//! message shows its cause once: variants that wrap a `kube::Error` print
//! it through [`describe`], as one line.

/// Errors talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// An API call failed. Printed as one line: what was being done, the
    /// server's message, reason and code (kube's own `Display` appends a
    /// `Debug` dump of the whole Status).
    #[error("{what}: {}", describe(error))]
    Api {
        /// What was being done.
        what: String,
        /// The cause.
        error: kube::Error,
    },
    /// The project's name comes from its directory, and this environment's
    /// ApplySets were applied from another spec file: two unrelated specs
    /// would share them.
    #[error(
        "project `{}`, environment `{}` on this cluster belongs to the spec at {} \
         (ApplySet parent rekube-system/{}), not to this one ({}); nothing was written",
        .0.project, .0.environment, .0.theirs, .0.parent, .0.ours
    )]
    ProjectClash(Box<Clash>),
    /// Apply refused before writing anything: objects owned by someone
    /// else, or existing objects that may not be adopted.
    #[error("{}", refused_text(conflicts, adoptions))]
    Refused {
        /// `Kind ns/name: owner` of each object that belongs to someone else.
        conflicts: Vec<String>,
        /// `Kind ns/name (component c)` of each existing object not adopted.
        adoptions: Vec<String>,
    },
    /// Ctrl-C or SIGTERM: no new work was started after it.
    #[error("interrupted (Ctrl-C or SIGTERM): what was in flight finished, nothing new was started")]
    Interrupted,
    /// An object that was deleted is still there after the timeout.
    #[error("{object} still exists after {seconds}s (finalizers?)")]
    NotDeleted {
        /// `Kind namespace/name`.
        object: String,
        /// How long rekube waited.
        seconds: u64,
    },
    /// Watching an object (for its deletion, or a condition) failed.
    #[error("{what}: {error}")]
    Watch {
        /// `Kind namespace/name`.
        what: String,
        /// The cause.
        error: kube::runtime::wait::Error,
    },
    /// A load balancer's Service or Ingress is still there after the timeout.
    #[error("{object} is still there after {seconds}s (a cloud load balancer that will not go?)")]
    LoadBalancerStuck {
        /// `Kind namespace/name`.
        object: String,
        /// How long rekube waited.
        seconds: u64,
    },
    /// An object of a component reports a failure (its health rule says why,
    /// naming the object: `Pod web-1: CrashLoopBackOff`).
    #[error("{reason}")]
    Unhealthy {
        /// What the health rule found.
        reason: String,
    },
    /// Apply refused before writing anything: objects would have to be
    /// deleted and created again, and nobody allowed it.
    #[error("{}", replace_text(objects))]
    ReplaceRefused {
        /// `Kind ns/name: immutable spec.selector` of each.
        objects: Vec<String>,
    },
    /// A hook's name is taken by an object that is not this component's hook.
    #[error(
        "{hook} exists and is not a hook of this component (no matching rekube.dev/hook-of label); it was left alone"
    )]
    ForeignHook {
        /// `Job ns/name`.
        hook: String,
    },
    /// A Helm hook of a component failed (its delete policy was honoured).
    #[error("hook {hook} failed: {reason}")]
    HookFailed {
        /// `Job ns/name (pre-install)`.
        hook: String,
        /// Why.
        reason: String,
    },
    /// A component's objects were not all healthy before the timeout.
    #[error("not healthy after {seconds}s: {pending}")]
    NotHealthy {
        /// How long rekube waited.
        seconds: u64,
        /// What it was still waiting for.
        pending: String,
    },
    /// A Namespace the plan would create exists now: someone else made it.
    #[error(
        "{object} was created by someone else since the plan; it is not rekube's, so it was left alone \
         (run the command again to plan with it)"
    )]
    AppearedSincePlan {
        /// `Namespace x`.
        object: String,
    },
    /// The cluster does not serve a kind the platform uses.
    #[error("{file}:{line}: the cluster does not serve {kind} ({api_version})")]
    UnknownKind {
        /// `apiVersion`.
        api_version: String,
        /// Kind.
        kind: String,
        /// The manifest that uses it.
        file: String,
        /// Its line.
        line: u64,
    },
}

/// Two specs that share a project name taken from their directories.
#[derive(Debug)]
pub struct Clash {
    /// The project name (from the directory).
    pub project: String,
    /// The environment.
    pub environment: String,
    /// A parent that names the other spec.
    pub parent: String,
    /// Where the other spec is.
    pub theirs: String,
    /// Where this spec is.
    pub ours: String,
}

/// One readable line for a kube error: `message (Reason, HTTP code)` for
/// the server's answers, the transport's own words otherwise.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() { String::new() } else { format!("{}, ", s.reason) };
            format!("{} ({reason}HTTP {})", s.message.trim_end_matches('.'), s.code)
        }
        kube::Error::HyperError(h) => format!("the connection failed: {h}"),
        kube::Error::Service(s) => format!("the request failed: {s}"),
        other => other.to_string(),
    }
}

fn replace_text(objects: &[String]) -> String {
    let mut out =
        format!("nothing was written: {} object(s) differ in fields that cannot change in place:", objects.len());
    for o in objects {
        out.push_str(&format!("\n  {o}"));
    }
    out
}

fn refused_text(conflicts: &[String], adoptions: &[String]) -> String {
    let mut out = String::from("nothing was written");
    if !conflicts.is_empty() {
        out.push_str(&format!(": {} object(s) belong to someone else:", conflicts.len()));
        for c in conflicts {
            out.push_str(&format!("\n  {c}"));
        }
    }
    if !adoptions.is_empty() {
        out.push_str(&format!(
            "{}{} object(s) already exist and are not rekube's:",
            if conflicts.is_empty() { ": " } else { "\nand " },
            adoptions.len()
        ));
        for a in adoptions {
            out.push_str(&format!("\n  {a}"));
        }
    }
    out
}

impl KubeError {
    /// A closure for `map_err` that says what was being done.
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
        let what = what.into();
        move |error| KubeError::Api { what, error }
    }
}
