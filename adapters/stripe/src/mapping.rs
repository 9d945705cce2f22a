//! Stripe objects → Codat commerce records. Pure functions over Stripe's JSON, one per Codat data
//! type; `docs/stripe-mapping.md` documents every rule and the reasoning behind it.
//!
//! Conventions: amounts are exact decimals in major units, using the currency's exponent
//! ([`Amount::from_minor`]: JPY 0, KWD 3, most others 2); currency codes are upper case (except
//! a customer's `defaultCurrency`, left as Stripe sends it, as Codat's Stripe example does); dates
//! are ISO 8601 UTC (`2026-01-01T00:00:00Z`) from Stripe's Unix seconds; `modifiedDate` is never
//! set (the store sets it). Stripe enum values the mapping does not know map to `Unknown`. Deleted
//! objects (`"deleted": true`) map to `None`.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use tributary_domain::model::commerce::{
    AccountBalance, Address, AddressType, CompanyInfo, Customer, Dispute, DisputeStatus, Payment, PaymentMethodRef, PaymentStatus,
    PhoneNumber, PhoneNumberType, Product, ProductInventory, ProductPrice, ProductVariant, ProductVariantStatus, Transaction,
    TransactionSourceRef, TransactionSourceType, TransactionType, WebLink, WebLinkType,
};
use tributary_domain::money::{Amount, Currency};

/// Suffix of the synthetic fee record's id: `"{txn id}:Stripe processing fees"`.
pub const FEE_RECORD_SUFFIX: &str = ":Stripe processing fees";
/// `subType` of fee records.
pub const FEE_SUB_TYPE: &str = "stripe_fee";
/// `paymentProvider` of every payment.
pub const PAYMENT_PROVIDER: &str = "Stripe";

/// A Stripe object that cannot be mapped (a required field is missing or has the wrong type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot map Stripe {object} '{id}': {reason}")]
pub struct MapError {
    /// Stripe's object name (`charge`, `customer`, …).
    pub object: &'static str,
    /// The object's id, when it has one.
    pub id: String,
    /// What is wrong.
    pub reason: String,
}

/// Whether a Stripe object is a deletion stub (`{"id", "object", "deleted": true}`).
pub fn is_deleted(v: &Value) -> bool {
    v.get("deleted").and_then(Value::as_bool) == Some(true)
}

/// A Unix timestamp (seconds) as ISO 8601 UTC with second precision, e.g. `2026-01-01T00:00:00Z`.
pub fn iso8601(unix_seconds: i64) -> Option<String> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix_seconds, 0).map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn parse<T: DeserializeOwned>(object: &'static str, v: &Value) -> Result<T, MapError> {
    T::deserialize(v).map_err(|e| MapError { object, id: id_of(v), reason: e.to_string() })
}

fn id_of(v: &Value) -> String {
    v.get("id").and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn currency(object: &'static str, id: &str, code: &str) -> Result<Currency, MapError> {
    Currency::parse(code).map_err(|e| MapError { object, id: id.to_owned(), reason: e.to_string() })
}

fn date(ts: Option<i64>) -> Option<String> {
    ts.and_then(iso8601)
}

/// A non-empty, trimmed string.
fn text(s: Option<String>) -> Option<String> {
    s.filter(|x| !x.trim().is_empty())
}

/// Stripe's expandable references: an id string or the expanded object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Ref {
    Id(String),
    Object {
        #[serde(default)]
        id: Option<String>,
    },
}

