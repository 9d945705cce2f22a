//! The HTTP side of the data source: `GET {api_base}/v1/…` as a Connect platform reading one
//! connected account, within the account's budget (`budget`), with retries with exponential
//! backoff and jitter, and classification of what still fails into [`SourceError`].
//!
//! Retried: connection failures, bodies that break off or are not JSON, `429`, `409` and `5xx` —
//! unless Stripe answers `Stripe-Should-Retry: false`; any other status is retried only when
//! Stripe answers `Stripe-Should-Retry: true`. Every attempt, retries included, takes an in-flight
//! slot and a token of the account's budget; a `429` also lowers the budget.

use super::budget::{Limited, SharedBudgets};
use crate::redact::redact;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tributary_domain::ports::oauth::PlatformCredentials;
use tributary_domain::ports::source::SourceError;
use url::Url;

/// The Stripe API version every request pins.
pub const STRIPE_API_VERSION: &str = "2026-10-28.endive";
/// Timeout for establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout for a whole request, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 6;
/// Backoff before the first retry; it doubles for each further retry, up to the maximum.
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts by default.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The retry policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) max_retries: u32,
    pub(crate) base_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): `base * 2^(retry-1)`, capped, times a
    /// random factor in `[0.5, 1]`.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        let random = std::collections::hash_map::RandomState::new().hash_one((retry, Instant::now()));
        #[expect(clippy::cast_precision_loss, reason = "53 random bits are plenty for jitter")]
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
        capped.mul_f64(0.5 * (1.0 + unit))
    }
}

/// Why a request failed once retries were exhausted (or were not allowed).
#[derive(Debug, Clone)]
pub(crate) enum ApiError {
    /// Stripe answered with an error status.
    Status {
        /// `GET /v1/…` (no query).
        what: String,
        /// HTTP status.
        status: u16,
        /// `error.code`, else `error.type`.
        code: Option<String>,
        /// `error.param`.
        param: Option<String>,
        /// `error.message`, redacted.
        message: String,
        /// `Request-Id`.
        request_id: Option<String>,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
        /// Attempts made.
        attempts: u32,
    },
    /// No usable answer: the connection failed or the body broke off or was not JSON.
    Transport {
        /// `GET /v1/…`.
        what: String,
        /// What went wrong, redacted.
        problem: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl ApiError {
    /// The HTTP status, if Stripe answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Transport { .. } => None,
        }
    }

    /// Whether this is `400 resource_missing` for the `starting_after` parameter (the object
    /// a cursor points at has gone).
    pub(crate) fn is_missing_cursor(&self) -> bool {
        matches!(self, Self::Status { status: 400, code: Some(c), param: Some(p), .. } if c == "resource_missing" && p == "starting_after")
    }

    fn tries(attempts: u32) -> String {
        if attempts == 1 { "1 attempt".to_owned() } else { format!("{attempts} attempts") }
    }

    /// Maps the failure to the port's error: 401 → `PlatformAuth`; 403 → `Auth` for `account_invalid`
    /// (revoked or unconnected account), else `Permission`; 429 (or 400 `rate_limit`) →
    /// `RateLimited`; anything else → `Fetch`.
    pub(crate) fn into_source_error(self) -> SourceError {
        match self {
            Self::Transport { what, problem, attempts } => SourceError::Fetch(format!("{what}: {problem} ({})", Self::tries(attempts))),
            Self::Status { what, status, code, message, request_id, retry_after, attempts, .. } => {
                let code_text = code.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
                let rid = request_id.map(|r| format!(" [{r}]")).unwrap_or_default();
                let text = format!("{what}: Stripe answered HTTP {status}{code_text}: {message}{rid} ({})", Self::tries(attempts));
                // Stripe has answered a revoked connection with 401 as well as 403: what names the
                // account (its code, or "does not have access to account") is the merchant's doing.
                let account_refused = code.as_deref() == Some("account_invalid") || message.contains("does not have access to account");
                match (status, code.as_deref()) {
                    (401 | 403, _) if account_refused => SourceError::Auth(text),
                    // Every request authenticates with the platform's key: any other 401 is about it
                    // (wrong, rolled, expired), not about the merchant.
                    (401, _) => SourceError::PlatformAuth(text),
                    (403, _) => SourceError::Permission(text),
                    (429, _) | (400, Some("rate_limit")) => SourceError::RateLimited { message: text, retry_after },
                    _ => SourceError::Fetch(text),
                }
            }
        }
    }
}

