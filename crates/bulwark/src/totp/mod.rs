//! A second factor: time-based one-time passwords (TOTP, [RFC 6238]) as authenticator apps make
//! them, with replay protection through a store shared by every instance, and recovery codes.
//!
//! **Threat model.** A leaked or guessed password alone no longer opens an account: the login
//! also needs a code that the user's authenticator computes from a secret shared once (a QR code
//! of [`TotpSecret::otpauth_uri`]) and the current time. Here:
//!
//! - codes are [RFC 6238] TOTP over [RFC 4226] HOTP: HMAC-SHA1, 6 digits, 30-second steps, the
//!   parameters every authenticator app supports (the RFC's Appendix B and RFC 4226's Appendix D
//!   vectors are this module's tests);
//! - [`Totp::verify`] accepts the code of the current step and of one step either side (the
//!   window, [`Totp::with_window`]), compares codes in constant time, refuses anything but six
//!   digits before computing anything, and answers the time step the code matched;
//! - [`Totp::verify_once`] then claims that step in a [`TotpStepStore`]: a code is accepted
//!   **once**, and a code **older** than one already accepted is refused too;
//! - secrets are 20 bytes from the operating system's generator, zeroed on drop and never shown
//!   by `Debug` ([`TotpSecret`]); the application keeps them sealed under its master secret;
//! - [`RecoveryCode`]s (10 per user, 60 random bits each) replace the authenticator once each;
//!   they are stored as a keyed hash ([`RecoveryCodeHasher`]).
//!
//! # The choices
//!
//! **The window: one step either side** (the default; `0` for none). A code typed at the end of
//! its 30 seconds reaches the server in the next step, and a phone's clock drifts: RFC 6238
//! (section 5.2) recommends accepting at most one step of delay, and one step ahead covers a
//! phone a little fast. Each step more keeps a code, read over a shoulder or phished, usable 30
//! seconds longer, and adds two chances in a million to every guess.
//!
//! **The replay rule: the step must move forward.** RFC 6238 asks that a code be accepted once.
//! Keeping the last accepted step per subject, and accepting a code only when its step is
//! greater, gives that (a replay has the same step) with one integer per subject, and refuses
//! as well a code older than the last one used (the previous step's code, seen over a shoulder
//! before the user logged in with the current one), which a user never needs. When a code matches two steps of the window
//! (one chance in a million), the later one is claimed, so that it cannot be used twice. The
//! store's one operation is atomic: of 16 logins racing with one code, exactly one wins, on
//! every backend ([`store::memory`], [`store::redis`], the SQL stores of `store::sql`).
//!
//! **Why SHA-1 is fine here.** The attacks on SHA-1 find collisions; HMAC's security does not
//! rest on collision resistance but on the compression function being a pseudo-random function,
//! which no known attack on SHA-1 dents. Whatever the hash, a code is truncated to 6 digits, so
//! guessing (one in a million per try, three with the window) is the limit, and that is what
//! rate limits address. And SHA-1 is what every authenticator app computes: some ignore the
//! `algorithm` parameter of the URI, so a SHA-256 secret would give codes that never match.
//!
//! # Not covered
//!
//! - **Guessing** a code: each try has three chances in a million of matching (the window), so
//!   an attacker who has the password and 5 tries a minute needs about a month of guessing for
//!   an even chance (230 000 tries). Count TOTP attempts in the login rate limits, per user as
//!   well as per client, and watch for repeated failures: they mean the password is known.
//! - **Real-time phishing**: a page that relays the password and a fresh code within its minute
//!   logs in (as with every OTP); only origin-bound credentials (WebAuthn) stop that.
//! - **A stolen secret** (an unsealed database, a photographed QR code) makes valid codes: seal
//!   secrets at rest ([`MasterSecret::sealer_for`](crate::secret::MasterSecret::sealer_for)) and
//!   show the URI once.
//!
//! # Deployment
//!
//! Keep the servers' clocks synchronised (NTP): the window absorbs a phone's drift, not a
//! server's. With several instances, use a shared step store (Redis, PostgreSQL), or a code
//! accepted by one instance can be used again on another within its minute and a half. Storing
//! recovery codes, deleting one when it is used, and revoking sessions when TOTP is turned on or
//! off are the application's.
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bulwark::totp::{Totp, TotpError, TotpSecret, store::memory::MemoryTotpStepStore};
//!
//! let store = MemoryTotpStepStore::new(); // Redis or SQL with several instances
//! let secret = TotpSecret::generate();
//! let totp = Totp::new(); // SHA-1, 6 digits, 30 s, ±1 step
//! let now = time::OffsetDateTime::now_utc().unix_timestamp();
//! let code = totp.code_at(&secret, now); // what the user's app shows
//!
//! let step = totp.verify_once(&store, "user-42", &secret, &code, now).await?;
//! assert_eq!(step, Totp::step_at(now));
//! // The same code again: refused.
//! let again = totp.verify_once(&store, "user-42", &secret, &code, now).await;
//! assert!(matches!(again, Err(TotpError::Replayed)));
//! # Ok(())
//! # }
//! ```
//!
//! [RFC 6238]: https://www.rfc-editor.org/rfc/rfc6238
//! [RFC 4226]: https://www.rfc-editor.org/rfc/rfc4226

