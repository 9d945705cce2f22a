//! Commerce data reads (`GET /companies/{id}/connections/{cid}/data/commerce-…`): Codat's 404 for
//! unknown companies, connections and records and for data types the platform lacks, 409 before a
//! data type has been synced, and the stored documents with `modifiedDate` filled in.

use super::Platform;
use crate::error::DomainError;
use crate::ids::{CompanyId, ConnectionId};
use crate::model::commerce::CommerceRecord;
use crate::model::connection::Connection;
use crate::model::data_type::DataType;
use crate::model::integration::{FeatureState, definition};
use crate::model::record::{ListedRecord, RecordRow, StoredRecord};
use crate::paging::{ListQuery, Page, Seek};
use crate::query::typed::parse_instant;
use std::collections::HashMap;
use std::sync::Mutex;

/// A page of records as served (each the JSON text of one record), and the keyset position of
/// the page after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPage {
    /// The page.
    pub page: Page<String>,
    /// Where the next page starts, when there is one and the order allows a keyset.
    pub next: Option<Seek>,
}

type CountKey = (ConnectionId, DataType, String);

/// Exact counts of live records per (connection, data type, filter), each valid while the
/// records' version is the one it was counted at. Bounded: it forgets everything when full.
#[derive(Default)]
pub(crate) struct CountCache(Mutex<HashMap<CountKey, (u64, u64)>>);

impl CountCache {
    const MAX_ENTRIES: usize = 10_000;

    fn get(&self, key: &CountKey, version: u64) -> Option<u64> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).filter(|(v, _)| *v == version).map(|(_, total)| *total)
    }

    fn put(&self, key: CountKey, version: u64, total: u64) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX_ENTRIES && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, (version, total));
    }
}

/// A record as served: the document with `modifiedDate` from the store.
pub fn served(row: RecordRow) -> serde_json::Value {
    let mut doc = row.record.document;
    if let Some(o) = doc.as_object_mut() {
        o.insert("modifiedDate".into(), serde_json::Value::String(row.modified.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
    }
    doc
}

/// A listed record as served: its JSON text with `modifiedDate` from the store added, without
/// parsing it (stored documents are objects without `modifiedDate`).
pub fn served_text(row: ListedRecord) -> String {
    let modified = row.modified.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let doc = row.document.trim_start();
    match doc.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"modifiedDate\":\"{modified}\"}}"),
        Some(rest) => format!("{{\"modifiedDate\":\"{modified}\",{rest}"),
        None => row.document,
    }
}

/// Record use cases: reading a connection's synced commerce data as Codat serves it.
///
/// Borrowed from the façade: [`Platform::records`].
#[derive(Clone, Copy)]
pub struct Records<'a> {
    pub(super) p: &'a Platform,
}

impl Records<'_> {
    /// Checks that `data_type` can be read on a company's connection: the company and connection
    /// exist and belong together, the integration provides the type, and it has been synced.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] for an unknown company or connection, or a data type the platform
    /// does not support; [`DomainError::Conflict`] (409) when it has not been requested or has not
    /// finished its first sync.
    pub async fn readable(&self, company: CompanyId, connection: ConnectionId, data_type: DataType) -> Result<Connection, DomainError> {
        Ok(self.read_state(company, connection, data_type).await?.0)
    }

    /// [`Records::readable`], with the records' version.
    async fn read_state(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
    ) -> Result<(Connection, u64), DomainError> {
        let state = self.p.repos.records.read_state(company, connection, data_type).await?;
        if !state.company {
            return Err(DomainError::NotFound(format!("No company was found with ID {company}")));
        }
        let c = state.connection.ok_or_else(|| DomainError::NotFound(format!("Data connection {connection} not found")))?;
        let def = definition(c.platform_key.as_str()).ok_or_else(|| DomainError::NotFound("integration".into()))?;
        if def.feature_state(data_type) != FeatureState::Release {
            return Err(DomainError::NotFound(format!("Datatype {data_type} not supported by platform(s) {}", def.name)));
        }
        match (state.requested, state.completed) {
            (false, _) => Err(DomainError::Conflict("The data set has not been requested.".into())),
            (true, false) => Err(DomainError::Conflict("The data set has not finished its first sync yet.".into())),
            (true, true) => Ok((c, state.version)),
        }
    }

    /// A page of records, and where the next page starts when the order allows a keyset.
    ///
    /// `totalResults` is exact: it is counted in the store, and the count is kept per (connection,
    /// data type, filter) until the records' [`crate::ports::RecordRepository::version`] moves.
    ///
    /// # Errors
    /// As [`Records::readable`].
    pub async fn list(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        query: &ListQuery,
    ) -> Result<RecordPage, DomainError> {
        let (_, version) = self.read_state(company, connection, data_type).await?;
        let records = &self.p.repos.records;
        let key = (connection, data_type, query.filter.as_ref().map(|f| format!("{f:?}")).unwrap_or_default());
        let cached = self.p.counts.get(&key, version);
        let items = records.list_page(connection, data_type, query).await?;
        let total = match cached {
            Some(total) => total,
            None => {
                let total = records.count_matching(connection, data_type, query).await?;
                // Kept only if no write landed while counting.
                if records.version(connection, data_type).await? == version {
                    self.p.counts.put(key, version, total);
                }
                total
            }
        };
        let page = Page { items, total, request: query.page };
        let next = (page.has_next() && query.keyset_order())
            .then(|| page.items.last().map(|r| Seek { created: r.created, id: r.id.clone() }))
            .flatten();
        Ok(RecordPage { page: page.map(served_text), next })
    }

    /// How many live records of `data_type` a connection holds (deleted ones not counted).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn count(&self, connection: ConnectionId, data_type: DataType) -> Result<u64, DomainError> {
        Ok(self.p.repos.records.count(connection, data_type, false).await?)
    }

    /// One record by id (deleted records are not found).
    ///
    /// # Errors
    /// As [`Records::readable`], and [`DomainError::NotFound`] for an unknown id.
    pub async fn get(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        id: &str,
    ) -> Result<serde_json::Value, DomainError> {
        self.readable(company, connection, data_type).await?;
        match self.p.repos.records.get(connection, data_type, id).await? {
            Some(row) if !row.record.deleted => Ok(served(row)),
            _ => Err(DomainError::NotFound(format!("No {} record was found with ID {id}", data_type.key()))),
        }
    }

    /// The company-info record of a connection (Codat leaves its `modifiedDate` unset).
    ///
    /// # Errors
    /// As [`Records::readable`].
    pub async fn company_info(&self, company: CompanyId, connection: ConnectionId) -> Result<serde_json::Value, DomainError> {
        let c = self.readable(company, connection, DataType::CompanyInfo).await?;
        let rows = self.p.repos.records.scan(c.id, DataType::CompanyInfo, None, 1).await?;
        rows.into_iter()
            .find(|r| !r.record.deleted)
            .map(|r| r.record.document)
            .ok_or_else(|| DomainError::Conflict("The data set has not been requested.".into()))
    }
}

