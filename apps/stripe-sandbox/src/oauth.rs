//! Connect OAuth: the consent page, `/oauth/token` (authorization_code and refresh_token), and
//! `/oauth/deauthorize`, with Stripe's OAuth error shape `{"error", "error_description"}`.

use crate::api::{json_response, presented_key};
use crate::generator::Profile;
use crate::state::{Code, Refresh, Sandbox};
use crate::store::{EventData, Mode};
use axum::Json;
use axum::extract::{Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an authorization code lives.
pub const CODE_TTL: Duration = Duration::from_secs(300);

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(status, json!({"error": error, "error_description": description}).to_string())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn is_loopback(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1")))
}

/// The validated authorize request.
#[derive(Debug, Clone)]
struct Authorize {
    mode: Mode,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
}

fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body><main><h1>{t}</h1><p>{d}</p></main></body></html>",
            t = escape(title),
            d = escape(detail)
        )),
    )
        .into_response()
}

fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(base).expect("validated redirect uri");
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// Validates the query of an authorize request. Problems with the client or the redirect URI get
/// a page (nowhere safe to redirect); others redirect back with `error=…`.
fn validate(s: &Sandbox, q: &HashMap<String, String>) -> Result<Authorize, Response> {
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let Some(mode) = s.config.mode_of_client(&client_id) else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid client_id",
            &format!("No application matches the client_id '{client_id}'."),
        ));
    };
    let redirect_uri = match q.get("redirect_uri") {
        Some(r) => r.clone(),
        None => match s.config.redirect_uris.first() {
            Some(r) => r.clone(),
            None => {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    "Missing redirect_uri",
                    "No redirect_uri was given and none is registered.",
                ));
            }
        },
    };
    let registered = s.config.redirect_uris.iter().any(|r| r == &redirect_uri) || (mode == Mode::Test && is_loopback(&redirect_uri));
    if !registered || url::Url::parse(&redirect_uri).is_err() {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect_uri",
            &format!("The redirect_uri '{redirect_uri}' is not registered for this application."),
        ));
    }
    let state = q.get("state").cloned();
    let back = |error: &str, description: &str| {
        let mut p = vec![("error", error), ("error_description", description)];
        if let Some(st) = &state {
            p.push(("state", st));
        }
        Redirect::to(&with_params(&redirect_uri, &p)).into_response()
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err(back("unsupported_response_type", "response_type must be 'code'."));
    }
    let scope = q.get("scope").cloned().unwrap_or_else(|| "read_only".into());
    if scope != "read_only" && scope != "read_write" {
        return Err(back("invalid_scope", &format!("Invalid scope: {scope}")));
    }
    Ok(Authorize { mode, client_id, redirect_uri, scope, state })
}

/// `GET /oauth/authorize`: the consent page.
pub async fn authorize_page(State(s): State<Arc<Sandbox>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let a = match validate(&s, &q) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut accounts: Vec<(String, String, bool)> = {
        let all = s.accounts.read().expect("accounts lock");
        all.values()
            .filter_map(|acc| {
                let acc = acc.read().ok()?;
                (acc.mode == a.mode).then(|| {
                    let name = acc
                        .profile
                        .get("business_profile")
                        .and_then(|b| b.get("name"))
                        .and_then(|n| n.as_str())
                        .unwrap_or("Account")
                        .to_owned();
                    (acc.id.clone(), name, acc.connected)
                })
            })
            .collect()
    };
    accounts.sort();
    let hidden = |k: &str, v: &str| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", escape(v));
    let mut options = String::new();
    for (i, (id, name, connected)) in accounts.iter().enumerate() {
        options.push_str(&format!(
            "<li><label><input type=\"radio\" name=\"account\" value=\"{id}\"{}> {} <code>{id}</code>{}</label></li>",
            if i == 0 { " checked" } else { "" },
            escape(name),
            if *connected { " (already connected)" } else { "" }
        ));
    }
    options.push_str(&format!(
        "<li><label><input type=\"radio\" name=\"account\" value=\"new\"{}> Create a new {} account</label></li>",
        if accounts.is_empty() { " checked" } else { "" },
        a.mode.as_str()
    ));
    let scope_text = if a.scope == "read_write" { "read and write access" } else { "read-only access" };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Connect with {platform}</title></head><body><main>\
         <h1>{platform} would like to connect to your Stripe account</h1>\
         <p>{platform} is asking for <strong>{scope_text}</strong> (<code>{scope}</code>) in <strong>{mode} mode</strong>.</p>\
         <form method=\"post\" action=\"/oauth/authorize\">{h1}{h2}{h3}{h4}\
         <fieldset><legend>Choose the account to connect</legend><ul>{options}</ul></fieldset>\
         <button type=\"submit\" name=\"decision\" value=\"authorize\">Authorize</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         </form></main></body></html>",
        platform = escape(&s.config.platform_name),
        scope = a.scope,
        mode = a.mode.as_str(),
        h1 = hidden("client_id", &a.client_id),
        h2 = hidden("redirect_uri", &a.redirect_uri),
        h3 = hidden("scope", &a.scope),
        h4 = a.state.as_deref().map(|st| hidden("state", st)).unwrap_or_default(),
    );
    Html(page).into_response()
}

