//! The in-process backend: sharded, bounded, exact.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault, Hasher},
    sync::Mutex,
    time::Instant,
};

use super::{Decision, Quota, RateLimitStore, StoreError, StoreFuture};

const SHARDS: usize = 64;

/// One timestamp per key in 64 independently locked shards (no global lock on the hot path).
///
/// Keys are stored as 64-bit hashes under a per-process random hasher, so a key costs about 20
/// bytes whatever its length. The store holds at most `capacity` keys: when a shard is full it
/// first drops keys whose quota is whole again (forgetting those changes nothing), then evicts
/// the key with the least debt among a few sampled — a client at its limit carries the most
/// debt, so flooding the store with new keys cannot reset an attacker's own count.
#[derive(Debug)]
pub struct MemoryRateLimitStore {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    per_shard: usize,
    origin: Instant,
}

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<u64, i64, BuildHasherDefault<KeyHash>>,
    last_sweep_us: i64,
}

/// The tables' hasher: their keys are already outputs of the store's randomly keyed SipHash, so
/// hashing them a second time (once to look up, once to insert) would add nothing but cost.
#[derive(Debug, Default)]
struct KeyHash(u64);

impl Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here (`write_u64`); any other input is still spread.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

impl Default for MemoryRateLimitStore {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl MemoryRateLimitStore {
    /// Default number of keys held: about 36 MB of tables at most (64 shards of 32 768 buckets
    /// of 17 bytes; the server's `rate_limits` tests measure the RSS growth, about 38 MiB).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// A store holding at most about `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(8);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            per_shard,
            origin: Instant::now(),
        }
    }

    fn now_us(&self) -> i64 {
        // Monotonic: a wall-clock jump cannot reset or freeze limits.
        i64::try_from(self.origin.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.tats.len()).unwrap_or(0))
            .sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_now(&self, key: &str, quota: &Quota, now: i64) -> Result<Decision, StoreError> {
        let hash = self.hasher.hash_one(key);
        // The shard comes from bits 32-37: a shard's table indexes by the low bits and tags by
        // the top seven, which must stay as spread within a shard as they are overall.
        let index = usize::try_from((hash >> 32) % SHARDS as u64).unwrap_or(0);
        let mut shard = self.shards[index]
            .lock()
            .map_err(|_| StoreError::new("poisoned lock"))?;
        let tat = shard.tats.get(&hash).copied();
        let (decision, new_tat) = quota.gcra(tat, now);
        if let Some(new_tat) = new_tat {
            if tat.is_none() && shard.tats.len() >= self.per_shard {
                shard.make_room(now, self.per_shard);
            }
            shard.tats.insert(hash, new_tat);
        }
        Ok(decision)
    }
}

impl Shard {
    fn make_room(&mut self, now: i64, capacity: usize) {
        // A full sweep at most once a second per shard keeps a flood from costing O(n) each.
        if now - self.last_sweep_us > 1_000_000 {
            self.tats.retain(|_, tat| *tat > now);
            self.last_sweep_us = now;
        }
        if self.tats.len() >= capacity {
            let victim = self
                .tats
                .iter()
                .take(8)
                .min_by_key(|(_, tat)| **tat)
                .map(|(k, _)| *k);
            if let Some(victim) = victim {
                self.tats.remove(&victim);
            }
        }
    }
}

impl RateLimitStore for MemoryRateLimitStore {
    fn check<'a>(&'a self, key: &'a str, quota: &'a Quota) -> StoreFuture<'a, Decision> {
        let result = self.check_now(key, quota, self.now_us());
        Box::pin(async move { result })
    }

    fn check_at_once(&self, key: &str, quota: &Quota) -> Option<Result<Decision, StoreError>> {
        Some(self.check_now(key, quota, self.now_us()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn memory_stays_bounded_and_a_limited_key_survives_a_flood() {
        let store = MemoryRateLimitStore::with_capacity(6_400);
        let quota: Quota = "5/minute".parse().unwrap();
        let now = 1_000_000;
        for _ in 0..5 {
            assert!(store.check_now("attacker", &quota, now).unwrap().allowed);
        }
        assert!(!store.check_now("attacker", &quota, now).unwrap().allowed);
        for i in 0..200_000 {
            let _ = store.check_now(&format!("spoofed-{i}"), &quota, now + 1);
        }
        assert!(store.len() <= 6_400 + SHARDS, "bounded: {}", store.len());
        assert!(
            !store
                .check_now("attacker", &quota, now + 2)
                .unwrap()
                .allowed,
            "the attacker's own count was not reset by the flood"
        );
    }
}
