//! Connect OAuth over HTTP: the consent page and its form, the scripted approval, the token
//! exchange (authorization code and refresh token) with Stripe's OAuth errors, and deauthorize.

mod common;

use common::{
    LIVE_CLIENT, LIVE_KEY, Reply, Sandbox, TEST_CLIENT, TEST_KEY, assert_oauth_error, assert_stripe_error, location_params, param, read,
};
use reqwest::Method;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// Posts the consent form.
async fn decide(s: &Sandbox, fields: &[(&str, &str)]) -> Reply {
    read(s.http.post(s.url("/oauth/authorize")).form(fields).send().await.expect("consent form")).await
}

/// Asserts a redirect to `REDIRECT` and returns its query parameters.
fn redirect_params(r: &Reply) -> Vec<(String, String)> {
    assert!(matches!(r.status, 302 | 303 | 307), "expected a redirect, got {}: {}", r.status, r.text);
    let (base, params) = location_params(r);
    assert_eq!(base, REDIRECT, "redirected elsewhere");
    params
}

/// Gets a code for `account` through the control API.
async fn code_for(s: &Sandbox, client_id: &str, account: &str, scope: &str) -> String {
    let r = s
        .control(
            Method::POST,
            "/_sandbox/oauth/approve",
            Some(json!({"client_id": client_id, "redirect_uri": REDIRECT, "scope": scope, "state": "s1", "account": account})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let redirect = r.json()["redirect"].as_str().expect("redirect").to_owned();
    let u = url::Url::parse(&redirect).expect("redirect url");
    let params: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    assert_eq!(param(&params, "state"), Some("s1"));
    assert_eq!(param(&params, "scope"), Some(scope));
    param(&params, "code").expect("code").to_owned()
}

async fn exchange(s: &Sandbox, key: &str, code: &str) -> Reply {
    s.post_form("/oauth/token", Some(key), &[("grant_type", "authorization_code"), ("code", code)]).await
}

fn assert_token(r: &Reply, account: &str, scope: &str, live: bool) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.json();
    let mut keys: Vec<&String> = t.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["access_token", "livemode", "refresh_token", "scope", "stripe_publishable_key", "stripe_user_id", "token_type"],
        "{t}"
    );
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["stripe_user_id"], account);
    assert_eq!(t["scope"], scope);
    assert_eq!(t["livemode"], live);
    let (sk, pk) = if live { ("sk_live_", "pk_live_") } else { ("sk_test_", "pk_test_") };
    assert!(t["access_token"].as_str().is_some_and(|a| a.starts_with(sk) && a.len() > sk.len()), "{t}");
    assert!(t["stripe_publishable_key"].as_str().is_some_and(|a| a.starts_with(pk) && a.len() > pk.len()), "{t}");
    assert!(t["refresh_token"].as_str().is_some_and(|a| a.starts_with("rt_")), "{t}");
    t
}

#[tokio::test]
async fn the_consent_page_shows_the_platform_scope_and_authorize_and_deny_buttons() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 61, "connected": false})).await;
    let r = s
        .get_as(
            &format!("/oauth/authorize?response_type=code&client_id={TEST_CLIENT}&scope=read_only&redirect_uri={REDIRECT}&state=xyz"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", r.headers);
    let page = &r.text;
    for needle in [
        "Sandbox Platform",
        "read_only",
        "<form method=\"post\" action=\"/oauth/authorize\">",
        "value=\"authorize\"",
        ">Authorize</button>",
        "value=\"deny\"",
        ">Deny</button>",
        "name=\"state\" value=\"xyz\"",
        "name=\"client_id\" value=\"ca_sandbox_test\"",
        acct.as_str(),
    ] {
        assert!(page.contains(needle), "the consent page lacks {needle:?}:\n{page}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_consent_page_escapes_the_state_and_lists_only_accounts_of_the_clients_mode() {
    let s = Sandbox::start().await;
    let test = s.new_account(json!({"mode": "test", "seed": 72, "connected": false})).await;
    let live = s.new_account(json!({"mode": "live", "seed": 73, "connected": false})).await;
    let state = "\"><script>alert(1)</script>";
    let enc: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
    let r = s
        .get_as(&format!("/oauth/authorize?response_type=code&client_id={TEST_CLIENT}&redirect_uri={REDIRECT}&state={enc}"), None, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("<script>"), "the state is not escaped:\n{}", r.text);
    assert!(r.text.contains(&test) && !r.text.contains(&live), "{}", r.text);
    // The state comes back verbatim, however odd.
    let odd = "a b&c=d/é?";
    let r = decide(
        &s,
        &[("client_id", TEST_CLIENT), ("redirect_uri", REDIRECT), ("state", odd), ("account", &test), ("decision", "authorize")],
    )
    .await;
    assert_eq!(param(&redirect_params(&r), "state"), Some(odd));
    let r = decide(&s, &[("client_id", TEST_CLIENT), ("redirect_uri", REDIRECT), ("state", odd), ("decision", "deny")]).await;
    assert_eq!(param(&redirect_params(&r), "state"), Some(odd));
    s.stop().await;
}

#[tokio::test]
async fn an_expired_code_is_refused_with_invalid_grant() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 74, "connected": false})).await;
    let code = code_for(&s, TEST_CLIENT, &acct, "read_only").await;
    {
        let mut codes = s.running.sandbox.codes.lock().expect("codes");
        let c = codes.get_mut(&code).expect("issued code");
        c.expires = std::time::Instant::now().checked_sub(std::time::Duration::from_secs(1)).expect("instant");
    }
    assert_oauth_error(&exchange(&s, TEST_KEY, &code).await, 400, "invalid_grant");
    assert_eq!(s.get("/v1/account", &acct).await.status, 403);
    s.stop().await;
}

