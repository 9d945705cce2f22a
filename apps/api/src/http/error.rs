//! `ApiError`: every failure rendered in Codat's error envelope, with the request's correlation id
//! (filled in by the correlation middleware, which also logs internal detail once).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tributary_domain::DomainError;
use tributary_domain::error::ValidationItem;
use utoipa::ToSchema;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the client.
    pub message: String,
    /// Per-item validation errors.
    pub validation: Vec<ValidationItem>,
    /// Detail for the log only.
    pub internal: Option<String>,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), validation: Vec::new(), internal: None }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    /// 500, with detail for the log.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self { internal: Some(detail.into()), ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "An internal error occurred.") }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation { message, items } => Self { validation: items, ..Self::bad_request(message) },
            DomainError::NotFound(m) => Self::not_found(m),
            DomainError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            DomainError::InvalidState(m) => Self::bad_request(m),
            DomainError::Unavailable { message, .. } => Self::new(StatusCode::BAD_GATEWAY, message),
            DomainError::Secret { message, .. } => Self::internal(format!("secret error: {message}")),
            DomainError::Repository(r) => Self::internal(r.to_string()),
        }
    }
}

/// Codat's `ErrorMessage`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    /// HTTP status code.
    pub status_code: u16,
    /// Emitting service.
    pub service: &'static str,
    /// What went wrong.
    pub error: String,
    /// Trace id of the request (also in the `Correlation-Id` header).
    pub correlation_id: String,
    /// Validation details, when there are any.
    pub validation: Option<Validation>,
    /// Whether retrying may help (a string, as in Codat).
    pub can_be_retried: &'static str,
    /// Codat's detailed code (always 0).
    pub detailed_error_code: i32,
}

/// Validation details.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    /// Errors.
    pub errors: Vec<ValidationEntry>,
    /// Warnings.
    pub warnings: Vec<ValidationEntry>,
}

/// One validation entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationEntry {
    /// The item.
    pub item_id: Option<String>,
    /// The message.
    pub message: Option<String>,
    /// The validator.
    pub validator_name: Option<String>,
}

impl ApiError {
    /// The envelope for this error under a correlation id.
    pub fn envelope(&self, correlation_id: &str) -> ErrorMessage {
        ErrorMessage {
            status_code: self.status.as_u16(),
            service: "PublicApi",
            error: self.message.clone(),
            correlation_id: correlation_id.to_owned(),
            validation: (!self.validation.is_empty()).then(|| Validation {
                errors: self
                    .validation
                    .iter()
                    .map(|i| ValidationEntry {
                        item_id: i.item_id.clone(),
                        message: Some(i.message.clone()),
                        validator_name: Some("Tributary".into()),
                    })
                    .collect(),
                warnings: Vec::new(),
            }),
            can_be_retried: if self.status.is_server_error() { "Unknown" } else { "False" },
            detailed_error_code: 0,
        }
    }
}

impl IntoResponse for ApiError {
    /// Renders a placeholder carrying the error; the correlation middleware writes the body.
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(self);
        res
    }
}