impl Ref {
    fn id(self) -> Option<String> {
        match self {
            Self::Id(s) => text(Some(s)),
            Self::Object { id } => text(id),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct StripeAddress {
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    country: Option<String>,
    postal_code: Option<String>,
}

/// A Stripe address as a Codat address of `kind`; `None` when every field is empty.
fn address(a: Option<StripeAddress>, kind: AddressType) -> Option<Address> {
    let a = a?;
    let out = Address {
        address_type: kind,
        line1: text(a.line1),
        line2: text(a.line2),
        city: text(a.city),
        region: text(a.state),
        country: text(a.country),
        postal_code: text(a.postal_code),
    };
    let empty = out.line1.is_none()
        && out.line2.is_none()
        && out.city.is_none()
        && out.region.is_none()
        && out.country.is_none()
        && out.postal_code.is_none();
    (!empty).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Company info

#[derive(Debug, Default, Deserialize)]
struct StripeAccount {
    id: String,
    business_profile: Option<BusinessProfile>,
    company: Option<StripeCompany>,
    settings: Option<AccountSettings>,
    default_currency: Option<String>,
    created: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct BusinessProfile {
    name: Option<String>,
    support_address: Option<StripeAddress>,
    support_phone: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StripeCompany {
    name: Option<String>,
    address: Option<StripeAddress>,
    phone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AccountSettings {
    dashboard: Option<Dashboard>,
}

#[derive(Debug, Default, Deserialize)]
struct Dashboard {
    display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StripeBalance {
    #[serde(default)]
    available: Vec<BalanceAmount>,
    #[serde(default)]
    pending: Vec<BalanceAmount>,
    #[serde(default)]
    connect_reserved: Option<Vec<BalanceAmount>>,
}

#[derive(Debug, Deserialize)]
struct BalanceAmount {
    amount: i64,
    currency: String,
}

/// Company info from `GET /v1/account` and `GET /v1/balance`. `api_base` goes into
/// `sourceUrls.Api`.
///
/// # Errors
/// [`MapError`] when the account has no id or a balance entry is malformed.
pub fn company_info(account: &Value, balance: &Value, api_base: &str) -> Result<CompanyInfo, MapError> {
    let a: StripeAccount = parse("account", account)?;
    let b: StripeBalance = parse("balance", balance)?;
    let profile = a.business_profile.unwrap_or_default();
    let company = a.company.unwrap_or_default();
    let display_name = a.settings.and_then(|s| s.dashboard).and_then(|d| text(d.display_name));
    let mut addresses = Vec::new();
    addresses.extend(address(company.address, AddressType::Billing));
    addresses.extend(address(profile.support_address, AddressType::Unknown));
    let phone = text(profile.support_phone).or_else(|| text(company.phone));
    let phone_numbers = phone.map(|n| vec![PhoneNumber { number: Some(n), phone_type: PhoneNumberType::Primary }]).unwrap_or_default();
    let web_links = text(profile.url).map(|url| vec![WebLink { link_type: WebLinkType::Website, url }]).unwrap_or_default();
    let base_currency = match text(a.default_currency) {
        Some(c) => Some(currency("account", &a.id, &c)?),
        None => None,
    };
    // One entry per currency: available, pending and reserved summed over Stripe's per-source
    // entries; a currency missing from one array counts 0 there.
    let mut sums: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    let arrays = [(0usize, b.available), (1, b.pending), (2, b.connect_reserved.unwrap_or_default())];
    for (slot, entries) in arrays {
        for e in entries {
            let code = currency("balance", &a.id, &e.currency)?.code().to_owned();
            let sum = &mut sums.entry(code).or_default()[slot];
            *sum = sum.saturating_add(e.amount);
        }
    }
    let mut account_balances = Vec::with_capacity(sums.len());
    for (code, [available, pending, reserved]) in sums {
        let c = currency("balance", &a.id, &code)?;
        account_balances.push(AccountBalance {
            available: Amount::from_minor(available, &c),
            pending: Amount::from_minor(pending, &c),
            reserved: Amount::from_minor(reserved, &c),
            currency: c,
        });
    }
    Ok(CompanyInfo {
        company_name: text(profile.name).or(display_name).or_else(|| text(company.name.clone())),
        commerce_platform_ref: Some(a.id),
        company_legal_name: text(company.name),
        addresses,
        phone_numbers,
        web_links,
        registration_number: None,
        base_currency,
        account_balances,
        source_urls: BTreeMap::from([("Api".to_owned(), api_base.trim_end_matches('/').to_owned())]),
        created_date: date(a.created),
        modified_date: None,
        source_modified_date: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Customers

#[derive(Debug, Deserialize)]
struct StripeCustomer {
    id: String,
    name: Option<String>,
    business_name: Option<String>,
    individual_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    currency: Option<String>,
    description: Option<String>,
    address: Option<StripeAddress>,
    shipping: Option<Shipping>,
    created: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Shipping {
    address: Option<StripeAddress>,
}

/// A customer (`None` when deleted).
///
/// # Errors
/// [`MapError`] when the object has no id or a field has the wrong type.
pub fn customer(v: &Value) -> Result<Option<Customer>, MapError> {
    if is_deleted(v) {
        return Ok(None);
    }
    let c: StripeCustomer = parse("customer", v)?;
    let mut addresses = Vec::new();
    addresses.extend(address(c.address, AddressType::Billing));
    addresses.extend(address(c.shipping.and_then(|s| s.address), AddressType::Delivery));
    Ok(Some(Customer {
        id: c.id,
        customer_name: text(c.name).or_else(|| text(c.business_name)).or_else(|| text(c.individual_name)),
        email_address: text(c.email),
        phone: text(c.phone),
        default_currency: text(c.currency),
        addresses,
        note: text(c.description),
        created_date: date(c.created),
        modified_date: None,
        source_modified_date: None,
    }))
}

// ---------------------------------------------------------------------------------------------
// Disputes

#[derive(Debug, Deserialize)]
struct StripeDispute {
    id: String,
    amount: Option<i64>,
    currency: String,
    status: Option<String>,
    reason: Option<String>,
    created: Option<i64>,
    evidence_details: Option<EvidenceDetails>,
    #[serde(default)]
    balance_transactions: Option<Vec<Ref>>,
}

#[derive(Debug, Deserialize)]
struct EvidenceDetails {
    due_by: Option<i64>,
}

/// Stripe dispute status → Codat. Unknown values → `Unknown`.
pub fn dispute_status(status: &str) -> DisputeStatus {
    match status {
        "warning_needs_response" => DisputeStatus::InquiryEvidenceRequired,
        "warning_under_review" => DisputeStatus::InquiryProcessing,
        "warning_closed" => DisputeStatus::InquiryClosed,
        "needs_response" | "appeal_needs_response" => DisputeStatus::EvidenceRequired,
        "under_review" | "appeal_under_review" => DisputeStatus::Processing,
        "charge_refunded" => DisputeStatus::ChargeRefunded,
        "won" => DisputeStatus::Won,
        "lost" => DisputeStatus::Lost,
        _ => DisputeStatus::Unknown,
    }
}

/// A dispute.
///
/// # Errors
/// [`MapError`] when the id or currency is missing or invalid.
pub fn dispute(v: &Value) -> Result<Option<Dispute>, MapError> {
    if is_deleted(v) {
        return Ok(None);
    }
    let d: StripeDispute = parse("dispute", v)?;
    let cur = currency("dispute", &d.id, &d.currency)?;
    let disputed_transactions = d
        .balance_transactions
        .unwrap_or_default()
        .into_iter()
        .filter_map(Ref::id)
        .map(|id| TransactionSourceRef { id, source_type: TransactionSourceType::Payment })
        .collect();
    Ok(Some(Dispute {
        id: d.id,
        disputed_transactions,
        total_amount: d.amount.map(|a| Amount::from_minor(a, &cur)),
        currency: cur,
        status: d.status.as_deref().map(dispute_status),
        reason: text(d.reason),
        due_date: date(d.evidence_details.and_then(|e| e.due_by)),
        created_date: date(d.created),
        modified_date: None,
        source_modified_date: None,
    }))
}

// ---------------------------------------------------------------------------------------------
// Payments

#[derive(Debug, Deserialize)]
struct StripeCharge {
    id: String,
    amount: Option<i64>,
    currency: String,
    status: Option<String>,
    captured: Option<bool>,
    refunded: Option<bool>,
    created: Option<i64>,
    payment_method: Option<String>,
    payment_method_details: Option<MethodDetails>,
}

#[derive(Debug, Deserialize)]
struct MethodDetails {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StripeRefund {
    id: String,
    amount: Option<i64>,
    currency: String,
    status: Option<String>,
    created: Option<i64>,
    payment_method: Option<String>,
    destination_details: Option<MethodDetails>,
    reason: Option<String>,
}

/// Charge status → Codat payment status: `succeeded` + captured → `Paid`; `succeeded` not
/// captured → `Authorized` (or `Cancelled` once the authorization was released, i.e. refunded);
/// `pending` → `Pending`; `failed` → `Failed`; anything else → `Unknown`.
pub fn charge_status(status: &str, captured: bool, refunded: bool) -> PaymentStatus {
    match status {
        "succeeded" if captured => PaymentStatus::Paid,
        "succeeded" if refunded => PaymentStatus::Cancelled,
        "succeeded" => PaymentStatus::Authorized,
        "pending" => PaymentStatus::Pending,
        "failed" => PaymentStatus::Failed,
        _ => PaymentStatus::Unknown,
    }
}

/// Refund status → Codat payment status: `succeeded` → `Paid`; `pending` / `requires_action` →
/// `Pending`; `failed` → `Failed`; `canceled` → `Cancelled`; anything else → `Unknown`.
pub fn refund_status(status: &str) -> PaymentStatus {
    match status {
        "succeeded" => PaymentStatus::Paid,
        "pending" | "requires_action" => PaymentStatus::Pending,
        "failed" => PaymentStatus::Failed,
        "canceled" => PaymentStatus::Cancelled,
        _ => PaymentStatus::Unknown,
    }
}

fn method_ref(id: Option<String>, details: Option<MethodDetails>) -> Option<PaymentMethodRef> {
    text(id).map(|id| PaymentMethodRef { id, name: details.and_then(|d| text(d.kind)) })
}

/// A charge as a payment.
///
/// # Errors
/// [`MapError`] when the id or currency is missing or invalid.
pub fn charge_payment(v: &Value) -> Result<Option<Payment>, MapError> {
    if is_deleted(v) {
        return Ok(None);
    }
    let c: StripeCharge = parse("charge", v)?;
    let cur = currency("charge", &c.id, &c.currency)?;
    let status = c.status.as_deref().map(|s| charge_status(s, c.captured.unwrap_or(false), c.refunded.unwrap_or(false)));
    Ok(Some(Payment {
        id: c.id,
        amount: c.amount.map(|a| Amount::from_minor(a, &cur)),
        currency: Some(cur),
        payment_method_ref: method_ref(c.payment_method, c.payment_method_details),
        status,
        payment_provider: Some(PAYMENT_PROVIDER.to_owned()),
        due_date: None,
        supplemental_data: None,
        created_date: date(c.created),
        modified_date: None,
        source_modified_date: None,
    }))
}

/// A refund as a separate, negative payment.
///
/// # Errors
/// [`MapError`] when the id or currency is missing or invalid.
pub fn refund_payment(v: &Value) -> Result<Option<Payment>, MapError> {
    if is_deleted(v) {
        return Ok(None);
    }
    let r: StripeRefund = parse("refund", v)?;
    let cur = currency("refund", &r.id, &r.currency)?;
    // Stripe records an uncaptured charge's expired (or released) authorization as a refund: no
    // money moved either way, so it is `Cancelled` like its charge, never a `Paid` refund that a
    // client summing `Paid` payments would subtract from money it never received.
    let status = if r.reason.as_deref() == Some("expired_uncaptured_charge") {
        Some(PaymentStatus::Cancelled)
    } else {
        r.status.as_deref().map(refund_status)
    };
    Ok(Some(Payment {
        id: r.id,
        amount: r.amount.map(|a| Amount::from_minor(a, &cur).negated()),
        currency: Some(cur),
        payment_method_ref: method_ref(r.payment_method, r.destination_details),
        status,
        payment_provider: Some(PAYMENT_PROVIDER.to_owned()),
        due_date: None,
        supplemental_data: None,
        created_date: date(r.created),
        modified_date: None,
        source_modified_date: None,
    }))
}

// ---------------------------------------------------------------------------------------------
// Products

#[derive(Debug, Deserialize)]
struct StripeProduct {
    id: String,
    name: Option<String>,
    description: Option<String>,
    active: Option<bool>,
    shippable: Option<bool>,
    unit_label: Option<String>,
    created: Option<i64>,
    updated: Option<i64>,
}

/// The fields of a price that [`product`] reads (with `deleted` and `product`), so that a listing of
/// every price can be kept without the rest. Keep in step with `StripePrice`.
pub const PRICE_FIELDS: [&str; 12] = [
    "id",
    "object",
    "active",
    "currency",
    "unit_amount",
    "unit_amount_decimal",
    "nickname",
    "created",
    "tax_behavior",
    "currency_options",
    "deleted",
    "product",
];

#[derive(Debug, Deserialize)]
struct StripePrice {
    id: String,
    active: Option<bool>,
    currency: String,
    unit_amount: Option<i64>,
    unit_amount_decimal: Option<String>,
    nickname: Option<String>,
    created: Option<i64>,
    tax_behavior: Option<String>,
    currency_options: Option<BTreeMap<String, CurrencyOption>>,
}

#[derive(Debug, Deserialize)]
struct CurrencyOption {
    unit_amount: Option<i64>,
    unit_amount_decimal: Option<String>,
}

/// A unit price in major units: `unit_amount`, else `unit_amount_decimal` (minor units, possibly
/// fractional), else none (tiered and customer-chosen prices).
fn unit_price(unit_amount: Option<i64>, decimal: Option<&str>, cur: &Currency) -> Option<Amount> {
    if let Some(a) = unit_amount {
        return Some(Amount::from_minor(a, cur));
    }
    let mut d = Decimal::from_str_exact(decimal?.trim()).ok()?;
    d.set_scale(d.scale() + cur.exponent()).ok()?;
    Some(Amount(d.normalize()))
}

/// The `name` of a product's variant: `"{product name} - {price nickname}"`, with
/// `Standard Price` when the price has no nickname (Codat's Stripe example).
fn variant_name(product: Option<&str>, nickname: Option<String>) -> Option<String> {
    let suffix = text(nickname).unwrap_or_else(|| "Standard Price".to_owned());
    Some(match product {
        Some(p) => format!("{p} - {suffix}"),
        None => suffix,
    })
}

/// A product with one variant per (non-deleted) price, in the order given.
///
/// # Errors
/// [`MapError`] when the product or a price has no id, or a price's currency is invalid.
pub fn product(product: &Value, prices: &[Value]) -> Result<Option<Product>, MapError> {
    if is_deleted(product) {
        return Ok(None);
    }
    let p: StripeProduct = parse("product", product)?;
    let product_active = p.active.unwrap_or(true);
    let name = text(p.name);
    let mut variants = Vec::with_capacity(prices.len());
    for pv in prices.iter().filter(|v| !is_deleted(v)) {
        let price: StripePrice = parse("price", pv)?;
        let cur = currency("price", &price.id, &price.currency)?;
        let mut variant_prices = vec![ProductPrice {
            currency: Some(cur.clone()),
            unit_price: unit_price(price.unit_amount, price.unit_amount_decimal.as_deref(), &cur),
        }];
        for (code, option) in price.currency_options.unwrap_or_default() {
            let other = currency("price", &price.id, &code)?;
            if other != cur {
                let unit = unit_price(option.unit_amount, option.unit_amount_decimal.as_deref(), &other);
                variant_prices.push(ProductPrice { currency: Some(other), unit_price: unit });
            }
        }
        let tax_enabled = matches!(price.tax_behavior.as_deref(), Some("inclusive" | "exclusive"));
        let published = product_active && price.active.unwrap_or(true);
        variants.push(ProductVariant {
            id: price.id,
            name: variant_name(name.as_deref(), price.nickname),
            is_tax_enabled: Some(tax_enabled),
            sku: None,
            barcode: None,
            unit_of_measure: text(p.unit_label.clone()),
            vat_percentage: (!tax_enabled).then(Amount::default),
            prices: variant_prices,
            inventory: Some(ProductInventory { total_quantity: Some(Amount::default()), locations: Vec::new() }),
            shipping_required: p.shippable,
            status: Some(if published { ProductVariantStatus::Published } else { ProductVariantStatus::Unpublished }),
            created_date: date(price.created),
            modified_date: None,
            source_modified_date: None,
        });
    }
    Ok(Some(Product {
        id: p.id,
        name,
        description: text(p.description),
        categorization: None,
        is_gift_card: Some(false),
        variants,
        supplemental_data: None,
        created_date: date(p.created),
        modified_date: None,
        source_modified_date: date(p.updated),
    }))
}

/// The product id a price belongs to (`product` is an id or an expanded product).
pub fn price_product_id(price: &Value) -> Option<String> {
    Ref::deserialize(price.get("product")?).ok()?.id()
}

// ---------------------------------------------------------------------------------------------
// Transactions

#[derive(Debug, Deserialize)]
struct StripeBalanceTransaction {
    id: String,
    amount: i64,
    currency: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    fee: Option<i64>,
    source: Option<Ref>,
    created: Option<i64>,
}

/// Balance-transaction types that are fees charged by Stripe or a platform.
pub const FEE_TYPES: &[&str] = &["stripe_fee", "stripe_fx_fee", "tax_fee", "application_fee"];

/// Balance-transaction type → Codat transaction type (every type of the current API; unknown →
/// `Unknown`). See `docs/stripe-mapping.md` for the table.
pub fn transaction_type(bt_type: &str) -> TransactionType {
    match bt_type {
        "charge" | "payment" => TransactionType::Payment,
        "refund" | "payment_refund" | "payment_reversal" | "payment_failure_refund" => TransactionType::Refund,
        "payout" => TransactionType::Payout,
        "payout_cancel" | "payout_failure" => TransactionType::FailedPayout,
        "transfer" | "transfer_cancel" | "transfer_failure" | "transfer_refund" | "connect_collection_transfer" => {
            TransactionType::Transfer
        }
        "stripe_fee" | "stripe_fx_fee" | "tax_fee" | "application_fee" => TransactionType::PaymentFee,
        "application_fee_refund" => TransactionType::PaymentFeeRefund,
        _ => TransactionType::Unknown,
    }
}

/// The type of a balance transaction's source: `Fee` for fee-type transactions, `Payment` for
/// charges, payments and refunds (`ch_`, `py_`, `pi_`, `re_`, `pyr_`), `Unknown` otherwise.
pub fn source_type(bt_type: &str, source_id: &str) -> TransactionSourceType {
    if FEE_TYPES.contains(&bt_type) || bt_type == "application_fee_refund" {
        return TransactionSourceType::Fee;
    }
    const PAYMENT_PREFIXES: [&str; 5] = ["ch_", "py_", "pi_", "re_", "pyr_"];
    if PAYMENT_PREFIXES.iter().any(|p| source_id.starts_with(p)) { TransactionSourceType::Payment } else { TransactionSourceType::Unknown }
}

/// A balance transaction as Codat transactions: the transaction itself (gross `amount`) and, when
/// its `fee` is not zero, a fee record `"{id}:Stripe processing fees"` of `-fee` (`PaymentFee`,
/// or `PaymentFeeRefund` when Stripe gave a fee back).
///
/// # Errors
/// [`MapError`] when the id, amount or currency is missing or invalid.
pub fn transactions(v: &Value) -> Result<Vec<Transaction>, MapError> {
    if is_deleted(v) {
        return Ok(Vec::new());
    }
    let bt: StripeBalanceTransaction = parse("balance_transaction", v)?;
    let cur = currency("balance_transaction", &bt.id, &bt.currency)?;
    let kind = bt.kind.unwrap_or_default();
    let source_ref = bt.source.and_then(Ref::id).map(|id| TransactionSourceRef { source_type: source_type(&kind, &id), id });
    let created = date(bt.created);
    let mut out = vec![Transaction {
        id: bt.id.clone(),
        total_amount: Some(Amount::from_minor(bt.amount, &cur)),
        currency: Some(cur.clone()),
        transaction_type: Some(transaction_type(&kind)),
        sub_type: text(Some(kind)),
        transaction_source_ref: source_ref.clone(),
        supplemental_data: None,
        created_date: created.clone(),
        source_created_date: created.clone(),
        modified_date: None,
        source_modified_date: None,
    }];
    let fee = bt.fee.unwrap_or(0);
    if fee != 0 {
        out.push(Transaction {
            id: format!("{}{FEE_RECORD_SUFFIX}", bt.id),
            total_amount: Some(Amount::from_minor(fee, &cur).negated()),
            currency: Some(cur),
            transaction_type: Some(if fee > 0 { TransactionType::PaymentFee } else { TransactionType::PaymentFeeRefund }),
            sub_type: Some(FEE_SUB_TYPE.to_owned()),
            transaction_source_ref: source_ref,
            supplemental_data: None,
            created_date: created.clone(),
            source_created_date: created,
            modified_date: None,
            source_modified_date: None,
        });
    }
    Ok(out)
}
