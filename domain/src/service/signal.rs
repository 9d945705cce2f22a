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
    wakers: Mutex<Vec<Waker>>,
}

impl Signal {
    /// Fires the signal (again is harmless) and wakes every waiter.
    pub(crate) fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.0.wakers.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for w in wakers {
            w.wake();
        }
    }

    /// Whether it was fired.
    pub(crate) fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Completes once the signal is fired.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait(self)
    }
}

/// The future of [`Signal::wait`].
pub(crate) struct Wait<'a>(&'a Signal);

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &(self.0).0;
        if inner.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let mut wakers = inner.wakers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Checked again under the lock: `fire` takes the wakers under it after setting the flag.
        if inner.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
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
}
