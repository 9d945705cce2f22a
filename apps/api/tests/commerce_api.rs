//! The Commerce API's Codat semantics: envelopes, paging, queries, and every error case.

mod common;

use common::{assert_envelope, linked_and_synced};
use serde_json::{Value, json};
use stripe_sandbox::Profile;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::{StoredRecord, SyncWrite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commerce_reads_follow_codats_envelope_paging_queries_and_errors() {
    let profile = Profile { customers: 12, charges: 60, refunds: 8, disputes: 10, products: 4, prices: 9, payouts: 5 };
    let (api, sandbox, company, connection, account) = linked_and_synced(profile).await;
    let base = format!("/companies/{company}/connections/{connection}/data");

    let (st, page) = api.get(&format!("{base}/commerce-payments?page=2&pageSize=10&orderBy=-amount")).await;
    assert_eq!(st, 200, "{page}");
    assert_eq!((page["pageNumber"].as_u64(), page["pageSize"].as_u64()), (Some(2), Some(10)));
    assert_eq!(page["results"].as_array().unwrap().len(), 10);
    assert_eq!(page["_links"]["self"]["href"], format!("{base}/commerce-payments"));
    assert_eq!(page["_links"]["previous"]["href"], format!("{base}/commerce-payments?page=1&pageSize=10&orderBy=-amount"));
    let amounts: Vec<f64> = page["results"].as_array().unwrap().iter().map(|p| p["amount"].as_f64().unwrap()).collect();
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]), "ordered by amount descending: {amounts:?}");
    assert!(page["results"][0]["modifiedDate"].is_string(), "modifiedDate is filled in");

    let (_, jpy) = api.get(&format!("{base}/commerce-payments?pageSize=5000&query=currency%3DJPY%20%26%26%20amount%3E0")).await;
    assert!(jpy["results"].as_array().unwrap().iter().all(|p| p["currency"] == "JPY" && p["amount"].as_f64().unwrap() > 0.0));
    assert_eq!(jpy["totalResults"].as_u64().unwrap() as usize, jpy["results"].as_array().unwrap().len());

    let (_, fees) = api.get(&format!("{base}/commerce-transactions?pageSize=1&query=type%3DPaymentFee")).await;
    let fee_id = fees["results"][0]["id"].as_str().unwrap().to_owned();
    assert!(fee_id.ends_with(":Stripe processing fees"));
    let (st, fee) = api.get(&format!("{base}/commerce-transactions/{}", fee_id.replace(' ', "%20"))).await;
    assert_eq!((st, fee["id"].as_str()), (200, Some(fee_id.as_str())), "ids with ':' and spaces work in get");

    let (st, info) = api.get(&format!("{base}/commerce-info")).await;
    assert_eq!((st, info["commercePlatformRef"].as_str()), (200, Some(account.as_str())));

    // Errors, each in Codat's envelope.
    let (st, b) = api.get(&format!("{base}/commerce-orders")).await;
    assert_eq!(assert_envelope(st, &b, 404), "Datatype commerce-orders not supported by platform(s) Stripe Test");
    for t in ["commerce-locations", "commerce-paymentMethods", "commerce-productCategories", "commerce-taxComponents"] {
        let (st, b) = api.get(&format!("{base}/{t}")).await;
        assert!(assert_envelope(st, &b, 404).contains("not supported"), "{t}");
    }
    let (st, b) = api.get(&format!("{base}/commerce-payments?query=amount%3E")).await;
    assert!(assert_envelope(st, &b, 400).starts_with("Error parsing query - "));
    let (st, b) = api.get(&format!("{base}/commerce-payments?query=colour%3Dred")).await;
    assert_eq!(assert_envelope(st, &b, 400), "Error parsing query - Could not resolve property colour on Payment");
    let (st, b) = api.get(&format!("{base}/commerce-payments?orderBy=-colour")).await;
    assert!(assert_envelope(st, &b, 400).contains("colour"));
    let (st, b) = api.get(&format!("{base}/commerce-customers/cus_missing")).await;
    assert_envelope(st, &b, 404);
    let (st, b) = api.get(&format!("/companies/{}/connections/{connection}/data/commerce-customers", uuid::Uuid::new_v4())).await;
    assert_envelope(st, &b, 404);
    let (st, b) = api.get(&format!("/companies/{company}/connections/{}/data/commerce-customers", uuid::Uuid::new_v4())).await;
    assert_envelope(st, &b, 404);
    let other = api.company("Other").await;
    let (st, b) = api.get(&format!("/companies/{other}/connections/{connection}/data/commerce-customers")).await;
    assert_envelope(st, &b, 404);

    // A soft-deleted record is not returned.
    let (_, customers) = api.get(&format!("{base}/commerce-customers?pageSize=5000")).await;
    let total = customers["totalResults"].as_u64().unwrap();
    let victim = customers["results"][0].clone();
    let id = victim["id"].as_str().unwrap().to_owned();
    let repos = api.platform.repositories();
    let mut doc = victim.clone();
    doc.as_object_mut().unwrap().remove("modifiedDate");
    let deleted = StoredRecord { id: id.clone(), created: None, source_modified: None, document: doc, deleted: true };
    let company_id = company.parse().unwrap();
    let w = SyncWrite { records: vec![deleted], ..SyncWrite::default() };
    repos.records.write_sync(company_id, connection, DataType::Customers, &w, chrono::Utc::now()).await.unwrap();
    let (_, after) = api.get(&format!("{base}/commerce-customers?pageSize=5000")).await;
    assert_eq!(after["totalResults"].as_u64().unwrap(), total - 1);
    let (st, b) = api.get(&format!("{base}/commerce-customers/{id}")).await;
    assert_envelope(st, &b, 404);
    sandbox.stop().await;
}

