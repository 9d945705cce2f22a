//! Companies: the list with search, creation, a company's page (connections, data status, pull
//! history, refresh, unlink, delete) and the data browser.

use super::{Nav, Notice, Params, Session, after, badge, confirm_page, csrf_field, failure, layout, pager, respond, when};
use crate::http::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use std::collections::{BTreeMap, HashMap};
use tributary_domain::DomainError;
use tributary_domain::ids::{CompanyId, ConnectionId};
use tributary_domain::model::commerce_schema::schema;
use tributary_domain::model::company::{CompanyFields, QUERY_SCHEMA as COMPANY_QUERY};
use tributary_domain::model::connection::ConnectionStatus;
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::integration::definition;
use tributary_domain::model::pull::QUERY_SCHEMA as PULL_QUERY;
use tributary_domain::paging::ListQuery;
use tributary_domain::service::{Linking, RecordPage};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/companies", get(list).post(create))
        .route("/console/companies/{companyId}", get(show))
        .route("/console/companies/{companyId}/refresh", post(refresh))
        .route("/console/companies/{companyId}/connections", post(add_connection))
        .route("/console/companies/{companyId}/delete", get(confirm_delete).post(delete))
        .route("/console/companies/{companyId}/connections/{connectionId}/unlink", get(confirm_unlink).post(unlink))
        .route("/console/companies/{companyId}/connections/{connectionId}/data/{dataType}", get(records))
        .route("/console/companies/{companyId}/connections/{connectionId}/data/{dataType}/{recordId}", get(record))
}

fn company_id(raw: &str) -> Result<CompanyId, Box<Response>> {
    super::id(raw, "a company id")
}

fn connection_id(raw: &str) -> Result<ConnectionId, Box<Response>> {
    super::id(raw, "a connection id")
}

fn int(q: &HashMap<String, String>, name: &str) -> Option<i64> {
    q.get(name).and_then(|v| v.trim().parse().ok())
}

fn integration_name(key: &str) -> &'static str {
    definition(key).map_or("Unknown integration", |d| d.name)
}

async fn list(State(s): State<AppState>, session: Session, q: Params) -> Response {
    list_page(&s, &session, &q, Notice::from_query(&q), StatusCode::OK).await
}

async fn list_page(s: &AppState, session: &Session, q: &HashMap<String, String>, notice: Option<Notice>, status: StatusCode) -> Response {
    let query = q.get("query").map(String::as_str).filter(|v| !v.trim().is_empty());
    let (page, error) = match ListQuery::from_params(&COMPANY_QUERY, int(q, "page"), Some(20), query, Some("-created")) {
        Ok(lq) => match s.platform.companies().list(lq, None).await {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(super::message_of(e))),
        },
        Err(e) => (None, Some(super::message_of(e))),
    };
    let notice = notice.or_else(|| error.and_then(Notice::error));
    let body = html! {
        h1 { "Companies" }
        form.row method="get" action="/console/companies" role="search" {
            div {
                label for="q" { "Query" }
                input #q name="query" value=[query] size="40" placeholder="name~shop || tags.region=eu";
            }
            button type="submit" { "Search" }
            @if query.is_some() { a href="/console/companies" { "Clear" } }
        }
        p.muted.small { "Codat's query language: " code { "name=Acme" } ", " code { "name~shop" } ", " code { "dataConnections.status=Linked" } ", combined with " code { "&&" } " and " code { "||" } "." }
        @if let Some(p) = &page {
            div.table-wrap {
                table #companies {
                    caption.skip { "Companies" }
                    thead { tr { th { "Name" } th { "Connections" } th { "Last sync" } th { "Created" } } }
                    tbody {
                        @for v in &p.items {
                            tr {
                                td { a href=(format!("/console/companies/{}", v.company.id)) { (v.company.name) }
                                     @if let Some(d) = &v.company.description { br; span.muted.small { (d) } } }
                                td { @if v.connections.is_empty() { span.muted { "none" } }
                                     @for c in &v.connections { (badge(c.status.as_str())) " " } }
                                td.small { (v.company.last_sync.map(when).unwrap_or_default()) }
                                td.small { (when(v.company.created)) }
                            }
                        }
                        @if p.items.is_empty() { tr { td colspan="4" { span.muted { "No company matches." } } } }
                    }
                }
            }
            (pager("/console/companies", &[("query", query)], p.request.page, p.request.page_size, p.total))
        }
        h2 #create-h { "Create a company" }
        form.card method="post" action="/console/companies" aria-labelledby="create-h" {
            (csrf_field(session))
            label for="name" { "Name" }
            input #name name="name" required maxlength="100" size="40";
            label for="description" { "Description (optional)" }
            input #description name="description" size="60";
            p { button type="submit" { "Create company" } }
        }
    };
    respond(status, layout(session, Nav::Companies, "Companies", notice.as_ref(), body))
}

