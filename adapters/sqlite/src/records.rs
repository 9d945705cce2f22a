//! `RecordRepository` on SQLite. A sync write is one `BEGIN IMMEDIATE` transaction on the store's
//! writing connection (`SqliteStore::writer`): the fence (the connection exists, the worker holds its
//! lease, it is linked), multi-row upserts of the records, whose `DO UPDATE … WHERE` leaves
//! unchanged records (and their `modified`) alone, so the statement's change count is the number
//! of records inserted or changed, then the staged items, checkpoint, partitions and pull.

use crate::filter::{Column, Sql, render, render_order};
use crate::{SqliteStore, backend, from_micros, parse_uuid, to_micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, ConnectionId, PullOperationId};
use tributary_domain::model::commerce_schema::{RecordField, locate};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::{Checkpoint, Estimate, ListedRecord, PartitionState, RecordRow, StagedItem, StoredRecord, SyncWrite};
use tributary_domain::paging::{ListQuery, Seek};
use tributary_domain::ports::{ReadState, RecordRepository};

/// Records per `INSERT`: 9 bound values each, well under SQLite's 32,766 limit.
const CHUNK: usize = 500;

const COLUMNS: &str = "record_id, document, created, source_modified, modified, deleted";
/// What a list page reads: the document stays JSON text (`ListedRecord`).
const LIST_COLUMNS: &str = "record_id, document, created, modified";

/// Where a commerce field lives (`commerce_schema::locate`): three columns, or a path into the
/// document.
fn columns(field: &'static str) -> Option<Column> {
    match locate(field) {
        RecordField::Created => Some(Column::Scalar("created")),
        RecordField::Modified => Some(Column::Scalar("modified")),
        RecordField::Id => Some(Column::Scalar("record_id")),
        RecordField::Document(path) => Column::json("document", path),
    }
}

/// The default order: the `records_created` index (`connection_id, data_type, created,
/// record_id`) read forwards, so a page needs no sort.
const DEFAULT_ORDER: &str = "created ASC NULLS FIRST";

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
    sql.push(" AND deleted = 0");
    if let Some(f) = &query.filter {
        sql.push(" AND ");
        render(sql, f, columns);
    }
}

/// The `COUNT(*)` of live records matching `query.filter`.
fn count_sql(connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Sql {
    let w = where_sql(connection, data_type, query);
    Sql { text: format!("SELECT COUNT(*) FROM records{}", w.text), args: w.args }
}

/// A descending page after a record with a creation time: the rest of that range, then the
/// records without one (they sort last), each an index range of at most a page, merged in order.
/// (One `… < (c, id) OR created IS NULL` condition would make the database walk every record
/// already served.)
fn descending_after(connection: ConnectionId, data_type: DataType, query: &ListQuery, seek: &Seek, c: DateTime<Utc>) -> Sql {
    let size = i64::from(query.page.page_size);
    let mut page = Sql::default();
    page.push(&format!("SELECT * FROM (SELECT * FROM (SELECT {LIST_COLUMNS} FROM records"));
    push_where(&mut page, connection, data_type, query);
    page.push(" AND (created, record_id) < (");
    page.bind_i64(to_micros(c));
    page.push(", ");
    page.bind_text(seek.id.clone());
    page.push(")");
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, "record_id");
    page.push(" LIMIT ");
    page.bind_i64(size);
    page.push(&format!(") AS with_created UNION ALL SELECT * FROM (SELECT {LIST_COLUMNS} FROM records"));
    push_where(&mut page, connection, data_type, query);
    page.push(" AND created IS NULL ORDER BY record_id DESC LIMIT ");
    page.bind_i64(size);
    page.push(") AS without_created) AS merged");
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, "record_id");
    page.push(" LIMIT ");
    page.bind_i64(size);
    page
}

