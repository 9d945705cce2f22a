//! The embedding examples run as programs and print what docs/embedding.md says they do.

use std::process::Command;

#[test]
fn the_embedded_store_lists_gbp_payments_over_50_by_amount_descending() {
    let out = Command::new(env!("CARGO_BIN_EXE_store_and_list")).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().collect::<Vec<_>>(), ["totalResults 2", "py_2 70.5 GBP Paid", "py_4 60 GBP Failed"]);
}

#[test]
fn a_query_is_checked_and_evaluated_without_a_store() {
    let out = Command::new(env!("CARGO_BIN_EXE_check_query")).args(["currency=GBP && amount>50", "-amount"]).output().expect("runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(), ["py_2", "py_4"]);
    let bad = Command::new(env!("CARGO_BIN_EXE_check_query")).args(["colour=red"]).output().expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("Error parsing query - Could not resolve property colour on"), "{err}");
}
