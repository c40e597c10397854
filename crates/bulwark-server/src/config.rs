//! Typed, layered settings: defaults < `bulwark.toml` (or `--config`) < `BULWARK_*` environment
//! < command-line flags. Resolved once at start-up; nothing reads configuration afterwards.

use std::{
    collections::HashMap, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration,
};

use anyhow::{Context, bail};
use bulwark::{
    client_ip::{Cidr, TrustedProxies},
    jwt::KeyAlgorithm,
    rate_limit::{Quota, RouteKey},
};
use figment::{
    Figment,
    providers::{Env, Format, Toml},
    value::Value,
};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// Every setting of the server, typed: each value is parsed once, when the settings are loaded,
/// and one that does not parse is an error naming its key and what is allowed (never a silent
/// default). Unknown keys in the file are an error too (a typo must not silently leave a
/// protection at its default).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// The longest a request waits for a database connection; while the database is down,
    /// requests that need it answer 503 after this.
    pub database_acquire_timeout: DurationSetting,
    /// Folder for the embedded database and the generated master secret.
    pub data_dir: PathBuf,
    /// Redis for shared stores; unset means in-process stores.
    pub redis_url: Option<String>,
    /// The master secret itself (prefer `master_secret_file`).
    pub master_secret: Option<SecretString>,
    /// A file holding the master secret.
    pub master_secret_file: Option<PathBuf>,
    /// Proxies whose forwarding header is believed (CIDRs).
    pub trusted_proxies: Vec<Cidr>,
    /// The one forwarding header believed from `trusted_proxies`: `x-forwarded-for` (default)
    /// or `forwarded` (RFC 7239); the other is ignored.
    pub forwarded_header: bulwark::client_ip::ForwardedHeader,
    /// IPv6 clients are grouped by networks of this prefix length (default 64) for every
    /// per-IP limit and connection cap.
    pub ipv6_prefix: u8,
    /// Open connections in all (default 4096).
    pub max_connections: usize,
    /// Open connections per client network (default 128); a trusted proxy counts only against
    /// `max_connections`.
    pub max_connections_per_ip: usize,
    /// A connection with no request in flight is closed after this (default 60 s).
    pub idle_timeout: DurationSetting,
    /// Origins allowed for CORS and CSRF origin checks.
    pub allowed_origins: Vec<Origin>,
    /// Whether `POST /users/signup` is open.
    pub allow_signup: bool,
    /// Whether `/docs` and `/openapi.json` are served.
    pub docs: bool,
    /// Access-token lifetime.
    pub access_token_ttl: DurationSetting,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: DurationSetting,
    /// How often the signing key rotates.
    pub key_rotation_interval: DurationSetting,
    /// `HS256` (default) or `EdDSA`.
    pub jwt_algorithm: KeyAlgorithm,
    /// `iss` of issued tokens.
    pub jwt_issuer: String,
    /// `aud` of issued tokens.
    pub jwt_audience: String,
    /// Clock leeway for token times, at most 60 s.
    pub jwt_leeway: DurationSetting,
    /// Time allowed to send request headers.
    pub header_read_timeout: DurationSetting,
    /// Time allowed for a whole request.
    pub request_timeout: DurationSetting,
    /// Mark cookies `Secure` even without TLS (behind a TLS-terminating proxy).
    pub secure_cookies: bool,
    /// Argon2id parameters for new hashes.
    pub password_hashing: PasswordHashing,
    /// Rate limits (see the contract's Rate limiting section).
    pub rate_limits: RateLimits,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// TLS certificate (PEM), set by `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), set by `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate for localhost made at start-up (`--self-signed`), for
    /// development.
    pub tls_self_signed: bool,
    /// Also listen here with plain HTTP, answering 308 to the HTTPS address (`--redirect-http`).
    pub redirect_http: Option<SocketAddr>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_timeout: DurationSetting,
    /// Where `GET /metrics` listens (unset: no metrics endpoint).
    pub metrics_bind: Option<SocketAddr>,
    /// How long audit events are kept.
    pub audit_retention: DurationSetting,
    /// The base of links in mails (`{public_url}/password-reset?token=...`); unset:
    /// `http://<bind>` (or `https://` with TLS).
    pub public_url: Option<PublicUrl>,
    /// `smtp://`, `smtp+starttls://` or `smtps://` URL of the mail server; unset: mails are
    /// written to `<data_dir>/outbox/` as `.eml` files.
    #[serde(deserialize_with = "smtp_url")]
    pub smtp_url: Option<bulwark::mail::smtp::SmtpUrl>,
    /// A file holding the SMTP password (the URL's user logs in with it).
    pub smtp_password_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for the SMTP server's certificate, besides the
    /// public roots (a private mail server).
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender of mails: an address or `Name <address>`; unset:
    /// `bulwark@<host of public_url>`.
    pub mail_from: Option<String>,
    /// How long after a failed delivery a mail is tried again the first time (doubling up to
    /// an hour, eight attempts in all).
    pub mail_retry_delay: DurationSetting,
    /// Lifetime of password-reset links (default 30 minutes).
    pub password_reset_ttl: DurationSetting,
    /// Lifetime of e-mail verification links (default 24 hours).
    pub email_verification_ttl: DurationSetting,
    /// Refuse `POST /token` and `POST /login` (403) to users whose address is not verified.
    pub require_verified_email: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: "sqlite://./bulwark-data/bulwark.db".to_owned(),
            database_acquire_timeout: DurationSetting(Duration::from_secs(5)),
            data_dir: PathBuf::from("./bulwark-data"),
            redis_url: None,
            master_secret: None,
            master_secret_file: None,
            trusted_proxies: Vec::new(),
            forwarded_header: bulwark::client_ip::ForwardedHeader::XForwardedFor,
            ipv6_prefix: 64,
            max_connections: 4096,
            max_connections_per_ip: 128,
            idle_timeout: DurationSetting(Duration::from_secs(60)),
            allowed_origins: Vec::new(),
            allow_signup: false,
            docs: true,
            access_token_ttl: DurationSetting::mins(15),
            refresh_token_ttl: DurationSetting::mins(7 * 24 * 60),
            key_rotation_interval: DurationSetting::mins(24 * 60),
            jwt_algorithm: KeyAlgorithm::Hs256,
            jwt_issuer: "bulwark".to_owned(),
            jwt_audience: "bulwark-api".to_owned(),
            jwt_leeway: DurationSetting(Duration::from_secs(30)),
            header_read_timeout: DurationSetting(Duration::from_secs(10)),
            request_timeout: DurationSetting(Duration::from_secs(30)),
            secure_cookies: false,
            password_hashing: PasswordHashing::default(),
            rate_limits: RateLimits::default(),
            log_format: LogFormat::Text,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            redirect_http: None,
            shutdown_timeout: DurationSetting(Duration::from_secs(10)),
            audit_retention: DurationSetting::mins(90 * 24 * 60),
            metrics_bind: None,
            public_url: None,
            smtp_url: None,
            smtp_password_file: None,
            smtp_ca_file: None,
            mail_from: None,
            mail_retry_delay: DurationSetting(Duration::from_secs(30)),
            password_reset_ttl: DurationSetting::mins(30),
            email_verification_ttl: DurationSetting::mins(24 * 60),
            require_verified_email: false,
        }
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordHashing {
    /// Memory in KiB (default 7168: OWASP's m=7 MiB, t=5 line).
    pub memory_kib: u32,
    /// Passes (default 5).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for PasswordHashing {
    /// [`Argon2Params::OWASP_LOW_MEMORY`](bulwark::password::Argon2Params::OWASP_LOW_MEMORY):
    /// as strong as OWASP's 19 MiB, t=2 by OWASP's own table, with a third of the memory per
    /// hashing thread (docs/decisions.md).
    fn default() -> Self {
        let owasp = bulwark::password::Argon2Params::OWASP_LOW_MEMORY;
        Self {
            memory_kib: owasp.memory_kib,
            iterations: owasp.iterations,
            parallelism: owasp.parallelism,
        }
    }
}

