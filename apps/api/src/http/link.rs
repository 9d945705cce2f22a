//! The hosted Link pages, the OAuth callback and the inbound Stripe webhook: the only endpoints
//! besides `/health` that take no API key. Branded with the client's profile; accessible HTML that
//! works without JavaScript.

use super::AppState;
use super::ui::head;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use std::collections::HashMap;
use tributary_domain::DomainError;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::integration::{Scope, definition};
use tributary_domain::model::oauth_state::StateError;
use tributary_domain::service::{Callback, CallbackError, Linking};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/link/{companyId}", get(company_page).post(choose))
        .route("/link/{companyId}/connections/{connectionId}/start", get(start))
        .route("/link/{companyId}/done", get(done))
        .route("/oauth/stripe/callback", get(callback))
        .route("/webhooks/stripe", post(stripe_webhook))
}

/// What the merchant sees around every Link page: the client's branding from the profile.
struct Brand {
    name: String,
    logo_url: Option<String>,
    icon_url: Option<String>,
}

impl Brand {
    async fn load(s: &AppState) -> Self {
        match s.linking.platform().settings().profile().await {
            Ok(p) => Self { name: p.name, logo_url: p.logo_url, icon_url: p.icon_url },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the profile for a Link page");
                Self { name: "Tributary".into(), logo_url: None, icon_url: None }
            }
        }
    }
}

