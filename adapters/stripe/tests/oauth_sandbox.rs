//! `StripeConnectOAuth` against the in-process Stripe sandbox: authorize URL, code exchange,
//! refresh, deauthorization, error mapping, unreachable hosts and injected faults.

mod common;

use common::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::time::{Duration, Instant};
use tributary_domain::model::integration::{Mode, Scope};
use tributary_domain::ports::oauth::{OAuthError, OAuthProvider};
use tributary_stripe::StripeConnectOAuth;

#[tokio::test]
async fn authorize_url_has_stripe_shape_and_opens_the_consent_page() {
    let sb = sandbox().await;
    let oauth = provider(&sb.url());
    let state = "a b&c=d/é+?";
    let redirect = "http://127.0.0.1:8080/cb?x=1&y=2";
    let raw = oauth.authorize_url(&test_creds(), state, redirect);
    assert!(
        raw.starts_with(&format!("{}/oauth/authorize?response_type=code&client_id=ca_sandbox_test&scope=read_only&state=", sb.url())),
        "{raw}"
    );
    assert!(!raw.contains("&c=d") && !raw.contains("&y=2") && !raw.contains(' '), "not encoded: {raw}");
    let u = url::Url::parse(&raw).unwrap();
    assert_eq!(u.path(), "/oauth/authorize");
    let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    let expected =
        [("response_type", "code"), ("client_id", TEST_CLIENT), ("scope", "read_only"), ("state", state), ("redirect_uri", redirect)];
    assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec());

    let rw = creds(Mode::Test, TEST_CLIENT, TEST_KEY, Scope::ReadWrite);
    let raw_rw = oauth.authorize_url(&rw, "s", redirect);
    assert!(raw_rw.contains("&scope=read_write&"), "{raw_rw}");

    // The sandbox accepts it: the consent page names the scope.
    let page = reqwest::get(&raw).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("read_only"), "{html}");
    sb.stop().await;
}

#[tokio::test]
async fn exchange_gives_a_test_mode_read_only_grant_and_a_code_works_once() {
    let sb = sandbox().await;
    let oauth = provider(&sb.url());
    let code = approve(&sb, TEST_CLIENT, "read_only", None).await;
    let grant = oauth.exchange_code(&test_creds(), &code).await.expect("exchange");
    assert!(grant.account_id.starts_with("acct_"), "{}", grant.account_id);
    assert!(!grant.livemode);
    assert_eq!(grant.scope, Scope::ReadOnly);
    assert!(grant.access_token.expose_secret().starts_with("sk_test_"));
    assert!(grant.refresh_token.as_ref().is_some_and(|r| r.expose_secret().starts_with("rt_")));
    assert!(is_connected(&sb, &grant.account_id).await);
    // Debug output never shows the tokens.
    let debug = format!("{grant:?}");
    assert!(!debug.contains(grant.access_token.expose_secret()), "{debug}");

    // Reusing the code: the merchant must link again, and the code is not echoed in the message.
    match oauth.exchange_code(&test_creds(), &code).await {
        Err(OAuthError::Reauthorize(m)) => assert!(!m.contains(&code), "code leaked: {m}"),
        other => panic!("expected Reauthorize, got {other:?}"),
    }
    sb.stop().await;
}

#[tokio::test]
async fn read_write_scope_and_an_existing_account() {
    let sb = sandbox().await;
    let account = create_account(&sb, "test", false).await;
    let code = approve(&sb, TEST_CLIENT, "read_write", Some(&account)).await;
    let grant = provider(&sb.url()).exchange_code(&test_creds(), &code).await.expect("exchange");
    assert_eq!(grant.account_id, account);
    assert_eq!(grant.scope, Scope::ReadWrite);
    sb.stop().await;
}

#[tokio::test]
async fn a_test_code_exchanged_with_live_credentials_needs_reauthorization() {
    let sb = sandbox().await;
    let code = approve(&sb, TEST_CLIENT, "read_only", None).await;
    let err = provider(&sb.url()).exchange_code(&live_creds(), &code).await.unwrap_err();
    assert!(matches!(err, OAuthError::Reauthorize(_)), "{err:?}");
    sb.stop().await;
}

