//! The sync engine under Stripe's failure modes, end to end against the sandbox: injected 429s,
//! 500s and dropped connections still end every data type `Complete`, with exactly the data a
//! fault-free sync stores.

mod common;

use common::reference::{assert_same, sync_account, without_account};
use serde_json::{Value, json};
use stripe_sandbox::{Config, Mode, Profile};
use tributary_domain::model::pull::DatasetStatus;

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
    assert_same(&without_account(got, &stormy), &without_account(want, &calm));
    sandbox.stop().await;
}

/// Links a merchant one of whose customers the store refuses (a trigger stands in for a record the
/// database rejects, as Postgres once did a NUL) and syncs it: the customers pull ends
/// `InternalError` within a bounded time, every other data type completes, and the connection
/// stays linked with its lease released.
async fn a_refused_record(store: tributary_api::store::Store, refuse: impl std::future::Future<Output = ()>) {
    use common::reference::{TYPES, linked_with_pulls, platform_on, statuses};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tributary_domain::model::connection::ConnectionStatus;
    use tributary_domain::model::data_type::DataType;

    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let profile = Profile { customers: 30, charges: 40, refunds: 4, disputes: 3, products: 4, prices: 6, payouts: 3 };
    let s = sandbox.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(5), true, &profile)).await.unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/_sandbox/accounts/{account}/objects/customers", sandbox.url()))
        .json(&json!({"name": "Poison Pill"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    refuse.await;

    let platform = platform_on(&store, &[3; 32]).await;
    let (company, connection) = linked_with_pulls(&platform, "Poisoned", &account).await;
    let source = Arc::new(tributary_stripe::StripeDataSource::new(&sandbox.url()).unwrap().with_rate(None));
    let engine = tributary_domain::service::SyncEngine::new(
        platform.clone(),
        source,
        Arc::new(tributary_api::TokioTimer),
        "w1".into(),
        tributary_domain::service::SyncOptions::default(),
    );
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), async {
        while engine.run_once().await.expect("the run ends without a storage error: the pull failed, not the run") {}
    })
    .await
    .expect("the refused record stalled the connection");
    // The page is written 4 times over 7.5 s of waits, then the pull ends.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());

    let statuses = statuses(&platform, company).await;
    for (dt, status, error) in &statuses {
        if *dt == DataType::Customers {
            assert_eq!(*status, DatasetStatus::InternalError, "{statuses:?}");
            assert!(error.as_deref().is_some_and(|e| e.contains("could not be stored")), "{error:?}");
        } else if TYPES.contains(dt) {
            assert_eq!(*status, DatasetStatus::Complete, "{dt}: {statuses:?}");
        }
    }
    let c = platform.connections().get(company, connection).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Linked);
    // Released: the connection syncs again at once.
    platform.pulls().queue(company, DataType::Disputes, None).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(30), engine.run_once()).await.unwrap().unwrap());
    sandbox.stop().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_sqlite_refuses_ends_its_pull_in_internal_error_and_the_other_types_complete() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = tributary_api::store::Store::open(&url).await.unwrap();
    a_refused_record(store, async {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        c.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON records WHEN NEW.document LIKE '%Poison Pill%' \
             BEGIN SELECT RAISE(ABORT, 'poison record refused'); END",
        )
        .await
        .unwrap();
        c.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_postgres_refuses_ends_its_pull_in_internal_error_and_the_other_types_complete() {
    use sqlx::{Connection, Executor};
    let Some(admin) = tributary_tests::pg::admin_url("sync_faults::a_record_postgres_refuses") else { return };
    let db = tributary_tests::pg::create_database(&admin).await;
    let store = tributary_api::store::Store::open(db.url()).await.unwrap();
    a_refused_record(store, async {
        let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
        c.execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.document::text LIKE '%Poison Pill%' THEN RAISE EXCEPTION 'poison record refused'; END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON records FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        .await
        .unwrap();
        c.close().await.unwrap();
    })
    .await;
    db.cleanup().await;
}
