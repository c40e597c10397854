//! The API keys ([`ApiKeyStore`](crate::api_key::ApiKeyStore)) in the table `api_keys`: one
//! row per key, its prefix unique, an index on its subject.
//!
//! The per-subject cap is checked and the row inserted in one transaction:
//! `INSERT ... SELECT ... WHERE (SELECT COUNT(*) ...) < $max`. On SQLite that statement takes
//! the database's write lock before it reads, so concurrent inserts take turns. On PostgreSQL
//! (read committed) two such statements could both count 19, so the transaction first takes
//! an advisory lock for the subject (`pg_advisory_xact_lock(class, hash of the subject)`,
//! released at commit): inserts for one subject take turns on every instance, inserts for
//! different subjects do not wait for each other (but for a hash collision).
//!
//! Ids are stored as text (UUIDs), hashes as bytes, roles as a JSON array of strings, times as
//! Unix seconds.

/// The table on SQLite, created by [`SqliteStores::migrate`](super::SqliteStores::migrate).
#[cfg(feature = "sqlx-sqlite")]
pub(super) const SQLITE_SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS api_keys (
        id           TEXT   PRIMARY KEY,
        subject      TEXT   NOT NULL,
        name         TEXT   NOT NULL,
        prefix       TEXT   NOT NULL,
        hash         BLOB   NOT NULL,
        roles        TEXT   NOT NULL,
        created_at   BIGINT NOT NULL,
        expires_at   BIGINT,
        last_used_at BIGINT
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix)",
    "CREATE INDEX IF NOT EXISTS api_keys_subject ON api_keys (subject)",
];

/// The table on PostgreSQL, created by [`PgStores::migrate`](super::PgStores::migrate).
#[cfg(feature = "sqlx-postgres")]
pub(super) const PG_SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS api_keys (
        id           TEXT   PRIMARY KEY,
        subject      TEXT   NOT NULL,
        name         TEXT   NOT NULL,
        prefix       TEXT   NOT NULL,
        hash         BYTEA  NOT NULL,
        roles        TEXT   NOT NULL,
        created_at   BIGINT NOT NULL,
        expires_at   BIGINT,
        last_used_at BIGINT
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix)",
    "CREATE INDEX IF NOT EXISTS api_keys_subject ON api_keys (subject)",
];

/// The first key of the two-key advisory locks of [`PgStores`](super::PgStores)' inserts
/// (`"bwak"`); the second is a hash of the subject.
#[cfg(feature = "sqlx-postgres")]
const PG_INSERT_LOCK_CLASS: i32 = 0x6277_616b;

/// The subject's advisory lock key: the first 4 bytes of its SHA-256.
#[cfg(feature = "sqlx-postgres")]
fn subject_lock(subject: &str) -> i32 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, subject.as_bytes());
    let mut first = [0u8; 4];
    first.copy_from_slice(&digest.as_ref()[..4]);
    i32::from_be_bytes(first)
}

