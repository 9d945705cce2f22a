//! The control API under `/_sandbox/` (documented in the sandbox's README): accounts, objects,
//! webhook endpoints, rate limits, faults, summaries and request counters.

use crate::api::{error, json_response};
use crate::generator::Profile;
use crate::objects::{self, ChargeState, Ctx};
use crate::state::{Endpoint, Fault, Sandbox};
use crate::store::{Account, EventData, Kind, Mode, Obj};
use crate::webhooks::{emit, now};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

fn bad(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", None, message, None)
}

/// Body of `POST /_sandbox/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    mode: Option<String>,
    seed: Option<u64>,
    #[serde(default)]
    connected: bool,
    #[serde(default)]
    profile: Option<Profile>,
}

/// `POST /_sandbox/accounts`.
pub async fn create_account(State(s): State<Arc<Sandbox>>, body: Option<Json<NewAccount>>) -> Response {
    let b = body.map_or(NewAccount { mode: None, seed: None, connected: false, profile: None }, |Json(b)| b);
    let mode = match b.mode.as_deref().unwrap_or("test") {
        "test" => Mode::Test,
        "live" => Mode::Live,
        other => return bad(&format!("mode must be 'test' or 'live', not '{other}'")),
    };
    let profile = b.profile.unwrap_or_default();
    let s2 = s.clone();
    let id = tokio::task::spawn_blocking(move || s2.create_account(mode, b.seed, b.connected, &profile)).await.unwrap_or_default();
    json_response(StatusCode::OK, json!({"id": id}).to_string())
}

/// `GET /_sandbox/accounts`.
pub async fn list_accounts(State(s): State<Arc<Sandbox>>) -> Response {
    let all = s.accounts.read().expect("accounts lock");
    let mut v: Vec<Value> = all
        .values()
        .filter_map(|a| a.read().ok().map(|a| json!({"id": a.id, "mode": a.mode.as_str(), "connected": a.connected, "scope": a.scope})))
        .collect();
    v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    json_response(StatusCode::OK, json!({"data": v}).to_string())
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn get_json(a: &Account, kind: Kind, id: &str) -> Option<Value> {
    a.lists.get(&kind).and_then(|c| c.get(id)).filter(|o| !o.deleted).map(|o| o.value())
}

fn store(a: &mut Account, kind: Kind, v: &Value) {
    a.list(kind).upsert(Obj::from_value(kind, v));
}

fn event_for_create(kind: Kind, v: &Value) -> Vec<&'static str> {
    match kind {
        Kind::Customers => vec!["customer.created"],
        Kind::Products => vec!["product.created"],
        Kind::Prices => vec!["price.created"],
        Kind::PaymentIntents => vec!["payment_intent.created"],
        Kind::Charges => match v["status"].as_str() {
            Some("failed") => vec!["charge.failed"],
            Some("pending") => vec!["charge.pending"],
            _ => vec!["charge.succeeded"],
        },
        Kind::Refunds => vec!["refund.created"],
        Kind::Disputes => vec!["charge.dispute.created"],
        Kind::Payouts => match v["status"].as_str() {
            Some("paid") => vec!["payout.created", "payout.paid"],
            Some("failed") => vec!["payout.created", "payout.failed"],
            _ => vec!["payout.created"],
        },
        Kind::BalanceTransactions => vec![],
    }
}

fn event_for_update(kind: Kind, v: &Value) -> Option<&'static str> {
    Some(match kind {
        Kind::Customers => "customer.updated",
        Kind::Products => "product.updated",
        Kind::Prices => "price.updated",
        Kind::Charges => "charge.updated",
        Kind::Refunds => "refund.updated",
        Kind::Disputes if matches!(v["status"].as_str(), Some("won" | "lost" | "warning_closed")) => "charge.dispute.closed",
        Kind::Disputes => "charge.dispute.updated",
        Kind::Payouts => match v["status"].as_str() {
            Some("paid") => "payout.paid",
            Some("failed") => "payout.failed",
            Some("canceled") => "payout.canceled",
            _ => "payout.updated",
        },
        Kind::PaymentIntents => match v["status"].as_str() {
            Some("succeeded") => "payment_intent.succeeded",
            Some("canceled") => "payment_intent.canceled",
            Some("processing") => "payment_intent.processing",
            _ => return None,
        },
        Kind::BalanceTransactions => return None,
    })
}

