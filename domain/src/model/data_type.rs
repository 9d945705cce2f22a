//! Codat data types: the eleven commerce keys Tributary knows, and the full Codat list for messages.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A commerce data type, by Codat key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DataType {
    /// `commerce-companyInfo` (read at `…/data/commerce-info`).
    #[serde(rename = "commerce-companyInfo")]
    CompanyInfo,
    /// `commerce-customers`.
    #[serde(rename = "commerce-customers")]
    Customers,
    /// `commerce-disputes`.
    #[serde(rename = "commerce-disputes")]
    Disputes,
    /// `commerce-locations`.
    #[serde(rename = "commerce-locations")]
    Locations,
    /// `commerce-orders`.
    #[serde(rename = "commerce-orders")]
    Orders,
    /// `commerce-paymentMethods`.
    #[serde(rename = "commerce-paymentMethods")]
    PaymentMethods,
    /// `commerce-payments`.
    #[serde(rename = "commerce-payments")]
    Payments,
    /// `commerce-productCategories`.
    #[serde(rename = "commerce-productCategories")]
    ProductCategories,
    /// `commerce-products`.
    #[serde(rename = "commerce-products")]
    Products,
    /// `commerce-taxComponents`.
    #[serde(rename = "commerce-taxComponents")]
    TaxComponents,
    /// `commerce-transactions`.
    #[serde(rename = "commerce-transactions")]
    Transactions,
}

impl DataType {
    /// All commerce data types in Codat's order.
    pub const ALL: [Self; 11] = [
        Self::CompanyInfo,
        Self::Customers,
        Self::Disputes,
        Self::Locations,
        Self::Orders,
        Self::PaymentMethods,
        Self::Payments,
        Self::ProductCategories,
        Self::Products,
        Self::TaxComponents,
        Self::Transactions,
    ];

    /// The Codat key.
    pub fn key(self) -> &'static str {
        match self {
            Self::CompanyInfo => "commerce-companyInfo",
            Self::Customers => "commerce-customers",
            Self::Disputes => "commerce-disputes",
            Self::Locations => "commerce-locations",
            Self::Orders => "commerce-orders",
            Self::PaymentMethods => "commerce-paymentMethods",
            Self::Payments => "commerce-payments",
            Self::ProductCategories => "commerce-productCategories",
            Self::Products => "commerce-products",
            Self::TaxComponents => "commerce-taxComponents",
            Self::Transactions => "commerce-transactions",
        }
    }

    /// Whether Stripe provides this data type (the six Codat's Stripe integrations cover).
    pub fn supported_by_stripe(self) -> bool {
        matches!(self, Self::CompanyInfo | Self::Customers | Self::Disputes | Self::Payments | Self::Products | Self::Transactions)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A data-type key Tributary does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownDataType(pub String);

impl FromStr for DataType {
    type Err = UnknownDataType;
    fn from_str(s: &str) -> Result<Self, UnknownDataType> {
        if let Some(dt) = Self::ALL.into_iter().find(|d| d.key() == s) {
            return Ok(dt);
        }
        if CODAT_DATA_TYPES.contains(&s) {
            Err(UnknownDataType(format!("Datatype {s} is not a commerce data type and is not supported by this service.")))
        } else {
            Err(UnknownDataType(format!("'{s}' is not a data type.")))
        }
    }
}

/// Every key of Codat's `DataType` enum, so that a valid non-commerce key gets a precise message.
pub const CODAT_DATA_TYPES: &[&str] = &[
    "accountTransactions",
    "balanceSheet",
    "bankAccounts",
    "bankTransactions",
    "billCreditNotes",
    "billPayments",
    "bills",
    "cashFlowStatement",
    "chartOfAccounts",
    "company",
    "creditNotes",
    "customers",
    "directCosts",
    "directIncomes",
    "invoices",
    "itemReceipts",
    "items",
    "journalEntries",
    "journals",
    "paymentMethods",
    "payments",
    "profitAndLoss",
    "purchaseOrders",
    "salesOrders",
    "suppliers",
    "taxRates",
    "trackingCategories",
    "transfers",
    "banking-accountBalances",
    "banking-accounts",
    "banking-transactionCategories",
    "banking-transactions",
    "commerce-companyInfo",
    "commerce-customers",
    "commerce-disputes",
    "commerce-locations",
    "commerce-orders",
    "commerce-paymentMethods",
    "commerce-payments",
    "commerce-productCategories",
    "commerce-products",
    "commerce-taxComponents",
    "commerce-transactions",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_eleven_commerce_keys_round_trip_and_six_are_stripe_supported() {
        assert_eq!(DataType::ALL.len(), 11);
        for dt in DataType::ALL {
            assert_eq!(dt.key().parse::<DataType>().unwrap(), dt);
            assert_eq!(serde_json::to_string(&dt).unwrap(), format!("\"{}\"", dt.key()));
        }
        assert_eq!(DataType::ALL.iter().filter(|d| d.supported_by_stripe()).count(), 6);
        assert_eq!(CODAT_DATA_TYPES.len(), 43);
    }

    #[test]
    fn non_commerce_and_unknown_keys_are_told_apart() {
        assert!("invoices".parse::<DataType>().unwrap_err().0.contains("not a commerce data type"));
        assert!("nonsense".parse::<DataType>().unwrap_err().0.contains("not a data type"));
    }
}
