//! The shared backend: PostgreSQL, for several instances on one database.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

use super::{DbResult, sql::impl_repository};

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const BACKEND: &'static str = "postgres";

    /// Connects to `url` and migrates the database.
    ///
    /// # Errors
    /// When the server cannot be reached or the database migrated.
    pub async fn connect(url: &str) -> DbResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
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
}

impl_repository!(PgStore, PgRow);
