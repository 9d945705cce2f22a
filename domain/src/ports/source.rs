//! The commerce data source port: pages of mapped records, changes since a cursor, and fetch by id.

use crate::model::commerce::CommerceRecord;
use crate::model::data_type::DataType;
pub use crate::model::record::{Estimate, StagedItem};
use crate::ports::oauth::PlatformCredentials;
use async_trait::async_trait;
use std::time::Duration;

/// One page of one partition of a backfill.
#[derive(Debug, Clone, Default)]
pub struct RecordPage {
    /// Mapped records.
    pub records: Vec<CommerceRecord>,
    /// Items to keep for a later stage of the same backfill (stored with the page).
    pub staged: Vec<StagedItem>,
    /// The partition's cursor for its next page; `None` when the partition is done.
    pub next_cursor: Option<String>,
    /// The partition's work after this page.
    pub estimate: Estimate,
}

/// A partition of a backfill as the source plans or splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    /// Partitions of a stage start once every partition of the earlier stages is done (for
    /// Stripe's products: prices first, then products).
    pub stage: u16,
    /// The source's cursor for the partition's first page (opaque to the engine).
    pub cursor: String,
    /// The source's estimate of the partition's work.
    pub estimate: Estimate,
}

/// Items staged by earlier pages of the same backfill, looked up by key (the engine provides it
/// over storage).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait StagedLookup: Send + Sync {
    /// Every staged item under any of `keys`.
    ///
    /// # Errors
    /// A [`SourceError::Fetch`] naming the storage failure.
    async fn staged(&self, keys: Vec<String>) -> Result<Vec<StagedItem>, SourceError>;
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
    /// The merchant's access was revoked (→ `AuthError`; a linked connection becomes
    /// `Deauthorized`).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The platform's own credentials were refused (a wrong or rotated secret key): nothing about
    /// the merchant (→ `InternalError`; the connection stays linked and the integration says so).
    #[error("the platform's secret key was refused: {0}")]
    PlatformAuth(String),
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
///
/// A backfill is planned as partitions ([`CommerceDataSource::plan_backfill`]) that the engine
/// pages at the same time, each from its own cursor ([`CommerceDataSource::list_page`]); a
/// partition with much left can be split ([`CommerceDataSource::split`]) when the engine has room
/// for more pages at once. Together, the partitions of a plan (and of its splits) list every record
/// once, whatever happens at the source meanwhile; records created or changed after the plan are
/// picked up by following the change cursor taken before it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CommerceDataSource: Send + Sync {
    /// Plans a full backfill of `data_type`: its first partitions, in stages.
    ///
    /// # Errors
    /// A [`SourceError`] once retries are exhausted.
    async fn plan_backfill(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
    ) -> Result<Vec<PlannedPartition>, SourceError>;

    /// The next page of the partition at `cursor` (items staged by earlier stages are read through
    /// `staged`).
    ///
    /// # Errors
    /// A [`SourceError`] once retries are exhausted.
    async fn list_page(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: String,
        staged: std::sync::Arc<dyn StagedLookup>,
    ) -> Result<RecordPage, SourceError>;

    /// How many pages of the account the source can usefully fetch at once (what keeps its rate
    /// busy at the current latency); `usize::MAX` when only the caller's resources bound it. No
    /// I/O.
    fn parallelism(&self, creds: &PlatformCredentials, account_id: &str) -> usize;

    /// Splits what is left of the partition at `cursor` into at most `parts` partitions of the
    /// same stage, the first of which replaces it (it continues where the partition stood). Empty
    /// when the rest is too small to be worth splitting, cannot be split, or when more pages of
    /// the account at once would not go faster (its rate budget is spoken for: fewer parts then).
    /// No I/O.
    fn split(
        &self,
        creds: &PlatformCredentials,
        account_id: &str,
        data_type: DataType,
        cursor: &str,
        parts: usize,
    ) -> Vec<PlannedPartition>;

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
