//! Values merging: two YAML documents (split at the first `---` line) are
//! merged as layers are; merging the same layer twice changes nothing more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once("\n---\n").unwrap_or((text, "{}"));
    let (Ok(mut base), Ok(over)) = (serde_saphyr::from_str::<Value>(a), serde_saphyr::from_str::<Value>(b)) else {
        return;
    };
    rekube_render::values::merge(&mut base, over.clone());
    let once = base.clone();
    rekube_render::values::merge(&mut base, over);
    assert_eq!(base, once, "merging a layer twice is the same as once");
});
