//! Incremental sync against the in-process sandbox: changes made through the control API come
//! back as upserts and deletions, exactly once, and stale or foreign cursors are handled.

mod common;

use common::test_creds;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use stripe_sandbox::{Config, Profile, Running};
use tributary_domain::model::commerce::CommerceRecord;
use tributary_domain::model::data_type::DataType;
use tributary_domain::ports::source::{ChangeSet, CommerceDataSource, SourceError};
use tributary_stripe::StripeDataSource;

async fn post(sb: &Running, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{}{path}", sb.url())).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    r.json().await.unwrap()
}

async fn delete(sb: &Running, path: &str) {
    let r = reqwest::Client::new().delete(format!("{}{path}", sb.url())).send().await.unwrap();
    assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn record_id(r: &CommerceRecord) -> String {
    match r {
        CommerceRecord::CompanyInfo(x) => x.commerce_platform_ref.clone().unwrap_or_default(),
        CommerceRecord::Customer(x) => x.id.clone(),
        CommerceRecord::Dispute(x) => x.id.clone(),
        CommerceRecord::Payment(x) => x.id.clone(),
        CommerceRecord::Product(x) => x.id.clone(),
        CommerceRecord::Transaction(x) => x.id.clone(),
    }
}

fn upserted(c: &ChangeSet) -> BTreeSet<String> {
    c.upserts.iter().map(record_id).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

const TYPES: [DataType; 6] =
    [DataType::CompanyInfo, DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_since_a_cursor_are_upserts_and_deletions_exactly_once() {
    let sb = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Default::default() }).await.unwrap();
    let s = sb.sandbox.clone();
    let acct = tokio::task::spawn_blocking(move || s.create_account(stripe_sandbox::Mode::Test, Some(5), true, &Profile::default()))
        .await
        .unwrap();
    let creds = test_creds();
    let src = StripeDataSource::new(&sb.url()).unwrap().with_rate(None).with_retries(3, Duration::from_millis(5));

    // Starting points, taken before anything changes: no changes yet.
    let mut cursors = Vec::new();
    for dt in TYPES {
        let start = src.list_changes(&creds, &acct, dt, String::new()).await.unwrap();
        assert!(start.upserts.is_empty() && start.deletions.is_empty() && !start.needs_backfill, "{dt}");
        cursors.push(start.cursor);
    }

    // Changes through the control API (each emits the events Stripe would).
    let base = format!("/_sandbox/accounts/{acct}/objects");
    let customers: Value = reqwest::Client::new()
        .get(format!("{}/v1/customers?limit=3", sb.url()))
        .bearer_auth(common::TEST_KEY)
        .header("Stripe-Account", &acct)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (updated_customer, deleted_customer) = (id(&customers["data"][0]), id(&customers["data"][1]));
    let new_customer = id(&post(&sb, &format!("{base}/customers"), json!({"name": "Grace New", "email": "grace@example.com"})).await);
    post(&sb, &format!("{base}/customers/{updated_customer}"), json!({"name": "Renamed"})).await;
    delete(&sb, &format!("{base}/customers/{deleted_customer}")).await;
    let charge = id(&post(&sb, &format!("{base}/charges"), json!({"amount": 5000, "currency": "jpy"})).await);
    let refund = id(&post(&sb, &format!("{base}/refunds"), json!({"charge": charge, "amount": 1000})).await);
    let disputed = id(&post(&sb, &format!("{base}/charges"), json!({"amount": 12345, "currency": "kwd"})).await);
    let dispute = id(&post(&sb, &format!("{base}/disputes"), json!({"charge": disputed, "status": "needs_response"})).await);
    let product = id(&post(&sb, &format!("{base}/products"), json!({"name": "Green Cap"})).await);
    post(&sb, &format!("{base}/prices"), json!({"product": product, "unit_amount": 1500, "currency": "gbp"})).await;
    let doomed = id(&post(&sb, &format!("{base}/products"), json!({"name": "Short-lived"})).await);
    delete(&sb, &format!("{base}/products/{doomed}")).await;

    let mut next = Vec::new();
    for (dt, cursor) in TYPES.into_iter().zip(&cursors) {
        let c = src.list_changes(&creds, &acct, dt, cursor.clone()).await.unwrap_or_else(|e| panic!("{dt}: {e}"));
        assert!(!c.needs_backfill, "{dt}");
        match dt {
            DataType::CompanyInfo => assert_eq!(upserted(&c), set(&[&acct])),
            DataType::Customers => {
                assert_eq!(upserted(&c), set(&[&new_customer, &updated_customer]));
                assert_eq!(c.deletions, vec![deleted_customer.clone()]);
                let renamed = c.upserts.iter().find(|r| record_id(r) == updated_customer).unwrap();
                let CommerceRecord::Customer(renamed) = renamed else { panic!() };
                assert_eq!(renamed.customer_name.as_deref(), Some("Renamed"));
            }
            DataType::Disputes => assert_eq!(upserted(&c), set(&[&dispute])),
            DataType::Payments => assert_eq!(upserted(&c), set(&[&charge, &refund, &disputed])),
            DataType::Products => {
                assert_eq!(upserted(&c), set(&[&product]));
                assert_eq!(c.deletions, vec![doomed.clone()]);
                let CommerceRecord::Product(p) = &c.upserts[0] else { panic!() };
                assert_eq!(p.variants.len(), 1);
            }
            DataType::Transactions => {
                // The charges' and the refund's and the dispute's balance transactions, with fee
                // records for the two charges and the dispute fee.
                assert_eq!(c.upserts.len(), 7, "{:?}", upserted(&c));
                assert_eq!(c.upserts.iter().filter(|r| record_id(r).ends_with(":Stripe processing fees")).count(), 3);
            }
            _ => unreachable!(),
        }
        if dt != DataType::CompanyInfo {
            // Records from changes map exactly as fetch by id does.
            let ids: Vec<String> = c.upserts.iter().map(record_id).collect();
            let fetched = src.fetch_by_ids(&creds, &acct, dt, ids).await.unwrap();
            assert_eq!(fetched, c.upserts, "{dt}");
        }
        next.push(c.cursor);
    }

    // Again from the new cursors: nothing new (the overlap window does not repeat anything).
    for (dt, cursor) in TYPES.into_iter().zip(next) {
        let c = src.list_changes(&creds, &acct, dt, cursor).await.unwrap();
        if dt == DataType::CompanyInfo {
            assert_eq!(c.upserts.len(), 1);
        } else {
            assert!(c.upserts.is_empty() && c.deletions.is_empty(), "{dt}: {:?} {:?}", upserted(&c), c.deletions);
        }
    }

    // A cursor older than Stripe's event retention needs a backfill; garbage is a fetch error.
    let old = json!({"v": 1, "since": 1_600_000_000}).to_string();
    let c = src.list_changes(&creds, &acct, DataType::Customers, old).await.unwrap();
    assert!(c.needs_backfill && c.upserts.is_empty());
    assert!(!c.cursor.is_empty());
    assert!(matches!(src.list_changes(&creds, &acct, DataType::Customers, "nope".into()).await, Err(SourceError::Fetch(_))));
    assert!(matches!(src.list_changes(&creds, &acct, DataType::Orders, String::new()).await, Err(SourceError::Fetch(_))));
    sb.stop().await;
}