/// `SELECT` of a page of live records matching `query`: after `query.seek` when given (a row-value
/// range on the `records_created` index, in the order's direction; records without a creation
/// time sort first ascending and last descending), else at the page's offset.
fn list_sql(connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Sql {
    let w = where_sql(connection, data_type, query);
    let mut page = Sql { text: format!("SELECT {LIST_COLUMNS} FROM records{}", w.text), args: w.args };
    let seek = query.seek.as_ref().filter(|_| query.keyset_order());
    if let Some(seek) = seek {
        match (query.descending(), seek.created) {
            (false, Some(c)) => {
                page.push(" AND (created, record_id) > (");
                page.bind_i64(to_micros(c));
                page.push(", ");
                page.bind_text(seek.id.clone());
                page.push(")");
            }
            (false, None) => {
                page.push(" AND (created IS NOT NULL OR record_id > ");
                page.bind_text(seek.id.clone());
                page.push(")");
            }
            (true, Some(c)) => return descending_after(connection, data_type, query, seek, c),
            (true, None) => {
                page.push(" AND created IS NULL AND record_id < ");
                page.bind_text(seek.id.clone());
            }
        }
    }
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, "record_id");
    page.push(" LIMIT ");
    page.bind_i64(i64::from(query.page.page_size));
    if seek.is_none() {
        page.push(" OFFSET ");
        page.bind_i64(i64::try_from(query.page.offset()).unwrap_or(i64::MAX));
    }
    page
}

fn from_row(r: &SqliteRow) -> Result<RecordRow, RepositoryError> {
    let id: String = r.get("record_id");
    let document = serde_json::from_str(&r.get::<String, _>("document"))
        .map_err(|e| RepositoryError::backend(format!("corrupt record document {id}: {e}")))?;
    Ok(RecordRow {
        record: StoredRecord {
            created: r.get::<Option<i64>, _>("created").map(from_micros),
            source_modified: r.get::<Option<i64>, _>("source_modified").map(from_micros),
            document,
            deleted: r.get::<bool, _>("deleted"),
            id,
        },
        modified: from_micros(r.get("modified")),
    })
}

/// `INSERT … VALUES` of `rows` records, nine anonymous placeholders each (company, connection, data
/// type, time, then the record's five). Numbered placeholders (`?NNN`) would make binding quadratic:
/// SQLite looks each one's name up in a list of them all, and sqlx asks for every name.
fn upsert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(300 + rows * 30);
    sql.push_str(
        "INSERT INTO records (company_id, connection_id, data_type, modified, record_id, document, created, source_modified, deleted) \
         VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    sql.push_str(
        " ON CONFLICT (connection_id, data_type, record_id) DO UPDATE SET company_id = excluded.company_id, \
         document = excluded.document, created = excluded.created, source_modified = excluded.source_modified, \
         modified = excluded.modified, deleted = excluded.deleted \
         WHERE records.document IS NOT excluded.document OR records.deleted IS NOT excluded.deleted",
    );
    sql
}

/// The page with one entry per id (the last one wins, as if written in order), sorted by id
/// (B-tree inserts in key order are the cheapest).
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

