//! The backup archive reader: a damaged or hostile archive (raw bytes, or a
//! valid archive with bytes changed and cut) is refused with an error, never
//! a panic, and no entry is handed over unless its checksum matched.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rekube_backup::archive::{
    ARCHIVE_FILE, ArchiveInfo, ArchiveWriter, ClusterInfo, FORMAT, Filter, Manifest, SecretsInfo, entry_path, read,
};

/// A real archive of a few entries and its manifest.
static SAMPLE: LazyLock<(Vec<u8>, Manifest)> = LazyLock::new(|| {
    let mut w = ArchiveWriter::new(Vec::new(), 0).unwrap();
    for i in 0..6 {
        let path = entry_path("configmaps", Some("ns"), &format!("cm-{i}"), false);
        w.append(&path, format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 97)).as_bytes()).unwrap();
    }
    let (bytes, size, sha256, objects) = w.finish().unwrap();
    let manifest = Manifest {
        format: FORMAT.into(),
        name: "fuzz".into(),
        project: None,
        environment: "dev".into(),
        created: String::new(),
        tool_version: String::new(),
        cluster: ClusterInfo { name: "dev".into(), version: "v1.34.12".into() },
        filter: Filter::default(),
        archive: ArchiveInfo { file: ARCHIVE_FILE.into(), compression: "zstd".into(), size, sha256 },
        secrets: SecretsInfo { count: 0, encrypted: false, recipients: vec![] },
        counts: BTreeMap::new(),
        excluded: BTreeMap::new(),
        objects,
    };
    (bytes, manifest)
});

fuzz_target!(|data: &[u8]| {
    let (sample, manifest) = &*SAMPLE;
    let Some((&mode, rest)) = data.split_first() else { return };
    let archive: Vec<u8> = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        // (offset, byte) pairs written over the sample, then a cut.
        let mut bytes = sample.clone();
        let mut pairs = rest.chunks_exact(3);
        for p in &mut pairs {
            let at = usize::from(u16::from_le_bytes([p[0], p[1]])) % bytes.len();
            bytes[at] = p[2];
        }
        if let [cut, ..] = pairs.remainder() {
            bytes.truncate(bytes.len() * usize::from(*cut) / 255);
        }
        bytes
    };
    let mut handed = 0usize;
    let result = read(&archive[..], manifest, |i, entry, bytes| {
        assert_eq!(entry, &manifest.objects[i]);
        assert_eq!(bytes.len() as u64, entry.size, "an entry is handed over only once it matched");
        handed += 1;
        Ok(())
    });
    match result {
        Ok(()) => assert_eq!(archive, *sample, "only the very archive the manifest describes is accepted"),
        Err(e) => drop(e.to_string()),
    }
    assert!(handed <= manifest.objects.len());
});
