//! The OAuth provider port: authorize URLs, code exchange, refresh and revocation.

use crate::model::integration::{Mode, Scope};
use async_trait::async_trait;
use secrecy::SecretString;

/// What a provider returns when a merchant grants access.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The merchant's account id at the provider (Stripe `acct_…`).
    pub account_id: String,
    /// Live or test.
    pub livemode: bool,
    /// Granted scope.
    pub scope: Scope,
    /// Access token.
    pub access_token: SecretString,
    /// Refresh token, when the provider issues one.
    pub refresh_token: Option<SecretString>,
}

/// The platform credentials of one integration, opened for a single call.
#[derive(Debug, Clone)]
pub struct PlatformCredentials {
    /// Mode.
    pub mode: Mode,
    /// Client id (`ca_…`).
    pub client_id: String,
    /// Platform secret key.
    pub secret_key: SecretString,
    /// Scope to request.
    pub scope: Scope,
}

/// Why an OAuth call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The code or refresh token is unknown, used, expired, revoked or from the other mode: the
    /// merchant must link again.
    #[error("reauthorization needed: {0}")]
    Reauthorize(String),
    /// The platform credentials were refused.
    #[error("the provider refused the platform credentials: {0}")]
    InvalidClient(String),
    /// The request was malformed.
    #[error("invalid OAuth request: {0}")]
    InvalidRequest(String),
    /// The provider could not be reached or failed; retrying may help.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

/// An OAuth 2.0 authorization-code provider (Stripe Connect today; Stripe Apps later).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OAuthProvider: Send + Sync {
    /// The URL to send the merchant to.
    fn authorize_url(&self, creds: &PlatformCredentials, state: &str, redirect_uri: &str) -> String;
    /// Exchanges an authorization code for a grant.
    ///
    /// # Errors
    /// [`OAuthError::Reauthorize`] for a bad code; other variants as named.
    async fn exchange_code(&self, creds: &PlatformCredentials, code: &str) -> Result<Grant, OAuthError>;
    /// Refreshes a grant.
    ///
    /// # Errors
    /// As [`OAuthProvider::exchange_code`].
    async fn refresh(&self, creds: &PlatformCredentials, grant: &Grant) -> Result<Grant, OAuthError>;
    /// Revokes access. Succeeds when the account is already disconnected.
    ///
    /// # Errors
    /// [`OAuthError::Unavailable`] when the provider cannot be reached.
    async fn revoke(&self, creds: &PlatformCredentials, account_id: &str) -> Result<(), OAuthError>;
}
