//! `WebhookRepository` on SQLite and PostgreSQL, and the outbox writer the other repositories call inside
//! their transactions.
//!
//! Concurrency: `fan_out` and `lease_deliveries` are written for each database (the adapters'
//! `tuned` modules say how each hands an event or a delivery to exactly one worker). The consumer
//! limit is enforced in a transaction in which the table's writers take turns, as for API keys.

use crate::dialect::{self as d, Store};
use crate::sql::{backend, expiry, parse_uuid, write_error};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
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

/// Writes events to the outbox on an open connection (a transaction the caller commits).
pub(crate) async fn insert_events(conn: &mut d::DbConnection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
    for e in events {
        sqlx::query(
            "INSERT INTO webhook_events (id, event_type, company_id, company_tags, generated, body) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.id.to_string())
        .bind(e.event_type.as_str())
        .bind(e.company_id.to_string())
        .bind(d::json(&e.company_tags)?)
        .bind(d::time(e.generated))
        .bind(&e.body)
        .execute(&mut *conn)
        .await
        // A duplicate event id is a bug, not a conflict with the caller's change: Backend.
        .map_err(backend)?;
    }
    Ok(())
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::backend(format!("corrupt webhook {what}: {e}"))
}

pub(crate) fn event_type(s: &str) -> Result<EventType, RepositoryError> {
    s.parse().map_err(|e: String| corrupt("event type", e))
}

fn to_i32(n: u32, what: &str) -> Result<i32, RepositoryError> {
    i32::try_from(n).map_err(|_| RepositoryError::backend(format!("{what} {n} is out of range")))
}

pub(crate) fn consumer_from_row(r: &d::DbRow) -> Result<WebhookConsumer, RepositoryError> {
    let types: Vec<String> = d::get_json(r, "event_types").map_err(|e| corrupt("event types", e))?;
    Ok(WebhookConsumer {
        id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("id"))?),
        url: r.get("url"),
        disabled: r.get("disabled"),
        event_types: types.iter().map(|t| event_type(t)).collect::<Result<_, _>>()?,
        company_tags: d::get_json(r, "company_tags").map_err(|e| corrupt("company tags", e))?,
        secret: SealedSecret { key_id: r.get("secret_key_id"), ciphertext: r.get("secret_ciphertext") },
        created: d::get_time(r, "created"),
        failing_since: d::get_opt_time(r, "failing_since"),
        disabled_reason: r.get("disabled_reason"),
    })
}

pub(crate) fn event_from_row(r: &d::DbRow) -> Result<OutboxEvent, RepositoryError> {
    Ok(OutboxEvent {
        id: parse_uuid(&r.get::<String, _>("id"))?,
        event_type: event_type(&r.get::<String, _>("event_type"))?,
        company_id: CompanyId(parse_uuid(&r.get::<String, _>("company_id"))?),
        company_tags: d::get_json::<BTreeMap<String, String>>(r, "company_tags").map_err(|e| corrupt("event company tags", e))?,
        generated: d::get_time(r, "generated"),
        body: r.get("body"),
    })
}

pub(crate) fn delivery_from_row(r: &d::DbRow) -> Result<Delivery, RepositoryError> {
    Ok(Delivery {
        id: parse_uuid(&r.get::<String, _>("id"))?,
        event_id: parse_uuid(&r.get::<String, _>("event_id"))?,
        event_type: event_type(&r.get::<String, _>("event_type"))?,
        consumer_id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("consumer_id"))?),
        url: r.get("url"),
        secret: SealedSecret { key_id: r.get("secret_key_id"), ciphertext: r.get("secret_ciphertext") },
        body: r.get("body"),
        attempts: u32::try_from(r.get::<i32, _>("attempts")).map_err(|e| corrupt("attempt count", e))?,
        consumer_failing_since: d::get_opt_time(r, "failing_since"),
        final_attempt: r.get("final_attempt"),
        created: d::get_time(r, "created"),
    })
}

fn attempt_from_row(r: &d::DbRow) -> Result<Attempt, RepositoryError> {
    Ok(Attempt {
        delivery_id: parse_uuid(&r.get::<String, _>("delivery_id"))?,
        consumer_id: WebhookConsumerId(parse_uuid(&r.get::<String, _>("consumer_id"))?),
        event_id: parse_uuid(&r.get::<String, _>("event_id"))?,
        event_type: event_type(&r.get::<String, _>("event_type"))?,
        number: u32::try_from(r.get::<i32, _>("number")).map_err(|e| corrupt("attempt number", e))?,
        at: d::get_time(r, "at"),
        status_code: r.get::<Option<i32>, _>("status_code").map(u16::try_from).transpose().map_err(|e| corrupt("status code", e))?,
        latency_ms: u64::try_from(r.get::<i64, _>("latency_ms")).map_err(|e| corrupt("latency", e))?,
        ok: r.get("ok"),
        error: r.get("error"),
    })
}

