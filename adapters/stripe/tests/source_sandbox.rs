//! `StripeDataSource` against the in-process Stripe sandbox: complete backfills of every data
//! type checked against the sandbox's ground truth, resumable cursors, injected faults,
//! deauthorized accounts, rate limits and fetch by id.

mod common;

use common::{LIVE_KEY, TEST_KEY, backfill, no_staged, provider, start_cursor, test_creds};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use stripe_sandbox::{Config, Profile, Running};
use tributary_domain::model::commerce::{CommerceRecord, TransactionType};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::integration::{Mode, Scope};
use tributary_domain::money::{Amount, Currency};
use tributary_domain::ports::oauth::{OAuthProvider, PlatformCredentials};
use tributary_domain::ports::source::{CommerceDataSource, RecordPage, SourceError};
use tributary_stripe::StripeDataSource;
use tributary_stripe::mapping::FEE_RECORD_SUFFIX;

/// The six data types Stripe provides.
const STRIPE_TYPES: [DataType; 6] =
    [DataType::CompanyInfo, DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions];

/// Several pages of customers, charges and balance transactions at `limit=100`.
const BIG: Profile = Profile { customers: 130, charges: 240, refunds: 40, disputes: 30, products: 14, prices: 45, payouts: 20 };

/// A sandbox with or without its rate limit (25/s test, 100/s live).
async fn sandbox(rate_limited: bool) -> Running {
    let (test_rate, live_rate) = if rate_limited { (Some(25), Some(100)) } else { (None, None) };
    stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate, live_rate, ..Default::default() })
        .await
        .expect("sandbox starts")
}

/// A connected test-mode account with generated data.
async fn account(sb: &Running, seed: u64, profile: Profile) -> String {
    let s = sb.sandbox.clone();
    tokio::task::spawn_blocking(move || s.create_account(stripe_sandbox::Mode::Test, Some(seed), true, &profile)).await.expect("account")
}

/// A source with quick retries and no client-side limit.
fn source(sb: &Running) -> StripeDataSource {
    StripeDataSource::new(&sb.url()).expect("source").with_rate(None).with_retries(3, Duration::from_millis(5))
}

/// A backfill one page at a time (no splits); returns every page.
async fn walk(src: &StripeDataSource, creds: &PlatformCredentials, account: &str, dt: DataType) -> Result<Vec<RecordPage>, SourceError> {
    backfill(src, creds, account, dt, 1).await.map(|(pages, _)| pages)
}

/// The first page of the plan's first partition.
async fn first_page(src: &StripeDataSource, creds: &PlatformCredentials, account: &str, dt: DataType) -> Result<RecordPage, SourceError> {
    let plan = src.plan_backfill(creds, account, dt).await?;
    src.list_page(creds, account, dt, plan[0].cursor.clone(), no_staged()).await
}

/// Records sorted by id (partitions come back in any order).
fn sorted(mut rs: Vec<CommerceRecord>) -> Vec<CommerceRecord> {
    rs.sort_by_key(record_id);
    rs
}

fn records(pages: &[RecordPage]) -> Vec<CommerceRecord> {
    pages.iter().flat_map(|p| p.records.clone()).collect()
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

fn ids(rs: &[CommerceRecord]) -> Vec<String> {
    rs.iter().map(record_id).collect()
}

fn assert_unique(rs: &[CommerceRecord], what: &str) -> HashSet<String> {
    let all = ids(rs);
    let set: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "{what}: duplicate record ids");
    set
}

/// Adds `amount` to the per-currency sum.
fn add(sums: &mut BTreeMap<String, Amount>, currency: &Currency, amount: Amount) {
    let e = sums.entry(currency.code().to_owned()).or_default();
    *e = Amount(e.0 + amount.0);
}

