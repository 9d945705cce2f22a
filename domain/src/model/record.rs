//! Stored commerce records and sync checkpoints.

use crate::ids::PullOperationId;
use chrono::{DateTime, Utc};

/// One commerce record as stored: the Codat JSON document and the columns reads filter on.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The source's id (`cus_…`, `txn_…:Stripe processing fees`).
    pub id: String,
    /// Created at the source.
    pub created: Option<DateTime<Utc>>,
    /// Last changed at the source.
    pub source_modified: Option<DateTime<Utc>>,
    /// The record in Codat's shape, without `modifiedDate` (set from the stored column on read).
    pub document: serde_json::Value,
    /// Deleted at the source: hidden from reads.
    pub deleted: bool,
}

/// A stored record with the time Tributary last changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    /// The record.
    pub record: StoredRecord,
    /// When Tributary last changed it (`modifiedDate`).
    pub modified: DateTime<Utc>,
}

/// A live record as a list page serves it: its document as the stored JSON text (an object
/// without `modifiedDate`), which a page passes through without parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    /// The source's id.
    pub id: String,
    /// Created at the source.
    pub created: Option<DateTime<Utc>>,
    /// When Tributary last changed it (`modifiedDate`).
    pub modified: DateTime<Utc>,
    /// The document's JSON text.
    pub document: String,
}

/// Where a data type's sync stands on a connection, saved with every page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The pull this backfill belongs to (a new pull starts from the beginning).
    pub pull_id: PullOperationId,
    /// Cursor for the next backfill page; `None` once the backfill is done.
    pub cursor: Option<String>,
    /// Pages written so far.
    pub pages: u32,
    /// Records written so far.
    pub records: u64,
    /// The source's change cursor to follow once the backfill is done (taken before it starts, so
    /// nothing that changes during the backfill is missed).
    pub incremental: Option<String>,
}
