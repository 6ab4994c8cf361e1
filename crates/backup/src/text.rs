//! Backups as people read them: what `backup create`, `describe` and
//! `restore` print (the CLI adds only the table of `backup list`).

use std::collections::BTreeMap;

use crate::{Manifest, RestoreReport};

/// `1.2 KiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}

/// What `backup create` made.
pub fn created(m: &Manifest, store: &str, secs: f64, pruned: &[String]) -> String {
    let secrets = match (m.secrets.count, m.secrets.encrypted) {
        (0, _) => "no Secrets".to_string(),
        (n, true) => format!("{n} Secret(s) encrypted to {} age recipient(s)", m.secrets.recipients.len()),
        (n, false) => format!("{n} Secret(s) IN PLAINTEXT (--allow-plaintext-secrets)"),
    };
    let excluded: usize = m.excluded.values().sum();
    let mut out = format!(
        "Backup {} written to {store} in {secs:.1}s:\
         \n  {} objects, {secrets}\
         \n  {excluded} left out on purpose (the cluster recreates them; see `rekube backup describe {}`)\
         \n  {}, sha256 {}",
        m.name,
        m.objects.len(),
        m.name,
        size(m.archive.size),
        m.archive.sha256
    );
    if !pruned.is_empty() {
        out.push_str(&format!("\nRetention deleted {} older backup(s): {}", pruned.len(), pruned.join(", ")));
    }
    out
}

/// `backup describe`.
pub fn describe(m: &Manifest) -> String {
    let f = &m.filter;
    let namespaces = if f.namespaces.is_empty() {
        "all but kube-system, kube-public, kube-node-lease".to_string()
    } else {
        f.namespaces.join(", ")
    };
    let mut out = format!("Backup {}\n", m.name);
    out.push_str(&format!(
        "  environment  {} (cluster {}, Kubernetes {})\n",
        m.environment, m.cluster.name, m.cluster.version
    ));
    out.push_str(&format!("  created      {} by rekube {}\n", m.created, m.tool_version));
    out.push_str(&format!(
        "  namespaces   {namespaces}\n  selector     {}\n",
        f.selector.as_deref().unwrap_or("(none)")
    ));
    out.push_str(&format!(
        "  cluster-wide {}\n",
        if f.cluster_resources { "included" } else { "only the CRDs of included custom resources" }
    ));
    out.push_str(&format!(
        "  archive      {} ({}), {}, sha256 {}\n",
        m.archive.file,
        m.archive.compression,
        size(m.archive.size),
        m.archive.sha256
    ));
    let secrets = if m.secrets.encrypted {
        format!("{} encrypted to {}", m.secrets.count, m.secrets.recipients.join(", "))
    } else {
        format!("{} in plaintext", m.secrets.count)
    };
    out.push_str(&format!("  secrets      {secrets}\n"));
    out.push_str(&format!(
        "  checksums    {} per-object sha256 sums (first: {} {})\n",
        m.objects.len(),
        m.objects.first().map_or("-", |o| short(&o.sha256)),
        m.objects.first().map_or("", |o| o.path.as_str())
    ));
    let width = m.counts.keys().chain(m.excluded.keys()).map(String::len).max().unwrap_or(0);
    out.push_str(&format!("  objects      {}\n", m.objects.len()));
    for (k, n) in &m.counts {
        out.push_str(&format!("    {k:<width$} {n:>6}\n"));
    }
    if !m.excluded.is_empty() {
        out.push_str("  left out on purpose (the cluster makes them again)\n");
        for (why, n) in &m.excluded {
            out.push_str(&format!("    {why:<width$} {n:>6}\n"));
        }
    }
    out.trim_end().to_string()
}

/// What `backup restore` did (or, with dry-run, would do).
pub fn restored(m: &Manifest, env: &str, cluster: &str, r: &RestoreReport) -> String {
    let verb = if r.dry_run { "Dry run: restoring" } else { "Restored" };
    let mut out = format!(
        "{verb} backup {} into environment `{env}` (cluster `{cluster}`){}\n",
        m.name,
        if r.dry_run { " would do this; nothing was written:" } else { ":" }
    );
    for p in &r.plan {
        out.push_str(&format!("  {p}\n"));
    }
    if !r.plan.is_empty() {
        out.push('\n');
    }
    let line = |label: &str, counts: &BTreeMap<String, usize>| {
        let total: usize = counts.values().sum();
        let each: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!("  {label:<9}{total:>6}  {}", each.join(", ")).trim_end().to_string() + "\n"
    };
    out.push_str(&line(if r.dry_run { "create" } else { "created" }, &r.created));
    out.push_str(&line(if r.dry_run { "update" } else { "updated" }, &r.updated));
    out.push_str(&format!("  {:<9}{:>6}\n", if r.dry_run { "leave" } else { "skipped" }, r.skipped.len()));
    if !r.dry_run {
        for s in &r.skipped {
            out.push_str(&format!("    {s}\n"));
        }
    }
    if !r.namespaces_created.is_empty() {
        out.push_str(&format!(
            "  namespaces {} {}\n",
            if r.dry_run { "to create:" } else { "created:" },
            r.namespaces_created.join(", ")
        ));
    }
    for w in &r.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    if !r.failed.is_empty() {
        let total = m.objects.len();
        out.push_str(&format!("PARTIALLY FAILED: {} of {total} objects could not be restored:\n", r.failed.len()));
        for f in &r.failed {
            out.push_str(&format!("    {f}\n"));
        }
    }
    out.trim_end().to_string()
}
