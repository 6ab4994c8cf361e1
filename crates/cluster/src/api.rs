//! The request layer: every Kubernetes API call rekube makes (LIST, GET,
//! dry-run, apply, delete, watch, restore's create and replace, the lease)
//! goes through the one client stack built here, so retries are decided in
//! one place rather than around each call.
//!
//! On top of kube's own stack (TLS, auth, base URI) sits a [`Buffer`] (so a
//! request can be sent again) and [`Resilient`]:
//!
//! - **What is retried:** 429, 500, 502, 503 and 504; 409 except for POST
//!   and PUT (a create that finds its object, or an update whose
//!   resourceVersion moved, is a real conflict that the caller re-reads);
//!   connections that fail or drop; and responses cut off mid-body (every
//!   answer but a watch stream is read whole here, so a reset half-way is a
//!   failed attempt, not a broken object).
//! - **How:** exponential backoff from 100 ms doubling to 5 s, with full
//!   jitter (each wait is random in [d/2, d]), or the server's
//!   `Retry-After` when it gives one. It keeps trying until the request's
//!   retry budget is spent: 60 s, or `REKUBE_API_RETRY_FOR` (`30s`, `2m`).
//!   Then the last answer goes up as kube's typed error.
//! - **Watches:** the request that opens a stream is retried; the stream
//!   itself is the watcher's to resume (kube-runtime's backoff).
//!
//! kube's built-in retry layer (429/503/504 only) is turned off in its
//! favour, so a request is never retried by two layers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use kube::client::{Body, ClientBuilder, DynBody};
use tower::buffer::BufferLayer;
use tower::util::rng::{HasherRng, Rng};
use tower::{BoxError, Layer, Service, ServiceExt};

/// The variable that sets each request's retry budget.
pub const RETRY_VAR: &str = "REKUBE_API_RETRY_FOR";

/// How long one request is retried by default.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(60);

const FIRST_WAIT: Duration = Duration::from_millis(100);
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Requests sent, in this process (for the kill matrix).
static SENT: AtomicU64 = AtomicU64::new(0);

/// `REKUBE_API_RETRY_FOR`, or the default; an error says why it is not a duration.
pub fn retry_budget() -> Result<Duration, String> {
    let Some(text) = std::env::var_os(RETRY_VAR) else { return Ok(DEFAULT_RETRY_FOR) };
    let text = text.to_string_lossy();
    humantime::parse_duration(text.trim()).map_err(|e| format!("{RETRY_VAR}=`{text}` is not a duration ({e})"))
}

/// A client for `config` with the request layer on top.
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    let budget = retry_budget().unwrap_or(DEFAULT_RETRY_FOR);
    let builder = ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&BufferLayer::new(1024)).with_layer(&ResilientLayer { budget }).build())
}

/// Makes [`Resilient`] services.
#[derive(Debug, Clone, Copy)]
pub struct ResilientLayer {
    /// How long one request may be retried.
    pub budget: Duration,
}

impl<S> Layer<S> for ResilientLayer {
    type Service = Resilient<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Resilient { inner, budget: self.budget }
    }
}

/// The retrying service; see the module docs.
#[derive(Debug, Clone)]
pub struct Resilient<S> {
    inner: S,
    budget: Duration,
}

/// What [`Resilient`] answers: a body read whole, or a watch stream.
pub type Answer = Response<Either<Full<Bytes>, Box<DynBody>>>;

type Attempt = Result<Response<Box<DynBody>>, BoxError>;

/// Whether an answer is worth another try, for this method.
fn retryable_status(method: &Method, status: StatusCode) -> bool {
    match status.as_u16() {
        429 | 500 | 502 | 503 | 504 => true,
        409 => *method != Method::POST && *method != Method::PUT,
        _ => false,
    }
}

