//! Values read from the database, kept while the database's generation does not move
//! (every write job other than bookkeeping moves it, after its commit) and for a bounded
//! time. Read the generation before reading the value, and store the value under it.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct GenerationCache<K, V> {
    entries: Mutex<HashMap<K, (u64, Instant, V)>>,
    ttl: Duration,
    max: usize,
}

impl<K: Eq + Hash, V: Clone> GenerationCache<K, V> {
    /// Entries live `ttl` at most; past `max` entries the cache starts over (keys may
    /// come from clients).
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max,
        }
    }

    pub fn get(&self, key: &K, generation: u64) -> Option<V> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(g, at, _)| *g == generation && at.elapsed() < self.ttl)
            .map(|(_, _, v)| v.clone())
    }

    pub fn put(&self, key: K, generation: u64, value: V) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of an older generation are useless: drop them all at once.
        if map.len() >= self.max || map.values().next().is_some_and(|(g, ..)| *g != generation) {
            map.clear();
        }
        map.insert(key, (generation, Instant::now(), value));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_only_for_its_generation_its_time_and_within_the_bound() {
        let c: GenerationCache<&str, u32> = GenerationCache::new(Duration::from_secs(60), 3);
        c.put("a", 1, 10);
        assert_eq!(c.get(&"a", 1), Some(10));
        assert_eq!(c.get(&"a", 2), None);
        assert_eq!(c.get(&"b", 1), None);
        c.put("b", 2, 20);
        assert_eq!(c.len(), 1, "entries of generation 1 were dropped");
        for (i, k) in ["c", "d", "e", "f"].into_iter().enumerate() {
            c.put(k, 2, i as u32);
        }
        assert!(c.len() <= 3);
        let short: GenerationCache<&str, u32> = GenerationCache::new(Duration::ZERO, 3);
        short.put("a", 1, 10);
        assert_eq!(short.get(&"a", 1), None, "expired");
    }
}
