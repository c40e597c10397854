//! The real `bulwark` binary as a child process: a command with a clean environment, free
//! ports, `bulwark serve` logging to a file, waiting for it, and a guard that kills it when
//! dropped (so that a failed assertion never leaves a server running). [`BinEnv`] runs commands
//! on a data folder and database of their own; [`Instance`] and [`Cluster`] are `serve`
//! processes on given ports, with a client for each.

use std::{
    fs::File,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Client, Method, Response};
use serde_json::Value;

use crate::helpers::{Backend, DatabaseGuard, Http, fresh_database_url, unique};

pub const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// The binary with a clean environment (only the variables named here reach it) and cheap
/// password hashing, in `dir` (also its data folder), with no master secret: add the arguments,
/// and a master secret as the test needs.
pub fn command(dir: &Path, database_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("NO_COLOR", "1")
        .env("BULWARK_DATA_DIR", dir)
        .env("BULWARK_DATABASE_URL", database_url)
        .env("BULWARK_PASSWORD_HASHING__MEMORY_KIB", "1024")
        .env("BULWARK_PASSWORD_HASHING__ITERATIONS", "1")
        .stdin(Stdio::null());
    command
}

/// `bulwark [--config <config>] serve --bind 127.0.0.1:<port>` in `dir`, with a master secret.
pub fn serve_command(
    dir: &Path,
    port: u16,
    database_url: &str,
    master_secret: &str,
    config: Option<&Path>,
) -> Command {
    let mut command = command(dir, database_url);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("BULWARK_MASTER_SECRET", master_secret);
    command
}

/// `N` distinct free ports, found by binding port 0 and releasing the sockets.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("addr").port())
}

/// A free port on loopback (bound and released: good enough for a test).
pub fn free_port() -> u16 {
    let [port] = free_ports::<1>();
    port
}

