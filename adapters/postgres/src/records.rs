//! `RecordRepository` on PostgreSQL. A page is written by one statement ([`WRITE_PAGE`]): the fence
//! (the connection exists, the worker holds its lease, it is linked), the partitions' positions,
//! the staged items, an `INSERT … SELECT FROM UNNEST(…)` of the records, whose `DO UPDATE … WHERE`
//! leaves unchanged records (and their `modified`) alone, and the records' version, in one round
//! trip. Writes that start or end a backfill or change a pull add statements in a transaction.

use crate::filter::{Column, Sql, render_detoasted, render_order};
use crate::{PgStore, backend, parse_uuid};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, ConnectionId, PullOperationId};
use tributary_domain::model::commerce_schema::{RecordField, locate};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::{Checkpoint, Estimate, ListedRecord, PartitionState, RecordRow, StagedItem, StoredRecord, SyncWrite};
use tributary_domain::paging::{ListQuery, Seek};
use tributary_domain::ports::{ReadState, RecordRepository};

const COLUMNS: &str = "record_id, document, created, source_modified, modified, deleted";
/// What a list page reads: the document as JSON text (`ListedRecord`), not decoded.
const LIST_COLUMNS: &str = "record_id, document::text, created, modified";

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

/// The default order: the `records_created` index (`connection_id, data_type, created NULLS
/// FIRST, record_id COLLATE "C"`, migration 0004) read forwards, so a page needs no sort.
const DEFAULT_ORDER: &str = "created ASC NULLS FIRST";
/// The tie-break: ids by code point, as SQLite compares them, whatever the database collation.
const ID: &str = "record_id COLLATE \"C\"";

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
        // Over one decompressed copy of the document, however many paths the filter reads.
        sql.push(" AND ");
        render_detoasted(sql, f, columns, "document");
    }
}

/// The `COUNT(*)` of live records matching `query.filter`.
fn count_sql(connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Sql {
    let w = where_sql(connection, data_type, query);
    Sql::from_parts(format!("SELECT COUNT(*) FROM records{}", w.text), &w)
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
    page.push(&format!(" AND (created, {ID}) < ("));
    page.bind_time(c);
    page.push(", ");
    page.bind_text(seek.id.clone());
    page.push(")");
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, ID);
    page.push(" LIMIT ");
    page.bind_i64(size);
    page.push(&format!(") AS with_created UNION ALL SELECT * FROM (SELECT {LIST_COLUMNS} FROM records"));
    push_where(&mut page, connection, data_type, query);
    page.push(&format!(" AND created IS NULL ORDER BY {ID} DESC LIMIT "));
    page.bind_i64(size);
    page.push(") AS without_created) AS merged");
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, ID);
    page.push(" LIMIT ");
    page.bind_i64(size);
    page
}

