//! Benchmark: end-to-end sync throughput (Stripe-compatible sandbox → data source → mapping →
//! storage) of one or many accounts, at a latency like Stripe's and within its rate limits, and the
//! peak RSS of the syncing process. Run with
//!
//! ```sh
//! cargo run --release -p tributary-api --example sync_bench -- [--objects N] [--accounts N] \
//!     [--mode test|live] [--latency MS] [--limits on|off] [--database URL] [--workers N] [--baseline] \
//!     [--metrics on|off]
//! ```
//!
//! - `--objects`: objects per account (default 200,000; the account's profile is the one of
//!   docs/performance.md: 9 % customers, 28 % charges, …);
//! - `--accounts`: accounts synced at once, each its own connection (default 1);
//! - `--mode`: Stripe Test (25 requests/s per account) or Stripe (100/s) (default test);
//! - `--latency`: the sandbox answers every request after this many milliseconds (default 0);
//! - `--limits`: the sandbox's per-account rate limit and Tributary's own (default on);
//! - `--database`: where to sync (default a temporary SQLite file; a Postgres URL names an
//!   administration database, the benchmark creates and drops `tributary_sync_bench` beside it);
//! - `--workers`: connections synced at once (the server's `workers`, default 32);
//! - `--parallel`: pages of one connection at once (the server's `sync_parallel_pages`);
//! - `--baseline`: first sync the same accounts again, unthrottled at zero latency, into a fresh
//!   database, and print both;
//! - `--metrics`: record Prometheus metrics as the server does (default on; `off` installs no
//!   recorder, so every metric is a no-op: the cost of metrics is the difference).
//!
//! The sandbox runs in this process unless `SYNC_BENCH_SANDBOX=http://127.0.0.1:12111` names a
//! separately started one (`cargo run --release -p stripe-sandbox -- --listen 127.0.0.1:12111`),
//! so that the peak RSS printed is the syncing process's alone. Objects are counted as the sync
//! reads them: the lists a sync walks (customers, charges, refunds, disputes, products, prices,
//! balance transactions), not payment intents and payouts (payouts arrive as balance transactions).
//! Results go to docs/performance.md by hand.

use anyhow::Context;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Instant;
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::company::CompanyFields;
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::DatasetStatus;
use tributary_domain::service::{IntegrationUpdate, Platform};

/// mimalloc: list pages allocate and free many small strings from several threads at once, where
/// glibc's allocator spent a third of the server's CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TYPES: [DataType; 6] =
    [DataType::CompanyInfo, DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions];

fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 =
        status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

/// CPU seconds of this process so far (user, system).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

struct Options {
    objects: u32,
    accounts: u32,
    live: bool,
    latency_ms: u64,
    limits: bool,
    database: Option<String>,
    workers: u32,
    parallel: Option<usize>,
    baseline: bool,
    metrics: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        objects: 200_000,
        accounts: 1,
        live: false,
        latency_ms: 0,
        limits: true,
        database: None,
        workers: 32,
        parallel: None,
        baseline: false,
        metrics: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--objects" => o.objects = value()?.parse()?,
            "--accounts" => o.accounts = value()?.parse()?,
            "--mode" => o.live = value()? == "live",
            "--latency" => o.latency_ms = value()?.parse()?,
            "--limits" => o.limits = value()? != "off",
            "--database" => o.database = Some(value()?).filter(|d| !d.is_empty()),
            "--workers" => o.workers = value()?.parse()?,
            "--parallel" => o.parallel = Some(value()?.parse()?),
            "--baseline" => o.baseline = true,
            "--metrics" => o.metrics = value()? != "off",
            other => anyhow::bail!("unknown option {other} (see the file's doc comment)"),
        }
    }
    Ok(o)
}

/// The sandbox: in this process, or the one `SYNC_BENCH_SANDBOX` names.
struct Sandbox {
    url: String,
    running: Option<stripe_sandbox::Running>,
    http: reqwest::Client,
}

impl Sandbox {
    async fn put(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let r = self.http.put(format!("{}{path}", self.url)).json(&body).send().await?;
        anyhow::ensure!(r.status().is_success(), "PUT {path}: {}", r.status());
        Ok(())
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}{path}", self.url)).send().await?.json().await?)
    }

    /// Latency on every endpoint, and the per-account rate limits on or off.
    async fn conditions(&self, latency_ms: u64, limits: bool) -> anyhow::Result<()> {
        if latency_ms > 0 {
            self.put("/_sandbox/faults", json!({"endpoints": {"*": {"latency_ms": latency_ms}}})).await?;
        } else {
            self.http.delete(format!("{}/_sandbox/faults", self.url)).send().await?;
        }
        let limits = if limits { json!({"test": 25, "live": 100}) } else { json!({"test": null, "live": null}) };
        self.put("/_sandbox/rate_limits", limits).await
    }
}

