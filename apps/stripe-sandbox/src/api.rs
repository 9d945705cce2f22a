//! The read API: `/v1/account`, `/v1/balance`, and list + retrieve for every object type and
//! events, with Stripe's list conventions, errors and headers.

use crate::state::{API_VERSION, Sandbox};
use crate::store::{Account, EventData, EventRec, Kind, Mode};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// Events older than this are not listed or retrievable (Stripe keeps 30 days).
pub const EVENT_RETENTION_SECS: i64 = 30 * 86_400;

/// A Stripe error response.
pub fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str, param: Option<&str>) -> Response {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!("https://stripe.com/docs/error-codes/{}", c.replace('_', "-")));
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    json_response(status, json!({"error": e}).to_string())
}

/// A JSON response from a rendered body.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    r
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(0)).unwrap_or(0)
}

/// The platform secret key from `Authorization: Bearer sk_…` or HTTP Basic (key as user name).
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    if let Some(k) = v.strip_prefix("Bearer ") {
        return Some(k.trim().to_owned());
    }
    let b = v.strip_prefix("Basic ")?;
    use base64::Engine;
    let raw = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?).ok()?;
    Some(raw.split(':').next().unwrap_or_default().to_owned())
}

fn masked(key: &str) -> String {
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{}****{tail}", key.chars().take(8).collect::<String>())
}

/// Resolves the caller: the key's mode and the connected account it may read.
pub fn authorize(s: &Sandbox, headers: &HeaderMap) -> Result<(Mode, Arc<std::sync::RwLock<Account>>), Response> {
    let Some(key) = presented_key(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            None,
        ));
    };
    let Some(mode) = s.mode_of_key(&key) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("api_key_invalid"),
            &format!("Invalid API Key provided: {}", masked(&key)),
            None,
        ));
    };
    let Some(acct) = headers.get("stripe-account").and_then(|v| v.to_str().ok()).map(str::trim) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "This sandbox serves connected accounts only: send the Stripe-Account header.",
            Some("Stripe-Account"),
        ));
    };
    let denied = || {
        error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("account_invalid"),
            &format!(
                "The provided key '{}' does not have access to account '{acct}' (or that account does not exist). Application access may have been revoked.",
                masked(&key)
            ),
            None,
        )
    };
    let account = s.account(acct).ok_or_else(denied)?;
    {
        let a = account.read().expect("account lock");
        if a.mode != mode || !a.connected {
            return Err(denied());
        }
    }
    Ok((mode, account))
}

/// Parsed list parameters.
#[derive(Debug, Default)]
pub struct ListParams {
    limit: usize,
    starting_after: Option<String>,
    ending_before: Option<String>,
    created_min: Option<i64>,
    created_max: Option<i64>,
    filters: Vec<(String, String)>,
    types: Vec<String>,
    expand: Vec<String>,
}

/// Stripe's includable fields, sent only when expanded: (object kind, field).
const INCLUDABLE: &[(Kind, &str)] = &[(Kind::Prices, "currency_options")];

/// The object as sent: includable fields left out unless `expanded(field)`.
fn sent(kind: Kind, json: &str, expanded: impl Fn(&str) -> bool) -> String {
    let hidden: Vec<&str> = INCLUDABLE.iter().filter(|(k, f)| *k == kind && !expanded(f)).map(|(_, f)| *f).collect();
    if hidden.is_empty() || !hidden.iter().any(|f| json.contains(&format!("\"{f}\""))) {
        return json.to_owned();
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(mut o)) => {
            for f in hidden {
                o.remove(f);
            }
            Value::Object(o).to_string()
        }
        _ => json.to_owned(),
    }
}

