//! Translation of a typed query [`Filter`] and [`OrderBy`] into parameterised SQL with `$1, $2, …`
//! placeholders (PostgreSQL's, which SQLite reads too). Values are always bound, never spliced
//! into the text. What the two databases write differently (JSON paths, dates, case folding, text
//! order) comes from the adapter's `dialect` module.

use crate::dialect as d;
use sqlx::Arguments;
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
    /// A scalar inside the JSON document `column`, at `path` (built only with [`Column::json`], so
    /// every segment is a plain identifier from a static schema and can be written into the SQL).
    /// It is read as the field's type (`dialect::json_value`): a stored value of another JSON
    /// type, or an unreadable date, counts as missing. Filters on such fields go through
    /// [`render_documents`].
    Json { column: &'static str, path: Vec<&'static str> },
}

impl Column {
    /// A JSON-path column; `None` (the field then matches nothing) unless every segment is a
    /// non-empty run of ASCII letters, digits and `_`.
    pub fn json(column: &'static str, path: Vec<&'static str>) -> Option<Self> {
        let safe = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        (!path.is_empty() && path.iter().all(|s| safe(s))).then_some(Self::Json { column, path })
    }
}

/// Maps canonical field names (from a static schema) to columns for one resource.
pub(crate) type ColumnMap = fn(&'static str) -> Option<Column>;

/// SQL text and its bound arguments, built together so placeholders and binds never drift.
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: d::Arguments,
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

    pub fn bind_time(&mut self, v: chrono::DateTime<chrono::Utc>) {
        self.placeholder();
        self.args.add(d::time(v)).expect("binding an instant cannot fail");
    }

    pub fn bind_value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.bind_text(s.clone()),
            // Bound as text and cast by the database: the exact decimal reaches Postgres (without
            // sqlx's `rust_decimal` feature), and SQLite converts it as it converts numbers read
            // out of JSON documents, so an equal decimal gives the identical REAL (or INTEGER, for
            // whole numbers, which then compare exactly).
            Value::Number(n) => {
                self.push("CAST(");
                self.bind_text(n.to_string());
                self.push(" AS NUMERIC)");
            }
            Value::Date(t) => self.bind_time(*t),
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

/// Appends `column <op> value` for one condition.
pub(crate) fn comparison(sql: &mut Sql, column: &str, c: &Condition) {
    match c.op {
        Op::Contains => {
            let Value::String(s) = &c.value else { unreachable!("~ is only allowed on text") };
            // ASCII-only case folding on both databases, as in the in-memory evaluator.
            sql.push(&format!("{} LIKE ", d::ascii_lower(column)));
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
    // `def.name` is the canonical field name (`c.field` too, as an owned copy).
    match columns(c.def.name) {
        Some(Column::Scalar(col)) => comparison(sql, col, c),
        Some(Column::Expr(expr)) => comparison(sql, &format!("({expr})"), c),
        Some(Column::Json { column, path }) => d::json_comparison(sql, column, &path, c),
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

/// Appends `filter` as a boolean SQL expression over rows whose JSON document is `column`: the
/// filters on [`Column::Json`] fields read the document as the dialect reads it best
/// (`dialect::documents`).
pub(crate) fn render_documents(sql: &mut Sql, filter: &Filter, columns: ColumnMap, column: &str) {
    if !reads_documents(filter, columns) {
        // Columns only (typed fields among them): nothing to read out of the document.
        return render(sql, filter, columns);
    }
    let (before, after) = d::documents(column);
    sql.push(&before);
    render(sql, filter, columns);
    sql.push(&after);
}

/// Whether `filter` reads any [`Column::Json`] field.
fn reads_documents(filter: &Filter, columns: ColumnMap) -> bool {
    match filter {
        Filter::And(xs) | Filter::Or(xs) => xs.iter().any(|x| reads_documents(x, columns)),
        Filter::Cond(c) => matches!(columns(c.def.name), Some(Column::Json { .. })),
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

/// Appends `ORDER BY …`, with the id as a stable tie-break. Text is ordered by code point on both
/// databases (`dialect::BY_CODE_POINT`).
pub(crate) fn render_order(sql: &mut Sql, order: Option<&OrderBy>, columns: ColumnMap, default: &str, id: &str) {
    match order.and_then(|o| match columns(o.field) {
        Some(Column::Scalar(col)) => Some((col.to_owned(), o.ty, o.descending)),
        Some(Column::Expr(expr)) => Some((format!("({expr})"), o.ty, o.descending)),
        Some(Column::Json { column, path }) => Some((d::json_order(column, &path, o.ty), o.ty, o.descending)),
        _ => None,
    }) {
        Some((col, ty, desc)) => {
            let collate = if matches!(ty, FieldType::String | FieldType::Enum(_)) { d::BY_CODE_POINT } else { "" };
            let dir = if desc { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
            sql.push(&format!(" ORDER BY {col}{collate} {dir}, {id} {}", if desc { "DESC" } else { "ASC" }));
        }
        None => sql.push(&format!(" ORDER BY {default}, {id} ASC")),
    }
}
