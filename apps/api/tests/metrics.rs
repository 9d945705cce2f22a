//! `/metrics` after a real run: a merchant linked and synced from the sandbox, a forced 429, a
//! webhook receiver that fails. The exposition is parsed by the Prometheus reference client's
//! parser (`prometheus_client` from PyPI; `TRIBUTARY_METRICS_PYTHON`), and the values are checked
//! against what the run did: records stored, pull history, the sandbox's request counters,
//! webhook attempts.
//!
//! One test in its own binary: the recorder is per process, so no other server may count here.

mod common;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};
use stripe_sandbox::{Config, Profile};

fn python() -> Option<String> {
    let p = std::env::var("TRIBUTARY_METRICS_PYTHON").ok().filter(|p| !p.is_empty());
    if p.is_none() {
        assert!(
            std::env::var("TRIBUTARY_REQUIRE_SDK").as_deref() != Ok("1"),
            "TRIBUTARY_METRICS_PYTHON missing but TRIBUTARY_REQUIRE_SDK=1"
        );
        let _ =
            writeln!(std::io::stderr(), "SKIPPED metrics: set TRIBUTARY_METRICS_PYTHON to a Python with prometheus-client (see .ci/run)");
    }
    p
}

/// Samples by name, each as (labels, value).
struct Scraped {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scraped {
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| n == name && want.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }
    fn series(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples.iter().filter(|(n, _, _)| n == name).map(|(_, l, v)| (l.clone(), *v)).collect()
    }
}

async fn scrape(api: &common::TestServer, python: &str) -> (String, Scraped) {
    let res = api.client.get(format!("{}/metrics", api.base)).header("Authorization", api.auth()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = res.text().await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/metrics/parse.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).await.unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "the exposition does not parse: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let types = parsed["types"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
    let samples = parsed["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["labels"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
            (s["name"].as_str().unwrap().to_owned(), labels, s["value"].as_f64().unwrap())
        })
        .collect();
    (text, Scraped { types, samples })
}

