//! Offline checks that the YAML decoder cannot make: references between
//! clusters, components and environments, dependency cycles, files that must
//! exist, and fields that only make sense for some providers.
//!
//! All problems are collected (not just the first), in file order where
//! positions are known, so one run shows everything to fix.

pub(crate) mod bluegreen;

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::load::Loaded;
use crate::model::{Component, Provider};

pub(crate) fn at<T>(s: &Spanned<T>) -> Option<Pos> {
    Pos::from_location(s.referenced)
}

/// The position of a mapping key `name:` under `parent:` (keys carry no span
/// in the decoded map, so find it in the text).
fn key_pos(source: &str, parent: &str, name: &str) -> Option<Pos> {
    let mut in_parent = false;
    for (i, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_parent = trimmed.starts_with(&format!("{parent}:"));
            continue;
        }
        let unquoted = trimmed.trim_start_matches(['"', '\'']);
        if in_parent
            && unquoted.starts_with(name)
            && unquoted[name.len()..].trim_start_matches(['"', '\'']).starts_with(':')
        {
            return Some(Pos { line: i as u64 + 1, column: indent as u64 + 1 });
        }
    }
    None
}

/// Whether `s` is a DNS-1123 label, as names and namespaces must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) struct Checker<'a> {
    pub(crate) loaded: &'a Loaded,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(crate) fn err(&mut self, pos: Option<Pos>, msg: impl Into<String>, hint: impl Into<String>) {
        let d = self.loaded.diag(pos, msg).hint(hint);
        self.out.push(d);
    }

    pub(crate) fn file_must_exist(&mut self, s: &Spanned<String>, what: &str, dir: bool) {
        let path = self.loaded.resolve(&s.value);
        let ok = if dir { path.is_dir() } else { path.exists() };
        if !ok {
            let kind = if dir { "directory" } else { "file" };
            self.err(
                at(s),
                format!("{what} `{}` does not exist", s.value),
                format!(
                    "paths are relative to the spec's directory ({}); expected a {kind} at {}",
                    self.loaded.dir.display(),
                    path.display()
                ),
            );
        }
    }
}

