//! List endpoints over HTTP: cursor paging both ways, `limit` bounds, `created` and per-endpoint
//! filters, summary counts and amount sums, and determinism across sandboxes.

mod common;

use common::{LISTS, MONEY_LISTS, Sandbox, assert_stripe_error, big_profile, created, id, ids, list_page};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

#[tokio::test]
async fn walking_every_list_forward_and_backward_sees_every_object_once_newest_first_and_matches_the_summary() {
    let s = Sandbox::start().await;
    let acct = s.test_account(11, big_profile()).await;
    let summary = s.summary(&acct).await;
    for list in LISTS {
        let path = format!("/v1/{list}");
        let forward = s.walk(&acct, &path, "", 7).await;
        let expected = summary["counts"][list].as_u64().unwrap_or_else(|| panic!("no count for {list}: {summary}"));
        assert_eq!(forward.len() as u64, expected, "{list}: walked count vs summary");
        assert!(forward.len() > 7, "{list}: the profile should give several pages, got {}", forward.len());
        for o in &forward {
            let object = o["object"].as_str().unwrap_or_default();
            assert_eq!(format!("{object}s"), list, "{o}");
        }
        // Backwards from the oldest object: every other object exactly once, in the same order.
        let oldest = id(forward.last().expect("non-empty")).to_owned();
        let back = s.walk_back(&acct, &path, "", 7, &oldest).await;
        let mut back_ids = ids(&back);
        back_ids.push(oldest);
        assert_eq!(back_ids, ids(&forward), "{list}: ending_before walk differs from starting_after walk");
        // Backwards from the newest object: nothing newer.
        let newest = id(&forward[0]).to_owned();
        let page = s.get_ok(&format!("{path}?ending_before={newest}"), &acct).await;
        let (data, more) = list_page(&page, &path);
        assert!(data.is_empty() && !more, "{list}: something is newer than the newest: {page}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_list_whose_length_is_a_multiple_of_the_limit_ends_with_a_full_page_that_has_no_more() {
    let s = Sandbox::start().await;
    let acct = s.test_account(12, big_profile()).await;
    // 21 customers, limit 7: three full pages, the third with has_more false, no empty fourth page.
    let mut pages = Vec::new();
    let mut q = "limit=7".to_owned();
    loop {
        let page = s.get_ok(&format!("/v1/customers?{q}"), &acct).await;
        let (data, more) = list_page(&page, "/v1/customers");
        pages.push((data.len(), more));
        if !more {
            break;
        }
        q = format!("limit=7&starting_after={}", id(data.last().expect("full page")));
    }
    assert_eq!(pages, vec![(7, true), (7, true), (7, false)]);
    s.stop().await;
}

#[tokio::test]
async fn empty_lists_are_a_single_empty_page_without_more() {
    let s = Sandbox::start().await;
    let zero = json!({"customers": 0, "charges": 0, "refunds": 0, "disputes": 0, "products": 0, "prices": 0, "payouts": 0});
    let acct = s.test_account(13, zero).await;
    for list in LISTS.iter().chain(&["events"]) {
        let path = format!("/v1/{list}");
        let page = s.get_ok(&path, &acct).await;
        let (data, more) = list_page(&page, &path);
        assert!(data.is_empty() && !more, "{list}: {page}");
        assert_eq!(s.summary(&acct).await["counts"][*list], 0, "{list}");
    }
    s.stop().await;
}

#[tokio::test]
async fn objects_created_in_the_same_second_are_ordered_by_id_descending_and_page_without_gaps() {
    let s = Sandbox::start().await;
    let acct = s
        .test_account(14, json!({"customers": 5, "charges": 0, "refunds": 0, "disputes": 0, "products": 0, "prices": 0, "payouts": 0}))
        .await;
    let t = 1_740_000_000; // inside the generated 2025 history
    let tied = ["cus_tieC", "cus_tieA", "cus_tieE", "cus_tieB", "cus_tieD"];
    for cus in tied {
        let r =
            s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers"), Some(json!({"id": cus, "created": t}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for limit in [1, 2, 3] {
        let all = s.walk(&acct, "/v1/customers", "", limit).await;
        assert_eq!(all.len(), 10, "limit {limit}");
        let at_t: Vec<String> = all.iter().filter(|o| created(o) == t).map(|o| id(o).to_owned()).collect();
        assert_eq!(at_t, ["cus_tieE", "cus_tieD", "cus_tieC", "cus_tieB", "cus_tieA"], "limit {limit}");
        let back = s.walk_back(&acct, "/v1/customers", "", limit, id(all.last().expect("customers"))).await;
        assert_eq!(back.len(), 9, "limit {limit}");
    }
    // Exact `created` picks the tied group only, in the same order.
    let exact = s.walk(&acct, "/v1/customers", &format!("created={t}"), 2).await;
    assert_eq!(ids(&exact), ["cus_tieE", "cus_tieD", "cus_tieC", "cus_tieB", "cus_tieA"]);
    s.stop().await;
}

#[tokio::test]
async fn limit_defaults_to_ten_allows_one_hundred_and_rejects_out_of_range_values_with_a_stripe_error() {
    let s = Sandbox::start().await;
    let acct = s
        .test_account(15, json!({"customers": 130, "charges": 3, "refunds": 0, "disputes": 0, "products": 1, "prices": 1, "payouts": 1}))
        .await;
    let (data, more) = list_page(&s.get_ok("/v1/customers", &acct).await, "/v1/customers");
    assert_eq!((data.len(), more), (10, true));
    let (data, more) = list_page(&s.get_ok("/v1/customers?limit=100", &acct).await, "/v1/customers");
    assert_eq!((data.len(), more), (100, true));
    let (data, more) = list_page(&s.get_ok("/v1/customers?limit=1", &acct).await, "/v1/customers");
    assert_eq!((data.len(), more), (1, true));
    let (data, more) = list_page(&s.get_ok("/v1/charges?limit=100", &acct).await, "/v1/charges");
    assert_eq!((data.len(), more), (3, false));
    for bad in ["101", "0", "-1", "1000", "ten", ""] {
        let r = s.get(&format!("/v1/customers?limit={bad}"), &acct).await;
        assert_stripe_error(&r, 400, "invalid_request_error", None, Some("limit"));
    }
    s.stop().await;
}

#[tokio::test]
async fn starting_after_with_ending_before_and_unknown_cursors_are_rejected_with_400() {
    let s = Sandbox::start().await;
    let a = s.test_account(16, big_profile()).await;
    let b = s.test_account(17, big_profile()).await;
    let customers = s.walk(&a, "/v1/customers", "", 100).await;
    let (c1, c2) = (id(&customers[3]), id(&customers[5]));
    let r = s.get(&format!("/v1/customers?starting_after={c1}&ending_before={c2}"), &a).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    for cursor in ["starting_after", "ending_before"] {
        let r = s.get(&format!("/v1/customers?{cursor}=cus_doesnotexist"), &a).await;
        assert_stripe_error(&r, 400, "invalid_request_error", Some("resource_missing"), Some(cursor));
        // An id from another list is not a cursor for this one.
        let charge = id(&s.get_ok("/v1/charges?limit=1", &a).await["data"][0]).to_owned();
        let r = s.get(&format!("/v1/customers?{cursor}={charge}"), &a).await;
        assert_stripe_error(&r, 400, "invalid_request_error", Some("resource_missing"), Some(cursor));
        // An id from another account is not a cursor either.
        let r = s.get(&format!("/v1/customers?{cursor}={c1}"), &b).await;
        assert_stripe_error(&r, 400, "invalid_request_error", Some("resource_missing"), Some(cursor));
    }
    let r = s.get("/v1/customers?bogus=1", &a).await;
    assert_stripe_error(&r, 400, "invalid_request_error", Some("parameter_unknown"), Some("bogus"));
    s.stop().await;
}

#[tokio::test]
async fn an_unknown_event_cursor_names_the_parameter_that_was_sent() {
    let s = Sandbox::start().await;
    let a = s.test_account(18, big_profile()).await;
    for cursor in ["starting_after", "ending_before"] {
        let r = s.get(&format!("/v1/events?{cursor}=evt_doesnotexist"), &a).await;
        assert_stripe_error(&r, 400, "invalid_request_error", Some("resource_missing"), Some(cursor));
    }
    s.stop().await;
}

/// Brute-force reference for a `created` filter.
fn keep(op: &str, c: i64, t: i64) -> bool {
    match op {
        "gte" => c >= t,
        "gt" => c > t,
        "lte" => c <= t,
        "lt" => c < t,
        "eq" => c == t,
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn created_filters_match_a_brute_force_filter_of_the_full_walk_on_every_list() {
    let s = Sandbox::start().await;
    let acct = s.test_account(19, big_profile()).await;
    for list in LISTS {
        let path = format!("/v1/{list}");
        let all = s.walk(&acct, &path, "", 100).await;
        let n = all.len();
        let first = created(&all[n - 1]);
        let last = created(&all[0]);
        let thresholds = [first - 1, first, created(&all[n / 3]), created(&all[n / 2]), created(&all[n - 2]), last, last + 1];
        for t in thresholds {
            for op in ["gte", "gt", "lte", "lt", "eq"] {
                let q = if op == "eq" { format!("created={t}") } else { format!("created[{op}]={t}") };
                let got = s.walk(&acct, &path, &q, 7).await;
                let want: Vec<Value> = all.iter().filter(|o| keep(op, created(o), t)).cloned().collect();
                assert_eq!(ids(&got), ids(&want), "{path}?{q}");
            }
        }
        // A closed range, and a range walked backwards.
        let (lo, hi) = (created(&all[n * 3 / 4]), created(&all[n / 4]));
        let q = format!("created[gte]={lo}&created[lt]={hi}");
        let got = s.walk(&acct, &path, &q, 3).await;
        let want: Vec<Value> = all.iter().filter(|o| created(o) >= lo && created(o) < hi).cloned().collect();
        assert!(!want.is_empty(), "{path}: empty range");
        assert_eq!(ids(&got), ids(&want), "{path}?{q}");
        let oldest_in_range = id(want.last().expect("range")).to_owned();
        let mut back = ids(&s.walk_back(&acct, &path, &q, 3, &oldest_in_range).await);
        back.push(oldest_in_range);
        assert_eq!(back, ids(&want), "{path}?{q} backwards");
        // An empty range.
        let got = s.walk(&acct, &path, &format!("created[gt]={hi}&created[lt]={hi}"), 7).await;
        assert!(got.is_empty(), "{path}: empty range gave {}", got.len());
    }
    s.stop().await;
}

#[tokio::test]
async fn extreme_created_bounds_are_answered_not_dropped() {
    let s = Sandbox::start().await;
    let acct = s.test_account(20, big_profile()).await;
    for q in ["created[gt]=9223372036854775807", "created[lt]=-9223372036854775808"] {
        let r = s.request(Method::GET, &format!("/v1/customers?{q}"), Some(common::TEST_KEY), Some(&acct)).send().await;
        let r = common::read(r.unwrap_or_else(|e| panic!("{q}: the connection failed: {e}"))).await;
        // Either an empty list or a 400 is acceptable; a dropped connection is not.
        if r.status == 200 {
            let (data, more) = list_page(&r.json(), "/v1/customers");
            assert!(data.is_empty() && !more, "{q}: {}", r.text);
        } else {
            assert_stripe_error(&r, 400, "invalid_request_error", None, None);
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn non_integer_created_values_are_rejected_with_the_parameter_named() {
    let s = Sandbox::start().await;
    let acct = s.test_account(21, big_profile()).await;
    for (q, p) in [("created=yesterday", "created"), ("created[gte]=1.5", "created[gte]"), ("created[lt]=", "created[lt]")] {
        let r = s.get(&format!("/v1/charges?{q}"), &acct).await;
        assert_stripe_error(&r, 400, "invalid_request_error", None, Some(p));
    }
    s.stop().await;
}

#[tokio::test]
async fn per_endpoint_filters_match_a_brute_force_filter_and_combine_with_created_and_paging() {
    let s = Sandbox::start().await;
    let acct = s.test_account(22, big_profile()).await;

    // balance_transactions?type=…
    let txns = s.walk(&acct, "/v1/balance_transactions", "", 100).await;
    let types: HashSet<String> = txns.iter().map(|t| t["type"].as_str().expect("type").to_owned()).collect();
    for ty in ["charge", "refund", "payout", "adjustment"] {
        assert!(types.contains(ty), "no {ty} balance transaction in {types:?}");
    }
    for ty in types.iter().map(String::as_str).chain(["transfer"]) {
        let got = s.walk(&acct, "/v1/balance_transactions", &format!("type={ty}"), 7).await;
        let want: Vec<Value> = txns.iter().filter(|t| t["type"] == ty).cloned().collect();
        assert_eq!(ids(&got), ids(&want), "type={ty}");
    }
    let mid = created(&txns[txns.len() / 2]);
    let got = s.walk(&acct, "/v1/balance_transactions", &format!("type=charge&created[lte]={mid}"), 4).await;
    let want: Vec<Value> = txns.iter().filter(|t| t["type"] == "charge" && created(t) <= mid).cloned().collect();
    assert_eq!(ids(&got), ids(&want), "type=charge&created[lte]");

    // charges?customer=…
    let charges = s.walk(&acct, "/v1/charges", "", 100).await;
    let customers = s.walk(&acct, "/v1/customers", "", 100).await;
    let mut with_several = 0;
    for c in &customers {
        let cus = id(c);
        let want: Vec<Value> = charges.iter().filter(|ch| ch["customer"] == cus).cloned().collect();
        with_several += usize::from(want.len() > 1);
        let got = s.walk(&acct, "/v1/charges", &format!("customer={cus}"), 2).await;
        assert_eq!(ids(&got), ids(&want), "customer={cus}");
        for ch in &got {
            assert_eq!(ch["customer"], cus);
        }
    }
    assert!(with_several > 0, "no customer has several charges; the filter test is too weak");
    let got = s.walk(&acct, "/v1/charges", "customer=cus_nobody", 7).await;
    assert!(got.is_empty());

    // prices?product=…
    let prices = s.walk(&acct, "/v1/prices", "", 100).await;
    let products = s.walk(&acct, "/v1/products", "", 100).await;
    let mut total = 0;
    for p in &products {
        let prod = id(p);
        let want: Vec<Value> = prices.iter().filter(|pr| pr["product"] == prod).cloned().collect();
        let got = s.walk(&acct, "/v1/prices", &format!("product={prod}"), 2).await;
        assert_eq!(ids(&got), ids(&want), "product={prod}");
        total += got.len();
    }
    assert_eq!(total, prices.len(), "every price belongs to a listed product");
    s.stop().await;
}

/// Sums `amount` per currency.
fn sums(objs: &[Value]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for o in objs {
        let cur = o["currency"].as_str().unwrap_or_else(|| panic!("no currency: {o}"));
        *m.entry(cur.to_owned()).or_default() += o["amount"].as_i64().unwrap_or_else(|| panic!("no amount: {o}"));
    }
    m
}

#[tokio::test]
async fn summary_amount_sums_equal_the_walked_amounts_per_lower_case_currency_including_jpy_and_kwd() {
    let s = Sandbox::start().await;
    let acct = s.test_account(23, big_profile()).await;
    let summary = s.summary(&acct).await;
    for list in MONEY_LISTS {
        let objs = s.walk(&acct, &format!("/v1/{list}"), "", 100).await;
        let walked = sums(&objs);
        let reported: BTreeMap<String, i64> = summary["amount_sums"][list]
            .as_object()
            .unwrap_or_else(|| panic!("no amount_sums for {list}: {summary}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_i64().expect("integer sum")))
            .collect();
        assert_eq!(walked, reported, "{list}");
        for cur in walked.keys() {
            assert_eq!(cur, &cur.to_lowercase(), "{list}: currency {cur}");
            assert_eq!(cur.len(), 3, "{list}: currency {cur}");
        }
    }
    let charges = summary["amount_sums"]["charges"].as_object().expect("charge sums");
    assert!(charges.contains_key("jpy") && charges.contains_key("kwd"), "{summary}");
    s.stop().await;
}

#[tokio::test]
async fn the_balance_equals_the_net_of_balance_transactions_per_currency() {
    let s = Sandbox::start().await;
    let acct = s.test_account(24, big_profile()).await;
    let txns = s.walk(&acct, "/v1/balance_transactions", "", 100).await;
    let mut available: BTreeMap<String, i64> = BTreeMap::new();
    let mut pending: BTreeMap<String, i64> = BTreeMap::new();
    for t in &txns {
        let m = if t["status"] == "available" { &mut available } else { &mut pending };
        *m.entry(t["currency"].as_str().expect("currency").to_owned()).or_default() += t["net"].as_i64().expect("net");
        assert_eq!(t["net"].as_i64(), Some(t["amount"].as_i64().expect("amount") - t["fee"].as_i64().expect("fee")), "{t}");
    }
    let balance = s.get_ok("/v1/balance", &acct).await;
    assert_eq!(balance["object"], "balance");
    assert_eq!(balance["livemode"], false);
    let read = |k: &str| -> BTreeMap<String, i64> {
        balance[k]
            .as_array()
            .expect("array")
            .iter()
            .map(|e| (e["currency"].as_str().expect("currency").to_owned(), e["amount"].as_i64().expect("amount")))
            .filter(|(_, a)| *a != 0)
            .collect()
    };
    available.retain(|_, v| *v != 0);
    pending.retain(|_, v| *v != 0);
    assert_eq!(read("available"), available);
    assert_eq!(read("pending"), pending);
    s.stop().await;
}

#[tokio::test]
async fn balance_history_is_an_alias_of_balance_transactions_with_its_own_url() {
    let s = Sandbox::start().await;
    let acct = s.test_account(25, big_profile()).await;
    let a = s.walk(&acct, "/v1/balance_transactions", "", 7).await;
    let b = s.walk(&acct, "/v1/balance/history", "", 7).await;
    assert_eq!(a, b);
    let c = s.walk(&acct, "/v1/balance/history", "type=payout", 2).await;
    assert_eq!(ids(&c), ids(&a.iter().filter(|t| t["type"] == "payout").cloned().collect::<Vec<_>>()));
    s.stop().await;
}

/// Everything an account serves, walked.
async fn everything(s: &Sandbox, acct: &str) -> String {
    let mut out = vec![s.get_ok("/v1/account", acct).await];
    for list in LISTS {
        out.push(Value::Array(s.walk(acct, &format!("/v1/{list}"), "", 7).await));
    }
    serde_json::to_string(&out).expect("json")
}

#[tokio::test]
async fn two_sandboxes_with_the_same_seed_and_profile_serve_identical_json() {
    let s1 = Sandbox::start().await;
    let s2 = Sandbox::start().await;
    let a1 = s1.test_account(77, big_profile()).await;
    let a2 = s2.test_account(77, big_profile()).await;
    assert_eq!(a1, a2, "the account id depends only on the seed");
    let (j1, j2) = (everything(&s1, &a1).await, everything(&s2, &a2).await);
    assert!(j1 == j2, "same seed and profile gave different data");
    // Without an explicit seed, the sandbox seed and the account's ordinal decide.
    let b1 = s1.new_account(json!({"mode": "test", "connected": true})).await;
    let b2 = s2.new_account(json!({"mode": "test", "connected": true})).await;
    assert_eq!(b1, b2);
    assert!(everything(&s1, &b1).await == everything(&s2, &b2).await, "unseeded accounts differ");
    // A different seed gives different data.
    let c = s1.test_account(78, big_profile()).await;
    assert_ne!(everything(&s1, &c).await, j1);
    s1.stop().await;
    s2.stop().await;
}

#[tokio::test]
async fn every_documented_list_filter_matches_a_brute_force_filter_of_the_full_walk() {
    let s = Sandbox::start().await;
    let acct = s.test_account(26, big_profile()).await;
    let table: [(&str, &[&str]); 9] = [
        ("customers", &["email"]),
        ("charges", &["customer", "payment_intent"]),
        ("refunds", &["charge", "payment_intent"]),
        ("disputes", &["charge", "payment_intent"]),
        ("payment_intents", &["customer"]),
        ("products", &["active", "shippable"]),
        ("prices", &["active", "currency", "product", "type"]),
        ("balance_transactions", &["currency", "source", "type"]),
        ("payouts", &["status"]),
    ];
    for (list, filters) in table {
        let path = format!("/v1/{list}");
        let all = s.walk(&acct, &path, "", 100).await;
        for f in filters {
            let values: std::collections::BTreeSet<String> = all
                .iter()
                .filter_map(|o| match &o[*f] {
                    Value::String(v) => Some(v.clone()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect();
            assert!(!values.is_empty(), "{list}.{f}: no values to filter on");
            // Every value for small sets; a sample of a few for id-like fields.
            for v in values.iter().take(6) {
                let enc: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                let got = s.walk(&acct, &path, &format!("{f}={enc}"), 3).await;
                let want: Vec<Value> = all
                    .iter()
                    .filter(|o| o[*f].as_str() == Some(v.as_str()) || o[*f].as_bool().map(|b| b.to_string()) == Some(v.clone()))
                    .cloned()
                    .collect();
                assert!(!want.is_empty());
                assert_eq!(ids(&got), ids(&want), "{path}?{f}={v}");
            }
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn balance_transactions_filtered_by_payout_include_that_payouts_transactions() {
    let s = Sandbox::start().await;
    let acct = s.test_account(27, big_profile()).await;
    let payouts = s.walk(&acct, "/v1/payouts", "status=paid", 100).await;
    let po = payouts.first().expect("a paid payout");
    let got = s.walk(&acct, "/v1/balance_transactions", &format!("payout={}", id(po)), 100).await;
    assert!(
        got.iter().any(|t| t["id"] == po["balance_transaction"]),
        "payout={} gave {:?}, without the payout's own balance transaction {}",
        id(po),
        ids(&got),
        po["balance_transaction"]
    );
    s.stop().await;
}
