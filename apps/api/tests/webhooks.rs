//! Webhooks to clients: the consumers API as Codat's, and deliveries to a receiver on localhost that
//! verifies every signature with the `standardwebhooks` package from PyPI
//! (`tests/webhooks/receiver.py`).
//!
//! The receiver's interpreter comes from `TRIBUTARY_WEBHOOK_PYTHON` (`.ci/run` makes the venv).
//! Without it those tests are reported as skipped on stderr, unless `TRIBUTARY_REQUIRE_SDK=1` (CI).

mod common;

use common::{TestServer, assert_envelope, link_and_sync};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stripe_sandbox::{Config, Profile};
use tokio::io::AsyncBufReadExt;
use tributary_domain::service::DeliveryOptions;

#[tokio::test]
async fn webhook_consumers_are_created_listed_and_deleted_as_codat_does() {
    let api = TestServer::start().await;
    let (s, c) = api
        .post(
            "/webhooks",
            json!({"url": "https://example.com/hooks", "eventTypes": ["company.created", "read.completed"], "companyTags": ["region:uk"]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["url"], "https://example.com/hooks");
    assert_eq!(c["disabled"], false);
    assert_eq!(c["eventTypes"], json!(["company.created", "read.completed"]));
    assert_eq!(c["companyTags"], json!(["region:uk"]));
    let secret = c["signingSecret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.platform
            .webhooks()
            .consumer_secret(id.parse().unwrap())
            .await
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
            .unwrap(),
        secret
    );

    let (s, list) = api.get("/webhooks").await;
    assert_eq!(s, 200);
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
    assert_eq!(list["results"][0]["id"], id.as_str());
    assert!(list["results"][0].get("signingSecret").is_none(), "the secret is shown only at creation: {list}");

    for (body, needle) in [
        (json!({"url": "ftp://example.com/x", "eventTypes": ["company.created"]}), "http or https"),
        (json!({"url": "not a url", "eventTypes": ["company.created"]}), "not a valid URL"),
        (json!({"url": "https://example.com/x", "eventTypes": ["bills.write.successful"]}), "bills.write.successful"),
        (json!({"url": "https://example.com/x", "eventTypes": []}), "at least one event type"),
        (json!({"url": "https://example.com/x", "eventTypes": ["company.created"], "companyTags": ["region"]}), "key:value"),
        (json!({"eventTypes": ["company.created"]}), "url"),
    ] {
        let (s, e) = api.post("/webhooks", body.clone()).await;
        let message = assert_envelope(s, &e, 400);
        assert!(message.contains(needle), "{body}: {message}");
    }
    for n in 1..50 {
        let (s, _) = api.post("/webhooks", json!({"url": format!("http://127.0.0.1:9/{n}"), "eventTypes": ["company.created"]})).await;
        assert_eq!(s, 201);
    }
    let (s, e) = api.post("/webhooks", json!({"url": "http://127.0.0.1:9/51", "eventTypes": ["company.created"]})).await;
    assert!(assert_envelope(s, &e, 400).contains("at most 50"));

    let (s, _) = api.call(reqwest::Method::DELETE, &format!("/webhooks/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, e) = api.call(reqwest::Method::DELETE, &format!("/webhooks/{id}"), None).await;
    assert_envelope(s, &e, 404);
    let (s, e) = api.call(reqwest::Method::DELETE, "/webhooks/not-a-uuid", None).await;
    assert!(s == 400 || s == 404, "{e}");
    let (s, _) = api.client.get(format!("{}/webhooks", api.base)).send().await.map(|r| (r.status().as_u16(), ())).unwrap();
    assert_eq!(s, 401, "the consumers API needs an API key");
}

/// The receiver's Python, or `None` (skipped, loudly) when not configured outside CI.
fn receiver_python(test: &str) -> Option<String> {
    match std::env::var("TRIBUTARY_WEBHOOK_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("TRIBUTARY_REQUIRE_SDK").as_deref() != Ok("1"),
                "TRIBUTARY_WEBHOOK_PYTHON is not set but TRIBUTARY_REQUIRE_SDK=1"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: set TRIBUTARY_WEBHOOK_PYTHON to a Python with standardwebhooks installed (see .ci/run)"
            );
            None
        }
    }
}

/// A running `receiver.py` and what it has seen.
struct Receiver {
    child: tokio::process::Child,
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start(python: &str, secret: &str, port: u16, fail_first: u32) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/webhooks/receiver.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .env("WEBHOOK_SECRET", secret)
            .env("PORT", port.to_string())
            .env("FAIL_FIRST", fail_first.to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
        let port: u16 = first.strip_prefix("PORT ").unwrap().parse().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(serde_json::from_str::<Value>(&line).unwrap());
            }
        });
        Self { child, port, seen }
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was seen.
    async fn wait(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; seen: {seen:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn fast() -> DeliveryOptions {
    DeliveryOptions {
        schedule: std::iter::once(Duration::ZERO).chain(std::iter::repeat_n(Duration::from_millis(300), 40)).collect(),
        ..Default::default()
    }
}

async fn subscribe(api: &TestServer, url: &str) -> (String, String) {
    let all = [
        "company.created",
        "company.deleted",
        "connection.created",
        "connection.connected",
        "connection.failed",
        "connection.disconnected",
        "connection.reconnected",
        "connection.deleted",
        "read.completed",
        "read.completed.initial",
    ];
    let (s, c) = api.post("/webhooks", json!({"url": url, "eventTypes": all})).await;
    assert_eq!(s, 201, "{c}");
    (c["id"].as_str().unwrap().to_owned(), c["signingSecret"].as_str().unwrap().to_owned())
}

fn delivered(seen: &[Value]) -> Vec<&Value> {
    seen.iter().filter(|l| l["status"] == 204).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_linked_and_synced_produces_verified_codat_events_in_order() {
    let Some(python) = receiver_python("a_merchant_linked_and_synced_produces_verified_codat_events_in_order") else { return };
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let api = TestServer::start_with_webhooks(&sandbox.url(), fast()).await;
    // The receiver needs the consumer's secret, so the consumer comes first, on a free port.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let (_, secret) = subscribe(&api, &format!("http://127.0.0.1:{port}/codat")).await;
    let receiver = Receiver::start(&python, &secret, port, 0).await;
    assert_eq!(receiver.port, port);

    let profile = Profile { customers: 12, charges: 40, refunds: 4, disputes: 3, products: 3, prices: 6, payouts: 3 };
    let (company, connection, _account) = link_and_sync(&api, &sandbox, profile).await;
    let seen = receiver.wait("read.completed.initial", |s| delivered(s).iter().any(|l| l["eventType"] == "read.completed.initial")).await;
    assert!(seen.iter().all(|l| l["verified"] == true), "every delivery verifies with standardwebhooks: {seen:#?}");
    let order: Vec<&str> = delivered(&seen).iter().map(|l| l["eventType"].as_str().unwrap()).collect();
    let position = |t: &str| order.iter().position(|x| *x == t).unwrap_or_else(|| panic!("{t} missing from {order:?}"));
    assert!(
        position("company.created") < position("connection.created")
            && position("connection.created") < position("connection.connected")
            && position("connection.connected") < position("read.completed.initial"),
        "{order:?}"
    );
    let body = |t: &str| -> Value {
        serde_json::from_str(delivered(&seen).iter().find(|l| l["eventType"] == t).unwrap()["body"].as_str().unwrap()).unwrap()
    };
    let created = body("company.created");
    assert_eq!(created["payload"]["id"], company.as_str());
    assert_eq!(created["payload"]["name"], "Synced Shop");
    assert!(created["generatedDate"].as_str().unwrap().ends_with('Z'));
    let connected = body("connection.connected");
    assert_eq!(connected["payload"]["referenceCompany"]["id"], company.as_str());
    assert_eq!(connected["payload"]["connection"]["id"], connection.to_string());
    assert_eq!(connected["payload"]["connection"]["status"], "Linked");
    assert_eq!(body("connection.created")["payload"]["connection"]["status"], "PendingAuth");
    let initial = body("read.completed.initial");
    let types = initial["payload"]["dataTypes"].as_array().unwrap();
    let mut names: Vec<&str> = types.iter().map(|d| d["dataType"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "commerce-companyInfo",
            "commerce-customers",
            "commerce-disputes",
            "commerce-payments",
            "commerce-products",
            "commerce-transactions"
        ]
    );
    for d in types {
        assert_eq!(d["connectionId"], connection.to_string());
        assert_eq!(d["status"], "Complete", "{d}");
        assert_eq!(d["recordsModified"], true, "{d}");
        assert_eq!(d["issues"], json!([]));
    }
    assert!(initial["payload"]["modifiedFromDate"].is_null());
    // The same read also counts as a read.completed.
    receiver.wait("read.completed", |s| delivered(s).iter().any(|l| l["eventType"] == "read.completed")).await;
    // webhook-id is msg_ + the envelope id.
    for l in delivered(&seen) {
        let id = l["eventId"].as_str().unwrap().replace('-', "");
        assert_eq!(l["webhookId"], format!("msg_{id}"));
    }
    sandbox.stop().await;
    drop(receiver.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_receiver_down_then_failing_every_event_arrives_and_retries_keep_their_webhook_id() {
    let Some(python) = receiver_python("with_the_receiver_down_then_failing_every_event_arrives_and_retries_keep_their_webhook_id") else {
        return;
    };
    let api = TestServer::start_with_webhooks("http://127.0.0.1:9", fast()).await;
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let (consumer, secret) = subscribe(&api, &format!("http://127.0.0.1:{port}/")).await;
    // While nothing listens: five companies, one deleted.
    let mut companies = Vec::new();
    for n in 0..5 {
        companies.push(api.company(&format!("Down {n}")).await);
    }
    let (s, _) = api.call(reqwest::Method::DELETE, &format!("/companies/{}", companies[4]), None).await;
    assert_eq!(s, 204);
    // Several attempts fail (connection refused) before the receiver comes up.
    let id = consumer.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (attempts, _) = api.platform.webhooks().attempts(id, 500).await.unwrap();
        if attempts.iter().filter(|a| !a.ok).count() >= 12 {
            assert!(attempts.iter().all(|a| a.status_code.is_none() && a.error.is_some()), "{attempts:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempts recorded: {attempts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Up, but answering 503 to the first three deliveries.
    let receiver = Receiver::start(&python, &secret, port, 3).await;
    let seen = receiver.wait("six events delivered", |s| delivered(s).len() >= 6).await;
    assert!(seen.iter().all(|l| l["verified"] == true), "{seen:#?}");
    let ok = delivered(&seen);
    let mut ids: Vec<&str> = ok.iter().map(|l| l["webhookId"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "five company.created and one company.deleted, each once: {ok:#?}");
    let failed: Vec<&Value> = seen.iter().filter(|l| l["status"] == 503).collect();
    assert_eq!(failed.len(), 3);
    for f in failed {
        let retry = ok.iter().find(|l| l["webhookId"] == f["webhookId"]).expect("a failed delivery is retried with the same webhook-id");
        assert_eq!(retry["body"], f["body"], "a retry sends the same body");
    }
    let (_, counts) = api.platform.webhooks().attempts(id, 1).await.unwrap();
    assert_eq!((counts.pending, counts.delivered, counts.failed), (0, 6, 0));
    let (attempts, _) = api.platform.webhooks().attempts(id, 500).await.unwrap();
    assert!(attempts.iter().filter(|a| a.ok).all(|a| a.status_code == Some(204)));
    assert!(attempts.iter().any(|a| a.status_code == Some(503)));
}

#[tokio::test]
async fn private_and_loopback_targets_are_refused_at_registration_by_default_settings() {
    let api = TestServer::start_configured("http://127.0.0.1:9", |o| o.allow_private_webhook_targets = false).await;
    for url in [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://0.0.0.0:8080/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
    ] {
        let (status, body) = api.post("/webhooks", json!({"url": url, "eventTypes": ["company.created"]})).await;
        let message = common::assert_envelope(status, &body, 400);
        assert!(message.contains("non-public address"), "{url}: {message}");
        assert_eq!(body["validation"]["errors"][0]["itemId"], "url", "{url}: {body}");
    }
    let (_, list) = api.get("/webhooks").await;
    assert_eq!(list["results"], json!([]), "nothing was registered");
    // A public name (which does not resolve here, offline) is accepted: deliveries check it again.
    let (status, body) = api.post("/webhooks", json!({"url": "https://hooks.example.com/t", "eventTypes": ["company.created"]})).await;
    assert_eq!(status, 201, "{body}");
}

#[test]
fn the_server_refuses_private_webhook_targets_unless_told_otherwise() {
    let settings = tributary_api::config::Settings::load(None).unwrap();
    assert!(!settings.webhooks.allow_private_targets, "SSRF protection is the default");
}

/// Webhook delivery has workers of its own (`webhook_workers`): a process that syncs nothing
/// delivers with them, and one that syncs but has none leaves delivery to other processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_runs_on_its_own_workers_whatever_the_sync_workers() {
    for (workers, webhook_workers, delivers) in [(0, 2, true), (1, 0, false)] {
        let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = posts.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { axum::http::StatusCode::NO_CONTENT }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let api = TestServer::start_configured("http://127.0.0.1:9", |o| {
            o.workers = workers;
            o.webhook_workers = webhook_workers;
        })
        .await;
        let (s, c) = api.post("/webhooks", json!({"url": url, "eventTypes": ["company.created"]})).await;
        assert_eq!(s, 201, "{c}");
        let (s, c) = api.post("/companies", json!({"name": "Hooked"})).await;
        assert_eq!(s, 200, "{c}");
        let deadline = Instant::now() + Duration::from_secs(if delivers { 15 } else { 3 });
        while posts.load(std::sync::atomic::Ordering::SeqCst) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let n = posts.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(n > 0, delivers, "workers {workers}, webhook_workers {webhook_workers}: {n} deliveries");
    }
}
