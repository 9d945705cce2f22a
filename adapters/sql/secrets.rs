//! `SecretRepository` on SQLite and PostgreSQL: every sealed column, listed from one
//! snapshot, and replaced in one transaction.

use crate::dialect::{self as d, Store};
use crate::sql::{backend, parse_uuid};
use async_trait::async_trait;
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::ids::{ConnectionId, WebhookConsumerId};
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::ports::{SecretRepository, SecretSlot};

#[async_trait]
impl SecretRepository for Store {
    async fn list_sealed(&self) -> Result<Vec<(SecretSlot, SealedSecret)>, RepositoryError> {
        // One snapshot for every table, so a rotation sees a consistent set.
        let mut tx = d::begin_snapshot(self).await?;
        let mut out = Vec::new();
        let rows = sqlx::query(&format!(
            "SELECT key, secret_key_key_id, secret_key_ciphertext, webhook_key_id, webhook_ciphertext \
             FROM integration_settings ORDER BY key{}",
            d::BY_CODE_POINT
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for r in rows {
            let key: String = r.get(0);
            if let (Some(key_id), Some(ciphertext)) = (r.get::<Option<String>, _>(1), r.get::<Option<String>, _>(2)) {
                out.push((SecretSlot::IntegrationSecretKey(key.clone()), SealedSecret { key_id, ciphertext }));
            }
            if let (Some(key_id), Some(ciphertext)) = (r.get::<Option<String>, _>(3), r.get::<Option<String>, _>(4)) {
                out.push((SecretSlot::IntegrationWebhookSecret(key), SealedSecret { key_id, ciphertext }));
            }
        }
        let rows = sqlx::query(
            "SELECT id, grant_key_id, grant_ciphertext FROM connections \
             WHERE grant_key_id IS NOT NULL AND grant_ciphertext IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let consumers = sqlx::query("SELECT id, secret_key_id, secret_ciphertext FROM webhook_consumers ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        for r in rows {
            let (key_id, ciphertext): (String, String) = (r.get(1), r.get(2));
            out.push((SecretSlot::ConnectionGrant(ConnectionId(parse_uuid(&r.get::<String, _>(0))?)), SealedSecret { key_id, ciphertext }));
        }
        for r in consumers {
            let (key_id, ciphertext): (String, String) = (r.get(1), r.get(2));
            out.push((
                SecretSlot::WebhookSecret(WebhookConsumerId(parse_uuid(&r.get::<String, _>(0))?)),
                SealedSecret { key_id, ciphertext },
            ));
        }
        Ok(out)
    }

    async fn replace_sealed(&self, updates: &[(SecretSlot, SealedSecret)]) -> Result<(), RepositoryError> {
        let mut tx = self.writer().begin().await.map_err(backend)?;
        for (slot, s) in updates {
            let (sql, id) = match slot {
                SecretSlot::IntegrationSecretKey(k) => {
                    ("UPDATE integration_settings SET secret_key_key_id = $1, secret_key_ciphertext = $2 WHERE key = $3", k.clone())
                }
                SecretSlot::IntegrationWebhookSecret(k) => {
                    ("UPDATE integration_settings SET webhook_key_id = $1, webhook_ciphertext = $2 WHERE key = $3", k.clone())
                }
                SecretSlot::ConnectionGrant(c) => {
                    ("UPDATE connections SET grant_key_id = $1, grant_ciphertext = $2 WHERE id = $3", c.to_string())
                }
                SecretSlot::WebhookSecret(c) => {
                    ("UPDATE webhook_consumers SET secret_key_id = $1, secret_ciphertext = $2 WHERE id = $3", c.to_string())
                }
            };
            let done = sqlx::query(sql).bind(&s.key_id).bind(&s.ciphertext).bind(&id).execute(&mut *tx).await.map_err(backend)?;
            if done.rows_affected() == 0 {
                // Dropping the transaction rolls back the slots already replaced.
                return Err(RepositoryError::NotFound(format!("{slot:?}")));
            }
        }
        tx.commit().await.map_err(backend)
    }
}
