//! [`Signal`]: a one-shot flag that futures can wait for, with no runtime of its own (the domain
//! runs on whatever executor its caller uses).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A flag that is fired once; every [`Signal::wait`] then completes.
#[derive(Clone, Default)]
pub(crate) struct Signal(Arc<Inner>);

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    /// The wakers of the waits pending now, by key (a wait removes its own when dropped, so a
    /// signal waited on for hours holds no more wakers than there are waits).
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    next: u64,
    wakers: std::collections::HashMap<u64, Waker>,
}

impl Signal {
    /// Fires the signal (again is harmless) and wakes every waiter.
    pub(crate) fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut self.0.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).wakers);
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Whether it was fired.
    pub(crate) fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Completes once the signal is fired.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait { signal: self, key: None }
    }

    #[cfg(test)]
    fn pending_waits(&self) -> usize {
        self.0.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).wakers.len()
    }
}

/// The future of [`Signal::wait`].
pub(crate) struct Wait<'a> {
    signal: &'a Signal,
    key: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.signal.0;
        if inner.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let mut waiters = inner.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Checked again under the lock: `fire` takes the wakers under it after setting the flag.
        if inner.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                waiters.next += 1;
                waiters.next
            }
        };
        waiters.wakers.insert(key, cx.waker().clone());
        drop(waiters);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.signal.0.waiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).wakers.remove(&key);
        }
    }
}

/// A bound on the pages a process holds at once (fetched and not yet written), shared by all its
/// sync workers: an async counting semaphore, with no runtime of its own.
#[derive(Debug)]
pub struct PageBudget {
    size: usize,
    state: Mutex<(usize, Vec<Waker>)>,
}

/// One page's place in a [`PageBudget`], given back when dropped.
pub(crate) struct PagePermit<'a>(&'a PageBudget);

impl Drop for PagePermit<'_> {
    fn drop(&mut self) {
        let wakers = {
            let mut state = self.0.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            state.0 += 1;
            std::mem::take(&mut state.1)
        };
        // Every waiter looks again (one that was dropped meanwhile cannot swallow the wake-up).
        for w in wakers {
            w.wake();
        }
    }
}

impl PageBudget {
    /// Room for `size` pages (at least one).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        Self { size, state: Mutex::new((size, Vec::new())) }
    }

    /// How many pages it holds at most.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Waits for a place.
    pub(crate) fn acquire(&self) -> Acquire<'_> {
        Acquire(self)
    }
}

impl Default for PageBudget {
    fn default() -> Self {
        Self::new(256)
    }
}

/// The future of [`PageBudget::acquire`].
pub(crate) struct Acquire<'a>(&'a PageBudget);

impl<'a> Future for Acquire<'a> {
    type Output = PagePermit<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PagePermit<'a>> {
        let budget = self.0;
        let mut state = budget.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.0 > 0 {
            state.0 -= 1;
            return Poll::Ready(PagePermit(budget));
        }
        if !state.1.iter().any(|w| w.will_wake(cx.waker())) {
            state.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_complete_once_the_signal_fires_and_later_waits_complete_at_once() {
        let s = Signal::default();
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished() && !s.is_fired());
        s.fire();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("woken").unwrap();
        s.wait().await;
        assert!(s.is_fired());
    }

    #[tokio::test]
    async fn a_wait_given_up_leaves_no_waker_behind() {
        let s = Signal::default();
        for _ in 0..100 {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), s.wait()).await;
        }
        assert_eq!(s.pending_waits(), 0, "every abandoned wait took its waker away");
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(s.pending_waits(), 1);
        s.fire();
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_page_budget_holds_at_most_its_size_and_a_returned_place_wakes_a_waiter() {
        let budget = Arc::new(PageBudget::new(2));
        let (a, b) = (budget.acquire().await, budget.acquire().await);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move {
                let _p = budget.acquire().await;
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "both places are taken");
        // A waiter that gives up does not keep a place.
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(5), budget.acquire()).await;
        assert!(gave_up.is_err());
        drop(a);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("woken").unwrap();
        drop(b);
        let _c = budget.acquire().await;
        let _d = budget.acquire().await;
        assert_eq!(budget.size(), 2);
    }
}
