//! The Stripe → Codat mapping of every data type against hand-written Stripe JSON: Codat's own
//! "Stripe Test" examples where they exist, zero- and three-decimal currencies, unknown enum
//! values, deleted objects and sparse objects.

use rust_decimal::Decimal;
use serde_json::{Value, json};
use tributary_domain::model::commerce::{
    AddressType, DisputeStatus, PaymentStatus, PhoneNumberType, ProductVariantStatus, TransactionSourceType, TransactionType, WebLinkType,
};
use tributary_domain::money::Amount;
use tributary_stripe::mapping;

fn amount(units: i64, scale: u32) -> Option<Amount> {
    Some(Amount(Decimal::new(units, scale)))
}

fn to_json<T: serde::Serialize>(x: &T) -> Value {
    serde_json::to_value(x).unwrap()
}

#[test]
fn customer_matches_codats_stripe_example() {
    let stripe = json!({
        "id": "cus_LXdFFgHqqVURIv", "object": "customer", "created": 1_650_439_801, "currency": "gbp",
        "name": "David Dunlow", "email": "david@example.com", "phone": "+447545309714", "description": "Test Subscriptions",
        "address": {"line1": "301 Ink Rooms", "line2": "28 Easton Street", "city": "London", "state": null, "country": "GB", "postal_code": "WC1X 0BE"},
        "shipping": {"name": "David", "phone": null, "address": {"line1": "1 Dock Road", "line2": null, "city": "London", "state": "Greater London", "country": "GB", "postal_code": "E1 1AA"}},
        "metadata": {}, "livemode": false
    });
    let c = mapping::customer(&stripe).unwrap().unwrap();
    assert_eq!(
        to_json(&c),
        json!({
            "id": "cus_LXdFFgHqqVURIv", "customerName": "David Dunlow", "emailAddress": "david@example.com", "phone": "+447545309714",
            "defaultCurrency": "gbp",
            "addresses": [
                {"type": "Billing", "line1": "301 Ink Rooms", "line2": "28 Easton Street", "city": "London", "country": "GB", "postalCode": "WC1X 0BE"},
                {"type": "Delivery", "line1": "1 Dock Road", "city": "London", "region": "Greater London", "country": "GB", "postalCode": "E1 1AA"}
            ],
            "note": "Test Subscriptions", "createdDate": "2022-04-20T07:30:01Z"
        })
    );
}

#[test]
fn sparse_and_deleted_customers() {
    // No name, address of nulls, no currency: only what Stripe has.
    let stripe = json!({"id": "cus_2", "object": "customer", "created": 0, "name": null, "business_name": "Acme Ltd", "email": null,
        "address": {"line1": null, "line2": null, "city": null, "state": null, "country": null, "postal_code": null}, "shipping": null, "currency": null});
    let c = mapping::customer(&stripe).unwrap().unwrap();
    assert_eq!(to_json(&c), json!({"id": "cus_2", "customerName": "Acme Ltd", "addresses": [], "createdDate": "1970-01-01T00:00:00Z"}));
    assert_eq!(mapping::customer(&json!({"id": "cus_3", "object": "customer", "deleted": true})).unwrap(), None);
    // No id: an error, not a panic.
    assert!(mapping::customer(&json!({"object": "customer"})).is_err());
}

#[test]
fn dispute_matches_codats_stripe_example_and_maps_every_status() {
    let stripe = json!({
        "id": "dp_1Hqhl8A8m8S1Gh7OJrvF3gsK", "object": "dispute", "amount": 2500, "currency": "gbp", "created": 1_606_148_362,
        "status": "under_review", "reason": "fraudulent", "charge": "ch_1",
        "balance_transactions": [{"id": "txn_1Hqhl8A8m8S1Gh7OtmAPNr9e", "object": "balance_transaction", "amount": -2500, "fee": 1500}],
        "evidence_details": {"due_by": 1_606_953_599, "has_evidence": false, "past_due": false, "submission_count": 0}
    });
    let d = mapping::dispute(&stripe).unwrap().unwrap();
    assert_eq!(
        to_json(&d),
        json!({
            "id": "dp_1Hqhl8A8m8S1Gh7OJrvF3gsK", "disputedTransactions": [{"id": "txn_1Hqhl8A8m8S1Gh7OtmAPNr9e", "type": "Payment"}],
            "totalAmount": 25, "currency": "GBP", "status": "Processing", "reason": "fraudulent",
            "dueDate": "2020-12-02T23:59:59Z", "createdDate": "2020-11-23T16:19:22Z"
        })
    );
    let table = [
        ("warning_needs_response", DisputeStatus::InquiryEvidenceRequired),
        ("warning_under_review", DisputeStatus::InquiryProcessing),
        ("warning_closed", DisputeStatus::InquiryClosed),
        ("needs_response", DisputeStatus::EvidenceRequired),
        ("under_review", DisputeStatus::Processing),
        ("charge_refunded", DisputeStatus::ChargeRefunded),
        ("won", DisputeStatus::Won),
        ("lost", DisputeStatus::Lost),
        ("appeal_needs_response", DisputeStatus::EvidenceRequired),
        ("appeal_under_review", DisputeStatus::Processing),
        ("prevented", DisputeStatus::Unknown),
        ("escalated_to_the_moon", DisputeStatus::Unknown),
    ];
    for (stripe_status, codat) in table {
        assert_eq!(mapping::dispute_status(stripe_status), codat, "{stripe_status}");
    }
}