/// A fresh store: a SQLite file in `dir`, or a re-created Postgres database.
async fn fresh_store(database: Option<&str>, dir: &std::path::Path, n: u32) -> anyhow::Result<(Store, String)> {
    let url = match database {
        Some(admin) if admin.starts_with("postgres") => {
            let name = "tributary_sync_bench";
            let admin_pool = sqlx::PgPool::connect(admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin_pool).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin_pool).await?;
            admin_pool.close().await;
            let mut u = url::Url::parse(admin)?;
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
        Some(other) => other.to_owned(),
        None => format!("sqlite://{}/bench-{n}.db", dir.display()),
    };
    Ok((Store::open(&url).await?, url))
}

/// Links a connection of a new company to each account and queues its six data types.
async fn link_all(platform: &Platform, live: bool, accounts: &[String]) -> anyhow::Result<Vec<(CompanyId, ConnectionId)>> {
    let cfg = stripe_sandbox::Config::default();
    let (key, client_id, secret) =
        if live { ("exgd", cfg.live_client_id, cfg.live_secret_key) } else { ("yzth", cfg.test_client_id, cfg.test_secret_key) };
    platform
        .integrations()
        .update(key, IntegrationUpdate { client_id: Some(client_id), secret_key: Some(SecretString::from(secret)), ..Default::default() })
        .await?;
    platform.integrations().set_enabled(key, true).await?;
    let mut out = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let company = platform.companies().create(CompanyFields::new(&format!("Bench {i}"), None, Default::default())?).await?.company.id;
        let mut connection = platform.connections().create(company, key).await?;
        connection.transition(ConnectionStatus::Linked)?;
        connection.source_account = Some(account.clone());
        platform.repositories().connections.update(&connection, &[]).await?;
        for dt in TYPES {
            platform.pulls().queue(company, dt, None).await?;
        }
        out.push((company, connection.id));
    }
    Ok(out)
}

/// What one sync of every account measured.
struct Run {
    secs: f64,
    stored: u64,
    failed: Vec<String>,
    requests: u64,
    rate_limited_by_sandbox: u64,
    max_per_second: u64,
    source: tributary_stripe::SourceStats,
    cpu: (f64, f64),
    peak_mb: f64,
}

