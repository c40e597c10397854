//! SQL stores: the signing-key ring ([`KeyStore`]) and the shared revocation log
//! ([`RevocationStore`]) in a database the application already runs, over [sqlx](https://docs.rs/sqlx).
//!
//! | type | feature | over |
//! |---|---|---|
//! | [`SqliteStores`] | `sqlx-sqlite` | an `sqlx::SqlitePool` |
//! | [`PgStores`] | `sqlx-postgres` | an `sqlx::PgPool` |
//!
//! One value implements both traits over the pool it is given (the application keeps using
//! that pool for its own tables); cloning it clones the pool handle, not the connections. With
//! PostgreSQL, every instance of a service pointed at one database shares one key ring and one
//! revocation log: a key rotated or a token revoked on one instance is seen by the others at
//! their next reload or sync.
//!
//! # Tables
//!
//! The stores read and write three tables, which [`SqliteStores::migrate`] /
//! [`PgStores::migrate`] create when they do not exist (`CREATE TABLE IF NOT EXISTS`: a
//! database that has them already, such as the bulwark server's, is left as it is):
//!
//! | table | holds |
//! |---|---|
//! | `signing_keys` | the key ring: id, algorithm, state, material sealed with the master secret, creation and retirement times |
//! | `key_rotations` | the rotation slots already claimed, so a scheduled rotation happens once per interval however many instances try |
//! | `revocations` | the revocation log, with an index on its creation time |
//! | `mail_queue` | with the `mail` feature: the durable mail queue (`bulwark::mail::MailQueue`): recipient, subject, text and HTML bodies, attempts, next attempt time, lease, failure time and last error |
//! | `totp_steps` | with the `totp` feature: the last accepted TOTP time step of each subject (`bulwark::totp::TotpStepStore`), advanced by one atomic upsert |
//! | `api_keys` | with the `api-key` feature: the API keys (`bulwark::api_key::ApiKeyStore`): id, subject, name, unique prefix (index `api_keys_prefix`), HMAC of the key, roles, creation, expiry and last-use times, an index on the subject (`api_keys_subject`) |
//!
//! The columns are those of the server's own migrations (`crates/bulwark-server/migrations`).
//! An application with a migration tool of its own may create them there instead and never call
//! `migrate`.
//!
//! # Guarantees
//!
//! - [`KeyStore::rotate`] is one transaction: the slot is claimed (`INSERT ... ON CONFLICT DO
//!   NOTHING`), the active key turned `verifying`, the new key inserted, or nothing is.
//! - [`RevocationStore::since`] reads again the rows of the last few seconds: a row id can
//!   commit after a larger one, and a revocation applied twice is harmless.
//! - Errors are [`StoreError`]s; [`StoreError::is_unavailable`] is set when the database is
//!   down, unreachable or busy (no connection within the pool's acquire timeout, a connection
//!   refused or lost, PostgreSQL shutting down, starting up or out of connections, SQLite busy
//!   or locked), so a server answers 503 rather than 500.
//!
//! The features turn on no TLS in sqlx: to reach PostgreSQL over TLS, enable one of sqlx's
//! `tls-*` features in the application's own `Cargo.toml`.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "sqlx-sqlite")]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use bulwark::{jwt::store::KeyStore, revocation::RevocationStore, store::sql::SqliteStores};
//!
//! let pool = sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?;
//! let stores = SqliteStores::new(pool);
//! stores.migrate().await?; // creates the tables once; a no-op afterwards
//! let keys: Arc<dyn KeyStore> = Arc::new(stores.clone());
//! let revocations: Arc<dyn RevocationStore> = Arc::new(stores);
//! // Give `keys` to a `jwt::KeyManager` and `revocations` to a `revocation::Revoker`.
//! # let _ = (keys, revocations);
//! # Ok(())
//! # }
//! ```
//!
//! [`KeyStore`]: crate::jwt::store::KeyStore
//! [`KeyStore::rotate`]: crate::jwt::store::KeyStore::rotate
//! [`RevocationStore`]: crate::revocation::RevocationStore
//! [`RevocationStore::since`]: crate::revocation::RevocationStore::since
//! [`StoreError::is_unavailable`]: crate::store::StoreError::is_unavailable

use crate::store::StoreError;

