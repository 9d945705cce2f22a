//! Connect webhooks received by a real HTTP endpoint in the test: every delivery's
//! `Stripe-Signature` is checked with an HMAC-SHA256 written here from `sha2` alone (not the
//! sandbox's signer, not the `hmac` crate), over the raw body, with a fresh timestamp.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use common::{Sandbox, TEST_CLIENT, TEST_KEY, assert_stripe_error, big_profile, id, param};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// HMAC-SHA256 (RFC 2104) over a 64-byte block.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().into()
}

fn unix_now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()).expect("time")
}

/// Checks a `Stripe-Signature` header against the raw body the way Stripe's libraries do: any
/// `v1` matching `hex(HMAC(secret, "{t}.{body}"))`, with `t` within 300 s. Returns `t`.
fn verify(secret: &str, header: &str, body: &[u8]) -> Result<i64, String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|e| format!("bad t {v}: {e}"))?),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => {}
        }
    }
    let t = t.ok_or("no t")?;
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = hex::encode(hmac_sha256(secret.as_bytes(), &signed));
    if !v1.contains(&expected) {
        return Err(format!("no v1 matches {expected} in {header}"));
    }
    if (unix_now() - t).abs() > 300 {
        return Err(format!("timestamp {t} is more than 300 s away"));
    }
    Ok(t)
}