fn parse_list(raw: Option<&str>, kind_filters: &[&str]) -> Result<ListParams, Response> {
    let mut p = ListParams { limit: 10, ..Default::default() };
    let bad = |param: &str, msg: String| {
        error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("parameter_invalid_integer"), &msg, Some(param))
    };
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let int = || v.parse::<i64>().map_err(|_| bad(&k, format!("Invalid integer: {v}")));
        match k.as_ref() {
            "limit" => {
                let n = int()?;
                if !(1..=100).contains(&n) {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        Some("parameter_invalid_integer"),
                        &format!("Invalid limit: must be between 1 and 100; got {n}."),
                        Some("limit"),
                    ));
                }
                p.limit = usize::try_from(n).unwrap_or(10);
            }
            "starting_after" => p.starting_after = Some(v.into_owned()),
            "ending_before" => p.ending_before = Some(v.into_owned()),
            "created" => {
                let n = int()?;
                p.created_min = Some(n);
                p.created_max = Some(n);
            }
            "created[gt]" => {
                let n = int()?.checked_add(1).ok_or_else(|| bad(&k, format!("Invalid integer: {v}")))?;
                p.created_min = Some(p.created_min.unwrap_or(i64::MIN).max(n));
            }
            "created[gte]" => p.created_min = Some(p.created_min.unwrap_or(i64::MIN).max(int()?)),
            "created[lt]" => {
                let n = int()?.checked_sub(1).ok_or_else(|| bad(&k, format!("Invalid integer: {v}")))?;
                p.created_max = Some(p.created_max.unwrap_or(i64::MAX).min(n));
            }
            "created[lte]" => p.created_max = Some(p.created_max.unwrap_or(i64::MAX).min(int()?)),
            "types[]" => p.types.push(v.into_owned()),
            "expand[]" | "expand" => p.expand.push(v.into_owned()),
            other if kind_filters.contains(&other) => p.filters.push((other.to_owned(), v.into_owned())),
            other if other.starts_with("types[") => p.types.push(v.into_owned()),
            other => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_unknown"),
                    &format!("Received unknown parameter: {other}"),
                    Some(other),
                ));
            }
        }
    }
    if p.starting_after.is_some() && p.ending_before.is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "You may only specify one of these parameters: ending_before, starting_after.",
            Some("ending_before"),
        ));
    }
    if p.types.len() > 20 {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "types may contain at most 20 entries.", Some("types")));
    }
    Ok(p)
}

/// Walks items (oldest first) newest-first with Stripe's cursor rules. `key(i)` gives
/// (created, id) and `keep(i)` whether item `i` passes the filters. Returns indices newest first
/// and `has_more`.
fn walk(
    len: usize,
    created: impl Fn(usize) -> i64,
    position: Option<usize>,
    forward: bool,
    p: &ListParams,
    keep: impl Fn(usize) -> bool,
) -> (Vec<usize>, bool) {
    let lo = p.created_min.map_or(0, |m| partition(len, |i| created(i) < m));
    let hi = p.created_max.map_or(len, |m| partition(len, |i| created(i) <= m));
    let mut out = Vec::with_capacity(p.limit + 1);
    if forward {
        // ending_before: items newer than the cursor, the `limit` closest to it.
        let start = position.map_or(lo, |pos| (pos + 1).max(lo));
        let mut i = start;
        while i < hi && out.len() <= p.limit {
            if keep(i) {
                out.push(i);
            }
            i += 1;
        }
        let more = out.len() > p.limit;
        out.truncate(p.limit);
        out.reverse();
        (out, more)
    } else {
        let end = position.map_or(hi, |pos| pos.min(hi));
        let mut i = end;
        while i > lo && out.len() <= p.limit {
            i -= 1;
            if keep(i) {
                out.push(i);
            }
        }
        let more = out.len() > p.limit;
        out.truncate(p.limit);
        (out, more)
    }
}

/// The first index in `0..len` for which `pred` is false (`pred` must be true then false).
fn partition(len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn list_body(url: &str, items: impl Iterator<Item = String>, more: bool) -> String {
    let mut body = String::with_capacity(64 * 1024);
    body.push_str("{\"object\":\"list\",\"data\":[");
    for (n, item) in items.enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&item);
    }
    body.push_str("],\"has_more\":");
    body.push_str(if more { "true" } else { "false" });
    body.push_str(",\"url\":\"");
    body.push_str(url);
    body.push_str("\"}");
    body
}