async fn create(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let form = try_page!(session.form(&body));
    let fields = form
        .get("name")
        .ok_or_else(|| DomainError::invalid("A name is required."))
        .and_then(|name| CompanyFields::new(&name, form.get("description"), BTreeMap::new()));
    match async { s.platform.companies().create(fields?).await }.await {
        Ok(v) => after(&format!("/console/companies/{}", v.company.id), "created"),
        Err(e) => {
            let (status, message) = super::shown(e);
            list_page(&s, &session, &HashMap::new(), Notice::error(message), status).await
        }
    }
}

async fn show(State(s): State<AppState>, session: Session, Path(raw): Path<String>, q: Params) -> Response {
    let id = try_page!(company_id(&raw));
    let view = match s.platform.companies().get(id).await {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let statuses = match s.platform.pulls().data_status(id).await {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let integrations = s.platform.integrations().list().await.unwrap_or_default();
    let pull_query = q.get("pulls").map(String::as_str).filter(|v| !v.trim().is_empty());
    let (pulls, pulls_error) = match ListQuery::from_params(&PULL_QUERY, int(&q, "page"), Some(20), pull_query, Some("-requested")) {
        Ok(lq) => match s.platform.pulls().list(id, &lq).await {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(super::message_of(e))),
        },
        Err(e) => (None, Some(super::message_of(e))),
    };
    let link_url = format!("{}/link/{id}", s.public_url);
    let company = &view.company;
    let base = format!("/console/companies/{id}");
    let linked: Vec<_> = view.connections.iter().filter(|c| c.status == ConnectionStatus::Linked).collect();
    let body = html! {
        h1 { (company.name) }
        dl.pairs {
            dt { "Id" } dd { code { (company.id) } }
            @if let Some(d) = &company.description { dt { "Description" } dd { (d) } }
            @if !company.tags.is_empty() {
                dt { "Tags" } dd { @for (k, v) in &company.tags { span.badge { (k) "=" (v) } " " } }
            }
            dt { "Created" } dd { (when(company.created)) }
            dt { "Last sync" } dd { (company.last_sync.map(when).unwrap_or_else(|| "never".into())) }
            dt { label for="link-url" { "Link page" } }
            dd.row {
                input #link-url readonly value=(link_url) size="60";
                button.secondary type="button" data-copy="link-url" { "Copy" }
            }
        }

        h2 { "Connections" }
        div.table-wrap {
            table #connections {
                caption.skip { "Connections" }
                thead { tr { th { "Integration" } th { "Status" } th { "Stripe account" } th { "Link URL" } th { "Actions" } } }
                tbody {
                    @for c in &view.connections {
                        @let url = format!("{}/link/{}/connections/{}/start", s.public_url, id, c.id);
                        @let field = format!("conn-{}", c.id);
                        tr {
                            td { (integration_name(c.platform_key.as_str())) br; code.small { (c.id) } }
                            td { (badge(c.status.as_str()))
                                 @for err in c.errors.iter().rev().take(1) {
                                     br; span.small { "Error " (err.status_code) ": " (err.error_message) " (" (when(err.errored_on_utc)) ")" } } }
                            td { @if let Some(a) = &c.source_account { code { (a) } } }
                            td { @if c.status != ConnectionStatus::Linked {
                                     div.row { input id=(field) readonly value=(url) size="30" aria-label="Link URL";
                                               button.secondary type="button" data-copy=(field) { "Copy" } } } }
                            td { @if c.status == ConnectionStatus::Linked {
                                     a href=(format!("{base}/connections/{}/unlink", c.id)) { "Unlink…" } } }
                        }
                    }
                    @if view.connections.is_empty() { tr { td colspan="5" { span.muted { "No connection yet: send the merchant the Link page, or add one." } } } }
                }
            }
        }
        @let enabled: Vec<_> = integrations.iter().filter(|i| i.settings.enabled).collect();
        @if !enabled.is_empty() {
            form.row method="post" action=(format!("{base}/connections")) {
                (csrf_field(&session))
                div { label for="integration" { "Add a connection" }
                      select #integration name="integration" {
                          @for i in &enabled { option value=(i.definition.key) { (i.definition.name) } } } }
                button.secondary type="submit" { "Add connection" }
            }
        }

        h2 { "Data status" }
        @if linked.is_empty() { p.muted { "Nothing can be refreshed until a connection is linked." } }
        div.table-wrap {
            table #data-status {
                caption.skip { "Data status per data type" }
                thead { tr { th { "Data type" } th { "Latest pull" } th { "Last success" } th { "Last error" } th { "Actions" } } }
                tbody {
                    @for st in &statuses {
                        tr data-type=(st.data_type.key()) {
                            td { code { (st.data_type.key()) } }
                            td { (badge(st.latest.status.as_str())) @if st.latest.progress < 100 && !st.latest.status.is_terminal() { " " (st.latest.progress) "%" } }
                            td.small { (st.latest_successful.as_ref().and_then(|p| p.completed).map(when).unwrap_or_else(|| "never".into())) }
                            td.small { @if st.latest.status.is_errored() { (st.latest.error_message.as_deref().unwrap_or(st.latest.status.as_str())) } }
                            td {
                                @if !linked.is_empty() && st.latest.status != tributary_domain::model::pull::DatasetStatus::NotSupported {
                                    form.inline-form method="post" action=(format!("{base}/refresh")) {
                                        (csrf_field(&session))
                                        input type="hidden" name="dataType" value=(st.data_type.key());
                                        button.secondary type="submit" aria-label=(format!("Refresh {}", st.data_type.key())) { "Refresh" }
                                    }
                                    " "
                                    @for c in &linked {
                                        a href=(format!("{base}/connections/{}/data/{}", c.id, st.data_type.key())) { "Browse" } " "
                                    }
                                }
                            }
                        }
                    }
                    @if statuses.is_empty() { tr { td colspan="5" { span.muted { "No pull yet." } } } }
                }
            }
        }
        @if !linked.is_empty() {
            form method="post" action=(format!("{base}/refresh")) {
                (csrf_field(&session))
                p { button type="submit" { "Refresh all data types" } }
            }
        }

        h2 #history-h { "Pull history" }
        form.row method="get" action=(base) role="search" aria-labelledby="history-h" {
            div { label for="pulls" { "Filter" }
                  input #pulls name="pulls" value=[pull_query] size="40" placeholder="status=FetchError || dataType=commerce-payments"; }
            button type="submit" { "Filter" }
            @if pull_query.is_some() { a href=(base) { "Clear" } }
        }
        @if let Some(e) = &pulls_error { div.notice.error role="alert" { (e) } }
        @if let Some(p) = &pulls {
            div.table-wrap {
                table #pulls-table {
                    caption.skip { "Pull history" }
                    thead { tr { th { "Data type" } th { "Status" } th { "Requested" } th { "Completed" } th { "Progress" } th { "Error" } } }
                    tbody {
                        @for op in &p.items {
                            tr {
                                td { code { (op.data_type.key()) } }
                                td { (badge(op.status.as_str())) }
                                td.small { (when(op.requested)) }
                                td.small { (op.completed.map(when).unwrap_or_default()) }
                                td { (op.progress) "%" }
                                td.small { (op.error_message.as_deref().unwrap_or("")) }
                            }
                        }
                        @if p.items.is_empty() { tr { td colspan="6" { span.muted { "No pull matches." } } } }
                    }
                }
            }
            (pager(&base, &[("pulls", pull_query)], p.request.page, p.request.page_size, p.total))
        }

        h2 { "Delete" }
        p { a href=(format!("{base}/delete")) { "Delete this company…" } " Its connections and all its data are removed with it." }
    };
    respond(StatusCode::OK, layout(&session, Nav::Companies, &company.name, Notice::from_query(&q).as_ref(), body))
}

