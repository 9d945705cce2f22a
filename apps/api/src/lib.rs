//! `tributary-api`: the HTTP server. It reads the configuration, builds what it runs through the
//! composition root ([`compose`], shared with the CLI and the benchmarks), and serves the
//! Codat-compatible API.

pub mod compose;
pub mod config;
pub mod crypto;
pub mod http;
pub mod metrics;
pub mod store;
pub mod webhooks;

use anyhow::Context;
use compose::{Composition, MasterKey, SyncShared, linking};
use config::Settings;
use crypto::AesGcmCipher;
use std::future::Future;
use std::sync::Arc;
use store::Store;
use tokio::net::TcpListener;
use tributary_domain::ports::Timer;
use tributary_domain::service::{Platform, SyncEngine, SyncOptions};

pub use http::generate_api_key;

/// tokio's timer, for the domain's services.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, duration: std::time::Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Where the server is reached, where Stripe is, and how many connections it syncs at once.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// Stripe Connect base (`https://connect.stripe.com` or a sandbox).
    pub connect_base: String,
    /// Stripe API base (`https://api.stripe.com` or a sandbox).
    pub api_base: String,
    /// Connections this process syncs at once, each by a worker task (0: none; another process
    /// syncs); with any, the process also queues scheduled pulls.
    pub workers: u32,
    /// Webhook delivery tasks in this process (0: none; another process delivers). Each fans the
    /// outbox out and delivers a batch of due deliveries at a time, leased, so any number of tasks
    /// in any number of processes deliver each one once.
    pub webhook_workers: u32,
    /// How webhooks are delivered.
    pub webhooks: tributary_domain::service::DeliveryOptions,
    /// Deliver webhooks to loopback and private addresses.
    pub allow_private_webhook_targets: bool,
    /// How long a sync worker's lease on a connection lasts without renewal.
    pub sync_lease: std::time::Duration,
    /// Pages of one connection fetched and written at once.
    pub sync_parallel_pages: usize,
    /// Pages the whole process holds at once (fetched, not yet written).
    pub sync_pages_in_flight: usize,
    /// Stripe's per-account budget (rate and requests in flight, per mode).
    pub stripe_budget: tributary_stripe::BudgetConfig,
    /// How long an operator console session lasts without use.
    pub console_idle: std::time::Duration,
    /// Record metrics and serve `/metrics`.
    pub metrics: bool,
    /// A second listener serving only `/metrics`, without authentication.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Requests per API key and failed authentications per address, per minute.
    pub limits: http::limits::LimitSettings,
}

impl ServeOptions {
    /// From the settings.
    ///
    /// # Errors
    /// A malformed webhook duration.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            public_url: settings.public_base(),
            connect_base: settings.stripe.connect_base.trim_end_matches('/').to_owned(),
            api_base: settings.stripe.api_base.trim_end_matches('/').to_owned(),
            workers: settings.workers,
            webhook_workers: settings.webhook_workers.unwrap_or(u32::from(settings.workers > 0)),
            webhooks: settings.webhooks.delivery_options()?,
            allow_private_webhook_targets: settings.webhooks.allow_private_targets,
            sync_lease: config::parse_duration(&settings.sync_lease).context("sync_lease")?,
            sync_parallel_pages: usize::try_from(settings.sync_parallel_pages).unwrap_or(usize::MAX),
            sync_pages_in_flight: usize::try_from(settings.sync_pages_in_flight).unwrap_or(usize::MAX),
            stripe_budget: settings.stripe.budget(),
            console_idle: config::parse_duration(&settings.console_session_idle).context("console_session_idle")?,
            metrics: settings.metrics_enabled,
            metrics_listen: settings
                .metrics_listen
                .as_deref()
                .filter(|l| !l.is_empty())
                .map(str::parse)
                .transpose()
                .context("metrics_listen")?,
            limits: http::limits::LimitSettings {
                per_key_per_minute: settings.rate_limits.per_key_per_minute,
                failed_auth_per_minute: settings.rate_limits.failed_auth_per_minute,
                trust_forwarded_for: settings.rate_limits.trust_forwarded_for,
            },
        })
    }

    /// Options for a server at `public_url` reading Stripe at `stripe_base` (Connect and API),
    /// with defaults for the rest (the demo and tests).
    pub fn local(public_url: &str, stripe_base: &str, workers: u32) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            connect_base: stripe_base.trim_end_matches('/').to_owned(),
            api_base: stripe_base.trim_end_matches('/').to_owned(),
            workers,
            webhook_workers: u32::from(workers > 0),
            webhooks: tributary_domain::service::DeliveryOptions::default(),
            allow_private_webhook_targets: true,
            sync_lease: std::time::Duration::from_secs(60),
            sync_parallel_pages: SyncOptions::default().parallel_pages,
            sync_pages_in_flight: SyncOptions::default().pages.size(),
            stripe_budget: tributary_stripe::BudgetConfig::default(),
            console_idle: std::time::Duration::from_secs(30 * 60),
            metrics: true,
            metrics_listen: None,
            limits: http::limits::LimitSettings::default(),
        }
    }
}

