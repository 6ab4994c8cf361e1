//! The archive format (docs/backup-format.md): one zstd-compressed tar of
//! JSON documents, one per object, beside a `manifest.json` that lists every
//! entry's sha256 in archive order plus the whole archive's size and sha256.
//!
//! Writing and reading are streams: one object at a time goes through tar,
//! zstd and the hash, so memory does not grow with the archive (the index of
//! checksums grows by about 150 bytes an object).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's `format` value.
pub const FORMAT: &str = "rekube.dev/backup/v1";
/// The archive's file name beside `manifest.json`.
pub const ARCHIVE_FILE: &str = "resources.tar.zst";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What a backup holds; written after the archive, so a backup without one
/// is incomplete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The backup's name.
    pub name: String,
    /// The project it was taken for (absent in backups made before 0.3:
    /// retention never deletes those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The environment it was taken from.
    pub environment: String,
    /// When it was taken (RFC 3339, UTC).
    pub created: String,
    /// The rekube version that wrote it.
    pub tool_version: String,
    /// The source cluster.
    pub cluster: ClusterInfo,
    /// What was selected.
    pub filter: Filter,
    /// The archive file.
    pub archive: ArchiveInfo,
    /// How Secrets are stored.
    pub secrets: SecretsInfo,
    /// Objects by resource (`deployments.apps`, `configmaps`).
    pub counts: BTreeMap<String, usize>,
    /// Objects left out on purpose, by reason.
    pub excluded: BTreeMap<String, usize>,
    /// Every entry, in archive order.
    pub objects: Vec<EntryInfo>,
}

/// The source cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Its name in the spec.
    pub name: String,
    /// Its Kubernetes version (`v1.20.2`).
    pub version: String,
}

/// The selection a backup was taken with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Filter {
    /// Namespaces (empty: all but the system ones).
    pub namespaces: Vec<String>,
    /// A label selector.
    pub selector: Option<String>,
    /// Whether cluster-scoped objects were included (CRDs of included custom
    /// resources always are).
    pub cluster_resources: bool,
    /// Only these kinds (`Secret`, `ConfigMap`; empty: all). The Namespaces
    /// of selected objects are recreated on restore when missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

/// The archive file's identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveInfo {
    /// Its file name.
    pub file: String,
    /// `zstd`.
    pub compression: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, hex.
    pub sha256: String,
}

/// How Secrets are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretsInfo {
    /// How many there are.
    pub count: usize,
    /// Whether they are age-encrypted (`.json.age` entries).
    pub encrypted: bool,
    /// The age recipients they are encrypted to.
    pub recipients: Vec<String>,
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Its path in the archive.
    pub path: String,
    /// The sha256 of its bytes as stored (ciphertext for Secrets), hex.
    pub sha256: String,
    /// Its size as stored.
    pub size: u64,
}

/// An entry's path: `resources/<resource>[.<group>]/namespaces/<ns>/<name>.json`
/// or `resources/<resource>[.<group>]/cluster/<name>.json` (Velero's layout);
/// encrypted entries end in `.json.age`.
pub fn entry_path(resource: &str, namespace: Option<&str>, name: &str, encrypted: bool) -> String {
    let ext = if encrypted { "json.age" } else { "json" };
    match namespace {
        Some(ns) => format!("resources/{resource}/namespaces/{ns}/{name}.{ext}"),
        None => format!("resources/{resource}/cluster/{name}.{ext}"),
    }
}

/// The largest entry read. Kubernetes refuses requests over 3 MiB, so no
/// object is bigger; an entry 16 times that is a decompression bomb or a
/// manifest that lies, and is refused before its bytes are read.
pub const MAX_ENTRY: u64 = 48 << 20;

/// Whether `path` is an entry path as [`entry_path`] writes it: no `..`,
/// no absolute path, nothing outside `resources/`.
pub fn is_entry_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let clean = parts.iter().all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\\'));
    let shape = match parts.as_slice() {
        ["resources", _, "namespaces", _, name] | ["resources", _, "cluster", name] => {
            name.ends_with(".json") || name.ends_with(".json.age")
        }
        _ => false,
    };
    clean && shape
}