/// The probes' route templates (`/health`, `/ready`): never rate limited (many probes may share
/// one proxy address), and cheap, revealing nothing. `rate_limits.routes` may not name them.
pub const UNLIMITED_ROUTES: &[&str] = &["/health", "/ready"];

/// The account-recovery routes: limited per client IP whoever calls, with these quotas unless
/// `rate_limits.routes` names the route.
pub const ACCOUNT_ROUTES: &[(&str, u32, u64)] = &[
    ("POST /password-reset/request", 5, 3600),
    ("POST /password-reset/confirm", 10, 60),
    ("POST /verify-email/confirm", 10, 60),
];

/// Rate-limit settings, as the contract writes them (`"N/unit"` quotas).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Whether limits apply.
    pub enabled: bool,
    /// Logins per client IP.
    pub login_per_ip: Quota,
    /// Logins per username.
    pub login_per_username: Quota,
    /// Everything else, per user or per client IP.
    pub default: Quota,
    /// `POST /password-reset/request` per e-mail address (counted whether or not the address
    /// is known); its per-IP limit is the route's (see [`ACCOUNT_ROUTES`]).
    pub password_reset_per_address: Quota,
    /// Verification mails per user (`POST /users/me/email`, `POST /users/me/verify-email`).
    pub verification_mails_per_user: Quota,
    /// Overrides: `"METHOD /path/template" = "N/unit"`. Two keys naming the same route (the
    /// method in another letter case) are an error, not one silently replacing the other.
    #[serde(deserialize_with = "distinct_routes")]
    pub routes: HashMap<RouteKey, Quota>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            login_per_ip: Quota::new(5, Duration::from_secs(60)),
            login_per_username: Quota::new(5, Duration::from_secs(60)),
            default: Quota::new(600, Duration::from_secs(60)),
            password_reset_per_address: Quota::new(3, Duration::from_secs(3600)),
            verification_mails_per_user: Quota::new(10, Duration::from_secs(3600)),
            routes: HashMap::new(),
        }
    }
}

/// `rate_limits.routes`, refusing two keys that name the same route.
fn distinct_routes<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<HashMap<RouteKey, Quota>, D::Error> {
    struct Routes;
    impl<'de> serde::de::Visitor<'de> for Routes {
        type Value = HashMap<RouteKey, Quota>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of \"METHOD /path/template\" = \"N/unit\"")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut routes = HashMap::new();
            while let Some((route, quota)) = map.next_entry::<RouteKey, Quota>()? {
                if routes.contains_key(&route) {
                    return Err(serde::de::Error::custom(format_args!(
                        "\"{route}\" is listed twice (route keys are matched in any letter case of the method)"
                    )));
                }
                routes.insert(route, quota);
            }
            Ok(routes)
        }
    }
    deserializer.deserialize_map(Routes)
}

