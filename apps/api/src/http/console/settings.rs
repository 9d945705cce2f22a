//! Settings: integrations (secrets write-only), the profile the Link pages are branded with, the
//! client's sync settings and API keys.

use super::{Form, Nav, Notice, Params, Session, after, badge, csrf_field, failure, layout, respond, shown_once, when};
use crate::http::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::html;
use secrecy::SecretString;
use tributary_domain::DomainError;
use tributary_domain::ids::ApiKeyId;
use tributary_domain::model::profile::Profile;
use tributary_domain::service::IntegrationUpdate;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/settings", get(page))
        .route("/console/settings/integrations/{key}", post(integration))
        .route("/console/settings/profile", post(profile))
        .route("/console/settings/sync", post(sync))
        .route("/console/settings/api-keys", post(create_key))
        .route("/console/settings/api-keys/{id}/delete", get(confirm_delete_key).post(delete_key))
}

async fn page(State(s): State<AppState>, session: Session, q: Params) -> Response {
    render(&s, &session, Notice::from_query(&q), None, StatusCode::OK).await
}

async fn render(s: &AppState, session: &Session, notice: Option<Notice>, new_key: Option<SecretString>, status: StatusCode) -> Response {
    let (integrations, profile, sync, keys) = match (
        s.platform.integrations().list().await,
        s.platform.settings().profile().await,
        s.platform.settings().sync_settings().await,
        s.platform.api_keys().list().await,
    ) {
        (Ok(i), Ok(p), Ok((sync, _)), Ok(k)) => (i, p, sync, k),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return failure(e),
    };
    let body = html! {
        h1 { "Settings" }
        h2 #integrations-h { "Integrations" }
        p.muted.small { "Secrets are stored encrypted and never shown; leave a secret field empty to keep the stored value." }
        div.cards {
            @for i in &integrations {
                @let k = i.definition.key;
                section.card aria-label=(i.definition.name) {
                    h2 { (i.definition.name) " " code.small { (k) } }
                    p { (badge(if i.settings.is_configured() { "Configured" } else { "Not configured" })) " "
                        (badge(if i.settings.enabled { "Enabled" } else { "Disabled" })) }
                    @if let Some(refused) = &i.settings.key_refused {
                        div.notice.error role="alert" {
                            strong { "Stripe refused the secret key" } " at " (refused.at.format("%Y-%m-%d %H:%M:%S UTC")) ": " (refused.message)
                            ". Syncs of this integration's connections fail until a working key is saved; the connections stay linked."
                        }
                    }
                    form method="post" action=(format!("/console/settings/integrations/{k}")) {
                        (csrf_field(session))
                        label for=(format!("{k}-client")) { "Connect client id" }
                        input.wide id=(format!("{k}-client")) name="clientId" value=[i.settings.client_id.as_deref()] placeholder="ca_…";
                        label for=(format!("{k}-secret")) { "Secret key " span.muted.small { (if i.settings.secret_key.is_some() { "(set)" } else { "(not set)" }) } }
                        input.wide id=(format!("{k}-secret")) name="secretKey" type="password" autocomplete="off" placeholder="sk_…";
                        label for=(format!("{k}-whsec")) { "Webhook signing secret " span.muted.small { (if i.settings.webhook_secret.is_some() { "(set)" } else { "(not set)" }) } }
                        input.wide id=(format!("{k}-whsec")) name="webhookSecret" type="password" autocomplete="off" placeholder="whsec_…";
                        p { input type="checkbox" name="enabled" id=(format!("{k}-enabled")) checked[i.settings.enabled];
                            label.inline for=(format!("{k}-enabled")) { "Enabled (offered on Link pages)" } }
                        button type="submit" { "Save " (i.definition.name) }
                    }
                }
            }
        }

        h2 #profile-h { "Profile" }
        form.card method="post" action="/console/settings/profile" aria-labelledby="profile-h" {
            (csrf_field(session))
            p.muted.small { "Merchants see the name, logo and icon on the Link pages; they are sent to the redirect URL after linking." }
            label for="p-name" { "Name" }
            input.wide #p-name name="name" value=(profile.name) required;
            label for="p-logo" { "Logo URL" }
            input.wide #p-logo name="logoUrl" type="url" value=[profile.logo_url.as_deref()];
            label for="p-icon" { "Icon URL" }
            input.wide #p-icon name="iconUrl" type="url" value=[profile.icon_url.as_deref()];
            label for="p-redirect" { "Redirect URL" }
            input.wide #p-redirect name="redirectUrl" value=(profile.redirect_url) placeholder="https://example.com/linked?company={companyId}";
            p { button type="submit" { "Save profile" } }
        }

        h2 #sync-h { "Sync settings" }
        form.card method="post" action="/console/settings/sync" aria-labelledby="sync-h" {
            (csrf_field(session))
            div.table-wrap {
                table {
                    caption.skip { "Sync settings per data type" }
                    thead { tr { th { "Data type" } th { "Fetch on first link" } th { "Refresh every (hours)" } } }
                    tbody {
                        @for st in &sync {
                            @let k = st.data_type.key();
                            tr {
                                td { code { (k) } }
                                td { input type="checkbox" name=(format!("fetch.{k}")) checked[st.fetch_on_first_link] aria-label=(format!("Fetch {k} on first link")); }
                                td { input type="number" min="0" max="8760" name=(format!("schedule.{k}")) value=(st.sync_schedule) aria-label=(format!("Refresh {k} every this many hours")); }
                            }
                        }
                    }
                }
            }
            p { button type="submit" { "Save sync settings" } }
        }

        h2 #keys-h { "API keys" }
        @if let Some(k) = &new_key { (shown_once("New API key", k)) }
        div.table-wrap {
            table #api-keys {
                caption.skip { "API keys" }
                thead { tr { th { "Name" } th { "Id" } th { "Created" } th { "Actions" } } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { (k.name.as_deref().unwrap_or("(unnamed)")) }
                            td { code.small { (k.id) } }
                            td.small { (when(k.created)) }
                            td { a href=(format!("/console/settings/api-keys/{}/delete", k.id))
                                   aria-label=(format!("Delete API key {}", k.name.as_deref().unwrap_or(&k.id.to_string()))) { "Delete…" } }
                        }
                    }
                }
            }
        }
        form.row method="post" action="/console/settings/api-keys" {
            (csrf_field(session))
            div { label for="key-name" { "New key's name" } input #key-name name="name" maxlength="50"; }
            button type="submit" { "Create API key" }
        }
        p.muted.small { "Deleting a key signs out every console session opened with it." }
    };
    respond(status, layout(session, Nav::Settings, "Settings", notice.as_ref(), body))
}

