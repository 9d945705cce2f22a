//! Objects changed through the control API and the events they leave: creates, updates with
//! `previous_attributes`, deletes (hidden from lists, retrieved as `deleted: true`), refused
//! deletes, event type filters and the 30-day event window.

mod common;

use common::{Sandbox, assert_stripe_error, big_profile, created, id, ids, list_page};
use reqwest::Method;
use serde_json::{Value, json};

async fn events(s: &Sandbox, acct: &str, query: &str) -> Vec<Value> {
    s.walk(acct, "/v1/events", query, 100).await
}

#[tokio::test]
async fn a_fresh_account_lists_no_events_because_its_generated_history_is_older_than_30_days() {
    let s = Sandbox::start().await;
    let acct = s.test_account(51, big_profile()).await;
    let summary = s.summary(&acct).await;
    assert!(summary["counts"]["events"].as_u64().unwrap_or(0) > 100, "{summary}");
    assert!(events(&s, &acct, "").await.is_empty());
    assert!(events(&s, &acct, "created[gte]=0").await.is_empty());
    // An old event can be neither retrieved nor used as a cursor.
    let old = {
        let acc = s.running.sandbox.account(&acct).expect("account");
        let a = acc.read().expect("lock");
        a.events.first().expect("generated events").id.to_string()
    };
    let r = s.get(&format!("/v1/events/{old}"), &acct).await;
    assert_stripe_error(&r, 404, "invalid_request_error", Some("resource_missing"), None);
    let r = s.get(&format!("/v1/events?starting_after={old}"), &acct).await;
    assert_stripe_error(&r, 400, "invalid_request_error", Some("resource_missing"), None);
    s.stop().await;
}