/// Builds the default object of a kind for a create, with related writes (balance transactions,
/// charge updates) applied to the account. Returns the object.
fn default_object(s: &Arc<Sandbox>, a: &mut Account, kind: Kind, body: &Value) -> Result<Value, Response> {
    let ctx_id = a.id.clone();
    let ctx = Ctx { mode: a.mode, account: &ctx_id };
    let t = body["created"].as_i64().unwrap_or_else(now);
    let id = body["id"].as_str().map_or_else(|| format!("{}{}", kind.prefix(), s.token(24)), str::to_owned);
    if a.lists.get(&kind).and_then(|c| c.get(&id)).is_some() {
        return Err(bad(&format!("An object with id {id} already exists.")));
    }
    let currency = body["currency"].as_str().unwrap_or("usd").to_owned();
    let amount = body["amount"].as_i64().unwrap_or(1_000);
    let txn = || format!("txn_{}", s.token(24));
    Ok(match kind {
        Kind::Customers => objects::customer(
            &ctx,
            &id,
            t,
            body["name"].as_str().unwrap_or("New Customer"),
            body["email"].as_str().unwrap_or("new@example.com"),
            None,
            None,
            None,
            None,
            None,
        ),
        Kind::Products => objects::product(&ctx, &id, t, body["name"].as_str().unwrap_or("New Product"), None, true, false, None),
        Kind::Prices => {
            let product = body["product"].as_str().ok_or_else(|| bad("A price needs a product."))?;
            if get_json(a, Kind::Products, product).is_none() {
                return Err(bad(&format!("No such product: '{product}'")));
            }
            objects::price(
                &ctx,
                &id,
                t,
                product,
                &currency,
                body["unit_amount"].as_i64().unwrap_or(amount),
                body.get("recurring").is_some_and(|r| !r.is_null()),
                true,
                None,
            )
        }
        Kind::PaymentIntents => {
            objects::payment_intent(&ctx, &id, t, amount, &currency, body["customer"].as_str(), "", "pm_sandbox", ChargeState::Captured)
        }
        Kind::Charges => {
            let state = match (body["status"].as_str(), body["captured"].as_bool()) {
                (Some("failed"), _) => ChargeState::Failed,
                (Some("pending"), _) => ChargeState::Pending,
                (_, Some(false)) => ChargeState::Uncaptured,
                _ => ChargeState::Captured,
            };
            let bt = (state == ChargeState::Captured).then(txn);
            if let Some(bt) = &bt {
                let v = objects::balance_transaction(
                    bt,
                    t,
                    amount,
                    objects::stripe_fee(amount, &currency),
                    &currency,
                    &id,
                    "charge",
                    "charge",
                    None,
                    true,
                );
                store(a, Kind::BalanceTransactions, &v);
            }
            objects::charge(
                &ctx,
                &id,
                t,
                amount,
                &currency,
                body["customer"].as_str(),
                body["payment_intent"].as_str().unwrap_or(""),
                "pm_sandbox",
                state,
                bt.as_deref(),
                "4242",
                "visa",
            )
        }
        Kind::Refunds => {
            let charge_id = body["charge"].as_str().ok_or_else(|| bad("A refund needs a charge."))?.to_owned();
            let mut ch = get_json(a, Kind::Charges, &charge_id).ok_or_else(|| bad(&format!("No such charge: '{charge_id}'")))?;
            let refundable = ch["amount"].as_i64().unwrap_or(0) - ch["amount_refunded"].as_i64().unwrap_or(0);
            let amount = body["amount"].as_i64().unwrap_or(refundable);
            if amount <= 0 || amount > refundable {
                return Err(bad(&format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})")));
            }
            let currency = ch["currency"].as_str().unwrap_or("usd").to_owned();
            let bt = txn();
            store(
                a,
                Kind::BalanceTransactions,
                &objects::balance_transaction(&bt, t, -amount, 0, &currency, &id, "refund", "refund", Some("REFUND FOR CHARGE"), true),
            );
            let refunded = ch["amount_refunded"].as_i64().unwrap_or(0) + amount;
            ch["amount_refunded"] = json!(refunded);
            ch["refunded"] = json!(refunded == ch["amount"].as_i64().unwrap_or(0));
            store(a, Kind::Charges, &ch);
            emit(s, a, "charge.refunded", EventData::Snapshot(ch.to_string().into()), None);
            objects::refund(
                &id,
                t,
                amount,
                &currency,
                &charge_id,
                ch["payment_intent"].as_str().unwrap_or(""),
                &bt,
                body["reason"].as_str(),
            )
        }
        Kind::Disputes => {
            let charge_id = body["charge"].as_str().ok_or_else(|| bad("A dispute needs a charge."))?.to_owned();
            let mut ch = get_json(a, Kind::Charges, &charge_id).ok_or_else(|| bad(&format!("No such charge: '{charge_id}'")))?;
            let amount = body["amount"].as_i64().unwrap_or_else(|| ch["amount"].as_i64().unwrap_or(0));
            let currency = ch["currency"].as_str().unwrap_or("usd").to_owned();
            let status = body["status"].as_str().unwrap_or("needs_response");
            let mut bts = Vec::new();
            if !status.starts_with("warning") {
                let bt = objects::balance_transaction(
                    &txn(),
                    t,
                    -amount,
                    1500,
                    &currency,
                    &id,
                    "adjustment",
                    "dispute",
                    Some("Chargeback withdrawal"),
                    true,
                );
                store(a, Kind::BalanceTransactions, &bt);
                bts.push(bt);
            }
            ch["disputed"] = json!(true);
            store(a, Kind::Charges, &ch);
            objects::dispute(
                &ctx,
                &id,
                t,
                amount,
                &currency,
                &charge_id,
                ch["payment_intent"].as_str().unwrap_or(""),
                status,
                body["reason"].as_str().unwrap_or("general"),
                bts,
            )
        }
        Kind::Payouts => {
            let bt = txn();
            let paid = body["status"].as_str() != Some("failed");
            store(
                a,
                Kind::BalanceTransactions,
                &objects::balance_transaction(&bt, t, -amount, 0, &currency, &id, "payout", "payout", Some("STRIPE PAYOUT"), true),
            );
            let fail = (!paid).then(txn);
            if let Some(f) = &fail {
                store(
                    a,
                    Kind::BalanceTransactions,
                    &objects::balance_transaction(
                        f,
                        t,
                        amount,
                        0,
                        &currency,
                        &id,
                        "payout_failure",
                        "payout_reversal",
                        Some("Payout failure"),
                        true,
                    ),
                );
            }
            objects::payout(&ctx, &id, t, amount, &currency, paid, &bt, fail.as_deref())
        }
        Kind::BalanceTransactions => objects::balance_transaction(
            &id,
            t,
            amount,
            body["fee"].as_i64().unwrap_or(0),
            &currency,
            body["source"].as_str().unwrap_or(""),
            body["type"].as_str().unwrap_or("adjustment"),
            "other_adjustment",
            None,
            true,
        ),
    })
}