/// An origin allowed for CORS and the CSRF origin check: `scheme://host[:port]` with `http` or
/// `https`, no path, no wildcard; kept lower-cased and without a trailing slash, as browsers
/// send it in `Origin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// `scheme://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Origin {
    type Err = String;

    /// Parses and normalizes an origin.
    ///
    /// # Errors
    /// A message saying what is allowed.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "*" {
            return Err(
                "\"*\" is never allowed: it would let any site make credentialed requests; list the exact origins of your front ends, such as \"https://app.example\""
                    .to_owned(),
            );
        }
        let bad = || {
            format!(
                "{text:?} is not an origin such as \"https://app.example\": expected scheme://host[:port] with http or https, and nothing after (\"*\" is never allowed)"
            )
        };
        let lower = text.trim().trim_end_matches('/').to_ascii_lowercase();
        let (scheme, authority) = lower.split_once("://").ok_or_else(bad)?;
        if !matches!(scheme, "http" | "https")
            || authority.is_empty()
            || !authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~[]:".contains(&b))
        {
            return Err(bad());
        }
        // The port, when written, is after the last colon that is not inside `[IPv6]`.
        let host_end = authority.rfind(']').map_or(0, |i| i + 1);
        let (host, port) = match authority[host_end..].rfind(':') {
            Some(i) => authority.split_at(host_end + i),
            None => (authority, ""),
        };
        let ipv6 = host.starts_with('[') && host.ends_with(']');
        let host_ok = if ipv6 {
            host[1..host.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
        } else {
            !host.is_empty() && !host.contains(['[', ']', ':'])
        };
        let port_ok = port.is_empty() || port[1..].parse::<u16>().is_ok_and(|p| p > 0);
        if !(host_ok && port_ok) {
            return Err(bad());
        }
        Ok(Self(lower))
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The base URL of links in mails: `http(s)://host[:port][/prefix]`, without a trailing slash,
/// query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: Origin,
    path: String,
}

impl PublicUrl {
    /// The URL of `path` (which starts with `/`) under this base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin, self.path)
    }

    /// The host, without port or brackets.
    pub fn host(&self) -> &str {
        let authority = self
            .origin
            .as_str()
            .split_once("://")
            .map_or("", |(_, a)| a);
        match authority.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        }
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin, self.path)
    }
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{text:?} is not a base URL such as \"https://api.example.com\": expected http(s)://host[:port] and an optional path, without query or fragment"
            )
        };
        let trimmed = text.trim();
        let after_scheme = trimmed.find("://").map_or(0, |i| i + 3);
        let (origin, path) = match trimmed[after_scheme..].find('/') {
            Some(i) => trimmed.split_at(after_scheme + i),
            None => (trimmed, ""),
        };
        let origin: Origin = origin.parse().map_err(|_| bad())?;
        let path = path.trim_end_matches('/');
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
            || path.contains("//")
        {
            return Err(bad());
        }
        Ok(Self {
            origin,
            path: path.to_owned(),
        })
    }
}

impl<'de> Deserialize<'de> for PublicUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `smtp_url`, parsed once (the error says what is wrong, never the password).
fn smtp_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bulwark::mail::smtp::SmtpUrl>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// A duration written `"90s"`, `"15m"`, `"24h"`, `"7d"` or as a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSetting(pub Duration);

impl DurationSetting {
    const fn mins(m: u64) -> Self {
        Self(Duration::from_secs(m * 60))
    }

