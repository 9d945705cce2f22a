//! The sync engine under Stripe's failure modes, end to end against the sandbox: injected 429s,
//! 500s and dropped connections still end every data type `Complete`, with exactly the data a
//! fault-free sync stores.

mod common;

use common::reference::{assert_same, sync_account, without_account};
use serde_json::{Value, json};
use stripe_sandbox::{Config, Mode, Profile};
use tributary_domain::model::pull::DatasetStatus;

async fn put_faults(http: &reqwest::Client, sandbox: &str, faults: Value) {
    // The control endpoints are subject to the faults themselves: retry until one gets through.
    for _ in 0..200 {
        let sent = if faults.is_null() {
            http.delete(format!("{sandbox}/_sandbox/faults")).send().await
        } else {
            http.put(format!("{sandbox}/_sandbox/faults")).json(&faults).send().await
        };
        if sent.is_ok_and(|r| r.status().is_success()) {
            return;
        }
    }
    panic!("could not set the sandbox's faults to {faults}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_through_429s_500s_and_dropped_connections_ends_complete_with_identical_data() {
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    let url = sandbox.url();
    let profile = Profile { customers: 120, charges: 300, refunds: 40, disputes: 20, products: 15, prices: 40, payouts: 12 };
    // Two merchants generated from the same seed: the same objects under two account ids.
    let (s1, s2) = (sandbox.sandbox.clone(), sandbox.sandbox.clone());
    let calm = tokio::task::spawn_blocking(move || s1.create_account(Mode::Test, Some(77), true, &profile)).await.unwrap();
    let stormy = tokio::task::spawn_blocking(move || s2.create_account(Mode::Test, Some(77), true, &profile)).await.unwrap();

    let (want, statuses, calm_stats) = sync_account(&url, &calm).await;
    assert!(statuses.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{statuses:?}");
    assert_eq!(calm_stats.retries, 0, "no faults, no retries");
    assert!(want.len() > 300, "{} records", want.len());

    let http = reqwest::Client::new();
    put_faults(&http, &url, json!({"endpoints": {"*": {"p429": 0.2, "p500": 0.05, "p_drop": 0.05, "p_truncate": 0.02}}})).await;
    let (got, statuses, stats) = sync_account(&url, &stormy).await;
    put_faults(&http, &url, Value::Null).await;

    assert!(statuses.iter().all(|(_, s, _)| *s == DatasetStatus::Complete), "{statuses:?}");
    // About 3 in 10 attempts fail, so about 4 retries per 10 requests; at least some must show.
    assert!(stats.retries * 10 >= calm_stats.requests, "the faults were hit: {stats:?} against {calm_stats:?} without faults");
    assert_same(&without_account(got, &stormy), &without_account(want, &calm));
    sandbox.stop().await;
}
