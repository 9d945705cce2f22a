//! Codat's JSON shapes (camelCase lives only here) and conversions from domain types.

use super::extract::ListParams;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tributary_domain::model::api_key::ApiKey;
use tributary_domain::model::connection::Connection;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::integration::{FeatureState, Integration, IntegrationDefinition, definition};
use tributary_domain::model::sync_settings::SyncSetting;
use tributary_domain::paging::Page;
use tributary_domain::service::CompanyView;
use utoipa::ToSchema;
use uuid::Uuid;

/// ISO 8601 in UTC with a `Z`, as Codat emits.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A HAL link.
#[derive(Debug, Serialize, ToSchema)]
pub struct Href {
    /// Relative URL.
    pub href: String,
}

/// Paging links.
#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    /// The resource without query.
    #[serde(rename = "self")]
    pub self_: Href,
    /// This page with its query.
    pub current: Href,
    /// The next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Href>,
    /// The previous page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Href>,
}

/// Codat's paging envelope.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T: ToSchema + Serialize> {
    /// Records on this page.
    pub results: Vec<T>,
    /// Current page number.
    pub page_number: u32,
    /// Page size used.
    pub page_size: u32,
    /// Total after filtering.
    pub total_results: u64,
    /// Links.
    #[serde(rename = "_links")]
    pub links: Links,
}

fn href(path: &str, page: u32, size: u32, params: &ListParams) -> Href {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("page", &page.to_string()).append_pair("pageSize", &size.to_string());
    for (k, v) in [("query", &params.query), ("orderBy", &params.order_by), ("tags", &params.tags)] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    Href { href: format!("{path}?{}", q.finish().replace('+', "%20")) }
}

impl Links {
    /// The links of a page under `path`.
    pub fn new<U>(page: &Page<U>, path: &str, params: &ListParams) -> Self {
        let r = page.request;
        Self {
            self_: Href { href: path.to_owned() },
            current: href(path, r.page, r.page_size, params),
            next: page.has_next().then(|| href(path, r.page + 1, r.page_size, params)),
            previous: (r.page > 1).then(|| href(path, r.page - 1, r.page_size, params)),
        }
    }
}

impl<T: ToSchema + Serialize> Paged<T> {
    /// Wraps a page with relative links under `path`.
    pub fn new<U>(page: Page<U>, path: &str, params: &ListParams, f: impl FnMut(U) -> T) -> Self {
        Self {
            page_number: page.request.page,
            page_size: page.request.page_size,
            total_results: page.total,
            links: Links::new(&page, path, params),
            results: page.items.into_iter().map(f).collect(),
        }
    }
}

/// [`Paged`]'s envelope, as JSON text, around results that already are JSON text (commerce
/// records, passed through from the store without being parsed and written again).
pub fn paged_json(page: Page<String>, links: &Links) -> String {
    let links = serde_json::to_string(links).expect("links serialise");
    let mut out = String::with_capacity(page.items.iter().map(|r| r.len() + 1).sum::<usize>() + links.len() + 100);
    out.push_str("{\"results\":[");
    for (i, r) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    out.push_str(&format!(
        "],\"pageNumber\":{},\"pageSize\":{},\"totalResults\":{},\"_links\":{links}}}",
        page.request.page, page.request.page_size, page.total
    ));
    out
}

/// Codat's `Company`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyDto {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Hosted Link URL for the company.
    pub redirect: String,
    /// Last sync.
    pub last_sync: Option<String>,
    /// Created.
    pub created: String,
    /// Creator (not tracked).
    pub created_by_user_name: Option<String>,
    /// Enabled products (none).
    pub products: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Parent company (not supported).
    pub reference_parent_company: Option<serde_json::Value>,
    /// Subsidiaries (not supported).
    pub reference_subsidiary_companies: Vec<serde_json::Value>,
    /// Connections.
    pub data_connections: Vec<ConnectionDto>,
}

impl CompanyDto {
    /// From a company view.
    pub fn new(v: CompanyView, public_url: &str) -> Self {
        let c = v.company;
        Self {
            id: c.id.0,
            redirect: format!("{public_url}/link/{}", c.id),
            name: c.name,
            description: c.description,
            last_sync: c.last_sync.map(iso),
            created: iso(c.created),
            created_by_user_name: None,
            products: Vec::new(),
            tags: c.tags,
            reference_parent_company: None,
            reference_subsidiary_companies: Vec::new(),
            data_connections: v.connections.into_iter().map(|x| ConnectionDto::new(x, public_url)).collect(),
        }
    }
}

