//! The statements PostgreSQL runs its own way, where the benchmarks or its concurrency need it:
//! the sync's page write (one statement per page, `UNNEST` arrays, relaxed durability), webhook
//! fan-out and leasing (`FOR UPDATE SKIP LOCKED`), and taking a sync lease (a delete that waits
//! for the former holder's page writes). Everything else is shared with SQLite (`adapters/sql`).

use crate::PgStore;
use crate::sql::backend;
use crate::sql::pull_operations::update_row;
use crate::sql::records::{PreparedPage, TYPED_FIELDS, clamp, typed_value};
use crate::sql::webhooks::{consumer_from_row, delivery_from_row, event_from_row, insert_events};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tributary_domain::RepositoryError;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::SyncWrite;
use tributary_domain::model::webhook::Delivery;
use uuid::Uuid;

/// Takes the lease of `connection` if nobody holds it or its holder let it expire, in one
/// transaction: an expired lease is deleted (which waits for the page writes that hold it `FOR KEY
/// SHARE`, and makes those that come after find no lease), then the new one inserted. Of two
/// transactions racing for it, the second's delete waits for the first, then finds a live lease
/// and deletes nothing, and its insert conflicts and does nothing. (An `UPDATE` of the expiry would
/// not wait for the page writes: it changes no key.)
pub(crate) async fn take_lease(
    store: &PgStore,
    connection: &str,
    worker: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = store.writer().begin().await?;
    sqlx::query("DELETE FROM sync_leases WHERE connection_id = $1 AND expires < $2").bind(connection).bind(now).execute(&mut *tx).await?;
    let taken =
        sqlx::query("INSERT INTO sync_leases (connection_id, owner, expires) VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO NOTHING")
            .bind(connection)
            .bind(worker)
            .bind(expires)
            .execute(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(taken.rows_affected() > 0)
}

/// Hands each undispatched event to the consumers that accept it: the events are taken `FOR UPDATE
/// SKIP LOCKED` (concurrent dispatchers take disjoint batches, so an event is fanned out once) and
/// the consumers `FOR KEY SHARE` (none is deleted before its deliveries are written); the
/// deliveries are written by one `INSERT … FROM UNNEST`.
pub(crate) async fn fan_out(store: &PgStore, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
    let mut tx = store.writer().begin().await.map_err(backend)?;
    let events = sqlx::query(
        "SELECT seq, id, event_type, company_id, company_tags, generated, body FROM webhook_events \
         WHERE NOT dispatched ORDER BY seq ASC LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    if events.is_empty() {
        return Ok(0);
    }
    // KEY SHARE keeps the consumers from being deleted until the deliveries are written,
    // without blocking updates of their other columns.
    let consumers = sqlx::query("SELECT * FROM webhook_consumers ORDER BY created ASC, id ASC FOR KEY SHARE")
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(consumer_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut seqs = Vec::with_capacity(events.len());
    let (mut ids, mut event_seqs, mut consumer_ids) = (Vec::new(), Vec::new(), Vec::new());
    for row in &events {
        let seq: i64 = row.get("seq");
        let event = event_from_row(row)?;
        seqs.push(seq);
        for c in consumers.iter().filter(|c| c.accepts(event.event_type, &event.company_tags)) {
            ids.push(Uuid::new_v4().to_string());
            event_seqs.push(seq);
            consumer_ids.push(c.id.to_string());
        }
    }
    if !ids.is_empty() {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_seq, consumer_id, status, attempts, next_attempt, created) \
             SELECT d, s, c, 'Pending', 0, $4, $4 FROM UNNEST($1::text[], $2::bigint[], $3::text[]) AS t (d, s, c) \
             ON CONFLICT (event_seq, consumer_id) DO NOTHING",
        )
        .bind(ids)
        .bind(event_seqs)
        .bind(consumer_ids)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    sqlx::query("UPDATE webhook_events SET dispatched = TRUE WHERE seq = ANY($1)").bind(&seqs).execute(&mut *tx).await.map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(seqs.len() as u64)
}

/// Leases up to `limit` due deliveries to `worker` until `until`: one `UPDATE … WHERE id IN
/// (SELECT … FOR UPDATE SKIP LOCKED)`, so a row another transaction is leasing is skipped, and one
/// it has just leased fails the re-checked condition: a delivery is leased by one worker at a time.
pub(crate) async fn lease_deliveries(
    store: &PgStore,
    worker: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, RepositoryError> {
    let rows = sqlx::query(
        "UPDATE webhook_deliveries d SET lease_owner = $1, lease_until = $2 \
         FROM webhook_events e, webhook_consumers c \
         WHERE d.id IN ( \
             SELECT x.id FROM webhook_deliveries x JOIN webhook_consumers xc ON xc.id = x.consumer_id \
             WHERE x.status = 'Pending' AND x.next_attempt <= $3 AND NOT xc.disabled \
               AND (x.lease_until IS NULL OR x.lease_until < $3) \
             ORDER BY x.event_seq ASC, x.id ASC LIMIT $4 FOR UPDATE OF x SKIP LOCKED) \
         AND e.seq = d.event_seq AND c.id = d.consumer_id \
         RETURNING d.id, d.event_seq, e.id AS event_id, e.event_type, e.body, d.consumer_id, c.url, c.secret_key_id, \
             c.secret_ciphertext, d.attempts, c.failing_since, d.created, d.final_attempt",
    )
    .bind(worker)
    .bind(until)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(store.writer())
    .await
    .map_err(backend)?;
    let mut leased = rows.iter().map(|r| Ok((r.get::<i64, _>("event_seq"), delivery_from_row(r)?))).collect::<Result<Vec<_>, _>>()?;
    leased.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.id.cmp(&y.id)));
    Ok(leased.into_iter().map(|(_, d)| d).collect())
}

