//! The plan as people read it: one line per object that changes (`+`,
//! `~`, `-`, `>`, `!`, `·`), each changed field with its old and new value,
//! hand changes named with who made them.

use serde_json::Value;

use crate::{Op, Plan};

/// A JSON value as a diff shows it; `(none)` when absent.
pub fn value(v: &Option<Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(v) => v.to_string(),
    }
}

/// The plan for people.
pub fn plan(plan: &Plan) -> String {
    let mut out = format!("Plan for environment `{}` (cluster `{}`):\n", plan.environment, plan.cluster);
    for c in &plan.components {
        let head = if c.removed {
            format!("{} (removed from the spec: destroy)", c.name)
        } else if c.identity.component.is_none() {
            "namespaces (created for the components, shared by them)".to_string()
        } else {
            format!("{} (wave {})", c.name, c.wave + 1)
        };
        out.push_str(&format!("\n{head}\n"));
        if c.parent_missing {
            out.push_str("  inventory: the ApplySet parent is missing; apply writes it again\n");
        }
        if let Some(legacy) = &c.legacy_parent {
            out.push_str(&format!(
                "  migrate: members move from ApplySet rekube-system/{legacy} (rekube before 0.2) \
                 to this environment's own\n"
            ));
        }
        let mut unchanged = 0;
        for a in &c.actions {
            match a.op {
                Op::Create => out.push_str(&format!("  + {}\n", a.display_name())),
                Op::Delete => out.push_str(&format!("  - {}\n", a.display_name())),
                Op::Unchanged => unchanged += 1,
                Op::Adopt if c.adopt => {
                    out.push_str(&format!("  > {} (exists, not rekube's: adopted)\n", a.display_name()))
                }
                Op::Adopt => out.push_str(&format!(
                    "  > {} (exists, not rekube's: apply refuses it without --adopt)\n",
                    a.display_name()
                )),
                Op::Conflict => out.push_str(&format!(
                    "  ! {}: belongs to {} (apply refuses)\n",
                    a.display_name(),
                    a.owner.as_deref().unwrap_or("someone else")
                )),
                Op::Replace => out.push_str(&format!(
                    "  ± {} (replace: immutable {}{})\n",
                    a.display_name(),
                    a.immutable.join(", "),
                    if a.replace_allowed() { "" } else { "; apply refuses it without --force-replace" }
                )),
                Op::Use => {
                    out.push_str(&format!("  · {} ({})\n", a.display_name(), a.owner.as_deref().unwrap_or("used")))
                }
                Op::Update => {
                    out.push_str(&format!("  ~ {}\n", a.display_name()));
                    for ch in &a.changes {
                        let by =
                            a.reverts.iter().find(|r| r.path == ch.path).map_or(String::new(), |r| match &r.manager {
                                Some(m) => format!("  (hand change by {m}: reverted)"),
                                None => "  (hand change: reverted)".to_string(),
                            });
                        let (before, after) = (value(&ch.before), value(&ch.after));
                        out.push_str(&format!("      {}: {before} → {after}{by}\n", ch.path));
                    }
                }
            }
        }
        if unchanged > 0 {
            out.push_str(&format!("  = {unchanged} unchanged\n"));
        }
        for h in &c.hooks {
            out.push_str(&format!("  hooks: run {} ({})\n", h.display_name(), h.event));
        }
    }
    let s = plan.summary();
    let mut extra = String::new();
    if s.adopt > 0 {
        extra.push_str(&format!(", {} to adopt", s.adopt));
    }
    if s.conflict > 0 {
        extra.push_str(&format!(", {} owned by others", s.conflict));
    }
    if s.replace > 0 {
        extra.push_str(&format!(", {} to replace", s.replace));
    }
    let hooks: usize = plan.components.iter().map(|c| c.hooks.len()).sum();
    if hooks > 0 {
        extra.push_str(&format!(", {hooks} hook(s) to run"));
    }
    out.push_str(&format!(
        "\nPlan: {} to create, {} to update, {} to delete, {} unchanged{extra}.\n",
        s.create, s.update, s.delete, s.unchanged
    ));
    out
}