#[async_trait]
impl WebhookRepository for Store {
    async fn insert_consumer_limited(&self, c: &WebhookConsumer, max: usize) -> Result<(), RepositoryError> {
        let mut tx = d::begin_exclusive(self, "webhook_consumers").await?;
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
        .bind(d::json(&c.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>())?)
        .bind(d::json(&c.company_tags)?)
        .bind(&c.secret.key_id)
        .bind(&c.secret.ciphertext)
        .bind(d::time(c.created))
        .bind(c.failing_since.map(d::time))
        .bind(&c.disabled_reason)
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error(e, || format!("webhook consumer {} exists", c.id), || format!("webhook consumer {}", c.id)))?;
        tx.commit().await.map_err(backend)
    }

    async fn list_consumers(&self) -> Result<Vec<WebhookConsumer>, RepositoryError> {
        let rows =
            sqlx::query("SELECT * FROM webhook_consumers ORDER BY created ASC, id ASC").fetch_all(self.reader()).await.map_err(backend)?;
        rows.iter().map(consumer_from_row).collect()
    }

    async fn get_consumer(&self, id: WebhookConsumerId) -> Result<Option<WebhookConsumer>, RepositoryError> {
        sqlx::query("SELECT * FROM webhook_consumers WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
            .as_ref()
            .map(consumer_from_row)
            .transpose()
    }

    async fn delete_consumer(&self, id: WebhookConsumerId) -> Result<bool, RepositoryError> {
        // Deliveries and attempts go with the consumer through ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM webhook_consumers WHERE id = $1")
            .bind(id.to_string())
            .execute(self.writer())
            .await
            .map_err(backend)?;
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
        .execute(self.writer())
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, RepositoryError> {
        crate::tuned::fan_out(self, now, limit).await
    }

    async fn lease_deliveries(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, RepositoryError> {
        crate::tuned::lease_deliveries(self, worker, now, expiry(now, lease_for), limit).await
    }

    async fn record_attempt(&self, worker: &str, a: &Attempt, after: AfterAttempt) -> Result<bool, RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        // The consumer row is locked first, as `delete_consumer` does before cascading to the
        // deliveries, so the two cannot deadlock. A success ends the failing streak; a failure
        // starts one (or continues it).
        sqlx::query(
            "UPDATE webhook_consumers SET failing_since = CASE WHEN $1 THEN NULL ELSE COALESCE(failing_since, $2) END WHERE id = $3",
        )
        .bind(a.ok)
        .bind(d::time(a.at))
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
        .bind(d::time(a.at))
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
        .bind(next_attempt.map(d::time))
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
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn delivery_counts(&self, consumer: WebhookConsumerId) -> Result<DeliveryCounts, RepositoryError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM webhook_deliveries WHERE consumer_id = $1 GROUP BY status")
            .bind(consumer.to_string())
            .fetch_all(self.reader())
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
        .fetch_all(self.reader())
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
                    created: d::get_time(r, "created"),
                    next_attempt: d::get_opt_time(r, "next_attempt"),
                })
            })
            .collect()
    }

    async fn redeliver(&self, consumer: WebhookConsumerId, delivery: Uuid, now: DateTime<Utc>) -> Result<Redelivery, RepositoryError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'Pending', next_attempt = $1, lease_owner = NULL, lease_until = NULL, \
             final_attempt = TRUE WHERE id = $2 AND consumer_id = $3 AND status <> 'Pending'",
        )
        .bind(d::time(now))
        .bind(delivery.to_string())
        .bind(consumer.to_string())
        .execute(self.writer())
        .await
        .map_err(backend)?;
        if done.rows_affected() > 0 {
            return Ok(Redelivery::Queued);
        }
        let pending: Option<String> = sqlx::query_scalar("SELECT status FROM webhook_deliveries WHERE id = $1 AND consumer_id = $2")
            .bind(delivery.to_string())
            .bind(consumer.to_string())
            .fetch_optional(self.reader())
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

impl Store {
    /// Outbox events, oldest or newest first.
    async fn outbox_events(&self, newest_first: bool, limit: u32) -> Result<Vec<OutboxEvent>, RepositoryError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!("SELECT * FROM webhook_events ORDER BY seq {order} LIMIT $1"))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }
}