/// `GET /v1/{list}` for object lists and events.
pub async fn list(State(s): State<Arc<Sandbox>>, Path(name): Path<String>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if name == "events" {
        return list_events(&s, &headers, q.as_deref());
    }
    let Some(kind) = Kind::from_list_name(&name) else {
        return unrecognized("GET", &format!("/v1/{name}"));
    };
    list_kind(&s, &headers, q.as_deref(), kind, &format!("/v1/{name}"))
}

/// `GET /v1/balance/history` (old alias of balance transactions).
pub async fn balance_history(State(s): State<Arc<Sandbox>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    list_kind(&s, &headers, q.as_deref(), Kind::BalanceTransactions, "/v1/balance/history")
}

fn unrecognized(method: &str, path: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        &format!(
            "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
        ),
        None,
    )
}

fn list_kind(s: &Sandbox, headers: &HeaderMap, q: Option<&str>, kind: Kind, url: &str) -> Response {
    let (_, account) = match authorize(s, headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = match parse_list(q, kind.filters()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let a = account.read().expect("account lock");
    let empty = crate::store::Collection::default();
    let coll = a.lists.get(&kind).unwrap_or(&empty);
    let cursor = p.starting_after.as_deref().or(p.ending_before.as_deref());
    let position = match cursor {
        Some(id) => match coll.index.get(id) {
            Some(&i) => Some(i),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such {}: '{id}'", kind.object_name()),
                    Some(if p.starting_after.is_some() { "starting_after" } else { "ending_before" }),
                );
            }
        },
        None => None,
    };
    let filters: Vec<(usize, &str)> =
        p.filters.iter().filter_map(|(k, v)| kind.filters().iter().position(|f| f == k).map(|i| (i, v.as_str()))).collect();
    let items = &coll.items;
    let (idx, more) = walk(
        items.len(),
        |i| items[i].created,
        position,
        p.ending_before.is_some(),
        &p,
        |i| {
            let o = &items[i];
            !o.deleted && filters.iter().all(|(fi, v)| o.attrs[*fi].as_deref() == Some(*v))
        },
    );
    let expanded = |f: &str| p.expand.iter().any(|e| e.strip_prefix("data.") == Some(f));
    json_response(StatusCode::OK, list_body(url, idx.into_iter().map(|i| sent(kind, &items[i].json, expanded)), more))
}

/// Renders an event for an account.
pub fn render_event(a: &Account, e: &EventRec) -> String {
    let object = match &e.data {
        // An event's object never carries includable fields.
        EventData::Snapshot(j) => match INCLUDABLE.iter().find(|(k, _)| j.contains(&format!("\"object\":\"{}\"", k.object_name()))) {
            Some((kind, _)) => sent(*kind, j, |_| false),
            None => j.to_string(),
        },
        EventData::Current(kind, id) => {
            a.lists.get(kind).and_then(|c| c.get(id)).map_or_else(|| json!({"id": &**id}).to_string(), |o| sent(*kind, &o.json, |_| false))
        }
    };
    let previous = e.previous.as_deref().map(|p| format!(",\"previous_attributes\":{p}")).unwrap_or_default();
    format!(
        "{{\"id\":\"{}\",\"object\":\"event\",\"account\":\"{}\",\"api_version\":\"{API_VERSION}\",\"context\":null,\"created\":{},\"data\":{{\"object\":{object}{previous}}},\"livemode\":{},\"pending_webhooks\":0,\"request\":{{\"id\":null,\"idempotency_key\":null}},\"type\":\"{}\"}}",
        e.id,
        a.id,
        e.created,
        a.mode == Mode::Live,
        e.event_type
    )
}

fn type_matches(pattern: &str, t: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => t.starts_with(prefix),
        None => pattern == t,
    }
}

