//! Syncing across real `tributary-api` processes: a server killed with SIGKILL at random points of
//! a sync and restarted ends with exactly the data of an uninterrupted sync, and two servers on one
//! Postgres database never sync the same connection at once.

mod common;

use common::reference::{
    Synced, TYPES, assert_same, finished, linked_with_pulls, platform_on, statuses, stored, sync_account, without_account,
};
use common::{free_port, wait_healthy};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stripe_sandbox::{Config, Mode, Profile};
use tributary_api::store::Store;
use tributary_domain::model::pull::DatasetStatus;

const KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="; // 32 bytes of '*'

fn master() -> [u8; 32] {
    tributary_api::config::decode_master_key(KEY).unwrap()
}

/// Starts the server binary on `database_url` with `workers` sync workers reading Stripe at
/// `api_base`, holding connection leases for one second between renewals.
fn spawn_api(database_url: &str, port: u16, api_base: &str, workers: u32) -> Child {
    spawn_api_logging(database_url, port, api_base, workers, None)
}

/// [`spawn_api`], its info-level log written to `log`.
fn spawn_api_logging(database_url: &str, port: u16, api_base: &str, workers: u32, log: Option<&std::path::Path>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary-api"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIBUTARY_") {
            c.env_remove(k);
        }
    }
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    c.env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
        .env("TRIBUTARY_MASTER_KEY", KEY)
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIBUTARY_DATABASE_URL", database_url)
        .env("TRIBUTARY_STRIPE__API_BASE", api_base)
        .env("TRIBUTARY_WORKERS", workers.to_string())
        .env("TRIBUTARY_SYNC_LEASE", "1s")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// A pseudo-random delay in `range` milliseconds, different on every run.
