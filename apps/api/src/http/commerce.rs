//! The Commerce API: `GET /companies/{companyId}/connections/{connectionId}/data/commerce-…`.

use super::AppState;
use super::dto::{Links, paged_json};
use super::error::{ApiError, ErrorMessage};
use super::extract::{ListParams, path_id};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::commerce_schema::schema;
use tributary_domain::model::data_type::DataType;
use tributary_domain::paging::{ListQuery, PageCursor};
use tributary_domain::service::RecordPage;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/companies/{companyId}/connections/{connectionId}/data/commerce-info", get(company_info))
        .route("/companies/{companyId}/connections/{connectionId}/data/{dataType}", get(list))
        .route("/companies/{companyId}/connections/{connectionId}/data/{dataType}/{recordId}", get(show))
}

fn ids(company: &str, connection: &str) -> Result<(CompanyId, ConnectionId), ApiError> {
    Ok((path_id(company, "company id")?, path_id(connection, "connection id")?))
}

fn data_type(raw: &str) -> Result<DataType, ApiError> {
    match raw.parse::<DataType>() {
        Ok(DataType::CompanyInfo) | Err(_) => Err(ApiError::not_found(format!("No commerce data type is served at '{raw}'."))),
        Ok(dt) => Ok(dt),
    }
}

/// Company info (a single object).
#[utoipa::path(get, path = "/companies/{companyId}/connections/{connectionId}/data/commerce-info", tag = "Commerce", operation_id = "get-company-info",
    params(("companyId" = String, Path), ("connectionId" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorMessage), (status = 409, body = ErrorMessage)))]
pub(super) async fn company_info(
    State(s): State<AppState>,
    Path((company, connection)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (company, connection) = ids(&company, &connection)?;
    Ok(Json(s.platform.records().company_info(company, connection).await?))
}

/// A page of customers, disputes, payments, products or transactions.
#[utoipa::path(get, path = "/companies/{companyId}/connections/{connectionId}/data/{dataType}", tag = "Commerce", operation_id = "list-commerce-data",
    params(("companyId" = String, Path), ("connectionId" = String, Path), ("dataType" = String, Path, description = "commerce-customers, commerce-disputes, commerce-payments, commerce-products or commerce-transactions"),
        ("page" = Option<i32>, Query), ("pageSize" = Option<i32>, Query), ("query" = Option<String>, Query), ("orderBy" = Option<String>, Query),
        ("cursor" = Option<String>, Query, description = "Opaque keyset position from `_links.next` (Tributary extension): the page it belongs to is read from that position instead of by offset, so deep pages cost what the first does. Ignored when it belongs to another page or list.")),
    responses((status = 200, body = Object), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage), (status = 409, body = ErrorMessage)))]
pub(super) async fn list(
    State(s): State<AppState>,
    Path((company, connection, raw)): Path<(String, String, String)>,
    params: ListParams,
) -> Result<Response, ApiError> {
    let (company, connection) = ids(&company, &connection)?;
    let dt = data_type(&raw)?;
    let Some(schema) = schema(dt) else {
        // A type without a list schema is one Stripe does not provide: let the domain say so.
        s.platform.records().readable(company, connection, dt).await?;
        return Err(ApiError::not_found(format!("Datatype {dt} cannot be listed.")));
    };
    let mut q = ListQuery::from_params(schema, params.page, params.page_size, params.query.as_deref(), params.order_by.as_deref())?;
    let path = format!("/companies/{company}/connections/{connection}/data/{raw}");
    let fingerprint = PageCursor::fingerprint(&path, q.page.page_size, params.query.as_deref(), params.order_by.as_deref());
    if let Some(token) = params.cursor.as_deref().filter(|t| !t.is_empty()) {
        // The page number decides: a cursor for another page or list is ignored (read by offset).
        let cursor = PageCursor::decode(token)?;
        if cursor.page == q.page.page && cursor.fingerprint == fingerprint && q.keyset_order() {
            q.seek = Some(cursor.seek);
        }
    }
    let RecordPage { page, next } = s.platform.records().list(company, connection, dt, &q).await?;
    let mut links = Links::new(&page, &path, &params);
    if let (Some(seek), Some(link)) = (next, links.next.as_mut()) {
        link.href.push_str("&cursor=");
        link.href.push_str(&PageCursor { page: page.request.page + 1, fingerprint, seek }.encode());
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], paged_json(page, &links)).into_response())
}

/// One record by id (ids may contain `:` and spaces, as the fee transactions do).
#[utoipa::path(get, path = "/companies/{companyId}/connections/{connectionId}/data/{dataType}/{recordId}", tag = "Commerce", operation_id = "get-commerce-record",
    params(("companyId" = String, Path), ("connectionId" = String, Path), ("dataType" = String, Path), ("recordId" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorMessage), (status = 409, body = ErrorMessage)))]
pub(super) async fn show(
    State(s): State<AppState>,
    Path((company, connection, raw, id)): Path<(String, String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (company, connection) = ids(&company, &connection)?;
    let dt = data_type(&raw)?;
    Ok(Json(s.platform.records().get(company, connection, dt, &id).await?))
}