fn list_events(s: &Sandbox, headers: &HeaderMap, q: Option<&str>) -> Response {
    let (_, account) = match authorize(s, headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut p = match parse_list(q, &["type", "delivery_success"]) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let floor = now() - EVENT_RETENTION_SECS;
    p.created_min = Some(p.created_min.unwrap_or(i64::MIN).max(floor));
    let a = account.read().expect("account lock");
    let type_filter = p.filters.iter().find(|(k, _)| k == "type").map(|(_, v)| v.clone());
    let position = match p.starting_after.as_deref().or(p.ending_before.as_deref()) {
        Some(id) => match a.event_index.get(id) {
            Some(&i) if a.events[i].created >= floor => Some(i),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such event: '{id}'"),
                    Some(if p.starting_after.is_some() { "starting_after" } else { "ending_before" }),
                );
            }
        },
        None => None,
    };
    let events = &a.events;
    let (idx, more) = walk(
        events.len(),
        |i| events[i].created,
        position,
        p.ending_before.is_some(),
        &p,
        |i| {
            let t = &*events[i].event_type;
            type_filter.as_deref().is_none_or(|f| type_matches(f, t)) && (p.types.is_empty() || p.types.iter().any(|x| x == t))
        },
    );
    json_response(StatusCode::OK, list_body("/v1/events", idx.into_iter().map(|i| render_event(&a, &events[i])), more))
}

/// `GET /v1/{list}/{id}`.
pub async fn retrieve(
    State(s): State<Arc<Sandbox>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (_, account) = match authorize(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let a = account.read().expect("account lock");
    if name == "events" {
        return match a.event_index.get(id.as_str()).map(|&i| &a.events[i]).filter(|e| e.created >= now() - EVENT_RETENTION_SECS) {
            Some(e) => json_response(StatusCode::OK, render_event(&a, e)),
            None => missing("event", &id),
        };
    }
    let Some(kind) = Kind::from_list_name(&name) else {
        return unrecognized("GET", &format!("/v1/{name}/{id}"));
    };
    match a.lists.get(&kind).and_then(|c| c.get(&id)) {
        Some(o) if o.deleted => json_response(StatusCode::OK, crate::objects::deleted(&o.id, kind.object_name()).to_string()),
        Some(o) => {
            let expand: Vec<String> = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .filter(|(k, _)| k == "expand[]" || k == "expand")
                .map(|(_, v)| v.into_owned())
                .collect();
            json_response(StatusCode::OK, sent(kind, &o.json, |f| expand.iter().any(|e| e == f)))
        }
        None => missing(kind.object_name(), &id),
    }
}

fn missing(object: &str, id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "invalid_request_error", Some("resource_missing"), &format!("No such {object}: '{id}'"), Some("id"))
}

/// `GET /v1/account`.
pub async fn account(State(s): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    let (_, account) = match authorize(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let a = account.read().expect("account lock");
    json_response(StatusCode::OK, Value::Object(a.profile.clone()).to_string())
}

/// `GET /v1/balance`: sums of balance transactions per currency.
pub async fn balance(State(s): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    let (mode, account) = match authorize(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let a = account.read().expect("account lock");
    let mut sums: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
    if let Some(c) = a.lists.get(&Kind::BalanceTransactions) {
        for o in c.items.iter().filter(|o| !o.deleted) {
            if let (Some((net, available)), Some((_, cur))) = (o.net, &o.amount) {
                let e = sums.entry(cur.to_string()).or_default();
                if available {
                    e.0 += net;
                } else {
                    e.1 += net;
                }
            }
        }
    }
    let entry = |amount: i64, cur: &str| json!({"amount": amount, "currency": cur, "source_types": {"card": amount}});
    let available: Vec<Value> = sums.iter().map(|(c, (av, _))| entry(*av, c)).collect();
    let pending: Vec<Value> = sums.iter().map(|(c, (_, pe))| entry(*pe, c)).collect();
    let reserved: Vec<Value> = sums.keys().map(|c| json!({"amount": 0, "currency": c})).collect();
    json_response(
        StatusCode::OK,
        json!({"object": "balance", "available": available, "connect_reserved": reserved, "instant_available": [], "livemode": mode == Mode::Live, "pending": pending, "refund_and_dispute_prefunding": null}).to_string(),
    )
}

/// Fallback for unknown `/v1` paths.
pub async fn not_found(req: axum::extract::Request) -> Response {
    unrecognized(req.method().as_str(), req.uri().path())
}

/// `Stripe-Version` echoed as requested (or the pinned version).
pub fn version_of(headers: &HeaderMap) -> String {
    headers.get("stripe-version").and_then(|v| v.to_str().ok()).map_or_else(|| API_VERSION.to_owned(), str::to_owned)
}