/// A child process, killed when dropped.
pub struct KillOnDrop(pub Child);

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` with both standard output and standard error written to a new file `log`.
pub fn spawn_logging_all(command: &mut Command, log: &Path) -> KillOnDrop {
    let log = File::create(log).expect("log file");
    let child = command
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("the server starts");
    KillOnDrop(child)
}

/// Starts `command` (a `serve`) with standard error to a new file `log` (not a terminal) and
/// standard output discarded.
pub fn spawn_logging_stderr(command: &mut Command, log: &Path) -> KillOnDrop {
    let file = File::create(log).expect("log file");
    command.stdout(Stdio::null()).stderr(Stdio::from(file));
    KillOnDrop(command.spawn().expect("serve starts"))
}

/// The text of a log file so far (empty if it cannot be read).
pub fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The port named by the first "listening ... 127.0.0.1:<port>" line of a `serve` log.
pub fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .filter(|l| l.contains("listening"))
        .find_map(|l| {
            let at = l.find("127.0.0.1:")? + "127.0.0.1:".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
}

/// Waits (at most 30 s) for `GET url` to answer 200; panics with the log when `child` exits
/// first ("`who` exited with ...") or the time runs out ("`who` not `state` after 30 s").
pub async fn wait_for_200(
    child: &mut Child,
    client: &Client,
    url: &str,
    log: &Path,
    who: &str,
    state: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{who} exited with {status}:\n{}", read_log(log));
        }
        if let Ok(response) = client.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} not {state} after 30 s:\n{}",
            read_log(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A finished command.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn assert_failure(&self) -> &Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure exit code, got {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Standard output then standard error.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `command` to completion on a blocking thread, writing `stdin` to it if given and
/// killing it after 60 s.
pub async fn run(mut command: Command, stdin: Option<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().expect("the binary starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if rx.recv_timeout(Duration::from_secs(60)).is_err() {
                // Still running after 60 s: stop it so the test fails instead of hanging.
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        });
        let output = child.wait_with_output().expect("the binary finishes");
        let _ = tx.send(());
        let _ = watchdog.join();
        Run::from(output)
    })
    .await
    .expect("command thread")
}

/// Runs `bulwark ARGS` with the data folder, database URL and master secret of `settings` (an
/// in-process app's), asserting that it succeeds.
pub async fn run_on(settings: &bulwark_server::config::Settings, args: &[&str]) -> Run {
    use secrecy::ExposeSecret as _;
    let secret = settings
        .master_secret
        .as_ref()
        .expect("master secret")
        .expose_secret()
        .to_owned();
    let mut command = command(&settings.data_dir, &settings.database_url);
    command.args(args).env("BULWARK_MASTER_SECRET", secret);
    let run = run(command, None).await;
    run.assert_success();
    run
}

// ---------------------------------------------------------------------------------------------
// Commands on a folder and database of their own
// ---------------------------------------------------------------------------------------------

/// A data folder, a database and a master secret for the binary.
pub struct BinEnv {
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub master_secret: String,
    _database: DatabaseGuard,
}

impl BinEnv {
    pub async fn new(backend: Backend) -> Self {
        let (database_url, database) = fresh_database_url(&backend).await;
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            database_url,
            master_secret: bulwark::secret::random_token(32),
            _database: database,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The command with a clean environment (only the variables named here reach it) and cheap
    /// password hashing, with no master secret: add one as the test needs.
    pub fn bare_command(&self, args: &[&str]) -> Command {
        let mut command = command(self.dir.path(), &self.database_url);
        command.args(args);
        command
    }

    /// [`BinEnv::bare_command`] with the master secret in `BULWARK_MASTER_SECRET`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare_command(args);
        command.env("BULWARK_MASTER_SECRET", &self.master_secret);
        command
    }

    /// Runs `bulwark ARGS` (see [`BinEnv::command`]) to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        run(self.command(args), None).await
    }

    /// Runs `bulwark ARGS` (see [`BinEnv::command`]) to completion with `stdin` written to it.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run(self.command(args), Some(stdin.to_owned())).await
    }

    /// Writes a file in the data folder.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// Starts `command` (a `serve`) with standard error to a file (not a terminal) and waits
    /// for the port it listens on.
    pub async fn serve(&self, mut command: Command) -> Server {
        let log = self.data_dir().join(format!("{}.log", unique("serve")));
        let mut server = Server {
            child: spawn_logging_stderr(&mut command, &log),
            log,
            port: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = server.log_text();
            if let Some(port) = listening_port(&text) {
                server.port = port;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("serve exited with {status}: {text}");
            }
            assert!(Instant::now() < deadline, "serve never listened: {text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A running `bulwark serve` started by [`BinEnv::serve`], killed when dropped.
pub struct Server {
    pub child: KillOnDrop,
    pub log: PathBuf,
    pub port: u16,
}

impl Server {
    pub fn base(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }

    /// SIGTERM, then waits (at most 15 s) for a graceful exit; answers the whole log.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "serve exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.log_text()
    }
}

// ---------------------------------------------------------------------------------------------
// Instances on given ports
// ---------------------------------------------------------------------------------------------

/// Turns rate limiting off, for tests that log in as often as they need to.
pub const RATE_LIMITS_OFF: (&str, &str) = ("BULWARK_RATE_LIMITS__ENABLED", "false");

/// One `bulwark serve` child process in a data folder of its own (its output in `server.log`
/// there), with a client for it; killed when dropped.
pub struct Instance {
    pub name: &'static str,
    pub child: KillOnDrop,
    pub port: u16,
    pub http: Http,
    pub dir: tempfile::TempDir,
}

impl Instance {
    /// `bulwark [--config bulwark.toml] serve --bind 127.0.0.1:<port>` with `env` added; the
    /// config file holds `config` when given.
    pub fn start(
        name: &'static str,
        port: u16,
        database_url: &str,
        master_secret: &str,
        config: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = config.map(|config| {
            let path = dir.path().join("bulwark.toml");
            std::fs::write(&path, config).expect("config written");
            path
        });
        let mut command = serve_command(
            dir.path(),
            port,
            database_url,
            master_secret,
            config_path.as_deref(),
        );
        command.envs(env.iter().copied());
        let child = spawn_logging_all(&mut command, &dir.path().join("server.log"));
        Self {
            name,
            child,
            port,
            http: Http::new(format!("http://127.0.0.1:{port}")),
            dir,
        }
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("server.log"))
    }

    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    /// Waits for `GET path` to answer 200 (see [`wait_for_200`]); `state` names what that means.
    pub async fn wait_for(&mut self, path: &str, state: &str) {
        let url = self.url(path);
        let log = self.dir.path().join("server.log");
        let who = format!("instance {}", self.name);
        wait_for_200(&mut self.child, &self.http.client, &url, &log, &who, state).await;
    }

    /// Waits for `GET /health` (the server serves only after migrations, keys and the first
    /// admin are in place).
    pub async fn wait_healthy(&mut self) {
        self.wait_for("/health", "healthy").await;
    }

    /// The first admin's password, if this instance created the first admin.
    pub fn admin_password(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("initial-admin-password"))
            .ok()
            .map(|p| p.trim_end().to_owned())
    }

    /// The access token of a login that must succeed.
    pub async fn login(&self, username: &str, password: &str) -> String {
        self.http.access_token(username, password).await
    }

    /// `method path` with `token`, and `body` as JSON when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self.http.request(method, path).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }
}

/// Two instances with rate limits off on one fresh database, started together (so that they
/// race for migrations, the first key and the first admin). Fields drop in order: the servers
/// stop before the database is dropped.
pub struct Cluster {
    pub a: Instance,
    pub b: Instance,
    pub database_url: String,
    pub master_secret: String,
    _db: DatabaseGuard,
}

impl Cluster {
    /// Starts both with `extra_env` and waits until both serve.
    pub async fn start(backend: &Backend, extra_env: &[(&str, &str)]) -> Self {
        let (database_url, db) = fresh_database_url(backend).await;
        let master_secret = bulwark::secret::random_token(32);
        let [port_a, port_b] = free_ports::<2>();
        let env: Vec<(&str, &str)> = std::iter::once(RATE_LIMITS_OFF)
            .chain(extra_env.iter().copied())
            .collect();
        let mut a = Instance::start("A", port_a, &database_url, &master_secret, None, &env);
        let mut b = Instance::start("B", port_b, &database_url, &master_secret, None, &env);
        a.wait_healthy().await;
        b.wait_healthy().await;
        Self {
            a,
            b,
            database_url,
            master_secret,
            _db: db,
        }
    }
}
