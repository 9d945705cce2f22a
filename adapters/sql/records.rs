//! `RecordRepository` on SQLite and PostgreSQL: the records' reads (pages in the `records_created`
//! index order, with keyset cursors), checkpoints, partitions and staged items. The sync's page
//! write is written for each database (the adapters' `tuned::write_sync`).

use crate::dialect::{self as d, Store};
use crate::sql::filter::{Column, Sql, render_documents, render_order};
use crate::sql::{backend, parse_uuid};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, ConnectionId, PullOperationId};
use tributary_domain::model::commerce_schema::{RecordField, locate};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::{Checkpoint, Estimate, ListedRecord, PartitionState, RecordRow, StagedItem, StoredRecord, SyncWrite};
use tributary_domain::paging::{ListQuery, Seek};
use tributary_domain::ports::{ReadState, RecordRepository};

const COLUMNS: &str = "record_id, document, created, source_modified, modified, deleted";
/// What a list page reads: the document as JSON text (`ListedRecord`), not decoded.
fn list_columns() -> String {
    format!("record_id, {}, created, modified", d::document_text("document"))
}

/// Where a commerce field lives (`commerce_schema::locate`): three columns, a typed field's
/// column ([`TYPED_FIELDS`]), or a path into the document.
pub(crate) fn columns(field: &'static str) -> Option<Column> {
    match locate(field) {
        RecordField::Created => Some(Column::Scalar("created")),
        RecordField::Modified => Some(Column::Scalar("modified")),
        RecordField::Id => Some(Column::Scalar("record_id")),
        RecordField::Document(path) => match TYPED_FIELDS.iter().find(|f| path == [f.key]) {
            Some(f) => Some(Column::Scalar(f.column)),
            None => Column::json("document", path),
        },
    }
}

/// A top-level document field clients filter on most, kept in a column of its own by the page
/// write (migration 0011), so that a filter compares the column instead of reading every document
/// it passes. The column holds what the JSON-path reading would give: NULL unless the value is of
/// the field's JSON type.
pub(crate) struct TypedField {
    /// The document's key.
    pub key: &'static str,
    /// The column.
    pub column: &'static str,
    /// Text (a JSON string) or a number (a JSON number).
    pub number: bool,
}

/// The typed fields: a payment's or transaction's `currency` and a payment's `amount`.
pub(crate) const TYPED_FIELDS: [TypedField; 2] =
    [TypedField { key: "currency", column: "f_currency", number: false }, TypedField { key: "amount", column: "f_amount", number: true }];

/// The value of a typed field in `document`, as text (a number as its exact decimal text, which
/// each database casts to its numeric type), or `None` when missing or of another JSON type.
pub(crate) fn typed_value(document: &serde_json::Value, field: &TypedField) -> Option<String> {
    match (document.get(field.key)?, field.number) {
        (serde_json::Value::String(s), false) => Some(s.clone()),
        (serde_json::Value::Number(n), true) => Some(n.to_string()),
        _ => None,
    }
}

/// The default order: the `records_created` index (`connection_id, data_type, created NULLS
/// FIRST, record_id` by code point) read forwards, so a page needs no sort.
const DEFAULT_ORDER: &str = "created ASC NULLS FIRST";

/// The tie-break: ids by code point on both databases (`dialect::BY_CODE_POINT`).
fn id() -> String {
    format!("record_id{}", d::BY_CODE_POINT)
}

