//! The shared backend: PostgreSQL, for several instances on one database.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use super::{DbResult, PoolConfig, sql::impl_repository};

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const BACKEND: &'static str = "postgres";

    /// Connects to `url` and migrates the database, with the default [`PoolConfig`].
    ///
    /// # Errors
    /// When the server cannot be reached or the database migrated.
    pub async fn connect(url: &str) -> DbResult<Self> {
        Self::connect_with(url, PoolConfig::default()).await
    }

    /// Connects to `url` and migrates the database.
    ///
    /// While PostgreSQL is down, a query waits at most `pool.acquire_timeout` for a connection
    /// (sqlx retries refused connections until then) and fails with an error that
    /// [`is_unavailable`](super::DbError::is_unavailable). Every pooled connection is pinged
    /// before use (`test_before_acquire`), so connections broken by a restart are replaced
    /// without a failed request, and the pool recovers by itself once the server is back.
    ///
    /// # Errors
    /// When the server cannot be reached or the database migrated.
    ///
    /// With `pool.statement_timeout`, every connection runs with that `statement_timeout` (set
    /// at connection start-up, on top of whatever options `url` carries): a statement still
    /// running then is cancelled by the server and its query fails.
    pub async fn connect_with(url: &str, pool: PoolConfig) -> DbResult<Self> {
        let mut connect = PgConnectOptions::from_str(url)?;
        if let Some(limit) = pool.statement_timeout {
            // In milliseconds, PostgreSQL's unit for it; 0 would mean no limit.
            let millis = limit.as_millis().max(1);
            connect = connect.options([("statement_timeout", millis)]);
        }
        let pool = options(pool)
            .max_connections(16)
            .connect_with(connect)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool, for what the repository does not cover (readiness checks, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The item read: the pool (the server is a network hop away anyway).
    async fn get_item_fast(
        &self,
        id: i64,
        caller: i64,
        admin: bool,
    ) -> DbResult<Option<super::Item>> {
        self.pooled_get_item(id, caller, admin).await
    }

    /// The item create: the pool (PostgreSQL groups concurrent commits itself).
    async fn create_item_fast(
        &self,
        owner_id: i64,
        fields: &super::ItemFields,
        now: i64,
    ) -> DbResult<super::Item> {
        self.pooled_create_item(owner_id, fields, now).await
    }
}

/// Pool options shared by the store and the event connections.
pub(crate) fn options(pool: PoolConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .acquire_timeout(pool.acquire_timeout)
        .test_before_acquire(true)
}

impl_repository!(PgStore, PgRow);
