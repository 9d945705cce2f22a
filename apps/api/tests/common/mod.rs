//! Test support: a real server on a free port over a temporary SQLite file, and an HTTP client.

#![allow(dead_code)]

pub mod reference;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use stripe_sandbox::{Config, Mode, Profile};
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::service::{IntegrationUpdate, Platform};

pub struct TestServer {
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
    pub platform: Platform,
    pub _dir: tempfile::TempDir,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub const MASTER: [u8; 32] = [42; 32];

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with("http://127.0.0.1:9").await
    }

    /// A server whose Stripe Connect base is `connect_base` (a sandbox, or an unreachable port).
    pub async fn start_with(connect_base: &str) -> Self {
        Self::start_with_webhooks(connect_base, tributary_domain::service::DeliveryOptions::default()).await
    }

    /// As [`TestServer::start_with`], delivering webhooks with `webhooks` (short retry delays).
    pub async fn start_with_webhooks(connect_base: &str, webhooks: tributary_domain::service::DeliveryOptions) -> Self {
        Self::start_configured(connect_base, |o| o.webhooks = webhooks).await
    }

    /// A server with the test defaults changed by `configure`.
    pub async fn start_configured(connect_base: &str, configure: impl FnOnce(&mut tributary_api::ServeOptions)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        Self::start_on(&url, dir, connect_base, configure).await
    }

    /// A server on the database at `url` (`dir` is kept as long as the server).
    pub async fn start_on(
        url: &str,
        dir: tempfile::TempDir,
        connect_base: &str,
        configure: impl FnOnce(&mut tributary_api::ServeOptions),
    ) -> Self {
        let store = Store::open(url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let platform = tributary_api::compose::platform(&store, std::sync::Arc::new(AesGcmCipher::new(&MASTER, &[])), &base, true).unwrap();
        let key = tributary_api::generate_api_key();
        platform.api_keys().create(Some("test".into()), &key).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut opts = tributary_api::ServeOptions::local(&base, connect_base, 1);
        configure(&mut opts);
        tokio::spawn(async move {
            tributary_api::serve_on(listener, &store, AesGcmCipher::new(&MASTER, &[]), opts, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self { base, key: key.expose_secret().to_owned(), client: reqwest::Client::new(), platform, _dir: dir, shutdown: Some(tx) }
    }

    pub fn auth(&self) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&self.key))
    }

    pub async fn enable_stripe_test(&self) {
        self.platform
            .integrations()
            .update(
                "yzth",
                IntegrationUpdate {
                    client_id: Some("ca_test".into()),
                    secret_key: Some(SecretString::from("sk_test_123")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        self.platform.integrations().set_enabled("yzth", true).await.unwrap();
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).header("Authorization", self.auth());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let json = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn company(&self, name: &str) -> String {
        let (s, c) = self.post("/companies", serde_json::json!({"name": name})).await;
        assert_eq!(s, 200, "{c}");
        c["id"].as_str().unwrap().to_owned()
    }
}

/// Configures Stripe Test with the sandbox's test-mode platform keys and enables it.
pub async fn use_sandbox_keys(platform: &Platform) {
    let cfg = Config::default();
    let settings = IntegrationUpdate {
        client_id: Some(cfg.test_client_id),
        secret_key: Some(SecretString::from(cfg.test_secret_key)),
        ..Default::default()
    };
    platform.integrations().update("yzth", settings).await.unwrap();
    platform.integrations().set_enabled("yzth", true).await.unwrap();
}

/// Asserts a body is Codat's error envelope with the status, and returns its message.
pub fn assert_envelope(status: u16, body: &Value, want: u16) -> String {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["statusCode"], want, "{body}");
    assert_eq!(body["service"], "PublicApi");
    assert!(body["correlationId"].as_str().is_some_and(|c| c.len() == 32), "{body}");
    assert!(body["canBeRetried"].is_string());
    assert_eq!(body["detailedErrorCode"], 0);
    body["error"].as_str().unwrap().to_owned()
}

/// A sandbox merchant with `profile`, linked through the Link flow and fully synced by the server's
/// worker. Returns the server, the sandbox, the company id, the connection id and the account id.
pub async fn linked_and_synced(
    profile: Profile,
) -> (TestServer, stripe_sandbox::Running, String, tributary_domain::ids::ConnectionId, String) {
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let api = TestServer::start_with(&sandbox.url()).await;
    let (company, connection, account) = link_and_sync(&api, &sandbox, profile).await;
    (api, sandbox, company, connection, account)
}

/// Creates a company on `api`, links a new sandbox merchant with `profile` through the Link flow
/// and waits until the server's worker has synced it. Returns company, connection and account.
pub async fn link_and_sync(
    api: &TestServer,
    sandbox: &stripe_sandbox::Running,
    profile: Profile,
) -> (String, tributary_domain::ids::ConnectionId, String) {
    use_sandbox_keys(&api.platform).await;
    let company = api.company("Synced Shop").await;
    let s = sandbox.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(21), false, &profile)).await.unwrap();
    let (_, c) = api.post(&format!("/companies/{company}/connections"), json!({"platformKey": "yzth"})).await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let callback = approve(&browser, &sandbox.url(), c["linkUrl"].as_str().unwrap(), &account).await;
    let res = browser.get(&callback).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, status) = api.get(&format!("/companies/{company}/dataStatus")).await;
        let done = status
            .as_object()
            .is_some_and(|m| m.len() == 11 && m.values().all(|v| v["currentStatus"] == "Complete" || v["currentStatus"] == "NotSupported"));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "sync did not finish: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let connection: tributary_domain::ids::ConnectionId = c["id"].as_str().unwrap().parse().unwrap();
    (company, connection, account)
}

/// What a merchant does at the sandbox's consent page: follows `link_url` (a client that does
/// not follow redirects), approves `account`, and gets the OAuth callback URL back.
pub async fn approve(browser: &reqwest::Client, sandbox_url: &str, link_url: &str, account: &str) -> String {
    let res = browser.get(link_url).send().await.unwrap();
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
    let approved: Value = browser
        .post(format!("{sandbox_url}/_sandbox/oauth/approve"))
        .json(&json!({"client_id": q["client_id"], "redirect_uri": q["redirect_uri"], "scope": q["scope"], "state": q["state"], "account": account}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    approved["redirect"].as_str().unwrap().to_owned()
}

/// A free TCP port on 127.0.0.1 (for a server process started next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until a server process on `port` answers `/health`.
pub async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("http://127.0.0.1:{port}/health")).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on {port} did not become healthy");
}

/// The Python with selenium for the browser tests, when Chromium is there too; otherwise the test
/// is reported as skipped (or fails under `TRIBUTARY_REQUIRE_BROWSER=1`, as in CI).
pub fn browser(test: &str) -> Option<String> {
    let python = std::env::var("TRIBUTARY_BROWSER_PYTHON").ok().filter(|p| !p.is_empty());
    let chromium = std::path::Path::new(&std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())).exists();
    match python {
        Some(p) if chromium => Some(p),
        _ => {
            assert!(
                std::env::var("TRIBUTARY_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "Chromium or TRIBUTARY_BROWSER_PYTHON missing but TRIBUTARY_REQUIRE_BROWSER=1"
            );
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!(
                    "SKIPPED {test}: needs /usr/bin/chromium, chromium-driver and TRIBUTARY_BROWSER_PYTHON (a Python with selenium); see .ci/run\n"
                ),
            );
            None
        }
    }
}
