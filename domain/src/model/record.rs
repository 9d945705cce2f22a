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

/// Where a data type's sync stands on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The pull the data type's latest backfill or change set belongs to (a new pull starts a new
    /// backfill or follows the changes).
    pub pull_id: PullOperationId,
    /// A backfill of this pull is under way: its [`PartitionState`]s hold where each part stands.
    /// `false` once the backfill is done, or after a change set.
    pub backfilling: bool,
    /// The source's change cursor to follow once the backfill is done (taken before it starts, so
    /// nothing that changes during the backfill is missed).
    pub incremental: Option<String>,
}

/// A data source's estimate of one partition's work, in objects it lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Objects listed so far.
    pub done: u64,
    /// Objects still to list (an estimate; 0 once the partition is done).
    pub left: u64,
}

/// One partition of a backfill as stored with every page: where it continues and how far it has
/// come. A killed worker resumes every unfinished partition at its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Its number within the backfill (unique per connection and data type).
    pub id: u32,
    /// Partitions of a stage start once every partition of the earlier stages is done.
    pub stage: u16,
    /// The source's cursor for the partition's next page; `None` once it is done.
    pub cursor: Option<String>,
    /// Records written from this partition so far.
    pub records: u64,
    /// The source's estimate of the partition's work.
    pub estimate: Estimate,
}

/// An item a source keeps for a later stage of the same backfill (for Stripe: a product's prices,
/// listed before the products). Stored with the page that listed it; dropped when the backfill
/// starts again or ends.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedItem {
    /// What the item is looked up by (a product id).
    pub key: String,
    /// The item's own id (unique per key).
    pub id: String,
    /// The item, as the source chose to keep it.
    pub value: serde_json::Value,
}

/// One transaction of a sync worker: a page with its partition's new position (and partitions
/// split off it), the start or end of a backfill, or a change set, with the pull's new state.
/// Fenced: when `fence` names a worker, nothing is written unless that worker still holds the
/// connection's sync lease and the connection is still linked.
#[derive(Debug, Clone, Default)]
pub struct SyncWrite {
    /// The worker whose lease must still hold (`None`: unfenced, for tools that seed data).
    pub fence: Option<String>,
    /// Records to upsert.
    pub records: Vec<StoredRecord>,
    /// Items kept for a later stage.
    pub staged: Vec<StagedItem>,
    /// Drop the data type's partitions and staged items first (a backfill starts or ends).
    pub reset: bool,
    /// The data type's checkpoint, when it changes.
    pub checkpoint: Option<Checkpoint>,
    /// Partitions to insert or replace.
    pub partitions: Vec<PartitionState>,
    /// The pull's new state (status, description, error, completion, progress) and the events it
    /// causes.
    pub pull: Option<(crate::model::pull::PullOperation, Vec<crate::model::webhook::OutboxEvent>)>,
}

/// U+0000 cannot be stored by PostgreSQL (in `text` or `jsonb`); data from a source that must be
/// kept anyway has it replaced by U+FFFD (the replacement character), the same on every database
/// (docs/stripe-mapping.md). Client input with it is refused instead, naming the field.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// Replaces every U+0000 in the strings (and keys) of a JSON value with U+FFFD.
pub fn replace_nul(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_nul),
        serde_json::Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
            let taken = std::mem::take(map);
            for (k, mut x) in taken {
                replace_nul(&mut x);
                map.insert(k.replace('\0', "\u{FFFD}"), x);
            }
        }
        serde_json::Value::Object(map) => map.values_mut().for_each(replace_nul),
        _ => {}
    }
}

/// The path of the first string in a JSON value that holds U+0000 (`description`, `tags.k`,
/// `items[2]`), if any.
pub fn nul_path(v: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, at: &str) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(at.to_owned()),
            serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, x)| walk(x, &format!("{at}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, x)| {
                let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                if k.contains('\0') { Some(here) } else { walk(x, &here) }
            }),
            _ => None,
        }
    }
    walk(v, "")
}

#[cfg(test)]
mod nul_tests {
    use super::{nul_path, replace_nul};

    #[test]
    fn nul_characters_are_found_by_path_and_replaced_everywhere() {
        let mut v = serde_json::json!({"a": "ok", "tags": {"k": "x\u{0}y"}, "list": ["z", "\u{0}"], "k\u{0}": 1});
        assert_eq!(nul_path(&serde_json::json!({"a": ["ok", {"b": "\u{0}"}]})).as_deref(), Some("a[1].b"));
        assert!(nul_path(&v).is_some());
        replace_nul(&mut v);
        assert_eq!(nul_path(&v), None);
        assert_eq!(v["tags"]["k"], "x\u{FFFD}y");
        assert_eq!(v["list"][1], "\u{FFFD}");
        assert_eq!(v["k\u{FFFD}"], 1);
    }

    #[test]
    fn a_stripe_customer_named_with_a_nul_is_stored_with_the_replacement_character() {
        let customer: crate::model::commerce::Customer =
            serde_json::from_value(serde_json::json!({"id": "cus_1", "customerName": "Zo\u{0}e", "addresses": []})).unwrap();
        let stored = crate::service::to_stored(&crate::model::commerce::CommerceRecord::Customer(customer));
        assert_eq!(stored.document["customerName"], "Zo\u{FFFD}e");
        assert_eq!(nul_path(&stored.document), None);
    }
}
