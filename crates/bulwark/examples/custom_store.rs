//! A revocation store of your own: revocations kept in a file of tab-separated lines, each
//! with its sequence number, so that they survive a restart of a single instance. It passes the
//! conformance suite every backend of the library passes (`bulwark::testing`, the `testing`
//! feature), which is what this program runs:
//!
//! ```sh
//! cargo run -p bulwark-axum --features testing --example custom_store
//! ```
//!
//! How to write one: implement the three methods of
//! [`RevocationStore`](bulwark::revocation::RevocationStore); keep blocking work (file I/O,
//! a synchronous database driver) off the async threads with `spawn_blocking`; map failures
//! to `StoreError` (`StoreError::unavailable` when a retry may succeed, so that the server
//! answers 503 rather than 500); never skip an entry in `since`.

use std::{
    fs::OpenOptions,
    io::{BufRead as _, BufReader, Write as _},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use bulwark::{
    revocation::{Revocation, RevocationStore},
    store::{StoreError, StoreFuture},
};

/// Revocations in a file (and the last sequence number in a second one), one per line: `seq<TAB>published<TAB>token<TAB>jti<TAB>expires_at`
/// or `seq<TAB>published<TAB>subject<TAB>sub<TAB>min_version`. The cursor is a sequence number.
#[derive(Debug)]
struct FileRevocationStore {
    path: PathBuf,
    /// Serializes this process's writes and purges.
    lock: Arc<Mutex<()>>,
}

/// One line of the file.
struct Entry {
    seq: u64,
    published: i64,
    revocation: Revocation,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn io_error(err: std::io::Error) -> StoreError {
    StoreError::unavailable(format!("revocation file: {err}"))
}

/// A line back into an entry; `None` for a line this version does not know (skipped, never an
/// error: a newer writer may add kinds).
fn parse(line: &str) -> Option<Entry> {
    let mut fields = line.split('\t');
    let seq = fields.next()?.parse().ok()?;
    let published = fields.next()?.parse().ok()?;
    let revocation = match (fields.next()?, fields.next()?, fields.next()?) {
        ("token", jti, expires_at) => Revocation::Token {
            jti: jti.to_owned(),
            expires_at: expires_at.parse().ok()?,
        },
        ("subject", sub, min_version) => Revocation::Subject {
            sub: sub.to_owned(),
            min_version: min_version.parse().ok()?,
        },
        _ => return None,
    };
    Some(Entry {
        seq,
        published,
        revocation,
    })
}

fn format_line(entry: &Entry) -> Option<String> {
    let (seq, published) = (entry.seq, entry.published);
    match &entry.revocation {
        Revocation::Token { jti, expires_at } => {
            Some(format!("{seq}\t{published}\ttoken\t{jti}\t{expires_at}\n"))
        }
        Revocation::Subject { sub, min_version } => Some(format!(
            "{seq}\t{published}\tsubject\t{sub}\t{min_version}\n"
        )),
        // `Revocation` may gain kinds: this store cannot keep them.
        _ => None,
    }
}

/// Every entry of the file at `path` (none when it does not exist yet). Blocking.
fn read(path: &std::path::Path) -> std::io::Result<Vec<Entry>> {
    match std::fs::File::open(path) {
        Ok(file) => Ok(BufReader::new(file)
            .lines()
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .filter_map(|line| parse(line))
            .collect()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

impl FileRevocationStore {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Runs `job` on the file, under the lock, off the async threads.
    async fn with_file<T: Send + 'static>(
        &self,
        job: impl FnOnce(&std::path::Path) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (path, lock) = (self.path.clone(), Arc::clone(&self.lock));
        tokio::task::spawn_blocking(move || {
            let _held = lock
                .lock()
                .map_err(|_| std::io::Error::other("poisoned lock"))?;
            job(&path)
        })
        .await
        .map_err(|err| StoreError::new(format!("file task: {err}")))?
        .map_err(io_error)
    }
}

impl RevocationStore for FileRevocationStore {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        let revocation = revocation.clone();
        Box::pin(async move {
            self.with_file(move |path| {
                // The last number handed out is kept apart, so that a purge that removes the
                // last entries never hands their numbers out again (a reader whose cursor is
                // past them would skip the new entries).
                let counter = path.with_extension("seq");
                let seq = match std::fs::read_to_string(&counter) {
                    Ok(text) => text.trim().parse::<u64>().map_err(std::io::Error::other)? + 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => 1,
                    Err(err) => return Err(err),
                };
                std::fs::write(&counter, seq.to_string())?;
                let entry = Entry {
                    seq,
                    published: now(),
                    revocation,
                };
                let line = format_line(&entry).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "unsupported kind")
                })?;
                let mut file = OpenOptions::new().create(true).append(true).open(path)?;
                file.write_all(line.as_bytes())?;
                // Durable before the caller is told it is done.
                file.sync_data()
            })
            .await
        })
    }

    fn since(&self, cursor: u64) -> StoreFuture<'_, (Vec<Revocation>, u64)> {
        Box::pin(async move {
            let entries = self.with_file(read).await?;
            let next = entries.last().map_or(cursor, |e| e.seq.max(cursor));
            let found = entries
                .into_iter()
                .filter(|e| e.seq > cursor)
                .map(|e| e.revocation)
                .collect();
            Ok((found, next))
        })
    }

    fn purge(&self, expired_before: i64, subjects_before: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            self.with_file(move |path| {
                let entries = read(path)?;
                let before = entries.len();
                let kept: Vec<Entry> = entries
                    .into_iter()
                    .filter(|e| match &e.revocation {
                        Revocation::Token { expires_at, .. } => *expires_at >= expired_before,
                        _ => e.published >= subjects_before,
                    })
                    .collect();
                if kept.len() == before {
                    return Ok(0);
                }
                let text: String = kept.iter().filter_map(format_line).collect();
                let fresh = path.with_extension("tmp");
                std::fs::write(&fresh, text)?;
                std::fs::rename(&fresh, path)?;
                Ok((before - kept.len()) as u64)
            })
            .await
        })
    }
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("bulwark-custom-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let store = FileRevocationStore::new(dir.join("revocations.tsv"));
    bulwark::testing::revocation_store_conformance(Arc::new(store)).await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("FileRevocationStore passes the revocation store conformance suite");
}
