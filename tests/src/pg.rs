//! Fresh PostgreSQL databases for tests.
//!
//! `TRIBUTARY_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) names a
//! server and a database to administer it from. Each test gets its own database,
//! `tributary_test_<uuid>`, migrated and dropped afterwards. Without the variable the Postgres
//! tests are skipped loudly, unless `TRIBUTARY_REQUIRE_POSTGRES=1` turns the skip into a failure
//! (CI sets it so a missing server cannot pass as green).

use sqlx::{Connection, Executor, PgConnection};
use std::io::Write;
use tributary_postgres::PgStore;

/// The variable naming the test server.
pub const URL_VAR: &str = "TRIBUTARY_TEST_POSTGRES_URL";
/// The variable that makes a missing server a failure instead of a skip.
pub const REQUIRE_VAR: &str = "TRIBUTARY_REQUIRE_POSTGRES";

/// The administration URL, or `None` (after saying so on stderr) when Postgres tests are skipped.
///
/// # Panics
/// When the URL is unset and `TRIBUTARY_REQUIRE_POSTGRES=1`.
pub fn admin_url(name: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
                panic!("{REQUIRE_VAR}=1 but {URL_VAR} is not set: cannot run postgres contract test {name}");
            }
            // Written to the real stderr, which libtest does not capture, so the skip is seen.
            let _ = writeln!(std::io::stderr(), "SKIPPED (no {URL_VAR}): postgres contract test {name}");
            None
        }
    }
}

/// A database created for one test. Call [`TempDb::cleanup`] at the end of the test; if the test
/// panics first, `Drop` drops the database on a helper thread (best effort).
#[derive(Debug)]
pub struct TempDb {
    admin_url: String,
    name: String,
    url: String,
    cleaned: bool,
}

impl TempDb {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL that connects to this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, disconnecting anyone still connected.
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        drop_database(&self.admin_url, &self.name).await.unwrap_or_else(|e| panic!("cannot drop test database {}: {e}", self.name));
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop cannot await; a separate thread with its own runtime can, even inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(drop_database(&admin, &name)).ok()
        })
        .join();
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(admin_url).await?;
    admin.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str()).await?;
    admin.close().await
}

/// Creates an empty database on the test server and returns it (not yet migrated).
///
/// # Panics
/// When the server cannot be reached or refuses to create the database.
pub async fn create_database(admin_url: &str) -> TempDb {
    let name = format!("tributary_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin =
        PgConnection::connect(admin_url).await.unwrap_or_else(|e| panic!("cannot connect to {URL_VAR} to create a test database: {e}"));
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = admin.close().await;
    let mut url = url::Url::parse(admin_url).unwrap_or_else(|e| panic!("{URL_VAR} is not a URL: {e}"));
    url.set_path(&format!("/{name}"));
    TempDb { admin_url: admin_url.to_owned(), name, url: url.into(), cleaned: false }
}

/// A migrated store on a fresh database, or `None` when Postgres tests are skipped (see
/// [`admin_url`]). `name` is the test's name, for the skip message.
///
/// # Panics
/// When the server is configured but unusable, or when it is required and not configured.
pub async fn fresh_postgres(name: &str) -> Option<(PgStore, TempDb)> {
    let admin = admin_url(name)?;
    let db = create_database(&admin).await;
    let store = PgStore::connect(db.url()).await.unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", db.name()));
    store.migrate().await.unwrap_or_else(|e| panic!("cannot migrate test database {}: {e}", db.name()));
    Some((store, db))
}
