//! Password storage and password rules.
//!
//! **Threat model.** Two attacks are stopped here:
//!
//! - *Offline cracking of a stolen user table.* [`PasswordHasher`] stores passwords as Argon2id
//!   PHC strings (OWASP parameters by default: m=19456 KiB, t=2, p=1, a random 16-byte salt per
//!   hash), so every guess costs the attacker ~19 MiB of memory and real time. With the
//!   `legacy-bcrypt` feature, legacy bcrypt hashes (`$2a$`, `$2b$`, `$2y$`, e.g. imported from a
//!   FastAPI/passlib service) still verify, and [`Verification::needs_rehash`] tells the caller to
//!   replace them with Argon2id at the next successful login; so do Argon2 hashes with older
//!   parameters. Without the feature a bcrypt hash is an unknown format: never a match.
//! - *Guessable passwords.* With the `password-strength` feature (on by default),
//!   [`PasswordPolicy`] rejects new passwords shorter than 12 or longer than 128 characters,
//!   passwords in a bundled list of ~1 300 common passwords, and passwords that zxcvbn scores
//!   below 3 (the username and other user inputs are passed to zxcvbn, so `quetzalcoatl1999` is
//!   weak for the user `quetzalcoatl`).
//!
//! It also keeps two side channels shut. Hashing never runs on the async worker threads: every
//! job goes to the hasher's own threads (one per CPU by default, behind a semaphore) running at
//! the lowest normal priority, so a flood of logins queues and takes only the CPU time the request
//! handlers leave, instead of stalling every other request. And an unknown user is verified
//! against a dummy hash with the same parameters, so "no such user" and "wrong password" take the
//! same time (the caller must give both the same answer, too).
//!
//! **Not covered.** Online guessing against one account or many: rate-limit the login routes.
//! Breached-password lookups beyond the bundled list (no Have I Been Pwned query). A pepper
//! (a server-side secret mixed into every hash). The database lookup that precedes verification can
//! still take a different time for a known and an unknown username; keep it an indexed query.
//! bcrypt only reads the first 72 bytes of a password (as passlib does), and a bcrypt check takes
//! its own time (cost 12 ≈ 250 ms), not the dummy's, so an account with a legacy hash can be told
//! apart from an unknown user by timing; both last until the hash is upgraded at the next login.
//! Stored hashes are trusted: a hash imported with huge Argon2 parameters costs that much per
//! check.
//!
//! **Deployment.** Peak memory is about `m_cost × max_concurrency` (19 MiB per CPU by default). A
//! queued verification waits for a permit without limit: put a request timeout in front of the
//! login route. Passwords and hashes never appear in `Debug` output or logs: passwords travel as
//! [`secrecy::SecretString`] and [`PasswordHash`] prints as `PasswordHash(..)`.

mod hash;
#[cfg(feature = "password-strength")]
mod policy;

pub use hash::{Argon2Params, PasswordError, PasswordHash, PasswordHasher, Verification};
#[cfg(feature = "password-strength")]
#[cfg_attr(docsrs, doc(cfg(feature = "password-strength")))]
pub use policy::{PasswordPolicy, PolicyViolation};
