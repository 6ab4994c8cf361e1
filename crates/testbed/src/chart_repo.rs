//! A Helm chart repository on 127.0.0.1: charts packaged by the real `helm`,
//! an `index.yaml` made by `helm repo index`, served over HTTP. It counts
//! requests, so tests can prove that a warm cache needs no network.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tempfile::TempDir;

use crate::tools::{helm_command, run};

/// A served chart repository; stops on drop.
pub struct ChartRepo {
    dir: TempDir,
    url: String,
    server: Arc<tiny_http::Server>,
    requests: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl ChartRepo {
    /// Packages every chart directory in `charts` and serves them.
    pub fn serve(charts: &[&Path]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let url = format!("http://127.0.0.1:{port}");
        let requests = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (server, root, requests) = (server.clone(), dir.path().to_path_buf(), requests.clone());
            std::thread::spawn(move || serve(&server, &root, &requests))
        };
        let repo = Self { dir, url, server, requests, thread: Some(thread) };
        for chart in charts {
            repo.add(chart);
        }
        repo
    }

    /// Packages one more chart directory and re-indexes.
    pub fn add(&self, chart: &Path) {
        let home = self.dir.path().join(".helm");
        run(helm_command(&home).arg("package").arg(chart).arg("--destination").arg(self.dir.path()));
        run(helm_command(&home).args(["repo", "index"]).arg(self.dir.path()).args(["--url", &self.url]));
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory being served.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of a packaged chart, e.g. `hello-0.1.0.tgz`.
    pub fn archive(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// HTTP requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ChartRepo {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, root: &Path, requests: &AtomicUsize) {
    for request in server.incoming_requests() {
        requests.fetch_add(1, Ordering::SeqCst);
        let path = request.url().split('?').next().unwrap_or("/").trim_start_matches('/');
        let safe = !path.is_empty() && !path.split('/').any(|p| p == ".." || p.is_empty());
        let file = root.join(path);
        let response = match (safe, std::fs::File::open(&file)) {
            (true, Ok(f)) if file.is_file() => {
                let _ = request.respond(tiny_http::Response::from_file(f));
                continue;
            }
            _ => tiny_http::Response::from_string("not found").with_status_code(404),
        };
        let _ = request.respond(response);
    }
}
