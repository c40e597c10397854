//! The shared backend over Redis: one key per subject holding its last step, with a TTL.

use std::time::Duration;

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{StoreError, StoreFuture, TotpStepStore};

/// Compares and sets in one script (Redis runs a script alone): the step `ARGV[1]` replaces the
/// one at `KEYS[1]` only when it is greater or there is none, with the time to live `ARGV[2]`
/// (seconds). Answers 1 when it did, 0 otherwise. Steps are below 2^53 for the next few hundred
/// million years, so Lua's numbers compare them exactly.
const CLAIM: &str = r"
local last = redis.call('GET', KEYS[1])
if last and tonumber(last) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
";

/// The last accepted steps shared through Redis, for deployments with several instances that
/// set `redis_url`. An entry is a key `<prefix><subject>` that Redis expires by itself once its
/// step can no longer verify, so [`TotpStepStore::purge`] has nothing to do.
///
/// The time to live is counted from this instance's clock (`expires_at` minus now), not
/// Redis's, so a Redis server whose clock is off changes nothing.
///
/// # Examples
/// ```no_run
/// # fn example() -> Result<(), bulwark::store::StoreError> {
/// use std::time::Duration;
///
/// use bulwark::totp::store::redis::RedisTotpStepStore;
///
/// let store = RedisTotpStepStore::new("redis://127.0.0.1:6379", "bulwark:totp:", Duration::from_millis(500))?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisTotpStepStore {
    connection: ConnectionManager,
    claim: Script,
    timeout: Duration,
    prefix: String,
}

impl std::fmt::Debug for RedisTotpStepStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTotpStepStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTotpStepStore {
    /// A store at `url`, its keys under `prefix` (e.g. `bulwark:totp:`), each call waiting at
    /// most `timeout`. Connects lazily and reconnects by itself.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::new(format!("redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::new(format!("redis: {e}")))?;
        Ok(Self {
            connection,
            claim: Script::new(CLAIM),
            timeout,
            prefix: prefix.to_owned(),
        })
    }
}

impl TotpStepStore for RedisTotpStepStore {
    fn claim<'a>(&'a self, subject: &'a str, step: u64, expires_at: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let ttl = expires_at.saturating_sub(now).max(1);
            let mut invocation = self.claim.key(format!("{}{subject}", self.prefix));
            invocation.arg(step).arg(ttl);
            let mut conn = self.connection.clone();
            match tokio::time::timeout(self.timeout, invocation.invoke_async::<i64>(&mut conn))
                .await
            {
                Ok(Ok(claimed)) => Ok(claimed == 1),
                Ok(Err(e)) => Err(StoreError::unavailable(format!("redis: {e}"))),
                Err(_) => Err(StoreError::unavailable("redis: timed out")),
            }
        })
    }

    fn purge(&self, _now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async { Ok(0) })
    }
}
