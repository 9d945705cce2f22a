//! The Link flow in headless Chromium, as a merchant clicks through it: the company's Link page
//! (tributary-api), Stripe's consent page (the in-process stripe-sandbox), and back.
//!
//! Needs Debian's `chromium` and `chromium-driver` and a Python with `selenium`
//! (`TRIBUTARY_BROWSER_PYTHON`; `.ci/run` installs all three). Without them the tests are reported
//! as skipped on stderr, unless `TRIBUTARY_REQUIRE_BROWSER=1` (CI), which makes them mandatory.

mod common;

use common::TestServer;
use stripe_sandbox::{Config, Mode, Profile};

async fn run(decision: &str, python: &str) -> (TestServer, String, String, String) {
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let api = TestServer::start_with(&sandbox.url()).await;
    common::use_sandbox_keys(&api.platform).await;
    let company = api.company("Browser Shop").await;
    let s = sandbox.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(11), false, &Profile::default())).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/link_flow.py");
    let out = tokio::process::Command::new(python)
        .args([script, decision])
        .env("LINK_URL", format!("{}/link/{company}", api.base))
        .env("SANDBOX_ACCOUNT", &account)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let final_url = stdout.lines().last().unwrap_or_default().to_owned();
    sandbox.stop().await;
    (api, company, account, final_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_links_stripe_test_in_a_browser_and_the_api_shows_it_linked_with_queued_pulls() {
    let Some(python) = common::browser("a_merchant_links_stripe_test_in_a_browser") else { return };
    let (api, company, account, final_url) = run("authorize", &python).await;
    assert!(final_url.contains("/done?") && final_url.contains("statusCode=200"), "{final_url}");
    let (st, list) = api.get(&format!("/companies/{company}/connections")).await;
    assert_eq!(st, 200);
    let c = &list["results"][0];
    assert_eq!(c["status"], "Linked");
    assert_eq!(c["connectionInfo"]["stripeAccountId"], account.as_str());
    // The first pulls were queued at once (the server's worker may already be running them).
    let (_, history) = api.get(&format!("/companies/{company}/data/history?query=status%21%3DNotSupported")).await;
    assert_eq!(history["totalResults"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_who_denies_is_redirected_with_403_and_the_error_is_recorded() {
    let Some(python) = common::browser("a_merchant_who_denies_is_redirected_with_403") else { return };
    let (api, company, _account, final_url) = run("deny", &python).await;
    assert!(final_url.contains("statusCode=403"), "{final_url}");
    let (_, list) = api.get(&format!("/companies/{company}/connections")).await;
    let c = &list["results"][0];
    assert_eq!(c["status"], "PendingAuth");
    assert_eq!(c["dataConnectionErrors"][0]["statusCode"], "403");
    assert_eq!(c["dataConnectionErrors"][0]["errorMessage"], "User cancelled linking");
}
