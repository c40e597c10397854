//! Offline search of an HMAC-signed token's secret: the HMAC of the token's signing input
//! (`header.payload`) under every candidate, compared with its signature. One HMAC per candidate,
//! no allocation per try (keys are slices of the wordlist's text, tags live on the stack), every
//! core busy (std threads, one slice of the list each).

use std::sync::atomic::{AtomicBool, Ordering};

use hmac::{
    Hmac, KeyInit, Mac,
    digest::{FixedOutput, Update, block_api::EagerHash},
};
use sha2::{Sha256, Sha384, Sha512};

/// An HMAC JWT algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HsAlg {
    /// HMAC-SHA-256.
    Hs256,
    /// HMAC-SHA-384.
    Hs384,
    /// HMAC-SHA-512.
    Hs512,
}

impl HsAlg {
    /// The algorithm a JWT header's `alg` names, when it is an HMAC one.
    pub fn from_name(alg: &str) -> Option<Self> {
        match alg {
            "HS256" => Some(HsAlg::Hs256),
            "HS384" => Some(HsAlg::Hs384),
            "HS512" => Some(HsAlg::Hs512),
            _ => None,
        }
    }

    /// Its JWT name (`HS256`).
    pub fn name(self) -> &'static str {
        match self {
            HsAlg::Hs256 => "HS256",
            HsAlg::Hs384 => "HS384",
            HsAlg::Hs512 => "HS512",
        }
    }

    /// The length of its signatures in bytes.
    pub fn tag_len(self) -> usize {
        match self {
            HsAlg::Hs256 => 32,
            HsAlg::Hs384 => 48,
            HsAlg::Hs512 => 64,
        }
    }

    /// The signature of `input` under `key`.
    pub fn sign(self, key: &[u8], input: &[u8]) -> Vec<u8> {
        match self {
            HsAlg::Hs256 => tag::<Sha256>(key, input).to_vec(),
            HsAlg::Hs384 => tag::<Sha384>(key, input).to_vec(),
            HsAlg::Hs512 => tag::<Sha512>(key, input).to_vec(),
        }
    }
}

/// The HMAC of `input` under `key`, on the stack.
#[inline]
fn tag<D>(key: &[u8], input: &[u8]) -> hmac::digest::Output<Hmac<D>>
where
    D: EagerHash,
    Hmac<D>: KeyInit + Mac + Update + FixedOutput,
{
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = match <Hmac<D> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Default::default(),
    };
    Update::update(&mut mac, input);
    mac.finalize_fixed()
}

/// How many candidates a thread tries between two looks at the stop flag.
const BATCH: usize = 4096;

/// The first candidate of `words` (one per line) under which `signature` is the `alg` HMAC of
/// `signing_input`, trying them on `threads` threads (at least one). `None` when none is.
pub fn crack<'w>(
    alg: HsAlg,
    signing_input: &[u8],
    signature: &[u8],
    words: &'w str,
    threads: usize,
) -> Option<&'w str> {
    if signature.len() != alg.tag_len() {
        return None;
    }
    let chunks = split(words, threads.max(1));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let stop = &stop;
                scope.spawn(move || match alg {
                    HsAlg::Hs256 => search::<Sha256>(signing_input, signature, chunk, stop),
                    HsAlg::Hs384 => search::<Sha384>(signing_input, signature, chunk, stop),
                    HsAlg::Hs512 => search::<Sha512>(signing_input, signature, chunk, stop),
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .next()
    })
}

/// One thread's share: every line of `chunk`, until found or told to stop.
fn search<'w, D>(
    signing_input: &[u8],
    signature: &[u8],
    chunk: &'w str,
    stop: &AtomicBool,
) -> Option<&'w str>
where
    D: EagerHash,
    Hmac<D>: KeyInit + Mac + Update + FixedOutput,
{
    let mut since_look = 0;
    for candidate in chunk.split('\n') {
        if candidate.is_empty() {
            continue;
        }
        if tag::<D>(candidate.as_bytes(), signing_input).as_slice() == signature {
            stop.store(true, Ordering::Relaxed);
            return Some(candidate);
        }
        since_look += 1;
        if since_look == BATCH {
            since_look = 0;
            if stop.load(Ordering::Relaxed) {
                return None;
            }
        }
    }
    None
}

/// `words` cut into `n` slices of about the same size, on line boundaries.
fn split(words: &str, n: usize) -> Vec<&str> {
    let mut chunks = Vec::with_capacity(n);
    let mut rest = words;
    for i in (1..=n).rev() {
        if i == 1 || rest.is_empty() {
            chunks.push(rest);
            break;
        }
        let mut cut = rest.len() / i;
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let end = rest[cut..].find('\n').map_or(rest.len(), |p| cut + p + 1);
        chunks.push(&rest[..end]);
        rest = &rest[end..];
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_rfc_4231_vectors() {
        // RFC 4231, test case 2.
        let key = b"Jefe";
        let data = b"what do ya want for nothing?";
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&HsAlg::Hs256.sign(key, data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&HsAlg::Hs512.sign(key, data))[..32],
            *"164b7a7bfcf819e2e395fbe73b56e0a3"
        );
        assert_eq!(HsAlg::Hs384.sign(key, data).len(), 48);
    }

    #[test]
    fn the_crack_finds_the_secret_in_any_slice_and_only_the_right_one() {
        let words = "alpha\nbravo\ncharlie\ndelta\necho\nfoxtrot\ngolf\n";
        for alg in [HsAlg::Hs256, HsAlg::Hs384, HsAlg::Hs512] {
            for secret in ["alpha", "delta", "golf"] {
                let sig = alg.sign(secret.as_bytes(), b"head.body");
                for threads in [1, 2, 3, 8] {
                    assert_eq!(crack(alg, b"head.body", &sig, words, threads), Some(secret));
                }
            }
            let sig = alg.sign(b"not-there", b"head.body");
            assert_eq!(crack(alg, b"head.body", &sig, words, 2), None);
        }
        // A signature of the wrong length is not tried.
        assert_eq!(crack(HsAlg::Hs256, b"x", &[0; 31], words, 1), None);
    }

    #[test]
    fn split_keeps_every_line_once() {
        let words = "a\nbb\nccc\ndddd\neeeee\nf";
        for n in 1..9 {
            let chunks = split(words, n);
            assert!(chunks.len() <= n);
            assert_eq!(chunks.concat(), words);
            assert!(chunks.iter().all(|c| c.is_empty() || !c.starts_with('\n')));
        }
    }
}
