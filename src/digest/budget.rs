//! The error budget of one run: too many transport failures in a
//! row, or too high a hard-bounce rate, pauses the run so a broken relay
//! or a bad list does not burn through the whole queue.

use crate::deliver::outcome::{Classified, Outcome};

/// Hard-bounce rates are judged only after this many attempts.
const MIN_ATTEMPTS_FOR_BOUNCE_RATE: u64 = 50;

#[derive(Debug, Clone)]
pub struct Budget {
    max_consecutive_failures: u32,
    max_bounce_percent: f64,
    consecutive_failures: u32,
    attempts: u64,
    hard_bounces: u64,
    paused: Option<String>,
}

impl Budget {
    pub fn new(max_consecutive_failures: u32, max_bounce_percent: f64) -> Budget {
        Budget {
            max_consecutive_failures,
            max_bounce_percent,
            consecutive_failures: 0,
            attempts: 0,
            hard_bounces: 0,
            paused: None,
        }
    }

    /// Why the run is paused, once the budget is spent.
    pub fn paused(&self) -> Option<&str> {
        self.paused.as_deref()
    }

    /// Counts one classified attempt; may pause the run.
    pub fn record(&mut self, c: &Classified) {
        self.attempts += 1;
        match c.outcome {
            Outcome::Sent => self.consecutive_failures = 0,
            Outcome::Suppress => self.hard_bounces += 1,
            _ => {}
        }
        if c.transport_failure {
            self.consecutive_failures += 1;
        }
        if self.paused.is_some() {
            return;
        }
        if self.consecutive_failures >= self.max_consecutive_failures {
            self.paused = Some(format!(
                "{} consecutive transport failures",
                self.consecutive_failures
            ));
        } else if self.attempts >= MIN_ATTEMPTS_FOR_BOUNCE_RATE
            && self.bounce_percent() > self.max_bounce_percent
        {
            self.paused = Some(format!(
                "hard-bounce rate {:.1}% above digest.max_bounce_percent",
                self.bounce_percent()
            ));
        }
    }

    fn bounce_percent(&self) -> f64 {
        self.hard_bounces as f64 * 100.0 / self.attempts as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: Outcome, transport_failure: bool) -> Classified {
        Classified {
            outcome,
            code: None,
            enhanced: None,
            detail: String::new(),
            transport_failure,
        }
    }

    #[test]
    fn consecutive_transport_failures_pause_and_a_success_resets_the_count() {
        let mut b = Budget::new(3, 5.0);
        let retry = attempt(Outcome::Retry { slow_down: false }, true);
        b.record(&retry);
        b.record(&retry);
        b.record(&attempt(Outcome::Sent, false));
        b.record(&retry);
        b.record(&attempt(Outcome::Unknown, true));
        assert_eq!(b.paused(), None);
        b.record(&retry);
        assert_eq!(b.paused(), Some("3 consecutive transport failures"));
    }

    #[test]
    fn the_bounce_rate_pauses_only_after_enough_attempts() {
        let mut b = Budget::new(100, 5.0);
        for _ in 0..10 {
            b.record(&attempt(Outcome::Suppress, false));
        }
        assert_eq!(b.paused(), None, "10 of 10, but too few attempts to judge");
        for _ in 0..40 {
            b.record(&attempt(Outcome::Sent, false));
        }
        assert!(b.paused().unwrap().contains("hard-bounce rate 20.0%"));
    }
}
