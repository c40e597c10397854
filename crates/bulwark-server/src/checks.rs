//! `bulwark check`: an audit of the effective configuration, one finding per concern, each
//! with why it matters and how to fix it. `serve` runs the same checks at start-up.

use std::{fmt, net::IpAddr};

use crate::config::{InvalidSetting, Settings};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Fine.
    Ok,
    /// Worth fixing; the server still starts.
    Warning,
    /// Unsafe: `bulwark check` exits 1.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: findings are printed in columns (`{:<8}`).
        f.pad(match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Short name of what was checked, e.g. `master_secret`.
    pub key: &'static str,
    /// Why, and how to fix.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8} {:<22} {}", self.severity, self.key, self.message)
    }
}

fn finding(severity: Severity, key: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        severity,
        key,
        message: message.into(),
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Every check, in a stable order, of settings that loaded.
pub fn run(settings: &Settings) -> Vec<Finding> {
    report(settings, &[])
}

/// The settings each finding is about, besides its own key: a value of one of them that does
/// not load makes the finding critical.
const ABOUT: &[(&str, &[&str])] = &[
    ("master_secret", &["master_secret", "master_secret_file"]),
    ("tls", &["tls_cert", "tls_key", "tls_self_signed"]),
    ("secure_cookies", &["secure_cookies"]),
    ("docs", &["docs"]),
    ("allowed_origins", &["allowed_origins"]),
    ("trusted_proxies", &["trusted_proxies", "forwarded_header"]),
    ("rate_limits", &["rate_limits"]),
    ("allow_signup", &["allow_signup"]),
    ("database_url", &["database_url", "redis_url"]),
    ("key_rotation_interval", &["key_rotation_interval"]),
];

/// Every check, in a stable order, for `bulwark check`: `settings` as
/// [`Settings::load_for_check`] loaded them, the values in `invalid` left at their defaults.
/// Each invalid value is a critical `configuration` finding, and makes the finding about its
/// setting critical, with the reason, in place of what the default would have shown.
pub fn report(settings: &Settings, invalid: &[InvalidSetting]) -> Vec<Finding> {
    let mut out: Vec<Finding> = invalid
        .iter()
        .map(|bad| finding(Severity::Critical, "configuration", bad.to_string()))
        .collect();
    for finding in checks(settings) {
        let about = |bad: &&InvalidSetting| -> bool {
            let key = bad.key.split('.').next().unwrap_or_default();
            ABOUT
                .iter()
                .any(|(about, keys)| *about == finding.key && keys.contains(&key))
        };
        match invalid.iter().find(about) {
            Some(bad) if finding.key != "configuration" => out.push(Finding {
                severity: Severity::Critical,
                key: finding.key,
                message: bad.to_string(),
            }),
            _ => out.push(finding),
        }
    }
    out
}

fn checks(settings: &Settings) -> Vec<Finding> {
    use Severity::{Critical, Ok, Warning};
    let mut out = Vec::new();
    if let Err(err) = settings.validate() {
        out.push(finding(Critical, "configuration", format!("{err:#}")));
    }

    // Master secret.
    out.push(master_secret(settings));

    let public = !is_loopback(settings.bind.ip());
    let tls = settings.tls_enabled();
    out.push(match (public, tls) {
        (true, false) => finding(
            Warning,
            "tls",
            format!(
                "TLS is off while listening on {}: tokens and cookies cross the network in clear unless a TLS proxy fronts the server; use --tls-cert/--tls-key",
                settings.bind
            ),
        ),
        _ => finding(Ok, "tls", if tls { "TLS is on" } else { "TLS is off, listening on loopback only" }),
    });
    out.push(if public && !tls && !settings.secure_cookies {
        finding(
            Critical,
            "secure_cookies",
            "session and CSRF cookies would be sent without Secure on a network address: enable TLS, or set secure_cookies = true behind a TLS-terminating proxy",
        )
    } else {
        finding(Ok, "secure_cookies", "cookies are Secure, or the server is reachable on loopback only")
    });
    out.push(if public && settings.docs {
        finding(
            Warning,
            "docs",
            "/docs and /openapi.json are served on a network address: they map the whole API for an attacker; set docs = false in production",
        )
    } else {
        finding(Ok, "docs", "docs are off, or served on loopback only")
    });
    // "*" is not an origin: it never loads (reported above, as an invalid value).
    out.push(finding(
        Ok,
        "allowed_origins",
        format!("{} origin(s) listed", settings.allowed_origins.len()),
    ));
    // A range holding the unspecified address: `0.0.0.0/0`, `::/0` (and `::/1`, `::/2`, which
    // hold every global IPv6 address), or the unspecified address itself.
    let everything = settings
        .trusted_proxies
        .iter()
        .any(|c| c.contains(IpAddr::from([0, 0, 0, 0])) || c.contains(IpAddr::from([0u16; 8])));
    out.push(if everything {
        finding(
            Critical,
            "trusted_proxies",
            "a trusted proxy range covers every address: any client can choose its own IP with X-Forwarded-For and dodge rate limits; list only your proxies' addresses",
        )
    } else {
        finding(Ok, "trusted_proxies", format!("{} proxy range(s) trusted", settings.trusted_proxies.len()))
    });
    out.push(if settings.rate_limits.enabled {
        finding(Ok, "rate_limits", "rate limiting is on")
    } else {
        finding(
            Warning,
            "rate_limits",
            "rate limiting is off: nothing slows password guessing; set rate_limits.enabled = true",
        )
    });
    out.push(if settings.allow_signup {
        finding(
            Warning,
            "allow_signup",
            "anyone can create an account; turn allow_signup off unless the service is meant to be public",
        )
    } else {
        finding(Ok, "allow_signup", "signup is closed; accounts are created by admins")
    });
    let sqlite = settings.database_url.starts_with("sqlite:");
    out.push(if sqlite && settings.redis_url.is_some() {
        finding(
            Critical,
            "database_url",
            "redis_url is set (several instances) but the database is an SQLite file: instances cannot share it safely; use PostgreSQL",
        )
    } else {
        finding(Ok, "database_url", if sqlite { "embedded SQLite (one instance)" } else { "PostgreSQL" })
    });
    out.extend(mail(settings, public));
    out.push(if settings.key_rotation_interval.0.as_secs() > 30 * 86_400 {
        finding(
            Warning,
            "key_rotation_interval",
            "signing keys rotate less often than every 30 days: a leaked key stays useful longer; use at most 30d",
        )
    } else {
        finding(Ok, "key_rotation_interval", "signing keys rotate at least every 30 days")
    });
    out
}

/// Mail links and their delivery: where links point, how mail travels, where the SMTP password
/// is kept.
fn mail(settings: &Settings, public: bool) -> Vec<Finding> {
    use Severity::{Ok, Warning};
    use bulwark::mail::smtp::SmtpSecurity;
    let mut out = Vec::new();
    let url = settings.public_url();
    let link_host_loopback =
        matches!(url.host(), "localhost") || url.host().parse::<IpAddr>().is_ok_and(is_loopback);
    out.push(match &settings.public_url {
        None if public => finding(
            Warning,
            "public_url",
            format!(
                "public_url is not set: links in password-reset and verification mails point at {url}, which users may not reach; set public_url to the address they use"
            ),
        ),
        Some(_) if url.to_string().starts_with("http://") && !link_host_loopback => finding(
            Warning,
            "public_url",
            format!(
                "public_url {url} is plain HTTP: password-reset links would open over an unencrypted connection; use https://"
            ),
        ),
        _ => finding(Ok, "public_url", format!("links in mails point at {url}")),
    });
    out.push(match &settings.smtp_url {
        None if public => finding(
            Warning,
            "smtp_url",
            "smtp_url is not set: mails are only written to the outbox folder, so users never receive reset or verification links; set smtp_url",
        ),
        None => finding(
            Ok,
            "smtp_url",
            "no smtp_url: mails are written to the outbox folder (development)",
        ),
        Some(smtp) if smtp.has_password() => finding(
            Warning,
            "smtp_url",
            "the SMTP password is written in smtp_url: keep it in smtp_password_file (mode 0600) instead",
        ),
        Some(smtp)
            if smtp.security() == SmtpSecurity::Opportunistic
                && !smtp.host().parse::<IpAddr>().is_ok_and(is_loopback)
                && smtp.host() != "localhost" =>
        {
            finding(
                Warning,
                "smtp_url",
                format!(
                    "smtp://{}:{} sends in clear when the server does not offer STARTTLS, and reset links could be read on the way: use smtp+starttls:// or smtps://",
                    smtp.host(),
                    smtp.port()
                ),
            )
        }
        Some(smtp) => finding(Ok, "smtp_url", format!("mails go to {smtp}")),
    });
    out
}

fn master_secret(settings: &Settings) -> Finding {
    use Severity::{Critical, Ok, Warning};
    use secrecy::ExposeSecret as _;
    if let Some(secret) = &settings.master_secret {
        return match bulwark::secret::MasterSecret::new(secret.expose_secret().as_bytes().to_vec())
        {
            Err(err) => finding(
                Critical,
                "master_secret",
                format!("{err}: generate one with `openssl rand -base64 32`"),
            ),
            Result::Ok(_) => finding(
                Warning,
                "master_secret",
                "the master secret is set inline (file or environment): prefer master_secret_file with mode 0600",
            ),
        };
    }
    let (path, generated) = match &settings.master_secret_file {
        Some(path) => (path.clone(), false),
        None => (settings.master_key_path(), true),
    };
    let Result::Ok(meta) = std::fs::metadata(&path) else {
        return if generated {
            finding(
                Warning,
                "master_secret",
                format!(
                    "none configured: one will be generated at {} on first start; back it up",
                    path.display()
                ),
            )
        } else {
            finding(
                Critical,
                "master_secret",
                format!("master_secret_file {} cannot be read", path.display()),
            )
        };
    };
    let Result::Ok(bytes) = std::fs::read(&path) else {
        return finding(
            Critical,
            "master_secret",
            format!("{} cannot be read", path.display()),
        );
    };
    let trimmed: Vec<u8> = bytes.strip_suffix(b"\n").unwrap_or(&bytes).to_vec();
    if let Err(err) = bulwark::secret::MasterSecret::new(trimmed) {
        return finding(
            Critical,
            "master_secret",
            format!("{}: {err}", path.display()),
        );
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return finding(
            Critical,
            "master_secret",
            format!(
                "{} is readable by other users (mode {mode:o}): chmod 600 it",
                path.display()
            ),
        );
    }
    finding(
        Ok,
        "master_secret",
        format!("read from {} (mode {mode:o})", path.display()),
    )
}

/// True when any finding is critical.
pub fn has_critical(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Critical)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::field_reassign_with_default)]

    use super::*;

    fn severity_of(findings: &[Finding], key: &str) -> Severity {
        findings
            .iter()
            .filter(|f| f.key == key)
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    #[test]
    fn defaults_on_loopback_have_no_critical_finding() {
        let findings = run(&Settings::default());
        assert!(!has_critical(&findings), "{findings:#?}");
    }

    #[test]
    fn a_public_bind_without_tls_or_secure_cookies_is_critical() {
        let mut s = Settings::default();
        s.bind = "0.0.0.0:8000".parse().unwrap();
        let f = run(&s);
        assert_eq!(severity_of(&f, "secure_cookies"), Severity::Critical);
        assert_eq!(severity_of(&f, "tls"), Severity::Warning);
        assert_eq!(severity_of(&f, "docs"), Severity::Warning);
        s.secure_cookies = true;
        s.docs = false;
        let f = run(&s);
        assert_eq!(severity_of(&f, "secure_cookies"), Severity::Ok);
        assert_eq!(severity_of(&f, "docs"), Severity::Ok);
    }

    #[test]
    fn each_dangerous_setting_is_reported() {
        let mut s = Settings::default();
        s.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap(), "::/0".parse().unwrap()];
        s.rate_limits.enabled = false;
        s.allow_signup = true;
        s.redis_url = Some("redis://127.0.0.1".into());
        s.key_rotation_interval = crate::config::DurationSetting::parse("60d").unwrap();
        let f = run(&s);
        assert_eq!(severity_of(&f, "trusted_proxies"), Severity::Critical);
        assert_eq!(severity_of(&f, "rate_limits"), Severity::Warning);
        assert_eq!(severity_of(&f, "allow_signup"), Severity::Warning);
        assert_eq!(severity_of(&f, "database_url"), Severity::Critical);
        assert_eq!(severity_of(&f, "key_rotation_interval"), Severity::Warning);
        assert_eq!(severity_of(&f, "configuration"), Severity::Ok);
        for cidr in ["0.0.0.0/0", "0.0.0.0", "::", "::ffff:0.0.0.0/96"] {
            s.trusted_proxies = vec![cidr.parse().unwrap()];
            let f = run(&s);
            assert_eq!(
                severity_of(&f, "trusted_proxies"),
                Severity::Critical,
                "{cidr}"
            );
        }
        s.trusted_proxies = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert_eq!(severity_of(&run(&s), "trusted_proxies"), Severity::Ok);
    }

    #[test]
    fn mail_settings_that_leak_links_are_reported() {
        let mut s = Settings::default();
        assert_eq!(severity_of(&run(&s), "smtp_url"), Severity::Ok);
        assert_eq!(severity_of(&run(&s), "public_url"), Severity::Ok);
        s.bind = "0.0.0.0:8000".parse().unwrap();
        assert_eq!(severity_of(&run(&s), "smtp_url"), Severity::Warning);
        assert_eq!(severity_of(&run(&s), "public_url"), Severity::Warning);
        s.public_url = Some("http://api.example.com".parse().unwrap());
        assert_eq!(severity_of(&run(&s), "public_url"), Severity::Warning);
        s.public_url = Some("https://api.example.com".parse().unwrap());
        assert_eq!(severity_of(&run(&s), "public_url"), Severity::Ok);
        s.smtp_url = Some("smtp://mail.example.com".parse().unwrap());
        assert_eq!(severity_of(&run(&s), "smtp_url"), Severity::Warning);
        s.smtp_url = Some(
            "smtps://bulwark:hunter2-secret@mail.example.com"
                .parse()
                .unwrap(),
        );
        let f = run(&s);
        assert_eq!(severity_of(&f, "smtp_url"), Severity::Warning);
        assert!(f.iter().all(|f| !f.message.contains("hunter2")));
        s.smtp_url = Some("smtp+starttls://bulwark@mail.example.com".parse().unwrap());
        assert_eq!(severity_of(&run(&s), "smtp_url"), Severity::Ok);
        s.smtp_url = Some("smtp://127.0.0.1:2525".parse().unwrap());
        assert_eq!(severity_of(&run(&s), "smtp_url"), Severity::Ok);
    }

    #[test]
    fn a_value_that_did_not_load_is_critical_under_its_own_finding() {
        let invalid = [InvalidSetting {
            key: "allowed_origins.0".to_owned(),
            message: "\"*\" is never allowed".to_owned(),
            source: Some("TOML file".to_owned()),
        }];
        let f = report(&Settings::default(), &invalid);
        assert_eq!(severity_of(&f, "configuration"), Severity::Critical);
        assert_eq!(severity_of(&f, "allowed_origins"), Severity::Critical);
        assert_eq!(severity_of(&f, "trusted_proxies"), Severity::Ok);
        let origins = f.iter().find(|f| f.key == "allowed_origins").unwrap();
        assert_eq!(
            origins.message,
            "allowed_origins.0: \"*\" is never allowed (from TOML file)"
        );
        assert_eq!(f.iter().filter(|f| f.key == "allowed_origins").count(), 1);
    }

    #[test]
    fn weak_inline_secrets_are_critical() {
        let mut s = Settings::default();
        s.master_secret = Some("changeme".to_owned().into());
        assert_eq!(severity_of(&run(&s), "master_secret"), Severity::Critical);
        s.master_secret = Some(bulwark::secret::random_token(32).into());
        assert_eq!(severity_of(&run(&s), "master_secret"), Severity::Warning);
    }
}