/// Codat's `CompanyRequestBody` / `CompanyUpdateRequest`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyRequestBody {
    /// Name (required to create or replace).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// A connection error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataConnectionErrorDto {
    /// Status code from the source.
    pub status_code: String,
    /// Status text (omitted when there is none: Codat does not declare it nullable).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status_text: Option<String>,
    /// Message.
    pub error_message: String,
    /// When.
    pub errored_on_utc: String,
    /// Transient status (null: not transient).
    pub status: Option<String>,
}

/// Codat's `Connection`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDto {
    /// Id.
    pub id: Uuid,
    /// Integration id.
    pub integration_id: Uuid,
    /// Platform key (always emitted: codat-platform 4.0.0 requires it).
    pub integration_key: String,
    /// Source id.
    pub source_id: Uuid,
    /// Source type.
    pub source_type: String,
    /// Integration name.
    pub platform_name: String,
    /// Where the merchant starts linking.
    pub link_url: String,
    /// Status.
    pub status: String,
    /// Last sync.
    pub last_sync: Option<String>,
    /// Created.
    pub created: String,
    /// Errors.
    pub data_connection_errors: Vec<DataConnectionErrorDto>,
    /// Source details (the Stripe account id once linked; never a token).
    pub connection_info: Option<BTreeMap<String, String>>,
}

impl ConnectionDto {
    /// From a connection.
    pub fn new(c: Connection, public_url: &str) -> Self {
        let def = definition(c.platform_key.as_str()).expect("stored connections have built-in keys");
        Self {
            id: c.id.0,
            integration_id: def.integration_id,
            integration_key: def.key.to_owned(),
            source_id: def.source_id,
            source_type: def.source_type().to_owned(),
            platform_name: def.name.to_owned(),
            link_url: format!("{public_url}/link/{}/connections/{}/start", c.company_id, c.id),
            status: c.status.as_str().to_owned(),
            last_sync: c.last_sync.map(iso),
            created: iso(c.created),
            data_connection_errors: c
                .errors
                .into_iter()
                .map(|e| DataConnectionErrorDto {
                    status_code: e.status_code,
                    status_text: e.status_text,
                    error_message: e.error_message,
                    errored_on_utc: iso(e.errored_on_utc),
                    status: None,
                })
                .collect(),
            connection_info: c.source_account.map(|a| BTreeMap::from([("stripeAccountId".to_owned(), a)])),
        }
    }
}

/// `{"platformKey": "yzth"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateConnection {
    /// The integration's platform key.
    pub platform_key: Option<String>,
}

/// `{"status": "Unlinked"}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateConnectionStatus {
    /// New status.
    pub status: Option<String>,
}

/// A supported feature.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportedFeature {
    /// Feature type.
    pub feature_type: &'static str,
    /// Feature state.
    pub feature_state: &'static str,
}

/// A data type's features.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatatypeFeature {
    /// Data type.
    pub data_type: &'static str,
    /// Features.
    pub supported_features: Vec<SupportedFeature>,
}

/// Codat's `Integration`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationDto {
    /// Platform key.
    pub key: String,
    /// Logo.
    pub logo_url: String,
    /// Name.
    pub name: String,
    /// Enabled for merchants.
    pub enabled: bool,
    /// Source id.
    pub source_id: Uuid,
    /// Source type.
    pub source_type: String,
    /// Integration id.
    pub integration_id: Uuid,
    /// Runs on the merchant's machine.
    pub is_offline_connector: bool,
    /// Beta.
    pub is_beta: bool,
    /// Data provider.
    pub data_provided_by: String,
    /// Per-data-type features.
    pub datatype_features: Vec<DatatypeFeature>,
}

/// URL of an integration's logo.
pub fn logo_url(public_url: &str) -> String {
    format!("{public_url}/link/assets/stripe.svg")
}

impl IntegrationDto {
    /// From an integration.
    pub fn new(i: &Integration, public_url: &str) -> Self {
        let d: &IntegrationDefinition = i.definition;
        Self {
            key: d.key.to_owned(),
            logo_url: logo_url(public_url),
            name: d.name.to_owned(),
            enabled: i.settings.enabled,
            source_id: d.source_id,
            source_type: d.source_type().to_owned(),
            integration_id: d.integration_id,
            is_offline_connector: false,
            is_beta: false,
            data_provided_by: d.data_provided_by.to_owned(),
            datatype_features: DataType::ALL
                .iter()
                .map(|dt| DatatypeFeature {
                    data_type: dt.key(),
                    supported_features: vec![SupportedFeature {
                        feature_type: "Get",
                        feature_state: match d.feature_state(*dt) {
                            FeatureState::Release => "Release",
                            FeatureState::NotSupported => "NotSupported",
                        },
                    }],
                })
                .collect(),
        }
    }
}