/// `impl_stores!(Store, RowType)` implements [`KeyStore`](crate::jwt::store::KeyStore) and
/// [`RevocationStore`](crate::revocation::RevocationStore) for a store with a `pool` field. The
/// statements use `$N` placeholders, which both SQLite and PostgreSQL accept, and only portable
/// SQL (`RETURNING`, `ON CONFLICT ... DO NOTHING`), so both databases run the same text.
macro_rules! impl_stores {
    ($store:ty, $row:ty) => {
        impl $store {
            fn key_from_row(row: &$row) -> Result<$crate::jwt::store::StoredKey, sqlx::Error> {
                use sqlx::Row as _;
                let state: String = row.try_get("state")?;
                Ok($crate::jwt::store::StoredKey {
                    kid: row.try_get("kid")?,
                    alg: row.try_get("alg")?,
                    state: $crate::jwt::KeyState::parse(&state).ok_or_else(|| {
                        sqlx::Error::Decode(format!("unknown key state {state:?}").into())
                    })?,
                    sealed: row.try_get("material")?,
                    created_at: row.try_get("created_at")?,
                    retires_at: row.try_get("retires_at")?,
                })
            }

            async fn rotate_tx(
                &self,
                key: &$crate::jwt::store::StoredKey,
                retire_at: i64,
                slot: Option<i64>,
            ) -> Result<bool, sqlx::Error> {
                let mut tx = self.pool.begin().await?;
                if let Some(slot) = slot {
                    let claimed = sqlx::query(
                        "INSERT INTO key_rotations (slot, created_at) VALUES ($1, $2) ON CONFLICT (slot) DO NOTHING",
                    )
                    .bind(slot)
                    .bind($crate::store::sql::now())
                    .execute(&mut *tx)
                    .await?;
                    if claimed.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                sqlx::query(
                    "UPDATE signing_keys SET state = 'verifying', retires_at = $1 WHERE state = 'active'",
                )
                .bind(retire_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, state, material, created_at, retires_at) \
                     VALUES ($1, $2, 'active', $3, $4, NULL)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.sealed)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }
        }

        impl $crate::jwt::store::KeyStore for $store {
            fn list(
                &self,
            ) -> $crate::store::StoreFuture<'_, Vec<$crate::jwt::store::StoredKey>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT kid, alg, state, material, created_at, retires_at FROM signing_keys ORDER BY created_at DESC, kid",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    rows.iter()
                        .map(Self::key_from_row)
                        .collect::<Result<_, _>>()
                        .map_err($crate::store::sql::store_error)
                })
            }

            fn rotate<'a>(
                &'a self,
                key: &'a $crate::jwt::store::StoredKey,
                retire_at: i64,
                slot: Option<i64>,
            ) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    self.rotate_tx(key, retire_at, slot)
                        .await
                        .map_err($crate::store::sql::store_error)
                })
            }

            fn revoke<'a>(&'a self, kid: &'a str) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done =
                        sqlx::query("UPDATE signing_keys SET state = 'revoked' WHERE kid = $1")
                            .bind(kid)
                            .execute(&self.pool)
                            .await
                            .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn retire_due(&self, now: i64) -> $crate::store::StoreFuture<'_, u64> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE signing_keys SET state = 'retired' WHERE state = 'verifying' AND retires_at IS NOT NULL AND retires_at <= $1",
                    )
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected())
                })
            }
        }

        impl $crate::revocation::RevocationStore for $store {
            fn publish<'a>(
                &'a self,
                revocation: &'a $crate::revocation::Revocation,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    use $crate::revocation::Revocation;
                    let (kind, subject, min_version, expires_at) = match revocation {
                        Revocation::Token { jti, expires_at } => {
                            ("token", jti.as_str(), None, Some(*expires_at))
                        }
                        Revocation::Subject { sub, min_version } => (
                            "subject",
                            sub.as_str(),
                            Some(i64::try_from(*min_version).unwrap_or(i64::MAX)),
                            None,
                        ),
                    };
                    sqlx::query(
                        "INSERT INTO revocations (kind, subject, min_version, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(kind)
                    .bind(subject)
                    .bind(min_version)
                    .bind(expires_at)
                    .bind($crate::store::sql::now())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    Ok(())
                })
            }

            fn since(
                &self,
                cursor: u64,
            ) -> $crate::store::StoreFuture<'_, (Vec<$crate::revocation::Revocation>, u64)> {
                Box::pin(async move {
                    use sqlx::Row as _;
                    use $crate::revocation::Revocation;
                    let now = $crate::store::sql::now();
                    // Rows of the last few seconds are read again: an id can commit after a
                    // larger one; applying a revocation twice is harmless.
                    let rows = sqlx::query(
                        "SELECT id, kind, subject, min_version, expires_at FROM revocations \
                         WHERE (id > $1 OR created_at >= $2) AND (expires_at IS NULL OR expires_at >= $3) ORDER BY id",
                    )
                    .bind(i64::try_from(cursor).unwrap_or(i64::MAX))
                    .bind(now - 5)
                    .bind(now - 120)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    let mut next = cursor;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let read = || -> Result<(i64, Option<Revocation>), sqlx::Error> {
                            let id: i64 = row.try_get("id")?;
                            let kind: String = row.try_get("kind")?;
                            let subject: String = row.try_get("subject")?;
                            let r = match kind.as_str() {
                                "token" => Some(Revocation::Token {
                                    jti: subject,
                                    expires_at: row
                                        .try_get::<Option<i64>, _>("expires_at")?
                                        .unwrap_or(0),
                                }),
                                "subject" => Some(Revocation::Subject {
                                    sub: subject,
                                    min_version: u64::try_from(
                                        row.try_get::<Option<i64>, _>("min_version")?.unwrap_or(0),
                                    )
                                    .unwrap_or(0),
                                }),
                                _ => None,
                            };
                            Ok((id, r))
                        };
                        let (id, r) = read().map_err($crate::store::sql::store_error)?;
                        next = next.max(u64::try_from(id).unwrap_or(0));
                        out.extend(r);
                    }
                    Ok((out, next))
                })
            }

            fn purge(
                &self,
                expired_before: i64,
                subjects_before: i64,
            ) -> $crate::store::StoreFuture<'_, u64> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "DELETE FROM revocations WHERE (kind = 'token' AND expires_at < $1) \
                         OR (kind = 'subject' AND created_at < $2)",
                    )
                    .bind(expired_before)
                    .bind(subjects_before)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected())
                })
            }
        }
    };
}