#[tokio::test]
async fn control_api_creates_and_updates_emit_customer_created_and_customer_updated_with_previous_attributes() {
    let s = Sandbox::start().await;
    let acct = s.test_account(52, big_profile()).await;
    let r = s
        .control(
            Method::POST,
            &format!("/_sandbox/accounts/{acct}/objects/customers"),
            Some(json!({"name": "Ada Lovelace", "email": "ada@example.com", "metadata": {"tier": "gold"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cus = r.json();
    let cid = id(&cus).to_owned();
    assert!(cid.starts_with("cus_"), "{cid}");
    assert_eq!(cus["object"], "customer");
    assert_eq!(cus["metadata"]["tier"], "gold");
    assert_eq!(s.get_ok(&format!("/v1/customers/{cid}"), &acct).await, cus);
    assert_eq!(s.get_ok("/v1/customers?limit=1", &acct).await["data"][0], cus, "the new customer is the newest");

    let r = s
        .control(
            Method::POST,
            &format!("/_sandbox/accounts/{acct}/objects/customers/{cid}"),
            Some(json!({"name": "Ada King", "phone": "+441234567890"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let updated = r.json();
    assert_eq!(updated["name"], "Ada King");
    assert_eq!(updated["email"], "ada@example.com", "an update is a merge");
    assert_eq!(s.get_ok(&format!("/v1/customers/{cid}"), &acct).await, updated);

    let evs = events(&s, &acct, "").await;
    let mut types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().expect("type")).collect();
    types.sort_unstable();
    assert_eq!(types, ["customer.created", "customer.updated"]);
    for e in &evs {
        assert_eq!(e["object"], "event");
        assert!(id(e).starts_with("evt_"));
        assert_eq!(e["account"], acct.as_str());
        assert_eq!(e["livemode"], false);
        assert_eq!(e["data"]["object"]["id"], cid.as_str());
        assert_eq!(s.get_ok(&format!("/v1/events/{}", id(e)), &acct).await, *e, "retrieve differs from list");
    }
    let created_ev = evs.iter().find(|e| e["type"] == "customer.created").expect("created event");
    assert_eq!(created_ev["data"]["object"], cus);
    assert!(created_ev["data"].get("previous_attributes").is_none(), "{created_ev}");
    let updated_ev = evs.iter().find(|e| e["type"] == "customer.updated").expect("updated event");
    assert_eq!(updated_ev["data"]["object"], updated);
    assert_eq!(updated_ev["data"]["previous_attributes"], json!({"name": "Ada Lovelace", "phone": cus["phone"].clone()}));

    // An id that exists cannot be created again.
    let r = s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers"), Some(json!({"id": cid}))).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    // The new customer counts, and id/created cannot be changed.
    assert_eq!(s.summary(&acct).await["counts"]["customers"], 22);
    let r = s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers/{cid}"), Some(json!({"created": 1}))).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    let r = s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers/cus_nope"), Some(json!({"name": "x"}))).await;
    assert_stripe_error(&r, 404, "invalid_request_error", Some("resource_missing"), None);
    s.stop().await;
}

#[tokio::test]
async fn deleting_a_customer_hides_it_from_lists_retrieves_it_as_deleted_and_lists_a_customer_deleted_event() {
    let s = Sandbox::start().await;
    let acct = s.test_account(53, big_profile()).await;
    let before = s.walk(&acct, "/v1/customers", "", 7).await;
    let victim = before[before.len() / 2].clone();
    let vid = id(&victim).to_owned();
    let r = s.control(Method::DELETE, &format!("/_sandbox/accounts/{acct}/objects/customers/{vid}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"id": vid, "object": "customer", "deleted": true}));

    let after = s.walk(&acct, "/v1/customers", "", 7).await;
    let want: Vec<Value> = before.iter().filter(|c| id(c) != vid).cloned().collect();
    assert_eq!(after, want);
    let oldest = id(after.last().expect("customers")).to_owned();
    let mut back = ids(&s.walk_back(&acct, "/v1/customers", "", 7, &oldest).await);
    back.push(oldest);
    assert_eq!(back, ids(&want), "the backward walk still shows the deleted customer");
    let exact = s.walk(&acct, "/v1/customers", &format!("created={}", created(&victim)), 7).await;
    assert!(exact.iter().all(|c| id(c) != vid), "created= still finds the deleted customer");
    assert_eq!(s.summary(&acct).await["counts"]["customers"], before.len() - 1);

    let got = s.get_ok(&format!("/v1/customers/{vid}"), &acct).await;
    assert_eq!(got, json!({"id": vid, "object": "customer", "deleted": true}));

    let by_prefix = events(&s, &acct, "type=customer.*").await;
    assert_eq!(by_prefix.len(), 1, "{by_prefix:?}");
    assert_eq!(by_prefix[0]["type"], "customer.deleted");
    assert_eq!(by_prefix[0]["data"]["object"]["id"], vid.as_str());
    let by_types = events(&s, &acct, "types[]=customer.deleted").await;
    assert_eq!(by_types, by_prefix);
    let by_type = events(&s, &acct, "type=customer.deleted").await;
    assert_eq!(by_type, by_prefix);
    assert!(events(&s, &acct, "type=customer.created").await.is_empty());
    assert!(events(&s, &acct, "types[]=customer.created&types[]=charge.succeeded").await.is_empty());
    assert!(events(&s, &acct, "type=charge.*").await.is_empty());
    let many: Vec<String> = (0..21).map(|n| format!("types[]=t{n}.x")).collect();
    let r = s.get(&format!("/v1/events?{}", many.join("&")), &acct).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);

    // A second delete finds nothing to delete.
    let r = s.control(Method::DELETE, &format!("/_sandbox/accounts/{acct}/objects/customers/{vid}"), None).await;
    assert_stripe_error(&r, 404, "invalid_request_error", Some("resource_missing"), None);
    s.stop().await;
}

#[tokio::test]
async fn charges_and_other_undeletable_objects_cannot_be_deleted() {
    let s = Sandbox::start().await;
    let acct = s.test_account(54, big_profile()).await;
    for list in ["charges", "refunds", "disputes", "payment_intents", "balance_transactions", "payouts"] {
        let first = s.get_ok(&format!("/v1/{list}?limit=1"), &acct).await;
        let oid = id(&first["data"][0]).to_owned();
        let r = s.control(Method::DELETE, &format!("/_sandbox/accounts/{acct}/objects/{list}/{oid}"), None).await;
        assert_stripe_error(&r, 400, "invalid_request_error", None, None);
        assert_eq!(s.get_ok(&format!("/v1/{list}/{oid}"), &acct).await, first["data"][0], "{list}: refused delete changed the object");
    }
    assert!(events(&s, &acct, "").await.is_empty(), "a refused delete emitted an event");
    // Products and prices can be deleted.
    for list in ["prices", "products"] {
        let first = s.get_ok(&format!("/v1/{list}?limit=1"), &acct).await;
        let oid = id(&first["data"][0]).to_owned();
        let r = s.control(Method::DELETE, &format!("/_sandbox/accounts/{acct}/objects/{list}/{oid}"), None).await;
        assert_eq!(r.status, 200, "{list}: {}", r.text);
        assert_eq!(s.get_ok(&format!("/v1/{list}/{oid}"), &acct).await["deleted"], true);
    }
    let mut types: Vec<String> = events(&s, &acct, "").await.iter().map(|e| e["type"].as_str().unwrap_or_default().to_owned()).collect();
    types.sort();
    assert_eq!(types, ["price.deleted", "product.deleted"]);
    let r = s.control(Method::DELETE, &format!("/_sandbox/accounts/{acct}/objects/widgets/w_1"), None).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    let r = s.control(Method::DELETE, "/_sandbox/accounts/acct_nope/objects/customers/cus_1", None).await;
    assert_stripe_error(&r, 404, "invalid_request_error", Some("resource_missing"), None);
    s.stop().await;
}

#[tokio::test]
async fn a_control_api_refund_updates_the_charge_adds_a_balance_transaction_and_emits_events() {
    let s = Sandbox::start().await;
    let acct = s.test_account(55, big_profile()).await;
    let charges = s.walk(&acct, "/v1/charges", "", 100).await;
    let ch = charges
        .iter()
        .find(|c| c["captured"] == true && c["amount_refunded"] == 0 && c["disputed"] == false)
        .expect("a refundable charge")
        .clone();
    let chid = id(&ch).to_owned();
    let amount = ch["amount"].as_i64().expect("amount");
    let before = s.summary(&acct).await;
    let r =
        s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/refunds"), Some(json!({"charge": chid, "amount": 1}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let refund = r.json();
    assert_eq!(refund["charge"], chid.as_str());
    assert_eq!(refund["currency"], ch["currency"]);
    let now_ch = s.get_ok(&format!("/v1/charges/{chid}"), &acct).await;
    assert_eq!(now_ch["amount_refunded"], 1);
    assert_eq!(now_ch["refunded"], amount == 1);
    let txn = refund["balance_transaction"].as_str().expect("refund balance transaction");
    let bt = s.get_ok(&format!("/v1/balance_transactions/{txn}"), &acct).await;
    assert_eq!((bt["amount"].as_i64(), bt["type"].as_str(), bt["source"].as_str()), (Some(-1), Some("refund"), refund["id"].as_str()));
    let after = s.summary(&acct).await;
    for list in ["refunds", "balance_transactions"] {
        assert_eq!(after["counts"][list].as_u64(), before["counts"][list].as_u64().map(|n| n + 1), "{list}");
    }
    let mut types: Vec<String> = events(&s, &acct, "").await.iter().map(|e| e["type"].as_str().unwrap_or_default().to_owned()).collect();
    types.sort();
    assert_eq!(types, ["charge.refunded", "refund.created"]);
    // More than the rest of the charge is refused.
    let r = s
        .control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/refunds"), Some(json!({"charge": chid, "amount": amount})))
        .await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    s.stop().await;
}

#[tokio::test]
async fn events_emitted_in_the_same_second_are_listed_newest_first_in_emission_order() {
    let s = Sandbox::start().await;
    let acct = s.test_account(56, big_profile()).await;
    // Retry until all eight changes land within one second.
    for _attempt in 0..5 {
        let r = s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers"), Some(json!({"name": "v0"}))).await;
        let cid = id(&r.json()).to_owned();
        for n in 1..8 {
            let r = s
                .control(
                    Method::POST,
                    &format!("/_sandbox/accounts/{acct}/objects/customers/{cid}"),
                    Some(json!({"name": format!("v{n}")})),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let evs: Vec<Value> =
            events(&s, &acct, "type=customer.*").await.into_iter().filter(|e| e["data"]["object"]["id"] == cid.as_str()).collect();
        assert_eq!(evs.len(), 8);
        if evs.iter().all(|e| e["created"] == evs[0]["created"]) {
            let names: Vec<&str> = evs.iter().map(|e| e["data"]["object"]["name"].as_str().unwrap_or_default()).collect();
            assert_eq!(names, ["v7", "v6", "v5", "v4", "v3", "v2", "v1", "v0"], "events are not newest first");
            s.stop().await;
            return;
        }
    }
    panic!("could not make eight changes within one second");
}

#[tokio::test]
async fn events_page_with_cursors_like_other_lists() {
    let s = Sandbox::start().await;
    let acct = s.test_account(57, big_profile()).await;
    for n in 0..9 {
        let r =
            s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/products"), Some(json!({"name": format!("P{n}")}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let all = s.walk(&acct, "/v1/events", "", 4).await;
    assert_eq!(all.len(), 9);
    assert_eq!(s.walk(&acct, "/v1/events", "", 100).await, all);
    let oldest = id(all.last().expect("events")).to_owned();
    let mut back = ids(&s.walk_back(&acct, "/v1/events", "", 4, &oldest).await);
    back.push(oldest);
    assert_eq!(back, ids(&all));
    let (data, more) = list_page(&s.get_ok("/v1/events?limit=2", &acct).await, "/v1/events");
    assert_eq!((data.len(), more), (2, true));
    s.stop().await;
}