    /// Parses the forms above.
    ///
    /// # Errors
    /// A message saying what is allowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let bad = || {
            format!(
                "invalid duration {text:?}: use a number with s, m, h or d (e.g. \"90s\", \"15m\", \"24h\", \"7d\"), or a bare number of seconds"
            )
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        let factor = match unit.trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(factor)
            .map(|s| Self(Duration::from_secs(s)))
            .ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for DurationSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Secs(s) => Ok(Self(Duration::from_secs(s))),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// `BULWARK_*` variables that are not settings: the test suite's and benchmarks' (`BULWARK_TEST_*`,
/// `BULWARK_BIN`) and `bulwark audit`'s passwords (`BULWARK_AUDIT_PASSWORD_<n>`).
const NOT_SETTINGS: &[&str] = &["BULWARK_TEST_", "BULWARK_BIN", "BULWARK_AUDIT_"];

/// Top-level keys: a `BULWARK_*` variable must name one of them (or be one of [`NOT_SETTINGS`]).
const KEYS: &[&str] = &[
    "bind",
    "database_url",
    "database_acquire_timeout",
    "data_dir",
    "redis_url",
    "master_secret",
    "master_secret_file",
    "trusted_proxies",
    "forwarded_header",
    "ipv6_prefix",
    "max_connections",
    "max_connections_per_ip",
    "idle_timeout",
    "allowed_origins",
    "allow_signup",
    "docs",
    "access_token_ttl",
    "refresh_token_ttl",
    "key_rotation_interval",
    "jwt_algorithm",
    "jwt_issuer",
    "jwt_audience",
    "jwt_leeway",
    "header_read_timeout",
    "request_timeout",
    "secure_cookies",
    "password_hashing",
    "rate_limits",
    "log_format",
    "tls_cert",
    "tls_key",
    "tls_self_signed",
    "redirect_http",
    "shutdown_timeout",
    "audit_retention",
    "metrics_bind",
    "public_url",
    "smtp_url",
    "smtp_password_file",
    "smtp_ca_file",
    "mail_from",
    "mail_retry_delay",
    "password_reset_ttl",
    "email_verification_ttl",
    "require_verified_email",
];

impl Settings {
    /// Loads defaults < file < environment. `file` is `--config`; without it `bulwark.toml` in
    /// the working directory is read when present.
    ///
    /// # Errors
    /// A message naming the key and what is allowed.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let settings: Settings = Self::figment(file)?
            .extract()
            .map_err(|e| anyhow::anyhow!(describe_figment_error(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// For `bulwark check`, which reports invalid values as findings instead of stopping: the
    /// settings with every value that does not load (a wrong type, a value its type refuses)
    /// left at its default, and those values, each with its key and why. [`Settings::validate`]
    /// is not run.
    ///
    /// # Errors
    /// As [`Settings::load`] when the file cannot be read, a key is unknown, or a
    /// `BULWARK_*` variable names no setting.
    pub fn load_for_check(
        file: Option<&std::path::Path>,
    ) -> anyhow::Result<(Self, Vec<InvalidSetting>)> {
        let figment = Self::figment(file)?;
        let first = match figment.extract::<Settings>() {
            Ok(settings) => return Ok((settings, Vec::new())),
            Err(err) => err,
        };
        if !reportable(&first) {
            return Err(anyhow::anyhow!(describe_figment_error(first)));
        }
        // Drop each value that does not load and try again: one error per pass (serde stops at
        // the first), at most one pass per value.
        let mut value = figment
            .find_value("")
            .map_err(|e| anyhow::anyhow!(describe_figment_error(e)))?;
        let mut invalid = Vec::new();
        let mut err = first;
        loop {
            if !reportable(&err) || !remove_path(&mut value, &err.path) {
                return Err(anyhow::anyhow!(describe_figment_error(err)));
            }
            let key = err.path.join(".");
            // Later passes read the merged value, which no longer knows its provider: ask the
            // figment where the key (or the nearest table above it) came from.
            let source = err
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .or_else(|| {
                    (1..=err.path.len()).rev().find_map(|n| {
                        figment
                            .find_metadata(&err.path[..n].join("."))
                            .map(|m| m.name.to_string())
                    })
                });
            invalid.push(InvalidSetting {
                key,
                message: describe_kind(&err.kind),
                source,
            });
            match value.deserialize::<Settings>() {
                Ok(settings) => return Ok((settings, invalid)),
                Err(next) => err = next,
            }
        }
    }

    /// Defaults < file < environment, not yet extracted.
    fn figment(file: Option<&std::path::Path>) -> anyhow::Result<Figment> {
        let mut figment = Figment::new();
        match file {
            Some(path) => {
                if !path.is_file() {
                    bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => figment = figment.merge(Toml::file("bulwark.toml")),
        }
        check_environment(std::env::vars_os().map(|(name, _)| name))?;
        let env = Env::prefixed("BULWARK_").split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        Ok(figment.merge(env))
    }

    /// Checks values that types alone do not.
    ///
    /// # Errors
    /// A message naming the key and what is allowed.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            bail!("database_url: must start with sqlite://, postgres:// or postgresql://");
        }
        if self.jwt_leeway.0 > Duration::from_secs(60) {
            bail!("jwt_leeway: at most 60s is allowed");
        }
        let ttl = self.access_token_ttl.0;
        if ttl < Duration::from_secs(10) || ttl > Duration::from_secs(24 * 3600) {
            bail!("access_token_ttl: must be between 10s and 24h");
        }
        if self.refresh_token_ttl.0 < ttl {
            bail!("refresh_token_ttl: must be at least access_token_ttl");
        }
        // Seconds are allowed so that multi-instance rotation can be tested in real time;
        // production intervals are hours or days.
        if self.audit_retention.0 < Duration::from_secs(86_400) {
            bail!("audit_retention: must be at least 1d");
        }
        if self.key_rotation_interval.0 < Duration::from_secs(2) {
            bail!("key_rotation_interval: must be at least 2s");
        }
        for (key, d) in [
            ("database_acquire_timeout", self.database_acquire_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("request_timeout", self.request_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d.0.is_zero() {
                bail!("{key}: must be more than 0s");
            }
        }
        let ph = &self.password_hashing;
        if ph.memory_kib < 1024 || ph.iterations == 0 || ph.parallelism == 0 {
            bail!(
                "password_hashing: memory_kib must be at least 1024, iterations and parallelism at least 1"
            );
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            bail!("ipv6_prefix: must be between 1 and 128 (64 groups one customer's network)");
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            bail!("max_connections and max_connections_per_ip: must be at least 1");
        }
        for route in self.rate_limits.routes.keys() {
            if UNLIMITED_ROUTES.contains(&route.path()) {
                bail!(
                    "rate_limits.routes: \"{route}\" is never rate limited (health and readiness probes)"
                );
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls_cert and tls_key must be given together");
        }
        if self.tls_self_signed && self.tls_cert.is_some() {
            bail!(
                "tls_self_signed: cannot be combined with tls_cert/tls_key (use one or the other)"
            );
        }
        if let Some(redirect) = self.redirect_http {
            if !self.tls_enabled() {
                bail!("redirect_http: needs TLS (tls_cert and tls_key, or tls_self_signed)");
            }
            if redirect == self.bind && redirect.port() != 0 {
                bail!("redirect_http: must differ from bind");
            }
        }
        if let Some(from) = &self.mail_from
            && let Err(err) = bulwark::mail::check_mailbox(from)
        {
            bail!("mail_from: {from:?} is not an address or \"Name <address>\" ({err})");
        }
        if self.smtp_password_file.is_some()
            && self.smtp_url.as_ref().and_then(|u| u.user()).is_none()
        {
            bail!("smtp_password_file: needs a user in smtp_url (smtp://USER@host:port)");
        }
        if self.smtp_ca_file.is_some() && self.smtp_url.is_none() {
            bail!("smtp_ca_file: needs smtp_url");
        }
        if self.mail_retry_delay.0 < Duration::from_secs(1) {
            bail!("mail_retry_delay: must be at least 1s");
        }
        for (key, d) in [
            ("password_reset_ttl", self.password_reset_ttl),
            ("email_verification_ttl", self.email_verification_ttl),
        ] {
            if d.0 < Duration::from_secs(60) || d.0 > Duration::from_secs(7 * 86_400) {
                bail!("{key}: must be between 1m and 7d");
            }
        }
        Ok(())
    }

    /// The base of links in mails: `public_url`, else `http(s)://<bind>`.
    pub fn public_url(&self) -> PublicUrl {
        self.public_url.clone().unwrap_or_else(|| {
            format!("{}://{}", self.scheme(), self.bind)
                .parse()
                .unwrap_or_else(|_| PublicUrl {
                    origin: Origin(format!("{}://localhost", self.scheme())),
                    path: String::new(),
                })
        })
    }

    /// The sender of mails: `mail_from`, else `bulwark@<host of public_url>` (`localhost` for
    /// an IP address, which no mail server takes as a domain).
    pub fn mail_from(&self) -> String {
        if let Some(from) = &self.mail_from {
            return from.clone();
        }
        let url = self.public_url();
        let host = url.host();
        let domain = if host.parse::<std::net::IpAddr>().is_ok() || host.is_empty() {
            "localhost"
        } else {
            host
        };
        format!("bulwark@{domain}")
    }

    /// Whether this server terminates TLS itself (certificate files or a self-signed
    /// certificate): HSTS, `Secure` cookies and the `https` scheme follow it.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() || self.tls_self_signed
    }

    /// The scheme browsers use to reach this server, for same-origin checks.
    pub fn scheme(&self) -> &'static str {
        if self.tls_enabled() { "https" } else { "http" }
    }

    /// The trusted proxies and the one forwarding header believed from them.
    pub fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::from_networks(self.trusted_proxies.iter().copied())
            .with_header(self.forwarded_header)
    }

    /// How the data layer pools connections.
    pub fn pool(&self) -> crate::db::PoolConfig {
        crate::db::PoolConfig {
            acquire_timeout: self.database_acquire_timeout.0,
            statement_timeout: Some(self.request_timeout.0),
        }
    }

    /// The master secret's source, for messages.
    pub fn master_key_path(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }
}

/// Refuses a `BULWARK_*` variable that names no setting (a typo would otherwise leave the
/// protection it meant to configure at its default), naming the variable and the closest
/// known setting.
fn check_environment(names: impl Iterator<Item = std::ffi::OsString>) -> anyhow::Result<()> {
    for name in names {
        let Some(name) = name.to_str() else { continue };
        // Matched like figment matches the prefix: in any letter case.
        let upper = name.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix("BULWARK_") else {
            continue;
        };
        if NOT_SETTINGS.iter().any(|p| upper.starts_with(p)) {
            continue;
        }
        let top = rest
            .split("__")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if KEYS.contains(&top.as_str()) {
            continue;
        }
        let closest = KEYS
            .iter()
            .map(|k| (strsim::levenshtein(k, &top), *k))
            .min()
            .filter(|(distance, _)| *distance <= 3)
            .map(|(_, key)| {
                let nested = rest
                    .split_once("__")
                    .map(|(_, n)| format!("__{n}"))
                    .unwrap_or_default();
                format!(
                    " (did you mean BULWARK_{}{nested}?)",
                    key.to_ascii_uppercase()
                )
            })
            .unwrap_or_default();
        bail!("invalid configuration:\n  unknown setting in the environment: {name}{closest}");
    }
    Ok(())
}

/// A value `bulwark check` could not load, reported as a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// Its key, dotted (`rate_limits.default`, `allowed_origins.0`).
    pub key: String,
    /// Why, and what is allowed (never the value of a secret).
    pub message: String,
    /// Where it was set (`TOML file`, `` `BULWARK_` environment variable(s) ``), when known.
    pub source: Option<String>,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        match &self.source {
            Some(source) => write!(f, " (from {source})"),
            None => Ok(()),
        }
    }
}

/// Whether `check` can report `err` as a finding and go on without the value: a value that
/// does not load. Anything else (a typo in a key, a file that does not parse) stops it.
fn reportable(err: &figment::Error) -> bool {
    use figment::error::Kind;
    !err.path.is_empty()
        && matches!(
            err.kind,
            Kind::Message(_)
                | Kind::InvalidType(..)
                | Kind::InvalidValue(..)
                | Kind::InvalidLength(..)
                | Kind::UnknownVariant(..)
                | Kind::ISizeOutOfRange(_)
                | Kind::USizeOutOfRange(_)
        )
}

/// Removes the value at `path` from the table `value`: the entry of the deepest table on the
/// path (a list is removed as a whole). False when there is no such entry.
fn remove_path(value: &mut Value, path: &[String]) -> bool {
    let Value::Dict(_, dict) = value else {
        return false;
    };
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match dict.get_mut(first) {
        Some(inner @ Value::Dict(..)) if !rest.is_empty() => remove_path(inner, rest),
        Some(_) => dict.remove(first).is_some(),
        None => false,
    }
}

/// An error's kind, never echoing a value that could be a secret.
fn describe_kind(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("expected {expected}")
        }
        other => other.to_string(),
    }
}

