//! How fast `jwt-weak-secret` tries candidate secrets: a FastAPI-style HS256 access token signed
//! with a secret that is not in the bundled wordlist, so every pass tries the whole list. Prints
//! candidates per second on one core, then on every core (and per core).
//!
//! `cargo run --release -p bulwark-audit --example crack_speed`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bulwark_audit::checks::jwt::{
    crack::{HsAlg, crack},
    wordlist::Wordlist,
};

/// How long each measurement runs.
const MEASURE: Duration = Duration::from_secs(2);

fn main() -> Result<(), String> {
    let started = Instant::now();
    let list = Wordlist::get()?;
    println!(
        "wordlist: {} candidates, decompressed in {} ms",
        list.len(),
        started.elapsed().as_millis()
    );

    // What FastAPI's guide issues: {"sub": username, "exp": ...}, HS256.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"johndoe","exp":{}}}"#, now + 1800));
    let signing_input = format!("{header}.{claims}");
    let signature = HsAlg::Hs256.sign(
        b"k7Qm2vX9pL4rT8wZ1nB6yH3cF5jD0sGa",
        signing_input.as_bytes(),
    );
    println!(
        "token: HS256, signing input {} bytes (a FastAPI access token)",
        signing_input.len()
    );

    let rate = |threads: usize| -> Result<f64, String> {
        let start = Instant::now();
        let mut passes = 0u64;
        while start.elapsed() < MEASURE {
            if crack(
                HsAlg::Hs256,
                signing_input.as_bytes(),
                &signature,
                list.text(),
                threads,
            )
            .is_some()
            {
                return Err("the benchmark secret is in the wordlist".into());
            }
            passes += 1;
        }
        Ok((passes * list.len() as u64) as f64 / start.elapsed().as_secs_f64())
    };

    let one = rate(1)?;
    println!("1 thread: {:.2} M candidates/s", one / 1e6);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let all = rate(cores)?;
    println!(
        "{cores} threads: {:.2} M candidates/s ({:.2} M/s per core)",
        all / 1e6,
        all / 1e6 / cores as f64
    );
    println!(
        "whole wordlist on {cores} cores: {:.0} ms",
        list.len() as f64 / all * 1e3
    );
    Ok(())
}
