//! The Codat query language: parsing into an AST ([`parser`]), resolving fields and typing values
//! against a resource's schema ([`typed`]), and evaluating in memory ([`eval`]). Storage adapters
//! translate the typed [`typed::Filter`] into parameterised SQL.

pub mod eval;
pub mod parser;
pub mod typed;

pub use parser::{Comparison, Expr, MAX_QUERY_LEN, Op, QueryError, parse};
pub use typed::{Condition, FieldDef, FieldType, Filter, OrderBy, Schema, Value, parse_order_by, resolve};
