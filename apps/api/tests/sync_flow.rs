//! Sync end to end: a merchant linked through the sandbox is synced by the server's worker, and
//! the store holds every generated object once with amounts equal to the sandbox's ground truth.

mod common;

use common::{TestServer, linked_and_synced};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;
use stripe_sandbox::Profile;
use tributary_domain::ids::ConnectionId;
use tributary_domain::model::data_type::DataType;

async fn all_records(api: &TestServer, connection: ConnectionId, dt: DataType) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let rows = api.platform.repositories().records.scan(connection, dt, after.clone(), 500).await.unwrap();
        if rows.is_empty() {
            return out;
        }
        after = Some(rows.last().unwrap().record.id.clone());
        out.extend(rows.into_iter().filter(|r| !r.record.deleted).map(|r| r.record.document));
    }
}

fn exponent(currency: &str) -> u32 {
    tributary_domain::money::exponent(currency)
}

fn major(sums: &Value) -> BTreeMap<String, Decimal> {
    sums.as_object()
        .map(|m| m.iter().map(|(c, v)| (c.to_uppercase(), Decimal::new(v.as_i64().unwrap(), exponent(c)))).collect())
        .unwrap_or_default()
}

fn sum_by_currency<'a>(records: impl Iterator<Item = &'a Value>, amount: &str) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for r in records {
        let cur = r["currency"].as_str().unwrap().to_owned();
        let amt: Decimal = r[amount].to_string().parse().unwrap();
        *out.entry(cur).or_default() += amt;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_merchant_is_synced_completely_with_amounts_equal_to_the_sandbox() {
    let profile = Profile { customers: 25, charges: 150, refunds: 20, disputes: 12, products: 6, prices: 15, payouts: 8 };
    let (api, sandbox, _company, connection, account) = linked_and_synced(profile).await;
    let summary: Value =
        reqwest::get(format!("{}/_sandbox/accounts/{account}/summary", sandbox.url())).await.unwrap().json().await.unwrap();
    let counts = &summary["counts"];

    let customers = all_records(&api, connection, DataType::Customers).await;
    assert_eq!(customers.len() as u64, counts["customers"].as_u64().unwrap());
    let products = all_records(&api, connection, DataType::Products).await;
    assert_eq!(products.len() as u64, counts["products"].as_u64().unwrap());
    let variants: usize = products.iter().map(|p| p["variants"].as_array().unwrap().len()).sum();
    assert_eq!(variants as u64, counts["prices"].as_u64().unwrap(), "one variant per price");

    let payments = all_records(&api, connection, DataType::Payments).await;
    let charges: Vec<&Value> = payments.iter().filter(|p| p["id"].as_str().unwrap().starts_with("ch_")).collect();
    let refunds: Vec<&Value> = payments.iter().filter(|p| p["id"].as_str().unwrap().starts_with("re_")).collect();
    assert_eq!(charges.len() as u64, counts["charges"].as_u64().unwrap());
    assert_eq!(refunds.len() as u64, counts["refunds"].as_u64().unwrap());
    assert_eq!(sum_by_currency(charges.into_iter(), "amount"), major(&summary["amount_sums"]["charges"]));
    let refund_sums: BTreeMap<String, Decimal> = sum_by_currency(refunds.into_iter(), "amount").into_iter().map(|(c, v)| (c, -v)).collect();
    assert_eq!(refund_sums, major(&summary["amount_sums"]["refunds"]), "refunds are negative payments");

    let disputes = all_records(&api, connection, DataType::Disputes).await;
    assert_eq!(disputes.len() as u64, counts["disputes"].as_u64().unwrap());
    assert_eq!(sum_by_currency(disputes.iter(), "totalAmount"), major(&summary["amount_sums"]["disputes"]));

    let transactions = all_records(&api, connection, DataType::Transactions).await;
    let (fees, gross): (Vec<&Value>, Vec<&Value>) =
        transactions.iter().partition(|t| t["id"].as_str().unwrap().ends_with(":Stripe processing fees"));
    assert_eq!(gross.len() as u64, counts["balance_transactions"].as_u64().unwrap());
    assert_eq!(sum_by_currency(gross.into_iter(), "totalAmount"), major(&summary["amount_sums"]["balance_transactions"]));
    assert!(!fees.is_empty());
    for f in &fees {
        let amount = f["totalAmount"].as_f64().unwrap();
        // A fee Stripe gives back (a won dispute's reversal) is a positive PaymentFeeRefund.
        assert!((f["type"] == "PaymentFee" && amount < 0.0) || (f["type"] == "PaymentFeeRefund" && amount > 0.0), "{f}");
    }
    let currencies: Vec<&str> = transactions.iter().map(|t| t["currency"].as_str().unwrap()).collect();
    assert!(currencies.contains(&"JPY") && currencies.contains(&"KWD"));

    let info = all_records(&api, connection, DataType::CompanyInfo).await;
    assert_eq!(info.len(), 1);
    assert_eq!(info[0]["commercePlatformRef"], account.as_str());

    let ids: std::collections::HashSet<&str> = transactions.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), transactions.len(), "no record twice");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_follows_changes_cheaply_and_applies_creates_and_deletes() {
    let profile = Profile { customers: 30, charges: 40, refunds: 5, disputes: 3, products: 4, prices: 8, payouts: 3 };
    let (api, sandbox, company, connection, account) = linked_and_synced(profile).await;
    let http = reqwest::Client::new();
    let stats_url = format!("{}/_sandbox/accounts/{account}/stats", sandbox.url());
    http.delete(&stats_url).send().await.unwrap();

    // An unchanged account: a resync costs about one request per data type.
    let (st, _) = api.call(reqwest::Method::POST, &format!("/companies/{company}/data/all"), None).await;
    assert_eq!(st, 204);
    wait_complete(&api, &company).await;
    let stats: Value = http.get(&stats_url).send().await.unwrap().json().await.unwrap();
    let total = stats["total"].as_u64().unwrap();
    // One events page per type that has events, the company info (account and balance), and one
    // page of new balance transactions: at most one request per data type plus one.
    assert!(total <= 7, "an unchanged resync made {total} requests: {stats}");
    assert!(stats["requests"]["GET /v1/events"].as_u64().unwrap_or(0) <= 4, "{stats}");
    assert!(stats["requests"]["GET /v1/balance_transactions"].as_u64().unwrap_or(0) <= 1, "{stats}");

    // A customer created and another deleted at Stripe show up after the next sync.
    let created: Value = http
        .post(format!("{}/_sandbox/accounts/{account}/objects/customers", sandbox.url()))
        .json(&serde_json::json!({"name": "Newly Created", "email": "new@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let before = all_records(&api, connection, DataType::Customers).await;
    let victim = before[0]["id"].as_str().unwrap().to_owned();
    let res = http.delete(format!("{}/_sandbox/accounts/{account}/objects/customers/{victim}", sandbox.url())).send().await.unwrap();
    assert!(res.status().is_success());
    let (st, _) = api.call(reqwest::Method::POST, &format!("/companies/{company}/data/queue/commerce-customers"), None).await;
    assert_eq!(st, 200);
    wait_complete(&api, &company).await;
    let after = all_records(&api, connection, DataType::Customers).await;
    let ids: Vec<&str> = after.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&created["id"].as_str().unwrap()), "the new customer arrived");
    assert!(!ids.contains(&victim.as_str()), "the deleted customer is hidden");
    assert_eq!(after.len(), before.len());
    sandbox.stop().await;
}

/// After k changed objects a sync costs O(1 + k/100) requests: the changes come as pages of events
/// whose objects (in the pinned API version) are mapped as they are, not fetched one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_after_k_changes_costs_pages_of_events_not_a_request_per_object() {
    let profile = Profile { customers: 260, charges: 140, refunds: 5, disputes: 2, products: 2, prices: 3, payouts: 2 };
    let (api, sandbox, company, connection, account) = linked_and_synced(profile).await;
    // Changes in a later second than the change cursor (events in the cursor's own second are
    // fetched again, as they may have been seen already).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let http = reqwest::Client::new();
    let objects = format!("{}/_sandbox/accounts/{account}/objects", sandbox.url());
    let customers = all_records(&api, connection, DataType::Customers).await;
    let charges: Vec<Value> = all_records(&api, connection, DataType::Payments)
        .await
        .into_iter()
        .filter(|p| p["id"].as_str().unwrap().starts_with("ch_"))
        .collect();
    let (k_customers, k_charges) = (250, 120);
    for c in customers.iter().take(k_customers) {
        let id = c["id"].as_str().unwrap();
        let r = http
            .post(format!("{objects}/customers/{id}"))
            .json(&serde_json::json!({"name": format!("Renamed {id}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    for p in charges.iter().take(k_charges) {
        let id = p["id"].as_str().unwrap();
        let r = http.post(format!("{objects}/charges/{id}")).json(&serde_json::json!({"status": "failed"})).send().await.unwrap();
        assert!(r.status().is_success());
    }
    let stats_url = format!("{}/_sandbox/accounts/{account}/stats", sandbox.url());
    http.delete(&stats_url).send().await.unwrap();
    for dt in ["commerce-customers", "commerce-payments"] {
        let (st, _) = api.call(reqwest::Method::POST, &format!("/companies/{company}/data/queue/{dt}"), None).await;
        assert_eq!(st, 200);
    }
    wait_complete(&api, &company).await;
    let stats: Value = http.get(&stats_url).send().await.unwrap().json().await.unwrap();
    // 250 and 120 events: three pages and two, and nothing fetched by id.
    assert!(stats["total"].as_u64().unwrap() <= 5 + 2, "{stats}");
    assert_eq!(stats["requests"]["GET /v1/customers/{id}"].as_u64().unwrap_or(0), 0, "{stats}");
    assert_eq!(stats["requests"]["GET /v1/charges/{id}"].as_u64().unwrap_or(0), 0, "{stats}");
    let after = all_records(&api, connection, DataType::Customers).await;
    let renamed = after.iter().filter(|c| c["customerName"].as_str().is_some_and(|n| n.starts_with("Renamed "))).count();
    assert_eq!(renamed, k_customers, "every change arrived");
    let changed: std::collections::HashSet<&str> = charges.iter().take(k_charges).map(|p| p["id"].as_str().unwrap()).collect();
    let payments = all_records(&api, connection, DataType::Payments).await;
    let failed = payments.iter().filter(|p| changed.contains(p["id"].as_str().unwrap()) && p["status"] == "Failed").count();
    assert_eq!(failed, k_charges, "every change arrived");
    sandbox.stop().await;
}

async fn wait_complete(api: &TestServer, company: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, history) =
            api.get(&format!("/companies/{company}/data/history?pageSize=5000&query=status%3DQueued%20%7C%7C%20status%3DFetching")).await;
        if history["totalResults"] == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "pulls did not finish: {history}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_object_webhook_applies_the_change_at_once_and_a_replay_of_it_is_ignored() {
    let profile = Profile { customers: 5, charges: 10, refunds: 1, disputes: 1, products: 2, prices: 3, payouts: 1 };
    let (api, sandbox, company, connection, account) = linked_and_synced(profile).await;
    api.platform
        .integrations()
        .update(
            "yzth",
            tributary_domain::service::IntegrationUpdate {
                webhook_secret: Some(secrecy::SecretString::from("whsec_sandbox_connect")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/_sandbox/accounts/{account}/objects/customers", sandbox.url()))
        .json(&serde_json::json!({"name": "Via Webhook"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = serde_json::json!({"id": "evt_w", "object": "event", "type": "customer.created", "account": account, "livemode": false,
        "created": chrono::Utc::now().timestamp(), "data": {"object": created}})
    .to_string();
    let sign =
        |body: &str| tributary_stripe::webhook::signature_header("whsec_sandbox_connect", chrono::Utc::now().timestamp(), body.as_bytes());
    let sig = sign(&body);
    let res = http.post(format!("{}/webhooks/stripe", api.base)).header("stripe-signature", &sig).body(body.clone()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    wait_complete(&api, &company).await;
    let ids: Vec<String> =
        all_records(&api, connection, DataType::Customers).await.iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    assert!(ids.contains(&created["id"].as_str().unwrap().to_owned()), "the webhook's customer arrived without a client refresh");

    // The same signed request again, within the signature's tolerance: acknowledged, not processed.
    let pulls = || async { api.get(&format!("/companies/{company}/data/history?pageSize=1")).await.1["totalResults"].clone() };
    let before = pulls().await;
    let res = http.post(format!("{}/webhooks/stripe", api.base)).header("stripe-signature", &sig).body(body).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(pulls().await, before, "the replay queued nothing");
    // Another event is processed.
    let body = serde_json::json!({"id": "evt_w2", "object": "event", "type": "customer.updated", "account": account, "livemode": false,
        "created": chrono::Utc::now().timestamp(), "data": {"object": created}})
    .to_string();
    let res = http.post(format!("{}/webhooks/stripe", api.base)).header("stripe-signature", sign(&body)).body(body).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_ne!(pulls().await, before, "a new event queues a pull");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_key_rolled_mid_sync_fails_the_pulls_but_leaves_the_connection_linked_and_the_new_key_syncs_again() {
    use secrecy::SecretString;
    use tributary_domain::service::IntegrationUpdate;
    let (api, sandbox, company, connection, account) = linked_and_synced(Profile::default()).await;
    let http = reqwest::Client::new();
    // 150 new customers: the next customers pull reads two pages of events, one after the other.
    for i in 0..150 {
        let url = format!("{}/_sandbox/accounts/{account}/objects/customers", sandbox.url());
        assert!(http.post(url).json(&serde_json::json!({"name": format!("New {i}")})).send().await.unwrap().status().is_success());
    }
    // Stripe at its real speed, then the platform's key is rolled at Stripe while a sync runs
    // (a key rotation whose new key has not reached Tributary yet).
    let slow = serde_json::json!({"endpoints": {"*": {"latency_ms": 400}}});
    assert!(http.put(format!("{}/_sandbox/faults", sandbox.url())).json(&slow).send().await.unwrap().status().is_success());
    let (s, _) = api.post(&format!("/companies/{company}/data/all"), serde_json::json!({})).await;
    assert_eq!(s, 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, running) = api.get(&format!("/companies/{company}/data/history?pageSize=1&query=status%3DFetching")).await;
        if running["totalResults"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the sync did not start");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let roll = serde_json::json!({"test": "sk_test_rolled_at_stripe"});
    assert!(http.put(format!("{}/_sandbox/keys", sandbox.url())).json(&roll).send().await.unwrap().status().is_success());
    wait_complete(&api, &company).await;
    let (_, history) = api.get(&format!("/companies/{company}/data/history?pageSize=100&query=status%3DInternalError")).await;
    assert!(history["totalResults"].as_u64().unwrap() > 0, "pulls after the roll end InternalError: {history}");
    let (_, auth) = api.get(&format!("/companies/{company}/data/history?pageSize=100&query=status%3DAuthError")).await;
    assert_eq!(auth["totalResults"], 0, "not the merchant's doing: {auth}");
    let (_, c) = api.get(&format!("/companies/{company}/connections/{connection}")).await;
    assert_eq!(c["status"], "Linked", "the merchant did nothing: {c}");
    let events = api.platform.webhooks().recent_events(1000).await.unwrap();
    assert!(!events.iter().any(|e| e.event_type.as_str() == "connection.disconnected"), "no disconnection announced");
    let refused = api.platform.integrations().get("yzth").await.unwrap().settings.key_refused.expect("shown on the integration");
    assert!(refused.message.contains("401") && !refused.message.contains("sk_test_sandbox_platform"), "{}", refused.message);
    http.delete(format!("{}/_sandbox/faults", sandbox.url())).send().await.unwrap();

    // The operator sees it in the console's settings...
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = browser
        .post(format!("{}/console/sign-in", api.base))
        .form(&[("apiKey", api.key.as_str()), ("next", "/console")])
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = browser.get(format!("{}/console/settings", api.base)).header("cookie", cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Stripe refused the secret key"), "{page}");
    // ...and saves the new key: the next sync completes.
    let fixed = IntegrationUpdate { secret_key: Some(SecretString::from("sk_test_rolled_at_stripe")), ..Default::default() };
    api.platform.integrations().update("yzth", fixed).await.unwrap();
    assert_eq!(api.platform.integrations().get("yzth").await.unwrap().settings.key_refused, None, "a new key clears it");
    let (s, _) = api.post(&format!("/companies/{company}/data/all"), serde_json::json!({})).await;
    assert_eq!(s, 204);
    wait_complete(&api, &company).await;
    let (_, status) = api.get(&format!("/companies/{company}/dataStatus")).await;
    for dt in ["commerce-customers", "commerce-payments", "commerce-companyInfo"] {
        assert_eq!(status[dt]["currentStatus"], "Complete", "{dt}: {status}");
    }
    sandbox.stop().await;
}
