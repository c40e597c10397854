//! The shared backend: one atomic Redis round trip per check, for several instances.

use std::time::Duration;

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{Decision, Quota, RateLimitStore, StoreError, StoreFuture};

/// GCRA in Lua, run atomically by Redis with Redis's own clock (instances need not agree on
/// the time). KEYS[1]: the key. ARGV[1]: burst tolerance (µs, [`Quota::burst_us`]).
/// ARGV[2]: emission interval (µs). Answers {allowed, remaining, reset_us, retry_us}.
const GCRA: &str = r"
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local debt = new_tat - now
if debt > period then
  return {0, 0, tat - now, new_tat - period - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(debt / 1000) + 1)
return {1, math.floor((period - debt) / interval), debt, 0}
";

/// Limits shared through Redis. Every check is one `EVALSHA` of a GCRA script (one timestamp
/// per key, with a TTL so idle keys vanish), bounded by a timeout: when Redis is slow or down
/// the check fails fast with a [`StoreError`] and the caller's outage policy decides.
#[derive(Clone)]
pub struct RedisRateLimitStore {
    connection: ConnectionManager,
    script: Script,
    timeout: Duration,
    prefix: String,
}

impl std::fmt::Debug for RedisRateLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimitStore")
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimitStore {
    /// Default per-check time budget.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

    /// A store for `url` (`redis://host:port/db`). Connects lazily and reconnects by itself, so
    /// a server can start while Redis is down.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::new(format!("redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::new(format!("redis: {e}")))?;
        Ok(Self {
            connection,
            script: Script::new(GCRA),
            timeout,
            prefix: "bulwark:rl:".to_owned(),
        })
    }

    /// Prefixes every key (default `bulwark:rl:`), e.g. to share one Redis between services.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Connects and loads the script now, so that the first burst of checks after start-up
    /// does not spend its time budget on the connection and the script upload. Failures are
    /// only logged: the store reconnects by itself later.
    pub async fn warm_up(&self) {
        let quota = Quota::new(1_000_000, Duration::from_secs(1));
        let budget = self.timeout.max(Duration::from_secs(2));
        let mut conn = self.connection.clone();
        let mut invocation = self.script.key(format!("{}warm-up", self.prefix));
        invocation.arg(quota.burst_us()).arg(quota.interval_us());
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "redis rate-limit store not reachable yet")
            }
            Err(_) => tracing::warn!("redis rate-limit store not reachable yet: timed out"),
        }
    }

    /// Answers when Redis does (for readiness checks).
    ///
    /// # Errors
    /// When Redis does not answer within the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.timeout.max(Duration::from_millis(250)), ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::unavailable(format!("redis: {e}"))),
            Err(_) => Err(StoreError::unavailable("redis: timed out")),
        }
    }
}

fn secs(us: i64) -> u64 {
    u64::try_from(us.max(0)).unwrap_or(0).div_ceil(1_000_000)
}

impl RateLimitStore for RedisRateLimitStore {
    fn check<'a>(&'a self, key: &'a str, quota: &'a Quota) -> StoreFuture<'a, Decision> {
        Box::pin(async move {
            let mut conn = self.connection.clone();
            let mut invocation = self.script.key(format!("{}{key}", self.prefix));
            invocation.arg(quota.burst_us()).arg(quota.interval_us());
            let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
            let (allowed, remaining, reset_us, retry_us) =
                match tokio::time::timeout(self.timeout, call).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(e)) => return Err(StoreError::unavailable(format!("redis: {e}"))),
                    Err(_) => return Err(StoreError::unavailable("redis: timed out")),
                };
            Ok(Decision {
                allowed: allowed == 1,
                limit: quota.limit(),
                remaining: u32::try_from(remaining.max(0))
                    .unwrap_or(0)
                    .min(quota.limit()),
                reset_secs: secs(reset_us),
                retry_after_secs: if allowed == 1 {
                    0
                } else {
                    secs(retry_us).max(1)
                },
            })
        })
    }
}
