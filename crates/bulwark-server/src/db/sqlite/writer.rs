//! Group commit of item creates on the embedded database.
//!
//! With `synchronous = FULL` every commit waits for the disk (an `fsync` of the WAL): one commit
//! per create made the disk's flush rate the ceiling of `POST /items/` (about 1 900 flushes a
//! second on the machine of docs/performance.md). [`ItemWriter`] keeps one read-write
//! connection on a thread of its own; creates queue for it, and each time it takes the queue
//! (up to [`MAX_BATCH`] creates) it inserts them in one transaction and commits once, so many
//! creates share one flush.
//!
//! **What does not change.**
//! - *Durability.* A create is answered only after the commit that holds it returned, with
//!   `synchronous = FULL`: a 201 means the row is on disk, as before (the kill -9 fault test of
//!   `reliability/` checks that no acknowledged create is lost).
//! - *Isolation of failures.* A failing `INSERT` is backed out alone (SQLite's default `ABORT`:
//!   the statement is undone, the transaction goes on) and only its caller gets the error. When
//!   the commit itself fails, every create of the batch gets the error and none is answered as
//!   created.
//! - *No waiting on a worker thread.* Callers wait asynchronously for the answer; the queue is
//!   bounded, so a caller finding it full waits (asynchronously) for room.
//! - *Same SQL* as the pool's create, same columns and timestamps.

use std::{path::Path, thread, time::Duration};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, ffi::ErrorCode};
use tokio::sync::{mpsc, oneshot};

use crate::db::{DbError, DbResult, Item, ItemFields};

/// The most creates committed together.
pub(crate) const MAX_BATCH: usize = 256;

/// Creates waiting for the writer before callers wait for room.
const QUEUE: usize = 1024;

/// Page cache of the writer connection (see `ItemWriter::start`).
const WRITER_CACHE_KIB: i64 = 128;

struct Create {
    owner_id: i64,
    fields: ItemFields,
    now: i64,
    answer: oneshot::Sender<DbResult<Item>>,
}

/// The group-committing writer of item creates. Clones share the thread.
#[derive(Debug, Clone)]
pub(crate) struct ItemWriter {
    queue: mpsc::Sender<Create>,
}

impl ItemWriter {
    /// Opens a read-write connection to the database file at `path` and starts its thread; the
    /// thread ends when the writer is dropped and the queue is empty.
    pub(crate) fn start(path: &Path) -> DbResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The pool's settings: the pool and this writer take turns at SQLite's write lock.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "full")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // Inserts append to the right edge of the table and its indexes: a small page cache
        // holds every page they touch, and the operating system caches the file anyway. SQLite's
        // default (2 MiB) would fill up with pages that a flood of creates never revisits.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        thread::Builder::new()
            .name("bulwark-sqlite-writer".to_owned())
            .spawn(move || run(conn, receiver))
            .map_err(|err| DbError::Sqlx(sqlx::Error::Io(err)))?;
        Ok(Self { queue })
    }

    /// Inserts an item; answers once the transaction holding it is committed.
    pub(crate) async fn create_item(
        &self,
        owner_id: i64,
        fields: &ItemFields,
        now: i64,
    ) -> DbResult<Item> {
        let (answer, answered) = oneshot::channel();
        let create = Create {
            owner_id,
            fields: fields.clone(),
            now,
            answer,
        };
        self.queue
            .send(create)
            .await
            .map_err(|_| DbError::Sqlx(sqlx::Error::WorkerCrashed))?;
        answered
            .await
            .map_err(|_| DbError::Sqlx(sqlx::Error::WorkerCrashed))?
    }
}

/// The writer thread: one transaction and one commit per batch of queued creates.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Create>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch);
    }
}

/// Inserts and commits `batch`, then answers (and empties) it.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Create>) {
    let outcome = (|| -> rusqlite::Result<Vec<rusqlite::Result<Item>>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = {
            let mut insert = tx.prepare_cached(
                "INSERT INTO items (owner_id, name, description, price, tax, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                 RETURNING id, owner_id, name, description, price, tax, created_at, updated_at",
            )?;
            batch
                .iter()
                .map(|c| {
                    let f = &c.fields;
                    insert.query_row(
                        (c.owner_id, &f.name, &f.description, f.price, f.tax, c.now),
                        super::item_from_row,
                    )
                })
                .collect()
        };
        tx.commit()?;
        Ok(inserted)
    })();
    match outcome {
        Ok(inserted) => {
            for (create, item) in batch.drain(..).zip(inserted) {
                let _ = create.answer.send(item.map_err(DbError::from));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, creates = batch.len(), "item batch not committed");
            for create in batch.drain(..) {
                let _ = create.answer.send(Err(DbError::from(&err)));
            }
        }
    }
}

impl From<&rusqlite::Error> for DbError {
    fn from(err: &rusqlite::Error) -> Self {
        Self::Embedded {
            busy: matches!(
                err.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            message: err.to_string(),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        Self::from(&err)
    }
}
