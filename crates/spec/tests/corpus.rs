//! The bad-input corpus: every file in `tests/corpus/` is a spec with one
//! mistake. Its first line says where the first error must point and what it
//! must say: `# expect: LINE:COL message substring | hint substring`
//! (`0:0` when the error has no position). The full rendered diagnostics are
//! snapshot-tested too.

struct Expect {
    line: u64,
    column: u64,
    message: String,
    hint: Option<String>,
}

fn expectation(source: &str) -> Expect {
    let first = source.lines().next().unwrap_or_default();
    let rest = first.strip_prefix("# expect: ").expect("first line starts with `# expect: `");
    let (pos, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let (line, column) = pos.split_once(':').expect("LINE:COL");
    let (message, hint) = match text.split_once(" | ") {
        Some((m, h)) => (m.trim().to_string(), Some(h.trim().to_string())),
        None => (text.trim_end_matches(" |").trim().to_string(), None),
    };
    let (message, hint) = match text.trim().strip_prefix("| ") {
        Some(h) => (String::new(), Some(h.to_string())),
        None => (message, hint),
    };
    Expect { line: line.parse().unwrap(), column: column.parse().unwrap(), message, hint }
}

#[test]
fn bad_input_corpus() {
    let mut count = 0;
    let mut wrong = Vec::new();
    insta::glob!("corpus/*.yaml", |path| {
        count += 1;
        let source = std::fs::read_to_string(path).unwrap();
        let expect = expectation(&source);
        // The path as a user would type it, relative to the package.
        let rel = std::path::Path::new("tests/corpus").join(path.file_name().unwrap());
        let diags = match rekube_spec::load(&rel) {
            Err(d) => d,
            Ok(loaded) => match rekube_spec::validate(&loaded) {
                Err(d) => d,
                Ok(_) => return wrong.push(format!("{}: accepted, but should fail", rel.display())),
            },
        };
        let first = diags.errors().next().expect("at least one error");
        let pos = first.pos.map_or((0, 0), |p| (p.line, p.column));
        let hint_ok = expect.hint.as_ref().is_none_or(|h| {
            format!("{} {}", first.hint.clone().unwrap_or_default(), first.message).contains(h.as_str())
        });
        if pos != (expect.line, expect.column) || !first.message.contains(&expect.message) || !hint_ok {
            wrong.push(format!(
                "{}: expected {}:{} `{}` hint {:?}\n  got {}:{} `{}` hint {:?}",
                rel.display(),
                expect.line,
                expect.column,
                expect.message,
                expect.hint,
                pos.0,
                pos.1,
                first.message,
                first.hint
            ));
            return;
        }
        insta::assert_snapshot!(diags.to_string());
    });
    assert!(wrong.is_empty(), "{} of {count} cases differ:\n{}", wrong.len(), wrong.join("\n"));
    assert!(count >= 40, "the corpus has {count} cases; keep at least 40");
}
