//! Webhook delivery across real `tributary-api` processes: a server killed with SIGKILL while
//! deliveries are pending delivers all of them after a restart, and two servers on one Postgres
//! database never deliver the same event twice (nor at the same time).

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use common::{free_port, wait_healthy};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::model::webhook::{NewConsumer, sign};

const KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="; // 32 bytes of '*'

/// Starts the server binary on `database_url`, delivering with short retry delays.
fn spawn_api(database_url: &str, port: u16) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary-api"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIBUTARY_") {
            c.env_remove(k);
        }
    }
    let schedule = std::iter::once("0s").chain(std::iter::repeat_n("300ms", 60)).collect::<Vec<_>>().join(",");
    c.env("RUST_LOG", "warn")
        .env("TRIBUTARY_MASTER_KEY", KEY)
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIBUTARY_DATABASE_URL", database_url)
        .env("TRIBUTARY_WORKERS", "1")
        .env("TRIBUTARY_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
        .env("TRIBUTARY_WEBHOOKS__RETRY_SCHEDULE", schedule)
        .env("TRIBUTARY_WEBHOOKS__TIMEOUT", "2s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What the receiver saw: per `webhook-id`, how many deliveries, and whether two overlapped.
#[derive(Default)]
struct Seen {
    deliveries: BTreeMap<String, u32>,
    in_flight: BTreeMap<String, u32>,
    overlapped: Vec<String>,
    bad_signatures: u32,
}

/// A receiver on `port` that checks signatures with `secret`, holds each request 50 ms (so that
/// concurrent duplicates would overlap) and answers 204.
async fn start_receiver(port: u16, secret: String) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            let secret = secret.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let (id, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
                let body = String::from_utf8_lossy(&body).into_owned();
                let ok = ts.parse::<i64>().is_ok_and(|ts| sign(&secret, &id, ts, &body).is_ok_and(|want| want == sig));
                {
                    let mut s = state.lock().unwrap();
                    if !ok {
                        s.bad_signatures += 1;
                        return StatusCode::BAD_REQUEST;
                    }
                    let n = s.in_flight.entry(id.clone()).or_default();
                    *n += 1;
                    if *n > 1 {
                        s.overlapped.push(id.clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut s = state.lock().unwrap();
                *s.in_flight.get_mut(&id).unwrap() -= 1;
                *s.deliveries.entry(id).or_default() += 1;
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    seen
}

/// The use cases on `store` under the server's master key `KEY`.
fn platform_on(store: &Store) -> tributary_domain::service::Platform {
    let cipher = AesGcmCipher::new(&tributary_api::config::decode_master_key(KEY).unwrap(), &[]);
    tributary_api::compose::platform(store, std::sync::Arc::new(cipher), "http://x", true).unwrap()
}

/// An API key and a consumer for `hook_port`, made directly on the database; returns the key and
/// the consumer's secret.
async fn prepare(database_url: &str, hook_port: u16) -> (String, String) {
    let store = Store::open(database_url).await.unwrap();
    let platform = platform_on(&store);
    let key = tributary_api::generate_api_key();
    platform.api_keys().create(Some("t".into()), &key).await.unwrap();
    let (_, secret) = platform
        .webhooks()
        .create_consumer(NewConsumer {
            url: format!("http://127.0.0.1:{hook_port}/hook"),
            disabled: false,
            event_types: vec!["company.created".into()],
            company_tags: vec![],
        })
        .await
        .unwrap();
    store.close().await;
    (key.expose_secret().to_owned(), secret.expose_secret().to_owned())
}

async fn create_company(port: u16, key: &str, name: &str) {
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(key));
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/companies"))
        .header("Authorization", auth)
        .json(&serde_json::json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

async fn wait_delivered(seen: &Arc<Mutex<Seen>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if seen.lock().unwrap().deliveries.len() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {} of {n} events arrived", seen.lock().unwrap().deliveries.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_with_pending_deliveries_delivers_them_all_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let hook_port = free_port();
    let (key, secret) = prepare(&url, hook_port).await;
    let port = free_port();
    let mut server = spawn_api(&url, port);
    wait_healthy(port).await;
    for n in 0..6 {
        create_company(port, &key, &format!("Pending {n}")).await;
    }
    // Attempts fail while nothing listens; then the server dies without warning.
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let store = Store::open(&url).await.unwrap();
    let platform = platform_on(&store);
    let consumer = platform.webhooks().list_consumers().await.unwrap()[0].id;
    let (attempts, counts) = platform.webhooks().attempts(consumer, 100).await.unwrap();
    assert!(!attempts.is_empty() && attempts.iter().all(|a| !a.ok), "attempts failed before the kill: {attempts:?}");
    assert_eq!(counts.pending, 6, "six deliveries were pending at the kill");
    store.close().await;

    let seen = start_receiver(hook_port, secret).await;
    let mut server = spawn_api(&url, port);
    wait_healthy(port).await;
    wait_delivered(&seen, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s.bad_signatures, 0);
    assert_eq!(s.deliveries.len(), 6, "every event arrived: {:?}", s.deliveries);
    assert!(s.deliveries.values().all(|n| *n == 1), "and each exactly once: {:?}", s.deliveries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_never_deliver_the_same_event_twice() {
    let Some((store, db)) = tributary_tests::pg::fresh_postgres("two_servers_on_one_postgres_never_deliver_the_same_event_twice").await
    else {
        return;
    };
    store.close().await;
    let hook_port = free_port();
    let (key, secret) = prepare(db.url(), hook_port).await;
    let seen = start_receiver(hook_port, secret).await;
    let ports = [free_port(), free_port()];
    let mut servers: Vec<Child> = ports.iter().map(|p| spawn_api(db.url(), *p)).collect();
    for p in ports {
        wait_healthy(p).await;
    }
    let events = 40;
    for n in 0..events {
        create_company(ports[n % 2], &key, &format!("Both {n}")).await;
    }
    wait_delivered(&seen, events).await;
    // Time for any duplicate to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &mut servers {
        s.kill().unwrap();
        s.wait().unwrap();
    }
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.bad_signatures, 0);
        assert_eq!(s.deliveries.len(), events);
        assert!(s.deliveries.values().all(|n| *n == 1), "no event was delivered twice: {:?}", s.deliveries);
        assert!(s.overlapped.is_empty(), "no delivery overlapped another of the same event: {:?}", s.overlapped);
    }
    db.cleanup().await;
}
