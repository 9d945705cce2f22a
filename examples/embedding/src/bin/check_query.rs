//! Uses only the query language and the models: checks a client's Codat `query` and `orderBy` for
//! payments before it is sent (the errors are the server's own 400 messages), and shows which of a
//! few payments it selects, in memory. Run it with
//! `cargo run -p tributary-embedding-example --bin check_query -- 'currency=GBP && amount>50' -amount`.

use tributary_domain::model::commerce_schema::PAYMENTS;
use tributary_domain::query::{eval, typed};

fn main() {
    let mut args = std::env::args().skip(1);
    let query = args.next().unwrap_or_default();
    let order_by = args.next();
    let filter = match typed::resolve(&query, &PAYMENTS) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error parsing query - {e}");
            std::process::exit(2);
        }
    };
    if let Some(order) = order_by.as_deref()
        && let Err(e) = typed::parse_order_by(order, &PAYMENTS)
    {
        eprintln!("Error parsing orderBy - {e}");
        std::process::exit(2);
    }
    let payments = serde_json::json!([
        {"id": "py_1", "amount": 25.0, "currency": "GBP", "status": "Paid"},
        {"id": "py_2", "amount": 70.5, "currency": "GBP", "status": "Paid"},
        {"id": "py_3", "amount": 99.99, "currency": "USD", "status": "Paid"},
        {"id": "py_4", "amount": 60, "currency": "GBP", "status": "Failed"},
    ]);
    for p in payments.as_array().into_iter().flatten() {
        if eval::matches(&filter, p) {
            println!("{}", p["id"].as_str().unwrap_or(""));
        }
    }
}
