//! Prometheus metrics (docs/operations.md): the recorder, installed once per process, every
//! metric described, the HTTP layer's metrics, and `/metrics`, which refreshes the gauges that are
//! read from the database (the backlog) and the pools at scrape time.
//!
//! The sync's, pulls' and webhooks' metrics are recorded where they happen, in the domain
//! (`tributary_domain::metrics`) and the Stripe adapter, through the `metrics` facade.

use crate::store::Store;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, Mutex};
use tributary_domain::metrics as domain;
use tributary_domain::service::Platform;

/// API requests by route template, method and status.
pub const HTTP_REQUESTS: &str = "tributary_http_requests_total";
/// API request latency by route template and method.
pub const HTTP_DURATION: &str = "tributary_http_request_duration_seconds";
/// Pulls `Queued` in the database.
pub const PULLS_QUEUED: &str = "tributary_pulls_queued";
/// Pulls `Fetching` in the database.
pub const PULLS_RUNNING: &str = "tributary_pulls_running";
/// How long the oldest queued pull has waited.
pub const OLDEST_QUEUED: &str = "tributary_oldest_queued_pull_age_seconds";
/// Webhook deliveries pending.
pub const WEBHOOKS_PENDING: &str = "tributary_webhook_deliveries_pending";
/// How long the oldest pending delivery has waited.
pub const WEBHOOK_OLDEST: &str = "tributary_webhook_oldest_pending_age_seconds";
/// Database connections by state (`idle`, `in_use`).
pub const DB_POOL: &str = "tributary_db_pool_connections";
/// 1, with the version as a label.
pub const BUILD_INFO: &str = "tributary_build_info";
/// Time the Stripe requests spent waiting for the client-side limiter (rendered at scrape time:
/// a counter of seconds, which the facade's integer counters cannot carry).
pub const THROTTLE_WAIT: &str = "tributary_stripe_throttle_wait_seconds_total";

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The process's recorder: installed by the first call, shared by every later one (a process
/// may serve more than once, as tests do, at the same time; the counters are the process's).
///
/// # Errors
/// When another recorder was installed first.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut installed = HANDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(h) = installed.as_ref() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_DURATION.into()),
            &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(tributary_stripe::source::REQUEST_DURATION.into()),
            &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 80.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(domain::PULL_DURATION.into()),
            &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0, 24.0 * 3600.0],
        )?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| anyhow::anyhow!("another metrics recorder is installed"))?;
    describe();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    *installed = Some(handle.clone());
    Ok(handle)
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "API requests by matched route template, method and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "API request latency by matched route template and method.");
    describe_counter!(domain::SYNC_RECORDS, "Records written by the sync, by data type and operation (upsert, delete).");
    describe_counter!(
        tributary_stripe::source::REQUESTS,
        "Stripe requests by endpoint (path template) and HTTP status (error: no answer)."
    );
    describe_histogram!(tributary_stripe::source::REQUEST_DURATION, Unit::Seconds, "Stripe request latency by endpoint.");
    describe_counter!(tributary_stripe::source::RATE_LIMITED, "429 answers received from Stripe.");
    describe_counter!(domain::PULL_OPERATIONS, "Finished pull operations by data type and final status.");
    describe_histogram!(domain::PULL_DURATION, Unit::Seconds, "Time from a pull's request to its end, by data type.");
    describe_gauge!(PULLS_QUEUED, "Pulls queued, across the database.");
    describe_gauge!(PULLS_RUNNING, "Pulls fetching, across the database.");
    describe_gauge!(OLDEST_QUEUED, Unit::Seconds, "How long the oldest queued pull has waited (0 when none is).");
    describe_counter!(domain::KEY_REFUSED, "Pulls ended because the source refused an integration's platform secret key, by integration.");
    describe_counter!(domain::WEBHOOK_DELIVERIES, "Webhook delivery attempts by outcome (delivered, failed, gave_up).");
    describe_gauge!(WEBHOOKS_PENDING, "Webhook deliveries pending (first attempt or a retry), across the database.");
    describe_gauge!(WEBHOOK_OLDEST, Unit::Seconds, "How long the oldest pending webhook delivery has existed (0 when none is).");
    describe_gauge!(DB_POOL, "Database connections of this instance by state (idle, in_use).");
    describe_gauge!(BUILD_INFO, "1, labelled with the version.");
}

