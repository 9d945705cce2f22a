//! Stripe object builders with every field of the current API version (2026-10-28.endive; see
//! shared/reference/stripe/stripe-fields-current.json), filled with realistic values.

use crate::store::Mode;
use serde_json::{Value, json};

/// Inputs common to every object.
pub struct Ctx<'a> {
    /// Live or test.
    pub mode: Mode,
    /// The connected account (for `on_behalf_of`-like fields and URLs).
    pub account: &'a str,
}

impl Ctx<'_> {
    fn livemode(&self) -> bool {
        self.mode == Mode::Live
    }
}

/// Stripe's processing fee for an amount: 2.9% + 30 minor units (3.6% for zero-decimal currencies).
pub fn stripe_fee(amount: i64, currency: &str) -> i64 {
    if crate::generator::ZERO_DECIMAL.contains(&currency) { (amount * 36 + 999) / 1000 } else { (amount * 29 + 999) / 1000 + 30 }
}

/// An address.
pub fn address(line1: &str, city: &str, postal: &str, country: &str) -> Value {
    json!({"city": city, "country": country, "line1": line1, "line2": null, "postal_code": postal, "state": null})
}

/// A customer.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn customer(
    c: &Ctx,
    id: &str,
    created: i64,
    name: &str,
    email: &str,
    phone: Option<&str>,
    addr: Option<Value>,
    shipping: Option<Value>,
    currency: Option<&str>,
    description: Option<&str>,
) -> Value {
    json!({
        "id": id, "object": "customer", "address": addr, "balance": 0, "business_name": null, "cash_balance": null,
        "created": created, "currency": currency, "customer_account": null, "default_source": null, "delinquent": false,
        "description": description, "discount": null, "email": email, "individual_name": null, "invoice_credit_balance": {},
        "invoice_prefix": id[4..].chars().take(8).collect::<String>().to_uppercase(),
        "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
        "livemode": c.livemode(), "metadata": {}, "name": name, "next_invoice_sequence": 1, "phone": phone,
        "preferred_locales": [], "shipping": shipping.map(|a| json!({"address": a, "name": name, "phone": phone})),
        "tax_exempt": "none", "test_clock": null
    })
}

/// Card details for a charge.
fn card(last4: &str, brand: &str) -> Value {
    json!({
        "card": {"amount_authorized": null, "authorization_code": null, "brand": brand, "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
                 "country": "US", "exp_month": 12, "exp_year": 2030, "extended_authorization": {"status": "disabled"}, "fingerprint": "fp_sandbox",
                 "funding": "credit", "incremental_authorization": {"status": "unavailable"}, "installments": null, "last4": last4, "mandate": null,
                 "multicapture": {"status": "unavailable"}, "network": brand, "network_token": {"used": false}, "network_transaction_id": null,
                 "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"}, "regulated_status": "unregulated", "three_d_secure": null, "wallet": null},
        "type": "card"
    })
}

/// The charge's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeState {
    /// Succeeded and captured.
    Captured,
    /// Succeeded, authorized only.
    Uncaptured,
    /// Pending.
    Pending,
    /// Failed.
    Failed,
}

/// A charge.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn charge(
    c: &Ctx,
    id: &str,
    created: i64,
    amount: i64,
    currency: &str,
    customer: Option<&str>,
    pi: &str,
    pm: &str,
    state: ChargeState,
    txn: Option<&str>,
    last4: &str,
    brand: &str,
) -> Value {
    let (status, paid, captured, failure_code, failure_message, outcome_type) = match state {
        ChargeState::Captured => ("succeeded", true, true, None, None, "authorized"),
        ChargeState::Uncaptured => ("succeeded", true, false, None, None, "authorized"),
        ChargeState::Pending => ("pending", false, false, None, None, "authorized"),
        ChargeState::Failed => ("failed", false, false, Some("card_declined"), Some("Your card was declined."), "issuer_declined"),
    };
    json!({
        "id": id, "object": "charge", "amount": amount, "amount_captured": if captured { amount } else { 0 }, "amount_refunded": 0,
        "application": null, "application_fee": null, "application_fee_amount": null, "authorization_code": null,
        "balance_transaction": txn, "billing_details": {"address": null, "email": null, "name": null, "phone": null, "tax_id": null},
        "calculated_statement_descriptor": "SANDBOX SHOP", "captured": captured, "created": created, "currency": currency, "customer": customer,
        "description": null, "disputed": false, "failure_balance_transaction": null, "failure_code": failure_code, "failure_message": failure_message,
        "fraud_details": {}, "level3": null, "livemode": c.livemode(), "metadata": {}, "on_behalf_of": null,
        "outcome": {"advice_code": null, "network_advice_code": null, "network_decline_code": null, "network_status": if status == "failed" { "declined_by_network" } else { "approved_by_network" },
                    "reason": failure_code, "risk_level": "normal", "risk_score": 20, "seller_message": if status == "failed" { "The bank did not return any further details with this decline." } else { "Payment complete." }, "type": outcome_type},
        "paid": paid, "payment_intent": pi, "payment_method": pm, "payment_method_details": card(last4, brand), "presentment_details": null,
        "radar_options": {}, "receipt_email": null, "receipt_number": null, "receipt_url": format!("https://pay.stripe.com/receipts/{}/{id}", c.account),
        "refunded": false, "review": null, "shipping": null, "source": null, "source_transfer": null, "statement_descriptor": null,
        "statement_descriptor_suffix": null, "status": status, "transfer": null, "transfer_data": null, "transfer_group": null
    })
}

