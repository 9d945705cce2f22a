//! Refresh and data status: `POST /companies/{id}/data/all`, `POST …/data/queue/{dataType}`,
//! `GET …/dataStatus`.

use super::AppState;
use super::dto::iso;
use super::error::{ApiError, ErrorMessage};
use super::extract::path_id;
use super::history::PullOperationDto;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::data_type::DataType;
use utoipa::ToSchema;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/companies/{companyId}/data/all", post(all))
        .route("/companies/{companyId}/data/queue/{dataType}", post(queue))
        .route("/companies/{companyId}/dataStatus", get(status))
}

/// Codat's `DataStatus`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataStatusDto {
    /// Data type.
    pub data_type: String,
    /// Status of the latest pull.
    pub current_status: String,
    /// When the latest successful pull finished (`0001-01-01T00:00:00` when never, as Codat).
    pub last_successful_sync: String,
    /// Latest pull.
    pub latest_sync_id: Uuid,
    /// Latest successful pull.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_successful_sync_id: Option<Uuid>,
}

/// Queue every data type with fetch-on-first-link.
#[utoipa::path(post, path = "/companies/{companyId}/data/all", tag = "Refresh data", operation_id = "refresh-company-data",
    params(("companyId" = String, Path)), responses((status = 204), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn all(State(s): State<AppState>, Path(company): Path<String>) -> Result<StatusCode, ApiError> {
    let company: CompanyId = path_id(&company, "company id")?;
    s.platform.pulls().queue_all(company).await?;
    s.wake.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

/// `?connectionId=`.
#[derive(Debug, Deserialize)]
pub(super) struct QueueQuery {
    #[serde(rename = "connectionId")]
    connection_id: Option<String>,
}

/// Queue one data type.
#[utoipa::path(post, path = "/companies/{companyId}/data/queue/{dataType}", tag = "Refresh data", operation_id = "refresh-data-type",
    params(("companyId" = String, Path), ("dataType" = String, Path), ("connectionId" = Option<String>, Query)),
    responses((status = 200, body = PullOperationDto), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn queue(
    State(s): State<AppState>,
    Path((company, data_type)): Path<(String, String)>,
    super::extract::CodatQuery(q): super::extract::CodatQuery<QueueQuery>,
) -> Result<Json<PullOperationDto>, ApiError> {
    let company: CompanyId = path_id(&company, "company id")?;
    let data_type: DataType =
        data_type.parse().map_err(|e: tributary_domain::model::data_type::UnknownDataType| ApiError::bad_request(e.0))?;
    let connection: Option<ConnectionId> =
        q.connection_id.as_deref().filter(|c| !c.is_empty()).map(|c| path_id(c, "connection id")).transpose()?;
    let op = s.platform.pulls().queue(company, data_type, connection).await?;
    s.wake.notify_waiters();
    Ok(Json(op.into()))
}

/// The status of each data type.
#[utoipa::path(get, path = "/companies/{companyId}/dataStatus", tag = "Refresh data", operation_id = "get-company-data-status",
    params(("companyId" = String, Path)), responses((status = 200, body = BTreeMap<String, DataStatusDto>), (status = 404, body = ErrorMessage)))]
pub(super) async fn status(
    State(s): State<AppState>,
    Path(company): Path<String>,
) -> Result<Json<BTreeMap<String, DataStatusDto>>, ApiError> {
    let company: CompanyId = path_id(&company, "company id")?;
    let statuses = s.platform.pulls().data_status(company).await?;
    Ok(Json(
        statuses
            .into_iter()
            .map(|d| {
                let ok = d.latest_successful.as_ref();
                (
                    d.data_type.key().to_owned(),
                    DataStatusDto {
                        data_type: d.data_type.key().to_owned(),
                        current_status: d.latest.status.as_str().to_owned(),
                        last_successful_sync: ok.and_then(|o| o.completed).map_or_else(|| "0001-01-01T00:00:00".to_owned(), iso),
                        latest_sync_id: d.latest.id.0,
                        latest_successful_sync_id: ok.map(|o| o.id.0),
                    },
                )
            })
            .collect(),
    ))
}