/// Checks a decoded spec. `Ok` carries warnings; `Err` carries every problem.
pub fn validate(loaded: &Loaded) -> Result<Vec<Diagnostic>, Diagnostics> {
    let mut c = Checker { loaded, out: Vec::new() };
    let spec = &loaded.spec;
    let source = &loaded.source;

    for (name, cluster) in &spec.clusters {
        let provider = cluster.provider.value;
        let forbid = |c: &mut Checker, field: &str, value: Option<Pos>, allowed: &str| {
            c.err(
                value,
                format!("`{field}` does not apply to provider `{}`", provider.as_str()),
                format!("`{field}` is only read by provider {allowed}; remove it or change `provider`"),
            );
        };
        if provider != Provider::Existing {
            if let Some(v) = &cluster.context {
                forbid(&mut c, "context", at(v), "existing");
            }
            if let Some(v) = &cluster.kubeconfig {
                forbid(&mut c, "kubeconfig", at(v), "existing");
            }
        }
        if provider != Provider::Exec
            && let Some(v) = &cluster.exec
        {
            forbid(&mut c, "exec", at(v), "exec");
        }
        if provider != Provider::Local
            && let Some(v) = &cluster.nodes
        {
            forbid(&mut c, "nodes", at(v), "local");
        }
        match provider {
            Provider::Existing if cluster.context.is_none() => c.err(
                at(&cluster.provider),
                format!("cluster `{name}` uses provider `existing` but names no `context`"),
                "add `context: <kubeconfig context>`; `kubectl config get-contexts` lists them",
            ),
            Provider::Exec => match &cluster.exec {
                None => c.err(
                    at(&cluster.provider),
                    format!("cluster `{name}` uses provider `exec` but names no `exec` program"),
                    "add `exec: ./providers/<name>.sh`; docs/providers.md describes its JSON protocol",
                ),
                Some(exec) => c.file_must_exist(exec, "provider program", false),
            },
            _ => {}
        }
        let mut seen = BTreeSet::new();
        for p in &cluster.prerequisites {
            let pre = &p.value;
            if !seen.insert(pre.name.as_str()) {
                c.err(
                    at(p),
                    format!("cluster `{name}` has two prerequisites named `{}`", pre.name),
                    "give each prerequisite its own name; the journal records steps by name",
                );
            }
            if pre.check.is_empty() || pre.create.is_empty() {
                c.err(
                    at(p),
                    format!("prerequisite `{}` needs both `check` and `create`", pre.name),
                    "`check` exits 0 when it exists, `create` makes it; \
                     both are argument lists such as [aws, s3api, head-bucket, --bucket, state]",
                );
            }
        }
        if let Some(v) = &cluster.kubernetes
            && !v.value.trim_start_matches('v').split('.').take(2).all(|p| p.parse::<u32>().is_ok())
        {
            c.err(
                at(v),
                format!("`{}` is not a Kubernetes version", v.value),
                "write it as MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. \"1.30\"",
            );
        }
    }

    let names: Vec<&str> = spec.components.keys().map(String::as_str).collect();
    for (name, comp) in &spec.components {
        if !is_dns_label(name) {
            c.err(
                key_pos(source, "components", name),
                format!("component name `{name}` is not a valid name"),
                "use lower-case letters, digits and '-', at most 63 characters \
                 (it becomes a Helm release and label value)",
            );
        }
        check_component(&mut c, name, comp, &names);
    }
    check_cycles(&mut c, &spec.components);

    if let Some(p) = &spec.project
        && !is_dns_label(&p.value)
    {
        c.err(
            at(p),
            format!("project name `{}` is not a valid name", p.value),
            "use lower-case letters, digits and '-', at most 63 characters (it labels every object rekube manages)",
        );
    }
    let clusters: Vec<&str> = spec.clusters.keys().map(String::as_str).collect();
    for (env_name, env) in &spec.environments {
        if env_name == "preview" {
            c.err(
                key_pos(source, "environments", env_name),
                "environment name `preview` is reserved",
                "previews are environments `preview.<name>` on the cluster; give this one another name",
            );
        }
        if !is_dns_label(env_name) {
            c.err(
                key_pos(source, "environments", env_name),
                format!("environment name `{env_name}` is not a valid name"),
                "use lower-case letters, digits and '-', at most 63 characters (it labels every object rekube manages)",
            );
        }
        match (&env.cluster, &env.blue_green) {
            (Some(cluster), None) => check_cluster_ref(&mut c, env_name, cluster, &clusters),
            (None, Some(bg)) => {
                for cluster in &bg.value.clusters {
                    check_cluster_ref(&mut c, env_name, cluster, &clusters);
                }
                bluegreen::check(&mut c, env_name, bg);
            }
            (Some(cluster), Some(_)) => c.err(
                at(cluster),
                format!("environment `{env_name}` has both `cluster` and `blue-green`"),
                "a blue/green environment runs on its two `blue-green.clusters`, one at a time; remove `cluster`",
            ),
            (None, None) => c.err(
                key_pos(source, "environments", env_name),
                format!("environment `{env_name}` names no cluster"),
                match clusters.is_empty() {
                    true => "add `cluster: <name>`, and declare that cluster under `clusters:`".to_string(),
                    false => format!(
                        "add `cluster: <name>` (declared: {}), or `blue-green: {{ clusters: [<a>, <b>], ... }}`",
                        clusters.join(", ")
                    ),
                },
            ),
        }
        for (comp, overrides) in &env.components {
            if !spec.components.contains_key(comp) {
                c.err(
                    key_pos_nested(source, env_name, comp),
                    format!("environment `{env_name}` configures component `{comp}`, which is not declared"),
                    unknown_component_hint(comp, &names),
                );
            }
            for v in &overrides.values {
                check_values_entry(&mut c, v);
            }
        }
        for (key, value) in &env.values {
            let (comp, path) = key.split_once('.').unwrap_or((key.as_str(), ""));
            if !spec.components.contains_key(comp) {
                c.err(
                    at(value),
                    format!("override `{key}` names component `{comp}`, which is not declared"),
                    format!("keys are `<component>.<path>`; {}", unknown_component_hint(comp, &names)),
                );
            } else if spec.components[comp].chart.is_none() {
                c.err(
                    at(value),
                    format!("override `{key}` targets component `{comp}`, which is not a chart"),
                    "values only apply to charts; change the manifests instead",
                );
            } else if path.is_empty() || path.split('.').any(str::is_empty) {
                c.err(
                    at(value),
                    format!("override `{key}` has no value path"),
                    format!("write `{comp}.path.to.key: value`, e.g. `{comp}.replicas: 3`"),
                );
            }
        }
    }

    if let Some(backup) = &spec.backup {
        check_backup(&mut c, &backup.value);
    }
    if let Some(previews) = &spec.previews {
        check_previews(&mut c, &previews.value, &clusters);
    }

    match crate::lock::read_lock(&crate::lock::lock_path(loaded)) {
        Ok(lock) => c.out.extend(crate::lock::check_lock(loaded, lock.as_ref())),
        Err(d) => c.out.extend(d.0),
    }

    c.out.sort_by_key(|a| (a.file.clone(), a.pos));
    let (errors, warnings): (Vec<_>, Vec<_>) = c.out.into_iter().partition(|d| !d.warning);
    if errors.is_empty() { Ok(warnings) } else { Err(Diagnostics(errors.into_iter().chain(warnings).collect())) }
}

