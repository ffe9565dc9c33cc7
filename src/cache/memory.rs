//! The in-process tier: a sharded LRU bounded by entries *and* bytes, with a
//! TTL per entry.
//!
//! Keys are spread over up to 16 shards, each a `Mutex` around a hash map and
//! an index-linked recency list (O(1) get, insert, remove). A get locks one
//! shard for a map lookup and a relink — no global lock, no allocation — so
//! many tasks can read at once. The bounds are global: atomic counters track
//! entries and bytes across shards, and an insert that pushes a counter over
//! its bound evicts least-recently-used entries (from its own shard first,
//! then from the others in turn) until both fit. Recency is exact within a
//! shard and approximate across shards; small tiers (< 512 entries) use one
//! shard and are exactly LRU. Counters change while the shard lock is held,
//! so an entry's add always precedes its removal's subtract.
//!
//! Expiry uses `tokio::time::Instant` stored in each entry, so it follows
//! tokio's clock (paused and advanced in tests). An expired entry is dropped
//! when a get finds it, or evicted like any other entry; it is never served.
//! Sizes are estimates: the value's text bytes ([`CachedAnswer::heap_bytes`])
//! + key length + [`ENTRY_OVERHEAD`].

use super::codec::CachedAnswer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Bytes added to every entry's estimated size for the slot, the map entry
/// and the value's allocations.
pub const ENTRY_OVERHEAD: u64 = 192;

const MAX_SHARDS: u64 = 16;
const ENTRIES_PER_SHARD: u64 = 512;
const NIL: usize = usize::MAX;

/// Estimated memory footprint of one entry.
pub fn entry_size(key: &str, value: &CachedAnswer) -> u64 {
    key.len() as u64 + value.heap_bytes() as u64 + ENTRY_OVERHEAD
}

/// Point-in-time view of the memory tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemoryStats {
    /// Entries held (expired ones included until they are found or evicted).
    pub entries: u64,
    /// Estimated bytes held.
    pub bytes: u64,
    /// The entry bound.
    pub max_entries: u64,
    /// The byte bound.
    pub max_bytes: u64,
    /// Entries removed to respect a bound.
    pub evictions: u64,
    /// Entries dropped because their TTL had passed.
    pub expirations: u64,
}

struct Slot {
    key: Arc<str>,
    value: Arc<CachedAnswer>,
    size: u64,
    expires_at: Instant,
    prev: usize,
    next: usize,
}

/// One shard: a map from key to slot and a recency list (`head` = most
/// recently used, `tail` = least).
struct Shard {
    map: HashMap<Arc<str>, usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    fn slot(&self, idx: usize) -> Option<&Slot> {
        self.slots.get(idx).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, idx: usize) -> Option<&mut Slot> {
        self.slots.get_mut(idx).and_then(Option::as_mut)
    }

    fn unlink(&mut self, idx: usize) {
        let Some((prev, next)) = self.slot(idx).map(|s| (s.prev, s.next)) else {
            return;
        };
        match self.slot_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slot_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, idx: usize) {
        let old_head = self.head;
        if let Some(s) = self.slot_mut(idx) {
            s.prev = NIL;
            s.next = old_head;
        }
        match self.slot_mut(old_head) {
            Some(h) => h.prev = idx,
            None => self.tail = idx,
        }
        self.head = idx;
    }

    /// Removes slot `idx`; returns its size.
    fn remove_idx(&mut self, idx: usize) -> Option<u64> {
        self.unlink(idx);
        let slot = self.slots.get_mut(idx)?.take()?;
        self.map.remove(&slot.key);
        self.free.push(idx);
        Some(slot.size)
    }

    fn clear(&mut self) -> (u64, u64) {
        let n = self.map.len() as u64;
        let bytes = self.slots.iter().flatten().map(|s| s.size).sum();
        *self = Shard::new();
        (n, bytes)
    }
}

/// The memory tier.
pub struct MemoryTier {
    shards: Box<[Mutex<Shard>]>,
    max_entries: u64,
    max_bytes: u64,
    entries: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    next_victim: AtomicUsize,
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave a half-linked list
    // that breaks memory safety; keep serving rather than poisoning forever.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryTier {
    /// A tier holding at most `max_entries` entries and `max_bytes`
    /// estimated bytes; either bound at 0 disables the tier.
    pub fn new(max_entries: u64, max_bytes: u64) -> MemoryTier {
        let shards = (max_entries / ENTRIES_PER_SHARD)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two();
        let shards = usize::try_from(shards.min(MAX_SHARDS)).unwrap_or(1);
        MemoryTier {
            shards: (0..shards).map(|_| Mutex::new(Shard::new())).collect(),
            max_entries,
            max_bytes,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            next_victim: AtomicUsize::new(0),
        }
    }

    /// False when a bound is 0: gets miss and inserts are dropped.
    pub fn is_enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    fn shard_index(&self, key: &str) -> usize {
        // Cache keys end in SHA-256 hex: the tail is already uniform, so a
        // tiny FNV-1a over the last bytes is enough and costs nothing.
        let bytes = key.as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in tail {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h as usize) & (self.shards.len() - 1)
    }