fn resolve(s: &Sandbox, account: &str, list: &str) -> Result<(Arc<std::sync::RwLock<Account>>, Kind), Response> {
    let acc = s.account(account).ok_or_else(|| {
        error(StatusCode::NOT_FOUND, "invalid_request_error", Some("resource_missing"), &format!("No such account: '{account}'"), None)
    })?;
    let kind = Kind::from_list_name(list)
        .ok_or_else(|| bad(&format!("Unknown object type '{list}'; use a list name such as customers or charges.")))?;
    Ok((acc, kind))
}

/// `POST /_sandbox/accounts/{id}/objects/{type}`: create.
pub async fn create_object(
    State(s): State<Arc<Sandbox>>,
    Path((account, list)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map_or(json!({}), |Json(b)| b);
    if !body.is_object() {
        return bad("The body must be a JSON object.");
    }
    let (acc, kind) = match resolve(&s, &account, &list) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut a = acc.write().expect("account lock");
    let mut v = match default_object(&s, &mut a, kind, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    merge(&mut v, &body);
    store(&mut a, kind, &v);
    for t in event_for_create(kind, &v) {
        emit(&s, &mut a, t, EventData::Snapshot(v.to_string().into()), None);
    }
    json_response(StatusCode::OK, v.to_string())
}

/// `POST /_sandbox/accounts/{id}/objects/{type}/{objectId}`: update (merge).
pub async fn update_object(
    State(s): State<Arc<Sandbox>>,
    Path((account, list, id)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let (acc, kind) = match resolve(&s, &account, &list) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(patch) = body.as_object() else { return bad("The body must be a JSON object.") };
    if patch.contains_key("id") || patch.contains_key("created") {
        return bad("id and created cannot be changed.");
    }
    let mut a = acc.write().expect("account lock");
    let Some(mut v) = get_json(&a, kind, &id) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such {}: '{id}'", kind.object_name()),
            None,
        );
    };
    let previous: Map<String, Value> = patch.keys().map(|k| (k.clone(), v.get(k).cloned().unwrap_or(Value::Null))).collect();
    merge(&mut v, &body);
    if kind == Kind::Products {
        v["updated"] = json!(now());
    }
    store(&mut a, kind, &v);
    if let Some(t) = event_for_update(kind, &v) {
        emit(&s, &mut a, t, EventData::Snapshot(v.to_string().into()), Some(Value::Object(previous).to_string()));
    }
    json_response(StatusCode::OK, v.to_string())
}

/// `DELETE /_sandbox/accounts/{id}/objects/{type}/{objectId}`.
pub async fn delete_object(State(s): State<Arc<Sandbox>>, Path((account, list, id)): Path<(String, String, String)>) -> Response {
    let (acc, kind) = match resolve(&s, &account, &list) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !kind.deletable() {
        return bad(&format!("Stripe does not delete {list}; only customers, products and prices can be deleted."));
    }
    let mut a = acc.write().expect("account lock");
    let Some(mut v) = get_json(&a, kind, &id) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such {}: '{id}'", kind.object_name()),
            None,
        );
    };
    let mut obj = Obj::from_value(kind, &v);
    obj.deleted = true;
    a.list(kind).upsert(obj);
    v["deleted"] = json!(true);
    emit(&s, &mut a, &format!("{}.deleted", kind.object_name()), EventData::Snapshot(v.to_string().into()), None);
    json_response(StatusCode::OK, objects::deleted(&id, kind.object_name()).to_string())
}