fn describe_figment_error(err: figment::Error) -> String {
    let mut out = String::from("invalid configuration:");
    for e in err {
        let key = if e.path.is_empty() {
            "(top level)".to_owned()
        } else {
            e.path.join(".")
        };
        let kind = describe_kind(&e.kind);
        let source = e
            .metadata
            .as_ref()
            .map(|m| format!(" (from {})", m.name))
            .unwrap_or_default();
        out.push_str(&format!("\n  {key}: {kind}{source}"));
    }
    out
}

/// Reads or creates the master secret (blocking: call from a blocking thread or before the
/// runtime starts).
///
/// # Errors
/// When the secret is weak, or its file cannot be read or written.
pub fn load_master_secret(settings: &Settings) -> anyhow::Result<bulwark::secret::MasterSecret> {
    use bulwark::secret::MasterSecret;
    use secrecy::ExposeSecret;

    let from_bytes = |bytes: Vec<u8>, source: &str| {
        MasterSecret::new(bytes).with_context(|| format!("{source}: refusing to start"))
    };
    if let Some(secret) = &settings.master_secret {
        return from_bytes(secret.expose_secret().as_bytes().to_vec(), "master_secret");
    }
    if let Some(path) = &settings.master_secret_file {
        let text = std::fs::read(path)
            .with_context(|| format!("master_secret_file: cannot read {}", path.display()))?;
        return from_bytes(trim_line_end(text), "master_secret_file");
    }
    let path = settings.master_key_path();
    if path.exists() {
        let text =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return from_bytes(trim_line_end(text), &path.display().to_string());
    }
    let secret = MasterSecret::generate();
    write_private_file(&path, secret.expose(), false)?;
    tracing::warn!(
        path = %path.display(),
        "no master secret configured: generated one with the OS random generator; back it up and keep it private (mode 0600)"
    );
    Ok(secret)
}