    fn shard(&self, idx: usize) -> MutexGuard<'_, Shard> {
        lock(&self.shards[idx % self.shards.len()])
    }

    /// The live value under `key`, marking it most recently used. An expired
    /// entry is removed and reported as a miss.
    pub fn get(&self, key: &str) -> Option<Arc<CachedAnswer>> {
        if !self.is_enabled() {
            return None;
        }
        let mut shard = self.shard(self.shard_index(key));
        let idx = *shard.map.get(key)?;
        let slot = shard.slot(idx)?;
        if slot.expires_at <= Instant::now() {
            // Counters change under the shard lock, so an entry's add
            // always precedes its removal's subtract (no transient wrap).
            if let Some(size) = shard.remove_idx(idx) {
                self.entries.fetch_sub(1, Relaxed);
                self.bytes.fetch_sub(size, Relaxed);
                self.expirations.fetch_add(1, Relaxed);
            }
            return None;
        }
        let value = Arc::clone(&slot.value);
        if shard.head != idx {
            shard.unlink(idx);
            shard.push_front(idx);
        }
        Some(value)
    }

    /// Time left before `key` expires, if it is held and live.
    #[cfg(test)]
    pub fn remaining_ttl(&self, key: &str) -> Option<Duration> {
        let shard = self.shard(self.shard_index(key));
        let idx = *shard.map.get(key)?;
        let left = shard
            .slot(idx)?
            .expires_at
            .checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some(left)
    }

    /// Stores `value` under `key` for `ttl`, replacing any previous value,
    /// then evicts until both bounds hold. Returns false (and stores
    /// nothing) when the tier is disabled, `ttl` is zero or the entry alone
    /// exceeds the byte bound.
    pub fn insert(&self, key: &str, value: Arc<CachedAnswer>, size: u64, ttl: Duration) -> bool {
        if !self.is_enabled() || ttl.is_zero() || size > self.max_bytes {
            return false;
        }
        let expires_at = Instant::now() + ttl;
        let home = self.shard_index(key);
        {
            let mut shard = self.shard(home);
            if let Some(&idx) = shard.map.get(key) {
                let mut old_size = 0;
                if let Some(slot) = shard.slot_mut(idx) {
                    old_size = slot.size;
                    slot.value = value;
                    slot.size = size;
                    slot.expires_at = expires_at;
                }
                shard.unlink(idx);
                shard.push_front(idx);
                self.bytes.fetch_add(size, Relaxed);
                self.bytes.fetch_sub(old_size, Relaxed);
            } else {
                let key: Arc<str> = Arc::from(key);
                let slot = Slot {
                    key: Arc::clone(&key),
                    value,
                    size,
                    expires_at,
                    prev: NIL,
                    next: NIL,
                };
                let idx = match shard.free.pop() {
                    Some(idx) => {
                        shard.slots[idx] = Some(slot);
                        idx
                    }
                    None => {
                        shard.slots.push(Some(slot));
                        shard.slots.len() - 1
                    }
                };
                shard.map.insert(key, idx);
                shard.push_front(idx);
                self.entries.fetch_add(1, Relaxed);
                self.bytes.fetch_add(size, Relaxed);
            }
        }
        self.enforce_bounds(home);
        true
    }

    fn over_bounds(&self) -> bool {
        self.entries.load(Relaxed) > self.max_entries || self.bytes.load(Relaxed) > self.max_bytes
    }

    /// Evicts LRU entries until both bounds hold: from `home` while it has
    /// more than the entry just inserted, then from the other shards in turn.
    fn enforce_bounds(&self, home: usize) {
        let n = self.shards.len();
        let mut fruitless = 0;
        while self.over_bounds() && fruitless <= n {
            let victim_shard = {
                let shard = self.shard(home);
                if shard.map.len() > 1 {
                    home
                } else {
                    drop(shard);
                    self.next_victim.fetch_add(1, Relaxed) % n
                }
            };
            let mut shard = self.shard(victim_shard);
            let min_len = if victim_shard == home { 2 } else { 1 };
            let tail = shard.tail;
            let evicted = if shard.map.len() >= min_len && tail != NIL {
                shard.remove_idx(tail)
            } else {
                None
            };
            match evicted {
                Some(size) => {
                    fruitless = 0;
                    self.entries.fetch_sub(1, Relaxed);
                    self.bytes.fetch_sub(size, Relaxed);
                    self.evictions.fetch_add(1, Relaxed);
                }
                None => fruitless += 1,
            }
        }
    }

    /// Removes every entry whose key satisfies `matches`; returns how many.
    pub fn remove_matching(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let victims: Vec<usize> = shard
                .map
                .iter()
                .filter(|(k, _)| matches(k))
                .map(|(_, &idx)| idx)
                .collect();
            let mut bytes = 0;
            for idx in &victims {
                bytes += shard.remove_idx(*idx).unwrap_or(0);
            }
            removed += victims.len() as u64;
            self.entries.fetch_sub(victims.len() as u64, Relaxed);
            self.bytes.fetch_sub(bytes, Relaxed);
        }
        removed
    }

    /// Removes everything; returns how many entries there were.
    pub fn clear(&self) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let (n, bytes) = shard.clear();
            removed += n;
            self.entries.fetch_sub(n, Relaxed);
            self.bytes.fetch_sub(bytes, Relaxed);
        }
        removed
    }

    /// Counters and bounds.
    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            entries: self.entries.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            evictions: self.evictions.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobOutput;

    fn value(text: &str) -> Arc<CachedAnswer> {
        Arc::new(CachedAnswer {
            output: JobOutput::Summary { text: text.into() },
            provider: "local".into(),
            model: "m".into(),
            stored_at_unix_ms: 0,
        })
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn get_returns_what_was_inserted_and_replaces() {
        let m = MemoryTier::new(10, 1 << 20);
        assert!(m.get("a").is_none());
        assert!(m.insert("a", value("one"), 100, HOUR));
        assert_eq!(m.get("a").unwrap().output, value("one").output);
        assert!(m.insert("a", value("two"), 300, HOUR));
        assert_eq!(m.get("a").unwrap().output, value("two").output);
        let s = m.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (1, 300, 0));
    }

    #[tokio::test]
    async fn entry_bound_evicts_least_recently_used() {
        let m = MemoryTier::new(3, 1 << 20);
        for k in ["a", "b", "c"] {
            m.insert(k, value(k), 10, HOUR);
        }
        m.get("a"); // b is now the least recently used
        m.insert("d", value("d"), 10, HOUR);
        assert!(m.get("b").is_none());
        for k in ["a", "c", "d"] {
            assert!(m.get(k).is_some(), "{k}");
        }
        for i in 0..10 {
            m.insert(&format!("x{i}"), value("x"), 10, HOUR);
        }
        let s = m.stats();
        assert_eq!(s.entries, 3);
        assert_eq!(s.evictions, 11);
        assert_eq!(s.bytes, 30);
    }

    #[tokio::test]
    async fn byte_bound_evicts() {
        let m = MemoryTier::new(1000, 1000);
        for i in 0..4 {
            assert!(m.insert(&format!("k{i}"), value("v"), 300, HOUR));
        }
        let s = m.stats();
        assert_eq!(s.entries, 3, "4 x 300 > 1000");
        assert_eq!(s.bytes, 900);
        assert_eq!(s.evictions, 1);
        assert!(m.get("k0").is_none());
        assert!(
            !m.insert("huge", value("v"), 1001, HOUR),
            "larger than the whole tier"
        );
        assert!(m.insert("big", value("v"), 1000, HOUR));
        let s = m.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (1, 1000, 4));
    }

    #[tokio::test]
    async fn sharded_tier_respects_global_bounds() {
        let m = MemoryTier::new(2048, 1 << 30);
        assert!(m.shards.len() > 1);
        for i in 0..5000 {
            m.insert(&format!("key-{i:05}"), value("v"), 10, HOUR);
        }
        let s = m.stats();
        assert_eq!(s.entries, 2048);
        assert_eq!(s.evictions, 5000 - 2048);
        assert_eq!(s.bytes, 2048 * 10);
        let live = (0..5000)
            .filter(|i| m.get(&format!("key-{i:05}")).is_some())
            .count();
        assert_eq!(live, 2048);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_tokio_time() {
        let m = MemoryTier::new(10, 1 << 20);
        m.insert("short", value("s"), 10, Duration::from_secs(10));
        m.insert("long", value("l"), 10, Duration::from_secs(100));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(m.get("short").is_some());
        assert_eq!(m.remaining_ttl("long"), Some(Duration::from_secs(91)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(m.get("short").is_none());
        assert!(m.get("long").is_some());
        let s = m.stats();
        assert_eq!((s.entries, s.expirations), (1, 1));
    }

    #[tokio::test]
    async fn remove_matching_and_clear() {
        let m = MemoryTier::new(100, 1 << 20);
        for i in 0..10 {
            m.insert(&format!("a:{i}"), value("v"), 10, HOUR);
            m.insert(&format!("b:{i}"), value("v"), 10, HOUR);
        }
        assert_eq!(m.remove_matching(|k| k.starts_with("a:")), 10);
        assert!(m.get("a:1").is_none() && m.get("b:1").is_some());
        assert_eq!(m.stats().entries, 10);
        // Freed slots are reused.
        m.insert("c", value("v"), 10, HOUR);
        assert!(m.get("c").is_some());
        assert_eq!(m.clear(), 11);
        let s = m.stats();
        assert_eq!((s.entries, s.bytes), (0, 0));
        assert!(m.get("b:1").is_none());
    }

    #[tokio::test]
    async fn zero_bounds_disable_the_tier() {
        let m = MemoryTier::new(0, 1 << 20);
        assert!(!m.insert("a", value("v"), 10, HOUR));
        assert!(m.get("a").is_none());
    }
}
