//! The operator console (`/console`): server-rendered pages over the same `Platform` use cases as
//! the API. Signing in with an API key opens a server-side session (the cookie holds a random
//! token; the store holds its hash and ends it with its key); every state-changing form carries a
//! CSRF token derived from the session's token.

/// The value of a `Result<_, Box<Response>>`, or that response returned from the handler.
macro_rules! try_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

mod companies;
mod overview;
mod settings;
mod webhooks;

use super::AppState;
use super::error::ApiError;
use super::ui::{JS_PATH, head};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tributary_domain::DomainError;

/// The session cookie.
const COOKIE: &str = "tributary_console";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/{*rest}", get(not_found))
        .merge(companies::routes())
        .merge(webhooks::routes())
        .merge(settings::routes())
}

/// A signed-in operator: the request carried a live session's cookie.
pub(crate) struct Session {
    token: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_owned())
    })
}

fn csrf_for(token: &str) -> String {
    hex::encode(Sha256::digest(format!("tributary-console-csrf:{token}").as_bytes()))
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Only local console paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains("//") && !n.contains('\\') && n.bytes().all(|b| b.is_ascii_graphic()) => {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let to_sign_in = || {
            // After sign-in the browser GETs `next`: only a page it was reading is worth going back to.
            let here = if parts.method == axum::http::Method::GET {
                parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default()
            } else {
                "/console".to_owned()
            };
            let next: String = url::form_urlencoded::byte_serialize(safe_next(Some(&here)).as_bytes()).collect();
            Redirect::to(&format!("/console/sign-in?next={next}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, COOKIE) else { return Err(to_sign_in()) };
        match s.platform.console().session(&token, s.console.idle).await {
            Ok(Some(_)) => Ok(Session { csrf: csrf_for(&token), token }),
            Ok(None) => Err(to_sign_in()),
            Err(e) => Err(failure(e)),
        }
    }
}

/// A submitted form's fields, once its CSRF token is checked.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of a field, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty())
    }
    /// Every value of a field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
    /// Whether a checkbox is ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

impl Session {
    /// Parses a form body, refusing it (403, nothing done) unless it carries this session's CSRF
    /// token.
    pub fn form(&self, body: &Bytes) -> Result<Form, Box<Response>> {
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        if let Some((name, _)) = fields.iter().find(|(_, v)| v.contains('\0')) {
            return Err(Box::new(plain_page(
                StatusCode::BAD_REQUEST,
                "That did not work",
                &format!("{name} must not contain the NUL character (U+0000); nothing was changed."),
            )));
        }
        let presented = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
        if !same(presented, &self.csrf) {
            return Err(Box::new(plain_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form did not carry this session's security token, so nothing was changed. Reload the page and try again.",
            )));
        }
        Ok(Form(fields))
    }
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// The console's sections, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Companies,
    Webhooks,
    Settings,
}

/// A console page: the navigation, a notice, and the body.
pub(crate) fn layout(session: &Session, nav: Nav, title: &str, notice: Option<&Notice>, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! { li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · Tributary console"), html! { script src=(JS_PATH) defer {} }))
            body.console {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.inner {
                        span.brand { "Tributary console" }
                        nav aria-label="Console" {
                            ul {
                                (item(Nav::Overview, "/console", "Overview"))
                                (item(Nav::Companies, "/console/companies", "Companies"))
                                (item(Nav::Webhooks, "/console/webhooks", "Webhooks"))
                                (item(Nav::Settings, "/console/settings", "Settings"))
                            }
                        }
                        form method="post" action="/console/sign-out" {
                            (csrf_field(session))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    @if let Some(n) = notice {
                        div.notice.error[n.error] role=(if n.error { "alert" } else { "status" }) { (n.text) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A message shown above a page's content.
pub(crate) struct Notice {
    pub text: String,
    pub error: bool,
}

impl Notice {
    pub fn ok(text: impl Into<String>) -> Option<Self> {
        Some(Self { text: text.into(), error: false })
    }
    pub fn error(text: impl Into<String>) -> Option<Self> {
        Some(Self { text: text.into(), error: true })
    }
    /// The notice a redirect after an action names (`?done=…`): fixed texts, so a crafted link
    /// cannot put words in the console's mouth.
    pub fn from_query(q: &HashMap<String, String>) -> Option<Self> {
        let text = match q.get("done").map(String::as_str)? {
            "created" => "Created.",
            "deleted" => "Deleted.",
            "saved" => "Saved.",
            "queued" => "Queued: the sync workers start on it at once.",
            "unlinked" => "Unlinked.",
            "enabled" => "Enabled.",
            "disabled" => "Disabled.",
            "redelivering" => "Queued for one more delivery attempt.",
            _ => return None,
        };
        Self::ok(text)
    }
}

/// An HTML response.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A page outside the console frame (sign-in, refusals).
fn plain_page(status: StatusCode, title: &str, message: &str) -> Response {
    respond(
        status,
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(&format!("{title} · Tributary console"), html! {}))
                body.console.signin {
                    main #main {
                        h1 { (title) }
                        p { (message) }
                        p { a href="/console" { "Back to the console" } }
                    }
                }
            }
        },
    )
}

/// How a domain error is shown: the status and message the API gives it (one mapping for both),
/// with the validation details; internal failures are logged, not shown.
pub(crate) fn shown(e: DomainError) -> (StatusCode, String) {
    let api = ApiError::from(e);
    if let Some(detail) = &api.internal {
        tracing::error!(error = %detail, "console request failed");
        return (api.status, "An internal error occurred; the server's log has the details.".into());
    }
    let mut message = api.message;
    for item in &api.validation {
        message.push_str(&format!(" {}{}", item.item_id.as_deref().map(|i| format!("{i}: ")).unwrap_or_default(), item.message));
    }
    (api.status, message)
}

/// The text a domain error is shown with.
pub(crate) fn message_of(e: DomainError) -> String {
    shown(e).1
}

/// A page for a failed action or read.
pub(crate) fn failure(e: DomainError) -> Response {
    let (status, message) = shown(e);
    let title = if status == StatusCode::NOT_FOUND { "Not found" } else { "That did not work" };
    plain_page(status, title, &message)
}

/// Where to go after an action: `to` with a fixed notice.
pub(crate) fn after(to: &str, done: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={done}")).into_response()
}

/// A typed id from a path segment; a malformed one is a 404 page saying what it should have been.
pub(crate) fn id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, Box<Response>> {
    raw.parse().map_err(|_| Box::new(failure(DomainError::NotFound(format!("'{raw}' is not {what}.")))))
}

/// A page's query string.
pub(crate) type Params = Query<HashMap<String, String>>;

/// A time for people: `2026-12-06 23:16 UTC`.
pub(crate) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A status as a coloured badge: green for success, amber for work in progress, red for errors.
pub(crate) fn badge(status: &str) -> Markup {
    let class = match status {
        "Linked" | "Complete" | "Delivered" | "Enabled" | "Configured" => "badge ok",
        "PendingAuth" | "Queued" | "Fetching" | "Initial" | "Pending" | "Mapping" | "Processing" => "badge warn",
        "Unlinked" | "NotSupported" | "Cancelled" | "Disabled" | "Not configured" => "badge",
        _ => "badge bad",
    };
    html! { span class=(class) { (status) } }
}

/// A confirmation page for a destructive action: the form posts to `action`.
pub(crate) fn confirm_page(session: &Session, nav: Nav, title: &str, question: &str, action: &str, button: &str, back: &str) -> Response {
    respond(
        StatusCode::OK,
        layout(
            session,
            nav,
            title,
            None,
            html! {
                h1 { (title) }
                p { (question) }
                form method="post" action=(action) {
                    (csrf_field(session))
                    div.row {
                        button.danger type="submit" { (button) }
                        a.button.secondary href=(back) { "Cancel" }
                    }
                }
            },
        ),
    )
}

fn sign_in_markup(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in · Tributary console", html! {}))
            body.console.signin {
                main #main {
                    h1 { "Tributary console" }
                    @if let Some(e) = error { div.notice.error role="alert" { (e) } }
                    form.card method="post" action="/console/sign-in" {
                        input type="hidden" name="next" value=(next);
                        label for="api-key" { "API key" }
                        input.wide #api-key type="password" name="apiKey" autocomplete="current-password" required;
                        p.muted.small { "Sign in with one of this instance's API keys (the same keys the API accepts; create one with " code { "tributary api-keys create" } ")." }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// An unknown console path: an HTML page (with the pages' headers), not the API's JSON 404.
async fn not_found(_session: Session) -> Response {
    plain_page(StatusCode::NOT_FOUND, "Not found", "There is no such console page.")
}

async fn sign_in_page(Query(q): Query<HashMap<String, String>>) -> Response {
    respond(StatusCode::OK, sign_in_markup(&safe_next(q.get("next").map(String::as_str)), None))
}

/// The request comes from a page of this server (or the browser says nothing): a sign-in form on
/// another site cannot sign a browser into someone else's key.
fn same_origin(s: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let ours = url::Url::parse(&s.public_url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin == ours || origin.split_once("://").is_some_and(|(_, h)| h == host)
}

async fn sign_in(State(s): State<AppState>, headers: HeaderMap, extensions: axum::http::Extensions, body: Bytes) -> Response {
    if !same_origin(&s, &headers) {
        return plain_page(StatusCode::FORBIDDEN, "Request refused", "Sign-in is only accepted from the console's own page.");
    }
    // Failed sign-ins count with the API's failed authentications of the address.
    let addr = super::client_addr(&s, &extensions, &headers);
    if let Some(wait) = s.limits.auth_blocked(addr, std::time::Instant::now()) {
        let mut res = plain_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            &format!("Too many sign-ins failed from your address. Try again in {} seconds.", super::limits::retry_after_secs(wait)),
        );
        super::limits::retry_after(res.headers_mut(), wait);
        return res;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let next = safe_next(form.get("next").map(String::as_str));
    let key = form.get("apiKey").map(|k| k.trim().to_owned()).unwrap_or_default();
    let token = super::generate_api_key();
    match s.platform.console().sign_in(&key, &token).await {
        Ok(Some(_)) => {
            let secure = if s.console.secure { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict{secure}", token.expose_secret());
            tracing::info!("console sign-in");
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Ok(None) => {
            s.limits.auth_failed(addr, std::time::Instant::now());
            tracing::warn!("console sign-in refused: unknown API key");
            respond(StatusCode::UNAUTHORIZED, sign_in_markup(&next, Some("That API key is not valid.")))
        }
        Err(e) => failure(e),
    }
}

async fn sign_out(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    if let Err(r) = session.form(&body) {
        return *r;
    }
    if let Err(e) = s.platform.console().sign_out(&session.token, s.console.idle).await {
        return failure(e);
    }
    let secure = if s.console.secure { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console/sign-in")).into_response()
}

/// `…&page=N` links that keep a page's other parameters.
pub(crate) fn page_link(base: &str, params: &[(&str, Option<&str>)], page: u32) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    q.append_pair("page", &page.to_string());
    format!("{base}?{}", q.finish())
}

/// Previous / next links for a page of `total` results.
pub(crate) fn pager(base: &str, params: &[(&str, Option<&str>)], page: u32, page_size: u32, total: u64) -> Markup {
    let pages = total.div_ceil(u64::from(page_size.max(1))).max(1);
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 { a href=(page_link(base, params, page - 1)) rel="prev" { "← Previous" } }
            span.muted { "Page " (page) " of " (pages) " · " (total) " in all" }
            @if u64::from(page) < pages { a href=(page_link(base, params, page + 1)) rel="next" { "Next →" } }
        }
    }
}

/// A secret shown once, right after it was made (an API key, a signing secret), with a copy button.
pub(crate) fn shown_once(label: &str, value: &SecretString) -> Markup {
    html! {
        div.secret role="status" {
            p { strong { (label) } " — shown only now; copy it before leaving this page." }
            div.row {
                input #once readonly value=(value.expose_secret()) aria-label=(label) size="48";
                button.secondary type="button" data-copy="once" { "Copy" }
            }
        }
    }
}

/// Raw markup (a server-made SVG).
pub(crate) fn raw(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}
