//! An S3-compatible server (moto, from PyPI) on 127.0.0.1, for backup tests
//! and, later, Route53 prerequisites. Killed with the test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rekube_cluster::local::cache_dir;

use crate::SETUP_HINT;

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts `moto_server` from the test bed's venv and waits until it answers.
    pub async fn start() -> Self {
        let bin = std::env::var_os("REKUBE_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join("venv/bin/moto_server"));
        assert!(bin.is_file(), "test bed: moto_server not found at {}\n(set it up with `{SETUP_HINT}`)", bin.display());
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the server dies with this thread.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("test bed: cannot start {}: {e}", bin.display()));
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        // reqwest is built without a default TLS provider (the backup crate
        // picks ring for the whole process); pick the same one here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let began = Instant::now();
        loop {
            if let Ok(r) = http.get(&moto.endpoint).send().await
                && r.status().is_success()
            {
                return moto;
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "test bed: moto did not answer on {} within 30 s",
                moto.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint (any credentials are accepted).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The venv's `python3`, which has boto3 (a real S3 client) installed.
    pub fn python(&self) -> PathBuf {
        cache_dir().join("venv/bin/python3")
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