/// A payment intent for a charge.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn payment_intent(
    c: &Ctx,
    id: &str,
    created: i64,
    amount: i64,
    currency: &str,
    customer: Option<&str>,
    charge: &str,
    pm: &str,
    state: ChargeState,
) -> Value {
    let (status, received, capturable, capture_method) = match state {
        ChargeState::Captured => ("succeeded", amount, 0, "automatic"),
        ChargeState::Uncaptured => ("requires_capture", 0, amount, "manual"),
        ChargeState::Pending => ("processing", 0, 0, "automatic"),
        ChargeState::Failed => ("requires_payment_method", 0, 0, "automatic"),
    };
    json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": capturable, "amount_details": {"tip": {}},
        "amount_received": received, "application": null, "application_fee_amount": null, "automatic_payment_methods": null,
        "canceled_at": null, "cancellation_reason": null, "capture_method": capture_method, "client_secret": format!("{id}_secret_sandbox"),
        "confirmation_method": "automatic", "created": created, "currency": currency, "customer": customer, "customer_account": null,
        "description": null, "excluded_payment_method_types": null, "last_payment_error": null, "latest_charge": charge, "livemode": c.livemode(),
        "metadata": {}, "next_action": null, "on_behalf_of": null, "payment_method": pm, "payment_method_configuration_details": null,
        "payment_method_options": {"card": {"installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "presentment_details": null, "processing": null, "receipt_email": null, "review": null,
        "setup_future_usage": null, "shipping": null, "statement_descriptor": null, "statement_descriptor_suffix": null, "status": status,
        "transfer_data": null, "transfer_group": null
    })
}

/// A refund.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn refund(id: &str, created: i64, amount: i64, currency: &str, charge: &str, pi: &str, txn: &str, reason: Option<&str>) -> Value {
    json!({
        "id": id, "object": "refund", "amount": amount, "balance_transaction": txn, "charge": charge, "created": created, "currency": currency,
        "customer": null, "customer_account": null, "description": null, "destination_details": {"card": {"reference": null, "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}, "type": "card"},
        "failure_balance_transaction": null, "failure_reason": null, "instructions_email": null, "metadata": {}, "next_action": null,
        "payment_intent": pi, "payment_method": null, "pending_reason": null, "presentment_details": null, "reason": reason, "receipt_number": null,
        "source_transfer_reversal": null, "status": "succeeded", "transfer_reversal": null
    })
}

/// A balance transaction.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn balance_transaction(
    id: &str,
    created: i64,
    amount: i64,
    fee: i64,
    currency: &str,
    source: &str,
    kind: &str,
    category: &str,
    description: Option<&str>,
    available: bool,
) -> Value {
    let fee_details = if fee == 0 {
        json!([])
    } else {
        json!([{"amount": fee, "application": null, "currency": currency, "description": if kind == "adjustment" { "Dispute fee" } else { "Stripe processing fees" }, "type": "stripe_fee"}])
    };
    json!({
        "id": id, "object": "balance_transaction", "amount": amount, "available_on": created + 2 * 86_400, "balance_type": "payments",
        "created": created, "currency": currency, "description": description, "exchange_rate": null, "fee": fee, "fee_details": fee_details,
        "net": amount - fee, "reporting_category": category, "source": source, "status": if available { "available" } else { "pending" }, "type": kind
    })
}

