//! `PullOperationRepository` on SQLite and PostgreSQL.

use crate::dialect::{self as d, Store};
use crate::sql::filter::{Column, Sql, render};
use crate::sql::webhooks::insert_events;
use crate::sql::{backend, parse_uuid, write_error};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{CompanyId, ConnectionId, PullOperationId};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::pull::PullOperation;
use tributary_domain::model::webhook::OutboxEvent;
use tributary_domain::paging::{ListQuery, Page};
use tributary_domain::ports::PullOperationRepository;

/// `isErrored`: the status is one of the error states (`DatasetStatus::is_errored`).
pub(crate) const IS_ERRORED: &str = "status IN ('FetchError', 'MapError', 'InternalError', 'ProcessingError', 'ValidationError', \
     'AuthError', 'RateLimitError', 'PermissionsError', 'PrerequisiteNotMet')";

/// An operation still to run or running: what a worker picks up.
pub(crate) const UNFINISHED: &str = "status IN ('Queued', 'Fetching')";

fn columns(field: &str) -> Option<Column> {
    Some(Column::Scalar(match field {
        "id" => "id",
        "companyId" => "company_id",
        "connectionId" => "connection_id",
        "dataType" => "data_type",
        "status" => "status",
        "statusDescription" => "status_description",
        "errorMessage" => "error_message",
        "requested" => "requested",
        "completed" => "completed",
        "progress" => "progress",
        "isErrored" => return Some(Column::Expr(IS_ERRORED)),
        _ => return None,
    }))
}

fn from_row(r: &d::DbRow) -> Result<PullOperation, RepositoryError> {
    let corrupt = |what: &str, e: String| RepositoryError::backend(format!("corrupt pull operation {what}: {e}"));
    Ok(PullOperation {
        id: PullOperationId(parse_uuid(&r.get::<String, _>("id"))?),
        company_id: CompanyId(parse_uuid(&r.get::<String, _>("company_id"))?),
        connection_id: ConnectionId(parse_uuid(&r.get::<String, _>("connection_id"))?),
        data_type: r
            .get::<String, _>("data_type")
            .parse()
            .map_err(|e: tributary_domain::model::data_type::UnknownDataType| corrupt("data type", e.0))?,
        status: r.get::<String, _>("status").parse().map_err(|e: String| corrupt("status", e))?,
        status_description: r.get("status_description"),
        error_message: r.get("error_message"),
        requested: d::get_time(r, "requested"),
        completed: d::get_opt_time(r, "completed"),
        progress: r.get("progress"),
    })
}

