//! Rules for new passwords: length, a bundled common-password list, zxcvbn strength.

use std::{collections::HashSet, sync::LazyLock};

use serde_json::json;

use crate::error::{ErrorDetail, LocItem};

/// ~1 300 common passwords, lowercase, one per line: the 1 000 most frequent of the xato.net
/// corpus (as shipped in zxcvbn's frequency list), every entry of that list with 12 or more
/// characters, and common long patterns such as `password1234` and `iloveyou1234`.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .collect()
});

/// Checks new passwords (signup, password change) against the contract's rules.
///
/// Defaults: 12–128 characters (Unicode scalar values, not bytes), not in the bundled list of
/// common passwords (compared in lowercase), and a zxcvbn score of at least 3.
///
/// # Examples
/// ```
/// use bulwark::password::{PasswordPolicy, PolicyViolation};
///
/// let policy = PasswordPolicy::default();
/// assert!(policy.check("correct horse battery staple 42!", &["alice"]).is_ok());
/// assert_eq!(
///     policy.check("password1234", &["alice"]),
///     Err(PolicyViolation::Common)
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_chars: usize,
    max_chars: usize,
    min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
            min_score: 3,
        }
    }
}

impl PasswordPolicy {
    /// The contract's policy (same as `default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the allowed length in characters.
    pub fn with_length(mut self, min_chars: usize, max_chars: usize) -> Self {
        self.min_chars = min_chars;
        self.max_chars = max_chars;
        self
    }

    /// Sets the lowest accepted zxcvbn score (0–4).
    pub fn with_min_score(mut self, score: u8) -> Self {
        self.min_score = score.min(4);
        self
    }

    /// Checks a new password. `user_inputs` (username, email, ...) make passwords built from them
    /// weak.
    ///
    /// # Errors
    /// The first rule broken, checked in order: length, common list, strength.
    pub fn check(&self, password: &str, user_inputs: &[&str]) -> Result<(), PolicyViolation> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(PolicyViolation::TooShort {
                min: self.min_chars,
            });
        }
        if chars > self.max_chars {
            return Err(PolicyViolation::TooLong {
                max: self.max_chars,
            });
        }
        if COMMON_PASSWORDS.contains(password.to_lowercase().as_str()) {
            return Err(PolicyViolation::Common);
        }
        let inputs: Vec<&str> = user_inputs
            .iter()
            .copied()
            .filter(|s| !s.is_empty())
            .collect();
        let entropy = zxcvbn::zxcvbn(password, &inputs);
        let score = u8::from(entropy.score());
        if score < self.min_score {
            let feedback = entropy.feedback().map(|f| {
                let mut parts: Vec<String> =
                    f.warning().map(|w| w.to_string()).into_iter().collect();
                parts.extend(f.suggestions().iter().map(ToString::to_string));
                parts.join(" ")
            });
            return Err(PolicyViolation::Weak {
                score,
                feedback: feedback.filter(|s| !s.is_empty()),
            });
        }
        Ok(())
    }
}

/// Why a new password was refused. Never contains the password.
///
/// # Examples
/// ```
/// use bulwark::password::PolicyViolation;
///
/// let v = PolicyViolation::TooShort { min: 12 };
/// assert_eq!(v.kind(), "string_too_short");
/// assert_eq!(v.message(), "Password must have at least 12 characters");
/// let detail = v.to_error_detail(["body", "password"]);
/// assert!(detail.input.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer characters than the minimum.
    #[error("Password must have at least {min} characters")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More characters than the maximum.
    #[error("Password must have at most {max} characters")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// In the bundled list of common passwords.
    #[error("Password is too common")]
    Common,
    /// zxcvbn scored it below the minimum.
    #[error("Password is too weak{}", colon_prefixed(.feedback))]
    Weak {
        /// zxcvbn's score, 0–4.
        score: u8,
        /// zxcvbn's warning and suggestions, when it has any.
        feedback: Option<String>,
    },
}

impl PolicyViolation {
    /// A message for the user, e.g. `Password is too common`.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// A pydantic-like error type: `string_too_short`, `string_too_long`, `password_common` or
    /// `password_weak`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "string_too_short",
            Self::TooLong { .. } => "string_too_long",
            Self::Common => "password_common",
            Self::Weak { .. } => "password_weak",
        }
    }

    /// An entry for a 422 body at `loc`, with `ctx` for length errors and no `input`.
    pub fn to_error_detail(
        &self,
        loc: impl IntoIterator<Item = impl Into<LocItem>>,
    ) -> ErrorDetail {
        let detail = ErrorDetail::new(self.kind(), loc, self.message());
        match self {
            Self::TooShort { min } => detail.with_ctx(json!({ "min_length": min })),
            Self::TooLong { max } => detail.with_ctx(json!({ "max_length": max })),
            _ => detail,
        }
    }
}

/// `": feedback"`, or nothing.
fn colon_prefixed(feedback: &Option<String>) -> String {
    feedback
        .as_deref()
        .map(|f| format!(": {f}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
