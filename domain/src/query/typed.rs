//! Resolving a parsed query against a resource's schema: field names become canonical, operators
//! are checked against the field's type, and values are typed (numbers, instants, booleans, enum
//! members). The result, a [`Filter`], is what storage adapters translate into SQL.

use super::parser::{Comparison, Expr, Op, QueryError, parse};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;

/// The type of a queryable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text: `=`, `!=`, `~` (contains, ignoring the case of ASCII letters).
    String,
    /// Decimal number: all but `~`.
    Number,
    /// Instant: all but `~`; date-only values mean 00:00:00 UTC that day.
    Date,
    /// Boolean: `=`, `!=`.
    Bool,
    /// One of a closed set of values: `=`, `!=`; the value must be a member.
    Enum(&'static [&'static str]),
}

impl FieldType {
    fn describe(self) -> &'static str {
        match self {
            Self::String => "text",
            Self::Number => "number",
            Self::Date => "date",
            Self::Bool => "boolean",
            Self::Enum(_) => "enum",
        }
    }

    fn allows(self, op: Op) -> bool {
        match self {
            Self::String => matches!(op, Op::Eq | Op::Ne | Op::Contains),
            Self::Number | Self::Date => op != Op::Contains,
            Self::Bool | Self::Enum(_) => matches!(op, Op::Eq | Op::Ne),
        }
    }
}

/// A queryable field of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Canonical (Codat) name, possibly dotted.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// Whether the field lies in a collection (`dataConnections.status`): it matches when any
    /// element matches, and `!=` means no element equals the value. Not usable in `orderBy`.
    pub collection: bool,
}

impl FieldDef {
    /// A scalar field.
    pub const fn scalar(name: &'static str, ty: FieldType) -> Self {
        Self { name, ty, collection: false }
    }

    /// A field inside a collection.
    pub const fn in_collection(name: &'static str, ty: FieldType) -> Self {
        Self { name, ty, collection: true }
    }
}

/// What a resource can be queried and ordered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The resource name used in messages (`Company`, `Connection`).
    pub entity: &'static str,
    /// Known fields.
    pub fields: &'static [FieldDef],
    /// When set, any field name is accepted with this type (company tag filters).
    pub open: Option<FieldType>,
}

impl Schema {
    /// Finds a field by name, case-insensitively, returning its canonical definition.
    pub fn field(&self, name: &str) -> Option<FieldDef> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).copied()
    }
}

/// A typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text, or an enum member in its canonical spelling.
    String(String),
    /// Number.
    Number(Decimal),
    /// Instant.
    Date(DateTime<Utc>),
    /// Boolean.
    Bool(bool),
}

/// A resolved comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Canonical field name (for open schemas, the name as written).
    pub field: String,
    /// The field's definition.
    pub def: FieldDef,
    /// Operator.
    pub op: Op,
    /// Typed value.
    pub value: Value,
}

/// A resolved query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// All hold.
    And(Vec<Filter>),
    /// Any holds.
    Or(Vec<Filter>),
    /// One condition.
    Cond(Condition),
}

/// Parses and resolves `query` against `schema`.
///
/// # Errors
/// A [`QueryError`] for malformed text, an unknown field (`Could not resolve property x on
/// Company`), an operator the field's type does not support, or a value of the wrong type.
pub fn resolve(query: &str, schema: &Schema) -> Result<Filter, QueryError> {
    resolve_expr(&parse(query)?, schema)
}

fn resolve_expr(e: &Expr, schema: &Schema) -> Result<Filter, QueryError> {
    Ok(match e {
        Expr::And(xs) => Filter::And(xs.iter().map(|x| resolve_expr(x, schema)).collect::<Result<_, _>>()?),
        Expr::Or(xs) => Filter::Or(xs.iter().map(|x| resolve_expr(x, schema)).collect::<Result<_, _>>()?),
        Expr::Cmp(c) => Filter::Cond(resolve_cmp(c, schema)?),
    })
}

fn resolve_cmp(c: &Comparison, schema: &Schema) -> Result<Condition, QueryError> {
    let (field, def) = match (schema.field(&c.field), schema.open) {
        (Some(def), _) => (def.name.to_owned(), def),
        (None, Some(ty)) => (c.field.clone(), FieldDef { name: "", ty, collection: false }),
        (None, None) => return Err(QueryError(format!("Could not resolve property {} on {}", c.field, schema.entity))),
    };
    if !def.ty.allows(c.op) {
        return Err(QueryError(format!("Operator '{}' cannot be used with {} property {}.", c.op.symbol(), def.ty.describe(), field)));
    }
    let value = typed_value(&c.value, def.ty, &field)?;
    Ok(Condition { field, def, op: c.op, value })
}

fn typed_value(raw: &str, ty: FieldType, field: &str) -> Result<Value, QueryError> {
    match ty {
        FieldType::String => Ok(Value::String(raw.to_owned())),
        FieldType::Number => Decimal::from_str_exact(raw)
            .or_else(|_| Decimal::from_scientific(raw))
            .map(Value::Number)
            .map_err(|_| QueryError(format!("'{raw}' is not a number, as property {field} requires."))),
        FieldType::Date => parse_instant(raw).map(Value::Date).ok_or_else(|| {
            QueryError(format!("'{raw}' is not a date (YYYY-MM-DD or an ISO 8601 date-time), as property {field} requires."))
        }),
        FieldType::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(QueryError(format!("'{raw}' is not true or false, as property {field} requires."))),
        },
        FieldType::Enum(members) => members
            .iter()
            .find(|m| m.eq_ignore_ascii_case(raw))
            .map(|m| Value::String((*m).to_owned()))
            .ok_or_else(|| QueryError(format!("'{raw}' is not a valid value of {field} ({}).", members.join(", ")))),
    }
}

