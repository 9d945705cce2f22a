//! The Stripe Connect link flow over HTTP against the in-process stripe-sandbox: start, consent,
//! callback (success, denial, refused and replayed), deauthorization webhooks, unlink, delete and
//! re-link.

mod common;

use common::{TestServer, assert_envelope};
use hmac::{Hmac, Mac};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use stripe_sandbox::{Config, Mode, Profile, Running};
use tributary_domain::service::IntegrationUpdate;

struct Env {
    api: TestServer,
    sandbox: Running,
    company: String,
    account: String,
    browser: reqwest::Client,
}

async fn env() -> Env {
    let sandbox = stripe_sandbox::start(Config {
        listen: "127.0.0.1:0".into(),
        test_rate: None,
        redirect_uris: vec!["https://example.com/cb".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let api = TestServer::start_with(&sandbox.url()).await;
    let cfg = Config::default();
    api.platform
        .integrations()
        .update(
            "yzth",
            IntegrationUpdate {
                client_id: Some(cfg.test_client_id.clone()),
                secret_key: Some(SecretString::from(cfg.test_secret_key.clone())),
                webhook_secret: Some(SecretString::from(cfg.webhook_secret.clone())),
                scope: None,
            },
        )
        .await
        .unwrap();
    api.platform.integrations().set_enabled("yzth", true).await.unwrap();
    let company = api.company("Merchant Ltd").await;
    let s = sandbox.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(3), false, &Profile::default())).await.unwrap();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Env { api, sandbox, company, account, browser }
}

impl Env {
    async fn connection(&self) -> Value {
        let (st, c) = self.api.post(&format!("/companies/{}/connections", self.company), json!({"platformKey": "yzth"})).await;
        assert_eq!(st, 200, "{c}");
        c
    }

    /// Follows `linkUrl` to the sandbox and approves (as the consent page's Authorize does).
    async fn authorize(&self, link_url: &str, account: &str) -> String {
        let res = self.browser.get(link_url).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 303, "start redirects to Stripe");
        let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(to.path(), "/oauth/authorize");
        let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "read_only");
        assert_eq!(q["redirect_uri"], format!("{}/oauth/stripe/callback", self.api.base));
        let approve: Value = self
            .browser
            .post(format!("{}/_sandbox/oauth/approve", self.sandbox.url()))
            .json(&json!({"client_id": q["client_id"], "redirect_uri": q["redirect_uri"], "scope": q["scope"], "state": q["state"], "account": account}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        approve["redirect"].as_str().unwrap().to_owned()
    }

    async fn callback(&self, url: &str) -> (u16, String, String) {
        let res = self.browser.get(url).send().await.unwrap();
        let status = res.status().as_u16();
        let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, location, res.text().await.unwrap())
    }

    async fn get_connection(&self, id: &str) -> Value {
        let (st, c) = self.api.get(&format!("/companies/{}/connections/{id}", self.company)).await;
        assert_eq!(st, 200);
        c
    }

    async fn sandbox_account_connected(&self) -> bool {
        self.sandbox.sandbox.account(&self.account).unwrap().read().unwrap().connected
    }
}