/// Nothing to lock on SQLite: its insert takes the database's write lock before it counts.
#[cfg(feature = "sqlx-sqlite")]
impl super::SqliteStores {
    async fn lock_api_key_subject(
        _tx: &mut sqlx::SqliteConnection,
        _subject: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// Takes the subject's advisory lock until the end of the transaction `tx`.
#[cfg(feature = "sqlx-postgres")]
impl super::PgStores {
    async fn lock_api_key_subject(
        tx: &mut sqlx::PgConnection,
        subject: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(PG_INSERT_LOCK_CLASS)
            .bind(subject_lock(subject))
            .execute(tx)
            .await?;
        Ok(())
    }
}

/// Roles as stored: a JSON array of strings.
fn roles_text(roles: &[String]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".to_owned())
}

/// A stored row's columns as a record.
fn record(
    id: &str,
    subject: String,
    name: String,
    prefix: String,
    hash: &[u8],
    roles: &str,
    times: (i64, Option<i64>, Option<i64>),
) -> Result<crate::api_key::ApiKeyRecord, sqlx::Error> {
    let decode = |what: &str| sqlx::Error::Decode(format!("api_keys: bad {what}").into());
    Ok(crate::api_key::ApiKeyRecord {
        id: uuid::Uuid::parse_str(id).map_err(|_| decode("id"))?,
        subject,
        name,
        prefix,
        hash: crate::api_key::KeyHash::from_slice(hash).ok_or_else(|| decode("hash"))?,
        roles: serde_json::from_str(roles).map_err(|_| decode("roles"))?,
        created_at: times.0,
        expires_at: times.1,
        last_used_at: times.2,
    })
}

/// `impl_api_key_store!(Store, RowType)` implements
/// [`ApiKeyStore`](crate::api_key::ApiKeyStore) for a store with a `pool()` accessor and a
/// `lock_api_key_subject` function, run in the insert's transaction before it counts.
macro_rules! impl_api_key_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn api_key_from_row(
                row: &$row,
            ) -> Result<$crate::api_key::ApiKeyRecord, sqlx::Error> {
                use sqlx::Row as _;
                let id: String = row.try_get("id")?;
                let hash: Vec<u8> = row.try_get("hash")?;
                let roles: String = row.try_get("roles")?;
                super::api_key::record(
                    &id,
                    row.try_get("subject")?,
                    row.try_get("name")?,
                    row.try_get("prefix")?,
                    &hash,
                    &roles,
                    (
                        row.try_get("created_at")?,
                        row.try_get("expires_at")?,
                        row.try_get("last_used_at")?,
                    ),
                )
            }

            async fn insert_api_key_tx(
                &self,
                record: &$crate::api_key::ApiKeyRecord,
                max: u32,
            ) -> Result<$crate::api_key::Inserted, sqlx::Error> {
                let mut tx = self.pool().begin().await?;
                Self::lock_api_key_subject(&mut *tx, &record.subject).await?;
                let inserted = sqlx::query(
                    "INSERT INTO api_keys (id, subject, name, prefix, hash, roles, created_at, \
                     expires_at, last_used_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                     WHERE (SELECT COUNT(*) FROM api_keys WHERE subject = $2) < $10",
                )
                .bind(record.id.to_string())
                .bind(&record.subject)
                .bind(&record.name)
                .bind(&record.prefix)
                .bind(record.hash.as_bytes().as_slice())
                .bind(super::api_key::roles_text(&record.roles))
                .bind(record.created_at)
                .bind(record.expires_at)
                .bind(record.last_used_at)
                .bind(i64::from(max))
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(done) if done.rows_affected() == 0 => {
                        tx.rollback().await?;
                        Ok($crate::api_key::Inserted::LimitReached)
                    }
                    Ok(_) => {
                        tx.commit().await?;
                        Ok($crate::api_key::Inserted::Stored)
                    }
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        tx.rollback().await?;
                        Ok($crate::api_key::Inserted::Conflict)
                    }
                    Err(err) => Err(err),
                }
            }
        }

        impl $crate::api_key::ApiKeyStore for $store {
            fn insert<'a>(
                &'a self,
                record: &'a $crate::api_key::ApiKeyRecord,
                max_per_subject: u32,
            ) -> $crate::store::StoreFuture<'a, $crate::api_key::Inserted> {
                Box::pin(async move {
                    self.insert_api_key_tx(record, max_per_subject)
                        .await
                        .map_err($crate::store::sql::store_error)
                })
            }

            fn find_by_prefix<'a>(
                &'a self,
                prefix: &'a str,
            ) -> $crate::store::StoreFuture<'a, Option<$crate::api_key::ApiKeyRecord>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT id, subject, name, prefix, hash, roles, created_at, expires_at, \
                         last_used_at FROM api_keys WHERE prefix = $1",
                    )
                    .bind(prefix)
                    .fetch_optional(self.pool())
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    row.as_ref()
                        .map(Self::api_key_from_row)
                        .transpose()
                        .map_err($crate::store::sql::store_error)
                })
            }

            fn list<'a>(
                &'a self,
                subject: &'a str,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::api_key::ApiKeyRecord>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT id, subject, name, prefix, hash, roles, created_at, expires_at, \
                         last_used_at FROM api_keys WHERE subject = $1 ORDER BY created_at, id",
                    )
                    .bind(subject)
                    .fetch_all(self.pool())
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    rows.iter()
                        .map(Self::api_key_from_row)
                        .collect::<Result<_, _>>()
                        .map_err($crate::store::sql::store_error)
                })
            }

            fn count<'a>(&'a self, subject: &'a str) -> $crate::store::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let count: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE subject = $1")
                            .bind(subject)
                            .fetch_one(self.pool())
                            .await
                            .map_err($crate::store::sql::store_error)?;
                    Ok(u64::try_from(count).unwrap_or(0))
                })
            }

            fn delete<'a>(
                &'a self,
                id: uuid::Uuid,
                subject: &'a str,
            ) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND subject = $2")
                        .bind(id.to_string())
                        .bind(subject)
                        .execute(self.pool())
                        .await
                        .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn delete_subject<'a>(
                &'a self,
                subject: &'a str,
            ) -> $crate::store::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM api_keys WHERE subject = $1")
                        .bind(subject)
                        .execute(self.pool())
                        .await
                        .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected())
                })
            }

            fn touch(&self, id: uuid::Uuid, at: i64) -> $crate::store::StoreFuture<'_, bool> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 \
                         AND (last_used_at IS NULL OR last_used_at < $2)",
                    )
                    .bind(id.to_string())
                    .bind(at)
                    .execute(self.pool())
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected() == 1)
                })
            }
        }
    };
}

