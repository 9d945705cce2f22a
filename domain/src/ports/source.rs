//! The commerce data source port: pages of mapped records, changes since a cursor, and fetch by id.

use crate::model::commerce::CommerceRecord;
use crate::model::data_type::DataType;
use crate::ports::oauth::PlatformCredentials;
use async_trait::async_trait;
use std::time::Duration;

/// One page of records from a full backfill.
#[derive(Debug, Clone)]
pub struct RecordPage {
    /// Mapped records.
    pub records: Vec<CommerceRecord>,
    /// Cursor for the next page; `None` when the backfill is done.
    pub next_cursor: Option<String>,
    /// How far the backfill has come, 0–100, when the source can tell.
    pub progress: Option<u8>,
}

/// Changes since an incremental cursor.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    /// Records created or changed.
    pub upserts: Vec<CommerceRecord>,
    /// Ids of records deleted at the source.
    pub deletions: Vec<String>,
    /// The cursor to continue from.
    pub cursor: String,
    /// The cursor was too old or had a gap: a full backfill is needed.
    pub needs_backfill: bool,
}

/// Why reading from the source failed; each maps to a pull-operation error status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Access revoked (→ `AuthError`).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Not permitted (→ `PermissionsError`).
    #[error("permission denied: {0}")]
    Permission(String),
    /// Missing endpoint or unreadable body (→ `FetchError`).
    #[error("fetch failed: {0}")]
    Fetch(String),
    /// Retries exhausted on rate limits (→ `RateLimitError`).
    #[error("rate limited: {message}")]
    RateLimited {
        /// What happened.
        message: String,
        /// How long the source asked to wait.
        retry_after: Option<Duration>,
    },
}

/// Reads one connected account's commerce data.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CommerceDataSource: Send + Sync {
    /// One page of a full backfill, newest first, from `cursor` (`None` = the start).
    ///
    /// # Errors
    /// A [`SourceError`] once retries are exhausted.
    async fn list_page(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: Option<String>,
    ) -> Result<RecordPage, SourceError>;

    /// Changes since `cursor`.
    ///
    /// # Errors
    /// A [`SourceError`] once retries are exhausted.
    async fn list_changes(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: String,
    ) -> Result<ChangeSet, SourceError>;

    /// Fetches records by source id.
    ///
    /// # Errors
    /// A [`SourceError`] once retries are exhausted.
    async fn fetch_by_ids(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        ids: Vec<String>,
    ) -> Result<Vec<CommerceRecord>, SourceError>;
}
