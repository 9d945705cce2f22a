//! Stripe Connect OAuth (Standard accounts): the authorize URL, `POST /oauth/token` for codes and
//! refresh tokens, and `POST /oauth/deauthorize`, as the domain's [`OAuthProvider`].
//!
//! Requests are form-encoded and authenticated with the platform secret key as a Bearer token.
//! Stripe's OAuth errors (`{"error": "<code>", "error_description": "…"}`) map to [`OAuthError`]:
//! `invalid_grant` → [`OAuthError::Reauthorize`], `invalid_client` → [`OAuthError::InvalidClient`],
//! `invalid_request` / `invalid_scope` / `unsupported_grant_type` → [`OAuthError::InvalidRequest`];
//! connection failures, 5xx, 429 and unparsable answers → [`OAuthError::Unavailable`]. Connection
//! failures and 5xx (unless Stripe answers `Stripe-Should-Retry: false`) are retried with
//! exponential backoff and jitter; 4xx never are.
//!
//! No token, code or key is ever logged, and provider text is scrubbed of secret-shaped words
//! before it goes into an error.

use crate::redact::redact;
use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::hash::BuildHasher;
use std::time::Duration;
use tributary_domain::model::integration::Scope;
use tributary_domain::ports::oauth::{Grant, OAuthError, OAuthProvider, PlatformCredentials};
use url::Url;

