//! `/integrations`: list (paged, filtered in memory: there are two), get, branding; and the logo.

use super::AppState;
use super::dto::{BrandingDto, IntegrationDto, Paged};
use super::error::{ApiError, ErrorMessage};
use super::extract::ListParams;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::cmp::Ordering;
use tributary_domain::model::integration::QUERY_SCHEMA;
use tributary_domain::paging::{ListQuery, Page};
use tributary_domain::query::eval::matches;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/integrations", get(list))
        .route("/integrations/{platformKey}", get(show))
        .route("/integrations/{platformKey}/branding", get(branding))
}

fn compare(a: &serde_json::Value, b: &serde_json::Value) -> Ordering {
    match (a, b) {
        (serde_json::Value::String(x), serde_json::Value::String(y)) => x.cmp(y),
        (serde_json::Value::Bool(x), serde_json::Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// List integrations.
#[utoipa::path(get, path = "/integrations", tag = "Integrations", operation_id = "list-integrations",
    params(("page" = Option<i32>, Query), ("pageSize" = Option<i32>, Query), ("query" = Option<String>, Query), ("orderBy" = Option<String>, Query)),
    responses((status = 200, body = Paged<IntegrationDto>), (status = 400, body = ErrorMessage)))]
pub(super) async fn list(State(s): State<AppState>, params: ListParams) -> Result<Json<Paged<IntegrationDto>>, ApiError> {
    let q = ListQuery::from_params(&QUERY_SCHEMA, params.page, params.page_size, params.query.as_deref(), params.order_by.as_deref())?;
    let mut docs: Vec<(serde_json::Value, IntegrationDto)> = s
        .platform
        .integrations()
        .list()
        .await?
        .iter()
        .map(|i| {
            let dto = IntegrationDto::new(i, &s.public_url);
            (serde_json::to_value(&dto).unwrap_or_default(), dto)
        })
        .filter(|(doc, _)| q.filter.as_ref().is_none_or(|f| matches(f, doc)))
        .collect();
    let order = q.order_by.clone();
    docs.sort_by(|(a, _), (b, _)| {
        let by_key = || compare(&a["key"], &b["key"]);
        match &order {
            Some(o) => {
                let c = compare(&a[o.field], &b[o.field]);
                (if o.descending { c.reverse() } else { c }).then_with(by_key)
            }
            None => by_key(),
        }
    });
    let total = docs.len() as u64;
    let items = docs
        .into_iter()
        .map(|(_, d)| d)
        .skip(usize::try_from(q.page.offset()).unwrap_or(usize::MAX))
        .take(q.page.page_size as usize)
        .collect();
    Ok(Json(Paged::new(Page { items, total, request: q.page }, "/integrations", &params, |d| d)))
}

/// Get an integration.
#[utoipa::path(get, path = "/integrations/{platformKey}", tag = "Integrations", operation_id = "get-integration",
    params(("platformKey" = String, Path)), responses((status = 200, body = IntegrationDto), (status = 404, body = ErrorMessage)))]
pub(super) async fn show(State(s): State<AppState>, Path(key): Path<String>) -> Result<Json<IntegrationDto>, ApiError> {
    let i = s.platform.integrations().get(&key).await?;
    Ok(Json(IntegrationDto::new(&i, &s.public_url)))
}

/// Get an integration's branding.
#[utoipa::path(get, path = "/integrations/{platformKey}/branding", tag = "Integrations", operation_id = "get-integrations-branding",
    params(("platformKey" = String, Path)), responses((status = 200, body = BrandingDto), (status = 404, body = ErrorMessage)))]
pub(super) async fn branding(State(s): State<AppState>, Path(key): Path<String>) -> Result<Json<BrandingDto>, ApiError> {
    let i = s.platform.integrations().get(&key).await?;
    Ok(Json(BrandingDto::new(i.definition, &s.public_url)))
}

const STRIPE_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 50" role="img" aria-label="Stripe"><rect width="120" height="50" rx="8" fill="#635bff"/><text x="60" y="33" font-family="Helvetica, Arial, sans-serif" font-size="22" font-weight="700" fill="#fff" text-anchor="middle">stripe</text></svg>"##;

/// The integration logo (public: the Link pages show it).
pub(super) async fn logo() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=86400")], STRIPE_SVG)
}
