//! The certificates and keys a local control plane needs, made in-process.
//!
//! A real CA signs the apiserver's serving certificate, so kubeconfigs verify
//! TLS instead of skipping it; the controller-manager hands the same CA to
//! Pods (`--root-ca-file`). The service-account key is ECDSA P-256: the public
//! half is written as a PKIX `PUBLIC KEY`, the only EC form v1.20's
//! `--service-account-key-file` parser accepts.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

use super::LocalError;

/// The first address of the service range, where `kubernetes.default` lives.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Files written by [`write`], all inside the cluster directory.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// CA private key (PEM), for the controller-manager's CSR signer.
    pub ca_key: PathBuf,
    /// The apiserver's serving certificate.
    pub serving_cert: PathBuf,
    /// The apiserver's serving key.
    pub serving_key: PathBuf,
    /// Service-account signing key (private).
    pub sa_key: PathBuf,
    /// Service-account verification key (public).
    pub sa_pub: PathBuf,
    /// The CA certificate's PEM text, for kubeconfigs.
    pub ca_pem: String,
}

fn pki_err(e: rcgen::Error) -> LocalError {
    LocalError::Pki(e.to_string())
}

/// Reuses the certificates and keys in `dir` when all are there (a restarted
/// cluster keeps its identity, so tokens it issued stay valid), else makes new ones.
pub fn load_or_write(dir: &Path) -> Result<PkiFiles, LocalError> {
    let files = paths(dir, String::new());
    let all = [&files.ca_cert, &files.ca_key, &files.serving_cert, &files.serving_key, &files.sa_key, &files.sa_pub];
    if all.iter().all(|p| p.is_file()) {
        let ca_pem = std::fs::read_to_string(&files.ca_cert)
            .map_err(|source| LocalError::Io { path: files.ca_cert.clone(), cause: source })?;
        return Ok(PkiFiles { ca_pem, ..files });
    }
    write(dir)
}

fn paths(dir: &Path, ca_pem: String) -> PkiFiles {
    PkiFiles {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
        ca_pem,
    }
}

/// Generates a fresh CA, serving certificate and service-account key into `dir`.
pub fn write(dir: &Path) -> Result<PkiFiles, LocalError> {
    let ca_key = KeyPair::generate().map_err(pki_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "rekube-local-ca");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let serving_key = KeyPair::generate().map_err(pki_err)?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ])
    .map_err(pki_err)?;
    params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(KUBERNETES_SERVICE_IP)));
    params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = params.signed_by(&serving_key, &issuer).map_err(pki_err)?;

    let sa_key = KeyPair::generate().map_err(pki_err)?;

    let files = paths(dir, ca_cert.pem());
    write_file(&files.ca_cert, &files.ca_pem)?;
    write_file(&files.ca_key, &ca_key.serialize_pem())?;
    write_file(&files.serving_cert, &serving_cert.pem())?;
    write_file(&files.serving_key, &serving_key.serialize_pem())?;
    write_file(&files.sa_key, &sa_key.serialize_pem())?;
    write_file(&files.sa_pub, &sa_key.public_key_pem())?;
    Ok(files)
}

/// Writes `contents` to `path`, readable by the owner only (keys and tokens live here).
pub fn write_file(path: &Path, contents: &str) -> Result<(), LocalError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| LocalError::Io { path: path.to_path_buf(), cause: source };
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)
}

/// A random bearer token (hex), from the kernel's RNG.
pub fn random_token() -> Result<String, LocalError> {
    let mut buf = [0u8; 24];
    let path = Path::new("/dev/urandom");
    use std::io::Read;
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| LocalError::Io { path: path.to_path_buf(), cause: source })?;
    Ok(hex::encode(buf))
}
