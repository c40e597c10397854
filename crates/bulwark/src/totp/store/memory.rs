//! The single-instance backend: the last steps in process memory.

use std::{collections::HashMap, sync::Mutex};

use super::{StoreError, StoreFuture, TotpStepStore};

/// The fewest entries at which a claim sweeps the expired ones out.
const FIRST_SWEEP: usize = 1024;

/// Keeps the last accepted step of each subject in memory, for a single instance (instances
/// behind one load balancer need a shared backend: Redis or SQL, or a code used on one could be
/// used again on another).
///
/// Bounded: an entry expires once its step can no longer verify (a minute and a half with the
/// default window), and expired entries are swept out whenever the map has doubled since the
/// last sweep, so it holds about as many entries as subjects verified a code in the last
/// minutes.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bulwark::store::StoreError> {
/// use bulwark::totp::{TotpStepStore, store::memory::MemoryTotpStepStore};
///
/// let store = MemoryTotpStepStore::new();
/// assert!(store.claim("alice", 56_666_666, i64::MAX).await?);
/// assert!(!store.claim("alice", 56_666_666, i64::MAX).await?, "used once");
/// assert!(!store.claim("alice", 56_666_665, i64::MAX).await?, "older");
/// assert!(store.claim("alice", 56_666_667, i64::MAX).await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryTotpStepStore {
    steps: Mutex<Steps>,
}

#[derive(Debug)]
struct Steps {
    /// Subject to (last step, expires at).
    last: HashMap<String, (u64, i64)>,
    /// The size at which the next claim sweeps.
    sweep_at: usize,
}

impl Default for MemoryTotpStepStore {
    fn default() -> Self {
        Self {
            steps: Mutex::new(Steps {
                last: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }
}

impl MemoryTotpStepStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries the store holds (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.steps.lock().map_or(0, |s| s.last.len())
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Steps>, StoreError> {
        self.steps
            .lock()
            .map_err(|_| StoreError::new("poisoned lock"))
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Steps {
    fn sweep(&mut self, now: i64) -> u64 {
        let before = self.last.len();
        self.last.retain(|_, (_, expires_at)| *expires_at >= now);
        self.sweep_at = (self.last.len() * 2).max(FIRST_SWEEP);
        (before - self.last.len()) as u64
    }
}

impl TotpStepStore for MemoryTotpStepStore {
    fn claim<'a>(&'a self, subject: &'a str, step: u64, expires_at: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut steps = self.lock()?;
            if steps.last.len() >= steps.sweep_at {
                steps.sweep(now());
            }
            // An expired entry is compared too: its step is below any step that can still
            // verify, so the answer is the same, and a clock set back cannot reopen it.
            if let Some((last, until)) = steps.last.get_mut(subject) {
                if *last >= step {
                    return Ok(false);
                }
                (*last, *until) = (step, expires_at);
                return Ok(true);
            }
            steps.last.insert(subject.to_owned(), (step, expires_at));
            Ok(true)
        })
    }

    fn purge(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move { Ok(self.lock()?.sweep(now)) })
    }
}
