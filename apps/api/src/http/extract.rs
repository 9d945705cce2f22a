//! Extractors whose rejections are Codat errors: JSON bodies, list parameters and path ids.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::str::FromStr;

/// A JSON body; any Content-Type is accepted (some Codat SDKs send `application/octet-stream`).
pub struct CodatJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CodatJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e.status() {
            // axum's body limit (2 MiB by default).
            axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "The request body is larger than the limit of 2 MiB.")
            }
            _ => ApiError::bad_request(format!("Could not read the request body: {e}")),
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("A JSON request body is required."));
        }
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}")))?;
        refuse_nul(&value)?;
        serde_json::from_value(value).map(CodatJson).map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}")))
    }
}

/// Refuses client input holding U+0000 (which PostgreSQL cannot store), naming the field.
///
/// # Errors
/// 400 with a validation item on the field.
pub fn refuse_nul(body: &serde_json::Value) -> Result<(), ApiError> {
    match tributary_domain::model::record::nul_path(body) {
        None => Ok(()),
        Some(field) => Err(nul_error(&field)),
    }
}

/// The 400 for a field holding U+0000.
pub fn nul_error(field: &str) -> ApiError {
    let message = format!("{field} must not contain the NUL character (U+0000).");
    ApiError {
        validation: vec![tributary_domain::error::ValidationItem { item_id: Some(field.to_owned()), message: message.clone() }],
        ..ApiError::bad_request(message)
    }
}

/// Codat's list parameters, raw; typed and validated by the domain.
#[derive(Debug, Default, Clone)]
pub struct ListParams {
    /// `page`.
    pub page: Option<i64>,
    /// `pageSize`.
    pub page_size: Option<i64>,
    /// `query`.
    pub query: Option<String>,
    /// `orderBy`.
    pub order_by: Option<String>,
    /// `tags` (companies).
    pub tags: Option<String>,
    /// `cursor` (commerce lists: the keyset position from `_links.next`).
    pub cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw: HashMap<String, String> =
            parts.uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        let int = |name: &str| -> Result<Option<i64>, ApiError> {
            raw.get(name)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| ApiError::bad_request(format!("{name} must be a whole number; '{v}' was given.")))
                })
                .transpose()
        };
        if let Some((name, _)) = raw.iter().find(|(_, v)| v.contains('\0')) {
            return Err(nul_error(name));
        }
        Ok(Self {
            page: int("page")?,
            page_size: int("pageSize")?,
            query: raw.get("query").cloned(),
            order_by: raw.get("orderBy").cloned(),
            tags: raw.get("tags").cloned(),
            cursor: raw.get("cursor").cloned(),
        })
    }
}

/// Query parameters, with Codat's 400 when they do not parse (a repeated parameter, say).
pub struct CodatQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for CodatQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(_, v)| v.contains('\0'))) {
            return Err(ApiError::bad_request("Query parameters must not contain the NUL character (U+0000)."));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::bad_request(format!("The query parameters are not valid: {}", e.body_text())))
    }
}

/// Parses a path segment into a typed id, with Codat's 400 on a malformed one.
pub fn path_id<T: FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::bad_request(format!("'{raw}' is not a valid {what} (expected a UUID).")))
}