/// Body of `POST /_sandbox/webhook_endpoints`.
#[derive(Debug, Deserialize)]
pub struct NewEndpoint {
    url: String,
}

/// `POST /_sandbox/webhook_endpoints`: every endpoint is signed with the platform's Connect secret.
pub async fn create_endpoint(State(s): State<Arc<Sandbox>>, Json(b): Json<NewEndpoint>) -> Response {
    if url::Url::parse(&b.url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
        return bad("url must be an http(s) URL.");
    }
    let id = format!("we_{}", s.token(24));
    s.endpoints.write().expect("endpoints lock").push(Endpoint { id: id.clone(), url: b.url });
    json_response(StatusCode::OK, json!({"id": id, "secret": s.config.webhook_secret}).to_string())
}

/// `PUT /_sandbox/keys` `{"test": "sk_test_…", "live": "sk_live_…"}`: rolls the platform's secret
/// keys, as a key rotation in Stripe's dashboard does: the old key is refused (401) at once.
pub async fn roll_keys(State(s): State<Arc<Sandbox>>, Json(b): Json<HashMap<String, String>>) -> Response {
    // All checked before any is rolled.
    if let Some((mode, _)) = b
        .iter()
        .find(|(m, k)| !matches!((m.as_str(), k.starts_with("sk_test_"), k.starts_with("sk_live_")), ("test", true, _) | ("live", _, true)))
    {
        return bad(&format!("Unknown mode '{mode}', or a key of the other mode."));
    }
    let mut keys = s.keys.write().expect("keys lock");
    for (mode, key) in &b {
        if mode == "test" {
            keys.0.clone_from(key);
        } else {
            keys.1.clone_from(key);
        }
    }
    json_response(StatusCode::OK, json!({"rolled": b.len()}).to_string())
}