/// Stripe's Connect OAuth host.
pub const STRIPE_CONNECT_BASE: &str = "https://connect.stripe.com";
/// Timeout for establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout for a whole request, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Retries after the first attempt, for connection failures and 5xx answers.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Backoff before the first retry; it doubles for each further retry, up to [`MAX_BACKOFF`].
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a [`StripeConnectOAuth`] or a [`StripeDataSource`](crate::StripeDataSource) could not be
/// built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The base URL is not an absolute `http` or `https` URL.
    #[error("invalid Stripe base URL '{url}': {reason}")]
    InvalidBase {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Parses a base URL (Connect or API host): absolute `http(s)`, no query, fragment or credentials.
pub(crate) fn parse_base(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidBase { url: raw.to_owned(), reason: reason.to_owned() };
    let base = Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() || base.host_str().is_none() {
        return Err(invalid("expected an absolute http or https URL"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed"));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(invalid("credentials in the URL are not allowed"));
    }
    Ok(base)
}

/// The Stripe Connect OAuth client: an [`OAuthProvider`] for Stripe (or the project's sandbox).
#[derive(Debug, Clone)]
pub struct StripeConnectOAuth {
    base: Url,
    http: reqwest::Client,
    max_retries: u32,
    base_backoff: Duration,
}

/// What one OAuth call failed with, before it is mapped per operation.
#[derive(Debug)]
enum Failure {
    /// A 4xx with an error code (OAuth shape, or the v1 `{"error":{…}}` shape).
    Rejected { status: StatusCode, code: String, description: String },
    /// Unreachable, 5xx after retries, or an answer that cannot be understood.
    Unavailable(String),
}

/// A successful token answer. No `Debug`: it holds tokens.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    stripe_user_id: String,
    #[serde(default)]
    livemode: Option<bool>,
    #[serde(default)]
    scope: Option<String>,
}

/// A successful deauthorization answer.
#[derive(Deserialize)]
struct DeauthorizeResponse {
    stripe_user_id: String,
}

impl StripeConnectOAuth {
    /// A client for `connect_base` (e.g. [`STRIPE_CONNECT_BASE`] or a sandbox URL) with
    /// [`Self::default_client`].
    ///
    /// # Errors
    /// [`ConfigError`] when the URL is not an absolute `http(s)` URL or the client cannot be built.
    pub fn new(connect_base: &str) -> Result<Self, ConfigError> {
        Self::with_client(connect_base, Self::default_client()?)
    }

    /// A client for `connect_base` that uses the given HTTP client (which should have timeouts).
    ///
    /// # Errors
    /// [`ConfigError::InvalidBase`] when the URL is not an absolute `http(s)` URL.
    pub fn with_client(connect_base: &str, http: reqwest::Client) -> Result<Self, ConfigError> {
        let base = parse_base(connect_base)?;
        Ok(Self { base, http, max_retries: DEFAULT_MAX_RETRIES, base_backoff: DEFAULT_BASE_BACKOFF })
    }

    /// The HTTP client [`Self::new`] uses: [`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`], no redirects.
    ///
    /// # Errors
    /// [`ConfigError::Client`] when reqwest cannot build it.
    pub fn default_client() -> Result<reqwest::Client, ConfigError> {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tributary-stripe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))
    }

    /// Changes the retry policy: `max_retries` retries after the first attempt, waiting about
    /// `base_backoff`, then twice as long each time (capped at [`MAX_BACKOFF`], with jitter).
    #[must_use]
    pub fn with_retries(mut self, max_retries: u32, base_backoff: Duration) -> Self {
        self.max_retries = max_retries;
        self.base_backoff = base_backoff;
        self
    }

    /// The connect base URL.
    pub fn connect_base(&self) -> &Url {
        &self.base
    }

    /// `{connect_base}/oauth/{leaf}`, keeping any path prefix of the base.
    fn endpoint(&self, leaf: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["oauth", leaf]);
        }
        url
    }

    /// The wait before retry number `retry` (1-based): `base * 2^(retry-1)`, capped, times a
    /// random factor in `[0.5, 1]`.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(MAX_BACKOFF);
        let random = std::collections::hash_map::RandomState::new().hash_one(retry);
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
        capped.mul_f64(0.5 * (1.0 + unit))
    }

    /// POSTs `form` to `{base}/oauth/{leaf}` with the platform key, retrying connection failures and
    /// 5xx. Returns a 2xx answer (body unread); a 4xx is classified, never retried. `secrets` are
    /// scrubbed from any text kept in errors.
    async fn post_form(
        &self,
        leaf: &str,
        key: &SecretString,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<reqwest::Response, Failure> {
        let url = self.endpoint(leaf);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let started = std::time::Instant::now();
            let sent = self
                .http
                .post(url.clone())
                .bearer_auth(key.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json")
                .form(form)
                .send()
                .await;
            let endpoint = format!("/oauth/{leaf}");
            let status = sent.as_ref().map_or_else(|_| "error".to_owned(), |r| r.status().as_u16().to_string());
            metrics::counter!(crate::source::REQUESTS, "endpoint" => endpoint.clone(), "status" => status).increment(1);
            metrics::histogram!(crate::source::REQUEST_DURATION, "endpoint" => endpoint).record(started.elapsed().as_secs_f64());
            let problem = match sent {
                Err(e) => describe_transport_error(&e, secrets),
                Ok(resp) => {
                    let status = resp.status();
                    let request_id = header(&resp, "request-id");
                    if !status.is_server_error() {
                        if status.is_success() {
                            return Ok(resp);
                        }
                        return Err(rejection(resp, secrets).await);
                    }
                    let should_retry = header(&resp, "stripe-should-retry");
                    let problem = format!("Stripe answered HTTP {}{}", status.as_u16(), request_suffix(request_id.as_deref()));
                    if should_retry.as_deref() == Some("false") {
                        return Err(Failure::Unavailable(format!("{problem} (Stripe-Should-Retry: false)")));
                    }
                    problem
                }
            };
            if attempt > self.max_retries {
                let tries = if attempt == 1 { "1 attempt".to_owned() } else { format!("{attempt} attempts") };
                return Err(Failure::Unavailable(format!("POST /oauth/{leaf}: {problem} ({tries})")));
            }
            let wait = self.backoff(attempt);
            tracing::warn!(endpoint = leaf, attempt, wait_ms = wait.as_millis() as u64, problem = %problem, "stripe connect: retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads a 2xx body as `T`; a body that cannot be read or parsed is `Unavailable`.
    async fn parse_ok<T: serde::de::DeserializeOwned>(leaf: &str, resp: reqwest::Response, secrets: &[&str]) -> Result<T, OAuthError> {
        let request_id = header(&resp, "request-id");
        let body = resp.bytes().await.map_err(|e| {
            OAuthError::Unavailable(format!("POST /oauth/{leaf}: the answer could not be read: {}", redact(&chain(&e), secrets)))
        })?;
        serde_json::from_slice(&body).map_err(|e| {
            OAuthError::Unavailable(format!(
                "POST /oauth/{leaf}: unexpected answer from Stripe ({}){}",
                redact(&e.to_string(), secrets),
                request_suffix(request_id.as_deref())
            ))
        })
    }

    /// Calls `/oauth/token` and turns the answer into a [`Grant`].
    async fn token(
        &self,
        creds: &PlatformCredentials,
        form: &[(&str, &str)],
        secret: &str,
        fallback: Fallback<'_>,
    ) -> Result<Grant, OAuthError> {
        let key = creds.secret_key.expose_secret();
        let secrets = [secret, key];
        let resp = self.post_form("token", &creds.secret_key, form, &secrets).await.map_err(token_error)?;
        let t: TokenResponse = Self::parse_ok("token", resp, &secrets).await?;
        if let Some(tt) = &t.token_type
            && !tt.eq_ignore_ascii_case("bearer")
        {
            return Err(OAuthError::Unavailable(format!("unexpected token_type '{}' from Stripe", redact(tt, &secrets))));
        }
        if t.access_token.is_empty() || t.stripe_user_id.is_empty() {
            return Err(OAuthError::Unavailable("Stripe's token answer lacks access_token or stripe_user_id".into()));
        }
        let scope = match t.scope.as_deref() {
            Some(s) => s
                .parse::<Scope>()
                .map_err(|_| OAuthError::Unavailable(format!("unexpected scope '{}' from Stripe", redact(s, &secrets))))?,
            None => fallback.scope,
        };
        let livemode = t.livemode.unwrap_or(matches!(creds.mode, tributary_domain::model::integration::Mode::Live));
        let refresh_token = t.refresh_token.filter(|r| !r.is_empty()).map(SecretString::from).or_else(|| fallback.refresh_token.cloned());
        tracing::info!(account = %t.stripe_user_id, livemode, scope = scope.as_str(), "stripe connect: token issued");
        Ok(Grant { account_id: t.stripe_user_id, livemode, scope, access_token: SecretString::from(t.access_token), refresh_token })
    }
}

/// What a token answer falls back to for fields Stripe leaves out.
struct Fallback<'a> {
    scope: Scope,
    refresh_token: Option<&'a SecretString>,
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn request_suffix(request_id: Option<&str>) -> String {
    request_id.map(|id| format!(" [{id}]")).unwrap_or_default()
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

/// Classifies a 4xx answer (read to the end).
async fn rejection(resp: reqwest::Response, secrets: &[&str]) -> Failure {
    let status = resp.status();
    let request_id = header(&resp, "request-id");
    let suffix = request_suffix(request_id.as_deref());
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Failure::Unavailable(format!(
                "HTTP {}: the answer could not be read: {}",
                status.as_u16(),
                redact(&chain(&e), secrets)
            ));
        }
    };
    let parsed: Option<(String, String)> = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| {
        let error = v.get("error")?;
        let text = |x: Option<&serde_json::Value>| x.and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        match error {
            // OAuth shape: {"error": "invalid_grant", "error_description": "…"}
            serde_json::Value::String(code) => Some((code.clone(), text(v.get("error_description")))),
            // v1 API shape: {"error": {"type", "code", "message"}}
            serde_json::Value::Object(o) => {
                let code = o.get("code").and_then(serde_json::Value::as_str).or_else(|| o.get("type").and_then(serde_json::Value::as_str));
                Some((code.unwrap_or("unknown_error").to_owned(), text(o.get("message"))))
            }
            _ => None,
        }
    });
    match parsed {
        Some((code, description)) => {
            let description = format!("{}{suffix}", redact(&description, secrets));
            Failure::Rejected { status, code: redact(&code, secrets), description }
        }
        None => Failure::Unavailable(format!("HTTP {} with an unexpected body from Stripe{suffix}", status.as_u16())),
    }
}

fn message(code: &str, description: &str) -> String {
    if description.is_empty() { code.to_owned() } else { format!("{code}: {description}") }
}

/// Maps a `/oauth/token` failure.
fn token_error(f: Failure) -> OAuthError {
    match f {
        Failure::Unavailable(m) => OAuthError::Unavailable(m),
        Failure::Rejected { status, code, description } => {
            let m = message(&code, &description);
            match code.as_str() {
                "invalid_grant" => OAuthError::Reauthorize(m),
                "invalid_client" => OAuthError::InvalidClient(m),
                "invalid_request" | "invalid_scope" | "unsupported_grant_type" | "unsupported_response_type" => {
                    OAuthError::InvalidRequest(m)
                }
                _ if status == StatusCode::TOO_MANY_REQUESTS => OAuthError::Unavailable(m),
                _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => OAuthError::InvalidClient(m),
                _ => OAuthError::InvalidRequest(m),
            }
        }
    }
}

/// Whether an `invalid_client` description says the account is not (or no longer) connected.
fn says_not_connected(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    d.contains("not connected to") || d.contains("is not connected")
}

#[async_trait]
impl OAuthProvider for StripeConnectOAuth {
    fn authorize_url(&self, creds: &PlatformCredentials, state: &str, redirect_uri: &str) -> String {
        let mut url = self.endpoint("authorize");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &creds.client_id)
            .append_pair("scope", creds.scope.as_str())
            .append_pair("state", state)
            .append_pair("redirect_uri", redirect_uri);
        url.into()
    }

    async fn exchange_code(&self, creds: &PlatformCredentials, code: &str) -> Result<Grant, OAuthError> {
        if code.is_empty() {
            return Err(OAuthError::InvalidRequest("no authorization code".into()));
        }
        let form = [("grant_type", "authorization_code"), ("code", code)];
        self.token(creds, &form, code, Fallback { scope: creds.scope, refresh_token: None }).await
    }

    async fn refresh(&self, creds: &PlatformCredentials, grant: &Grant) -> Result<Grant, OAuthError> {
        let Some(refresh_token) = grant.refresh_token.as_ref() else {
            return Err(OAuthError::Reauthorize("the grant has no refresh token".into()));
        };
        let rt = refresh_token.expose_secret();
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
        let fresh = self.token(creds, &form, rt, Fallback { scope: grant.scope, refresh_token: Some(refresh_token) }).await?;
        if fresh.account_id != grant.account_id {
            tracing::warn!(expected = %grant.account_id, got = %fresh.account_id, "stripe connect: refresh answered for another account");
        }
        Ok(fresh)
    }

    async fn revoke(&self, creds: &PlatformCredentials, account_id: &str) -> Result<(), OAuthError> {
        let key = creds.secret_key.expose_secret();
        let secrets = [key];
        let form = [("client_id", creds.client_id.as_str()), ("stripe_user_id", account_id)];
        match self.post_form("deauthorize", &creds.secret_key, &form, &secrets).await {
            Ok(resp) => {
                let d: DeauthorizeResponse = Self::parse_ok("deauthorize", resp, &secrets).await?;
                tracing::info!(account = %d.stripe_user_id, "stripe connect: account deauthorized");
                Ok(())
            }
            Err(Failure::Rejected { code, description, .. }) if code == "invalid_client" && says_not_connected(&description) => {
                tracing::info!(account = %account_id, "stripe connect: account already disconnected");
                Ok(())
            }
            Err(f) => Err(token_error(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let o = StripeConnectOAuth::new("http://127.0.0.1:1/prefix/").unwrap();
        assert_eq!(o.endpoint("token").as_str(), "http://127.0.0.1:1/prefix/oauth/token");
        let o = StripeConnectOAuth::new("https://connect.stripe.com").unwrap();
        assert_eq!(o.endpoint("deauthorize").as_str(), "https://connect.stripe.com/oauth/deauthorize");
    }

    #[test]
    fn bad_bases_are_refused() {
        for bad in ["connect.stripe.com", "ftp://x", "mailto:a@b", "http://u:p@host", "http://host/?q=1"] {
            assert!(matches!(StripeConnectOAuth::new(bad), Err(ConfigError::InvalidBase { .. })), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let o = StripeConnectOAuth::new("http://127.0.0.1:1").unwrap();
        for _ in 0..50 {
            let one = o.backoff(1);
            assert!(one >= Duration::from_millis(250) && one <= Duration::from_millis(500), "{one:?}");
            let two = o.backoff(2);
            assert!(two >= Duration::from_millis(500) && two <= Duration::from_millis(1000), "{two:?}");
            assert!(o.backoff(30) <= MAX_BACKOFF);
        }
    }

    #[test]
    fn not_connected_wording_is_recognised() {
        assert!(says_not_connected("This application is not connected to stripe account acct_1, or that account does not exist."));
        assert!(!says_not_connected("client_id does not match the API key's application and mode."));
    }
}