/// An image reference.
#[derive(Debug, Serialize, ToSchema)]
pub struct Image {
    /// Source URL.
    pub src: String,
    /// Alternative text.
    pub alt: String,
}

/// `{ "image": … }`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageRef {
    /// The image.
    pub image: Image,
}

/// Logo variants.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandingLogo {
    /// Full logo.
    pub full: ImageRef,
    /// Square logo.
    pub square: ImageRef,
}

/// Button variants.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandingButton {
    /// Default.
    pub default: ImageRef,
    /// Hover.
    pub hover: ImageRef,
}

/// Codat's `Branding`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrandingDto {
    /// Logos.
    pub logo: BrandingLogo,
    /// Buttons.
    pub button: BrandingButton,
    /// Source id.
    pub source_id: Uuid,
}

impl BrandingDto {
    /// Branding of a built-in integration.
    pub fn new(d: &IntegrationDefinition, public_url: &str) -> Self {
        let img = || ImageRef { image: Image { src: logo_url(public_url), alt: d.logo_alt.to_owned() } };
        Self {
            logo: BrandingLogo { full: img(), square: img() },
            button: BrandingButton { default: img(), hover: img() },
            source_id: d.source_id,
        }
    }
}

/// Codat's `Profile`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDto {
    /// Name.
    pub name: Option<String>,
    /// Logo URL (omitted when unset: Codat does not declare it nullable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub logo_url: Option<String>,
    /// Icon URL (omitted when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub icon_url: Option<String>,
    /// Redirect after linking.
    pub redirect_url: Option<String>,
    /// Allowed URLs.
    #[serde(default)]
    pub white_list_urls: Option<Vec<String>>,
}

/// Codat's `SyncSettings` (client level).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSettingsDto {
    /// The instance's client id.
    pub client_id: Option<Uuid>,
    /// Settings.
    #[schema(value_type = Vec<Object>)]
    pub settings: Option<Vec<SyncSetting>>,
    /// Whether these override the defaults.
    pub overrides_defaults: Option<bool>,
}

/// Codat's `CompanySyncSettings`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanySyncSettingsDto {
    /// Company id.
    pub company_id: Option<Uuid>,
    /// Settings.
    #[schema(value_type = Vec<Object>)]
    pub settings: Option<Vec<SyncSetting>>,
    /// Whether these override the client's settings.
    pub overrides_defaults: Option<bool>,
}

/// Codat's `ApiKeyDetails`. `apiKey` is only present in the response that creates the key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    /// Id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// The key (creation response only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Created.
    pub created_date: String,
}

impl ApiKeyDto {
    /// From a stored key, with its value when just created.
    pub fn new(k: ApiKey, value: Option<String>) -> Self {
        Self { id: k.id.to_string(), name: k.name, api_key: value, created_date: iso(k.created) }
    }
}

/// `{ "results": [...] }` (not paged).
#[derive(Debug, Serialize, ToSchema)]
pub struct Results<T: ToSchema> {
    /// Items.
    pub results: Vec<T>,
}

/// `{ "name": … }`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKey {
    /// Optional name, at most 50 characters.
    pub name: Option<String>,
}

/// Codat's `WebhookConsumer`; `signingSecret` only in the answer to its creation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConsumerDto {
    /// Id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// Receives nothing while `true` (Tributary disables a consumer that failed for five days).
    pub disabled: bool,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// `key:value` company tags filter.
    pub company_tags: Vec<String>,
    /// The `whsec_…` secret to verify `webhook-signature` with (creation only; later through
    /// `tributary webhooks secret <id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl WebhookConsumerDto {
    /// From a consumer.
    pub fn new(c: tributary_domain::model::webhook::WebhookConsumer, secret: Option<String>) -> Self {
        Self {
            id: c.id.0,
            url: c.url,
            disabled: c.disabled,
            event_types: c.event_types.iter().map(|t| t.as_str().to_owned()).collect(),
            company_tags: c.company_tags,
            signing_secret: secret,
        }
    }
}

/// Codat's create-webhook-consumer body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhookConsumer {
    /// Where events are POSTed (http or https).
    pub url: Option<String>,
    /// Create disabled.
    pub disabled: Option<bool>,
    /// Event types to subscribe to.
    pub event_types: Option<Vec<String>>,
    /// `key:value` company tags (at most ten).
    pub company_tags: Option<Vec<String>>,
}