/// A summary sum map (`{"usd": minor}`) in major units, keyed by upper-case code.
fn major(sums: &Value, sign: i64) -> BTreeMap<String, Amount> {
    let mut out = BTreeMap::new();
    for (code, minor) in sums.as_object().expect("sums") {
        let c = Currency::parse(code).unwrap();
        add(&mut out, &c, Amount::from_minor(sign * minor.as_i64().expect("minor units"), &c));
    }
    out
}

fn merge(a: BTreeMap<String, Amount>, b: BTreeMap<String, Amount>) -> BTreeMap<String, Amount> {
    let mut out = a;
    for (k, v) in b {
        let e = out.entry(k).or_default();
        *e = Amount(e.0 + v.0);
    }
    out
}

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.expect("GET").json().await.expect("JSON")
}

/// Every raw object of a Stripe list, read directly (the ground truth's detail).
async fn raw_list(sb: &Running, account: &str, list: &str) -> Vec<Value> {
    raw_list_with(sb, account, list, "").await
}

/// [`raw_list`] with more query parameters (`&expand[]=…`).
async fn raw_list_with(sb: &Running, account: &str, list: &str, more: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/{list}?limit=100{more}", sb.url());
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let page: Value =
            client.get(url).bearer_auth(TEST_KEY).header("Stripe-Account", account).send().await.unwrap().json().await.unwrap();
        let data = page["data"].as_array().expect("list").clone();
        after = data.last().and_then(|v| v["id"].as_str()).map(str::to_owned);
        out.extend(data);
        if page["has_more"] != json!(true) {
            return out;
        }
    }
}

async fn delete_object(sb: &Running, account: &str, list: &str, id: &str) {
    let r = reqwest::Client::new().delete(format!("{}/_sandbox/accounts/{account}/objects/{list}/{id}", sb.url())).send().await.unwrap();
    assert!(r.status().is_success(), "delete {list}/{id}: {}", r.status());
}

