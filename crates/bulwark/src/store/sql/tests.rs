//! The SQL stores against the conformance suites (SQLite in a temporary file; PostgreSQL in a
//! fresh database on `BULWARK_TEST_DATABASE_URL`, skipped when it is unset), and what the suites
//! cannot see: `migrate`, rotation races, outages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::{
    jwt::store::{KeyStore, StoredKey},
    revocation::{Revocation, RevocationStore},
};

fn key(n: usize) -> StoredKey {
    StoredKey {
        kid: format!("k{n}-{}", crate::secret::random_token(6)),
        alg: "HS256".into(),
        state: crate::jwt::KeyState::Active,
        sealed: vec![0, 1, 2, 255, u8::try_from(n % 256).unwrap()],
        created_at: 1_700_000_000,
        retires_at: None,
    }
}

/// Runs both suites, each on stores of its own (the suites expect empty stores).
async fn conforms<S: KeyStore + RevocationStore + 'static>(keys: S, revocations: S) {
    crate::testing::key_store_conformance(Arc::new(keys)).await;
    crate::testing::revocation_store_conformance(Arc::new(revocations)).await;
}

/// `migrate` a second time keeps the rows (and the stores go on working).
async fn migrate_again_keeps_rows<S: KeyStore + RevocationStore>(
    stores: &S,
    migrate: impl AsyncFnOnce() -> Result<(), crate::store::StoreError>,
) {
    let k = key(0);
    assert!(stores.rotate(&k, 0, Some(1)).await.unwrap());
    let r = Revocation::Token {
        jti: "kept".into(),
        expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + 3600,
    };
    stores.publish(&r).await.unwrap();
    migrate().await.unwrap();
    let listed = stores.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kid, k.kid);
    assert!(
        !stores.rotate(&key(1), 0, Some(1)).await.unwrap(),
        "slot kept"
    );
    assert!(stores.since(0).await.unwrap().0.contains(&r));
}

/// Many instances rotating in one slot at once: exactly one rotates, and one key is active.
async fn one_rotation_per_slot<S: KeyStore + 'static>(stores: Arc<S>) {
    let mut rotations = tokio::task::JoinSet::new();
    for n in 0..8 {
        let stores = Arc::clone(&stores);
        rotations.spawn(async move { stores.rotate(&key(n), 0, Some(7)).await });
    }
    let mut won = 0;
    while let Some(outcome) = rotations.join_next().await {
        if outcome.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "one rotation in the slot");
    let keys = stores.list().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].state, crate::jwt::KeyState::Active);
}

#[test]
fn outages_are_told_from_faults() {
    for unavailable in [
        sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed,
        sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
    ] {
        assert!(super::store_error(unavailable).is_unavailable());
    }
    assert!(!super::store_error(sqlx::Error::RowNotFound).is_unavailable());
    assert!(!super::store_error(sqlx::Error::Protocol("bad".into())).is_unavailable());
    #[cfg(feature = "sqlx-postgres")]
    {
        for code in ["08006", "08001", "57P01", "57P03", "53300"] {
            assert!(super::pg_unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "40001", "22P02"] {
            assert!(!super::pg_unavailable(code), "{code}");
        }
    }
    #[cfg(feature = "sqlx-sqlite")]
    {
        for code in [5, 517, 261, 6, 262] {
            assert!(super::sqlite_unavailable(code), "{code}");
        }
        for code in [1, 19, 2067, 787, 11] {
            assert!(!super::sqlite_unavailable(code), "{code}");
        }
    }
}

#[cfg(feature = "sqlx-sqlite")]
mod sqlite {
    use std::time::Duration;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

    use super::*;
    use crate::store::sql::SqliteStores;

    fn options(dir: &tempfile::TempDir) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(dir.path().join("stores.db"))
            .create_if_missing(true)
    }

    /// Stores over a new file, migrated; the folder goes when the guard is dropped.
    async fn open() -> (SqliteStores, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let pool = SqlitePool::connect_with(options(&dir)).await.unwrap();
        let stores = SqliteStores::new(pool);
        stores.migrate().await.unwrap();
        (stores, dir)
    }

    #[tokio::test]
    async fn sqlite_stores_conform() {
        let (keys, _a) = open().await;
        let (revocations, _b) = open().await;
        conforms(keys, revocations).await;
    }

    #[tokio::test]
    async fn sqlite_migrate_creates_the_tables_once_and_keeps_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SqlitePool::connect_with(options(&dir)).await.unwrap();
        let stores = SqliteStores::new(pool);
        let err = stores.list().await.expect_err("no table before migrate");
        assert!(!err.is_unavailable(), "a missing table is a fault: {err}");
        stores.migrate().await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(stores.pool())
        .await
        .unwrap();
        assert_eq!(
            tables,
            [
                #[cfg(feature = "api-key")]
                "api_keys",
                #[cfg(feature = "api-key")]
                "api_keys_prefix",
                #[cfg(feature = "api-key")]
                "api_keys_subject",
                "key_rotations",
                #[cfg(feature = "mail")]
                "mail_queue",
                "revocations",
                "revocations_created_at",
                "signing_keys",
                #[cfg(feature = "totp")]
                "totp_steps"
            ]
        );
        migrate_again_keeps_rows(&stores, async || stores.migrate().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_rotates_once_per_slot() {
        let (stores, _dir) = open().await;
        one_rotation_per_slot(Arc::new(stores)).await;
    }

    /// A database another connection keeps locked past the busy timeout, and a closed pool, are
    /// outages (503), not faults.
    #[tokio::test]
    async fn sqlite_busy_and_closed_are_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SqlitePool::connect_with(options(&dir).busy_timeout(Duration::from_millis(50)))
            .await
            .unwrap();
        let stores = SqliteStores::new(pool.clone());
        stores.migrate().await.unwrap();
        let mut holder = pool.acquire().await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut *holder)
            .await
            .unwrap();
        let err = stores
            .revoke("k")
            .await
            .expect_err("the database is locked");
        assert!(err.is_unavailable(), "{err}");
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        drop(holder);
        assert!(!stores.revoke("k").await.unwrap());
        pool.close().await;
        let err = stores.list().await.expect_err("the pool is closed");
        assert!(err.is_unavailable(), "{err}");
    }
}

