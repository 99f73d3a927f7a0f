//! Per-key rate limits: a token bucket per API key (GCRA, from `governor`), checked
//! right after authentication so that every authenticated route is covered and an
//! unauthenticated flood costs no key its budget.

use std::num::NonZeroU32;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;

pub struct KeyRateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    per_sec: NonZeroU32,
}

impl KeyRateLimit {
    /// `None` when `per_sec` is 0 (no limit). A burst below the rate is raised to it.
    pub fn new(per_sec: u32, burst: u32) -> Option<KeyRateLimit> {
        let per_sec = NonZeroU32::new(per_sec)?;
        let burst = NonZeroU32::new(burst.max(per_sec.get())).unwrap_or(per_sec);
        Some(KeyRateLimit { limiter: RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst)), per_sec })
    }

    /// Takes one request from the key's budget, or says when to come back.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        // Lookups by &str would need the key's String anyway; the id is short.
        match self.limiter.check_key(&key_id.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(ApiError {
                    // Whole seconds, rounded up: `Retry-After: 0` would invite an instant retry.
                    retry_after_secs: Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("rate limit exceeded: this key may make {} requests per second", self.per_sec),
                    )
                })
            }
        }
    }

    /// Forgets keys whose buckets are full again, so the table holds only active keys.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_burst_is_told_when_to_retry_and_other_keys_are_unaffected() {
        let limit = KeyRateLimit::new(1, 3).unwrap();
        for _ in 0..3 {
            limit.check("a").unwrap();
        }
        let refused = limit.check("a").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after_secs, Some(1));
        assert!(refused.message.contains("1 requests per second"), "{}", refused.message);
        limit.check("b").unwrap();
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(KeyRateLimit::new(0, 10).is_none());
    }
}