#[cfg(feature = "sqlx-sqlite")]
impl_api_key_store!(super::SqliteStores, sqlx::sqlite::SqliteRow);
#[cfg(feature = "sqlx-postgres")]
impl_api_key_store!(super::PgStores, sqlx::postgres::PgRow);

#[cfg(test)]
mod tests {
    //! The SQL key stores against the conformance suite: SQLite in a temporary file;
    //! PostgreSQL in a fresh database on `BULWARK_TEST_DATABASE_URL` (skipped when it is
    //! unset). Each "instance" is a pool of its own over the same database.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use crate::api_key::ApiKeyStore;

    #[cfg(feature = "sqlx-sqlite")]
    mod sqlite {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

        use super::*;
        use crate::store::sql::SqliteStores;

        /// A migrated store over `stores.db` in `dir` (a new pool: another process).
        async fn open(dir: &tempfile::TempDir) -> SqliteStores {
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("stores.db"))
                .create_if_missing(true);
            let stores = SqliteStores::new(SqlitePool::connect_with(options).await.unwrap());
            stores.migrate().await.unwrap();
            stores
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn sqlite_api_key_store_conforms() {
            let dir = tempfile::tempdir().unwrap();
            crate::testing::api_key_store_conformance(Arc::new(open(&dir).await)).await;
        }

        /// Two processes on one file: the cap holds across them, and deletes on one are seen
        /// by the other.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn sqlite_api_key_instances_share_the_cap() {
            let dir = tempfile::tempdir().unwrap();
            let instances: Vec<Arc<dyn ApiKeyStore>> =
                vec![Arc::new(open(&dir).await), Arc::new(open(&dir).await)];
            crate::testing::api_key_instances_share_one_cap(instances).await;
        }

        /// A row whose columns were tampered with is a fault, not a panic.
        #[tokio::test]
        async fn sqlite_api_key_bad_rows_are_errors() {
            let dir = tempfile::tempdir().unwrap();
            let stores = open(&dir).await;
            for (id, hash, roles) in [
                ("not-a-uuid", vec![0u8; 32], "[]"),
                ("00000000-0000-4000-8000-000000000001", vec![0u8; 31], "[]"),
                (
                    "00000000-0000-4000-8000-000000000002",
                    vec![0u8; 32],
                    "admin",
                ),
            ] {
                sqlx::query("DELETE FROM api_keys")
                    .execute(stores.pool())
                    .await
                    .unwrap();
                sqlx::query(
                    "INSERT INTO api_keys (id, subject, name, prefix, hash, roles, created_at) \
                     VALUES ($1, 's', 'n', 'AbCd1234', $2, $3, 0)",
                )
                .bind(id)
                .bind(hash)
                .bind(roles)
                .execute(stores.pool())
                .await
                .unwrap();
                let err = stores.find_by_prefix("AbCd1234").await.unwrap_err();
                assert!(!err.is_unavailable());
                assert!(stores.list("s").await.is_err());
            }
        }
    }

    #[cfg(feature = "sqlx-postgres")]
    mod postgres {
        use super::*;
        use crate::store::sql::tests::postgres::Database;

        async fn open(db: &Database) -> Arc<dyn ApiKeyStore> {
            let stores = db.stores().await;
            stores.migrate().await.unwrap();
            Arc::new(stores)
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn postgres_api_key_store_conforms() {
            let Some(db) = Database::create().await else {
                return;
            };
            crate::testing::api_key_store_conformance(open(&db).await).await;
        }

        /// Three instances (pools) inserting for one subject at once: never past the cap.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn postgres_api_key_instances_share_the_cap() {
            let Some(db) = Database::create().await else {
                return;
            };
            let instances = vec![open(&db).await, open(&db).await, open(&db).await];
            crate::testing::api_key_instances_share_one_cap(instances).await;
        }

        #[test]
        fn subject_lock_keys_spread() {
            let keys: std::collections::HashSet<i32> = (0..1000)
                .map(|n| super::super::subject_lock(&n.to_string()))
                .collect();
            assert_eq!(keys.len(), 1000);
            assert_eq!(
                super::super::subject_lock("42"),
                super::super::subject_lock("42")
            );
        }
    }
}