#[tokio::test]
async fn unknown_code_needs_reauthorization() {
    let sb = sandbox().await;
    let err = provider(&sb.url()).exchange_code(&test_creds(), "ac_doesnotexist").await.unwrap_err();
    match err {
        OAuthError::Reauthorize(m) => assert!(!m.contains("ac_doesnotexist"), "{m}"),
        other => panic!("{other:?}"),
    }
    sb.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_key_is_an_invalid_client_and_is_not_echoed() {
    let sb = sandbox().await;
    let code = approve(&sb, TEST_CLIENT, "read_only", None).await;
    let bad = creds(Mode::Test, TEST_CLIENT, "sk_test_wrong_secret_123", Scope::ReadOnly);
    match provider(&sb.url()).exchange_code(&bad, &code).await {
        Err(OAuthError::InvalidClient(m)) => assert!(!m.contains("sk_test_wrong_secret_123"), "{m}"),
        other => panic!("expected InvalidClient, got {other:?}"),
    }
    // The code was not consumed by the refused call.
    assert!(provider(&sb.url()).exchange_code(&test_creds(), &code).await.is_ok());
    sb.stop().await;
}

#[tokio::test]
async fn refresh_issues_a_new_access_token_for_the_same_account() {
    let sb = sandbox().await;
    let oauth = provider(&sb.url());
    let code = approve(&sb, TEST_CLIENT, "read_only", None).await;
    let grant = oauth.exchange_code(&test_creds(), &code).await.unwrap();
    let fresh = oauth.refresh(&test_creds(), &grant).await.expect("refresh");
    assert_eq!(fresh.account_id, grant.account_id);
    assert!(!fresh.livemode);
    assert_eq!(fresh.scope, Scope::ReadOnly);
    assert_ne!(fresh.access_token.expose_secret(), grant.access_token.expose_secret());
    assert!(fresh.refresh_token.is_some());

    // An unknown refresh token: reauthorize, without echoing it.
    let mut bogus = grant.clone();
    bogus.refresh_token = Some(SecretString::from("rt_bogus_token_value".to_owned()));
    match oauth.refresh(&test_creds(), &bogus).await {
        Err(OAuthError::Reauthorize(m)) => assert!(!m.contains("rt_bogus_token_value"), "{m}"),
        other => panic!("{other:?}"),
    }
    // No refresh token at all: reauthorize, without a request.
    let mut none = grant.clone();
    none.refresh_token = None;
    assert!(matches!(oauth.refresh(&test_creds(), &none).await, Err(OAuthError::Reauthorize(_))));
    // A refresh token with the other mode's key.
    assert!(matches!(oauth.refresh(&live_creds(), &grant).await, Err(OAuthError::Reauthorize(_))));
    sb.stop().await;
}

#[tokio::test]
async fn revoke_disconnects_and_revoking_again_is_ok() {
    let sb = sandbox().await;
    let oauth = provider(&sb.url());
    let code = approve(&sb, TEST_CLIENT, "read_only", None).await;
    let grant = oauth.exchange_code(&test_creds(), &code).await.unwrap();
    assert!(is_connected(&sb, &grant.account_id).await);

    oauth.revoke(&test_creds(), &grant.account_id).await.expect("revoke");
    assert!(!is_connected(&sb, &grant.account_id).await);
    // Already disconnected.
    oauth.revoke(&test_creds(), &grant.account_id).await.expect("revoke again");
    // An account that does not exist is disconnected too.
    oauth.revoke(&test_creds(), "acct_doesnotexist").await.expect("revoke unknown");
    // Refreshing a revoked grant needs reauthorization.
    assert!(matches!(oauth.refresh(&test_creds(), &grant).await, Err(OAuthError::Reauthorize(_))));
    sb.stop().await;
}

#[tokio::test]
async fn revoke_with_bad_platform_credentials_is_an_invalid_client() {
    let sb = sandbox().await;
    let oauth = provider(&sb.url());
    let account = create_account(&sb, "test", true).await;
    // Client id of the other mode.
    let mismatched = creds(Mode::Test, LIVE_CLIENT, TEST_KEY, Scope::ReadOnly);
    assert!(matches!(oauth.revoke(&mismatched, &account).await, Err(OAuthError::InvalidClient(_))));
    // Unknown key.
    let bad_key = creds(Mode::Test, TEST_CLIENT, "sk_test_nope", Scope::ReadOnly);
    match oauth.revoke(&bad_key, &account).await {
        Err(OAuthError::InvalidClient(m)) => assert!(!m.contains("sk_test_nope"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(is_connected(&sb, &account).await);
    sb.stop().await;
}

#[tokio::test]
async fn an_unreachable_connect_base_is_unavailable() {
    let oauth = provider("http://127.0.0.1:9");
    let started = Instant::now();
    match oauth.exchange_code(&test_creds(), "ac_x").await {
        Err(OAuthError::Unavailable(m)) => assert!(m.contains("3 attempts") && !m.contains("ac_x"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(oauth.revoke(&test_creds(), "acct_1").await, Err(OAuthError::Unavailable(_))));
    let grant = tributary_domain::ports::oauth::Grant {
        account_id: "acct_1".into(),
        livemode: false,
        scope: Scope::ReadOnly,
        access_token: SecretString::from("sk_test_x".to_owned()),
        refresh_token: Some(SecretString::from("rt_x".to_owned())),
    };
    assert!(matches!(oauth.refresh(&test_creds(), &grant).await, Err(OAuthError::Unavailable(_))));
}

#[tokio::test]
async fn injected_500s_on_the_token_endpoint_are_unavailable_after_retries() {
    let sb = sandbox().await;
    let code = approve(&sb, TEST_CLIENT, "read_only", None).await;
    let http = reqwest::Client::new();
    let faults = json!({"endpoints": {"POST /oauth/token": {"p500": 1.0}}});
    let r = http.put(format!("{}/_sandbox/faults", sb.url())).json(&faults).send().await.unwrap();
    assert!(r.status().is_success());

    // The default policy (2 retries, 0.5 s then 1 s, with jitter).
    let oauth = StripeConnectOAuth::new(&sb.url()).unwrap();
    let started = Instant::now();
    match oauth.exchange_code(&test_creds(), &code).await {
        Err(OAuthError::Unavailable(m)) => assert!(m.contains("500") && m.contains("3 attempts") && !m.contains(&code), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(750), "{:?}", started.elapsed());

    // The faults stopped the calls before the code was used: it still works afterwards.
    http.delete(format!("{}/_sandbox/faults", sb.url())).send().await.unwrap();
    let grant = oauth.exchange_code(&test_creds(), &code).await.expect("exchange after faults");
    assert!(grant.account_id.starts_with("acct_"));
    sb.stop().await;
}

#[tokio::test]
async fn injected_faults_on_deauthorize_are_unavailable() {
    let sb = sandbox().await;
    let account = create_account(&sb, "test", true).await;
    let faults = json!({"endpoints": {"POST /oauth/deauthorize": {"p500": 1.0}}});
    reqwest::Client::new().put(format!("{}/_sandbox/faults", sb.url())).json(&faults).send().await.unwrap();
    assert!(matches!(provider(&sb.url()).revoke(&test_creds(), &account).await, Err(OAuthError::Unavailable(_))));
    assert!(is_connected(&sb, &account).await);
    sb.stop().await;
}
