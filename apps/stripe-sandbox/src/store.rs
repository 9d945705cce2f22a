//! In-memory state: accounts, their objects per list (kept oldest-first, served newest-first),
//! events, OAuth codes and tokens. Objects are stored as rendered JSON so a page is a copy.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A list endpoint's object type, by Stripe list name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `customers`
    Customers,
    /// `charges`
    Charges,
    /// `refunds`
    Refunds,
    /// `disputes`
    Disputes,
    /// `payment_intents`
    PaymentIntents,
    /// `products`
    Products,
    /// `prices`
    Prices,
    /// `balance_transactions`
    BalanceTransactions,
    /// `payouts`
    Payouts,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 9] = [
        Kind::Customers,
        Kind::Charges,
        Kind::Refunds,
        Kind::Disputes,
        Kind::PaymentIntents,
        Kind::Products,
        Kind::Prices,
        Kind::BalanceTransactions,
        Kind::Payouts,
    ];

    /// The list name (`customers`).
    pub fn list_name(self) -> &'static str {
        match self {
            Kind::Customers => "customers",
            Kind::Charges => "charges",
            Kind::Refunds => "refunds",
            Kind::Disputes => "disputes",
            Kind::PaymentIntents => "payment_intents",
            Kind::Products => "products",
            Kind::Prices => "prices",
            Kind::BalanceTransactions => "balance_transactions",
            Kind::Payouts => "payouts",
        }
    }

    /// The object name (`customer`).
    pub fn object_name(self) -> &'static str {
        match self {
            Kind::Customers => "customer",
            Kind::Charges => "charge",
            Kind::Refunds => "refund",
            Kind::Disputes => "dispute",
            Kind::PaymentIntents => "payment_intent",
            Kind::Products => "product",
            Kind::Prices => "price",
            Kind::BalanceTransactions => "balance_transaction",
            Kind::Payouts => "payout",
        }
    }

    /// The id prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Customers => "cus_",
            Kind::Charges => "ch_",
            Kind::Refunds => "re_",
            Kind::Disputes => "dp_",
            Kind::PaymentIntents => "pi_",
            Kind::Products => "prod_",
            Kind::Prices => "price_",
            Kind::BalanceTransactions => "txn_",
            Kind::Payouts => "po_",
        }
    }

    /// Parses a list name.
    pub fn from_list_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.list_name() == s)
    }

    /// Whether Stripe lets these be deleted (they then retrieve as `{id, object, deleted: true}`).
    pub fn deletable(self) -> bool {
        matches!(self, Kind::Customers | Kind::Products | Kind::Prices)
    }

    /// Query parameters this list filters on, beyond paging and `created`.
    pub fn filters(self) -> &'static [&'static str] {
        match self {
            Kind::Customers => &["email"],
            Kind::Charges => &["customer", "payment_intent"],
            Kind::Refunds => &["charge", "payment_intent"],
            Kind::Disputes => &["charge", "payment_intent"],
            Kind::PaymentIntents => &["customer"],
            Kind::Products => &["active", "shippable"],
            Kind::Prices => &["active", "currency", "product", "type"],
            Kind::BalanceTransactions => &["currency", "payout", "source", "type"],
            Kind::Payouts => &["status"],
        }
    }
}

/// One stored object.
#[derive(Debug)]
pub struct Obj {
    /// Its id.
    pub id: Box<str>,
    /// Unix seconds.
    pub created: i64,
    /// The object's JSON (for a deleted object, its last state).
    pub json: Box<str>,
    /// Deleted objects are kept for retrieve and hidden from lists.
    pub deleted: bool,
    /// Values of the list filters, in [`Kind::filters`] order.
    pub attrs: Box<[Option<Box<str>>]>,
    /// `amount` in minor units and `currency`, for the summary.
    pub amount: Option<(i64, Box<str>)>,
    /// For balance transactions: `net` and whether it is available (for `/v1/balance`).
    pub net: Option<(i64, bool)>,
}

