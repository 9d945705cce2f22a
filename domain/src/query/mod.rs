//! The Codat query language: parsing into an AST ([`parser`]), resolving fields and typing values
//! against a resource's schema ([`typed`]), and evaluating in memory ([`eval`]). Storage adapters
//! translate the typed [`typed::Filter`] into parameterised SQL.

pub mod eval;
pub mod parser;
pub mod typed;

pub use parser::{parse, Comparison, Expr, Op, QueryError, MAX_QUERY_LEN};
pub use typed::{parse_order_by, resolve, Condition, FieldDef, FieldType, Filter, OrderBy, Schema, Value};