/// A dispute.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn dispute(
    c: &Ctx,
    id: &str,
    created: i64,
    amount: i64,
    currency: &str,
    charge: &str,
    pi: &str,
    status: &str,
    reason: &str,
    bts: Vec<Value>,
) -> Value {
    let refundable = matches!(status, "warning_needs_response" | "warning_under_review" | "needs_response" | "under_review");
    json!({
        "id": id, "object": "dispute", "amount": amount, "balance_transactions": bts, "charge": charge, "created": created, "currency": currency,
        "enhanced_eligibility_types": [], "evidence": {"access_activity_log": null, "billing_address": null, "cancellation_policy": null, "customer_email_address": null, "customer_name": null, "product_description": null, "receipt": null, "refund_policy": null, "shipping_address": null, "uncategorized_text": null},
        "evidence_details": {"due_by": created + 7 * 86_400 + 86_399, "enhanced_eligibility": {}, "has_evidence": false, "past_due": false, "submission_count": 0},
        "intended_submission_method": null, "is_charge_refundable": refundable, "livemode": c.livemode(), "metadata": {}, "network_reason_code": "10.4",
        "payment_intent": pi, "payment_method_details": {"card": {"brand": "visa", "case_type": if status.starts_with("warning") { "inquiry" } else { "chargeback" }, "network_reason_code": "10.4"}, "type": "card"},
        "reason": reason, "status": status
    })
}

/// A product.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn product(
    c: &Ctx,
    id: &str,
    created: i64,
    name: &str,
    description: Option<&str>,
    active: bool,
    shippable: bool,
    default_price: Option<&str>,
) -> Value {
    json!({
        "id": id, "object": "product", "active": active, "created": created, "default_price": default_price, "description": description,
        "images": [], "livemode": c.livemode(), "marketing_features": [], "metadata": {}, "name": name, "package_dimensions": null,
        "shippable": shippable, "statement_descriptor": null, "tax_code": null, "tax_details": null, "type": "service", "unit_label": null,
        "updated": created, "url": null
    })
}

/// One currency of a price's `currency_options`.
pub fn option(unit_amount: i64) -> Value {
    json!({"custom_unit_amount": null, "tax_behavior": "unspecified", "unit_amount": unit_amount, "unit_amount_decimal": unit_amount.to_string()})
}

/// A price.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn price(
    c: &Ctx,
    id: &str,
    created: i64,
    product: &str,
    currency: &str,
    unit_amount: i64,
    recurring: bool,
    active: bool,
    nickname: Option<&str>,
) -> Value {
    json!({
        "id": id, "object": "price", "active": active, "billing_scheme": "per_unit", "created": created, "currency": currency,
        // Includable: stored here, and sent only when expanded (`expand[]=currency_options`, or
        // `data.currency_options` in lists). Like Stripe, it holds the price's own currency too.
        "currency_options": {currency: option(unit_amount)}, "custom_unit_amount": null, "livemode": c.livemode(), "lookup_key": null, "metadata": {}, "nickname": nickname,
        "product": product,
        "recurring": if recurring { json!({"interval": "month", "interval_count": 1, "meter": null, "trial_period_days": null, "usage_type": "licensed"}) } else { Value::Null },
        "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null, "type": if recurring { "recurring" } else { "one_time" },
        "unit_amount": unit_amount, "unit_amount_decimal": unit_amount.to_string()
    })
}

/// A payout.
#[expect(clippy::too_many_arguments, reason = "one argument per Stripe field the generator varies")]
pub fn payout(c: &Ctx, id: &str, created: i64, amount: i64, currency: &str, paid: bool, txn: &str, failure_txn: Option<&str>) -> Value {
    json!({
        "id": id, "object": "payout", "amount": amount, "application_fee": null, "application_fee_amount": null, "arrival_date": created + 2 * 86_400,
        "automatic": true, "balance_transaction": txn, "created": created, "currency": currency, "description": "STRIPE PAYOUT",
        "destination": "ba_sandbox", "failure_balance_transaction": failure_txn, "failure_code": if paid { Value::Null } else { json!("account_closed") },
        "failure_message": if paid { Value::Null } else { json!("The bank account has been closed.") }, "livemode": c.livemode(), "metadata": {},
        "method": "standard", "original_payout": null, "payout_method": null, "reconciliation_status": if paid { "completed" } else { "not_applicable" },
        "reversed_by": null, "source_type": "card", "statement_descriptor": null, "status": if paid { "paid" } else { "failed" }, "trace_id": null, "type": "bank_account"
    })
}

/// A deleted object, as retrieve returns it.
pub fn deleted(id: &str, object: &str) -> Value {
    json!({"id": id, "object": object, "deleted": true})
}
