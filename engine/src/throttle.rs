//! Bandwidth limiting: a byte rate that the streamed copies of a job on this node share.
//!
//! In the data flow: a job's worker creates one [`ByteRateLimiter`] per job on each node (the
//! job's limit divided among the nodes running it) and puts it in every task's
//! `CopyOptions::bandwidth`; the streaming paths of the transfer layer call
//! [`ByteRateLimiter::take`] for every chunk read from a source before it goes on (server-side
//! copies move no bytes through the node and are not limited).
//!
//! The limiter is the GCRA of the [`governor`] crate (equivalent to a token bucket):
//! - **rate**: `bytes_per_sec` sustained, whatever the number of tasks taking from it;
//! - **burst**: after an idle period up to `burst` bytes pass without waiting (the allowance
//!   refills at the rate, up to `burst`; a new limiter starts full);
//! - a take larger than the burst is allowed: it is paid for in pieces, each waiting for its
//!   share of the rate, so it returns once all its bytes fit the rate (a take of `n` bytes on an
//!   empty limiter waits about `n / rate`). Pieces are small (≤ 64 KiB), so one large take (a
//!   whole part) competes fairly with many small ones (body chunks);
//! - [`ByteRateLimiter::set_rate`] changes the rate while copies run (a job's nodes change):
//!   governor's quotas are fixed, so a different rate swaps in a new limiter, which starts with
//!   a full burst; takes already waiting finish at the old rate.
//!
//! Precision: governor counts cells in whole nanoseconds per cell. Below 1 MB/s a cell is one
//! byte; above, a cell is `rate / 1,000,000` bytes (about 1 µs per cell), and a take is rounded
//! up to whole cells — an error below 0.1% for chunks of 64 KiB at any rate.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The largest piece of a take waited for at once.
const PIECE: u64 = 64 * 1024;

/// A byte-rate limit shared by several tasks (an `Arc`). See the module docs.
pub struct ByteRateLimiter {
    current: Mutex<Arc<Gcra>>,
}

/// One governor limiter for one rate.
struct Gcra {
    limiter: DefaultDirectRateLimiter,
    bytes_per_sec: u64,
    burst: u64,
    /// Bytes per cell.
    unit: u64,
    /// The largest number of cells checked at once (≤ the burst in cells).
    piece: u32,
}

impl Gcra {
    fn new(bytes_per_sec: u64, burst: u64) -> Gcra {
        let rate = bytes_per_sec.max(1);
        let burst = burst.max(1);
        let unit = (rate / 1_000_000).max(1);
        let period_ns = (u128::from(unit) * 1_000_000_000 / u128::from(rate)).max(1);
        let cells = |bytes: u64| NonZeroU32::new(bytes.div_ceil(unit).clamp(1, u64::from(u32::MAX)) as u32).unwrap();
        let burst_cells = cells(burst);
        let quota = Quota::with_period(Duration::from_nanos(period_ns.min(u128::from(u64::MAX)) as u64))
            .expect("a non-zero period")
            .allow_burst(burst_cells);
        Gcra {
            limiter: RateLimiter::direct(quota),
            bytes_per_sec: rate,
            burst,
            unit,
            piece: cells(PIECE).min(burst_cells).get(),
        }
    }

    async fn take(&self, n: u64) {
        let mut cells = n.div_ceil(self.unit);
        while cells > 0 {
            let k = cells.min(u64::from(self.piece)) as u32;
            let want = NonZeroU32::new(k).expect("k > 0");
            loop {
                match self.limiter.check_n(want) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => {
                        tokio::time::sleep(not_until.wait_time_from(self.limiter.clock().now())).await
                    }
                    // Unreachable: a piece is at most the burst.
                    Err(_) => break,
                }
            }
            cells -= u64::from(k);
        }
    }
}

impl ByteRateLimiter {
    /// `bytes_per_sec` sustained, up to `burst` bytes at once (both at least 1).
    pub fn new(bytes_per_sec: u64, burst: u64) -> Arc<ByteRateLimiter> {
        Arc::new(ByteRateLimiter {
            current: Mutex::new(Arc::new(Gcra::new(bytes_per_sec, burst))),
        })
    }

    /// Changes the rate (the burst stays); a no-op when it is the current rate.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        let mut cur = self.current.lock().unwrap();
        if cur.bytes_per_sec != bytes_per_sec.max(1) {
            *cur = Arc::new(Gcra::new(bytes_per_sec, cur.burst));
        }
    }

    /// The current rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.current.lock().unwrap().bytes_per_sec
    }

    /// The burst, bytes.
    pub fn burst(&self) -> u64 {
        self.current.lock().unwrap().burst
    }

    /// Waits until `n` more bytes may pass. Larger than the burst is allowed (see the module
    /// docs).
    pub async fn take(&self, n: u64) {
        if n == 0 {
            return;
        }
        let g = self.current.lock().unwrap().clone();
        g.take(n).await;
    }
}

impl std::fmt::Debug for ByteRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.current.lock().unwrap();
        f.debug_struct("ByteRateLimiter")
            .field("bytes_per_sec", &g.bytes_per_sec)
            .field("burst", &g.burst)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn the_burst_passes_at_once_then_the_rate_holds() {
        let l = ByteRateLimiter::new(100_000, 50_000);
        let t = Instant::now();
        l.take(50_000).await; // 0.5 s of the rate
        assert!(t.elapsed() < Duration::from_millis(250), "the burst: {:?}", t.elapsed());
        // 60,000 more bytes at 100,000 B/s: at least 0.6 s.
        for _ in 0..6 {
            l.take(10_000).await;
        }
        assert!(t.elapsed() >= Duration::from_millis(550), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn takes_larger_than_the_burst_wait_for_the_excess() {
        let l = ByteRateLimiter::new(1_000_000, 10_000);
        let t = Instant::now();
        l.take(210_000).await; // 10,000 at once, 200,000 at 1 MB/s
        assert!(t.elapsed() >= Duration::from_millis(190), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn tasks_share_the_rate() {
        let l = ByteRateLimiter::new(400_000, 4_000);
        let t = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        l.take(4_000).await;
                    }
                })
            })
            .collect();
        for h in tasks {
            h.await.unwrap();
        }
        // 160,000 bytes at 400,000 B/s, less one burst: at least ~0.39 s.
        assert!(t.elapsed() >= Duration::from_millis(370), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn set_rate_swaps_the_limiter_only_when_the_rate_changes() {
        let l = ByteRateLimiter::new(1_000, 1_000);
        l.take(1_000).await;
        l.set_rate(1_000); // same rate: the spent burst stays spent
        let t = Instant::now();
        l.take(100).await;
        assert!(t.elapsed() >= Duration::from_millis(80), "{:?}", t.elapsed());
        l.set_rate(1_000_000);
        assert_eq!((l.rate(), l.burst()), (1_000_000, 1_000));
        let t = Instant::now();
        l.take(300_000).await; // 0.3 s at the new rate, 300 s at the old one
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
    }

    #[test]
    fn high_rates_use_coarser_cells() {
        let g = Gcra::new(4 * 1024 * 1024 * 1024, 8 << 20);
        assert_eq!(g.unit, 4294);
        assert_eq!(g.piece, 16); // 64 KiB
        let g = Gcra::new(300_000, 16 * 1024);
        assert_eq!((g.unit, g.piece), (1, 16 * 1024));
    }
}
