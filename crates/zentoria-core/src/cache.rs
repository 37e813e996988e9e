//! Small caches for hot lookups: [`TtlCache`], time-bounded (API keys, session liveness:
//! entries expire after a TTL and can be dropped at once, which is how revocation takes effect
//! immediately), and [`OnceMap`], values made once per key and kept (metric series).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Values made once per key and kept for the map's life. Readers share a lock; a missing key
/// is made under the write lock, so each is made once however many ask at the same time.
pub struct OnceMap<K, V> {
    inner: RwLock<HashMap<K, V>>,
}

impl<K, V> Default for OnceMap<K, V> {
    fn default() -> Self {
        OnceMap {
            inner: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> OnceMap<K, V> {
    /// The value of `key`, made by `make` the first time it is asked for.
    pub fn get_or_make<Q>(&self, key: &Q, make: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(v) = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return v.clone();
        }
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert_with(make)
            .clone()
    }
}

pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity,
            inner: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((v, at)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, (value, Instant::now()));
    }

    pub fn remove(&self, key: &K) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_map_makes_each_value_once_even_when_asked_at_once() {
        let map: OnceMap<String, usize> = OnceMap::default();
        let made = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for key in ["a", "b", "a"] {
                        let v = map.get_or_make(key, || {
                            made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            key.len() * 10
                        });
                        assert_eq!(v, 10);
                    }
                });
            }
        });
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(map.get_or_make("a", || unreachable!()), 10);
    }

    #[test]
    fn entries_expire_and_can_be_removed() {
        let c = TtlCache::new(Duration::from_millis(30), 10);
        c.insert("a", 1);
        assert_eq!(c.get(&"a"), Some(1));
        c.remove(&"a");
        assert_eq!(c.get(&"a"), None);
        c.insert("b", 2);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&"b"), None);
    }

    #[test]
    fn capacity_is_bounded() {
        let c = TtlCache::new(Duration::from_secs(60), 4);
        for i in 0..100 {
            c.insert(i, i);
        }
        assert!(c.inner.lock().unwrap().len() <= 4);
    }
}
