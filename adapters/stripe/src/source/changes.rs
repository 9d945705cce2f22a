//! Incremental sync ([`CommerceDataSource::list_changes`](tributary_domain::ports::CommerceDataSource::list_changes)).
//!
//! - Customers, disputes, payments and products follow Stripe's Events API
//!   (`GET /v1/events?types[]=…&created[gte]=…`): each event names an object. An event rendered
//!   in the pinned API version (`api_version`) whose object is the record's whole source (a
//!   customer, dispute, charge or refund) is mapped as it is when it is the object's newest event,
//!   newer than the cursor and alone in its second (see `plan`), so k changes cost about k/100
//!   requests; otherwise (another version, a late or tied event, or products, whose records also
//!   need their prices) the object is fetched again by id so the record has the pinned version's
//!   shape. `*.deleted` events, and customers or products that retrieve as deleted, become deletions.
//! - Balance transactions have no events; they never change once created (for the fields mapped),
//!   so new ones are listed by `created`.
//! - Company info is small: every call returns it afresh.
//!
//! The cursor is compact JSON, `{"v":1,"since":<unix seconds>,"seen":["evt_…", …]}`: the newest
//! `created` processed, and the ids already processed in the overlap window before it. Each call
//! reads from `since` − [`OVERLAP_SECS`] (late or same-second events are not lost) and skips the
//! `seen` ids; `since` moves to at least "now" − [`OVERLAP_SECS`] even when nothing happened, so a
//! quiet account's cursor stays fresh. An empty cursor starts at "now" and returns no changes: take it before a backfill
//! starts, and follow it after the backfill. A cursor older than Stripe's 30-day event retention
//! answers `needs_backfill` with a fresh cursor.

use super::{PAGE_LIMIT, StripeDataSource, check_account, map_err, unsupported};
use crate::mapping;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use tributary_domain::model::commerce::CommerceRecord;
use tributary_domain::model::data_type::DataType;
use tributary_domain::ports::oauth::PlatformCredentials;
use tributary_domain::ports::source::{ChangeSet, SourceError};

/// How far back each call reads before the cursor's `since`, in seconds.
pub const OVERLAP_SECS: i64 = 300;
/// How long Stripe keeps events, in seconds (30 days); older cursors need a backfill.
pub const EVENT_RETENTION_SECS: i64 = 30 * 86_400;
/// The most ids a cursor remembers.
const MAX_SEEN: usize = 2_000;

/// The incremental cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChangeCursor {
    v: u8,
    since: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
}

impl ChangeCursor {
    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(raw: &str) -> Result<Self, SourceError> {
        let c: Self = serde_json::from_str(raw)
            .map_err(|_| SourceError::Fetch(format!("'{}' is not a Stripe change cursor", raw.chars().take(200).collect::<String>())))?;
        if c.v != 1 {
            return Err(SourceError::Fetch(format!("Stripe change cursor version {} is not supported", c.v)));
        }
        Ok(c)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The event types that change each data type's records (at most 20, Stripe's `types[]` limit).
fn event_types(dt: DataType) -> Option<&'static [&'static str]> {
    Some(match dt {
        DataType::Customers => &["customer.created", "customer.updated", "customer.deleted"],
        DataType::Disputes => &[
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ],
        DataType::Payments => &[
            "charge.succeeded",
            "charge.failed",
            "charge.pending",
            "charge.captured",
            "charge.expired",
            "charge.refunded",
            "charge.updated",
            "charge.refund.updated",
            "refund.created",
            "refund.updated",
            "refund.failed",
        ],
        DataType::Products => &["product.created", "product.updated", "product.deleted", "price.created", "price.updated", "price.deleted"],
        _ => return None,
    })
}

/// What an event asks for: fetch an object again, or record its deletion.
enum Action {
    Refetch(String),
    Delete(String),
}

/// What a data type's changes come to per object: its newest state from an event, a fetch, or a
/// deletion.
enum Pending {
    Object(Value),
    Refetch,
    Delete,
}

