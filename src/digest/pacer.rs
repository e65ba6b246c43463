//! Send pacing and retry timing: the global rate, a rate per recipient
//! domain (AIMD on that domain's rate-limit replies) and exponential
//! backoff with jitter.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Exponential backoff with jitter:
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
/// recovering additively on success (AIMD).
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
        let slot = {
            let mut s = self.state.lock().await;
            let now = tokio::time::Instant::now();
            let slot = s.0.max(now);
            s.0 = slot + std::time::Duration::from_secs_f64(1.0 / s.1);
            slot
        };
        wait_for(slot).await;
    }

    /// Takes the next send slot if it comes within `horizon`, returning
    /// when it is; otherwise takes nothing and returns when it would be.
    pub async fn try_reserve(
        &self,
        horizon: std::time::Duration,
    ) -> Result<tokio::time::Instant, tokio::time::Instant> {
        let mut s = self.state.lock().await;
        let now = tokio::time::Instant::now();
        let slot = s.0.max(now);
        if slot > now + horizon {
            return Err(slot);
        }
        s.0 = slot + std::time::Duration::from_secs_f64(1.0 / s.1);
        Ok(slot)
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

/// Waits until `slot`, unless it is less than a timer tick away.
///
/// tokio's timer rounds every sleep up to the next millisecond, so
/// sleeping until a slot microseconds ahead (the next slot at a high rate)
/// costs a whole millisecond, which alone capped the send rate
/// (`docs/performance.md`). A send may thus start up to one
/// tick early; the rate over time is unchanged, since the next slot is
/// counted from this one, not from when it started.
pub async fn wait_for(slot: tokio::time::Instant) {
    const TICK: std::time::Duration = std::time::Duration::from_millis(1);
    if slot > tokio::time::Instant::now() + TICK {
        tokio::time::sleep_until(slot).await;
    }
}

/// One [`Pacer`] per recipient domain: each domain
/// has its own cap on top of the global rate, and a rate-limit reply
/// from one domain halves that domain's rate only.
#[derive(Debug)]
pub struct DomainPacers {
    default_rate: u32,
    limits: BTreeMap<String, u32>,
    pacers: std::sync::Mutex<HashMap<String, Arc<Pacer>>>,
}

impl DomainPacers {
    /// `default_rate` per second for any domain, `limits` for named ones.
    pub fn new(default_rate: u32, limits: BTreeMap<String, u32>) -> DomainPacers {
        DomainPacers {
            default_rate: default_rate.max(1),
            limits,
            pacers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The pacer of `domain` (lower-case), created at its configured rate
    /// on first use.
    pub fn of(&self, domain: &str) -> Arc<Pacer> {
        let mut pacers = self.pacers.lock().unwrap_or_else(|e| e.into_inner());
        pacers
            .entry(domain.to_string())
            .or_insert_with(|| {
                let rate = self
                    .limits
                    .get(domain)
                    .copied()
                    .unwrap_or(self.default_rate);
                Arc::new(Pacer::new(rate))
            })
            .clone()
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

    #[tokio::test(start_paused = true)]
    async fn each_domain_has_its_own_cap_and_slows_down_alone() {
        let limits = BTreeMap::from([("gmail.com".to_string(), 2)]);
        let d = DomainPacers::new(100, limits);
        let horizon = std::time::Duration::from_secs(2);
        let now = tokio::time::Instant::now();
        // gmail.com at 2/s: the slots at 0, 0.5, …, 2.0 s fit the
        // horizon; the next does not and is not taken.
        let gmail = d.of("gmail.com");
        for _ in 0..5 {
            assert!(gmail.try_reserve(horizon).await.is_ok());
        }
        let later = gmail.try_reserve(horizon).await.unwrap_err();
        assert_eq!(later - now, std::time::Duration::from_millis(2500));
        assert_eq!(gmail.try_reserve(horizon).await.unwrap_err(), later);
        // Another domain is unaffected by gmail's queue…
        let other = d.of("example.org");
        for _ in 0..100 {
            assert!(other.try_reserve(horizon).await.is_ok());
        }
        // …and by its rate-limit replies.
        d.of("gmail.com").slow_down().await;
        assert_eq!(d.of("gmail.com").rate().await, 1.0);
        assert_eq!(d.of("example.org").rate().await, 100.0);
    }
}