/// The `WHERE` of live records matching `query.filter`.
fn where_sql(connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Sql {
    let mut sql = Sql::default();
    push_where(&mut sql, connection, data_type, query);
    sql
}

/// Appends the `WHERE` of live records matching `query.filter`.
fn push_where(sql: &mut Sql, connection: ConnectionId, data_type: DataType, query: &ListQuery) {
    sql.push(" WHERE connection_id = ");
    sql.bind_text(connection.to_string());
    sql.push(" AND data_type = ");
    sql.bind_text(data_type.key().to_owned());
    sql.push(" AND NOT deleted");
    if let Some(f) = &query.filter {
        sql.push(" AND ");
        render_documents(sql, f, columns, "document");
    }
}

/// The `COUNT(*)` of live records matching `query.filter`.
pub(crate) fn count_sql(connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Sql {
    let w = where_sql(connection, data_type, query);
    Sql::from_parts(format!("SELECT COUNT(*) FROM records{}", w.text), &w)
}

/// A descending page after a record with a creation time: the rest of that range, then the
/// records without one (they sort last), each an index range of at most a page, merged in order.
/// (One `… < (c, id) OR created IS NULL` condition would make the database walk every record
/// already served.)
fn descending_after(connection: ConnectionId, data_type: DataType, query: &ListQuery, seek: &Seek, c: DateTime<Utc>) -> Sql {
    let size = i64::from(query.page.page_size);
    let (cols, id) = (list_columns(), id());
    let mut page = Sql::default();
    page.push(&format!("SELECT * FROM (SELECT * FROM (SELECT {cols} FROM records"));
    push_where(&mut page, connection, data_type, query);
    page.push(&format!(" AND (created, {id}) < ("));
    page.bind_time(c);
    page.push(", ");
    page.bind_text(seek.id.clone());
    page.push(")");
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, &id);
    page.push(" LIMIT ");
    page.bind_i64(size);
    page.push(&format!(") AS with_created UNION ALL SELECT * FROM (SELECT {cols} FROM records"));
    push_where(&mut page, connection, data_type, query);
    page.push(&format!(" AND created IS NULL ORDER BY {id} DESC LIMIT "));
    page.bind_i64(size);
    page.push(") AS without_created) AS merged");
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, &id);
    page.push(" LIMIT ");
    page.bind_i64(size);
    page
}

/// `SELECT` of a page of live records matching `query`: after `query.seek` when given (a row
/// comparison the `records_created` index answers as a range, in the order's direction; records
/// without a creation time sort first ascending and last descending), else at the page's offset.
pub(crate) fn list_sql(connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Sql {
    let w = where_sql(connection, data_type, query);
    let (cols, id) = (list_columns(), id());
    let mut page = Sql::from_parts(format!("SELECT {cols} FROM records{}", w.text), &w);
    let seek = query.seek.as_ref().filter(|_| query.keyset_order());
    if let Some(seek) = seek {
        match (query.descending(), seek.created) {
            (false, Some(c)) => {
                page.push(&format!(" AND (created, {id}) > ("));
                page.bind_time(c);
                page.push(", ");
                page.bind_text(seek.id.clone());
                page.push(")");
            }
            (false, None) => {
                page.push(&format!(" AND (created IS NOT NULL OR {id} > "));
                page.bind_text(seek.id.clone());
                page.push(")");
            }
            (true, Some(c)) => return descending_after(connection, data_type, query, seek, c),
            (true, None) => {
                page.push(&format!(" AND created IS NULL AND {id} < "));
                page.bind_text(seek.id.clone());
            }
        }
    }
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, &id);
    page.push(" LIMIT ");
    page.bind_i64(i64::from(query.page.page_size));
    if seek.is_none() {
        page.push(" OFFSET ");
        page.bind_i64(i64::try_from(query.page.offset()).unwrap_or(i64::MAX));
    }
    page
}

/// A sync write's page made ready before any lock is taken: one record per id, sorted
/// ([`last_per_id`]), and the documents and staged items' values as JSON text.
pub(crate) struct PreparedPage<'a> {
    pub records: Vec<&'a StoredRecord>,
    pub documents: Vec<String>,
    pub staged: Vec<String>,
}