/// What the events of one call ask for, per object, and the (id, created) of every event processed.
/// Events come newest first and are applied oldest first, so the newest event of an object decides.
/// Its object is mapped as it is only when that is surely the object's latest state: the event is in
/// the pinned API version ([`object_is_usable`]), newer than everything an earlier call processed
/// (`created > since`: an event turning up late inside the overlap window may be older than one
/// already applied), and no other event of the object shares its second (Stripe does not document
/// their order within a second). Otherwise the object is fetched again.
fn plan(dt: DataType, events: &[Value], seen: &HashSet<&str>, since: i64) -> (BTreeMap<String, Pending>, Vec<(String, i64)>) {
    // Per object: its newest event's decision, that event's second, and how many events share it.
    let mut newest: BTreeMap<String, (Pending, i64, u32)> = BTreeMap::new();
    let mut processed = Vec::with_capacity(events.len());
    for e in events.iter().rev() {
        let (Some(id), Some(created)) = (super::id_of(e), super::created_of(e)) else { continue };
        if !seen.contains(id.as_str()) {
            let event_type = e.get("type").and_then(Value::as_str).unwrap_or_default();
            let object = e.get("data").and_then(|d| d.get("object")).unwrap_or(&Value::Null);
            let decided = match action(event_type, object) {
                Some(Action::Refetch(obj)) => {
                    let own = object.get("id").and_then(Value::as_str) == Some(obj.as_str()) && object_is_usable(dt, e);
                    Some((obj, if own && created > since { Pending::Object(object.clone()) } else { Pending::Refetch }))
                }
                Some(Action::Delete(obj)) => Some((obj, Pending::Delete)),
                None => None,
            };
            if let Some((obj, p)) = decided {
                let same_second = newest.get(&obj).map_or(0, |(_, at, n)| if *at == created { *n } else { 0 });
                newest.insert(obj, (p, created, same_second + 1));
            }
        }
        processed.push((id, created));
    }
    let pending = newest
        .into_iter()
        .map(|(obj, (p, _, n))| {
            let p = match p {
                Pending::Object(_) if n > 1 => Pending::Refetch,
                p => p,
            };
            (obj, p)
        })
        .collect();
    (pending, processed)
}

/// Whether an event carries the record's whole source object in the pinned API version, so it
/// can be mapped as it is (customers, disputes, charges and refunds map from the object alone).
fn object_is_usable(dt: DataType, event: &Value) -> bool {
    matches!(dt, DataType::Customers | DataType::Disputes | DataType::Payments)
        && event.get("api_version").and_then(Value::as_str) == Some(super::STRIPE_API_VERSION)
}

fn action(event_type: &str, object: &Value) -> Option<Action> {
    let id = object.get("id").and_then(Value::as_str).map(str::to_owned);
    match event_type {
        "customer.deleted" | "product.deleted" => id.map(Action::Delete),
        t if t.starts_with("price.") => mapping::price_product_id(object).map(Action::Refetch),
        _ => id.map(Action::Refetch),
    }
}

/// The ids of `items` created at or after `floor`, capped.
fn seen_after(items: &[(String, i64)], floor: i64) -> Vec<String> {
    let mut ids: Vec<String> = items.iter().filter(|(_, c)| *c >= floor).map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids.truncate(MAX_SEEN);
    ids
}

/// The next cursor's `since`: the newest `created` processed, and at least `now` − overlap, so that a
/// quiet account's cursor does not age out of the event retention.
fn next_since(processed: &[(String, i64)], previous: i64, now: i64) -> i64 {
    processed.iter().map(|(_, c)| *c).max().unwrap_or(previous).max(previous).max(now - OVERLAP_SECS)
}

