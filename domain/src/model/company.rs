//! Companies: the merchants a client serves, with Codat's name and tag rules.

use crate::error::{DomainError, ValidationItem};
use crate::ids::CompanyId;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Maximum number of tags on a company.
pub const MAX_TAGS: usize = 10;
/// Maximum length of a tag key, in characters.
pub const MAX_TAG_KEY_LEN: usize = 27;
/// Maximum length of a tag value, in characters.
pub const MAX_TAG_VALUE_LEN: usize = 100;
/// Longest company name, in characters (Codat sets none; a name is shown on Link pages and lists).
pub const MAX_NAME_LEN: usize = 200;
/// Longest company description, in characters (it holds foreign ids and references).
pub const MAX_DESCRIPTION_LEN: usize = 4000;

/// A company (a merchant) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    /// Its id.
    pub id: CompanyId,
    /// Its sanitised name.
    pub name: String,
    /// Free text, often a foreign reference.
    pub description: Option<String>,
    /// User-defined key-value pairs (at most ten).
    pub tags: BTreeMap<String, String>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When data was last synced for any of its connections.
    pub last_sync: Option<DateTime<Utc>>,
}

/// A validated name and tag set, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyFields {
    /// Sanitised name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Validated tags.
    pub tags: BTreeMap<String, String>,
}

/// Removes the characters Codat does not allow in a company name (`^[A-Za-z0-9\s\-',&@.,?!]+$`),
/// as Codat does: `Company (Codat[1])` becomes `Company Codat1`. Fails if nothing is left.
pub fn sanitize_name(raw: &str) -> Result<String, DomainError> {
    let cleaned: String = raw.chars().filter(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || "-',&@.?!".contains(*c)).collect();
    if cleaned.trim().is_empty() {
        return Err(DomainError::Validation {
            message: "Company name must contain at least one letter, digit or allowed punctuation (- ' , & @ . ? !).".into(),
            items: vec![ValidationItem { item_id: Some("name".into()), message: format!("'{raw}' has no allowed characters") }],
        });
    }
    Ok(cleaned)
}

/// Checks Codat's tag limits: at most ten, keys of 1–27 characters, values of at most 100.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), DomainError> {
    let mut items = Vec::new();
    if tags.len() > MAX_TAGS {
        items.push(ValidationItem {
            item_id: Some("tags".into()),
            message: format!("At most {MAX_TAGS} tags are allowed; {} were given.", tags.len()),
        });
    }
    for (k, v) in tags {
        let klen = k.chars().count();
        if klen == 0 || klen > MAX_TAG_KEY_LEN {
            items.push(ValidationItem {
                item_id: Some(format!("tags.{k}")),
                message: format!("Tag key '{k}' must be 1 to {MAX_TAG_KEY_LEN} characters long."),
            });
        }
        if v.chars().count() > MAX_TAG_VALUE_LEN {
            items.push(ValidationItem {
                item_id: Some(format!("tags.{k}")),
                message: format!("The value of tag '{k}' must be at most {MAX_TAG_VALUE_LEN} characters long."),
            });
        }
    }
    if items.is_empty() {
        Ok(())
    } else {
        let message = items.iter().map(|i| i.message.as_str()).collect::<Vec<_>>().join(" ");
        Err(DomainError::Validation { message, items })
    }
}

impl CompanyFields {
    /// Validates a create or replace request.
    pub fn new(name: &str, description: Option<String>, tags: BTreeMap<String, String>) -> Result<Self, DomainError> {
        let name = Self::name(name)?;
        let description = Self::description(description)?;
        validate_tags(&tags)?;
        Ok(Self { name, description, tags })
    }

    /// A name: at most [`MAX_NAME_LEN`] characters, sanitised as Codat does.
    pub fn name(raw: &str) -> Result<String, DomainError> {
        if raw.chars().count() > MAX_NAME_LEN {
            return Err(too_long("name", MAX_NAME_LEN));
        }
        sanitize_name(raw)
    }

