//! Hot reads of the embedded database on the request's own thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: a read costs two thread
//! hand-overs and a channel round trip, more than the read itself (a primary-key lookup with a
//! prepared statement takes a few microseconds). [`Readers`] keeps a few read-only connections
//! (one per async worker thread) that a request borrows without waiting and queries on its own
//! thread.
//!
//! **Why this is safe.**
//! - *Never waits.* A reader is taken with `try_lock`; when every reader is in use the caller
//!   goes through the pool instead. `busy_timeout` is 0: in WAL mode readers do not wait for the
//!   writer, and when SQLite would have to wait (a checkpoint resetting the WAL), the read fails
//!   at once with `SQLITE_BUSY` and the caller takes the pool path.
//! - *Bounded work.* Only single-row primary-key reads are served here (`O(log n)` pages, a
//!   prepared statement from the connection's cache), never scans, writes or user-sized work.
//!   The pages come from the connection's cache or the OS page cache; the file was written
//!   moments before by this process, so a read does not wait for the disk in practice.
//! - *Consistent.* Each read is its own transaction: WAL gives it a snapshot holding every
//!   transaction committed before it began, so a write answered 201 (committed through the pool
//!   before the answer) is seen by every later read — read-your-writes. A statement is reset
//!   when returned to the cache, so no reader holds a snapshot between requests.
//! - *Same rules.* The SQL is the pool's, with the same ownership condition.
//! - *Read-only.* Readers are opened `SQLITE_OPEN_READ_ONLY`: they cannot write whatever runs on
//!   them. Any error other than `SQLITE_BUSY` closes the reader (reopened on next use) and is
//!   answered by the pool path, which reports it if it is real.

use std::{
    path::PathBuf,
    sync::{Mutex, TryLockError},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, ffi::ErrorCode};

use crate::db::Item;

/// Page cache of each reader: enough for the hot pages of the tables read here.
const READER_CACHE_KIB: i64 = 1024;

/// Read-only connections borrowed without waiting.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    slots: Box<[Mutex<Option<Connection>>]>,
}

/// Why a hot read was not answered: the caller goes through the pool.
#[derive(Debug)]
pub(crate) struct NotServed;

impl Readers {
    /// `count` readers of the database file at `path`, opened on first use.
    pub(crate) fn new(path: PathBuf, count: usize) -> Self {
        Self {
            path,
            slots: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        Ok(conn)
    }

    /// Runs `read` on a free reader, on this thread.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, NotServed> {
        for slot in &self.slots {
            let mut guard = match slot.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::WouldBlock) => continue,
                // A panic while reading: start again with a fresh connection.
                Err(TryLockError::Poisoned(poisoned)) => {
                    let mut guard = poisoned.into_inner();
                    *guard = None;
                    slot.clear_poison();
                    guard
                }
            };
            if guard.is_none() {
                match self.open() {
                    Ok(conn) => *guard = Some(conn),
                    Err(err) => {
                        tracing::debug!(error = %err, "cannot open a hot reader; using the pool");
                        return Err(NotServed);
                    }
                }
            }
            let Some(conn) = guard.as_ref() else {
                return Err(NotServed);
            };
            return match read(conn) {
                Ok(value) => Ok(value),
                Err(err) if is_busy(&err) => Err(NotServed),
                Err(err) => {
                    tracing::debug!(error = %err, "hot read failed; reader closed, using the pool");
                    *guard = None;
                    Err(NotServed)
                }
            };
        }
        Err(NotServed)
    }

    /// `ItemRepo::get_item`: the item if it exists and `caller` owns it (or `admin`).
    pub(crate) fn get_item(
        &self,
        id: i64,
        caller: i64,
        admin: bool,
    ) -> Result<Option<Item>, NotServed> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT id, owner_id, name, description, price, tax, created_at, updated_at \
                 FROM items WHERE id = ?1 AND (owner_id = ?2 OR ?3)",
            )?
            .query_row((id, caller, admin), super::item_from_row)
            .optional()
        })
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
