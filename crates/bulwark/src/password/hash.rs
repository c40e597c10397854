//! Argon2id hashing and verification on low-priority threads of their own, bounded by a
//! semaphore.

use std::{
    fmt,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, mpsc},
    thread,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{self, phc},
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Argon2id cost parameters.
///
/// # Examples
/// ```
/// use bulwark::password::Argon2Params;
///
/// assert_eq!(Argon2Params::default(), Argon2Params::OWASP);
/// assert_eq!(Argon2Params::OWASP.memory_kib, 19_456);
/// assert_eq!(Argon2Params::OWASP_LOW_MEMORY.memory_kib, 7_168);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory cost in KiB (`m`); at least `8 × parallelism`.
    pub memory_kib: u32,
    /// Number of passes (`t`); at least 1.
    pub iterations: u32,
    /// Degree of parallelism (`p`); at least 1.
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's recommendation: m=19456 KiB (19 MiB), t=2, p=1.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// OWASP's equal-strength alternative with the least memory: m=7168 KiB (7 MiB), t=5,
    /// p=1. OWASP lists it beside [`OWASP`](Self::OWASP) as the same level of defense, trading
    /// memory for passes; a hasher keeps `m` per hashing thread, so this one suits small
    /// machines (the Bulwark server's default).
    pub const OWASP_LOW_MEMORY: Self = Self {
        memory_kib: 7_168,
        iterations: 5,
        parallelism: 1,
    };
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// An Argon2id hash in PHC string format (`$argon2id$v=19$m=...`), ready to store.
///
/// `Debug` prints `PasswordHash(..)`, never the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The PHC string, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// The outcome of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verification {
    /// Wrong password, unknown user, or an unreadable stored hash.
    NoMatch,
    /// The password is right. When `needs_rehash` is true, the stored hash is bcrypt or Argon2
    /// with other parameters than the hasher's: hash the password again and store the new hash.
    Match {
        /// The stored hash should be replaced.
        needs_rehash: bool,
    },
}

impl Verification {
    /// True when the password is right.
    pub fn is_match(self) -> bool {
        matches!(self, Self::Match { .. })
    }

    /// True when the password is right and the stored hash should be replaced.
    pub fn needs_rehash(self) -> bool {
        matches!(self, Self::Match { needs_rehash: true })
    }
}

/// Why hashing failed. A wrong password is not an error: it is [`Verification::NoMatch`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The Argon2 parameters are out of range.
    #[error("invalid Argon2 parameters: {0}")]
    InvalidParams(argon2::Error),
    /// Argon2 failed to hash (e.g. the OS random generator failed).
    #[error("password hashing failed: {0}")]
    Hashing(password_hash::Error),
    /// The blocking task panicked or the runtime is shutting down.
    #[error("password hashing task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The hasher's job queue was closed.
    #[error("password hasher is unavailable")]
    Unavailable,
}

/// A hashing failure is the server's: 503 when the hasher is shutting down, else a generic
/// 500; the cause is logged, never sent. Lets a handler write `hasher.verify(..).await?`.
impl From<PasswordError> for crate::error::HttpError {
    fn from(err: PasswordError) -> Self {
        tracing::error!(error = %err, "password hashing failed");
        match err {
            PasswordError::Unavailable | PasswordError::Task(_) => {
                Self::unavailable("Service temporarily unavailable")
            }
            _ => Self::internal(),
        }
    }
}