#[test]
fn the_test_hmac_matches_rfc_4231_and_stripes_v1_scheme() {
    let hex = |k: &[u8], m: &[u8]| hex::encode(hmac_sha256(k, m));
    assert_eq!(hex(&[0x0b; 20], b"Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    assert_eq!(hex(b"Jefe", b"what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_eq!(
        hex(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First"),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    // printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
    assert_eq!(hex(b"whsec_test", b"1700000000.{}"), "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91");
    let t = unix_now();
    let header = format!("t={t},v1={}", hex(b"whsec_x", format!("{t}.{{\"a\":1}}").as_bytes()));
    assert_eq!(verify("whsec_x", &header, b"{\"a\":1}"), Ok(t));
    assert!(verify("whsec_y", &header, b"{\"a\":1}").is_err(), "a wrong secret verifies");
    assert!(verify("whsec_x", &header, b"{\"a\":2}").is_err(), "a tampered body verifies");
    let old = t - 301;
    let header = format!("t={old},v1={}", hex(b"whsec_x", format!("{old}.{{}}").as_bytes()));
    assert!(verify("whsec_x", &header, b"{}").is_err(), "a stale timestamp verifies");
}

/// One POST received.
#[derive(Debug)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Hook {
    tx: mpsc::UnboundedSender<Delivery>,
    refuse: Arc<AtomicUsize>,
}

async fn hook(State(h): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _ = h.tx.send(Delivery { headers, body });
    if h.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// A webhook receiver on a free port that refuses the first `refuse` deliveries with a 500.
async fn receiver(refuse: usize) -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app =
        axum::Router::new().route("/hooks", axum::routing::post(hook)).with_state(Hook { tx, refuse: Arc::new(AtomicUsize::new(refuse)) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(15), rx.recv()).await.expect("a delivery within 15 s").expect("receiver open")
}

/// Verifies a delivery with `secret` and returns its event.
fn checked(d: &Delivery, secret: &str) -> Value {
    let sig = d.headers.get("stripe-signature").and_then(|v| v.to_str().ok()).expect("Stripe-Signature");
    verify(secret, sig, &d.body).unwrap_or_else(|e| panic!("bad signature: {e}"));
    let ct = d.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{ct}");
    let e: Value = serde_json::from_slice(&d.body).expect("JSON event");
    assert_eq!(e["object"], "event", "{e}");
    assert!(id(&e).starts_with("evt_"), "{e}");
    e
}

async fn register(s: &Sandbox, url: &str) -> String {
    let r = s.control(Method::POST, "/_sandbox/webhook_endpoints", Some(json!({"url": url}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert!(v["id"].as_str().is_some_and(|i| i.starts_with("we_")), "{v}");
    let secret = v["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    secret
}

#[tokio::test]
async fn connecting_creating_a_customer_and_deauthorizing_deliver_correctly_signed_events() {
    let s = Sandbox::start().await;
    let (url, mut rx) = receiver(0).await;
    let secret = register(&s, &url).await;
    let acct = s.new_account(json!({"mode": "test", "seed": 81, "connected": false, "profile": big_profile()})).await;

    // Connect: account.application.authorized.
    let r = s
        .control(
            Method::POST,
            "/_sandbox/oauth/approve",
            Some(json!({"client_id": TEST_CLIENT, "redirect_uri": "http://127.0.0.1:9/cb", "account": acct})),
        )
        .await;
    let u = url::Url::parse(r.json()["redirect"].as_str().expect("redirect")).expect("url");
    let p: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    let code = param(&p, "code").expect("code").to_owned();
    let t = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let e = checked(&next(&mut rx).await, &secret);
    assert_eq!(e["type"], "account.application.authorized");
    assert_eq!(e["account"], acct.as_str());

    // A customer: customer.created, the same event the API lists.
    let r =
        s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers"), Some(json!({"email": "hook@example.com"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cus = r.json();
    let e = checked(&next(&mut rx).await, &secret);
    assert_eq!(e["type"], "customer.created");
    assert_eq!(e["account"], acct.as_str());
    assert_eq!(e["data"]["object"], cus);
    assert_eq!(e["livemode"], false);
    assert_eq!(s.get_ok(&format!("/v1/events/{}", id(&e)), &acct).await, e, "the delivered event differs from the retrieved one");

    // Deauthorize: account.application.deauthorized with the account at the top level.
    let r = s.post_form("/oauth/deauthorize", Some(TEST_KEY), &[("client_id", TEST_CLIENT), ("stripe_user_id", &acct)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = next(&mut rx).await;
    let e = checked(&d, &secret);
    assert_eq!(e["type"], "account.application.deauthorized");
    assert_eq!(e["account"], acct.as_str());
    assert_eq!(e["data"]["object"]["object"], "application");
    assert_eq!(e["data"]["object"]["id"], TEST_CLIENT);
    assert_eq!(e["data"]["object"]["name"], "Sandbox Platform");
    // Signed over the raw body: re-serialising would not do.
    let sig = d.headers.get("stripe-signature").and_then(|v| v.to_str().ok()).expect("signature");
    let mut changed = d.body.to_vec();
    changed.push(b' ');
    assert!(verify(&secret, sig, &changed).is_err());
    assert!(verify("whsec_other", sig, &d.body).is_err());

    let r = s.get("/v1/events", &acct).await;
    assert_stripe_error(&r, 403, "invalid_request_error", Some("account_invalid"), None);
    assert!(tokio::time::timeout(Duration::from_millis(500), rx.recv()).await.is_err(), "an unexpected extra delivery");
    s.stop().await;
}

#[tokio::test]
async fn a_refused_delivery_is_retried_and_the_retry_is_signed_too() {
    let s = Sandbox::start().await;
    let (url, mut rx) = receiver(2).await;
    let secret = register(&s, &url).await;
    let acct = s.test_account(82, big_profile()).await;
    let r = s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/products"), Some(json!({"name": "Retry"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = next(&mut rx).await;
        let e = checked(&d, &secret);
        assert_eq!(e["type"], "product.created");
        seen.push(id(&e).to_owned());
    }
    assert!(seen.iter().all(|x| *x == seen[0]), "the retries carried different events: {seen:?}");
    assert!(tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await.is_err(), "retried after a success");
    s.stop().await;
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_is_attempted_four_times_then_dropped() {
    let s = Sandbox::start().await;
    let (url, mut rx) = receiver(usize::MAX).await;
    let secret = register(&s, &url).await;
    let acct = s.test_account(84, big_profile()).await;
    let r = s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers"), Some(json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..4 {
        let e = checked(&next(&mut rx).await, &secret);
        assert_eq!(e["type"], "customer.created");
    }
    assert!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.is_err(), "a fifth attempt");
    s.stop().await;
}

#[tokio::test]
async fn every_registered_endpoint_receives_each_event_and_bad_urls_are_refused() {
    let s = Sandbox::start().await;
    let (u1, mut rx1) = receiver(0).await;
    let (u2, mut rx2) = receiver(0).await;
    let s1 = register(&s, &u1).await;
    let s2 = register(&s, &u2).await;
    let acct = s.test_account(83, big_profile()).await;
    let cus = id(&s.get_ok("/v1/customers?limit=1", &acct).await["data"][0]).to_owned();
    let r = s.control(Method::POST, &format!("/_sandbox/accounts/{acct}/objects/customers/{cus}"), Some(json!({"name": "Renamed"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e1 = checked(&next(&mut rx1).await, &s1);
    let e2 = checked(&next(&mut rx2).await, &s2);
    assert_eq!(e1, e2);
    assert_eq!(e1["type"], "customer.updated");
    assert!(e1["data"]["previous_attributes"]["name"].is_string(), "{e1}");
    for bad in ["not a url", "ftp://127.0.0.1/x"] {
        let r = s.control(Method::POST, "/_sandbox/webhook_endpoints", Some(json!({"url": bad}))).await;
        assert_stripe_error(&r, 400, "invalid_request_error", None, None);
    }
    s.stop().await;
}
