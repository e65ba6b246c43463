//! Send pacing and retry timing: the global rate (AIMD on rate-limit
//! replies, R57) and exponential backoff with jitter (R52).

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

/// Exponential backoff with jitter (R52):
/// `min(cap, base · 2^(n−1)) · U(0.8, 1.2)` after the n-th attempt.
pub fn next_attempt(
    attempt: i64,
    now: DateTime<Utc>,
    base: Duration,
    cap: Duration,
    rng: &mut impl Rng,
) -> DateTime<Utc> {
    let exp = (attempt.max(1) - 1).min(20) as u32;
    let raw = base.num_milliseconds().saturating_mul(1i64 << exp);
    let capped = raw.min(cap.num_milliseconds());
    let jitter: f64 = rng.gen_range(0.8..1.2);
    now + Duration::milliseconds((capped as f64 * jitter) as i64)
}

/// Paces sends to a global rate, halving it on rate-limit replies and
/// recovering additively on success (AIMD, R57).
#[derive(Debug)]
pub struct Pacer {
    max_rate: f64,
    state: tokio::sync::Mutex<(tokio::time::Instant, f64)>,
}

impl Pacer {
    pub fn new(per_second: u32) -> Pacer {
        Pacer {
            max_rate: per_second.max(1) as f64,
            state: tokio::sync::Mutex::new((tokio::time::Instant::now(), per_second.max(1) as f64)),
        }
    }

    /// Waits for the next send slot.
    pub async fn acquire(&self) {
        let (slot, now) = {
            let mut s = self.state.lock().await;
            let now = tokio::time::Instant::now();
            let slot = s.0.max(now);
            s.0 = slot + std::time::Duration::from_secs_f64(1.0 / s.1);
            (slot, now)
        };
        // A slot that is already due needs no timer: tokio rounds sleeps up
        // to the next millisecond, which alone would cap the rate at 1,000
        // a second.
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
    }

    pub async fn slow_down(&self) {
        let mut s = self.state.lock().await;
        s.1 = (s.1 / 2.0).max(0.5);
    }

    pub async fn speed_up(&self) {
        let mut s = self.state.lock().await;
        s.1 = (s.1 + 0.1).min(self.max_rate);
    }

    pub async fn rate(&self) -> f64 {
        self.state.lock().await.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_respects_the_cap() {
        let now = Utc::now();
        let base = Duration::minutes(5);
        let cap = Duration::hours(2);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in 1..=12 {
            let d = next_attempt(n, now, base, cap, &mut rng) - now;
            let nominal = (base.num_seconds() * (1 << (n - 1))).min(cap.num_seconds()) as f64;
            let secs = d.num_milliseconds() as f64 / 1000.0;
            assert!(
                secs >= nominal * 0.8 - 0.001 && secs <= nominal * 1.2 + 0.001,
                "n={n}: {secs} vs {nominal}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_holds_the_global_rate_and_halves_it_on_rate_limits() {
        let p = Pacer::new(10);
        let start = tokio::time::Instant::now();
        for _ in 0..100 {
            p.acquire().await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!(took >= 9.8, "100 messages at 10/s took {took}s");
        p.slow_down().await;
        assert_eq!(p.rate().await, 5.0);
        p.speed_up().await;
        assert!(p.rate().await > 5.0 && p.rate().await < 10.0);
    }
}
