//! `ConnectionRepository` on SQLite and PostgreSQL.

use crate::dialect::{self as d, Store};
use crate::sql::filter::{Column, Sql, render};
use crate::sql::pull_operations::insert_all;
use crate::sql::webhooks::insert_events;
use crate::sql::{backend, parse_uuid, write_error};
use async_trait::async_trait;
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::connection::{Connection, ConnectionError};
use tributary_domain::model::integration::definition;
use tributary_domain::model::pull::PullOperation;
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::model::webhook::OutboxEvent;
use tributary_domain::paging::{ListQuery, Page};
use tributary_domain::ports::ConnectionRepository;

fn columns(field: &str) -> Option<Column> {
    Some(Column::Scalar(match field {
        "id" => "id",
        "integrationId" => "integration_id",
        "integrationKey" => "integration_key",
        "sourceId" => "source_id",
        "sourceType" => "source_type",
        "platformName" => "platform_name",
        "status" => "status",
        "created" => "created",
        "lastSync" => "last_sync",
        _ => return None,
    }))
}

pub(crate) fn from_row(r: &d::DbRow) -> Result<Connection, RepositoryError> {
    let corrupt = |what: &str, e: String| RepositoryError::backend(format!("corrupt connection {what}: {e}"));
    let grant = match (r.get::<Option<String>, _>("grant_key_id"), r.get::<Option<String>, _>("grant_ciphertext")) {
        (Some(key_id), Some(ciphertext)) => Some(SealedSecret { key_id, ciphertext }),
        _ => None,
    };
    let errors: Vec<ConnectionError> = d::get_json(r, "errors").map_err(|e| corrupt("errors", e))?;
    Ok(Connection {
        id: ConnectionId(parse_uuid(&r.get::<String, _>("id"))?),
        company_id: CompanyId(parse_uuid(&r.get::<String, _>("company_id"))?),
        platform_key: r.get::<String, _>("integration_key").parse().map_err(|e: tributary_domain::ids::IdError| corrupt("key", e.0))?,
        status: r.get::<String, _>("status").parse().map_err(|e: tributary_domain::DomainError| corrupt("status", e.to_string()))?,
        created: d::get_time(r, "created"),
        last_sync: d::get_opt_time(r, "last_sync"),
        source_account: r.get("source_account"),
        grant,
        errors,
    })
}

/// Saves the changeable fields of a connection (`update` and `save_linked`).
async fn update_row<'e>(db: impl sqlx::Executor<'e, Database = d::Db>, c: &Connection) -> Result<(), RepositoryError> {
    let done = sqlx::query(
        "UPDATE connections SET status = $1, last_sync = $2, source_account = $3, grant_key_id = $4, grant_ciphertext = $5, \
         errors = $6 WHERE id = $7 AND company_id = $8",
    )
    .bind(c.status.as_str())
    .bind(c.last_sync.map(d::time))
    .bind(&c.source_account)
    .bind(c.grant.as_ref().map(|g| g.key_id.clone()))
    .bind(c.grant.as_ref().map(|g| g.ciphertext.clone()))
    .bind(d::json(&c.errors)?)
    .bind(c.id.to_string())
    .bind(c.company_id.to_string())
    .execute(db)
    .await
    .map_err(backend)?;
    if done.rows_affected() == 0 {
        return Err(RepositoryError::NotFound(format!("connection {}", c.id)));
    }
    Ok(())
}

