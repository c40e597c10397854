//! Rate limiting: exact, bounded, proxy-safe, shared across instances.
//!
//! **Threat model.** Password guessing, credential stuffing and request floods. The limiters of
//! the FastAPI guide key on spoofable headers, use fixed windows (twice the limit passes across a
//! window edge), send non-standard headers and stop limiting — or crash — when Redis fails. Here:
//!
//! - the algorithm is **GCRA** ([`Quota::gcra`]): one timestamp per key, exact (a burst of at
//!   most `limit` requests, then one per emission interval `period / limit`, so never more than
//!   `limit + n` requests in any span of `n` intervals; under any concurrency, because each step
//!   is atomic in its store), and smooth (no window edge to exploit);
//! - keys are the authenticated user, else the client IP resolved by [`crate::client_ip`]
//!   (forwarding headers only from trusted proxies); logins are limited per IP *and* per
//!   (lower-cased) username;
//! - stores: [`store::memory::MemoryRateLimitStore`] (sharded, bounded: a flood of distinct keys
//!   cannot grow memory without limit nor evict a client at its limit) or
//!   [`store::redis::RedisRateLimitStore`] (one atomic Lua round trip, 50 ms budget; feature
//!   `redis`);
//! - when the store fails, [`FailMode::Closed`] checks (logins) answer 503 and
//!   [`FailMode::Open`] checks (everything else) pass; both are logged and counted;
//! - responses carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF draft)
//!   and, when refused, 429 with `Retry-After`.
//!
//! **Not covered.** Distributed floods from many real addresses need upstream capacity; an
//! attacker with many IPv6 addresses gets one budget per address.

mod middleware;
mod quota;
pub mod store;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

pub use middleware::{Admission, RateLimitPolicy, Refused, RouteKey, UNMATCHED, enforce};
pub use quota::{Decision, Quota, QuotaError};
pub use store::RateLimitStore;

use crate::error::HttpError;

/// What to do when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Let the request through (general limits: availability first).
    Open,
    /// Refuse with 503 (login limits: a guessing attack must not profit from an outage).
    Closed,
}

/// Checks requests against a [`RateLimitStore`] with an outage policy.
#[derive(Debug)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    failures: AtomicU64,
}

/// The store failed and the check was [`FailMode::Closed`]: answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterUnavailable;

impl IntoResponse for LimiterUnavailable {
    fn into_response(self) -> Response {
        let mut response =
            HttpError::unavailable("Service temporarily unavailable").into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }
}

impl RateLimiter {
    /// A limiter over `store`.
    pub fn new(store: Arc<dyn RateLimitStore>) -> Self {
        Self {
            store,
            failures: AtomicU64::new(0),
        }
    }

    /// Checks one request for `key`.
    ///
    /// # Errors
    /// [`LimiterUnavailable`] when the store fails and `mode` is [`FailMode::Closed`].
    pub async fn check(
        &self,
        key: &str,
        quota: &Quota,
        mode: FailMode,
    ) -> Result<Option<Decision>, LimiterUnavailable> {
        let answer = match self.store.check_at_once(key, quota) {
            Some(answer) => answer,
            None => self.store.check(key, quota).await,
        };
        self.judge(answer, mode)
    }

    /// [`RateLimiter::check`] without waiting: `None`, having counted nothing, when the store
    /// cannot answer at once (a network store); then await [`RateLimiter::check`] instead.
    ///
    /// # Errors
    /// As [`RateLimiter::check`].
    pub fn check_now(
        &self,
        key: &str,
        quota: &Quota,
        mode: FailMode,
    ) -> Option<Result<Option<Decision>, LimiterUnavailable>> {
        let answer = self.store.check_at_once(key, quota)?;
        Some(self.judge(answer, mode))
    }

    fn judge(
        &self,
        answer: Result<Decision, crate::store::StoreError>,
        mode: FailMode,
    ) -> Result<Option<Decision>, LimiterUnavailable> {
        match answer {
            Ok(decision) => Ok(Some(decision)),
            Err(err) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                match mode {
                    FailMode::Open => {
                        tracing::warn!(error = %err, "rate-limit store unavailable: failing open");
                        Ok(None)
                    }
                    FailMode::Closed => {
                        tracing::error!(error = %err, "rate-limit store unavailable: failing closed");
                        Err(LimiterUnavailable)
                    }
                }
            }
        }
    }

    /// How many checks the store failed so far.
    pub fn store_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

// Names made once: inserting a header by `&str` copies a non-standard name on every call.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The numbers below this are written out once, in [`SMALL_NUMBERS`].
const SMALL: usize = 1000;

/// "000" to "999": the text of every small number a rate-limit header carries (the default
/// quotas' limits, remainders and resets), right-aligned in three digits, so that writing one is
/// a slice of static text instead of an allocation per header per response.
static SMALL_NUMBERS: [[u8; 3]; SMALL] = {
    let mut table = [[0; 3]; SMALL];
    let mut n = 0;
    while n < SMALL {
        // `n` < 1000, so each digit fits in a `u8`.
        table[n] = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        n += 1;
    }
    table
};

/// `n` as a header value: static text below 1000, else a new value.
fn number_value(n: u64) -> HeaderValue {
    if let Ok(i) = usize::try_from(n)
        && let Some(text) = SMALL_NUMBERS.get(i)
    {
        let digits = if i >= 100 {
            3
        } else if i >= 10 {
            2
        } else {
            1
        };
        if let Ok(text) = std::str::from_utf8(&text[3 - digits..]) {
            return HeaderValue::from_static(text);
        }
    }
    HeaderValue::from(n)
}

impl Decision {
    /// Writes `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (and `Retry-After`
    /// when refused) — unless the headers already describe a limit with fewer requests
    /// remaining, so that where two limits apply, the tighter one is shown.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        let existing = headers
            .get(&RATELIMIT_REMAINING)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        if existing.is_some_and(|r| r <= self.remaining) {
            return;
        }
        headers.insert(RATELIMIT_LIMIT, number_value(u64::from(self.limit)));
        headers.insert(RATELIMIT_REMAINING, number_value(u64::from(self.remaining)));
        headers.insert(RATELIMIT_RESET, number_value(self.reset_secs));
        // An admitted request keeps whatever `Retry-After` its handler set (a 503's, when a
        // backing service is down): only a refusal speaks for the limit.
        if !self.allowed {
            headers.insert(header::RETRY_AFTER, number_value(self.retry_after_secs));
        }
    }

    /// The 429 answer for a refused request, with every header.
    pub fn too_many_requests(&self) -> Response {
        let mut response =
            HttpError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
        self.apply_headers(response.headers_mut());
        response
    }
}

#[cfg(test)]
mod tests;