/// Syncs every account with `workers` engines sharing one source, as the server does.
async fn sync(o: &Options, sb: &Sandbox, accounts: &[String], limits: bool, n: u32) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let (store, _url) = fresh_store(o.database.as_deref(), dir.path(), n).await?;
    let platform =
        tributary_api::compose::platform(&store, std::sync::Arc::new(AesGcmCipher::new(&[7; 32], &[])), "http://127.0.0.1:8080", true)?;
    let linked = link_all(&platform, o.live, accounts).await?;
    for account in accounts {
        sb.http.delete(format!("{}/_sandbox/accounts/{account}/stats", sb.url)).send().await?;
    }
    let mut opts = tributary_api::ServeOptions::local("http://127.0.0.1:8080", &sb.url, o.workers);
    if let Some(p) = o.parallel {
        opts.sync_parallel_pages = p;
    }
    if !limits {
        opts.stripe_budget.test_rate = None;
        opts.stripe_budget.live_rate = None;
    }
    let shared = tributary_api::compose::SyncShared::new(&opts)?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..o.workers.max(1) {
        let engine = shared.engine(&platform, &opts, format!("bench-{n}-{w}"));
        // A worker stops when it finds no work: every pull was queued before the start.
        workers.spawn(async move {
            while engine.run_once().await? {}
            Ok::<_, tributary_domain::DomainError>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let secs = started.elapsed().as_secs_f64();
    // The sync's peak, before the counts below read every record.
    let peak_mb = rss_mb("VmHWM:");
    let cpu_after = cpu_seconds();
    let mut stored = 0;
    let mut failed = Vec::new();
    for (company, connection) in &linked {
        for dt in TYPES {
            stored += platform.repositories().records.count(*connection, dt, true).await?;
        }
        for status in platform.pulls().data_status(*company).await? {
            if status.latest.status != DatasetStatus::Complete {
                failed.push(format!("{} {}: {:?}", status.data_type, status.latest.status.as_str(), status.latest.error_message));
            }
        }
    }
    let (mut requests, mut rate_limited_by_sandbox, mut max_per_second) = (0, 0, 0);
    for account in accounts {
        let stats = sb.get(&format!("/_sandbox/accounts/{account}/stats")).await?;
        if accounts.len() == 1 && std::env::var_os("SYNC_BENCH_TIMELINE").is_some() {
            let slots: Vec<u64> = stats["timeline"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
            let seconds: Vec<u64> = slots.chunks(10).map(|c| c.iter().sum()).collect();
            println!("requests per second at the sandbox's limiter: {seconds:?}; per endpoint: {}", stats["requests"]);
        }
        requests += stats["total"].as_u64().unwrap_or(0);
        rate_limited_by_sandbox += stats["rate_limited"].as_u64().unwrap_or(0);
        max_per_second = max_per_second.max(stats["max_per_second"].as_u64().unwrap_or(0));
    }
    store.close().await;
    Ok(Run {
        secs,
        stored,
        failed,
        requests,
        rate_limited_by_sandbox,
        max_per_second,
        source: shared.source.stats(),
        cpu: (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
        peak_mb,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    tributary_api::init_logging("warn", "text");
    if o.metrics {
        tributary_api::metrics::install()?;
    }
    println!("metrics: {}", if o.metrics { "on" } else { "off" });
    let external = std::env::var("SYNC_BENCH_SANDBOX").ok().filter(|u| !u.is_empty());
    let running = match external {
        Some(_) => None,
        None => Some(stripe_sandbox::start(stripe_sandbox::Config { listen: "127.0.0.1:0".into(), ..Default::default() }).await?),
    };
    let url = external.clone().unwrap_or_else(|| running.as_ref().map(stripe_sandbox::Running::url).unwrap_or_default());
    let sb = Sandbox { url, running, http: reqwest::Client::new() };

    let unit = o.objects / 100;
    let profile = stripe_sandbox::Profile {
        customers: unit * 9,
        charges: unit * 28,
        refunds: unit * 3,
        disputes: unit,
        products: unit,
        prices: unit * 3,
        payouts: unit,
    };
    let mode = if o.live { "live" } else { "test" };
    let mut accounts = Vec::new();
    let (mut objects, mut read) = (0u64, 0u64);
    for i in 0..o.accounts {
        let body = json!({"mode": mode, "seed": 7 + u64::from(i), "connected": true, "profile": profile});
        let created: Value = sb.http.post(format!("{}/_sandbox/accounts", sb.url)).json(&body).send().await?.json().await?;
        let account = created["id"].as_str().context("account id")?.to_owned();
        let summary = sb.get(&format!("/_sandbox/accounts/{account}/summary")).await?;
        let counts = summary["counts"].as_object().cloned().unwrap_or_default();
        let count = |keep: &dyn Fn(&str) -> bool| counts.iter().filter(|(k, _)| keep(k)).filter_map(|(_, v)| v.as_u64()).sum::<u64>();
        objects += count(&|k| k != "events");
        read += count(&|k| !matches!(k, "events" | "payment_intents" | "payouts"));
        accounts.push(account);
    }
    println!(
        "{} {mode}-mode account(s), {objects} objects ({read} in the lists a sync reads); latency {} ms, limits {}, {} workers, database {}",
        o.accounts,
        o.latency_ms,
        if o.limits { "on" } else { "off" },
        o.workers,
        o.database.as_deref().map_or_else(|| "SQLite (temp file)".to_owned(), tributary_api::config::redact_url)
    );
    let report = |label: &str, r: &Run| {
        #[expect(clippy::cast_precision_loss, reason = "rates for display")]
        let per_sec = read as f64 / r.secs;
        println!(
            "{label}: {:.1} s = {per_sec:.0} read objects/s; {} records stored; {} requests ({} retries, {} 429s from Stripe, {} refused by the sandbox's limiter, most in a second for one account: {}); waited for the budget {:.0} s in all; CPU {:.1} s user + {:.1} s system; peak RSS {:.0} MB by the end of the sync ({})",
            r.secs,
            r.stored,
            r.requests,
            r.source.retries,
            r.source.rate_limited,
            r.rate_limited_by_sandbox,
            r.max_per_second,
            r.source.throttle_wait.as_secs_f64(),
            r.cpu.0,
            r.cpu.1,
            r.peak_mb,
            if sb.running.is_some() { "the sandbox's data included" } else { "the syncing process alone" }
        );
        if !r.failed.is_empty() {
            println!("  NOT COMPLETE: {}", r.failed.join("; "));
        }
    };
    let mut n = 0;
    if o.baseline {
        sb.conditions(0, false).await?;
        let base = sync(&o, &sb, &accounts, false, n).await?;
        n += 1;
        report("baseline (unthrottled, zero latency)", &base);
    }
    sb.conditions(o.latency_ms, o.limits).await?;
    let run = sync(&o, &sb, &accounts, o.limits, n).await?;
    report("sync", &run);
    if let Some(running) = sb.running {
        running.stop().await;
    }
    Ok(())
}
