//! `/webhooks`: Codat's webhook consumers (list, create with a signing secret shown once, delete).

use super::AppState;
use super::dto::{CreateWebhookConsumer, Results, WebhookConsumerDto};
use super::error::{ApiError, ErrorMessage};
use super::extract::{CodatJson, path_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use tributary_domain::ids::WebhookConsumerId;
use tributary_domain::model::webhook::NewConsumer;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/webhooks", get(list).post(create)).route("/webhooks/{webhookId}", delete(remove))
}

/// List webhook consumers (not paged; at most 50).
#[utoipa::path(get, path = "/webhooks", tag = "Webhooks", operation_id = "list-webhook-consumers",
    responses((status = 200, body = Results<WebhookConsumerDto>)))]
pub(super) async fn list(State(s): State<AppState>) -> Result<Json<Results<WebhookConsumerDto>>, ApiError> {
    let all = s.platform.webhooks().list_consumers().await?;
    Ok(Json(Results { results: all.into_iter().map(|c| WebhookConsumerDto::new(c, None)).collect() }))
}

/// Create a webhook consumer. The answer carries its `whsec_` signing secret, the only time the
/// API shows it.
#[utoipa::path(post, path = "/webhooks", tag = "Webhooks", operation_id = "create-webhook-consumer", request_body = CreateWebhookConsumer,
    responses((status = 201, body = WebhookConsumerDto), (status = 400, body = ErrorMessage)))]
pub(super) async fn create(
    State(s): State<AppState>,
    CodatJson(body): CodatJson<CreateWebhookConsumer>,
) -> Result<(StatusCode, Json<WebhookConsumerDto>), ApiError> {
    let req = NewConsumer {
        url: body.url.ok_or_else(|| ApiError::bad_request("url is required"))?,
        disabled: body.disabled.unwrap_or(false),
        event_types: body.event_types.unwrap_or_default(),
        company_tags: body.company_tags.unwrap_or_default(),
    };
    let (consumer, secret) = s.platform.webhooks().create_consumer(req).await?;
    s.webhook_wake.notify_waiters();
    Ok((StatusCode::CREATED, Json(WebhookConsumerDto::new(consumer, Some(secret.expose_secret().to_owned())))))
}

/// Delete a webhook consumer; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/webhooks/{webhookId}", tag = "Webhooks", operation_id = "delete-webhook-consumer",
    params(("webhookId" = String, Path)), responses((status = 204), (status = 404, body = ErrorMessage)))]
pub(super) async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id: WebhookConsumerId = path_id(&id, "webhook id")?;
    s.platform.webhooks().delete_consumer(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
