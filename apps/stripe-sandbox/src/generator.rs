//! The deterministic generator: a seed and a profile give byte-identical accounts. Every money
//! movement has its balance transaction (with fees), and every object the events Stripe would
//! have emitted for it.

use crate::objects::{self, ChargeState, Ctx};
use crate::rng::Rng;
use crate::store::{Collection, EventData, EventRec, Kind, Mode, Obj};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Zero-decimal currencies among those generated.
pub const ZERO_DECIMAL: &[&str] =
    &["jpy", "krw", "vnd", "clp", "bif", "djf", "gnf", "kmf", "mga", "pyg", "rwf", "ugx", "vuv", "xaf", "xof", "xpf"];

/// Currencies used: always a zero-decimal (JPY) and a three-decimal (KWD) one.
pub const CURRENCIES: &[&str] = &["usd", "eur", "gbp", "jpy", "kwd"];

/// Generated history starts here (2025-01-01T00:00:00Z) and spans [`SPAN`] seconds, so the same
/// seed always gives the same timestamps.
pub const BASE: i64 = 1_735_689_600;
/// Length of the generated history (300 days).
pub const SPAN: i64 = 300 * 86_400;

/// Every dispute status, cycled so each appears.
pub const DISPUTE_STATUSES: &[&str] = &[
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
    "prevented",
    "appeal_needs_response",
    "appeal_under_review",
];

const REASONS: &[&str] =
    &["fraudulent", "product_not_received", "duplicate", "credit_not_processed", "subscription_canceled", "general", "unrecognized"];
const FIRST: &[&str] = &["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Linus", "Radia", "Ken", "Frances", "John"];
const LAST: &[&str] =
    &["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Torvalds", "Perlman", "Thompson", "Allen", "Backus"];
const CITIES: &[(&str, &str, &str)] = &[
    ("London", "WC1X 0BE", "GB"),
    ("Paris", "75002", "FR"),
    ("Tokyo", "100-0001", "JP"),
    ("Kuwait City", "13001", "KW"),
    ("New York", "10001", "US"),
];
const GOODS: &[&str] = &["T-Shirt", "Mug", "Notebook", "Hoodie", "Sticker Pack", "Poster", "Cap", "Tote Bag", "Socks", "Water Bottle"];
const COLOURS: &[&str] = &["Blue", "Red", "Green", "Black", "White", "Yellow"];

/// How many objects of each kind an account gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Customers.
    pub customers: u32,
    /// Charges (each with its payment intent).
    pub charges: u32,
    /// Refunds (at most one per eligible charge).
    pub refunds: u32,
    /// Disputes (on charges that are not refunded).
    pub disputes: u32,
    /// Products.
    pub products: u32,
    /// Prices, spread over the products.
    pub prices: u32,
    /// Payouts.
    pub payouts: u32,
}

impl Default for Profile {
    fn default() -> Self {
        Self { customers: 12, charges: 40, refunds: 6, disputes: 10, products: 4, prices: 10, payouts: 5 }
    }
}

/// A generated account's data.
pub struct Generated {
    /// The account object's fields.
    pub profile: Map<String, Value>,
    /// Objects per list.
    pub lists: HashMap<Kind, Collection>,
    /// Events.
    pub events: Vec<EventRec>,
}

fn amount_for(rng: &mut Rng, currency: &str) -> i64 {
    match currency {
        "jpy" => rng.range(100, 50_000),
        "kwd" => rng.range(1_000, 200_000),
        _ => rng.range(500, 100_000),
    }
}

struct Builder<'a> {
    rng: &'a mut Rng,
    objs: HashMap<Kind, Vec<Obj>>,
    events: Vec<EventRec>,
}

impl Builder<'_> {
    fn id(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.rng.token(24))
    }

    fn event(&mut self, created: i64, event_type: &str, kind: Kind, id: &str) {
        let eid = self.id("evt_");
        self.events.push(EventRec {
            id: eid.into(),
            created,
            seq: 0,
            event_type: event_type.into(),
            data: EventData::Current(kind, id.into()),
            previous: None,
        });
    }

    /// Stores an object at once: holding a million `Value`s would cost gigabytes.
    fn add(&mut self, kind: Kind, v: Value) {
        self.objs.entry(kind).or_default().push(Obj::from_value(kind, &v));
    }

    fn finish(self) -> (HashMap<Kind, Collection>, Vec<EventRec>) {
        let mut lists: HashMap<Kind, Collection> = self.objs.into_iter().map(|(k, v)| (k, Collection::from_unsorted(v))).collect();
        for k in Kind::ALL {
            lists.entry(k).or_default();
        }
        (lists, self.events)
    }
}