#[tokio::test]
async fn linking_through_stripe_links_the_connection_and_queues_first_pulls() {
    let e = env().await;
    let c = e.connection().await;
    let id = c["id"].as_str().unwrap();
    let redirect = e.authorize(c["linkUrl"].as_str().unwrap(), &e.account).await;
    let (status, location, _) = e.callback(&redirect).await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/link/{}/done?connectionId={id}&statusCode=200", e.company));
    let done = e.browser.get(format!("{}{location}", e.api.base)).send().await.unwrap().text().await.unwrap();
    assert!(done.contains("Connected"));
    let linked = e.get_connection(id).await;
    assert_eq!(linked["status"], "Linked");
    assert_eq!(linked["connectionInfo"]["stripeAccountId"], e.account.as_str());
    assert!(!linked.to_string().contains("sk_test_"), "no token is ever shown");
    assert!(e.sandbox_account_connected().await);
    let (st, history) = e.api.get(&format!("/companies/{}/data/history?pageSize=100", e.company)).await;
    assert_eq!(st, 200);
    let ops = history["results"].as_array().unwrap();
    assert_eq!(ops.len(), 11);
    // Queued at once; the server's sync worker may already have picked some up.
    assert_eq!(ops.iter().filter(|o| matches!(o["status"].as_str(), Some("Queued" | "Fetching" | "Complete"))).count(), 6);
    assert_eq!(ops.iter().filter(|o| o["status"] == "NotSupported").count(), 5);
    assert!(ops.iter().all(|o| o["connectionId"] == id && o["isCompleted"].is_boolean()));
    let (_, queued) = e.api.get(&format!("/companies/{}/data/history?query=status%3DNotSupported", e.company)).await;
    assert_eq!(queued["totalResults"], 5);
    let (st, b) = e.api.get(&format!("/companies/{}/data/history?query=isCompleted%3Dtrue", e.company)).await;
    assert!(assert_envelope(st, &b, 400).contains("Could not resolve property isCompleted on Dataset"));
    let one = ops[0]["id"].as_str().unwrap();
    let (st, op) = e.api.get(&format!("/companies/{}/data/history/{one}", e.company)).await;
    assert_eq!((st, op["id"].as_str()), (200, Some(one)));

    let (st, _, page) = e.callback(&format!("{}/link/{}/connections/{id}/start", e.api.base, e.company)).await;
    assert_eq!(st, 409);
    assert!(page.contains("already linked"));
}

