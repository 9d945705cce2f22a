//! Benchmark: end-to-end sync throughput (Stripe-compatible sandbox → data source → mapping →
//! storage) for one account, and the peak RSS of the process. Run with
//!
//! ```sh
//! cargo run --release -p tributary-api --example sync_bench -- [TOTAL_OBJECTS] [DATABASE_URL] [RATE]
//! ```
//!
//! (defaults: 200,000 objects, a temporary SQLite file, no rate limit; `RATE` = requests/s the
//! sandbox allows per account, e.g. 25). The sandbox runs in the same process and on the same two
//! cores, so the figure is a floor. With `SYNC_BENCH_SANDBOX=http://127.0.0.1:12111` the account is
//! generated in a separately started `stripe-sandbox` (same machine, same cores) instead, so that
//! the peak RSS printed is the syncing process's alone (`RATE` is then the sandbox's own setting).
//! Results go to docs/performance.md by hand.

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::model::company::CompanyFields;
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::data_type::DataType;
use tributary_domain::service::{IntegrationUpdate, SyncEngine};

/// mimalloc: list pages allocate and free many small strings from several threads at once, where
/// glibc's allocator spent a third of the server's CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 =
        status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let total: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let url = args.get(2).cloned().filter(|u| !u.is_empty()).unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
    let rate: Option<u32> = args.get(3).and_then(|a| a.parse().ok());

    let external = std::env::var("SYNC_BENCH_SANDBOX").ok().filter(|u| !u.is_empty());
    let sandbox = match external {
        Some(_) => None,
        None => Some(
            stripe_sandbox::start(stripe_sandbox::Config { listen: "127.0.0.1:0".into(), test_rate: rate, ..Default::default() }).await?,
        ),
    };
    let sandbox_url = external.clone().unwrap_or_else(|| sandbox.as_ref().map(stripe_sandbox::Running::url).unwrap_or_default());
    let unit = total / 100;
    let profile = stripe_sandbox::Profile {
        customers: unit * 9,
        charges: unit * 28,
        refunds: unit * 3,
        disputes: unit,
        products: unit,
        prices: unit * 3,
        payouts: unit,
    };
    let http = reqwest::Client::new();
    let account = match &sandbox {
        Some(sandbox) => {
            let sb = sandbox.sandbox.clone();
            tokio::task::spawn_blocking(move || sb.create_account(stripe_sandbox::Mode::Test, Some(7), true, &profile)).await?
        }
        None => {
            let body = serde_json::json!({"mode": "test", "seed": 7, "connected": true, "profile": profile});
            let created: serde_json::Value = http.post(format!("{sandbox_url}/_sandbox/accounts")).json(&body).send().await?.json().await?;
            created["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    // The account's objects (events aside), and those of the lists a sync reads (payment intents
    // and payouts are not read; payouts arrive as balance transactions).
    let summary: serde_json::Value = http.get(format!("{sandbox_url}/_sandbox/accounts/{account}/summary")).send().await?.json().await?;
    let counts = summary["counts"].as_object().cloned().unwrap_or_default();
    let count = |keep: &dyn Fn(&str) -> bool| counts.iter().filter(|(k, _)| keep(k)).filter_map(|(_, v)| v.as_u64()).sum::<u64>();
    let objects = count(&|k| k != "events");
    let read = count(&|k| !matches!(k, "events" | "payment_intents" | "payouts"));

    let store = Store::open(&url).await?;
    let platform = tributary_api::platform(&store, AesGcmCipher::new(&[7; 32], &[]), "http://127.0.0.1:8080");
    let cfg = stripe_sandbox::Config::default();
    platform
        .update_integration(
            "yzth",
            IntegrationUpdate {
                client_id: Some(cfg.test_client_id),
                secret_key: Some(SecretString::from(cfg.test_secret_key)),
                ..Default::default()
            },
        )
        .await?;
    platform.set_integration_enabled("yzth", true).await?;
    let company = platform.create_company(CompanyFields::new("Bench", None, Default::default())?).await?.company.id;
    let mut connection = platform.create_connection(company, "yzth").await?;
    connection.transition(ConnectionStatus::Linked)?;
    connection.source_account = Some(account.clone());
    platform.repositories().connections.update(&connection, &[]).await?;
    for dt in
        [DataType::CompanyInfo, DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions]
    {
        platform.queue_pull(company, dt, None).await?;
    }
    let mut source = tributary_stripe::StripeDataSource::new(&sandbox_url)?;
    source = source.with_rate(rate);
    let engine = SyncEngine::new(platform.clone(), Arc::new(source), "bench".into(), std::time::Duration::from_secs(600));
    let rss_before = rss_mb("VmRSS:");
    let started = Instant::now();
    while engine.run_once().await? {}
    let secs = started.elapsed().as_secs_f64();
    let mut stored = 0u64;
    for dt in
        [DataType::CompanyInfo, DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions]
    {
        stored += platform.repositories().records.count(connection.id, dt, true).await?;
    }
    let stats: serde_json::Value = http.get(format!("{sandbox_url}/_sandbox/accounts/{account}/stats")).send().await?.json().await?;
    #[expect(clippy::cast_precision_loss, reason = "rates for display")]
    let (per_sec, read_per_sec) = (objects as f64 / secs, read as f64 / secs);
    println!(
        "database {}: {objects} Stripe objects ({read} in the lists a sync reads) -> {stored} Codat records in {secs:.1} s = {per_sec:.0} objects/s ({read_per_sec:.0} read/s); {} requests; RSS before sync {rss_before:.0} MB, peak {:.0} MB ({})",
        tributary_api::config::redact_url(&url),
        stats["total"],
        rss_mb("VmHWM:"),
        if sandbox.is_some() { "the sandbox's data included" } else { "the syncing process alone; the sandbox runs apart" }
    );
    store.close().await;
    if let Some(sandbox) = sandbox {
        sandbox.stop().await;
    }
    Ok(())
}
