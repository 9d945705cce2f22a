//! Retry policy and answer classification of `StripeConnectOAuth`, against a scripted HTTP server
//! that counts requests: 5xx and broken answers are retried twice, 4xx never; what is sent.

mod common;

use common::*;
use secrecy::ExposeSecret;
use serde_json::json;
use tributary_domain::ports::oauth::{OAuthError, OAuthProvider};

fn token_ok() -> Canned {
    Canned::json(
        200,
        json!({"access_token": "sk_test_issued", "refresh_token": "rt_issued", "token_type": "bearer", "stripe_user_id": "acct_123",
               "stripe_publishable_key": "pk_test_x", "livemode": false, "scope": "read_only"}),
    )
}

#[tokio::test]
async fn sends_a_form_with_the_platform_key_as_bearer() {
    let server = Scripted::start(vec![token_ok()]).await;
    let grant = provider(&server.url).exchange_code(&test_creds(), "ac_abc/+=").await.expect("exchange");
    assert_eq!(grant.account_id, "acct_123");
    assert_eq!(grant.access_token.expose_secret(), "sk_test_issued");
    assert_eq!(grant.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()).as_deref(), Some("rt_issued"));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let head = seen[0].head.to_ascii_lowercase();
    assert!(head.starts_with("post /oauth/token http/1.1"), "{head}");
    assert!(head.contains("authorization: bearer sk_test_sandbox_platform"), "{head}");
    assert!(head.contains("content-type: application/x-www-form-urlencoded"), "{head}");
    assert_eq!(seen[0].body, "grant_type=authorization_code&code=ac_abc%2F%2B%3D");
}

#[tokio::test]
async fn refresh_and_deauthorize_forms() {
    let server = Scripted::start(vec![token_ok(), Canned::json(200, json!({"stripe_user_id": "acct_123"}))]).await;
    let oauth = provider(&server.url);
    let grant = oauth.exchange_code(&test_creds(), "ac_1").await.unwrap();
    let server2 =
        Scripted::start(vec![Canned::json(200, json!({"access_token": "sk_test_2", "stripe_user_id": "acct_123", "livemode": false}))])
            .await;
    let fresh = provider(&server2.url).refresh(&test_creds(), &grant).await.unwrap();
    // Fields Stripe leaves out fall back to the old grant.
    assert_eq!(fresh.refresh_token.as_ref().unwrap().expose_secret(), "rt_issued");
    assert_eq!(fresh.scope, grant.scope);
    assert_eq!(server2.seen.lock().unwrap()[0].body, "grant_type=refresh_token&refresh_token=rt_issued");

    oauth.revoke(&test_creds(), "acct_123").await.expect("revoke");
    let seen = server.seen.lock().unwrap().clone();
    assert!(seen[1].head.starts_with("POST /oauth/deauthorize "), "{}", seen[1].head);
    assert_eq!(seen[1].body, "client_id=ca_sandbox_test&stripe_user_id=acct_123");
}