/// A mapped record in its stored form (the document without `modifiedDate`, which the store sets).
pub fn to_stored(r: &CommerceRecord) -> StoredRecord {
    let (document, created, source_modified) = match r {
        CommerceRecord::CompanyInfo(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Customer(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Dispute(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Payment(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Product(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
        CommerceRecord::Transaction(x) => (serde_json::to_value(x), x.created_date.as_deref(), x.source_modified_date.as_deref()),
    };
    let mut document = document.unwrap_or(serde_json::Value::Null);
    if let Some(o) = document.as_object_mut() {
        o.remove("modifiedDate");
    }
    let id = match r {
        CommerceRecord::CompanyInfo(x) => x.commerce_platform_ref.clone().unwrap_or_else(|| "company".into()),
        CommerceRecord::Customer(x) => x.id.clone(),
        CommerceRecord::Dispute(x) => x.id.clone(),
        CommerceRecord::Payment(x) => x.id.clone(),
        CommerceRecord::Product(x) => x.id.clone(),
        CommerceRecord::Transaction(x) => x.id.clone(),
    };
    // Stripe may hold U+0000 in free text: kept, as U+FFFD (PostgreSQL stores no U+0000).
    crate::model::record::replace_nul(&mut document);
    StoredRecord {
        id: id.replace('\0', "\u{FFFD}"),
        created: created.and_then(parse_instant),
        source_modified: source_modified.and_then(parse_instant),
        document,
        deleted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PullOperationId;
    use crate::model::commerce_schema::CUSTOMERS;
    use crate::model::company::CompanyFields;
    use crate::model::pull::{DatasetStatus, PullOperation};
    use crate::model::record::{StoredRecord, SyncWrite};
    use crate::service::IntegrationUpdate;
    use crate::service::test_support::{Fixed, Mem, platform_with};
    use secrecy::SecretString;
    use std::sync::Arc;

    fn record(i: u32) -> StoredRecord {
        StoredRecord {
            id: format!("cus_{i:03}"),
            // Pairs share a creation time, so the id tie-break matters.
            created: Some(chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(i / 2), 0).unwrap()),
            source_modified: None,
            document: serde_json::json!({"id": format!("cus_{i:03}"), "customerName": format!("n{}", i % 3)}),
            deleted: false,
        }
    }

    async fn setup(status: Option<DatasetStatus>) -> (Arc<Mem>, Platform, CompanyId, ConnectionId) {
        let mem = Arc::new(Mem::default());
        let p = platform_with(mem.clone(), Arc::new(Fixed(Mutex::new("2026-01-01T00:00:00Z".parse().unwrap()))));
        let settings =
            IntegrationUpdate { client_id: Some("ca".into()), secret_key: Some(SecretString::from("sk_test_x")), ..Default::default() };
        p.integrations().update("yzth", settings).await.unwrap();
        p.integrations().set_enabled("yzth", true).await.unwrap();
        let company = p.companies().create(CompanyFields::new("Shop", None, Default::default()).unwrap()).await.unwrap().company.id;
        let connection = p.connections().create(company, "yzth").await.unwrap().id;
        if let Some(status) = status {
            mem.pulls.lock().unwrap().push(PullOperation {
                id: PullOperationId::new_random(),
                company_id: company,
                connection_id: connection,
                data_type: DataType::Customers,
                status,
                status_description: None,
                error_message: None,
                requested: "2026-01-01T00:00:00Z".parse().unwrap(),
                completed: None,
                progress: 0,
            });
        }
        (mem, p, company, connection)
    }

    async fn write(p: &Platform, company: CompanyId, connection: ConnectionId, records: &[StoredRecord]) {
        let w = SyncWrite { records: records.to_vec(), ..SyncWrite::default() };
        p.repos.records.write_sync(company, connection, DataType::Customers, &w, "2026-01-01T00:00:00Z".parse().unwrap()).await.unwrap();
    }

    fn query(page: i64, q: Option<&str>, order: Option<&str>) -> ListQuery {
        ListQuery::from_params(&CUSTOMERS, Some(page), Some(7), q, order).unwrap()
    }

    #[tokio::test]
    async fn following_the_keyset_gives_the_pages_offsets_give() {
        let (_, p, company, connection) = setup(Some(DatasetStatus::Complete)).await;
        write(&p, company, connection, &(0..50).map(record).collect::<Vec<_>>()).await;
        for (q, order) in [(None, None), (Some("customerName=n1"), None), (None, Some("-createdDate")), (None, Some("createdDate"))] {
            let mut seek = None;
            for page in 1.. {
                let by_offset = p.records().list(company, connection, DataType::Customers, &query(page, q, order)).await.unwrap();
                let by_keyset = p
                    .records()
                    .list(company, connection, DataType::Customers, &ListQuery { seek: seek.clone(), ..query(page, q, order) })
                    .await
                    .unwrap();
                assert_eq!(by_keyset, by_offset, "{q:?} {order:?} page {page}");
                assert!(!by_offset.page.items.is_empty());
                assert_eq!(by_offset.next.is_some(), by_offset.page.has_next(), "{q:?} {order:?} page {page}");
                match by_offset.next {
                    Some(next) => seek = Some(next),
                    None => break,
                }
            }
        }
        let by_name = p.records().list(company, connection, DataType::Customers, &query(1, None, Some("customerName"))).await.unwrap();
        assert_eq!(by_name.next, None, "orders without an index have no keyset");
    }

    #[tokio::test]
    async fn counts_are_reused_until_a_write_changes_the_records() {
        let (mem, p, company, connection) = setup(Some(DatasetStatus::Complete)).await;
        write(&p, company, connection, &(0..10).map(record).collect::<Vec<_>>()).await;
        let list = |page, q: Option<&'static str>| {
            let p = p.clone();
            async move { p.records().list(company, connection, DataType::Customers, &query(page, q, None)).await.unwrap().page.total }
        };
        assert_eq!(list(1, None).await, 10);
        assert_eq!(list(2, None).await, 10);
        assert_eq!(*mem.count_queries.lock().unwrap(), 1, "the second page reuses the count");
        assert_eq!(list(1, Some("customerName=n0")).await, 4, "each filter has its own count");
        assert_eq!(*mem.count_queries.lock().unwrap(), 2);
        write(&p, company, connection, &(0..10).map(record).collect::<Vec<_>>()).await;
        assert_eq!(list(1, None).await, 10);
        assert_eq!(*mem.count_queries.lock().unwrap(), 2, "an unchanged page leaves the version alone");
        let mut gone = record(3);
        gone.deleted = true;
        write(&p, company, connection, &[gone, record(10), record(11)]).await;
        assert_eq!(list(1, None).await, 11);
        assert_eq!(list(1, Some("customerName=n0")).await, 3, "cus_003 (n0) deleted; cus_010 is n1, cus_011 n2");
        assert_eq!(*mem.count_queries.lock().unwrap(), 4);
    }

    #[test]
    fn served_text_adds_modified_date_like_served_without_parsing() {
        let modified = "2026-01-02T03:04:05.123456Z".parse().unwrap();
        for doc in [r#"{"id":"a","amount":1.50,"ref":{"id":"x"}}"#, "{}", " { } ", r#"{"id": "b", "note": "{\"}"}"#] {
            let text = served_text(ListedRecord { id: "a".into(), created: None, modified, document: doc.into() });
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{doc} -> {text}: {e}"));
            let row = RecordRow {
                record: StoredRecord {
                    id: "a".into(),
                    created: None,
                    source_modified: None,
                    document: serde_json::from_str(doc).unwrap(),
                    deleted: false,
                },
                modified,
            };
            assert_eq!(parsed, served(row), "{doc}");
        }
    }

    #[tokio::test]
    async fn reads_before_the_first_complete_sync_are_conflicts() {
        for (status, message) in [
            (None, "The data set has not been requested."),
            (Some(DatasetStatus::Fetching), "The data set has not finished its first sync yet."),
        ] {
            let (_, p, company, connection) = setup(status).await;
            let err = p.records().list(company, connection, DataType::Customers, &query(1, None, None)).await.unwrap_err();
            assert!(matches!(&err, DomainError::Conflict(m) if m == message), "{err:?}");
        }
    }
}
