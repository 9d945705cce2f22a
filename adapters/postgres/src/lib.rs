//! `tributary-postgres`: every repository port on PostgreSQL, the production store.
//!
//! Migrations are embedded and run by [`PgStore::migrate`]. Timestamps are `TIMESTAMPTZ` and
//! documents `JSONB`; the query language is translated into parameterised SQL with `$n`
//! placeholders (see `filter`). Limits that SQLite enforces inside one statement are enforced here
//! under a table lock, so concurrent server instances cannot break them.

// The repositories, written once for both databases (`adapters/sql`, docs/architecture.md); this
// crate gives them its `dialect` and its `tuned` statements.
mod dialect;
#[cfg(test)]
mod plans;
#[path = "../../sql/mod.rs"]
mod sql;
mod tuned;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tributary_domain::RepositoryError;

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

    /// Connections open in the pools: (idle, in use).
    pub fn pool_connections(&self) -> (u32, u32) {
        let (idle, size) = (u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX), self.pool.size());
        (idle, size.saturating_sub(idle))
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.probe.close().await;
        self.pool.close().await;
    }
}
