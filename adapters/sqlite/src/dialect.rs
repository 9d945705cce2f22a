//! What SQLite writes differently from PostgreSQL, for the repositories shared by both adapters
//! (`adapters/sql`): how instants, JSON and lists are bound and read, how a JSON path and a date
//! text are read in SQL, and how a transaction makes a table's writers take turns.
//!
//! Instants are `INTEGER` microseconds since the epoch; documents are JSON text; booleans are
//! `INTEGER` 0/1 (sqlx binds and reads `bool` so).

use crate::sql::filter::{Sql, comparison};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use tributary_domain::RepositoryError;
use tributary_domain::query::{Condition, FieldType, Op, Value};

pub(crate) use crate::SqliteStore as Store;
pub(crate) type Db = sqlx::Sqlite;
pub(crate) type DbRow = sqlx::sqlite::SqliteRow;
pub(crate) type DbConnection = sqlx::SqliteConnection;
pub(crate) type Arguments = sqlx::sqlite::SqliteArguments<'static>;
pub(crate) type Transaction = sqlx::Transaction<'static, Db>;

impl Store {
    /// The pool reads go through.
    pub(crate) fn reader(&self) -> &sqlx::Pool<Db> {
        &self.pool
    }

    /// The one connection writes go through (the `writer` field says why).
    pub(crate) fn writer(&self) -> &sqlx::Pool<Db> {
        &self.writer
    }
}

/// An instant as bound: microseconds since the epoch.
pub(crate) fn time(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The instant in column `col` (a name or an index).
pub(crate) fn get_time<I: sqlx::ColumnIndex<DbRow>>(r: &DbRow, col: I) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(r.get(col)).unwrap_or_default()
}

/// The instant in the nullable column `col`.
pub(crate) fn get_opt_time<I: sqlx::ColumnIndex<DbRow>>(r: &DbRow, col: I) -> Option<DateTime<Utc>> {
    r.get::<Option<i64>, _>(col).map(|t| DateTime::from_timestamp_micros(t).unwrap_or_default())
}

/// A JSON document as bound: its text.
pub(crate) fn json<T: Serialize + ?Sized>(v: &T) -> Result<String, RepositoryError> {
    serde_json::to_string(v).map_err(RepositoryError::backend_from)
}

/// The JSON document in column `col`, or what is wrong with it.
pub(crate) fn get_json<T: DeserializeOwned>(r: &DbRow, col: &str) -> Result<T, String> {
    let text: String = r.try_get(col).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// A list of texts as bound for [`in_list`]: a JSON array.
pub(crate) fn texts<S: AsRef<str> + Serialize>(v: &[S]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// `IN` the list of texts bound at `$n` (see [`texts`]).
pub(crate) fn in_list(n: usize) -> String {
    format!("IN (SELECT value FROM json_each(${n}))")
}

/// Text compared and ordered by code point: SQLite's default (`BINARY`) collation.
pub(crate) const BY_CODE_POINT: &str = "";

/// `x` with ASCII letters lower-cased and nothing else changed (SQLite's `LOWER` without ICU).
pub(crate) fn ascii_lower(x: &str) -> String {
    format!("LOWER({x})")
}

/// A transaction on the store's writing connection that holds the write lock from its start
/// (`BEGIN IMMEDIATE`), so reads and writes on `_table` in it cannot interleave with another
/// writer's, in this or another process.
pub(crate) async fn begin_exclusive(store: &Store, _table: &str) -> Result<Transaction, RepositoryError> {
    store.writer().begin_with("BEGIN IMMEDIATE").await.map_err(crate::sql::backend)
}

/// `(before, after)` around a filter over the JSON documents of `column`: nothing (SQLite reads
/// each path from the row's text).
pub(crate) fn documents(_column: &str) -> (String, String) {
    (String::new(), String::new())
}

/// Appends a condition on the JSON-path field `path` of `column`. A text equality first checks
/// that the compact JSON text of the document contains `"key":"value"` (documents are written by
/// `serde_json::to_string`, and the value is escaped by the same serializer), so rows without it
/// are skipped before their JSON is parsed; the exact test still decides. The needle leaves out the
/// key's opening quote: `instr` compares at every occurrence of the needle's first character, and
/// JSON text is full of quotes.
pub(crate) fn json_comparison(sql: &mut Sql, column: &str, path: &[&str], c: &Condition) {
    match (&c.value, c.op, c.def.ty) {
        (Value::String(v), Op::Eq, FieldType::String) => {
            let key = path.last().copied().unwrap_or_default();
            let needle = format!("{key}\":{}", serde_json::to_string(v).unwrap_or_default());
            sql.push(&format!("(instr({column}, "));
            sql.bind_text(needle);
            sql.push(") > 0 AND ");
            comparison(sql, &json_value(column, path, c.def.ty), c);
            sql.push(")");
        }
        _ => comparison(sql, &json_value(column, path, c.def.ty), c),
    }
}

/// The expression a list is ordered by for the JSON-path field `path` of `column`.
pub(crate) fn json_order(column: &str, path: &[&str], ty: FieldType) -> String {
    json_value(column, path, ty)
}

/// The value of a JSON-path column as an SQL expression of the field's type, NULL when the field
/// is missing, null or of another JSON type (as `query::eval` treats them):
/// - numbers: INTEGER or REAL (strings are not numbers);
/// - booleans: 1 or 0, as bound booleans are;
/// - dates: INTEGER microseconds since the epoch, as timestamp columns and bound dates are (see
///   [`instant_micros`]).
///
/// `path` segments are plain identifiers (checked by `Column::json`), so the JSON path literal
/// cannot be broken out of.
fn json_value(column: &str, path: &[&str], ty: FieldType) -> String {
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

/// A read-only transaction that sees one snapshot of the database: in WAL mode, any read
/// transaction does from its first read.
pub(crate) async fn begin_snapshot(store: &Store) -> Result<Transaction, RepositoryError> {
    store.reader().begin().await.map_err(crate::sql::backend)
}

/// The JSON document in the nullable column `col`, or what is wrong with it.
pub(crate) fn get_opt_json<T: DeserializeOwned>(r: &DbRow, col: &str) -> Result<Option<T>, String> {
    let text: Option<String> = r.try_get(col).map_err(|e| e.to_string())?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| e.to_string())).transpose()
}

/// The instant column `x` truncated to its minute.
pub(crate) fn minute(x: &str) -> String {
    format!("({x} / 60000000) * 60000000")
}

/// The JSON document column `x` as text: it is stored as text.
pub(crate) fn document_text(x: &str) -> String {
    x.to_owned()
}