#[test]
fn dispute_in_yen_with_an_unknown_status_and_no_transactions() {
    let stripe = json!({"id": "dp_2", "object": "dispute", "amount": 5000, "currency": "jpy", "created": 1_767_225_600,
        "status": "brand_new_status", "reason": "some_future_reason", "balance_transactions": [], "evidence_details": {"due_by": null}});
    let d = mapping::dispute(&stripe).unwrap().unwrap();
    assert_eq!(
        to_json(&d),
        json!({"id": "dp_2", "disputedTransactions": [], "totalAmount": 5000, "currency": "JPY", "status": "Unknown",
            "reason": "some_future_reason", "createdDate": "2026-01-01T00:00:00Z"})
    );
}

#[test]
fn charges_map_to_payments_by_status() {
    let charge = |status: &str, captured: bool, refunded: bool| {
        json!({"id": "ch_1", "object": "charge", "amount": 1234, "currency": "kwd", "created": 1_767_225_600, "status": status,
            "captured": captured, "refunded": refunded, "paid": status == "succeeded", "payment_method": "pm_1",
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}}})
    };
    let p = mapping::charge_payment(&charge("succeeded", true, false)).unwrap().unwrap();
    assert_eq!(
        to_json(&p),
        json!({"id": "ch_1", "amount": 1.234, "currency": "KWD", "paymentMethodRef": {"id": "pm_1", "name": "card"}, "status": "Paid",
            "paymentProvider": "Stripe", "createdDate": "2026-01-01T00:00:00Z"})
    );
    let status = |s, c, r| mapping::charge_payment(&charge(s, c, r)).unwrap().unwrap().status;
    assert_eq!(status("succeeded", false, false), Some(PaymentStatus::Authorized));
    assert_eq!(status("succeeded", false, true), Some(PaymentStatus::Cancelled));
    assert_eq!(status("pending", false, false), Some(PaymentStatus::Pending));
    assert_eq!(status("failed", false, false), Some(PaymentStatus::Failed));
    assert_eq!(status("requires_teleportation", false, false), Some(PaymentStatus::Unknown));
    // A charge without a payment method has no reference.
    let bare = json!({"id": "ch_2", "amount": 500, "currency": "jpy", "status": "failed", "payment_method": null});
    let p = mapping::charge_payment(&bare).unwrap().unwrap();
    assert_eq!(to_json(&p), json!({"id": "ch_2", "amount": 500, "currency": "JPY", "status": "Failed", "paymentProvider": "Stripe"}));
}

#[test]
fn refunds_are_separate_negative_payments() {
    let stripe = json!({"id": "re_1", "object": "refund", "amount": 2500, "currency": "jpy", "charge": "ch_1", "created": 1_767_225_600,
        "status": "succeeded", "payment_method": null, "destination_details": {"type": "card", "card": {}}, "reason": "requested_by_customer"});
    let p = mapping::refund_payment(&stripe).unwrap().unwrap();
    assert_eq!(
        to_json(&p),
        json!({"id": "re_1", "amount": -2500, "currency": "JPY", "status": "Paid", "paymentProvider": "Stripe", "createdDate": "2026-01-01T00:00:00Z"})
    );
    for (s, expected) in [
        ("pending", PaymentStatus::Pending),
        ("requires_action", PaymentStatus::Pending),
        ("failed", PaymentStatus::Failed),
        ("canceled", PaymentStatus::Cancelled),
        ("bounced_off_the_moon", PaymentStatus::Unknown),
    ] {
        assert_eq!(mapping::refund_status(s), expected, "{s}");
    }
    let with_pm = json!({"id": "re_2", "amount": 1, "currency": "usd", "status": "succeeded", "payment_method": "pm_9", "destination_details": {"type": "card"}});
    let p = mapping::refund_payment(&with_pm).unwrap().unwrap();
    assert_eq!(p.amount, amount(-1, 2));
    assert_eq!(to_json(&p.payment_method_ref), json!({"id": "pm_9", "name": "card"}));
}

