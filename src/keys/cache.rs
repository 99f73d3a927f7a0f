//! Keys that recently authenticated, kept in memory so that a poll does not read the
//! key table.
//!
//! A revocation through this process (the admin API) forgets the key at once. One made
//! elsewhere (the CLI, another replica) is seen when the entry is older than [`KEY_TTL`]
//! and the key is read again, so a revoked key stops working within that time
//! everywhere. Unknown keys are never cached: guesses cannot fill the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ApiKey;

/// How long an authenticated key is trusted without reading the store again.
pub const KEY_TTL: Duration = Duration::from_secs(1);

/// Most keys held; beyond it the cache starts over (a deployment has far fewer keys).
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    /// By the SHA-256 of the secret: the key and when it was read.
    entries: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
    /// Bumped by every revocation here, so a read that raced one is not kept.
    revocations: std::sync::atomic::AtomicU64,
}

impl KeyCache {
    /// The active key with this hash, if it was read less than [`KEY_TTL`] ago.
    pub fn get(&self, hash: &[u8; 32]) -> Option<ApiKey> {
        let entries = self.entries.lock().expect("key cache");
        entries.get(hash).filter(|(_, at)| at.elapsed() < KEY_TTL).map(|(key, _)| key.clone())
    }

    /// Where revocations stand; take it before reading a key from the store and hand it to [`Self::put`].
    pub fn generation(&self) -> u64 {
        self.revocations.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Remembers a key just read from the store as active, unless a key was revoked here
    /// since the read began (`generation`).
    pub fn put(&self, hash: [u8; 32], key: &ApiKey, generation: u64) {
        let mut entries = self.entries.lock().expect("key cache");
        if self.generation() != generation {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(&hash) {
            entries.retain(|_, (_, at)| at.elapsed() < KEY_TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(hash, (key.clone(), Instant::now()));
    }

    /// Forgets a key (it was revoked here).
    pub fn forget(&self, key_id: &str) {
        let mut entries = self.entries.lock().expect("key cache");
        self.revocations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.retain(|_, (key, _)| key.id != key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::model::{Model, Tier};

    fn key(id: &str) -> ApiKey {
        let mut issued = super::super::issue(id, vec![Tier::Relax], Model::ALL.to_vec());
        issued.key.id = id.to_string();
        issued.key
    }

    #[test]
    fn a_cached_key_is_served_until_forgotten() {
        let cache = KeyCache::default();
        assert_eq!(cache.get(&[1; 32]), None);
        cache.put([1; 32], &key("a"), cache.generation());
        cache.put([2; 32], &key("b"), cache.generation());
        assert_eq!(cache.get(&[1; 32]).map(|k| k.id), Some("a".to_string()));
        cache.forget("a");
        assert_eq!(cache.get(&[1; 32]), None, "a forgotten key must be read again");
        assert!(cache.get(&[2; 32]).is_some(), "forgetting one key keeps the others");
    }

    #[test]
    fn a_read_that_raced_a_revocation_is_not_kept() {
        let cache = KeyCache::default();
        let before = cache.generation();
        // The key was read as active, then revoked here before the reader kept it.
        cache.forget("a");
        cache.put([3; 32], &key("a"), before);
        assert_eq!(cache.get(&[3; 32]), None);
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_not_served() {
        let cache = KeyCache::default();
        cache.put([7; 32], &key("a"), cache.generation());
        cache.entries.lock().unwrap().get_mut(&[7; 32]).unwrap().1 = Instant::now() - KEY_TTL;
        assert_eq!(cache.get(&[7; 32]), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = KeyCache::default();
        for i in 0..CAPACITY + 10 {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(hash, &key("a"), cache.generation());
        }
        assert!(cache.entries.lock().unwrap().len() <= CAPACITY);
    }
}
