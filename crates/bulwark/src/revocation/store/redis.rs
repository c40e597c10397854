//! The shared backend over Redis: an ordered log in a sorted set.

use std::time::Duration;

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{Revocation, RevocationStore, StoreError, StoreFuture};

/// Appends atomically: the sequence number and the entry are written by one script, so readers
/// never see a gap that fills later. The entry is also indexed by when it may go (`KEYS[3]`,
/// scored by `ARGV[2]`: a token's expiry, a subject entry's publication time), for [`PURGE`].
/// Nothing is trimmed by count: an unexpired revocation is never dropped to save room.
const PUBLISH: &str = r"
local seq = redis.call('INCR', KEYS[1])
local member = seq .. '|' .. ARGV[1]
redis.call('ZADD', KEYS[2], seq, member)
redis.call('ZADD', KEYS[3], ARGV[2], member)
return seq
";

/// Removes the entries of one index (`KEYS[2]`) scored below `ARGV[1]` from the log (`KEYS[1]`)
/// and the index, at most `ARGV[2]` at a time; answers how many.
const PURGE: &str = r"
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
return #gone
";

/// The most entries one purge script removes (each call is short; a purge loops).
const PURGE_BATCH: usize = 1000;

/// Revocations shared through Redis, for deployments that set `redis_url`.
#[derive(Clone)]
pub struct RedisRevocationStore {
    connection: ConnectionManager,
    publish: Script,
    purge: Script,
    timeout: Duration,
    seq_key: String,
    log_key: String,
    /// Token entries by expiry.
    tokens_key: String,
    /// Subject entries by publication time.
    subjects_key: String,
}

impl std::fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("log_key", &self.log_key)
            .finish_non_exhaustive()
    }
}

impl RedisRevocationStore {
    /// A store at `url`, its keys under `prefix` (e.g. `bulwark:rev:`). Connects lazily and
    /// reconnects by itself.
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
            publish: Script::new(PUBLISH),
            purge: Script::new(PURGE),
            timeout,
            seq_key: format!("{prefix}seq"),
            log_key: format!("{prefix}log"),
            tokens_key: format!("{prefix}tokens-by-expiry"),
            subjects_key: format!("{prefix}subjects-by-time"),
        })
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection.clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::unavailable(format!("redis: {e}"))),
            Err(_) => Err(StoreError::unavailable("redis: timed out")),
        }
    }
}

fn encode(revocation: &Revocation) -> Option<String> {
    match revocation {
        Revocation::Token { jti, expires_at } => Some(format!("t|{expires_at}|{jti}")),
        Revocation::Subject { sub, min_version } => Some(format!("s|{min_version}|{sub}")),
    }
}

fn decode(member: &str) -> Option<Revocation> {
    let mut parts = member.splitn(4, '|');
    let _seq = parts.next()?;
    let kind = parts.next()?;
    let number = parts.next()?;
    let name = parts.next()?.to_owned();
    match kind {
        "t" => Some(Revocation::Token {
            jti: name,
            expires_at: number.parse().ok()?,
        }),
        "s" => Some(Revocation::Subject {
            sub: name,
            min_version: number.parse().ok()?,
        }),
        _ => None,
    }
}

impl RevocationStore for RedisRevocationStore {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let member =
                encode(revocation).ok_or_else(|| StoreError::new("unsupported revocation kind"))?;
            let (index, score) = match revocation {
                Revocation::Token { expires_at, .. } => (&self.tokens_key, *expires_at),
                Revocation::Subject { .. } => (
                    &self.subjects_key,
                    time::OffsetDateTime::now_utc().unix_timestamp(),
                ),
            };
            let mut invocation = self.publish.key(&self.seq_key);
            invocation
                .key(&self.log_key)
                .key(index)
                .arg(member)
                .arg(score);
            self.invoke::<i64>(&invocation).await.map(|_| ())
        })
    }

    fn purge(&self, expired_before: i64, subjects_before: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut removed = 0u64;
            for (index, before) in [
                (&self.tokens_key, expired_before),
                (&self.subjects_key, subjects_before),
            ] {
                loop {
                    let mut invocation = self.purge.key(&self.log_key);
                    invocation.key(index).arg(before).arg(PURGE_BATCH);
                    let gone: u64 = self.invoke(&invocation).await?;
                    removed += gone;
                    if gone < PURGE_BATCH as u64 {
                        break;
                    }
                }
            }
            Ok(removed)
        })
    }

    fn since(&self, cursor: u64) -> StoreFuture<'_, (Vec<Revocation>, u64)> {
        Box::pin(async move {
            let mut conn = self.connection.clone();
            let mut cmd = redis::cmd("ZRANGEBYSCORE");
            cmd.arg(&self.log_key)
                .arg(format!("({cursor}"))
                .arg("+inf")
                .arg("WITHSCORES");
            let query = cmd.query_async::<Vec<(String, u64)>>(&mut conn);
            let rows = match tokio::time::timeout(self.timeout, query).await {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => return Err(StoreError::unavailable(format!("redis: {e}"))),
                Err(_) => return Err(StoreError::unavailable("redis: timed out")),
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut next = cursor;
            let mut out = Vec::with_capacity(rows.len());
            for (member, seq) in rows {
                next = next.max(seq);
                match decode(&member) {
                    Some(Revocation::Token { expires_at, .. }) if expires_at + 120 < now => {}
                    Some(r) => out.push(r),
                    None => {}
                }
            }
            Ok((out, next))
        })
    }
}
