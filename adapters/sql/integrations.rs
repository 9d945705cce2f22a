//! `IntegrationRepository` on SQLite and PostgreSQL.

use crate::dialect::{self as d, Store};
use crate::sql::backend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::model::integration::{IntegrationSettings, KeyRefused};
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::ports::IntegrationRepository;

fn sealed(key_id: Option<String>, ciphertext: Option<String>) -> Option<SealedSecret> {
    Some(SealedSecret { key_id: key_id?, ciphertext: ciphertext? })
}

#[async_trait]
impl IntegrationRepository for Store {
    async fn get(&self, key: &str) -> Result<Option<IntegrationSettings>, RepositoryError> {
        let Some(r) = sqlx::query("SELECT * FROM integration_settings WHERE key = $1")
            .bind(key)
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        Ok(Some(IntegrationSettings {
            client_id: r.get("client_id"),
            secret_key: sealed(r.get("secret_key_key_id"), r.get("secret_key_ciphertext")),
            webhook_secret: sealed(r.get("webhook_key_id"), r.get("webhook_ciphertext")),
            scope: r.get::<String, _>("scope").parse().map_err(RepositoryError::backend)?,
            key_refused: match (d::get_opt_time(&r, "key_refused_at"), r.get::<Option<String>, _>("key_refused_reason")) {
                (Some(at), Some(message)) => Some(KeyRefused { at, message }),
                _ => None,
            },
            enabled: r.get::<bool, _>("enabled"),
        }))
    }

    async fn put(&self, key: &str, s: &IntegrationSettings) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO integration_settings (key, client_id, secret_key_key_id, secret_key_ciphertext, webhook_key_id, webhook_ciphertext, scope, enabled) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (key) DO UPDATE SET client_id = EXCLUDED.client_id, secret_key_key_id = EXCLUDED.secret_key_key_id, \
             secret_key_ciphertext = EXCLUDED.secret_key_ciphertext, webhook_key_id = EXCLUDED.webhook_key_id, \
             webhook_ciphertext = EXCLUDED.webhook_ciphertext, scope = EXCLUDED.scope, enabled = EXCLUDED.enabled",
        )
        .bind(key)
        .bind(&s.client_id)
        .bind(s.secret_key.as_ref().map(|x| x.key_id.clone()))
        .bind(s.secret_key.as_ref().map(|x| x.ciphertext.clone()))
        .bind(s.webhook_secret.as_ref().map(|x| x.key_id.clone()))
        .bind(s.webhook_secret.as_ref().map(|x| x.ciphertext.clone()))
        .bind(s.scope.as_str())
        .bind(s.enabled)
        .execute(self.writer())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn set_key_refused(&self, key: &str, refused: Option<KeyRefused>) -> Result<(), RepositoryError> {
        sqlx::query("UPDATE integration_settings SET key_refused_at = $1, key_refused_reason = $2 WHERE key = $3")
            .bind(refused.as_ref().map(|r| d::time(r.at)))
            .bind(refused.map(|r| r.message))
            .bind(key)
            .execute(self.writer())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn event_seen(&self, key: &str, event_id: &str) -> Result<bool, RepositoryError> {
        let row = sqlx::query("SELECT 1 FROM source_events WHERE platform_key = $1 AND event_id = $2")
            .bind(key)
            .bind(event_id)
            .fetch_optional(self.reader())
            .await
            .map_err(backend)?;
        Ok(row.is_some())
    }

    async fn remember_event(
        &self,
        key: &str,
        event_id: &str,
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM source_events WHERE received < $1")
            .bind(d::time(forget_before))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO source_events (platform_key, event_id, received) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(key)
            .bind(event_id)
            .bind(d::time(now))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }
}
