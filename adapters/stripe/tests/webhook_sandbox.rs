//! End to end: the sandbox signs the Connect webhook it sends on deauthorization, and the adapter
//! verifies and parses it.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tributary_domain::ports::oauth::OAuthProvider;
use tributary_stripe::webhook::{self, WebhookError};

#[tokio::test]
async fn sandbox_deauthorization_webhooks_verify_and_parse() {
    let sb = sandbox().await;
    let receiver = Scripted::start(vec![Canned::json(200, json!({"received": true}))]).await;
    let r: Value = reqwest::Client::new()
        .post(format!("{}/_sandbox/webhook_endpoints", sb.url()))
        .json(&json!({"url": format!("{}/webhooks/stripe", receiver.url)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = r["secret"].as_str().expect("secret").to_owned();

    let oauth = provider(&sb.url());
    let code = approve(&sb, TEST_CLIENT, "read_only", None).await;
    let grant = oauth.exchange_code(&test_creds(), &code).await.unwrap();
    oauth.revoke(&test_creds(), &grant.account_id).await.unwrap();

    let mut deauthorized = None;
    for _ in 0..100 {
        let seen = receiver.seen.lock().unwrap().clone();
        for s in seen {
            let header = s
                .head
                .lines()
                .find_map(|l| {
                    l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(webhook::SIGNATURE_HEADER)).map(|(_, v)| v.trim().to_owned())
                })
                .expect("Stripe-Signature header");
            webhook::verify_now(&secret, &header, s.body.as_bytes()).expect("sandbox signature verifies");
            assert_eq!(webhook::verify_now("whsec_wrong", &header, s.body.as_bytes()), Err(WebhookError::NoMatchingSignature));
            let event = webhook::parse_event(s.body.as_bytes()).expect("event parses");
            if event.event_type == "account.application.deauthorized" {
                deauthorized = Some(event);
            }
        }
        if deauthorized.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event = deauthorized.expect("a deauthorization webhook arrived");
    assert_eq!(event.account.as_deref(), Some(grant.account_id.as_str()));
    assert!(!event.livemode);
    assert!(event.id.starts_with("evt_"));
    assert_eq!(event.data_object["object"], "application");
    assert_eq!(event.data_object["id"], TEST_CLIENT);
    sb.stop().await;
}
