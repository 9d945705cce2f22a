//! `OAuthStateRepository` on SQLite. `consume` is one `DELETE … RETURNING` statement, so of two
//! concurrent callers exactly one gets the state.

use crate::{SqliteStore, backend, from_micros, parse_uuid, to_micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::oauth_state::OAuthState;
use tributary_domain::ports::OAuthStateRepository;

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<OAuthState, RepositoryError> {
    Ok(OAuthState {
        nonce: r.get("nonce"),
        company_id: CompanyId(parse_uuid(&r.get::<String, _>("company_id"))?),
        connection_id: ConnectionId(parse_uuid(&r.get::<String, _>("connection_id"))?),
        expires: from_micros(r.get("expires")),
    })
}

#[async_trait]
impl OAuthStateRepository for SqliteStore {
    async fn insert(&self, state: &OAuthState) -> Result<(), RepositoryError> {
        sqlx::query("INSERT INTO oauth_states (nonce, company_id, connection_id, expires) VALUES (?, ?, ?, ?)")
            .bind(&state.nonce)
            .bind(state.company_id.to_string())
            .bind(state.connection_id.to_string())
            .bind(to_micros(state.expires))
            .execute(&self.writer)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    RepositoryError::NotFound(format!("connection {}", state.connection_id))
                }
                sqlx::Error::Database(d) if d.is_unique_violation() => RepositoryError::Conflict("OAuth state nonce exists".into()),
                e => backend(e),
            })?;
        Ok(())
    }

    async fn consume(&self, nonce: &str) -> Result<Option<OAuthState>, RepositoryError> {
        sqlx::query("DELETE FROM oauth_states WHERE nonce = ? RETURNING nonce, company_id, connection_id, expires")
            .bind(nonce)
            .fetch_optional(&self.writer)
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        let done =
            sqlx::query("DELETE FROM oauth_states WHERE expires < ?").bind(to_micros(now)).execute(&self.writer).await.map_err(backend)?;
        Ok(done.rows_affected())
    }
}
