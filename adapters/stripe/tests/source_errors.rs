//! `StripeDataSource` against a scripted HTTP server: the request shape, which answers are retried,
//! and how what still fails maps to `SourceError` (including 403 permission errors, which the
//! sandbox cannot inject).

mod common;

use common::{Canned, Scripted, TEST_KEY, no_staged, start_cursor, test_creds};
use serde_json::{Value, json};
use std::time::Duration;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::Estimate;
use tributary_domain::ports::source::{CommerceDataSource, SourceError};
use tributary_stripe::StripeDataSource;

const ACCOUNT: &str = "acct_1Script";

fn source(url: &str) -> StripeDataSource {
    StripeDataSource::new(url).expect("source").with_rate(None).with_retries(2, Duration::from_millis(5))
}

fn list(data: Vec<Value>, has_more: bool) -> Canned {
    Canned::json(200, json!({"object": "list", "url": "/v1/x", "has_more": has_more, "data": data}))
}

fn customer(id: &str, created: i64) -> Value {
    json!({"id": id, "object": "customer", "created": created, "name": "Ada", "email": "ada@example.com"})
}

fn stripe_error(status: u16, code: Option<&str>, message: &str) -> Canned {
    let mut e = json!({"type": "invalid_request_error", "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
    }
    Canned::json(status, json!({"error": e}))
}

fn request_line(server: &Scripted, n: usize) -> String {
    server.seen.lock().unwrap()[n].head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_platform_key_the_account_and_the_pinned_version() {
    let server = Scripted::start(vec![list(vec![customer("cus_1", 1_767_225_600)], false)]).await;
    let page =
        source(&server.url).list_page(&test_creds(), ACCOUNT, DataType::Customers, start_cursor("customers"), no_staged()).await.unwrap();
    assert_eq!((page.records.len(), page.next_cursor, page.estimate), (1, None, Estimate { done: 1, left: 0 }));
    let head = server.seen.lock().unwrap()[0].head.to_ascii_lowercase();
    assert!(head.starts_with("get /v1/customers?limit=100 http/1.1"), "{head}");
    assert!(head.contains(&format!("authorization: bearer {}", TEST_KEY.to_ascii_lowercase())), "{head}");
    assert!(head.contains(&format!("stripe-account: {}", ACCOUNT.to_ascii_lowercase())), "{head}");
    assert!(head.contains("stripe-version: 2026-10-28.endive"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_one_endpoint_is_a_permission_error_and_is_not_retried() {
    let charge =
        json!({"id": "ch_1", "object": "charge", "amount": 100, "currency": "usd", "status": "succeeded", "captured": true, "created": 1});
    let denied = stripe_error(
        403,
        None,
        "The provided key 'rk_test_abc123' does not have the required permissions for this endpoint on account 'acct_1Script'.",
    );
    let server = Scripted::start(vec![list(vec![charge], false), denied]).await;
    let src = source(&server.url);
    let charges = src.list_page(&test_creds(), ACCOUNT, DataType::Payments, start_cursor("charges"), no_staged()).await.unwrap();
    assert_eq!(charges.records.len(), 1);
    assert_eq!(charges.next_cursor, None);
    match src.list_page(&test_creds(), ACCOUNT, DataType::Payments, start_cursor("refunds"), no_staged()).await {
        Err(SourceError::Permission(m)) => {
            assert!(m.contains("GET /v1/refunds") && m.contains("403"), "{m}");
            assert!(!m.contains("rk_test_abc123"), "key leaked: {m}");
        }
        other => panic!("expected Permission, got {other:?}"),
    }
    assert_eq!(server.count(), 2, "a 403 is not retried");
    assert!(request_line(&server, 1).starts_with("GET /v1/refunds?limit=100 "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_accounts_are_auth_errors_and_bad_platform_keys_platform_auth_errors() {
    let cases = [
        (stripe_error(403, Some("account_invalid"), "The provided key does not have access to account 'acct_1Script'."), "403", true),
        (stripe_error(401, Some("api_key_invalid"), "Invalid API Key provided: sk_test_****abcd"), "401", false),
        (stripe_error(401, Some("platform_api_key_expired"), "The platform's API key has expired."), "401", false),
        (stripe_error(401, None, "You did not provide an API key."), "401", false),
    ];
    for (answer, status, merchant) in cases {
        let server = Scripted::start(vec![answer]).await;
        match source(&server.url).list_page(&test_creds(), ACCOUNT, DataType::Disputes, start_cursor("disputes"), no_staged()).await {
            Err(SourceError::Auth(m)) if merchant => assert!(m.contains(status), "{m}"),
            Err(SourceError::PlatformAuth(m)) if !merchant => assert!(m.contains(status), "{m}"),
            other => panic!("{status}: got {other:?}"),
        }
        assert_eq!(server.count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_broken_bodies_are_retried_until_an_answer_comes() {
    let html = Canned { status: 200, headers: vec![], body: "<html>proxy error</html>".into() };
    let cut = Canned { status: 200, headers: vec![], body: r#"{"object":"list","data":[{"id":"cus_1""#.into() };
    let script = vec![Canned::json(500, json!({})), Canned::json(503, json!({})), html, cut, list(vec![customer("cus_1", 1)], false)];
    let server = Scripted::start(script).await;
    let src = StripeDataSource::new(&server.url).unwrap().with_rate(None).with_retries(4, Duration::from_millis(5));
    let page = src.list_page(&test_creds(), ACCOUNT, DataType::Customers, start_cursor("customers"), no_staged()).await.unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(server.count(), 5);
    let stats = src.stats();
    assert_eq!((stats.requests, stats.retries, stats.rate_limited), (5, 4, 0));

    // A conflict is retried too; any status is when Stripe says so, and none when it says not to.
    let retry_yes = Canned { status: 400, headers: vec!["Stripe-Should-Retry: true".into()], body: "{}".into() };
    let server = Scripted::start(vec![Canned::json(409, json!({})), retry_yes, list(vec![], false)]).await;
    source(&server.url).list_page(&test_creds(), ACCOUNT, DataType::Customers, start_cursor("customers"), no_staged()).await.unwrap();
    assert_eq!(server.count(), 3);
    let retry_no = Canned { status: 500, headers: vec!["Stripe-Should-Retry: false".into()], body: "{}".into() };
    let server = Scripted::start(vec![retry_no]).await;
    assert!(matches!(
        source(&server.url).list_page(&test_creds(), ACCOUNT, DataType::Customers, start_cursor("customers"), no_staged()).await,
        Err(SourceError::Fetch(_))
    ));
    assert_eq!(server.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_on_429_are_rate_limited() {
    let server = Scripted::start(vec![stripe_error(429, Some("rate_limit"), "Too many requests")]).await;
    let src = source(&server.url);
    match src.list_page(&test_creds(), ACCOUNT, DataType::Transactions, start_cursor("balance_transactions"), no_staged()).await {
        Err(SourceError::RateLimited { message, retry_after }) => {
            assert!(message.contains("3 attempts") && message.contains("/v1/balance_transactions"), "{message}");
            assert_eq!(retry_after, None);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(server.count(), 3);
    assert_eq!(src.stats().rate_limited, 3);
    // A Retry-After is passed on.
    let answer = Canned { status: 429, headers: vec!["Retry-After: 7".into()], body: "{}".into() };
    let server = Scripted::start(vec![answer]).await;
    let src = StripeDataSource::new(&server.url).unwrap().with_rate(None).with_retries(0, Duration::from_millis(1));
    match src.list_page(&test_creds(), ACCOUNT, DataType::Transactions, start_cursor("balance_transactions"), no_staged()).await {
        Err(SourceError::RateLimited { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_lists_and_unexpected_bodies_are_fetch_errors() {
    let cases: Vec<(Canned, usize)> = vec![
        (stripe_error(404, None, "Unrecognized request URL (GET: /v1/disputes)."), 1),
        (Canned::json(200, json!({"unexpected": true})), 1),
        (list(vec![json!({"object": "dispute", "amount": 1})], false), 1),
        (list(vec![json!({"id": "dp_1", "object": "dispute", "amount": 1, "currency": "not-a-currency"})], false), 1),
        (Canned { status: 200, headers: vec![], body: "not json".into() }, 3),
    ];
    for (answer, requests) in cases {
        let body = answer.body.clone();
        let server = Scripted::start(vec![answer]).await;
        match source(&server.url).list_page(&test_creds(), ACCOUNT, DataType::Disputes, start_cursor("disputes"), no_staged()).await {
            Err(SourceError::Fetch(m)) => assert!(!m.is_empty()),
            other => panic!("{body}: expected Fetch, got {other:?}"),
        }
        assert_eq!(server.count(), requests, "{body}");
    }
    // Nothing listening: connection errors are retried, then a fetch error.
    let src = source("http://127.0.0.1:1");
    match src.list_page(&test_creds(), ACCOUNT, DataType::Customers, start_cursor("customers"), no_staged()).await {
        Err(SourceError::Fetch(m)) => assert!(m.contains("3 attempts"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_whose_object_vanished_resumes_at_its_creation_time() {
    let gone = json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "starting_after",
        "message": "No such customer: 'cus_a'"}});
    let script = vec![
        list(vec![customer("cus_b", 1_767_225_700), customer("cus_a", 1_767_225_600)], true),
        Canned::json(400, gone),
        list(vec![customer("cus_0", 1_767_225_500)], false),
    ];
    let server = Scripted::start(script).await;
    let src = source(&server.url);
    // A partition of a range: the resumed request keeps the range's lower bound.
    let ranged = r#"{"v":2,"list":"customers","gte":1767000000}"#.to_owned();
    let first = src.list_page(&test_creds(), ACCOUNT, DataType::Customers, ranged, no_staged()).await.unwrap();
    assert_eq!(first.estimate, Estimate { done: 2, left: 100 }, "too few objects for a density: a page");
    assert!(request_line(&server, 0).contains("created%5Bgte%5D=1767000000"), "{}", request_line(&server, 0));
    let cursor = first.next_cursor.expect("more");
    let second = src.list_page(&test_creds(), ACCOUNT, DataType::Customers, cursor, no_staged()).await.unwrap();
    assert_eq!(second.records.len(), 1);
    assert_eq!(second.next_cursor, None);
    assert!(request_line(&server, 1).contains("starting_after=cus_a"), "{}", request_line(&server, 1));
    let retried = request_line(&server, 2);
    assert!(
        retried.contains("created%5Bgte%5D=1767000000")
            && retried.contains("created%5Blt%5D=1767225601")
            && !retried.contains("starting_after"),
        "{retried}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_ids_skips_missing_objects_and_maps_other_errors() {
    let missing = stripe_error(404, Some("resource_missing"), "No such charge: 'ch_x'");
    let server = Scripted::start(vec![missing]).await;
    let got = source(&server.url).fetch_by_ids(&test_creds(), ACCOUNT, DataType::Payments, vec!["ch_x".into(), "ch_x".into()]).await;
    assert_eq!(got.unwrap(), vec![]);
    assert_eq!(server.count(), 1, "ids are deduplicated");
    assert!(request_line(&server, 0).starts_with("GET /v1/charges/ch_x "));

    let server = Scripted::start(vec![stripe_error(403, None, "no permission")]).await;
    let got = source(&server.url).fetch_by_ids(&test_creds(), ACCOUNT, DataType::Payments, vec!["re_1".into()]).await;
    assert!(matches!(got, Err(SourceError::Permission(_))), "{got:?}");
    assert!(request_line(&server, 0).starts_with("GET /v1/refunds/re_1 "));

    let bt = json!({"id": "txn_1", "object": "balance_transaction", "amount": 1000, "fee": 59, "currency": "usd", "type": "charge", "source": "ch_1", "created": 1});
    let server = Scripted::start(vec![Canned::json(200, bt)]).await;
    let got = source(&server.url)
        .fetch_by_ids(&test_creds(), ACCOUNT, DataType::Transactions, vec!["txn_1:Stripe processing fees".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "only the fee record was asked for");
    assert!(request_line(&server, 0).starts_with("GET /v1/balance_transactions/txn_1 "));
}