async fn refresh(State(s): State<AppState>, session: Session, Path(raw): Path<String>, body: Bytes) -> Response {
    let form = try_page!(session.form(&body));
    let id = try_page!(company_id(&raw));
    let result = match form.get("dataType") {
        Some(dt) => match dt.parse::<DataType>() {
            Ok(dt) => s.platform.pulls().queue(id, dt, None).await.map(|_| ()),
            Err(_) => Err(DomainError::invalid(format!("Unknown data type {dt}."))),
        },
        None => s.platform.pulls().queue_all(id).await.map(|_| ()),
    };
    match result {
        Ok(()) => {
            s.wake.notify_waiters();
            after(&format!("/console/companies/{id}"), "queued")
        }
        Err(e) => failure(e),
    }
}

async fn add_connection(State(s): State<AppState>, session: Session, Path(raw): Path<String>, body: Bytes) -> Response {
    let form = try_page!(session.form(&body));
    let id = try_page!(company_id(&raw));
    let key = form.get("integration").unwrap_or_default();
    match s.platform.connections().create(id, &key).await {
        Ok(_) => after(&format!("/console/companies/{id}"), "created"),
        Err(e) => failure(e),
    }
}

async fn confirm_delete(State(s): State<AppState>, session: Session, Path(raw): Path<String>) -> Response {
    let id = try_page!(company_id(&raw));
    match s.platform.companies().get(id).await {
        Ok(v) => confirm_page(
            &session,
            Nav::Companies,
            "Delete company",
            &format!(
                "Delete {}? Its {} connection(s), pulls and synced records are deleted with it. This cannot be undone.",
                v.company.name,
                v.connections.len()
            ),
            &format!("/console/companies/{id}/delete"),
            "Delete company",
            &format!("/console/companies/{id}"),
        ),
        Err(e) => failure(e),
    }
}