/// `SELECT` of a page of live records matching `query`: after `query.seek` when given (a row
/// comparison the `records_created` index answers as a range, in the order's direction; records
/// without a creation time sort first ascending and last descending), else at the page's offset.
fn list_sql(connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Sql {
    let w = where_sql(connection, data_type, query);
    let mut page = Sql::from_parts(format!("SELECT {LIST_COLUMNS} FROM records{}", w.text), &w);
    let seek = query.seek.as_ref().filter(|_| query.keyset_order());
    if let Some(seek) = seek {
        match (query.descending(), seek.created) {
            (false, Some(c)) => {
                page.push(&format!(" AND (created, {ID}) > ("));
                page.bind_time(c);
                page.push(", ");
                page.bind_text(seek.id.clone());
                page.push(")");
            }
            (false, None) => {
                page.push(&format!(" AND (created IS NOT NULL OR {ID} > "));
                page.bind_text(seek.id.clone());
                page.push(")");
            }
            (true, Some(c)) => return descending_after(connection, data_type, query, seek, c),
            (true, None) => {
                page.push(&format!(" AND created IS NULL AND {ID} < "));
                page.bind_text(seek.id.clone());
            }
        }
    }
    render_order(&mut page, query.order_by.as_ref(), columns, DEFAULT_ORDER, ID);
    page.push(" LIMIT ");
    page.bind_i64(i64::from(query.page.page_size));
    if seek.is_none() {
        page.push(" OFFSET ");
        page.bind_i64(i64::try_from(query.page.offset()).unwrap_or(i64::MAX));
    }
    page
}

/// A page of records with its partitions and staged items, written by one statement (one implicit
/// transaction, or a part of the caller's):
/// - `durability`: with `$20`, the commit does not wait for the WAL flush (`synchronous_commit` off
///   for this transaction only), since the page and its partition's position are lost together in a
///   database crash and the sync fetches the page again (at most `wal_writer_delay` × 3 of commits
///   are at risk, never a half page, and never one that a later durable commit follows);
/// - `conn`, `lease`: the connection (of the company) and its sync lease, locked `FOR KEY SHARE`:
///   a worker taking the lease over deletes the expired row (`SyncLeaseRepository::lease_next`),
///   so it waits for this write, or this write waits for it and then finds no row; renewals (which
///   change no key) and other page writes do not wait. An unlink does not wait either: a write that
///   read the connection as linked just before may commit just after;
/// - `fence`: a row when the write may go ahead: the connection exists and, when `$14` names a
///   worker, that worker holds the lease and the connection is linked; every insert below is
///   conditional on it;
/// - `parts`, `staged`: the partitions' positions and the staged items;
/// - `changed`: the records' upsert, whose `DO UPDATE … WHERE` leaves unchanged records (and their
///   `modified`) alone, so it returns the records inserted or changed;
/// - the records' version moves when any changed (`RecordRepository::version`).
///
/// `$1` company, `$2` connection, `$3` data type, `$4` now, `$5`–`$9` the records' ids, documents,
/// creation and source modification times and deleted flags, `$10`–`$13` and `$15`, `$16` the
/// partitions' ids, stages, cursors, records, done and remaining, `$14` the fencing worker,
/// `$17`–`$19` the staged items' keys, ids and values, `$20` relaxed durability.
const WRITE_PAGE: &str = "WITH durability AS (SELECT set_config('synchronous_commit', \
     CASE WHEN $20::boolean THEN 'off' ELSE current_setting('synchronous_commit') END, true) AS value), \
     conn AS (SELECT c.status FROM connections c, durability WHERE c.id = $2 AND c.company_id = $1 FOR KEY SHARE OF c), \
     lease AS (SELECT owner FROM sync_leases WHERE connection_id = $2 FOR KEY SHARE), \
     fence AS (SELECT 1 FROM conn WHERE $14::text IS NULL \
     OR (conn.status = 'Linked' AND EXISTS (SELECT 1 FROM lease WHERE lease.owner = $14::text))), \
     parts AS (INSERT INTO sync_partitions (connection_id, data_type, partition_id, stage, cursor, records, done, remaining) \
     SELECT $2, $3, p.id, p.stage, p.cursor, p.records, p.done, p.remaining \
     FROM UNNEST($10::integer[], $11::integer[], $12::text[], $13::bigint[], $15::bigint[], $16::bigint[]) \
     AS p (id, stage, cursor, records, done, remaining) WHERE EXISTS (SELECT 1 FROM fence) \
     ON CONFLICT (connection_id, data_type, partition_id) DO UPDATE SET stage = EXCLUDED.stage, cursor = EXCLUDED.cursor, \
     records = EXCLUDED.records, done = EXCLUDED.done, remaining = EXCLUDED.remaining RETURNING 1), \
     staged AS (INSERT INTO sync_staging (connection_id, data_type, item_key, item_id, value) \
     SELECT $2, $3, s.item_key, s.item_id, s.value FROM UNNEST($17::text[], $18::text[], $19::text[]) \
     AS s (item_key, item_id, value) WHERE EXISTS (SELECT 1 FROM fence) \
     ON CONFLICT (connection_id, data_type, item_key, item_id) DO UPDATE SET value = EXCLUDED.value RETURNING 1), \
     changed AS (INSERT INTO records (company_id, connection_id, data_type, modified, record_id, document, created, \
     source_modified, deleted) \
     SELECT $1, $2, $3, $4, r.record_id, r.document::jsonb, r.created, r.source_modified, r.deleted \
     FROM UNNEST($5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::boolean[]) \
     AS r (record_id, document, created, source_modified, deleted) WHERE EXISTS (SELECT 1 FROM fence) \
     ON CONFLICT (connection_id, data_type, record_id) DO UPDATE SET company_id = EXCLUDED.company_id, \
     document = EXCLUDED.document, created = EXCLUDED.created, source_modified = EXCLUDED.source_modified, \
     modified = EXCLUDED.modified, deleted = EXCLUDED.deleted \
     WHERE records.document IS DISTINCT FROM EXCLUDED.document OR records.deleted IS DISTINCT FROM EXCLUDED.deleted \
     RETURNING 1), \
     versioned AS (INSERT INTO record_versions (connection_id, data_type, version) \
     SELECT $2, $3, 1 WHERE EXISTS (SELECT 1 FROM changed) \
     ON CONFLICT (connection_id, data_type) DO UPDATE SET version = record_versions.version + 1) \
     SELECT (SELECT COUNT(*) FROM conn) AS found, (SELECT COUNT(*) FROM fence) AS allowed, \
     (SELECT COUNT(*) FROM changed) AS changed, (SELECT MAX(status) FROM conn) AS status";

/// A count as Postgres's `bigint`.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_row(r: &PgRow) -> Result<RecordRow, RepositoryError> {
    let id: String = r.get("record_id");
    let document = r
        .try_get::<Json<serde_json::Value>, _>("document")
        .map_err(|e| RepositoryError::backend(format!("corrupt record document {id}: {e}")))?
        .0;
    Ok(RecordRow {
        record: StoredRecord {
            created: r.get::<Option<DateTime<Utc>>, _>("created"),
            source_modified: r.get::<Option<DateTime<Utc>>, _>("source_modified"),
            document,
            deleted: r.get("deleted"),
            id,
        },
        modified: r.get::<DateTime<Utc>, _>("modified"),
    })
}

