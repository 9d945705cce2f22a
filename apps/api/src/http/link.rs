//! The hosted Link pages, the OAuth callback and the inbound Stripe webhook: the only endpoints
//! besides `/health` that take no API key. Plain, accessible HTML that works without JavaScript.

use super::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;
use tributary_domain::DomainError;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::oauth_state::StateError;
use tributary_domain::service::{Callback, CallbackError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/link/{companyId}", get(company_page).post(choose))
        .route("/link/{companyId}/connections/{connectionId}/start", get(start))
        .route("/link/{companyId}/done", get(done))
        .route("/oauth/stripe/callback", get(callback))
        .route("/webhooks/stripe", post(stripe_webhook))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}\
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #635bff;background:#635bff;color:#fff;cursor:pointer}\
.muted{color:#555}ul{padding-left:1.2rem}li{margin:.4rem 0}.status{font-weight:600}";

/// A complete page.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
            t = escape(title)
        )),
    )
        .into_response()
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    page(status, title, &format!("<p>{}</p>", escape(detail)))
}

fn domain_page(e: DomainError) -> Response {
    match e {
        DomainError::NotFound(m) => problem(StatusCode::NOT_FOUND, "Not found", &m),
        DomainError::InvalidState(m) => problem(StatusCode::CONFLICT, "This link cannot be used", &m),
        DomainError::Validation { message, .. } => problem(StatusCode::BAD_REQUEST, "This link cannot be used", &message),
        DomainError::Unavailable(m) => problem(StatusCode::BAD_GATEWAY, "Stripe is unavailable", &m),
        other => {
            tracing::error!(error = %other, "link page failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "An internal error occurred. Please try again later.")
        }
    }
}

fn company_id(raw: &str) -> Result<CompanyId, Box<Response>> {
    raw.parse().map_err(|_| Box::new(problem(StatusCode::NOT_FOUND, "Not found", "This link is not valid: the company id is malformed.")))
}

/// `GET /link/{companyId}`: the company's integrations and connections.
async fn company_page(State(s): State<AppState>, Path(company): Path<String>) -> Response {
    let company = match company_id(&company) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let platform = s.linking.platform();
    let view = match platform.get_company(company).await {
        Ok(v) => v,
        Err(DomainError::NotFound(_)) => {
            return problem(
                StatusCode::NOT_FOUND,
                "Company not found",
                "This link does not belong to any company. Ask the sender for a new link.",
            );
        }
        Err(e) => return domain_page(e),
    };
    let integrations = match platform.list_integrations().await {
        Ok(i) => i,
        Err(e) => return domain_page(e),
    };
    let enabled: Vec<_> = integrations.iter().filter(|i| i.settings.enabled && i.settings.is_configured()).collect();
    let mut body = format!("<p>Connect <strong>{}</strong>'s commerce data.</p>", escape(&view.company.name));
    if enabled.is_empty() {
        body.push_str("<p>No integration is available for linking yet. Please contact the sender of this link.</p>");
    } else {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/link/{company}\"><fieldset><legend>Choose where your data is</legend><ul>"
        ));
        for i in &enabled {
            body.push_str(&format!(
                "<li><button type=\"submit\" name=\"integration\" value=\"{k}\">Connect {n}</button></li>",
                k = i.definition.key,
                n = escape(i.definition.name)
            ));
        }
        body.push_str("</ul></fieldset></form>");
    }
    if !view.connections.is_empty() {
        body.push_str("<h2>Existing connections</h2><ul>");
        for c in &view.connections {
            let name = tributary_domain::model::integration::definition(c.platform_key.as_str()).map_or("?", |d| d.name);
            let action = if c.status == ConnectionStatus::Linked {
                String::new()
            } else {
                format!(" — <a href=\"/link/{company}/connections/{}/start\">link now</a>", c.id)
            };
            body.push_str(&format!(
                "<li>{} <span class=\"status\">{}</span>{}{action}</li>",
                escape(name),
                c.status,
                c.source_account.as_deref().map(|a| format!(" <span class=\"muted\">({})</span>", escape(a))).unwrap_or_default()
            ));
        }
        body.push_str("</ul>");
    }
    page(StatusCode::OK, &format!("Link {}", view.company.name), &body)
}

