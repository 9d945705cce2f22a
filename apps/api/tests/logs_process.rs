//! The `tributary-api` binary's logs, as an operator collects them: JSON lines at debug level
//! through a whole run (link → sync → webhook → console), each with timestamp, level, message,
//! target and its spans' fields, and not one secret or token in any of them.

mod common;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use stripe_sandbox::{Config, Mode, Profile};
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::service::IntegrationUpdate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_json_logs_of_a_full_run_carry_span_fields_and_no_secret() {
    let cfg = Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() };
    let sandbox = stripe_sandbox::start(cfg.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/t.db", dir.path().display());
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    // What an operator sets up with the CLI: an API key and the Stripe Test integration.
    let api_key = tributary_api::generate_api_key();
    {
        let store = Store::open(&db).await.unwrap();
        let platform =
            tributary_api::compose::platform(&store, std::sync::Arc::new(AesGcmCipher::new(&common::MASTER, &[])), &base, true).unwrap();
        platform.api_keys().create(Some("logs".into()), &api_key).await.unwrap();
        let update = IntegrationUpdate {
            client_id: Some(cfg.test_client_id.clone()),
            secret_key: Some(SecretString::from(cfg.test_secret_key.clone())),
            webhook_secret: Some(SecretString::from(cfg.webhook_secret.clone())),
            scope: None,
        };
        platform.integrations().update("yzth", update).await.unwrap();
        platform.integrations().set_enabled("yzth", true).await.unwrap();
        store.close().await;
    }
    let master = base64::engine::general_purpose::STANDARD.encode(common::MASTER);
    let log_path = dir.path().join("server.log");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_tributary-api"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRIBUTARY_MASTER_KEY", &master)
        .env("TRIBUTARY_DATABASE_URL", &db)
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIBUTARY_STRIPE__API_BASE", sandbox.url())
        .env("TRIBUTARY_STRIPE__CONNECT_BASE", sandbox.url())
        .env("TRIBUTARY_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
        .env("TRIBUTARY_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    common::wait_healthy(port).await;

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(api_key.expose_secret()));
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
        async move {
            let mut req = client.request(method, format!("{base}{path}")).header("Authorization", auth);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    // A webhook receiver that accepts everything.
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { axum::http::StatusCode::NO_CONTENT }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (s, consumer) =
        call(reqwest::Method::POST, "/webhooks".into(), Some(json!({"url": hook, "eventTypes": ["read.completed.initial"]}))).await;
    assert_eq!(s, 201, "{consumer}");
    let signing = consumer["signingSecret"].as_str().unwrap().to_owned();

    // Link through the sandbox's consent and sync.
    let (_, company) = call(reqwest::Method::POST, "/companies".into(), Some(json!({"name": "Logged Shop"}))).await;
    let company = company["id"].as_str().unwrap().to_owned();
    let (_, conn) = call(reqwest::Method::POST, format!("/companies/{company}/connections"), Some(json!({"platformKey": "yzth"}))).await;
    let s2 = sandbox.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s2.create_account(Mode::Test, Some(5), false, &Profile::default())).await.unwrap();
    let callback = common::approve(&client, &sandbox.url(), conn["linkUrl"].as_str().unwrap(), &account).await;
    let code = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    assert_eq!(client.get(&callback).send().await.unwrap().status().as_u16(), 303);
    let deadline = Instant::now() + Duration::from_secs(60);
    while hits.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the sync's read.completed.initial never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The console: a session.
    let res = client.post(format!("{base}/console/sign-in")).form(&[("apiKey", api_key.expose_secret())]).send().await.unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let session = cookie.split_once('=').unwrap().1.to_owned();
    assert_eq!(client.get(format!("{base}/console")).header("cookie", &cookie).send().await.unwrap().status().as_u16(), 200);

    let _ = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    assert!(server.wait().unwrap().success());
    sandbox.stop().await;
    let logs = std::fs::read_to_string(&log_path).unwrap();
    if let Ok(to) = std::env::var("KEEP_LOGS") {
        std::fs::write(to, &logs).unwrap();
    }

    // Every line is a JSON object with the fields a log pipeline keys on.
    let lines: Vec<Value> = logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.len() > 50, "debug level logs the run: {} lines", lines.len());
    for l in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(l.get(key).is_some(), "{key} missing: {l}");
        }
        // Tributary's own lines say what happened in `message` (libraries may log fields only,
        // as sqlx's statement lines do).
        if l["target"].as_str().is_some_and(|t| t.starts_with("tributary")) {
            assert!(l["message"].is_string(), "no message: {l}");
        }
    }
    let in_span = |span: &str, field: &str| {
        lines.iter().any(|l| l["spans"].as_array().is_some_and(|s| s.iter().any(|x| x["name"] == span && x.get(field).is_some())))
    };
    assert!(in_span("request", "correlation_id"), "request lines carry the correlation id");
    assert!(in_span("sync", "connection.id"), "sync lines carry the connection");
    assert!(in_span("pull", "pull.id") && in_span("pull", "sync.data_type"), "pull lines carry the pull and its data type");
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "debug lines are there");
    assert!(lines.iter().any(|l| l["message"] == "pull finished"), "the sync's own lines are there");

    // Not one secret or token, at any level.
    let secrets = [
        ("the API key", api_key.expose_secret().to_owned()),
        ("the master key", master.clone()),
        ("the platform's secret key", cfg.test_secret_key.clone()),
        ("the Connect webhook secret", cfg.webhook_secret.clone()),
        ("the consumer's signing secret", signing.clone()),
        ("the signing secret's key", signing.trim_start_matches("whsec_").to_owned()),
        ("the OAuth code", code.clone()),
        ("the console session", session.clone()),
    ];
    for (what, value) in &secrets {
        assert!(!logs.contains(value.as_str()), "{what} is in the logs");
    }
    // Tokens whose values the test cannot see (the grant's access and refresh tokens): by shape.
    for shape in ["sk_test_", "sk_live_", "rk_test_", "rt_", "whsec_", "ac_"] {
        for (i, line) in logs.lines().enumerate() {
            let hit = line.match_indices(shape).any(|(at, _)| {
                let before = line[..at].chars().last();
                let tail: String = line[at + shape.len()..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && tail.len() >= 8
            });
            assert!(!hit, "a token shaped {shape}… on log line {i}: {line}");
        }
    }
}
