//! Identifier newtypes: parse, don't validate.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| IdError(format!("{} is not a valid {} (expected a UUID)", s, $what)))
            }
        }
    };
}

/// An id string that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

uuid_id!(
    /// A company's id.
    CompanyId,
    "company id"
);
uuid_id!(
    /// A data connection's id.
    ConnectionId,
    "connection id"
);
uuid_id!(
    /// An API key's id.
    ApiKeyId,
    "API key id"
);
uuid_id!(
    /// A pull operation's (dataset's) id.
    PullOperationId,
    "dataset id"
);

/// A Codat platform key: exactly four lower-case ASCII letters (`yzth`, `exgd`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlatformKey(String);

impl PlatformKey {
    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlatformKey {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<PlatformKey> for String {
    fn from(k: PlatformKey) -> Self {
        k.0
    }
}

impl FromStr for PlatformKey {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() == 4 && s.bytes().all(|b| b.is_ascii_lowercase()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError(format!("'{s}' is not a valid platform key (expected four lower-case letters)")))
        }
    }
}

impl fmt::Display for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_key_accepts_four_lowercase_letters_only() {
        assert!("yzth".parse::<PlatformKey>().is_ok());
        for bad in ["YZTH", "yzt", "yzthh", "yz1h", ""] {
            assert!(bad.parse::<PlatformKey>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn uuid_ids_reject_garbage_with_a_message_naming_the_kind() {
        let err = "nope".parse::<CompanyId>().unwrap_err();
        assert!(err.0.contains("company id"), "{err}");
    }
}
uuid_id!(
    /// A webhook consumer's id.
    WebhookConsumerId,
    "webhook id"
);
