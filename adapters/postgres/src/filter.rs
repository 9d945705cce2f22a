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
    /// A scalar inside the JSONB `column`, at `path` (built only with [`Column::json`], so every
    /// segment is a plain identifier from a static schema and can be written into the SQL). It is
    /// read as the field's type (see [`json_value`]): a stored value of another JSON type, or an
    /// unreadable date, counts as missing. Filters on such fields belong in [`render_detoasted`].
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

    pub fn bind_time(&mut self, v: chrono::DateTime<chrono::Utc>) {
        self.placeholder();
        self.args.add(v).expect("binding an instant cannot fail");
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

/// The value of a JSON-path column as an SQL expression of the field's type, NULL when the field
/// is missing, null or of another JSON type (as `query::eval` treats them), so that no document
/// can make a cast fail:
/// - text and enums: the string (other JSON types are not text);
/// - numbers: exact `numeric` (strings are not numbers);
/// - booleans: `boolean`;
/// - dates: `timestamptz` (see [`instant`]).
///
/// `path` segments are plain identifiers (checked by [`Column::json`]), so the path literal cannot
/// be broken out of.
pub(crate) fn json_value(column: &str, path: &[&str], ty: FieldType) -> String {
    let path = format!("'{{{}}}'", path.join(","));
    let json = format!("({column} #> {path})");
    let text = format!("({column} #>> {path})");
    match ty {
        FieldType::String | FieldType::Enum(_) => format!("(CASE WHEN jsonb_typeof({json}) = 'string' THEN {text} END)"),
        FieldType::Number => format!("(CASE WHEN jsonb_typeof({json}) = 'number' THEN {json}::numeric END)"),
        FieldType::Bool => format!("(CASE WHEN jsonb_typeof({json}) = 'boolean' THEN {json}::boolean END)"),
        FieldType::Date => format!("(CASE WHEN jsonb_typeof({json}) = 'string' THEN {} END)", instant(&text)),
    }
}

/// The shapes of date text read as instants; the year 0000, the day and a lower-case `t` without an
/// offset are ruled out separately.
const INSTANT_SHAPE: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])\
     (T([01][0-9]|2[0-3]):[0-5][0-9]\
     |[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]+)?([Zz]|[+-](0[0-9]|1[0-4]):[0-5][0-9])?)?$";

/// The instant of the date text `x`, or NULL unless it is one of the forms `YYYY-MM-DD`,
/// `YYYY-MM-DDTHH:MM` or `YYYY-MM-DD[Tt ]HH:MM:SS[.f…][Z|z|±HH:MM]` (`t` only with an offset)
/// with a real calendar date (years 0001–9999), hours 00–23 and offsets up to ±14:59, exactly the
/// texts `parse_instant` reads but for its leniencies. Times without an offset are UTC
/// whatever the session's time zone; fractional seconds count to the microsecond (further digits
/// are dropped, not rounded). The SQLite adapter accepts exactly the same texts.
///
/// Nested `CASE`s (not `AND`, whose operands PostgreSQL may evaluate in any order) make sure the
/// casts only ever see text they accept, so a malformed date cannot fail the query. One regular
/// expression checks the shape; the rest is plain string work, which costs far less.
fn instant(x: &str) -> String {
    let year = format!("substr({x}, 1, 4)::int");
    let days_in_month = format!(
        "CASE substr({x}, 6, 2) WHEN '02' THEN CASE WHEN {year} % 4 = 0 AND ({year} % 100 <> 0 OR {year} % 400 = 0) \
         THEN 29 ELSE 28 END WHEN '04' THEN 30 WHEN '06' THEN 30 WHEN '09' THEN 30 WHEN '11' THEN 30 ELSE 31 END"
    );
    // Past the shape check, a `-` or `+` six from the end can only start an offset.
    let has_offset = format!("(right({x}, 1) IN ('Z', 'z') OR (length({x}) > 19 AND substr({x}, length({x}) - 5, 1) IN ('+', '-')))");
    // Fractions beyond microseconds are cut, as on SQLite, rather than rounded by the cast.
    let long_fraction = format!("substr({x}, 20, 1) = '.' AND length(substr({x}, 21)) - length(ltrim(substr({x}, 21), '0123456789')) > 6");
    let t = format!("(CASE WHEN {long_fraction} THEN substr({x}, 1, 26) || ltrim(substr({x}, 27), '0123456789') ELSE {x} END)");
    format!(
        "CASE WHEN {x} ~ '{INSTANT_SHAPE}' THEN CASE WHEN substr({x}, 1, 4) <> '0000' AND (substr({x}, 11, 1) <> 't' OR {has_offset}) \
         AND substr({x}, 9, 2)::int <= {days_in_month} THEN CASE WHEN {has_offset} THEN {t}::timestamptz \
         ELSE {t}::timestamp AT TIME ZONE 'UTC' END END END"
    )
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

/// `FROM` a single row whose `column` is the listed row's `column` decompressed once: each JSON
/// path read of a TOASTed document (a few KB) would otherwise decompress all of it again, and a
/// date field reads its path a dozen times. `column #> '{}'` is the whole document, detoasted;
/// in a sub-select over this, `column` names that copy while other columns still name the row's.
fn detoasted(column: &str) -> String {
    format!("FROM (SELECT {column} #> '{{}}' AS {column} OFFSET 0) AS detoasted")
}

/// Appends `filter` as a boolean SQL expression evaluated over one decompressed copy of the JSONB
/// `column` (see [`detoasted`]); for filters on [`Column::Json`] fields of that column.
pub(crate) fn render_detoasted(sql: &mut Sql, filter: &Filter, columns: ColumnMap, column: &str) {
    sql.push("(SELECT ");
    render(sql, filter, columns);
    sql.push(&format!(" {})", detoasted(column)));
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
        Some(Column::Json { column, path }) => comparison(sql, &json_value(column, &path, c.def.ty), c),
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
        Some(Column::Json { column, path }) => {
            Some((format!("(SELECT {} {})", json_value(column, &path, o.ty), detoasted(column)), o.ty, o.descending))
        }
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
