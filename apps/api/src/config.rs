//! Configuration: built-in defaults, then `tributary.toml` (or `--config`), then `TRIBUTARY_`
//! environment variables with `__` for nesting (`TRIBUTARY_STRIPE__API_BASE`).

use anyhow::{Context, bail};
use base64::Engine;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// Stripe endpoints and how hard to use them.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeSettings {
    /// Base of the REST API (`https://api.stripe.com`).
    pub api_base: String,
    /// Base of Connect OAuth (`https://connect.stripe.com`).
    pub connect_base: String,
    /// Requests per second per connected account, per mode (0: no client-side limit).
    pub rate_limit: PerMode,
    /// Requests in flight per connected account, per mode.
    pub max_in_flight: PerMode,
}

/// A value for each of Stripe's modes (the Stripe Test and Stripe integrations).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct PerMode {
    /// Test mode (Stripe Test, `yzth`).
    pub test: u32,
    /// Live mode (Stripe, `exgd`).
    pub live: u32,
}

impl StripeSettings {
    /// The per-account budget these settings describe.
    pub fn budget(&self) -> tributary_stripe::BudgetConfig {
        tributary_stripe::BudgetConfig {
            test_rate: Some(self.rate_limit.test).filter(|r| *r > 0),
            live_rate: Some(self.rate_limit.live).filter(|r| *r > 0),
            test_in_flight: self.max_in_flight.test,
            live_in_flight: self.max_in_flight.live,
        }
    }
}

/// Webhooks to clients.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Delay before each delivery attempt (`0s`, `5s`, `5m`, `30m`, `2h`, …); its length is the
    /// number of attempts. Default: Codat's schedule over about 28 hours.
    pub retry_schedule: Vec<String>,
    /// A consumer failing for this long is disabled (`5d`).
    pub disable_after: String,
    /// Per-delivery timeout (`15s`).
    pub timeout: String,
    /// Deliver to (and register) loopback and private addresses: default false (SSRF protection);
    /// the demo and the tests turn it on.
    pub allow_private_targets: bool,
}

