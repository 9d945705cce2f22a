//! The metrics the use cases record, through the `metrics` facade (no recorder here: the app
//! installs one, and without it these are no-ops). The names are an interface — dashboards and
//! alerts are written against them (docs/operations.md) — so they live here, once.

use crate::model::data_type::DataType;
use crate::model::pull::PullOperation;

/// Records written by the sync, by data type and operation (`upsert`, `delete`).
pub const SYNC_RECORDS: &str = "tributary_sync_records_total";
/// Finished pulls by data type and final status.
pub const PULL_OPERATIONS: &str = "tributary_pull_operations_total";
/// Time from a pull's request to its end, by data type (`NotSupported` pulls aside).
pub const PULL_DURATION: &str = "tributary_pull_duration_seconds";
/// Webhook delivery attempts by outcome (`delivered`, `failed`, `gave_up`).
pub const WEBHOOK_DELIVERIES: &str = "tributary_webhook_deliveries_total";
/// Pulls ended because the source refused an integration's platform secret key, by integration.
pub const KEY_REFUSED: &str = "tributary_integration_key_refused_total";

/// A pull ended because the source refused the platform key's secret key.
pub fn key_refused(platform_key: &str) {
    metrics::counter!(KEY_REFUSED, "integration" => platform_key.to_owned()).increment(1);
}

/// A page (or a batch of changes) was written: `upserts` records stored, `deletes` marked deleted.
pub fn records_written(data_type: DataType, upserts: u64, deletes: u64) {
    if upserts > 0 {
        metrics::counter!(SYNC_RECORDS, "data_type" => data_type.key(), "operation" => "upsert").increment(upserts);
    }
    if deletes > 0 {
        metrics::counter!(SYNC_RECORDS, "data_type" => data_type.key(), "operation" => "delete").increment(deletes);
    }
}

/// A pull reached its final status (after the write that says so committed).
pub fn pull_finished(op: &PullOperation) {
    let key = op.data_type.key();
    metrics::counter!(PULL_OPERATIONS, "data_type" => key, "status" => op.status.as_str()).increment(1);
    // A type the integration lacks ends as it is requested: no duration to speak of.
    if let Some(done) = op.completed.filter(|_| op.status != crate::model::pull::DatasetStatus::NotSupported) {
        let seconds = (done - op.requested).num_microseconds().unwrap_or(0).max(0);
        #[allow(clippy::cast_precision_loss)]
        metrics::histogram!(PULL_DURATION, "data_type" => key).record(seconds as f64 / 1e6);
    }
}

/// What became of one webhook delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed; another attempt is scheduled.
    Failed,
    /// It failed and no attempt is left (or the consumer was failing for too long).
    GaveUp,
}

/// A webhook delivery attempt was recorded.
pub fn webhook_attempt(outcome: DeliveryOutcome) {
    let label = match outcome {
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::Failed => "failed",
        DeliveryOutcome::GaveUp => "gave_up",
    };
    metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
}
