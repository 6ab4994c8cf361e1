//! The manifest splitter: any YAML stream becomes objects or diagnostics
//! with positions, printed without a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rekube_render::StreamSource;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut diags = Vec::new();
    let file = Path::new("deploy/app.yaml");
    for source in [StreamSource::File(file), StreamSource::Helm { component: "web" }] {
        for o in rekube_render::parse_stream(text, &source, &mut diags) {
            let _ = (o.key(), o.group(), o.kind(), o.name(), o.namespace());
            let _ = rekube_render::hooks::Hook::of(&o);
        }
    }
    for d in diags {
        let _ = d.to_string();
    }
});