/// Parses the date forms Codat uses: `2021-01-28`, `2021-01-28T10:00:00`, `2021-01-28T10:00:00Z`,
/// `2021-11-15T01:00:00-05:00`, with optional fractional seconds. Times without an offset are UTC.
pub fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(raw) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(raw, fmt) {
            return Some(n.and_utc());
        }
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|n| n.and_utc())
}

/// An `orderBy` value: a field and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// Canonical field name.
    pub field: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// `-field` sorts descending.
    pub descending: bool,
}

/// Parses `orderBy` (`field` or `-field`) against `schema`.
///
/// # Errors
/// A [`QueryError`] naming an unknown field or one inside a collection.
pub fn parse_order_by(raw: &str, schema: &Schema) -> Result<OrderBy, QueryError> {
    let raw = raw.trim();
    let (descending, name) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest.trim()),
        None => (false, raw),
    };
    if name.is_empty() {
        return Err(QueryError("orderBy needs a property name, optionally prefixed with '-'.".into()));
    }
    match schema.field(name) {
        Some(def) if !def.collection => Ok(OrderBy { field: def.name, ty: def.ty, descending }),
        Some(def) => Err(QueryError(format!("Cannot order {} by {}, which lies in a collection.", schema.entity, def.name))),
        None => Err(QueryError(format!("Could not resolve property {name} on {}", schema.entity))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: &[&str] = &["PendingAuth", "Linked"];
    const SCHEMA: Schema = Schema {
        entity: "Thing",
        fields: &[
            FieldDef::scalar("name", FieldType::String),
            FieldDef::scalar("amount", FieldType::Number),
            FieldDef::scalar("created", FieldType::Date),
            FieldDef::scalar("enabled", FieldType::Bool),
            FieldDef::in_collection("dataConnections.status", FieldType::Enum(STATUSES)),
        ],
        open: None,
    };

    #[test]
    fn fields_resolve_case_insensitively_to_canonical_names() {
        let Filter::Cond(c) = resolve("NAME=x", &SCHEMA).unwrap() else { panic!() };
        assert_eq!(c.field, "name");
    }

    #[test]
    fn unknown_fields_are_named_in_the_error() {
        assert_eq!(resolve("colour=red", &SCHEMA).unwrap_err().0, "Could not resolve property colour on Thing");
        assert!(parse_order_by("-colour", &SCHEMA).unwrap_err().0.contains("colour"));
    }

    #[test]
    fn values_are_typed_by_field() {
        let Filter::Cond(c) = resolve("amount>=10.50", &SCHEMA).unwrap() else { panic!() };
        assert_eq!(c.value, Value::Number(Decimal::new(1050, 2)));
        let Filter::Cond(c) = resolve("created>2021-01-28", &SCHEMA).unwrap() else { panic!() };
        assert_eq!(c.value, Value::Date("2021-01-28T00:00:00Z".parse().unwrap()));
        let Filter::Cond(c) = resolve("created<2021-11-15T01:00:00-05:00", &SCHEMA).unwrap() else { panic!() };
        assert_eq!(c.value, Value::Date("2021-11-15T06:00:00Z".parse().unwrap()));
        let Filter::Cond(c) = resolve("dataConnections.status=linked", &SCHEMA).unwrap() else { panic!() };
        assert_eq!(c.value, Value::String("Linked".into()));
        assert!(resolve("amount>ten", &SCHEMA).unwrap_err().0.contains("not a number"));
        assert!(resolve("created>yesterday", &SCHEMA).unwrap_err().0.contains("not a date"));
        assert!(resolve("dataConnections.status=Gone", &SCHEMA).unwrap_err().0.contains("PendingAuth, Linked"));
        assert!(resolve("enabled=maybe", &SCHEMA).is_err());
    }

    #[test]
    fn operators_are_checked_against_the_field_type() {
        assert!(resolve("amount~1", &SCHEMA).unwrap_err().0.contains("Operator '~'"));
        assert!(resolve("name>a", &SCHEMA).unwrap_err().0.contains("text property name"));
        assert!(resolve("enabled>true", &SCHEMA).is_err());
        assert!(resolve("name~ab", &SCHEMA).is_ok());
    }

    #[test]
    fn order_by_parses_direction_and_rejects_collection_fields() {
        assert_eq!(parse_order_by("-amount", &SCHEMA).unwrap(), OrderBy { field: "amount", ty: FieldType::Number, descending: true });
        assert!(!parse_order_by("created", &SCHEMA).unwrap().descending);
        assert!(parse_order_by("dataConnections.status", &SCHEMA).is_err());
        assert!(parse_order_by("-", &SCHEMA).is_err());
    }

    #[test]
    fn open_schemas_accept_any_field_name() {
        let tags = Schema { entity: "tags", fields: &[], open: Some(FieldType::String) };
        let Filter::Cond(c) = resolve("region=uk", &tags).unwrap() else { panic!() };
        assert_eq!(c.field, "region");
    }
}