async fn put(sb: &Running, path: &str, body: Value) {
    let r = reqwest::Client::new().put(format!("{}{path}", sb.url())).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "PUT {path}: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_backfill_of_every_data_type_returns_every_object_once_and_the_sums_match() {
    let sb = sandbox(false).await;
    let acct = account(&sb, 7, BIG).await;
    // Deleted objects leave lists: delete a customer, a product and a price first.
    let gone_customer = raw_list(&sb, &acct, "customers").await[5]["id"].as_str().unwrap().to_owned();
    let gone_product = raw_list(&sb, &acct, "products").await[1]["id"].as_str().unwrap().to_owned();
    let gone_price = raw_list(&sb, &acct, "prices").await[0]["id"].as_str().unwrap().to_owned();
    delete_object(&sb, &acct, "customers", &gone_customer).await;
    delete_object(&sb, &acct, "products", &gone_product).await;
    delete_object(&sb, &acct, "prices", &gone_price).await;
    reqwest::Client::new().delete(format!("{}/_sandbox/accounts/{acct}/stats", sb.url())).send().await.unwrap();

    let summary = get_json(format!("{}/_sandbox/accounts/{acct}/summary", sb.url())).await;
    let counts = &summary["counts"];
    let sums = &summary["amount_sums"];
    let count = |k: &str| usize::try_from(counts[k].as_u64().unwrap()).unwrap();
    assert!(count("charges") >= 60);
    let src = source(&sb);
    let creds = test_creds();
    let mut all: HashMap<DataType, Vec<CommerceRecord>> = HashMap::new();
    for dt in STRIPE_TYPES {
        let pages = walk(&src, &creds, &acct, dt).await.unwrap_or_else(|e| panic!("{dt}: {e}"));
        for p in &pages {
            assert_eq!(p.next_cursor.is_none(), p.estimate.left == 0, "{dt}: nothing is left exactly when a partition ends");
        }
        all.insert(dt, records(&pages));
    }
    assert_eq!(src.stats().retries, 0);
    // limit=100: 130 customers take two list requests, 240 charges three, and the prices of all
    // products one listing of every price (not a request per product); the account is read once
    // for all the plans.
    let stats = get_json(format!("{}/_sandbox/accounts/{acct}/stats", sb.url())).await;
    assert_eq!(stats["requests"]["GET /v1/customers"], json!(2), "{stats}");
    assert_eq!(stats["requests"]["GET /v1/charges"], json!(3), "{stats}");
    assert_eq!(stats["requests"]["GET /v1/prices"], json!(1), "{stats}");
    assert_eq!(stats["requests"]["GET /v1/account"], json!(2), "company info, and once the floor of every list: {stats}");
    assert_eq!(stats["total"].as_u64(), Some(src.stats().requests), "{stats}");

    // Company info: one record for the account.
    let info = &all[&DataType::CompanyInfo];
    assert_eq!(ids(info), vec![acct.clone()]);

    // Customers: every one once, the deleted one not at all.
    let customers = assert_unique(&all[&DataType::Customers], "customers");
    assert_eq!(customers.len(), count("customers"));
    assert!(!customers.contains(&gone_customer));
    let raw_customers: HashSet<String> =
        raw_list(&sb, &acct, "customers").await.iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(customers, raw_customers);

    // Disputes: count and per-currency sums.
    let disputes = &all[&DataType::Disputes];
    assert_eq!(assert_unique(disputes, "disputes").len(), count("disputes"));
    let mut dispute_sums = BTreeMap::new();
    for r in disputes {
        let CommerceRecord::Dispute(d) = r else { panic!("{r:?}") };
        add(&mut dispute_sums, &d.currency, d.total_amount.unwrap());
        assert!(d.disputed_transactions.iter().all(|t| t.id.starts_with("txn_")));
    }
    assert_eq!(dispute_sums, major(&sums["disputes"], 1));

    // Payments: charges, then refunds as negative payments; sums = charges − refunds.
    let payments = &all[&DataType::Payments];
    let payment_ids = assert_unique(payments, "payments");
    assert_eq!(payment_ids.len(), count("charges") + count("refunds"));
    assert_eq!(payment_ids.iter().filter(|i| i.starts_with("re_")).count(), count("refunds"));
    let mut payment_sums = BTreeMap::new();
    for r in payments {
        let CommerceRecord::Payment(p) = r else { panic!("{r:?}") };
        let amount = p.amount.unwrap();
        assert_eq!(p.id.starts_with("re_"), amount.0.is_sign_negative(), "{}", p.id);
        add(&mut payment_sums, p.currency.as_ref().unwrap(), amount);
    }
    assert_eq!(payment_sums, merge(major(&sums["charges"], 1), major(&sums["refunds"], -1)));
    assert!(payment_sums.contains_key("JPY") && payment_sums.contains_key("KWD"), "{payment_sums:?}");

    // Products: every live product once, one variant per live price.
    let products = &all[&DataType::Products];
    let product_ids = assert_unique(products, "products");
    assert_eq!(product_ids.len(), count("products"));
    assert!(!product_ids.contains(&gone_product));
    let mut variant_ids = Vec::new();
    for r in products {
        let CommerceRecord::Product(p) = r else { panic!("{r:?}") };
        variant_ids.extend(p.variants.iter().map(|v| v.id.clone()));
    }
    let live_prices: HashSet<String> = raw_list(&sb, &acct, "prices")
        .await
        .iter()
        .filter(|p| p["product"].as_str() != Some(gone_product.as_str()))
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(variant_ids.len(), live_prices.len(), "a variant per price, once");
    assert_eq!(variant_ids.iter().cloned().collect::<HashSet<_>>(), live_prices);
    assert!(!variant_ids.contains(&gone_price));
    // Every currency a price is sold in, which Stripe sends only when asked to expand it.
    let expanded = raw_list_with(&sb, &acct, "prices", "&expand[]=data.currency_options").await;
    assert!(raw_list(&sb, &acct, "prices").await.iter().all(|p| p.get("currency_options").is_none()), "not sent unless expanded");
    let mut multi = 0;
    for r in products {
        let CommerceRecord::Product(p) = r else { panic!("{r:?}") };
        for v in &p.variants {
            let raw = expanded.iter().find(|x| x["id"] == v.id.as_str()).expect("the variant's price");
            let mut want: Vec<String> = raw["currency_options"]
                .as_object()
                .unwrap()
                .keys()
                .map(|c| c.to_uppercase())
                .filter(|c| c.as_str() != raw["currency"].as_str().unwrap().to_uppercase())
                .collect();
            want.sort();
            want.insert(0, raw["currency"].as_str().unwrap().to_uppercase());
            let got: Vec<String> = v.prices.iter().map(|x| x.currency.as_ref().unwrap().code().to_owned()).collect();
            assert_eq!(got, want, "{}", v.id);
            multi += usize::from(got.len() > 1);
        }
    }
    assert!(multi > 0, "some variants are sold in several currencies");

    // Transactions: every balance transaction once plus a fee record per non-zero fee; gross sums
    // match the summary, fee records sum to minus the fees.
    let txns = &all[&DataType::Transactions];
    assert_unique(txns, "transactions");
    let raw_bts = raw_list(&sb, &acct, "balance_transactions").await;
    assert_eq!(raw_bts.len(), count("balance_transactions"));
    let mut gross = BTreeMap::new();
    let mut fees = BTreeMap::new();
    let mut fee_records = 0;
    for r in txns {
        let CommerceRecord::Transaction(t) = r else { panic!("{r:?}") };
        let (c, a) = (t.currency.as_ref().unwrap(), t.total_amount.unwrap());
        if t.id.ends_with(FEE_RECORD_SUFFIX) {
            fee_records += 1;
            assert!(matches!(t.transaction_type, Some(TransactionType::PaymentFee | TransactionType::PaymentFeeRefund)));
            assert_eq!(t.sub_type.as_deref(), Some("stripe_fee"));
            add(&mut fees, c, a);
        } else {
            add(&mut gross, c, a);
        }
    }
    assert_eq!(txns.len() - fee_records, raw_bts.len());
    assert_eq!(gross, major(&sums["balance_transactions"], 1));
    let mut expected_fees = BTreeMap::new();
    let mut with_fee = 0;
    for bt in &raw_bts {
        let fee = bt["fee"].as_i64().unwrap();
        if fee != 0 {
            with_fee += 1;
            let c = Currency::parse(bt["currency"].as_str().unwrap()).unwrap();
            add(&mut expected_fees, &c, Amount::from_minor(-fee, &c));
        }
    }
    assert_eq!(fee_records, with_fee);
    assert_eq!(fees, expected_fees);
    assert!(gross.contains_key("JPY") && gross.contains_key("KWD"));

    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_resumes_at_the_next_page_even_in_a_new_process() {
    let sb = sandbox(false).await;
    let acct = account(&sb, 11, BIG).await;
    let creds = test_creds();
    for dt in [DataType::Payments, DataType::Transactions, DataType::Customers] {
        for planned in source(&sb).plan_backfill(&creds, &acct, dt).await.unwrap() {
            // One partition, page by page.
            let src = source(&sb);
            let mut pages = Vec::new();
            let mut cursor = Some(planned.cursor.clone());
            while let Some(c) = cursor {
                let page = src.list_page(&creds, &acct, dt, c, no_staged()).await.unwrap();
                cursor = page.next_cursor.clone();
                pages.push(page);
            }
            let mut collected = Vec::new();
            for (i, page) in pages.iter().enumerate() {
                collected.extend(ids(&page.records));
                let Some(cursor) = page.next_cursor.clone() else { break };
                // A killed sync: a fresh source given only the saved cursor continues at the next page.
                let again = source(&sb).list_page(&creds, &acct, dt, cursor.clone(), no_staged()).await.unwrap();
                assert_eq!(ids(&again.records), ids(&pages[i + 1].records), "{dt}: page {} from cursor {cursor}", i + 1);
                assert_eq!(again.next_cursor, pages[i + 1].next_cursor, "{dt}");
            }
            let unique: HashSet<&String> = collected.iter().collect();
            assert_eq!(unique.len(), collected.len(), "{dt}: pages overlap");
        }
    }
    // Payments walk charges and refunds as two partitions; products list prices, then products.
    let src = source(&sb);
    let payments = src.plan_backfill(&creds, &acct, DataType::Payments).await.unwrap();
    assert_eq!(
        payments.iter().map(|p| (p.stage, p.cursor.contains("charges"), p.cursor.contains("refunds"))).collect::<Vec<_>>(),
        [(0, true, false), (0, false, true)]
    );
    let products = src.plan_backfill(&creds, &acct, DataType::Products).await.unwrap();
    assert_eq!(products.iter().map(|p| (p.stage, p.cursor.contains("prices"))).collect::<Vec<_>>(), [(0, true), (1, false)]);
    // Cursors are checked: garbage, or another data type's cursor, is a fetch error.
    let charges_cursor = payments[0].cursor.clone();
    assert!(matches!(src.list_page(&creds, &acct, DataType::Customers, charges_cursor, no_staged()).await, Err(SourceError::Fetch(_))));
    assert!(matches!(src.list_page(&creds, &acct, DataType::Payments, "page=2".into(), no_staged()).await, Err(SourceError::Fetch(_))));
    sb.stop().await;
}

/// A backfill split into many ranges walked at once lists the same records as a walk of whole
/// lists, each exactly once: objects sharing the second of a range boundary, and whole pages of
/// objects created in the same second, included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sliced_backfill_lists_every_object_exactly_once_like_a_whole_walk() {
    let sb = sandbox(false).await;
    let profile = Profile { customers: 1500, charges: 2400, refunds: 300, disputes: 120, products: 60, prices: 180, payouts: 60 };
    let acct = account(&sb, 71, profile).await;
    // 250 customers in one second, and 30 in each of the 20 seconds after it.
    let t0 = 1_745_000_000;
    let client = reqwest::Client::new();
    for i in 0..850 {
        let created = if i < 250 { t0 } else { t0 + 1 + (i - 250) / 30 };
        let r = client
            .post(format!("{}/_sandbox/accounts/{acct}/objects/customers", sb.url()))
            .json(&json!({"name": format!("Same second {i}"), "created": created}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let creds = test_creds();
    for dt in [DataType::Customers, DataType::Payments, DataType::Products, DataType::Transactions] {
        let whole = sorted(records(&walk(&source(&sb), &creds, &acct, dt).await.unwrap()));
        let (pages, partitions) = backfill(&source(&sb), &creds, &acct, dt, 16).await.unwrap();
        let sliced = records(&pages);
        assert_unique(&sliced, &format!("{dt} sliced"));
        // 60 products and 180 prices are too few to split (parts of 300 objects at least).
        let least = if dt == DataType::Products { 2 } else { 4 };
        assert!(partitions >= least, "{dt}: only {partitions} partitions");
        assert_eq!(sorted(sliced), whole, "{dt}: the sliced backfill differs from the whole walk");
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_whose_object_was_deleted_resumes_by_time() {
    let sb = sandbox(false).await;
    let acct = account(&sb, 12, Profile { customers: 150, ..Profile::default() }).await;
    let creds = test_creds();
    let src = source(&sb);
    let first = first_page(&src, &creds, &acct, DataType::Customers).await.unwrap();
    let last_id = record_id(first.records.last().unwrap());
    delete_object(&sb, &acct, "customers", &last_id).await;
    // The sandbox, like Stripe, may refuse a starting_after that is gone; either way the walk goes on
    // without losing anyone.
    let rest = walk_from(&src, &creds, &acct, DataType::Customers, first.next_cursor.clone()).await;
    let mut seen: HashSet<String> = ids(&first.records).into_iter().collect();
    seen.extend(ids(&rest));
    seen.remove(&last_id);
    assert_eq!(seen.len(), 149);
    sb.stop().await;
}

async fn walk_from(
    src: &StripeDataSource,
    creds: &PlatformCredentials,
    account: &str,
    dt: DataType,
    mut cursor: Option<String>,
) -> Vec<CommerceRecord> {
    let mut out = Vec::new();
    while let Some(c) = cursor {
        let page = src.list_page(creds, account, dt, c, no_staged()).await.unwrap();
        out.extend(page.records);
        cursor = page.next_cursor;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn injected_faults_still_give_complete_identical_data() {
    let sb = sandbox(false).await;
    let acct = account(&sb, 21, BIG).await;
    let creds = test_creds();
    let mut clean = HashMap::new();
    for dt in STRIPE_TYPES {
        clean.insert(dt, sorted(records(&walk(&source(&sb), &creds, &acct, dt).await.unwrap())));
    }
    put(&sb, "/_sandbox/faults", json!({"endpoints": {"*": {"p429": 0.2, "p500": 0.05, "p_drop": 0.02, "p_truncate": 0.02}}})).await;
    let faulty = StripeDataSource::new(&sb.url())
        .unwrap()
        .with_rate(None)
        .with_retries(15, Duration::from_millis(2))
        .with_max_backoff(Duration::from_millis(20));
    for dt in STRIPE_TYPES {
        let (pages, _) = backfill(&faulty, &creds, &acct, dt, 8).await.unwrap_or_else(|e| panic!("{dt} under faults: {e}"));
        assert_eq!(sorted(records(&pages)), clean[&dt], "{dt}: data differs under faults");
    }
    let stats = faulty.stats();
    assert!(stats.retries > 0 && stats.rate_limited > 0, "{stats:?}");
    // With every attempt failing, the errors are classified once retries are exhausted.
    put(&sb, "/_sandbox/faults", json!({"endpoints": {"*": {"p429": 1.0}}})).await;
    let quick = StripeDataSource::new(&sb.url()).unwrap().with_rate(None).with_retries(2, Duration::from_millis(1));
    let customers = || start_cursor("customers");
    assert!(matches!(
        quick.list_page(&creds, &acct, DataType::Customers, customers(), no_staged()).await,
        Err(SourceError::RateLimited { .. })
    ));
    put(&sb, "/_sandbox/faults", json!({"endpoints": {"*": {"p500": 1.0}}})).await;
    assert!(matches!(quick.list_page(&creds, &acct, DataType::Customers, customers(), no_staged()).await, Err(SourceError::Fetch(_))));
    put(&sb, "/_sandbox/faults", json!({"endpoints": {"GET /v1/customers": {"p_truncate": 1.0}}})).await;
    quick.list_page(&creds, &acct, DataType::Disputes, start_cursor("disputes"), no_staged()).await.expect("disputes are not faulted");
    match quick.list_page(&creds, &acct, DataType::Customers, customers(), no_staged()).await {
        Err(SourceError::Fetch(m)) => assert!(m.contains("/v1/customers") && m.contains("3 attempts"), "{m}"),
        other => panic!("{other:?}"),
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deauthorized_unconnected_and_wrong_mode_accounts_are_auth_errors_and_a_wrong_platform_key_is_a_platform_auth_error() {
    let sb = sandbox(false).await;
    let acct = account(&sb, 31, Profile::default()).await;
    let creds = test_creds();
    let src = source(&sb);
    first_page(&src, &creds, &acct, DataType::Customers).await.expect("connected");
    // The merchant disconnects (POST /oauth/deauthorize): every read is now refused.
    provider(&sb.url()).revoke(&creds, &acct).await.expect("deauthorize");
    for dt in STRIPE_TYPES {
        match first_page(&src, &creds, &acct, dt).await {
            Err(SourceError::Auth(m)) => assert!(m.contains("account_invalid") && !m.contains(TEST_KEY), "{m}"),
            other => panic!("{dt}: expected Auth, got {other:?}"),
        }
    }
    assert!(matches!(src.fetch_by_ids(&creds, &acct, DataType::Customers, vec!["cus_1".into()]).await, Err(SourceError::Auth(_))));
    // Never connected.
    let s = sb.sandbox.clone();
    let unconnected =
        tokio::task::spawn_blocking(move || s.create_account(stripe_sandbox::Mode::Test, Some(32), false, &Profile::default()))
            .await
            .unwrap();
    assert!(matches!(first_page(&src, &creds, &unconnected, DataType::Customers).await, Err(SourceError::Auth(_))));
    // The live key cannot read a test account; a wrong key is a 401, the platform's problem.
    let live = PlatformCredentials {
        mode: Mode::Live,
        client_id: "ca_sandbox_live".into(),
        secret_key: LIVE_KEY.to_owned().into(),
        scope: Scope::ReadOnly,
    };
    let other = account(&sb, 33, Profile::default()).await;
    assert!(matches!(first_page(&src, &live, &other, DataType::Customers).await, Err(SourceError::Auth(_))));
    let bad = PlatformCredentials { secret_key: "sk_test_wrong".to_owned().into(), ..test_creds() };
    match first_page(&src, &bad, &other, DataType::Customers).await {
        Err(SourceError::PlatformAuth(m)) => assert!(m.contains("401") && !m.contains("sk_test_wrong"), "{m}"),
        other => panic!("{other:?}"),
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_rate_limit_on_concurrent_syncs_of_one_account_rarely_see_429() {
    let sb = sandbox(true).await;
    let profile = Profile { customers: 2000, charges: 2500, refunds: 250, disputes: 100, products: 60, prices: 90, payouts: 50 };
    let acct = account(&sb, 41, profile).await;
    let creds = test_creds();
    // The default limiter: 25 requests/s per test-mode account, shared by every sync of the account.
    let limited = StripeDataSource::new(&sb.url()).unwrap().with_retries(8, Duration::from_millis(50));
    let started = Instant::now();
    let walks = STRIPE_TYPES.map(|dt| backfill(&limited, &creds, &acct, dt, 8));
    let [a, b, c, d, e, f] = walks;
    let results = tokio::join!(a, b, c, d, e, f);
    let elapsed = started.elapsed();
    for r in [results.0, results.1, results.2, results.3, results.4, results.5] {
        r.expect("no failure under the rate limit");
    }
    let stats = limited.stats();
    // About 80 requests at 25/s after a burst of 12, many at once: several seconds, and (nearly)
    // no 429.
    assert!(stats.requests >= 70, "{stats:?}");
    assert!(stats.rate_limited <= 2, "{stats:?}");
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?} for {stats:?}");

    // Without the limiter the same syncs hit the sandbox's limit, and retries still finish them.
    let unlimited = StripeDataSource::new(&sb.url()).unwrap().with_rate(None).with_retries(20, Duration::from_millis(20));
    let walks = STRIPE_TYPES.map(|dt| backfill(&unlimited, &creds, &acct, dt, 8));
    let [a, b, c, d, e, f] = walks;
    let results = tokio::join!(a, b, c, d, e, f);
    for r in [results.0, results.1, results.2, results.3, results.4, results.5] {
        r.expect("retries absorb 429s");
    }
    assert!(unlimited.stats().rate_limited > stats.rate_limited, "{:?}", unlimited.stats());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetch_by_ids_retrieves_each_data_type() {
    let sb = sandbox(false).await;
    let acct = account(&sb, 51, Profile::default()).await;
    let creds = test_creds();
    let src = source(&sb);
    for dt in [DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions] {
        let listed = records(&walk(&src, &creds, &acct, dt).await.unwrap());
        let mut wanted: Vec<String> = ids(&listed).into_iter().step_by(3).collect();
        if dt == DataType::Payments {
            wanted.extend(ids(&listed).into_iter().filter(|i| i.starts_with("re_")).take(2));
        }
        if dt == DataType::Transactions {
            wanted.extend(ids(&listed).into_iter().filter(|i| i.ends_with(FEE_RECORD_SUFFIX)).take(2));
        }
        wanted.push("nope_does_not_exist".into());
        wanted.push("..".into());
        let got = src.fetch_by_ids(&creds, &acct, dt, wanted.clone()).await.unwrap_or_else(|e| panic!("{dt}: {e}"));
        let by_id: HashMap<String, &CommerceRecord> = listed.iter().map(|r| (record_id(r), r)).collect();
        let mut expected: Vec<String> = Vec::new();
        for w in &wanted {
            if by_id.contains_key(w) && !expected.contains(w) {
                expected.push(w.clone());
            }
        }
        assert_eq!(ids(&got), expected, "{dt}");
        for r in &got {
            assert_eq!(&r, by_id.get(&record_id(r)).unwrap(), "{dt}: retrieve and list map alike");
        }
    }
    // Deleted objects are not returned.
    let customer = raw_list(&sb, &acct, "customers").await[0]["id"].as_str().unwrap().to_owned();
    delete_object(&sb, &acct, "customers", &customer).await;
    assert!(src.fetch_by_ids(&creds, &acct, DataType::Customers, vec![customer]).await.unwrap().is_empty());
    let info = src.fetch_by_ids(&creds, &acct, DataType::CompanyInfo, vec![acct.clone()]).await.unwrap();
    assert_eq!(ids(&info), vec![acct.clone()]);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn company_info_is_one_page_with_the_balance_per_currency() {
    let sb = sandbox(false).await;
    let acct = account(&sb, 61, BIG).await;
    let creds = test_creds();
    let src = source(&sb);
    let plan = src.plan_backfill(&creds, &acct, DataType::CompanyInfo).await.unwrap();
    assert_eq!(plan.len(), 1);
    let page = src.list_page(&creds, &acct, DataType::CompanyInfo, plan[0].cursor.clone(), no_staged()).await.unwrap();
    assert_eq!((page.next_cursor.clone(), page.estimate.left, page.records.len()), (None, 0, 1));
    let CommerceRecord::CompanyInfo(info) = &page.records[0] else { panic!() };
    assert_eq!(info.commerce_platform_ref.as_deref(), Some(acct.as_str()));
    assert!(info.company_name.as_deref().is_some_and(|n| n.ends_with("Shop")), "{info:?}");
    assert_eq!(info.base_currency.as_ref().map(Currency::code), Some("USD"));
    let balance: Value = reqwest::Client::new()
        .get(format!("{}/v1/balance", sb.url()))
        .bearer_auth(TEST_KEY)
        .header("Stripe-Account", &acct)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let currencies: Vec<&str> = info.account_balances.iter().map(|b| b.currency.code()).collect();
    assert_eq!(currencies, vec!["EUR", "GBP", "JPY", "KWD", "USD"]);
    for entry in balance["available"].as_array().unwrap() {
        let c = Currency::parse(entry["currency"].as_str().unwrap()).unwrap();
        let mine = info.account_balances.iter().find(|b| b.currency == c).unwrap();
        assert_eq!(mine.available, Amount::from_minor(entry["amount"].as_i64().unwrap(), &c));
    }
    // No cursor for company info; unsupported data types are fetch errors naming the type.
    assert!(matches!(src.list_page(&creds, &acct, DataType::CompanyInfo, "x".into(), no_staged()).await, Err(SourceError::Fetch(_))));
    for dt in [DataType::Orders, DataType::Locations, DataType::PaymentMethods, DataType::ProductCategories, DataType::TaxComponents] {
        match src.plan_backfill(&creds, &acct, dt).await {
            Err(SourceError::Fetch(m)) => assert!(m.contains(dt.key()) && m.contains("not supported"), "{m}"),
            other => panic!("{dt}: {other:?}"),
        }
    }
    sb.stop().await;
}
