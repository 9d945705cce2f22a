//! `ProfileRepository` on SQLite: one `instance` row holds the client id, profile and settings.

use crate::{SqliteStore, backend, parse_uuid};
use async_trait::async_trait;
use tributary_domain::RepositoryError;
use tributary_domain::ids::CompanyId;
use tributary_domain::model::profile::Profile;
use tributary_domain::model::sync_settings::SyncSetting;
use tributary_domain::ports::ProfileRepository;
use uuid::Uuid;

fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, RepositoryError> {
    serde_json::to_string(v).map_err(RepositoryError::backend_from)
}

fn parse<T: serde::de::DeserializeOwned>(s: Option<String>) -> Result<Option<T>, RepositoryError> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| RepositoryError::backend(format!("corrupt stored document: {e}")))).transpose()
}

impl SqliteStore {
    async fn ensure_instance(&self) -> Result<(), RepositoryError> {
        sqlx::query("INSERT INTO instance (id, client_id) VALUES (1, ?) ON CONFLICT (id) DO NOTHING")
            .bind(Uuid::new_v4().to_string())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ProfileRepository for SqliteStore {
    async fn get_profile(&self) -> Result<Option<Profile>, RepositoryError> {
        let s: Option<Option<String>> =
            sqlx::query_scalar("SELECT profile FROM instance WHERE id = 1").fetch_optional(&self.pool).await.map_err(backend)?;
        parse(s.flatten())
    }

    async fn put_profile(&self, profile: &Profile) -> Result<(), RepositoryError> {
        self.ensure_instance().await?;
        sqlx::query("UPDATE instance SET profile = ? WHERE id = 1").bind(json(profile)?).execute(&self.writer).await.map_err(backend)?;
        Ok(())
    }

    async fn client_id(&self) -> Result<Uuid, RepositoryError> {
        self.ensure_instance().await?;
        let s: String = sqlx::query_scalar("SELECT client_id FROM instance WHERE id = 1").fetch_one(&self.pool).await.map_err(backend)?;
        parse_uuid(&s)
    }

    async fn get_sync_settings(&self) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
        let s: Option<Option<String>> =
            sqlx::query_scalar("SELECT sync_settings FROM instance WHERE id = 1").fetch_optional(&self.pool).await.map_err(backend)?;
        parse(s.flatten())
    }

    async fn put_sync_settings(&self, settings: &[SyncSetting]) -> Result<(), RepositoryError> {
        self.ensure_instance().await?;
        sqlx::query("UPDATE instance SET sync_settings = ? WHERE id = 1")
            .bind(json(settings)?)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_company_sync_settings(&self, company: CompanyId) -> Result<Option<Vec<SyncSetting>>, RepositoryError> {
        let s: Option<String> = sqlx::query_scalar("SELECT settings FROM company_sync_settings WHERE company_id = ?")
            .bind(company.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        parse(s)
    }

    async fn put_company_sync_settings(&self, company: CompanyId, settings: Option<Vec<SyncSetting>>) -> Result<(), RepositoryError> {
        match settings {
            Some(s) => {
                sqlx::query(
                    "INSERT INTO company_sync_settings (company_id, settings) VALUES (?, ?) \
                     ON CONFLICT (company_id) DO UPDATE SET settings = excluded.settings",
                )
                .bind(company.to_string())
                .bind(json(&s)?)
                .execute(&self.writer)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_foreign_key_violation() => RepositoryError::NotFound(format!("company {company}")),
                    e => backend(e),
                })?;
            }
            None => {
                let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM companies WHERE id = ?")
                    .bind(company.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                if exists.is_none() {
                    return Err(RepositoryError::NotFound(format!("company {company}")));
                }
                sqlx::query("DELETE FROM company_sync_settings WHERE company_id = ?")
                    .bind(company.to_string())
                    .execute(&self.writer)
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(())
    }
}
