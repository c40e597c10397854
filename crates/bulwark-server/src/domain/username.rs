use bulwark::error::ErrorDetail;
use bulwark::validation::with_safe_input;
use serde_json::json;

/// A username: 3-64 characters of `[A-Za-z0-9_.-]`, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Smallest length.
    pub const MIN: usize = 3;
    /// Largest length.
    pub const MAX: usize = 64;

    /// Parses a username; `loc` locates the error.
    ///
    /// # Errors
    /// A pydantic-style detail (`string_too_short`, `string_too_long`, `string_pattern_mismatch`).
    pub fn parse(raw: &str, loc: &[&str]) -> Result<Self, ErrorDetail> {
        let input = json!(raw);
        let len = raw.chars().count();
        let detail = if len < Self::MIN {
            ErrorDetail::new(
                "string_too_short",
                loc.iter().copied(),
                "String should have at least 3 characters",
            )
            .with_ctx(json!({"min_length": Self::MIN}))
        } else if len > Self::MAX {
            ErrorDetail::new(
                "string_too_long",
                loc.iter().copied(),
                "String should have at most 64 characters",
            )
            .with_ctx(json!({"max_length": Self::MAX}))
        } else if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            ErrorDetail::new(
                "string_pattern_mismatch",
                loc.iter().copied(),
                "String should match pattern '^[A-Za-z0-9_.-]{3,64}$'",
            )
            .with_ctx(json!({"pattern": "^[A-Za-z0-9_.-]{3,64}$"}))
        } else {
            return Ok(Self(raw.to_owned()));
        };
        Err(with_safe_input(detail, input))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as given.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_contract() {
        for ok in ["bob", "Alice_01", "a.b-c", &"x".repeat(64)] {
            assert!(Username::parse(ok, &["body", "username"]).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "",
            "has space",
            "semi;colon",
            "ünï",
            &"x".repeat(65),
            "a'--",
        ] {
            assert!(
                Username::parse(bad, &["body", "username"]).is_err(),
                "{bad}"
            );
        }
    }
}