/// A page of records with its partitions and staged items, written by one statement (one implicit
/// transaction, or a part of the caller's):
/// - `durability`: with `$20`, the commit does not wait for the WAL flush (`synchronous_commit` off
///   for this transaction only), since the page and its partition's position are lost together in a
///   database crash and the sync fetches the page again (at most `wal_writer_delay` × 3 of commits
///   are at risk, never a half page, and never one that a later durable commit follows);
/// - `conn`, `lease`: the connection (of the company) and its sync lease, locked `FOR KEY SHARE`:
///   a worker taking the lease over deletes the expired row (`take_lease`),
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
/// `$17`–`$19` the staged items' keys, ids and values, `$20` relaxed durability, `$21`, `$22` the records'
/// typed fields (`records::TYPED_FIELDS`: currency text, amount as decimal text).
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
     source_modified, deleted, f_currency, f_amount) \
     SELECT $1, $2, $3, $4, r.record_id, r.document::jsonb, r.created, r.source_modified, r.deleted, r.f_currency, r.f_amount::numeric \
     FROM UNNEST($5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::boolean[], $21::text[], $22::text[]) \
     AS r (record_id, document, created, source_modified, deleted, f_currency, f_amount) WHERE EXISTS (SELECT 1 FROM fence) \
     ON CONFLICT (connection_id, data_type, record_id) DO UPDATE SET company_id = EXCLUDED.company_id, \
     document = EXCLUDED.document, created = EXCLUDED.created, source_modified = EXCLUDED.source_modified, \
     modified = EXCLUDED.modified, deleted = EXCLUDED.deleted, f_currency = EXCLUDED.f_currency, f_amount = EXCLUDED.f_amount \
     WHERE records.document IS DISTINCT FROM EXCLUDED.document OR records.deleted IS DISTINCT FROM EXCLUDED.deleted \
     RETURNING 1), \
     versioned AS (INSERT INTO record_versions (connection_id, data_type, version) \
     SELECT $2, $3, 1 WHERE EXISTS (SELECT 1 FROM changed) \
     ON CONFLICT (connection_id, data_type) DO UPDATE SET version = record_versions.version + 1) \
     SELECT (SELECT COUNT(*) FROM conn) AS found, (SELECT COUNT(*) FROM fence) AS allowed, \
     (SELECT COUNT(*) FROM changed) AS changed, (SELECT MAX(status) FROM conn) AS status";

/// Writes a page of records with its partitions, staged items, checkpoint and pull (see
/// [`WRITE_PAGE`]).
pub(crate) async fn write_sync(
    store: &PgStore,
    (company, connection): (String, String),
    data_type: DataType,
    w: &SyncWrite,
    page: PreparedPage<'_>,
    now: DateTime<Utc>,
) -> Result<u64, RepositoryError> {
    let PreparedPage { records, documents, staged: staged_values } = page;
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
        .bind(relaxed)
        .bind(records.iter().map(|r| typed_value(&r.document, &TYPED_FIELDS[0])).collect::<Vec<_>>())
        .bind(records.iter().map(|r| typed_value(&r.document, &TYPED_FIELDS[1])).collect::<Vec<_>>());
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
        let row = page.fetch_one(store.writer()).await.map_err(backend)?;
        return verdict(&row);
    }
    let mut tx = store.writer().begin().await.map_err(backend)?;
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
        update_row(&mut tx, op).await?;
        insert_events(&mut tx, events).await?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(changed)
}
