//! Syncing across real `tributary-api` processes: a server killed with SIGKILL at random points of
//! a sync and restarted ends with exactly the data of an uninterrupted sync, and two servers on one
//! Postgres database never sync the same connection at once.

mod common;

use common::reference::{Synced, assert_same, finished, linked_with_pulls, platform_on, statuses, stored, sync_account, without_account};
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
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary-api"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIBUTARY_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn")
        .env("TRIBUTARY_MASTER_KEY", KEY)
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIBUTARY_DATABASE_URL", database_url)
        .env("TRIBUTARY_STRIPE__API_BASE", api_base)
        .env("TRIBUTARY_WORKERS", workers.to_string())
        .env("TRIBUTARY_SYNC_LEASE", "1s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
    // About 80 list pages: at Stripe Test's 25 requests/s the sync takes a few seconds.
    let profile = Profile { customers: 1500, charges: 2500, refunds: 200, disputes: 100, products: 60, prices: 150, payouts: 50 };
    let (s1, s2) = (sandbox.sandbox.clone(), sandbox.sandbox.clone());
    let reference = tokio::task::spawn_blocking(move || s1.create_account(Mode::Test, Some(31), true, &profile)).await.unwrap();
    let killed = tokio::task::spawn_blocking(move || s2.create_account(Mode::Test, Some(31), true, &profile)).await.unwrap();
    let (want, want_statuses, _) = sync_account(&sandbox.url(), &reference).await;
    assert!(want_statuses.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{want_statuses:?}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let platform = platform_on(&store, &master()).await;
    let (company, connection) = linked_with_pulls(&platform, "Killed", &killed).await;

    let mut cut_mid_sync = 0;
    for round in 0..4 {
        let port = free_port();
        let mut server = spawn_api(&url, port, &sandbox.url(), 1);
        wait_healthy(port).await;
        tokio::time::sleep(random_ms(300..1500)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        let records = stored(&platform, connection).await.len();
        let done = finished(&platform, company).await;
        eprintln!("kill {round}: {records} records stored, finished: {done}");
        if records > 0 && !done {
            cut_mid_sync += 1;
        }
        if done {
            break;
        }
    }
    assert!(cut_mid_sync > 0, "at least one kill landed in the middle of the sync");

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
