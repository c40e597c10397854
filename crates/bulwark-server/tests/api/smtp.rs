//! A real SMTP server for the server's mail tests: the library's aiosmtpd script
//! (crates/bulwark/tests/smtp/smtp_server.py, with its pinned requirements), run by the
//! virtualenv's Python cached as `~/.cache/bulwark-mail/venv-<hash of requirements.txt>` — the
//! same one crates/bulwark/tests/mail_smtp.rs builds and uses.
//!
//! The script listens on a free port it picks; to stop a server and start it again on the same
//! port (an outage), or to start one on a port chosen beforehand (a server that comes up late),
//! a short bootstrap run with `python -c` hands it the port instead of 0.
//! Each start writes what it receives to a folder of its own; [`SmtpServer::delivered`] reads
//! them all, oldest first.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::mailbox::{self, Delivered};

/// The library's test SMTP server and its pinned requirements.
fn library_smtp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bulwark/tests/smtp")
}

/// Runs the script (argv[1]) with its arguments, listening on `BULWARK_SMTP_TEST_PORT` where
/// it asks for port 0.
const FIXED_PORT_BOOTSTRAP: &str = r#"
import asyncio.base_events, os, runpy, sys
fixed = int(os.environ["BULWARK_SMTP_TEST_PORT"])
create_server = asyncio.base_events.BaseEventLoop.create_server
async def on_fixed_port(self, factory, host=None, port=None, *args, **kwargs):
    return await create_server(self, factory, host, fixed if port == 0 else port, *args, **kwargs)
asyncio.base_events.BaseEventLoop.create_server = on_fixed_port
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"#;

