//! Running Helm hooks: the object before it is deleted (and waited for)
//! when there is one, the hook created, Jobs waited for until Complete and
//! Pods until Succeeded, then deleted as its policy says. Hooks are not
//! ApplySet members; they carry `rekube.dev/hook-of` so destroy finds them.

use std::time::Duration;

use futures::StreamExt;

use kube::ResourceExt;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::runtime::watcher;
use rekube_plan::HookRun;
use rekube_plan::applyset::{self, FIELD_MANAGER, HOOK_OF_LABEL};
use serde_json::Value;

use crate::KubeError;
use crate::delete::await_gone;
use crate::live::{Health, ObjectKey, Resolver, check};
use crate::report::Event;
use crate::request::{api_for, retry};

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// It ran to the end.
    Succeeded,
    /// It failed: why (with a Pod's own message or log tail when there is one).
    Failed(String),
}

/// Runs one hook of `component`; `Err` only when the cluster could not be asked.
pub async fn run_hook(
    res: &Resolver,
    component: &str,
    hook: &HookRun,
    timeout: Duration,
    on: &(dyn Fn(Event) + Sync),
) -> Result<HookOutcome, KubeError> {
    let what = format!("hook {} ({})", hook.display_name(), hook.event);
    let r = res
        .resolve(&hook.api_version, &hook.kind)
        .await
        .map_err(KubeError::api(format!("discover {}", hook.api_version)))?
        .ok_or_else(|| KubeError::UnknownKind {
            api_version: hook.api_version.clone(),
            kind: hook.kind.clone(),
            file: what.clone(),
            line: 0,
        })?;
    let api = api_for(res.client(), &r, hook.namespace.as_deref());
    // Replaced, never patched: the one before goes first (Helm's before-hook-creation).
    remove(&api, hook, timeout).await?;
    on(Event::WaitingHealth { component: component.to_string(), pending: format!("{what}: running") });
    let body: DynamicObject = serde_json::from_value(hook.object.clone())
        .map_err(|e| KubeError::Api { what: format!("create {what}"), error: kube::Error::SerdeError(e) })?;
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    // Watched from before it exists: a Pod may succeed and be gone within
    // milliseconds (a DaemonSet whose selector matches a test Pod adopts it
    // and deletes it once Succeeded), which a poll would miss.
    let changes = watcher::watch_object(api.clone(), &hook.name);
    futures::pin_mut!(changes);
    let _ = tokio::time::timeout(timeout, changes.next()).await; // the initial read: not there yet
    retry(|| api.create(&pp, &body)).await.map_err(KubeError::api(format!("create {what}")))?;

    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let outcome = loop {
        let change = tokio::select! {
            _ = &mut deadline => {
                break HookOutcome::Failed(format!("{what}: not finished after {}s", timeout.as_secs()));
            }
            change = changes.next() => change,
        };
        let live = match change {
            Some(Ok(live)) => live,
            // A watch that breaks (or is not allowed): read it instead, a moment later.
            Some(Err(_)) | None => {
                tokio::time::sleep(Duration::from_millis(250)).await;
                retry(|| api.get_opt(&hook.name)).await.map_err(KubeError::api(format!("read {what}")))?
            }
        };
        match live {
            None => break HookOutcome::Failed(format!("{what}: deleted while it ran")),
            Some(live) => {
                let v = serde_json::to_value(&live).unwrap_or_default();
                if let Some(o) = finished(res, &hook.kind, &v).await {
                    break o;
                }
            }
        }
    };
    let outcome = match outcome {
        HookOutcome::Failed(why) => HookOutcome::Failed(format!("{why}{}", pod_log_tail(res, hook).await)),
        ok => ok,
    };
    // A success is cleaned up by `clean_succeeded`, once the event's other hooks are done.
    if matches!(outcome, HookOutcome::Failed(_)) && hook.delete_on_failure {
        remove(&api, hook, timeout).await?;
    }
    Ok(outcome)
}

/// Runs `hooks` in order; the first that fails fails the component. Once all
/// succeeded, those whose policy says so are deleted.
pub async fn run_hooks<'a>(
    res: &Resolver,
    component: &str,
    hooks: impl Iterator<Item = &'a HookRun>,
    timeout: Duration,
    on: &(dyn Fn(Event) + Sync),
) -> Result<(), KubeError> {
    let mut succeeded = Vec::new();
    for h in hooks {
        if let HookOutcome::Failed(reason) = run_hook(res, component, h, timeout, on).await? {
            return Err(KubeError::HookFailed { hook: format!("{} ({})", h.display_name(), h.event), reason });
        }
        succeeded.push(h);
    }
    clean_succeeded(res, &succeeded, timeout).await
}