async fn fail_here(s: &AppState, session: &Session, e: DomainError) -> Response {
    let (status, message) = super::shown(e);
    render(s, session, Notice::error(message), None, status).await
}

async fn integration(State(s): State<AppState>, session: Session, Path(key): Path<String>, body: Bytes) -> Response {
    let form: Form = try_page!(session.form(&body));
    let update = IntegrationUpdate {
        client_id: form.get("clientId"),
        secret_key: form.get("secretKey").map(SecretString::from),
        webhook_secret: form.get("webhookSecret").map(SecretString::from),
        scope: None,
    };
    let result = async {
        let current = s.platform.integrations().update(&key, update).await?;
        if current.settings.enabled != form.checked("enabled") {
            s.platform.integrations().set_enabled(&key, form.checked("enabled")).await?;
        }
        Ok::<_, DomainError>(())
    }
    .await;
    match result {
        Ok(()) => after("/console/settings", "saved"),
        Err(e) => fail_here(&s, &session, e).await,
    }
}

async fn profile(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let form = try_page!(session.form(&body));
    let current = match s.platform.settings().profile().await {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let profile = Profile {
        name: form.get("name").unwrap_or_default(),
        logo_url: form.get("logoUrl"),
        icon_url: form.get("iconUrl"),
        redirect_url: form.get("redirectUrl").unwrap_or_default(),
        white_list_urls: current.white_list_urls,
    };
    match s.platform.settings().put_profile(profile).await {
        Ok(_) => after("/console/settings", "saved"),
        Err(e) => fail_here(&s, &session, e).await,
    }
}

async fn sync(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let form = try_page!(session.form(&body));
    let (mut settings, _) = match s.platform.settings().sync_settings().await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    for st in &mut settings {
        let k = st.data_type.key();
        st.fetch_on_first_link = form.checked(&format!("fetch.{k}"));
        if let Some(raw) = form.get(&format!("schedule.{k}")) {
            match raw.parse::<i32>() {
                Ok(h) => st.sync_schedule = h,
                Err(_) => {
                    return fail_here(&s, &session, DomainError::invalid(format!("The schedule of {k} must be a whole number of hours.")))
                        .await;
                }
            }
        }
    }
    match s.platform.settings().put_sync_settings(settings).await {
        Ok(()) => after("/console/settings", "saved"),
        Err(e) => fail_here(&s, &session, e).await,
    }
}

async fn create_key(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let form = try_page!(session.form(&body));
    let key = crate::http::generate_api_key();
    match s.platform.api_keys().create(form.get("name"), &key).await {
        Ok(_) => render(&s, &session, Notice::ok("API key created."), Some(key), StatusCode::CREATED).await,
        Err(e) => fail_here(&s, &session, e).await,
    }
}

async fn confirm_delete_key(State(s): State<AppState>, session: Session, Path(raw): Path<String>) -> Response {
    let id: ApiKeyId = try_page!(super::id(&raw, "an API key id"));
    match s.platform.api_keys().list().await.map(|keys| keys.into_iter().find(|k| k.id == id)) {
        Ok(Some(k)) => super::confirm_page(
            &session,
            Nav::Settings,
            "Delete API key",
            &format!(
                "Delete the API key {}? Clients using it get 401 from now on, and console sessions opened with it end. This cannot be undone.",
                k.name.as_deref().unwrap_or("(unnamed)")
            ),
            &format!("/console/settings/api-keys/{id}/delete"),
            "Delete API key",
            "/console/settings",
        ),
        Ok(None) => failure(DomainError::NotFound(format!("No API key was found with ID {id}"))),
        Err(e) => failure(e),
    }
}

async fn delete_key(State(s): State<AppState>, session: Session, Path(raw): Path<String>, body: Bytes) -> Response {
    try_page!(session.form(&body));
    let id: ApiKeyId = try_page!(super::id(&raw, "an API key id"));
    match s.platform.api_keys().delete(id, false).await {
        // Deleting the key this session signed in with ends the session: the next page asks to
        // sign in again.
        Ok(()) => after("/console/settings", "deleted"),
        Err(e) => fail_here(&s, &session, e).await,
    }
}
