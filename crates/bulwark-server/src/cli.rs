//! The command line: raw arguments, kept apart from the resolved [`Settings`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

/// Bulwark: a secure-by-default users/items API server.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about)]
pub struct Cli {
    /// Configuration file (default: ./bulwark.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log lines on standard error: `-v` info (every command), `-vv` debug. Without it,
    /// `serve` logs at info (one access line per request) and the other commands only warnings
    /// and errors. `RUST_LOG` overrides both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Inspect the signing-key ring.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Apply database migrations and exit.
    Migrate,
    /// Audit the configuration: critical / warning / ok findings; exit 1 on a critical one.
    Check,
    /// Black-box security audit of an HTTP API (this one or any other with an OpenAPI document):
    /// exit 0 when no finding reaches --fail-on, 1 when one does, 2 when the target could not be
    /// scanned. Needs no configuration file or database.
    Audit(Box<AuditArgs>),
}

/// `bulwark serve` flags (they override the file and the environment).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8000.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. Re-read on SIGHUP.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert. Re-read on SIGHUP.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        conflicts_with = "self_signed"
    )]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate for localhost made at start-up (development only); its
    /// SHA-256 fingerprint is logged.
    #[arg(long)]
    pub self_signed: bool,
    /// Also answer plain HTTP on this address with 308 redirects to the HTTPS address.
    #[arg(long, value_name = "ADDR")]
    pub redirect_http: Option<SocketAddr>,
    /// Start even when `bulwark check` reports a critical finding (each is then logged as an
    /// error). Without it such a configuration stops start-up.
    #[arg(long)]
    pub allow_insecure: bool,
}

/// `bulwark audit` arguments (the contract's "Security audit").
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The API's base URL, e.g. http://127.0.0.1:8000. Only loopback and private-network hosts
    /// unless --allow-remote.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The OpenAPI document (a URL or a file); discovered at the usual paths when left out.
    #[arg(long, value_name = "URL|FILE")]
    pub openapi: Option<String>,
    /// Accounts, tokens or headers to authenticate with (TOML or JSON): `users = [{username,
    /// password}, ...]`, `token_url`, `tokens = [...]`, `headers = {...}`. Passwords may come from
    /// BULWARK_AUDIT_PASSWORD_<n> instead.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// The report's format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
    pub format: AuditFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 1 when a finding of this severity or worse is found.
    #[arg(long, value_name = "SEVERITY", default_value = "high", value_parser = parse_severity)]
    pub fail_on: bulwark_audit::Severity,
    /// The most requests the audit sends.
    #[arg(long, value_name = "N", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests: u64,
    /// The most requests per second.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub rps: u32,
    /// How long one request may take, e.g. 10s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Run only these checks (finding IDs, comma-separated).
    #[arg(long, value_name = "ID,...", value_delimiter = ',', value_parser = parse_check_id)]
    pub only: Vec<bulwark_audit::CheckId>,
    /// Leave these checks out (finding IDs, comma-separated).
    #[arg(long, value_name = "ID,...", value_delimiter = ',', value_parser = parse_check_id)]
    pub skip: Vec<bulwark_audit::CheckId>,
    /// Scan a host that is neither loopback nor on a private network (you must be allowed to
    /// test it).
    #[arg(long)]
    pub allow_remote: bool,
}

/// `bulwark audit --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// A table for people, with a progress bar on a terminal.
    Text,
    /// The report as JSON.
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

fn parse_severity(s: &str) -> Result<bulwark_audit::Severity, String> {
    s.parse()
}

fn parse_check_id(s: &str) -> Result<bulwark_audit::CheckId, String> {
    s.trim().parse().map_err(|e: String| {
        let known: Vec<&str> = bulwark_audit::CheckId::ALL
            .iter()
            .map(|id| id.as_str())
            .collect();
        format!("{e}; the finding IDs are: {}", known.join(", "))
    })
}

/// A duration such as `10s`, `500ms`, `2m` or `1h` (a whole number and a unit), more than zero.
///
/// # Errors
/// A message for anything else.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let usage =
        || format!("{s:?} is not a duration: a whole number and a unit (ms, s, m, h), e.g. 10s");
    let n: u64 = digits.parse().map_err(|_| usage())?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(usage()),
    };
    if duration.is_zero() {
        return Err(format!("{s:?}: the duration must be more than zero"));
    }
    Ok(duration)
}

