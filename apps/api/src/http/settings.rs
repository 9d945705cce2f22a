//! `/profile`, `/profile/syncSettings` and `/companies/{companyId}/syncSettings`.

use super::AppState;
use super::dto::{CompanySyncSettingsDto, ProfileDto, SyncSettingsDto};
use super::error::{ApiError, ErrorMessage};
use super::extract::{CodatJson, path_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tributary_domain::ids::CompanyId;
use tributary_domain::model::profile::Profile;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/profile", get(get_profile).put(put_profile))
        .route("/profile/syncSettings", get(get_sync).post(post_sync))
        .route("/companies/{companyId}/syncSettings", get(get_company_sync).post(post_company_sync))
}

fn dto(p: Profile) -> ProfileDto {
    ProfileDto {
        name: Some(p.name),
        logo_url: p.logo_url,
        icon_url: p.icon_url,
        redirect_url: Some(p.redirect_url),
        white_list_urls: Some(p.white_list_urls),
    }
}

/// Get the profile.
#[utoipa::path(get, path = "/profile", tag = "Settings", operation_id = "get-profile", responses((status = 200, body = ProfileDto)))]
pub(super) async fn get_profile(State(s): State<AppState>) -> Result<Json<ProfileDto>, ApiError> {
    Ok(Json(dto(s.platform.settings().profile().await?)))
}

/// Replace the profile.
#[utoipa::path(put, path = "/profile", tag = "Settings", operation_id = "update-profile", request_body = ProfileDto,
    responses((status = 200, body = ProfileDto), (status = 400, body = ErrorMessage)))]
pub(super) async fn put_profile(State(s): State<AppState>, CodatJson(body): CodatJson<ProfileDto>) -> Result<Json<ProfileDto>, ApiError> {
    let profile = Profile {
        name: body.name.ok_or_else(|| ApiError::bad_request("name is required."))?,
        logo_url: body.logo_url,
        icon_url: body.icon_url,
        redirect_url: body.redirect_url.ok_or_else(|| ApiError::bad_request("redirectUrl is required."))?,
        white_list_urls: body.white_list_urls.unwrap_or_default(),
    };
    Ok(Json(dto(s.platform.settings().put_profile(profile).await?)))
}

/// Get the client's sync settings.
#[utoipa::path(get, path = "/profile/syncSettings", tag = "Settings", operation_id = "get-profile-syncSettings", responses((status = 200, body = SyncSettingsDto)))]
pub(super) async fn get_sync(State(s): State<AppState>) -> Result<Json<SyncSettingsDto>, ApiError> {
    let (settings, overrides) = s.platform.settings().sync_settings().await?;
    Ok(Json(SyncSettingsDto {
        client_id: Some(s.platform.settings().client_id().await?),
        settings: Some(settings),
        overrides_defaults: Some(overrides),
    }))
}

/// Set the client's sync settings.
#[utoipa::path(post, path = "/profile/syncSettings", tag = "Settings", operation_id = "update-profile-syncSettings", request_body = SyncSettingsDto,
    responses((status = 204), (status = 400, body = ErrorMessage)))]
pub(super) async fn post_sync(State(s): State<AppState>, CodatJson(body): CodatJson<SyncSettingsDto>) -> Result<StatusCode, ApiError> {
    let ours = s.platform.settings().client_id().await?;
    match body.client_id {
        Some(id) if id == ours => {}
        Some(id) => return Err(ApiError::bad_request(format!("clientId {id} does not match this instance's client id {ours}."))),
        None => return Err(ApiError::bad_request("clientId is required.")),
    }
    let settings = body.settings.ok_or_else(|| ApiError::bad_request("settings is required."))?;
    if body.overrides_defaults == Some(false) {
        return Err(ApiError::bad_request("overridesDefaults must be true to save client sync settings."));
    }
    s.platform.settings().put_sync_settings(settings).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get a company's sync settings.
#[utoipa::path(get, path = "/companies/{companyId}/syncSettings", tag = "Settings", operation_id = "get-company-syncSettings",
    params(("companyId" = String, Path)), responses((status = 200, body = CompanySyncSettingsDto), (status = 404, body = ErrorMessage)))]
pub(super) async fn get_company_sync(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<CompanySyncSettingsDto>, ApiError> {
    let id: CompanyId = path_id(&id, "company id")?;
    let (settings, overrides) = s.platform.settings().company_sync_settings(id).await?;
    Ok(Json(CompanySyncSettingsDto { company_id: Some(id.0), settings: Some(settings), overrides_defaults: Some(overrides) }))
}

/// Set (or, with `overridesDefaults: false`, clear) a company's sync settings.
#[utoipa::path(post, path = "/companies/{companyId}/syncSettings", tag = "Settings", operation_id = "set-company-syncSettings",
    params(("companyId" = String, Path)), request_body = CompanySyncSettingsDto,
    responses((status = 204), (status = 400, body = ErrorMessage), (status = 404, body = ErrorMessage)))]
pub(super) async fn post_company_sync(
    State(s): State<AppState>,
    Path(id): Path<String>,
    CodatJson(body): CodatJson<CompanySyncSettingsDto>,
) -> Result<StatusCode, ApiError> {
    let id: CompanyId = path_id(&id, "company id")?;
    match body.company_id {
        Some(c) if c == id.0 => {}
        Some(c) => return Err(ApiError::bad_request(format!("companyId {c} in the body does not match the path's {id}."))),
        None => return Err(ApiError::bad_request("companyId is required.")),
    }
    let settings = body.settings.ok_or_else(|| ApiError::bad_request("settings is required."))?;
    let overrides = body.overrides_defaults.ok_or_else(|| ApiError::bad_request("overridesDefaults is required."))?;
    s.platform.settings().put_company_sync_settings(id, settings, overrides).await?;
    Ok(StatusCode::NO_CONTENT)
}
