//! The key format: `bwk_` + an 8-character prefix + `_` + a 43-character secret, all in base62.
//!
//! The prefix (about 47.6 random bits) names the key: it is stored in clear, listed, and used to
//! find the key's record. The secret is 32 random bytes, base62-encoded to a fixed width; only
//! the keyed hash of the whole key is stored ([`super::ApiKeyHasher`]).

use secrecy::{ExposeSecret as _, SecretString};

/// What every key starts with, so that a scanner (or a person) knows one when they see it, and
/// so that `Authorization: Bearer` tells a key from a JWT (which starts with `eyJ`).
pub const KEY_START: &str = "bwk_";

/// The length of a key's prefix, in base62 characters.
pub const PREFIX_LEN: usize = 8;

/// Random bytes in a key's secret.
pub const SECRET_BYTES: usize = 32;

/// The length of a key's secret: [`SECRET_BYTES`] in base62, fixed width (62^43 > 2^256).
pub const SECRET_LEN: usize = 43;

/// The length of every key: `bwk_` + prefix + `_` + secret.
pub const KEY_LEN: usize = KEY_START.len() + PREFIX_LEN + 1 + SECRET_LEN;

/// The base62 alphabet, in ASCII order.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new API key, as shown to its owner once. The text is wiped from memory when the value is
/// dropped, and never printed: `Debug` shows the prefix only.
///
/// # Examples
/// ```
/// use bulwark::api_key::{ApiKey, KEY_LEN, PresentedKey};
///
/// let key = ApiKey::generate();
/// assert_eq!(key.expose().len(), KEY_LEN);
/// assert!(key.expose().starts_with("bwk_"));
/// assert_eq!(PresentedKey::parse(key.expose()).unwrap().prefix(), key.prefix());
/// assert!(!format!("{key:?}").contains(key.expose()));
/// ```
pub struct ApiKey {
    text: SecretString,
}

impl ApiKey {
    /// A key from the OS random generator: a random prefix and [`SECRET_BYTES`] random bytes.
    ///
    /// # Panics
    /// Only if the operating system's random generator fails (see
    /// [`crate::secret::random_bytes`]).
    pub fn generate() -> Self {
        let mut text = String::with_capacity(KEY_LEN);
        text.push_str(KEY_START);
        push_random_prefix(&mut text);
        text.push('_');
        let mut secret = [0u8; SECRET_BYTES];
        #[allow(clippy::expect_used)]
        aws_lc_rs::rand::fill(&mut secret).expect("the OS random generator failed");
        // Consumes `secret`: no copy of the random bytes is left behind.
        push_base62(&mut text, &mut secret, SECRET_LEN);
        Self { text: text.into() }
    }

    /// The prefix: the key's public name, stored in clear and used to look it up.
    pub fn prefix(&self) -> &str {
        &self.text.expose_secret()[KEY_START.len()..KEY_START.len() + PREFIX_LEN]
    }

    /// The whole key, to hand to its owner (once) and to hash. Never log it.
    pub fn expose(&self) -> &str {
        self.text.expose_secret()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("prefix", &self.prefix())
            .finish_non_exhaustive()
    }
}

/// A key a client presented, checked for shape only: `bwk_`, [`PREFIX_LEN`] base62
/// characters, `_`, [`SECRET_LEN`] base62 characters, nothing more. Anything else is refused
/// by [`PresentedKey::parse`] after a length check and one pass over at most [`KEY_LEN`]
/// bytes: no allocation, no panic, whatever the input.
#[derive(Clone, Copy)]
pub struct PresentedKey<'a> {
    text: &'a str,
}

/// A presented key that is not shaped like a key. Carries nothing of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key")]
pub struct MalformedKey;