#[tokio::test]
async fn the_consent_page_refuses_a_bad_client_id_or_an_unregistered_redirect_uri_with_a_400_page() {
    let s = Sandbox::start().await;
    for q in [
        format!("response_type=code&client_id=ca_nope&scope=read_only&redirect_uri={REDIRECT}&state=xyz"),
        format!("response_type=code&client_id={TEST_CLIENT}&scope=read_only&redirect_uri=https://evil.example.com/cb&state=xyz"),
        format!("response_type=code&client_id={TEST_CLIENT}&scope=read_only&state=xyz"),
        // Loopback is allowed in test mode only.
        format!("response_type=code&client_id={LIVE_CLIENT}&scope=read_only&redirect_uri={REDIRECT}&state=xyz"),
    ] {
        let r = s.get_as(&format!("/oauth/authorize?{q}"), None, None).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert!(r.header("location").is_none(), "{q}: must not redirect");
        assert!(r.text.contains("<html"), "{q}: {}", r.text);
        let r = decide(&s, &[("client_id", "ca_nope"), ("redirect_uri", REDIRECT), ("decision", "authorize")]).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.header("location").is_none());
    }
    // Other problems go back to the redirect URI.
    let r = s
        .get_as(&format!("/oauth/authorize?response_type=token&client_id={TEST_CLIENT}&redirect_uri={REDIRECT}&state=q"), None, None)
        .await;
    let p = redirect_params(&r);
    assert_eq!((param(&p, "error"), param(&p, "state")), (Some("unsupported_response_type"), Some("q")));
    let r = s
        .get_as(
            &format!("/oauth/authorize?response_type=code&scope=admin&client_id={TEST_CLIENT}&redirect_uri={REDIRECT}&state=q"),
            None,
            None,
        )
        .await;
    let p = redirect_params(&r);
    assert_eq!((param(&p, "error"), param(&p, "state")), (Some("invalid_scope"), Some("q")));
    s.stop().await;
}

#[tokio::test]
async fn authorizing_on_the_consent_form_redirects_with_code_and_state_and_the_code_connects_the_account() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 62, "connected": false})).await;
    let r = s.get("/v1/account", &acct).await;
    assert_stripe_error(&r, 403, "invalid_request_error", Some("account_invalid"), None);
    let r = decide(
        &s,
        &[
            ("client_id", TEST_CLIENT),
            ("redirect_uri", REDIRECT),
            ("scope", "read_only"),
            ("state", "xyz"),
            ("account", acct.as_str()),
            ("decision", "authorize"),
        ],
    )
    .await;
    let p = redirect_params(&r);
    assert_eq!(param(&p, "state"), Some("xyz"));
    assert_eq!(param(&p, "scope"), Some("read_only"));
    let code = param(&p, "code").expect("code").to_owned();
    assert!(code.starts_with("ac_"), "{code}");
    assert!(param(&p, "error").is_none());
    let t = assert_token(&exchange(&s, TEST_KEY, &code).await, &acct, "read_only", false);
    assert_eq!(s.get_ok("/v1/account", &acct).await["id"], acct.as_str());
    assert_eq!(s.get_ok("/v1/customers", &acct).await["object"], "list");
    let evs = s.walk(&acct, "/v1/events", "", 10).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["type"], "account.application.authorized");
    assert_eq!(evs[0]["data"]["object"]["id"], TEST_CLIENT);
    assert_eq!(t["stripe_user_id"], acct.as_str());
    s.stop().await;
}