impl<'a> PreparedPage<'a> {
    pub fn of(w: &'a SyncWrite) -> Result<Self, RepositoryError> {
        let records = last_per_id(&w.records);
        let documents = records
            .iter()
            .map(|r| serde_json::to_string(&r.document))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RepositoryError::backend(format!("cannot serialise a record document: {e}")))?;
        let staged = w
            .staged
            .iter()
            .map(|i| serde_json::to_string(&i.value))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RepositoryError::backend(format!("cannot serialise a staged item: {e}")))?;
        Ok(Self { records, documents, staged })
    }
}

/// A count as the databases' 64-bit integer.
pub(crate) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_row(r: &d::DbRow) -> Result<RecordRow, RepositoryError> {
    let id: String = r.get("record_id");
    let document = d::get_json(r, "document").map_err(|e| RepositoryError::backend(format!("corrupt record document {id}: {e}")))?;
    Ok(RecordRow {
        record: StoredRecord {
            created: d::get_opt_time(r, "created"),
            source_modified: d::get_opt_time(r, "source_modified"),
            document,
            deleted: r.get("deleted"),
            id,
        },
        modified: d::get_time(r, "modified"),
    })
}

/// The page with one entry per id (the last one wins, as if written in order), sorted by id:
/// concurrent writers lock rows in the same order, and B-tree inserts in key order are the
/// cheapest.
fn last_per_id(records: &[StoredRecord]) -> Vec<&StoredRecord> {
    let mut sorted: Vec<&StoredRecord> = records.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id)); // stable: equal ids keep their order
    let mut out: Vec<&StoredRecord> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if last.id == r.id => *last = r,
            _ => out.push(r),
        }
    }
    out
}

#[async_trait]
impl RecordRepository for Store {
    async fn write_sync(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        w: &SyncWrite,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        let page = PreparedPage::of(w)?;
        crate::tuned::write_sync(self, (company.to_string(), connection.to_string()), data_type, w, page, now).await
    }

    async fn checkpoint(&self, connection: ConnectionId, data_type: DataType) -> Result<Option<Checkpoint>, RepositoryError> {
        let Some(r) =
            sqlx::query("SELECT pull_id, backfilling, incremental FROM sync_checkpoints WHERE connection_id = $1 AND data_type = $2")
                .bind(connection.to_string())
                .bind(data_type.key())
                .fetch_optional(self.reader())
                .await
                .map_err(backend)?
        else {
            return Ok(None);
        };
        Ok(Some(Checkpoint {
            pull_id: PullOperationId(parse_uuid(&r.get::<String, _>("pull_id"))?),
            backfilling: r.get("backfilling"),
            incremental: r.get("incremental"),
        }))
    }

