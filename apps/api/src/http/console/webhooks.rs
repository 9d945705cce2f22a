//! Webhooks: consumers (create, enable/disable, delete), their deliveries with every attempt, and
//! "deliver again".

use super::{Nav, Notice, Params, Session, after, badge, confirm_page, csrf_field, failure, layout, respond, shown_once, when};
use crate::http::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::html;
use tributary_domain::ids::WebhookConsumerId;
use tributary_domain::model::webhook::{DeliveryStatus, EventType, NewConsumer};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/webhooks", get(list).post(create))
        .route("/console/webhooks/{webhookId}", get(show))
        .route("/console/webhooks/{webhookId}/enable", post(enable))
        .route("/console/webhooks/{webhookId}/disable", post(disable))
        .route("/console/webhooks/{webhookId}/delete", get(confirm_delete).post(delete))
        .route("/console/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver", post(redeliver))
}

fn consumer_id(raw: &str) -> Result<WebhookConsumerId, Box<Response>> {
    super::id(raw, "a webhook consumer id")
}

async fn list(State(s): State<AppState>, session: Session, q: Params) -> Response {
    list_page(&s, &session, Notice::from_query(&q), None, StatusCode::OK).await
}

async fn list_page(
    s: &AppState,
    session: &Session,
    notice: Option<Notice>,
    created: Option<(WebhookConsumerId, secrecy::SecretString)>,
    status: StatusCode,
) -> Response {
    let consumers = match s.platform.webhooks().list_consumers().await {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let events = match s.platform.webhooks().recent_events(20).await {
        Ok(e) => e,
        Err(e) => return failure(e),
    };
    let mut rows = Vec::new();
    for c in consumers {
        let counts = s.platform.webhooks().attempts(c.id, 0).await.map(|(_, n)| n).unwrap_or_default();
        rows.push((c, counts));
    }
    let body = html! {
        h1 { "Webhooks" }
        @if let Some((id, secret)) = &created {
            p { "Consumer " code { (id) } " created. Its deliveries are signed with this secret (Standard Webhooks)." }
            (shown_once("Signing secret", secret))
        }
        div.table-wrap {
            table #consumers {
                caption.skip { "Webhook consumers" }
                thead { tr { th { "URL" } th { "Events" } th { "State" } th { "Pending" } th { "Delivered" } th { "Failed" } } }
                tbody {
                    @for (c, n) in &rows {
                        tr {
                            td { a href=(format!("/console/webhooks/{}", c.id)) { (c.url) } }
                            td.small { @if c.event_types.is_empty() { "all" } @else { (c.event_types.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) } }
                            td { (badge(if c.disabled { "Disabled" } else { "Enabled" }))
                                 @if let Some(r) = &c.disabled_reason { br; span.small { (r) } } }
                            td { (n.pending) } td { (n.delivered) } td { (n.failed) }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="6" { span.muted { "No consumer yet." } } } }
                }
            }
        }
        h2 #events-h { "Recent events" }
        @if events.is_empty() { p.muted { "No event yet." } }
        @else {
            div.table-wrap {
                table #events aria-labelledby="events-h" {
                    thead { tr { th { "Event" } th { "Company" } th { "Generated" } th { "Id" } } }
                    tbody {
                        @for e in &events {
                            tr {
                                td { (e.event_type.as_str()) }
                                td { a href=(format!("/console/companies/{}", e.company_id)) { code.small { (e.company_id) } } }
                                td.small { (when(e.generated)) }
                                td { code.small { (e.id) } }
                            }
                        }
                    }
                }
            }
            p.muted.small { "Each event is delivered to every enabled consumer whose event types and company tags accept it; a consumer's page lists its deliveries and their attempts." }
        }
        h2 #create-h { "Add a consumer" }
        form.card method="post" action="/console/webhooks" aria-labelledby="create-h" {
            (csrf_field(session))
            label for="url" { "URL" }
            input.wide #url name="url" type="url" required placeholder="https://example.com/tributary-events";
            fieldset {
                legend { "Events" }
                @for e in EventType::ALL {
                    span { input type="checkbox" name="eventTypes" value=(e.as_str()) id=(format!("ev-{}", e.as_str())) checked;
                           label.inline for=(format!("ev-{}", e.as_str())) { (e.as_str()) } }
                    " "
                }
            }
            label for="tags" { "Company tags (optional, comma-separated key:value)" }
            input #tags name="companyTags" size="40" placeholder="region:eu";
            p { button type="submit" { "Add consumer" } }
        }
    };
    respond(status, layout(session, Nav::Webhooks, "Webhooks", notice.as_ref(), body))
}

async fn create(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let form = try_page!(session.form(&body));
    let req = NewConsumer {
        url: form.get("url").unwrap_or_default(),
        disabled: false,
        event_types: form.all("eventTypes"),
        company_tags: form
            .get("companyTags")
            .map(|t| t.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect())
            .unwrap_or_default(),
    };
    match s.platform.webhooks().create_consumer(req).await {
        Ok((c, secret)) => {
            s.webhook_wake.notify_waiters();
            list_page(&s, &session, Notice::ok("Created."), Some((c.id, secret)), StatusCode::CREATED).await
        }
        Err(e) => {
            let (status, message) = super::shown(e);
            list_page(&s, &session, Notice::error(message), None, status).await
        }
    }
}