/// Deletes whatever `hooks` left on the cluster (their policies kept them
/// until they run again, which they will not: their component is gone).
pub async fn remove_all(res: &Resolver, hooks: &[HookRun], timeout: Duration) -> Result<(), KubeError> {
    remove_last_first(res, hooks.iter(), timeout).await
}

/// Deletes the hooks that succeeded and whose policy says `hook-succeeded`,
/// the last first. As Helm does, this waits until every hook of the event
/// has succeeded: cert-manager's startup Job runs as a ServiceAccount that is
/// a hook of the same event, deleted on success too.
pub async fn clean_succeeded(res: &Resolver, succeeded: &[&HookRun], timeout: Duration) -> Result<(), KubeError> {
    remove_last_first(res, succeeded.iter().copied().filter(|h| h.delete_on_success), timeout).await
}

async fn remove_last_first<'a>(
    res: &Resolver,
    hooks: impl DoubleEndedIterator<Item = &'a HookRun>,
    timeout: Duration,
) -> Result<(), KubeError> {
    for hook in hooks.rev() {
        let r = res
            .resolve(&hook.api_version, &hook.kind)
            .await
            .map_err(KubeError::api(format!("discover {}", hook.api_version)))?;
        if let Some(r) = r {
            remove(&api_for(res.client(), &r, hook.namespace.as_deref()), hook, timeout).await?;
        }
    }
    Ok(())
}

/// Whether a hook object has finished: Jobs and Pods run to an end;
/// anything else is done once created.
async fn finished(res: &Resolver, kind: &str, live: &Value) -> Option<HookOutcome> {
    match kind {
        "Pod" => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Succeeded") => Some(HookOutcome::Succeeded),
            Some("Failed") => {
                let why = live.pointer("/status/message").and_then(Value::as_str).unwrap_or("failed");
                Some(HookOutcome::Failed(format!("Pod {}: {why}", ObjectKey::of(live).name)))
            }
            _ => None,
        },
        "Job" => match check(res.client(), "batch", "Job", live).await {
            Health::Ready => Some(HookOutcome::Succeeded),
            Health::Failed(why) => Some(HookOutcome::Failed(why)),
            Health::Pending(_) => None,
        },
        _ => Some(HookOutcome::Succeeded),
    }
}

/// The last lines of a failed Pod hook's log, when the cluster has them.
async fn pod_log_tail(res: &Resolver, hook: &HookRun) -> String {
    if hook.kind != "Pod" {
        return String::new();
    }
    let Some(ns) = hook.namespace.as_deref() else { return String::new() };
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(res.client().clone(), ns);
    let lp = kube::api::LogParams { tail_lines: Some(20), ..Default::default() };
    match pods.logs(&hook.name, &lp).await {
        Ok(log) if !log.trim().is_empty() => format!("\n  log:\n    {}", log.trim_end().replace('\n', "\n    ")),
        _ => String::new(),
    }
}

/// Deletes the hook object, if there is one, and waits until it is gone.
async fn remove(api: &kube::Api<DynamicObject>, hook: &HookRun, timeout: Duration) -> Result<(), KubeError> {
    let what = format!("hook {}", hook.display_name());
    let live = match retry(|| api.get_opt(&hook.name)).await {
        Ok(live) => live,
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(error) => return Err(KubeError::Api { what, error }),
    };
    let Some(live) = live else { return Ok(()) };
    // Only this component's own hook is replaced: never what someone else made under its name.
    if live.labels().get(HOOK_OF_LABEL).map(String::as_str) != applyset::hook_of(&hook.object) {
        return Err(KubeError::ForeignHook { hook: hook.display_name() });
    }
    let Some(uid) = live.metadata.uid else { return Ok(()) };
    let dp = DeleteParams::background();
    match retry(|| api.delete(&hook.name, &dp)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(KubeError::Api { what: format!("delete {what}"), error: e }),
    }
    if await_gone(api, &hook.name, &uid, timeout, &what).await? {
        Ok(())
    } else {
        Err(KubeError::NotDeleted { object: hook.display_name(), seconds: timeout.as_secs() })
    }
}