fn is_watch(req: &Request<Body>) -> bool {
    req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// The server's `Retry-After`, in whole seconds.
fn retry_after(resp: &Response<Box<DynBody>>) -> Option<Duration> {
    let v = resp.headers().get(http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The wait before attempt `n + 1` (n from 1): doubling, capped, jittered.
fn backoff(n: u32, rng: &mut HasherRng) -> Duration {
    let d = FIRST_WAIT.saturating_mul(1u32 << n.min(16).saturating_sub(1)).min(LONGEST_WAIT);
    d.mul_f64(0.5 + rng.next_f64() / 2.0)
}

fn copy_request(req: &Request<Body>) -> Option<Request<Body>> {
    let body = req.body().try_clone()?;
    let mut b = Request::builder().method(req.method().clone()).uri(req.uri().clone()).version(req.version());
    if let Some(h) = b.headers_mut() {
        h.extend(req.headers().clone());
    }
    let mut copy = b.body(body).ok()?;
    *copy.extensions_mut() = req.extensions().clone();
    Some(copy)
}

/// Test builds only: `REKUBE_KILL_AT_REQUEST=N` kills the process as it
/// sends its Nth API request, so the kill matrix can stop an operation at
/// any point of its work.
fn count_request() {
    let n = SENT.fetch_add(1, Ordering::Relaxed) + 1;
    kill_point("REKUBE_KILL_AT_REQUEST", &n.to_string());
}

/// Test builds only: when `var` is set to `point`, the process kills itself
/// with SIGKILL right there, as `kill -9` would. Release builds ignore it.
pub fn kill_point(var: &str, point: &str) {
    if cfg!(debug_assertions) && std::env::var(var).is_ok_and(|p| p == point) {
        // SAFETY: kill(2) on our own PID; nothing after it runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

impl<S> Service<Request<Body>> for Resilient<S>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is awaited per attempt, on a clone, inside the future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let budget = self.budget;
        Box::pin(send(inner, req, budget))
    }
}

async fn send<S>(inner: S, req: Request<Body>, budget: Duration) -> Result<Answer, BoxError>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    count_request();
    let began = Instant::now();
    let watch = is_watch(&req);
    let method = req.method().clone();
    let mut rng = HasherRng::default();
    // A body that cannot be copied (a stream) is sent once.
    let spare = copy_request(&req);
    let mut next = Some(req);
    // On the last attempt, its answer goes up as it is.
    let mut last = spare.is_none();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let this = next.take().ok_or("a request to send")?;
        let result: Attempt = inner.clone().oneshot(this).await;
        let wait = match result {
            Ok(resp) if !last && retryable_status(&method, resp.status()) => {
                retry_after(&resp).unwrap_or_else(|| backoff(attempt, &mut rng))
            }
            Ok(resp) if watch => return Ok(resp.map(Either::Right)),
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                match body.collect().await {
                    Ok(b) => return Ok(Response::from_parts(parts, Either::Left(Full::new(b.to_bytes())))),
                    Err(e) if last => return Err(e),
                    Err(_) => backoff(attempt, &mut rng),
                }
            }
            Err(e) if last => return Err(e),
            Err(_) => backoff(attempt, &mut rng),
        };
        let left = budget.saturating_sub(began.elapsed());
        // Out of budget: one last try, at once.
        last = left.is_zero();
        tokio::time::sleep(wait.min(left)).await;
        next = spare.as_ref().and_then(copy_request);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_retried_only_where_a_retry_cannot_hide_a_real_one() {
        assert!(retryable_status(&Method::PATCH, StatusCode::CONFLICT));
        assert!(retryable_status(&Method::GET, StatusCode::CONFLICT));
        assert!(!retryable_status(&Method::POST, StatusCode::CONFLICT), "a create that finds its object");
        assert!(!retryable_status(&Method::PUT, StatusCode::CONFLICT), "an update whose resourceVersion moved");
        for s in [429, 500, 502, 503, 504] {
            assert!(retryable_status(&Method::DELETE, StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 422] {
            assert!(!retryable_status(&Method::GET, StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn waits_double_to_a_cap_with_jitter() {
        let mut rng = HasherRng::default();
        for n in 1..20 {
            let full = FIRST_WAIT.saturating_mul(1u32 << (n - 1).min(15)).min(LONGEST_WAIT);
            let w = backoff(n, &mut rng);
            assert!(w >= full / 2 && w <= full, "attempt {n}: {w:?} not in [{:?}, {full:?}]", full / 2);
        }
        let waits: std::collections::BTreeSet<Duration> = (0..20).map(|_| backoff(8, &mut rng)).collect();
        assert!(waits.len() > 10, "jittered, not fixed: {waits:?}");
    }

    #[test]
    fn watches_are_recognised_by_their_query() {
        let r = |q: &str| Request::get(format!("/api/v1/pods{q}")).body(Body::empty()).unwrap();
        assert!(is_watch(&r("?watch=true&resourceVersion=1")));
        assert!(is_watch(&r("?labelSelector=a&watch=1")));
        assert!(!is_watch(&r("?limit=500")));
        assert!(!is_watch(&r("")));
    }
}
