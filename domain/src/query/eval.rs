//! In-memory evaluation of a [`Filter`] against a JSON document, for small fixed lists
//! (integrations) and as the reference the SQL translations are tested against.

use super::parser::Op;
use super::typed::{Condition, FieldType, Filter, Value, parse_instant};
use rust_decimal::Decimal;
use serde_json::Value as Json;
use std::cmp::Ordering;

/// Whether `doc` satisfies `filter`. Dotted fields walk into objects; a field inside an array
/// matches when any element matches (`!=`: when no element equals the value). A missing or null
/// field only satisfies `!=`. `~` is a contains that ignores the case of ASCII letters only (as
/// both SQL backends do), so `é` and `É` differ.
pub fn matches(filter: &Filter, doc: &Json) -> bool {
    match filter {
        Filter::And(xs) => xs.iter().all(|x| matches(x, doc)),
        Filter::Or(xs) => xs.iter().any(|x| matches(x, doc)),
        Filter::Cond(c) => {
            let values = lookup(doc, &c.field);
            if c.op == Op::Ne {
                !values.iter().any(|v| compare(c, v) == Some(true))
            } else {
                values.iter().any(|v| compare(c, v) == Some(true))
            }
        }
    }
}

fn lookup<'a>(doc: &'a Json, path: &str) -> Vec<&'a Json> {
    let mut current = vec![doc];
    for seg in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v {
                Json::Object(m) => {
                    if let Some(x) = m.iter().find(|(k, _)| k.eq_ignore_ascii_case(seg)).map(|(_, x)| x) {
                        match x {
                            Json::Array(items) => next.extend(items.iter()),
                            other => next.push(other),
                        }
                    }
                }
                Json::Array(items) => next.extend(items.iter()),
                _ => {}
            }
        }
        current = next;
    }
    current.into_iter().filter(|v| !v.is_null()).collect()
}

/// `Some(true)` when the stored value satisfies the condition (for `!=`, when it equals).
fn compare(c: &Condition, stored: &Json) -> Option<bool> {
    let ord = match (&c.value, c.def.ty) {
        (Value::String(want), FieldType::String | FieldType::Enum(_)) => {
            let have = stored.as_str()?;
            if c.op == Op::Contains {
                return Some(have.to_ascii_lowercase().contains(&want.to_ascii_lowercase()));
            }
            have.cmp(want.as_str())
        }
        // Only JSON numbers are numbers (a numeric string is text), as both SQL stores read them.
        (Value::Number(want), _) => {
            let have: Decimal = match stored {
                Json::Number(n) => n.to_string().parse().ok()?,
                _ => return None,
            };
            have.cmp(want)
        }
        (Value::Date(want), _) => parse_instant(stored.as_str()?)?.cmp(want),
        (Value::Bool(want), _) => stored.as_bool()?.cmp(want),
        _ => return None,
    };
    Some(match c.op {
        Op::Eq | Op::Ne => ord == Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Lt => ord == Ordering::Less,
        Op::Ge => ord != Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Contains => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::typed::{FieldDef, Schema, resolve};
    use serde_json::json;

    const S: Schema = Schema {
        entity: "Doc",
        fields: &[
            FieldDef::scalar("name", FieldType::String),
            FieldDef::scalar("description", FieldType::String),
            FieldDef::scalar("amount", FieldType::Number),
            FieldDef::scalar("created", FieldType::Date),
            FieldDef::in_collection("items.status", FieldType::String),
        ],
        open: None,
    };

    #[test]
    fn evaluates_typed_comparisons_and_collections() {
        let doc = json!({"name": "Acme Ltd", "amount": 10.5, "created": "2021-02-01T00:00:00Z", "items": [{"status": "Linked"}, {"status": "PendingAuth"}]});
        let t = |q: &str| matches(&resolve(q, &S).unwrap(), &doc);
        assert!(t("name~acme"));
        assert!(t("amount>10 && amount<=10.5"));
        assert!(!t("amount>10.5"));
        assert!(t("created>2021-01-31"));
        assert!(t("items.status=Linked"));
        assert!(!t("items.status!=Linked"));
        assert!(t("items.status!=Unlinked"));
        assert!(t("{name=x || amount=10.50} && created<2022-01-01"));
        assert!(t("description!=anything"), "missing fields satisfy !=");
        let text_amount = json!({"amount": "10.5"});
        assert!(!matches(&resolve("amount=10.5", &S).unwrap(), &text_amount), "a numeric string is not a number");
        assert!(matches(&resolve("amount!=10.5", &S).unwrap(), &text_amount));
    }
}