/// `POST /link/{companyId}` with `integration=…`: creates or reuses a pending connection and starts it.
async fn choose(State(s): State<AppState>, Path(company): Path<String>, RawForm(form): RawForm) -> Response {
    let company = match company_id(&company) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&form).into_owned().collect();
    let Some(key) = form.get("integration") else {
        return problem(StatusCode::BAD_REQUEST, "No integration chosen", "Please choose an integration.");
    };
    let connection = match s.linking.connection_for(company, key).await {
        Ok(c) => c,
        Err(e) => return domain_page(e),
    };
    match s.linking.start(company, connection.id).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => domain_page(e),
    }
}

/// `GET /link/{companyId}/connections/{connectionId}/start`: the connection's `linkUrl`.
async fn start(State(s): State<AppState>, Path((company, connection)): Path<(String, String)>) -> Response {
    let company = match company_id(&company) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(connection) = connection.parse::<ConnectionId>() else {
        return problem(StatusCode::NOT_FOUND, "Not found", "This link is not valid: the connection id is malformed.");
    };
    match s.linking.start(company, connection).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(DomainError::InvalidState(m)) if m.contains("already linked") => page(
            StatusCode::CONFLICT,
            "Already linked",
            &format!(
                "<p>This connection is already linked. Nothing more to do.</p><p><a href=\"/link/{company}\">Back to the company's connections</a></p>"
            ),
        ),
        Err(e) => domain_page(e),
    }
}

/// `GET /link/{companyId}/done`: the built-in page shown when no redirect URL is set.
async fn done(Path(_company): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    match q.get("statusCode").map(String::as_str) {
        Some("200") => page(StatusCode::OK, "Connected", "<p>Your Stripe account is connected. You can close this window.</p>"),
        Some("403") => page(
            StatusCode::OK,
            "Not connected",
            "<p>You cancelled linking, so nothing was shared. You can start again from the link you were sent.</p>",
        ),
        _ => page(StatusCode::OK, "Not connected", "<p>Linking did not complete. You can start again from the link you were sent.</p>"),
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
            return problem(status, "This authorization cannot be used", &format!("{e}."));
        }
        Err(CallbackError::Provider(e)) => {
            tracing::warn!(error = %e, "Stripe refused an authorization code");
            return problem(
                StatusCode::BAD_REQUEST,
                "Stripe did not accept the authorization",
                "The authorization could not be completed. Please start linking again.",
            );
        }
        Err(e @ CallbackError::WrongMode { .. }) => return problem(StatusCode::BAD_REQUEST, "Wrong Stripe mode", &format!("{e}.")),
        Err(CallbackError::Domain(e)) => return domain_page(e),
    };
    tracing::info!(connection.id = %r.connection.id, company.id = %r.connection.company_id, status = r.status_code, "link callback completed");
    s.wake.notify_waiters();
    match s.linking.redirect_for(&r).await {
        Ok(Some(url)) => Redirect::to(&url).into_response(),
        Ok(None) => {
            Redirect::to(&format!("/link/{}/done?connectionId={}&statusCode={}", r.connection.company_id, r.connection.id, r.status_code))
                .into_response()
        }
        Err(e) => domain_page(e),
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
    let secret = match s.linking.platform().webhook_secret(key).await {
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
    if event.event_type == "account.application.deauthorized"
        && let Some(account) = &event.account
    {
        match s.linking.deauthorized(key, account).await {
            Ok(changed) => tracing::info!(stripe.account = %account, changed = changed.len(), "account deauthorized"),
            Err(e) => {
                tracing::error!(error = %e, "cannot apply a deauthorization");
                return reject(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        }
    }
    if let (Some(account), Some(types)) = (&event.account, affected(&event.event_type)) {
        // Object changes are applied at once by a pull that follows the changes since the last
        // sync (polling reconciles anything a webhook missed).
        match s.linking.platform().repositories().connections.find_by_source_account(key, account).await {
            Ok(connections) => {
                for c in connections.iter().filter(|c| c.status == ConnectionStatus::Linked) {
                    for dt in types {
                        if let Err(e) = s.platform.queue_pull(c.company_id, *dt, Some(c.id)).await {
                            tracing::warn!(error = %e, connection.id = %c.id, "cannot queue a pull for a webhook");
                        }
                    }
                }
                s.wake.notify_waiters();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot look up connections for a webhook");
                return reject(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        }
    }
    Json(serde_json::json!({"received": true})).into_response()
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