fn attr_string(v: Option<&Value>) -> Option<Box<str>> {
    match v? {
        Value::String(s) => Some(s.as_str().into()),
        Value::Bool(b) => Some(b.to_string().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(Into::into),
        _ => None,
    }
}

impl Obj {
    /// Builds the stored form of a JSON object of `kind`.
    pub fn from_value(kind: Kind, v: &Value) -> Self {
        let id = v["id"].as_str().unwrap_or_default().into();
        let created = v["created"].as_i64().unwrap_or(0);
        let attrs = kind
            .filters()
            .iter()
            .map(|f| match (kind, *f) {
                // A balance transaction belongs to the payout it is for (its own payout and
                // payout-failure transactions); the sandbox does not model payout reconciliation.
                (Kind::BalanceTransactions, "payout") => v["source"].as_str().filter(|s| s.starts_with("po_")).map(Into::into),
                _ => attr_string(v.get(*f)),
            })
            .collect();
        let amount = match (v.get("amount").and_then(Value::as_i64), v.get("currency").and_then(Value::as_str)) {
            (Some(a), Some(c)) => Some((a, c.into())),
            _ => None,
        };
        let net = (kind == Kind::BalanceTransactions).then(|| (v["net"].as_i64().unwrap_or(0), v["status"] == "available"));
        Self { id, created, json: v.to_string().into(), deleted: false, attrs, amount, net }
    }

    /// The object parsed back (for updates).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// One list, ordered oldest first by (`created`, `id`).
#[derive(Debug, Default)]
pub struct Collection {
    /// Objects, oldest first.
    pub items: Vec<Arc<Obj>>,
    /// Position of each id in `items`.
    pub index: HashMap<Box<str>, usize>,
    /// How many are not deleted.
    pub live: usize,
}

impl Collection {
    /// Adds or replaces an object, keeping the order.
    pub fn upsert(&mut self, obj: Obj) {
        let obj = Arc::new(obj);
        if let Some(&i) = self.index.get(&obj.id) {
            if self.items[i].created == obj.created {
                if self.items[i].deleted != obj.deleted {
                    if obj.deleted {
                        self.live -= 1;
                    } else {
                        self.live += 1;
                    }
                }
                self.items[i] = obj;
                return;
            }
            self.remove_at(i);
        }
        if !obj.deleted {
            self.live += 1;
        }
        let key = (obj.created, obj.id.clone());
        let at_end = self.items.last().is_none_or(|l| (l.created, l.id.clone()) < key);
        if at_end {
            self.index.insert(obj.id.clone(), self.items.len());
            self.items.push(obj);
        } else {
            let pos = self.items.partition_point(|o| (o.created, o.id.clone()) < key);
            self.items.insert(pos, obj);
            self.reindex_from(pos);
        }
    }

    fn remove_at(&mut self, i: usize) {
        let old = self.items.remove(i);
        if !old.deleted {
            self.live -= 1;
        }
        self.index.remove(&old.id);
        self.reindex_from(i);
    }

    fn reindex_from(&mut self, from: usize) {
        for (i, o) in self.items.iter().enumerate().skip(from) {
            self.index.insert(o.id.clone(), i);
        }
    }

    /// Builds a list from objects in any order (sorts once; for generated data).
    pub fn from_unsorted(mut objs: Vec<Obj>) -> Self {
        objs.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let live = objs.iter().filter(|o| !o.deleted).count();
        let items: Vec<Arc<Obj>> = objs.into_iter().map(Arc::new).collect();
        let index = items.iter().enumerate().map(|(i, o)| (o.id.clone(), i)).collect();
        Self { items, index, live }
    }

    /// Finds an object by id.
    pub fn get(&self, id: &str) -> Option<&Arc<Obj>> {
        self.index.get(id).map(|&i| &self.items[i])
    }
}

/// What an event's `data.object` is.
#[derive(Debug, Clone)]
pub enum EventData {
    /// The object as it is now (generated history).
    Current(Kind, Box<str>),
    /// A snapshot taken when the event happened.
    Snapshot(Box<str>),
}

/// One event.
#[derive(Debug, Clone)]
pub struct EventRec {
    /// `evt_…`
    pub id: Box<str>,
    /// Unix seconds.
    pub created: i64,
    /// Order of emission, so events of the same second keep the order they happened in.
    pub seq: u64,
    /// `customer.created`, …
    pub event_type: Box<str>,
    /// The object.
    pub data: EventData,
    /// `data.previous_attributes`, for updates.
    pub previous: Option<Box<str>>,
}

/// Test or live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Test mode.
    Test,
    /// Live mode.
    Live,
}

impl Mode {
    /// `test` or `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

/// A Stripe account.
#[derive(Debug)]
pub struct Account {
    /// `acct_…`
    pub id: String,
    /// The mode its data lives in.
    pub mode: Mode,
    /// Connected to the platform.
    pub connected: bool,
    /// Granted scope, once connected.
    pub scope: Option<String>,
    /// The account object's fields.
    pub profile: Map<String, Value>,
    /// Objects per list.
    pub lists: HashMap<Kind, Collection>,
    /// Events, oldest first.
    pub events: Vec<EventRec>,
    /// Event id → position.
    pub event_index: HashMap<Box<str>, usize>,
    /// Requests per endpoint since the last reset.
    pub stats: HashMap<String, u64>,
    /// Requests per `Host` header since the last reset (tells apart clients that reach the sandbox
    /// under different addresses, e.g. 127.0.0.1 and 127.0.0.2).
    pub hosts: HashMap<String, u64>,
    /// Requests that reached the rate limiter per 100 ms since `timeline_start` (the first such
    /// request after the last reset), and how many of them it refused.
    pub timeline: Vec<u32>,
    /// When the timeline starts.
    pub timeline_start: Option<std::time::Instant>,
    /// Requests refused by the rate limiter (not injected 429s) since the last reset.
    pub rate_limited: u64,
    /// Generator state for objects created later through the control API.
    pub rng: crate::rng::Rng,
    /// The next event sequence number.
    pub next_seq: u64,
}

impl Account {
    /// A list (created empty on first use).
    pub fn list(&mut self, kind: Kind) -> &mut Collection {
        self.lists.entry(kind).or_default()
    }

    /// Replaces all events with generated ones (numbered in generation order), sorted once.
    pub fn set_events(&mut self, mut events: Vec<EventRec>) {
        for (i, e) in events.iter_mut().enumerate() {
            e.seq = i as u64;
        }
        events.sort_by_key(|e| (e.created, e.seq));
        self.next_seq = events.len() as u64;
        self.event_index = events.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect();
        self.events = events;
    }

    /// Appends an event after every earlier one (by time, then emission order).
    pub fn push_event(&mut self, mut e: EventRec) {
        e.seq = self.next_seq;
        self.next_seq += 1;
        let pos = self.events.partition_point(|x| (x.created, x.seq) <= (e.created, e.seq));
        if pos == self.events.len() {
            self.event_index.insert(e.id.clone(), pos);
            self.events.push(e);
        } else {
            self.events.insert(pos, e);
            for (i, x) in self.events.iter().enumerate().skip(pos) {
                self.event_index.insert(x.id.clone(), i);
            }
        }
    }
}