#[cfg(feature = "api-key")]
mod api_key;
#[cfg(feature = "mail")]
mod mail;
#[cfg(feature = "sqlx-postgres")]
mod postgres;
#[cfg(feature = "sqlx-sqlite")]
mod sqlite;
#[cfg(test)]
mod tests;
#[cfg(feature = "totp")]
mod totp;

#[cfg(feature = "sqlx-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx-postgres")))]
pub use postgres::PgStores;
#[cfg(feature = "sqlx-sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx-sqlite")))]
pub use sqlite::SqliteStores;

/// The current time in Unix seconds.
fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A sqlx error as a [`StoreError`], marked unavailable when [`is_unavailable`] says so.
fn store_error(err: sqlx::Error) -> StoreError {
    if is_unavailable(&err) {
        StoreError::unavailable(err.to_string())
    } else {
        StoreError::new(err.to_string())
    }
}

/// Whether the database is down, unreachable or too busy to take the query now (no connection
/// within the pool's acquire timeout, a connection refused or lost, the server shutting down or
/// starting up, SQLite busy): a retry later may succeed. An application's own queries can use it
/// to answer 503 rather than 500, as these stores do.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => database_unavailable(&**db),
        _ => false,
    }
}

/// [`is_unavailable`] for an error the database answered, by its code.
fn database_unavailable(db: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "sqlx-postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return pg_unavailable(pg.code());
    }
    #[cfg(feature = "sqlx-sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return db
            .code()
            .and_then(|code| code.parse().ok())
            .is_some_and(sqlite_unavailable);
    }
    false
}

/// PostgreSQL SQLSTATEs of an outage: class 08 (connection exception), 53300 (too many
/// connections), 57P01-57P03 (shutting down, crashed, starting up).
#[cfg(feature = "sqlx-postgres")]
fn pg_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03")
}

/// SQLite (extended) result codes of a busy database: primary codes 5 (`SQLITE_BUSY`, after
/// the busy timeout) and 6 (`SQLITE_LOCKED`).
#[cfg(feature = "sqlx-sqlite")]
fn sqlite_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6)
}
