//! `bulwark audit URL`: the black-box security audit of an HTTP API (the `bulwark-audit`
//! crate), its progress bar, its report on standard output or in a file, and its exit code.
//!
//! Nothing of the server is loaded: no configuration file, no `BULWARK_*` variable, no
//! database. Exit 0 when no finding reaches `--fail-on`, 1 when one does, 2 when the target
//! could not be scanned (bad arguments, unreachable, refused as remote).

use std::{
    io::{IsTerminal as _, Write as _},
    path::Path,
    process::ExitCode,
};

use bulwark_audit::{AuditConfig, AuditError, CheckId, CheckStatus, Credentials, output};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{AuditArgs, AuditFormat};

/// Exit code when the target could not be scanned.
const CANNOT_SCAN: u8 = 2;

/// Runs `bulwark audit` to completion; `verbose` is the global `-v` count.
pub fn run(args: AuditArgs, verbose: u8) -> ExitCode {
    let filter = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // Held to the end: dropping it writes the lines still queued.
    let _log = crate::telemetry::init(crate::config::LogFormat::Text, filter);
    match audit(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(CANNOT_SCAN)
        }
    }
}

fn config(args: &AuditArgs) -> Result<AuditConfig, AuditError> {
    let mut config = AuditConfig::new(args.url.clone());
    config.openapi = args.openapi.clone();
    if let Some(path) = &args.credentials {
        config.credentials = Credentials::load(path)?;
    }
    config.limits.max_requests = args.max_requests;
    config.limits.rps = args.rps;
    config.limits.timeout = args.timeout;
    config.only = (!args.only.is_empty()).then(|| args.only.clone());
    config.skip = args.skip.clone();
    config.allow_remote = args.allow_remote;
    Ok(config)
}

fn audit(args: AuditArgs) -> Result<ExitCode, String> {
    let config = config(&args).map_err(|e| e.to_string())?;
    // Opened before the first request, so that a wrong path fails at once, not after the scan.
    let mut out = args.output.as_deref().map(OutputFile::open).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let progress = Bar::new(std::io::stderr().is_terminal());
    let result = runtime.block_on(bulwark_audit::run(config, &progress));
    progress.clear();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if let Some(out) = out.take() {
                out.abandon();
            }
            return Err(e.to_string());
        }
    };
    let colour = args.format == AuditFormat::Text
        && out.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let rendered = match args.format {
        AuditFormat::Text => output::text(&report, colour),
        AuditFormat::Json => output::json(&report),
        AuditFormat::Sarif => output::sarif(&report),
    };
    match out {
        Some(out) => out.write(&rendered)?,
        None => write_stdout(&rendered),
    }
    Ok(if report.fails_at(args.fail_on) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes `text` to standard output. A closed pipe (`bulwark audit URL | head`) is not an
/// error: the rest is not wanted; any other failure is reported on standard error.
fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(err) => eprintln!("error: cannot write to standard output: {err}"),
    }
}

/// `--output FILE`: opened (not truncated) before the scan, written after it. A file the audit
/// created is removed again when the scan fails, so that no empty report is left behind.
struct OutputFile {
    file: std::fs::File,
    path: std::path::PathBuf,
    created: bool,
}

impl OutputFile {
    fn open(path: &Path) -> Result<Self, String> {
        let created = !path.exists();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| format!("--output {}: {e}", path.display()))?;
        Ok(OutputFile {
            file,
            path: path.to_owned(),
            created,
        })
    }

    fn write(mut self, text: &str) -> Result<(), String> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all(text.as_bytes()))
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn abandon(self) {
        if self.created {
            drop(self.file);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The progress bar on standard error: one step per check, the running check's ID as its
/// message. Hidden (draws nothing) when standard error is not a terminal.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new(terminal: bool) -> Self {
        let bar = if terminal {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // A spinner while the document is read and users log in; a bar once checks run.
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} auditing · {elapsed} · {wide_msg}")
            {
                bar.set_style(style);
            }
            bar.set_message("reading the API");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        Bar { bar }
    }

    fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl bulwark_audit::Progress for Bar {
    fn start(&self, checks: usize) {
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} auditing [{bar:25}] {pos}/{len} checks · {elapsed} · {wide_msg}",
        ) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar
            .set_length(u64::try_from(checks).unwrap_or(u64::MAX));
    }

    fn check(&self, id: CheckId) {
        self.bar.set_message(id.as_str());
    }

    fn done(&self, _id: CheckId, _status: CheckStatus) {
        self.bar.inc(1);
    }

    fn finish(&self) {
        self.bar.set_message("done");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(argv: &[&str]) -> AuditArgs {
        let mut all = vec!["bulwark", "audit"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).expect("parses").command {
            Command::Audit(args) => *args,
            _ => panic!("not audit"),
        }
    }

    #[test]
    fn the_arguments_make_the_config() {
        let config = config(&args(&[
            "http://127.0.0.1:9",
            "--rps",
            "7",
            "--max-requests",
            "42",
            "--timeout",
            "2m",
            "--skip",
            "tls,csrf",
            "--allow-remote",
        ]))
        .expect("config");

        assert_eq!(config.url, "http://127.0.0.1:9");
        assert_eq!(config.limits.rps, 7);
        assert_eq!(config.limits.max_requests, 42);
        assert_eq!(config.limits.timeout, std::time::Duration::from_secs(120));
        assert!(config.only.is_none());
        assert!(!config.selects(CheckId::Tls) && !config.selects(CheckId::Csrf));
        assert!(config.selects(CheckId::Bola));
        assert!(config.allow_remote);

        let only = config_of_only();
        assert_eq!(only.only.as_deref(), Some(&[CheckId::Ssti][..]));
    }

    fn config_of_only() -> AuditConfig {
        config(&args(&["http://127.0.0.1:9", "--only", "ssti"])).expect("config")
    }

    #[test]
    fn a_missing_credentials_file_is_a_usage_error() {
        let err = config(&args(&[
            "http://127.0.0.1:9",
            "--credentials",
            "/nonexistent/creds.toml",
        ]))
        .expect_err("refused");
        assert!(matches!(err, AuditError::Usage(_)), "{err}");
    }

    #[test]
    fn an_output_file_the_audit_created_is_removed_when_the_scan_fails() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("report.json");
        OutputFile::open(&path).expect("opens").abandon();
        assert!(!path.exists());

        std::fs::write(&path, "old report, longer than the new one").expect("write");
        OutputFile::open(&path).expect("opens").abandon();
        assert!(path.exists(), "a file that was there stays");
        OutputFile::open(&path)
            .expect("opens")
            .write("new")
            .expect("writes");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
    }
}
