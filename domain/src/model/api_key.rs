//! API keys: stored only as a SHA-256 hash; the key itself is shown once, at creation.

use crate::ids::ApiKeyId;
use chrono::{DateTime, Utc};

/// Maximum number of API keys, as in Codat.
pub const MAX_API_KEYS: usize = 10;
/// Maximum length of a key's name.
pub const MAX_NAME_LEN: usize = 50;

/// An API key as stored: never the key, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Optional name.
    pub name: Option<String>,
    /// Lower-case hex SHA-256 of the key.
    pub hash: String,
    /// When it was created.
    pub created: DateTime<Utc>,
}
