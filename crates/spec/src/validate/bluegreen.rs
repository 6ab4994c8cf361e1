//! Offline checks of `blue-green:` (an environment on two clusters that
//! take turns), and the defaults its keys fall back to.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{Checker, at, is_dns_label};
use crate::model::BlueGreen;

/// The traffic steps when `steps:` is not given: percent on the new color.
pub const DEFAULT_STEPS: [u32; 3] = [10, 50, 100];

/// How long each step holds when `soak:` is not given.
pub const DEFAULT_SOAK: Duration = Duration::from_secs(60);

/// The kinds `copy:` carries when it names none.
pub const DEFAULT_COPY_KINDS: [&str; 2] = ["Secret", "ConfigMap"];

/// A soak: `0s`, `60s`, `5m` (at most a day).
pub fn parse_soak(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration ({e})"))?;
    if d > Duration::from_secs(24 * 3600) {
        return Err(format!("`{text}` is longer than a day"));
    }
    Ok(d)
}

/// Whether `s` is a DNS name (labels joined by dots, an optional final dot).
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| is_dns_label(&l.to_ascii_lowercase()))
}

pub(crate) fn check(c: &mut Checker, env: &str, bg: &Spanned<BlueGreen>) {
    let b = &bg.value;
    if b.clusters.len() != 2 {
        c.err(
            at(bg),
            format!("environment `{env}` names {} blue/green cluster(s)", b.clusters.len()),
            "`blue-green.clusters` takes exactly two clusters: the live one and the one the next upgrade builds",
        );
    } else if b.clusters[0].value == b.clusters[1].value {
        c.err(
            at(&b.clusters[1]),
            format!("environment `{env}` names cluster `{}` twice", b.clusters[1].value),
            "blue and green must be two clusters, so that one can be built while the other serves",
        );
    }
    for color in &b.clusters {
        let spec = &c.loaded.spec;
        let other_env = spec.environments.iter().find(|(name, e)| {
            *name != env
                && (e.cluster.as_ref().is_some_and(|x| x.value == color.value)
                    || e.blue_green.as_ref().is_some_and(|g| g.value.clusters.iter().any(|x| x.value == color.value)))
        });
        if let Some((other, _)) = other_env {
            c.err(
                at(color),
                format!("cluster `{}` is a color of `{env}` and also runs environment `{other}`", color.value),
                "`--finish` retires the old color's cluster: give each color its own cluster",
            );
        }
        if spec.previews.as_ref().and_then(|p| p.value.cluster.as_ref()).is_some_and(|p| p.value == color.value) {
            c.err(
                at(color),
                format!("cluster `{}` is a color of `{env}` and also where previews run", color.value),
                "`--finish` retires the old color's cluster: put `previews.cluster` elsewhere",
            );
        }
    }
    if let Some(a) = &b.address {
        let ok = a.value.split_once('/').is_some_and(|(ns, name)| is_dns_label(ns) && is_dns_name(name));
        if !ok {
            c.err(
                at(a),
                format!("`{}` does not name a Service", a.value),
                "write `namespace/name` of a Service of type LoadBalancer, e.g. `ingress/ingress-nginx-controller`",
            );
        }
    }
    let t = &b.traffic.value;
    match (&t.route53, &t.exec) {
        (Some(r), None) => {
            let r = &r.value;
            if !is_dns_name(&r.record.value) {
                c.err(at(&r.record), format!("`{}` is not a DNS name", r.record.value), "e.g. `app.example.com`");
            }
            let zone = r.zone.value.trim_start_matches("/hostedzone/");
            if !is_dns_name(zone) {
                c.err(
                    at(&r.zone),
                    format!("`{}` is not a zone name or id", r.zone.value),
                    "e.g. `example.com.` or `Z0123456789ABCDEFGHIJ`",
                );
            }
            if b.address.is_none() {
                c.err(
                    at(&b.traffic),
                    "Route53 records need an address for each color",
                    "add `address: <namespace>/<service>`: the LoadBalancer Service the records point at",
                );
            }
        }
        (None, Some(exec)) => c.file_must_exist(exec, "traffic program", false),
        _ => c.err(
            at(&b.traffic),
            "`traffic` needs exactly one of `route53` and `exec`",
            "`route53: { zone: example.com., record: app.example.com }` or `exec: ./traffic.sh` (docs/upgrade.md)",
        ),
    }
    if let Some(steps) = &b.steps {
        let s = &steps.value;
        let rising = s.windows(2).all(|w| w[0] < w[1]);
        if s.is_empty() || s.len() > 20 || !rising || s[0] == 0 || s.last() != Some(&100) {
            c.err(
                at(steps),
                format!("steps {s:?} are not a rising list of percentages ending at 100"),
                "e.g. `[10, 50, 100]`: percent of traffic on the new color after each step, at most 20 steps",
            );
        }
    }
    if let Some(soak) = &b.soak
        && let Err(e) = parse_soak(&soak.value)
    {
        c.err(at(soak), e, "write a duration such as `0s`, `60s` or `5m`");
    }
    for check in &b.checks {
        match (&check.value.http, &check.value.command) {
            (Some(h), None) => {
                let u = &h.value.url;
                if !(u.value.starts_with("http://") || u.value.starts_with("https://")) {
                    c.err(at(u), format!("`{}` is not an http(s) URL", u.value), "e.g. `https://{address}/healthz`");
                }
                if let Some(e) = &h.value.expect
                    && !(100..=599).contains(&e.value)
                {
                    c.err(at(e), format!("{} is not an HTTP status", e.value), "e.g. `expect: 200`");
                }
            }
            (None, Some(cmd)) if cmd.value.is_empty() || cmd.value[0].is_empty() => c.err(
                at(cmd),
                "the check's command is empty",
                "an argument list such as [./smoke.sh, --fast], run from the spec's directory",
            ),
            (None, Some(_)) => {}
            _ => c.err(
                at(check),
                "a check needs exactly one of `http` and `command`",
                "`- http: { url: \"https://{address}/healthz\" }` or `- command: [./smoke.sh]`",
            ),
        }
    }
    if let Some(copy) = &b.copy {
        for ns in &copy.value.namespaces {
            if !is_dns_label(&ns.value) {
                c.err(at(ns), format!("`{}` is not a namespace name", ns.value), "lower-case letters, digits, '-'");
            }
        }
        if copy.value.namespaces.is_empty() {
            c.err(at(copy), "`copy` names no namespace", "e.g. `copy: { namespaces: [orders] }`");
        }
        for k in &copy.value.kinds {
            if !k.value.chars().next().is_some_and(|ch| ch.is_ascii_uppercase()) {
                c.err(at(k), format!("`{}` is not a kind", k.value), "kinds are written as in manifests: `Secret`");
            }
        }
        let backup = c.loaded.spec.backup.as_ref().map(|b| &b.value);
        let secrets = copy.value.kinds.is_empty() || copy.value.kinds.iter().any(|k| k.value == "Secret");
        match backup {
            None => c.err(
                at(copy),
                "`copy` goes through the backup store, and the spec has no `backup:`",
                "add `backup: { store: ..., encrypt-secrets: [age1...] }` (docs/backup.md)",
            ),
            Some(b) if secrets && b.encrypt_secrets.is_empty() => c.err(
                at(copy),
                "`copy` carries Secrets, and `backup.encrypt-secrets` names no recipient",
                "Secrets cross the store encrypted: add an age recipient (`rekube backup keygen`)",
            ),
            Some(_) => {}
        }
    }
}
