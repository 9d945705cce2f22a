//! The backfill cursor of one partition: a Stripe list, a `created` range of it, and how far the
//! partition has walked that range newest first. Callers treat it as an opaque string; it is
//! compact JSON, e.g.
//! `{"v":2,"list":"charges","gte":1735700000,"lt":1740000000,"after":"ch_1","at":1739000000,"first":1739990000,"seen":300,"floor":1735603200}`.
//!
//! - `gte`/`lt`: the range, `created[gte]` inclusive and `created[lt]` exclusive (absent: open on
//!   that side). Ranges split at whole seconds, so an object sharing a boundary's second belongs to
//!   exactly one of them.
//! - `after`/`at`: the last object returned (`starting_after`) and its `created`; the next page
//!   lists what is older in the range. If that object has gone, the walk resumes at
//!   `created[lte]=at` (the objects of that second come again; writing them twice is harmless).
//! - `first`, `seen`: the newest `created` the partition returned and how many objects, so its
//!   density (objects per second) is known; `rate`: the density inherited from the partition this
//!   one was split from, until it has its own.
//! - `floor`: the account's creation, the oldest an object can be (for estimates and splits: a
//!   range open below is never bounded by it).

use serde::{Deserialize, Serialize};
use tributary_domain::model::data_type::DataType;
use tributary_domain::model::record::Estimate;
use tributary_domain::ports::source::{PlannedPartition, SourceError};

/// The cursor format version (1 was one cursor walking a data type's lists one after another).
const VERSION: u8 = 2;
/// Page size of every list request (Stripe's maximum).
pub(crate) const PAGE: u64 = 100;
/// A split leaves no part with fewer objects than this (by the estimate): a page. Every range ends
/// in a partial page; the engine only splits when the account's budget has room for more pages at
/// once, so the extra requests use capacity that would otherwise stay idle (and a long tail of one
/// range's pages, one after another, is what they save).
pub(crate) const MIN_PART: u64 = PAGE;

/// One Stripe list walked by a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// `GET /v1/customers`.
    Customers,
    /// `GET /v1/disputes`.
    Disputes,
    /// `GET /v1/charges` (payments).
    Charges,
    /// `GET /v1/refunds` (payments, negative).
    Refunds,
    /// `GET /v1/prices` (staged by product for the products, which are listed after them).
    Prices,
    /// `GET /v1/products` (with their staged prices).
    Products,
    /// `GET /v1/balance_transactions`.
    BalanceTransactions,
}

impl Phase {
    /// The lists of a data type's backfill with their stages; `None` for company info and
    /// unsupported types. Lists of one stage are walked at the same time.
    pub(crate) fn all_for(dt: DataType) -> Option<&'static [(Phase, u16)]> {
        Some(match dt {
            DataType::Customers => &[(Self::Customers, 0)],
            DataType::Disputes => &[(Self::Disputes, 0)],
            DataType::Payments => &[(Self::Charges, 0), (Self::Refunds, 0)],
            DataType::Products => &[(Self::Prices, 0), (Self::Products, 1)],
            DataType::Transactions => &[(Self::BalanceTransactions, 0)],
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
            Self::Prices => "prices",
            Self::Products => "products",
            Self::BalanceTransactions => "balance_transactions",
        }
    }

    fn stage(self, dt: DataType) -> u16 {
        Self::all_for(dt).and_then(|all| all.iter().find(|(p, _)| *p == self)).map_or(0, |(_, s)| *s)
    }
}

/// Where a partition stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    pub(crate) v: u8,
    pub(crate) list: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gte: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lt: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) first: Option<i64>,
    #[serde(default)]
    pub(crate) seen: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) floor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate: Option<f64>,
}

impl Cursor {
    /// A whole list, not yet walked.
    pub(crate) fn start(list: Phase, floor: Option<i64>) -> Self {
        Self { v: VERSION, list, gte: None, lt: None, after: None, at: None, first: None, seen: 0, floor, rate: None }
    }

