//! `ProfileRepository` on SQLite and PostgreSQL: one `instance` row holds the client id, profile and settings
//! (as JSON documents); company overrides live in `company_sync_settings`.

use crate::dialect::{self as d, Store};
use crate::sql::{backend, parse_uuid, write_error};
use async_trait::async_trait;
use tributary_domain::RepositoryError;
use tributary_domain::ids::CompanyId;
use tributary_domain::model::profile::Profile;
use tributary_domain::model::sync_settings::SyncSetting;
use tributary_domain::ports::ProfileRepository;
use uuid::Uuid;

impl Store {
    /// Creates the instance row (with a fresh client id) unless it exists.
    async fn ensure_instance(&self) -> Result<(), RepositoryError> {
        sqlx::query("INSERT INTO instance (id, client_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(Uuid::new_v4().to_string())
            .execute(self.writer())
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Reads one JSONB column of the instance row; `None` when the row or the value is missing.
    async fn instance_document<T>(&self, column: &str) -> Result<Option<T>, RepositoryError>
    where
        T: serde::de::DeserializeOwned + Send + Unpin + 'static,
    {
        let row =
            sqlx::query(&format!("SELECT {column} FROM instance WHERE id = 1")).fetch_optional(self.reader()).await.map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        d::get_opt_json(&row, column).map_err(|e| RepositoryError::backend(format!("cannot read stored {column}: {e}")))
    }
}

#[async_trait]
impl ProfileRepository for Store {
    async fn get_profile(&self) -> Result<Option<Profile>, RepositoryError> {
        self.instance_document("profile").await
    }

    async fn put_profile(&self, profile: &Profile) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO instance (id, client_id, profile) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(d::json(profile)?)
        .execute(self.writer())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn client_id(&self) -> Result<Uuid, RepositoryError> {
        self.ensure_instance().await?;
        let s: String =
            sqlx::query_scalar("SELECT client_id FROM instance WHERE id = 1").fetch_one(self.reader()).await.map_err(backend)?;
        parse_uuid(&s)
    }

    async fn get_sync_settings(&self) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
        self.instance_document("sync_settings").await
    }

    async fn put_sync_settings(&self, settings: &[SyncSetting]) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO instance (id, client_id, sync_settings) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET sync_settings = EXCLUDED.sync_settings",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(d::json(settings)?)
        .execute(self.writer())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn get_company_sync_settings(&self, company: CompanyId) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
        let row = sqlx::query("SELECT settings FROM company_sync_settings WHERE company_id = $1")
            .bind(company.to_string())
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        d::get_json(&row, "settings")
            .map(Some)
            .map_err(|e| RepositoryError::backend(format!("cannot read sync settings of company {company}: {e}")))
    }

    async fn put_company_sync_settings(&self, company: CompanyId, settings: Option<Vec<SyncSetting>>) -> Result<(), RepositoryError> {
        let not_found = || RepositoryError::NotFound(format!("company {company}"));
        match settings {
            Some(s) => {
                sqlx::query(
                    "INSERT INTO company_sync_settings (company_id, settings) VALUES ($1, $2) \
                     ON CONFLICT (company_id) DO UPDATE SET settings = EXCLUDED.settings",
                )
                .bind(company.to_string())
                .bind(d::json(&s)?)
                .execute(self.writer())
                .await
                .map_err(|e| write_error(e, || format!("sync settings of company {company}"), || format!("company {company}")))?;
            }
            None => {
                // Clearing is also NotFound for a missing company, as the port promises; the
                // delete and the check run in one transaction.
                let mut tx = self.writer().begin().await.map_err(backend)?;
                sqlx::query("DELETE FROM company_sync_settings WHERE company_id = $1")
                    .bind(company.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM companies WHERE id = $1")
                    .bind(company.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                if exists.is_none() {
                    return Err(not_found());
                }
            }
        }
        Ok(())
    }
}