    async fn partitions(&self, connection: ConnectionId, data_type: DataType) -> Result<Vec<PartitionState>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT partition_id, stage, cursor, records, done, remaining FROM sync_partitions \
             WHERE connection_id = $1 AND data_type = $2 ORDER BY partition_id",
        )
        .bind(connection.to_string())
        .bind(data_type.key())
        .fetch_all(self.reader())
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| PartitionState {
                id: u32::try_from(r.get::<i32, _>("partition_id")).unwrap_or(u32::MAX),
                stage: u16::try_from(r.get::<i32, _>("stage")).unwrap_or(u16::MAX),
                cursor: r.get("cursor"),
                records: u64::try_from(r.get::<i64, _>("records")).unwrap_or(0),
                estimate: Estimate {
                    done: u64::try_from(r.get::<i64, _>("done")).unwrap_or(0),
                    left: u64::try_from(r.get::<i64, _>("remaining")).unwrap_or(0),
                },
            })
            .collect())
    }

    async fn staged(&self, connection: ConnectionId, data_type: DataType, keys: &[String]) -> Result<Vec<StagedItem>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "SELECT item_key, item_id, value FROM sync_staging WHERE connection_id = $1 AND data_type = $2 \
             AND item_key {} ORDER BY item_key, item_id",
            d::in_list(3)
        ))
        .bind(connection.to_string())
        .bind(data_type.key())
        .bind(d::texts(keys))
        .fetch_all(self.reader())
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let text: String = r.get("value");
                Ok(StagedItem {
                    key: r.get("item_key"),
                    id: r.get("item_id"),
                    value: serde_json::from_str(&text).map_err(|e| RepositoryError::backend(format!("corrupt staged item: {e}")))?,
                })
            })
            .collect()
    }

    async fn count(&self, connection: ConnectionId, data_type: DataType, include_deleted: bool) -> Result<u64, RepositoryError> {
        let sql = if include_deleted {
            "SELECT COUNT(*) FROM records WHERE connection_id = $1 AND data_type = $2"
        } else {
            "SELECT COUNT(*) FROM records WHERE connection_id = $1 AND data_type = $2 AND NOT deleted"
        };
        let n: i64 =
            sqlx::query_scalar(sql).bind(connection.to_string()).bind(data_type.key()).fetch_one(self.reader()).await.map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get(&self, connection: ConnectionId, data_type: DataType, id: &str) -> Result<Option<RecordRow>, RepositoryError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM records WHERE connection_id = $1 AND data_type = $2 AND record_id = $3"))
            .bind(connection.to_string())
            .bind(data_type.key())
            .bind(id)
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn list_page(
        &self,
        connection: ConnectionId,
        data_type: DataType,
        query: &ListQuery,
    ) -> Result<Vec<ListedRecord>, RepositoryError> {
        let page = list_sql(connection, data_type, query);
        let rows = sqlx::query_with(&page.text, page.args).fetch_all(self.reader()).await.map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| ListedRecord { id: r.get(0), document: r.get(1), created: d::get_opt_time(r, 2), modified: d::get_time(r, 3) })
            .collect())
    }

    async fn count_matching(&self, connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Result<u64, RepositoryError> {
        let count = count_sql(connection, data_type, query);
        let total: i64 = sqlx::query_scalar_with(&count.text, count.args).fetch_one(self.reader()).await.map_err(backend)?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    async fn read_state(&self, company: CompanyId, connection: ConnectionId, data_type: DataType) -> Result<ReadState, RepositoryError> {
        let r = sqlx::query(
            "SELECT c.*, \
             EXISTS (SELECT 1 FROM companies WHERE id = $1) AS x_company, \
             EXISTS (SELECT 1 FROM pull_operations WHERE connection_id = $2 AND data_type = $3) AS x_requested, \
             EXISTS (SELECT 1 FROM pull_operations WHERE connection_id = $2 AND data_type = $3 AND status = 'Complete') AS x_completed, \
             COALESCE((SELECT version FROM record_versions WHERE connection_id = $2 AND data_type = $3), 0) AS x_version \
             FROM (SELECT 1 AS one) AS one LEFT JOIN connections c ON c.id = $2 AND c.company_id = $1",
        )
        .bind(company.to_string())
        .bind(connection.to_string())
        .bind(data_type.key())
        .fetch_one(self.reader())
        .await
        .map_err(backend)?;
        let found = r.try_get::<Option<String>, _>("id").map_err(backend)?.is_some();
        Ok(ReadState {
            company: r.try_get("x_company").map_err(backend)?,
            connection: if found { Some(crate::sql::connections::from_row(&r)?) } else { None },
            requested: r.try_get("x_requested").map_err(backend)?,
            completed: r.try_get("x_completed").map_err(backend)?,
            version: u64::try_from(r.try_get::<i64, _>("x_version").map_err(backend)?).unwrap_or(0),
        })
    }

    async fn version(&self, connection: ConnectionId, data_type: DataType) -> Result<u64, RepositoryError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT version FROM record_versions WHERE connection_id = $1 AND data_type = $2")
            .bind(connection.to_string())
            .bind(data_type.key())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?;
        Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    async fn scan(
        &self,
        connection: ConnectionId,
        data_type: DataType,
        after_id: Option<String>,
        limit: u32,
    ) -> Result<Vec<RecordRow>, RepositoryError> {
        let rows = match after_id {
            None => sqlx::query(&format!(
                "SELECT {COLUMNS} FROM records WHERE connection_id = $1 AND data_type = $2 ORDER BY record_id ASC LIMIT $3"
            ))
            .bind(connection.to_string())
            .bind(data_type.key())
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await
            .map_err(backend)?,
            Some(after) => sqlx::query(&format!(
                "SELECT {COLUMNS} FROM records WHERE connection_id = $1 AND data_type = $2 AND record_id > $3 \
                 ORDER BY record_id ASC LIMIT $4"
            ))
            .bind(connection.to_string())
            .bind(data_type.key())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await
            .map_err(backend)?,
        };
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{columns, last_per_id, list_sql};
    use tributary_domain::ids::ConnectionId;
    use tributary_domain::model::commerce_schema::{PAYMENTS, schema};
    use tributary_domain::model::data_type::DataType;
    use tributary_domain::model::record::StoredRecord;
    use tributary_domain::paging::ListQuery;

    /// Every queryable field of every list type has a column, so none silently matches nothing.
    #[test]
    fn every_commerce_field_is_located() {
        for dt in DataType::ALL {
            for field in schema(dt).map_or(&[][..], |s| s.fields) {
                assert!(columns(field.name).is_some(), "{dt} {}", field.name);
            }
        }
    }

    /// The order `records_created` (migration 0004) is built in, so that it serves pages unsorted.
    #[test]
    fn lists_in_created_order_follow_the_created_index() {
        let sql = |query: Option<&str>, order_by: Option<&str>| {
            let q = ListQuery::from_params(&PAYMENTS, Some(2), Some(10), query, order_by).unwrap();
            list_sql(ConnectionId::new_random(), DataType::Payments, &q).text
        };
        let by = crate::dialect::BY_CODE_POINT;
        let default = sql(None, None);
        let want = format!(
            "WHERE connection_id = $1 AND data_type = $2 AND NOT deleted ORDER BY created ASC NULLS FIRST, record_id{by} ASC LIMIT $3 OFFSET $4"
        );
        assert!(default.contains(&want), "{default}");
        let filtered = sql(Some("amount>1"), Some("-createdDate"));
        assert!(filtered.contains(&format!(" ORDER BY created DESC NULLS LAST, record_id{by} DESC LIMIT $4 OFFSET $5")), "{filtered}");
    }

    /// Filters on the typed fields compare their columns, not the document.
    #[test]
    fn amount_and_currency_filters_read_their_columns() {
        let q = ListQuery::from_params(&PAYMENTS, Some(1), Some(10), Some("currency=GBP && amount>5000"), None).unwrap();
        let sql = list_sql(ConnectionId::new_random(), DataType::Payments, &q).text;
        assert!(sql.contains("f_currency = $") && sql.contains("f_amount > CAST($"), "{sql}");
        assert!(!sql.contains("currency'") && !sql.contains("amount'") && !sql.contains("{currency}"), "{sql}");
        assert!(!sql.contains("detoasted"), "nor decompress the document for the filter: {sql}");
    }

    fn rec(id: &str, n: i64) -> StoredRecord {
        StoredRecord { id: id.into(), created: None, source_modified: None, document: serde_json::json!({ "n": n }), deleted: false }
    }

    #[test]
    fn a_repeated_id_keeps_its_last_version_and_ids_are_sorted() {
        let page = [rec("b", 1), rec("a", 2), rec("b", 3), rec("c", 4), rec("a", 5)];
        let got: Vec<(String, serde_json::Value)> = last_per_id(&page).into_iter().map(|r| (r.id.clone(), r.document.clone())).collect();
        let want = vec![
            ("a".to_owned(), serde_json::json!({"n": 5})),
            ("b".to_owned(), serde_json::json!({"n": 3})),
            ("c".to_owned(), serde_json::json!({"n": 4})),
        ];
        assert_eq!(got, want);
    }
}
