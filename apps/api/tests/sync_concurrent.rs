//! Concurrent sync against the sandbox answering at a latency like Stripe's and within its rate
//! limits, with the server's composition (one source per process, workers as tasks): backfills
//! split into ranges store every object once with exact per-currency sums; objects created and
//! deleted meanwhile end as at Stripe; faults and 429s leave the data identical and the rate within
//! Stripe's; one account's requests never exceed its rate; small accounts are not held back by a
//! large one.

mod common;

use common::reference::{assert_same, finished, linked_with_pulls, platform_on, statuses, stored, without_account};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use stripe_sandbox::{Config, Mode, Profile, Running};
use tributary_api::store::Store;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::DatasetStatus;
use tributary_domain::service::Platform;

const MASTER: [u8; 32] = [9; 32];

/// A sandbox with Stripe's rate limits (25/s test) answering every request after `latency_ms`.
async fn slow_sandbox(latency_ms: u64) -> Running {
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), ..Config::default() }).await.unwrap();
    put(&sandbox, "/_sandbox/faults", json!({"endpoints": {"*": {"latency_ms": latency_ms}}})).await;
    sandbox
}

async fn put(sandbox: &Running, path: &str, body: Value) {
    // The control endpoints are subject to injected faults too: retry until one gets through.
    for _ in 0..200 {
        let sent = reqwest::Client::new().put(format!("{}{path}", sandbox.url())).json(&body).send().await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return;
        }
    }
    panic!("PUT {path} failed");
}

async fn get(sandbox: &Running, path: &str) -> Value {
    reqwest::get(format!("{}{path}", sandbox.url())).await.unwrap().json().await.unwrap()
}

async fn account(sandbox: &Running, seed: u64, profile: Profile) -> String {
    let s = sandbox.sandbox.clone();
    tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(seed), true, &profile)).await.unwrap()
}

/// `workers` sync workers as the server runs them (one source, one budget per account), until the
/// set is dropped.
fn workers(platform: &Platform, sandbox: &Running, workers: u32) -> tokio::task::JoinSet<()> {
    workers_with(platform, sandbox, workers).0
}

/// [`workers`], and what they share (the source's request counters).
fn workers_with(platform: &Platform, sandbox: &Running, workers: u32) -> (tokio::task::JoinSet<()>, tributary_api::compose::SyncShared) {
    let opts = tributary_api::ServeOptions::local("http://127.0.0.1", &sandbox.url(), workers);
    let shared = tributary_api::compose::SyncShared::new(&opts).unwrap();
    let mut set = tokio::task::JoinSet::new();
    for n in 0..workers {
        let engine = shared.engine(platform, &opts, format!("test-{n}"));
        set.spawn(async move {
            loop {
                match engine.run_once().await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(e) => panic!("sync worker failed: {e}"),
                }
            }
        });
    }
    (set, shared)
}