async fn delete(State(s): State<AppState>, session: Session, Path(raw): Path<String>, body: Bytes) -> Response {
    try_page!(session.form(&body));
    let id = try_page!(company_id(&raw));
    let result = s.platform.companies().delete(id).await;
    match result {
        Ok(()) => after("/console/companies", "deleted"),
        Err(e) => failure(e),
    }
}

async fn confirm_unlink(State(s): State<AppState>, session: Session, Path((raw, conn)): Path<(String, String)>) -> Response {
    let id = try_page!(company_id(&raw));
    let conn = try_page!(connection_id(&conn));
    match s.platform.connections().get(id, conn).await {
        Ok(c) => confirm_page(
            &session,
            Nav::Companies,
            "Unlink connection",
            &format!(
                "Unlink {} account {}? Tributary stops syncing it and gives up its access at Stripe; the merchant must link again to resume.",
                integration_name(c.platform_key.as_str()),
                c.source_account.as_deref().unwrap_or("(none)")
            ),
            &format!("/console/companies/{id}/connections/{conn}/unlink"),
            "Unlink",
            &format!("/console/companies/{id}"),
        ),
        Err(e) => failure(e),
    }
}

async fn unlink(State(s): State<AppState>, session: Session, Path((raw, conn)): Path<(String, String)>, body: Bytes) -> Response {
    try_page!(session.form(&body));
    let id = try_page!(company_id(&raw));
    let conn = try_page!(connection_id(&conn));
    match s.linking.unlink(id, conn, ConnectionStatus::Unlinked).await {
        Ok(_) => after(&format!("/console/companies/{id}"), "unlinked"),
        Err(e) => failure(e),
    }
}

/// The columns the data browser shows per data type (every field is in the record's JSON).
fn columns(dt: DataType) -> &'static [(&'static str, &'static str)] {
    match dt {
        DataType::Customers => {
            &[("customerName", "Name"), ("emailAddress", "Email"), ("defaultCurrency", "Currency"), ("createdDate", "Created")]
        }
        DataType::Disputes => {
            &[("status", "Status"), ("totalAmount", "Amount"), ("currency", "Currency"), ("reason", "Reason"), ("createdDate", "Created")]
        }
        DataType::Payments => &[("status", "Status"), ("amount", "Amount"), ("currency", "Currency"), ("createdDate", "Created")],
        DataType::Products => &[("name", "Name"), ("isGiftCard", "Gift card"), ("createdDate", "Created")],
        DataType::Transactions => &[("type", "Type"), ("totalAmount", "Amount"), ("currency", "Currency"), ("createdDate", "Created")],
        _ => &[("createdDate", "Created")],
    }
}

fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn browser_nav(base: &str, current: DataType, types: &[DataType]) -> Markup {
    html! {
        nav aria-label="Data types" {
            p.row {
                @for t in types {
                    @if *t == current { strong aria-current="page" { (t.key()) } }
                    @else { a href=(format!("{base}/{}", t.key())) { (t.key()) } }
                }
            }
        }
    }
}

