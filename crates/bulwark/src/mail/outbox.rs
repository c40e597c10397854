//! Delivery to a folder: [`OutboxMailer`] writes each message as an RFC 5322 `.eml` file, for
//! development and for deployments without an SMTP server (an operator reads or forwards them).
//!
//! Each file is named `<unix-millis>-<random>.eml`, so that a listing sorts oldest first, and
//! holds the very bytes an SMTP server would have received (headers, then a
//! multipart/alternative of the text and HTML bodies). Mails carry single-use tokens: the folder
//! is created `0700` when missing and each file is `0600`. A file is written under a temporary
//! name in the same folder, flushed to disk, then renamed: a reader never sees half a message.
//! The writing runs on Tokio's blocking threads, never on the async workers.

use std::{
    fs, io,
    io::Write as _,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use super::{Mail, MailError, MailFuture, Mailer, smtp::message};

/// A [`Mailer`] writing `.eml` files to a folder. See the [module docs](self).
///
/// ```no_run
/// # async fn demo() -> Result<(), bulwark::mail::MailError> {
/// use bulwark::mail::{Mail, Mailer, outbox::OutboxMailer};
///
/// let mailer = OutboxMailer::new("/var/lib/bulwark/outbox");
/// let mail = Mail {
///     to: "user@example.com".into(),
///     subject: "Hello".into(),
///     text: "Hello!".into(),
///     html: "<p>Hello!</p>".into(),
/// };
/// mailer.send("bulwark@example.com", &mail).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// A mailer writing to `dir`, created (mode 0700, with its missing parents) at the first
    /// message if missing. An existing folder keeps its permissions.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder the messages go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Mailer for OutboxMailer {
    fn send<'a>(&'a self, from: &'a str, mail: &'a Mail) -> MailFuture<'a> {
        Box::pin(async move {
            let bytes = message(from, mail)?.formatted();
            let dir = self.dir.clone();
            let written = tokio::task::spawn_blocking(move || write_eml(&dir, &bytes))
                .await
                .map_err(|e| MailError::Transient(format!("the outbox writer stopped: {e}")))?;
            match written {
                Ok(path) => {
                    tracing::debug!(path = %path.display(), "mail written to the outbox");
                    Ok(())
                }
                Err(e) => Err(MailError::Transient(format!(
                    "writing to the outbox {}: {e}",
                    self.dir.display()
                ))),
            }
        })
    }
}

/// Writes `bytes` to a new `.eml` file of `dir` (blocking); its path.
fn write_eml(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    create_dir(dir)?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = format!("{millis}-{}.eml", uuid::Uuid::new_v4().simple());
    let path = dir.join(&name);
    // A dot name: not an `.eml` a reader would pick up before the rename.
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = write_new(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, &path))
        // The rename itself survives a crash once the folder is synced.
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // Exactly 0600, whatever the umask took away.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(io::Error::other("it exists and is not a folder"));
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700);
        builder.create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let root = tempfile::tempdir().expect("tempdir");
        // A file where the folder should be: nothing can be written.
        let dir = root.path().join("outbox");
        fs::write(&dir, b"not a folder").expect("file");
        assert!(write_eml(&dir, b"x").is_err());
        let names: Vec<_> = fs::read_dir(root.path()).expect("list").collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn names_sort_by_time() {
        let root = tempfile::tempdir().expect("tempdir");
        let first = write_eml(root.path(), b"1").expect("written");
        std::thread::sleep(std::time::Duration::from_millis(3));
        let second = write_eml(root.path(), b"2").expect("written");
        let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        let (first, second) = (name(&first).expect("name"), name(&second).expect("name"));
        assert!(first < second, "{first} {second}");
        let (millis, rest) = first.split_once('-').expect("<millis>-<random>.eml");
        assert!(millis.parse::<u64>().is_ok(), "{first}");
        assert_eq!(rest.len(), 32 + ".eml".len(), "{first}");
    }
}
