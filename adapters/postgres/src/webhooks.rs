//! `WebhookRepository` on PostgreSQL, and the outbox writer the other repositories call inside
//! their transactions.
//!
//! Concurrency: `fan_out` locks the events it takes with `FOR UPDATE SKIP LOCKED` (so concurrent
//! dispatchers take disjoint batches and an event is fanned out once) and the consumers with `FOR
//! KEY SHARE` (so none is deleted before its deliveries are written). `lease_deliveries` is one
//! `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`: a row another transaction is leasing
//! is skipped, and one it has just leased fails the re-checked condition, so a delivery is leased
//! by one worker at a time. The consumer limit is enforced under a table lock, as for API keys.

use crate::{PgStore, backend, parse_uuid, write_error};
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use std::collections::BTreeMap;
use std::time::Duration;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, WebhookConsumerId};
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::model::webhook::{
    AfterAttempt, Attempt, Delivery, DeliveryStatus, DeliverySummary, EventType, OutboxEvent, WebhookConsumer,
};
use tributary_domain::ports::{DeliveryCounts, Redelivery, WebhookRepository};
use uuid::Uuid;

/// Serialises consumer creation with itself and every other write to the table.
const LOCK: &str = "LOCK TABLE webhook_consumers IN SHARE ROW EXCLUSIVE MODE";

/// Writes events to the outbox on an open connection (a transaction the caller commits).
pub(crate) async fn insert_events(conn: &mut PgConnection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
    for e in events {
        sqlx::query(
            "INSERT INTO webhook_events (id, event_type, company_id, company_tags, generated, body) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.id.to_string())
        .bind(e.event_type.as_str())
        .bind(e.company_id.to_string())
        .bind(Json(&e.company_tags))
        .bind(e.generated)
        .bind(&e.body)
        .execute(&mut *conn)
        .await
        // A duplicate event id is a bug, not a conflict with the caller's change: Backend.
        .map_err(backend)?;
    }
    Ok(())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::backend(format!("corrupt webhook {what}: {e}"))
}

fn event_type(s: &str) -> Result<EventType, RepositoryError> {
    s.parse().map_err(|e: String| corrupt("event type", e))
}

/// `now + lease_for`, saturating.
fn expiry(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(lease_for).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn to_i32(n: u32, what: &str) -> Result<i32, RepositoryError> {
    i32::try_from(n).map_err(|_| RepositoryError::backend(format!("{what} {n} is out of range")))
}

fn consumer_from_row(r: &PgRow) -> Result<WebhookConsumer, RepositoryError> {
    let types = r.try_get::<Json<Vec<String>>, _>("event_types").map_err(|e| corrupt("event types", e))?.0;
    Ok(WebhookConsumer {
        id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("id"))?),
        url: r.get("url"),
        disabled: r.get("disabled"),
        event_types: types.iter().map(|t| event_type(t)).collect::<Result<_, _>>()?,
        company_tags: r.try_get::<Json<Vec<String>>, _>("company_tags").map_err(|e| corrupt("company tags", e))?.0,
        secret: SealedSecret { key_id: r.get("secret_key_id"), ciphertext: r.get("secret_ciphertext") },
        created: r.get::<DateTime<Utc>, _>("created"),
        failing_since: r.get::<Option<DateTime<Utc>>, _>("failing_since"),
        disabled_reason: r.get("disabled_reason"),
    })
}

fn event_from_row(r: &PgRow) -> Result<OutboxEvent, RepositoryError> {
    Ok(OutboxEvent {
        id: parse_uuid(&r.get::<String, _>("id"))?,
        event_type: event_type(&r.get::<String, _>("event_type"))?,
        company_id: CompanyId(parse_uuid(&r.get::<String, _>("company_id"))?),
        company_tags: r.try_get::<Json<BTreeMap<String, String>>, _>("company_tags").map_err(|e| corrupt("event company tags", e))?.0,
        generated: r.get::<DateTime<Utc>, _>("generated"),
        body: r.get("body"),
    })
}

fn delivery_from_row(r: &PgRow) -> Result<Delivery, RepositoryError> {
    Ok(Delivery {
        id: parse_uuid(&r.get::<String, _>("id"))?,
        event_id: parse_uuid(&r.get::<String, _>("event_id"))?,
        event_type: event_type(&r.get::<String, _>("event_type"))?,
        consumer_id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("consumer_id"))?),
        url: r.get("url"),
        secret: SealedSecret { key_id: r.get("secret_key_id"), ciphertext: r.get("secret_ciphertext") },
        body: r.get("body"),
        attempts: u32::try_from(r.get::<i32, _>("attempts")).map_err(|e| corrupt("attempt count", e))?,
        consumer_failing_since: r.get::<Option<DateTime<Utc>>, _>("failing_since"),
        final_attempt: r.get("final_attempt"),
        created: r.get::<DateTime<Utc>, _>("created"),
    })
}

