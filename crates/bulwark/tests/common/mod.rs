//! Shared by the example tests: the example binaries cargo built, started as their users start
//! them (a process on a free loopback port, `ADDR=127.0.0.1:0`), killed when dropped.
#![allow(dead_code)] // each test file uses its own part

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// The example binaries cargo built for this test run: `target/<profile>/examples/<name>`.
pub(crate) fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().expect("test binary path");
    path.pop(); // the test binary
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// A running example, killed when dropped.
pub(crate) struct Running {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` on a free loopback port with `env`, and waits for its "listening on" line.
pub(crate) fn start(binary: PathBuf, env: &[(&str, &str)]) -> Running {
    assert!(
        binary.exists(),
        "{} is missing: run `cargo test -p bulwark-axum` (it builds the examples)",
        binary.display()
    );
    let mut child = Command::new(&binary)
        .env("ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("example starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the example prints its address");
    if line.is_empty() {
        let status = child.wait();
        panic!(
            "{} exited before listening ({status:?}): built with other features than this test? \
             `cargo build -p bulwark-axum --examples` with the test's features rebuilds it",
            binary.display()
        );
    }
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Running { child, base }
}