/// `payload.referenceCompany` of connection and read events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceCompanyDto {
    /// Company id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Links (`portal`: the company in this API).
    pub links: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl ReferenceCompanyDto {
    fn new(c: &tributary_domain::model::company::Company, public_url: &str) -> Self {
        Self {
            id: c.id.0,
            name: c.name.clone(),
            description: c.description.clone(),
            links: BTreeMap::from([("portal".to_owned(), format!("{public_url}/companies/{}", c.id))]),
            tags: c.tags.clone(),
        }
    }
}

/// One `read.completed` issue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadIssueDto {
    /// Issue type (`error.<status>`).
    #[serde(rename = "type")]
    pub issue_type: String,
    /// What went wrong.
    pub message: String,
    /// Where to look (`logs`: the pull operation).
    pub links: BTreeMap<String, String>,
}

/// One `dataTypes[]` entry of `read.completed`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadDataTypeDto {
    /// Connection.
    pub connection_id: Uuid,
    /// Data type.
    pub data_type: String,
    /// Whether records were created, updated or deleted.
    pub records_modified: bool,
    /// The pull's status.
    pub status: String,
    /// Problems (empty when it completed).
    pub issues: Vec<ReadIssueDto>,
}

/// The `payload` of every event Tributary emits, by type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventPayloadDto {
    /// `company.*`: Codat's `Company` without `dataConnections`.
    Company(Box<CompanyDto>),
    /// `connection.*`.
    #[serde(rename_all = "camelCase")]
    Connection {
        /// The company.
        reference_company: ReferenceCompanyDto,
        /// The connection after the change.
        connection: Box<ConnectionDto>,
    },
    /// `read.completed*`.
    #[serde(rename_all = "camelCase")]
    Read {
        /// The company.
        reference_company: ReferenceCompanyDto,
        /// When the data was last read before (null for the first read).
        modified_from_date: Option<String>,
        /// One entry per data type read.
        data_types: Vec<ReadDataTypeDto>,
    },
}

/// The envelope every webhook body has.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelopeDto {
    /// Event id (also `webhook-id` as `msg_<id without dashes>`).
    pub id: Uuid,
    /// Event type.
    pub event_type: String,
    /// When it was generated (UTC).
    pub generated_date: String,
    /// The payload.
    pub payload: EventPayloadDto,
}

/// Renders events in Codat's shapes, with links under the public URL.
#[derive(Debug, Clone)]
pub struct CodatEvents {
    /// Public base URL, no trailing slash.
    pub public_url: String,
}

impl tributary_domain::model::webhook::EventRenderer for CodatEvents {
    fn render(&self, e: &tributary_domain::model::webhook::WebhookEvent) -> String {
        use tributary_domain::model::webhook::EventSubject;
        let url = self.public_url.as_str();
        let payload = match &e.subject {
            EventSubject::Company(c) => {
                let mut dto = CompanyDto::new(CompanyView { company: c.clone(), connections: Vec::new() }, url);
                dto.data_connections = Vec::new();
                EventPayloadDto::Company(Box::new(dto))
            }
            EventSubject::Connection { company, connection } => EventPayloadDto::Connection {
                reference_company: ReferenceCompanyDto::new(company, url),
                connection: Box::new(ConnectionDto::new(connection.clone(), url)),
            },
            EventSubject::Read { company, modified_from, data_types } => EventPayloadDto::Read {
                reference_company: ReferenceCompanyDto::new(company, url),
                modified_from_date: modified_from.map(iso),
                data_types: data_types
                    .iter()
                    .map(|d| ReadDataTypeDto {
                        connection_id: d.connection_id.0,
                        data_type: d.data_type.key().to_owned(),
                        records_modified: d.records_modified,
                        status: d.status.as_str().to_owned(),
                        issues: d
                            .error
                            .iter()
                            .map(|m| ReadIssueDto {
                                issue_type: format!("error.{}", d.status.as_str()),
                                message: m.clone(),
                                links: BTreeMap::from([(
                                    "logs".to_owned(),
                                    format!("{url}/companies/{}/data/history/{}", company.id, d.dataset_id),
                                )]),
                            })
                            .collect(),
                    })
                    .collect(),
            },
        };
        let envelope = EventEnvelopeDto {
            id: e.id,
            event_type: e.event_type.as_str().to_owned(),
            generated_date: e.generated.to_rfc3339_opts(SecondsFormat::Millis, true),
            payload,
        };
        serde_json::to_string(&envelope).unwrap_or_default()
    }
}
