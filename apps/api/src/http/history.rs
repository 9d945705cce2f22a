//! `/companies/{companyId}/data/history[/{datasetId}]`: pull operations.

use super::AppState;
use super::dto::{Paged, iso};
use super::error::{ApiError, ErrorMessage};
use super::extract::{ListParams, path_id};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tributary_domain::ids::{CompanyId, PullOperationId};
use tributary_domain::model::pull::{PullOperation, QUERY_SCHEMA};
use tributary_domain::paging::ListQuery;
use utoipa::ToSchema;
use uuid::Uuid;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/companies/{companyId}/data/history", get(list))
        .route("/companies/{companyId}/data/history/{datasetId}", get(show))
}

/// Codat's `PullOperation`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullOperationDto {
    /// Id.
    pub id: Uuid,
    /// Company.
    pub company_id: Uuid,
    /// Connection.
    pub connection_id: Uuid,
    /// Data type.
    pub data_type: String,
    /// Status (Codat's `DatasetStatus`).
    pub status: String,
    /// More about the status.
    pub status_description: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// When it was requested.
    pub requested: String,
    /// When it finished (omitted while unfinished: Codat does not declare it nullable).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub completed: Option<String>,
    /// Progress, 0–100.
    pub progress: i32,
    /// Finished successfully.
    pub is_completed: bool,
    /// Ended in an error status.
    pub is_errored: bool,
}

impl From<PullOperation> for PullOperationDto {
    fn from(p: PullOperation) -> Self {
        Self {
            id: p.id.0,
            company_id: p.company_id.0,
            connection_id: p.connection_id.0,
            data_type: p.data_type.key().to_owned(),
            status: p.status.as_str().to_owned(),
            status_description: p.status_description,
            error_message: p.error_message,
            requested: iso(p.requested),
            completed: p.completed.map(iso),
            progress: p.progress,
            is_completed: p.status.is_completed(),
            is_errored: p.status.is_errored(),
        }
    }
}

/// List a company's pull operations.
#[utoipa::path(get, path = "/companies/{companyId}/data/history", tag = "Refresh data", operation_id = "list-pull-operations",
    params(("companyId" = String, Path), ("page" = Option<i32>, Query), ("pageSize" = Option<i32>, Query), ("query" = Option<String>, Query), ("orderBy" = Option<String>, Query)),
    responses((status = 200, body = Paged<PullOperationDto>), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn list(
    State(s): State<AppState>,
    Path(company): Path<String>,
    params: ListParams,
) -> Result<Json<Paged<PullOperationDto>>, ApiError> {
    let company: CompanyId = path_id(&company, "company id")?;
    let q = ListQuery::from_params(&QUERY_SCHEMA, params.page, params.page_size, params.query.as_deref(), params.order_by.as_deref())?;
    let page = s.platform.pulls().list(company, &q).await?;
    Ok(Json(Paged::new(page, &format!("/companies/{company}/data/history"), &params, PullOperationDto::from)))
}

/// Get one pull operation.
#[utoipa::path(get, path = "/companies/{companyId}/data/history/{datasetId}", tag = "Refresh data", operation_id = "get-pull-operation",
    params(("companyId" = String, Path), ("datasetId" = String, Path)), responses((status = 200, body = PullOperationDto), (status = 404, body = ErrorMessage)))]
pub(super) async fn show(
    State(s): State<AppState>,
    Path((company, dataset)): Path<(String, String)>,
) -> Result<Json<PullOperationDto>, ApiError> {
    let company: CompanyId = path_id(&company, "company id")?;
    let dataset: PullOperationId = path_id(&dataset, "dataset id")?;
    Ok(Json(s.platform.pulls().get(company, dataset).await?.into()))
}
