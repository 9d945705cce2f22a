//! Sealed secrets: ciphertext with the id of the master key that sealed it.

/// A secret encrypted under a master key. `key_id` names the key so that rotation can find and
/// re-encrypt everything sealed under an old key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Id of the master key (derived from the key, never the key itself).
    pub key_id: String,
    /// Nonce and ciphertext, base64-encoded; opaque to everything but the cipher.
    pub ciphertext: String,
}
