//! The repositories, written once for SQLite and PostgreSQL (docs/architecture.md, "One SQL layer,
//! two dialects"). Each adapter crate compiles this directory as its module `sql` and supplies the
//! modules it uses: `crate::dialect` (how the database says what differs) and `crate::tuned` (the
//! statements it runs its own way). Besides the repositories: the store's migrations, readiness
//! and ports, storage errors with their cause, ids read back, lease expiries.

mod api_keys;
mod companies;
mod connections;
mod console;
pub(crate) mod filter;
mod integrations;
mod oauth_states;
mod profile;
pub(crate) mod pull_operations;
pub(crate) mod records;
mod secrets;
mod sync_leases;
pub(crate) mod webhooks;

use crate::dialect::Store;

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use std::time::Duration;
use tributary_domain::RepositoryError;
use tributary_domain::ports::Repositories;

/// A storage failure, keeping the driver's error as its source.
pub(crate) fn backend(e: sqlx::Error) -> RepositoryError {
    RepositoryError::backend_from(e)
}

/// Maps a failed write: unique violations become `Conflict`, foreign-key violations `NotFound`
/// (the referenced row is missing), anything else `Backend`.
pub(crate) fn write_error(e: sqlx::Error, conflict: impl FnOnce() -> String, missing: impl FnOnce() -> String) -> RepositoryError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => RepositoryError::Conflict(conflict()),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => RepositoryError::NotFound(missing()),
        e => backend(e),
    }
}

/// An id read back from the database.
pub(crate) fn parse_uuid(s: &str) -> Result<uuid::Uuid, RepositoryError> {
    uuid::Uuid::parse_str(s).map_err(|e| RepositoryError::backend(format!("corrupt id {s}: {e}")))
}

/// `now + lease_for`, saturating.
pub(crate) fn expiry(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(lease_for).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Store {
    /// Applies the embedded migrations that have not run yet.
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), RepositoryError> {
        sqlx::migrate!("./migrations").run(self.writer()).await.map_err(|e| RepositoryError::backend(format!("migration failed: {e}")))
    }

    /// Whether the database answers and every embedded migration has been applied (readiness).
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] saying which: the database's error, or the migrations missing.
    pub async fn ready(&self) -> Result<(), RepositoryError> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.probe)
            .await
            .map_err(|e| RepositoryError::backend(format!("the database does not answer: {e}")))?;
        let missing: Vec<i64> = sqlx::migrate!("./migrations").iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
        if missing.is_empty() { Ok(()) } else { Err(RepositoryError::backend(format!("migrations not applied: {missing:?}"))) }
    }

    /// A page of `SELECT {select} FROM {from}{filter}`, in `query.order_by` (or `default_order`) with
    /// `id` as tie-break, at the page's offset, and the exact number of rows the filter matches.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn list_rows<T>(
        &self,
        select: &str,
        from: &str,
        filter: filter::Sql,
        query: &tributary_domain::paging::ListQuery,
        columns: filter::ColumnMap,
        (default_order, id): (&str, &str),
        row: impl Fn(&crate::dialect::DbRow) -> Result<T, RepositoryError>,
    ) -> Result<tributary_domain::paging::Page<T>, RepositoryError> {
        let mut sql = filter::Sql::from_parts(format!("SELECT {select} FROM {from}{}", filter.text), &filter);
        let total: i64 = sqlx::query_scalar_with(&format!("SELECT COUNT(*) FROM {from}{}", filter.text), filter.args)
            .fetch_one(self.reader())
            .await
            .map_err(backend)?;
        filter::render_order(&mut sql, query.order_by.as_ref(), columns, default_order, id);
        sql.push(" LIMIT ");
        sql.bind_i64(i64::from(query.page.page_size));
        sql.push(" OFFSET ");
        sql.bind_i64(i64::try_from(query.page.offset()).unwrap_or(i64::MAX));
        let rows = sqlx::query_with(&sql.text, sql.args).fetch_all(self.reader()).await.map_err(backend)?;
        let items = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        Ok(tributary_domain::paging::Page { items, total: u64::try_from(total).unwrap_or(0), request: query.page })
    }

    /// The pool reads go through (for tests and diagnostics).
    pub fn pool(&self) -> &sqlx::Pool<crate::dialect::Db> {
        &self.pool
    }

    /// Every repository port, backed by this store.
    pub fn repositories(&self) -> Repositories {
        let s = Arc::new(self.clone());
        Repositories {
            companies: s.clone(),
            connections: s.clone(),
            integrations: s.clone(),
            api_keys: s.clone(),
            profile: s.clone(),
            secrets: s.clone(),
            oauth_states: s.clone(),
            pull_operations: s.clone(),
            sync_leases: s.clone(),
            records: s.clone(),
            webhooks: s.clone(),
            console: s,
        }
    }
}
