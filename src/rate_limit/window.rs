//! The counting algorithm: bucketed sliding windows with conservative
//! counting, as pure logic over a millisecond clock value (no I/O, no clock
//! of its own, so every property is testable with plain numbers).
//!
//! Each window (burst second, minute, hour, day) is split into buckets
//! (60 per window; 10 × 100 ms for the burst second). At time `now` the count
//! of a window is the sum of every bucket that overlaps `[now − length, now]`,
//! **including the whole oldest, partially overlapping bucket**. That
//! over-counts a little, and that is the point: any request at time `r ≥
//! now − length` sits in one of the counted buckets, so admitting a request
//! only when `count + cost ≤ limit` guarantees that no real sliding window of
//! that length ever holds more than `limit` (proof: take the last admission
//! `t` inside any window `[s, s + length]`; every earlier admission in it is
//! at `≥ s ≥ t − length`, hence was counted at `t`). A request is admitted
//! only when **every** window has room, and then its cost is added to the
//! current bucket of every window (all-or-nothing). The Redis Lua script in
//! `redis_backend.rs` implements exactly the same rules; keep them in step.

use std::collections::VecDeque;

/// One of the four sliding windows a limit can apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// One second, counted in 10 buckets of 100 ms (`RATE_LIMIT_BURST`).
    Burst,
    /// One minute, counted in 60 buckets of 1 s.
    Minute,
    /// One hour, counted in 60 buckets of 1 min.
    Hour,
    /// One day, counted in 60 buckets of 24 min.
    Day,
}

impl Window {
    /// All windows, shortest first (also their index order in state arrays).
    pub const ALL: [Window; 4] = [Window::Burst, Window::Minute, Window::Hour, Window::Day];

    /// Length of the window in milliseconds.
    pub const fn length_ms(self) -> u64 {
        match self {
            Window::Burst => 1_000,
            Window::Minute => 60_000,
            Window::Hour => 3_600_000,
            Window::Day => 86_400_000,
        }
    }

    /// Length of one bucket in milliseconds.
    pub const fn bucket_ms(self) -> u64 {
        match self {
            Window::Burst => 100,
            Window::Minute => 1_000,
            Window::Hour => 60_000,
            Window::Day => 1_440_000,
        }
    }

    /// Short name, used in Redis keys and operator output.
    pub const fn name(self) -> &'static str {
        match self {
            Window::Burst => "burst",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    /// Position in [`Window::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Window::Burst => 0,
            Window::Minute => 1,
            Window::Hour => 2,
            Window::Day => 3,
        }
    }

    /// Index of the oldest bucket still counted at `now_ms`.
    const fn first_counted_bucket(self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.length_ms()) / self.bucket_ms()
    }

    /// The instant (ms) at which bucket `index` stops being counted.
    const fn bucket_leaves_at(self, index: u64) -> u64 {
        (index + 1) * self.bucket_ms() + self.length_ms()
    }
}

/// A limit on one window: at most `limit` cost units in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    /// Which window.
    pub window: Window,
    /// Maximum cost units in any sliding window of that length (≥ 1).
    pub limit: u32,
}

/// The result of one check, in milliseconds (the facade turns it into a
/// `Decision` with whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request was admitted (and counted).
    pub allowed: bool,
    /// The limit of the tightest window (the one with the least remaining).
    pub limit: u32,
    /// Least remaining capacity over all windows, after this request.
    pub remaining: u32,
    /// Milliseconds until the tightest window's oldest counted bucket leaves
    /// it (0 when that window counts nothing).
    pub reset_ms: u64,
    /// When denied: milliseconds until every violated window has room for
    /// this cost, assuming no other traffic. A cost above a window's limit
    /// can never pass; it then reports the time until that window is empty.
    pub retry_after_ms: Option<u64>,
}

impl Outcome {
    /// The outcome when no window applies: always allowed, nothing counted.
    pub const UNLIMITED: Outcome = Outcome {
        allowed: true,
        limit: u32::MAX,
        remaining: u32::MAX,
        reset_ms: 0,
        retry_after_ms: None,
    };
}

/// The counted buckets of one window for one identity, oldest first. Only
/// non-empty buckets are stored, so an idle identity costs almost nothing
/// and a busy one at most 61 entries per window.
#[derive(Debug, Default, Clone)]
struct Counter {
    /// `(bucket index, count)`, strictly increasing by index.
    buckets: VecDeque<(u64, u32)>,
    /// Sum of `buckets` counts (kept so a check does not re-sum).
    total: u64,
}

