//! The official `stripe` Python library (PyPI) against the sandbox: auto-pagination across pages,
//! balance, account, typed errors and an OAuth exchange (`tests/sdk/stripe_sandbox.py`).
//!
//! The interpreter comes from `TRIBUTARY_STRIPE_PYTHON` (a venv with `stripe` installed; `.ci/run`
//! makes it). Without it the test is reported as skipped on stderr, unless
//! `TRIBUTARY_REQUIRE_SDK=1` (CI), which makes a missing venv a failure.

use std::io::Write;
use stripe_sandbox::{Config, Mode, Profile};

#[tokio::test]
async fn the_official_stripe_python_library_paginates_and_reads_the_balance_without_errors() {
    let python = match std::env::var("TRIBUTARY_STRIPE_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var("TRIBUTARY_REQUIRE_SDK").as_deref() != Ok("1"),
                "TRIBUTARY_STRIPE_PYTHON is not set but TRIBUTARY_REQUIRE_SDK=1"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED python_stripe: set TRIBUTARY_STRIPE_PYTHON to a Python with `stripe` installed (see .ci/run)"
            );
            return;
        }
    };
    let config = Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() };
    let running = stripe_sandbox::start(config.clone()).await.unwrap();
    let profile = Profile { customers: 11, charges: 25, ..Profile::default() };
    let s = running.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(5), true, &profile)).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdk/stripe_sandbox.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .env("SANDBOX_URL", running.url())
        .env("SANDBOX_SECRET_KEY", &config.test_secret_key)
        .env("SANDBOX_CLIENT_ID", &config.test_client_id)
        .env("SANDBOX_ACCOUNT", &account)
        .env("SANDBOX_CUSTOMERS", "11")
        .output()
        .await
        .unwrap();
    running.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the stripe library run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}
