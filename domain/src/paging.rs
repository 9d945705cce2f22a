//! Codat paging: `page` (1-based) and `pageSize` (1–5000, default 100), plus filter and order.

use crate::error::DomainError;
use crate::query::{Filter, OrderBy, Schema, parse_order_by, resolve};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

/// Default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 5000;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Records per page.
    pub page_size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, page_size: DEFAULT_PAGE_SIZE }
    }
}

impl PageRequest {
    /// Validates `page` and `pageSize` as given (absent → defaults).
    pub fn new(page: Option<i64>, page_size: Option<i64>) -> Result<Self, DomainError> {
        let page = page.unwrap_or(1);
        let page_size = page_size.unwrap_or(i64::from(DEFAULT_PAGE_SIZE));
        if page < 1 || page > i64::from(u32::MAX) {
            return Err(DomainError::invalid(format!("page must be 1 or more; {page} was given.")));
        }
        if !(1..=i64::from(MAX_PAGE_SIZE)).contains(&page_size) {
            return Err(DomainError::invalid(format!("pageSize must be between 1 and {MAX_PAGE_SIZE}; {page_size} was given.")));
        }
        Ok(Self { page: u32::try_from(page).unwrap_or(u32::MAX), page_size: u32::try_from(page_size).unwrap_or(DEFAULT_PAGE_SIZE) })
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.page_size)
    }
}

/// A list request: filter, order and page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Resolved `query`.
    pub filter: Option<Filter>,
    /// Resolved `tags` filter (companies only).
    pub tags: Option<Filter>,
    /// Resolved `orderBy`.
    pub order_by: Option<OrderBy>,
    /// The page.
    pub page: PageRequest,
    /// Keyset position: when set, the page starts just after this record instead of at the
    /// page's offset (only for [`ListQuery::keyset_order`] orders).
    pub seek: Option<Seek>,
}

impl ListQuery {
    /// Builds a list request from raw parameters, resolving `query` and `orderBy` against `schema`.
    ///
    /// # Errors
    /// [`DomainError::Validation`] with `Error parsing query - …` for a bad query or order.
    pub fn from_params(
        schema: &Schema,
        page: Option<i64>,
        page_size: Option<i64>,
        query: Option<&str>,
        order_by: Option<&str>,
    ) -> Result<Self, DomainError> {
        let page = PageRequest::new(page, page_size)?;
        let filter = match query.filter(|q| !q.trim().is_empty()) {
            Some(q) => Some(resolve(q, schema).map_err(|e| DomainError::invalid(format!("Error parsing query - {e}")))?),
            None => None,
        };
        let order_by = match order_by.filter(|o| !o.trim().is_empty()) {
            Some(o) => Some(parse_order_by(o, schema).map_err(|e| DomainError::invalid(format!("Error parsing orderBy - {e}")))?),
            None => None,
        };
        Ok(Self { filter, tags: None, order_by, page, seek: None })
    }

    /// Whether the order can be followed with a keyset [`Seek`]: the default order (created,
    /// then id) or `createdDate` either way, which the stores serve from an index.
    pub fn keyset_order(&self) -> bool {
        self.order_by.as_ref().is_none_or(|o| o.field == "createdDate")
    }

    /// Whether the order is descending.
    pub fn descending(&self) -> bool {
        self.order_by.as_ref().is_some_and(|o| o.descending)
    }
}

/// A keyset position in a list ordered by creation time then id: the sort key of the last
/// record of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seek {
    /// The record's creation time (records without one sort first ascending, last descending).
    pub created: Option<DateTime<Utc>>,
    /// The record's id (the tie-break).
    pub id: String,
}

/// The opaque `cursor` carried by a list's `_links.next`: the page it leads to, the keyset
/// position where that page starts, and a fingerprint of the list it was issued for (path,
/// page size, query and order), so that a cursor is only ever applied to the list and page it
/// came from. The page number stays authoritative: a cursor that does not match the request is
/// ignored and the page is read by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// The page the cursor starts.
    pub page: u32,
    /// [`PageCursor::fingerprint`] of the list.
    pub fingerprint: u64,
    /// Where the page starts.
    pub seek: Seek,
}

