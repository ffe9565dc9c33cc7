//! Request coalescing: concurrent callers asking for the same key share one
//! execution of the work.
//!
//! The first caller for a key becomes the *leader*: it registers a flight (a
//! `tokio::sync::watch` channel) and runs its closure itself, in its own
//! (the caller's) task: nothing is spawned. Callers
//! arriving while the flight is open are *followers*: they wait on the channel
//! and receive a clone of the leader's value. The flight is removed as soon as
//! the leader finishes, so a later caller runs the work again (this is
//! coalescing, not caching).
//!
//! Invariant: nobody waits forever on a leader that will never answer. If the
//! leader's future is dropped (cancelled, timed out, its task aborted) or its
//! closure panics, its guard removes the flight and closes the channel; every
//! follower wakes, and the first to re-register becomes the new leader and
//! runs its *own* closure, the others follow it.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::watch;

struct Flight<V> {
    id: u64,
    rx: watch::Receiver<Option<V>>,
}

/// Coalesces concurrent executions per key. See the module documentation.
pub struct SingleFlight<K, V> {
    flights: DashMap<K, Flight<V>>,
    next_id: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight::new()
    }
}

/// Held by a leader while its closure runs. Dropping it (normally, on
/// cancellation or on panic) removes the flight *before* the sender is
/// dropped, so woken followers never find the stale flight.
struct LeaderGuard<'a, K: Hash + Eq, V> {
    flights: &'a DashMap<K, Flight<V>>,
    key: K,
    id: u64,
    tx: watch::Sender<Option<V>>,
}

impl<K: Hash + Eq, V> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        self.flights.remove_if(&self.key, |_, f| f.id == self.id);
        // `tx` is dropped after this body: followers wake to a closed
        // channel (or to the value, when one was sent).
    }
}

impl<K: Hash + Eq, V: Clone> LeaderGuard<'_, K, V> {
    /// Ends the flight with `value`. The flight leaves the map first, so the
    /// number of followers is final (a caller arriving now starts a new
    /// flight) and the value is cloned only when someone waits for it.
    fn publish(self, value: V) -> V {
        drop(
            self.flights
                .remove_if(&self.key, |_, flight| flight.id == self.id),
        );
        if self.tx.receiver_count() > 0 {
            self.tx.send_replace(Some(value.clone()));
        }
        value
    }
}

enum Role<V> {
    Leader(u64, watch::Sender<Option<V>>),
    Follower(watch::Receiver<Option<V>>),
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// An empty coalescer.
    pub fn new() -> SingleFlight<K, V> {
        SingleFlight {
            flights: DashMap::new(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Number of keys with work in progress.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// Runs `f` for `key`, unless a call for the same key is already running,
    /// in which case this waits for that call's value instead. `f` runs in the
    /// caller's task; it is called at most once per `run`, and not at all
    /// when another caller's execution delivers the value.
    pub async fn run<F, Fut>(&self, key: K, f: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        loop {
            let role = match self.flights.entry(key.clone()) {
                Entry::Occupied(e) => Role::Follower(e.get().rx.clone()),
                Entry::Vacant(e) => {
                    let id = self.next_id.fetch_add(1, Relaxed);
                    let (tx, rx) = watch::channel(None);
                    e.insert(Flight { id, rx });
                    Role::Leader(id, tx)
                }
            };
            match role {
                Role::Leader(id, tx) => {
                    let guard = LeaderGuard {
                        flights: &self.flights,
                        key,
                        id,
                        tx,
                    };
                    let value = f().await;
                    return guard.publish(value);
                }
                Role::Follower(mut rx) => {
                    if let Ok(value) = rx.wait_for(Option::is_some).await
                        && let Some(value) = value.as_ref()
                    {
                        return value.clone();
                    }
                    // The leader went away without a value: take over.
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_execution() {
        let sf = Arc::new(SingleFlight::<String, u64>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (sf, calls) = (Arc::clone(&sf), Arc::clone(&calls));
                tokio::spawn(async move {
                    sf.run("same".to_string(), || async {
                        calls.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        42
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(sf.in_flight(), 0);

        // Finished flights are gone: the next call runs again.
        assert_eq!(sf.run("same".into(), || async { 7 }).await, 7);
    }

    /// A value that counts its clones.
    struct Counted(Arc<AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Relaxed);
            Counted(Arc::clone(&self.0))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_value_is_cloned_only_for_followers() {
        let clones = Arc::new(AtomicUsize::new(0));
        let sf = Arc::new(SingleFlight::<u32, Counted>::new());
        sf.run(1, || async { Counted(Arc::clone(&clones)) }).await;
        assert_eq!(clones.load(Relaxed), 0, "a lone leader keeps its value");

        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (sf, clones) = (Arc::clone(&sf), Arc::clone(&clones));
                tokio::spawn(async move {
                    sf.run(2, || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Counted(clones)
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // One clone into the channel, one out of it per follower.
        assert_eq!(clones.load(Relaxed), 3);
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_run_independently() {
        let sf = Arc::new(SingleFlight::<u32, u32>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let (sf, calls) = (Arc::clone(&sf), Arc::clone(&calls));
                tokio::spawn(async move {
                    sf.run(i % 5, || async move {
                        calls.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        i % 5
                    })
                    .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap() as usize, i % 5);
        }
        assert_eq!(calls.load(Relaxed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_does_not_strand_its_followers() {
        let sf = Arc::new(SingleFlight::<&'static str, u64>::new());
        let leader = {
            let sf = Arc::clone(&sf);
            tokio::spawn(async move {
                sf.run("k", || async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    1
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(sf.in_flight(), 1, "leader registered");

        let takeovers = Arc::new(AtomicUsize::new(0));
        let followers: Vec<_> = (0..10)
            .map(|_| {
                let (sf, takeovers) = (Arc::clone(&sf), Arc::clone(&takeovers));
                tokio::spawn(async move {
                    sf.run("k", || async {
                        takeovers.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        2
                    })
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(takeovers.load(Relaxed), 0, "followers wait for the leader");

        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        for f in followers {
            let got = tokio::time::timeout(Duration::from_secs(1), f).await;
            assert_eq!(got.expect("follower not stranded").unwrap(), 2);
        }
        assert_eq!(takeovers.load(Relaxed), 1, "one follower took over for all");
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_leader_does_not_strand_its_followers() {
        let sf = Arc::new(SingleFlight::<u8, u8>::new());
        let leader = {
            let sf = Arc::clone(&sf);
            tokio::spawn(async move {
                sf.run(1, || async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    panic!("provider bug")
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        let follower = {
            let sf = Arc::clone(&sf);
            tokio::spawn(async move { sf.run(1, || async { 9 }).await })
        };
        assert!(leader.await.unwrap_err().is_panic());
        assert_eq!(follower.await.unwrap(), 9);
        assert_eq!(sf.in_flight(), 0);
    }
}