/// `bulwark users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from stdin or prompted for without echo.
    Create {
        /// Username: 3-64 characters of [A-Za-z0-9_.-].
        name: String,
        /// A role to grant (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users: id, name, roles, status, creation time, e-mail address and whether it is
    /// verified (never a password or hash).
    List,
    /// Disable a user: they can no longer log in, and their outstanding tokens are revoked.
    Disable {
        /// Username.
        name: String,
    },
    /// Enable a disabled user again: they can log in; tokens issued before stay revoked.
    Enable {
        /// Username.
        name: String,
    },
    /// Delete a user with their items and tokens (their tokens are revoked first; the audit
    /// trail keeps the event). Refused for the last enabled user holding the `admin` role, so
    /// that a deployment always keeps an admin who can log in: grant `admin` to another user
    /// (`users set-roles`) first.
    Delete {
        /// Username.
        name: String,
    },
    /// Set a user's password (held to the password policy): every token, session and refresh
    /// family of the user is revoked and pending reset links die. The password is read from
    /// stdin, or prompted for without echo on a terminal.
    SetPassword {
        /// Username.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Replace a user's roles.
    SetRoles {
        /// Username.
        name: String,
        /// The new roles (none to remove all).
        roles: Vec<String>,
    },
    /// Import users from JSON: [{"username", "hashed_password", "roles", "disabled", "email",
    /// "email_verified"}] (bcrypt or Argon2id hashes; `email` and `email_verified` optional).
    /// An existing username or address is skipped, a bad entry refused (exit 1).
    Import {
        /// The JSON file.
        file: PathBuf,
    },
}

/// `bulwark keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List keys (never their material).
    List,
    /// Rotate now: a new active key; the previous one verifies until its tokens expire.
    Rotate,
    /// Revoke a key in an emergency: its tokens are rejected at once.
    Revoke {
        /// The key id (random base64url, so it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn audit_defaults_follow_the_contract() {
        let cli =
            Cli::try_parse_from(["bulwark", "audit", "http://127.0.0.1:8000"]).expect("parses");
        let Command::Audit(args) = cli.command else {
            panic!("not audit");
        };
        assert_eq!(args.url, "http://127.0.0.1:8000");
        assert_eq!(args.format, AuditFormat::Text);
        assert_eq!(args.fail_on, bulwark_audit::Severity::High);
        assert_eq!(args.max_requests, 5000);
        assert_eq!(args.rps, 50);
        assert_eq!(args.timeout, Duration::from_secs(10));
        assert!(args.only.is_empty() && args.skip.is_empty() && !args.allow_remote);
        assert!(args.openapi.is_none() && args.credentials.is_none() && args.output.is_none());
    }

    #[test]
    fn audit_takes_every_option() {
        let cli = Cli::try_parse_from([
            "bulwark",
            "audit",
            "https://10.0.0.5/api",
            "--openapi",
            "spec.yaml",
            "--credentials",
            "c.toml",
            "--format",
            "sarif",
            "--output",
            "r.sarif",
            "--fail-on",
            "low",
            "--max-requests",
            "100",
            "--rps",
            "5",
            "--timeout",
            "500ms",
            "--only",
            "bola,ssti",
            "--skip",
            "tls",
            "--allow-remote",
        ])
        .expect("parses");
        let Command::Audit(args) = cli.command else {
            panic!("not audit");
        };
        assert_eq!(args.format, AuditFormat::Sarif);
        assert_eq!(args.fail_on, bulwark_audit::Severity::Low);
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert_eq!(
            args.only,
            [bulwark_audit::CheckId::Bola, bulwark_audit::CheckId::Ssti]
        );
        assert_eq!(args.skip, [bulwark_audit::CheckId::Tls]);
        assert!(args.allow_remote);
    }

    #[test]
    fn audit_refuses_bad_usage() {
        for bad in [
            &["--only", "bola,no-such-check"][..],
            &["--skip", "sqli"],
            &["--rps", "0"],
            &["--max-requests", "0"],
            &["--timeout", "10"],
            &["--timeout", "0s"],
            &["--timeout", "fast"],
            &["--fail-on", "severe"],
            &["--format", "xml"],
        ] {
            let mut argv = vec!["bulwark", "audit", "http://127.0.0.1:1"];
            argv.extend_from_slice(bad);
            let err = Cli::try_parse_from(&argv).expect_err(&format!("{bad:?} is refused"));
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        let err = Cli::try_parse_from(["bulwark", "audit", "http://x", "--only", "nope"])
            .expect_err("unknown ID");
        assert!(err.to_string().contains("jwt-alg-none"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "10", "1.5s", "-1s", "0ms", "10 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn account_commands_parse_and_need_a_name() {
        let cli = Cli::try_parse_from([
            "bulwark",
            "users",
            "set-password",
            "alice",
            "--password-stdin",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Users(UsersCommand::SetPassword { ref name, password_stdin: true }) if name == "alice"
        ));
        for verb in ["enable", "delete", "set-password"] {
            let err = Cli::try_parse_from(["bulwark", "users", verb]).expect_err(verb);
            assert_eq!(err.exit_code(), 2, "{verb}");
        }
    }

    #[test]
    fn a_key_id_that_starts_with_a_hyphen_is_a_key_id_not_a_flag() {
        let cli = Cli::try_parse_from(["bulwark", "keys", "revoke", "-jX3_aB"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Keys(KeysCommand::Revoke { ref kid }) if kid == "-jX3_aB"
        ));
    }
}