/// Stripe API requests by endpoint (path template) and status (`error`: no answer).
pub const REQUESTS: &str = "tributary_stripe_requests_total";
/// Time per Stripe API request, by endpoint.
pub const REQUEST_DURATION: &str = "tributary_stripe_request_duration_seconds";
/// `429` answers received.
pub const RATE_LIMITED: &str = "tributary_stripe_rate_limited_total";

/// Counters of the requests a data source has made (for logs, metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceStats {
    /// HTTP attempts sent, retries included.
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// `429` answers received.
    pub rate_limited: u64,
    /// Time requests spent waiting for the client-side budget (slots and tokens), summed.
    pub throttle_wait: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    throttle_wait_micros: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SourceStats {
        SourceStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            throttle_wait: Duration::from_micros(self.throttle_wait_micros.load(Ordering::Relaxed)),
        }
    }
}

/// The Stripe API client of one data source.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) base: Url,
    pub(crate) http: reqwest::Client,
    pub(crate) retry: RetryPolicy,
    pub(crate) budgets: SharedBudgets,
    pub(crate) counters: Counters,
}

/// What one attempt gave (`limited`: Stripe refused it for its rate, and why).
enum Attempt {
    Done(Value),
    /// Worth another try (after `at_least`, when Stripe said how long).
    Retry {
        error: ApiError,
        at_least: Option<Duration>,
        limited: Option<Limited>,
    },
    Final {
        error: ApiError,
        limited: Option<Limited>,
    },
}

