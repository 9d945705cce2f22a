//! Syncs outside the HTTP server: a linked connection prepared directly on a database, an
//! in-process engine, and everything a sync stored, for comparing runs.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::company::CompanyFields;
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::DatasetStatus;
use tributary_domain::service::{Platform, SyncEngine};

/// The data types Stripe provides.
pub const TYPES: [DataType; 6] =
    [DataType::CompanyInfo, DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions];

/// Every record a sync stored, by data type and id: (document, deleted).
pub type Synced = BTreeMap<(DataType, String), (Value, bool)>;

/// Stripe Test configured with the sandbox's platform keys, on `store` with master key `master`.
pub async fn platform_on(store: &Store, master: &[u8; 32]) -> Platform {
    let platform =
        tributary_api::compose::platform(store, std::sync::Arc::new(AesGcmCipher::new(master, &[])), "http://127.0.0.1", true).unwrap();
    super::use_sandbox_keys(&platform).await;
    platform
}

/// A company whose Stripe Test connection is linked to `account` (written directly, as the Link
/// flow would leave it), with a pull of every data type queued.
pub async fn linked_with_pulls(platform: &Platform, name: &str, account: &str) -> (CompanyId, ConnectionId) {
    let company = platform.companies().create(CompanyFields::new(name, None, Default::default()).unwrap()).await.unwrap().company.id;
    let mut connection = platform.connections().create(company, "yzth").await.unwrap();
    connection.transition(ConnectionStatus::Linked).unwrap();
    connection.source_account = Some(account.to_owned());
    platform.repositories().connections.update(&connection, &[]).await.unwrap();
    for dt in TYPES {
        platform.pulls().queue(company, dt, None).await.unwrap();
    }
    (company, connection.id)
}

/// The latest status of each data type of the company (with its error message).
pub async fn statuses(platform: &Platform, company: CompanyId) -> Vec<(DataType, DatasetStatus, Option<String>)> {
    platform
        .pulls()
        .data_status(company)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| TYPES.contains(&s.data_type))
        .map(|s| (s.data_type, s.latest.status, s.latest.error_message.clone()))
        .collect()
}

/// Whether every data type's latest pull has finished.
pub async fn finished(platform: &Platform, company: CompanyId) -> bool {
    statuses(platform, company).await.iter().all(|(_, s, _)| !matches!(s, DatasetStatus::Queued | DatasetStatus::Fetching))
}

/// Every record stored for a connection (deleted ones included).
pub async fn stored(platform: &Platform, connection: ConnectionId) -> Synced {
    let mut synced = Synced::new();
    for dt in TYPES {
        let mut after = None;
        loop {
            let rows = platform.repositories().records.scan(connection, dt, after.clone(), 500).await.unwrap();
            let Some(last) = rows.last() else { break };
            after = Some(last.record.id.clone());
            for r in rows {
                synced.insert((dt, r.record.id), (r.record.document, r.record.deleted));
            }
        }
    }
    synced
}

/// Syncs `account` into a fresh SQLite store with one in-process engine whose retries wait
/// milliseconds, not seconds; returns what it stored, each data type's final status and the
/// source's request counters.
pub async fn sync_account(
    sandbox: &str,
    account: &str,
) -> (Synced, Vec<(DataType, DatasetStatus, Option<String>)>, tributary_stripe::SourceStats) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform = platform_on(&store, &[3; 32]).await;
    let (company, connection) = linked_with_pulls(&platform, "Reference", account).await;
    let source = Arc::new(
        tributary_stripe::StripeDataSource::new(sandbox)
            .unwrap()
            .with_rate(None)
            .with_retries(12, Duration::from_millis(2))
            .with_max_backoff(Duration::from_millis(20)),
    );
    let engine = SyncEngine::new(
        platform.clone(),
        source.clone(),
        Arc::new(tributary_api::TokioTimer),
        "reference".into(),
        tributary_domain::service::SyncOptions::default(),
    );
    tokio::time::timeout(Duration::from_secs(120), async { while engine.run_once().await.unwrap() {} }).await.expect("the sync finishes");
    let statuses = statuses(&platform, company).await;
    let synced = stored(&platform, connection).await;
    store.close().await;
    (synced, statuses, source.stats())
}

/// The company-info record names the account it was read from (its id and reference); everything
/// else is the same data for two merchants generated from one seed.
pub fn without_account(synced: Synced, account: &str) -> Synced {
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

/// Asserts two syncs stored the same records, naming the first difference.
pub fn assert_same(got: &Synced, want: &Synced) {
    for (key, record) in want {
        assert_eq!(got.get(key), Some(record), "{key:?}");
    }
    assert_eq!(got.len(), want.len(), "no extra records");
}
