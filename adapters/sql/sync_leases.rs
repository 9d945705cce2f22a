//! `SyncLeaseRepository` on SQLite and PostgreSQL: candidates are the connections with unfinished
//! pulls and no live lease, oldest request first; each is then taken by the adapter's
//! `tuned::take_lease`, which lets exactly one of two racing workers (in any processes) have it.

use crate::dialect::{self as d, Store};
use crate::sql::pull_operations::UNFINISHED;
use crate::sql::{backend, expiry, parse_uuid};
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

#[async_trait]
impl SyncLeaseRepository for Store {
    async fn lease_next(&self, worker: &str, now: DateTime<Utc>, lease_for: Duration) -> Result<Option<ConnectionId>, RepositoryError> {
        let expires = expiry(now, lease_for);
        let candidates_sql = format!(
            "SELECT p.connection_id FROM pull_operations p LEFT JOIN sync_leases l ON l.connection_id = p.connection_id \
             WHERE p.{UNFINISHED} AND (l.connection_id IS NULL OR l.expires < $1) \
             GROUP BY p.connection_id ORDER BY MIN(p.requested) ASC, p.connection_id ASC LIMIT $2"
        );
        for _ in 0..ROUNDS {
            let candidates: Vec<String> =
                sqlx::query_scalar(&candidates_sql).bind(d::time(now)).bind(CANDIDATES).fetch_all(self.reader()).await.map_err(backend)?;
            for candidate in &candidates {
                match crate::tuned::take_lease(self, candidate, worker, now, expires).await {
                    Ok(true) => return Ok(Some(ConnectionId(parse_uuid(candidate)?))),
                    Ok(false) => {}
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
        let done = sqlx::query("UPDATE sync_leases SET expires = $1 WHERE connection_id = $2 AND owner = $3")
            .bind(d::time(expiry(now, lease_for)))
            .bind(connection.to_string())
            .bind(worker)
            .execute(self.writer())
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release(&self, connection: ConnectionId, worker: &str) -> Result<(), RepositoryError> {
        sqlx::query("DELETE FROM sync_leases WHERE connection_id = $1 AND owner = $2")
            .bind(connection.to_string())
            .bind(worker)
            .execute(self.writer())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