impl Counter {
    /// Drops buckets that no longer overlap the window at `now_ms`.
    fn advance(&mut self, window: Window, now_ms: u64) {
        let first = window.first_counted_bucket(now_ms);
        while let Some(&(index, count)) = self.buckets.front() {
            if index >= first {
                break;
            }
            self.total -= u64::from(count);
            self.buckets.pop_front();
        }
    }

    /// Adds `cost` to the bucket containing `now_ms`.
    fn add(&mut self, window: Window, now_ms: u64, cost: u32) {
        let index = now_ms / window.bucket_ms();
        match self.buckets.back_mut() {
            // `>=`: the caller clamps time to be monotonic, so `>` cannot
            // happen; counting into the newest bucket is the safe choice.
            Some((last, count)) if *last >= index => *count = count.saturating_add(cost),
            _ => self.buckets.push_back((index, cost)),
        }
        self.total += u64::from(cost);
    }

    /// Milliseconds from `now_ms` until the oldest counted bucket leaves.
    fn reset_ms(&self, window: Window, now_ms: u64) -> u64 {
        self.buckets.front().map_or(0, |&(index, _)| {
            window.bucket_leaves_at(index).saturating_sub(now_ms)
        })
    }

    /// Milliseconds from `now_ms` until `total + cost ≤ limit` holds.
    fn wait_for_room_ms(&self, window: Window, now_ms: u64, limit: u32, cost: u32) -> u64 {
        let excess = (self.total + u64::from(cost)).saturating_sub(u64::from(limit));
        if excess == 0 {
            return 0;
        }
        let mut freed = 0u64;
        let mut last_leave = now_ms;
        for &(index, count) in &self.buckets {
            freed += u64::from(count);
            last_leave = window.bucket_leaves_at(index);
            if freed >= excess {
                break;
            }
        }
        // If `cost > limit` the loop drained everything without enough room:
        // report the time until the window is empty (the best there is).
        last_leave.saturating_sub(now_ms)
    }
}

/// The sliding-window state of one identity (for one limit scope).
#[derive(Debug, Default, Clone)]
pub struct WindowState {
    /// Indexed by [`Window::index`]; windows without a limit stay empty.
    counters: [Counter; 4],
    /// Latest time seen; time never goes backwards inside a state.
    last_ms: u64,
}

impl WindowState {
    /// A fresh state with nothing counted.
    pub fn new() -> WindowState {
        WindowState::default()
    }

    /// The latest time (ms) this state was checked at.
    pub fn last_seen_ms(&self) -> u64 {
        self.last_ms
    }

    /// Checks a request of `cost` units at `now_ms` against `limits` and, if
    /// every window has room, counts it in all of them.
    ///
    /// `limits` must name each window at most once. A `cost` of 0 is a
    /// probe: it reports the numbers and counts nothing.
    pub fn check(&mut self, limits: &[WindowLimit], now_ms: u64, cost: u32) -> Outcome {
        // A state may be fed a slightly older clock value (e.g. a caller that
        // read the clock before waiting for the lock): clamp, never rewind.
        let now = now_ms.max(self.last_ms);
        self.last_ms = now;
        if limits.is_empty() {
            return Outcome::UNLIMITED;
        }

        let mut allowed = true;
        for wl in limits {
            let counter = &mut self.counters[wl.window.index()];
            counter.advance(wl.window, now);
            if counter.total + u64::from(cost) > u64::from(wl.limit) {
                allowed = false;
            }
        }

        let mut retry_after_ms = None;
        if allowed {
            if cost > 0 {
                for wl in limits {
                    self.counters[wl.window.index()].add(wl.window, now, cost);
                }
            }
        } else {
            let wait = limits
                .iter()
                .map(|wl| {
                    self.counters[wl.window.index()]
                        .wait_for_room_ms(wl.window, now, wl.limit, cost)
                })
                .max()
                .unwrap_or(0);
            retry_after_ms = Some(wait);
        }

        // The tightest window: least remaining; on a tie the one whose
        // capacity comes back last, since `remaining` only rises when every
        // tied window has freed something.
        let mut tightest: Option<(u64, u64, u32)> = None; // (remaining, reset, limit)
        for wl in limits {
            let counter = &self.counters[wl.window.index()];
            let remaining = u64::from(wl.limit).saturating_sub(counter.total);
            let reset = counter.reset_ms(wl.window, now);
            let better = match tightest {
                None => true,
                Some((r, s, _)) => remaining < r || (remaining == r && reset > s),
            };
            if better {
                tightest = Some((remaining, reset, wl.limit));
            }
        }
        let (remaining, reset_ms, limit) = tightest.unwrap_or((u64::from(u32::MAX), 0, u32::MAX));
        Outcome {
            allowed,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_ms,
            retry_after_ms,
        }
    }

