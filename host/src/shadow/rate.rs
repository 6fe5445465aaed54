//! Greengrass's shadow request rate limits (`rateLimits`): requests per second per thing and
//! in total, as token buckets that refill continuously and hold one second's worth, so a burst
//! up to the rate passes and a steady flood is held to it. A request refused for the total
//! takes nothing from its thing's bucket, and a thing's bucket is created only when the total
//! has room, so a flood of made-up thing names cannot grow the table faster than the total
//! rate; buckets that refilled completely carry no state and are pruned. Pure logic: the caller
//! passes the time.

use std::collections::HashMap;
use std::time::Instant;

/// Per-second limits (Greengrass's defaults: 20 per thing, 200 in total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `maxLocalRequestsPerSecondPerThing`.
    pub per_thing: u32,
    /// `maxTotalLocalRequestsRate`.
    pub total: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { per_thing: 20, total: 200 }
    }
}

/// Buckets kept before full ones are pruned.
const PRUNE_AT: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Self {
        Self { tokens: f64::from(rate), at: now }
    }

    /// Tokens now, after refilling at `rate` per second since the last look.
    fn refill(&mut self, rate: u32, now: Instant) -> f64 {
        let rate = f64::from(rate);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        self.tokens
    }
}

/// The buckets of one shadow manager.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limits: RateLimits,
    total: Bucket,
    things: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// Full buckets for `limits`.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        Self { limits, total: Bucket::full(limits.total, now), things: HashMap::new() }
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Whether a request for `thing` may run now; if so, it is counted.
    pub fn admit(&mut self, thing: &str, now: Instant) -> bool {
        if self.total.refill(self.limits.total, now) < 1.0 {
            return false;
        }
        let per_thing = self.limits.per_thing;
        if !self.things.contains_key(thing) && self.things.len() >= PRUNE_AT {
            self.things.retain(|_, bucket| bucket.refill(per_thing, now) < f64::from(per_thing));
        }
        let bucket = self.things.entry(thing.to_owned()).or_insert_with(|| Bucket::full(per_thing, now));
        if bucket.refill(per_thing, now) < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        self.total.tokens -= 1.0;
        true
    }

    /// Buckets held (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.things.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admitted(limiter: &mut RateLimiter, thing: &str, n: usize, now: Instant) -> usize {
        (0..n).filter(|_| limiter.admit(thing, now)).count()
    }

    #[test]
    fn a_thing_gets_its_rate_and_a_one_second_burst() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(RateLimits::default(), start);
        assert_eq!(admitted(&mut limiter, "lamp", 100, start), 20);
        // Another thing is not held back by the first.
        assert_eq!(admitted(&mut limiter, "fan", 5, start), 5);
        // Half a second refills half the bucket.
        assert_eq!(admitted(&mut limiter, "lamp", 100, start + Duration::from_millis(500)), 10);
        // A steady flood over ten seconds gets the rate, not more.
        let flood: usize =
            (1..=100).map(|i| admitted(&mut limiter, "lamp", 10, start + Duration::from_millis(500 + 100 * i))).sum();
        assert!((195..=205).contains(&flood), "{flood}");
    }

    #[test]
    fn the_total_caps_many_things_together_and_refusals_cost_nothing() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(RateLimits { per_thing: 20, total: 50 }, start);
        let got: usize = (0..10).map(|i| admitted(&mut limiter, &format!("t{i}"), 20, start)).sum();
        assert_eq!(got, 50);
        // A thing refused by the total kept its own tokens.
        let later = start + Duration::from_secs(1);
        assert_eq!(admitted(&mut limiter, "t9", 100, later), 20);
    }

    #[test]
    fn made_up_thing_names_cannot_grow_the_table_without_bound() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(RateLimits::default(), start);
        for second in 0..50u64 {
            let now = start + Duration::from_secs(second);
            for i in 0..1000 {
                limiter.admit(&format!("fake-{second}-{i}"), now);
            }
        }
        assert!(limiter.tracked() <= PRUNE_AT + 200, "{}", limiter.tracked());
    }

    #[test]
    fn a_clock_that_goes_backwards_refills_nothing() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut limiter = RateLimiter::new(RateLimits { per_thing: 1, total: 10 }, start);
        assert!(limiter.admit("a", start));
        assert!(!limiter.admit("a", start - Duration::from_secs(5)));
    }
}
