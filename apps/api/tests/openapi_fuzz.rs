//! The server fuzzed against its own `/openapi.json` by schemathesis (pinned in `.ci/run`), on
//! SQLite and on Postgres, with a merchant linked and synced so that every operation has data: no
//! 5xx, every response conforms to its declared schema and content type, and every status code
//! returned is declared. `TRIBUTARY_SCHEMATHESIS` names the `schemathesis` executable; without it
//! the test is skipped loudly, unless `TRIBUTARY_REQUIRE_SDK=1` (CI) makes that a failure.

mod common;

use common::TestServer;
use std::io::Write;
use stripe_sandbox::{Config, Profile};

fn schemathesis() -> Option<String> {
    match std::env::var("TRIBUTARY_SCHEMATHESIS") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("TRIBUTARY_REQUIRE_SDK").as_deref() != Ok("1"),
                "TRIBUTARY_REQUIRE_SDK=1 but TRIBUTARY_SCHEMATHESIS is not set"
            );
            let _ = writeln!(std::io::stderr(), "SKIPPED (no TRIBUTARY_SCHEMATHESIS): the OpenAPI fuzz test");
            None
        }
    }
}

/// Runs schemathesis against `api` with `extra` arguments, from a directory holding `config`.
async fn schemathesis_run(api: &TestServer, exe: &str, name: &str, config: &str, extra: &[&str]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config_file = dir.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let out = tokio::process::Command::new(exe)
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", &format!("{}/openapi.json", api.base)])
        .args(["--header", &format!("Authorization:{}", api.auth())])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        // No example database: nothing is written to the checkout, and runs do not share state.
        // One worker: with two threads, hypothesis's shared caches raced once and schemathesis
        // stopped with an internal KeyError (a "Runtime Error", not a finding about the API).
        .args(["--generation-database", "none", "--seed", "20261207", "--workers", "1"])
        .args(["--suppress-health-check", "all", "--no-color", "--request-timeout", "20"])
        .args(extra)
        .args(["--report", "junit", "--report-dir"])
        .arg(&dir)
        .current_dir(&dir)
        .output()
        .await
        .expect("schemathesis runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures on {name}:\n{text}");
    assert!(text.contains("passed"), "{text}");
}

/// Links and syncs a merchant on `api`, then fuzzes every operation (ids mostly unknown: 400s and
/// 404s), then reads every GET operation with the merchant's real ids, so that the typed commerce
/// bodies are checked against real records.
async fn fuzz(api: TestServer, sandbox: stripe_sandbox::Running, exe: &str, name: &str) {
    let profile = Profile { customers: 12, charges: 20, refunds: 3, disputes: 2, products: 3, prices: 6, payouts: 2 };
    let (company, connection, _) = common::link_and_sync(&api, &sandbox, profile).await;
    let mut ids = vec![("companyId".to_owned(), company.clone()), ("connectionId".to_owned(), connection.to_string())];
    for (dt, param) in [
        ("commerce-customers", "customerId"),
        ("commerce-disputes", "disputeId"),
        ("commerce-payments", "paymentId"),
        ("commerce-products", "productId"),
        ("commerce-transactions", "transactionId"),
    ] {
        let (_, page) = api.get(&format!("/companies/{company}/connections/{connection}/data/{dt}?pageSize=1")).await;
        ids.push((param.to_owned(), page["results"][0]["id"].as_str().expect("a record of each type").to_owned()));
    }
    let (_, history) = api.get(&format!("/companies/{company}/data/history?pageSize=1")).await;
    ids.push(("datasetId".to_owned(), history["results"][0]["id"].as_str().unwrap().to_owned()));
    ids.push(("platformKey".to_owned(), "yzth".to_owned()));

    schemathesis_run(&api, exe, &format!("{name}-all"), "", &["--phases", "examples,coverage,fuzzing", "--max-examples", "12"]).await;
    let mut config = String::from("[parameters]\n");
    for (k, v) in &ids {
        config.push_str(&format!("\"path.{k}\" = \"{v}\"\n"));
    }
    schemathesis_run(
        &api,
        exe,
        &format!("{name}-reads"),
        &config,
        &["--include-method", "GET", "--phases", "fuzzing", "--max-examples", "8", "--mode", "positive"],
    )
    .await;
    // The reads found the records (the run above would pass on 404s alone otherwise).
    let (s, _) = api.get(&format!("/companies/{company}/connections/{connection}/data/commerce-customers/{}", ids[2].1)).await;
    assert_eq!(s, 200);
    sandbox.stop().await;
}

fn configure(o: &mut tributary_api::ServeOptions) {
    // Thousands of requests from one key and fuzzed Authorization headers: the limits (tested on
    // their own in platform_api.rs) would turn most of the run into 429s.
    o.limits = tributary_api::http::limits::LimitSettings { per_key_per_minute: 0, failed_auth_per_minute: 0, trust_forwarded_for: false };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzing_the_openapi_document_on_sqlite_finds_no_5xx_and_no_undeclared_response() {
    let Some(exe) = schemathesis() else { return };
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let api = TestServer::start_configured(&sandbox.url(), configure).await;
    fuzz(api, sandbox, &exe, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzing_the_openapi_document_on_postgres_finds_no_5xx_and_no_undeclared_response() {
    let Some(exe) = schemathesis() else { return };
    let Some(admin) = tributary_tests::pg::admin_url("openapi_fuzz::postgres") else { return };
    let db = tributary_tests::pg::create_database(&admin).await;
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let api = TestServer::start_on(db.url(), tempfile::tempdir().unwrap(), &sandbox.url(), configure).await;
    fuzz(api, sandbox, &exe, "postgres").await;
    db.cleanup().await;
}