async fn show(State(s): State<AppState>, session: Session, Path(raw): Path<String>, q: Params) -> Response {
    let id = try_page!(consumer_id(&raw));
    let c = match s.platform.webhooks().get_consumer(id).await {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let (attempts, counts) = match s.platform.webhooks().attempts(id, 500).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let deliveries = match s.platform.webhooks().deliveries(id, 50).await {
        Ok(d) => d,
        Err(e) => return failure(e),
    };
    let base = format!("/console/webhooks/{id}");
    let body = html! {
        p.small { a href="/console/webhooks" { "← Webhooks" } }
        h1 { "Consumer" }
        dl.pairs {
            dt { "URL" } dd { code { (c.url) } }
            dt { "Id" } dd { code { (c.id) } }
            dt { "State" } dd { (badge(if c.disabled { "Disabled" } else { "Enabled" })) @if let Some(r) = &c.disabled_reason { " " (r) } }
            dt { "Events" } dd { @if c.event_types.is_empty() { "all" } @else { (c.event_types.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) } }
            @if !c.company_tags.is_empty() { dt { "Company tags" } dd { (c.company_tags.join(", ")) } }
            dt { "Created" } dd { (when(c.created)) }
            @if let Some(f) = c.failing_since { dt { "Failing since" } dd { (when(f)) } }
            dt { "Deliveries" } dd { (counts.pending) " pending · " (counts.delivered) " delivered · " (counts.failed) " failed" }
        }
        div.row {
            @if c.disabled {
                form method="post" action=(format!("{base}/enable")) { (csrf_field(&session)) button type="submit" { "Enable" } }
            } @else {
                form method="post" action=(format!("{base}/disable")) { (csrf_field(&session)) button.secondary type="submit" { "Disable" } }
            }
            a href=(format!("{base}/delete")) { "Delete…" }
        }
        h2 { "Recent deliveries" }
        @if deliveries.is_empty() { p.muted { "No delivery yet." } }
        @for d in &deliveries {
            section.card.delivery aria-label=(format!("Delivery of {}", d.event_type.as_str())) {
                div.row {
                    strong { (d.event_type.as_str()) }
                    (badge(d.status.as_str()))
                    span.small.muted { "event " code { (d.event_id) } " · " (when(d.created)) " · " (d.attempts) " attempt(s)" }
                    @if let (DeliveryStatus::Pending, Some(t)) = (d.status, d.next_attempt) { span.small { "next attempt " (when(t)) } }
                    @if d.status != DeliveryStatus::Pending {
                        form method="post" action=(format!("{base}/deliveries/{}/redeliver", d.id)) {
                            (csrf_field(&session))
                            button.secondary type="submit" { "Deliver again" }
                        }
                    }
                }
                @let tries: Vec<_> = attempts.iter().filter(|a| a.delivery_id == d.id).collect();
                @if !tries.is_empty() {
                    table.small {
                        caption.skip { "Attempts" }
                        thead { tr { th { "#" } th { "At" } th { "Status" } th { "Latency" } th { "Error" } } }
                        tbody {
                            @for a in tries.iter().rev() {
                                tr {
                                    td { (a.number) }
                                    td { (when(a.at)) }
                                    td { (a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "no answer".into())) " " (badge(if a.ok { "Delivered" } else { "Failed" })) }
                                    td { (a.latency_ms) " ms" }
                                    td { (a.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&session, Nav::Webhooks, "Webhook consumer", Notice::from_query(&q).as_ref(), body))
}

async fn set_disabled(s: &AppState, session: &Session, raw: &str, body: &Bytes, disabled: bool) -> Response {
    try_page!(session.form(body));
    let id = try_page!(consumer_id(raw));
    match s.platform.webhooks().set_consumer_disabled(id, disabled).await {
        Ok(_) => {
            s.webhook_wake.notify_waiters();
            after(&format!("/console/webhooks/{id}"), if disabled { "disabled" } else { "enabled" })
        }
        Err(e) => failure(e),
    }
}

async fn enable(State(s): State<AppState>, session: Session, Path(raw): Path<String>, body: Bytes) -> Response {
    set_disabled(&s, &session, &raw, &body, false).await
}

async fn disable(State(s): State<AppState>, session: Session, Path(raw): Path<String>, body: Bytes) -> Response {
    set_disabled(&s, &session, &raw, &body, true).await
}

async fn confirm_delete(State(s): State<AppState>, session: Session, Path(raw): Path<String>) -> Response {
    let id = try_page!(consumer_id(&raw));
    match s.platform.webhooks().get_consumer(id).await {
        Ok(c) => confirm_page(
            &session,
            Nav::Webhooks,
            "Delete webhook consumer",
            &format!("Delete the consumer at {}? Its pending deliveries are dropped. This cannot be undone.", c.url),
            &format!("/console/webhooks/{id}/delete"),
            "Delete consumer",
            &format!("/console/webhooks/{id}"),
        ),
        Err(e) => failure(e),
    }
}

async fn delete(State(s): State<AppState>, session: Session, Path(raw): Path<String>, body: Bytes) -> Response {
    try_page!(session.form(&body));
    let id = try_page!(consumer_id(&raw));
    match s.platform.webhooks().delete_consumer(id).await {
        Ok(()) => after("/console/webhooks", "deleted"),
        Err(e) => failure(e),
    }
}

async fn redeliver(State(s): State<AppState>, session: Session, Path((raw, delivery)): Path<(String, String)>, body: Bytes) -> Response {
    try_page!(session.form(&body));
    let id = try_page!(consumer_id(&raw));
    let delivery: uuid::Uuid = try_page!(super::id(&delivery, "a delivery id"));
    match s.platform.webhooks().redeliver(id, delivery).await {
        Ok(()) => {
            s.webhook_wake.notify_waiters();
            after(&format!("/console/webhooks/{id}"), "redelivering")
        }
        Err(e) => failure(e),
    }
}
