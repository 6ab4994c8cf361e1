//! docs/tutorial.md runs: its ```` ```sh tour ```` blocks are run in order,
//! in one scratch directory, against the real test bed (a `local` cluster
//! of the matrix's Kubernetes), with the files its ```` ```yaml tour-file
//! PATH ```` blocks show written first. Each command must exit as the text
//! says (0, or the `# exit N` at its end), and each output line the text
//! shows must appear in what it printed, times and generated names masked.
//! When the tool and the text disagree, this fails and names the line.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

use rekube_testbed::tools;

/// One step of the tour.
#[derive(Debug)]
enum Step {
    /// A file the reader writes.
    File { path: String, text: String },
    /// A command, the exit code it must give, the lines it must print, and
    /// the document line it is on.
    Run { command: String, exit: i32, shown: Vec<String>, line: usize },
}

fn parse(doc: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((_, l)) = lines.next() {
        let Some(info) = l.strip_prefix("```") else { continue };
        let words: Vec<&str> = info.split_whitespace().collect();
        let block: Vec<(usize, &str)> = lines.by_ref().take_while(|(_, l)| !l.starts_with("```")).collect();
        if let Some(i) = words.iter().position(|w| *w == "tour-file") {
            let path = words.get(i + 1).expect("tour-file names its path").to_string();
            let text = block.iter().map(|(_, l)| format!("{l}\n")).collect();
            steps.push(Step::File { path, text });
        } else if words.first() == Some(&"sh") && words.contains(&"tour") {
            for (n, l) in block {
                if let Some(command) = l.strip_prefix("$ ") {
                    let exit = command.rsplit_once("# exit ").and_then(|(_, n)| n.trim().parse().ok()).unwrap_or(0);
                    steps.push(Step::Run { command: command.to_string(), exit, shown: Vec::new(), line: n + 1 });
                } else if let Some(Step::Run { shown, .. }) = steps.last_mut() {
                    // `...` marks output left out of the text.
                    if !l.trim().is_empty() && l.trim() != "..." {
                        shown.push(l.to_string());
                    }
                }
            }
        }
    }
    steps
}

/// Durations (`4.2s`, `310 ms`, `3m`) and ids (UIDs, digests).
static TIMES: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\b(\d+[dh])?\d+(\.\d+)?\s?(ms|s|m|h)\b").unwrap());
static IDS: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\b[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b|\b[0-9a-f]{12,64}\b").unwrap());

/// Times, durations and ids vary from run to run.
fn mask(s: &str) -> String {
    IDS.replace_all(&TIMES.replace_all(s, "<t>"), "<id>").trim_end().to_string()
}

/// Stops what the tour started when it fails half-way: its clusters and
/// the chart repository's server.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_rekube")).args(["down", "dev"]).current_dir(self.0).output();
        // Both colors of chapter 9, whichever is live.
        let both = "clusters: { prod-blue: { provider: local }, prod-green: { provider: local } }\n\
                    environments: { b: { cluster: prod-blue }, g: { cluster: prod-green } }\n";
        if std::fs::write(self.0.join("cleanup.yaml"), both).is_ok() {
            for env in ["b", "g"] {
                let _ = Command::new(env!("CARGO_BIN_EXE_rekube"))
                    .args(["-f", "cleanup.yaml", "down", env])
                    .current_dir(self.0)
                    .output();
            }
        }
        if let Ok(pid) = std::fs::read_to_string(self.0.join("repo.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).output();
        }
    }
}

#[test]
fn the_tutorial_runs_as_written() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tutorial.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let steps = parse(&doc);
    assert!(steps.iter().filter(|s| matches!(s, Step::Run { .. })).count() >= 15, "the tour has its commands");

    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(dir.path());
    let bin = Path::new(env!("CARGO_BIN_EXE_rekube")).parent().unwrap().to_path_buf();
    let tools = tools::kubectl().parent().unwrap().to_path_buf();
    let path = format!("{}:{}:{}", bin.display(), tools.display(), std::env::var("PATH").unwrap_or_default());
    let mut env: BTreeMap<String, String> = BTreeMap::from([
        ("PATH".into(), path),
        ("REKUBE_CACHE".into(), cache.path().display().to_string()),
        ("REKUBE_K8S_ASSETS".into(), common::k8s_assets().display().to_string()),
        ("HELM_CACHE_HOME".into(), cache.path().join("helm").display().to_string()),
        ("HELM_CONFIG_HOME".into(), cache.path().join("helm").display().to_string()),
        ("HELM_DATA_HOME".into(), cache.path().join("helm").display().to_string()),
        ("NO_COLOR".into(), "1".into()),
    ]);
    for step in steps {
        match step {
            Step::File { path, text } => {
                let file = dir.path().join(&path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, text).unwrap();
            }
            Step::Run { command, exit, shown, line } => {
                let at = format!("docs/tutorial.md:{line}: `{command}`");
                if let Some((key, value)) = command.strip_prefix("export ").and_then(|e| e.split_once('=')) {
                    let expanded = run(dir.path(), &env, &format!("printf %s {value}"));
                    env.insert(key.to_string(), String::from_utf8_lossy(&expanded.stdout).into_owned());
                    continue;
                }
                let o = run(dir.path(), &env, &command);
                let printed = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
                assert_eq!(o.status.code(), Some(exit), "{at} exits {exit}; it printed:\n{printed}");
                let printed: Vec<String> = printed.lines().map(mask).collect();
                for want in &shown {
                    let want = mask(want);
                    assert!(
                        printed.iter().any(|p| p.contains(want.trim())),
                        "{at} shows `{want}`, but printed:\n{}",
                        printed.join("\n")
                    );
                }
            }
        }
    }
}

fn run(dir: &Path, env: &BTreeMap<String, String>, command: &str) -> std::process::Output {
    Command::new("bash").args(["-c", command]).current_dir(dir).envs(env).output().unwrap()
}

#[test]
fn masking_hides_what_varies_and_keeps_the_words() {
    assert_eq!(mask("up `dev` done in 4.0s"), "up `dev` done in <t>");
    assert_eq!(mask("applied in 310 ms, 3 written"), "applied in <t>, 3 written");
    assert_eq!(mask("uid 0b3f8e2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"), "uid <id>");
    assert_eq!(mask("2 components, 11 objects"), "2 components, 11 objects");
    assert_eq!(mask("feat-1  dev  12s  23h59m  healthy"), "feat-1  dev  <t>  <t>  healthy");
}