/// `backup:`: a store rekube can open, recipients age can read, a sane `keep`.
fn check_backup(c: &mut Checker, b: &crate::model::Backup) {
    let store = b.store.value.trim();
    match store.split_once("://") {
        Some(("s3", rest)) if rest.split('/').next().is_some_and(|bucket| !bucket.is_empty()) => {}
        Some(("s3", _)) => {
            c.err(at(&b.store), format!("store `{store}` names no bucket"), "write `s3://<bucket>/<prefix>`")
        }
        Some(("file", _)) => {}
        Some((scheme, _)) => c.err(
            at(&b.store),
            format!("store scheme `{scheme}://` is not supported"),
            "use `s3://bucket/prefix` (any S3-compatible store, see `endpoint`), `file:///dir`, \
             or a directory relative to the spec",
        ),
        None if store.is_empty() => {
            c.err(at(&b.store), "`store` is empty", "write `s3://bucket/prefix` or a directory such as `./backups`")
        }
        None => {}
    }
    for r in &b.encrypt_secrets {
        let v = r.value.trim();
        if !(v.starts_with("age1")
            && v.len() == 62
            && v[4..].bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        {
            c.err(
                at(r),
                format!("`{v}` is not an age recipient"),
                "recipients are public keys such as \
                 `age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p`; `age-keygen` prints one",
            );
        }
    }
    for t in &b.trusted_signers {
        let v = t.value.trim();
        let hex = v.strip_prefix("ed25519:").unwrap_or_default();
        if !(hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))) {
            c.err(
                at(t),
                format!("`{v}` is not a signer's public key"),
                "signers are `ed25519:` and 64 hex digits; `rekube backup keygen --signing` prints one",
            );
        }
    }
    if let Some(k) = &b.keep
        && k.value == 0
    {
        c.err(
            at(k),
            "`keep: 0` would delete every backup, including the new one",
            "keep at least 1, or remove `keep` to keep all",
        );
    }
    if let Some(e) = &b.endpoint
        && !(e.value.starts_with("http://") || e.value.starts_with("https://"))
    {
        c.err(
            at(e),
            format!("endpoint `{}` is not an http(s) URL", e.value),
            "write it like `https://s3.example.com` or `http://127.0.0.1:9000`",
        );
    }
}

fn check_cluster_ref(c: &mut Checker, env_name: &str, cluster: &Spanned<String>, clusters: &[&str]) {
    if !clusters.contains(&cluster.value.as_str()) {
        let hint = match did_you_mean(&cluster.value, clusters.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None if clusters.is_empty() => "declare it under `clusters:`".to_string(),
            None => format!("declared clusters: {}", clusters.join(", ")),
        };
        c.err(
            at(cluster),
            format!("environment `{env_name}` uses cluster `{}`, which is not declared", cluster.value),
            hint,
        );
    }
}