#[tokio::test]
async fn persistent_5xx_is_retried_twice_then_unavailable() {
    let server = Scripted::start(vec![Canned::json(500, json!({"error": {"type": "api_error", "message": "boom"}}))]).await;
    let err = provider(&server.url).exchange_code(&test_creds(), "ac_1").await.unwrap_err();
    assert!(matches!(err, OAuthError::Unavailable(_)), "{err:?}");
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn a_5xx_then_success_recovers() {
    let server = Scripted::start(vec![Canned::json(503, json!({})), Canned::json(502, json!({})), token_ok()]).await;
    let grant = provider(&server.url).exchange_code(&test_creds(), "ac_1").await.expect("recovered");
    assert_eq!(grant.account_id, "acct_123");
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn stripe_should_retry_false_stops_retries() {
    let mut no = Canned::json(500, json!({"error": {"type": "api_error"}}));
    no.headers.push("Stripe-Should-Retry: false".into());
    let server = Scripted::start(vec![no]).await;
    assert!(matches!(provider(&server.url).exchange_code(&test_creds(), "ac_1").await, Err(OAuthError::Unavailable(_))));
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn client_errors_are_mapped_and_never_retried() {
    let cases = [
        (400, "invalid_grant", "reauthorize"),
        (401, "invalid_client", "invalid_client"),
        (400, "invalid_request", "invalid_request"),
        (400, "invalid_scope", "invalid_request"),
        (400, "unsupported_grant_type", "invalid_request"),
    ];
    for (status, code, expected) in cases {
        let server =
            Scripted::start(vec![Canned::json(status, json!({"error": code, "error_description": "Nope: rt_secret123 sk_live_abc"}))])
                .await;
        let err = provider(&server.url).exchange_code(&test_creds(), "ac_1").await.unwrap_err();
        let (kind, m) = match &err {
            OAuthError::Reauthorize(m) => ("reauthorize", m),
            OAuthError::InvalidClient(m) => ("invalid_client", m),
            OAuthError::InvalidRequest(m) => ("invalid_request", m),
            OAuthError::Unavailable(m) => ("unavailable", m),
        };
        assert_eq!(kind, expected, "{code}: {err:?}");
        assert!(m.contains(code) && !m.contains("rt_secret123") && !m.contains("sk_live_abc"), "{m}");
        assert_eq!(server.count(), 1, "{code} was retried");
    }
}

#[tokio::test]
async fn rate_limits_are_unavailable_without_retry() {
    let server = Scripted::start(vec![Canned::json(
        429,
        json!({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow down"}}),
    )])
    .await;
    assert!(matches!(provider(&server.url).exchange_code(&test_creds(), "ac_1").await, Err(OAuthError::Unavailable(_))));
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn unparsable_answers_are_unavailable() {
    let html = Canned { status: 200, headers: vec![], body: "<html>proxy</html>".into() };
    let server = Scripted::start(vec![html]).await;
    assert!(matches!(provider(&server.url).exchange_code(&test_creds(), "ac_1").await, Err(OAuthError::Unavailable(_))));
    assert_eq!(server.count(), 1);

    let html400 = Canned { status: 400, headers: vec![], body: "<html>bad gateway-ish</html>".into() };
    let server = Scripted::start(vec![html400]).await;
    assert!(matches!(provider(&server.url).exchange_code(&test_creds(), "ac_1").await, Err(OAuthError::Unavailable(_))));

    let server =
        Scripted::start(vec![Canned::json(200, json!({"access_token": "sk_test_x", "stripe_user_id": "acct_1", "scope": "admin"}))]).await;
    match provider(&server.url).exchange_code(&test_creds(), "ac_1").await {
        Err(OAuthError::Unavailable(m)) => assert!(!m.contains("sk_test_x"), "{m}"),
        other => panic!("{other:?}"),
    }

    let server = Scripted::start(vec![Canned::json(200, json!({"unexpected": true}))]).await;
    assert!(matches!(provider(&server.url).revoke(&test_creds(), "acct_1").await, Err(OAuthError::Unavailable(_))));
}

#[tokio::test]
async fn revoke_maps_not_connected_to_ok_and_other_invalid_client_to_an_error() {
    let not_connected = json!({"error": "invalid_client",
        "error_description": "This application is not connected to stripe account acct_9, or that account does not exist."});
    let server = Scripted::start(vec![Canned::json(401, not_connected)]).await;
    provider(&server.url).revoke(&test_creds(), "acct_9").await.expect("already disconnected is Ok");
    assert_eq!(server.count(), 1);

    let server =
        Scripted::start(vec![Canned::json(401, json!({"error": "invalid_client", "error_description": "Invalid API key provided."}))])
            .await;
    assert!(matches!(provider(&server.url).revoke(&test_creds(), "acct_9").await, Err(OAuthError::InvalidClient(_))));

    let server = Scripted::start(vec![Canned::json(500, json!({}))]).await;
    assert!(matches!(provider(&server.url).revoke(&test_creds(), "acct_9").await, Err(OAuthError::Unavailable(_))));
    assert_eq!(server.count(), 3);
}
