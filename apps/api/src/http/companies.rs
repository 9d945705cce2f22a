//! `/companies`: list, create, get, replace, update, delete.

use super::AppState;
use super::dto::{CompanyDto, CompanyRequestBody, Paged};
use super::error::{ApiError, ErrorMessage};
use super::extract::{CodatJson, ListParams, path_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tributary_domain::ids::CompanyId;
use tributary_domain::model::company::{CompanyFields, QUERY_SCHEMA};
use tributary_domain::paging::ListQuery;
use tributary_domain::service::CompanyPatch;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/companies", get(list).post(create))
        .route("/companies/{companyId}", get(show).put(replace).patch(update).delete(remove))
}

fn fields(body: CompanyRequestBody) -> Result<CompanyFields, ApiError> {
    let name = body.name.ok_or_else(|| ApiError::bad_request("name is required."))?;
    Ok(CompanyFields::new(&name, body.description, body.tags.unwrap_or_default())?)
}

/// List companies.
#[utoipa::path(get, path = "/companies", tag = "Companies", operation_id = "list-companies",
    params(("page" = Option<i32>, Query), ("pageSize" = Option<i32>, Query), ("query" = Option<String>, Query), ("orderBy" = Option<String>, Query), ("tags" = Option<String>, Query)),
    responses((status = 200, body = Paged<CompanyDto>), (status = 400, body = ErrorMessage), (status = 401, body = ErrorMessage)))]
pub(super) async fn list(State(s): State<AppState>, params: ListParams) -> Result<Json<Paged<CompanyDto>>, ApiError> {
    let q = ListQuery::from_params(&QUERY_SCHEMA, params.page, params.page_size, params.query.as_deref(), params.order_by.as_deref())?;
    let page = s.platform.companies().list(q, params.tags.as_deref()).await?;
    Ok(Json(Paged::new(page, "/companies", &params, |c| CompanyDto::new(c, &s.public_url))))
}

/// Create a company.
#[utoipa::path(post, path = "/companies", tag = "Companies", operation_id = "create-company", request_body = CompanyRequestBody,
    responses((status = 200, body = CompanyDto), (status = 400, body = ErrorMessage), (status = 401, body = ErrorMessage)))]
pub(super) async fn create(
    State(s): State<AppState>,
    CodatJson(body): CodatJson<CompanyRequestBody>,
) -> Result<Json<CompanyDto>, ApiError> {
    let view = s.platform.companies().create(fields(body)?).await?;
    Ok(Json(CompanyDto::new(view, &s.public_url)))
}

/// Get a company.
#[utoipa::path(get, path = "/companies/{companyId}", tag = "Companies", operation_id = "get-company",
    params(("companyId" = String, Path)), responses((status = 200, body = CompanyDto), (status = 404, body = ErrorMessage)))]
pub(super) async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<CompanyDto>, ApiError> {
    let id: CompanyId = path_id(&id, "company id")?;
    Ok(Json(CompanyDto::new(s.platform.companies().get(id).await?, &s.public_url)))
}

/// Replace a company (unset description and tags are cleared).
#[utoipa::path(put, path = "/companies/{companyId}", tag = "Companies", operation_id = "replace-company", request_body = CompanyRequestBody,
    params(("companyId" = String, Path)), responses((status = 200, body = CompanyDto), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn replace(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CodatJson(body): CodatJson<CompanyRequestBody>,
) -> Result<Json<CompanyDto>, ApiError> {
    let id: CompanyId = path_id(&id, "company id")?;
    Ok(Json(CompanyDto::new(s.platform.companies().replace(id, fields(body)?).await?, &s.public_url)))
}

/// Update a company (omitted or null fields are left as they are).
#[utoipa::path(patch, path = "/companies/{companyId}", tag = "Companies", operation_id = "update-company", request_body = CompanyRequestBody,
    params(("companyId" = String, Path)), responses((status = 200, body = CompanyDto), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CodatJson(body): CodatJson<CompanyRequestBody>,
) -> Result<Json<CompanyDto>, ApiError> {
    let id: CompanyId = path_id(&id, "company id")?;
    let patch = CompanyPatch { name: body.name, description: body.description, tags: body.tags };
    Ok(Json(CompanyDto::new(s.platform.companies().update(id, patch).await?, &s.public_url)))
}

/// Delete a company with its connections and data.
#[utoipa::path(delete, path = "/companies/{companyId}", tag = "Companies", operation_id = "delete-company",
    params(("companyId" = String, Path)), responses((status = 204), (status = 404, body = ErrorMessage)))]
pub(super) async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id: CompanyId = path_id(&id, "company id")?;
    s.platform.companies().delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