/// A receiver answering `status` to every delivery.
async fn receiver(status: u16) -> String {
    let app =
        axum::Router::new().route("/hook", axum::routing::post(move || async move { axum::http::StatusCode::from_u16(status).unwrap() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_link_sync_and_webhook_run_match_what_happened() {
    let Some(python) = python() else { return };
    let sandbox = stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, ..Config::default() }).await.unwrap();
    // Two attempts, 100 ms apart: the failing receiver's deliveries end given up quickly.
    let fast =
        tributary_domain::service::DeliveryOptions { schedule: vec![Duration::ZERO, Duration::from_millis(100)], ..Default::default() };
    let api = common::TestServer::start_with_webhooks(&sandbox.url(), fast).await;
    let (good, bad) = (receiver(204).await, receiver(500).await);
    let mut consumers = Vec::new();
    for url in [&good, &bad] {
        let (s, c) = api
            .post("/webhooks", json!({"url": url, "eventTypes": ["connection.connected", "read.completed.initial", "read.completed"]}))
            .await;
        assert_eq!(s, 201, "{c}");
        consumers.push(c["id"].as_str().unwrap().parse::<tributary_domain::ids::WebhookConsumerId>().unwrap());
    }
    let (company, connection, account) = common::link_and_sync(&api, &sandbox, Profile::default()).await;

    // Forced 429s: a refresh of customers (which follows the changes since the first sync, so
    // lists events) ends rate limited.
    let http = reqwest::Client::new();
    let faults = json!({"endpoints": {"GET /v1/events": {"p429": 1.0}}});
    assert!(http.put(format!("{}/_sandbox/faults", sandbox.url())).json(&faults).send().await.unwrap().status().is_success());
    let (s, _) = api.post(&format!("/companies/{company}/data/queue/commerce-customers"), json!({})).await;
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, st) = api.get(&format!("/companies/{company}/dataStatus")).await;
        if st["commerce-customers"]["currentStatus"] == "RateLimitError" {
            break;
        }
        assert!(Instant::now() < deadline, "the forced 429s did not end the pull: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    http.delete(format!("{}/_sandbox/faults", sandbox.url())).send().await.unwrap();

    // Every delivery to the failing receiver has given up, and the good one has all of its: one per
    // event of the subscribed types in the outbox (the rate-limited pull's `read.completed` may be
    // fanned out after the other deliveries have settled).
    let subscribed = ["connection.connected", "read.completed.initial", "read.completed"];
    let deadline = Instant::now() + Duration::from_secs(30);
    let (good_n, bad_n) = loop {
        let events = api.platform.webhooks().recent_events(1000).await.unwrap();
        let want = events.iter().filter(|e| subscribed.contains(&e.event_type.as_str())).count() as u64;
        let (_, g) = api.platform.webhooks().attempts(consumers[0], 1000).await.unwrap();
        let (_, b) = api.platform.webhooks().attempts(consumers[1], 1000).await.unwrap();
        if g.pending == 0 && b.pending == 0 && b.failed == want && g.delivered == want && want > 0 {
            break (g, b);
        }
        assert!(Instant::now() < deadline, "deliveries did not settle: {g:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (bad_attempts, _) = api.platform.webhooks().attempts(consumers[1], 1000).await.unwrap();

    let (text, m) = scrape(&api, &python).await;
    if std::env::var("SHOW_METRICS").is_ok() {
        eprintln!("{text}");
    }

    // Records written per data type = records stored (a first sync writes each record once).
    let mut stored = 0.0;
    for dt in ["commerce-customers", "commerce-disputes", "commerce-payments", "commerce-products", "commerce-transactions"] {
        let (_, page) = api.get(&format!("/companies/{company}/connections/{connection}/data/{dt}?pageSize=1")).await;
        let n = page["totalResults"].as_f64().unwrap();
        assert!(n > 0.0, "{dt}");
        assert_eq!(m.sum("tributary_sync_records_total", &[("data_type", dt), ("operation", "upsert")]), n, "{dt}");
        stored += n;
    }
    assert_eq!(m.sum("tributary_sync_records_total", &[("data_type", "commerce-companyInfo"), ("operation", "upsert")]), 1.0);
    assert_eq!(m.sum("tributary_sync_records_total", &[("operation", "delete")]), 0.0);
    assert_eq!(m.sum("tributary_sync_records_total", &[]), stored + 1.0);
    assert_eq!(m.types["tributary_sync_records"], "counter");

    // Finished pulls by data type and status = the pull history.
    let (_, history) = api.get(&format!("/companies/{company}/data/history?pageSize=100")).await;
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    for op in history["results"].as_array().unwrap() {
        *want.entry((op["dataType"].as_str().unwrap().to_owned(), op["status"].as_str().unwrap().to_owned())).or_default() += 1.0;
    }
    let got: BTreeMap<(String, String), f64> =
        m.series("tributary_pull_operations_total").into_iter().map(|(l, v)| ((l["data_type"].clone(), l["status"].clone()), v)).collect();
    assert_eq!(got, want, "pulls by data type and status");
    let unsupported = want.iter().filter(|((_, s), _)| s == "NotSupported").map(|(_, n)| n).sum::<f64>();
    assert_eq!(unsupported, 5.0);
    assert_eq!(
        m.sum("tributary_pull_duration_seconds_count", &[]),
        history["totalResults"].as_f64().unwrap() - unsupported,
        "every finished pull but the unsupported ones has a duration"
    );

    // Stripe requests = the sandbox's counters for the account, endpoint by endpoint.
    let stats: Value = http.get(format!("{}/_sandbox/accounts/{account}/stats", sandbox.url())).send().await.unwrap().json().await.unwrap();
    let mut ours: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, v) in m.series("tributary_stripe_requests_total") {
        if labels["endpoint"].starts_with("/v1/") {
            *ours.entry(format!("GET {}", labels["endpoint"])).or_default() += v;
        }
    }
    let theirs: BTreeMap<String, f64> =
        stats["requests"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap())).collect();
    assert_eq!(ours, theirs, "Stripe API requests per endpoint");
    assert!(m.sum("tributary_stripe_requests_total", &[("endpoint", "/oauth/token"), ("status", "200")]) >= 1.0);
    let four29 = m.sum("tributary_stripe_requests_total", &[("endpoint", "/v1/events"), ("status", "429")]);
    assert!(four29 >= 1.0, "the forced 429s are counted");
    assert_eq!(m.sum("tributary_stripe_rate_limited_total", &[]), four29, "every 429 raises the rate-limited counter");
    assert_eq!(m.sum("tributary_stripe_request_duration_seconds_count", &[]), m.sum("tributary_stripe_requests_total", &[]));
    // Each 429 cut the account's rate and dropped its burst, so the retries waited for the limiter.
    assert!(m.sum("tributary_stripe_throttle_wait_seconds_total", &[]) > 0.0, "the limiter's waiting time is reported");
    assert_eq!(m.types["tributary_stripe_throttle_wait_seconds"], "counter");

    // Webhook attempts by outcome = the attempts recorded.
    let failed_attempts = bad_attempts.iter().filter(|a| !a.ok).count() as f64;
    assert_eq!(
        m.sum("tributary_webhook_deliveries_total", &[("outcome", "failed")])
            + m.sum("tributary_webhook_deliveries_total", &[("outcome", "gave_up")]),
        failed_attempts
    );
    assert_eq!(
        m.sum("tributary_webhook_deliveries_total", &[("outcome", "gave_up")]),
        bad_n.failed as f64,
        "each failed delivery gave up once"
    );
    assert_eq!(m.sum("tributary_webhook_deliveries_total", &[("outcome", "delivered")]), good_n.delivered as f64);
    assert_eq!(m.sum("tributary_webhook_deliveries_pending", &[]), 0.0);
    assert_eq!(m.sum("tributary_webhook_oldest_pending_age_seconds", &[]), 0.0);

    // The backlog, the pools, the build.
    assert_eq!(m.sum("tributary_pulls_queued", &[]), 0.0);
    assert_eq!(m.sum("tributary_pulls_running", &[]), 0.0);
    assert_eq!(m.sum("tributary_oldest_queued_pull_age_seconds", &[]), 0.0);
    assert!(
        m.sum("tributary_db_pool_connections", &[("state", "idle")]) + m.sum("tributary_db_pool_connections", &[("state", "in_use")])
            >= 1.0
    );
    assert_eq!(m.sum("tributary_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // HTTP: route templates, never raw ids.
    assert!(
        m.sum("tributary_http_requests_total", &[("route", "/companies/{companyId}/dataStatus"), ("method", "GET"), ("status", "200")])
            >= 1.0
    );
    assert!(m.sum("tributary_http_requests_total", &[("route", "/companies"), ("method", "POST"), ("status", "200")]) >= 1.0);
    for (labels, _) in m.series("tributary_http_requests_total") {
        assert!(!labels["route"].contains(&company) && !labels["route"].contains(&account), "{labels:?}");
    }
    assert!(!text.contains(&company), "no company id anywhere in the metrics");

    sandbox.stop().await;
}