/// How often the scheduler looks for data types due for a sync.
pub const SCHEDULE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Queues the pulls that sync settings make due (every [`SCHEDULE_EVERY`]) and wakes the workers.
pub async fn run_scheduler(platform: Platform, wake: Arc<tokio::sync::Notify>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match platform.pulls().queue_due().await {
            Ok(q) if !q.is_empty() => {
                tracing::info!(queued = q.len(), "scheduled pulls queued");
                wake.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "scheduler failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(SCHEDULE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs a sync worker until `stop` is notified: leases a connection with queued pulls, runs them,
/// and waits for `wake` (or a short poll) when idle.
pub async fn run_worker(engine: SyncEngine, wake: Arc<tokio::sync::Notify>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut stop = stop;
    loop {
        if *stop.borrow() {
            return;
        }
        match engine.run_once().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "sync worker failed; retrying"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Installs the log subscriber (once; later calls are ignored): text, or JSON lines (`json`)
/// carrying the timestamp, level, message, target and the fields of the spans the event is in
/// (request correlation id, connection id, data type, pull id).
pub fn init_logging(filter: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().with_current_span(true).with_span_list(true).flatten_event(true).try_init()
    } else {
        builder.with_target(false).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
    };
}

/// Runs the server until `shutdown` resolves: migrations first, then the API on `settings.listen`.
/// In-flight requests finish before it returns.
///
/// # Errors
/// Missing master key, unreachable database, failed migration, or an address already in use.
pub async fn serve(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let composed = Composition::open(settings, MasterKey::Required).await?;
    let addr = composed.settings.listen_addr()?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    serve_on(listener, &composed.store, composed.cipher()?, ServeOptions::from_settings(&composed.settings)?, shutdown).await?;
    composed.store.close().await;
    Ok(())
}

/// Serves the API on an already-bound listener (tests and the demo pick free ports this way).
///
/// # Errors
/// When the server fails.
pub async fn serve_on(
    listener: TcpListener,
    store: &Store,
    cipher: AesGcmCipher,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let linking = linking(store, cipher, &opts)?;
    let platform = linking.platform().clone();
    let public_url = opts.public_url.clone();
    let addr = listener.local_addr()?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    let shared = SyncShared::new(&opts)?;
    for n in 0..opts.workers {
        let engine = shared.engine(&platform, &opts, format!("{}-{}-{n}", addr, std::process::id()));
        workers.push(tokio::spawn(run_worker(engine, wake.clone(), stop_rx.clone())));
    }
    let webhook_wake = Arc::new(tokio::sync::Notify::new());
    if opts.workers > 0 {
        workers.push(tokio::spawn(run_scheduler(platform.clone(), wake.clone(), stop_rx.clone())));
    }
    if opts.webhook_workers > 0 {
        let sender = Arc::new(webhooks::HttpWebhookSender::new(opts.allow_private_webhook_targets)?);
        for n in 0..opts.webhook_workers {
            let delivery = tributary_domain::service::WebhookDelivery::new(
                platform.clone(),
                sender.clone(),
                format!("{}-{}-webhooks-{n}", addr, std::process::id()),
                opts.webhooks.clone(),
            );
            workers.push(tokio::spawn(webhooks::run_delivery_worker(delivery, webhook_wake.clone(), stop_rx.clone())));
        }
    }
    if platform.api_keys().list().await?.is_empty() {
        tracing::warn!("no API keys exist yet: create one with `tributary api-keys create`");
    }
    let console = http::ConsoleOptions::new(&public_url, &opts.connect_base, opts.console_idle);
    let scrape = if opts.metrics {
        Some(metrics::Scrape {
            handle: metrics::install()?,
            platform: platform.clone(),
            store: store.clone(),
            source: shared.source.clone(),
        })
    } else {
        None
    };
    if let Some(scrape) = &scrape {
        // Histograms keep their samples until they are drained: drained here even when nobody
        // scrapes, so memory stays flat.
        let (handle, mut stop) = (scrape.handle.clone(), stop_rx.clone());
        workers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(5)) => handle.run_upkeep(),
                    _ = stop.changed() => return,
                }
            }
        }));
    }
    if let (Some(scrape), Some(at)) = (&scrape, opts.metrics_listen) {
        let metrics_listener = TcpListener::bind(at).await.with_context(|| format!("cannot listen on {at} (metrics_listen)"))?;
        let mut stop = stop_rx.clone();
        let app = http::metrics_router(scrape.clone());
        tracing::info!(%at, "metrics listening");
        workers.push(tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        }));
    }
    let state = http::AppState {
        platform,
        linking,
        wake,
        public_url: public_url.clone(),
        webhook_wake,
        console,
        store: store.clone(),
        scrape,
        limits: Arc::new(http::limits::Limits::new(opts.limits)),
    };
    // The client's address, for the failed-authentication limit.
    let app = http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tracing::info!(%addr, %public_url, workers = opts.workers, "tributary-api listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("server failed")?;
    // Workers finish the pages they are on; a pull cut short resumes from its partitions' cursors.
    let _ = stop_tx.send(true);
    for w in workers {
        if tokio::time::timeout(std::time::Duration::from_secs(30), w).await.is_err() {
            tracing::warn!("a sync worker did not stop within 30 s; its pull resumes from its checkpoint on the next start");
        }
    }
    tracing::info!("tributary-api stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