/// Hashes and verifies passwords with Argon2id on threads of its own.
///
/// Cheap to clone (an `Arc` inside): put one in the application state. At most
/// [`max_concurrency`](Self::max_concurrency) jobs run at once, one per hashing thread; others
/// wait for a permit. The threads run under Linux's `SCHED_IDLE` policy (nice 19 where that is
/// refused, and on other systems): where they share a CPU with the request handlers, a flood of
/// logins takes what the handlers leave instead of half of the CPU, and a handler that wakes up
/// takes the CPU back at once, so the flood slows logins down, not every other request.
/// Must be used inside a tokio runtime.
///
/// # Examples
/// ```
/// use bulwark::password::{Argon2Params, PasswordHasher};
/// use secrecy::SecretString;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bulwark::password::PasswordError> {
/// // Small parameters keep the example fast; production uses `Argon2Params::default()`.
/// let params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
/// let hasher = PasswordHasher::new(params)?;
/// let hash = hasher.hash(SecretString::from("correct horse battery staple")).await?;
///
/// let outcome = hasher
///     .verify(SecretString::from("correct horse battery staple"), Some(hash.as_str()))
///     .await?;
/// assert!(outcome.is_match() && !outcome.needs_rehash());
///
/// // Unknown user: same work, never a match.
/// let outcome = hasher.verify(SecretString::from("anything"), None).await?;
/// assert!(!outcome.is_match());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    params: Argon2Params,
    /// A hash of a throwaway password with the same parameters, verified for unknown users.
    dummy: String,
    permits: Arc<Semaphore>,
    max_concurrency: usize,
    /// Work for the hashing threads; they stop when the hasher is dropped.
    jobs: Mutex<mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// The Argon2 working memory of one hashing thread, kept from job to job.
///
/// Allocating `m` KiB per hash and freeing it made glibc keep every freed block (its mmap
/// threshold grows to the largest freed chunk), so the resident size grew by `m` per thread that
/// ever hashed, and more under a login flood. Each thread now owns one buffer of the hasher's own
/// size, allocated on its first job and wiped after every job, so what a hash leaves in memory
/// does not outlive the job. A stored hash with a larger `m` gets a buffer of its own, freed
/// after use.
struct Scratch {
    blocks: Vec<Block>,
    /// The block count of the hasher's parameters: the most this thread keeps.
    keep: usize,
}

impl Scratch {
    fn new(keep: usize) -> Self {
        Self {
            blocks: Vec::new(),
            keep,
        }
    }

    /// Runs `f` with `count` zeroed blocks, then zeroes them again.
    fn with_blocks<T>(&mut self, count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        if count > self.keep {
            return f(&mut vec![Block::default(); count]);
        }
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::default());
        }
        let blocks = &mut self.blocks[..count];
        let answer = f(blocks);
        // The buffer lives on and is read by the next job, so this store is not optimised away.
        blocks.fill(Block::default());
        answer
    }
}

/// Niceness of the hashing threads where `SCHED_IDLE` is not available.
const HASHING_NICE: i32 = 19;

/// Starts `count` hashing threads taking jobs from one queue; each keeps up to `keep` blocks.
fn start_threads(count: usize, keep: usize) -> Result<mpsc::Sender<Job>, PasswordError> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..count {
        let receiver = Arc::clone(&receiver);
        thread::Builder::new()
            .name("bulwark-hash".to_owned())
            .spawn(move || {
                lower_priority();
                let mut scratch = Scratch::new(keep);
                loop {
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    // A panicking job drops its answer channel (the caller sees Unavailable);
                    // the thread lives on.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut scratch)));
                }
            })
            .map_err(|_| PasswordError::Unavailable)?;
    }
    Ok(sender)
}