/// The account object's fields for a generated account.
pub fn account_profile(rng: &mut Rng, id: &str, mode: Mode) -> Map<String, Value> {
    let name = format!("{} {}", rng.pick(COLOURS), rng.pick(GOODS).replace(' ', "")) + " Shop";
    let (city, postal, country) = *rng.pick(CITIES);
    let v = json!({
        "id": id, "object": "account",
        "business_profile": {"annual_revenue": null, "estimated_worker_count": null, "mcc": "5734", "minority_owned_business_designation": null,
            "name": name, "product_description": "Sandbox goods", "support_address": objects::address("1 Market Street", city, postal, country),
            "support_email": "support@example.com", "support_phone": "+442079460000", "support_url": "https://example.com/support", "url": "https://example.com"},
        "business_type": "company", "capabilities": {"card_payments": "active", "transfers": "active"}, "charges_enabled": true,
        "company": {"address": objects::address("1 Market Street", city, postal, country), "name": format!("{name} Ltd"), "phone": "+442079460000", "tax_id_provided": true},
        "controller": {"type": "account"}, "country": country, "created": BASE - 86_400, "default_currency": "usd", "details_submitted": true,
        "email": "owner@example.com", "external_accounts": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/accounts/{id}/external_accounts")},
        "future_requirements": {}, "groups": null, "metadata": {}, "payouts_enabled": true, "requirements": {},
        "settings": {"dashboard": {"display_name": name, "timezone": "Etc/UTC"}, "payouts": {"schedule": {"delay_days": 2, "interval": "daily"}}},
        "tos_acceptance": {"date": BASE - 86_400}, "type": "standard",
        "livemode_hint": mode.as_str()
    });
    let mut m = v.as_object().cloned().unwrap_or_default();
    m.remove("livemode_hint");
    m
}

