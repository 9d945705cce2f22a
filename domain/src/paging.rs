//! Codat paging: `page` (1-based) and `pageSize` (1–5000, default 100), plus filter and order.

use crate::error::DomainError;
use crate::query::{Filter, OrderBy, Schema, parse_order_by, resolve};

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
        Ok(Self { filter, tags: None, order_by, page })
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
    fn has_next_is_true_only_before_the_last_page() {
        let p = |page, total| Page::<()> { items: vec![], total, request: PageRequest { page, page_size: 10 } };
        assert!(p(1, 11).has_next());
        assert!(!p(2, 11).has_next());
        assert!(!p(1, 10).has_next());
    }
}