/// `PUT /_sandbox/rate_limits`.
pub async fn set_rate_limits(State(s): State<Arc<Sandbox>>, Json(b): Json<HashMap<String, Option<u32>>>) -> Response {
    let mut r = s.rates.write().expect("rates lock");
    for (k, v) in &b {
        match k.as_str() {
            "test" => r.0 = *v,
            "live" => r.1 = *v,
            other => return bad(&format!("Unknown mode '{other}'.")),
        }
    }
    s.buckets.lock().expect("buckets lock").clear();
    json_response(StatusCode::OK, json!({"test": r.0, "live": r.1}).to_string())
}

/// Body of `PUT /_sandbox/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    endpoints: HashMap<String, Fault>,
}

/// `PUT /_sandbox/faults`.
pub async fn set_faults(State(s): State<Arc<Sandbox>>, Json(b): Json<Faults>) -> Response {
    for (k, f) in &b.endpoints {
        for p in [f.p429, f.p500, f.p_drop, f.p_truncate] {
            if !(0.0..=1.0).contains(&p) {
                return bad(&format!("Probabilities for {k} must be between 0 and 1."));
            }
        }
    }
    *s.faults.write().expect("faults lock") = b.endpoints;
    json_response(StatusCode::OK, json!({"ok": true}).to_string())
}

/// `DELETE /_sandbox/faults`.
pub async fn clear_faults(State(s): State<Arc<Sandbox>>) -> Response {
    s.faults.write().expect("faults lock").clear();
    json_response(StatusCode::OK, json!({"ok": true}).to_string())
}

/// `GET /_sandbox/accounts/{id}/summary`: counts and amount sums, the ground truth for sync tests.
pub async fn summary(State(s): State<Arc<Sandbox>>, Path(account): Path<String>) -> Response {
    let Some(acc) = s.account(&account) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such account: '{account}'"),
            None,
        );
    };
    let a = acc.read().expect("account lock");
    let mut counts = BTreeMap::new();
    let mut sums: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for kind in Kind::ALL {
        let c = a.lists.get(&kind);
        counts.insert(kind.list_name(), c.map_or(0, |c| c.live));
        if matches!(kind, Kind::Charges | Kind::Refunds | Kind::Disputes | Kind::Payouts | Kind::BalanceTransactions) {
            let m = sums.entry(kind.list_name()).or_default();
            for o in c.map(|c| c.items.as_slice()).unwrap_or_default().iter().filter(|o| !o.deleted) {
                if let Some((amt, cur)) = &o.amount {
                    *m.entry(cur.to_string()).or_default() += amt;
                }
            }
        }
    }
    counts.insert("events", a.events.len());
    json_response(StatusCode::OK, json!({"counts": counts, "amount_sums": sums}).to_string())
}

/// `GET /_sandbox/accounts/{id}/stats`.
pub async fn stats(State(s): State<Arc<Sandbox>>, Path(account): Path<String>) -> Response {
    let Some(acc) = s.account(&account) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such account: '{account}'"),
            None,
        );
    };
    let a = acc.read().expect("account lock");
    let total: u64 = a.stats.values().sum();
    let requests: BTreeMap<&String, &u64> = a.stats.iter().collect();
    let hosts: BTreeMap<&String, &u64> = a.hosts.iter().collect();
    // The most requests in any second (ten consecutive 100 ms slots).
    let max_per_second = a.timeline.windows(10.min(a.timeline.len().max(1))).map(|w| w.iter().sum::<u32>()).max().unwrap_or(0);
    json_response(
        StatusCode::OK,
        json!({"total": total, "requests": requests, "hosts": hosts, "timeline_ms": 100, "timeline": a.timeline,
            "max_per_second": max_per_second, "rate_limited": a.rate_limited})
        .to_string(),
    )
}

/// `DELETE /_sandbox/accounts/{id}/stats`.
pub async fn reset_stats(State(s): State<Arc<Sandbox>>, Path(account): Path<String>) -> Response {
    let Some(acc) = s.account(&account) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such account: '{account}'"),
            None,
        );
    };
    let mut a = acc.write().expect("account lock");
    a.stats.clear();
    a.hosts.clear();
    a.timeline.clear();
    a.timeline_start = None;
    a.rate_limited = 0;
    json_response(StatusCode::OK, json!({"total": 0, "requests": {}}).to_string())
}