impl<'a> PresentedKey<'a> {
    /// Checks `text`'s shape.
    ///
    /// # Errors
    /// [`MalformedKey`] unless `text` is exactly a key's shape.
    ///
    /// # Examples
    /// ```
    /// use bulwark::api_key::PresentedKey;
    ///
    /// let text = format!("bwk_AbCd1234_{}", "x".repeat(43));
    /// assert_eq!(PresentedKey::parse(&text).unwrap().prefix(), "AbCd1234");
    /// assert!(PresentedKey::parse("bwk_short").is_err());
    /// assert!(PresentedKey::parse(&text.replace("bwk_", "bwx_")).is_err());
    /// ```
    pub fn parse(text: &'a str) -> Result<Self, MalformedKey> {
        let bytes = text.as_bytes();
        if bytes.len() != KEY_LEN || !bytes.starts_with(KEY_START.as_bytes()) {
            return Err(MalformedKey);
        }
        let (prefix, rest) = bytes[KEY_START.len()..].split_at(PREFIX_LEN);
        let Some((b'_', secret)) = rest.split_first() else {
            return Err(MalformedKey);
        };
        // Every byte checked is ASCII, so the slicing in `prefix` is on character boundaries.
        if prefix.iter().chain(secret).all(u8::is_ascii_alphanumeric) {
            Ok(Self { text })
        } else {
            Err(MalformedKey)
        }
    }

    /// Whether `text` starts like a key (`bwk_`), whatever follows: how a bearer credential is
    /// told from a JWT before it is parsed.
    pub fn looks_like_key(text: &str) -> bool {
        text.starts_with(KEY_START)
    }

    /// The prefix.
    pub fn prefix(&self) -> &'a str {
        &self.text[KEY_START.len()..KEY_START.len() + PREFIX_LEN]
    }

    /// The whole key, to hash. Never log it.
    pub fn expose(&self) -> &'a str {
        self.text
    }
}

impl std::fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedKey")
            .field("prefix", &self.prefix())
            .finish_non_exhaustive()
    }
}

/// Appends [`PREFIX_LEN`] uniformly random base62 characters (a random byte is kept when it is
/// below 248 = 4 × 62, so that each character is exactly uniform).
fn push_random_prefix(out: &mut String) {
    let mut pushed = 0;
    while pushed < PREFIX_LEN {
        for byte in crate::secret::random_bytes(2 * PREFIX_LEN) {
            if pushed < PREFIX_LEN && byte < 248 {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
                pushed += 1;
            }
        }
    }
}

