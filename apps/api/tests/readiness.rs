//! `/ready` and `/health`: readiness follows the database (and its migrations); liveness does not.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;

/// A TCP proxy to the database that can be cut: while down it refuses new connections and has
/// dropped every open one, which is what the server sees of a stopped database.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    /// New connections are accepted and then never answered (a database that hangs).
    hang: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let hang = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (u, hg, o) = (up.clone(), hang.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let hanging = hg.load(Ordering::SeqCst);
                let task = tokio::spawn(async move {
                    if hanging {
                        // Held open, never answered.
                        let _ = client.readable().await;
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                o.lock().await.push(task);
            }
        });
        Self { addr, up, hang, open }
    }

    async fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.open.lock().await.drain(..) {
            t.abort();
        }
    }

    fn restart(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Open connections dropped, new ones accepted and never answered.
    async fn hang(&self) {
        self.hang.store(true, Ordering::SeqCst);
        for t in self.open.lock().await.drain(..) {
            t.abort();
        }
    }
}

async fn status(client: &reqwest::Client, base: &str, path: &str) -> (u16, serde_json::Value) {
    let res = client.get(format!("{base}{path}")).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or_default())
}

async fn serve(store: Store) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let opts = tributary_api::ServeOptions::local(&base, "http://127.0.0.1:9", 1);
    tokio::spawn(async move {
        let _ = tributary_api::serve_on(listener, &store, AesGcmCipher::new(&common::MASTER, &[]), opts, std::future::pending()).await;
    });
    common::wait_healthy(base.rsplit(':').next().unwrap().parse().unwrap()).await;
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_stopped_ready_is_503_within_2_s_and_health_stays_200() {
    let Some(admin) = tributary_tests::pg::admin_url("with_the_database_stopped_ready_is_503") else { return };
    let db = tributary_tests::pg::create_database(&admin).await;
    let mut url = url::Url::parse(db.url()).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432)).parse().unwrap();
    let proxy = Proxy::start(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let store = Store::open(url.as_str()).await.unwrap();
    let base = serve(store).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    assert_eq!(status(&client, &base, "/ready").await, (200, serde_json::json!({"status": "ready"})));

    proxy.stop().await;
    let asked = Instant::now();
    let (code, body) = status(&client, &base, "/ready").await;
    let took = asked.elapsed();
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    assert_eq!(status(&client, &base, "/health").await.0, 200, "the process is alive");

    proxy.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if status(&client, &base, "/ready").await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "/ready did not come back with the database");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A database that accepts connections and never answers: 503 at the timeout, not later.
    proxy.hang().await;
    let asked = Instant::now();
    let (code, body) = status(&client, &base, "/ready").await;
    let took = asked.elapsed();
    assert_eq!(code, 503, "{body}");
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    assert_eq!(status(&client, &base, "/health").await.0, 200);
    db.cleanup().await;
}

#[tokio::test]
async fn ready_is_503_while_a_migration_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let base = serve(store.clone()).await;
    let client = reqwest::Client::new();
    assert_eq!(status(&client, &base, "/ready").await.0, 200);
    let Store::Sqlite(s) = &store else { unreachable!() };
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
        .execute(s.pool())
        .await
        .unwrap();
    let (code, body) = status(&client, &base, "/ready").await;
    assert_eq!(code, 503);
    assert!(body["reason"].as_str().unwrap().contains("migrations not applied"), "{body}");
    assert_eq!(status(&client, &base, "/health").await.0, 200);
}

#[tokio::test]
async fn metrics_need_the_api_key_on_the_main_listener_and_nothing_on_metrics_listen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let platform =
        tributary_api::compose::platform(&store, std::sync::Arc::new(AesGcmCipher::new(&common::MASTER, &[])), "http://127.0.0.1", true)
            .unwrap();
    let key = tributary_api::generate_api_key();
    platform.api_keys().create(None, &key).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let private = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let mut opts = tributary_api::ServeOptions::local(&base, "http://127.0.0.1:9", 0);
    opts.metrics_listen = Some(private);
    tokio::spawn(async move {
        let _ = tributary_api::serve_on(listener, &store, AesGcmCipher::new(&common::MASTER, &[]), opts, std::future::pending()).await;
    });
    common::wait_healthy(base.rsplit(':').next().unwrap().parse().unwrap()).await;
    let client = reqwest::Client::new();
    let res = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401, "the main listener's /metrics is behind the API key");
    use base64::Engine;
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(secrecy::ExposeSecret::expose_secret(&key)));
    let res = client.get(format!("{base}/metrics")).header("Authorization", auth).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("tributary_build_info{version="));
    // Paths no route matches and made-up methods stay out of the labels.
    client.get(format!("{base}/no/such/path-abc123")).send().await.unwrap();
    client.request(reqwest::Method::from_bytes(b"BREW").unwrap(), format!("{base}/companies")).send().await.unwrap();
    let res = client.get(format!("http://{private}/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "metrics_listen serves without authentication");
    let text = res.text().await.unwrap();
    assert!(text.contains("# TYPE tributary_stripe_throttle_wait_seconds_total counter"));
    assert!(text.contains(r#"tributary_http_requests_total{route="unmatched",method="GET",status="404"}"#), "{text}");
    assert!(text.contains(r#"method="other""#) && !text.contains("BREW") && !text.contains("abc123"), "{text}");
    assert_eq!(client.get(format!("http://{private}/companies")).send().await.unwrap().status().as_u16(), 404, "and nothing else");
}
