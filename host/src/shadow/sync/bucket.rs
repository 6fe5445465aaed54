//! A token bucket for `maxOutboundSyncUpdatesPerSecond`: `rate` requests a second, bursts of at
//! most `rate`. Pure logic: the caller passes the time.

use std::time::{Duration, Instant};

/// Requests the cloud may still be sent now.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens, refilled at `rate` a second.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self { rate, tokens: rate, at: now }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_rate_then_rate_per_second() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5, start);
        assert!((0..5).all(|_| bucket.take(start).is_ok()));
        let wait = bucket.take(start).unwrap_err();
        assert!(wait <= Duration::from_millis(200) && wait > Duration::from_millis(150), "{wait:?}");
        let later = start + Duration::from_secs(1);
        assert_eq!((0..10).filter(|_| bucket.take(later).is_ok()).count(), 5, "refilled to the burst, no more");
    }
}
