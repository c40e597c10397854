//! Starts a fixture app of `fixtures/` (the deliberately vulnerable FastAPI API or its fixed twin)
//! on a free loopback port, from the cached virtualenv that `fixtures/venv.sh` makes.
//!
//! `fixtures/serve.py` binds `127.0.0.1:0` itself and prints the port the kernel chose, so two
//! tests (or two helpers) never race for a port. The server is killed when the [`Fixture`] drops,
//! and exits by itself when its standard input closes, should the test process die first.

#![allow(dead_code)]

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// How long the virtualenv may take to be made (first run: pip installs the pins).
const VENV_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the app may take to bind and to answer `/openapi.json`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `fixtures/` folder.
pub(crate) fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Makes (once) the fixtures' virtualenv and returns its path.
pub(crate) fn venv() -> PathBuf {
    venv_of(None)
}

/// Makes (once) the virtualenv of `requirements` (the fixtures' when `None`) and returns its path.
pub(crate) fn venv_of(requirements: Option<&Path>) -> PathBuf {
    let script = fixtures_dir().join("venv.sh");
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .args(requirements)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(started.elapsed() < VENV_TIMEOUT, "venv.sh took too long");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let path = PathBuf::from(path.lines().last().unwrap_or_default());
    assert!(
        path.join("bin/python").exists(),
        "venv.sh printed {}, which has no bin/python",
        path.display()
    );
    path
}

/// A plain HTTP client for hand-made requests (following no redirect). reqwest is built here
/// without a default TLS provider: aws-lc-rs is installed for the process first.
pub(crate) fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        // uvicorn closes idle connections after 5 s; a request sent on one as it closes is reset.
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .expect("HTTP client")
}

/// A running fixture app; killed on drop.
pub(crate) struct Fixture {
    /// `vulnerable` or `fixed`.
    pub(crate) name: String,
    /// Its base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub(crate) url: String,
    child: Child,
    log: PathBuf,
}

impl Fixture {
    /// Starts `fixtures/<name>/app.py` and waits until `/openapi.json` answers 200.
    pub(crate) async fn start(name: &str) -> Fixture {
        Self::start_app(name, Path::new(name), &venv(), &[]).await
    }

    /// Starts the `app.py` of `app` (a fixture's name, or a folder) from `venv`, with `env`
    /// added, and waits until `/openapi.json` answers 200.
    pub(crate) async fn start_app(
        name: &str,
        app: &Path,
        venv: &Path,
        env: &[(&str, &Path)],
    ) -> Fixture {
        let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("audit-fixture-{name}-{}.log", std::process::id()));
        let log_file =
            File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let mut child = Command::new(venv.join("bin/python"))
            .arg(fixtures_dir().join("serve.py"))
            .arg(app)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {name} fixture: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut fixture = Fixture {
            name: name.to_owned(),
            url: String::new(),
            child,
            log,
        };
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| fixture.fail(&format!("printed {line:?}, not `PORT <n>`")));
        fixture.url = format!("http://127.0.0.1:{port}");

        let client = http_client();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = fixture.child.try_wait() {
                fixture.fail(&format!("exited with {status}"));
            }
            if let Ok(answer) = client
                .get(format!("{}/openapi.json", fixture.url))
                .send()
                .await
                && answer.status().is_success()
            {
                return fixture;
            }
            if Instant::now() > deadline {
                fixture.fail("did not answer /openapi.json in time");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the app wrote on stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn fail(&self, why: &str) -> ! {
        panic!(
            "the {} fixture {why}; its log ({}):\n{}",
            self.name,
            self.log.display(),
            self.log()
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