#[test]
fn an_expired_authorization_is_a_cancelled_charge_and_a_cancelled_refund_so_paid_payments_sum_to_money_received() {
    // What Stripe returns once an uncaptured charge's authorization expires (7 days): the charge
    // refunded but never captured, and a succeeded refund with reason expired_uncaptured_charge.
    let charge = json!({"id": "ch_x", "object": "charge", "amount": 5000, "amount_captured": 0, "amount_refunded": 5000, "currency": "usd",
        "created": 1_767_225_600, "status": "succeeded", "captured": false, "refunded": true, "paid": true, "payment_method": "pm_1"});
    let refund = json!({"id": "re_x", "object": "refund", "amount": 5000, "currency": "usd", "charge": "ch_x", "created": 1_767_830_400,
        "status": "succeeded", "reason": "expired_uncaptured_charge", "payment_method": "pm_1", "destination_details": {"type": "card"}});
    let captured = json!({"id": "ch_y", "object": "charge", "amount": 700, "currency": "usd", "created": 1_767_225_600,
        "status": "succeeded", "captured": true, "refunded": false, "paid": true});
    let payments = [
        mapping::charge_payment(&charge).unwrap().unwrap(),
        mapping::refund_payment(&refund).unwrap().unwrap(),
        mapping::charge_payment(&captured).unwrap().unwrap(),
    ];
    assert_eq!(payments[0].status, Some(PaymentStatus::Cancelled));
    assert_eq!(payments[1].status, Some(PaymentStatus::Cancelled), "no money moved back either");
    assert_eq!(payments[1].amount, amount(-5000, 2), "the amount stays, for the charge's amounts minus refunds to balance");
    let paid: rust_decimal::Decimal = payments
        .iter()
        .filter(|p| p.status == Some(PaymentStatus::Paid))
        .map(|p| p.amount.as_ref().unwrap().to_string().parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    assert_eq!(paid, "7".parse().unwrap(), "Paid payments sum to the money received");
    // Any other reason keeps the refund's own status.
    let requested = json!({"id": "re_z", "amount": 100, "currency": "usd", "status": "succeeded", "reason": "requested_by_customer"});
    assert_eq!(mapping::refund_payment(&requested).unwrap().unwrap().status, Some(PaymentStatus::Paid));
}

#[test]
fn product_with_prices_matches_codats_stripe_example() {
    let product = json!({"id": "prod_IaSbzLnxOHmC0i", "object": "product", "name": "Blue T Shirt", "description": "Nice cozy cotton t shirt",
        "active": true, "shippable": true, "created": 1_608_193_068, "updated": 1_611_298_337, "unit_label": null, "type": "good"});
    let prices = [
        json!({"id": "price_1ICJVEA8m8S1Gh7OIOCDOG8j", "object": "price", "active": true, "currency": "gbp", "unit_amount": 1500,
            "unit_amount_decimal": "1500", "nickname": null, "product": "prod_IaSbzLnxOHmC0i", "created": 1_611_298_336,
            "tax_behavior": "unspecified", "type": "one_time"}),
        json!({"id": "price_kwd", "object": "price", "active": false, "currency": "kwd", "unit_amount": 12345, "nickname": "Monthly",
            "product": "prod_IaSbzLnxOHmC0i", "created": 1_611_298_400, "tax_behavior": "exclusive", "type": "recurring",
            "currency_options": {"kwd": {"unit_amount": 12345}, "jpy": {"unit_amount": 6000}}}),
        json!({"id": "price_tiered", "object": "price", "active": true, "currency": "usd", "unit_amount": null, "unit_amount_decimal": "12.5",
            "nickname": "", "product": "prod_IaSbzLnxOHmC0i", "created": 1_611_298_500, "billing_scheme": "per_unit"}),
        json!({"id": "price_gone", "object": "price", "deleted": true}),
    ];
    let p = mapping::product(&product, &prices).unwrap().unwrap();
    assert_eq!(
        to_json(&p),
        json!({
            "id": "prod_IaSbzLnxOHmC0i", "name": "Blue T Shirt", "description": "Nice cozy cotton t shirt", "isGiftCard": false,
            "variants": [
                {"id": "price_1ICJVEA8m8S1Gh7OIOCDOG8j", "name": "Blue T Shirt - Standard Price", "isTaxEnabled": false, "vatPercentage": 0,
                 "prices": [{"currency": "GBP", "unitPrice": 15}], "inventory": {"totalQuantity": 0, "locations": []},
                 "shippingRequired": true, "status": "Published", "createdDate": "2021-01-22T06:52:16Z"},
                {"id": "price_kwd", "name": "Blue T Shirt - Monthly", "isTaxEnabled": true,
                 "prices": [{"currency": "KWD", "unitPrice": 12.345}, {"currency": "JPY", "unitPrice": 6000}],
                 "inventory": {"totalQuantity": 0, "locations": []}, "shippingRequired": true, "status": "Unpublished",
                 "createdDate": "2021-01-22T06:53:20Z"},
                {"id": "price_tiered", "name": "Blue T Shirt - Standard Price", "isTaxEnabled": false, "vatPercentage": 0,
                 "prices": [{"currency": "USD", "unitPrice": 0.125}], "inventory": {"totalQuantity": 0, "locations": []},
                 "shippingRequired": true, "status": "Published", "createdDate": "2021-01-22T06:55:00Z"}
            ],
            "createdDate": "2020-12-17T08:17:48Z", "sourceModifiedDate": "2021-01-22T06:52:17Z"
        })
    );
    // An archived product's variants are all unpublished; a deleted product maps to nothing.
    let mut archived = product.clone();
    archived["active"] = json!(false);
    let p = mapping::product(&archived, &prices[..1]).unwrap().unwrap();
    assert_eq!(p.variants[0].status, Some(ProductVariantStatus::Unpublished));
    assert_eq!(mapping::product(&json!({"id": "prod_x", "deleted": true}), &[]).unwrap(), None);
    assert_eq!(mapping::price_product_id(&prices[0]).as_deref(), Some("prod_IaSbzLnxOHmC0i"));
    assert_eq!(mapping::price_product_id(&json!({"product": {"id": "prod_e", "object": "product"}})).as_deref(), Some("prod_e"));
}

#[test]
fn balance_transaction_and_its_fee_match_codats_stripe_example() {
    let bt = json!({"id": "txn_1HpGQUA8m8S1Gh7OR21pB0Yj", "object": "balance_transaction", "amount": 5000, "currency": "gbp",
        "created": 1_605_804_966, "fee": 90, "net": 4910, "type": "charge", "source": "ch_1HpGQUA8m8S1Gh7Ot4WDTus5",
        "fee_details": [{"amount": 90, "currency": "gbp", "type": "stripe_fee", "description": "Stripe processing fees"}],
        "status": "available", "reporting_category": "charge"});
    let t = mapping::transactions(&bt).unwrap();
    assert_eq!(
        to_json(&t),
        json!([
            {"id": "txn_1HpGQUA8m8S1Gh7OR21pB0Yj", "totalAmount": 50, "currency": "GBP", "type": "Payment", "subType": "charge",
             "transactionSourceRef": {"id": "ch_1HpGQUA8m8S1Gh7Ot4WDTus5", "type": "Payment"},
             "createdDate": "2020-11-19T16:56:06Z", "sourceCreatedDate": "2020-11-19T16:56:06Z"},
            {"id": "txn_1HpGQUA8m8S1Gh7OR21pB0Yj:Stripe processing fees", "totalAmount": -0.9, "currency": "GBP", "type": "PaymentFee",
             "subType": "stripe_fee", "transactionSourceRef": {"id": "ch_1HpGQUA8m8S1Gh7Ot4WDTus5", "type": "Payment"},
             "createdDate": "2020-11-19T16:56:06Z", "sourceCreatedDate": "2020-11-19T16:56:06Z"}
        ])
    );
}

#[test]
fn balance_transactions_in_kwd_and_jpy_with_refunded_fees_and_unknown_types() {
    // A dispute-won reversal gives the fee back: the fee record is positive and a fee refund.
    let bt = json!({"id": "txn_k", "amount": 12345, "currency": "kwd", "created": 0, "fee": -1500, "type": "adjustment", "source": "dp_1"});
    let t = mapping::transactions(&bt).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].total_amount, t[0].transaction_type, t[0].sub_type.as_deref()),
        (amount(12345, 3), Some(TransactionType::Unknown), Some("adjustment"))
    );
    assert_eq!(t[0].transaction_source_ref.as_ref().map(|r| r.source_type), Some(TransactionSourceType::Unknown));
    assert_eq!((t[1].total_amount, t[1].transaction_type), (amount(1500, 3), Some(TransactionType::PaymentFeeRefund)));
    // No fee, no fee record; a yen refund; an expanded source; a type Stripe invents tomorrow.
    let bt = json!({"id": "txn_j", "amount": -2500, "currency": "jpy", "created": 0, "fee": 0, "type": "refund", "source": {"id": "re_1", "object": "refund"}});
    let t = mapping::transactions(&bt).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].total_amount, t[0].transaction_type), (amount(-2500, 0), Some(TransactionType::Refund)));
    assert_eq!(to_json(&t[0].transaction_source_ref), json!({"id": "re_1", "type": "Payment"}));
    let bt = json!({"id": "txn_n", "amount": 1, "currency": "usd", "created": 0, "type": "quantum_settlement", "source": null});
    let t = mapping::transactions(&bt).unwrap();
    assert_eq!((t[0].transaction_type, t[0].transaction_source_ref.clone()), (Some(TransactionType::Unknown), None));
    // A Stripe fee charged on its own points at a Fee source.
    let bt = json!({"id": "txn_f", "amount": -300, "currency": "eur", "created": 0, "fee": 0, "type": "stripe_fee", "source": "ab_1"});
    let t = mapping::transactions(&bt).unwrap();
    assert_eq!(to_json(&t[0]).get("transactionSourceRef").cloned(), Some(json!({"id": "ab_1", "type": "Fee"})));
    assert_eq!(t[0].transaction_type, Some(TransactionType::PaymentFee));
    assert!(mapping::transactions(&json!({"id": "txn_bad", "amount": 1, "currency": "dollars"})).is_err());
}

