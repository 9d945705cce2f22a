//! The statements SQLite runs its own way, where the benchmarks or its locking need it: the sync's
//! page write (one `BEGIN IMMEDIATE` transaction of multi-row upserts with anonymous
//! placeholders), webhook fan-out and leasing (claims made by the transaction's first write), and
//! taking a sync lease (one conditional upsert). Everything else is shared with PostgreSQL
//! (`adapters/sql`).

use crate::SqliteStore;
use crate::dialect::time;
use crate::sql::backend;
use crate::sql::pull_operations::update_row;
use crate::sql::records::{PreparedPage, TYPED_FIELDS, clamp, typed_value};
use crate::sql::webhooks::{consumer_from_row, corrupt, delivery_from_row, event_type, insert_events};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;
use tributary_domain::RepositoryError;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::SyncWrite;
use tributary_domain::model::webhook::Delivery;
use uuid::Uuid;

/// Records per `INSERT`: 11 bound values each, well under SQLite's 32,766 limit.
const CHUNK: usize = 500;

/// Takes the lease of `connection` if nobody holds it or its holder let it expire: one
/// conditional upsert (`INSERT … ON CONFLICT DO UPDATE … WHERE expired`). SQLite runs writes one at
/// a time, so of two workers racing for a connection exactly one changes the row and the other
/// sees it live; a page write checks the holder in its own write transaction.
pub(crate) async fn take_lease(
    store: &SqliteStore,
    connection: &str,
    worker: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "INSERT INTO sync_leases (connection_id, owner, expires) VALUES ($1, $2, $3) \
         ON CONFLICT (connection_id) DO UPDATE SET owner = excluded.owner, expires = excluded.expires \
         WHERE sync_leases.expires < $4",
    )
    .bind(connection)
    .bind(worker)
    .bind(time(expires))
    .bind(time(now))
    .execute(store.writer())
    .await?;
    Ok(taken.rows_affected() > 0)
}

/// Hands each undispatched event to the consumers that accept it. Claiming the events is the
/// transaction's first statement (a write), so it holds the write lock from the start and two
/// dispatchers, in any processes, never claim the same event.
pub(crate) async fn fan_out(store: &SqliteStore, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
    let mut tx = store.writer().begin().await.map_err(backend)?;
    // Claiming the events is the transaction's first statement (a write), so it holds the
    // write lock from the start.
    let events = sqlx::query(
        "UPDATE webhook_events SET dispatched = 1 WHERE seq IN \
         (SELECT seq FROM webhook_events WHERE dispatched = 0 ORDER BY seq LIMIT ?) \
         RETURNING seq, event_type, company_tags",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    if events.is_empty() {
        tx.rollback().await.map_err(backend)?;
        return Ok(0);
    }
    let consumers = sqlx::query("SELECT * FROM webhook_consumers WHERE disabled = 0")
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(consumer_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut events: Vec<_> = events.into_iter().map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1), r.get::<String, _>(2))).collect();
    events.sort_by_key(|e| e.0);
    for (seq, ty, tags) in &events {
        let ty = event_type(ty)?;
        let tags: BTreeMap<String, String> = serde_json::from_str(tags).map_err(|e| corrupt("company tags", e))?;
        for c in consumers.iter().filter(|c| c.accepts(ty, &tags)) {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, event_seq, consumer_id, status, attempts, next_attempt, created) \
                 VALUES (?, ?, ?, 'Pending', 0, ?, ?) ON CONFLICT (event_seq, consumer_id) DO NOTHING",
            )
            .bind(Uuid::new_v4().to_string())
            .bind(seq)
            .bind(c.id.to_string())
            .bind(time(now))
            .bind(time(now))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
    }
    tx.commit().await.map_err(backend)?;
    Ok(events.len() as u64)
}

/// Leases up to `limit` due deliveries to `worker` until `until`: one `UPDATE … RETURNING`
/// statement (SQLite runs writes one at a time, so of two workers each delivery goes to exactly
/// one), then the leased deliveries read back with their events and consumers.
pub(crate) async fn lease_deliveries(
    store: &SqliteStore,
    worker: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, RepositoryError> {
    let (now, until) = (time(now), time(until));
    let leased: Vec<String> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN \
         (SELECT d.id FROM webhook_deliveries d JOIN webhook_consumers c ON c.id = d.consumer_id \
          WHERE d.status = 'Pending' AND d.next_attempt <= $3 AND c.disabled = 0 \
          AND (d.lease_until IS NULL OR d.lease_until < $3) ORDER BY d.event_seq, d.id LIMIT $4) \
         RETURNING id",
    )
    .bind(worker)
    .bind(until)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(store.writer())
    .await
    .map_err(backend)?;
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT d.id, d.consumer_id, d.attempts, d.created, d.final_attempt, e.id AS event_id, e.event_type, e.body, c.url, \
         c.secret_key_id, c.secret_ciphertext, c.failing_since \
         FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq JOIN webhook_consumers c ON c.id = d.consumer_id \
         WHERE d.lease_owner = $1 AND d.lease_until = $2 AND d.status = 'Pending' ORDER BY d.event_seq, d.id",
    )
    .bind(worker)
    .bind(until)
    .fetch_all(store.reader())
    .await
    .map_err(backend)?;
    rows.iter().filter(|r| leased.contains(&r.get::<String, _>("id"))).map(delivery_from_row).collect()
}

