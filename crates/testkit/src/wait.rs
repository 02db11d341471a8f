//! Shared, observable state with async waiters (no sleeping-and-hoping).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::WaitError;

/// State behind a mutex plus a version counter that wakes waiters on every change.
#[derive(Debug)]
pub(crate) struct Observed<S> {
    state: Mutex<S>,
    version: watch::Sender<u64>,
}

impl<S> Observed<S> {
    pub(crate) fn new(state: S) -> Self {
        Self {
            state: Mutex::new(state),
            version: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, S> {
        // A panic while holding the lock cannot leave the records half-written in a way that
        // matters to a test; keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mutates the state and wakes every waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut self.lock());
        self.version.send_modify(|v| *v = v.wrapping_add(1));
        r
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.lock())
    }

    /// Waits until `check` returns `Some`, re-evaluating it after every update.
    /// `describe` renders the state for the timeout error.
    pub(crate) async fn wait_until<R>(
        &self,
        timeout: Duration,
        what: impl FnOnce() -> String,
        mut check: impl FnMut(&S) -> Option<R>,
        describe: impl FnOnce(&S) -> String,
    ) -> Result<R, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(r) = self.read(&mut check) {
                return Ok(r);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // The sender lives as long as `self`; treat a closed channel like a timeout.
                Ok(Err(_)) | Err(_) => {
                    if let Some(r) = self.read(&mut check) {
                        return Ok(r);
                    }
                    return Err(WaitError::Timeout {
                        what: what(),
                        after: timeout,
                        state: self.read(describe),
                    });
                }
            }
        }
    }

    /// Like [`Observed::wait_until`], for conditions that also become true with the passage of
    /// time: `check` returns `Ok(result)` or `Err(Some(t))` = "re-check at `t` even if
    /// nothing changes" (`Err(None)` = only on change).
    pub(crate) async fn wait_until_timed<R>(
        &self,
        timeout: Duration,
        what: impl FnOnce() -> String,
        mut check: impl FnMut(&S, Instant) -> Result<R, Option<Instant>>,
        describe: impl FnOnce(&S) -> String,
    ) -> Result<R, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            let now = Instant::now();
            let wake = match self.read(|s| check(s, now)) {
                Ok(r) => return Ok(r),
                Err(wake) => wake.map_or(deadline, |w| w.min(deadline)),
            };
            if now >= deadline {
                return Err(WaitError::Timeout {
                    what: what(),
                    after: timeout,
                    state: self.read(describe),
                });
            }
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        // Sender gone: only time can change the answer now.
                        tokio::time::sleep_until(wake).await;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}
