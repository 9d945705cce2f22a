//! Exact money: currency codes, each currency's minor-unit exponent, and amounts in major units.
//!
//! Stripe sends integer minor units; Codat wants decimals in major units. Conversion uses the
//! currency's exponent from [`exponent`], never floating point.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An ISO 4217 currency code, upper case (`USD`, `JPY`, `KWD`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(String);

/// A currency code that is not three ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an ISO 4217 currency code")]
pub struct CurrencyError(pub String);

impl Currency {
    /// Parses a code in any case (`usd` or `USD`) and stores it upper-cased.
    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(code.to_ascii_uppercase()))
        } else {
            Err(CurrencyError(code.to_owned()))
        }
    }

    /// The upper-case code.
    pub fn code(&self) -> &str {
        &self.0
    }

    /// Number of decimal places of the currency's minor unit, as Stripe counts them.
    pub fn exponent(&self) -> u32 {
        exponent(&self.0)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(s: &str) -> Result<Self, CurrencyError> {
        Self::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Stripe's zero-decimal currencies (amounts are already in major units).
pub const ZERO_DECIMAL: &[&str] =
    &["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"];

/// Stripe's three-decimal currencies.
pub const THREE_DECIMAL: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];

/// The minor-unit exponent of a currency code (case-insensitive): 0, 2 or 3.
///
/// Every currency that is not zero- or three-decimal in Stripe's tables is two-decimal in Stripe's
/// API, including the special cases (ISK, HUF, TWD) that Stripe still takes as two-decimal amounts.
pub fn exponent(code: &str) -> u32 {
    let upper = code.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&upper.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&upper.as_str()) {
        3
    } else {
        2
    }
}

/// An exact amount in major units, serialised as a JSON number with no trailing zeros
/// (`25`, `-0.9`, `1.234`) and never through a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub Decimal);

impl Amount {
    /// Converts Stripe's integer minor units in `currency` to major units.
    pub fn from_minor(minor: i64, currency: &Currency) -> Self {
        Self(Decimal::new(minor, currency.exponent()))
    }

    /// Converts back to integer minor units, if the amount fits the currency's exponent exactly.
    pub fn to_minor(self, currency: &Currency) -> Option<i64> {
        use rust_decimal::prelude::ToPrimitive;
        let scaled = (self.0 * Decimal::from(10i64.pow(currency.exponent()))).normalize();
        if scaled.scale() == 0 { scaled.to_i64() } else { None }
    }

    /// The negated amount (refunds and fees are negative in Codat).
    #[must_use]
    pub fn negated(self) -> Self {
        Self(-self.0)
    }
}

impl From<Decimal> for Amount {
    fn from(d: Decimal) -> Self {
        Self(d)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::arbitrary_precision::serialize(&self.0.normalize(), s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accepts JSON numbers and numeric strings, as Codat's SDKs do.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(serde_json::Number),
            Str(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Num(n) => n.to_string(),
            Raw::Str(s) => s,
        };
        Decimal::from_str_exact(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("'{text}' is not a decimal amount: {e}")))
    }
}

/// An amount together with its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// Major units.
    pub amount: Amount,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// Money from Stripe's minor units and a currency code in any case.
    pub fn from_minor(minor: i64, currency_code: &str) -> Result<Self, CurrencyError> {
        let currency = Currency::parse(currency_code)?;
        Ok(Self { amount: Amount::from_minor(minor, &currency), currency })
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some("An exact decimal amount in major units (a JSON number, never rounded through a float)."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Amount {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Amount")
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Z]{3}$"))
            .description(Some("ISO 4217 currency code, upper case."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Currency {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Currency")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json(a: Amount) -> String {
        serde_json::to_string(&a).unwrap()
    }

    #[test]
    fn minor_units_convert_with_each_currencys_exponent() {
        assert_eq!(json(Money::from_minor(2500, "usd").unwrap().amount), "25");
        assert_eq!(json(Money::from_minor(-90, "gbp").unwrap().amount), "-0.9");
        assert_eq!(json(Money::from_minor(2500, "jpy").unwrap().amount), "2500");
        assert_eq!(json(Money::from_minor(1234, "KWD").unwrap().amount), "1.234");
        assert_eq!(json(Money::from_minor(1, "bhd").unwrap().amount), "0.001");
    }

    #[test]
    fn amounts_serialise_without_float_artefacts() {
        // 0.1 + 0.2 is the classic float artefact; exact decimals must print 0.3.
        let a = Amount(Decimal::new(1, 1) + Decimal::new(2, 1));
        assert_eq!(json(a), "0.3");
        let big = Amount(Decimal::new(9_007_199_254_740_993, 2));
        assert_eq!(json(big), "90071992547409.93");
    }

    #[test]
    fn amounts_deserialise_from_numbers_and_numeric_strings() {
        let a: Amount = serde_json::from_str("12.345").unwrap();
        assert_eq!(a.0, Decimal::new(12345, 3));
        let b: Amount = serde_json::from_str("\"-0.90\"").unwrap();
        assert_eq!(b.0, Decimal::new(-90, 2));
    }

    #[test]
    fn currency_codes_are_upper_cased_and_validated() {
        assert_eq!(Currency::parse("kwd").unwrap().code(), "KWD");
        assert!(Currency::parse("us").is_err());
        assert!(Currency::parse("u$d").is_err());
    }

    proptest! {
        #[test]
        fn minor_to_major_and_back_is_lossless(minor in -1_000_000_000_000i64..1_000_000_000_000i64,
                                               code in prop::sample::select(vec!["USD", "JPY", "KWD", "EUR", "BHD", "CLP"])) {
            let currency = Currency::parse(code).unwrap();
            let amount = Amount::from_minor(minor, &currency);
            prop_assert_eq!(amount.to_minor(&currency), Some(minor));
            let text = json(amount);
            let back: Amount = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back.0, amount.0);
        }
    }
}