/// What `/metrics` reads at scrape time.
#[derive(Clone)]
pub struct Scrape {
    /// The process's recorder.
    pub handle: PrometheusHandle,
    /// The backlog, read from the database.
    pub platform: Platform,
    /// The pools.
    pub store: Store,
    /// The Stripe data source (its limiter's waiting time).
    pub source: Arc<tributary_stripe::StripeDataSource>,
}

impl Scrape {
    /// The exposition text: the gauges refreshed first. A database that does not answer leaves
    /// the backlog gauges as they were (the scrape still answers; `/ready` says what is wrong).
    pub async fn render(&self) -> String {
        match tokio::time::timeout(std::time::Duration::from_secs(2), self.platform.console().backlog()).await {
            Ok(Ok(b)) => {
                let now = chrono::Utc::now();
                let age = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
                metrics::gauge!(PULLS_QUEUED).set(b.pulls_queued as f64);
                metrics::gauge!(PULLS_RUNNING).set(b.pulls_running as f64);
                metrics::gauge!(OLDEST_QUEUED).set(age(b.oldest_queued));
                metrics::gauge!(WEBHOOKS_PENDING).set(b.webhooks_pending as f64);
                metrics::gauge!(WEBHOOK_OLDEST).set(age(b.oldest_pending));
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot read the backlog"),
            Err(_) => tracing::warn!("metrics: the backlog query took over 2 s"),
        }
        let (idle, in_use) = self.store.pool_connections();
        metrics::gauge!(DB_POOL, "state" => "idle").set(f64::from(idle));
        metrics::gauge!(DB_POOL, "state" => "in_use").set(f64::from(in_use));
        let mut text = self.handle.render();
        let waited = self.source.stats().throttle_wait.as_secs_f64();
        text.push_str(&format!(
            "# HELP {THROTTLE_WAIT} Time Stripe requests spent waiting for the client-side limiter.\n# TYPE {THROTTLE_WAIT} counter\n{THROTTLE_WAIT} {waited}\n"
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric Tributary exports, by name.
    fn exported() -> Vec<&'static str> {
        vec![
            HTTP_REQUESTS,
            HTTP_DURATION,
            domain::SYNC_RECORDS,
            tributary_stripe::source::REQUESTS,
            tributary_stripe::source::REQUEST_DURATION,
            tributary_stripe::source::RATE_LIMITED,
            THROTTLE_WAIT,
            domain::PULL_OPERATIONS,
            domain::PULL_DURATION,
            PULLS_QUEUED,
            PULLS_RUNNING,
            OLDEST_QUEUED,
            domain::WEBHOOK_DELIVERIES,
            domain::KEY_REFUSED,
            WEBHOOKS_PENDING,
            WEBHOOK_OLDEST,
            DB_POOL,
            BUILD_INFO,
        ]
    }

    fn names_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for (at, _) in text.match_indices("tributary_") {
            let name: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let base = ["_bucket", "_count", "_sum"].iter().fold(name.clone(), |n, s| n.strip_suffix(s).map_or(n.clone(), str::to_owned));
            out.insert(base);
        }
        out
    }

    #[test]
    fn the_operations_guide_lists_every_metric_and_the_dashboard_uses_only_them() {
        let doc = include_str!("../../../docs/operations.md");
        for name in exported() {
            assert!(doc.contains(&format!("| `{name}` |")), "docs/operations.md does not describe {name}");
        }
        let dashboard = include_str!("../../../docs/grafana/tributary.json");
        let _: serde_json::Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
        let known: std::collections::BTreeSet<String> = exported().into_iter().map(str::to_owned).collect();
        let used = names_in(dashboard);
        assert!(used.len() >= 12, "the dashboard uses most metrics: {used:?}");
        let unknown: Vec<_> = used.difference(&known).collect();
        assert!(unknown.is_empty(), "the dashboard uses metrics Tributary does not export: {unknown:?}");
        let alerts = doc.split("## Alerts").nth(1).unwrap().split("## Dashboard").next().unwrap();
        let unknown: Vec<_> = names_in(alerts).into_iter().filter(|n| !known.contains(n)).collect();
        assert!(unknown.is_empty(), "the alert rules use metrics Tributary does not export: {unknown:?}");
    }
}