/// The resource part (`deployments.apps`) of an entry path.
pub fn entry_resource(path: &str) -> &str {
    path.strip_prefix("resources/").and_then(|p| p.split('/').next()).unwrap_or("")
}

/// Counts and hashes the bytes that pass through.
struct Hashing<T> {
    inner: T,
    hash: Sha256,
    size: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self { inner, hash: Sha256::new(), size: 0 }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Writes entries into a compressed tar, indexing each.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<zstd::Encoder<'static, Hashing<W>>>,
    index: Vec<EntryInfo>,
    mtime: u64,
}

impl<W: Write> ArchiveWriter<W> {
    /// A writer onto `out`; entries carry `mtime` (the backup's time).
    pub fn new(out: W, mtime: u64) -> io::Result<Self> {
        let mut enc = zstd::Encoder::new(Hashing::new(out), 3)?;
        enc.include_checksum(true)?;
        Ok(Self { tar: tar::Builder::new(enc), index: Vec::new(), mtime })
    }

    /// Appends one entry.
    pub fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, path, data)?;
        self.index.push(EntryInfo {
            path: path.to_string(),
            sha256: hex::encode(Sha256::digest(data)),
            size: data.len() as u64,
        });
        Ok(())
    }

    /// Ends the archive: the sink, the archive's size and sha256, and the index.
    pub fn finish(self) -> io::Result<(W, u64, String, Vec<EntryInfo>)> {
        let enc = self.tar.into_inner()?;
        let hashing = enc.finish()?;
        let Hashing { mut inner, hash, size } = hashing;
        inner.flush()?;
        Ok((inner, size, hex::encode(hash.finalize()), self.index))
    }
}

/// Why an archive cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// It could not be read or decompressed (truncated or corrupted).
    #[error("the archive cannot be read after entry {entries}: {cause} (truncated or corrupted)")]
    Read {
        /// Entries read before the failure.
        entries: usize,
        /// The cause.
        cause: io::Error,
    },
    /// An entry differs from the manifest.
    #[error("entry {index} ({path}) {problem}")]
    Entry {
        /// Its position.
        index: usize,
        /// Its path.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The whole archive differs from the manifest.
    #[error("{0}")]
    Whole(String),
    /// The consumer of the entries stopped the read.
    #[error("{0}")]
    Stopped(String),
}

