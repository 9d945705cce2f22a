//! Sealing secrets at rest under a master key, with the key's id stored beside each ciphertext.

use crate::model::secret::SealedSecret;
use secrecy::SecretString;

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The ciphertext names a key the cipher does not hold.
    #[error("no master key with id {0} is configured")]
    UnknownKey(String),
    /// The ciphertext is corrupt or was sealed under another key.
    #[error("the secret could not be decrypted (corrupt, or sealed under another key)")]
    Corrupt,
}

/// Encrypts and decrypts secrets (authenticated encryption).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait SecretCipher: Send + Sync {
    /// Id of the key new secrets are sealed under.
    fn current_key_id(&self) -> String;
    /// Seals a secret under the current key.
    ///
    /// # Errors
    /// Never for a well-formed key; implementations return [`CipherError`] rather than panic.
    fn seal(&self, plaintext: &SecretString) -> Result<SealedSecret, CipherError>;
    /// Opens a sealed secret with the key its `key_id` names.
    ///
    /// # Errors
    /// [`CipherError::UnknownKey`] when that key is not held; [`CipherError::Corrupt`] when
    /// authentication fails.
    fn open(&self, sealed: &SealedSecret) -> Result<SecretString, CipherError>;
}
