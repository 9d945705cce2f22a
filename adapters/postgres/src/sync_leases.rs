//! `SyncLeaseRepository` on PostgreSQL. Taking a lease deletes an expired one and inserts the new
//! one in one transaction (`PgStore::take`): of two transactions racing for a connection, the
//! second waits on the first's row, then finds the lease live, deletes nothing and inserts nothing.
//! So two workers, in any processes, never hold a live lease on the same connection. A takeover
//! waits for the page writes of the former holder that lock the row (`FOR KEY SHARE`), and those
//! that come after it find no lease of theirs and write nothing.

use crate::pull_operations::UNFINISHED;
use crate::{PgStore, backend, parse_uuid};
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;
use tributary_domain::RepositoryError;
use tributary_domain::ids::ConnectionId;
use tributary_domain::ports::SyncLeaseRepository;

/// Candidates read per round; a round where every one was taken meanwhile is followed by another.
const CANDIDATES: i64 = 8;
/// Rounds before giving up for now (the caller polls again).
const ROUNDS: usize = 4;

/// `now + lease_for`, saturating.
fn expiry(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(lease_for).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl PgStore {
    /// Takes the lease of `connection` if nobody holds it or its holder let it expire, in one
    /// transaction: an expired lease is deleted (which waits for the page writes that hold it `FOR
    /// KEY SHARE`, and makes those that come after find no lease), then the new one inserted. Of two
    /// transactions racing for it, the second's delete waits for the first, then finds a live lease
    /// and deletes nothing, and its insert conflicts and does nothing.
    async fn take(&self, connection: &str, worker: &str, now: DateTime<Utc>, expires: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sync_leases WHERE connection_id = $1 AND expires < $2")
            .bind(connection)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let taken = sqlx::query(
            "INSERT INTO sync_leases (connection_id, owner, expires) VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO NOTHING",
        )
        .bind(connection)
        .bind(worker)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(taken.rows_affected() > 0)
    }
}

#[async_trait]
impl SyncLeaseRepository for PgStore {
    async fn lease_next(&self, worker: &str, now: DateTime<Utc>, lease_for: Duration) -> Result<Option<ConnectionId>, RepositoryError> {
        let expires = expiry(now, lease_for);
        let candidates_sql = format!(
            "SELECT p.connection_id FROM pull_operations p LEFT JOIN sync_leases l ON l.connection_id = p.connection_id \
             WHERE p.{UNFINISHED} AND (l.connection_id IS NULL OR l.expires < $1) \
             GROUP BY p.connection_id ORDER BY MIN(p.requested) ASC, p.connection_id ASC LIMIT $2"
        );
        for _ in 0..ROUNDS {
            let candidates: Vec<String> =
                sqlx::query_scalar(&candidates_sql).bind(now).bind(CANDIDATES).fetch_all(&self.pool).await.map_err(backend)?;
            for candidate in &candidates {
                match self.take(candidate, worker, now, expires).await {
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
            .bind(expiry(now, lease_for))
            .bind(connection.to_string())
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release(&self, connection: ConnectionId, worker: &str) -> Result<(), RepositoryError> {
        sqlx::query("DELETE FROM sync_leases WHERE connection_id = $1 AND owner = $2")
            .bind(connection.to_string())
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
