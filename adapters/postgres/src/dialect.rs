//! What PostgreSQL writes differently from SQLite, for the repositories shared by both adapters
//! (`adapters/sql`): how instants, JSON and lists are bound and read, how a JSON path and a date
//! text are read in SQL, and how a transaction makes a table's writers take turns.
//!
//! Instants are `TIMESTAMPTZ`, documents `JSONB`, booleans `BOOLEAN`.

use crate::sql::filter::{Sql, comparison};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::types::Json;
use tributary_domain::RepositoryError;
use tributary_domain::query::{Condition, FieldType};

pub(crate) use crate::PgStore as Store;
pub(crate) type Db = sqlx::Postgres;
pub(crate) type DbRow = sqlx::postgres::PgRow;
pub(crate) type DbConnection = sqlx::PgConnection;
pub(crate) type Arguments = sqlx::postgres::PgArguments;
pub(crate) type Transaction = sqlx::Transaction<'static, Db>;

impl Store {
    /// The pool reads go through.
    pub(crate) fn reader(&self) -> &sqlx::Pool<Db> {
        &self.pool
    }

    /// The pool writes go through (the same one: PostgreSQL takes concurrent writers).
    pub(crate) fn writer(&self) -> &sqlx::Pool<Db> {
        &self.pool
    }
}

/// An instant as bound: `timestamptz`.
pub(crate) fn time(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

/// The instant in column `col` (a name or an index).
pub(crate) fn get_time<I: sqlx::ColumnIndex<DbRow>>(r: &DbRow, col: I) -> DateTime<Utc> {
    r.get(col)
}

/// The instant in the nullable column `col`.
pub(crate) fn get_opt_time<I: sqlx::ColumnIndex<DbRow>>(r: &DbRow, col: I) -> Option<DateTime<Utc>> {
    r.get(col)
}

/// A JSON document as bound: `jsonb`.
pub(crate) fn json<T: Serialize + ?Sized>(v: &T) -> Result<Json<&T>, RepositoryError> {
    Ok(Json(v))
}

/// The JSON document in column `col`, or what is wrong with it.
pub(crate) fn get_json<T: DeserializeOwned>(r: &DbRow, col: &str) -> Result<T, String> {
    r.try_get::<Json<T>, _>(col).map(|j| j.0).map_err(|e| e.to_string())
}

/// The JSON document in the nullable column `col`, or what is wrong with it.
pub(crate) fn get_opt_json<T: DeserializeOwned>(r: &DbRow, col: &str) -> Result<Option<T>, String> {
    r.try_get::<Option<Json<T>>, _>(col).map(|j| j.map(|j| j.0)).map_err(|e| e.to_string())
}

/// The instant column `x` truncated to its minute.
pub(crate) fn minute(x: &str) -> String {
    format!("date_trunc('minute', {x})")
}

/// The JSONB column `x` as JSON text.
pub(crate) fn document_text(x: &str) -> String {
    format!("{x}::text")
}

/// A list of texts as bound for [`in_list`]: a `text[]`.
pub(crate) fn texts<S: AsRef<str> + Serialize>(v: &[S]) -> Vec<String> {
    v.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// `IN` the list of texts bound at `$n` (see [`texts`]).
pub(crate) fn in_list(n: usize) -> String {
    format!("= ANY(${n}::text[])")
}

/// Text compared and ordered by code point, as SQLite does, whatever the database's collation.
pub(crate) const BY_CODE_POINT: &str = " COLLATE \"C\"";

/// `x` with ASCII letters lower-cased and nothing else changed, exactly as SQLite's `LOWER`.
pub(crate) fn ascii_lower(x: &str) -> String {
    format!("translate({x}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

/// A transaction that first takes `SHARE ROW EXCLUSIVE` on `table`: the mode conflicts with itself
/// and with every write, so writers of the table (in this or another instance) take turns.
pub(crate) async fn begin_exclusive(store: &Store, table: &str) -> Result<Transaction, RepositoryError> {
    let mut tx = store.writer().begin().await.map_err(crate::sql::backend)?;
    sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")).execute(&mut *tx).await.map_err(crate::sql::backend)?;
    Ok(tx)
}

/// A read-only transaction that sees one snapshot of the database (`REPEATABLE READ`).
pub(crate) async fn begin_snapshot(store: &Store) -> Result<Transaction, RepositoryError> {
    let mut tx = store.reader().begin().await.map_err(crate::sql::backend)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await.map_err(crate::sql::backend)?;
    Ok(tx)
}

/// `FROM` a single row whose `column` is the listed row's `column` decompressed once: each JSON
/// path read of a TOASTed document (a few KB) would otherwise decompress all of it again, and a
/// date field reads its path a dozen times. `column #> '{}'` is the whole document, detoasted;
/// in a sub-select over this, `column` names that copy while other columns still name the row's.
fn detoasted(column: &str) -> String {
    format!("FROM (SELECT {column} #> '{{}}' AS {column} OFFSET 0) AS detoasted")
}

/// `(before, after)` around a filter over the JSONB documents of `column`: a sub-select over one
/// decompressed copy of the document (see [`detoasted`]), however many paths the filter reads.
pub(crate) fn documents(column: &str) -> (String, String) {
    ("(SELECT ".into(), format!(" {})", detoasted(column)))
}

/// Appends a condition on the JSON-path field `path` of `column`.
pub(crate) fn json_comparison(sql: &mut Sql, column: &str, path: &[&str], c: &Condition) {
    comparison(sql, &json_value(column, path, c.def.ty), c);
}

/// The expression a list is ordered by for the JSON-path field `path` of `column`.
pub(crate) fn json_order(column: &str, path: &[&str], ty: FieldType) -> String {
    format!("(SELECT {} {})", json_value(column, path, ty), detoasted(column))
}

/// The value of a JSON-path column as an SQL expression of the field's type, NULL when the field
/// is missing, null or of another JSON type (as `query::eval` treats them), so that no document
/// can make a cast fail:
/// - text and enums: the string (other JSON types are not text);
/// - numbers: exact `numeric` (strings are not numbers);
/// - booleans: `boolean`;
/// - dates: `timestamptz` (see [`instant`]).
///
/// `path` segments are plain identifiers (checked by `Column::json`), so the path literal cannot
/// be broken out of.
fn json_value(column: &str, path: &[&str], ty: FieldType) -> String {
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
