//! `/apiKeys`: list, create (the key is shown once), delete.

use super::AppState;
use super::dto::{ApiKeyDto, CreateApiKey, Results};
use super::error::{ApiError, ErrorMessage};
use super::extract::path_id;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use tributary_domain::ids::ApiKeyId;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/apiKeys", get(list).post(create)).route("/apiKeys/{apiKeyId}", delete(remove))
}

/// A new random API key: 40 alphanumeric characters (~238 bits).
pub fn generate_api_key() -> SecretString {
    use rand::distributions::{Alphanumeric, DistString};
    SecretString::from(Alphanumeric.sample_string(&mut rand::rngs::OsRng, 40))
}

/// List API keys (values are never shown again).
#[utoipa::path(get, path = "/apiKeys", tag = "Settings", operation_id = "list-api-keys", responses((status = 200, body = Results<ApiKeyDto>)))]
pub(super) async fn list(State(s): State<AppState>) -> Result<Json<Results<ApiKeyDto>>, ApiError> {
    let keys = s.platform.api_keys().list().await?;
    Ok(Json(Results { results: keys.into_iter().map(|k| ApiKeyDto::new(k, None)).collect() }))
}

/// Create an API key; the response is the only place its value appears.
#[utoipa::path(post, path = "/apiKeys", tag = "Settings", operation_id = "create-api-key", request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyDto), (status = 400, body = ErrorMessage), (status = 409, body = ErrorMessage)))]
pub(super) async fn create(State(s): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<ApiKeyDto>), ApiError> {
    // The body is optional: `{}` and no body both create an unnamed key.
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}")))?;
        super::extract::refuse_nul(&value)?;
        serde_json::from_value::<CreateApiKey>(value)
            .map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}")))?
            .name
    };
    let key = generate_api_key();
    let record = s.platform.api_keys().create(name, &key).await?;
    Ok((StatusCode::CREATED, Json(ApiKeyDto::new(record, Some(key.expose_secret().to_owned())))))
}

/// Delete an API key (not the last one).
#[utoipa::path(delete, path = "/apiKeys/{apiKeyId}", tag = "Settings", operation_id = "delete-api-key",
    params(("apiKeyId" = String, Path)), responses((status = 204), (status = 404, body = ErrorMessage), (status = 409, body = ErrorMessage)))]
pub(super) async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id: ApiKeyId = path_id(&id, "API key id")?;
    s.platform.api_keys().delete(id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
