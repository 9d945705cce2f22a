//! The HTTP layer: routes, middleware (correlation ids, API-key auth) and the Codat DTOs.

mod api_keys;
mod commerce;
pub use api_keys::generate_api_key;
mod companies;
mod connections;
mod console;
pub mod dto;
pub mod error;
mod extract;
mod history;
mod integrations;
pub mod limits;
mod link;
pub mod openapi;
mod openapi_contract;
mod refresh;
mod settings;
mod ui;
mod webhooks;
pub use ui::ConsoleOptions;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use error::ApiError;
use std::time::Instant;
use tributary_domain::service::Platform;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The platform use cases.
    pub platform: Platform,
    /// The link flow.
    pub linking: tributary_domain::service::Linking,
    /// Wakes idle sync workers when pulls are queued.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// Wakes the webhook delivery worker when events may be waiting.
    pub webhook_wake: std::sync::Arc<tokio::sync::Notify>,
    /// The operator console's sessions and the HTML pages' security headers.
    pub console: ConsoleOptions,
    /// The store, for readiness.
    pub store: crate::store::Store,
    /// Metrics, when they are on.
    pub scrape: Option<crate::metrics::Scrape>,
    /// Requests per API key, failed authentications per address.
    pub limits: std::sync::Arc<limits::Limits>,
}

/// Name of the response header carrying the request's correlation id.
pub const CORRELATION_HEADER: &str = "correlation-id";

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics))
        .merge(companies::routes())
        .merge(connections::routes())
        .merge(integrations::routes())
        .merge(settings::routes())
        .merge(api_keys::routes())
        .merge(history::routes())
        .merge(refresh::routes())
        .merge(commerce::routes())
        .merge(webhooks::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_api_key));
    let pages = Router::new()
        .route("/link/assets/stripe.svg", get(integrations::logo))
        .merge(link::routes())
        .merge(console::routes())
        .merge(ui::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), ui::security_headers));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(pages)
        .merge(api)
        .route_layer(middleware::from_fn(matched_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(correlate))
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /ready`: 200 when the database answers (within 1.5 s) and its migrations are current,
/// 503 with the reason otherwise. `/health` says only that the process serves.
async fn ready(State(s): State<AppState>) -> Response {
    let unavailable = |reason: String| {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "unavailable", "reason": reason}))).into_response()
    };
    match tokio::time::timeout(std::time::Duration::from_millis(1500), s.store.ready()).await {
        Ok(Ok(())) => Json(serde_json::json!({"status": "ready"})).into_response(),
        // The detail (which may name the database's user or host) goes to the log; the probe,
        // which needs no API key, gets what kind of failure it is.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            let reason = e.to_string();
            unavailable(if reason.contains("migrations not applied") { reason } else { "the database does not answer".into() })
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within 1.5 s");
            unavailable("the database did not answer within 1.5 s".into())
        }
    }
}

/// The Prometheus text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` on the main listener (behind the API key, like the API).
async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let scrape = s.scrape.ok_or_else(|| ApiError::not_found("Metrics are off (metrics_enabled = false)."))?;
    Ok(([(header::CONTENT_TYPE, EXPOSITION)], scrape.render().await).into_response())
}

/// The router of `metrics_listen`: only `/metrics`, without authentication.
pub fn metrics_router(scrape: crate::metrics::Scrape) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let scrape = scrape.clone();
            async move { ([(header::CONTENT_TYPE, EXPOSITION)], scrape.render().await) }
        }),
    )
}

/// The matched route template, carried to the correlation middleware for the HTTP metrics.
#[derive(Clone)]
struct RouteLabel(String);

async fn matched_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned());
    let mut res = next.run(req).await;
    if let Some(r) = route {
        res.extensions_mut().insert(RouteLabel(r));
    }
    res
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("No route matches {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed on {}", req.method(), req.uri().path()))
}

