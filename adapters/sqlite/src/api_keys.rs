//! `ApiKeyRepository` on SQLite. Limits are enforced inside single statements, which SQLite runs
//! under its write lock, so concurrent creators cannot exceed them.

use crate::{SqliteStore, backend, from_micros, parse_uuid, to_micros};
use async_trait::async_trait;
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::ApiKeyId;
use tributary_domain::model::api_key::ApiKey;
use tributary_domain::ports::{ApiKeyDeletion, ApiKeyRepository};

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ApiKey, RepositoryError> {
    Ok(ApiKey {
        id: ApiKeyId(parse_uuid(&r.get::<String, _>("id"))?),
        name: r.get("name"),
        hash: r.get("hash"),
        created: from_micros(r.get("created")),
    })
}

#[async_trait]
impl ApiKeyRepository for SqliteStore {
    async fn insert_limited(&self, key: &ApiKey, max: usize) -> Result<(), RepositoryError> {
        let done =
            sqlx::query("INSERT INTO api_keys (id, name, hash, created) SELECT ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM api_keys) < ?")
                .bind(key.id.to_string())
                .bind(&key.name)
                .bind(&key.hash)
                .bind(to_micros(key.created))
                .bind(i64::try_from(max).unwrap_or(i64::MAX))
                .execute(&self.writer)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => RepositoryError::Conflict(format!("API key {} exists", key.id)),
                    e => backend(e),
                })?;
        if done.rows_affected() == 0 {
            return Err(RepositoryError::Conflict(format!("at most {max} API keys")));
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ApiKey>, RepositoryError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created ASC, id ASC").fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(from_row).collect()
    }

    async fn find_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, RepositoryError> {
        sqlx::query("SELECT * FROM api_keys WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn delete(&self, id: ApiKeyId, allow_last: bool) -> Result<ApiKeyDeletion, RepositoryError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ? AND (? OR (SELECT COUNT(*) FROM api_keys) > 1)")
            .bind(id.to_string())
            .bind(allow_last)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        if done.rows_affected() > 0 {
            return Ok(ApiKeyDeletion::Deleted);
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(if exists.is_some() { ApiKeyDeletion::LastKey } else { ApiKeyDeletion::NotFound })
    }
}
