//! A fault proxy: a real HTTP server on 127.0.0.1 in front of a real API
//! server, that forwards every request and, for a seeded share of them,
//! answers with a fault instead:
//!
//! - `500`, `503`, and `429` with `Retry-After: 1`;
//! - `409` (on GET, PATCH and DELETE: a POST or PUT that conflicts is a real
//!   conflict the caller must see, and a proxy cannot fake one truthfully);
//! - a dropped connection (no answer at all);
//! - a reset mid-body (the upstream answer's headers and half its body, then
//!   the connection closes; a watch, whose body never ends, is dropped
//!   instead);
//! - a 2 s stall before the request is forwarded.
//!
//! rekube reaches it through a kubeconfig ([`FaultProxy::kubeconfig`]) with
//! no credentials: the proxy talks to the API server with the test
//! cluster's own client. What it injected is counted per kind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;

/// The kinds of fault, as counted.
pub const KINDS: [&str; 7] = ["500", "503", "429", "409", "drop", "reset", "stall"];

type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A seeded xorshift: the same seed gives the same faults for the same requests.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Shared {
    upstream: kube::Client,
    rate: f64,
    dice: Mutex<Dice>,
    injected: [AtomicU64; 7],
    requests: AtomicU64,
}

/// A running fault proxy; stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` that faults `rate` (0.0–1.0) of the
    /// requests, chosen by `seed`.
    pub async fn start(upstream: kube::Client, rate: f64, seed: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("an address");
        let shared = Arc::new(Shared {
            upstream,
            rate,
            dice: Mutex::new(Dice(seed.max(1))),
            injected: Default::default(),
            requests: AtomicU64::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the share of requests faulted from now on (0.0 turns it off).
    pub fn set_rate(&mut self, rate: f64) {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.rate = rate;
        }
    }

    /// Writes a kubeconfig for the proxy, context `context`, into `dir`.
    pub fn kubeconfig(&self, dir: &Path, context: &str) -> PathBuf {
        let path = dir.join(format!("{context}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster: {{ server: \"{}\" }}\n\
             users:\n- name: {context}\n  user: {{}}\ncontexts:\n- name: {context}\n  \
             context: {{ cluster: {context}, user: {context} }}\ncurrent-context: {context}\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write the proxy's kubeconfig");
        path
    }

    /// Faults injected so far, by kind (every kind listed).
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        KINDS.iter().zip(&self.shared.injected).map(|(k, n)| (*k, n.load(Ordering::Relaxed))).collect()
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Resets the counts.
    pub fn reset_counts(&self) {
        for n in &self.shared.injected {
            n.store(0, Ordering::Relaxed);
        }
        self.shared.requests.store(0, Ordering::Relaxed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// A Kubernetes `Status` answer for an injected fault.
fn status_body(code: u16) -> String {
    let (reason, message) = match code {
        409 => ("Conflict", "injected conflict"),
        429 => ("TooManyRequests", "injected throttling"),
        503 => ("ServiceUnavailable", "injected unavailability"),
        _ => ("InternalError", "injected server error"),
    };
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": message, "reason": reason, "code": code})
    .to_string()
}

async fn handle(s: Arc<Shared>, req: Request<Incoming>) -> Result<Response<ProxyBody>, std::io::Error> {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let fault = {
        let mut d = s.dice.lock().expect("dice");
        if d.unit() < s.rate { Some(d.next() % 7) } else { None }
    };
    let conflict_ok = !matches!(*req.method(), Method::POST | Method::PUT);
    // A watch's body never ends: it cannot be cut half-way, so it is dropped instead.
    let watch = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let fault = match fault {
        Some(3) if !conflict_ok => Some(0),
        Some(5) if watch => Some(4),
        f => f,
    };
    if let Some(k) = fault {
        s.injected[k as usize].fetch_add(1, Ordering::Relaxed);
    }
    match fault {
        Some(0) => return Ok(full(StatusCode::INTERNAL_SERVER_ERROR, status_body(500))),
        Some(1) => return Ok(full(StatusCode::SERVICE_UNAVAILABLE, status_body(503))),
        Some(2) => {
            let mut r = full(StatusCode::TOO_MANY_REQUESTS, status_body(429));
            r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return Ok(r);
        }
        Some(3) => return Ok(full(StatusCode::CONFLICT, status_body(409))),
        Some(4) => return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "injected drop")),
        Some(6) => tokio::time::sleep(Duration::from_secs(2)).await,
        _ => {}
    }
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let mut up = Request::builder()
        .method(parts.method)
        .uri(parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()));
    for (k, v) in &parts.headers {
        if k != http::header::HOST && k != http::header::AUTHORIZATION {
            up = up.header(k, v);
        }
    }
    let up = up.body(kube::client::Body::from(bytes.to_vec())).map_err(std::io::Error::other)?;
    let resp = match s.upstream.send(up).await {
        Ok(r) => r,
        Err(e) => return Ok(full(StatusCode::BAD_GATEWAY, format!("{{\"message\":\"upstream: {e}\"}}"))),
    };
    let (parts, body) = resp.into_parts();
    if fault == Some(5) {
        // Headers and half the body, then the connection ends.
        let all = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
        let half = all.slice(..all.len() / 2);
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(half)),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")),
        ];
        let mut r = Response::from_parts(parts, StreamBody::new(futures::stream::iter(frames)).boxed_unsync());
        r.headers_mut().remove(http::header::CONTENT_LENGTH);
        return Ok(r);
    }
    let body = body.map_err(std::io::Error::other).boxed_unsync();
    Ok(Response::from_parts(parts, body))
}
