//! The HTTP server: routes, `Request-Id`/`Stripe-Version` headers, request counters, rate limits
//! and fault injection.

use crate::api::{self, error};
use crate::state::{Config, Sandbox};
use crate::{control, oauth};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The router for a sandbox.
pub fn router(s: Arc<Sandbox>) -> Router {
    let stripe = Router::new()
        .route("/v1/account", get(api::account))
        .route("/v1/balance", get(api::balance))
        .route("/v1/balance/history", get(api::balance_history))
        .route("/v1/{list}", get(api::list))
        .route("/v1/{list}/{id}", get(api::retrieve))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/deauthorize", post(oauth::deauthorize))
        .layer(middleware::from_fn_with_state(s.clone(), limits_and_faults));
    let control = Router::new()
        .route("/_sandbox/accounts", post(control::create_account).get(control::list_accounts))
        .route("/_sandbox/accounts/{id}/objects/{type}", post(control::create_object))
        .route("/_sandbox/accounts/{id}/objects/{type}/{object}", post(control::update_object).delete(control::delete_object))
        .route("/_sandbox/accounts/{id}/summary", get(control::summary))
        .route("/_sandbox/accounts/{id}/stats", get(control::stats).delete(control::reset_stats))
        .route("/_sandbox/webhook_endpoints", post(control::create_endpoint))
        .route("/_sandbox/rate_limits", axum::routing::put(control::set_rate_limits))
        .route("/_sandbox/keys", axum::routing::put(control::roll_keys))
        .route("/_sandbox/faults", axum::routing::put(control::set_faults).delete(control::clear_faults))
        .route("/_sandbox/oauth/approve", post(oauth::approve_json));
    Router::new()
        .route("/oauth/authorize", get(oauth::authorize_page).post(oauth::decide))
        .merge(stripe)
        .merge(control)
        .fallback(api::not_found)
        .layer(middleware::from_fn(headers))
        .with_state(s)
}

/// `Request-Id` on every response, the requested `Stripe-Version` echoed, and
/// `Stripe-Should-Retry` on server errors.
async fn headers(req: Request, next: Next) -> Response {
    let version = api::version_of(req.headers());
    let mut res = next.run(req).await;
    let id: String = {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(1);
        format!("req_{:014x}", N.fetch_add(1, Ordering::Relaxed))
    };
    let h = res.headers_mut();
    h.insert("request-id", HeaderValue::from_str(&id).expect("ascii"));
    if let Ok(v) = HeaderValue::from_str(&version) {
        h.insert("stripe-version", v);
    }
    if res.status().is_server_error() && !res.headers().contains_key("stripe-should-retry") {
        res.headers_mut().insert("stripe-should-retry", HeaderValue::from_static("true"));
    }
    res
}

fn template(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() == 4 && parts[1] == "v1" && !matches!(parts[2], "balance") {
        format!("/v1/{}/{{id}}", parts[2])
    } else {
        path.to_owned()
    }
}

/// Counts requests per connected account, injects configured faults, and enforces the per-account
/// rate limit (`429` with `Stripe-Rate-Limited-Reason`).
async fn limits_and_faults(State(s): State<Arc<Sandbox>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let key = format!("{method} {path}");
    let tmpl = format!("{method} {}", template(&path));
    let account = req.headers().get("stripe-account").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = req.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mode = api::presented_key(req.headers()).and_then(|k| s.mode_of_key(&k));
    if let Some(acc) = account.as_deref().and_then(|a| s.account(a))
        && let Ok(mut a) = acc.write()
    {
        *a.stats.entry(tmpl.clone()).or_default() += 1;
        *a.hosts.entry(host).or_default() += 1;
    }
    let fault = s.fault_for(&key, &tmpl);
    if let Some(f) = &fault {
        if f.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
        }
        let roll = s.dice();
        if roll < f.p429 {
            return rate_limited("Too many requests hit the API too quickly (injected fault).");
        }
        if roll < f.p429 + f.p500 {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, "An unknown error occurred (injected fault).", None);
        }
        if roll < f.p429 + f.p500 + f.p_drop {
            return broken(None);
        }
    }
    if let (Some(acc), Some(mode)) = (account.as_deref(), mode) {
        let allowed = s.take_token(acc, mode);
        if let Some(a) = s.account(acc)
            && let Ok(mut a) = a.write()
        {
            // The request's arrival at the limiter, per 100 ms (after any injected latency: when
            // Stripe would count it).
            let start = *a.timeline_start.get_or_insert_with(std::time::Instant::now);
            let slot = usize::try_from(start.elapsed().as_millis() / 100).unwrap_or(usize::MAX).min(1_000_000);
            if a.timeline.len() <= slot {
                a.timeline.resize(slot + 1, 0);
            }
            a.timeline[slot] += 1;
            if !allowed {
                a.rate_limited += 1;
            }
        }
        if !allowed {
            return rate_limited("Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.");
        }
    }
    let res = next.run(req).await;
    if let Some(f) = fault
        && s.dice() < f.p_truncate
    {
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        return broken(Some((parts, bytes)));
    }
    res
}

/// Stripe's 429: a rate-limit error with `Stripe-Rate-Limited-Reason`.
fn rate_limited(message: &str) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "invalid_request_error", Some("rate_limit"), message, None);
    r.headers_mut().insert("stripe-rate-limited-reason", HeaderValue::from_static("global-rate"));
    r
}

/// A response whose body breaks off: with `Some`, after half the bytes under the full
/// `Content-Length` (a truncated body); with `None`, before any byte (a dropped connection).
fn broken(partial: Option<(axum::http::response::Parts, Bytes)>) -> Response {
    let err = || std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "injected fault");
    match partial {
        Some((mut parts, bytes)) => {
            let half = bytes.slice(..bytes.len() / 2);
            parts.headers.insert("content-length", HeaderValue::from(bytes.len()));
            let stream = futures_util::stream::iter(vec![Ok(half), Err(err())]);
            Response::from_parts(parts, Body::from_stream(stream))
        }
        None => {
            let stream = futures_util::stream::iter(vec![Err::<Bytes, _>(err())]);
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert("content-length", HeaderValue::from(1024u32));
            r
        }
    }
}

/// A running sandbox.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (for tests that need to look inside).
    pub sandbox: Arc<Sandbox>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Base URL, e.g. `http://127.0.0.1:12111`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts a sandbox on `config.listen` (`127.0.0.1:0` picks a free port).
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let sandbox = Sandbox::new(config);
    let app = router(sandbox.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Running { addr, sandbox, shutdown: Some(tx), task })
}
