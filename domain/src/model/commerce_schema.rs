//! What each commerce list accepts in `query` and `orderBy`: Codat's scalar fields (arrays are not
//! queryable, as in Codat), typed so that numbers compare numerically, dates as instants, strings
//! with `~` as contains and enums exactly.

use crate::model::commerce::{DisputeStatus, PaymentStatus, TransactionSourceType, TransactionType};
use crate::model::data_type::DataType;
use crate::query::{FieldDef, FieldType, Schema};

const DATES: [FieldDef; 3] = [
    FieldDef::scalar("createdDate", FieldType::Date),
    FieldDef::scalar("modifiedDate", FieldType::Date),
    FieldDef::scalar("sourceModifiedDate", FieldType::Date),
];

/// Customers.
pub const CUSTOMERS: Schema = Schema {
    entity: "Customer",
    fields: &[
        FieldDef::scalar("id", FieldType::String),
        FieldDef::scalar("customerName", FieldType::String),
        FieldDef::scalar("emailAddress", FieldType::String),
        FieldDef::scalar("phone", FieldType::String),
        FieldDef::scalar("defaultCurrency", FieldType::String),
        FieldDef::scalar("note", FieldType::String),
        DATES[0],
        DATES[1],
        DATES[2],
    ],
    open: None,
};

/// Disputes.
pub const DISPUTES: Schema = Schema {
    entity: "Dispute",
    fields: &[
        FieldDef::scalar("id", FieldType::String),
        FieldDef::scalar("totalAmount", FieldType::Number),
        FieldDef::scalar("currency", FieldType::String),
        FieldDef::scalar("status", FieldType::Enum(DisputeStatus::VALUES)),
        FieldDef::scalar("reason", FieldType::String),
        FieldDef::scalar("dueDate", FieldType::Date),
        DATES[0],
        DATES[1],
        DATES[2],
    ],
    open: None,
};

/// Payments.
pub const PAYMENTS: Schema = Schema {
    entity: "Payment",
    fields: &[
        FieldDef::scalar("id", FieldType::String),
        FieldDef::scalar("amount", FieldType::Number),
        FieldDef::scalar("currency", FieldType::String),
        FieldDef::scalar("status", FieldType::Enum(PaymentStatus::VALUES)),
        FieldDef::scalar("paymentProvider", FieldType::String),
        FieldDef::scalar("dueDate", FieldType::Date),
        FieldDef::scalar("paymentMethodRef.id", FieldType::String),
        FieldDef::scalar("paymentMethodRef.name", FieldType::String),
        DATES[0],
        DATES[1],
        DATES[2],
    ],
    open: None,
};

/// Products.
pub const PRODUCTS: Schema = Schema {
    entity: "Product",
    fields: &[
        FieldDef::scalar("id", FieldType::String),
        FieldDef::scalar("name", FieldType::String),
        FieldDef::scalar("description", FieldType::String),
        FieldDef::scalar("categorization", FieldType::String),
        FieldDef::scalar("isGiftCard", FieldType::Bool),
        DATES[0],
        DATES[1],
        DATES[2],
    ],
    open: None,
};

/// Transactions.
pub const TRANSACTIONS: Schema = Schema {
    entity: "Transaction",
    fields: &[
        FieldDef::scalar("id", FieldType::String),
        FieldDef::scalar("totalAmount", FieldType::Number),
        FieldDef::scalar("currency", FieldType::String),
        FieldDef::scalar("type", FieldType::Enum(TransactionType::VALUES)),
        FieldDef::scalar("subType", FieldType::String),
        FieldDef::scalar("transactionSourceRef.id", FieldType::String),
        FieldDef::scalar("transactionSourceRef.type", FieldType::Enum(TransactionSourceType::VALUES)),
        FieldDef::scalar("sourceCreatedDate", FieldType::Date),
        DATES[0],
        DATES[1],
        DATES[2],
    ],
    open: None,
};

/// The schema of a list data type (`None` for company info, which is a single object, and for the
/// types Stripe does not provide).
pub fn schema(dt: DataType) -> Option<&'static Schema> {
    match dt {
        DataType::Customers => Some(&CUSTOMERS),
        DataType::Disputes => Some(&DISPUTES),
        DataType::Payments => Some(&PAYMENTS),
        DataType::Products => Some(&PRODUCTS),
        DataType::Transactions => Some(&TRANSACTIONS),
        _ => None,
    }
}

/// Where a field lives: `createdDate` and `modifiedDate` are columns; everything else is a path in
/// the stored document (`paymentMethodRef.id` → `["paymentMethodRef", "id"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordField {
    /// The `created` column.
    Created,
    /// The `modified` column (`modifiedDate` is not stored in the document).
    Modified,
    /// The record id column.
    Id,
    /// A path into the document.
    Document(Vec<&'static str>),
}

/// Locates a canonical field name of a commerce schema.
pub fn locate(field: &'static str) -> RecordField {
    match field {
        "createdDate" => RecordField::Created,
        "modifiedDate" => RecordField::Modified,
        "id" => RecordField::Id,
        other => RecordField::Document(other.split('.').collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::resolve;

    #[test]
    fn each_list_type_has_a_schema_with_typed_fields() {
        for dt in [DataType::Customers, DataType::Disputes, DataType::Payments, DataType::Products, DataType::Transactions] {
            assert!(schema(dt).unwrap().field("modifiedDate").is_some(), "{dt}");
        }
        assert!(schema(DataType::CompanyInfo).is_none());
        assert!(resolve("amount>10.5 && currency=GBP", &PAYMENTS).is_ok());
        assert!(resolve("status=paid", &PAYMENTS).is_ok(), "enum members match case-insensitively");
        assert!(resolve("status=Nope", &PAYMENTS).is_err());
        assert!(resolve("lineItems.unitAmount=7", &PAYMENTS).unwrap_err().0.contains("lineItems.unitAmount"));
        assert_eq!(locate("paymentMethodRef.id"), RecordField::Document(vec!["paymentMethodRef", "id"]));
        assert_eq!(locate("modifiedDate"), RecordField::Modified);
    }
}
