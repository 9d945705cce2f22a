//! Who may read what: account and mode isolation, key and account errors, unknown ids and paths;
//! the `Request-Id` and `Stripe-Version` headers; and per-account request counters.

mod common;

use common::{LISTS, LIVE_KEY, Sandbox, TEST_KEY, assert_stripe_error, big_profile, id, read};
use reqwest::Method;
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn an_accounts_objects_are_not_retrievable_through_another_account() {
    let s = Sandbox::start().await;
    let a = s.test_account(31, big_profile()).await;
    let b = s.test_account(32, big_profile()).await;
    assert_ne!(a, b);
    for list in LISTS {
        let first = s.get_ok(&format!("/v1/{list}?limit=3"), &a).await;
        for o in first["data"].as_array().expect("data") {
            let oid = id(o);
            let own = s.get_ok(&format!("/v1/{list}/{oid}"), &a).await;
            assert_eq!(&own, o, "{list}: retrieve differs from the listed object");
            let r = s.get(&format!("/v1/{list}/{oid}"), &b).await;
            assert_stripe_error(&r, 404, "invalid_request_error", Some("resource_missing"), Some("id"));
        }
        // Neither list contains the other's objects.
        let ids_a: HashSet<String> = common::ids(&s.walk(&a, &format!("/v1/{list}"), "", 100).await).into_iter().collect();
        let ids_b: HashSet<String> = common::ids(&s.walk(&b, &format!("/v1/{list}"), "", 100).await).into_iter().collect();
        assert!(ids_a.is_disjoint(&ids_b), "{list}: accounts share objects");
    }
    assert_eq!(s.get_ok("/v1/account", &a).await["id"], a.as_str());
    assert_eq!(s.get_ok("/v1/account", &b).await["id"], b.as_str());
    s.stop().await;
}

