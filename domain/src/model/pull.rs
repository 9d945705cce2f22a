//! Pull operations (Codat's datasets) and per-data-type data status.

use crate::ids::{CompanyId, ConnectionId, PullOperationId};
use crate::model::data_type::DataType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Codat's `DatasetStatus`, all 21 values in Codat's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DatasetStatus {
    /// Initial.
    Initial,
    /// Queued.
    Queued,
    /// Fetching.
    Fetching,
    /// Map queued.
    MapQueued,
    /// Mapping.
    Mapping,
    /// Complete.
    Complete,
    /// Fetch error.
    FetchError,
    /// Map error.
    MapError,
    /// Internal error.
    InternalError,
    /// Processing queued.
    ProcessingQueued,
    /// Processing.
    Processing,
    /// Processing error.
    ProcessingError,
    /// Validation queued.
    ValidationQueued,
    /// Validating.
    Validating,
    /// Validation error.
    ValidationError,
    /// Authentication error.
    AuthError,
    /// Cancelled.
    Cancelled,
    /// Not supported by the platform.
    NotSupported,
    /// Rate limited.
    RateLimitError,
    /// Permissions error.
    PermissionsError,
    /// Prerequisite not met.
    PrerequisiteNotMet,
}

impl DatasetStatus {
    /// Every status, in Codat's order.
    pub const ALL: [Self; 21] = [
        Self::Initial,
        Self::Queued,
        Self::Fetching,
        Self::MapQueued,
        Self::Mapping,
        Self::Complete,
        Self::FetchError,
        Self::MapError,
        Self::InternalError,
        Self::ProcessingQueued,
        Self::Processing,
        Self::ProcessingError,
        Self::ValidationQueued,
        Self::Validating,
        Self::ValidationError,
        Self::AuthError,
        Self::Cancelled,
        Self::NotSupported,
        Self::RateLimitError,
        Self::PermissionsError,
        Self::PrerequisiteNotMet,
    ];

    /// Codat's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "Initial",
            Self::Queued => "Queued",
            Self::Fetching => "Fetching",
            Self::MapQueued => "MapQueued",
            Self::Mapping => "Mapping",
            Self::Complete => "Complete",
            Self::FetchError => "FetchError",
            Self::MapError => "MapError",
            Self::InternalError => "InternalError",
            Self::ProcessingQueued => "ProcessingQueued",
            Self::Processing => "Processing",
            Self::ProcessingError => "ProcessingError",
            Self::ValidationQueued => "ValidationQueued",
            Self::Validating => "Validating",
            Self::ValidationError => "ValidationError",
            Self::AuthError => "AuthError",
            Self::Cancelled => "Cancelled",
            Self::NotSupported => "NotSupported",
            Self::RateLimitError => "RateLimitError",
            Self::PermissionsError => "PermissionsError",
            Self::PrerequisiteNotMet => "PrerequisiteNotMet",
        }
    }

    /// Whether this is an error state (`isErrored`).
    pub fn is_errored(self) -> bool {
        matches!(
            self,
            Self::FetchError
                | Self::MapError
                | Self::InternalError
                | Self::ProcessingError
                | Self::ValidationError
                | Self::AuthError
                | Self::RateLimitError
                | Self::PermissionsError
                | Self::PrerequisiteNotMet
        )
    }

    /// Whether the operation finished successfully (`isCompleted`).
    pub fn is_completed(self) -> bool {
        matches!(self, Self::Complete)
    }

    /// Whether no further change will happen.
    pub fn is_terminal(self) -> bool {
        self.is_completed() || self.is_errored() || matches!(self, Self::Cancelled | Self::NotSupported)
    }
}

/// One pull of one data type on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOperation {
    /// Its id.
    pub id: PullOperationId,
    /// The company.
    pub company_id: CompanyId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The data type.
    pub data_type: DataType,
    /// Status.
    pub status: DatasetStatus,
    /// More about the status.
    pub status_description: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// When it was requested.
    pub requested: DateTime<Utc>,
    /// When it finished.
    pub completed: Option<DateTime<Utc>>,
    /// Progress, 0–100.
    pub progress: i32,
}

/// What `GET /companies/{id}/data/history?query=` and `orderBy` accept (Codat calls the resource
/// `Dataset`; `isCompleted` is deliberately not queryable, as in Codat).
pub const QUERY_SCHEMA: crate::query::Schema = {
    use crate::query::{FieldDef, FieldType};
    crate::query::Schema {
        entity: "Dataset",
        fields: &[
            FieldDef::scalar("id", FieldType::String),
            FieldDef::scalar("companyId", FieldType::String),
            FieldDef::scalar("connectionId", FieldType::String),
            FieldDef::scalar("dataType", FieldType::String),
            FieldDef::scalar("status", FieldType::Enum(STATUS_NAMES)),
            FieldDef::scalar("statusDescription", FieldType::String),
            FieldDef::scalar("errorMessage", FieldType::String),
            FieldDef::scalar("requested", FieldType::Date),
            FieldDef::scalar("completed", FieldType::Date),
            FieldDef::scalar("progress", FieldType::Number),
            FieldDef::scalar("isErrored", FieldType::Bool),
        ],
        open: None,
    }
};

/// Every `DatasetStatus` spelling, in Codat's order.
pub const STATUS_NAMES: &[&str] = &[
    "Initial",
    "Queued",
    "Fetching",
    "MapQueued",
    "Mapping",
    "Complete",
    "FetchError",
    "MapError",
    "InternalError",
    "ProcessingQueued",
    "Processing",
    "ProcessingError",
    "ValidationQueued",
    "Validating",
    "ValidationError",
    "AuthError",
    "Cancelled",
    "NotSupported",
    "RateLimitError",
    "PermissionsError",
    "PrerequisiteNotMet",
];

impl std::str::FromStr for DatasetStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("'{s}' is not a dataset status"))
    }
}