fn random_ms(range: std::ops::Range<u64>) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let x = u64::from(nanos).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    Duration::from_millis(range.start + x % (range.end - range.start))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_sync_and_restarted_ends_with_the_data_of_an_uninterrupted_sync() {
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let profile = Profile { customers: 1500, charges: 2500, refunds: 200, disputes: 100, products: 60, prices: 150, payouts: 50 };
    let (s1, s2) = (sandbox.sandbox.clone(), sandbox.sandbox.clone());
    let reference = tokio::task::spawn_blocking(move || s1.create_account(Mode::Test, Some(31), true, &profile)).await.unwrap();
    let killed = tokio::task::spawn_blocking(move || s2.create_account(Mode::Test, Some(31), true, &profile)).await.unwrap();
    let (want, want_statuses, _) = sync_account(&sandbox.url(), &reference).await;
    assert!(want_statuses.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{want_statuses:?}");
    // Then Stripe's rate limit and a latency: every backfill is split into ranges fetched at once.
    let http = reqwest::Client::new();
    let faults = serde_json::json!({"endpoints": {"*": {"latency_ms": 80}}});
    let r = http.put(format!("{}/_sandbox/faults", sandbox.url())).json(&faults).send().await.unwrap();
    assert!(r.status().is_success());
    let r = http.put(format!("{}/_sandbox/rate_limits", sandbox.url())).json(&serde_json::json!({"test": 25})).send().await.unwrap();
    assert!(r.status().is_success());

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let platform = platform_on(&store, &master()).await;
    let (company, connection) = linked_with_pulls(&platform, "Killed", &killed).await;

    let mut cut_mid_sync = 0;
    let mut most_ranges = 0;
    for round in 0..6 {
        let port = free_port();
        let mut server = spawn_api(&url, port, &sandbox.url(), 1);
        wait_healthy(port).await;
        tokio::time::sleep(random_ms(300..2000)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        let records = stored(&platform, connection).await.len();
        let done = finished(&platform, company).await;
        // The ranges the killed server left unfinished, which the next one resumes.
        let mut open = 0;
        for dt in TYPES {
            open = open.max(
                platform.repositories().records.partitions(connection, dt).await.unwrap().iter().filter(|p| p.cursor.is_some()).count(),
            );
        }
        most_ranges = most_ranges.max(open);
        eprintln!("kill {round}: {records} records stored, {open} ranges open at most, finished: {done}");
        if records > 0 && !done {
            cut_mid_sync += 1;
        }
        if done {
            break;
        }
    }
    assert!(cut_mid_sync > 0, "at least one kill landed in the middle of the sync");
    assert!(most_ranges >= 2, "a kill left a backfill split into ranges");

    let port = free_port();
    let mut server = spawn_api(&url, port, &sandbox.url(), 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !finished(&platform, company).await {
        assert!(Instant::now() < deadline, "the sync did not finish after the restart: {:?}", statuses(&platform, company).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let got_statuses = statuses(&platform, company).await;
    assert!(got_statuses.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{got_statuses:?}");
    let got: Synced = stored(&platform, connection).await;
    assert_same(&without_account(got, &killed), &without_account(want, &reference));
    store.close().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_slower_than_the_lease_keeps_it_every_pull_starts_once_and_no_price_page_is_read_twice() {
    // Every prices page takes 2 s, twice the lease: the lease is renewed while requests run, so
    // no other worker of the server takes the connection over and starts its pulls again.
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), ..Config::default() }).await.unwrap();
    let faults = serde_json::json!({"endpoints": {"GET /v1/prices": {"latency_ms": 2000}}});
    let r = reqwest::Client::new().put(format!("{}/_sandbox/faults", sandbox.url())).json(&faults).send().await.unwrap();
    assert!(r.status().is_success());
    let profile = Profile { customers: 30, charges: 30, refunds: 3, disputes: 2, products: 800, prices: 3200, payouts: 2 };
    let s = sandbox.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(41), true, &profile)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let platform = platform_on(&store, &master()).await;
    let (company, connection) = linked_with_pulls(&platform, "Catalogue", &account).await;
    let log = dir.path().join("server.log");
    let port = free_port();
    let mut server = spawn_api_logging(&url, port, &sandbox.url(), 4, Some(&log));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !finished(&platform, company).await {
        assert!(Instant::now() < deadline, "the sync did not finish: {:?}", statuses(&platform, company).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let s = statuses(&platform, company).await;
    assert!(s.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{s:?}");

    let log = std::fs::read_to_string(&log).unwrap();
    let mut starts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("pull started")) {
        let pull = line.split("pull.id=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default();
        *starts.entry(pull.to_owned()).or_default() += 1;
    }
    assert_eq!(starts.len(), 6, "{log}");
    assert!(starts.values().all(|n| *n == 1), "a pull was started again: {starts:?}");
    assert!(!log.contains("lease lost"), "{log}");
    // 3,200 prices are 32 pages; ranges fetched at once end in partial pages, but none is read
    // again by a worker that took over.
    let stats: serde_json::Value =
        reqwest::get(format!("{}/_sandbox/accounts/{account}/stats", sandbox.url())).await.unwrap().json().await.unwrap();
    let prices = stats["requests"]["GET /v1/prices"].as_u64().unwrap();
    assert!((32..48).contains(&prices), "{prices} price requests: {stats}");
    // Every product with every one of its prices.
    let synced = stored(&platform, connection).await;
    let variants: usize = synced
        .iter()
        .filter(|((dt, _), _)| *dt == tributary_domain::model::data_type::DataType::Products)
        .map(|(_, (doc, _))| doc["variants"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(variants, 3200);
    store.close().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_never_sync_the_same_connection_at_once() {
    let Some((pg, db)) = tributary_tests::pg::fresh_postgres("sync_process::two_servers").await else { return };
    pg.close().await;
    // The sandbox answers on every loopback address: one server reads it as 127.0.0.1, the other
    // as 127.0.0.2, and the sandbox counts each account's requests per Host.
    let sandbox = stripe_sandbox::start(Config { listen: "0.0.0.0:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let sandbox_port = sandbox.addr.port();
    let bases = [format!("http://127.0.0.1:{sandbox_port}"), format!("http://127.0.0.2:{sandbox_port}")];
    let profile = Profile { customers: 300, charges: 500, refunds: 40, disputes: 20, products: 10, prices: 25, payouts: 10 };
    let mut accounts = Vec::new();
    for seed in 0..10 {
        let s = sandbox.sandbox.clone();
        accounts.push(tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(100 + seed), true, &profile)).await.unwrap());
    }

    let store = Store::open(db.url()).await.unwrap();
    let platform = platform_on(&store, &master()).await;
    let ports = [free_port(), free_port()];
    let mut servers: Vec<Child> = (0..2).map(|i| spawn_api(db.url(), ports[i], &bases[i], 2)).collect();
    for port in ports {
        wait_healthy(port).await;
    }
    // Queued once both run, so that both compete for every connection.
    let mut companies = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        companies.push(linked_with_pulls(&platform, &format!("Shop {i}"), account).await.0);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    for company in &companies {
        while !finished(&platform, *company).await {
            assert!(Instant::now() < deadline, "syncs did not finish: {:?}", statuses(&platform, *company).await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let s = statuses(&platform, *company).await;
        assert!(s.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{s:?}");
    }
    for s in &mut servers {
        s.kill().unwrap();
        s.wait().unwrap();
    }

    // Each connection's pulls were leased once, so all of its requests came from one server.
    let http = reqwest::Client::new();
    let mut used = std::collections::BTreeSet::new();
    for account in &accounts {
        let stats: serde_json::Value =
            http.get(format!("{}/_sandbox/accounts/{account}/stats", sandbox.url())).send().await.unwrap().json().await.unwrap();
        let hosts: Vec<&String> = stats["hosts"].as_object().unwrap().keys().collect();
        assert_eq!(hosts.len(), 1, "{account} was read by more than one server: {stats}");
        used.insert(hosts[0].clone());
    }
    assert_eq!(used.len(), 2, "both servers synced: {used:?}");
    store.close().await;
    sandbox.stop().await;
    db.cleanup().await;
}