#[tokio::test]
async fn a_key_of_the_other_mode_cannot_read_an_account_and_gets_403_account_invalid() {
    let s = Sandbox::start().await;
    let test = s.test_account(33, big_profile()).await;
    let live = s.new_account(json!({"mode": "live", "seed": 34, "connected": true, "profile": big_profile()})).await;
    for path in ["/v1/account", "/v1/balance", "/v1/customers", "/v1/events"] {
        let r = s.get_as(path, Some(LIVE_KEY), Some(&test)).await;
        assert_stripe_error(&r, 403, "invalid_request_error", Some("account_invalid"), None);
        let r = s.get_as(path, Some(TEST_KEY), Some(&live)).await;
        assert_stripe_error(&r, 403, "invalid_request_error", Some("account_invalid"), None);
        let r = s.get_as(path, Some(LIVE_KEY), Some(&live)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    let charge = s.get_as("/v1/charges?limit=1", Some(LIVE_KEY), Some(&live)).await.json();
    assert_eq!(charge["data"][0]["livemode"], true);
    let balance = s.get_as("/v1/balance", Some(LIVE_KEY), Some(&live)).await.json();
    assert_eq!(balance["livemode"], true);
    s.stop().await;
}

#[tokio::test]
async fn a_bad_or_missing_key_gets_401_and_basic_auth_with_the_key_as_user_works() {
    let s = Sandbox::start().await;
    let acct = s.test_account(35, big_profile()).await;
    let r = s.get_as("/v1/customers", Some("sk_test_wrong"), Some(&acct)).await;
    assert_stripe_error(&r, 401, "invalid_request_error", Some("api_key_invalid"), None);
    assert!(!r.text.contains("sk_test_wrong"), "the full bad key is echoed: {}", r.text);
    let r = s.get_as("/v1/customers/cus_x", Some("sk_test_wrong"), Some(&acct)).await;
    assert_stripe_error(&r, 401, "invalid_request_error", None, None);
    let r = s.get_as("/v1/customers", None, Some(&acct)).await;
    assert_stripe_error(&r, 401, "invalid_request_error", None, None);
    let r =
        read(s.http.get(s.url("/v1/customers")).basic_auth(TEST_KEY, Some("")).header("Stripe-Account", &acct).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn an_unconnected_or_unknown_account_gets_403_and_a_missing_account_header_gets_400() {
    let s = Sandbox::start().await;
    let unconnected = s.new_account(json!({"mode": "test", "seed": 36, "connected": false})).await;
    for path in ["/v1/account", "/v1/customers", "/v1/balance"] {
        let r = s.get(path, &unconnected).await;
        assert_stripe_error(&r, 403, "invalid_request_error", Some("account_invalid"), None);
        let r = s.get(path, "acct_doesnotexist").await;
        assert_stripe_error(&r, 403, "invalid_request_error", Some("account_invalid"), None);
        let r = s.get_as(path, Some(TEST_KEY), None).await;
        assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    }
    s.stop().await;
}

#[tokio::test]
async fn unknown_ids_get_404_resource_missing_and_unknown_paths_get_404() {
    let s = Sandbox::start().await;
    let acct = s.test_account(37, big_profile()).await;
    for list in LISTS.iter().chain(&["events"]) {
        let r = s.get(&format!("/v1/{list}/xyz_doesnotexist"), &acct).await;
        assert_stripe_error(&r, 404, "invalid_request_error", Some("resource_missing"), Some("id"));
    }
    for path in ["/v1/nonsense", "/v1/customers/cus_x/sources/extra", "/v2/customers", "/nope", "/v1/nonsense/x"] {
        let r = s.get(path, &acct).await;
        assert_stripe_error(&r, 404, "invalid_request_error", None, None);
        assert!(r.json()["error"]["message"].as_str().unwrap_or_default().contains("Unrecognized request URL"), "{path}: {}", r.text);
    }
    s.stop().await;
}

#[tokio::test]
async fn every_response_has_a_unique_request_id_starting_req() {
    let s = Sandbox::start().await;
    let acct = s.test_account(38, big_profile()).await;
    let mut replies = vec![
        ("list", s.get("/v1/customers", &acct).await),
        ("retrieve 404", s.get("/v1/customers/cus_nope", &acct).await),
        ("400", s.get("/v1/customers?limit=500", &acct).await),
        ("401", s.get_as("/v1/customers", Some("sk_bad"), Some(&acct)).await),
        ("403", s.get_as("/v1/customers", Some(LIVE_KEY), Some(&acct)).await),
        ("unknown path", s.get("/nope", &acct).await),
        ("wrong method", read(s.request(Method::POST, "/v1/customers", Some(TEST_KEY), Some(&acct)).send().await.unwrap()).await),
        ("control summary", s.control(Method::GET, &format!("/_sandbox/accounts/{acct}/summary"), None).await),
        ("control 404", s.control(Method::GET, "/_sandbox/accounts/acct_nope/summary", None).await),
        (
            "control bad json",
            read(s.http.post(s.url("/_sandbox/accounts")).header("content-type", "application/json").body("{").send().await.unwrap()).await,
        ),
        (
            "consent page",
            s.get_as("/oauth/authorize?response_type=code&client_id=ca_sandbox_test&redirect_uri=http://127.0.0.1:9/cb", None, None).await,
        ),
        ("oauth error", s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "password")]).await),
    ];
    s.control(Method::PUT, "/_sandbox/faults", Some(json!({"endpoints": {"GET /v1/charges": {"p500": 1.0}}}))).await;
    replies.push(("fault 500", s.get("/v1/charges", &acct).await));
    s.control(Method::PUT, "/_sandbox/rate_limits", Some(json!({"test": 1}))).await;
    s.get("/v1/payouts", &acct).await;
    replies.push(("rate limited", s.get("/v1/payouts", &acct).await));
    assert_eq!(replies.last().map(|r| r.1.status), Some(429));
    let mut seen = HashSet::new();
    for (what, r) in &replies {
        let rid = r.header("request-id").unwrap_or_else(|| panic!("{what} ({}): no Request-Id", r.status));
        assert!(rid.starts_with("req_") && rid.len() > 4, "{what}: {rid}");
        assert!(seen.insert(rid.clone()), "{what}: Request-Id {rid} repeats");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_requested_stripe_version_is_echoed_and_the_pinned_one_is_sent_otherwise() {
    let s = Sandbox::start().await;
    let acct = s.test_account(39, big_profile()).await;
    for path in ["/v1/customers", "/v1/customers/cus_nope", "/v1/account"] {
        let r =
            read(s.request(Method::GET, path, Some(TEST_KEY), Some(&acct)).header("Stripe-Version", "2023-08-16").send().await.unwrap())
                .await;
        assert_eq!(r.header("stripe-version").as_deref(), Some("2023-08-16"), "{path}");
        let r = s.get(path, &acct).await;
        assert_eq!(r.header("stripe-version").as_deref(), Some(stripe_sandbox::state::API_VERSION), "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn stats_count_list_and_retrieve_requests_per_endpoint_template_and_reset_on_delete() {
    let s = Sandbox::start().await;
    let a = s.test_account(40, big_profile()).await;
    let b = s.test_account(41, big_profile()).await;
    let stats = |acct: String| {
        let s = &s;
        async move {
            let r = s.control(Method::GET, &format!("/_sandbox/accounts/{acct}/stats"), None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json()
        }
    };
    let before = stats(a.clone()).await;
    assert_eq!(before["total"], 0, "{before}");
    let customers = s.get_ok("/v1/customers?limit=3", &a).await;
    s.get_ok("/v1/customers?limit=3", &a).await;
    s.get_ok(&format!("/v1/customers?limit=3&starting_after={}", id(&customers["data"][2])), &a).await;
    for c in customers["data"].as_array().expect("data").iter().take(2) {
        s.get_ok(&format!("/v1/customers/{}", id(c)), &a).await;
    }
    s.get("/v1/customers/cus_missing", &a).await;
    s.get_ok("/v1/charges", &a).await;
    s.get_ok("/v1/balance", &a).await;
    s.get_ok("/v1/balance/history", &a).await;
    s.get_ok("/v1/customers", &b).await;
    let mut st = stats(a.clone()).await;
    let hosts = st.as_object_mut().expect("stats").remove("hosts").expect("hosts");
    assert_eq!(hosts.as_object().map(|h| h.values().cloned().collect::<Vec<_>>()), Some(vec![json!(9)]), "one Host: {hosts}");
    // Every request reached the rate limiter (none was refused), per 100 ms since the first.
    let timeline = st.as_object_mut().expect("stats").remove("timeline").expect("timeline");
    let slots: Vec<u64> = timeline.as_array().expect("slots").iter().map(|v| v.as_u64().expect("count")).collect();
    assert_eq!(slots.iter().sum::<u64>(), 9, "{timeline}");
    let in_a_second = st.as_object_mut().expect("stats").remove("max_per_second").expect("max").as_u64().expect("count");
    assert!((1..=9).contains(&in_a_second), "{in_a_second}");
    assert_eq!(st.as_object_mut().expect("stats").remove("timeline_ms"), Some(json!(100)));
    assert_eq!(st.as_object_mut().expect("stats").remove("rate_limited"), Some(json!(0)));
    assert_eq!(
        st,
        json!({"total": 9, "requests": {
            "GET /v1/customers": 3,
            "GET /v1/customers/{id}": 3,
            "GET /v1/charges": 1,
            "GET /v1/balance": 1,
            "GET /v1/balance/history": 1
        }})
    );
    assert_eq!(stats(b.clone()).await["requests"], json!({"GET /v1/customers": 1}));
    let r = s.control(Method::DELETE, &format!("/_sandbox/accounts/{a}/stats"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        stats(a.clone()).await,
        json!({"total": 0, "requests": {}, "hosts": {}, "timeline_ms": 100, "timeline": [], "max_per_second": 0, "rate_limited": 0})
    );
    assert_eq!(stats(b.clone()).await["total"], 1, "resetting one account's stats reset another's");
    // Faulted and rate-limited requests count too.
    s.control(Method::PUT, "/_sandbox/faults", Some(json!({"endpoints": {"GET /v1/payouts": {"p500": 1.0}}}))).await;
    assert_eq!(s.get("/v1/payouts", &a).await.status, 500);
    s.control(Method::DELETE, "/_sandbox/faults", None).await;
    s.control(Method::PUT, "/_sandbox/rate_limits", Some(json!({"test": 1}))).await;
    let statuses = [s.get("/v1/refunds", &a).await.status, s.get("/v1/refunds", &a).await.status];
    assert_eq!(statuses, [200, 429]);
    let st = stats(a.clone()).await;
    assert_eq!((&st["total"], &st["requests"]), (&json!(3), &json!({"GET /v1/payouts": 1, "GET /v1/refunds": 2})));
    // The limiter's refusal is counted apart from injected faults (which never reach it).
    assert_eq!((&st["rate_limited"], &st["max_per_second"]), (&json!(1), &json!(2)), "{st}");
    let r = s.control(Method::GET, "/_sandbox/accounts/acct_nope/stats", None).await;
    assert_stripe_error(&r, 404, "invalid_request_error", Some("resource_missing"), None);
    s.stop().await;
}

#[tokio::test]
async fn a_rolled_platform_key_is_refused_at_once_and_the_new_one_reads() {
    let s = Sandbox::start().await;
    let a = s.test_account(35, big_profile()).await;
    assert_eq!(s.get_as("/v1/customers", Some(TEST_KEY), Some(&a)).await.status, 200);
    let r = s.control(Method::PUT, "/_sandbox/keys", Some(json!({"test": "sk_test_rolled"}))).await;
    assert_eq!(r.status, 200);
    let old = s.get_as("/v1/customers", Some(TEST_KEY), Some(&a)).await;
    assert_stripe_error(&old, 401, "invalid_request_error", Some("api_key_invalid"), None);
    assert_eq!(s.get_as("/v1/customers", Some("sk_test_rolled"), Some(&a)).await.status, 200);
    assert_ne!(s.get_as("/v1/account", Some(LIVE_KEY), None).await.status, 401, "the other mode's key is untouched");
    let wrong_mode = s.control(Method::PUT, "/_sandbox/keys", Some(json!({"live": "sk_test_x"}))).await;
    assert_eq!(wrong_mode.status, 400);
    s.stop().await;
}
