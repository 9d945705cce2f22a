//! `tributary-postgres`: every repository port on PostgreSQL, the production store.
//!
//! Migrations are embedded and run by [`PgStore::migrate`]. Timestamps are `TIMESTAMPTZ` and
//! documents `JSONB`; the query language is translated into parameterised SQL with `$n`
//! placeholders (see `filter`). Limits that SQLite enforces inside one statement are enforced here
//! under a table lock, so concurrent server instances cannot break them.

mod api_keys;
mod companies;
mod connections;
mod console;
mod filter;
mod integrations;
mod oauth_states;
mod profile;
mod pull_operations;
mod records;
mod secrets;
mod sync_leases;
mod webhooks;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tributary_domain::RepositoryError;
use tributary_domain::ports::Repositories;

/// Most connections one store keeps open.
const MAX_CONNECTIONS: u32 = 10;
/// How long a caller waits for a free connection (or a new one) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL-backed store implementing every repository port.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// One connection of its own for readiness checks, so that a pool busy with syncs does not
    /// make the instance look unready.
    probe: PgPool,
}

impl PgStore {
    /// Connects to the database at a `postgres://user[:password]@host[:port]/database` URL.
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] when the URL is invalid (or not `postgres://`/`postgresql://`)
    /// or the server cannot be reached; the message names user, host, port and database but never
    /// the password.
    pub async fn connect(url: &str) -> Result<Self, RepositoryError> {
        // sqlx parses any scheme; a `sqlite://` or `mysql://` URL here is a configuration mistake.
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            // Only a plausible scheme is echoed, so a malformed URL cannot leak a password.
            let scheme = url
                .split_once("://")
                .map(|(s, _)| s)
                .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)))
                .unwrap_or("(none)");
            return Err(RepositoryError::backend(format!(
                "invalid PostgreSQL URL: expected postgres:// or postgresql://, got scheme {scheme}"
            )));
        }
        let opts = PgConnectOptions::from_str(url).map_err(|e| RepositoryError::backend(format!("invalid PostgreSQL URL: {e}")))?;
        let target = format!(
            "postgres://{}@{}:{}/{}",
            opts.get_username(),
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or(opts.get_username())
        );
        // Every statement is prepared once per connection and always filters on its leading index
        // columns (connection, data type, …): its generic plan is the right one, and Postgres'
        // default of re-planning a statement whose generic plan looks costlier than the custom
        // ones cost list requests ~10 % of their throughput (docs/performance.md). The setting
        // needs PostgreSQL 12 or later, and a pooler that passes startup options through.
        let opts = opts.options([("plan_cache_mode", "force_generic_plan")]);
        let probe = PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(2)).connect_lazy_with(opts.clone());
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(|e| RepositoryError::backend(format!("cannot connect to PostgreSQL at {target}: {e}")))?;
        Ok(Self { pool, probe })
    }

    /// Applies the embedded migrations that have not run yet.
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), RepositoryError> {
        sqlx::migrate!("./migrations").run(&self.pool).await.map_err(|e| RepositoryError::backend(format!("migration failed: {e}")))
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

    /// Connections open in the pools: (idle, in use).
    pub fn pool_connections(&self) -> (u32, u32) {
        let (idle, size) = (u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX), self.pool.size());
        (idle, size.saturating_sub(idle))
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

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.probe.close().await;
        self.pool.close().await;
    }
}

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

pub(crate) fn parse_uuid(s: &str) -> Result<uuid::Uuid, RepositoryError> {
    uuid::Uuid::parse_str(s).map_err(|e| RepositoryError::backend(format!("corrupt id {s}: {e}")))
}
