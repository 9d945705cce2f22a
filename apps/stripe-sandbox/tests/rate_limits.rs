//! Per-account rate limits: a burst over the limit gets Stripe's 429 with
//! `Stripe-Rate-Limited-Reason`, other accounts and the other mode are unaffected, the bucket
//! refills within a second, and `null` turns the limit off.

mod common;

use common::{LIVE_KEY, Reply, Sandbox, TEST_KEY, assert_stripe_error, big_profile};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use stripe_sandbox::Config;

/// Sends `n` requests at once as `account` with `key`; returns the replies and how long it took.
async fn burst(s: &Sandbox, key: &str, account: &str, n: usize) -> (Vec<Reply>, Duration) {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let rb = s.request(Method::GET, "/v1/customers?limit=1", Some(key), Some(account));
        set.spawn(async move { common::read(rb.send().await.expect("request")).await });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.expect("task"));
    }
    (out, started.elapsed())
}

fn count(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

#[tokio::test]
async fn a_burst_over_the_limit_gets_429s_for_that_account_only_and_succeeds_again_after_a_second() {
    let s = Sandbox::start_with(Config::default()).await;
    let a = s.test_account(91, big_profile()).await;
    let b = s.test_account(92, big_profile()).await;
    let r = s.control(Method::PUT, "/_sandbox/rate_limits", Some(json!({"test": 5}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["test"], 5);

    let (replies, took) = burst(&s, TEST_KEY, &a, 20).await;
    let ok = count(&replies, 200);
    let limited = count(&replies, 429);
    assert_eq!(ok + limited, 20, "unexpected statuses: {:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    // A full bucket of 5, plus what refilled during the burst.
    let refill = (took.as_secs_f64() * 5.0).ceil() as usize;
    assert!(ok >= 5 && ok <= 5 + refill, "{ok} succeeded in {took:?}");
    assert!(limited > 0, "no request was limited");
    for r in replies.iter().filter(|r| r.status == 429) {
        assert_stripe_error(r, 429, "invalid_request_error", Some("rate_limit"), None);
        let reason = r.header("stripe-rate-limited-reason").expect("Stripe-Rate-Limited-Reason");
        assert!(
            ["global-rate", "endpoint-rate", "global-concurrency", "endpoint-concurrency", "resource-specific"].contains(&reason.as_str()),
            "{reason}"
        );
        assert!(r.header("request-id").is_some());
    }

    // Another account has its own bucket.
    let (replies, _) = burst(&s, TEST_KEY, &b, 5).await;
    assert_eq!(count(&replies, 200), 5, "account B was limited by account A's burst");
    // The control API is never limited.
    for _ in 0..10 {
        assert_eq!(s.control(Method::GET, &format!("/_sandbox/accounts/{a}/summary"), None).await.status, 200);
    }

    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..4 {
        let r = s.get("/v1/customers?limit=1", &a).await;
        assert_eq!(r.status, 200, "still limited after a second: {}", r.text);
    }

    let r = s.control(Method::PUT, "/_sandbox/rate_limits", Some(json!({"test": null}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["test"], serde_json::Value::Null);
    let (replies, _) = burst(&s, TEST_KEY, &a, 40).await;
    assert_eq!(count(&replies, 200), 40, "limited with the limit off");
    s.stop().await;
}

#[tokio::test]
async fn test_and_live_limits_are_separate() {
    let s = Sandbox::start_with(Config::default()).await;
    let test = s.test_account(93, big_profile()).await;
    let live = s.new_account(json!({"mode": "live", "seed": 94, "connected": true, "profile": big_profile()})).await;
    let r = s.control(Method::PUT, "/_sandbox/rate_limits", Some(json!({"test": null, "live": 2}))).await;
    assert_eq!(r.json(), json!({"test": null, "live": 2}));
    let (replies, _) = burst(&s, LIVE_KEY, &live, 12).await;
    assert!(count(&replies, 429) > 0, "the live limit did not apply");
    let (replies, _) = burst(&s, TEST_KEY, &test, 30).await;
    assert_eq!(count(&replies, 200), 30, "the live limit applied to test mode");
    let r = s.control(Method::PUT, "/_sandbox/rate_limits", Some(json!({"staging": 3}))).await;
    assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    s.stop().await;
}