/// `INSERT … VALUES` of `rows` records, eleven anonymous placeholders each (company, connection,
/// data type, time, then the record's five and its typed fields: `records::TYPED_FIELDS`, the
/// amount cast from its decimal text as the filters cast their constants). Numbered placeholders (`?NNN`) would make binding quadratic:
/// SQLite looks each one's name up in a list of them all, and sqlx asks for every name.
fn upsert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(300 + rows * 30);
    sql.push_str(
        "INSERT INTO records (company_id, connection_id, data_type, modified, record_id, document, created, source_modified, deleted, \
         f_currency, f_amount) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NUMERIC))");
    }
    sql.push_str(
        " ON CONFLICT (connection_id, data_type, record_id) DO UPDATE SET company_id = excluded.company_id, \
         document = excluded.document, created = excluded.created, source_modified = excluded.source_modified, \
         modified = excluded.modified, deleted = excluded.deleted, f_currency = excluded.f_currency, f_amount = excluded.f_amount \
         WHERE records.document IS NOT excluded.document OR records.deleted IS NOT excluded.deleted",
    );
    sql
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

/// Writes a page of records with its partitions, staged items, checkpoint and pull in one
/// `BEGIN IMMEDIATE` transaction on the store's writing connection.
pub(crate) async fn write_sync(
    store: &SqliteStore,
    (company, connection): (String, String),
    data_type: DataType,
    w: &SyncWrite,
    page: PreparedPage<'_>,
    now: DateTime<Utc>,
) -> Result<u64, RepositoryError> {
    let PreparedPage { records, documents, staged } = page;
    let now_micros = time(now);
    // On the store's one writing connection (see `SqliteStore::writer`).
    let mut tx = store.writer().begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
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
                .bind(now_micros)
                .bind(&r.id)
                .bind(doc)
                .bind(r.created.map(time))
                .bind(r.source_modified.map(time))
                .bind(r.deleted)
                .bind(typed_value(&r.document, &TYPED_FIELDS[0]))
                .bind(typed_value(&r.document, &TYPED_FIELDS[1]));
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
        update_row(&mut tx, op).await?;
        insert_events(&mut tx, events).await?;
    }
    if changed > 0 {
        bump_version(&mut tx, &connection, data_type).await?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::upsert_sql;
    use crate::SqliteStore;
    use crate::sql::records::{count_sql, list_sql};
    use sqlx::Row;
    use tributary_domain::ids::ConnectionId;
    use tributary_domain::model::commerce_schema::PAYMENTS;
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

    /// The deleted flag and the typed fields are in `records_created` (migration 0012): a filtered
    /// count reads that index alone, and a filtered page checks them on the index entry before it
    /// reads the record's row (the row's seek is deferred, and no column of the row is read before
    /// the index's columns are compared), so only matching records are read from the table.
    #[tokio::test]
    async fn a_filter_on_the_typed_fields_is_answered_from_the_list_index() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let q = ListQuery::from_params(&PAYMENTS, Some(3), Some(100), Some("currency=GBP && amount>5000"), None).unwrap();
        let count = count_sql(ConnectionId::new_random(), DataType::Payments, &q);
        let rows = sqlx::query_with(&format!("EXPLAIN QUERY PLAN {}", count.text), count.args).fetch_all(&store.pool).await.unwrap();
        let plan = rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n");
        assert!(plan.contains("USING COVERING INDEX records_created (connection_id=? AND data_type=?)"), "{plan}");

        // The page's program: (opcode, cursor, p4) per step.
        let page = list_sql(ConnectionId::new_random(), DataType::Payments, &q);
        let rows = sqlx::query_with(&format!("EXPLAIN {}", page.text), page.args).fetch_all(&store.pool).await.unwrap();
        let program: Vec<(String, i64, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.get("opcode"),
                    r.get("p1"),
                    r.try_get::<String, _>("p4").or_else(|_| r.try_get::<i64, _>("p4").map(|n| n.to_string())).unwrap_or_default(),
                )
            })
            .collect();
        let listing = program.iter().map(|(op, p1, p4)| format!("{op} {p1} {p4}")).collect::<Vec<_>>().join("\n");
        // The table's cursor is opened with its column count, the index's with a key description.
        let opened: Vec<&(String, i64, String)> = program.iter().filter(|(op, _, _)| op == "OpenRead").collect();
        let table = opened.iter().find(|(_, _, p4)| !p4.starts_with("k(")).unwrap_or_else(|| panic!("{listing}")).1;
        let index = opened.iter().find(|(_, _, p4)| p4.starts_with("k(")).unwrap_or_else(|| panic!("{listing}")).1;
        assert!(program.iter().any(|(op, _, _)| op == "DeferredSeek"), "{listing}");
        let at = |wanted: &[&str]| {
            program.iter().enumerate().filter(|(_, (op, _, _))| wanted.contains(&op.as_str())).map(|(i, _)| i).collect::<Vec<_>>()
        };
        let output = at(&["ResultRow"])[0];
        // The filter's checks: the comparisons of the loop, before the row is output.
        let last_check = at(&["If", "IfNot", "Eq", "Ne", "Lt", "Le", "Gt", "Ge"]).into_iter().filter(|&i| i < output).max();
        let last_check = last_check.unwrap_or_else(|| panic!("{listing}"));
        let column_reads =
            |cursor: i64| program.iter().enumerate().filter(move |(_, (op, c, _))| op == "Column" && *c == cursor).map(|(i, _)| i);
        assert!(column_reads(index).any(|i| i < last_check), "the filter reads the index:\n{listing}");
        let first_row_read = column_reads(table).min().unwrap_or_else(|| panic!("{listing}"));
        assert!(first_row_read > last_check, "a column of the row is read before the filter is checked:\n{listing}");
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
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS NUMERIC))";
        assert!(sql.contains(&format!("VALUES {row}, {row} ON CONFLICT")), "{sql}");
        assert!(!sql.contains("?1"), "{sql}");
    }
}