    /// A description: at most [`MAX_DESCRIPTION_LEN`] characters.
    pub fn description(raw: Option<String>) -> Result<Option<String>, DomainError> {
        if raw.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN) {
            return Err(too_long("description", MAX_DESCRIPTION_LEN));
        }
        Ok(raw)
    }
}

fn too_long(field: &str, limit: usize) -> DomainError {
    DomainError::Validation {
        message: format!("The company's {field} must be at most {limit} characters long."),
        items: vec![ValidationItem { item_id: Some(field.into()), message: format!("{field} is longer than {limit} characters") }],
    }
}

/// What `GET /companies?query=` and `orderBy` accept.
pub const QUERY_SCHEMA: crate::query::Schema = {
    use crate::query::{FieldDef, FieldType};
    crate::query::Schema {
        entity: "Company",
        fields: &[
            FieldDef::scalar("id", FieldType::String),
            FieldDef::scalar("name", FieldType::String),
            FieldDef::scalar("description", FieldType::String),
            FieldDef::scalar("created", FieldType::Date),
            FieldDef::scalar("lastSync", FieldType::Date),
            FieldDef::in_collection("dataConnections.id", FieldType::String),
            FieldDef::in_collection("dataConnections.status", FieldType::Enum(&["PendingAuth", "Linked", "Unlinked", "Deauthorized"])),
            FieldDef::in_collection("dataConnections.integrationKey", FieldType::String),
            FieldDef::in_collection("dataConnections.platformName", FieldType::String),
            FieldDef::in_collection("dataConnections.sourceType", FieldType::Enum(SOURCE_TYPES)),
            FieldDef::in_collection("dataConnections.created", FieldType::Date),
        ],
        open: None,
    }
};

/// What `GET /companies?tags=` accepts: any tag key, compared as text.
pub const TAGS_SCHEMA: crate::query::Schema =
    crate::query::Schema { entity: "tags", fields: &[], open: Some(crate::query::FieldType::String) };

/// Codat's `sourceType` values.
pub const SOURCE_TYPES: &[&str] = &["Accounting", "Banking", "BankFeed", "Commerce", "Expense", "Other", "Unknown"];

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_descriptions_over_their_limits_are_refused_naming_the_field() {
        use super::{CompanyFields, MAX_DESCRIPTION_LEN, MAX_NAME_LEN};
        assert!(CompanyFields::new(&"a".repeat(MAX_NAME_LEN), Some("d".repeat(MAX_DESCRIPTION_LEN)), Default::default()).is_ok());
        for (name, description, field) in
            [("a".repeat(MAX_NAME_LEN + 1), None, "name"), ("a".into(), Some("d".repeat(MAX_DESCRIPTION_LEN + 1)), "description")]
        {
            match CompanyFields::new(&name, description, Default::default()) {
                Err(crate::DomainError::Validation { items, .. }) => assert_eq!(items[0].item_id.as_deref(), Some(field)),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    use super::*;

    #[test]
    fn forbidden_characters_are_removed_from_names_as_codat_does() {
        assert_eq!(sanitize_name("Company (Codat[1])").unwrap(), "Company Codat1");
        assert_eq!(sanitize_name("Bob's Bikes & Co., Ltd!").unwrap(), "Bob's Bikes & Co., Ltd!");
    }

    #[test]
    fn a_name_with_nothing_allowed_is_rejected() {
        assert!(sanitize_name("(){}[]").is_err());
        assert!(sanitize_name("   ").is_err());
    }

    #[test]
    fn tag_limits_are_enforced() {
        let ok: BTreeMap<_, _> = (0..10).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert!(validate_tags(&ok).is_ok());
        let too_many: BTreeMap<_, _> = (0..11).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert!(validate_tags(&too_many).is_err());
        let long_key = BTreeMap::from([("k".repeat(28), "v".to_string())]);
        assert!(validate_tags(&long_key).is_err());
        let long_value = BTreeMap::from([("k".to_string(), "v".repeat(101))]);
        assert!(validate_tags(&long_value).is_err());
        let empty_key = BTreeMap::from([(String::new(), "v".to_string())]);
        assert!(validate_tags(&empty_key).is_err());
    }
}