async fn records(
    State(s): State<AppState>,
    session: Session,
    Path((raw, conn, dt_raw)): Path<(String, String, String)>,
    q: Params,
) -> Response {
    let id = try_page!(company_id(&raw));
    let conn = try_page!(connection_id(&conn));
    let Ok(dt) = dt_raw.parse::<DataType>() else { return failure(DomainError::NotFound(format!("Unknown data type {dt_raw}."))) };
    let company = match s.platform.companies().get(id).await {
        Ok(v) => v.company,
        Err(e) => return failure(e),
    };
    let connection = match s.platform.connections().get(id, conn).await {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let base = format!("/console/companies/{id}/connections/{conn}/data");
    let types = Linking::supported(connection.platform_key.as_str());
    let query = q.get("query").map(String::as_str).filter(|v| !v.trim().is_empty());
    let order = q.get("orderBy").map(String::as_str).filter(|v| !v.trim().is_empty());
    let page_size = int(&q, "pageSize").or(Some(25));
    // Company info is one record: show it whole.
    let (rows, error, json) = if dt == DataType::CompanyInfo {
        match s.platform.records().company_info(id, conn).await {
            Ok(v) => (None, None, Some(v)),
            Err(e) => (None, Some(super::shown(e)), None),
        }
    } else {
        let result = match schema(dt) {
            Some(sch) => match ListQuery::from_params(sch, int(&q, "page"), page_size, query, order) {
                Ok(lq) => s.platform.records().list(id, conn, dt, &lq).await,
                Err(e) => Err(e),
            },
            None => Err(DomainError::NotFound(format!("{dt} cannot be listed."))),
        };
        match result {
            Ok(RecordPage { page, .. }) => (Some(page), None, None),
            Err(e) => (None, Some(super::shown(e)), None),
        }
    };
    let cols = columns(dt);
    let list_base = format!("{base}/{}", dt.key());
    let body = html! {
        p.small { a href=(format!("/console/companies/{id}")) { "← " (company.name) } }
        h1 { "Data: " code { (dt.key()) } }
        (browser_nav(&base, dt, &types))
        @if dt != DataType::CompanyInfo {
            form.row method="get" action=(list_base) role="search" {
                div { label for="query" { "Query" }
                      input #query name="query" value=[query] size="40" placeholder="amount>100 && currency=GBP"; }
                div { label for="orderBy" { "Order by" }
                      input #orderBy name="orderBy" value=[order] size="16" placeholder="-createdDate"; }
                div { label for="pageSize" { "Page size" }
                      select #pageSize name="pageSize" {
                          @for n in [25, 100, 500] { option value=(n) selected[page_size == Some(n)] { (n) } } } }
                button type="submit" { "Run" }
            }
        }
        @if let Some((_, e)) = &error { div.notice.error role="alert" #query-error { (e) } }
        @if let Some(v) = &json { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
        @if let Some(p) = &rows {
            div.table-wrap {
                table #records {
                    caption.skip { "Records" }
                    thead { tr { th { "Id" } @for (_, label) in cols { th { (label) } } } }
                    tbody {
                        @for text in &p.items {
                            @let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                            @let rid = cell(v.get("id"));
                            tr {
                                td { a href=(format!("{list_base}/{}", urlencode(&rid))) { code { (rid) } } }
                                @for (key, _) in cols { td { (cell(v.get(*key))) } }
                            }
                        }
                        @if p.items.is_empty() { tr { td colspan=(cols.len() + 1) { span.muted { "No record matches." } } } }
                    }
                }
            }
            (pager(&list_base, &[("query", query), ("orderBy", order), ("pageSize", page_size.map(|n| n.to_string()).as_deref())], p.request.page, p.request.page_size, p.total))
        }
    };
    let status = error.as_ref().map_or(StatusCode::OK, |(status, _)| *status);
    respond(status, layout(&session, Nav::Companies, &format!("{} · {}", dt.key(), company.name), None, body))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

async fn record(
    State(s): State<AppState>,
    session: Session,
    Path((raw, conn, dt_raw, record_id)): Path<(String, String, String, String)>,
) -> Response {
    let id = try_page!(company_id(&raw));
    let conn = try_page!(connection_id(&conn));
    let Ok(dt) = dt_raw.parse::<DataType>() else { return failure(DomainError::NotFound(format!("Unknown data type {dt_raw}."))) };
    match s.platform.records().get(id, conn, dt, &record_id).await {
        Ok(v) => {
            let list = format!("/console/companies/{id}/connections/{conn}/data/{}", dt.key());
            let body = html! {
                p.small { a href=(list) { "← " (dt.key()) } }
                h1 { "Record " code { (record_id) } }
                pre #record-json { (serde_json::to_string_pretty(&v).unwrap_or_default()) }
            };
            respond(StatusCode::OK, layout(&session, Nav::Companies, &record_id, None, body))
        }
        Err(e) => failure(e),
    }
}
