//! The OpenAPI document, generated from the handlers and DTOs (utoipa) and served at
//! `/openapi.json`. A snapshot test keeps contract changes visible in review.

use super::{api_keys, commerce, companies, connections, history, integrations, refresh, settings, webhooks};
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "auth_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The word \"Basic\" followed by a space and the base64 encoding of your API key",
            ))),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tributary Platform API", description = "A self-hosted, Codat-compatible Platform and Commerce API."),
    modifiers(&Security),
    security(("auth_header" = [])),
    paths(
        companies::list, companies::create, companies::show, companies::replace, companies::update, companies::remove,
        connections::list, connections::create, connections::show, connections::unlink, connections::remove,
        integrations::list, integrations::show, integrations::branding,
        settings::get_profile, settings::put_profile, settings::get_sync, settings::post_sync, settings::get_company_sync, settings::post_company_sync,
        api_keys::list, api_keys::create, api_keys::remove,
        history::list, history::show,
        refresh::all, refresh::queue, refresh::status,
        commerce::company_info, commerce::list, commerce::show,
        webhooks::list, webhooks::create, webhooks::remove,
    ),
    components(schemas(
        super::dto::EventEnvelopeDto,
        tributary_domain::model::commerce::CompanyInfo,
        tributary_domain::model::commerce::Customer,
        tributary_domain::model::commerce::Dispute,
        tributary_domain::model::commerce::Payment,
        tributary_domain::model::commerce::Product,
        tributary_domain::model::commerce::Transaction,
    ))
)]
pub struct ApiDoc;

/// The document as JSON: generated, then completed (`openapi_contract`).
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    super::openapi_contract::complete(&mut doc);
    doc
}

/// `GET /openapi.json`.
pub(super) async fn serve() -> Json<serde_json::Value> {
    Json(document())
}