/// Issues a code for `account` (or a new account) and returns the redirect with `code` and `state`.
fn approve(s: &Sandbox, a: &Authorize, account: Option<&str>) -> Result<String, Response> {
    let account = match account.filter(|x| !x.is_empty() && *x != "new") {
        Some(id) => {
            let acc =
                s.account(id).ok_or_else(|| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("No such account: {id}")))?;
            if acc.read().expect("account lock").mode != a.mode {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("Account {id} is not a {} mode account.", a.mode.as_str()),
                ));
            }
            id.to_owned()
        }
        None => s.create_account(a.mode, None, false, &Profile::default()),
    };
    let code = format!("ac_{}", s.token(24));
    s.codes
        .lock()
        .expect("codes lock")
        .insert(code.clone(), Code { mode: a.mode, account, scope: a.scope.clone(), expires: Instant::now() + CODE_TTL, used: false });
    let mut p = vec![("code", code.as_str()), ("scope", a.scope.as_str())];
    if let Some(st) = &a.state {
        p.push(("state", st));
    }
    Ok(with_params(&a.redirect_uri, &p))
}

/// `POST /oauth/authorize`: the consent form's Authorize or Deny.
pub async fn decide(State(s): State<Arc<Sandbox>>, RawForm(body): RawForm) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut q = form.clone();
    q.insert("response_type".into(), "code".into());
    let a = match validate(&s, &q) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if form.get("decision").map(String::as_str) != Some("authorize") {
        let mut p = vec![("error", "access_denied"), ("error_description", "The user denied your request")];
        if let Some(st) = &a.state {
            p.push(("state", st));
        }
        return Redirect::to(&with_params(&a.redirect_uri, &p)).into_response();
    }
    match approve(&s, &a, form.get("account").map(String::as_str)) {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(r) => r,
    }
}

/// Body of `POST /_sandbox/oauth/approve`.
#[derive(Debug, Deserialize)]
pub struct ApproveBody {
    client_id: String,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    account: Option<String>,
}

/// `POST /_sandbox/oauth/approve`: clicks Authorize for scripts.
pub async fn approve_json(State(s): State<Arc<Sandbox>>, Json(b): Json<ApproveBody>) -> Response {
    let mut q = HashMap::from([("client_id".to_owned(), b.client_id), ("response_type".to_owned(), "code".to_owned())]);
    for (k, v) in [("redirect_uri", b.redirect_uri), ("scope", b.scope), ("state", b.state)] {
        if let Some(v) = v {
            q.insert(k.into(), v);
        }
    }
    let a = match validate(&s, &q) {
        Ok(a) => a,
        Err(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Invalid client_id, redirect_uri, response_type or scope.");
        }
    };
    match approve(&s, &a, b.account.as_deref()) {
        Ok(url) => json_response(StatusCode::OK, json!({"redirect": url}).to_string()),
        Err(r) => r,
    }
}

fn platform_key(s: &Sandbox, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<Mode, Response> {
    let key = presented_key(headers).or_else(|| form.get("client_secret").cloned());
    let Some(key) = key else {
        return Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "No authentication was provided. Send your secret API key."));
    };
    s.mode_of_key(&key).ok_or_else(|| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid API key provided."))
}

