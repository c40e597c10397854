//! What an audit is told: the target, the document, the credentials, the limits and which checks
//! run.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

use crate::{AuditError, catalog::CheckId, probe::ProbeLimits};

/// One account the audit logs in as.
#[derive(Clone, Deserialize)]
pub struct UserCredential {
    /// The username.
    pub username: String,
    /// The password (from the file, else `BULWARK_AUDIT_PASSWORD_<n>`).
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for UserCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredential")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The `--credentials` file (TOML or JSON).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Accounts to log in as; two enable the object-level checks.
    #[serde(default)]
    pub users: Vec<UserCredential>,
    /// Where to log in (default: the document's OAuth2 password flow, else `/token`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Ready bearer tokens, one per user.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Headers sent with every authenticated request (an API key, a cookie).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.users)
            .field("token_url", &self.token_url)
            .field("tokens", &self.tokens.len())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Reads a TOML or JSON file (by its extension; JSON when it starts with `{`), then fills
    /// missing passwords from `BULWARK_AUDIT_PASSWORD_<n>` (`n` counts users from 1).
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuditError::Usage(format!("--credentials {}: {e}", path.display())))?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            || text.trim_start().starts_with('{');
        // The parsers' messages can quote the offending text, which may be a password: name the
        // place only.
        let mut credentials: Credentials = if is_json {
            serde_json::from_str(&text).map_err(|e| {
                AuditError::Usage(format!(
                    "--credentials {}: not valid JSON for a credentials file (line {}, column {})",
                    path.display(),
                    e.line(),
                    e.column()
                ))
            })?
        } else {
            toml::from_str(&text).map_err(|e| {
                let at = e
                    .span()
                    .map(|s| format!(" at byte {}", s.start))
                    .unwrap_or_default();
                AuditError::Usage(format!(
                    "--credentials {}: not valid TOML for a credentials file{at}",
                    path.display()
                ))
            })?
        };
        credentials.fill_from_env(|name| std::env::var(name).ok());
        Ok(credentials)
    }

    /// Fills missing passwords from `BULWARK_AUDIT_PASSWORD_<n>`.
    pub fn fill_from_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        for (i, user) in self.users.iter_mut().enumerate() {
            if user.password.is_none() {
                user.password = var(&format!("BULWARK_AUDIT_PASSWORD_{}", i + 1));
            }
        }
    }
}

/// Everything an audit run needs.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The API's base URL.
    pub url: String,
    /// `--openapi`: a URL or a file; `None` to discover it.
    pub openapi: Option<String>,
    /// Accounts, tokens and headers.
    pub credentials: Credentials,
    /// Request budget, rate and timeout.
    pub limits: ProbeLimits,
    /// `--only`: run just these checks.
    pub only: Option<Vec<CheckId>>,
    /// `--skip`: leave these out.
    pub skip: Vec<CheckId>,
    /// `--allow-remote`: scan a host that is neither loopback nor private.
    pub allow_remote: bool,
}

impl AuditConfig {
    /// An audit of `url` with the defaults (no credentials, every check).
    pub fn new(url: impl Into<String>) -> Self {
        AuditConfig {
            url: url.into(),
            openapi: None,
            credentials: Credentials::default(),
            limits: ProbeLimits::default(),
            only: None,
            skip: Vec::new(),
            allow_remote: false,
        }
    }

    /// Whether `id` is selected by `--only` and `--skip`.
    pub fn selects(&self, id: CheckId) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&id)) && !self.skip.contains(&id)
    }
}