/// How long a preview lives when neither `--ttl` nor `previews.ttl` says.
pub const DEFAULT_PREVIEW_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A preview's lifetime: `30m`, `8h`, `2d`, `1h30m` (at least a minute).
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration ({e})"))?;
    if d < std::time::Duration::from_secs(60) {
        return Err(format!("`{text}` is shorter than a minute"));
    }
    if d > std::time::Duration::from_secs(365 * 24 * 3600) {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(d)
}

/// A component's preview host for preview `name`, or why the template is
/// not a host name.
pub fn preview_host(template: &str, name: &str) -> Result<String, String> {
    if !template.contains("{preview}") {
        return Err(format!("host `{template}` does not contain `{{preview}}`: every preview would get the same host"));
    }
    let host = template.replace("{preview}", name);
    let valid = host.len() <= 253 && host.split('.').all(is_dns_label);
    if valid { Ok(host) } else { Err(format!("host `{template}` does not make a DNS name (`{host}`)")) }
}

fn check_previews(c: &mut Checker, p: &crate::model::Previews, clusters: &[&str]) {
    if let Some(cl) = &p.cluster
        && !clusters.contains(&cl.value.as_str())
    {
        let hint = match did_you_mean(&cl.value, clusters.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("declared clusters: {}", clusters.join(", ")),
        };
        c.err(at(cl), format!("previews use cluster `{}`, which is not declared", cl.value), hint);
    }
    if let Some(ttl) = &p.ttl
        && let Err(e) = parse_ttl(&ttl.value)
    {
        c.err(at(ttl), e, "write a duration such as `30m`, `8h` or `2d`");
    }
}

/// `environments: <env>: components: <comp>:` position (best effort).
fn key_pos_nested(source: &str, env: &str, comp: &str) -> Option<Pos> {
    let env_line = key_pos(source, "environments", env)?.line;
    source
        .lines()
        .enumerate()
        .skip(usize::try_from(env_line).ok()?)
        .find(|(_, l)| l.trim_start().starts_with(&format!("{comp}:")))
        .map(|(i, l)| Pos { line: i as u64 + 1, column: (l.len() - l.trim_start().len()) as u64 + 1 })
}

fn unknown_component_hint(name: &str, names: &[&str]) -> String {
    match did_you_mean(name, names.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None if names.is_empty() => "declare it under `components:`".to_string(),
        None => format!("declared components: {}", names.join(", ")),
    }
}

