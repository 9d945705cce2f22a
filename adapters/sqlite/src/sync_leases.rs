//! `SyncLeaseRepository` on SQLite. Taking a lease is one conditional upsert (`INSERT … ON
//! CONFLICT DO UPDATE … WHERE expired`); SQLite runs writes one at a time, so of two workers
//! racing for a connection exactly one changes the row and the other sees it live.

use crate::pull_operations::UNFINISHED;
use crate::{SqliteStore, backend, parse_uuid, to_micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tributary_domain::RepositoryError;
use tributary_domain::ids::ConnectionId;
use tributary_domain::ports::SyncLeaseRepository;

/// Candidates read per round; a round where every one was taken meanwhile is followed by another.
const CANDIDATES: i64 = 8;
/// Rounds before giving up for now (the caller polls again).
const ROUNDS: usize = 4;

/// `now + lease_for`, saturating.
fn expiry(now: DateTime<Utc>, lease_for: Duration) -> i64 {
    let micros = i64::try_from(lease_for.as_micros()).unwrap_or(i64::MAX);
    to_micros(now).saturating_add(micros)
}

#[async_trait]
impl SyncLeaseRepository for SqliteStore {
    async fn lease_next(&self, worker: &str, now: DateTime<Utc>, lease_for: Duration) -> Result<Option<ConnectionId>, RepositoryError> {
        let now_micros = to_micros(now);
        let expires = expiry(now, lease_for);
        let candidates_sql = format!(
            "SELECT p.connection_id FROM pull_operations p LEFT JOIN sync_leases l ON l.connection_id = p.connection_id \
             WHERE p.{UNFINISHED} AND (l.connection_id IS NULL OR l.expires < ?) \
             GROUP BY p.connection_id ORDER BY MIN(p.requested) ASC, p.connection_id ASC LIMIT ?"
        );
        for _ in 0..ROUNDS {
            let candidates: Vec<String> =
                sqlx::query_scalar(&candidates_sql).bind(now_micros).bind(CANDIDATES).fetch_all(&self.pool).await.map_err(backend)?;
            for candidate in &candidates {
                let taken = sqlx::query(
                    "INSERT INTO sync_leases (connection_id, owner, expires) VALUES (?, ?, ?) \
                     ON CONFLICT (connection_id) DO UPDATE SET owner = excluded.owner, expires = excluded.expires \
                     WHERE sync_leases.expires < ?",
                )
                .bind(candidate)
                .bind(worker)
                .bind(expires)
                .bind(now_micros)
                .execute(&self.writer)
                .await;
                match taken {
                    Ok(done) if done.rows_affected() > 0 => return Ok(Some(ConnectionId(parse_uuid(candidate)?))),
                    Ok(_) => {}
                    // Deleted since it was read: try the next one.
                    Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {}
                    Err(e) => return Err(backend(e)),
                }
            }
            if candidates.len() < usize::try_from(CANDIDATES).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(None)
    }

    async fn renew(
        &self,
        connection: ConnectionId,
        worker: &str,
        now: DateTime<Utc>,
        lease_for: Duration,
    ) -> Result<bool, RepositoryError> {
        let done = sqlx::query("UPDATE sync_leases SET expires = ? WHERE connection_id = ? AND owner = ?")
            .bind(expiry(now, lease_for))
            .bind(connection.to_string())
            .bind(worker)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release(&self, connection: ConnectionId, worker: &str) -> Result<(), RepositoryError> {
        sqlx::query("DELETE FROM sync_leases WHERE connection_id = ? AND owner = ?")
            .bind(connection.to_string())
            .bind(worker)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
