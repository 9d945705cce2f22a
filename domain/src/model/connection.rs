//! Data connections: a company's link to an integration, with Codat's status lifecycle.

use crate::error::DomainError;
use crate::ids::{CompanyId, ConnectionId, PlatformKey};
use crate::model::secret::SealedSecret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Codat's connection status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectionStatus {
    /// Created, not yet authorised by the merchant.
    PendingAuth,
    /// Authorised; data can be read.
    Linked,
    /// Unlinked by the client; data is kept.
    Unlinked,
    /// Access revoked by the merchant or the platform.
    Deauthorized,
}

impl ConnectionStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [Self; 4] = [Self::PendingAuth, Self::Linked, Self::Unlinked, Self::Deauthorized];

    /// The Codat spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingAuth => "PendingAuth",
            Self::Linked => "Linked",
            Self::Unlinked => "Unlinked",
            Self::Deauthorized => "Deauthorized",
        }
    }

    /// Whether the lifecycle allows moving from `self` to `to`.
    ///
    /// `PendingAuth → Linked → Unlinked | Deauthorized`, and back to `Linked` on re-link. Staying in
    /// `Unlinked` or `Deauthorized` is allowed so that repeated requests are idempotent, and a client
    /// may unlink a connection the merchant already deauthorized.
    pub fn can_become(self, to: Self) -> bool {
        use ConnectionStatus::*;
        matches!(
            (self, to),
            (PendingAuth, Linked)
                | (Linked, Unlinked)
                | (Linked, Deauthorized)
                | (Unlinked, Linked)
                | (Deauthorized, Linked)
                | (Unlinked, Unlinked)
                | (Deauthorized, Deauthorized)
                | (Unlinked, Deauthorized)
                | (Deauthorized, Unlinked)
        )
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| DomainError::invalid(format!("'{s}' is not a connection status (PendingAuth, Linked, Unlinked, Deauthorized)")))
    }
}

/// An error recorded against a connection (Codat's `dataConnectionErrors[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionError {
    /// HTTP status code from the source, as a string (Codat's type).
    pub status_code: String,
    /// Non-numeric status text.
    pub status_text: Option<String>,
    /// What went wrong.
    pub error_message: String,
    /// When it happened.
    pub errored_on_utc: DateTime<Utc>,
}

/// A data connection as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Its id.
    pub id: ConnectionId,
    /// The company it belongs to.
    pub company_id: CompanyId,
    /// The integration's platform key.
    pub platform_key: PlatformKey,
    /// Lifecycle status.
    pub status: ConnectionStatus,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When data was last synced.
    pub last_sync: Option<DateTime<Utc>>,
    /// The source's account id once linked (Stripe `acct_…`), shown in `connectionInfo`.
    pub source_account: Option<String>,
    /// The encrypted OAuth grant, once linked.
    pub grant: Option<SealedSecret>,
    /// Errors recorded against the connection, oldest first.
    pub errors: Vec<ConnectionError>,
}

impl Connection {
    /// Moves the connection to `to`, enforcing the lifecycle.
    pub fn transition(&mut self, to: ConnectionStatus) -> Result<(), DomainError> {
        if self.status.can_become(to) {
            self.status = to;
            Ok(())
        } else {
            Err(DomainError::InvalidState(format!("Connection {} is {} and cannot become {}.", self.id, self.status, to)))
        }
    }
}

/// What `GET /companies/{id}/connections?query=` and `orderBy` accept.
pub const QUERY_SCHEMA: crate::query::Schema = {
    use crate::query::{FieldDef, FieldType};
    crate::query::Schema {
        entity: "Connection",
        fields: &[
            FieldDef::scalar("id", FieldType::String),
            FieldDef::scalar("integrationId", FieldType::String),
            FieldDef::scalar("integrationKey", FieldType::String),
            FieldDef::scalar("sourceId", FieldType::String),
            FieldDef::scalar("sourceType", FieldType::Enum(crate::model::company::SOURCE_TYPES)),
            FieldDef::scalar("platformName", FieldType::String),
            FieldDef::scalar("status", FieldType::Enum(&["PendingAuth", "Linked", "Unlinked", "Deauthorized"])),
            FieldDef::scalar("created", FieldType::Date),
            FieldDef::scalar("lastSync", FieldType::Date),
        ],
        open: None,
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_only_codats_transitions() {
        use ConnectionStatus::*;
        assert!(PendingAuth.can_become(Linked));
        assert!(Linked.can_become(Unlinked));
        assert!(Linked.can_become(Deauthorized));
        assert!(Deauthorized.can_become(Linked));
        assert!(Unlinked.can_become(Linked));
        assert!(!PendingAuth.can_become(Unlinked));
        assert!(!PendingAuth.can_become(Deauthorized));
        assert!(!Linked.can_become(PendingAuth));
        assert!(!Unlinked.can_become(PendingAuth));
    }

    #[test]
    fn statuses_parse_only_in_codat_spelling() {
        assert_eq!("Unlinked".parse::<ConnectionStatus>().unwrap(), ConnectionStatus::Unlinked);
        assert!("unlinked".parse::<ConnectionStatus>().is_err());
    }
}