mod hotp;
mod recovery;
mod secret;
pub mod store;
#[cfg(test)]
mod tests;

pub use recovery::{
    RECOVERY_CODE_COUNT, RecoveryCode, RecoveryCodeHasher, normalize_recovery_code,
};
pub use secret::{MAX_SECRET_LEN, MIN_SECRET_LEN, SECRET_LEN, SecretError, TotpSecret};
pub use store::TotpStepStore;

use hotp::{Hash, HotpKey};

use crate::store::StoreError;

/// The digits of a code: 6.
pub const DIGITS: u32 = 6;

/// The length of a time step, in seconds: 30.
pub const STEP_SECS: i64 = 30;

/// The default window: a code of one step before or after the current one is accepted.
pub const DEFAULT_WINDOW: u8 = 1;

/// The longest input [`Totp::verify`] reads; anything longer is refused unread.
const MAX_INPUT: usize = 16;

/// Why a code was refused, or could not be checked.
///
/// The three refusals ([`TotpError::is_refusal`]) deserve one answer to the user ("Invalid
/// code"), so that a guesser learns nothing from which it was. No variant holds the code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// Not six digits (spaces aside): refused before any HMAC is computed.
    #[error("not a 6-digit code")]
    Malformed,
    /// Six digits, but not the code of any step in the window.
    #[error("wrong code")]
    Mismatch,
    /// The code matched, but its step is not after the last one accepted for the subject: the
    /// code was used already, or a newer one was.
    #[error("code already used")]
    Replayed,
    /// The step store could not be read or written (check
    /// [`StoreError::is_unavailable`](crate::store::StoreError::is_unavailable) for a 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TotpError {
    /// Whether the code was refused (malformed, wrong or used), rather than the store failing.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// TOTP verification: SHA-1, [`DIGITS`] digits, [`STEP_SECS`]-second steps, a window of
/// [`DEFAULT_WINDOW`] step either side unless set with [`Totp::with_window`].
///
/// Times are Unix seconds, passed in (usually `time::OffsetDateTime::now_utc().unix_timestamp()`)
/// so that tests and replays of logs can set them.
///
/// # Examples
/// ```
/// use bulwark::totp::{Totp, TotpError, TotpSecret};
///
/// let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec())?;
/// let totp = Totp::new();
/// // RFC 6238 Appendix B at T = 59 s (step 1), last six digits:
/// assert_eq!(totp.code_at(&secret, 59), "287082");
/// assert_eq!(totp.verify(&secret, "287082", 59)?, 1);
/// assert_eq!(totp.verify(&secret, "287 082", 89)?, 1, "one step late");
/// assert!(matches!(totp.verify(&secret, "287082", 119), Err(TotpError::Mismatch)));
/// assert!(matches!(totp.verify(&secret, "28708", 59), Err(TotpError::Malformed)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totp {
    window: u8,
}

impl Default for Totp {
    fn default() -> Self {
        Self::new()
    }
}

impl Totp {
    /// Verification with the default window ([`DEFAULT_WINDOW`]: ±1 step).
    pub const fn new() -> Self {
        Self {
            window: DEFAULT_WINDOW,
        }
    }

