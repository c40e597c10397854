//! The shared backend: PostgreSQL, for several instances on one database.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use bulwark::store::sql::PgStores;

use super::{DbResult, PoolConfig, sql::impl_repository};

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The key ring and the revocation log, over `pool`.
    stores: PgStores,
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
        Ok(Self {
            stores: PgStores::new(pool.clone()),
            pool,
        })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::FutureExt as _;

    use super::*;

    /// The columns and indexes of the stores' tables in `schema`, schema names taken out.
    async fn store_schema(pool: &PgPool, schema: &str) -> Vec<String> {
        let columns: Vec<(String, String, String, String, Option<String>, String)> =
            sqlx::query_as(
                "SELECT table_name::TEXT, column_name::TEXT, data_type::TEXT, is_nullable::TEXT, \
                 column_default::TEXT, is_identity::TEXT FROM information_schema.columns \
                 WHERE table_schema = $1 \
                 AND table_name IN ('signing_keys', 'key_rotations', 'revocations', 'mail_queue') \
                 ORDER BY table_name, ordinal_position",
            )
            .bind(schema)
            .fetch_all(pool)
            .await
            .unwrap();
        let indexes: Vec<(String,)> = sqlx::query_as(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 \
             AND tablename IN ('signing_keys', 'key_rotations', 'revocations', 'mail_queue') \
             ORDER BY indexname",
        )
        .bind(schema)
        .fetch_all(pool)
        .await
        .unwrap();
        columns
            .into_iter()
            .map(|c| format!("{c:?}"))
            .chain(indexes.into_iter().map(|(i,)| i.replace(schema, "S")))
            .collect()
    }

    /// The library's `migrate()` creates the tables exactly as the server's migrations do, and
    /// leaves a server database as it is. Each side in a schema of its own, dropped afterwards.
    #[tokio::test]
    async fn the_library_stores_create_the_tables_of_the_migrations() {
        let Some(url) = std::env::var("BULWARK_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("BULWARK_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
            return;
        };
        let base = PgConnectOptions::from_str(&url).unwrap();
        let admin = PgPool::connect_with(base.clone()).await.unwrap();
        let tag = bulwark::secret::random_bytes(6)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let (server, library) = (format!("unit_{tag}_server"), format!("unit_{tag}_library"));
        for schema in [&server, &library] {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await
                .unwrap();
        }
        let in_schema = |schema: &str| {
            PgPoolOptions::new()
                .max_connections(2)
                .connect_with(base.clone().options([("search_path", schema)]))
        };
        // Run to the end (panics caught), so that the schemas go whatever happens.
        let outcome = std::panic::AssertUnwindSafe(async {
            let pool = in_schema(&server).await.unwrap();
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .unwrap();
            let migrated = store_schema(&admin, &server).await;
            PgStores::new(pool.clone()).migrate().await.unwrap();
            let again = store_schema(&admin, &server).await;
            let pool = in_schema(&library).await.unwrap();
            PgStores::new(pool).migrate().await.unwrap();
            (migrated, again, store_schema(&admin, &library).await)
        })
        .catch_unwind()
        .await;
        for schema in [&server, &library] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
        }
        let (migrated, again, library) =
            outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // 25 columns, and 5 indexes (4 primary keys and `revocations_created_at`).
        assert_eq!(migrated.len(), 30, "{migrated:#?}");
        assert_eq!(
            again, migrated,
            "migrate() leaves the server's tables as they are"
        );
        assert_eq!(library, migrated);
    }
}