fn publishable(mode: Mode) -> &'static str {
    match mode {
        Mode::Test => "pk_test_",
        Mode::Live => "pk_live_",
    }
}

/// `POST /oauth/token`.
pub async fn token(State(s): State<Arc<Sandbox>>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mode = match platform_key(&s, &headers, &form) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (account, scope) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(code) = form.get("code") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No code provided.");
            };
            let mut codes = s.codes.lock().expect("codes lock");
            let Some(c) = codes.get_mut(code) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &format!("Authorization code does not exist: {code}"));
            };
            if c.used {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &format!("Authorization code has already been used: {code}"));
            }
            if Instant::now() > c.expires {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &format!("Authorization code expired: {code}"));
            }
            if c.mode != mode {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    &format!(
                        "Authorization code provided was created in {} mode, but you used a {} mode key.",
                        c.mode.as_str(),
                        mode.as_str()
                    ),
                );
            }
            c.used = true;
            (c.account.clone(), c.scope.clone())
        }
        Some("refresh_token") => {
            let Some(rt) = form.get("refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No refresh_token provided.");
            };
            let Some(r) = s.refresh.lock().expect("refresh lock").get(rt).cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &format!("Invalid refresh token: {rt}"));
            };
            if r.mode != mode {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Refresh token belongs to the other mode.");
            }
            let scope = form.get("scope").cloned().unwrap_or(r.scope.clone());
            if scope != "read_only" && scope != "read_write" {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &format!("Invalid scope: {scope}"));
            }
            if r.scope == "read_only" && scope == "read_write" {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "A refresh cannot widen the scope.");
            }
            (r.account, scope)
        }
        Some(other) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &format!("Unsupported grant type: {other}")),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No grant type provided."),
    };
    let Some(acc) = s.account(&account) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The account no longer exists.");
    };
    {
        let mut a = acc.write().expect("account lock");
        if !a.connected {
            if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The account has disconnected from your application.");
            }
            a.connected = true;
            let client = s.config.client_id(mode).to_owned();
            let name = s.config.platform_name.clone();
            crate::webhooks::emit(
                &s,
                &mut a,
                "account.application.authorized",
                EventData::Snapshot(json!({"id": client, "name": name, "object": "application"}).to_string().into()),
                None,
            );
        }
        a.scope = Some(scope.clone());
    }
    let refresh = format!("rt_{}", s.token(24));
    s.refresh.lock().expect("refresh lock").insert(refresh.clone(), Refresh { account: account.clone(), mode, scope: scope.clone() });
    let prefix = match mode {
        Mode::Test => "sk_test_",
        Mode::Live => "sk_live_",
    };
    json_response(
        StatusCode::OK,
        json!({
            "access_token": format!("{prefix}{}", s.token(32)),
            "livemode": mode == Mode::Live,
            "refresh_token": refresh,
            "scope": scope,
            "stripe_publishable_key": format!("{}{}", publishable(mode), s.token(32)),
            "stripe_user_id": account,
            "token_type": "bearer"
        })
        .to_string(),
    )
}

/// `POST /oauth/deauthorize`.
pub async fn deauthorize(State(s): State<Arc<Sandbox>>, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mode = match platform_key(&s, &headers, &form) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let client = s.config.client_id(mode).to_owned();
    if form.get("client_id") != Some(&client) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client_id does not match the API key's application and mode.");
    }
    let Some(user) = form.get("stripe_user_id").cloned() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No stripe_user_id provided.");
    };
    let not_connected = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("This application is not connected to stripe account {user}, or that account does not exist."),
        )
    };
    let Some(acc) = s.account(&user) else { return not_connected() };
    {
        let mut a = acc.write().expect("account lock");
        if !a.connected || a.mode != mode {
            return not_connected();
        }
        a.connected = false;
        a.scope = None;
        let name = s.config.platform_name.clone();
        crate::webhooks::emit(
            &s,
            &mut a,
            "account.application.deauthorized",
            EventData::Snapshot(json!({"id": client, "name": name, "object": "application"}).to_string().into()),
            None,
        );
    }
    s.refresh.lock().expect("refresh lock").retain(|_, r| r.account != user);
    json_response(StatusCode::OK, json!({"stripe_user_id": user}).to_string())
}