fn attempt_from_row(r: &PgRow) -> Result<Attempt, RepositoryError> {
    Ok(Attempt {
        delivery_id: parse_uuid(&r.get::<String, _>("delivery_id"))?,
        consumer_id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("consumer_id"))?),
        event_id: parse_uuid(&r.get::<String, _>("event_id"))?,
        event_type: event_type(&r.get::<String, _>("event_type"))?,
        number: u32::try_from(r.get::<i32, _>("number")).map_err(|e| corrupt("attempt number", e))?,
        at: r.get::<DateTime<Utc>, _>("at"),
        status_code: r.get::<Option<i32>, _>("status_code").map(u16::try_from).transpose().map_err(|e| corrupt("status code", e))?,
        latency_ms: u64::try_from(r.get::<i64, _>("latency_ms")).map_err(|e| corrupt("latency", e))?,
        ok: r.get("ok"),
        error: r.get("error"),
    })
}

#[async_trait]
impl WebhookRepository for PgStore {
    async fn insert_consumer_limited(&self, c: &WebhookConsumer, max: usize) -> Result<(), RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(LOCK).execute(&mut *tx).await.map_err(backend)?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_consumers").fetch_one(&mut *tx).await.map_err(backend)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            return Err(RepositoryError::Conflict(format!("at most {max} webhook consumers")));
        }
        sqlx::query(
            "INSERT INTO webhook_consumers (id, url, disabled, event_types, company_tags, secret_key_id, secret_ciphertext, created, \
             failing_since, disabled_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(c.id.to_string())
        .bind(&c.url)
        .bind(c.disabled)
        .bind(Json(c.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>()))
        .bind(Json(&c.company_tags))
        .bind(&c.secret.key_id)
        .bind(&c.secret.ciphertext)
        .bind(c.created)
        .bind(c.failing_since)
        .bind(&c.disabled_reason)
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error(e, || format!("webhook consumer {} exists", c.id), || format!("webhook consumer {}", c.id)))?;
        tx.commit().await.map_err(backend)
    }

    async fn list_consumers(&self) -> Result<Vec<WebhookConsumer>, RepositoryError> {
        let rows =
            sqlx::query("SELECT * FROM webhook_consumers ORDER BY created ASC, id ASC").fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(consumer_from_row).collect()
    }

    async fn get_consumer(&self, id: WebhookConsumerId) -> Result<Option<WebhookConsumer>, RepositoryError> {
        sqlx::query("SELECT * FROM webhook_consumers WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(consumer_from_row)
            .transpose()
    }

    async fn delete_consumer(&self, id: WebhookConsumerId) -> Result<bool, RepositoryError> {
        // Deliveries and attempts go with the consumer through ON DELETE CASCADE.
        let done =
            sqlx::query("DELETE FROM webhook_consumers WHERE id = $1").bind(id.to_string()).execute(&self.pool).await.map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_consumer_disabled(&self, id: WebhookConsumerId, disabled: bool, reason: Option<String>) -> Result<bool, RepositoryError> {
        // Enabling also ends the failing streak, so an old streak cannot disable it again at once.
        let done = sqlx::query(
            "UPDATE webhook_consumers SET disabled = $1, disabled_reason = $2, \
             failing_since = CASE WHEN $1 THEN failing_since ELSE NULL END WHERE id = $3",
        )
        .bind(disabled)
        .bind(reason)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
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
        sqlx::query("UPDATE webhook_events SET dispatched = TRUE WHERE seq = ANY($1)")
            .bind(&seqs)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(seqs.len() as u64)
    }

    async fn lease_deliveries(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_for: Duration,
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
        .bind(expiry(now, lease_for))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut leased = rows.iter().map(|r| Ok((r.get::<i64, _>("event_seq"), delivery_from_row(r)?))).collect::<Result<Vec<_>, _>>()?;
        leased.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.id.cmp(&y.id)));
        Ok(leased.into_iter().map(|(_, d)| d).collect())
    }

    async fn record_attempt(&self, worker: &str, a: &Attempt, after: AfterAttempt) -> Result<bool, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The consumer row is locked first, as `delete_consumer` does before cascading to the
        // deliveries, so the two cannot deadlock. A success ends the failing streak; a failure
        // starts one (or continues it).
        sqlx::query(
            "UPDATE webhook_consumers SET failing_since = CASE WHEN $1 THEN NULL ELSE COALESCE(failing_since, $2) END WHERE id = $3",
        )
        .bind(a.ok)
        .bind(a.at)
        .bind(a.consumer_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, consumer_id, event_id, event_type, number, at, status_code, latency_ms, ok, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(a.delivery_id.to_string())
        .bind(a.consumer_id.to_string())
        .bind(a.event_id.to_string())
        .bind(a.event_type.as_str())
        .bind(to_i32(a.number, "attempt number")?)
        .bind(a.at)
        .bind(a.status_code.map(i32::from))
        .bind(i64::try_from(a.latency_ms).unwrap_or(i64::MAX))
        .bind(a.ok)
        .bind(&a.error)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The consumer (and with it the delivery) was deleted meanwhile: nothing to record, and
            // dropping the transaction rolls back the rest.
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => return Ok(false),
            Err(e) => return Err(backend(e)),
        }
        let (status, next_attempt) = match after {
            AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
            AfterAttempt::RetryAt(t) => (DeliveryStatus::Pending, Some(t)),
            AfterAttempt::GiveUp => (DeliveryStatus::Failed, None),
        };
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = $1, status = $2, next_attempt = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id = $4 AND lease_owner = $5",
        )
        .bind(to_i32(a.number, "attempt number")?)
        .bind(status.as_str())
        .bind(next_attempt)
        .bind(a.delivery_id.to_string())
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_attempts(&self, consumer: WebhookConsumerId, limit: u32) -> Result<Vec<Attempt>, RepositoryError> {
        let rows = sqlx::query("SELECT * FROM webhook_attempts WHERE consumer_id = $1 ORDER BY seq DESC LIMIT $2")
            .bind(consumer.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn delivery_counts(&self, consumer: WebhookConsumerId) -> Result<DeliveryCounts, RepositoryError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM webhook_deliveries WHERE consumer_id = $1 GROUP BY status")
            .bind(consumer.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut counts = DeliveryCounts::default();
        for r in rows {
            let n = u64::try_from(r.get::<i64, _>(1)).unwrap_or(0);
            match r.get::<String, _>(0).parse::<DeliveryStatus>().map_err(|e| corrupt("delivery status", e))? {
                DeliveryStatus::Pending => counts.pending = n,
                DeliveryStatus::Delivered => counts.delivered = n,
                DeliveryStatus::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    async fn list_deliveries(&self, consumer: WebhookConsumerId, limit: u32) -> Result<Vec<DeliverySummary>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT d.id, e.id AS event_id, e.event_type, d.status, d.attempts, d.created, d.next_attempt \
             FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq \
             WHERE d.consumer_id = $1 ORDER BY d.created DESC, d.event_seq DESC LIMIT $2",
        )
        .bind(consumer.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(DeliverySummary {
                    id: parse_uuid(&r.get::<String, _>("id"))?,
                    event_id: parse_uuid(&r.get::<String, _>("event_id"))?,
                    event_type: event_type(&r.get::<String, _>("event_type"))?,
                    status: r.get::<String, _>("status").parse().map_err(|e| corrupt("delivery status", e))?,
                    attempts: u32::try_from(r.get::<i32, _>("attempts")).unwrap_or(0),
                    created: r.get("created"),
                    next_attempt: r.get("next_attempt"),
                })
            })
            .collect()
    }

    async fn redeliver(&self, consumer: WebhookConsumerId, delivery: Uuid, now: DateTime<Utc>) -> Result<Redelivery, RepositoryError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'Pending', next_attempt = $1, lease_owner = NULL, lease_until = NULL, \
             final_attempt = true WHERE id = $2 AND consumer_id = $3 AND status <> 'Pending'",
        )
        .bind(now)
        .bind(delivery.to_string())
        .bind(consumer.to_string())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() > 0 {
            return Ok(Redelivery::Queued);
        }
        let pending: Option<String> = sqlx::query_scalar("SELECT status FROM webhook_deliveries WHERE id = $1 AND consumer_id = $2")
            .bind(delivery.to_string())
            .bind(consumer.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(if pending.is_some() { Redelivery::StillPending } else { Redelivery::NotFound })
    }

    async fn list_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError> {
        self.outbox_events(false, limit).await
    }

    async fn recent_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError> {
        self.outbox_events(true, limit).await
    }
}

impl PgStore {
    /// Outbox events, oldest or newest first.
    async fn outbox_events(&self, newest_first: bool, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!("SELECT * FROM webhook_events ORDER BY seq {order} LIMIT $1"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }
}