    /// The same with a window of `window` steps either side of the current one (0: the
    /// current step only). Each step more keeps a code valid 30 seconds longer on each side and
    /// adds two chances per guess.
    pub const fn with_window(self, window: u8) -> Self {
        Self { window }
    }

    /// The window: how many steps either side of the current one are accepted.
    pub const fn window(&self) -> u8 {
        self.window
    }

    /// The time step of `unix_time`: `floor(unix_time / 30)`, 0 before 1970.
    pub fn step_at(unix_time: i64) -> u64 {
        u64::try_from(unix_time.div_euclid(STEP_SECS)).unwrap_or(0)
    }

    /// The code for `unix_time`, as an authenticator app shows it (six digits, zero-padded).
    /// Handle with care: it logs in for a minute.
    pub fn code_at(&self, secret: &TotpSecret, unix_time: i64) -> String {
        HotpKey::new(Hash::Sha1, secret.expose()).code_text(Self::step_at(unix_time), DIGITS)
    }

    /// Checks `code` against the steps of the window around `unix_time`, and answers the step
    /// it matched (the later one, if it matched two). Spaces in `code` are ignored ("123 456");
    /// anything but six digits is refused before any HMAC is computed. Every step of the window
    /// is computed and compared in constant time, whatever matches.
    ///
    /// This alone lets a code be used again within its window: logins use
    /// [`Totp::verify_once`].
    ///
    /// # Errors
    /// [`TotpError::Malformed`] when `code` is not six digits, [`TotpError::Mismatch`] when it
    /// is the code of no step in the window.
    pub fn verify(
        &self,
        secret: &TotpSecret,
        code: &str,
        unix_time: i64,
    ) -> Result<u64, TotpError> {
        let given = parse_code(code).ok_or(TotpError::Malformed)?;
        let key = HotpKey::new(Hash::Sha1, secret.expose());
        let now = Self::step_at(unix_time);
        let mut matched = None;
        for step in now.saturating_sub(u64::from(self.window))..=now + u64::from(self.window) {
            let expected = key.code_text(step, DIGITS);
            if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), &given)
                .is_ok()
            {
                matched = Some(step);
            }
        }
        matched.ok_or(TotpError::Mismatch)
    }

    /// [`Totp::verify`], then claims the matched step for `subject` (a user id) in `store`: the
    /// code is accepted only if no code of this step or a later one was accepted for `subject`
    /// before. Answers the step.
    ///
    /// # Errors
    /// Those of [`Totp::verify`]; [`TotpError::Replayed`] when the step was not after the last
    /// one accepted for `subject`; [`TotpError::Store`] when the store failed (the code is then
    /// not accepted).
    pub async fn verify_once(
        &self,
        store: &dyn TotpStepStore,
        subject: &str,
        secret: &TotpSecret,
        code: &str,
        unix_time: i64,
    ) -> Result<u64, TotpError> {
        let step = self.verify(secret, code, unix_time)?;
        if store.claim(subject, step, self.expires_at(step)).await? {
            Ok(step)
        } else {
            Err(TotpError::Replayed)
        }
    }

    /// When the claim of `step` may be forgotten: once the window has moved past it (the step
    /// after `step + window` has begun, so no code of a step up to `step` verifies), plus one
    /// step for clocks of instances that differ a little.
    fn expires_at(&self, step: u64) -> i64 {
        let last_valid = step.saturating_add(u64::from(self.window) + 2);
        i64::try_from(last_valid)
            .unwrap_or(i64::MAX)
            .saturating_mul(STEP_SECS)
    }
}

/// The six digits of `code`, spaces ignored; `None` for anything else.
fn parse_code(code: &str) -> Option<[u8; 6]> {
    if code.len() > MAX_INPUT {
        return None;
    }
    let mut digits = [0u8; 6];
    let mut n = 0;
    for byte in code.bytes().filter(|b| *b != b' ') {
        if !byte.is_ascii_digit() || n == digits.len() {
            return None;
        }
        digits[n] = byte;
        n += 1;
    }
    (n == digits.len()).then_some(digits)
}
