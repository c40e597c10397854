//! The real `bulwark` binary as a child process: a command with a clean environment, free
//! ports, `bulwark serve` logging to a file, waiting for it, and a guard that kills it when
//! dropped (so that a failed assertion never leaves a server running).

use std::{
    fs::File,
    ops::{Deref, DerefMut},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use reqwest::Client;

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

/// A client for a server process: no proxy, a 10 s timeout, and redirects followed or not.
pub fn client(follow_redirects: bool) -> Client {
    let mut builder = Client::builder().no_proxy();
    if !follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    builder
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
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
