//! Translation of a typed query [`Filter`] and [`OrderBy`] into parameterised PostgreSQL SQL with
//! `$1, $2, …` placeholders. Values are always bound, never spliced into the text.

use sqlx::Arguments;
use sqlx::postgres::PgArguments;
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
    pub args: PgArguments,
    /// Placeholders written so far; the next one is `$(count + 1)`.
    count: usize,
}

impl Sql {
    /// Starts from a text and arguments already built (a shared `WHERE` clause).
    pub fn from_parts(text: String, other: &Sql) -> Self {
        Self { text, args: other.args.clone(), count: other.count }
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn placeholder(&mut self) {
        self.count += 1;
        self.text.push('$');
        self.text.push_str(&self.count.to_string());
    }

    pub fn bind_text(&mut self, v: String) {
        self.placeholder();
        self.args.add(v).expect("binding text cannot fail");
    }

    pub fn bind_i64(&mut self, v: i64) {
        self.placeholder();
        self.args.add(v).expect("binding an integer cannot fail");
    }

    fn bind_value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.bind_text(s.clone()),
            // Bound as text and cast, so the exact decimal reaches the server without sqlx's
            // `rust_decimal` feature.
            Value::Number(d) => {
                self.push("CAST(");
                self.bind_text(d.to_string());
                self.push(" AS NUMERIC)");
            }
            Value::Date(t) => {
                self.placeholder();
                self.args.add(*t).expect("binding an instant cannot fail");
            }
            Value::Bool(b) => {
                self.placeholder();
                self.args.add(*b).expect("binding a boolean cannot fail");
            }
        }
    }
}

/// `%…%` around the lower-cased value, with `%`, `_` and `\` escaped so they match literally.
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
            let Value::String(s) = &c.value else { unreachable!("~ is only allowed on text") };
            // ASCII-only case folding, exactly as SQLite's LOWER/LIKE and the in-memory evaluator.
            sql.push(&format!("translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE "));
            sql.bind_text(like_pattern(s));
            sql.push(" ESCAPE '\\'");
        }
        // A missing (NULL) value is "not equal" to anything, as in the in-memory evaluator.
        Op::Ne => {
            sql.push(&format!("({column} IS NULL OR {column} <> "));
            sql.bind_value(&c.value);
            sql.push(")");
        }
        op => {
            sql.push(&format!("{column} {} ", sql_op(op)));
            sql.bind_value(&c.value);
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

fn render_list(sql: &mut Sql, filter: &Filter, item: &mut dyn FnMut(&mut Sql, &Filter)) {
    let (Filter::And(xs) | Filter::Or(xs)) = filter else {
        return item(sql, filter);
    };
    let sep = if matches!(filter, Filter::And(_)) { " AND " } else { " OR " };
    if xs.is_empty() {
        // An empty conjunction holds; an empty disjunction does not.
        sql.push(if matches!(filter, Filter::And(_)) { "TRUE" } else { "FALSE" });
        return;
    }
    sql.push("(");
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            sql.push(sep);
        }
        item(sql, x);
    }
    sql.push(")");
}

/// Appends `filter` as a boolean SQL expression.
pub(crate) fn render(sql: &mut Sql, filter: &Filter, columns: ColumnMap) {
    let Filter::Cond(c) = filter else {
        return render_list(sql, filter, &mut |sql, x| render(sql, x, columns));
    };
    match columns(&c.field) {
        Some(Column::Scalar(col)) => comparison(sql, col, c),
        Some(Column::Expr(expr)) => comparison(sql, &format!("({expr})"), c),
        Some(Column::Related { from, join, column }) => {
            // `!=` on a collection means no element equals the value.
            if c.op == Op::Ne {
                sql.push(&format!("NOT EXISTS (SELECT 1 FROM {from} WHERE {join} AND {column} = "));
                sql.bind_value(&c.value);
            } else {
                sql.push(&format!("EXISTS (SELECT 1 FROM {from} WHERE {join} AND "));
                comparison(sql, column, c);
            }
            sql.push(")");
        }
        // Fields are resolved against the same schema these maps cover; an unmapped field
        // matches nothing rather than failing the request.
        None => sql.push("FALSE"),
    }
}

/// Appends a tag filter on companies (`alias.id` is the company id column).
pub(crate) fn render_tags(sql: &mut Sql, filter: &Filter, alias: &str) {
    let Filter::Cond(c) = filter else {
        return render_list(sql, filter, &mut |sql, x| render_tags(sql, x, alias));
    };
    let negate = c.op == Op::Ne;
    sql.push(if negate { "NOT EXISTS" } else { "EXISTS" });
    sql.push(&format!(" (SELECT 1 FROM company_tags t WHERE t.company_id = {alias}.id AND t.key = "));
    sql.bind_text(c.field.clone());
    sql.push(" AND ");
    if negate {
        sql.push("t.value = ");
        sql.bind_value(&c.value);
    } else {
        comparison(sql, "t.value", c);
    }
    sql.push(")");
}

/// Appends `ORDER BY …`, with the id as a stable tie-break. Text is ordered by code point
/// (`COLLATE "C"`), as SQLite orders it, whatever the database's default collation.
pub(crate) fn render_order(sql: &mut Sql, order: Option<&OrderBy>, columns: ColumnMap, default: &str, id: &str) {
    match order.and_then(|o| match columns(o.field) {
        Some(Column::Scalar(col)) => Some((col.to_owned(), o.ty, o.descending)),
        Some(Column::Expr(expr)) => Some((format!("({expr})"), o.ty, o.descending)),
        _ => None,
    }) {
        Some((col, ty, desc)) => {
            let collate = if matches!(ty, FieldType::String | FieldType::Enum(_)) { " COLLATE \"C\"" } else { "" };
            let dir = if desc { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
            sql.push(&format!(" ORDER BY {col}{collate} {dir}, {id} {}", if desc { "DESC" } else { "ASC" }));
        }
        None => sql.push(&format!(" ORDER BY {default}, {id} ASC")),
    }
}