impl WebhookSettings {
    /// The delivery options these settings describe.
    ///
    /// # Errors
    /// A malformed duration.
    pub fn delivery_options(&self) -> anyhow::Result<tributary_domain::service::DeliveryOptions> {
        let schedule = self
            .retry_schedule
            .iter()
            .map(|d| parse_duration(d).with_context(|| format!("webhooks.retry_schedule entry {d}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if schedule.is_empty() {
            bail!("webhooks.retry_schedule needs at least one entry (the first attempt's delay, usually 0s)");
        }
        let timeout = parse_duration(&self.timeout).context("webhooks.timeout")?;
        Ok(tributary_domain::service::DeliveryOptions {
            schedule,
            disable_after: parse_duration(&self.disable_after).context("webhooks.disable_after")?,
            timeout,
            // Longer than any attempt, so a live worker never loses a delivery it is sending.
            lease_for: timeout * 2 + std::time::Duration::from_secs(5),
            ..Default::default()
        })
    }
}

/// Parses `250ms`, `0s`, `5s`, `5m`, `2h`, `5d` (a bare number is seconds).
///
/// # Errors
/// Anything else.
pub fn parse_duration(raw: &str) -> anyhow::Result<std::time::Duration> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| anyhow::anyhow!("'{raw}' is not a duration like 250ms, 5s, 5m, 2h or 5d"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => bail!("'{raw}' is not a duration like 250ms, 5s, 5m, 2h or 5d"),
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|_| anyhow::anyhow!("'{raw}' is out of range"))
}

/// Every setting, after layering.
#[derive(Clone, Deserialize)]
pub struct Settings {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Address the server listens on.
    pub listen: String,
    /// Public base URL (Link pages, OAuth callback); defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Master key for secrets at rest: 32 bytes, base64.
    pub master_key: Option<String>,
    /// Older master keys, still accepted for decryption during a rotation.
    #[serde(default)]
    pub previous_master_keys: Vec<String>,
    /// Stripe endpoints.
    pub stripe: StripeSettings,
    /// Connections the server syncs at once.
    pub workers: u32,
    /// Webhook delivery workers in the server; unset: one when `workers` is above 0, else none.
    pub webhook_workers: Option<u32>,
    /// How long a worker's lease on a connection lasts without renewal (renewed in the background
    /// every quarter of it): how soon another worker takes over a connection whose worker died.
    pub sync_lease: String,
    /// Pages of one connection fetched and written at once, across its data types.
    pub sync_parallel_pages: u32,
    /// Pages the whole process holds at once (fetched, not yet written).
    pub sync_pages_in_flight: u32,
    /// How long an operator console session lasts without use.
    pub console_session_idle: String,
    /// Log filter (`info`, `tributary_api=debug`, …).
    pub log: String,
    /// `text` (default) or `json`: one JSON object a line, with the spans' fields.
    pub log_format: String,
    /// Record Prometheus metrics and serve `GET /metrics` (default true).
    pub metrics_enabled: bool,
    /// A second address serving only `/metrics`, without authentication (for a scraper on a
    /// private network); unset: none. The main listener's `/metrics` needs an API key either way.
    pub metrics_listen: Option<String>,
    /// Webhooks to clients.
    pub webhooks: WebhookSettings,
    /// Request limits (0 turns one off).
    pub rate_limits: RateLimitSettings,
}

/// Request limits, per minute (docs/api.md).
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Requests per API key.
    pub per_key_per_minute: u32,
    /// Failed authentications (API and console sign-in) per client address.
    pub failed_auth_per_minute: u32,
    /// Take the client's address from `X-Forwarded-For` (only behind a reverse proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("master_key", &self.master_key.as_ref().map(|_| "<redacted>"))
            .field("previous_master_keys", &self.previous_master_keys.len())
            .field("stripe", &self.stripe)
            .field("workers", &self.workers)
            .field("webhook_workers", &self.webhook_workers)
            .field("sync_lease", &self.sync_lease)
            .field("log_format", &self.log_format)
            .field("metrics_enabled", &self.metrics_enabled)
            .field("metrics_listen", &self.metrics_listen)
            .field("console_session_idle", &self.console_session_idle)
            .field("sync_parallel_pages", &self.sync_parallel_pages)
            .field("sync_pages_in_flight", &self.sync_pages_in_flight)
            .field("webhooks", &self.webhooks)
            .field("rate_limits", &self.rate_limits)
            .finish()
    }
}