#[async_trait]
impl ConnectionRepository for Store {
    async fn insert(&self, c: &Connection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        let def = definition(c.platform_key.as_str())
            .ok_or_else(|| RepositoryError::backend(format!("unknown platform key {}", c.platform_key)))?;
        let mut tx = self.writer().begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO connections (id, company_id, integration_key, integration_id, source_id, platform_name, source_type, \
             status, created, last_sync, source_account, grant_key_id, grant_ciphertext, errors) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.id.to_string())
        .bind(c.company_id.to_string())
        .bind(c.platform_key.as_str())
        .bind(def.integration_id.to_string())
        .bind(def.source_id.to_string())
        .bind(def.name)
        .bind(def.source_type())
        .bind(c.status.as_str())
        .bind(d::time(c.created))
        .bind(c.last_sync.map(d::time))
        .bind(&c.source_account)
        .bind(c.grant.as_ref().map(|g| g.key_id.clone()))
        .bind(c.grant.as_ref().map(|g| g.ciphertext.clone()))
        .bind(d::json(&c.errors)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error(e, || format!("connection {} exists", c.id), || format!("company {}", c.company_id)))?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get(&self, company: CompanyId, id: ConnectionId) -> Result<Option<Connection>, RepositoryError> {
        sqlx::query("SELECT * FROM connections WHERE id = $1 AND company_id = $2")
            .bind(id.to_string())
            .bind(company.to_string())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn find(&self, id: ConnectionId) -> Result<Option<Connection>, RepositoryError> {
        sqlx::query("SELECT * FROM connections WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn update(&self, c: &Connection, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        update_row(&mut *tx, c).await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete(&self, company: CompanyId, id: ConnectionId, events: &[OutboxEvent]) -> Result<bool, RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        let done = sqlx::query("DELETE FROM connections WHERE id = $1 AND company_id = $2")
            .bind(id.to_string())
            .bind(company.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn list(&self, company: CompanyId, query: &ListQuery) -> Result<Page<Connection>, RepositoryError> {
        let mut where_sql = Sql::default();
        where_sql.push(" WHERE company_id = ");
        where_sql.bind_text(company.to_string());
        if let Some(f) = &query.filter {
            where_sql.push(" AND ");
            render(&mut where_sql, f, columns);
        }
        self.list_rows("*", "connections", where_sql, query, columns, ("created ASC", "id"), from_row).await
    }

    async fn set_status_if(
        &self,
        id: ConnectionId,
        from: tributary_domain::model::connection::ConnectionStatus,
        to: tributary_domain::model::connection::ConnectionStatus,
        events: &[OutboxEvent],
    ) -> Result<bool, RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        let done = sqlx::query("UPDATE connections SET status = $1 WHERE id = $2 AND status = $3")
            .bind(to.as_str())
            .bind(id.to_string())
            .bind(from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn list_linked(&self) -> Result<Vec<Connection>, RepositoryError> {
        let rows = sqlx::query("SELECT * FROM connections WHERE status = 'Linked' ORDER BY created ASC, id ASC")
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        rows.iter().map(from_row).collect()
    }

    async fn set_last_sync(&self, id: ConnectionId, at: chrono::DateTime<chrono::Utc>) -> Result<(), RepositoryError> {
        sqlx::query("UPDATE connections SET last_sync = $1 WHERE id = $2")
            .bind(d::time(at))
            .bind(id.to_string())
            .execute(self.writer())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn find_by_source_account(&self, platform_key: &str, account: &str) -> Result<Vec<Connection>, RepositoryError> {
        let rows = sqlx::query("SELECT * FROM connections WHERE integration_key = $1 AND source_account = $2 ORDER BY created ASC, id ASC")
            .bind(platform_key)
            .bind(account)
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        rows.iter().map(from_row).collect()
    }

    async fn save_linked(&self, c: &Connection, queued: &[PullOperation], events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        update_row(&mut *tx, c).await?;
        insert_all(&mut tx, queued).await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_for_companies(&self, companies: &[CompanyId]) -> Result<Vec<Connection>, RepositoryError> {
        if companies.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = companies.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(&format!("SELECT * FROM connections WHERE company_id {} ORDER BY created ASC, id ASC", d::in_list(1)))
            .bind(d::texts(&ids))
            .fetch_all(self.reader())
            .await
            .map_err(backend)?;
        rows.iter().map(from_row).collect()
    }
}
