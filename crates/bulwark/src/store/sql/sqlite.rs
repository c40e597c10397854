//! The SQLite stores.

use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::store_error;
use crate::store::StoreError;

/// The tables and index of the stores, as in the bulwark server's SQLite migrations.
const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS signing_keys (
        kid        TEXT   PRIMARY KEY,
        alg        TEXT   NOT NULL,
        state      TEXT   NOT NULL,
        material   BLOB   NOT NULL,
        created_at BIGINT NOT NULL,
        retires_at BIGINT
    )",
    "CREATE TABLE IF NOT EXISTS key_rotations (
        slot       BIGINT PRIMARY KEY,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS revocations (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT    NOT NULL,
        subject     TEXT    NOT NULL,
        min_version BIGINT,
        expires_at  BIGINT,
        created_at  BIGINT  NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS revocations_created_at ON revocations (created_at)",
];

/// The key ring and the revocation log in an SQLite database: implements
/// [`KeyStore`](crate::jwt::store::KeyStore) and
/// [`RevocationStore`](crate::revocation::RevocationStore) over the pool it is given. See the
/// [module docs](super) for the tables and what the stores guarantee.
///
/// SQLite serves the instances of one machine that open the same file; for instances on
/// several machines, use [`PgStores`](super::PgStores) (feature `sqlx-postgres`). A busy
/// timeout on the pool's connections (sqlx sets 5 seconds by default) makes concurrent writers
/// wait for each other rather than fail.
///
/// # Examples
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use bulwark::store::sql::SqliteStores;
///
/// let pool = sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?;
/// let stores = SqliteStores::new(pool);
/// stores.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStores {
    pool: SqlitePool,
}

impl SqliteStores {
    /// The stores over `pool`. Nothing is read or created until a method runs: call
    /// [`SqliteStores::migrate`] once (at start-up) unless the tables exist.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool the stores use.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates the tables `signing_keys`, `key_rotations` and `revocations` and the index
    /// `revocations_created_at` (and, with the `mail` feature, the table `mail_queue`; with `totp`, `totp_steps`; with `api-key`, `api_keys` and its indexes), each only
    /// when it does not exist, in one transaction. Existing
    /// tables and their rows are left as they are, so calling it at every start is harmless.
    ///
    /// # Errors
    /// When the database cannot be reached or refuses a statement.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        #[cfg(feature = "mail")]
        sqlx::query(super::mail::SQLITE_TABLE)
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        #[cfg(feature = "totp")]
        sqlx::query(super::totp::TABLE)
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        #[cfg(feature = "api-key")]
        for statement in super::api_key::SQLITE_SCHEMA {
            sqlx::query(statement)
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }
}

impl_stores!(SqliteStores, SqliteRow);