/// Makes the data folder private: created 0700, or narrowed to 0700 (and the server's own files
/// in it, the database and its WAL files included, to 0600) when an earlier version or an
/// operator left them wider. Files the server creates later are private by the process's
/// umask (set in `main`). Blocking: call from a blocking thread or before the runtime starts.
///
/// # Errors
/// When the folder cannot be created or its permissions cannot be set.
pub fn secure_data_dir(settings: &Settings) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let dir = &settings.data_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    let narrow = |path: &std::path::Path, mode: u32| -> anyhow::Result<()> {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.file_type().is_symlink() || meta.permissions().mode() & 0o777 & !mode == 0 {
            return Ok(());
        }
        tracing::warn!(path = %path.display(), "narrowing permissions to {mode:o}");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the permissions of {}", path.display()))
    };
    narrow(dir, 0o700)?;
    // The server's own files only (the folder may hold others an operator put there).
    let mut own = vec![dir.join("master.key"), dir.join("initial-admin-password")];
    if let Some(database) = settings
        .database_url
        .strip_prefix("sqlite://")
        .or_else(|| settings.database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && !path.contains(":memory:"))
    {
        for suffix in ["", "-wal", "-shm"] {
            own.push(PathBuf::from(format!("{database}{suffix}")));
        }
    }
    for path in own {
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            narrow(&path, 0o600)?;
        }
    }
    Ok(())
}

fn trim_line_end(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}