fn check_values_entry(c: &mut Checker, v: &Spanned<serde_json::Value>) {
    match &v.value {
        serde_json::Value::String(file) => {
            let s = Spanned { value: file.clone(), referenced: v.referenced, defined: v.defined };
            c.file_must_exist(&s, "values file", false);
        }
        serde_json::Value::Object(_) => {}
        other => c.err(
            at(v),
            format!("a values entry must be a file path or a mapping, not {}", json_kind(other)),
            "write `- values/prod.yaml` for a file or `- {replicas: 2}` for inline values",
        ),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

fn check_component(c: &mut Checker, name: &str, comp: &Component, names: &[&str]) {
    if let Some(p) = &comp.preview
        && let Err(e) = preview_host(&p.value.host.value, "x")
    {
        c.err(
            at(&p.value.host),
            format!("component `{name}`: {e}"),
            "write a host template such as `{preview}.preview.example.com`",
        );
    }
    match (&comp.chart, &comp.manifests) {
        (None, None) => c.err(
            key_pos(&c.loaded.source, "components", name),
            format!("component `{name}` has no source"),
            "give it `chart:` (a Helm chart) or `manifests:` (a directory of YAML or a kustomization)",
        ),
        (Some(chart), Some(_)) => c.err(
            at(chart),
            format!("component `{name}` has both `chart` and `manifests`"),
            "split it into two components, one per source",
        ),
        _ => {}
    }
    if let Some(chart) = &comp.chart {
        let ch = &chart.value;
        match (&ch.path, &ch.repo) {
            (Some(path), None) => {
                c.file_must_exist(path, "chart path", false);
                for (field, v) in [("name", &ch.name), ("version", &ch.version)] {
                    if let Some(v) = v {
                        c.err(
                            at(v),
                            format!("`{field}` does not apply to a chart from a local `path`"),
                            "a local chart's name and version come from its Chart.yaml; remove this key",
                        );
                    }
                }
            }
            (Some(path), Some(_)) => c.err(
                at(path),
                "a chart has either `path` or `repo`, not both",
                "use `path` for a local chart, `repo` + `name` + `version` for a published one",
            ),
            (None, Some(repo)) => {
                let url = &repo.value;
                if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("oci://")) {
                    c.err(
                        at(repo),
                        format!("chart repository `{url}` is not a URL"),
                        "use an https:// (or http://) chart repository URL, or oci://registry/path",
                    );
                }
                if ch.name.is_none() {
                    c.err(
                        at(chart),
                        format!("the chart of component `{name}` has a `repo` but no `name`"),
                        "add `name: <chart name in that repository>`",
                    );
                }
                if ch.version.is_none() {
                    c.err(
                        at(chart),
                        format!("the chart of component `{name}` has no `version`"),
                        "pin it, e.g. `version: 1.15.3`; a range like `^1.15` is allowed when `rekube lock` pins it",
                    );
                }
            }
            (None, None) => c.err(
                at(chart),
                format!("the chart of component `{name}` has neither `path` nor `repo`"),
                "add `path: ./charts/<name>` or `repo: https://...` with `name` and `version`",
            ),
        }
    }
    if let Some(m) = &comp.manifests {
        c.file_must_exist(m, "manifests directory", false);
    }
    if let Some(ns) = &comp.namespace
        && !is_dns_label(&ns.value)
    {
        c.err(
            at(ns),
            format!("namespace `{}` is not a valid name", ns.value),
            "use lower-case letters, digits and '-', at most 63 characters",
        );
    }
    for v in &comp.values {
        check_values_entry(c, v);
    }
    if comp.manifests.is_some()
        && let Some(v) = comp.values.first()
    {
        c.err(
            at(v),
            format!("component `{name}` has `values`, but values only apply to charts"),
            "plain YAML and kustomize take no values: remove `values`, or use a kustomize patch",
        );
    }
    for rule in &comp.ignore_differences {
        if rule.value.paths.is_empty() || rule.value.paths.iter().any(|p| p.trim().is_empty()) {
            c.err(
                at(rule),
                format!("an `ignore-differences` rule of component `{name}` has no paths"),
                "list the fields to ignore, e.g. `paths: [spec.replicas]`",
            );
        }
    }
    let mut seen = BTreeSet::new();
    for need in &comp.needs {
        if need.value == name {
            c.err(at(need), format!("component `{name}` needs itself"), "remove it from its own `needs`");
        } else if !names.contains(&need.value.as_str()) {
            c.err(
                at(need),
                format!("component `{name}` needs `{}`, which is not declared", need.value),
                unknown_component_hint(&need.value, names),
            );
        } else if !seen.insert(need.value.as_str()) {
            c.err(
                at(need),
                format!("component `{name}` lists `{}` twice in `needs`", need.value),
                "remove the repeated entry",
            );
        }
    }
}

/// Reports each dependency cycle once, as a path, at the edge that closes it.
fn check_cycles(c: &mut Checker, comps: &BTreeMap<String, Component>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        n: &'a str,
        comps: &'a BTreeMap<String, Component>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        found: &mut Vec<(Vec<String>, Option<Pos>)>,
    ) {
        marks.insert(n, Mark::Active);
        stack.push(n);
        for need in &comps[n].needs {
            let m = need.value.as_str();
            if m == n || !comps.contains_key(m) {
                continue; // reported elsewhere
            }
            match marks.get(m).copied().unwrap_or(Mark::New) {
                Mark::Active => {
                    let start = stack.iter().position(|s| *s == m).unwrap_or(0);
                    let mut path: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                    path.push(m.to_string());
                    found.push((path, at(need)));
                }
                Mark::New => visit(m, comps, marks, stack, found),
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for n in comps.keys() {
        if marks.get(n.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            visit(n, comps, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    for (path, pos) in found {
        c.err(
            pos,
            format!("dependency cycle: {}", path.join(" → ")),
            "remove one of these `needs` entries; components must form a DAG",
        );
    }
}
