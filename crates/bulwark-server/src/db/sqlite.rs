//! The embedded backend: one SQLite file in WAL mode with foreign keys on. Item reads are served
//! on the request's own thread by [`readers`] when they can be, else through the pool.

mod readers;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{DbResult, PoolConfig, sql::impl_repository};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Hot readers (none for an in-memory database, which only the pool's connections see).
    readers: Option<Arc<readers::Readers>>,
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
        let path = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // One reader per thread that may read at once: the async workers.
        let readers = (!in_memory && !path.as_os_str().is_empty()).then(|| {
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            Arc::new(readers::Readers::new(path, threads))
        });
        Ok(Self { pool, readers })
    }

    /// The item read: on this thread through a hot reader when one is free and the database
    /// does not make it wait, else through the pool.
    async fn get_item_fast(
        &self,
        id: i64,
        caller: i64,
        admin: bool,
    ) -> DbResult<Option<super::Item>> {
        if let Some(readers) = &self.readers
            && let Ok(found) = readers.get_item(id, caller, admin)
        {
            return Ok(found);
        }
        self.pooled_get_item(id, caller, admin).await
    }
}

impl_repository!(SqliteStore, SqliteRow);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::db::{ItemFields, ItemRepo as _, NewUser, UserRepo as _};

    fn fields(name: &str) -> ItemFields {
        ItemFields {
            name: name.to_owned(),
            description: None,
            price: 10.0,
            tax: Some(1.5),
        }
    }

    #[tokio::test]
    async fn hot_reads_see_every_committed_write_and_keep_the_ownership_rule() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("b.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let readers = store
            .readers
            .clone()
            .expect("a file database has hot readers");
        let user = |name: &str| NewUser {
            username: name.to_owned(),
            password_hash: "x".to_owned(),
            roles: Vec::new(),
            disabled: false,
        };
        let owner = store.create_user(user("owner")).await.unwrap().id;
        let other = store.create_user(user("other")).await.unwrap().id;

        let item = store.create_item(owner, &fields("first")).await.unwrap();
        // Read-your-writes: committed through the pool, seen at once by a reader.
        let read = readers.get_item(item.id, owner, false).unwrap();
        assert_eq!(read.as_ref(), Some(&item));
        // Another user's item is missing to them, visible to an admin.
        assert_eq!(readers.get_item(item.id, other, false).unwrap(), None);
        assert_eq!(
            readers.get_item(item.id, other, true).unwrap(),
            Some(item.clone())
        );

        let updated = store
            .update_item(item.id, owner, false, &fields("second"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            readers.get_item(item.id, owner, false).unwrap(),
            Some(updated)
        );
        store.delete_item(item.id, owner, false).await.unwrap();
        assert_eq!(readers.get_item(item.id, owner, false).unwrap(), None);
        // The trait method answers the same through its hot path.
        assert_eq!(store.get_item(item.id, owner, true).await.unwrap(), None);
    }
}
