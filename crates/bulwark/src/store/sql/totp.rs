//! The last accepted TOTP time steps ([`TotpStepStore`](crate::totp::TotpStepStore)) in the
//! table `totp_steps`, one row per subject.
//!
//! A claim is one statement on both databases, an upsert whose update happens only when the
//! step moves forward:
//!
//! ```sql
//! INSERT INTO totp_steps (subject, last_step, expires_at) VALUES ($1, $2, $3)
//! ON CONFLICT (subject) DO UPDATE SET last_step = excluded.last_step, expires_at = excluded.expires_at
//! WHERE totp_steps.last_step < excluded.last_step
//! ```
//!
//! and the claim succeeded when a row was written. PostgreSQL locks the conflicting row and
//! checks the `WHERE` against its latest version, so of concurrent claims of one step exactly
//! one writes; SQLite runs one write statement at a time. Rows are kept after they expire (the
//! step only grows, so an old row refuses nothing a fresh one would accept):
//! [`TotpStepStore::purge`](crate::totp::TotpStepStore::purge) deletes the expired ones, for
//! example the rows of deleted users.

/// The table, the same text on SQLite and PostgreSQL, created by `migrate()`.
pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS totp_steps (
    subject    TEXT   PRIMARY KEY,
    last_step  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
)";

/// `impl_totp_steps!(Store)` implements [`TotpStepStore`](crate::totp::TotpStepStore) for a
/// store with a `pool()` accessor.
macro_rules! impl_totp_steps {
    ($store:ty) => {
        impl $crate::totp::TotpStepStore for $store {
            fn claim<'a>(
                &'a self,
                subject: &'a str,
                step: u64,
                expires_at: i64,
            ) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let step = i64::try_from(step)
                        .map_err(|_| $crate::store::StoreError::new("TOTP step out of range"))?;
                    let done = sqlx::query(
                        "INSERT INTO totp_steps (subject, last_step, expires_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (subject) DO UPDATE SET last_step = excluded.last_step, \
                         expires_at = excluded.expires_at WHERE totp_steps.last_step < excluded.last_step",
                    )
                    .bind(subject)
                    .bind(step)
                    .bind(expires_at)
                    .execute(self.pool())
                    .await
                    .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn purge(&self, now: i64) -> $crate::store::StoreFuture<'_, u64> {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM totp_steps WHERE expires_at < $1")
                        .bind(now)
                        .execute(self.pool())
                        .await
                        .map_err($crate::store::sql::store_error)?;
                    Ok(done.rows_affected())
                })
            }
        }
    };
}

#[cfg(feature = "sqlx-sqlite")]
impl_totp_steps!(super::SqliteStores);
#[cfg(feature = "sqlx-postgres")]
impl_totp_steps!(super::PgStores);

#[cfg(test)]
mod tests {
    //! The SQL step stores against the conformance suite: SQLite in a temporary file;
    //! PostgreSQL in a fresh database on `BULWARK_TEST_DATABASE_URL` (skipped when it is unset),
    //! with two instances (two pools) claiming at once.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use crate::totp::TotpStepStore;

    #[cfg(feature = "sqlx-sqlite")]
    mod sqlite {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

        use super::*;
        use crate::store::sql::SqliteStores;

        /// A migrated store over `stores.db` in `dir` (each call a new pool: another process).
        async fn open(dir: &tempfile::TempDir) -> Arc<SqliteStores> {
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("stores.db"))
                .create_if_missing(true);
            let stores = SqliteStores::new(SqlitePool::connect_with(options).await.unwrap());
            stores.migrate().await.unwrap();
            Arc::new(stores)
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn sqlite_totp_step_store_conforms() {
            let dir = tempfile::tempdir().unwrap();
            crate::testing::totp_step_store_conformance(open(&dir).await).await;
        }

        /// Two processes over one file: one claim of a step between them; the step survives a
        /// restart (and a second `migrate`).
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn sqlite_processes_share_and_keep_the_last_step() {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (open(&dir).await, open(&dir).await);
            let stores: [Arc<dyn TotpStepStore>; 2] = [a, b];
            crate::testing::totp_one_claim_among(&stores, "shared", 1000).await;
            drop(stores);
            let after = open(&dir).await;
            assert!(!after.claim("shared", 1000, i64::MAX).await.unwrap());
            assert!(after.claim("shared", 1001, i64::MAX).await.unwrap());
        }
    }

    #[cfg(feature = "sqlx-postgres")]
    mod postgres {
        use super::*;
        use crate::store::sql::tests::postgres::Database;

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn postgres_totp_step_store_conforms() {
            let Some(db) = Database::create().await else {
                return;
            };
            let stores = db.stores().await;
            stores.migrate().await.unwrap();
            crate::testing::totp_step_store_conformance(Arc::new(stores)).await;
        }

        /// Two instances (two pools) claiming one step from 8 tasks each: one claim wins.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn postgres_instances_claim_a_step_once() {
            let Some(db) = Database::create().await else {
                return;
            };
            let (a, b) = (db.stores().await, db.stores().await);
            a.migrate().await.unwrap();
            let stores: [Arc<dyn TotpStepStore>; 2] = [Arc::new(a), Arc::new(b)];
            crate::testing::totp_one_claim_among(&stores, "shared", 1000).await;
        }
    }
}
