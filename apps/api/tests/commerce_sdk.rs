//! The official Codat Commerce SDK (codat-commerce 0.35.0, with codat-platform 4.0.0 beside it)
//! against a server whose merchant was linked and synced through the sandbox
//! (`tests/sdk/commerce_conformance.py`).
//!
//! The interpreter comes from `TRIBUTARY_SDK_PYTHON_COMMERCE` (`.ci/run` makes the venv). Without
//! it the test is reported as skipped on stderr, unless `TRIBUTARY_REQUIRE_SDK=1` (CI).

mod common;

use std::io::Write;
use stripe_sandbox::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codat_commerce_sdk_reads_every_supported_data_type_without_errors() {
    let python = match std::env::var("TRIBUTARY_SDK_PYTHON_COMMERCE") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var("TRIBUTARY_REQUIRE_SDK").as_deref() != Ok("1"),
                "TRIBUTARY_SDK_PYTHON_COMMERCE is not set but TRIBUTARY_REQUIRE_SDK=1"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED codat_commerce_sdk: set TRIBUTARY_SDK_PYTHON_COMMERCE to a Python with codat-commerce installed (see .ci/run)"
            );
            return;
        }
    };
    let profile = Profile { customers: 30, charges: 120, refunds: 15, disputes: 12, products: 6, prices: 14, payouts: 6 };
    let (api, sandbox, company, connection, _account) = common::linked_and_synced(profile).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdk/commerce_conformance.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .env("TRIBUTARY_BASE_URL", &api.base)
        .env("TRIBUTARY_API_KEY", &api.key)
        .env("TRIBUTARY_COMPANY_ID", &company)
        .env("TRIBUTARY_CONNECTION_ID", connection.to_string())
        .output()
        .await
        .unwrap();
    sandbox.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the SDK run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}