    /// The cursor as the opaque string callers keep.
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a cursor of `dt`'s backfill.
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
        if !Phase::all_for(dt).is_some_and(|lists| lists.iter().any(|(p, _)| *p == c.list)) {
            return Err(SourceError::Fetch(format!("the cursor walks {} and does not belong to {dt}", c.list.list())));
        }
        if let (Some(gte), Some(lt)) = (c.gte, c.lt)
            && gte >= lt
        {
            return Err(SourceError::Fetch(format!("the cursor's range [{gte}, {lt}) is empty")));
        }
        Ok(c)
    }

    /// The partition as planned.
    pub(crate) fn planned(&self, dt: DataType) -> PlannedPartition {
        PlannedPartition { stage: self.list.stage(dt), cursor: self.encode(), estimate: self.estimate() }
    }

    /// Where the range's objects start, as far as is known.
    fn bottom(&self) -> Option<i64> {
        self.gte.or(self.floor)
    }

    /// Objects per second where the partition stands: that of its last full page (or the one
    /// inherited at a split), else over all it has listed once that is half a page.
    fn density(&self) -> Option<f64> {
        match (self.rate, self.first, self.at) {
            (Some(rate), _, _) => Some(rate),
            (None, Some(first), Some(at)) if self.seen >= PAGE / 2 => {
                #[expect(clippy::cast_precision_loss, reason = "an estimate")]
                let d = self.seen as f64 / (first - at + 1).max(1) as f64;
                Some(d)
            }
            _ => None,
        }
    }

    /// Objects listed so far and left (an estimate; one page when nothing is known).
    pub(crate) fn estimate(&self) -> Estimate {
        let top = self.at.or(self.lt);
        let left = match (self.density(), top, self.bottom()) {
            (Some(d), Some(top), Some(bottom)) => {
                #[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "an estimate")]
                let n = (d * (top - bottom).max(0) as f64).round() as u64;
                n
            }
            _ => PAGE,
        };
        Estimate { done: self.seen, left }
    }

    /// What is left of the partition, cut into at most `parts` ranges of about equal estimated
    /// size and at least [`MIN_PART`] objects: the newest continues this walk, the others are new.
    /// Cutting a range that has seen a page needs at least two pages left.
    /// Empty when the partition has not listed a page yet (its density is unknown), its range has
    /// no known bottom, or what is left is too small.
    pub(crate) fn split(&self, parts: usize) -> Vec<Cursor> {
        let (Some(at), Some(_), Some(bottom), Some(density)) = (self.at, self.after.as_ref(), self.bottom(), self.density()) else {
            return Vec::new();
        };
        let left = self.estimate().left;
        let span = at - bottom;
        let n = u64::try_from(parts).unwrap_or(u64::MAX).min(left / MIN_PART).min(u64::try_from(span).unwrap_or(0));
        if n < 2 || left < 2 * PAGE {
            return Vec::new();
        }
        let n = i64::try_from(n).unwrap_or(2);
        // Boundaries bottom < b1 < … < b(n-1) <= at; part k is [b(k), b(k+1)).
        let bound = |k: i64| bottom + span * k / n;
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(2));
        // The newest part keeps walking from where this partition stands.
        out.push(Cursor { gte: Some(bound(n - 1)), ..self.clone() });
        for k in (0..n - 1).rev() {
            out.push(Cursor {
                gte: if k == 0 { self.gte } else { Some(bound(k)) },
                lt: Some(bound(k + 1)),
                after: None,
                at: None,
                first: None,
                seen: 0,
                rate: Some(density),
                ..self.clone()
            });
        }
        out
    }

    /// The cursor after a page of `count` objects whose newest and oldest are `(newest_created,
    /// (oldest_id, oldest_created))`.
    pub(crate) fn advanced(&self, count: usize, newest: Option<i64>, oldest: (String, Option<i64>)) -> Self {
        // A full page's span is the density where the walk stands.
        let rate = match (newest, oldest.1) {
            (Some(n), Some(o)) if count as u64 >= PAGE => {
                #[expect(clippy::cast_precision_loss, reason = "an estimate")]
                let d = count as f64 / (n - o + 1).max(1) as f64;
                Some(d)
            }
            _ => self.rate,
        };
        Self {
            first: self.first.or(newest),
            seen: self.seen + count as u64,
            after: Some(oldest.0),
            at: oldest.1.or(self.at),
            rate,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_checked_against_the_data_type() {
        let c = Cursor {
            gte: Some(5),
            lt: Some(50),
            after: Some("re_1".into()),
            at: Some(10),
            first: Some(20),
            seen: 100,
            ..Cursor::start(Phase::Refunds, Some(0))
        };
        let s = c.encode();
        assert_eq!(s, r#"{"v":2,"list":"refunds","gte":5,"lt":50,"after":"re_1","at":10,"first":20,"seen":100,"floor":0}"#);
        assert_eq!(Cursor::decode(&s, DataType::Payments).unwrap(), c);
        assert!(matches!(Cursor::decode(&s, DataType::Customers), Err(SourceError::Fetch(_))));
        assert!(matches!(Cursor::decode("nonsense", DataType::Payments), Err(SourceError::Fetch(_))));
        assert!(matches!(Cursor::decode(r#"{"v":1,"phase":"refunds"}"#, DataType::Payments), Err(SourceError::Fetch(_))));
        assert!(matches!(Cursor::decode(r#"{"v":2,"list":"customers"}"#, DataType::CompanyInfo), Err(SourceError::Fetch(_))));
        assert!(matches!(Cursor::decode(r#"{"v":2,"list":"charges","gte":9,"lt":9}"#, DataType::Payments), Err(SourceError::Fetch(_))));
        assert_eq!(Cursor::start(Phase::Prices, None).planned(DataType::Products).stage, 0);
        assert_eq!(Cursor::start(Phase::Products, None).planned(DataType::Products).stage, 1);
    }

    /// A partition that has listed 100 objects between t=1000 and t=901 (one per second) and has
    /// everything down to its bottom left.
    fn walked(gte: Option<i64>, floor: Option<i64>) -> Cursor {
        Cursor { gte, floor, ..Cursor::start(Phase::Charges, None) }.advanced(100, Some(1000), ("ch_901".into(), Some(901)))
    }

    #[test]
    fn estimates_follow_the_partition_s_density_down_to_its_bottom() {
        let c = walked(Some(1), None);
        assert_eq!(c.estimate(), Estimate { done: 100, left: 900 });
        // The next page is ten times as dense: what is left is estimated at that density.
        let denser = c.advanced(100, Some(900), ("ch_891".into(), Some(891)));
        assert_eq!(denser.estimate(), Estimate { done: 200, left: 8900 });
        // A partial page (the end of a range) keeps the density known.
        let end = denser.advanced(40, Some(890), ("ch_880".into(), Some(880)));
        assert_eq!(end.estimate().left, 8790);
        assert_eq!(walked(None, Some(501)).estimate(), Estimate { done: 100, left: 400 }, "the account's creation bounds the estimate");
        assert_eq!(walked(None, None).estimate().left, PAGE, "nothing known: a page");
        assert_eq!(Cursor::start(Phase::Charges, Some(0)).estimate(), Estimate { done: 0, left: PAGE });
    }

    #[test]
    fn a_split_cuts_what_is_left_into_equal_ranges_that_cover_it_exactly_once() {
        let c = walked(None, Some(1));
        let parts = c.split(3);
        assert_eq!(parts.len(), 3);
        // The first keeps walking (same position), the newest slice of what is left.
        assert_eq!((parts[0].after.as_deref(), parts[0].at, parts[0].gte, parts[0].lt), (Some("ch_901"), Some(901), Some(601), None));
        // The others tile [bottom, 601) with no gap or overlap; the oldest stays open below.
        let ranges: Vec<(Option<i64>, Option<i64>)> = parts[1..].iter().map(|p| (p.gte, p.lt)).collect();
        assert_eq!(ranges, [(Some(301), Some(601)), (None, Some(301))]);
        assert!(parts[1..].iter().all(|p| p.after.is_none() && p.seen == 0 && p.rate == Some(1.0)));
        let left: u64 = parts.iter().map(|p| p.estimate().left).sum();
        assert_eq!(left, c.estimate().left, "the estimates add up");
        // Bounded ranges keep their bounds.
        let bounded = walked(Some(101), None).split(2);
        assert_eq!(bounded.iter().map(|p| (p.gte, p.lt)).collect::<Vec<_>>(), [(Some(501), None), (Some(101), Some(501))]);
    }

    #[test]
    fn small_unwalked_or_unbounded_partitions_are_not_split() {
        assert!(walked(Some(1), None).split(1).is_empty(), "one part is no split");
        assert_eq!(walked(Some(1), None).split(100).len(), 9, "no part under a page: 900 left make 9");
        assert_eq!(walked(Some(701), None).split(8).len(), 2, "200 left: two pages");
        assert!(walked(Some(751), None).split(8).is_empty(), "150 left: less than two pages");
        assert!(walked(None, None).split(8).is_empty(), "no bottom");
        assert!(Cursor::start(Phase::Charges, Some(0)).split(8).is_empty(), "no page yet");
        // A dense second: 100 objects in t=900 alone, bottom 899: one second left cannot be cut.
        let dense = Cursor { gte: Some(899), ..Cursor::start(Phase::Charges, None) }.advanced(100, Some(900), ("ch".into(), Some(900)));
        assert!(dense.split(8).is_empty());
    }
}
