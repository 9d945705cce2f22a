//! API key use cases: keys are hashed before they are stored; only the hash is ever compared.

use super::Platform;
use crate::error::{DomainError, RepositoryError};
use crate::ids::ApiKeyId;
use crate::model::api_key::{ApiKey, MAX_API_KEYS, MAX_NAME_LEN};
use crate::ports::ApiKeyDeletion;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of a key. Keys are long random strings, so a fast hash is enough.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// API key use cases: create, list, delete and authenticate.
///
/// Borrowed from the façade: [`Platform::api_keys`].
#[derive(Clone, Copy)]
pub struct ApiKeys<'a> {
    pub(super) p: &'a Platform,
}

impl ApiKeys<'_> {
    /// Stores a new key (its hash) under an optional name.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a name over 50 characters or a short key;
    /// [`DomainError::Conflict`] when ten keys exist.
    pub async fn create(&self, name: Option<String>, key: &SecretString) -> Result<ApiKey, DomainError> {
        if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME_LEN) {
            return Err(DomainError::invalid(format!("The API key name must be at most {MAX_NAME_LEN} characters long.")));
        }
        if key.expose_secret().len() < 32 {
            return Err(DomainError::invalid("API keys must be at least 32 characters long."));
        }
        let record = ApiKey { id: ApiKeyId::new_random(), name, hash: hash_api_key(key.expose_secret()), created: self.p.clock.now() };
        match self.p.repos.api_keys.insert_limited(&record, MAX_API_KEYS).await {
            Ok(()) => Ok(record),
            Err(RepositoryError::Conflict(_)) => {
                Err(DomainError::Conflict(format!("There are already {MAX_API_KEYS} API keys; delete one before creating another.")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every key (without values), oldest first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<ApiKey>, DomainError> {
        Ok(self.p.repos.api_keys.list().await?)
    }

    /// Deletes a key. The last key is kept unless `allow_last`, so the API cannot lock itself out.
    ///
    /// # Errors
    /// [`DomainError::NotFound`]; [`DomainError::Conflict`] for the last key.
    pub async fn delete(&self, id: ApiKeyId, allow_last: bool) -> Result<(), DomainError> {
        match self.p.repos.api_keys.delete(id, allow_last).await? {
            ApiKeyDeletion::Deleted => Ok(()),
            ApiKeyDeletion::NotFound => Err(DomainError::NotFound(format!("No API key was found with ID {id}"))),
            ApiKeyDeletion::LastKey => Err(DomainError::Conflict("The last remaining API key cannot be deleted.".into())),
        }
    }

    /// The key record matching a presented key, if any.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>, DomainError> {
        Ok(self.p.repos.api_keys.find_by_hash(&hash_api_key(presented)).await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::error::DomainError;
    use crate::service::test_support::platform;
    use secrecy::SecretString;

    fn key(i: usize) -> SecretString {
        SecretString::from(format!("{i:0>40}"))
    }

    #[tokio::test]
    async fn keys_are_stored_hashed_and_authenticate_by_value() {
        let p = platform();
        let k = p.api_keys().create(Some("ci".into()), &key(1)).await.unwrap();
        assert_ne!(k.hash, format!("{:0>40}", 1));
        assert_eq!(p.api_keys().authenticate(&format!("{:0>40}", 1)).await.unwrap().unwrap().id, k.id);
        assert!(p.api_keys().authenticate("wrong").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_eleventh_key_conflicts_and_the_last_cannot_be_deleted() {
        let p = platform();
        let mut ids = vec![];
        for i in 0..10 {
            ids.push(p.api_keys().create(None, &key(i)).await.unwrap().id);
        }
        assert!(matches!(p.api_keys().create(None, &key(99)).await, Err(DomainError::Conflict(_))));
        for id in &ids[..9] {
            p.api_keys().delete(*id, false).await.unwrap();
        }
        assert!(matches!(p.api_keys().delete(ids[9], false).await, Err(DomainError::Conflict(_))));
        p.api_keys().delete(ids[9], true).await.unwrap();
    }
}
