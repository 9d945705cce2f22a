//! `OAuthStateRepository` on SQLite and PostgreSQL. `consume` is one `DELETE … RETURNING` statement: a
//! concurrent second delete waits for the first (PostgreSQL's row lock, SQLite's write lock), then
//! finds the row gone, so exactly one caller gets the state.

use crate::dialect::{self as d, Store};
use crate::sql::{backend, parse_uuid, write_error};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::oauth_state::OAuthState;
use tributary_domain::ports::OAuthStateRepository;

fn from_row(r: &d::DbRow) -> Result<OAuthState, RepositoryError> {
    Ok(OAuthState {
        nonce: r.get("nonce"),
        company_id: CompanyId(parse_uuid(&r.get::<String, _>("company_id"))?),
        connection_id: ConnectionId(parse_uuid(&r.get::<String, _>("connection_id"))?),
        expires: d::get_time(r, "expires"),
    })
}

#[async_trait]
impl OAuthStateRepository for Store {
    async fn insert(&self, state: &OAuthState) -> Result<(), RepositoryError> {
        sqlx::query("INSERT INTO oauth_states (nonce, company_id, connection_id, expires) VALUES ($1, $2, $3, $4)")
            .bind(&state.nonce)
            .bind(state.company_id.to_string())
            .bind(state.connection_id.to_string())
            .bind(d::time(state.expires))
            .execute(self.writer())
            .await
            .map_err(|e| write_error(e, || "OAuth state nonce exists".into(), || format!("connection {}", state.connection_id)))?;
        Ok(())
    }

    async fn consume(&self, nonce: &str) -> Result<Option<OAuthState>, RepositoryError> {
        sqlx::query("DELETE FROM oauth_states WHERE nonce = $1 RETURNING nonce, company_id, connection_id, expires")
            .bind(nonce)
            .fetch_optional(self.writer())
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        let done =
            sqlx::query("DELETE FROM oauth_states WHERE expires < $1").bind(d::time(now)).execute(self.writer()).await.map_err(backend)?;
        Ok(done.rows_affected())
    }
}