impl PageCursor {
    /// A fingerprint of a list request (FNV-1a; it detects reuse on another list, it does not
    /// authenticate: the seek values are bound parameters and reads are authorised separately).
    pub fn fingerprint(scope: &str, page_size: u32, query: Option<&str>, order_by: Option<&str>) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let parts = [scope, &page_size.to_string(), query.unwrap_or(""), order_by.unwrap_or("")];
        for part in parts {
            for b in part.bytes().chain([0xff]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// The URL-safe token.
    pub fn encode(&self) -> String {
        let created = self.seek.created.map_or_else(|| "-".to_owned(), |c| c.timestamp_micros().to_string());
        URL_SAFE_NO_PAD.encode(format!("1|{}|{:x}|{created}|{}", self.page, self.fingerprint, self.seek.id))
    }

    /// Parses a token made by [`PageCursor::encode`].
    ///
    /// # Errors
    /// [`DomainError::Validation`] for anything else.
    pub fn decode(token: &str) -> Result<Self, DomainError> {
        let bad = || {
            DomainError::invalid(format!("cursor '{token}' is not a cursor this server issued; follow _links.next as given or drop it."))
        };
        let raw = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(5, '|');
        let (Some("1"), Some(page), Some(fingerprint), Some(created), Some(id)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let created = match created {
            "-" => None,
            micros => Some(micros.parse::<i64>().ok().and_then(DateTime::<Utc>::from_timestamp_micros).ok_or_else(bad)?),
        };
        Ok(Self {
            page: page.parse().map_err(|_| bad())?,
            fingerprint: u64::from_str_radix(fingerprint, 16).map_err(|_| bad())?,
            seek: Seek { created, id: id.to_owned() },
        })
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The records on this page.
    pub items: Vec<T>,
    /// Total matching records across all pages.
    pub total: u64,
    /// The page that was asked for.
    pub request: PageRequest,
}

impl<T> Page<T> {
    /// Whether a later page has records.
    pub fn has_next(&self) -> bool {
        self.request.offset() + u64::from(self.request.page_size) < self.total
    }

    /// Maps the items, keeping the paging.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), total: self.total, request: self.request }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_and_page_size_are_bounded() {
        assert_eq!(PageRequest::new(None, None).unwrap(), PageRequest { page: 1, page_size: 100 });
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(None, Some(0)).is_err());
        assert!(PageRequest::new(None, Some(5001)).is_err());
        assert_eq!(PageRequest::new(Some(3), Some(5000)).unwrap().offset(), 10_000);
    }

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let at = "2026-03-01T10:00:00.123456Z".parse().unwrap();
        for created in [Some(at), None] {
            let c =
                PageCursor { page: 10_000, fingerprint: u64::MAX - 7, seek: Seek { created, id: "txn_1:Stripe processing fees|x".into() } };
            assert_eq!(PageCursor::decode(&c.encode()).unwrap(), c);
        }
        for bad in ["", "!!", "bm90IGEgY3Vyc29y", &URL_SAFE_NO_PAD.encode("1|x|0|-|a"), &URL_SAFE_NO_PAD.encode("2|1|0|-|a")] {
            assert!(PageCursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints_tell_lists_apart() {
        let f = |scope, size, q: Option<&str>, o: Option<&str>| PageCursor::fingerprint(scope, size, q, o);
        let base = f("/a", 100, Some("amount>1"), None);
        assert_eq!(base, f("/a", 100, Some("amount>1"), None));
        assert_ne!(base, f("/b", 100, Some("amount>1"), None));
        assert_ne!(base, f("/a", 10, Some("amount>1"), None));
        assert_ne!(base, f("/a", 100, Some("amount>2"), None));
        assert_ne!(base, f("/a", 100, Some("amount>1"), Some("createdDate")));
        assert_ne!(f("/a", 100, Some("x"), None), f("/a", 100, None, Some("x")), "fields are kept apart");
    }

    #[test]
    fn has_next_is_true_only_before_the_last_page() {
        let p = |page, total| Page::<()> { items: vec![], total, request: PageRequest { page, page_size: 10 } };
        assert!(p(1, 11).has_next());
        assert!(!p(2, 11).has_next());
        assert!(!p(1, 10).has_next());
    }
}
