//! Conformance with the official Codat Platform SDKs from PyPI: a real `tributary-api` process is
//! driven by `tests/sdk/platform_conformance.py` under codat-platform 6.0.0 and 4.0.0.
//!
//! The Python interpreters come from `TRIBUTARY_SDK_PYTHON_PLATFORM6` / `…_PLATFORM4` (venvs with
//! the SDK installed; `.ci/run` makes them). Without them the tests are reported as skipped on
//! stderr, unless `TRIBUTARY_REQUIRE_SDK=1` (CI), which makes a missing venv a failure.

use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tributary_api::crypto::AesGcmCipher;
use tributary_api::store::Store;
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::service::IntegrationUpdate;

const KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

fn python(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(std::env::var("TRIBUTARY_REQUIRE_SDK").as_deref() != Ok("1"), "{var} is not set but TRIBUTARY_REQUIRE_SDK=1");
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: set {var} to a Python with the Codat SDK installed (see .ci/run)");
            None
        }
    }
}

async fn run_sdk(python: &str) {
    // Unlinking revokes access at Stripe: a sandbox stands in for it.
    let sandbox = stripe_sandbox::start(stripe_sandbox::Config { listen: "127.0.0.1:0".into(), ..Default::default() }).await.unwrap();
    let sb = sandbox.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || sb.create_account(stripe_sandbox::Mode::Test, Some(9), true, &Default::default()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/sdk.db", dir.path().display());
    // Prepare the instance as an operator would with the CLI: a key, Stripe Test enabled, and a
    // company whose connection is Linked (linking itself arrives with the Link flow).
    let store = Store::open(&db).await.unwrap();
    let platform = tributary_api::compose::platform(
        &store,
        std::sync::Arc::new(AesGcmCipher::new(&tributary_api::config::decode_master_key(KEY).unwrap(), &[])),
        "http://127.0.0.1",
        true,
    )
    .unwrap();
    let api_key = tributary_api::generate_api_key();
    platform.api_keys().create(Some("sdk".into()), &api_key).await.unwrap();
    platform
        .integrations()
        .update(
            "yzth",
            IntegrationUpdate {
                client_id: Some("ca_sandbox_test".into()),
                secret_key: Some(SecretString::from("sk_test_sandbox_platform")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    platform.integrations().set_enabled("yzth", true).await.unwrap();
    let linked = platform
        .companies()
        .create(tributary_domain::model::company::CompanyFields::new("Linked Merchant", None, Default::default()).unwrap())
        .await
        .unwrap();
    let conn = platform.connections().create(linked.company.id, "yzth").await.unwrap();
    let mut stored = platform.repositories().connections.find(conn.id).await.unwrap().unwrap();
    stored.transition(ConnectionStatus::Linked).unwrap();
    stored.source_account = Some(account);
    platform.repositories().connections.update(&stored, &[]).await.unwrap();
    store.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tributary-api"))
        .env("TRIBUTARY_MASTER_KEY", KEY)
        .env("TRIBUTARY_DATABASE_URL", &db)
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIBUTARY_STRIPE__CONNECT_BASE", sandbox.url())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tributary-api did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdk/platform_conformance.py");
    let out = Command::new(python)
        .arg(script)
        .env("TRIBUTARY_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("TRIBUTARY_API_KEY", api_key.expose_secret())
        .env("TRIBUTARY_LINKED_COMPANY_ID", linked.company.id.to_string())
        .env("TRIBUTARY_LINKED_CONNECTION_ID", conn.id.to_string())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    sandbox.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the SDK run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codat_platform_6_sdk_drives_companies_connections_and_settings_without_errors() {
    if let Some(py) = python("TRIBUTARY_SDK_PYTHON_PLATFORM6", "codat_platform_6") {
        run_sdk(&py).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codat_platform_4_sdk_drives_companies_connections_and_settings_without_errors() {
    if let Some(py) = python("TRIBUTARY_SDK_PYTHON_PLATFORM4", "codat_platform_4") {
        run_sdk(&py).await;
    }
}
