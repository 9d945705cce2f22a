//! The operator console's own model: sign-in sessions and the overview's figures.
//!
//! A session belongs to the API key that signed in; it is stored only as the SHA-256 hash of its
//! token (the cookie holds the token), and it ends with its key: deleting the key deletes its
//! sessions.

use crate::ids::{ApiKeyId, CompanyId, ConnectionId};
use crate::model::data_type::DataType;
use crate::model::pull::DatasetStatus;
use chrono::{DateTime, Utc};

/// A console session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Lower-case hex SHA-256 of the session token.
    pub hash: String,
    /// The API key that signed in.
    pub api_key_id: ApiKeyId,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When it was last used.
    pub last_seen: DateTime<Utc>,
}

/// A data type whose latest finished pull failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingDataType {
    /// The company.
    pub company_id: CompanyId,
    /// Its name.
    pub company_name: String,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The data type.
    pub data_type: DataType,
    /// The failed pull's status.
    pub status: DatasetStatus,
    /// Its error message.
    pub error_message: Option<String>,
    /// When it ended.
    pub completed: DateTime<Utc>,
}

/// The work waiting across the whole database (every instance's), for the metrics' gauges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Pulls `Queued`.
    pub pulls_queued: u64,
    /// Pulls `Fetching`.
    pub pulls_running: u64,
    /// When the oldest queued pull was requested.
    pub oldest_queued: Option<DateTime<Utc>>,
    /// Webhook deliveries `Pending` (waiting for their first attempt or a retry) to enabled
    /// consumers (a disabled consumer's deliveries wait for it to be enabled: paused, not late).
    pub webhooks_pending: u64,
    /// When the oldest of those was created.
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// What the console's overview shows, read at one time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overview {
    /// Companies in all.
    pub companies: u64,
    /// Connections by status name (`Linked`, `PendingAuth`, …), by name.
    pub connections_by_status: Vec<(String, u64)>,
    /// Pulls requested since the window's start, by status name.
    pub pulls_by_status: Vec<(String, u64)>,
    /// Data types whose latest finished pull failed (newest first, at most 50).
    pub failing: Vec<FailingDataType>,
    /// Webhook deliveries by status name (`Pending`, `Delivered`, `Failed`).
    pub deliveries_by_status: Vec<(String, u64)>,
    /// Records written per minute since the window's start (minutes without writes are absent),
    /// by each record's last write.
    pub records_per_minute: Vec<(DateTime<Utc>, u64)>,
}

impl Overview {
    /// The count of `status` in `counts` (0 when absent).
    pub fn count(counts: &[(String, u64)], status: &str) -> u64 {
        counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n)
    }
}
