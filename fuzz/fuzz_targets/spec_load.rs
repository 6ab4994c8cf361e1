//! The spec loader: any text is parsed with positions, validated, and its
//! diagnostics printed with source excerpts, without a panic.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = PathBuf::from("/nonexistent-fuzz/rekube.yaml");
    match rekube_spec::parse(&path, text) {
        Err(d) => {
            let _ = d.to_string();
        }
        Ok(spec) => {
            let loaded = rekube_spec::Loaded {
                spec,
                path: path.clone(),
                dir: PathBuf::from("/nonexistent-fuzz"),
                source: text.to_string(),
            };
            match rekube_spec::validate(&loaded) {
                Ok(warnings) => warnings.iter().for_each(|w| drop(w.to_string())),
                Err(d) => drop(d.to_string()),
            }
            let _ = rekube_spec::graph::waves(&loaded.spec);
            let _ = loaded.project();
        }
    }
});
