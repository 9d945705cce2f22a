//! Translation of a typed query [`Filter`] and [`OrderBy`] into parameterised SQLite SQL. Values
//! are always bound, never spliced into the text.

use crate::to_micros;
use rust_decimal::prelude::ToPrimitive;
use sqlx::Arguments;
use sqlx::sqlite::SqliteArguments;
use tributary_domain::query::{Condition, FieldType, Filter, Op, OrderBy, Value};

/// Where a query field lives.
pub(crate) enum Column {
    /// A column of the listed table.
    Scalar(&'static str),
    /// A SQL expression over the listed table's columns (a computed field such as `isErrored`),
    /// compared and ordered like a column.
    Expr(&'static str),
    /// A column of a related collection: `EXISTS (SELECT 1 FROM {from} WHERE {join} AND {col} …)`.
    Related { from: &'static str, join: &'static str, column: &'static str },
}

/// Maps canonical field names to columns for one resource.
pub(crate) type ColumnMap = fn(&str) -> Option<Column>;

/// SQL text and its bound arguments, built together so placeholders and binds never drift.
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: SqliteArguments<'static>,
}

impl Sql {
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    pub fn bind_text(&mut self, v: String) {
        self.text.push('?');
        self.args.add(v).expect("binding text cannot fail");
    }

    fn bind_value(&mut self, v: &Value, ty: FieldType) {
        self.text.push('?');
        match v {
            Value::String(s) => self.args.add(s.clone()),
            Value::Number(d) => self.args.add(d.to_f64().unwrap_or(f64::NAN)),
            Value::Date(t) => self.args.add(to_micros(*t)),
            Value::Bool(b) => self.args.add(i64::from(*b)),
        }
        .expect("binding a value cannot fail");
        let _ = ty;
    }

    pub fn bind_i64(&mut self, v: i64) {
        self.text.push('?');
        self.args.add(v).expect("binding an integer cannot fail");
    }
}

fn like_pattern(s: &str) -> String {
    let mut out = String::from("%");
    for c in s.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn comparison(sql: &mut Sql, column: &str, c: &Condition) {
    match c.op {
        Op::Contains => {
            // SQLite folds ASCII letters only; Postgres and the in-memory evaluator do the same.
            sql.push(&format!("LOWER({column}) LIKE "));
            let Value::String(s) = &c.value else { unreachable!("~ is only allowed on text") };
            sql.bind_text(like_pattern(s));
            sql.push(" ESCAPE '\\'");
        }
        Op::Ne => {
            sql.push(&format!("({column} IS NULL OR {column} <> "));
            sql.bind_value(&c.value, c.def.ty);
            sql.push(")");
        }
        op => {
            sql.push(&format!("{column} {} ", sql_op(op)));
            sql.bind_value(&c.value, c.def.ty);
        }
    }
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Lt => "<",
        Op::Ge => ">=",
        Op::Le => "<=",
        Op::Contains => "LIKE",
    }
}

/// Appends `filter` as a boolean SQL expression.
pub(crate) fn render(sql: &mut Sql, filter: &Filter, columns: ColumnMap) {
    match filter {
        Filter::And(xs) | Filter::Or(xs) => {
            let sep = if matches!(filter, Filter::And(_)) { " AND " } else { " OR " };
            sql.push("(");
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    sql.push(sep);
                }
                render(sql, x, columns);
            }
            sql.push(")");
        }
        Filter::Cond(c) => match columns(&c.field) {
            Some(Column::Scalar(col)) => comparison(sql, col, c),
            Some(Column::Expr(expr)) => comparison(sql, &format!("({expr})"), c),
            Some(Column::Related { from, join, column }) => {
                // `!=` on a collection means no element equals the value.
                if c.op == Op::Ne {
                    sql.push(&format!("NOT EXISTS (SELECT 1 FROM {from} WHERE {join} AND {column} = "));
                    sql.bind_value(&c.value, c.def.ty);
                } else {
                    sql.push(&format!("EXISTS (SELECT 1 FROM {from} WHERE {join} AND "));
                    comparison(sql, column, c);
                }
                sql.push(")");
            }
            // Fields are resolved against the same schema these maps cover; an unmapped field
            // matches nothing rather than failing the request.
            None => sql.push("0"),
        },
    }
}

/// Appends a tag filter on companies (`alias.id` is the company id column).
pub(crate) fn render_tags(sql: &mut Sql, filter: &Filter, alias: &str) {
    match filter {
        Filter::And(xs) | Filter::Or(xs) => {
            let sep = if matches!(filter, Filter::And(_)) { " AND " } else { " OR " };
            sql.push("(");
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    sql.push(sep);
                }
                render_tags(sql, x, alias);
            }
            sql.push(")");
        }
        Filter::Cond(c) => {
            let negate = c.op == Op::Ne;
            sql.push(if negate { "NOT EXISTS" } else { "EXISTS" });
            sql.push(&format!(" (SELECT 1 FROM company_tags t WHERE t.company_id = {alias}.id AND t.key = "));
            sql.bind_text(c.field.clone());
            sql.push(" AND ");
            if negate {
                sql.push("t.value = ");
                sql.bind_value(&c.value, c.def.ty);
            } else {
                comparison(sql, "t.value", c);
            }
            sql.push(")");
        }
    }
}

/// Appends `ORDER BY …`, with the id as a stable tie-break.
pub(crate) fn render_order(sql: &mut Sql, order: Option<&OrderBy>, columns: ColumnMap, default: &str, id: &str) {
    match order.and_then(|o| match columns(o.field) {
        Some(Column::Scalar(col)) => Some((col.to_owned(), o.descending)),
        Some(Column::Expr(expr)) => Some((format!("({expr})"), o.descending)),
        _ => None,
    }) {
        Some((col, desc)) => {
            let dir = if desc { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
            sql.push(&format!(" ORDER BY {col} {dir}, {id} {}", if desc { "DESC" } else { "ASC" }));
        }
        None => sql.push(&format!(" ORDER BY {default}, {id} ASC")),
    }
}