#[tokio::test]
async fn denying_on_the_consent_form_redirects_with_access_denied_and_state() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 63, "connected": false})).await;
    let r = decide(
        &s,
        &[
            ("client_id", TEST_CLIENT),
            ("redirect_uri", REDIRECT),
            ("scope", "read_write"),
            ("state", "xyz"),
            ("account", acct.as_str()),
            ("decision", "deny"),
        ],
    )
    .await;
    let p = redirect_params(&r);
    assert_eq!(param(&p, "error"), Some("access_denied"));
    assert!(param(&p, "error_description").is_some_and(|d| !d.is_empty()));
    assert_eq!(param(&p, "state"), Some("xyz"));
    assert!(param(&p, "code").is_none());
    let r = s.get("/v1/account", &acct).await;
    assert_eq!(r.status, 403, "a denied account became readable");
    s.stop().await;
}

#[tokio::test]
async fn the_scripted_approval_returns_a_redirect_whose_code_can_be_exchanged_once() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 64, "connected": false})).await;
    let code = code_for(&s, TEST_CLIENT, &acct, "read_write").await;
    assert_token(&exchange(&s, TEST_KEY, &code).await, &acct, "read_write", false);
    assert_eq!(s.get_ok("/v1/account", &acct).await["id"], acct.as_str());
    let r = exchange(&s, TEST_KEY, &code).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let r = exchange(&s, TEST_KEY, "ac_neverissued").await;
    assert_oauth_error(&r, 400, "invalid_grant");
    // Without an account, the approval creates a new one with generated data.
    let r = s.control(Method::POST, "/_sandbox/oauth/approve", Some(json!({"client_id": TEST_CLIENT, "redirect_uri": REDIRECT}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = url::Url::parse(r.json()["redirect"].as_str().expect("redirect")).expect("url");
    let p: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    let t = exchange(&s, TEST_KEY, param(&p, "code").expect("code")).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let new_acct = t.json()["stripe_user_id"].as_str().expect("account").to_owned();
    assert_ne!(new_acct, acct);
    assert_eq!(t.json()["scope"], "read_only", "the default scope");
    assert!(!s.get_ok("/v1/customers", &new_acct).await["data"].as_array().expect("data").is_empty());
    // A bad client id is refused.
    let r = s.control(Method::POST, "/_sandbox/oauth/approve", Some(json!({"client_id": "ca_nope", "redirect_uri": REDIRECT}))).await;
    assert_oauth_error(&r, 400, "invalid_request");
    s.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_accepts_the_key_as_client_secret() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 65, "connected": false})).await;
    let code = code_for(&s, TEST_CLIENT, &acct, "read_only").await;
    let r = s.post_form("/oauth/token", None, &[("grant_type", "authorization_code"), ("code", &code), ("client_secret", TEST_KEY)]).await;
    assert_token(&r, &acct, "read_only", false);
    s.stop().await;
}

#[tokio::test]
async fn token_errors_use_stripes_oauth_error_codes() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 66, "connected": false})).await;
    let code = code_for(&s, TEST_CLIENT, &acct, "read_only").await;
    // A test code with the live key.
    assert_oauth_error(&exchange(&s, LIVE_KEY, &code).await, 400, "invalid_grant");
    // Bad or missing key.
    assert_oauth_error(&exchange(&s, "sk_test_wrong", &code).await, 401, "invalid_client");
    let r = s.post_form("/oauth/token", None, &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = s.post_form("/oauth/token", None, &[("grant_type", "authorization_code"), ("code", &code), ("client_secret", "sk_nope")]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // Grant types and missing parameters.
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "password"), ("code", &code)]).await;
    assert_oauth_error(&r, 400, "unsupported_grant_type");
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "authorization_code")]).await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("code", &code)]).await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token")]).await;
    assert_oauth_error(&r, 400, "invalid_request");
    // None of that used the code up.
    assert_token(&exchange(&s, TEST_KEY, &code).await, &acct, "read_only", false);
    s.stop().await;
}