/// A count as SQLite's integer.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Moves the records' version (`RecordRepository::version`) in the writing transaction.
async fn bump_version(tx: &mut sqlx::SqliteConnection, connection: &str, data_type: DataType) -> Result<(), RepositoryError> {
    sqlx::query(
        "INSERT INTO record_versions (connection_id, data_type, version) VALUES (?, ?, 1) \
         ON CONFLICT (connection_id, data_type) DO UPDATE SET version = record_versions.version + 1",
    )
    .bind(connection)
    .bind(data_type.key())
    .execute(tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl RecordRepository for SqliteStore {
    async fn write_sync(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        w: &SyncWrite,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        let records = last_per_id(&w.records);
        // Serialise before taking the write lock.
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
        let (company, connection) = (company.to_string(), connection.to_string());
        // On the store's one writing connection (see `SqliteStore::writer`).
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let found: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT c.status, l.owner FROM connections c LEFT JOIN sync_leases l ON l.connection_id = c.id \
             WHERE c.id = ? AND c.company_id = ?",
        )
        .bind(&connection)
        .bind(&company)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        // Dropping the transaction rolls it back.
        let Some((status, owner)) = found else {
            return Err(RepositoryError::NotFound(format!("connection {connection} of company {company}")));
        };
        if let Some(worker) = &w.fence {
            if owner.as_deref() != Some(worker.as_str()) {
                return Err(RepositoryError::Fenced(format!("{worker} no longer holds the sync lease of connection {connection}")));
            }
            if status != "Linked" {
                return Err(RepositoryError::Fenced(format!("connection {connection} is {status}")));
            }
        }
        if w.reset {
            for table in ["sync_partitions", "sync_staging"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE connection_id = ? AND data_type = ?"))
                    .bind(&connection)
                    .bind(data_type.key())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        let mut changed = 0;
        let mut full_chunk_sql: Option<String> = None;
        for (chunk, docs) in records.chunks(CHUNK).zip(documents.chunks(CHUNK)) {
            let partial_sql;
            let sql = if chunk.len() == CHUNK {
                full_chunk_sql.get_or_insert_with(|| upsert_sql(CHUNK)).as_str()
            } else {
                partial_sql = upsert_sql(chunk.len());
                partial_sql.as_str()
            };
            let mut q = sqlx::query(sql);
            for (r, doc) in chunk.iter().zip(docs) {
                q = q
                    .bind(&company)
                    .bind(&connection)
                    .bind(data_type.key())
                    .bind(to_micros(now))
                    .bind(&r.id)
                    .bind(doc)
                    .bind(r.created.map(to_micros))
                    .bind(r.source_modified.map(to_micros))
                    .bind(r.deleted);
            }
            changed += q.execute(&mut *tx).await.map_err(backend)?.rows_affected();
        }
        for (items, values) in w.staged.chunks(CHUNK).zip(staged.chunks(CHUNK)) {
            let rows = vec!["(?, ?, ?, ?, ?)"; items.len()].join(", ");
            let sql = format!(
                "INSERT INTO sync_staging (connection_id, data_type, item_key, item_id, value) VALUES {rows} \
                 ON CONFLICT (connection_id, data_type, item_key, item_id) DO UPDATE SET value = excluded.value"
            );
            let mut q = sqlx::query(&sql);
            for (item, value) in items.iter().zip(values) {
                q = q.bind(&connection).bind(data_type.key()).bind(&item.key).bind(&item.id).bind(value);
            }
            q.execute(&mut *tx).await.map_err(backend)?;
        }
        if let Some(cp) = &w.checkpoint {
            sqlx::query(
                "INSERT INTO sync_checkpoints (connection_id, data_type, pull_id, backfilling, incremental) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (connection_id, data_type) DO UPDATE SET pull_id = excluded.pull_id, \
                 backfilling = excluded.backfilling, incremental = excluded.incremental",
            )
            .bind(&connection)
            .bind(data_type.key())
            .bind(cp.pull_id.to_string())
            .bind(cp.backfilling)
            .bind(&cp.incremental)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        for part in &w.partitions {
            sqlx::query(
                "INSERT INTO sync_partitions (connection_id, data_type, partition_id, stage, cursor, records, done, remaining) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (connection_id, data_type, partition_id) DO UPDATE SET \
                 stage = excluded.stage, cursor = excluded.cursor, records = excluded.records, done = excluded.done, \
                 remaining = excluded.remaining",
            )
            .bind(&connection)
            .bind(data_type.key())
            .bind(i64::from(part.id))
            .bind(i64::from(part.stage))
            .bind(&part.cursor)
            .bind(clamp(part.records))
            .bind(clamp(part.estimate.done))
            .bind(clamp(part.estimate.left))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        if let Some((op, events)) = &w.pull {
            crate::pull_operations::update_row(&mut tx, op).await?;
            crate::webhooks::insert_events(&mut tx, events).await?;
        }
        if changed > 0 {
            bump_version(&mut tx, &connection, data_type).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(changed)
    }

    async fn checkpoint(&self, connection: ConnectionId, data_type: DataType) -> Result<Option<Checkpoint>, RepositoryError> {
        let Some(r) =
            sqlx::query("SELECT pull_id, backfilling, incremental FROM sync_checkpoints WHERE connection_id = ? AND data_type = ?")
                .bind(connection.to_string())
                .bind(data_type.key())
                .fetch_optional(&self.pool)
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
             WHERE connection_id = ? AND data_type = ? ORDER BY partition_id",
        )
        .bind(connection.to_string())
        .bind(data_type.key())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| PartitionState {
                id: u32::try_from(r.get::<i64, _>("partition_id")).unwrap_or(u32::MAX),
                stage: u16::try_from(r.get::<i64, _>("stage")).unwrap_or(u16::MAX),
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
        let mut out = Vec::new();
        for chunk in keys.chunks(CHUNK) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT item_key, item_id, value FROM sync_staging WHERE connection_id = ? AND data_type = ? AND item_key IN ({marks}) \
                 ORDER BY item_key, item_id"
            );
            let mut q = sqlx::query(&sql).bind(connection.to_string()).bind(data_type.key());
            for k in chunk {
                q = q.bind(k);
            }
            for r in q.fetch_all(&self.pool).await.map_err(backend)? {
                let text: String = r.get("value");
                out.push(StagedItem {
                    key: r.get("item_key"),
                    id: r.get("item_id"),
                    value: serde_json::from_str(&text).map_err(|e| RepositoryError::backend(format!("corrupt staged item: {e}")))?,
                });
            }
        }
        Ok(out)
    }

    async fn count(&self, connection: ConnectionId, data_type: DataType, include_deleted: bool) -> Result<u64, RepositoryError> {
        let sql = if include_deleted {
            "SELECT COUNT(*) FROM records WHERE connection_id = ? AND data_type = ?"
        } else {
            "SELECT COUNT(*) FROM records WHERE connection_id = ? AND data_type = ? AND deleted = 0"
        };
        let n: i64 =
            sqlx::query_scalar(sql).bind(connection.to_string()).bind(data_type.key()).fetch_one(&self.pool).await.map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get(&self, connection: ConnectionId, data_type: DataType, id: &str) -> Result<Option<RecordRow>, RepositoryError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM records WHERE connection_id = ? AND data_type = ? AND record_id = ?"))
            .bind(connection.to_string())
            .bind(data_type.key())
            .bind(id)
            .fetch_optional(&self.pool)
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
        let rows = sqlx::query_with(&page.text, page.args).fetch_all(&self.pool).await.map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| ListedRecord {
                id: r.get(0),
                document: r.get(1),
                created: r.get::<Option<i64>, _>(2).map(from_micros),
                modified: from_micros(r.get(3)),
            })
            .collect())
    }

    async fn count_matching(&self, connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Result<u64, RepositoryError> {
        let count = count_sql(connection, data_type, query);
        let total: i64 = sqlx::query_scalar_with(&count.text, count.args).fetch_one(&self.pool).await.map_err(backend)?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    async fn read_state(&self, company: CompanyId, connection: ConnectionId, data_type: DataType) -> Result<ReadState, RepositoryError> {
        let r = sqlx::query(
            "SELECT c.*, \
             EXISTS (SELECT 1 FROM companies WHERE id = ?1) AS x_company, \
             EXISTS (SELECT 1 FROM pull_operations WHERE connection_id = ?2 AND data_type = ?3) AS x_requested, \
             EXISTS (SELECT 1 FROM pull_operations WHERE connection_id = ?2 AND data_type = ?3 AND status = 'Complete') AS x_completed, \
             COALESCE((SELECT version FROM record_versions WHERE connection_id = ?2 AND data_type = ?3), 0) AS x_version \
             FROM (SELECT 1 AS one) AS one LEFT JOIN connections c ON c.id = ?2 AND c.company_id = ?1",
        )
        .bind(company.to_string())
        .bind(connection.to_string())
        .bind(data_type.key())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let found = r.try_get::<Option<String>, _>("id").map_err(backend)?.is_some();
        Ok(ReadState {
            company: r.try_get("x_company").map_err(backend)?,
            connection: if found { Some(crate::connections::from_row(&r)?) } else { None },
            requested: r.try_get("x_requested").map_err(backend)?,
            completed: r.try_get("x_completed").map_err(backend)?,
            version: u64::try_from(r.try_get::<i64, _>("x_version").map_err(backend)?).unwrap_or(0),
        })
    }

    async fn version(&self, connection: ConnectionId, data_type: DataType) -> Result<u64, RepositoryError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT version FROM record_versions WHERE connection_id = ? AND data_type = ?")
            .bind(connection.to_string())
            .bind(data_type.key())
            .fetch_optional(&self.pool)
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
                "SELECT {COLUMNS} FROM records WHERE connection_id = ? AND data_type = ? ORDER BY record_id ASC LIMIT ?"
            ))
            .bind(connection.to_string())
            .bind(data_type.key())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?,
            Some(after) => sqlx::query(&format!(
                "SELECT {COLUMNS} FROM records WHERE connection_id = ? AND data_type = ? AND record_id > ? \
                 ORDER BY record_id ASC LIMIT ?"
            ))
            .bind(connection.to_string())
            .bind(data_type.key())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?,
        };
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{columns, list_sql, upsert_sql};
    use crate::SqliteStore;
    use sqlx::Row;
    use tributary_domain::ids::ConnectionId;
    use tributary_domain::model::commerce_schema::{PAYMENTS, schema};
    use tributary_domain::model::data_type::DataType;
    use tributary_domain::paging::{ListQuery, Seek};

    /// The query plan of a list page, one step per line.
    async fn plan(store: &SqliteStore, query: Option<&str>, order_by: Option<&str>) -> String {
        plan_of(store, ListQuery::from_params(&PAYMENTS, Some(3), Some(50), query, order_by).unwrap()).await
    }

    async fn plan_of(store: &SqliteStore, q: ListQuery) -> String {
        let page = list_sql(ConnectionId::new_random(), DataType::Payments, &q);
        let rows = sqlx::query_with(&format!("EXPLAIN QUERY PLAN {}", page.text), page.args).fetch_all(&store.pool).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n")
    }

    /// Every queryable field of every list type has a column, so none silently matches nothing.
    #[test]
    fn every_commerce_field_is_located() {
        for dt in DataType::ALL {
            for field in schema(dt).map_or(&[][..], |s| s.fields) {
                assert!(columns(field.name).is_some(), "{dt} {}", field.name);
            }
        }
    }

    #[tokio::test]
    async fn lists_in_created_order_read_the_created_index_without_sorting() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        for (query, order_by) in
            [(None, None), (None, Some("-createdDate")), (Some("amount>1 && dueDate>=2025-01-01"), Some("createdDate"))]
        {
            let plan = plan(&store, query, order_by).await;
            assert!(plan.contains("USING INDEX records_created (connection_id=? AND data_type=?)"), "{query:?} {order_by:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{query:?} {order_by:?}: {plan}");
        }
        let plan = plan(&store, None, Some("amount")).await;
        assert!(plan.contains("USE TEMP B-TREE FOR ORDER BY"), "other orders sort: {plan}");
        store.close().await;
    }

    /// A keyset page starts with a range search on `records_created`, not a walk from the start
    /// (descending, the range and the records without a creation time are merged: two pages at most).
    #[tokio::test]
    async fn keyset_pages_seek_into_the_created_index() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let created = Some("2025-01-01T00:00:00Z".parse().unwrap());
        for (order_by, range) in [(None, "(created,record_id)>(?,?)"), (Some("-createdDate"), "(created,record_id)<(?,?)")] {
            let q = ListQuery {
                seek: Some(Seek { created, id: "pay_1".into() }),
                ..ListQuery::from_params(&PAYMENTS, Some(10_000), Some(100), Some("amount>1"), order_by).unwrap()
            };
            let plan = plan_of(&store, q).await;
            assert!(
                plan.contains(&format!("USING INDEX records_created (connection_id=? AND data_type=? AND {range})")),
                "{order_by:?}: {plan}"
            );
            if order_by.is_none() {
                assert!(!plan.contains("TEMP B-TREE"), "{order_by:?}: {plan}");
            }
        }
        store.close().await;
    }

    #[test]
    fn upserts_use_anonymous_placeholders_nine_per_record() {
        let sql = upsert_sql(2);
        assert!(sql.contains("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT"), "{sql}");
        assert!(!sql.contains("?1"), "{sql}");
    }
}
