//! The backfill cursor: which Stripe list a data type's backfill is walking, and the last object
//! of the page already returned. Callers treat it as an opaque string; it is compact JSON, e.g.
//! `{"v":1,"phase":"refunds","after":"re_123","at":1735700000,"top":1761000000,"floor":1735603200}`.

use serde::{Deserialize, Serialize};
use tributary_domain::model::data_type::DataType;
use tributary_domain::ports::source::SourceError;

/// The cursor format version.
const VERSION: u8 = 1;

/// One Stripe list walked by a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// `GET /v1/customers`.
    Customers,
    /// `GET /v1/disputes`.
    Disputes,
    /// `GET /v1/charges` (first half of payments).
    Charges,
    /// `GET /v1/refunds` (second half of payments).
    Refunds,
    /// `GET /v1/products` (with each product's prices).
    Products,
    /// `GET /v1/balance_transactions`.
    BalanceTransactions,
}

impl Phase {
    /// The phases of a data type's backfill, in order; `None` for company info and unsupported
    /// types.
    pub(crate) fn all_for(dt: DataType) -> Option<&'static [Phase]> {
        Some(match dt {
            DataType::Customers => &[Self::Customers],
            DataType::Disputes => &[Self::Disputes],
            DataType::Payments => &[Self::Charges, Self::Refunds],
            DataType::Products => &[Self::Products],
            DataType::Transactions => &[Self::BalanceTransactions],
            _ => return None,
        })
    }

    /// The list's name in `/v1/{name}`.
    pub(crate) fn list(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Disputes => "disputes",
            Self::Charges => "charges",
            Self::Refunds => "refunds",
            Self::Products => "products",
            Self::BalanceTransactions => "balance_transactions",
        }
    }
}

/// Where a backfill stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// Format version.
    pub(crate) v: u8,
    /// The list being walked.
    pub(crate) phase: Phase,
    /// The last object already returned (`starting_after`); `None` at the start of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) after: Option<String>,
    /// `created` of `after`: if that object has gone, the walk resumes at `created[lte]=at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<i64>,
    /// `created` of the phase's newest object (for progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) top: Option<i64>,
    /// `created` of the account, the oldest any object can be (for progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) floor: Option<i64>,
}

impl Cursor {
    /// The start of a phase.
    pub(crate) fn start(phase: Phase, floor: Option<i64>) -> Self {
        Self { v: VERSION, phase, after: None, at: None, top: None, floor }
    }

    /// The cursor as the opaque string callers keep.
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a cursor for `dt`'s backfill.
    ///
    /// # Errors
    /// [`SourceError::Fetch`] when the string is not a cursor of this source, or belongs to
    /// another data type.
    pub(crate) fn decode(raw: &str, dt: DataType) -> Result<Self, SourceError> {
        let c: Self = serde_json::from_str(raw)
            .map_err(|_| SourceError::Fetch(format!("'{}' is not a Stripe backfill cursor", raw.chars().take(200).collect::<String>())))?;
        if c.v != VERSION {
            return Err(SourceError::Fetch(format!("Stripe backfill cursor version {} is not supported", c.v)));
        }
        if !Phase::all_for(dt).is_some_and(|phases| phases.contains(&c.phase)) {
            return Err(SourceError::Fetch(format!("the cursor walks {} and does not belong to {dt}", c.phase.list())));
        }
        Ok(c)
    }

    /// How far the backfill of `phases` has come, 0–99: each phase gets an equal share, and within
    /// a phase the share walked is `(top - at) / (top - floor)` (newest first, back to the
    /// account's creation).
    pub(crate) fn progress(&self, phases: &[Phase]) -> Option<u8> {
        let index = phases.iter().position(|p| *p == self.phase)?;
        let within = match (self.top, self.at, self.floor) {
            (_, None, _) => 0.0,
            (Some(top), Some(at), Some(floor)) if top > floor => {
                #[expect(clippy::cast_precision_loss, reason = "a progress estimate")]
                let f = (top - at) as f64 / (top - floor) as f64;
                f.clamp(0.0, 1.0)
            }
            _ => return None,
        };
        #[expect(clippy::cast_precision_loss, reason = "a handful of phases")]
        let share = 100.0 / phases.len() as f64;
        #[expect(clippy::cast_precision_loss, reason = "a handful of phases")]
        let done = index as f64 * share + within * share;
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to 0..=99")]
        let p = done.floor().clamp(0.0, 99.0) as u8;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_checked_against_the_data_type() {
        let c = Cursor { v: 1, phase: Phase::Refunds, after: Some("re_1".into()), at: Some(10), top: Some(20), floor: Some(0) };
        let s = c.encode();
        assert_eq!(s, r#"{"v":1,"phase":"refunds","after":"re_1","at":10,"top":20,"floor":0}"#);
        assert_eq!(Cursor::decode(&s, DataType::Payments).unwrap(), c);
        assert!(matches!(Cursor::decode(&s, DataType::Customers), Err(SourceError::Fetch(_))));
        assert!(matches!(Cursor::decode("nonsense", DataType::Payments), Err(SourceError::Fetch(_))));
        assert!(matches!(Cursor::decode(r#"{"v":9,"phase":"refunds"}"#, DataType::Payments), Err(SourceError::Fetch(_))));
        assert!(matches!(Cursor::decode(r#"{"v":1,"phase":"customers"}"#, DataType::CompanyInfo), Err(SourceError::Fetch(_))));
    }

    #[test]
    fn progress_splits_phases_and_walks_back_in_time() {
        let phases = Phase::all_for(DataType::Payments).unwrap();
        let mut c = Cursor::start(Phase::Charges, Some(0));
        assert_eq!(c.progress(phases), Some(0));
        c.top = Some(100);
        c.at = Some(50);
        assert_eq!(c.progress(phases), Some(25));
        c.phase = Phase::Refunds;
        c.at = Some(0);
        assert_eq!(c.progress(phases), Some(99));
        c.floor = None;
        assert_eq!(c.progress(phases), None);
    }
}
