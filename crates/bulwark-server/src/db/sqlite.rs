//! The embedded backend: one SQLite file in WAL mode with foreign keys on. Item reads are served
//! on the request's own thread by [`readers`] when they can be, else through the pool.

mod readers;
mod writer;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use bulwark::store::sql::SqliteStores;

use super::{DbResult, PoolConfig, sql::impl_repository};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The key ring and the revocation log, over `pool`.
    stores: SqliteStores,
    /// Hot readers (none for an in-memory database, which only the pool's connections see).
    readers: Option<Arc<readers::Readers>>,
    /// The group-committing writer of item creates (none for an in-memory database).
    writer: Option<writer::ItemWriter>,
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
    /// `synchronous = FULL`: a 201 answer means the row is committed *and* on disk. Item creates
    /// are committed in groups by [`writer`] (one disk flush for every create waiting).
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
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size(threads))
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // One reader per thread that may read at once: the async workers.
        let on_disk = !in_memory && !path.as_os_str().is_empty();
        let writer = on_disk
            .then(|| writer::ItemWriter::start(&path))
            .transpose()?;
        let readers = on_disk.then(|| Arc::new(readers::Readers::new(path, threads)));
        Ok(Self {
            stores: SqliteStores::new(pool.clone()),
            pool,
            readers,
            writer,
        })
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

    /// The item create: through the group-committing writer, else the pool.
    async fn create_item_fast(
        &self,
        owner_id: i64,
        fields: &super::ItemFields,
        now: i64,
    ) -> DbResult<super::Item> {
        match &self.writer {
            Some(writer) => writer.create_item(owner_id, fields, now).await,
            None => self.pooled_create_item(owner_id, fields, now).await,
        }
    }
}

impl_repository!(SqliteStore, SqliteRow);

/// An item from a row of the pool's item columns, read through rusqlite (the hot readers and the
/// writer).
fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<super::Item> {
    Ok(super::Item {
        id: row.get(0)?,
        owner_id: row.get(1)?,
        fields: super::ItemFields {
            name: row.get(2)?,
            description: row.get(3)?,
            price: row.get(4)?,
            tax: row.get(5)?,
        },
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// Pooled connections for `threads` async workers: two per worker, from 2 to 8. SQLite runs one
/// writer at a time whatever the pool, item reads go through per-thread readers and item creates
/// through the group-commit writer, so the pool serves the rest (logins, users, tokens, audit).
/// Each pooled connection is a worker thread with its own page cache (about 0.5 MB resident once
/// used), which a login flood on a one-core server opened for no gain.
fn pool_size(threads: usize) -> u32 {
    u32::try_from(threads.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .clamp(2, 8)
}

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

    #[test]
    fn the_pool_grows_with_the_workers_within_bounds() {
        assert_eq!(pool_size(1), 2);
        assert_eq!(pool_size(2), 4);
        assert_eq!(pool_size(4), 8);
        assert_eq!(pool_size(64), 8);
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
            email: None,
            email_verified: false,
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_creates_are_committed_and_a_failing_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("b.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        assert!(store.writer.is_some(), "a file database has a writer");
        let owner = store
            .create_user(NewUser {
                username: "owner".to_owned(),
                password_hash: "x".to_owned(),
                roles: Vec::new(),
                disabled: false,
                email: None,
                email_verified: false,
            })
            .await
            .unwrap()
            .id;
        // 200 creates at once (several batches); every tenth names a user that does not exist,
        // which the foreign key refuses.
        let creates = (0..200).map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let who = if n % 10 == 0 { owner + 1000 } else { owner };
                (
                    n,
                    store.create_item(who, &fields(&format!("item {n}"))).await,
                )
            })
        });
        let mut ids = std::collections::HashSet::new();
        for create in creates {
            let (n, outcome) = create.await.unwrap();
            if n % 10 == 0 {
                let err = outcome.expect_err("a missing owner is refused");
                assert!(!err.is_unavailable(), "{err}");
            } else {
                let item = outcome.unwrap();
                assert_eq!(item.fields, fields(&format!("item {n}")));
                assert_eq!(item.owner_id, owner);
                assert!(ids.insert(item.id), "ids are distinct");
                // Committed: seen through the pool.
                assert_eq!(
                    store.pooled_get_item(item.id, owner, false).await.unwrap(),
                    Some(item)
                );
            }
        }
        assert_eq!(ids.len(), 180);
        // And still there after the store is closed and opened again.
        drop(store);
        let store = SqliteStore::connect(&url).await.unwrap();
        let (_, total) = store.list_items(owner, None, 500, 0).await.unwrap();
        assert_eq!(total, 180);
    }

    /// The tables and index of the stores, as `sqlite_master` gives their SQL, with
    /// `IF NOT EXISTS` and the layout taken out.
    async fn store_schema(pool: &SqlitePool) -> Vec<(String, String)> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE name IN \
             ('signing_keys', 'key_rotations', 'revocations', 'revocations_created_at', 'mail_queue') \
             ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(name, sql)| {
                let sql = sql.replace(" IF NOT EXISTS", "");
                (name, sql.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect()
    }

    /// The library's `migrate()` (for applications without the server's migrations) creates the
    /// tables exactly as the server's migrations do, and leaves a server database as it is.
    #[tokio::test]
    async fn the_library_stores_create_the_tables_of_the_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("server.db").display());
        let server = SqliteStore::connect(&url).await.unwrap();
        let migrated = store_schema(&server.pool).await;
        assert_eq!(migrated.len(), 5);
        // `mail_queue` and `revocations`.
        assert!(migrated[1].1.contains("AUTOINCREMENT"), "{migrated:?}");
        assert!(migrated[2].1.contains("AUTOINCREMENT"), "{migrated:?}");
        server.stores.migrate().await.unwrap();
        assert_eq!(store_schema(&server.pool).await, migrated);

        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("library.db"))
            .create_if_missing(true);
        let library = SqlitePool::connect_with(options).await.unwrap();
        SqliteStores::new(library.clone()).migrate().await.unwrap();
        assert_eq!(store_schema(&library).await, migrated);
    }
}
