//! Per-sender token bucket.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(burst: f64) -> Self {
        TokenBucket {
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token; on refusal returns how long until one is available.
    pub fn try_take(
        &mut self,
        rate: f64,
        burst: f64,
        now: Instant,
    ) -> Result<(), std::time::Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64(
                (1.0 - self.tokens) / rate,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3.0);
        for _ in 0..3 {
            assert!(b.try_take(10.0, 3.0, t0).is_ok());
        }
        let wait = b.try_take(10.0, 3.0, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(b
            .try_take(10.0, 3.0, t0 + Duration::from_millis(100))
            .is_ok());
        // Refill is capped at the burst size.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.try_take(10.0, 3.0, later).is_ok());
        }
        assert!(b.try_take(10.0, 3.0, later).is_err());
    }
}