#[tokio::test]
async fn the_same_callback_twice_forged_and_tampered_states_change_nothing() {
    let e = env().await;
    let c = e.connection().await;
    let id = c["id"].as_str().unwrap();
    let redirect = e.authorize(c["linkUrl"].as_str().unwrap(), &e.account).await;
    let url = url::Url::parse(&redirect).unwrap();
    let state = url.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let code = url.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let callback = |state: &str, code: &str| format!("{}/oauth/stripe/callback?state={}&code={code}", e.api.base, urlencoding(state));

    let forged = format!("{id}.abc.9999999999.{}", "0".repeat(64));
    let (st, _, page) = e.callback(&callback(&forged, &code)).await;
    assert_eq!(st, 400);
    assert!(page.contains("forged or was altered"), "{page}");
    // Change the last hex digit of the signature (to another digit, whatever it was).
    let last = if state.ends_with('f') { '0' } else { 'f' };
    let tampered = format!("{}{last}", &state[..state.len() - 1]);
    assert_eq!(e.callback(&callback(&tampered, &code)).await.0, 400);
    let (st, _, page) = e.callback(&format!("{}/oauth/stripe/callback?code={code}", e.api.base)).await;
    assert_eq!(st, 400, "{page}");
    assert_eq!(e.get_connection(id).await["status"], "PendingAuth");

    assert_eq!(e.callback(&redirect).await.0, 303);
    let (st, _, page) = e.callback(&redirect).await;
    assert_eq!(st, 410, "a replay is refused");
    assert!(page.contains("already completed"), "{page}");
    assert_eq!(e.get_connection(id).await["status"], "Linked");
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_code_stripe_refuses_or_from_the_other_mode_leaves_the_connection_untouched() {
    let e = env().await;
    let c = e.connection().await;
    let id = c["id"].as_str().unwrap();
    let redirect = e.authorize(c["linkUrl"].as_str().unwrap(), &e.account).await;
    let bad = redirect.replace("code=ac_", "code=ac_forged");
    let (st, _, page) = e.callback(&bad).await;
    assert_eq!(st, 400);
    assert!(page.contains("Stripe did not accept"), "{page}");
    let after = e.get_connection(id).await;
    assert_eq!((after["status"].as_str(), after["dataConnectionErrors"].as_array().unwrap().len()), (Some("PendingAuth"), 0));

    // A live-mode code for a test-mode connection: Stripe refuses it (invalid_grant).
    let c2 = e.connection().await;
    let res = e.browser.get(c2["linkUrl"].as_str().unwrap()).send().await.unwrap();
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let state = to.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let live_account = {
        let s = e.sandbox.sandbox.clone();
        tokio::task::spawn_blocking(move || s.create_account(Mode::Live, Some(4), false, &Profile::default())).await.unwrap()
    };
    let approve: Value = e
        .browser
        .post(format!("{}/_sandbox/oauth/approve", e.sandbox.url()))
        .json(&json!({"client_id": Config::default().live_client_id, "redirect_uri": "https://example.com/cb", "scope": "read_only", "state": state, "account": live_account}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let live_code =
        url::Url::parse(approve["redirect"].as_str().unwrap()).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let (st, _, _) = e.callback(&format!("{}/oauth/stripe/callback?state={}&code={live_code}", e.api.base, urlencoding(&state))).await;
    assert_eq!(st, 400);
    assert_eq!(e.get_connection(c2["id"].as_str().unwrap()).await["status"], "PendingAuth");
}

#[tokio::test]
async fn a_denial_keeps_pending_auth_records_the_error_and_redirects_with_403() {
    let e = env().await;
    let (st, _) = e.api.call(Method::PUT, "/profile", Some(json!({"name": "Lender", "redirectUrl": "https://lender.example/linked?company={companyId}&status={statusCode}&message={errorMessage}"}))).await;
    assert_eq!(st, 200);
    let c = e.connection().await;
    let id = c["id"].as_str().unwrap();
    let res = e.browser.get(c["linkUrl"].as_str().unwrap()).send().await.unwrap();
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let state = to.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let (st, location, _) = e
        .callback(&format!(
            "{}/oauth/stripe/callback?error=access_denied&error_description=The+user+denied+your+request&state={}",
            e.api.base,
            urlencoding(&state)
        ))
        .await;
    assert_eq!(st, 303);
    assert_eq!(location, format!("https://lender.example/linked?company={}&status=403&message=User%20cancelled%20linking", e.company));
    let after = e.get_connection(id).await;
    assert_eq!(after["status"], "PendingAuth");
    assert_eq!(after["dataConnectionErrors"][0]["statusCode"], "403");
    assert_eq!(after["dataConnectionErrors"][0]["errorMessage"], "User cancelled linking");
}

fn signed(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn linked(e: &Env) -> String {
    let c = e.connection().await;
    let redirect = e.authorize(c["linkUrl"].as_str().unwrap(), &e.account).await;
    assert_eq!(e.callback(&redirect).await.0, 303);
    c["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn deauthorization_webhooks_are_verified_and_idempotent_and_relinking_restores_linked() {
    let e = env().await;
    let id = linked(&e).await;
    let body = json!({"id": "evt_1", "object": "event", "type": "account.application.deauthorized", "account": e.account, "livemode": false, "created": 1,
        "data": {"object": {"id": "ca_sandbox_test", "object": "application", "name": "Sandbox"}}})
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let post = |sig: String, body: String| {
        let client = e.browser.clone();
        let url = format!("{}/webhooks/stripe", e.api.base);
        async move { client.post(url).header("stripe-signature", sig).body(body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(signed("whsec_wrong", now, &body), body.clone()).await, 400, "wrong secret");
    assert_eq!(post(signed("whsec_sandbox_connect", now - 301, &body), body.clone()).await, 400, "stale");
    assert_eq!(post(signed("whsec_sandbox_connect", now, &body), body.replace("evt_1", "evt_2")).await, 400, "tampered body");
    assert_eq!(e.get_connection(&id).await["status"], "Linked", "rejected deliveries change nothing");
    assert_eq!(post(signed("whsec_sandbox_connect", now, &body), body.clone()).await, 200);
    assert_eq!(e.get_connection(&id).await["status"], "Deauthorized");
    assert_eq!(post(signed("whsec_sandbox_connect", now, &body), body.clone()).await, 200, "a repeated delivery is acknowledged");
    assert_eq!(e.get_connection(&id).await["status"], "Deauthorized");
    let other = json!({"id": "evt_3", "object": "event", "type": "customer.created", "account": e.account, "livemode": false, "created": 1, "data": {"object": {}}}).to_string();
    assert_eq!(post(signed("whsec_sandbox_connect", now, &other), other).await, 200, "other events are acknowledged");

    // Re-link: the connection's linkUrl works again and the connection is Linked.
    let c = e.get_connection(&id).await;
    let redirect = e.authorize(c["linkUrl"].as_str().unwrap(), &e.account).await;
    assert_eq!(e.callback(&redirect).await.0, 303);
    assert_eq!(e.get_connection(&id).await["status"], "Linked");
}

#[tokio::test]
async fn unlink_revokes_at_stripe_keeps_the_connection_and_delete_removes_it() {
    let e = env().await;
    let id = linked(&e).await;
    assert!(e.sandbox_account_connected().await);
    let (st, u) =
        e.api.call(Method::PATCH, &format!("/companies/{}/connections/{id}", e.company), Some(json!({"status": "Unlinked"}))).await;
    assert_eq!((st, u["status"].as_str()), (200, Some("Unlinked")), "{u}");
    assert!(!e.sandbox_account_connected().await, "access was revoked at Stripe");
    let (st, _) =
        e.api.call(Method::PATCH, &format!("/companies/{}/connections/{id}", e.company), Some(json!({"status": "Unlinked"}))).await;
    assert_eq!(st, 200, "unlinking again is a no-op");

    let id2 = linked(&e).await;
    // Stripe already disconnected the account (the merchant did it): delete still succeeds.
    let cfg = Config::default();
    let res = e
        .browser
        .post(format!("{}/oauth/deauthorize", e.sandbox.url()))
        .bearer_auth(&cfg.test_secret_key)
        .form(&[("client_id", cfg.test_client_id.as_str()), ("stripe_user_id", e.account.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (st, _) = e.api.call(Method::DELETE, &format!("/companies/{}/connections/{id2}", e.company), None).await;
    assert_eq!(st, 200);
    let (st, _) = e.api.get(&format!("/companies/{}/connections/{id2}", e.company)).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn when_stripe_is_unreachable_unlink_fails_clearly_and_changes_nothing() {
    let e = env().await;
    let id = linked(&e).await;
    e.browser
        .put(format!("{}/_sandbox/faults", e.sandbox.url()))
        .json(&json!({"endpoints": {"POST /oauth/deauthorize": {"p500": 1.0}}}))
        .send()
        .await
        .unwrap();
    let (st, b) =
        e.api.call(Method::PATCH, &format!("/companies/{}/connections/{id}", e.company), Some(json!({"status": "Unlinked"}))).await;
    assert!(assert_envelope(st, &b, 502).contains("nothing was changed"));
    assert_eq!(e.get_connection(&id).await["status"], "Linked");
    let (st, _) = e.api.call(Method::DELETE, &format!("/companies/{}/connections/{id}", e.company), None).await;
    assert_eq!(st, 502);
    e.browser.delete(format!("{}/_sandbox/faults", e.sandbox.url())).send().await.unwrap();
    let (st, _) =
        e.api.call(Method::PATCH, &format!("/companies/{}/connections/{id}", e.company), Some(json!({"status": "Unlinked"}))).await;
    assert_eq!(st, 200, "a retry succeeds");
}

#[tokio::test]
async fn link_pages_are_plain_html_with_clear_errors() {
    let e = env().await;
    let page = e.browser.get(format!("{}/link/{}", e.api.base, e.company)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("Merchant Ltd") && html.contains("Connect Stripe Test"));
    assert!(!html.contains("<script"), "works without JavaScript");
    assert!(!html.contains("Connect Stripe<"), "a disabled integration is not offered");
    let res = e.browser.post(format!("{}/link/{}", e.api.base, e.company)).form(&[("integration", "yzth")]).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let res2 = e.browser.post(format!("{}/link/{}", e.api.base, e.company)).form(&[("integration", "yzth")]).send().await.unwrap();
    assert_eq!(res2.status().as_u16(), 303);
    let (_, list) = e.api.get(&format!("/companies/{}/connections", e.company)).await;
    assert_eq!(list["totalResults"], 1, "the pending connection is reused");
    let missing = e.browser.get(format!("{}/link/{}", e.api.base, uuid::Uuid::new_v4())).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing.text().await.unwrap().contains("Company not found"));
    let garbage = e.browser.get(format!("{}/link/not-a-company", e.api.base)).send().await.unwrap();
    assert_eq!(garbage.status().as_u16(), 404);
    e.api.platform.integrations().set_enabled("yzth", false).await.unwrap();
    let c = list["results"][0]["linkUrl"].as_str().unwrap().to_owned();
    let disabled = e.browser.get(&c).send().await.unwrap();
    assert_eq!(disabled.status().as_u16(), 409);
    assert!(disabled.text().await.unwrap().contains("not enabled"));
}
