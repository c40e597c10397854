//! The shared secret of an authenticator: random bytes, their base32 text and the `otpauth://`
//! URI an authenticator app scans.

use std::fmt::Write as _;

use secrecy::{ExposeSecret, SecretBox};

/// The length of a generated secret: 20 bytes (160 bits), the length RFC 4226 recommends and
/// the output size of HMAC-SHA1.
pub const SECRET_LEN: usize = 20;

/// The shortest secret accepted: 16 bytes (128 bits), RFC 4226's minimum (requirement R6).
pub const MIN_SECRET_LEN: usize = 16;

/// The longest secret accepted: 64 bytes, the HMAC block size (a longer key is hashed first
/// and adds nothing).
pub const MAX_SECRET_LEN: usize = 64;

/// The shared secret of a TOTP authenticator.
///
/// Made with [`TotpSecret::generate`] (20 bytes from the operating system's generator) or read
/// back from storage with [`TotpSecret::from_bytes`] / [`TotpSecret::from_base32`]. The bytes
/// are zeroed when the value is dropped (`secrecy`), and [`Debug`](std::fmt::Debug) never shows
/// them. Keep it sealed at rest, for example with
/// [`MasterSecret::sealer_for`](crate::secret::MasterSecret::sealer_for).
///
/// # Examples
/// ```
/// use bulwark::totp::{Totp, TotpSecret};
///
/// let secret = TotpSecret::generate();
/// // Shown once to the user, as text and as a QR code of the URI:
/// let text = secret.expose_base32(); // 32 characters of RFC 4648 base32
/// let uri = secret.otpauth_uri("Bulwark", "alice");
/// assert_eq!(uri, format!("otpauth://totp/Bulwark:alice?secret={text}&issuer=Bulwark"));
/// assert_eq!(format!("{secret:?}"), "TotpSecret([REDACTED])");
///
/// // Stored (sealed), read back, and a code checked:
/// let stored = secret.expose().to_vec();
/// let secret = TotpSecret::from_bytes(stored)?;
/// let now = 1_700_000_000;
/// let code = Totp::new().code_at(&secret, now);
/// assert!(Totp::new().verify(&secret, &code, now).is_ok());
/// # Ok::<(), bulwark::totp::SecretError>(())
/// ```
pub struct TotpSecret(SecretBox<[u8]>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// Why bytes or text are not a usable TOTP secret. The message never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Fewer than [`MIN_SECRET_LEN`] or more than [`MAX_SECRET_LEN`] bytes.
    #[error("a TOTP secret has {min} to {max} bytes, not {len}")]
    Length {
        /// The length given.
        len: usize,
        /// [`MIN_SECRET_LEN`].
        min: usize,
        /// [`MAX_SECRET_LEN`].
        max: usize,
    },
    /// Not RFC 4648 base32.
    #[error("a TOTP secret is RFC 4648 base32 text")]
    Base32,
}

impl TotpSecret {
    /// A new secret of [`SECRET_LEN`] bytes from the operating system's random generator.
    pub fn generate() -> Self {
        Self(SecretBox::new(
            crate::secret::random_bytes(SECRET_LEN).into_boxed_slice(),
        ))
    }

    /// A secret from its bytes (e.g. unsealed from storage).
    ///
    /// # Errors
    /// [`SecretError::Length`] when there are fewer than [`MIN_SECRET_LEN`] or more than
    /// [`MAX_SECRET_LEN`] bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let secret = SecretBox::new(bytes.into_boxed_slice());
        let len = secret.expose_secret().len();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
            return Err(SecretError::Length {
                len,
                min: MIN_SECRET_LEN,
                max: MAX_SECRET_LEN,
            });
        }
        Ok(Self(secret))
    }

    /// A secret from its RFC 4648 base32 text, as authenticator apps and other services show
    /// it: upper or lower case, with or without `=` padding, spaces ignored.
    ///
    /// # Errors
    /// [`SecretError::Base32`] when the text is not base32 (a character outside `A-Z2-7`, a
    /// length no byte string encodes to, non-zero trailing bits), [`SecretError::Length`] when
    /// it decodes to too few or too many bytes.
    ///
    /// # Examples
    /// ```
    /// use bulwark::totp::TotpSecret;
    ///
    /// let secret = TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq")?;
    /// assert_eq!(secret.expose(), b"12345678901234567890");
    /// assert_eq!(secret.expose_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    /// # Ok::<(), bulwark::totp::SecretError>(())
    /// ```
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        // Zeroed on drop, like the decoded bytes: the text is the secret too.
        let canonical: SecretBox<[u8]> = SecretBox::new(
            text.bytes()
                .filter(|b| *b != b' ')
                .map(|b| b.to_ascii_uppercase())
                .collect::<Vec<u8>>()
                .into_boxed_slice(),
        );
        let canonical = canonical.expose_secret();
        let unpadded = canonical
            .iter()
            .rposition(|b| *b != b'=')
            .map_or(&canonical[..0], |last| &canonical[..=last]);
        let padding = canonical.len() - unpadded.len();
        // Padding, when present, fills the last group of 8 characters exactly.
        if padding > 0 && (padding > 6 || !canonical.len().is_multiple_of(8)) {
            return Err(SecretError::Base32);
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(unpadded)
            .map_err(|_| SecretError::Base32)?;
        Self::from_bytes(bytes)
    }

    /// The secret's bytes, e.g. to seal them for storage. Handle with care.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The secret as RFC 4648 base32 without padding (upper case), as shown to a user who types
    /// it into an authenticator app. Handle with care: it is the secret.
    pub fn expose_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(self.expose())
    }

    /// The `otpauth://` URI of the [Key URI format] that authenticator apps scan as a QR code:
    /// `otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>`.
    ///
    /// The issuer and account are percent-encoded where needed (anything but ASCII letters,
    /// digits and `-._~`; a space is `%20`), in the label and in the `issuer` parameter alike.
    /// The algorithm (SHA-1), digits (6) and period (30 s) are the format's defaults and so are
    /// left out, which the apps that ignore those parameters also understand. The URI holds the
    /// secret: show it once, never log it.
    ///
    /// [Key URI format]: https://github.com/google/google-authenticator/wiki/Key-Uri-Format
    ///
    /// # Examples
    /// ```
    /// use bulwark::totp::TotpSecret;
    ///
    /// let secret = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
    /// assert_eq!(
    ///     secret.otpauth_uri("Bulwark", "alice"),
    ///     "otpauth://totp/Bulwark:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bulwark",
    /// );
    /// assert_eq!(
    ///     secret.otpauth_uri("ACME Co", "bob@example.com"),
    ///     "otpauth://totp/ACME%20Co:bob%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co",
    /// );
    /// # Ok::<(), bulwark::totp::SecretError>(())
    /// ```
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}",
            account = percent_encode(account),
            secret = self.expose_base32(),
        )
    }
}

/// `text` with every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// percent-encoded, so that it is safe both in a URI's path and in a query parameter: a `:`
/// in an issuer cannot split the label, an `&` cannot start a parameter.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