impl StripeDataSource {
    /// Every object of `/v1/{list}` created at or after `from` (all pages, newest first).
    async fn list_since(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        list: &str,
        from: i64,
        types: &[&str],
    ) -> Result<Vec<Value>, SourceError> {
        let from = from.to_string();
        let limit = PAGE_LIMIT.to_string();
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = vec![("limit", &limit), ("created[gte]", &from)];
            query.extend(types.iter().map(|t| ("types[]", *t)));
            if let Some(a) = after.as_deref() {
                query.push(("starting_after", a));
            }
            let body = self.api.get(creds, account, &[list], &query).await.map_err(super::ApiError::into_source_error)?;
            let (Some(data), Some(has_more)) = (body.get("data").and_then(Value::as_array), body.get("has_more").and_then(Value::as_bool))
            else {
                return Err(SourceError::Fetch(format!("GET /v1/{list}: the answer is not a Stripe list")));
            };
            after = data.last().and_then(super::id_of);
            out.extend(data.iter().cloned());
            if !has_more || after.is_none() {
                return Ok(out);
            }
        }
    }

    /// Changes since `raw` (see the module docs).
    pub(crate) async fn changes(
        &self,
        creds: &PlatformCredentials,
        account: &str,
        dt: DataType,
        raw: &str,
    ) -> Result<ChangeSet, SourceError> {
        check_account(account)?;
        if !dt.supported_by_stripe() {
            return Err(unsupported(dt));
        }
        let now = now();
        let fresh = || ChangeCursor { v: 1, since: now, seen: Vec::new() };
        if raw.trim().is_empty() {
            return Ok(ChangeSet { upserts: Vec::new(), deletions: Vec::new(), cursor: fresh().encode(), needs_backfill: false });
        }
        let cursor = ChangeCursor::decode(raw)?;
        if dt == DataType::CompanyInfo {
            let info = self.company_info(creds, account).await?;
            let next = ChangeCursor { v: 1, since: now.max(cursor.since), seen: Vec::new() };
            return Ok(ChangeSet { upserts: vec![info], deletions: Vec::new(), cursor: next.encode(), needs_backfill: false });
        }
        if dt != DataType::Transactions && cursor.since - OVERLAP_SECS < now - EVENT_RETENTION_SECS {
            return Ok(ChangeSet { upserts: Vec::new(), deletions: Vec::new(), cursor: fresh().encode(), needs_backfill: true });
        }
        let seen: HashSet<&str> = cursor.seen.iter().map(String::as_str).collect();
        let from = cursor.since.saturating_sub(OVERLAP_SECS);
        if dt == DataType::Transactions {
            let bts = self.list_since(creds, account, "balance_transactions", from, &[]).await?;
            let mut upserts = Vec::new();
            let mut processed = Vec::with_capacity(bts.len());
            for bt in &bts {
                let (Some(id), Some(created)) = (super::id_of(bt), super::created_of(bt)) else { continue };
                if !seen.contains(id.as_str()) {
                    upserts.extend(mapping::transactions(bt).map_err(map_err)?.into_iter().map(CommerceRecord::Transaction));
                }
                processed.push((id, created));
            }
            let since = next_since(&processed, cursor.since, now);
            let next = ChangeCursor { v: 1, since, seen: seen_after(&processed, since - OVERLAP_SECS) };
            return Ok(ChangeSet { upserts, deletions: Vec::new(), cursor: next.encode(), needs_backfill: false });
        }
        let Some(types) = event_types(dt) else { return Err(unsupported(dt)) };
        let events = self.list_since(creds, account, "events", from, types).await?;
        let (pending, processed) = plan(dt, &events, &seen, cursor.since);
        let mut deletions = BTreeSet::new();
        let mut upserts = Vec::new();
        for (id, p) in pending {
            let found = match p {
                Pending::Delete => {
                    deletions.insert(id);
                    continue;
                }
                Pending::Object(object) => super::map_object(dt, &id, &object)?,
                Pending::Refetch => self.fetch_one(creds, account, dt, &id).await?,
            };
            if found.is_empty() && matches!(dt, DataType::Customers | DataType::Products) {
                // Retrieved (or rendered) as deleted, or gone: a deletion.
                deletions.insert(id.clone());
            }
            upserts.extend(found);
        }
        let since = next_since(&processed, cursor.since, now);
        let next = ChangeCursor { v: 1, since, seen: seen_after(&processed, since - OVERLAP_SECS) };
        Ok(ChangeSet { upserts, deletions: deletions.into_iter().collect(), cursor: next.encode(), needs_backfill: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, created: i64, event_type: &str, object: &str, version: &str) -> Value {
        json!({"id": id, "created": created, "type": event_type, "api_version": version, "data": {"object": {"id": object, "name": id}}})
    }

    fn decisions(events: &[Value], since: i64) -> Vec<(String, &'static str)> {
        let seen = HashSet::from(["evt_seen"]);
        // The API lists newest first.
        let newest_first: Vec<Value> = events.iter().rev().cloned().collect();
        let (pending, _) = plan(DataType::Customers, &newest_first, &seen, since);
        pending
            .into_iter()
            .map(|(id, p)| {
                let what = match p {
                    Pending::Object(o) => {
                        if o["name"] == "evt_2" {
                            "object of evt_2"
                        } else {
                            "object"
                        }
                    }
                    Pending::Refetch => "refetch",
                    Pending::Delete => "delete",
                };
                (id, what)
            })
            .collect()
    }

    #[test]
    fn only_the_newest_unambiguous_event_after_the_cursor_is_used_as_it_is() {
        let v = super::super::STRIPE_API_VERSION;
        let d = |events: &[Value], since| decisions(events, since);
        // Two changes in different seconds after the cursor: the newer one's object.
        let two = [event("evt_1", 101, "customer.updated", "cus_1", v), event("evt_2", 102, "customer.updated", "cus_1", v)];
        assert_eq!(d(&two, 100), vec![("cus_1".into(), "object of evt_2")]);
        // A late event inside the overlap window (not newer than the cursor) is fetched again: it may be
        // older than one an earlier call applied (a later update, or a deletion).
        assert_eq!(d(&[event("evt_1", 99, "customer.updated", "cus_1", v)], 100), vec![("cus_1".into(), "refetch")]);
        // Two events of an object in one second: their order is not documented.
        let tied = [event("evt_1", 102, "customer.updated", "cus_1", v), event("evt_2", 102, "customer.updated", "cus_1", v)];
        assert_eq!(d(&tied, 100), vec![("cus_1".into(), "refetch")]);
        // Another API version is fetched again in ours; a deletion stays a deletion.
        assert_eq!(d(&[event("evt_1", 101, "customer.updated", "cus_1", "2020-08-27")], 100), vec![("cus_1".into(), "refetch")]);
        let deleted = [event("evt_1", 101, "customer.updated", "cus_1", v), event("evt_2", 102, "customer.deleted", "cus_1", v)];
        assert_eq!(d(&deleted, 100), vec![("cus_1".into(), "delete")]);
        // Events already processed are skipped.
        assert_eq!(d(&[event("evt_seen", 101, "customer.updated", "cus_1", v)], 100), vec![]);
    }

    #[test]
    fn change_cursors_round_trip() {
        let c = ChangeCursor { v: 1, since: 10, seen: vec!["evt_1".into()] };
        assert_eq!(c.encode(), r#"{"v":1,"since":10,"seen":["evt_1"]}"#);
        assert_eq!(ChangeCursor::decode(&c.encode()).unwrap(), c);
        assert!(ChangeCursor::decode("{}").is_err());
        assert!(ChangeCursor::decode(r#"{"v":2,"since":1}"#).is_err());
    }

    #[test]
    fn events_name_the_object_to_fetch_or_delete() {
        assert!(matches!(action("customer.deleted", &json!({"id": "cus_1"})), Some(Action::Delete(id)) if id == "cus_1"));
        assert!(
            matches!(action("price.updated", &json!({"id": "price_1", "product": "prod_1"})), Some(Action::Refetch(id)) if id == "prod_1")
        );
        assert!(
            matches!(action("price.deleted", &json!({"id": "price_1", "product": "prod_1"})), Some(Action::Refetch(id)) if id == "prod_1")
        );
        assert!(matches!(action("charge.refund.updated", &json!({"id": "re_1"})), Some(Action::Refetch(id)) if id == "re_1"));
        assert!(action("charge.updated", &json!({})).is_none());
        for dt in [DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products] {
            assert!(event_types(dt).is_some_and(|t| t.len() <= 20));
        }
    }

    #[test]
    fn seen_ids_are_those_in_the_window() {
        let items = vec![("a".to_owned(), 5), ("b".to_owned(), 10), ("c".to_owned(), 10), ("b".to_owned(), 10)];
        assert_eq!(seen_after(&items, 10), vec!["b".to_owned(), "c".to_owned()]);
    }
}
