//! The sync engine under Stripe's failure modes, end to end against the sandbox: injected 429s,
//! 500s and dropped connections still end every data type `Complete`, with exactly the data a
//! fault-free sync stores.

use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stripe_sandbox::{Config, Mode, Profile};
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::model::company::CompanyFields;
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::DatasetStatus;
use tributary_domain::service::{IntegrationUpdate, SyncEngine};

const TYPES: [DataType; 6] =
    [DataType::CompanyInfo, DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions];

/// Every record a sync stored, by data type and id: (document, deleted).
type Synced = BTreeMap<(DataType, String), (Value, bool)>;

/// Syncs `account` into a fresh SQLite store with one engine whose retries wait milliseconds, not
/// seconds; returns what it stored, the final status of each data type and the retries it made.
async fn sync_account(
    sandbox: &str,
    account: &str,
) -> (Synced, Vec<(DataType, DatasetStatus, Option<String>)>, tributary_stripe::SourceStats) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform = tributary_api::platform(&store, AesGcmCipher::new(&[3; 32], &[]), "http://127.0.0.1");
    let cfg = Config::default();
    let settings = IntegrationUpdate {
        client_id: Some(cfg.test_client_id),
        secret_key: Some(SecretString::from(cfg.test_secret_key)),
        ..Default::default()
    };
    platform.update_integration("yzth", settings).await.unwrap();
    platform.set_integration_enabled("yzth", true).await.unwrap();
    let company = platform.create_company(CompanyFields::new("Faulty", None, Default::default()).unwrap()).await.unwrap().company.id;
    let mut connection = platform.create_connection(company, "yzth").await.unwrap();
    connection.transition(ConnectionStatus::Linked).unwrap();
    connection.source_account = Some(account.to_owned());
    platform.repositories().connections.update(&connection, &[]).await.unwrap();
    for dt in TYPES {
        platform.queue_pull(company, dt, None).await.unwrap();
    }
    let source = Arc::new(
        tributary_stripe::StripeDataSource::new(sandbox)
            .unwrap()
            .with_rate(None)
            .with_retries(12, Duration::from_millis(2))
            .with_max_backoff(Duration::from_millis(20)),
    );
    let engine = SyncEngine::new(platform.clone(), source.clone(), "faults".into(), Duration::from_secs(60));
    tokio::time::timeout(Duration::from_secs(120), async { while engine.run_once().await.unwrap() {} }).await.expect("the sync finishes");
    let statuses = platform
        .data_status(company)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| TYPES.contains(&s.data_type))
        .map(|s| (s.data_type, s.latest.status, s.latest.error_message.clone()))
        .collect();
    let mut synced = Synced::new();
    for dt in TYPES {
        let mut after = None;
        loop {
            let rows = platform.repositories().records.scan(connection.id, dt, after.clone(), 500).await.unwrap();
            let Some(last) = rows.last() else { break };
            after = Some(last.record.id.clone());
            for r in rows {
                synced.insert((dt, r.record.id), (r.record.document, r.record.deleted));
            }
        }
    }
    store.close().await;
    (synced, statuses, source.stats())
}

async fn put_faults(http: &reqwest::Client, sandbox: &str, faults: Value) {
    // The control endpoints are subject to the faults themselves: retry until one gets through.
    for _ in 0..200 {
        let sent = if faults.is_null() {
            http.delete(format!("{sandbox}/_sandbox/faults")).send().await
        } else {
            http.put(format!("{sandbox}/_sandbox/faults")).json(&faults).send().await
        };
        if sent.is_ok_and(|r| r.status().is_success()) {
            return;
        }
    }
    panic!("could not set the sandbox's faults to {faults}");
}

/// The company-info record names the account it was read from (its id and reference); everything
/// else is the same data.
fn without_account(synced: Synced, account: &str) -> Synced {
    synced
        .into_iter()
        .map(|((dt, id), (doc, deleted))| {
            if dt == DataType::CompanyInfo {
                let doc = serde_json::from_str(&doc.to_string().replace(account, "acct_X")).unwrap();
                ((dt, id.replace(account, "acct_X")), (doc, deleted))
            } else {
                ((dt, id), (doc, deleted))
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_through_429s_500s_and_dropped_connections_ends_complete_with_identical_data() {
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let url = sandbox.url();
    let profile = Profile { customers: 120, charges: 300, refunds: 40, disputes: 20, products: 15, prices: 40, payouts: 12 };
    // Two merchants generated from the same seed: the same objects under two account ids.
    let (s1, s2) = (sandbox.sandbox.clone(), sandbox.sandbox.clone());
    let calm = tokio::task::spawn_blocking(move || s1.create_account(Mode::Test, Some(77), true, &profile)).await.unwrap();
    let stormy = tokio::task::spawn_blocking(move || s2.create_account(Mode::Test, Some(77), true, &profile)).await.unwrap();

    let (want, statuses, calm_stats) = sync_account(&url, &calm).await;
    assert!(statuses.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{statuses:?}");
    assert_eq!(calm_stats.retries, 0, "no faults, no retries");
    assert!(want.len() > 300, "{} records", want.len());

    let http = reqwest::Client::new();
    put_faults(&http, &url, json!({"endpoints": {"*": {"p429": 0.2, "p500": 0.05, "p_drop": 0.05, "p_truncate": 0.02}}})).await;
    let (got, statuses, stats) = sync_account(&url, &stormy).await;
    put_faults(&http, &url, Value::Null).await;

    assert!(statuses.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{statuses:?}");
    // About 3 in 10 attempts fail, so about 4 retries per 10 requests; at least some must show.
    assert!(stats.retries * 10 >= calm_stats.requests, "the faults were hit: {stats:?} against {calm_stats:?} without faults");
    let (want, got) = (without_account(want, &calm), without_account(got, &stormy));
    assert_eq!(got.len(), want.len());
    for (key, record) in &want {
        assert_eq!(got.get(key), Some(record), "{key:?}");
    }
    sandbox.stop().await;
}