/// Gives the calling thread the lowest priority (Linux: per thread).
///
/// `SCHED_IDLE` rather than only nice 19: both leave a busy CPU to the request handlers almost
/// entirely (scheduler weights 3 and 15 against a handler's 1024), but a nice-19 thread that got
/// the CPU keeps it until its time slice ends, while a handler waking up preempts a `SCHED_IDLE`
/// thread at once. Measured (docs/performance.md, S7): logins at the same rate either way, the
/// item reads' p99 beside them 2.0 ms at nice 19 and 1.3 ms under `SCHED_IDLE`. An idle-policy
/// thread is not starved outright: on a saturated core it still gets its small weight.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        if let Err(err) =
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICE)
        {
            tracing::debug!(error = %err, "cannot lower the priority of a hashing thread");
        }
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` only reads `param`, a valid value that outlives the call;
        // pid 0 is the calling thread, whose policy is all it changes. rustix has no wrapper.
        #[allow(unsafe_code)]
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) } != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot give a hashing thread the idle policy; it stays at nice 19"
            );
        }
    }
}

impl PasswordHasher {
    /// A hasher with these parameters and one concurrent job per CPU.
    ///
    /// Computes the dummy hash once, so this takes one hashing time (~20-50 ms with the default
    /// parameters in a release build); call it at start-up.
    ///
    /// # Errors
    /// [`PasswordError::InvalidParams`] when the parameters are out of range;
    /// [`PasswordError::Hashing`] when the dummy hash cannot be made.
    pub fn new(params: Argon2Params) -> Result<Self, PasswordError> {
        let cpus = thread::available_parallelism().map_or(1, usize::from);
        Self::with_max_concurrency(params, cpus)
    }

    /// A hasher that runs at most `max_concurrency` jobs at once (1 to 1024), one per thread.
    ///
    /// # Errors
    /// As [`PasswordHasher::new`].
    pub fn with_max_concurrency(
        params: Argon2Params,
        max_concurrency: usize,
    ) -> Result<Self, PasswordError> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(PasswordError::InvalidParams)?;
        let keep = argon_params.block_count();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let max_concurrency = max_concurrency.clamp(1, 1024);
        let jobs = start_threads(max_concurrency, keep)?;
        // The dummy hash is made on a hashing thread too, in the memory it keeps.
        let (answer, answered) = mpsc::channel();
        let make_dummy: Job = Box::new({
            let argon2 = argon2.clone();
            move |scratch| {
                let _ = answer.send(hash_with(
                    &argon2,
                    b"bulwark dummy password for unknown users",
                    scratch,
                ));
            }
        });
        jobs.send(make_dummy)
            .map_err(|_| PasswordError::Unavailable)?;
        let dummy = answered.recv().map_err(|_| PasswordError::Unavailable)??;
        Ok(Self {
            inner: Arc::new(Inner {
                argon2,
                params,
                dummy: dummy.into_string(),
                permits: Arc::new(Semaphore::new(max_concurrency)),
                max_concurrency,
                jobs: Mutex::new(jobs),
            }),
        })
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> Argon2Params {
        self.inner.params
    }

    /// The most hashing jobs that run at once.
    pub fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency
    }

    /// Hashes a new password with Argon2id and a random salt.
    ///
    /// # Errors
    /// [`PasswordError::Hashing`] if Argon2 fails, [`PasswordError::Task`] if the blocking task
    /// fails.
    pub async fn hash(&self, password: SecretString) -> Result<PasswordHash, PasswordError> {
        self.run(move |inner, scratch| {
            hash_with(&inner.argon2, password.expose_secret().as_bytes(), scratch)
        })
        .await?
    }

    /// Checks a password against a stored hash: an Argon2 PHC string, or with the
    /// `legacy-bcrypt` feature a bcrypt hash (`$2a$`/`$2b$`/`$2y$`).
    ///
    /// `stored = None` (unknown user) verifies against the dummy hash, so it takes as long as a
    /// wrong password, and answers [`Verification::NoMatch`]. A stored hash in an unknown or broken
    /// format (a bcrypt hash without `legacy-bcrypt`, too) is logged at `warn` (without the hash)
    /// and answers `NoMatch` too.
    ///
    /// # Errors
    /// [`PasswordError::Task`] if the blocking task fails. A wrong password is not an error.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, PasswordError> {
        let stored = stored.map(str::to_owned);
        self.run(move |inner, scratch| {
            inner.verify(password.expose_secret(), stored.as_deref(), scratch)
        })
        .await
    }

    /// Runs `job` on a hashing thread once a permit is free. The permit moves into the job, so
    /// it is held until the work ends even if the caller stops waiting.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Inner, &mut Scratch) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Unavailable)?;
        let inner = Arc::clone(&self.inner);
        let (answer, answered) = tokio::sync::oneshot::channel();
        let work: Job = Box::new(move |scratch| {
            let _permit = permit;
            let _ = answer.send(job(&inner, scratch));
        });
        self.inner
            .jobs
            .lock()
            .map_err(|_| PasswordError::Unavailable)?
            .send(work)
            .map_err(|_| PasswordError::Unavailable)?;
        answered.await.map_err(|_| PasswordError::Unavailable)
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("max_concurrency", &self.inner.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn verify(&self, password: &str, stored: Option<&str>, scratch: &mut Scratch) -> Verification {
        let outcome = match stored {
            Some(s) if s.starts_with("$argon2") => read_argon2(s).and_then(|parsed| {
                verify_argon2(password, &parsed, scratch).map(|matched| {
                    if matched {
                        Verification::Match {
                            needs_rehash: self.is_outdated(&parsed),
                        }
                    } else {
                        Verification::NoMatch
                    }
                })
            }),
            #[cfg(feature = "legacy-bcrypt")]
            Some(s) if ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)) => {
                verify_bcrypt(password, s)
            }
            Some(_) => {
                tracing::warn!("stored password hash has an unknown format; treated as no match");
                None
            }
            None => None,
        };
        outcome.unwrap_or_else(|| {
            // Unknown user or unreadable hash: spend the same time as a real check.
            if let Some(dummy) = read_argon2(&self.dummy) {
                let _ = verify_argon2(password, &dummy, scratch);
            }
            Verification::NoMatch
        })
    }

    fn is_outdated(&self, hash: &phc::PasswordHash) -> bool {
        let current = self.argon2.params();
        let same_params = Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == current.m_cost()
                && p.t_cost() == current.t_cost()
                && p.p_cost() == current.p_cost()
        });
        hash.algorithm.as_str() != "argon2id"
            || hash.version != Some(Version::V0x13.into())
            || hash.hash.as_ref().map(|h| h.len()) != Some(Params::DEFAULT_OUTPUT_LEN)
            || !same_params
    }
}

/// A new Argon2 hash of `password` with a random salt, computed in the thread's memory.
fn hash_with(
    argon2: &Argon2<'_>,
    password: &[u8],
    scratch: &mut Scratch,
) -> Result<PasswordHash, PasswordError> {
    let mut salt = [0_u8; phc::Salt::RECOMMENDED_LENGTH];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| PasswordError::Hashing(password_hash::Error::RngFailure))?;
    let salt = phc::Salt::new(&salt).map_err(|e| PasswordError::Hashing(e.into()))?;
    let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    scratch
        .with_blocks(argon2.params().block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, &salt, &mut out, blocks)
        })
        .map_err(|e| PasswordError::Hashing(e.into()))?;
    let hash = phc::PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: phc::ParamsString::try_from(argon2.params()).map_err(PasswordError::Hashing)?,
        salt: Some(salt),
        hash: Some(phc::Output::new(&out).map_err(|e| PasswordError::Hashing(e.into()))?),
    };
    Ok(PasswordHash(hash.to_string()))
}

/// A stored Argon2 PHC string, parsed once for both the check and the rehash decision. `None`
/// (logged, without the hash) when it cannot be read.
fn read_argon2(stored: &str) -> Option<phc::PasswordHash> {
    phc::PasswordHash::new(stored)
        .inspect_err(|e| tracing::warn!(error = %e, "stored Argon2 hash is malformed"))
        .ok()
}

/// Checks `password` against a parsed Argon2 hash with the parameters, variant and version it
/// names, in the thread's memory. `None` when the hash cannot be used.
fn verify_argon2(
    password: &str,
    parsed: &phc::PasswordHash,
    scratch: &mut Scratch,
) -> Option<bool> {
    let read = || -> Result<(Argon2<'static>, phc::Salt, phc::Output), password_hash::Error> {
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str())?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(password_hash::Error::EncodingInvalid);
        };
        Ok((Argon2::new(algorithm, version, params), salt, expected))
    };
    let (argon2, salt, expected) = read()
        .inspect_err(|e| tracing::warn!(error = %e, "stored Argon2 hash is malformed"))
        .ok()?;
    let mut out = [0_u8; phc::Output::MAX_LENGTH];
    let out = out.get_mut(..expected.len())?;
    let hashed = scratch.with_blocks(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, out, blocks)
    });
    if let Err(e) = hashed {
        tracing::warn!(error = %e, "stored Argon2 hash cannot be verified");
        return None;
    }
    // `Output`'s equality is constant-time.
    Some(phc::Output::new(out).ok()? == expected)
}

/// Legacy bcrypt, with passlib's 72-byte truncation. A match always needs a rehash.
#[cfg(feature = "legacy-bcrypt")]
fn verify_bcrypt(password: &str, stored: &str) -> Option<Verification> {
    match bcrypt::verify(password, stored) {
        Ok(true) => Some(Verification::Match { needs_rehash: true }),
        Ok(false) => Some(Verification::NoMatch),
        Err(e) => {
            tracing::warn!(error = %e, "stored bcrypt hash is malformed");
            None
        }
    }
}

#[cfg(test)]
mod tests;
