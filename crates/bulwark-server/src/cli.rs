//! The command line: raw arguments, kept apart from the resolved [`Settings`].

use std::{net::SocketAddr, path::PathBuf};

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
    /// List users.
    List,
    /// Disable a user: they can no longer log in.
    Disable {
        /// Username.
        name: String,
    },
    /// Replace a user's roles.
    SetRoles {
        /// Username.
        name: String,
        /// The new roles (none to remove all).
        roles: Vec<String>,
    },
    /// Import users from JSON: [{"username", "hashed_password", "roles", "disabled"}].
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
    fn a_key_id_that_starts_with_a_hyphen_is_a_key_id_not_a_flag() {
        let cli = Cli::try_parse_from(["bulwark", "keys", "revoke", "-jX3_aB"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Keys(KeysCommand::Revoke { ref kid }) if kid == "-jX3_aB"
        ));
    }
}