/// A complete Link page.
fn page(status: StatusCode, brand: &Brand, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · {}", brand.name), html! { @if let Some(icon) = &brand.icon_url { link rel="icon" href=(icon); } }))
            body.link {
                main #main {
                    header.brand {
                        @if let Some(logo) = &brand.logo_url { img src=(logo) alt=(format!("{} logo", brand.name)); }
                        @else if let Some(icon) = &brand.icon_url { img src=(icon) alt=""; }
                        span.name { (brand.name) }
                    }
                    div.panel {
                        h1 { (title) }
                        (body)
                    }
                    footer.muted.small { "Secure connection provided by Tributary for " (brand.name) "." }
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

async fn problem(s: &AppState, status: StatusCode, title: &str, detail: &str, next: &str) -> Response {
    let brand = Brand::load(s).await;
    page(status, &brand, title, html! { p.state aria-hidden="true" { "⚠" } p { (detail) } p { (next) } })
}

async fn domain_page(s: &AppState, e: DomainError) -> Response {
    let again = "Open the link you were sent again, or ask its sender for a new one.";
    match e {
        DomainError::NotFound(m) => problem(s, StatusCode::NOT_FOUND, "Not found", &m, again).await,
        DomainError::InvalidState(m) => problem(s, StatusCode::CONFLICT, "This link cannot be used", &m, again).await,
        DomainError::Validation { message, .. } => problem(s, StatusCode::BAD_REQUEST, "This link cannot be used", &message, again).await,
        DomainError::Unavailable { message, .. } => {
            problem(s, StatusCode::BAD_GATEWAY, "Stripe is unavailable", &message, "Please try again in a few minutes.").await
        }
        other => {
            tracing::error!(error = %other, "link page failed");
            problem(
                s,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An internal error occurred on our side.",
                "Please try again later.",
            )
            .await
        }
    }
}

async fn company_id(s: &AppState, raw: &str) -> Result<CompanyId, Box<Response>> {
    match raw.parse() {
        Ok(id) => Ok(id),
        Err(_) => Err(Box::new(
            problem(
                s,
                StatusCode::NOT_FOUND,
                "Not found",
                "This link is not valid: the company id is malformed.",
                "Check that the whole link was copied, or ask its sender for a new one.",
            )
            .await,
        )),
    }
}

/// How the merchant's data types are named on the Link page.
fn data_type_label(dt: DataType) -> &'static str {
    match dt {
        DataType::CompanyInfo => "Business profile",
        DataType::Customers => "Customers",
        DataType::Disputes => "Disputes",
        DataType::Payments => "Payments and refunds",
        DataType::Products => "Products and prices",
        DataType::Transactions => "Balance transactions and payouts",
        DataType::Locations => "Locations",
        DataType::Orders => "Orders",
        DataType::PaymentMethods => "Payment methods",
        DataType::ProductCategories => "Product categories",
        DataType::TaxComponents => "Tax components",
    }
}

/// A connection's state, in the merchant's words.
fn connection_state(c: &tributary_domain::model::connection::Connection) -> (&'static str, &'static str, String) {
    let failed = c.errors.last().map(|e| e.error_message.clone());
    match c.status {
        ConnectionStatus::Linked => ("badge ok", "Linked", "Your account is connected. Nothing more to do.".into()),
        ConnectionStatus::Deauthorized => (
            "badge bad",
            "Needs re-linking",
            "Access was removed from your Stripe account, so your data is no longer shared. Link again to resume.".into(),
        ),
        ConnectionStatus::Unlinked => ("badge", "Unlinked", "This connection was ended. Link again to share your data once more.".into()),
        ConnectionStatus::PendingAuth => match failed {
            Some(m) => ("badge bad", "Not linked", format!("The last attempt did not complete: {m}. You can try again.")),
            None => ("badge warn", "Not linked yet", "Linking was started but not finished.".into()),
        },
    }
}

/// `GET /link/{companyId}`: the company's integrations and connections.
async fn company_page(State(s): State<AppState>, Path(company): Path<String>) -> Response {
    let company = match company_id(&s, &company).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let platform = s.linking.platform();
    let view = match platform.companies().get(company).await {
        Ok(v) => v,
        Err(DomainError::NotFound(_)) => {
            return problem(
                &s,
                StatusCode::NOT_FOUND,
                "Company not found",
                "This link does not belong to any company.",
                "Ask the sender of this link for a new one.",
            )
            .await;
        }
        Err(e) => return domain_page(&s, e).await,
    };
    let integrations = match platform.integrations().list().await {
        Ok(i) => i,
        Err(e) => return domain_page(&s, e).await,
    };
    let brand = Brand::load(&s).await;
    let enabled: Vec<_> = integrations.iter().filter(|i| i.settings.enabled && i.settings.is_configured()).collect();
    let body = html! {
        p { strong { (brand.name) } " asks to read " strong { (view.company.name) } "'s commerce data. Choose where your business sells, and sign in there to approve." }
        @if !view.connections.is_empty() {
            h2 { "Your connections" }
            ul.connections {
                @for c in &view.connections {
                    @let name = definition(c.platform_key.as_str()).map_or("Unknown integration", |d| d.name);
                    @let (class, label, text) = connection_state(c);
                    li {
                        strong { (name) } " " span class=(class) { (label) }
                        @if let Some(a) = &c.source_account { " " span.muted.small { "(" (masked_account(a)) ")" } }
                        br; span.small { (text) }
                        @if c.status != ConnectionStatus::Linked {
                            " " a href=(format!("/link/{company}/connections/{}/start", c.id)) { "Link " (name) " again" }
                        }
                    }
                }
            }
        }
        @if enabled.is_empty() {
            p { "No integration is available for linking yet. Please contact " (brand.name) "." }
        } @else {
            form method="post" action=(format!("/link/{company}")) {
                fieldset {
                    legend { "Where is your data?" }
                    @for i in &enabled {
                        @let types = Linking::supported(i.definition.key);
                        div.integration {
                            div.head {
                                img src="/link/assets/stripe.svg" alt=(i.definition.logo_alt);
                                strong { (i.definition.name) }
                            }
                            div.what {
                                p.small.muted { (brand.name) " will read:" }
                                ul.types.small { @for t in &types { li { (data_type_label(*t)) } } }
                                @if i.settings.scope == Scope::ReadWrite {
                                    p.small { "Read and write access: " (brand.name) " can also make changes in your " (i.definition.name) " account." }
                                } @else {
                                    p.small { "Read-only access: " (brand.name) " can see this data but cannot move money or change anything in your account. You can revoke access at any time from your Stripe dashboard." }
                                }
                            }
                            button type="submit" name="integration" value=(i.definition.key) { "Connect " (i.definition.name) }
                        }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, &brand, &format!("Connect {}", view.company.name), body)
}

/// `POST /link/{companyId}` with `integration=…`: creates or reuses a pending connection and starts it.
async fn choose(State(s): State<AppState>, Path(company): Path<String>, RawForm(form): RawForm) -> Response {
    let company = match company_id(&s, &company).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&form).into_owned().collect();
    let Some(key) = form.get("integration") else {
        return problem(
            &s,
            StatusCode::BAD_REQUEST,
            "No integration chosen",
            "Please choose where your data is.",
            "Go back and press one of the Connect buttons.",
        )
        .await;
    };
    let connection = match s.linking.connection_for(company, key).await {
        Ok(c) => c,
        Err(e) => return domain_page(&s, e).await,
    };
    match s.linking.start(company, connection.id).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => domain_page(&s, e).await,
    }
}

/// `GET /link/{companyId}/connections/{connectionId}/start`: the connection's `linkUrl`.
async fn start(State(s): State<AppState>, Path((company, connection)): Path<(String, String)>) -> Response {
    let company = match company_id(&s, &company).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(connection) = connection.parse::<ConnectionId>() else {
        return problem(
            &s,
            StatusCode::NOT_FOUND,
            "Not found",
            "This link is not valid: the connection id is malformed.",
            "Ask the sender of this link for a new one.",
        )
        .await;
    };
    match s.linking.start(company, connection).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(DomainError::InvalidState(m)) if m.contains("already linked") => {
            let brand = Brand::load(&s).await;
            page(
                StatusCode::CONFLICT,
                &brand,
                "Already linked",
                html! {
                    p.state aria-hidden="true" { "✓" }
                    p { "This connection is already linked. Nothing more to do." }
                    p { a href=(format!("/link/{company}")) { "See all connections" } }
                },
            )
        }
        Err(e) => domain_page(&s, e).await,
    }
}

/// `GET /link/{companyId}/done`: the built-in page shown when no redirect URL is set.
async fn done(State(s): State<AppState>, Path(company): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let brand = Brand::load(&s).await;
    let back = format!("/link/{}", company.parse::<CompanyId>().map(|c| c.to_string()).unwrap_or_default());
    match q.get("statusCode").map(String::as_str) {
        Some("200") => page(
            StatusCode::OK,
            &brand,
            "Connected",
            html! {
                p.state aria-hidden="true" { "✓" }
                p { "Your Stripe account is connected, and " (brand.name) " can now read the data you approved. You can close this window." }
                p.small.muted { "To stop sharing, remove " (brand.name) " from your Stripe dashboard's connected apps." }
            },
        ),
        Some("403") => page(
            StatusCode::OK,
            &brand,
            "Not connected",
            html! {
                p.state aria-hidden="true" { "✕" }
                p { "You cancelled at Stripe, so nothing was shared with " (brand.name) "." }
                p { a href=(back) { "Start again" } " if you change your mind." }
            },
        ),
        _ => page(
            StatusCode::OK,
            &brand,
            "Not connected",
            html! {
                p.state aria-hidden="true" { "⚠" }
                p { "Linking did not complete, so nothing was shared." }
                p { a href=(back) { "Try again" } ", or contact " (brand.name) " if it keeps failing." }
            },
        ),
    }
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /oauth/stripe/callback`.
async fn callback(State(s): State<AppState>, Query(q): Query<CallbackQuery>) -> Response {
    let result =
        s.linking.complete(Callback { state: q.state, code: q.code, error: q.error, error_description: q.error_description }).await;
    let r = match result {
        Ok(r) => r,
        Err(CallbackError::State(e)) => {
            let status = if e == StateError::Invalid { StatusCode::BAD_REQUEST } else { StatusCode::GONE };
            return problem(
                &s,
                status,
                if status == StatusCode::GONE { "This link has expired" } else { "This authorization cannot be used" },
                &format!("{e}."),
                "Open the link you were sent again to start over.",
            )
            .await;
        }
        Err(CallbackError::Provider(e)) => {
            tracing::warn!(error = %e, "Stripe refused an authorization code");
            return problem(
                &s,
                StatusCode::BAD_REQUEST,
                "Stripe did not accept the authorization",
                "The authorization could not be completed.",
                "Open the link you were sent again to start over.",
            )
            .await;
        }
        Err(e @ CallbackError::WrongMode { .. }) => {
            return problem(
                &s,
                StatusCode::BAD_REQUEST,
                "Wrong Stripe mode",
                &format!("{e}."),
                "Start again and choose the matching integration.",
            )
            .await;
        }
        Err(CallbackError::Domain(e)) => return domain_page(&s, e).await,
    };
    tracing::info!(connection.id = %r.connection.id, company.id = %r.connection.company_id, status = r.status_code, "link callback completed");
    s.wake.notify_waiters();
    match s.linking.redirect_for(&r).await {
        Ok(Some(url)) => Redirect::to(&url).into_response(),
        Ok(None) => {
            Redirect::to(&format!("/link/{}/done?connectionId={}&statusCode={}", r.connection.company_id, r.connection.id, r.status_code))
                .into_response()
        }
        Err(e) => domain_page(&s, e).await,
    }
}

/// `POST /webhooks/stripe`: Connect webhooks, verified against the matching integration's secret.
async fn stripe_webhook(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let reject = |status: StatusCode, message: &str| (status, Json(serde_json::json!({"error": message}))).into_response();
    let Some(signature) = headers.get("stripe-signature").and_then(|v| v.to_str().ok()) else {
        return reject(StatusCode::BAD_REQUEST, "missing Stripe-Signature header");
    };
    let event = match tributary_stripe::webhook::parse_event(&body) {
        Ok(e) => e,
        Err(_) => return reject(StatusCode::BAD_REQUEST, "the body is not a Stripe event"),
    };
    let key = if event.livemode { "exgd" } else { "yzth" };
    let secret = match s.linking.platform().integrations().webhook_secret(key).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return reject(StatusCode::BAD_REQUEST, "no webhook secret is configured for this mode"),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the webhook secret");
            return reject(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = tributary_stripe::webhook::verify(secrecy::ExposeSecret::expose_secret(&secret), signature, &body, now, 300) {
        tracing::warn!(error = %e, "rejected a Stripe webhook");
        return reject(StatusCode::BAD_REQUEST, "signature verification failed");
    }
    let received = || Json(serde_json::json!({"received": true})).into_response();
    let acted_on = event.event_type == "account.application.deauthorized" || affected(&event.event_type).is_some();
    if !acted_on {
        return received();
    }
    // An event processed already (a replay within the signature's tolerance, or a retry) is
    // acknowledged and ignored. The id is remembered once processing succeeded: a delivery cut
    // short, or one that failed, leaves Stripe's retry to be processed (processing is idempotent).
    match s.platform.integrations().source_event_seen(key, &event.id).await {
        Ok(false) => {}
        Ok(true) => {
            tracing::info!(stripe.event = %event.id, "Stripe webhook already processed; ignored");
            return received();
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a Stripe webhook");
            return reject(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    if process_stripe_event(&s, key, &event).await.is_err() {
        return reject(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    if let Err(e) = s.platform.integrations().remember_source_event(key, &event.id).await {
        // Processed: a retry would change nothing.
        tracing::warn!(error = %e, "cannot remember a processed Stripe webhook");
    }
    received()
}

/// Applies a verified Stripe event; `Err` (logged) when it could not be applied.
async fn process_stripe_event(s: &AppState, key: &str, event: &tributary_stripe::webhook::StripeEvent) -> Result<(), ()> {
    if event.event_type == "account.application.deauthorized"
        && let Some(account) = &event.account
    {
        match s.linking.deauthorized(key, account).await {
            Ok(changed) => tracing::info!(stripe.account = %account, changed = changed.len(), "account deauthorized"),
            Err(e) => {
                tracing::error!(error = %e, "cannot apply a deauthorization");
                return Err(());
            }
        }
    }
    if let (Some(account), Some(types)) = (&event.account, affected(&event.event_type)) {
        // Object changes are applied at once by a pull that follows the changes since the last
        // sync (polling reconciles anything a webhook missed).
        match s.platform.connections().linked_to_account(key, account).await {
            Ok(connections) => {
                for c in &connections {
                    for dt in types {
                        if let Err(e) = s.platform.pulls().queue(c.company_id, *dt, Some(c.id)).await {
                            tracing::warn!(error = %e, connection.id = %c.id, "cannot queue a pull for a webhook");
                        }
                    }
                }
                s.wake.notify_waiters();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot look up connections for a webhook");
                return Err(());
            }
        }
    }
    Ok(())
}

/// The data types a Stripe event changes.
fn affected(event_type: &str) -> Option<&'static [DataType]> {
    let t = event_type;
    Some(if t.starts_with("customer.") && !t.starts_with("customer.source") && !t.starts_with("customer.subscription") {
        &[DataType::Customers]
    } else if t.starts_with("charge.dispute.") {
        &[DataType::Disputes, DataType::Transactions]
    } else if t.starts_with("charge.") || t.starts_with("refund.") {
        &[DataType::Payments, DataType::Transactions]
    } else if t.starts_with("product.") || t.starts_with("price.") {
        &[DataType::Products]
    } else if t.starts_with("payout.") {
        &[DataType::Transactions]
    } else if t == "account.updated" || t.starts_with("balance.") {
        &[DataType::CompanyInfo]
    } else {
        return None;
    })
}

/// A Stripe account id as the public Link page shows it: enough for the merchant to recognise it
/// (`acct_…Wxyz`), not the id itself (anyone with the link sees the page).
fn masked_account(id: &str) -> String {
    let tail: String = id.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if id.chars().count() <= 8 { "acct_…".to_owned() } else { format!("acct_…{tail}") }
}
