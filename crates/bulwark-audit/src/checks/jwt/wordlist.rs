//! The bundled weak-secret wordlist: known JWT secrets (the guide's, FastAPI's, jwt.io's, ...),
//! common passwords and English words, most likely first, one per line. Shipped gzip-compressed
//! (`data/jwt-secrets.txt.gz`, rebuilt by `scripts/wordlist.py`; sources and licences in
//! `data/README.md`) and decompressed on first use only.

use std::{io::Read, sync::OnceLock};

/// The compressed list, as shipped.
const COMPRESSED: &[u8] = include_bytes!("../../../data/jwt-secrets.txt.gz");

/// The decompressed wordlist: one candidate per line.
#[derive(Debug)]
pub struct Wordlist {
    text: String,
    len: usize,
}

impl Wordlist {
    /// The list, decompressed on the first call (later calls share it).
    pub fn get() -> Result<&'static Wordlist, String> {
        static LIST: OnceLock<Result<Wordlist, String>> = OnceLock::new();
        LIST.get_or_init(Wordlist::decompress)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn decompress() -> Result<Wordlist, String> {
        let mut text = String::with_capacity(COMPRESSED.len() * 4);
        flate2::read::GzDecoder::new(COMPRESSED)
            .read_to_string(&mut text)
            .map_err(|e| format!("the bundled wordlist is damaged: {e}"))?;
        let len = text.lines().filter(|l| !l.is_empty()).count();
        Ok(Wordlist { text, len })
    }

    /// How many candidates it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole list: candidates separated by `\n` (the crack splits it without allocating).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The candidates, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.text.lines().filter(|l| !l.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_wordlist_has_100k_unique_entries_and_the_guides_secrets() {
        let list = Wordlist::get().expect("wordlist");
        let unique: HashSet<&str> = list.iter().collect();
        assert!(list.len() >= 100_000, "{} entries", list.len());
        assert_eq!(unique.len(), list.len(), "duplicates in the wordlist");
        for secret in [
            "your-secret-key",
            "your_secret_key",
            "secret",
            "secret-key",
            "mysecretkey",
            "supersecretkey",
            "changeme",
            "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
            "your-256-bit-secret",
            "secretkey",
            "jwt_secret",
            "jwtsecret",
            "s3cr3t",
            "password",
            "123456",
            "qwerty",
            "anchor-benchmark-secret-change-me-0123456789abcdef",
            "hello-from-escape-team",
            "staysecureyourescapeteam",
        ] {
            assert!(unique.contains(secret), "{secret} missing");
        }
        // Most likely first: the guide's secrets lead, the dictionaries trail.
        let position = |w: &str| list.iter().position(|x| x == w).expect("present");
        assert!(position("your-secret-key") < 10);
        assert!(position("password") < position("dragon"));
        assert!(position("dragon") < position("Epson"));
    }
}