/// The page with one entry per id (the last one wins, as if written in order), sorted by id so
/// that concurrent writers lock rows in the same order.
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
impl RecordRepository for PgStore {
    async fn write_sync(
        &self,
        company: CompanyId,
        connection: ConnectionId,
        data_type: DataType,
        w: &SyncWrite,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        let records = last_per_id(&w.records);
        let documents = records
            .iter()
            .map(|r| serde_json::to_string(&r.document))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RepositoryError::backend(format!("cannot serialise a record document: {e}")))?;
        let staged_values = w
            .staged
            .iter()
            .map(|i| serde_json::to_string(&i.value))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RepositoryError::backend(format!("cannot serialise a staged item: {e}")))?;
        let (company, connection) = (company.to_string(), connection.to_string());
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let created: Vec<Option<DateTime<Utc>>> = records.iter().map(|r| r.created).collect();
        let source_modified: Vec<Option<DateTime<Utc>>> = records.iter().map(|r| r.source_modified).collect();
        let deleted: Vec<bool> = records.iter().map(|r| r.deleted).collect();
        let parts = &w.partitions;
        // A page alone commits without waiting for the WAL flush; anything that ends or starts a
        // backfill, or changes a pull, is durable.
        let relaxed = !w.reset && w.checkpoint.is_none() && w.pull.is_none();
        let page = sqlx::query(WRITE_PAGE)
            .bind(&company)
            .bind(&connection)
            .bind(data_type.key())
            .bind(now)
            .bind(ids)
            .bind(documents)
            .bind(created)
            .bind(source_modified)
            .bind(deleted)
            .bind(parts.iter().map(|p| i32::try_from(p.id).unwrap_or(i32::MAX)).collect::<Vec<_>>())
            .bind(parts.iter().map(|p| i32::from(p.stage)).collect::<Vec<_>>())
            .bind(parts.iter().map(|p| p.cursor.clone()).collect::<Vec<_>>())
            .bind(parts.iter().map(|p| clamp(p.records)).collect::<Vec<_>>())
            .bind(w.fence.as_deref())
            .bind(parts.iter().map(|p| clamp(p.estimate.done)).collect::<Vec<_>>())
            .bind(parts.iter().map(|p| clamp(p.estimate.left)).collect::<Vec<_>>())
            .bind(w.staged.iter().map(|i| i.key.as_str()).collect::<Vec<_>>())
            .bind(w.staged.iter().map(|i| i.id.as_str()).collect::<Vec<_>>())
            .bind(staged_values)
            .bind(relaxed);
        let verdict = |row: &PgRow| -> Result<u64, RepositoryError> {
            if row.get::<i64, _>("found") == 0 {
                return Err(RepositoryError::NotFound(format!("connection {connection} of company {company}")));
            }
            if row.get::<i64, _>("allowed") == 0 {
                let status: Option<String> = row.get("status");
                return Err(RepositoryError::Fenced(format!(
                    "{} does not hold the sync lease of connection {connection}, or it is {}",
                    w.fence.as_deref().unwrap_or_default(),
                    status.unwrap_or_default()
                )));
            }
            Ok(u64::try_from(row.get::<i64, _>("changed")).unwrap_or(0))
        };
        if relaxed {
            // One statement, so one implicit transaction and one round trip (see [`WRITE_PAGE`]).
            let row = page.fetch_one(&self.pool).await.map_err(backend)?;
            return verdict(&row);
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if w.reset {
            for table in ["sync_partitions", "sync_staging"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE connection_id = $1 AND data_type = $2"))
                    .bind(&connection)
                    .bind(data_type.key())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        // Dropping the transaction (on a refusal) rolls it back.
        let changed = verdict(&page.fetch_one(&mut *tx).await.map_err(backend)?)?;
        if let Some(cp) = &w.checkpoint {
            sqlx::query(
                "INSERT INTO sync_checkpoints (connection_id, data_type, pull_id, backfilling, incremental) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (connection_id, data_type) DO UPDATE SET pull_id = EXCLUDED.pull_id, \
                 backfilling = EXCLUDED.backfilling, incremental = EXCLUDED.incremental",
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
        if let Some((op, events)) = &w.pull {
            crate::pull_operations::update_row(&mut tx, op).await?;
            crate::webhooks::insert_events(&mut tx, events).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(changed)
    }

    async fn checkpoint(&self, connection: ConnectionId, data_type: DataType) -> Result<Option<Checkpoint>, RepositoryError> {
        let Some(r) =
            sqlx::query("SELECT pull_id, backfilling, incremental FROM sync_checkpoints WHERE connection_id = $1 AND data_type = $2")
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
             WHERE connection_id = $1 AND data_type = $2 ORDER BY partition_id",
        )
        .bind(connection.to_string())
        .bind(data_type.key())
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(
            "SELECT item_key, item_id, value FROM sync_staging WHERE connection_id = $1 AND data_type = $2 \
             AND item_key = ANY($3::text[]) ORDER BY item_key, item_id",
        )
        .bind(connection.to_string())
        .bind(data_type.key())
        .bind(keys)
        .fetch_all(&self.pool)
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
            sqlx::query_scalar(sql).bind(connection.to_string()).bind(data_type.key()).fetch_one(&self.pool).await.map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get(&self, connection: ConnectionId, data_type: DataType, id: &str) -> Result<Option<RecordRow>, RepositoryError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM records WHERE connection_id = $1 AND data_type = $2 AND record_id = $3"))
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
        Ok(rows.iter().map(|r| ListedRecord { id: r.get(0), document: r.get(1), created: r.get(2), modified: r.get(3) }).collect())
    }

    async fn count_matching(&self, connection: ConnectionId, data_type: DataType, query: &ListQuery) -> Result<u64, RepositoryError> {
        let count = count_sql(connection, data_type, query);
        let total: i64 = sqlx::query_scalar_with(&count.text, count.args).fetch_one(&self.pool).await.map_err(backend)?;
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
        let v: Option<i64> = sqlx::query_scalar("SELECT version FROM record_versions WHERE connection_id = $1 AND data_type = $2")
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
                "SELECT {COLUMNS} FROM records WHERE connection_id = $1 AND data_type = $2 ORDER BY record_id ASC LIMIT $3"
            ))
            .bind(connection.to_string())
            .bind(data_type.key())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
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
        let default = sql(None, None);
        assert!(default.contains("WHERE connection_id = $1 AND data_type = $2 AND NOT deleted ORDER BY created ASC NULLS FIRST, record_id COLLATE \"C\" ASC LIMIT $3 OFFSET $4"), "{default}");
        let filtered = sql(Some("amount>1"), Some("-createdDate"));
        assert!(filtered.contains(" ORDER BY created DESC NULLS LAST, record_id COLLATE \"C\" DESC LIMIT $4 OFFSET $5"), "{filtered}");
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