/// The virtualenv's Python with the pinned aiosmtpd, made once per requirements file (as
/// crates/bulwark/tests/mail_smtp.rs `python()` does, at the same path): built in a temporary
/// folder and renamed, so that test processes running at once never see half a virtualenv.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let requirements_file = library_smtp_dir().join("requirements.txt");
        let requirements =
            std::fs::read_to_string(&requirements_file).expect("the library's requirements.txt");
        // SHA-256 of the file, first 8 bytes in hex (as the library's tests name it).
        let hash = bulwark::secret::fingerprint(&requirements)[..16].to_owned();
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .expect("HOME or XDG_CACHE_HOME")
            .join("bulwark-mail");
        let venv = cache.join(format!("venv-{hash}"));
        let python = venv.join("bin/python");
        let works = |python: &Path| {
            Command::new(python)
                .args(["-c", "import aiosmtpd"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if works(&python) {
            return python;
        }
        std::fs::create_dir_all(&cache).expect("cache folder");
        let building = cache.join(format!("venv-{hash}.building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        let base = std::env::var("BULWARK_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let status = Command::new(&base)
            .args(["-m", "venv"])
            .arg(&building)
            .status()
            .unwrap_or_else(|e| panic!("{base} -m venv: {e} (the mail tests need Python 3)"));
        assert!(status.success(), "{base} -m venv failed");
        let status = Command::new(building.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-input", "--require-hashes", "--only-binary=:all:"])
            .arg("-r")
            .arg(&requirements_file)
            .status()
            .expect("pip");
        assert!(
            status.success(),
            "pip install -r {} failed",
            requirements_file.display()
        );
        if std::fs::rename(&building, &venv).is_err() {
            if works(&python) {
                // Another test process won the race: its virtualenv is as good as this one.
                let _ = std::fs::remove_dir_all(&building);
            } else {
                let _ = std::fs::remove_dir_all(&venv);
                std::fs::rename(&building, &venv).expect("virtualenv in place");
            }
        }
        assert!(
            works(&python),
            "{} cannot import aiosmtpd",
            python.display()
        );
        python
    })
}

/// One message the SMTP server accepted: the envelope the session saw, and the parsed mail.
#[derive(Debug, Clone)]
pub struct Received {
    /// `MAIL FROM`.
    pub mail_from: String,
    /// `RCPT TO`s.
    pub rcpt_tos: Vec<String>,
    /// Whether the session was encrypted.
    pub tls: bool,
    /// The login the session authenticated with, if any.
    pub login: Option<String>,
    /// The message as sent after DATA.
    pub raw: Vec<u8>,
    /// The message, parsed.
    pub mail: Delivered,
}

/// An aiosmtpd process (killed when dropped), which can be stopped and started again on the
/// same port.
pub struct SmtpServer {
    child: Option<Child>,
    pub port: u16,
    reject: Option<String>,
    /// `--mode ...` and the rest of the script's arguments.
    mode: Vec<String>,
    out: tempfile::TempDir,
    /// Starts so far (each writes to `out/<n>`).
    starts: usize,
}

impl SmtpServer {
    /// A server on a free port.
    pub fn start() -> Self {
        Self::launch(None, None)
    }

    /// A server refusing recipients that contain `substring` with 550.
    pub fn rejecting(substring: &str) -> Self {
        Self::launch(None, Some(substring))
    }

    /// A server on `port` (one chosen beforehand, e.g. by `process::free_port`).
    pub fn start_on(port: u16) -> Self {
        Self::launch(Some(port), None)
    }

    /// A server offering STARTTLS with `cert`/`key` (PEM files) and requiring AUTH as
    /// `login`/`password` (only over TLS).
    pub fn starttls_with_auth(
        cert: &std::path::Path,
        key: &std::path::Path,
        login: &str,
        password: &str,
    ) -> Self {
        let mut server = Self::idle(None, None);
        server.mode = vec![
            "--mode".into(),
            "starttls".into(),
            "--tls".into(),
            cert.display().to_string(),
            key.display().to_string(),
            "--auth".into(),
            login.into(),
            password.into(),
        ];
        server.start_again();
        server
    }

    fn launch(port: Option<u16>, reject: Option<&str>) -> Self {
        let mut server = Self::idle(port, reject);
        server.start_again();
        server
    }

    fn idle(port: Option<u16>, reject: Option<&str>) -> Self {
        Self {
            child: None,
            port: port.unwrap_or(0),
            reject: reject.map(str::to_owned),
            mode: vec!["--mode".into(), "plain".into()],
            out: tempfile::tempdir().expect("temp dir"),
            starts: 0,
        }
    }

    /// Kills the server (as a crash would: no goodbye to connected clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on its port, once it has stopped; returns once it listens.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the SMTP server is running");
        self.starts += 1;
        let out = self.out.path().join(self.starts.to_string());
        std::fs::create_dir(&out).expect("output folder");
        let mut command = Command::new(python());
        if self.port == 0 {
            command.arg(library_smtp_dir().join("smtp_server.py"));
        } else {
            command
                .args(["-c", FIXED_PORT_BOOTSTRAP])
                .arg(library_smtp_dir().join("smtp_server.py"))
                .env("BULWARK_SMTP_TEST_PORT", self.port.to_string());
        }
        command.arg(&out).args(&self.mode);
        if let Some(reject) = &self.reject {
            command.args(["--reject", reject]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP server starts");
        let mut line = String::new();
        let read = tokio::task::block_in_place(|| {
            BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)
        });
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port.filter(|_| read.is_ok()) else {
            let _ = child.kill();
            let status = child.wait();
            panic!("the SMTP server did not start ({status:?}), printed {line:?}");
        };
        assert!(self.port == 0 || self.port == port, "listens on {port}");
        self.port = port;
        self.child = Some(child);
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, by every start, oldest first (each is on disk before
    /// the server's 250).
    pub fn delivered(&self) -> Vec<Received> {
        let mut messages = Vec::new();
        for start in 1..=self.starts {
            let dir = self.out.path().join(start.to_string());
            for n in 1.. {
                let base = dir.join(n.to_string());
                // The script writes `<n>.eml`, then `<n>.json`: a message is complete once its
                // `.json` is there.
                let Ok(meta) = std::fs::read(base.with_extension("json")) else {
                    break;
                };
                let raw = std::fs::read(base.with_extension("eml")).expect("message");
                let meta: serde_json::Value = serde_json::from_slice(&meta).expect("meta JSON");
                messages.push(Received {
                    mail_from: meta["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: meta["rcpt_tos"]
                        .as_array()
                        .expect("rcpt_tos")
                        .iter()
                        .map(|r| r.as_str().unwrap_or_default().to_owned())
                        .collect(),
                    tls: meta["tls"].as_bool().unwrap_or_default(),
                    login: meta["login"].as_str().map(str::to_owned),
                    mail: mailbox::parse(&raw),
                    raw,
                });
            }
        }
        messages
    }

    /// Waits until at least `count` messages have arrived (at most `within`), and answers all
    /// of them.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} mails received after {within:?}",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