impl Api {
    /// `{base}/v1/{segments…}`, keeping any path prefix of the base; segments are percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut s) = url.path_segments_mut() {
            s.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    /// `GET /v1/{segments…}?{query}` for `account`, retried as the policy allows.
    pub(crate) async fn get(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let mut url = self.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let what = format!("GET /v1/{}", segments.join("/"));
        // The endpoint as Stripe limits it: the list, or a retrieve of one object.
        let endpoint = if segments.len() > 1 { format!("GET /v1/{}/{{id}}", segments[0]) } else { what.clone() };
        // Its path template, for metrics (never an object id).
        let template = endpoint.trim_start_matches("GET ").to_owned();
        let key = creds.secret_key.expose_secret();
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let (slot, waited) = self.budgets.acquire(creds.mode, account, &endpoint).await;
            self.counters.throttle_wait_micros.fetch_add(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            if attempts > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let sent = std::time::Instant::now();
            let (outcome, status) = self.attempt(&url, &what, key, account, attempts).await;
            drop(slot);
            let took = sent.elapsed();
            self.budgets.observe(creds.mode, account, took);
            let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
            metrics::counter!(REQUESTS, "endpoint" => template.clone(), "status" => status).increment(1);
            metrics::histogram!(REQUEST_DURATION, "endpoint" => template.clone()).record(took.as_secs_f64());
            if let Attempt::Retry { limited: Some(why), .. } | Attempt::Final { limited: Some(why), .. } = &outcome {
                self.budgets.limited(creds.mode, account, &endpoint, *why);
            }
            let (error, at_least) = match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Final { error, .. } => return Err(error),
                Attempt::Retry { error, at_least, .. } => (error, at_least),
            };
            if attempts > self.retry.max_retries {
                return Err(error);
            }
            let backoff = self.retry.backoff(attempts);
            let wait = at_least.map_or(backoff, |a| a.min(MAX_RETRY_AFTER).max(backoff));
            tracing::warn!(
                endpoint = %what,
                account = %account,
                attempt = attempts,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                status = error.status(),
                "stripe api: retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One request; the HTTP status when an answer came.
    async fn attempt(&self, url: &Url, what: &str, key: &str, account: &str, attempts: u32) -> (Attempt, Option<u16>) {
        let mut status = None;
        let outcome = self.answer(url, what, key, account, attempts, &mut status).await;
        (outcome, status)
    }

    async fn answer(&self, url: &Url, what: &str, key: &str, account: &str, attempts: u32, answered: &mut Option<u16>) -> Attempt {
        let secrets = [key];
        let transport = |problem: String| ApiError::Transport { what: what.to_owned(), problem, attempts };
        let sent = self
            .http
            .get(url.clone())
            .bearer_auth(key)
            .header("Stripe-Account", account)
            .header("Stripe-Version", STRIPE_API_VERSION)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { error: transport(describe_transport_error(&e, &secrets)), at_least: None, limited: None },
        };
        let status = resp.status().as_u16();
        *answered = Some(status);
        let limited = if status == 429 { Limited::from_reason(header(&resp, "stripe-rate-limited-reason").as_deref()) } else { None };
        if status == 429 {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(RATE_LIMITED).increment(1);
        }
        let request_id = header(&resp, "request-id");
        let should_retry = header(&resp, "stripe-should-retry");
        let retry_after = header(&resp, "retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
        let rid = request_id.as_deref().map(|r| format!(" [{r}]")).unwrap_or_default();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let problem = format!("HTTP {status}: the body broke off: {}{rid}", redact(&chain(&e), &secrets));
                return Attempt::Retry { error: transport(problem), at_least: None, limited };
            }
        };
        if (200..300).contains(&status) {
            return match serde_json::from_slice::<Value>(&body) {
                Ok(v) => Attempt::Done(v),
                Err(e) => {
                    let problem = format!("HTTP {status} with a body that is not JSON ({}){rid}", redact(&e.to_string(), &secrets));
                    Attempt::Retry { error: transport(problem), at_least: None, limited: None }
                }
            };
        }
        let parsed = serde_json::from_slice::<Value>(&body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error")).filter(|e| e.is_object());
        let text = |field: &str| error.and_then(|e| e.get(field)).and_then(Value::as_str).map(|s| redact(s, &secrets));
        let api_error = ApiError::Status {
            what: what.to_owned(),
            status,
            code: text("code").or_else(|| text("type")),
            param: text("param"),
            message: text("message").unwrap_or_else(|| "no Stripe error body".to_owned()),
            request_id,
            retry_after,
            attempts,
        };
        let retryable = match should_retry.as_deref().map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            _ => matches!(status, 409 | 429) || status >= 500,
        };
        // A 400 `rate_limit` (Stripe's answer to some bursts) counts as a rate limit too.
        let limited = limited.or_else(|| {
            (status == 400 && matches!(&api_error, ApiError::Status { code: Some(c), .. } if c == "rate_limit")).then_some(Limited::Rate)
        });
        if retryable {
            Attempt::Retry { error: api_error, at_least: retry_after, limited }
        } else {
            Attempt::Final { error: api_error, limited }
        }
    }
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// An error and its sources, joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

fn describe_transport_error(e: &reqwest::Error, secrets: &[&str]) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", redact(&chain(e), secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy { max_retries: 3, base_backoff: Duration::from_millis(100), max_backoff: Duration::from_millis(300) };
        for _ in 0..50 {
            let one = p.backoff(1);
            assert!(one >= Duration::from_millis(50) && one <= Duration::from_millis(100), "{one:?}");
            let two = p.backoff(2);
            assert!(two >= Duration::from_millis(100) && two <= Duration::from_millis(200), "{two:?}");
            assert!(p.backoff(40) <= Duration::from_millis(300));
        }
    }

    fn status(status: u16, code: Option<&str>) -> ApiError {
        ApiError::Status {
            what: "GET /v1/charges".into(),
            status,
            code: code.map(Into::into),
            param: None,
            message: "m".into(),
            request_id: Some("req_1".into()),
            retry_after: None,
            attempts: 1,
        }
    }

    #[test]
    fn statuses_map_to_source_errors() {
        assert!(matches!(status(401, Some("api_key_invalid")).into_source_error(), SourceError::PlatformAuth(_)));
        assert!(matches!(status(401, Some("account_invalid")).into_source_error(), SourceError::Auth(_)), "a revoked account answered 401");
        assert!(matches!(status(403, Some("account_invalid")).into_source_error(), SourceError::Auth(_)));
        assert!(matches!(status(403, Some("permission_denied")).into_source_error(), SourceError::Permission(_)));
        assert!(matches!(status(403, None).into_source_error(), SourceError::Permission(_)));
        assert!(matches!(status(429, Some("rate_limit")).into_source_error(), SourceError::RateLimited { .. }));
        assert!(matches!(status(400, Some("rate_limit")).into_source_error(), SourceError::RateLimited { .. }));
        assert!(matches!(status(404, Some("resource_missing")).into_source_error(), SourceError::Fetch(_)));
        assert!(matches!(status(500, None).into_source_error(), SourceError::Fetch(_)));
        let t = ApiError::Transport { what: "GET /v1/x".into(), problem: "p".into(), attempts: 3 };
        match t.into_source_error() {
            SourceError::Fetch(m) => assert!(m.contains("3 attempts"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