/// Hides a password in a database URL, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Default values, documented in docs/configuration.md.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tributary.db";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Settings {
    /// Loads settings: defaults, then the file (`path`, or `tributary.toml` if it exists), then
    /// `TRIBUTARY_*` environment variables.
    ///
    /// # Errors
    /// A missing explicit file, unparsable values, or invalid settings, each as one clear message.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut b = config::Config::builder()
            .set_default("database_url", DEFAULT_DATABASE_URL)?
            .set_default("listen", DEFAULT_LISTEN)?
            .set_default("stripe.api_base", "https://api.stripe.com")?
            .set_default("stripe.connect_base", "https://connect.stripe.com")?
            .set_default("stripe.rate_limit.test", i64::from(tributary_stripe::TEST_MODE_RATE))?
            .set_default("stripe.rate_limit.live", i64::from(tributary_stripe::LIVE_MODE_RATE))?
            .set_default("stripe.max_in_flight.test", i64::from(tributary_stripe::TEST_MODE_IN_FLIGHT))?
            .set_default("stripe.max_in_flight.live", i64::from(tributary_stripe::LIVE_MODE_IN_FLIGHT))?
            .set_default("workers", 32)?
            .set_default("sync_lease", "60s")?
            .set_default("sync_parallel_pages", 64)?
            .set_default("sync_pages_in_flight", 256)?
            .set_default("console_session_idle", "30m")?
            .set_default("log", "info")?
            .set_default("log_format", "text")?
            .set_default("metrics_enabled", true)?
            .set_default("webhooks.retry_schedule", vec!["0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h"])?
            .set_default("webhooks.disable_after", "5d")?
            .set_default("webhooks.timeout", "15s")?
            .set_default("webhooks.allow_private_targets", false)?
            .set_default("rate_limits.per_key_per_minute", i64::from(crate::http::limits::LimitSettings::default().per_key_per_minute))?
            .set_default(
                "rate_limits.failed_auth_per_minute",
                i64::from(crate::http::limits::LimitSettings::default().failed_auth_per_minute),
            )?
            .set_default("rate_limits.trust_forwarded_for", false)?;
        match path {
            Some(p) => {
                if !p.exists() {
                    bail!("configuration file {} does not exist", p.display());
                }
                b = b.add_source(config::File::from(p).format(config::FileFormat::Toml).required(true));
            }
            None => b = b.add_source(config::File::with_name("tributary.toml").format(config::FileFormat::Toml).required(false)),
        }
        b = b.add_source(
            config::Environment::with_prefix("TRIBUTARY")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("previous_master_keys")
                .with_list_parse_key("webhooks.retry_schedule")
                .try_parsing(true),
        );
        let settings: Settings =
            b.build().context("invalid configuration")?.try_deserialize().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            bail!("invalid configuration: database_url must start with sqlite:// or postgres:// (got {})", redact_url(&self.database_url));
        }
        self.listen_addr()?;
        if let Some(p) = &self.public_url {
            let u = url::Url::parse(p).map_err(|e| anyhow::anyhow!("invalid configuration: public_url {p} is not a URL: {e}"))?;
            if !matches!(u.scheme(), "http" | "https") {
                bail!("invalid configuration: public_url must be http:// or https:// (got {p})");
            }
        }
        for (name, v) in [("stripe.api_base", &self.stripe.api_base), ("stripe.connect_base", &self.stripe.connect_base)] {
            url::Url::parse(v).map_err(|e| anyhow::anyhow!("invalid configuration: {name} {v} is not a URL: {e}"))?;
        }
        self.webhooks.delivery_options().context("invalid configuration")?;
        let lease = parse_duration(&self.sync_lease).context("invalid configuration: sync_lease")?;
        if lease < std::time::Duration::from_millis(100) {
            bail!("invalid configuration: sync_lease must be at least 100ms (got {})", self.sync_lease);
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("invalid configuration: log_format must be text or json (got {})", self.log_format);
        }
        if let Some(l) = self.metrics_listen.as_deref().filter(|l| !l.is_empty()) {
            l.parse::<SocketAddr>()
                .map_err(|_| anyhow::anyhow!("invalid configuration: metrics_listen must be an address like 0.0.0.0:9184 (got {l})"))?;
            if !self.metrics_enabled {
                bail!("invalid configuration: metrics_listen is set but metrics_enabled is false");
            }
        }
        let idle = parse_duration(&self.console_session_idle).context("invalid configuration: console_session_idle")?;
        if idle < std::time::Duration::from_secs(60) {
            bail!("invalid configuration: console_session_idle must be at least 1m (got {})", self.console_session_idle);
        }
        if self.sync_parallel_pages == 0 || self.sync_pages_in_flight == 0 {
            bail!("invalid configuration: sync_parallel_pages and sync_pages_in_flight must be at least 1");
        }
        if self.stripe.max_in_flight.test == 0 || self.stripe.max_in_flight.live == 0 {
            bail!("invalid configuration: stripe.max_in_flight.test and .live must be at least 1");
        }
        if let Some(k) = &self.master_key {
            decode_master_key(k).context("invalid configuration: master_key")?;
        }
        for k in &self.previous_master_keys {
            decode_master_key(k).context("invalid configuration: previous_master_keys")?;
        }
        Ok(())
    }

    /// The listen address, parsed.
    ///
    /// # Errors
    /// When `listen` is not `host:port`.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid configuration: listen must be an address like 127.0.0.1:8080 (got {})", self.listen))
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_owned()
    }
}

/// Decodes a base64 master key, which must be exactly 32 bytes.
///
/// # Errors
/// When the text is not base64 or not 32 bytes long.
pub fn decode_master_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| anyhow::anyhow!("not valid base64 (generate one with `tributary keys generate`)"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| anyhow::anyhow!("must decode to exactly 32 bytes, got {}", bytes.len()))
}
