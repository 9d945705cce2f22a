//! `ApiKeyRepository` on SQLite and PostgreSQL. The limit checks run in a transaction in which the
//! table's writers take turns (`dialect::begin_exclusive`), so concurrent creators and deleters (in
//! this or another instance or process) can neither exceed the limit nor delete the last key.

use crate::dialect::{self as d, Store};
use crate::sql::{backend, parse_uuid, write_error};
use async_trait::async_trait;
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::ApiKeyId;
use tributary_domain::model::api_key::ApiKey;
use tributary_domain::ports::{ApiKeyDeletion, ApiKeyRepository};

fn from_row(r: &d::DbRow) -> Result<ApiKey, RepositoryError> {
    Ok(ApiKey {
        id: ApiKeyId(parse_uuid(&r.get::<String, _>("id"))?),
        name: r.get("name"),
        hash: r.get("hash"),
        created: d::get_time(r, "created"),
    })
}

#[async_trait]
impl ApiKeyRepository for Store {
    async fn insert_limited(&self, key: &ApiKey, max: usize) -> Result<(), RepositoryError> {
        let mut tx = d::begin_exclusive(self, "api_keys").await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys").fetch_one(&mut *tx).await.map_err(backend)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            return Err(RepositoryError::Conflict(format!("at most {max} API keys")));
        }
        sqlx::query("INSERT INTO api_keys (id, name, hash, created) VALUES ($1, $2, $3, $4)")
            .bind(key.id.to_string())
            .bind(&key.name)
            .bind(&key.hash)
            .bind(d::time(key.created))
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, || format!("API key {} exists", key.id), || format!("API key {}", key.id)))?;
        tx.commit().await.map_err(backend)
    }

    async fn list(&self) -> Result<Vec<ApiKey>, RepositoryError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created ASC, id ASC").fetch_all(self.reader()).await.map_err(backend)?;
        rows.iter().map(from_row).collect()
    }

    async fn find_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, RepositoryError> {
        sqlx::query("SELECT * FROM api_keys WHERE hash = $1")
            .bind(hash)
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn delete(&self, id: ApiKeyId, allow_last: bool) -> Result<ApiKeyDeletion, RepositoryError> {
        let mut tx = d::begin_exclusive(self, "api_keys").await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if exists.is_none() {
            return Ok(ApiKeyDeletion::NotFound);
        }
        if !allow_last {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys").fetch_one(&mut *tx).await.map_err(backend)?;
            if count <= 1 {
                return Ok(ApiKeyDeletion::LastKey);
            }
        }
        sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(ApiKeyDeletion::Deleted)
    }
}