/// Inserts operations on an open connection (a transaction the caller commits).
pub(crate) async fn insert_all(db: &mut d::DbConnection, ops: &[PullOperation]) -> Result<(), RepositoryError> {
    for op in ops {
        sqlx::query(
            "INSERT INTO pull_operations (id, company_id, connection_id, data_type, status, status_description, error_message, \
             requested, completed, progress) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(op.id.to_string())
        .bind(op.company_id.to_string())
        .bind(op.connection_id.to_string())
        .bind(op.data_type.key())
        .bind(op.status.as_str())
        .bind(&op.status_description)
        .bind(&op.error_message)
        .bind(d::time(op.requested))
        .bind(op.completed.map(d::time))
        .bind(op.progress)
        .execute(&mut *db)
        .await
        .map_err(|e| {
            write_error(
                e,
                || format!("pull operation {} exists", op.id),
                || format!("connection {} of company {}", op.connection_id, op.company_id),
            )
        })?;
    }
    Ok(())
}

/// Saves an operation's changeable fields on an open connection.
pub(crate) async fn update_row(db: &mut d::DbConnection, op: &PullOperation) -> Result<(), RepositoryError> {
    let done = sqlx::query(
        "UPDATE pull_operations SET status = $1, status_description = $2, error_message = $3, completed = $4, progress = $5 \
         WHERE id = $6 AND company_id = $7",
    )
    .bind(op.status.as_str())
    .bind(&op.status_description)
    .bind(&op.error_message)
    .bind(op.completed.map(d::time))
    .bind(op.progress)
    .bind(op.id.to_string())
    .bind(op.company_id.to_string())
    .execute(&mut *db)
    .await
    .map_err(backend)?;
    if done.rows_affected() == 0 {
        return Err(RepositoryError::NotFound(format!("pull operation {}", op.id)));
    }
    Ok(())
}

#[async_trait]
impl PullOperationRepository for Store {
    async fn insert(&self, ops: &[PullOperation]) -> Result<(), RepositoryError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await.map_err(backend)?;
        insert_all(&mut tx, ops).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get(&self, company: CompanyId, id: PullOperationId) -> Result<Option<PullOperation>, RepositoryError> {
        sqlx::query("SELECT * FROM pull_operations WHERE id = $1 AND company_id = $2")
            .bind(id.to_string())
            .bind(company.to_string())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn list(&self, company: CompanyId, query: &ListQuery) -> Result<Page<PullOperation>, RepositoryError> {
        let mut where_sql = Sql::default();
        where_sql.push(" WHERE company_id = ");
        where_sql.bind_text(company.to_string());
        if let Some(f) = &query.filter {
            where_sql.push(" AND ");
            render(&mut where_sql, f, columns);
        }
        self.list_rows("*", "pull_operations", where_sql, query, columns, ("requested ASC", "id"), from_row).await
    }

    async fn update(&self, op: &PullOperation, events: &[OutboxEvent]) -> Result<(), RepositoryError> {
        // Progress updates (no events) are one statement; an update with events is a transaction.
        if events.is_empty() {
            let mut conn = self.writer().acquire().await.map_err(backend)?;
            return update_row(&mut conn, op).await;
        }
        let mut tx = self.writer().begin().await.map_err(backend)?;
        update_row(&mut tx, op).await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(backend)
    }

    async fn unfinished_for_connection(&self, connection: ConnectionId) -> Result<Vec<PullOperation>, RepositoryError> {
        sqlx::query(&format!("SELECT * FROM pull_operations WHERE connection_id = $1 AND {UNFINISHED} ORDER BY requested ASC, id ASC"))
            .bind(connection.to_string())
            .fetch_all(self.reader())
            .await
            .map_err(backend)?
            .iter()
            .map(from_row)
            .collect()
    }

    async fn read_before(&self, connection: ConnectionId, before: DateTime<Utc>) -> Result<bool, RepositoryError> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM pull_operations WHERE connection_id = $1 AND requested < $2 \
             AND status NOT IN ('Queued', 'Fetching', 'NotSupported', 'Cancelled') LIMIT 1",
        )
        .bind(connection.to_string())
        .bind(d::time(before))
        .fetch_optional(self.reader())
        .await
        .map_err(backend)?;
        Ok(found.is_some())
    }

    async fn requested_since(
        &self,
        connection: ConnectionId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PullOperation>, RepositoryError> {
        sqlx::query("SELECT * FROM pull_operations WHERE connection_id = $1 AND requested >= $2 ORDER BY requested ASC, id ASC LIMIT $3")
            .bind(connection.to_string())
            .bind(d::time(since))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await
            .map_err(backend)?
            .iter()
            .map(from_row)
            .collect()
    }

    async fn latest(&self, connection: ConnectionId, data_type: DataType) -> Result<Option<PullOperation>, RepositoryError> {
        // The `pull_operations_readiness` index (connection, data type, …) narrows it to one data
        // set's operations.
        sqlx::query("SELECT * FROM pull_operations WHERE connection_id = $1 AND data_type = $2 ORDER BY requested DESC, id DESC LIMIT 1")
            .bind(connection.to_string())
            .bind(data_type.key())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn data_status(&self, company: CompanyId) -> Result<Vec<(PullOperation, Option<PullOperation>)>, RepositoryError> {
        // The newest operation per data type (requested, then id), of all and of the complete ones.
        let latest = |only_complete: bool| {
            format!(
                "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY data_type ORDER BY requested DESC, id DESC) AS rn \
                 FROM pull_operations WHERE company_id = $1{}) AS ranked WHERE rn = 1",
                if only_complete { " AND status = 'Complete'" } else { "" }
            )
        };
        let all = sqlx::query(&latest(false)).bind(company.to_string()).fetch_all(self.reader()).await.map_err(backend)?;
        let complete = sqlx::query(&latest(true)).bind(company.to_string()).fetch_all(self.reader()).await.map_err(backend)?;
        let mut complete = complete.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let mut out = all
            .iter()
            .map(|r| {
                let op = from_row(r)?;
                let done = complete.iter().position(|c| c.data_type == op.data_type).map(|i| complete.swap_remove(i));
                Ok((op, done))
            })
            .collect::<Result<Vec<_>, RepositoryError>>()?;
        out.sort_by_key(|(op, _)| op.data_type);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::IS_ERRORED;
    use tributary_domain::model::pull::DatasetStatus;

    #[test]
    fn is_errored_lists_exactly_the_error_statuses() {
        for s in DatasetStatus::ALL {
            assert_eq!(IS_ERRORED.contains(&format!("'{}'", s.as_str())), s.is_errored(), "{s:?}");
        }
    }
}
