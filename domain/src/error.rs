//! Domain errors: what a use case can fail with, independent of transport or storage.

use thiserror::Error;

/// Errors raised by repository ports.
#[derive(Debug, Error)]
pub enum RepositoryError {
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The write conflicts with the stored state (unique key, concurrent change).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A fenced sync write was refused, nothing written: the worker no longer holds the
    /// connection's sync lease, or the connection is no longer linked.
    #[error("sync write refused: {0}")]
    Fenced(String),
    /// The storage backend failed; the message is for logs, not for clients. `source` is the
    /// driver's error when there is one (`std::error::Error::source` reaches it).
    #[error("storage failure: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl RepositoryError {
    /// A backend failure described by `message` alone.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Backend { message: message.into(), source: None }
    }

    /// A backend failure caused by `error`, kept as the source.
    pub fn backend_from(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend { message: error.to_string(), source: Some(Box::new(error)) }
    }
}

/// Errors raised by the use-case services; the HTTP layer maps each variant to a status code.
#[derive(Debug, Error)]
pub enum DomainError {
    /// Input failed validation (HTTP 400).
    #[error("{message}")]
    Validation {
        /// What is wrong, said to the caller.
        message: String,
        /// Per-item details (Codat's `validation.errors`).
        items: Vec<ValidationItem>,
    },
    /// The thing asked for does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The request is not allowed for this resource in its current state (HTTP 400).
    #[error("{0}")]
    InvalidState(String),
    /// An external service (the provider) could not do its part; nothing was changed (HTTP 502).
    #[error("{message}")]
    Unavailable {
        /// What could not be done, said to the caller.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<Cause>,
    },
    /// A secret could not be sealed or opened (wrong or missing master key).
    #[error("secret error: {message}")]
    Secret {
        /// Which secret, and what went wrong.
        message: String,
        /// The cipher's (or the serializer's) error.
        #[source]
        source: Option<Cause>,
    },
    /// Storage failed (HTTP 500; detail is logged, not returned).
    #[error(transparent)]
    Repository(RepositoryError),
}

/// One validation finding, as Codat reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationItem {
    /// The offending item (field name or key), when there is one.
    pub item_id: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

/// The underlying error of a [`DomainError`], reachable through `std::error::Error::source`.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl DomainError {
    /// A validation error with a single message and no item details.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Validation { message: message.into(), items: Vec::new() }
    }

    /// A secret that could not be sealed or opened because of `error`, kept as the source.
    pub fn secret(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Secret { message: error.to_string(), source: Some(Box::new(error)) }
    }

    /// As [`DomainError::secret`], saying which secret (`what`).
    pub fn secret_of(what: impl std::fmt::Display, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Secret { message: format!("{what}: {error}"), source: Some(Box::new(error)) }
    }

    /// The provider could not do its part (`message`, said to the caller) because of `error`,
    /// kept as the source.
    pub fn unavailable(message: impl Into<String>, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable { message: message.into(), source: Some(Box::new(error)) }
    }
}

impl From<RepositoryError> for DomainError {
    fn from(e: RepositoryError) -> Self {
        match e {
            RepositoryError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            RepositoryError::Conflict(what) => Self::Conflict(what),
            other => Self::Repository(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DomainError;
    use crate::ports::{CipherError, OAuthError};
    use std::error::Error;

    #[test]
    fn secret_and_provider_failures_keep_their_cause() {
        let e = DomainError::secret_of("webhook secret", CipherError::UnknownKey("k1".into()));
        assert!(e.to_string().contains("webhook secret"), "{e}");
        assert_eq!(e.source().and_then(|s| s.downcast_ref::<CipherError>()), Some(&CipherError::UnknownKey("k1".into())));
        let e = DomainError::unavailable("Stripe could not be reached", OAuthError::Unavailable("timeout".into()));
        assert_eq!(e.to_string(), "Stripe could not be reached");
        assert!(e.source().and_then(|s| s.downcast_ref::<OAuthError>()).is_some());
    }
}
