//! The finding IDs of the contract, each with its severity, title and remediation: one table that
//! the report, the SARIF rules and the docs are written from.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a weakness by itself.
    Info,
    /// A weakness that helps an attacker little.
    Low,
    /// A weakness an attacker can use with some effort or luck.
    Medium,
    /// A weakness that exposes data or accounts.
    High,
    /// A weakness that gives an attacker the API.
    Critical,
}

impl Severity {
    /// The lowercase name (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "unknown severity {s:?} (info, low, medium, high, critical)"
                ));
            }
        })
    }
}

macro_rules! catalog {
    ($($variant:ident = $id:literal, $severity:ident, $title:literal, $remediation:literal;)*) => {
        /// A finding ID of the contract; stable across releases.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CheckId {
            $(
                #[doc = $title]
                $variant,
            )*
        }

        impl CheckId {
            /// Every check, in the contract's order (the order they run and are reported in).
            pub const ALL: &'static [CheckId] = &[$(CheckId::$variant),*];

            /// The stable ID (`jwt-weak-secret`).
            pub fn as_str(self) -> &'static str {
                match self { $(CheckId::$variant => $id),* }
            }

            /// The severity of this check's findings.
            pub fn severity(self) -> Severity {
                match self { $(CheckId::$variant => Severity::$severity),* }
            }

            /// A one-line title.
            pub fn title(self) -> &'static str {
                match self { $(CheckId::$variant => $title),* }
            }

            /// How to fix what the check finds.
            pub fn remediation(self) -> &'static str {
                match self { $(CheckId::$variant => $remediation),* }
            }
        }
    };
}

catalog! {
    JwtAlgNone = "jwt-alg-none", Critical,
        "A token signed with alg \"none\" is accepted",
        "Verify every token with the algorithm the server fixed, never the one its header names; refuse \"none\".";
    JwtWeakSecret = "jwt-weak-secret", Critical,
        "The HS256 signing secret is a known or guessable one",
        "Sign with a random secret of at least 32 bytes from a secret store (or an asymmetric key), rotate it now, and revoke every token signed with the old one.";
    JwtSignatureNotVerified = "jwt-signature-not-verified", Critical,
        "A token with a forged signature is accepted",
        "Verify the signature of every token before reading its claims.";
    JwtNoExpiry = "jwt-no-expiry", Medium,
        "Access tokens never expire or live longer than 24 hours",
        "Give access tokens an `exp` minutes away and use refresh tokens for longer sessions.";
    AuthMissing = "auth-missing", High,
        "An operation serves user data or changes state without credentials",
        "Require authentication on every operation that reads user data or changes state (a dependency or layer applied by default, not per route).";
    Bola = "bola", High,
        "One user can read, change or delete another user's object",
        "Check the object's owner (or the caller's rights on it) on every read, change and delete, in the query that loads it.";
    MassAssignment = "mass-assignment", High,
        "A field the client must not set (owner, role, admin flag) is accepted and applied",
        "Bind request bodies to input models that list only the fields a client may set; reject unknown fields.";
    SqlInjection = "sql-injection", Critical,
        "Input is interpreted as SQL",
        "Use parameterized queries (bound parameters) for every value; never build SQL text from input.";
    NosqlInjection = "nosql-injection", High,
        "Input is interpreted as a NoSQL query operator",
        "Accept only scalar values where a scalar is expected; never pass request objects to a query as they are.";
    Ssti = "ssti", Critical,
        "Input is evaluated as a server-side template",
        "Never build templates from input; pass input to a fixed template as data, with autoescaping on.";
    XssReflected = "xss-reflected", Medium,
        "Input is reflected unescaped in an HTML answer",
        "Escape output for its context (autoescaping templates) and answer JSON as application/json; send a Content-Security-Policy.";
    XssStored = "xss-stored", High,
        "Stored input is served unescaped in an HTML answer",
        "Sanitize HTML input with an allow-list sanitizer (ammonia, nh3/bleach) and escape output for its context.";
    Csrf = "csrf", Medium,
        "A cookie-authenticated state change is accepted without a CSRF token or from another origin",
        "Require a CSRF token (signed double submit) on every cookie-authenticated state change, check Origin, and set cookies SameSite=Lax or Strict.";
    LoginNoRateLimit = "login-no-rate-limit", Medium,
        "Login attempts are not limited",
        "Limit failed logins per account and per client (429 with Retry-After).";
    UserEnumeration = "user-enumeration", Medium,
        "Login tells unknown users from wrong passwords",
        "Answer both with the same status and body, and verify a dummy hash for unknown users so timing matches.";
    CorsCredentialsWildcard = "cors-credentials-wildcard", High,
        "Any origin may make credentialed cross-origin requests",
        "List the allowed origins explicitly; never reflect the request's Origin with Access-Control-Allow-Credentials: true.";
    SecurityHeaders = "security-headers", Low,
        "Security headers are missing",
        "Send X-Content-Type-Options: nosniff, a frame-ancestors policy (X-Frame-Options: DENY), Referrer-Policy and, over HTTPS, Strict-Transport-Security.";
    VerboseErrors = "verbose-errors", Medium,
        "Error answers reveal stack traces, SQL or file paths",
        "Answer errors with a generic message and log the details on the server only.";
    ServerError = "server-error", Medium,
        "Crafted input causes a server error (5xx)",
        "Validate input at the edge (types, lengths, formats) and answer 4xx for what does not fit; handle every error path.";
    OpenRedirect = "open-redirect", Medium,
        "A redirect target taken from input can point to another site",
        "Redirect only to relative paths or an allow-list of origins.";
    Ssrf = "ssrf", High,
        "The server fetches URLs taken from input",
        "Fetch only allow-listed hosts; refuse private, loopback and link-local addresses after resolving.";
    PathTraversal = "path-traversal", High,
        "A file path taken from input reaches outside its folder",
        "Map input to files through an allow-list or a canonicalized path checked to stay inside the folder.";
    Tls = "tls", Medium,
        "The API is served without TLS, or with TLS below 1.2",
        "Serve HTTPS only, TLS 1.2 or later, and redirect plain HTTP with HSTS.";
    OpenapiDrift = "openapi-drift", Low,
        "Answers that the OpenAPI document does not describe",
        "Keep the document generated from the code, and describe every status an operation answers.";
    WeakPasswordPolicy = "weak-password-policy", Medium,
        "Weak passwords are accepted for new accounts",
        "Refuse short and common passwords (at least 8 characters, checked against a breached-password list).";
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckId::ALL
            .iter()
            .copied()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| format!("unknown check {s:?}"))
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for id in CheckId::ALL {
            assert!(seen.insert(id.as_str()), "{id} twice");
            assert_eq!(id.as_str().parse::<CheckId>(), Ok(*id));
        }
        assert_eq!(CheckId::ALL.len(), 25);
    }
}
