//! Translation of a typed query [`Filter`] and [`OrderBy`] into parameterised SQLite SQL. Values
//! are always bound, never spliced into the text.

use crate::to_micros;
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
    /// A scalar inside the JSON text of `column`, at `path` (built only with [`Column::json`], so
    /// every segment is a plain identifier from a static schema and can be written into the SQL).
    /// It is read as the field's type (see [`json_value`]): a stored value of another JSON type,
    /// or an unreadable date, counts as missing.
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

    fn bind_value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.bind_text(s.clone()),
            // Bound as text and converted by SQLite itself: the same conversion that reads numbers
            // out of JSON documents, so an equal decimal gives the identical REAL (or INTEGER, for
            // whole numbers, which then compare exactly).
            Value::Number(d) => {
                self.push("CAST(");
                self.bind_text(d.to_string());
                self.push(" AS NUMERIC)");
            }
            Value::Date(t) => self.bind_i64(to_micros(*t)),
            Value::Bool(b) => self.bind_i64(i64::from(*b)),
        }
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

/// The value of a JSON-path column as an SQL expression of the field's type, NULL when the field
/// is missing, null or of another JSON type (as `query::eval` treats them):
/// - text and enums: the string (other JSON types are not text);
/// - numbers: INTEGER or REAL (strings are not numbers);
/// - booleans: 1 or 0, as bound booleans are;
/// - dates: INTEGER microseconds since the epoch, as timestamp columns and bound dates are (see
///   [`instant_micros`]).
///
/// `path` segments are plain identifiers (checked by [`Column::json`]), so the JSON path literal
/// cannot be broken out of.
pub(crate) fn json_value(column: &str, path: &[&str], ty: FieldType) -> String {
    let path = format!("'$.{}'", path.join("."));
    let value = format!("json_extract({column}, {path})");
    let kind = format!("json_type({column}, {path})");
    match ty {
        FieldType::String | FieldType::Enum(_) => format!("(CASE WHEN {kind} = 'text' THEN {value} END)"),
        FieldType::Number => format!("(CASE WHEN {kind} IN ('integer', 'real') THEN {value} END)"),
        FieldType::Bool => format!("(CASE {kind} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"),
        FieldType::Date => format!("(CASE WHEN {kind} = 'text' THEN {} END)", instant_micros(&value)),
    }
}

/// Microseconds since the epoch of the date text `x`, or NULL unless it is one of the forms
/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DD[Tt ]HH:MM:SS[.f…][Z|z|±HH:MM]` (`t` only with
/// an offset) with a real calendar date (years 0001–9999), hours 00–23 and offsets up to ±14:59,
/// exactly the texts `parse_instant` reads but for its leniencies. Times without an offset are
/// UTC; fractional seconds count to the microsecond (further digits are dropped). The PostgreSQL
/// adapter accepts exactly the same texts.
///
/// SQLite's own parser is more lenient (hour 24, Julian day numbers, `now`, repeated separators)
/// and rounds fractions to milliseconds, so the shape is checked here first and only the whole
/// seconds are left to `unixepoch`.
fn instant_micros(x: &str) -> String {
    // The text after the seconds: `.f…` then the offset, or the offset alone.
    let fraction = format!("substr({x}, 21)");
    let offset_after_fraction = format!("ltrim({fraction}, '0123456789')");
    // A lower-case `t` separator only comes with an offset (as `parse_instant` reads dates).
    let offset_ok =
        |o: &str| format!("({o} IN ('Z', 'z') OR {o} GLOB '[+-][0-1][0-9]:[0-5][0-9]' OR ({o} = '' AND substr({x}, 11, 1) <> 't'))");
    let date = format!("substr({x}, 1, 10)");
    let hms = format!("substr({x}, 12, 8)");
    let seconds = |offset: &str| format!("unixepoch({date} || ' ' || {hms} || {offset})");
    let micros =
        format!("CAST(substr(substr({fraction}, 1, length({fraction}) - length({offset_after_fraction})) || '000000', 1, 6) AS INTEGER)");
    format!(
        "CASE WHEN date({date}) = {date} AND substr({x}, 1, 4) <> '0000' THEN CASE \
         WHEN length({x}) = 10 THEN unixepoch({date}) * 1000000 \
         WHEN length({x}) = 16 AND substr({x}, 11, 6) GLOB 'T[0-2][0-9]:[0-5][0-9]' AND substr({x}, 12, 2) <= '23' \
         THEN unixepoch({date} || ' ' || substr({x}, 12, 5)) * 1000000 \
         WHEN substr({x}, 11, 9) GLOB '[Tt ][0-2][0-9]:[0-5][0-9]:[0-5][0-9]' AND substr({x}, 12, 2) <= '23' THEN CASE \
         WHEN substr({x}, 20, 1) <> '.' THEN CASE WHEN {} THEN {} * 1000000 END \
         WHEN substr({x}, 21, 1) GLOB '[0-9]' AND {} THEN {} * 1000000 + {micros} \
         END END END",
        offset_ok(&format!("substr({x}, 20)")),
        seconds(&format!("substr({x}, 20)")),
        offset_ok(&offset_after_fraction),
        seconds(&offset_after_fraction),
    )
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
        // `def.name` is the canonical field name (`c.field` too, as an owned copy).
        Filter::Cond(c) => match columns(c.def.name) {
            Some(Column::Scalar(col)) => comparison(sql, col, c),
            Some(Column::Expr(expr)) => comparison(sql, &format!("({expr})"), c),
            Some(Column::Json { column, path }) => match (&c.value, c.op, c.def.ty) {
                // A text equality: the compact JSON text of a document holding the value must
                // contain `"key":"value"` (documents are written by `serde_json::to_string`, and
                // the value is escaped by the same serializer), so rows without it are skipped
                // before their JSON is parsed. The exact test still decides. The needle leaves out
                // the key's opening quote: `instr` compares at every occurrence of the needle's
                // first character, and JSON text is full of quotes.
                (Value::String(v), Op::Eq, FieldType::String) => {
                    let key = path.last().copied().unwrap_or_default();
                    let needle = format!("{key}\":{}", serde_json::to_string(v).unwrap_or_default());
                    sql.push(&format!("(instr({column}, "));
                    sql.bind_text(needle);
                    sql.push(") > 0 AND ");
                    comparison(sql, &json_value(column, &path, c.def.ty), c);
                    sql.push(")");
                }
                _ => comparison(sql, &json_value(column, &path, c.def.ty), c),
            },
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
                sql.bind_value(&c.value);
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
        Some(Column::Json { column, path }) => Some((json_value(column, &path, o.ty), o.descending)),
        _ => None,
    }) {
        Some((col, desc)) => {
            let dir = if desc { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
            sql.push(&format!(" ORDER BY {col} {dir}, {id} {}", if desc { "DESC" } else { "ASC" }));
        }
        None => sql.push(&format!(" ORDER BY {default}, {id} ASC")),
    }
}