/// Generates an account's data.
pub fn generate(seed: u64, profile: &Profile, id: &str, mode: Mode) -> Generated {
    let mut rng = Rng::new(seed);
    let account = account_profile(&mut rng, id, mode);
    let ctx = Ctx { mode, account: id };
    let mut b = Builder { rng: &mut rng, objs: HashMap::new(), events: Vec::new() };
    let spread = |i: u32, n: u32, rng: &mut Rng| {
        BASE + (SPAN / i64::from(n.max(1))) * i64::from(i) + rng.range(0, (SPAN / i64::from(n.max(1))).max(1))
    };

    // Customers: with and without addresses and shipping.
    let mut customers = Vec::new();
    for i in 0..profile.customers {
        let created = spread(i, profile.customers, b.rng);
        let id = b.id("cus_");
        let name = format!("{} {}", b.rng.pick(FIRST), b.rng.pick(LAST));
        let email = format!("{}.{}@example.com", name.replace(' ', ".").to_lowercase(), i);
        let (city, postal, country) = *b.rng.pick(CITIES);
        let addr = (i % 3 != 2).then(|| objects::address(&format!("{} High Street", i + 1), city, postal, country));
        let ship = (i % 2 == 0).then(|| objects::address(&format!("{} Station Road", i + 1), city, postal, country));
        let currency = (i % 4 != 3).then(|| *b.rng.pick(CURRENCIES));
        let v = objects::customer(
            &ctx,
            &id,
            created,
            &name,
            &email,
            (i % 2 == 0).then_some("+447700900123"),
            addr,
            ship,
            currency,
            (i % 5 == 0).then_some("VIP customer"),
        );
        b.event(created, "customer.created", Kind::Customers, &id);
        b.add(Kind::Customers, v);
        customers.push(id);
    }

    // Products and their prices (active and archived, one-time and recurring).
    let mut product_ids = Vec::new();
    for i in 0..profile.products {
        let created = spread(i, profile.products, b.rng);
        product_ids.push((b.id("prod_"), created, b.rng.chance(0.8), i % 3 != 1));
    }
    let mut default_price: HashMap<usize, String> = HashMap::new();
    for j in 0..profile.prices {
        if product_ids.is_empty() {
            break;
        }
        let pi = usize::try_from(j).unwrap_or(0) % product_ids.len();
        let (prod, pcreated, pactive, _) = product_ids[pi].clone();
        let created = pcreated + 60 + i64::from(j);
        let id = b.id("price_");
        let currency = *b.rng.pick(CURRENCIES);
        let amount = amount_for(b.rng, currency);
        let recurring = j % 2 == 1;
        let active = pactive && (j % 4 != 3);
        let nickname = (j % 3 == 0).then_some(if recurring { "Monthly" } else { "Standard" });
        default_price.entry(pi).or_insert_with(|| id.clone());
        b.event(created, "price.created", Kind::Prices, &id);
        let mut v = objects::price(&ctx, &id, created, &prod, currency, amount, recurring, active, nickname);
        if j % 4 == 0 {
            // Every fourth price is sold in two more currencies (no random draw: the rest of the
            // data stays as it was).
            for other in CURRENCIES.iter().filter(|c| **c != currency).take(2) {
                v["currency_options"][*other] = objects::option(amount + i64::from(j % 7) + 1);
            }
        }
        b.add(Kind::Prices, v);
    }
    for (i, (id, created, active, shippable)) in product_ids.iter().enumerate() {
        let name = format!("{} {}", b.rng.pick(COLOURS), b.rng.pick(GOODS));
        let v = objects::product(
            &ctx,
            id,
            *created,
            &name,
            (i % 2 == 0).then_some("Made in the sandbox"),
            *active,
            *shippable,
            default_price.get(&i).map(String::as_str),
        );
        b.event(*created, "product.created", Kind::Products, id);
        b.add(Kind::Products, v);
    }

    // Charges with payment intents and balance transactions.
    struct Ch {
        id: String,
        pi: String,
        created: i64,
        amount: i64,
        currency: &'static str,
        captured: bool,
    }
    let mut charges: Vec<Ch> = Vec::new();
    // Charges change after creation (refunds, disputes), so they are kept as drafts and rendered last.
    struct Draft {
        customer: Option<String>,
        pm: String,
        state: ChargeState,
        txn: Option<String>,
        last4: &'static str,
        brand: &'static str,
        refunded: i64,
        disputed: bool,
    }
    let mut drafts: Vec<Draft> = Vec::new();
    for i in 0..profile.charges {
        let created = spread(i, profile.charges, b.rng);
        let currency = if (i as usize) < CURRENCIES.len() { CURRENCIES[i as usize] } else { *b.rng.pick(CURRENCIES) };
        let amount = amount_for(b.rng, currency);
        let roll = b.rng.range(0, 100);
        let state = match roll {
            0..6 => ChargeState::Failed,
            6..9 => ChargeState::Pending,
            9..14 => ChargeState::Uncaptured,
            _ => ChargeState::Captured,
        };
        let id = b.id("ch_");
        let pi = b.id("pi_");
        let pm = b.id("pm_");
        let customer = (!customers.is_empty() && b.rng.chance(0.8)).then(|| b.rng.pick(&customers).clone());
        let txn = (state == ChargeState::Captured).then(|| b.id("txn_"));
        let last4 = *b.rng.pick(&["4242", "0005", "4444", "8431"]);
        let brand = if last4 == "0005" {
            "amex"
        } else if last4 == "4444" {
            "mastercard"
        } else {
            "visa"
        };
        let piv = objects::payment_intent(&ctx, &pi, created, amount, currency, customer.as_deref(), &id, &pm, state);
        b.event(created, "payment_intent.created", Kind::PaymentIntents, &pi);
        match state {
            ChargeState::Captured => {
                b.event(created, "charge.succeeded", Kind::Charges, &id);
                b.event(created, "payment_intent.succeeded", Kind::PaymentIntents, &pi);
            }
            ChargeState::Uncaptured => {
                b.event(created, "charge.succeeded", Kind::Charges, &id);
                b.event(created, "payment_intent.amount_capturable_updated", Kind::PaymentIntents, &pi);
            }
            ChargeState::Pending => {
                b.event(created, "charge.pending", Kind::Charges, &id);
                b.event(created, "payment_intent.processing", Kind::PaymentIntents, &pi);
            }
            ChargeState::Failed => {
                b.event(created, "charge.failed", Kind::Charges, &id);
                b.event(created, "payment_intent.payment_failed", Kind::PaymentIntents, &pi);
            }
        }
        if let Some(txn) = &txn {
            let fee = objects::stripe_fee(amount, currency);
            let available = created < BASE + SPAN - 2 * 86_400;
            b.add(
                Kind::BalanceTransactions,
                objects::balance_transaction(txn, created, amount, fee, currency, &id, "charge", "charge", None, available),
            );
        }
        b.add(Kind::PaymentIntents, piv);
        drafts.push(Draft { customer, pm, state, txn, last4, brand, refunded: 0, disputed: false });
        charges.push(Ch { id, pi, created, amount, currency, captured: state == ChargeState::Captured });
    }

    // Refunds, partial and full, on captured charges.
    let eligible: Vec<usize> = charges.iter().enumerate().filter(|(_, c)| c.captured).map(|(i, _)| i).collect();
    let n_refunds = (profile.refunds as usize).min(eligible.len());
    let mut refunded = vec![false; charges.len()];
    for k in 0..n_refunds {
        let ci = eligible[(k * 7919) % eligible.len()];
        if refunded[ci] {
            continue;
        }
        refunded[ci] = true;
        let ch = &charges[ci];
        let full = k % 2 == 0;
        let amount = if full { ch.amount } else { (ch.amount / 2).max(1) };
        let created = ch.created + b.rng.range(3_600, 10 * 86_400);
        let id = b.id("re_");
        let txn = b.id("txn_");
        let (chid, pi, currency) = (ch.id.clone(), ch.pi.clone(), ch.currency);
        b.add(Kind::Refunds, objects::refund(&id, created, amount, currency, &chid, &pi, &txn, Some("requested_by_customer")));
        b.add(
            Kind::BalanceTransactions,
            objects::balance_transaction(&txn, created, -amount, 0, currency, &id, "refund", "refund", Some("REFUND FOR CHARGE"), true),
        );
        drafts[ci].refunded = amount;
        b.event(created, "refund.created", Kind::Refunds, &id);
        b.event(created, "charge.refunded", Kind::Charges, &chid);
    }

    // Disputes in every status, on captured charges that were not refunded.
    let open: Vec<usize> = eligible.iter().copied().filter(|i| !refunded[*i]).collect();
    let n_disputes = (profile.disputes as usize).min(open.len());
    for k in 0..n_disputes {
        let ci = open[(k * 104_729) % open.len()];
        if drafts[ci].disputed {
            continue;
        }
        let status = DISPUTE_STATUSES[k % DISPUTE_STATUSES.len()];
        let ch = &charges[ci];
        let (chid, pi, currency, amount) = (ch.id.clone(), ch.pi.clone(), ch.currency, ch.amount);
        let created = ch.created + b.rng.range(86_400, 20 * 86_400);
        let id = b.id("dp_");
        let mut bts = Vec::new();
        if !status.starts_with("warning") {
            let txn = b.id("txn_");
            let bt = objects::balance_transaction(
                &txn,
                created,
                -amount,
                1500,
                currency,
                &id,
                "adjustment",
                "dispute",
                Some("Chargeback withdrawal"),
                true,
            );
            b.add(Kind::BalanceTransactions, bt.clone());
            bts.push(bt);
            if status == "won" {
                let txn2 = b.id("txn_");
                let won_at = created + 14 * 86_400;
                let bt2 = objects::balance_transaction(
                    &txn2,
                    won_at,
                    amount,
                    -1500,
                    currency,
                    &id,
                    "adjustment",
                    "dispute_reversal",
                    Some("Chargeback reversal"),
                    true,
                );
                b.add(Kind::BalanceTransactions, bt2.clone());
                bts.push(bt2);
            }
        }
        drafts[ci].disputed = true;
        let reason = *b.rng.pick(REASONS);
        b.add(Kind::Disputes, objects::dispute(&ctx, &id, created, amount, currency, &chid, &pi, status, reason, bts));
        b.event(created, "charge.dispute.created", Kind::Disputes, &id);
        if matches!(status, "won" | "lost" | "warning_closed" | "prevented") {
            b.event(created + 1, "charge.dispute.closed", Kind::Disputes, &id);
        }
    }
    for (ch, d) in charges.iter().zip(drafts) {
        let mut v = objects::charge(
            &ctx,
            &ch.id,
            ch.created,
            ch.amount,
            ch.currency,
            d.customer.as_deref(),
            &ch.pi,
            &d.pm,
            d.state,
            d.txn.as_deref(),
            d.last4,
            d.brand,
        );
        if d.refunded > 0 {
            v["amount_refunded"] = json!(d.refunded);
            v["refunded"] = json!(d.refunded == ch.amount);
        }
        v["disputed"] = json!(d.disputed);
        b.add(Kind::Charges, v);
    }

    // Payouts, paid and failed.
    for i in 0..profile.payouts {
        let created = spread(i, profile.payouts, b.rng);
        let currency = CURRENCIES[i as usize % CURRENCIES.len()];
        let amount = amount_for(b.rng, currency);
        let paid = i % 5 != 4;
        let id = b.id("po_");
        let txn = b.id("txn_");
        let fail_txn = (!paid).then(|| b.id("txn_"));
        b.add(
            Kind::BalanceTransactions,
            objects::balance_transaction(&txn, created, -amount, 0, currency, &id, "payout", "payout", Some("STRIPE PAYOUT"), true),
        );
        if let Some(f) = &fail_txn {
            b.add(
                Kind::BalanceTransactions,
                objects::balance_transaction(
                    f,
                    created + 86_400,
                    amount,
                    0,
                    currency,
                    &id,
                    "payout_failure",
                    "payout_reversal",
                    Some("Payout failure"),
                    true,
                ),
            );
        }
        b.add(Kind::Payouts, objects::payout(&ctx, &id, created, amount, currency, paid, &txn, fail_txn.as_deref()));
        b.event(created, "payout.created", Kind::Payouts, &id);
        b.event(created + 86_400, if paid { "payout.paid" } else { "payout.failed" }, Kind::Payouts, &id);
    }

    let (lists, events) = b.finish();
    Generated { profile: account, lists, events }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(g: &Generated) -> String {
        let mut out = serde_json::to_string(&g.profile).unwrap();
        for k in Kind::ALL {
            for o in &g.lists[&k].items {
                out.push_str(&o.json);
            }
        }
        for e in &g.events {
            out.push_str(&e.id);
            out.push_str(&e.event_type);
        }
        out
    }

    #[test]
    fn the_same_seed_and_profile_give_byte_identical_data() {
        let p = Profile::default();
        let a = generate(42, &p, "acct_1", Mode::Test);
        let b = generate(42, &p, "acct_1", Mode::Test);
        assert_eq!(snapshot(&a), snapshot(&b));
        let c = generate(43, &p, "acct_1", Mode::Test);
        assert_ne!(snapshot(&a), snapshot(&c));
    }

    #[test]
    fn every_money_movement_has_a_balance_transaction_and_every_dispute_status_appears() {
        let p = Profile { customers: 10, charges: 200, refunds: 20, disputes: 20, products: 5, prices: 15, payouts: 10 };
        let g = generate(7, &p, "acct_1", Mode::Test);
        let count = |k: Kind| g.lists[&k].items.len();
        assert_eq!(count(Kind::Customers), 10);
        assert_eq!(count(Kind::Charges), 200);
        assert_eq!(count(Kind::PaymentIntents), 200);
        assert_eq!(count(Kind::Prices), 15);
        let bt_sources: std::collections::HashSet<String> = g.lists[&Kind::BalanceTransactions]
            .items
            .iter()
            .map(|o| serde_json::from_str::<Value>(&o.json).unwrap()["source"].as_str().unwrap().to_owned())
            .collect();
        for o in &g.lists[&Kind::Charges].items {
            let v: Value = serde_json::from_str(&o.json).unwrap();
            if v["captured"] == json!(true) {
                assert!(bt_sources.contains(v["id"].as_str().unwrap()));
            }
        }
        for k in [Kind::Refunds, Kind::Payouts] {
            for o in &g.lists[&k].items {
                assert!(bt_sources.contains(&*o.id), "{k:?} {} has no balance transaction", o.id);
            }
        }
        let statuses: std::collections::HashSet<String> = g.lists[&Kind::Disputes]
            .items
            .iter()
            .map(|o| serde_json::from_str::<Value>(&o.json).unwrap()["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(statuses.len(), DISPUTE_STATUSES.len());
        let currencies: std::collections::HashSet<&str> =
            g.lists[&Kind::Charges].items.iter().filter_map(|o| o.amount.as_ref().map(|(_, c)| &**c)).collect();
        assert!(currencies.contains("jpy") && currencies.contains("kwd"));
        assert!(g.events.iter().any(|e| &*e.event_type == "charge.dispute.created"));
    }
}