/// Waits until every data type of the company has finished, noting meanwhile the most partitions
/// each data type's backfill had at once.
async fn until_finished(platform: &Platform, company: CompanyId, connection: ConnectionId, within: Duration) -> HashMap<DataType, usize> {
    let deadline = Instant::now() + within;
    let mut most: HashMap<DataType, usize> = HashMap::new();
    while !finished(platform, company).await {
        for dt in [DataType::Customers, DataType::Payments, DataType::Transactions, DataType::Products] {
            let open =
                platform.repositories().records.partitions(connection, dt).await.unwrap().iter().filter(|p| p.cursor.is_some()).count();
            let m = most.entry(dt).or_default();
            *m = (*m).max(open);
        }
        assert!(Instant::now() < deadline, "the sync did not finish: {:?}", statuses(platform, company).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = statuses(platform, company).await;
    assert!(s.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{s:?}");
    most
}

fn exponent(currency: &str) -> u32 {
    match currency {
        "JPY" => 0,
        "KWD" => 3,
        _ => 2,
    }
}

/// A summary's per-currency sums (`{"usd": minor}`) in major units, keyed by upper-case code.
fn major(sums: &Value, sign: i64) -> BTreeMap<String, Decimal> {
    sums.as_object()
        .unwrap()
        .iter()
        .map(|(c, v)| {
            let code = c.to_uppercase();
            let e = exponent(&code);
            (code, Decimal::new(sign * v.as_i64().unwrap(), e))
        })
        .collect()
}

fn add(a: &mut BTreeMap<String, Decimal>, b: BTreeMap<String, Decimal>) {
    for (k, v) in b {
        *a.entry(k).or_default() += v;
    }
}

/// Per-currency sums of a stored field of the live records of a data type.
fn sums(synced: &common::reference::Synced, dt: DataType, field: &str, only: impl Fn(&str) -> bool) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for ((t, id), (doc, deleted)) in synced {
        if *t != dt || *deleted || !only(id) {
            continue;
        }
        let currency = doc["currency"].as_str().unwrap().to_owned();
        let amount: Decimal = doc[field].to_string().parse().unwrap();
        *out.entry(currency).or_default() += amount;
    }
    out
}

fn live(synced: &common::reference::Synced, dt: DataType) -> HashSet<String> {
    synced.iter().filter(|((t, _), (_, deleted))| *t == dt && !deleted).map(|((_, id), _)| id.clone()).collect()
}

/// Every id of a sandbox list, read directly (the ground truth).
async fn raw_ids(sandbox: &Running, account: &str, list: &str) -> HashSet<String> {
    let client = reqwest::Client::new();
    let mut out = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/{list}?limit=100", sandbox.url());
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(Config::default().test_secret_key)
            .header("Stripe-Account", account)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        after = data.last().and_then(|v| v["id"].as_str()).map(str::to_owned);
        out.extend(data.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
        if page["has_more"] != json!(true) {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_at_stripe_s_latency_is_split_into_ranges_and_stores_every_object_once_with_exact_sums() {
    let sandbox = slow_sandbox(150).await;
    let profile = Profile { customers: 700, charges: 1600, refunds: 160, disputes: 60, products: 30, prices: 90, payouts: 40 };
    let acct = account(&sandbox, 5, profile).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform = platform_on(&store, &MASTER).await;
    let (company, connection) = linked_with_pulls(&platform, "Sliced", &acct).await;
    let run = workers(&platform, &sandbox, 4);
    let most = until_finished(&platform, company, connection, Duration::from_secs(120)).await;
    drop(run);
    assert!(most[&DataType::Payments] >= 2 && most[&DataType::Transactions] >= 2, "the backfills were split: {most:?}");

    let synced = stored(&platform, connection).await;
    let summary = get(&sandbox, &format!("/_sandbox/accounts/{acct}/summary")).await;
    let count = |k: &str| usize::try_from(summary["counts"][k].as_u64().unwrap()).unwrap();
    // Every object once: as many records as objects (fee records aside), none deleted.
    assert_eq!(live(&synced, DataType::Customers).len(), count("customers"));
    assert_eq!(live(&synced, DataType::Disputes).len(), count("disputes"));
    assert_eq!(live(&synced, DataType::Products).len(), count("products"));
    assert_eq!(live(&synced, DataType::Payments).len(), count("charges") + count("refunds"));
    let txns = live(&synced, DataType::Transactions);
    assert_eq!(txns.iter().filter(|id| !id.contains(':')).count(), count("balance_transactions"));
    assert_eq!(live(&synced, DataType::Customers), raw_ids(&sandbox, &acct, "customers").await);
    // Exact sums per currency: payments are charges less refunds, disputes and balance
    // transactions as Stripe counts them.
    let sums_of = &summary["amount_sums"];
    let mut payments = major(&sums_of["charges"], 1);
    add(&mut payments, major(&sums_of["refunds"], -1));
    assert_eq!(sums(&synced, DataType::Payments, "amount", |_| true), payments);
    assert!(payments.contains_key("JPY") && payments.contains_key("KWD"), "{payments:?}");
    assert_eq!(sums(&synced, DataType::Disputes, "totalAmount", |_| true), major(&sums_of["disputes"], 1));
    assert_eq!(sums(&synced, DataType::Transactions, "totalAmount", |id| !id.contains(':')), major(&sums_of["balance_transactions"], 1));
    store.close().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_created_and_deleted_during_a_split_backfill_end_as_they_are_at_stripe() {
    let sandbox = slow_sandbox(150).await;
    let profile = Profile { customers: 800, charges: 1200, refunds: 100, disputes: 30, products: 20, prices: 60, payouts: 20 };
    let acct = account(&sandbox, 6, profile).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform = platform_on(&store, &MASTER).await;
    let (company, connection) = linked_with_pulls(&platform, "Busy", &acct).await;
    let existing: Vec<String> = raw_ids(&sandbox, &acct, "customers").await.into_iter().collect();
    let run = workers(&platform, &sandbox, 4);

    // While the backfill runs (its ranges split by then): new customers and charges, and deleted
    // customers, some already stored and some not yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    while platform.repositories().records.partitions(connection, DataType::Customers).await.unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the customers' backfill was never split");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let http = reqwest::Client::new();
    let mut created = Vec::new();
    for i in 0..15 {
        let c: Value = http
            .post(format!("{}/_sandbox/accounts/{acct}/objects/customers", sandbox.url()))
            .json(&json!({"name": format!("Walk-in {i}"), "email": format!("walkin{i}@example.com")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created.push(c["id"].as_str().unwrap().to_owned());
        let r = http
            .post(format!("{}/_sandbox/accounts/{acct}/objects/charges", sandbox.url()))
            .json(&json!({"amount": 1000 + i, "currency": "jpy", "customer": c["id"]}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let deleted: Vec<String> = existing.iter().step_by(80).cloned().collect();
    for id in &deleted {
        let r = http.delete(format!("{}/_sandbox/accounts/{acct}/objects/customers/{id}", sandbox.url())).send().await.unwrap();
        assert!(r.status().is_success());
    }
    until_finished(&platform, company, connection, Duration::from_secs(120)).await;
    // The next sync follows the changes made since just before the backfill started.
    for dt in [DataType::Customers, DataType::Payments] {
        platform.pulls().queue(company, dt, None).await.unwrap();
    }
    until_finished(&platform, company, connection, Duration::from_secs(60)).await;
    drop(run);

    let synced = stored(&platform, connection).await;
    let customers = live(&synced, DataType::Customers);
    assert_eq!(customers, raw_ids(&sandbox, &acct, "customers").await, "customers end as at Stripe");
    assert!(created.iter().all(|c| customers.contains(c)) && deleted.iter().all(|d| !customers.contains(d)));
    let mut payments = raw_ids(&sandbox, &acct, "charges").await;
    payments.extend(raw_ids(&sandbox, &acct, "refunds").await);
    assert_eq!(live(&synced, DataType::Payments), payments, "payments end as at Stripe");
    store.close().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_429s_500s_and_dropped_connections_the_data_is_identical_and_the_rate_stays_within_stripe_s() {
    let sandbox = slow_sandbox(40).await;
    let profile = Profile { customers: 300, charges: 700, refunds: 60, disputes: 20, products: 15, prices: 40, payouts: 12 };
    // Two merchants generated from the same seed: the same objects under two account ids.
    let (calm, stormy) = (account(&sandbox, 77, profile).await, account(&sandbox, 77, profile).await);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform = platform_on(&store, &MASTER).await;
    let (calm_company, calm_connection) = linked_with_pulls(&platform, "Calm", &calm).await;
    let (run, shared) = workers_with(&platform, &sandbox, 4);
    until_finished(&platform, calm_company, calm_connection, Duration::from_secs(120)).await;
    let want = stored(&platform, calm_connection).await;

    put(&sandbox, "/_sandbox/faults", json!({"endpoints": {"*": {"latency_ms": 40, "p429": 0.2, "p500": 0.05, "p_drop": 0.05}}})).await;
    let calm_stats = shared.source.stats();
    assert_eq!(calm_stats.retries, 0, "no faults, no retries");
    let (company, connection) = linked_with_pulls(&platform, "Stormy", &stormy).await;
    until_finished(&platform, company, connection, Duration::from_secs(240)).await;
    drop(run);
    let got = stored(&platform, connection).await;
    assert_same(&without_account(got, &stormy), &without_account(want, &calm));
    // The faults were hit (about 3 in 10 attempts fail), and the sandbox's own limiter (25/s)
    // never had to refuse a request.
    let faulty = shared.source.stats();
    assert!(faulty.rate_limited > 0 && (faulty.retries - calm_stats.retries) * 10 >= calm_stats.requests, "{faulty:?}");
    let stats = get(&sandbox, &format!("/_sandbox/accounts/{stormy}/stats")).await;
    assert!(stats["rate_limited"].as_u64().unwrap() <= 2, "{stats}");
    assert!(stats["max_per_second"].as_u64().unwrap() <= 25 + 13, "within 25/s and the burst: {stats}");
    store.close().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_s_requests_stay_within_its_rate_and_small_accounts_finish_before_a_large_one() {
    let sandbox = slow_sandbox(100).await;
    let large = account(
        &sandbox,
        1,
        Profile { customers: 4000, charges: 9000, refunds: 900, disputes: 100, products: 60, prices: 180, payouts: 60 },
    )
    .await;
    let mut small = Vec::new();
    for seed in 0..20 {
        small.push(
            account(
                &sandbox,
                100 + seed,
                Profile { customers: 40, charges: 80, refunds: 8, disputes: 4, products: 4, prices: 8, payouts: 4 },
            )
            .await,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform = platform_on(&store, &MASTER).await;
    // All queued before any worker starts: the large account's pulls are the oldest.
    let large_company = linked_with_pulls(&platform, "Large", &large).await.0;
    let mut companies = Vec::new();
    for (i, a) in small.iter().enumerate() {
        companies.push(linked_with_pulls(&platform, &format!("Small {i}"), a).await.0);
    }
    let started = Instant::now();
    let run = workers(&platform, &sandbox, 32);
    let mut small_done: Vec<Duration> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !finished(&platform, large_company).await {
        assert!(Instant::now() < deadline, "the large account did not finish");
        let mut still = Vec::new();
        for c in companies {
            if finished(&platform, c).await {
                small_done.push(started.elapsed());
            } else {
                still.push(c);
            }
        }
        companies = still;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let large_done = started.elapsed();
    drop(run);
    assert!(companies.is_empty(), "{} small accounts finished after the large one ({large_done:?})", companies.len());
    assert_eq!(small_done.len(), 20);
    let last_small = small_done.iter().max().copied().unwrap_or_default();
    assert!(last_small * 2 < large_done, "the small accounts ({last_small:?}) were held back by the large one ({large_done:?})");

    // The large account within its rate: in any stretch of whole seconds, at most 25 requests a
    // second and the client's burst (half a second's), none refused by the sandbox's limiter; and
    // close to 25/s while it is busy (the rate is what bounds it).
    let stats = get(&sandbox, &format!("/_sandbox/accounts/{large}/stats")).await;
    let timeline: Vec<u64> = stats["timeline"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let per_second: Vec<u64> = timeline.chunks(10).map(|c| c.iter().sum()).collect();
    assert!(stats["rate_limited"].as_u64().unwrap() <= 2, "{stats}");
    for w in 1..=timeline.len() / 10 {
        let most = timeline.windows(w * 10).map(|x| x.iter().sum::<u64>()).max().unwrap_or(0);
        assert!(most <= 25 * w as u64 + 15, "{most} requests in {w} s: {per_second:?}");
    }
    let busy = &per_second[1..per_second.len().saturating_sub(1)];
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let mean = busy.iter().sum::<u64>() as f64 / busy.len().max(1) as f64;
    assert!(mean >= 20.0, "close to 25/s while busy: {per_second:?}");
    store.close().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_types_of_one_connection_run_at_the_same_time() {
    let sandbox = slow_sandbox(200).await;
    let acct =
        account(&sandbox, 9, Profile { customers: 500, charges: 500, refunds: 20, disputes: 10, products: 5, prices: 10, payouts: 5 })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform = platform_on(&store, &MASTER).await;
    let (company, connection) = linked_with_pulls(&platform, "Both", &acct).await;
    let run = workers(&platform, &sandbox, 1);
    // With one worker, customers and payments are both fetching before either is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut together = false;
    while !finished(&platform, company).await && !together {
        let s = statuses(&platform, company).await;
        let fetching = |dt: DataType| s.iter().any(|(t, st, _)| *t == dt && *st == DatasetStatus::Fetching);
        together = fetching(DataType::Customers) && fetching(DataType::Payments) && fetching(DataType::Transactions);
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(together, "the data types ran one after another");
    until_finished(&platform, company, connection, Duration::from_secs(60)).await;
    drop(run);
    store.close().await;
    sandbox.stop().await;
}
