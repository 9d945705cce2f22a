//! The operator console and the Link pages in headless Chromium (selenium), with axe-core's
//! accessibility check on every page: a synced merchant on the overview and its company page, a
//! query in the data browser, a refresh that shows up in the pull history, a webhook consumer
//! created and deleted, CSRF refusal, escaping, sign-out and a deleted key's session.
//!
//! Needs what `link_browser.rs` needs, plus axe-core (`TRIBUTARY_AXE_JS`, or `npm ci` in
//! `tests/browser`, as `.ci/run` does). Screenshots of every page are written to
//! `<target>/browser-screenshots/console`.

mod common;

use serde_json::json;
use std::io::Write;
use stripe_sandbox::{Config, Profile};

fn axe_js() -> Option<String> {
    std::env::var("TRIBUTARY_AXE_JS").ok().filter(|p| !p.is_empty()).or_else(|| {
        let vendored = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/node_modules/axe-core/axe.min.js");
        std::path::Path::new(vendored).exists().then(|| vendored.to_owned())
    })
}

fn browser(test: &str) -> Option<(String, String)> {
    let python = common::browser(test)?;
    match axe_js() {
        Some(axe) => Some((python, axe)),
        None => {
            assert!(std::env::var("TRIBUTARY_REQUIRE_BROWSER").as_deref() != Ok("1"), "axe-core missing but TRIBUTARY_REQUIRE_BROWSER=1");
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: needs axe-core (TRIBUTARY_AXE_JS or `npm ci --prefix tests/browser`); see .ci/run"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_console_and_a_merchant_sees_branded_accessible_link_pages() {
    let Some((python, axe)) = browser("an_operator_runs_the_console_and_a_merchant_sees_branded_accessible_link_pages") else { return };
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let api = common::TestServer::start_with(&sandbox.url()).await;
    let (status, _) = api.call(reqwest::Method::PUT, "/profile", Some(json!({"name": "Acme Lending", "redirectUrl": ""}))).await;
    assert_eq!(status, 200);
    let (company, connection, account) = common::link_and_sync(&api, &sandbox, Profile::default()).await;
    let (_, hostile) = api.post("/companies", json!({"name": "Hostile", "description": "<script>alert(1)</script>"})).await;
    let (_, second) = api.post("/apiKeys", json!({"name": "second"})).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../browser-screenshots/console");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/console_flow.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .env("BASE", &api.base)
        .env("API_KEY", &api.key)
        .env("SECOND_KEY", second["apiKey"].as_str().unwrap())
        .env("SECOND_KEY_ID", second["id"].as_str().unwrap())
        .env("COMPANY_ID", &company)
        .env("CONNECTION_ID", connection.to_string())
        .env("ACCOUNT_ID", &account)
        .env("HOSTILE_COMPANY_ID", hostile["id"].as_str().unwrap())
        .env("BRAND", "Acme Lending")
        .env("SHOTS", &shots)
        .env("AXE_JS", &axe)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().last(), Some("ok"), "{stdout}");
    for page in ["sign-in", "overview", "companies", "company", "data-browser", "record", "webhooks", "settings", "link", "link-phone"] {
        assert!(shots.join(format!("{page}.png")).exists(), "screenshot of {page}");
    }
    sandbox.stop().await;
}