/// Appends `number` (big-endian) in base62, most significant digit first, left-padded with `0`
/// to `width` digits (at most 64); `number` is consumed (divided down to zero), and so is the
/// scratch space of the digits. The caller picks a width that holds every value of its length
/// (43 digits for 32 bytes).
fn push_base62(out: &mut String, number: &mut [u8], width: usize) {
    let mut digits = [0u8; 64];
    let digits_used = &mut digits[..width.min(64)];
    // Least significant digit first, written from the end.
    for digit in digits_used.iter_mut().rev() {
        // One long division of `number` by 62; the remainder is the next digit.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(acc / 62).unwrap_or(0);
            remainder = acc % 62;
        }
        *digit = ALPHABET[remainder as usize];
    }
    debug_assert!(number.iter().all(|b| *b == 0), "the width holds the number");
    out.extend(digits_used.iter().map(|d| char::from(*d)));
    digits.fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of `push_base62`, for the tests: `None` for a non-base62 character or a
    /// value that does not fit.
    fn decode_base62(text: &str, len: usize) -> Option<Vec<u8>> {
        let mut number = vec![0u8; len];
        for c in text.bytes() {
            let mut carry = u32::try_from(ALPHABET.iter().position(|a| *a == c)?).ok()?;
            for byte in number.iter_mut().rev() {
                let acc = u32::from(*byte) * 62 + carry;
                *byte = (acc & 0xff) as u8;
                carry = acc >> 8;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(number)
    }

    fn encode(bytes: &[u8], width: usize) -> String {
        let mut out = String::new();
        push_base62(&mut out, &mut bytes.to_vec(), width);
        out
    }

    #[test]
    fn base62_is_fixed_width_and_round_trips() {
        assert_eq!(encode(&[0; 32], SECRET_LEN), "0".repeat(SECRET_LEN));
        assert_eq!(encode(&[0, 61], 2), "0z");
        assert_eq!(encode(&[0, 62], 2), "10");
        assert_eq!(encode(&[1, 0], 3), "048"); // 256 = 4 * 62 + 8
        let max = encode(&[0xff; 32], SECRET_LEN);
        assert_eq!(max.len(), SECRET_LEN, "2^256 - 1 fits 43 digits");
        assert_eq!(decode_base62(&max, 32).unwrap(), vec![0xff; 32]);
        for _ in 0..200 {
            let bytes = crate::secret::random_bytes(32);
            let text = encode(&bytes, SECRET_LEN);
            assert_eq!(text.len(), SECRET_LEN);
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(decode_base62(&text, 32).unwrap(), bytes);
        }
    }

    #[test]
    fn generated_keys_have_the_format_and_differ() {
        let mut prefixes = std::collections::HashSet::new();
        let mut counts = [0usize; 62];
        for _ in 0..500 {
            let key = ApiKey::generate();
            let text = key.expose();
            assert_eq!(text.len(), KEY_LEN);
            assert_eq!(&text[..4], "bwk_");
            assert_eq!(&text[12..13], "_");
            let parsed = PresentedKey::parse(text).unwrap();
            assert_eq!(parsed.prefix(), key.prefix());
            assert_eq!(parsed.expose(), text);
            assert!(prefixes.insert(key.prefix().to_owned()), "prefixes differ");
            for b in key.prefix().bytes() {
                counts[ALPHABET.iter().position(|a| *a == b).unwrap()] += 1;
            }
            assert!(
                decode_base62(&text[13..], 32).is_some(),
                "the secret is 32 bytes"
            );
        }
        // 4000 prefix characters over 62 symbols: about 64 each; every symbol shows up.
        assert!(counts.iter().all(|n| *n > 20), "{counts:?}");
    }

    #[test]
    fn hostile_inputs_are_refused_without_panicking() {
        let good = ApiKey::generate();
        let good = good.expose();
        let secret = &good[13..];
        let huge = format!("bwk_{}", "A".repeat(10 << 20));
        let cases = [
            String::new(),
            "bwk_".into(),
            "bwk__".into(),
            good[..KEY_LEN - 1].to_owned(),
            format!("{good}A"),
            format!("{good}\0"),
            good.replacen("bwk_", "BWK_", 1),
            good.replacen("bwk_", "bwx_", 1),
            good.replacen("bwk_", "xbwk", 1),
            format!("bwk_AbCd1234-{secret}"),
            format!("bwk_AbCd123_{secret}A"),
            format!("bwk_AbCd12345{secret}"),
            format!("bwk_AbCd 234_{secret}"),
            format!("bwk_AbCd1234_{}", &secret[..42]) + "/",
            format!("bwk_AbCd1234_{}", &secret[..42]) + "=",
            // Non-ASCII of the right byte length, and at the boundaries.
            format!("bwk_AbCd12é_{secret}"),
            format!("bwk_AbCd1234_{}é", &secret[..41]),
            format!("bwk_ÄbCd123_{secret}"),
            format!("bwk_AbCd1234_{}", "٣".repeat(21)) + "A",
            format!(" {}", &good[..KEY_LEN - 1]),
            format!("eyJ{}", &good[3..]),
            huge,
        ];
        for case in &cases {
            assert_eq!(
                PresentedKey::parse(case).err(),
                Some(MalformedKey),
                "{:?}",
                case.get(..40)
            );
        }
        assert!(PresentedKey::parse(good).is_ok());
        assert!(PresentedKey::looks_like_key(good));
        assert!(!PresentedKey::looks_like_key("eyJhbGciOi"));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::generate();
        let secret = &key.expose()[13..];
        let shown = format!("{key:?} {:?}", PresentedKey::parse(key.expose()).unwrap());
        assert!(shown.contains(key.prefix()));
        assert!(!shown.contains(secret), "{shown}");
    }
}
