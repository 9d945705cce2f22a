//! Webhook signature verification and event parsing. Payloads are signed here with the `hmac`
//! crate directly, independently of the code under test.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tributary_stripe::webhook::{self, DEFAULT_TOLERANCE_SECS, WebhookError, parse_event, verify};

const SECRET: &str = "whsec_sandbox_connect";
const NOW: i64 = 1_760_000_000;

fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn body() -> Vec<u8> {
    json!({"id": "evt_1", "object": "event", "type": "account.application.deauthorized", "account": "acct_42", "livemode": false,
           "created": NOW, "api_version": "2026-10-28.endive",
           "data": {"object": {"id": "ca_sandbox_test", "object": "application", "name": "Sandbox Platform"}}})
    .to_string()
    .into_bytes()
}

#[test]
fn a_valid_signature_verifies() {
    let b = body();
    let header = format!("t={NOW},v1={}", sign(SECRET, NOW, &b));
    assert_eq!(verify(SECRET, &header, &b, NOW, DEFAULT_TOLERANCE_SECS), Ok(()));
    // Within tolerance both ways, and with spaces and a v0.
    let header = format!("t={NOW}, v1={} ,v0=deadbeef", sign(SECRET, NOW, &b));
    assert_eq!(verify(SECRET, &header, &b, NOW + 300, 300), Ok(()));
    assert_eq!(verify(SECRET, &header, &b, NOW - 300, 300), Ok(()));
    // The helper produces the same header Stripe would.
    assert_eq!(webhook::signature_header(SECRET, NOW, &b), format!("t={NOW},v1={}", sign(SECRET, NOW, &b)));
}

#[test]
fn a_tampered_body_is_refused() {
    let b = body();
    let header = format!("t={NOW},v1={}", sign(SECRET, NOW, &b));
    let mut tampered = b.clone();
    let i = tampered.iter().position(|c| *c == b'4').unwrap();
    tampered[i] = b'5';
    assert_eq!(verify(SECRET, &header, &tampered, NOW, 300), Err(WebhookError::NoMatchingSignature));
    // Re-serialised JSON (same meaning, different bytes) is refused too: the raw body is signed.
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    assert_eq!(verify(SECRET, &header, &pretty, NOW, 300), Err(WebhookError::NoMatchingSignature));
}

#[test]
fn a_wrong_secret_is_refused() {
    let b = body();
    let header = format!("t={NOW},v1={}", sign("whsec_other", NOW, &b));
    assert_eq!(verify(SECRET, &header, &b, NOW, 300), Err(WebhookError::NoMatchingSignature));
}

#[test]
fn a_stale_timestamp_is_refused() {
    let b = body();
    let t = NOW - 301;
    let header = format!("t={t},v1={}", sign(SECRET, t, &b));
    assert_eq!(verify(SECRET, &header, &b, NOW, 300), Err(WebhookError::TooOld { timestamp: t, now: NOW, tolerance_secs: 300 }));
    // Changing t without re-signing is a signature mismatch, not a fresh delivery.
    let replayed = format!("t={NOW},v1={}", sign(SECRET, t, &b));
    assert_eq!(verify(SECRET, &replayed, &b, NOW, 300), Err(WebhookError::NoMatchingSignature));
}

#[test]
fn a_future_timestamp_is_refused() {
    let b = body();
    let t = NOW + 301;
    let header = format!("t={t},v1={}", sign(SECRET, t, &b));
    assert_eq!(verify(SECRET, &header, &b, NOW, 300), Err(WebhookError::TooNew { timestamp: t, now: NOW, tolerance_secs: 300 }));
}

#[test]
fn any_matching_v1_among_several_is_enough() {
    let b = body();
    let good = sign(SECRET, NOW, &b);
    let old = sign("whsec_previous", NOW, &b);
    for header in [format!("t={NOW},v1={old},v1={good}"), format!("t={NOW},v1={good},v1={old}"), format!("t={NOW},v1=nothex,v1={good}")] {
        assert_eq!(verify(SECRET, &header, &b, NOW, 300), Ok(()), "{header}");
    }
    let header = format!("t={NOW},v1={old},v1={}", sign("whsec_third", NOW, &b));
    assert_eq!(verify(SECRET, &header, &b, NOW, 300), Err(WebhookError::NoMatchingSignature));
    // A matching v0 does not count.
    let header = format!("t={NOW},v0={good}");
    assert_eq!(verify(SECRET, &header, &b, NOW, 300), Err(WebhookError::NoMatchingSignature));
    // Uppercase hex is not Stripe's lowercase, but decodes to the same bytes; it is accepted.
    let header = format!("t={NOW},v1={}", good.to_uppercase());
    assert_eq!(verify(SECRET, &header, &b, NOW, 300), Ok(()));
}

#[test]
fn missing_and_malformed_headers_are_refused() {
    let b = body();
    assert_eq!(verify(SECRET, "", &b, NOW, 300), Err(WebhookError::MissingHeader));
    assert_eq!(verify(SECRET, "   ", &b, NOW, 300), Err(WebhookError::MissingHeader));
    let sig = sign(SECRET, NOW, &b);
    for bad in [
        format!("v1={sig}"),
        format!("t=abc,v1={sig}"),
        format!("t={NOW};v1={sig}"),
        "garbage".to_owned(),
        format!("t={NOW},t={NOW},v1={sig}"),
    ] {
        assert!(matches!(verify(SECRET, &bad, &b, NOW, 300), Err(WebhookError::Malformed(_))), "{bad}");
    }
}

#[test]
fn events_parse_into_their_parts() {
    let e = parse_event(&body()).expect("event");
    assert_eq!(e.id, "evt_1");
    assert_eq!(e.event_type, "account.application.deauthorized");
    assert_eq!(e.account.as_deref(), Some("acct_42"));
    assert!(!e.livemode);
    assert_eq!(e.created, NOW);
    assert_eq!(e.data_object["object"], "application");
    assert_eq!(e.data_object["id"], "ca_sandbox_test");

    let platform = json!({"id": "evt_2", "object": "event", "type": "charge.succeeded", "livemode": true, "created": 1,
                          "data": {"object": {"id": "ch_1", "amount": 100}}});
    let e = parse_event(platform.to_string().as_bytes()).unwrap();
    assert_eq!(e.account, None);
    assert!(e.livemode);

    for bad in [
        b"not json".to_vec(),
        json!({"id": "evt_3"}).to_string().into_bytes(),
        json!({"id": "ch_1", "object": "charge", "type": "x", "livemode": false, "created": 1, "data": {"object": {}}})
            .to_string()
            .into_bytes(),
    ] {
        assert!(matches!(parse_event(&bad), Err(WebhookError::InvalidEvent(_))));
    }

    let b = body();
    let header = format!("t={NOW},v1={}", sign(SECRET, NOW, &b));
    assert_eq!(webhook::construct_event(SECRET, &header, &b, NOW, 300).unwrap().id, "evt_1");
}