/// Reads every entry of `input` in order, checking each against
/// `manifest.objects` and the whole stream against `manifest.archive`, and
/// hands each entry's bytes to `each`. An entry is handed over only after
/// its own checksum matched; the whole-archive check comes at the end, so
/// callers that must not act on a damaged archive read it twice (verify
/// first, then act), as restore does.
pub fn read<R: Read>(
    input: R,
    manifest: &Manifest,
    mut each: impl FnMut(usize, &EntryInfo, Vec<u8>) -> Result<(), String>,
) -> Result<(), ArchiveError> {
    let hashing = Hashing::new(input);
    let decoder = zstd::Decoder::new(hashing).map_err(|source| ArchiveError::Read { entries: 0, cause: source })?;
    let mut archive = tar::Archive::new(decoder);
    let mut n = 0usize;
    let entries = archive.entries().map_err(|source| ArchiveError::Read { entries: 0, cause: source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| ArchiveError::Read { entries: n, cause: source })?;
        let path = entry
            .path()
            .map_err(|source| ArchiveError::Read { entries: n, cause: source })?
            .to_string_lossy()
            .into_owned();
        let Some(expected) = manifest.objects.get(n) else {
            return Err(ArchiveError::Entry {
                index: n,
                path,
                problem: format!("is not in the manifest, which lists {} entries", manifest.objects.len()),
            });
        };
        if expected.path != path {
            return Err(ArchiveError::Entry {
                index: n,
                path,
                problem: format!("is out of place: the manifest expects {}", expected.path),
            });
        }
        if !is_entry_path(&path) {
            return Err(ArchiveError::Entry {
                index: n,
                path,
                problem: "is not an entry path (resources/<resource>/namespaces/<ns>/<name>.json): refused".into(),
            });
        }
        if expected.size > MAX_ENTRY {
            return Err(ArchiveError::Entry {
                index: n,
                path,
                problem: format!(
                    "is {} bytes by the manifest, more than any Kubernetes object ({} MiB at most here): refused \
                     unread",
                    expected.size,
                    MAX_ENTRY >> 20
                ),
            });
        }
        if entry.size() != expected.size {
            return Err(ArchiveError::Entry {
                index: n,
                path,
                problem: format!("is {} bytes in the archive, the manifest says {}", entry.size(), expected.size),
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(expected.size).unwrap_or(0));
        (&mut entry)
            .take(expected.size)
            .read_to_end(&mut data)
            .map_err(|source| ArchiveError::Read { entries: n, cause: source })?;
        let sum = hex::encode(Sha256::digest(&data));
        if sum != expected.sha256 {
            return Err(ArchiveError::Entry {
                index: n,
                path,
                problem: format!("has sha256 {sum}, the manifest says {}", expected.sha256),
            });
        }
        each(n, expected, data).map_err(ArchiveError::Stopped)?;
        n += 1;
    }
    if n != manifest.objects.len() {
        return Err(ArchiveError::Whole(format!(
            "the archive ends after {n} of {} entries (truncated?)",
            manifest.objects.len()
        )));
    }
    // Hash what is left (tar padding, the zstd epilogue) so the whole file counts.
    let mut rest = archive.into_inner().finish();
    io::copy(&mut rest, &mut io::sink()).map_err(|source| ArchiveError::Read { entries: n, cause: source })?;
    let Hashing { hash, size, .. } = rest.into_inner();
    let sum = hex::encode(hash.finalize());
    if size != manifest.archive.size || sum != manifest.archive.sha256 {
        return Err(ArchiveError::Whole(format!(
            "the archive is {size} bytes with sha256 {sum}; the manifest says {} bytes with sha256 {}",
            manifest.archive.size, manifest.archive.sha256
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(size: u64, sha256: String, objects: Vec<EntryInfo>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            name: "t".into(),
            project: None,
            environment: "e".into(),
            created: String::new(),
            tool_version: String::new(),
            cluster: ClusterInfo { name: "c".into(), version: "v1.20.2".into() },
            filter: Filter::default(),
            archive: ArchiveInfo { file: ARCHIVE_FILE.into(), compression: "zstd".into(), size, sha256 },
            secrets: SecretsInfo { count: 0, encrypted: false, recipients: vec![] },
            counts: BTreeMap::new(),
            excluded: BTreeMap::new(),
            objects,
        }
    }

    fn sample() -> (Vec<u8>, Manifest) {
        let mut w = ArchiveWriter::new(Vec::new(), 0).unwrap();
        for i in 0..50 {
            let path = entry_path("configmaps", Some("ns"), &format!("cm-{i}"), false);
            w.append(&path, format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 37)).as_bytes()).unwrap();
        }
        let (bytes, size, sha, index) = w.finish().unwrap();
        assert_eq!(size, bytes.len() as u64);
        (bytes, manifest(size, sha, index))
    }

    #[test]
    fn round_trip_hands_back_every_entry_in_order() {
        let (bytes, m) = sample();
        let mut seen = Vec::new();
        read(&bytes[..], &m, |i, e, data| {
            seen.push((i, e.path.clone(), String::from_utf8(data).unwrap()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 50);
        assert_eq!(seen[7].1, "resources/configmaps/namespaces/ns/cm-7.json");
        assert!(seen[7].2.starts_with("{\"n\":7,"));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let (bytes, m) = sample();
        // Each position in turn would be slow; a spread of them covers the
        // zstd header, the blocks and the epilogue.
        for pos in (0..bytes.len()).step_by(bytes.len() / 40 + 1).chain([bytes.len() - 1]) {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x20;
            assert!(read(&bad[..], &m, |_, _, _| Ok(())).is_err(), "flip at {pos} of {} went unnoticed", bytes.len());
        }
    }

    #[test]
    fn truncation_is_caught() {
        let (bytes, m) = sample();
        for len in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let err = read(&bytes[..len], &m, |_, _, _| Ok(())).unwrap_err();
            assert!(matches!(err, ArchiveError::Read { .. } | ArchiveError::Whole(_)), "{len}: {err}");
        }
    }

    #[test]
    fn hostile_paths_are_refused_even_when_the_checksums_match() {
        for bad in [
            "resources/../../etc/passwd.json",
            "/etc/cron.d/x.json",
            "resources/secrets/namespaces/ns/../../../x.json",
            "resources/secrets/namespaces/ns/a.sh",
            "other/secrets/cluster/x.json",
        ] {
            assert!(!is_entry_path(bad), "{bad}");
            // tar's own writer refuses `..`: a hostile archive is made by hand.
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..bad.len()].copy_from_slice(bad.as_bytes());
            header.set_size(2);
            header.set_mode(0o644);
            header.set_cksum();
            let mut tarball = tar::Builder::new(Vec::new());
            tarball.append(&header, &b"{}"[..]).unwrap();
            let bytes = zstd::encode_all(&tarball.into_inner().unwrap()[..], 3).unwrap();
            let sha = hex::encode(Sha256::digest(&bytes));
            let entry = EntryInfo { path: bad.into(), sha256: hex::encode(Sha256::digest(b"{}")), size: 2 };
            let mut handed = 0;
            let err = read(&bytes[..], &manifest(bytes.len() as u64, sha, vec![entry]), |_, _, _| {
                handed += 1;
                Ok(())
            });
            let err = err.expect_err(bad).to_string();
            assert!(err.contains("is not an entry path") && handed == 0, "{bad}: {err}");
        }
        assert!(is_entry_path("resources/deployments.apps/namespaces/web/web.json"));
        assert!(is_entry_path("resources/secrets/namespaces/web/db.json.age"));
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_read() {
        // 49 MiB of zeros compress to a few KiB: the entry is refused by size, unread.
        let mut w = ArchiveWriter::new(Vec::new(), 0).unwrap();
        let big = vec![0u8; (MAX_ENTRY + (1 << 20)) as usize];
        w.append("resources/configmaps/namespaces/ns/bomb.json", &big).unwrap();
        drop(big);
        let (bytes, size, sha, index) = w.finish().unwrap();
        assert!(bytes.len() < 1 << 20, "it is a bomb: {} bytes", bytes.len());
        let mut handed = 0;
        let err = read(&bytes[..], &manifest(size, sha, index), |_, _, _| {
            handed += 1;
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("more than any Kubernetes object") && handed == 0, "{err}");
    }

    #[test]
    fn a_manifest_that_lies_about_sizes_is_caught() {
        let (bytes, mut m) = sample();
        m.objects[5].size += 100;
        let err = read(&bytes[..], &m, |_, _, _| Ok(())).unwrap_err().to_string();
        assert!(err.contains("entry 5") && err.contains("bytes in the archive, the manifest says"), "{err}");
        let (bytes, mut m) = sample();
        m.objects[0].size = u64::MAX;
        let err = read(&bytes[..], &m, |_, _, _| Ok(())).unwrap_err().to_string();
        assert!(err.contains("refused unread"), "{err}");
    }

    #[test]
    fn a_manifest_that_lies_is_caught() {
        let (bytes, mut m) = sample();
        m.objects[3].sha256 = "0".repeat(64);
        let err = read(&bytes[..], &m, |_, _, _| Ok(())).unwrap_err().to_string();
        assert!(err.contains("entry 3 (resources/configmaps/namespaces/ns/cm-3.json) has sha256"), "{err}");
    }
}