/// Every `id` of a page.
fn ids(page: &Value) -> Vec<String> {
    assert!(page["results"].is_array(), "{page}");
    page["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_carry_a_keyset_cursor_and_page_numbers_keep_working() {
    let profile = Profile { customers: 5, charges: 40, refunds: 6, disputes: 3, products: 2, prices: 3, payouts: 4 };
    let (api, sandbox, company, connection, _) = linked_and_synced(profile).await;
    let list = format!("/companies/{company}/connections/{connection}/data/commerce-transactions");
    for params in ["pageSize=7", "pageSize=7&orderBy=-createdDate&query=totalAmount%3E0"] {
        let (st, first) = api.get(&format!("{list}?{params}")).await;
        assert_eq!(st, 200, "{first}");
        let total = first["totalResults"].as_u64().unwrap();
        assert!(total > 30, "{total} transactions");
        let (mut by_cursor, mut by_number) = (ids(&first), ids(&first));
        let mut page = first;
        let mut n = 1;
        while let Some(next) = page["_links"]["next"]["href"].as_str().map(str::to_owned) {
            n += 1;
            assert!(next.starts_with(&format!("{list}?page={n}&pageSize=7")), "{next}");
            assert!(next.contains("&cursor="), "{next}");
            let (st, p) = api.get(&next).await;
            assert_eq!(st, 200, "{p}");
            assert_eq!((p["pageNumber"].as_u64(), p["totalResults"].as_u64()), (Some(n), Some(total)));
            by_cursor.extend(ids(&p));
            let (_, plain) = api.get(&format!("{list}?{params}&page={n}")).await;
            by_number.extend(ids(&plain));
            page = p;
        }
        assert_eq!(by_cursor.len() as u64, total, "{params}: following next reads every record once");
        assert_eq!(by_cursor, by_number, "{params}: the cursor gives the pages page numbers give");
    }

    // A cursor holds its position: after a record is added before it, following the saved link still
    // gives the page that came after page 1, while the plain page number shifts by one.
    let (_, page1) = api.get(&format!("{list}?pageSize=7")).await;
    let saved = page1["_links"]["next"]["href"].as_str().unwrap().to_owned();
    let (_, page2_before) = api.get(&saved).await;
    let repos = api.platform.repositories();
    let earliest = StoredRecord {
        id: "txn_000_earliest".into(),
        created: Some("2001-01-01T00:00:00Z".parse().unwrap()),
        source_modified: None,
        document: json!({"id": "txn_000_earliest", "totalAmount": 1, "currency": "USD"}),
        deleted: false,
    };
    let w = SyncWrite { records: vec![earliest], ..SyncWrite::default() };
    repos.records.write_sync(company.parse().unwrap(), connection, DataType::Transactions, &w, chrono::Utc::now()).await.unwrap();
    let (_, followed) = api.get(&saved).await;
    assert_eq!(ids(&followed), ids(&page2_before), "the keyset position held");
    assert_eq!(followed["totalResults"].as_u64(), page2_before["totalResults"].as_u64().map(|t| t + 1), "the count moved");
    let (_, plain) = api.get(&format!("{list}?page=2&pageSize=7")).await;
    assert_ne!(ids(&plain), ids(&page2_before), "by offset the page shifted");
    assert_eq!(ids(&plain)[1..], ids(&page2_before)[..6]);

    // A cursor only applies to the page and list it was issued for; elsewhere the page number decides.
    let (_, first) = api.get(&format!("{list}?pageSize=7")).await;
    let next = first["_links"]["next"]["href"].as_str().unwrap().to_owned();
    let cursor = next.split("&cursor=").nth(1).unwrap();
    let (_, page5) = api.get(&format!("{list}?page=5&pageSize=7")).await;
    let (_, moved) = api.get(&format!("{list}?page=5&pageSize=7&cursor={cursor}")).await;
    assert_eq!(ids(&moved), ids(&page5));
    let (_, page2) = api.get(&format!("{list}?page=2&pageSize=7&orderBy=totalAmount")).await;
    let (_, reordered) = api.get(&format!("{list}?page=2&pageSize=7&orderBy=totalAmount&cursor={cursor}")).await;
    assert_eq!(ids(&reordered), ids(&page2));
    let customers = format!("/companies/{company}/connections/{connection}/data/commerce-customers");
    let (_, c2) = api.get(&format!("{customers}?page=2&pageSize=2")).await;
    let (_, elsewhere) = api.get(&format!("{customers}?page=2&pageSize=2&cursor={cursor}")).await;
    assert_eq!(ids(&elsewhere), ids(&c2));
    // Orders without an index have plain page links.
    let next = page2["_links"]["next"]["href"].as_str().unwrap();
    assert!(!next.contains("cursor"), "{next}");
    // A cursor this server did not issue is a 400.
    let (st, b) = api.get(&format!("{list}?page=2&pageSize=7&cursor=not-a-cursor")).await;
    assert!(assert_envelope(st, &b, 400).contains("cursor"));
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_type_that_was_never_synced_is_409() {
    let api = common::TestServer::start().await;
    api.enable_stripe_test().await;
    let company = api.company("Unsynced").await;
    let (_, c) = api.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
    let id = c["id"].as_str().unwrap();
    let (st, b): (u16, Value) = api.get(&format!("/companies/{company}/connections/{id}/data/commerce-customers")).await;
    assert_eq!(assert_envelope(st, &b, 409), "The data set has not been requested.");
    let (st, b) = api.get(&format!("/companies/{company}/connections/{id}/data/commerce-info")).await;
    assert_eq!(assert_envelope(st, &b, 409), "The data set has not been requested.");
}
