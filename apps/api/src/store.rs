//! Storage composition: picks the adapter from `database_url`.

use anyhow::Context;
use tributary_domain::ports::Repositories;

/// An open store: its repositories and a handle to close it.
#[derive(Clone)]
pub enum Store {
    /// SQLite.
    Sqlite(tributary_sqlite::SqliteStore),
    /// PostgreSQL.
    Postgres(tributary_postgres::PgStore),
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and runs migrations.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let shown = crate::config::redact_url(url);
        let store = if url.starts_with("sqlite:") {
            Self::Sqlite(tributary_sqlite::SqliteStore::connect(url).await.with_context(|| format!("cannot open database {shown}"))?)
        } else {
            Self::Postgres(tributary_postgres::PgStore::connect(url).await.with_context(|| format!("cannot open database {shown}"))?)
        };
        match &store {
            Self::Sqlite(s) => s.migrate().await,
            Self::Postgres(s) => s.migrate().await,
        }
        .with_context(|| format!("cannot migrate database {shown}"))?;
        Ok(store)
    }

    /// The repository ports.
    pub fn repositories(&self) -> Repositories {
        match self {
            Self::Sqlite(s) => s.repositories(),
            Self::Postgres(s) => s.repositories(),
        }
    }

    /// Whether the database answers and its migrations are current (`/ready`).
    ///
    /// # Errors
    /// What is wrong, in words.
    pub async fn ready(&self) -> Result<(), tributary_domain::RepositoryError> {
        match self {
            Self::Sqlite(s) => s.ready().await,
            Self::Postgres(s) => s.ready().await,
        }
    }

    /// Connections open in the pools: (idle, in use).
    pub fn pool_connections(&self) -> (u32, u32) {
        match self {
            Self::Sqlite(s) => s.pool_connections(),
            Self::Postgres(s) => s.pool_connections(),
        }
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}