#[test]
fn every_current_balance_transaction_type_has_a_mapping() {
    use TransactionType as T;
    let table: [(&str, TransactionType); 52] = [
        ("adjustment", T::Unknown),
        ("advance", T::Unknown),
        ("advance_funding", T::Unknown),
        ("anticipation_repayment", T::Unknown),
        ("application_fee", T::PaymentFee),
        ("application_fee_refund", T::PaymentFeeRefund),
        ("charge", T::Payment),
        ("climate_order_purchase", T::Unknown),
        ("climate_order_refund", T::Unknown),
        ("connect_collection_transfer", T::Transfer),
        ("contribution", T::Unknown),
        ("fee_credit_funding", T::Unknown),
        ("inbound_transfer", T::Unknown),
        ("inbound_transfer_reversal", T::Unknown),
        ("issuing_authorization_hold", T::Unknown),
        ("issuing_authorization_release", T::Unknown),
        ("issuing_dispute", T::Unknown),
        ("issuing_dispute_provisional_credit", T::Unknown),
        ("issuing_dispute_provisional_credit_reversal", T::Unknown),
        ("issuing_transaction", T::Unknown),
        ("obligation_outbound", T::Unknown),
        ("obligation_reversal_inbound", T::Unknown),
        ("payment", T::Payment),
        ("payment_failure_refund", T::Refund),
        ("payment_network_reserve_hold", T::Unknown),
        ("payment_network_reserve_release", T::Unknown),
        ("payment_refund", T::Refund),
        ("payment_reversal", T::Refund),
        ("payment_unreconciled", T::Unknown),
        ("payout", T::Payout),
        ("payout_cancel", T::FailedPayout),
        ("payout_failure", T::FailedPayout),
        ("payout_minimum_balance_hold", T::Unknown),
        ("payout_minimum_balance_release", T::Unknown),
        ("refund", T::Refund),
        ("refund_failure", T::Unknown),
        ("reserve_hold", T::Unknown),
        ("reserve_release", T::Unknown),
        ("reserve_transaction", T::Unknown),
        ("reserved_funds", T::Unknown),
        ("stripe_balance_payment_debit", T::Unknown),
        ("stripe_balance_payment_debit_reversal", T::Unknown),
        ("stripe_fee", T::PaymentFee),
        ("stripe_fx_fee", T::PaymentFee),
        ("tax_fee", T::PaymentFee),
        ("tax_fund", T::Unknown),
        ("topup", T::Unknown),
        ("topup_reversal", T::Unknown),
        ("transfer", T::Transfer),
        ("transfer_cancel", T::Transfer),
        ("transfer_failure", T::Transfer),
        ("transfer_refund", T::Transfer),
    ];
    for (stripe_type, codat) in table {
        assert_eq!(mapping::transaction_type(stripe_type), codat, "{stripe_type}");
    }
    for legacy in ["obligation_inbound", "obligation_payout", "obligation_payout_failure", "obligation_reversal_outbound", ""] {
        assert_eq!(mapping::transaction_type(legacy), T::Unknown, "{legacy}");
    }
}

