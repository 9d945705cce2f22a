//! `/companies/{companyId}/connections`: list, create, get, unlink, delete.

use super::AppState;
use super::dto::{ConnectionDto, CreateConnection, Paged, UpdateConnectionStatus};
use super::error::{ApiError, ErrorMessage};
use super::extract::{CodatJson, ListParams, path_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::connection::{ConnectionStatus, QUERY_SCHEMA};
use tributary_domain::paging::ListQuery;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/companies/{companyId}/connections", get(list).post(create))
        .route("/companies/{companyId}/connections/{connectionId}", get(show).patch(unlink).delete(remove))
}

fn ids(company: &str, connection: &str) -> Result<(CompanyId, ConnectionId), ApiError> {
    Ok((path_id(company, "company id")?, path_id(connection, "connection id")?))
}

/// List a company's connections.
#[utoipa::path(get, path = "/companies/{companyId}/connections", tag = "Connections", operation_id = "list-connections",
    params(("companyId" = String, Path), ("page" = Option<i32>, Query), ("pageSize" = Option<i32>, Query), ("query" = Option<String>, Query), ("orderBy" = Option<String>, Query)),
    responses((status = 200, body = Paged<ConnectionDto>), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn list(
    State(s): State<AppState>,
    Path(company): Path<String>,
    params: ListParams,
) -> Result<Json<Paged<ConnectionDto>>, ApiError> {
    let company: CompanyId = path_id(&company, "company id")?;
    let q = ListQuery::from_params(&QUERY_SCHEMA, params.page, params.page_size, params.query.as_deref(), params.order_by.as_deref())?;
    let page = s.platform.connections().list(company, &q).await?;
    let path = format!("/companies/{company}/connections");
    Ok(Json(Paged::new(page, &path, &params, |c| ConnectionDto::new(c, &s.public_url))))
}

/// Create a connection (`PendingAuth`, with its `linkUrl`).
#[utoipa::path(post, path = "/companies/{companyId}/connections", tag = "Connections", operation_id = "create-connection",
    params(("companyId" = String, Path)), request_body = CreateConnection,
    responses((status = 200, body = ConnectionDto), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn create(
    State(s): State<AppState>,
    Path(company): Path<String>,
    CodatJson(body): CodatJson<CreateConnection>,
) -> Result<Json<ConnectionDto>, ApiError> {
    let company: CompanyId = path_id(&company, "company id")?;
    let key = body.platform_key.ok_or_else(|| ApiError::bad_request("platformKey is required."))?;
    let c = s.platform.connections().create(company, &key).await?;
    Ok(Json(ConnectionDto::new(c, &s.public_url)))
}

/// Get a connection.
#[utoipa::path(get, path = "/companies/{companyId}/connections/{connectionId}", tag = "Connections", operation_id = "get-connection",
    params(("companyId" = String, Path), ("connectionId" = String, Path)),
    responses((status = 200, body = ConnectionDto), (status = 404, body = ErrorMessage)))]
pub(super) async fn show(
    State(s): State<AppState>,
    Path((company, connection)): Path<(String, String)>,
) -> Result<Json<ConnectionDto>, ApiError> {
    let (company, connection) = ids(&company, &connection)?;
    Ok(Json(ConnectionDto::new(s.platform.connections().get(company, connection).await?, &s.public_url)))
}

/// Unlink a connection (`{"status":"Unlinked"}`): access is revoked at Stripe; the data is kept.
#[utoipa::path(patch, path = "/companies/{companyId}/connections/{connectionId}", tag = "Connections", operation_id = "unlink-connection",
    params(("companyId" = String, Path), ("connectionId" = String, Path)), request_body = UpdateConnectionStatus,
    responses((status = 200, body = ConnectionDto), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn unlink(
    State(s): State<AppState>,
    Path((company, connection)): Path<(String, String)>,
    CodatJson(body): CodatJson<UpdateConnectionStatus>,
) -> Result<Json<ConnectionDto>, ApiError> {
    let (company, connection) = ids(&company, &connection)?;
    let status: ConnectionStatus = body.status.as_deref().unwrap_or("Unlinked").parse()?;
    let c = s.linking.unlink(company, connection, status).await?;
    Ok(Json(ConnectionDto::new(c, &s.public_url)))
}

/// Delete a connection and its data, revoking access at Stripe first (200 with an empty body, as
/// Codat).
#[utoipa::path(delete, path = "/companies/{companyId}/connections/{connectionId}", tag = "Connections", operation_id = "delete-connection",
    params(("companyId" = String, Path), ("connectionId" = String, Path)), responses((status = 200), (status = 404, body = ErrorMessage)))]
pub(super) async fn remove(State(s): State<AppState>, Path((company, connection)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let (company, connection) = ids(&company, &connection)?;
    s.linking.delete(company, connection).await?;
    Ok(StatusCode::OK)
}