    /// True when nothing is counted any more at `now_ms` in any window, so
    /// the state can be dropped without changing any future decision.
    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.counters.iter().zip(Window::ALL).all(|(c, w)| {
            c.buckets
                .back()
                .is_none_or(|&(index, _)| index < w.first_counted_bucket(now_ms))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(window: Window, limit: u32) -> WindowLimit {
        WindowLimit { window, limit }
    }

    /// A tiny deterministic generator (no dependency needed).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// Max total cost inside any closed window `[s, s + len]` over sorted
    /// admissions `(time, cost)`.
    fn max_in_any_window(admitted: &[(u64, u32)], len: u64) -> u64 {
        let mut best = 0;
        let mut sum = 0u64;
        let mut lo = 0;
        for hi in 0..admitted.len() {
            sum += u64::from(admitted[hi].1);
            while admitted[hi].0 - admitted[lo].0 > len {
                sum -= u64::from(admitted[lo].1);
                lo += 1;
            }
            best = best.max(sum);
        }
        best
    }

    #[test]
    fn never_more_than_the_limit_in_any_sliding_window_under_random_arrivals() {
        let limits = [
            wl(Window::Burst, 7),
            wl(Window::Minute, 50),
            wl(Window::Hour, 400),
        ];
        for seed in 1..=20u64 {
            let mut rng = Lcg(seed);
            let mut state = WindowState::new();
            let mut now = rng.next() % 100_000;
            let mut admitted = Vec::new();
            let mut denied = 0;
            for _ in 0..5_000 {
                // Bursty arrivals: mostly close together, sometimes long gaps.
                now += match rng.next() % 10 {
                    0..=5 => rng.next() % 50,
                    6..=8 => rng.next() % 2_000,
                    _ => rng.next() % 120_000,
                };
                let cost = 1 + (rng.next() % 3) as u32;
                let outcome = state.check(&limits, now, cost);
                if outcome.allowed {
                    admitted.push((now, cost));
                } else {
                    denied += 1;
                    assert!(outcome.retry_after_ms.is_some_and(|r| r > 0));
                }
            }
            assert!(denied > 0, "seed {seed}: the test must exercise denials");
            for l in limits {
                let worst = max_in_any_window(&admitted, l.window.length_ms());
                assert!(
                    worst <= u64::from(l.limit),
                    "seed {seed}: {} window held {worst} > {}",
                    l.window.name(),
                    l.limit
                );
            }
        }
    }

    #[test]
    fn a_steady_client_gets_close_to_the_limit() {
        // Conservative counting must not be so conservative it starves
        // clients: one request every 100 ms against 60/min gets ≥ 55/min.
        let limits = [wl(Window::Minute, 60)];
        let mut state = WindowState::new();
        let mut allowed = 0;
        for i in 0..6_000u64 {
            if state.check(&limits, 1_000_000 + i * 100, 1).allowed {
                allowed += 1;
            }
        }
        // 10 minutes of traffic.
        assert!(allowed >= 550, "only {allowed} admitted in 10 minutes");
        assert!(allowed <= 600 + 60, "{allowed}");
    }

    #[test]
    fn cost_is_all_or_nothing_across_windows() {
        let limits = [wl(Window::Minute, 10), wl(Window::Hour, 12)];
        let mut state = WindowState::new();
        assert!(state.check(&limits, 0, 8).allowed);
        // 8 + 3 > 10 on the minute: denied, and nothing is counted anywhere.
        let denied = state.check(&limits, 10, 3);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 2);
        // Exactly filling the minute works, which proves the hour was not
        // charged by the denied request (8 + 2 = 10 ≤ 12).
        let ok = state.check(&limits, 20, 2);
        assert!(ok.allowed);
        assert_eq!(ok.remaining, 0);
        // Later the minute has room but the hour (10 of 12) only for 2.
        assert!(!state.check(&limits, 120_000, 3).allowed);
        let ok = state.check(&limits, 120_000, 2);
        assert!(ok.allowed);
        assert_eq!((ok.limit, ok.remaining), (12, 0));
    }

    #[test]
    fn a_probe_of_cost_zero_counts_nothing() {
        let limits = [wl(Window::Minute, 2)];
        let mut state = WindowState::new();
        for _ in 0..5 {
            let o = state.check(&limits, 5, 0);
            assert!(o.allowed);
            assert_eq!(o.remaining, 2);
        }
    }

    #[test]
    fn retry_after_is_enough_and_not_much_more() {
        let limits = [
            wl(Window::Burst, 3),
            wl(Window::Minute, 20),
            wl(Window::Hour, 100),
        ];
        let mut rng = Lcg(42);
        let mut state = WindowState::new();
        let mut now = 10_000;
        let mut checked = 0;
        for _ in 0..3_000 {
            now += rng.next() % 700;
            let cost = 1 + (rng.next() % 2) as u32;
            let o = state.check(&limits, now, cost);
            if let Some(wait) = o.retry_after_ms {
                assert!(!o.allowed);
                // One ms earlier is still too early (probe on a clone) ...
                if wait > 1 {
                    let mut early = state.clone();
                    assert!(
                        !early.check(&limits, now + wait - 1, cost).allowed,
                        "retry_after too long"
                    );
                }
                // ... and at `wait` it passes.
                let mut later = state.clone();
                assert!(
                    later.check(&limits, now + wait, cost).allowed,
                    "retry_after too short"
                );
                checked += 1;
            }
        }
        assert!(checked > 50, "{checked}");
    }

    #[test]
    fn the_tightest_window_decides_and_is_reported() {
        let limits = [
            wl(Window::Burst, 5),
            wl(Window::Minute, 8),
            wl(Window::Hour, 1000),
        ];
        let mut state = WindowState::new();
        let t0 = 3_600_000;
        for i in 0..5 {
            let o = state.check(&limits, t0 + i, 1);
            assert!(o.allowed);
            assert_eq!(o.limit, 5, "burst is tightest");
            assert_eq!(o.remaining, 4 - i as u32);
        }
        // Sixth in the same second: burst denies; waiting for the burst
        // bucket (at t0 → leaves at t0 + 1100) suffices.
        let o = state.check(&limits, t0 + 10, 1);
        assert!(!o.allowed);
        assert_eq!(o.limit, 5);
        assert_eq!(o.retry_after_ms, Some(1_100 - 10));
        // A second later: burst has room, minute has 3 left -> minute is tightest.
        let o = state.check(&limits, t0 + 1_500, 1);
        assert!(o.allowed);
        assert_eq!((o.limit, o.remaining), (8, 2));
        assert_eq!(
            o.reset_ms,
            61_000 - 1_500,
            "the minute's oldest bucket leaves at t0+61 s"
        );
        assert!(state.check(&limits, t0 + 2_500, 2).allowed);
        // Minute exhausted: retry when the first minute bucket leaves.
        let o = state.check(&limits, t0 + 3_000, 1);
        assert!(!o.allowed);
        assert_eq!(o.limit, 8);
        assert_eq!(o.retry_after_ms, Some(61_000 - 3_000));
    }

    #[test]
    fn the_window_slides() {
        let limits = [wl(Window::Minute, 3)];
        let mut state = WindowState::new();
        for t in [0, 20_000, 40_000] {
            assert!(state.check(&limits, t, 1).allowed);
        }
        assert!(!state.check(&limits, 59_000, 1).allowed);
        // The request at 0 (bucket 0) is counted up to 61 s, then leaves.
        assert!(!state.check(&limits, 60_999, 1).allowed);
        assert!(state.check(&limits, 61_000, 1).allowed);
        assert!(!state.check(&limits, 61_000, 1).allowed);
    }

    #[test]
    fn a_cost_above_the_limit_never_passes() {
        let limits = [wl(Window::Minute, 5)];
        let mut state = WindowState::new();
        let o = state.check(&limits, 0, 6);
        assert!(!o.allowed);
        assert!(o.retry_after_ms.is_some());
        assert!(!state.check(&limits, 10_000_000, 6).allowed);
    }

    #[test]
    fn time_never_runs_backwards_inside_a_state() {
        let limits = [wl(Window::Minute, 2)];
        let mut state = WindowState::new();
        assert!(state.check(&limits, 100_000, 1).allowed);
        assert!(state.check(&limits, 5, 1).allowed);
        assert!(!state.check(&limits, 0, 1).allowed);
        assert_eq!(state.last_seen_ms(), 100_000);
    }

    #[test]
    fn idleness_follows_the_longest_counted_window() {
        let limits = [wl(Window::Minute, 10), wl(Window::Hour, 100)];
        let mut state = WindowState::new();
        assert!(state.is_idle(0));
        state.check(&limits, 1_000, 1);
        assert!(!state.is_idle(62_000), "the hour still counts it");
        assert!(!state.is_idle(3_600_000));
        assert!(state.is_idle(3_600_000 + 60_000));
    }

    #[test]
    fn no_limits_means_unlimited() {
        let mut state = WindowState::new();
        assert_eq!(state.check(&[], 0, 1_000), Outcome::UNLIMITED);
    }
}
