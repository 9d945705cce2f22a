//! `ConsoleRepository` on SQLite and PostgreSQL: console sessions and the overview's figures.

use crate::dialect::{self as d, Store};
use crate::sql::{backend, parse_uuid};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{ApiKeyId, CompanyId, ConnectionId};
use tributary_domain::model::console::{Backlog, ConsoleSession, FailingDataType, Overview};
use tributary_domain::model::data_type::DataType;
use tributary_domain::ports::ConsoleRepository;

fn corrupt(what: &str, e: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::backend(format!("corrupt {what}: {e}"))
}

fn counts(rows: &[d::DbRow]) -> Vec<(String, u64)> {
    rows.iter().map(|r| (r.get::<String, _>(0), u64::try_from(r.get::<i64, _>(1)).unwrap_or(0))).collect()
}

#[async_trait]
impl ConsoleRepository for Store {
    async fn insert_session(&self, s: &ConsoleSession) -> Result<(), RepositoryError> {
        let done = sqlx::query(
            "INSERT INTO console_sessions (hash, api_key_id, created, last_seen) SELECT $1, id, $2, $3 FROM api_keys WHERE id = $4",
        )
        .bind(&s.hash)
        .bind(d::time(s.created))
        .bind(d::time(s.last_seen))
        .bind(s.api_key_id.to_string())
        .execute(self.writer())
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(RepositoryError::NotFound(format!("API key {}", s.api_key_id)));
        }
        Ok(())
    }

    async fn find_session(&self, hash: &str) -> Result<Option<ConsoleSession>, RepositoryError> {
        let Some(r) = sqlx::query("SELECT * FROM console_sessions WHERE hash = $1")
            .bind(hash)
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        Ok(Some(ConsoleSession {
            hash: r.get("hash"),
            api_key_id: ApiKeyId(parse_uuid(&r.get::<String, _>("api_key_id"))?),
            created: d::get_time(&r, "created"),
            last_seen: d::get_time(&r, "last_seen"),
        }))
    }

    async fn touch_session(&self, hash: &str, at: DateTime<Utc>) -> Result<(), RepositoryError> {
        sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE hash = $2")
            .bind(d::time(at))
            .bind(hash)
            .execute(self.writer())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_sessions(&self, hash: Option<String>, idle_before: DateTime<Utc>) -> Result<(), RepositoryError> {
        sqlx::query("DELETE FROM console_sessions WHERE hash = $1 OR last_seen < $2")
            .bind(hash)
            .bind(d::time(idle_before))
            .execute(self.writer())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn overview(&self, since: DateTime<Utc>) -> Result<Overview, RepositoryError> {
        let companies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM companies").fetch_one(self.reader()).await.map_err(backend)?;
        let connections = sqlx::query("SELECT status, COUNT(*) FROM connections GROUP BY status ORDER BY status")
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        let pulls = sqlx::query("SELECT status, COUNT(*) FROM pull_operations WHERE requested >= $1 GROUP BY status ORDER BY status")
            .bind(d::time(since))
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        let deliveries = sqlx::query("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status ORDER BY status")
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        // The latest finished pull of each linked connection and data type, when it failed: one
        // index seek (pull_operations_finished) per connection and data type, not a scan of the
        // history. (An unlinked or deauthorized connection is not synced, so nothing would clear
        // its last failure; its status is what the overview shows.)
        // The data type keys are constants, not input.
        let keys = DataType::ALL.iter().map(|t| format!("'{}'", t.key())).collect::<Vec<_>>().join(", ");
        let types = DataType::ALL.iter().map(|t| format!("('{}')", t.key())).collect::<Vec<_>>().join(", ");
        let failing = sqlx::query(&format!(
            "WITH types (dt) AS (VALUES {types}) \
             SELECT p.company_id, co.name, p.connection_id, p.data_type, p.status, p.error_message, p.completed \
             FROM connections c CROSS JOIN types \
             JOIN pull_operations p ON p.id = ( \
               SELECT q.id FROM pull_operations q WHERE q.connection_id = c.id AND q.data_type = types.dt \
               AND q.completed IS NOT NULL AND q.status NOT IN ('Cancelled', 'NotSupported') ORDER BY q.completed DESC LIMIT 1) \
             JOIN companies co ON co.id = c.company_id \
             WHERE c.status = 'Linked' AND p.status <> 'Complete' ORDER BY p.completed DESC LIMIT 50"
        ))
        .fetch_all(self.reader())
        .await
        .map_err(backend)?;
        // Per connection and data type, so that the (connection, data type, modified) index serves
        // the range.
        let per_minute = sqlx::query(&format!(
            "SELECT {} AS minute, COUNT(*) FROM connections c \
             JOIN records r ON r.connection_id = c.id AND r.data_type IN ({keys}) AND r.modified >= $1 GROUP BY minute ORDER BY minute",
            d::minute("r.modified")
        ))
        .bind(d::time(since))
        .fetch_all(self.reader())
        .await
        .map_err(backend)?;
        Ok(Overview {
            companies: u64::try_from(companies).unwrap_or(0),
            connections_by_status: counts(&connections),
            pulls_by_status: counts(&pulls),
            deliveries_by_status: counts(&deliveries),
            failing: failing
                .iter()
                .map(|r| {
                    Ok(FailingDataType {
                        company_id: CompanyId(parse_uuid(&r.get::<String, _>(0))?),
                        company_name: r.get(1),
                        connection_id: ConnectionId(parse_uuid(&r.get::<String, _>(2))?),
                        data_type: r
                            .get::<String, _>(3)
                            .parse()
                            .map_err(|e: tributary_domain::model::data_type::UnknownDataType| corrupt("data type", e.0))?,
                        status: r.get::<String, _>(4).parse().map_err(|e| corrupt("pull status", e))?,
                        error_message: r.get(5),
                        completed: d::get_time(r, 6),
                    })
                })
                .collect::<Result<_, RepositoryError>>()?,
            records_per_minute: per_minute.iter().map(|r| (d::get_time(r, 0), u64::try_from(r.get::<i64, _>(1)).unwrap_or(0))).collect(),
        })
    }

    async fn backlog(&self) -> Result<Backlog, RepositoryError> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM pull_operations WHERE status = 'Queued'), \
                    (SELECT COUNT(*) FROM pull_operations WHERE status = 'Fetching'), \
                    (SELECT MIN(requested) FROM pull_operations WHERE status = 'Queued'), \
                    (SELECT COUNT(*) FROM webhook_deliveries d JOIN webhook_consumers c ON c.id = d.consumer_id WHERE d.status = 'Pending' AND NOT c.disabled), \
                    (SELECT MIN(d.created) FROM webhook_deliveries d JOIN webhook_consumers c ON c.id = d.consumer_id WHERE d.status = 'Pending' AND NOT c.disabled)",
        )
        .fetch_one(self.reader())
        .await
        .map_err(backend)?;
        let n = |i: usize| u64::try_from(r.get::<i64, _>(i)).unwrap_or(0);
        Ok(Backlog {
            pulls_queued: n(0),
            pulls_running: n(1),
            oldest_queued: d::get_opt_time(&r, 2),
            webhooks_pending: n(3),
            oldest_pending: d::get_opt_time(&r, 4),
        })
    }
}