#[cfg(feature = "sqlx-postgres")]
pub(super) mod postgres {
    use std::str::FromStr as _;

    use sqlx::postgres::{PgConnectOptions, PgPool};

    use super::*;
    use crate::store::sql::PgStores;

    /// A fresh database `bulwark_lib_<random>` on the server of `BULWARK_TEST_DATABASE_URL`,
    /// dropped with the guard (also the mail queue's tests, `super::mail`).
    pub(in crate::store::sql) struct Database {
        admin: PgConnectOptions,
        name: String,
        options: PgConnectOptions,
    }

    impl Database {
        /// `None` (with a message) when `BULWARK_TEST_DATABASE_URL` is not set.
        pub(in crate::store::sql) async fn create() -> Option<Self> {
            let Some(url) = std::env::var("BULWARK_TEST_DATABASE_URL")
                .ok()
                .filter(|u| !u.is_empty())
            else {
                eprintln!("BULWARK_TEST_DATABASE_URL is not set: PostgreSQL variant skipped");
                return None;
            };
            let admin = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
            let name = format!(
                "bulwark_lib_{}",
                crate::secret::random_bytes(8)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let pool = PgPool::connect_with(admin.clone())
                .await
                .expect("PostgreSQL reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&pool)
                .await
                .expect("create the test database");
            pool.close().await;
            let options = admin.clone().database(&name);
            Some(Self {
                admin,
                name,
                options,
            })
        }

        /// Stores over the database (not migrated); each call a new pool: another instance.
        pub(in crate::store::sql) async fn stores(&self) -> PgStores {
            PgStores::new(PgPool::connect_with(self.options.clone()).await.unwrap())
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            // A runtime of its own: the test's may be shutting down.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(pool) = PgPool::connect_with(admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }

    #[tokio::test]
    async fn postgres_stores_conform() {
        let (Some(a), Some(b)) = (Database::create().await, Database::create().await) else {
            return;
        };
        let (keys, revocations) = (a.stores().await, b.stores().await);
        keys.migrate().await.unwrap();
        revocations.migrate().await.unwrap();
        conforms(keys, revocations).await;
    }

    #[tokio::test]
    async fn postgres_migrate_creates_the_tables_once_and_keeps_their_rows() {
        let Some(db) = Database::create().await else {
            return;
        };
        let stores = db.stores().await;
        let err = stores.list().await.expect_err("no table before migrate");
        assert!(!err.is_unavailable(), "a missing table is a fault: {err}");
        // Instances starting together: the advisory lock makes their creates take turns.
        let other = db.stores().await;
        let (one, two) = tokio::join!(stores.migrate(), other.migrate());
        one.unwrap();
        two.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT relname::TEXT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') \
             AND c.relname NOT LIKE '%_pkey' ORDER BY relname",
        )
        .fetch_all(stores.pool())
        .await
        .unwrap();
        assert_eq!(
            tables,
            [
                #[cfg(feature = "api-key")]
                "api_keys",
                #[cfg(feature = "api-key")]
                "api_keys_prefix",
                #[cfg(feature = "api-key")]
                "api_keys_subject",
                "key_rotations",
                #[cfg(feature = "mail")]
                "mail_queue",
                "revocations",
                "revocations_created_at",
                "signing_keys",
                #[cfg(feature = "totp")]
                "totp_steps"
            ]
        );
        migrate_again_keeps_rows(&stores, async || stores.migrate().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_rotates_once_per_slot() {
        let Some(db) = Database::create().await else {
            return;
        };
        let stores = db.stores().await;
        stores.migrate().await.unwrap();
        one_rotation_per_slot(Arc::new(stores)).await;
    }

    /// A closed pool is an outage, and so is a server that refuses the connection.
    #[tokio::test]
    async fn postgres_unreachable_is_unavailable() {
        let Some(db) = Database::create().await else {
            return;
        };
        let stores = db.stores().await;
        stores.pool().close().await;
        let err = stores.list().await.expect_err("the pool is closed");
        assert!(err.is_unavailable(), "{err}");
        // Nothing listens on port 1.
        let refused = PgStores::new(
            sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(std::time::Duration::from_millis(500))
                .connect_lazy_with(db.options.clone().port(1)),
        );
        let err = refused.list().await.expect_err("no server");
        assert!(err.is_unavailable(), "{err}");
    }
}