#[test]
fn company_info_from_account_and_balance() {
    let account = json!({
        "id": "acct_1", "object": "account", "created": 1_735_603_200, "default_currency": "usd", "country": "GB",
        "business_profile": {"name": "Blue Mug Shop", "support_phone": "+442079460000", "url": "https://example.com",
            "support_address": {"line1": "1 Market Street", "city": "London", "postal_code": "WC1X 0BE", "country": "GB", "line2": null, "state": null}},
        "company": {"name": "Blue Mug Shop Ltd", "phone": "+442079460001",
            "address": {"line1": "2 Market Street", "city": "London", "postal_code": "WC1X 0BE", "country": "GB", "line2": null, "state": null}},
        "settings": {"dashboard": {"display_name": "Blue Mugs"}}
    });
    let balance = json!({"object": "balance",
        "available": [{"amount": 1050, "currency": "usd", "source_types": {"card": 1000}}, {"amount": 50, "currency": "usd"}, {"amount": 5000, "currency": "jpy"}],
        "pending": [{"amount": 12345, "currency": "kwd"}, {"amount": -5, "currency": "usd"}],
        "connect_reserved": [{"amount": 100, "currency": "jpy"}]});
    let info = mapping::company_info(&account, &balance, "https://api.stripe.com/").unwrap();
    assert_eq!(
        to_json(&info),
        json!({
            "companyName": "Blue Mug Shop", "commercePlatformRef": "acct_1", "companyLegalName": "Blue Mug Shop Ltd",
            "addresses": [
                {"type": "Billing", "line1": "2 Market Street", "city": "London", "country": "GB", "postalCode": "WC1X 0BE"},
                {"type": "Unknown", "line1": "1 Market Street", "city": "London", "country": "GB", "postalCode": "WC1X 0BE"}
            ],
            "phoneNumbers": [{"number": "+442079460000", "type": "Primary"}],
            "webLinks": [{"type": "Website", "url": "https://example.com"}],
            "baseCurrency": "USD",
            "accountBalances": [
                {"available": 5000, "pending": 0, "reserved": 100, "currency": "JPY"},
                {"available": 0, "pending": 12.345, "reserved": 0, "currency": "KWD"},
                {"available": 11, "pending": -0.05, "reserved": 0, "currency": "USD"}
            ],
            "sourceUrls": {"Api": "https://api.stripe.com"},
            "createdDate": "2024-12-31T00:00:00Z"
        })
    );
    assert_eq!(info.phone_numbers[0].phone_type, PhoneNumberType::Primary);
    assert_eq!(info.web_links[0].link_type, WebLinkType::Website);
    assert_eq!(info.addresses[0].address_type, AddressType::Billing);
    // A bare account: the dashboard name stands in; no balances.
    let bare = json!({"id": "acct_2", "settings": {"dashboard": {"display_name": "Shop"}}});
    let info = mapping::company_info(&bare, &json!({"available": [], "pending": []}), "http://x").unwrap();
    assert_eq!(info.company_name.as_deref(), Some("Shop"));
    assert!(info.account_balances.is_empty() && info.addresses.is_empty() && info.base_currency.is_none());
}

#[test]
fn dates_are_iso_8601_utc() {
    assert_eq!(mapping::iso8601(1_767_225_600).as_deref(), Some("2026-01-01T00:00:00Z"));
    assert_eq!(mapping::iso8601(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(mapping::iso8601(i64::MAX), None);
}