/// Writes a secret to a new file readable by its owner only (0600, in a 0700 folder when the
/// folder is created), and syncs it. With `replace`, an existing file is removed first, so the
/// new one never inherits wider permissions; without it, an existing file is an error.
/// Blocking: call from a blocking thread.
///
/// # Errors
/// When the folder or file cannot be created or written.
pub(crate) fn write_private_file(
    path: &std::path::Path,
    content: &[u8],
    replace: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if replace {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot replace {}", path.display()));
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(content)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_bulwark_variable_is_refused_with_the_closest_key() {
        let check = |names: &[&str]| {
            check_environment(names.iter().map(std::ffi::OsString::from)).map_err(|e| e.to_string())
        };
        let err = check(&["BULWARK_RATE_LIMIT__DEFAULT"]).unwrap_err();
        assert!(err.contains("BULWARK_RATE_LIMIT__DEFAULT"), "{err}");
        assert!(
            err.contains("did you mean BULWARK_RATE_LIMITS__DEFAULT?"),
            "{err}"
        );
        let err = check(&["BULWARK_COMPLETELY_UNRELATED"]).unwrap_err();
        assert!(!err.contains("did you mean"), "{err}");
        check(&[
            "BULWARK_RATE_LIMITS__DEFAULT",
            "BULWARK_BIND",
            "BULWARK_TEST_DATABASE_URL",
            "BULWARK_BIN",
            "BULWARK_AUDIT_PASSWORD_1",
            "PATH",
            "NOT_BULWARK_X",
        ])
        .unwrap();
        let err = check(&["bulwark_rate_limit__default"]).unwrap_err();
        assert!(
            err.contains("did you mean BULWARK_RATE_LIMITS__DEFAULT?"),
            "{err}"
        );
    }

    /// Settings from a TOML text, as `check` and `load` read them (no environment).
    fn from_toml(toml: &str) -> Result<Settings, String> {
        Figment::from(figment::providers::Toml::string(toml))
            .extract::<Settings>()
            .map_err(describe_figment_error)
    }

    #[test]
    fn mail_settings_load_with_their_defaults_and_checks() {
        let s = from_toml("").unwrap();
        assert_eq!(s.public_url().to_string(), "http://127.0.0.1:8000");
        assert_eq!(s.mail_from(), "bulwark@localhost");
        assert_eq!(s.password_reset_ttl.0, Duration::from_secs(1800));
        assert_eq!(s.email_verification_ttl.0, Duration::from_secs(86_400));
        assert!(!s.require_verified_email);
        assert_eq!(
            s.rate_limits.password_reset_per_address,
            Quota::new(3, Duration::from_secs(3600))
        );
        let s = from_toml(
            "public_url = \"https://API.example.com/base/\"\n\
             smtp_url = \"smtps://bulwark:s3cret-pass@mail.example.com\"\n\
             password_reset_ttl = \"10m\"\n\
             require_verified_email = true\n\
             [rate_limits]\npassword_reset_per_address = \"1/hour\"",
        )
        .unwrap();
        s.validate().unwrap();
        let url = s.public_url();
        assert_eq!(
            url.join("/password-reset"),
            "https://api.example.com/base/password-reset"
        );
        assert_eq!(url.host(), "api.example.com");
        assert_eq!(s.mail_from(), "bulwark@api.example.com");
        let smtp = s.smtp_url.as_ref().unwrap();
        assert!(smtp.has_password());
        assert!(!format!("{s:?}").contains("s3cret-pass"));
        for (toml, needle) in [
            ("public_url = \"ftp://x\"", "public_url"),
            ("public_url = \"https://x/a?b=c\"", "public_url"),
            ("smtp_url = \"http://mail\"", "smtp_url"),
            ("smtp_url = \"smtp://bulwark:hunter2@\"", "smtp_url"),
        ] {
            let err = from_toml(toml).unwrap_err();
            assert!(err.contains(needle), "{toml}: {err}");
            assert!(!err.contains("hunter2"), "{toml}: {err}");
        }
        for (toml, needle) in [
            ("mail_from = \"not an address\"", "mail_from"),
            ("password_reset_ttl = \"10s\"", "password_reset_ttl"),
            ("email_verification_ttl = \"30d\"", "email_verification_ttl"),
            ("mail_retry_delay = 0", "mail_retry_delay"),
            ("smtp_password_file = \"/tmp/x\"", "smtp_password_file"),
        ] {
            let err = from_toml(toml).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{toml}: {err}");
        }
    }

    #[test]
    fn typed_values_are_parsed_once_when_loaded() {
        let s = from_toml(
            r#"
jwt_algorithm = "EdDSA"
trusted_proxies = ["10.0.0.0/8", "::1"]
allowed_origins = ["HTTPS://App.Example.com/", "http://[::1]:8080"]
[rate_limits]
default = "100/hour"
[rate_limits.routes]
"get /items/{item_id}" = "10/second"
"#,
        )
        .unwrap();
        assert_eq!(s.jwt_algorithm, KeyAlgorithm::EdDsa);
        assert!(s.trusted_proxies().is_trusted("10.1.2.3".parse().unwrap()));
        assert!(s.trusted_proxies().is_trusted("::1".parse().unwrap()));
        assert!(!s.trusted_proxies().is_trusted("192.0.2.1".parse().unwrap()));
        let origins: Vec<&str> = s.allowed_origins.iter().map(Origin::as_str).collect();
        assert_eq!(origins, ["https://app.example.com", "http://[::1]:8080"]);
        assert_eq!(s.rate_limits.default.to_string(), "100/hour");
        assert_eq!(s.rate_limits.login_per_ip.to_string(), "5/minute");
        let route: RouteKey = "GET /items/{item_id}".parse().unwrap();
        assert_eq!(s.rate_limits.routes[&route].to_string(), "10/second");
        let defaults = from_toml("").unwrap();
        assert_eq!(defaults.jwt_algorithm, KeyAlgorithm::Hs256);
        assert_eq!(defaults.rate_limits.default.to_string(), "600/minute");
        assert_eq!(
            defaults.rate_limits.login_per_username.to_string(),
            "5/minute"
        );
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error_naming_the_key_and_what_is_allowed() {
        for (toml, needles) in [
            (
                "jwt_algorithm = \"RS256\"",
                &[
                    "jwt_algorithm",
                    "\"RS256\" is not supported",
                    "\"HS256\", \"EdDSA\"",
                ][..],
            ),
            ("jwt_algorithm = \"hs256\"", &["jwt_algorithm", "allowed"]),
            (
                "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]",
                &["trusted_proxies.1", "10.0.0.0/33", "address/prefix"],
            ),
            (
                "allowed_origins = [\"*\"]",
                &["allowed_origins.0", "\"*\" is never allowed"],
            ),
            (
                "allowed_origins = [\"https://app.example/path\"]",
                &[
                    "allowed_origins.0",
                    "https://app.example/path",
                    "scheme://host[:port]",
                ],
            ),
            (
                "allowed_origins = [\"app.example\"]",
                &["allowed_origins.0", "https://"],
            ),
            (
                "allowed_origins = [\"ftp://app.example\"]",
                &["allowed_origins.0"],
            ),
            (
                "allowed_origins = [\"https://app.example:0\"]",
                &["allowed_origins.0"],
            ),
            (
                "allowed_origins = [\"https://*.example\"]",
                &["allowed_origins.0"],
            ),
            (
                "[rate_limits]\ndefault = \"5/fortnight\"",
                &["rate_limits.default", "5/fortnight", "N/minute"],
            ),
            (
                "[rate_limits.routes]\n\"GET /protected\" = \"10/fortnight\"",
                &["rate_limits.routes", "GET /protected", "10/fortnight"],
            ),
            (
                "[rate_limits.routes]\n\"/protected\" = \"10/minute\"",
                &["rate_limits.routes", "/protected", "METHOD /path/template"],
            ),
            (
                "[rate_limits.routes]\n\"GET /x\" = \"1/minute\"\n\"get /x\" = \"2/minute\"",
                &["rate_limits.routes", "GET /x", "twice"],
            ),
        ] {
            let err = from_toml(toml).unwrap_err();
            for needle in needles {
                assert!(
                    err.contains(needle),
                    "{toml}: {err:?} does not mention {needle:?}"
                );
            }
        }
        let s = from_toml("[rate_limits.routes]\n\"GET /health\" = \"1/minute\"").unwrap();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("never rate limited"), "{err}");
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        for (text, origin) in [
            ("https://app.example", "https://app.example"),
            ("https://APP.example/", "https://app.example"),
            (" http://localhost:3000 ", "http://localhost:3000"),
            ("https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"),
        ] {
            assert_eq!(text.parse::<Origin>().unwrap().as_str(), origin);
        }
        for bad in [
            "*",
            "",
            "https://",
            "https://a.example?x",
            "https://a.example#x",
            "https://user@a.example",
            "https://a.example:x",
            "https://a.example:65536",
            "https://[nope]",
            "https://a b",
            "null",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn check_loads_what_it_can_and_names_each_value_that_did_not_load() {
        let dir =
            std::env::temp_dir().join(format!("bulwark-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bulwark.toml");
        std::fs::write(
            &path,
            r#"
docs = false
allowed_origins = ["*"]
jwt_algorithm = "none"
trusted_proxies = ["10.0.0.0/8"]
[rate_limits]
enabled = false
default = "5/fortnight"
[rate_limits.routes]
"GET /.well-known/jwks.json" = "1/fortnight"
"GET /protected" = "3/minute"
"#,
        )
        .unwrap();
        let (s, invalid) = Settings::load_for_check(Some(&path)).unwrap();
        let keys: Vec<&str> = invalid.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "allowed_origins.0",
                "jwt_algorithm",
                "rate_limits.default",
                "rate_limits.routes.GET /.well-known/jwks.json",
            ]
        );
        for bad in &invalid {
            assert!(
                bad.source
                    .as_deref()
                    .is_some_and(|s| s.contains("TOML file")),
                "{bad:?}"
            );
        }
        // The rest is as written; the values that did not load are at their defaults.
        assert!(!s.docs && !s.rate_limits.enabled);
        assert_eq!(s.trusted_proxies.len(), 1);
        assert!(s.allowed_origins.is_empty());
        assert_eq!(s.rate_limits.default.to_string(), "600/minute");
        assert_eq!(s.rate_limits.routes.len(), 1);
        // `load` stops at the first.
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("allowed_origins.0"), "{err}");
        // A key that is not a setting stops `check` too.
        std::fs::write(
            &path,
            "allowed_origins = [\"*\"]\nacces_token_ttl = \"15m\"\n",
        )
        .unwrap();
        let err = Settings::load_for_check(Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("acces_token_ttl"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations_parse_in_every_documented_form() {
        assert_eq!(
            DurationSetting::parse("90s").unwrap().0,
            Duration::from_secs(90)
        );
        assert_eq!(
            DurationSetting::parse("15m").unwrap().0,
            Duration::from_secs(900)
        );
        assert_eq!(
            DurationSetting::parse("24h").unwrap().0,
            Duration::from_secs(86_400)
        );
        assert_eq!(
            DurationSetting::parse("7d").unwrap().0,
            Duration::from_secs(604_800)
        );
        assert_eq!(
            DurationSetting::parse("42").unwrap().0,
            Duration::from_secs(42)
        );
        for bad in ["", "m", "5w", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(DurationSetting::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_database_acquire_timeout_is_a_positive_duration() {
        let settings = Settings::default();
        assert_eq!(settings.pool().acquire_timeout, Duration::from_secs(5));
        // PostgreSQL cancels a statement once its request would have been answered 408.
        assert_eq!(
            settings.pool().statement_timeout,
            Some(Duration::from_secs(30))
        );
        let settings = Settings {
            database_acquire_timeout: DurationSetting::parse("2s").unwrap(),
            ..Settings::default()
        };
        assert_eq!(settings.pool().acquire_timeout, Duration::from_secs(2));
        let settings = Settings {
            database_acquire_timeout: DurationSetting::parse("0").unwrap(),
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("database_acquire_timeout"), "{err}");
    }

    #[test]
    fn private_files_are_owner_only_even_over_a_wider_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir =
            std::env::temp_dir().join(format!("bulwark-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            write_private_file(&path, b"new", false).is_err(),
            "never overwrites silently"
        );
        write_private_file(&path, b"new", true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
