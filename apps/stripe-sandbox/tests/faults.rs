//! Injected faults: 500s with `Stripe-Should-Retry`, 429s, dropped connections, truncated
//! bodies and latency, per endpoint, per endpoint template or for every endpoint (`*`), and
//! cleared with `DELETE /_sandbox/faults`.

mod common;

use common::{Sandbox, TEST_KEY, assert_stripe_error, big_profile, id};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn set_faults(s: &Sandbox, endpoints: Value) {
    let r = s.control(Method::PUT, "/_sandbox/faults", Some(json!({"endpoints": endpoints}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn clear(s: &Sandbox) {
    let r = s.control(Method::DELETE, "/_sandbox/faults", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Whether a request fails at the transport: no response, or a body that cannot be read in full.
async fn transport_fails(s: &Sandbox, path: &str, acct: &str) -> bool {
    match s.request(Method::GET, path, Some(TEST_KEY), Some(acct)).send().await {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    }
}

#[tokio::test]
async fn an_injected_500_carries_stripe_should_retry_and_other_endpoints_are_unaffected() {
    let s = Sandbox::start().await;
    let acct = s.test_account(101, big_profile()).await;
    let cus = id(&s.get_ok("/v1/customers?limit=1", &acct).await["data"][0]).to_owned();
    set_faults(&s, json!({"GET /v1/customers": {"p500": 1.0}})).await;
    for _ in 0..5 {
        let r = s.get("/v1/customers", &acct).await;
        assert_stripe_error(&r, 500, "api_error", None, None);
        assert_eq!(r.header("stripe-should-retry").as_deref(), Some("true"));
    }
    assert_eq!(s.get(&format!("/v1/customers/{cus}"), &acct).await.status, 200, "the retrieve endpoint was hit");
    assert_eq!(s.get("/v1/charges", &acct).await.status, 200);
    assert_eq!(s.get("/v1/account", &acct).await.status, 200);
    clear(&s).await;
    assert_eq!(s.get("/v1/customers", &acct).await.status, 200, "the fault outlived DELETE /_sandbox/faults");
    s.stop().await;
}

#[tokio::test]
async fn an_injected_429_is_a_stripe_rate_limit_error() {
    let s = Sandbox::start().await;
    let acct = s.test_account(102, big_profile()).await;
    set_faults(&s, json!({"GET /v1/customers": {"p429": 1.0}})).await;
    for _ in 0..5 {
        let r = s.get("/v1/customers", &acct).await;
        assert_stripe_error(&r, 429, "invalid_request_error", Some("rate_limit"), None);
        assert!(r.header("stripe-rate-limited-reason").is_some());
    }
    assert_eq!(s.get("/v1/charges", &acct).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn an_injected_drop_gives_the_client_a_connection_or_body_error() {
    let s = Sandbox::start().await;
    let acct = s.test_account(103, big_profile()).await;
    set_faults(&s, json!({"GET /v1/customers": {"p_drop": 1.0}})).await;
    for _ in 0..3 {
        assert!(transport_fails(&s, "/v1/customers", &acct).await, "a dropped request was answered in full");
    }
    assert_eq!(s.get("/v1/charges", &acct).await.status, 200, "the drop affected another endpoint");
    clear(&s).await;
    assert_eq!(s.get("/v1/customers", &acct).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn an_injected_truncation_gives_a_body_that_cannot_be_read_or_parsed() {
    let s = Sandbox::start().await;
    let acct = s.test_account(104, big_profile()).await;
    set_faults(&s, json!({"GET /v1/customers": {"p_truncate": 1.0}})).await;
    for _ in 0..3 {
        match s.request(Method::GET, "/v1/customers", Some(TEST_KEY), Some(&acct)).send().await {
            Err(_) => {}
            Ok(r) => match r.bytes().await {
                Err(_) => {}
                Ok(b) => assert!(serde_json::from_slice::<Value>(&b).is_err(), "a truncated body parsed: {}", String::from_utf8_lossy(&b)),
            },
        }
    }
    assert_eq!(s.get("/v1/charges", &acct).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn injected_latency_delays_the_response_by_at_least_the_given_time() {
    let s = Sandbox::start().await;
    let acct = s.test_account(105, big_profile()).await;
    set_faults(&s, json!({"GET /v1/customers": {"latency_ms": 300}})).await;
    let started = Instant::now();
    let r = s.get("/v1/customers", &acct).await;
    assert_eq!(r.status, 200, "latency alone must not fail the request: {}", r.text);
    assert!(started.elapsed() >= Duration::from_millis(300), "answered in {:?}", started.elapsed());
    s.stop().await;
}

#[tokio::test]
async fn a_star_fault_applies_to_every_stripe_endpoint_but_not_the_control_api_and_specific_entries_win() {
    let s = Sandbox::start().await;
    let acct = s.test_account(106, big_profile()).await;
    let cus = id(&s.get_ok("/v1/customers?limit=1", &acct).await["data"][0]).to_owned();
    set_faults(&s, json!({"*": {"p500": 1.0}})).await;
    for path in [
        "/v1/customers".to_owned(),
        format!("/v1/customers/{cus}"),
        "/v1/charges".into(),
        "/v1/balance".into(),
        "/v1/account".into(),
        "/v1/events".into(),
    ] {
        let r = s.get(&path, &acct).await;
        assert_eq!(r.status, 500, "{path}: {}", r.text);
        assert_eq!(r.header("stripe-should-retry").as_deref(), Some("true"), "{path}");
    }
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token"), ("refresh_token", "rt_x")]).await;
    assert_eq!(r.status, 500, "/oauth/token: {}", r.text);
    assert_eq!(s.control(Method::GET, &format!("/_sandbox/accounts/{acct}/summary"), None).await.status, 200);

    // An exact endpoint entry wins over `*`, and an endpoint template entry too.
    set_faults(&s, json!({"*": {"p500": 1.0}, "GET /v1/customers": {}, "GET /v1/customers/{id}": {"p429": 1.0}})).await;
    assert_eq!(s.get("/v1/customers", &acct).await.status, 200);
    assert_eq!(s.get(&format!("/v1/customers/{cus}"), &acct).await.status, 429);
    assert_eq!(s.get("/v1/charges", &acct).await.status, 500);

    clear(&s).await;
    for path in ["/v1/customers".to_owned(), format!("/v1/customers/{cus}"), "/v1/charges".into()] {
        assert_eq!(s.get(&path, &acct).await.status, 200, "{path} after clearing");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_template_fault_hits_retrieves_but_not_the_list() {
    let s = Sandbox::start().await;
    let acct = s.test_account(107, big_profile()).await;
    let page = s.get_ok("/v1/charges?limit=2", &acct).await;
    set_faults(&s, json!({"GET /v1/charges/{id}": {"p500": 1.0}})).await;
    for c in page["data"].as_array().expect("data") {
        assert_eq!(s.get(&format!("/v1/charges/{}", id(c)), &acct).await.status, 500);
    }
    assert_eq!(s.get("/v1/charges", &acct).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn invalid_fault_settings_are_refused() {
    let s = Sandbox::start().await;
    let r = s.control(Method::PUT, "/_sandbox/faults", Some(json!({"endpoints": {"*": {"p500": 1.5}}}))).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    let r = s.control(Method::PUT, "/_sandbox/faults", Some(json!({"endpoints": {"*": {"p500": -0.1}}}))).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    let r = s.control(Method::PUT, "/_sandbox/faults", Some(json!({"endpoints": {"*": {"p600": 1.0}}}))).await;
    assert!(r.status >= 400 && r.status < 500, "an unknown fault field was accepted: {}", r.text);
    s.stop().await;
}