/// Gives every request a correlation id (header and log), renders [`ApiError`]s in Codat's
/// envelope with that id, and logs each request once.
async fn correlate(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", correlation_id = %id, http.method = %method, http.path = %path);
    let mut res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    // Never a raw path (ids would make a series per object): the route template, or `unmatched`.
    let route = res.extensions().get::<RouteLabel>().map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    // A plain-text error from a layer or extractor of the framework (a path segment that is not
    // UTF-8, say) is put in Codat's envelope like every other error.
    let plain_error = (res.status().is_client_error() || res.status().is_server_error())
        && res.extensions().get::<ApiError>().is_none()
        && res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/plain"));
    if plain_error {
        let status = res.status();
        let text = axum::body::to_bytes(std::mem::take(res.body_mut()), 64 * 1024).await.unwrap_or_default();
        let message = String::from_utf8_lossy(&text).trim().to_owned();
        let err = if status.is_server_error() { ApiError::internal(message) } else { ApiError::new(status, message) };
        res.extensions_mut().insert(err);
    }
    if let Some(err) = res.extensions_mut().remove::<ApiError>() {
        if let Some(detail) = &err.internal {
            tracing::error!(parent: &span, error = %detail, "request failed");
        }
        let body = serde_json::to_vec(&err.envelope(&id)).unwrap_or_default();
        let mut new = Response::new(Body::from(body));
        *new.status_mut() = err.status;
        new.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        // What the layers added (Allow, Retry-After, rate and security headers) stays.
        for (name, value) in res.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                new.headers_mut().append(name, value.clone());
            }
        }
        res = new;
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(CORRELATION_HEADER, v);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A fixed set of methods: a client cannot make a series per made-up method.
    let method_label: &'static str = match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    metrics::counter!(crate::metrics::HTTP_REQUESTS, "route" => route.clone(), "method" => method_label, "status" => res.status().as_u16().to_string())
        .increment(1);
    metrics::histogram!(crate::metrics::HTTP_DURATION, "route" => route, "method" => method_label).record(elapsed);
    let status = res.status().as_u16();
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if matches!(path.as_str(), "/health" | "/ready" | "/metrics") && res.status().is_success() {
        // Probes and scrapes come every few seconds: only at debug level.
        tracing::debug!(parent: &span, status, latency_ms, "{method} {path}");
    } else {
        tracing::info!(parent: &span, status, latency_ms, "{method} {path}");
    }
    res
}

/// The client's address: the connection's peer when the server was started with it (`serve_on`
/// does), or behind a trusted proxy what it forwarded (`rate_limits.trust_forwarded_for`).
pub(crate) fn client_addr(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> Option<std::net::IpAddr> {
    let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    state.limits.client(peer, headers)
}

/// 429 in Codat's envelope with `Retry-After`.
fn too_many(wait: std::time::Duration) -> Response {
    let mut res =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "You have made too many requests in a given amount of time; please retry later.")
            .into_response();
    limits::retry_after(res.headers_mut(), wait);
    res
}

/// `Authorization: Basic base64(apiKey)`, checked against the stored key hashes; then the key's
/// request limit. An address that failed to authenticate too often is refused before its key is
/// checked.
async fn require_api_key(State(state): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() == Method::OPTIONS {
        return Ok(next.run(req).await);
    }
    let addr = client_addr(&state, req.extensions(), req.headers());
    if let Some(wait) = state.limits.auth_blocked(addr, Instant::now()) {
        return Ok(too_many(wait));
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim().to_owned())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        // Tolerate clients that send HTTP Basic `key:` with an empty password.
        .map(|k| k.strip_suffix(':').map(str::to_owned).unwrap_or(k));
    let Some(key) = presented.filter(|k| !k.is_empty()) else {
        state.limits.auth_failed(addr, Instant::now());
        return Err(ApiError::unauthorized());
    };
    let Some(api_key) = state.platform.api_keys().authenticate(&key).await? else {
        state.limits.auth_failed(addr, Instant::now());
        return Err(ApiError::unauthorized());
    };
    match state.limits.take_key(&api_key.id.to_string(), Instant::now()) {
        Err(over) => {
            let mut res = too_many(over.resets_in);
            limits::rate_headers(res.headers_mut(), over);
            Ok(res)
        }
        Ok(taken) => {
            let mut res = next.run(req).await;
            if let Some(t) = taken {
                limits::rate_headers(res.headers_mut(), t);
            }
            Ok(res)
        }
    }
}
