//! The embedded backend: one SQLite file in WAL mode with foreign keys on.

use std::{str::FromStr, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{DbResult, PoolConfig, sql::impl_repository};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// Opens (creating if needed) the file of `url` and migrates it, with the default
    /// [`PoolConfig`].
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub async fn connect(url: &str) -> DbResult<Self> {
        Self::connect_with(url, PoolConfig::default()).await
    }

    /// Opens (creating if needed) the file of `url` and migrates it.
    ///
    /// `synchronous = FULL`: a 201 answer means the row is committed *and* on disk.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub async fn connect_with(url: &str, pool: PoolConfig) -> DbResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(sqlx::Error::Io)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

impl_repository!(SqliteStore, SqliteRow);
