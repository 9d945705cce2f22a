//! `WebhookRepository` on SQLite, and the outbox writes the other repositories make inside their
//! transactions. Every multi-statement write starts with a write statement, so SQLite takes the
//! write lock first and two processes on one file never interleave.

use crate::{SqliteStore, backend, from_micros, parse_uuid, to_micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};
use std::collections::BTreeMap;
use std::time::Duration;
use tributary_domain::RepositoryError;
use tributary_domain::ids::WebhookConsumerId;
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::model::webhook::{
    AfterAttempt, Attempt, Delivery, DeliveryStatus, DeliverySummary, EventType, OutboxEvent, WebhookConsumer,
};
use tributary_domain::ports::{DeliveryCounts, Redelivery, WebhookRepository};
use uuid::Uuid;

fn corrupt(what: &str, e: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::backend(format!("corrupt webhook {what}: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, RepositoryError> {
    serde_json::to_string(v).map_err(RepositoryError::backend_from)
}

fn event_type(s: &str) -> Result<EventType, RepositoryError> {
    s.parse().map_err(|e: String| corrupt("event type", e))
}

/// Writes events to the outbox on an open transaction.
pub(crate) async fn insert_events(db: &mut SqliteConnection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
    for e in events {
        sqlx::query(
            "INSERT INTO webhook_events (id, event_type, company_id, company_tags, generated, body, dispatched) \
             VALUES (?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(e.id.to_string())
        .bind(e.event_type.as_str())
        .bind(e.company_id.to_string())
        .bind(json(&e.company_tags)?)
        .bind(to_micros(e.generated))
        .bind(&e.body)
        .execute(&mut *db)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

fn consumer_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<WebhookConsumer, RepositoryError> {
    let types: Vec<String> = serde_json::from_str(&r.get::<String, _>("event_types")).map_err(|e| corrupt("event types", e))?;
    Ok(WebhookConsumer {
        id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("id"))?),
        url: r.get("url"),
        disabled: r.get::<i64, _>("disabled") != 0,
        event_types: types.iter().map(|t| event_type(t)).collect::<Result<_, _>>()?,
        company_tags: serde_json::from_str(&r.get::<String, _>("company_tags")).map_err(|e| corrupt("company tags", e))?,
        secret: SealedSecret { key_id: r.get("secret_key_id"), ciphertext: r.get("secret_ciphertext") },
        created: from_micros(r.get("created")),
        failing_since: r.get::<Option<i64>, _>("failing_since").map(from_micros),
        disabled_reason: r.get("disabled_reason"),
    })
}

fn attempt_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Attempt, RepositoryError> {
    Ok(Attempt {
        delivery_id: parse_uuid(&r.get::<String, _>("delivery_id"))?,
        consumer_id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("consumer_id"))?),
        event_id: parse_uuid(&r.get::<String, _>("event_id"))?,
        event_type: event_type(&r.get::<String, _>("event_type"))?,
        number: u32::try_from(r.get::<i64, _>("number")).map_err(|e| corrupt("attempt number", e))?,
        at: from_micros(r.get("at")),
        status_code: r.get::<Option<i64>, _>("status_code").and_then(|c| u16::try_from(c).ok()),
        latency_ms: u64::try_from(r.get::<i64, _>("latency_ms")).unwrap_or(0),
        ok: r.get::<i64, _>("ok") != 0,
        error: r.get("error"),
    })
}

#[async_trait]
impl WebhookRepository for SqliteStore {
    async fn insert_consumer_limited(&self, c: &WebhookConsumer, max: usize) -> Result<(), RepositoryError> {
        // One statement: the count and the insert cannot be separated by another writer.
        let done = sqlx::query(
            "INSERT INTO webhook_consumers (id, url, disabled, event_types, company_tags, secret_key_id, secret_ciphertext, created, \
             failing_since, disabled_reason) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM webhook_consumers) < ?",
        )
        .bind(c.id.to_string())
        .bind(&c.url)
        .bind(i64::from(c.disabled))
        .bind(json(&c.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>())?)
        .bind(json(&c.company_tags)?)
        .bind(&c.secret.key_id)
        .bind(&c.secret.ciphertext)
        .bind(to_micros(c.created))
        .bind(c.failing_since.map(to_micros))
        .bind(&c.disabled_reason)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .execute(&self.writer)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => RepositoryError::Conflict(format!("webhook consumer {} exists", c.id)),
            e => backend(e),
        })?;
        if done.rows_affected() == 0 {
            return Err(RepositoryError::Conflict(format!("at most {max} webhook consumers")));
        }
        Ok(())
    }

    async fn list_consumers(&self) -> Result<Vec<WebhookConsumer>, RepositoryError> {
        let rows =
            sqlx::query("SELECT * FROM webhook_consumers ORDER BY created ASC, id ASC").fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(consumer_from_row).collect()
    }

    async fn get_consumer(&self, id: WebhookConsumerId) -> Result<Option<WebhookConsumer>, RepositoryError> {
        let row = sqlx::query("SELECT * FROM webhook_consumers WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(consumer_from_row).transpose()
    }

    async fn delete_consumer(&self, id: WebhookConsumerId) -> Result<bool, RepositoryError> {
        // Deliveries and attempts go with it (ON DELETE CASCADE).
        let done =
            sqlx::query("DELETE FROM webhook_consumers WHERE id = ?").bind(id.to_string()).execute(&self.writer).await.map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_consumer_disabled(&self, id: WebhookConsumerId, disabled: bool, reason: Option<String>) -> Result<bool, RepositoryError> {
        let done = sqlx::query(
            "UPDATE webhook_consumers SET disabled = ?, disabled_reason = ?, \
             failing_since = CASE WHEN ? THEN failing_since ELSE NULL END WHERE id = ?",
        )
        .bind(i64::from(disabled))
        .bind(reason)
        .bind(disabled)
        .bind(id.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
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
                .bind(to_micros(now))
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(events.len() as u64)
    }

    async fn lease_deliveries(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, RepositoryError> {
        let now_micros = to_micros(now);
        let until = now_micros.saturating_add(i64::try_from(lease_for.as_micros()).unwrap_or(i64::MAX));
        // One statement: of two workers, each delivery goes to exactly one.
        let leased: Vec<String> = sqlx::query_scalar(
            "UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id IN \
             (SELECT d.id FROM webhook_deliveries d JOIN webhook_consumers c ON c.id = d.consumer_id \
              WHERE d.status = 'Pending' AND d.next_attempt <= ? AND c.disabled = 0 \
              AND (d.lease_until IS NULL OR d.lease_until < ?) ORDER BY d.event_seq, d.id LIMIT ?) \
             RETURNING id",
        )
        .bind(worker)
        .bind(until)
        .bind(now_micros)
        .bind(now_micros)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(backend)?;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.id, d.consumer_id, d.attempts, d.created, d.final_attempt, e.id AS event_id, e.event_type, e.body, c.url, c.secret_key_id, \
             c.secret_ciphertext, c.failing_since \
             FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq JOIN webhook_consumers c ON c.id = d.consumer_id \
             WHERE d.lease_owner = ? AND d.lease_until = ? AND d.status = 'Pending' ORDER BY d.event_seq, d.id",
        )
        .bind(worker)
        .bind(until)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .filter(|r| leased.contains(&r.get::<String, _>("id")))
            .map(|r| {
                Ok(Delivery {
                    id: parse_uuid(&r.get::<String, _>("id"))?,
                    event_id: parse_uuid(&r.get::<String, _>("event_id"))?,
                    event_type: event_type(&r.get::<String, _>("event_type"))?,
                    consumer_id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("consumer_id"))?),
                    url: r.get("url"),
                    secret: SealedSecret { key_id: r.get("secret_key_id"), ciphertext: r.get("secret_ciphertext") },
                    body: r.get("body"),
                    attempts: u32::try_from(r.get::<i64, _>("attempts")).map_err(|e| corrupt("attempts", e))?,
                    consumer_failing_since: r.get::<Option<i64>, _>("failing_since").map(from_micros),
                    final_attempt: r.get::<bool, _>("final_attempt"),
                    created: from_micros(r.get("created")),
                })
            })
            .collect()
    }

    async fn record_attempt(&self, worker: &str, a: &Attempt, after: AfterAttempt) -> Result<bool, RepositoryError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, consumer_id, event_id, event_type, number, at, status_code, latency_ms, ok, error) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ?)",
        )
        .bind(a.delivery_id.to_string())
        .bind(a.consumer_id.to_string())
        .bind(a.event_id.to_string())
        .bind(a.event_type.as_str())
        .bind(i64::from(a.number))
        .bind(to_micros(a.at))
        .bind(a.status_code.map(i64::from))
        .bind(i64::try_from(a.latency_ms).unwrap_or(i64::MAX))
        .bind(i64::from(a.ok))
        .bind(&a.error)
        .bind(a.delivery_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let (status, next) = match after {
            AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
            AfterAttempt::RetryAt(t) => (DeliveryStatus::Pending, Some(to_micros(t))),
            AfterAttempt::GiveUp => (DeliveryStatus::Failed, None),
        };
        let held = sqlx::query(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt = ?, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND lease_owner = ?",
        )
        .bind(status.as_str())
        .bind(i64::from(a.number))
        .bind(next)
        .bind(a.delivery_id.to_string())
        .bind(worker)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            > 0;
        // A success ends the consumer's failing streak; a failure starts one (or continues it).
        sqlx::query("UPDATE webhook_consumers SET failing_since = CASE WHEN ? THEN NULL ELSE COALESCE(failing_since, ?) END WHERE id = ?")
            .bind(a.ok)
            .bind(to_micros(a.at))
            .bind(a.consumer_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(held)
    }

    async fn list_attempts(&self, consumer: WebhookConsumerId, limit: u32) -> Result<Vec<Attempt>, RepositoryError> {
        let rows = sqlx::query("SELECT * FROM webhook_attempts WHERE consumer_id = ? ORDER BY seq DESC LIMIT ?")
            .bind(consumer.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn delivery_counts(&self, consumer: WebhookConsumerId) -> Result<DeliveryCounts, RepositoryError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM webhook_deliveries WHERE consumer_id = ? GROUP BY status")
            .bind(consumer.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut n = DeliveryCounts::default();
        for r in rows {
            let count = u64::try_from(r.get::<i64, _>(1)).unwrap_or(0);
            match r.get::<String, _>(0).parse::<DeliveryStatus>().map_err(|e| corrupt("delivery status", e))? {
                DeliveryStatus::Pending => n.pending = count,
                DeliveryStatus::Delivered => n.delivered = count,
                DeliveryStatus::Failed => n.failed = count,
            }
        }
        Ok(n)
    }

    async fn list_deliveries(&self, consumer: WebhookConsumerId, limit: u32) -> Result<Vec<DeliverySummary>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT d.id, e.id AS event_id, e.event_type, d.status, d.attempts, d.created, d.next_attempt \
             FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq \
             WHERE d.consumer_id = ? ORDER BY d.created DESC, d.event_seq DESC LIMIT ?",
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
                    attempts: u32::try_from(r.get::<i64, _>("attempts")).unwrap_or(0),
                    created: from_micros(r.get("created")),
                    next_attempt: r.get::<Option<i64>, _>("next_attempt").map(from_micros),
                })
            })
            .collect()
    }

    async fn redeliver(&self, consumer: WebhookConsumerId, delivery: Uuid, now: DateTime<Utc>) -> Result<Redelivery, RepositoryError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'Pending', next_attempt = ?, lease_owner = NULL, lease_until = NULL, \
             final_attempt = 1 WHERE id = ? AND consumer_id = ? AND status <> 'Pending'",
        )
        .bind(to_micros(now))
        .bind(delivery.to_string())
        .bind(consumer.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        if done.rows_affected() > 0 {
            return Ok(Redelivery::Queued);
        }
        let pending: Option<String> = sqlx::query_scalar("SELECT status FROM webhook_deliveries WHERE id = ? AND consumer_id = ?")
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

impl SqliteStore {
    /// Outbox events, oldest or newest first.
    async fn outbox_events(&self, newest_first: bool, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!("SELECT * FROM webhook_events ORDER BY seq {order} LIMIT ?"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEvent {
                    id: parse_uuid(&r.get::<String, _>("id"))?,
                    event_type: event_type(&r.get::<String, _>("event_type"))?,
                    company_id: tributary_domain::ids::CompanyId(parse_uuid(&r.get::<String, _>("company_id"))?),
                    company_tags: serde_json::from_str(&r.get::<String, _>("company_tags")).map_err(|e| corrupt("company tags", e))?,
                    generated: from_micros(r.get("generated")),
                    body: r.get("body"),
                })
            })
            .collect()
    }
}