#[tokio::test]
async fn a_live_code_is_exchanged_with_the_live_key_only() {
    let s = Sandbox::start_with(stripe_sandbox::Config {
        redirect_uris: vec!["https://platform.example.com/cb".into()],
        test_rate: None,
        live_rate: None,
        ..stripe_sandbox::Config::default()
    })
    .await;
    let acct = s.new_account(json!({"mode": "live", "seed": 67, "connected": false})).await;
    let r = s
        .control(
            Method::POST,
            "/_sandbox/oauth/approve",
            Some(json!({"client_id": LIVE_CLIENT, "redirect_uri": "https://platform.example.com/cb", "scope": "read_write", "account": acct})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = url::Url::parse(r.json()["redirect"].as_str().expect("redirect")).expect("url");
    let p: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    let code = param(&p, "code").expect("code").to_owned();
    assert_oauth_error(&exchange(&s, TEST_KEY, &code).await, 400, "invalid_grant");
    assert_token(&exchange(&s, LIVE_KEY, &code).await, &acct, "read_write", true);
    assert_eq!(s.get_as("/v1/account", Some(LIVE_KEY), Some(&acct)).await.status, 200);
    // A test-mode account cannot be approved for the live client.
    let test_acct = s.new_account(json!({"mode": "test", "seed": 68, "connected": false})).await;
    let r = s
        .control(
            Method::POST,
            "/_sandbox/oauth/approve",
            Some(json!({"client_id": LIVE_CLIENT, "redirect_uri": "https://platform.example.com/cb", "account": test_acct})),
        )
        .await;
    assert_oauth_error(&r, 400, "invalid_request");
    s.stop().await;
}

#[tokio::test]
async fn refresh_tokens_mint_new_access_tokens_and_may_narrow_but_not_widen_the_scope() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 69, "connected": false})).await;
    let code = code_for(&s, TEST_CLIENT, &acct, "read_write").await;
    let first = assert_token(&exchange(&s, TEST_KEY, &code).await, &acct, "read_write", false);
    let rt = first["refresh_token"].as_str().expect("rt").to_owned();
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    let second = assert_token(&r, &acct, "read_write", false);
    assert_ne!(second["access_token"], first["access_token"]);
    let r = s
        .post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("scope", "read_only")])
        .await;
    let narrow = assert_token(&r, &acct, "read_only", false);
    let nrt = narrow["refresh_token"].as_str().expect("rt").to_owned();
    let r = s
        .post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token"), ("refresh_token", &nrt), ("scope", "read_write")])
        .await;
    assert_oauth_error(&r, 400, "invalid_scope");
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token"), ("refresh_token", "rt_nope")]).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let r = s.post_form("/oauth/token", Some(LIVE_KEY), &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    s.stop().await;
}

#[tokio::test]
async fn a_refresh_with_an_unknown_scope_is_refused_with_invalid_scope() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 70, "connected": false})).await;
    let code = code_for(&s, TEST_CLIENT, &acct, "read_write").await;
    let t = assert_token(&exchange(&s, TEST_KEY, &code).await, &acct, "read_write", false);
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let r =
        s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("scope", "admin")]).await;
    assert_oauth_error(&r, 400, "invalid_scope");
    s.stop().await;
}

#[tokio::test]
async fn deauthorize_disconnects_the_account_so_reads_refreshes_and_a_second_deauthorize_fail() {
    let s = Sandbox::start().await;
    let acct = s.new_account(json!({"mode": "test", "seed": 71, "connected": false})).await;
    let code = code_for(&s, TEST_CLIENT, &acct, "read_write").await;
    let t = assert_token(&exchange(&s, TEST_KEY, &code).await, &acct, "read_write", false);
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(s.get("/v1/customers", &acct).await.status, 200);

    // The wrong client id or key is refused and changes nothing.
    let r = s.post_form("/oauth/deauthorize", Some(TEST_KEY), &[("client_id", LIVE_CLIENT), ("stripe_user_id", &acct)]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = s.post_form("/oauth/deauthorize", Some("sk_test_wrong"), &[("client_id", TEST_CLIENT), ("stripe_user_id", &acct)]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = s.post_form("/oauth/deauthorize", Some(TEST_KEY), &[("client_id", TEST_CLIENT)]).await;
    assert_oauth_error(&r, 400, "invalid_request");
    assert_eq!(s.get("/v1/customers", &acct).await.status, 200);

    let r = s.post_form("/oauth/deauthorize", Some(TEST_KEY), &[("client_id", TEST_CLIENT), ("stripe_user_id", &acct)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"stripe_user_id": acct}));

    for path in ["/v1/account", "/v1/customers", "/v1/events"] {
        let r = s.get(path, &acct).await;
        assert_stripe_error(&r, 403, "invalid_request_error", Some("account_invalid"), None);
    }
    let r = s.post_form("/oauth/deauthorize", Some(TEST_KEY), &[("client_id", TEST_CLIENT), ("stripe_user_id", &acct)]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = s.post_form("/oauth/token", Some(TEST_KEY), &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let r = s.post_form("/oauth/deauthorize", Some(TEST_KEY), &[("client_id", TEST_CLIENT), ("stripe_user_id", "acct_nope")]).await;
    assert_oauth_error(&r, 401, "invalid_client");

    // The account can be connected again with a new code.
    let code = code_for(&s, TEST_CLIENT, &acct, "read_only").await;
    assert_token(&exchange(&s, TEST_KEY, &code).await, &acct, "read_only", false);
    assert_eq!(s.get("/v1/customers", &acct).await.status, 200);
    let listed = s.control(Method::GET, "/_sandbox/accounts", None).await.json();
    let row = listed["data"].as_array().expect("data").iter().find(|a| a["id"] == acct.as_str()).expect("listed").clone();
    assert_eq!(row, json!({"id": acct, "mode": "test", "connected": true, "scope": "read_only"}));
    s.stop().await;
}
