//! The verifier's memory: keys read from the store (with the identity granted them) and
//! prefixes the store does not know, each for a short, fixed time and in bounded number.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, atomic::AtomicI64},
    time::{Duration, Instant},
};

use super::{ApiKeyIdentity, ApiKeyRecord};

/// How often a full map may be swept of its expired entries (a sweep walks every entry).
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// A key as read from the store at one moment.
pub(super) struct Known {
    /// The record (its hash included: the presented key is compared with it).
    pub(super) record: ApiKeyRecord,
    /// The identity granted (`Some`), or the mapper's refusal (`None`); unset until a request
    /// presenting this very key asked for it.
    pub(super) grant: OnceLock<Option<Arc<ApiKeyIdentity>>>,
    /// The last `last_used_at` minute written or read (Unix seconds), so that a key is touched
    /// at most once a minute by this instance.
    pub(super) touched: AtomicI64,
}

impl Known {
    pub(super) fn new(record: ApiKeyRecord) -> Self {
        let touched = AtomicI64::new(record.last_used_at.unwrap_or(i64::MIN));
        Self {
            record,
            grant: OnceLock::new(),
            touched,
        }
    }
}

/// Entries that each live until a deadline, at most `capacity` of them. Past the capacity, a
/// new entry is not kept (after a sweep of the expired ones, at most every
/// [`SWEEP_INTERVAL`]): what is cached is bounded whatever the traffic, and nothing cached is
/// ever served past its deadline.
pub(super) struct TtlMap<V> {
    entries: HashMap<Box<str>, (Instant, V)>,
    capacity: usize,
    next_sweep: Option<Instant>,
}

impl<V> TtlMap<V> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            next_sweep: None,
        }
    }

    /// The entry of `key`, if it lives at `now`.
    pub(super) fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(until, _)| *until > now)
            .map(|(_, value)| value)
    }

    /// Keeps `value` for `key` until `until`, unless the map is full of live entries. Whether
    /// it was kept.
    pub(super) fn insert(&mut self, key: &str, value: V, until: Instant, now: Instant) -> bool {
        if until <= now || self.capacity == 0 {
            return false;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            if self.next_sweep.is_none_or(|at| now >= at) {
                self.entries.retain(|_, (until, _)| *until > now);
                self.next_sweep = Some(now + SWEEP_INTERVAL);
            }
            if self.entries.len() >= self.capacity {
                return false;
            }
        }
        self.entries.insert(key.into(), (until, value));
        true
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops every entry `drop` picks.
    pub(super) fn remove_where(&mut self, mut drop: impl FnMut(&V) -> bool) {
        self.entries.retain(|_, (_, value)| !drop(value));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Both maps, under one lock (a request reads both at most once).
pub(super) struct Cache {
    /// Keys read from the store, by prefix.
    pub(super) known: TtlMap<Arc<Known>>,
    /// Prefixes the store did not know.
    pub(super) unknown: TtlMap<()>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_until_their_deadline_and_never_past_the_capacity() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(2);
        assert!(map.insert("a", 1, t0 + Duration::from_secs(1), t0));
        assert!(!map.insert("late", 0, t0, t0), "already dead");
        assert_eq!(map.get("a", t0), Some(&1));
        assert_eq!(map.get("a", t0 + Duration::from_secs(1)), None, "strict");
        assert!(map.insert("b", 2, t0 + Duration::from_secs(1), t0));
        assert!(!map.insert("c", 3, t0 + Duration::from_secs(1), t0), "full");
        assert!(
            map.insert("a", 4, t0 + Duration::from_secs(2), t0),
            "replacing fits"
        );
        assert_eq!(map.get("a", t0), Some(&4));
        // Once entries expire, a sweep makes room (at most every SWEEP_INTERVAL).
        let later = t0 + Duration::from_millis(1500);
        assert!(map.insert("c", 3, later + Duration::from_secs(1), later));
        assert_eq!(map.len(), 2, "b was swept");
        assert!(!map.insert("d", 5, later + Duration::from_secs(1), later));
        map.remove_where(|v| *v == 4);
        assert!(map.insert("d", 5, later + Duration::from_secs(1), later));
        let mut none = TtlMap::new(0);
        assert!(!none.insert("a", 1, t0 + Duration::from_secs(1), t0));
    }

    #[test]
    fn a_flood_of_keys_stays_within_the_capacity() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(1000);
        for n in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(n) * 50);
            map.insert(&n.to_string(), (), now + Duration::from_secs(1), now);
            assert!(map.len() <= 1000);
        }
    }
}
