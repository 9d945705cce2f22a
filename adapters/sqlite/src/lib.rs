//! `tributary-sqlite`: every repository port on SQLite, the embedded default.
//!
//! The database file (and its directory) is created on first start; migrations are embedded and
//! run by [`SqliteStore::migrate`]. WAL mode and a busy timeout let the CLI work on the same file
//! while the server runs.

// The repositories, written once for both databases (`adapters/sql`, docs/architecture.md); this
// crate gives them its `dialect` and its `tuned` statements.
mod dialect;
#[path = "../../sql/mod.rs"]
mod sql;
mod tuned;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;
use tributary_domain::RepositoryError;

/// A SQLite-backed store implementing every repository port.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one connection every write of the store goes through: writers queue for it here, in
    /// order, instead of in SQLite's busy handler (which sleeps in steps of milliseconds while the
    /// lock may already be free, so a stream of sync pages could starve the API's writes), and its
    /// page cache stays valid from one write to the next (a cache of the pool's is stale for every
    /// page another connection wrote since it was last used, and is read again). Reads use `pool`.
    writer: SqlitePool,
    /// Readiness checks' connection.
    probe: SqlitePool,
    /// An in-memory database: `writer` is `pool`.
    memory: bool,
}

/// Creates the database file readable and writable by its owner only (0600: it holds sealed
/// secrets, hashed keys and merchants' data), unless it exists; SQLite gives its `-wal` and `-shm`
/// files the same permissions.
fn create_private(path: &std::path::Path) -> Result<(), RepositoryError> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(RepositoryError::backend(format!("cannot create {}: {e}", path.display()))),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://` URL: `sqlite://tributary.db`
    /// (relative), `sqlite:///var/lib/tributary/t.db` (absolute) or `sqlite::memory:`.
    ///
    /// # Errors
    /// [`RepositoryError::Backend`] when the URL is invalid or the file cannot be created.
    pub async fn connect(url: &str) -> Result<Self, RepositoryError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| RepositoryError::backend(format!("invalid SQLite URL {url}: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if !memory {
            let path = opts.get_filename().to_path_buf();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| RepositoryError::backend(format!("cannot create directory {}: {e}", dir.display())))?;
            }
            create_private(&path)?;
            // A 16 MB page cache per connection (SQLite's default is 2 MB): a sync into a store of
            // a million records keeps more of its indexes' pages at hand (+11 % records/s in
            // sync_bench, docs/performance.md). The WAL is checkpointed into the database every
            // 20,000 pages (80 MB) instead of 1,000: an index page rewritten by many commits is
            // copied back once (+25 % records/s). The WAL file restarts from the top once a
            // checkpoint completes with no reader still using it; it is not truncated, so it keeps
            // its largest size (80 MB or more) on disk.
            opts = opts
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("cache_size", "-16000")
                .pragma("wal_autocheckpoint", "20000")
                // Statement journals (a multi-row upsert needs one, to undo itself alone) in
                // memory: in temporary files, every sync page created, wrote and deleted one
                // (docs/performance.md: a third of the sync's CPU was the kernel's).
                .pragma("temp_store", "memory");
        }
        // An in-memory database lives in one connection; a file serves several readers.
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 8 })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(1800)) })
            .connect_with(opts.clone())
            .await
            .map_err(|e| RepositoryError::backend(format!("cannot open {url}: {e}")))?;
        let writer = if memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .idle_timeout(Some(Duration::from_secs(600)))
                .max_lifetime(Some(Duration::from_secs(1800)))
                .connect_lazy_with(opts.clone())
        };
        // Readiness checks get a connection of their own, so that readers busy with requests do
        // not make the instance look unready (an in-memory database has only its one).
        let probe =
            if memory { pool.clone() } else { SqlitePoolOptions::new().max_connections(1).min_connections(0).connect_lazy_with(opts) };
        Ok(Self { pool, writer, probe, memory })
    }

    /// Connections open in the pools (the readers' and the writer's): (idle, in use).
    pub fn pool_connections(&self) -> (u32, u32) {
        let count = |p: &SqlitePool| (u32::try_from(p.num_idle()).unwrap_or(u32::MAX), p.size());
        let (idle, size) = count(&self.pool);
        // A `:memory:` store's writer is its pool: counted once.
        let (w_idle, w_size) = if self.memory { (0, 0) } else { count(&self.writer) };
        let (idle, size) = (idle + w_idle, size + w_size);
        (idle, size.saturating_sub(idle))
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.probe.close().await;
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn a_new_database_and_its_wal_are_readable_by_their_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/t.db");
        let store = super::SqliteStore::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        store.migrate().await.unwrap();
        for file in [path.clone(), path.with_extension("db-wal"), path.with_extension("db-shm")] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}: {mode:o}", file.display());
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_storage_failure_keeps_the_driver_error_as_its_source() {
        let store = super::SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        let err = store.repositories().companies.get(tributary_domain::ids::CompanyId::new_random()).await.unwrap_err();
        let source = std::error::Error::source(&err).expect("the cause is kept");
        assert!(source.downcast_ref::<sqlx::Error>().is_some(), "{source:?}");
        let domain: tributary_domain::DomainError = err.into();
        assert!(std::error::Error::source(&domain).is_some(), "and reaches through DomainError");
    }
}
