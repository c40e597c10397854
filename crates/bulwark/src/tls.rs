//! Serving HTTPS with rustls: certificates from PEM files or made at start-up, reloadable without
//! a restart.
//!
//! **Threat model.** Without TLS, anyone on the path between a client and the server (a shared
//! Wi-Fi, a compromised router, an ISP) reads passwords, tokens and session cookies, and can rewrite
//! responses. [`server_config`] builds a rustls configuration that:
//!
//! - speaks TLS 1.2 and 1.3 only ([`PROTOCOL_VERSIONS`]): SSL 3, TLS 1.0 and 1.1 (POODLE, BEAST,
//!   SHA-1 and CBC-era weaknesses) are refused at the handshake; rustls has no export, RC4, 3DES or
//!   static-RSA cipher suites at all, and its TLS 1.2 suites are all ECDHE with AEAD;
//! - offers ALPN `h2` and `http/1.1` ([`ALPN_PROTOCOLS`]), so a client chooses HTTP/2 or HTTP/1.1
//!   during the handshake and nothing has to be guessed from the first bytes;
//! - never accepts TLS 1.3 early data (0-RTT), which an attacker could replay;
//! - takes its certificate from a [`CertificateResolver`], so that a renewed certificate (a
//!   Let's Encrypt renewal, a rotated internal CA) is picked up by [`CertificateResolver::reload`]
//!   without dropping open connections, and a broken renewal keeps the old certificate serving.
//!
//! Loading checks what a typo or a half-finished renewal gets wrong: an unreadable file, a file
//! with no certificate or no private key, an unsupported key, and a key that does not belong to
//! the certificate all fail with a [`TlsError`] that names the file, before any client sees a
//! handshake failure.
//!
//! **Not covered.** Client certificates (mutual TLS), OCSP stapling and certificate expiry
//! monitoring. A self-signed certificate ([`self_signed`], feature `dev-certs`) encrypts, but
//! authenticates nothing until a client pins it (compare the SHA-256 fingerprint out of band): it
//! is for development.
//!
//! **Deployment.** Behind a TLS-terminating proxy or load balancer, leave TLS to the proxy and
//! tell the application it is reached over HTTPS another way (HSTS, `Secure` cookies). When this
//! server terminates TLS itself, keep the key file readable by the server's user only (mode
//! 0600), renew by replacing both files (write new files, then rename over the old ones, so that
//! a reload never reads a half-written pair), then send the reload signal. Only one rustls crypto
//! provider should be compiled in; call [`install_default_crypto_provider`] at the top of `main`
//! so that every rustls user in the process (database drivers, HTTP clients) agrees on it.
//!
//! # Examples
//! With the `dev-certs` feature:
//! ```
//! # #[cfg(feature = "dev-certs")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bulwark::tls::TlsError> {
//! use std::sync::Arc;
//! use bulwark::tls::{CertificateResolver, self_signed, server_config, LOCAL_NAMES};
//!
//! let generated = self_signed(LOCAL_NAMES)?;
//! println!("certificate fingerprint (SHA-256): {}", generated.fingerprint);
//! let resolver = Arc::new(CertificateResolver::fixed(generated.certified_key));
//! let config = server_config(resolver)?;
//! assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
//! # Ok(()) }
//! # #[cfg(not(feature = "dev-certs"))]
//! # fn main() {}
//! ```

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};

use rustls::{
    ServerConfig, SupportedProtocolVersion,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// The protocol versions served: TLS 1.3 and TLS 1.2, nothing older.
pub const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ALPN protocols offered, in order of preference.
pub const ALPN_PROTOCOLS: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The names a development certificate covers: `localhost`, `127.0.0.1` and `::1`.
#[cfg(feature = "dev-certs")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-certs")))]
pub const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Why a certificate could not be loaded, made, or served. Each variant that comes from a file
/// names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read (missing, a folder, no permission).
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{}: not valid PEM: {cause}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        cause: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{}: no certificate found (expected a PEM \"CERTIFICATE\" block)", path.display())]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error(
        "{}: no private key found (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)",
        path.display()
    )]
    NoPrivateKey {
        /// The key file.
        path: PathBuf,
    },
    /// The private key is malformed or of a kind the crypto provider does not support.
    #[error("{}: unsupported or invalid private key: {cause}", path.display())]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        cause: rustls::Error,
    },
    /// The end-entity certificate could not be parsed.
    #[error("{}: invalid certificate: {cause}", path.display())]
    InvalidCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What rustls said.
        cause: rustls::Error,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "{}: the private key does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// Generating a self-signed certificate failed.
    #[cfg(feature = "dev-certs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dev-certs")))]
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
    /// The blocking file-reading task did not finish (the runtime is shutting down).
    #[error("certificate loading was interrupted")]
    Interrupted,
}

/// Installs aws-lc-rs as the process-wide rustls crypto provider. Call it once at the top of
/// `main`, before anything uses rustls; later calls (and a provider installed earlier) are left
/// alone.
///
/// # Examples
/// ```
/// bulwark::tls::install_default_crypto_provider();
/// assert!(rustls::crypto::CryptoProvider::get_default().is_some());
/// ```
pub fn install_default_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The process-wide provider when one is installed, else aws-lc-rs.
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The SHA-256 fingerprint of a DER certificate, as uppercase hex pairs joined by colons (the
/// form `openssl x509 -fingerprint -sha256` and browsers show).
///
/// # Examples
/// ```
/// let fp = bulwark::tls::sha256_fingerprint(b"");
/// assert!(fp.starts_with("E3:B0:C4:42:98:FC"));
/// assert_eq!(fp.len(), 32 * 3 - 1);
/// ```
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A certificate chain file and its private-key file, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The certificate chain: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

impl CertificateFiles {
    /// Names the two files.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// Reads and checks the pair. Blocking: from async code use [`Self::load_async`].
    ///
    /// # Errors
    /// A [`TlsError`] naming the file: unreadable, not PEM, no certificate, no key, an
    /// unsupported key, or a key that does not match the certificate.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|cause| pem_error(&self.cert, cause))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(key) => key,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsError::NoPrivateKey {
                    path: self.key.clone(),
                });
            }
            Err(cause) => return Err(pem_error(&self.key, cause)),
        };
        certify(chain, key).map_err(|err| match err {
            CertifyError::Key(cause) => TlsError::InvalidKey {
                path: self.key.clone(),
                cause,
            },
            CertifyError::Certificate(cause) => TlsError::InvalidCertificate {
                path: self.cert.clone(),
                cause,
            },
            CertifyError::Mismatch => TlsError::KeyMismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
            },
        })
    }

    /// [`Self::load`] on a blocking thread.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub async fn load_async(&self) -> Result<CertifiedKey, TlsError> {
        let files = self.clone();
        tokio::task::spawn_blocking(move || files.load())
            .await
            .map_err(|_| TlsError::Interrupted)?
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|cause| TlsError::Read {
        path: path.to_owned(),
        cause,
    })
}

fn pem_error(path: &Path, cause: rustls::pki_types::pem::Error) -> TlsError {
    match cause {
        rustls::pki_types::pem::Error::Io(cause) => TlsError::Read {
            path: path.to_owned(),
            cause,
        },
        cause => TlsError::Pem {
            path: path.to_owned(),
            cause,
        },
    }
}

enum CertifyError {
    Key(rustls::Error),
    Certificate(rustls::Error),
    Mismatch,
}

/// Pairs a chain with its key, checking that the key's public half is the certificate's.
fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, CertifyError> {
    use rustls::{Error, InconsistentKeys};
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(CertifyError::Key)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the provider cannot derive this key's public half; nothing to compare.
        Ok(()) | Err(Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(CertifyError::Mismatch),
        Err(other) => Err(CertifyError::Certificate(other)),
    }
}

/// A certificate made at start-up by [`self_signed`]. Its private key lives only inside
/// [`Self::certified_key`] and is never printed.
#[cfg(feature = "dev-certs")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-certs")))]
pub struct SelfSigned {
    /// The certificate and its key, ready for a [`CertificateResolver`].
    pub certified_key: CertifiedKey,
    /// The certificate (no key) as PEM, for a client to trust.
    pub cert_pem: String,
    /// [`sha256_fingerprint`] of the certificate, for printing.
    pub fingerprint: String,
}

#[cfg(feature = "dev-certs")]
impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Makes a self-signed certificate (ECDSA P-256, valid from a day ago for a year) for `names`:
/// DNS names or IP addresses, e.g. [`LOCAL_NAMES`].
///
/// # Errors
/// [`TlsError::SelfSigned`] when a name is not valid in a certificate or generation fails.
///
/// # Examples
/// ```
/// let generated = bulwark::tls::self_signed(&["localhost", "127.0.0.1"]).unwrap();
/// assert!(generated.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(!format!("{generated:?}").contains("PRIVATE"));
/// ```
#[cfg(feature = "dev-certs")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-certs")))]
pub fn self_signed(names: &[&str]) -> Result<SelfSigned, TlsError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(names).map_err(TlsError::SelfSigned)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "bulwark self-signed (development)",
    );
    let key_pair = rcgen::KeyPair::generate().map_err(TlsError::SelfSigned)?;
    let cert = params
        .self_signed(&key_pair)
        .map_err(TlsError::SelfSigned)?;
    let der = cert.der().clone();
    let fingerprint = sha256_fingerprint(&der);
    let key = PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let certified_key = certify(vec![der], key).map_err(|_| {
        TlsError::Config(rustls::Error::General(
            "the generated key was refused".to_owned(),
        ))
    })?;
    Ok(SelfSigned {
        certified_key,
        cert_pem: cert.pem(),
        fingerprint,
    })
}

/// The certificate a server presents, swappable while it serves: a rustls
/// [`ResolvesServerCert`] over a lock-protected [`CertifiedKey`]. Handshakes read the current
/// certificate; [`Self::reload`] replaces it for the handshakes that follow, and connections
/// already established are not touched.
pub struct CertificateResolver {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<CertificateFiles>,
}

impl fmt::Debug for CertificateResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateResolver")
            .field("files", &self.files)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl CertificateResolver {
    /// Loads `files` (on a blocking thread) and serves them; [`Self::reload`] re-reads them.
    ///
    /// # Errors
    /// As [`CertificateFiles::load`].
    pub async fn from_files(files: CertificateFiles) -> Result<Self, TlsError> {
        let key = files.load_async().await?;
        Ok(Self {
            current: RwLock::new(Arc::new(key)),
            files: Some(files),
        })
    }

    /// Serves `key` for good (e.g. from [`self_signed`]); [`Self::reload`] has nothing to re-read.
    pub fn fixed(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
            files: None,
        }
    }

    /// The files re-read by [`Self::reload`], if any.
    pub fn files(&self) -> Option<&CertificateFiles> {
        self.files.as_ref()
    }

    /// The certificate and key served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// [`sha256_fingerprint`] of the certificate served now.
    pub fn fingerprint(&self) -> String {
        self.current()
            .cert
            .first()
            .map(|der| sha256_fingerprint(der))
            .unwrap_or_default()
    }

    /// Re-reads the files (on a blocking thread). On success new handshakes get the new
    /// certificate; on error the current one keeps serving and the error is logged and returned.
    /// `Ok(false)` when there are no files to re-read.
    ///
    /// # Errors
    /// As [`CertificateFiles::load`]; the served certificate is unchanged.
    pub async fn reload(&self) -> Result<bool, TlsError> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        match files.load_async().await {
            Ok(key) => {
                let key = Arc::new(key);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
                tracing::info!(
                    cert = %files.cert.display(),
                    fingerprint = %self.fingerprint(),
                    "TLS certificate reloaded"
                );
                Ok(true)
            }
            Err(err) => {
                tracing::error!(error = %err, "TLS certificate reload failed; still serving the previous certificate");
                Err(err)
            }
        }
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server configuration: [`PROTOCOL_VERSIONS`], [`ALPN_PROTOCOLS`], no client
/// authentication, no early data, certificates from `resolver`.
///
/// # Errors
/// [`TlsError::Config`] when the crypto provider supports none of the protocol versions.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

// Every test makes its certificates with rcgen.
#[cfg(all(test, feature = "dev-certs"))]
mod tests {
    use std::io::Write as _;

    use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    /// A certificate and key written as PEM files in a temporary folder.
    struct Pair {
        dir: std::path::PathBuf,
        files: CertificateFiles,
        cert_der: CertificateDer<'static>,
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn write(path: &Path, content: &[u8]) {
        let mut file = std::fs::File::create(path).expect("create");
        file.write_all(content).expect("write");
    }

    fn pair() -> Pair {
        let dir = std::env::temp_dir().join(format!("bulwark-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        let files = CertificateFiles::new(dir.join("cert.pem"), dir.join("key.pem"));
        write(&files.cert, generated.cert.pem().as_bytes());
        write(&files.key, generated.signing_key.serialize_pem().as_bytes());
        Pair {
            dir,
            files,
            cert_der: generated.cert.der().clone(),
        }
    }

    #[test]
    fn a_matching_pair_loads() {
        let pair = pair();
        let key = pair.files.load().expect("loads");
        assert_eq!(key.cert, vec![pair.cert_der.clone()]);
    }

    #[test]
    fn a_missing_file_is_named() {
        let pair = pair();
        let files = CertificateFiles::new(pair.dir.join("nope.pem"), &pair.files.key);
        let err = files.load().expect_err("fails");
        assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let pair = pair();
        // The key file has no CERTIFICATE block.
        let files = CertificateFiles::new(&pair.files.key, &pair.files.key);
        let err = files.load().expect_err("fails");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(err.to_string().contains("key.pem"), "{err}");
    }

    #[test]
    fn a_file_without_a_key_is_named() {
        let pair = pair();
        let files = CertificateFiles::new(&pair.files.cert, &pair.files.cert);
        let err = files.load().expect_err("fails");
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err:?}");
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }

    #[test]
    fn a_key_from_another_pair_is_refused() {
        let (a, b) = (pair(), pair());
        let files = CertificateFiles::new(&a.files.cert, &b.files.key);
        let err = files.load().expect_err("fails");
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&*b.files.key.to_string_lossy()), "{text}");
        assert!(text.contains("does not match"), "{text}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let pair = pair();
        write(&pair.files.cert, b"-----BEGIN CERTIFICATE-----\n!!!\n");
        let err = pair.files.load().expect_err("fails");
        assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
    }

    #[test]
    fn a_self_signed_certificate_covers_local_names() {
        let generated = self_signed(LOCAL_NAMES).expect("generated");
        let der = &generated.certified_key.cert[0];
        assert_eq!(generated.fingerprint, sha256_fingerprint(der));
        assert_eq!(generated.fingerprint.len(), 95);
        assert!(!generated.cert_pem.contains("PRIVATE KEY"));
        generated.certified_key.keys_match().expect("key matches");
    }

    /// A TLS handshake over an in-memory pipe: the negotiated version and ALPN protocol, and the
    /// certificate the server presented.
    async fn handshake(
        config: Arc<ServerConfig>,
        trusted: &CertificateDer<'static>,
        versions: &[&'static SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Result<
        (
            rustls::ProtocolVersion,
            Option<Vec<u8>>,
            CertificateDer<'static>,
        ),
        std::io::Error,
    > {
        let mut roots = RootCertStore::empty();
        roots.add(trusted.clone()).expect("root");
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut tls = TlsAcceptor::from(config).accept(server_io).await?;
            tls.write_all(b"hi").await?;
            tls.flush().await?;
            Ok::<_, std::io::Error>(tls)
        });
        let mut tls = TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").expect("name"), client_io)
            .await?;
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf).await?;
        let _server = server.await.expect("join")?;
        let (_, conn) = tls.get_ref();
        Ok((
            conn.protocol_version().expect("version"),
            conn.alpn_protocol().map(<[u8]>::to_vec),
            conn.peer_certificates().expect("certs")[0].clone(),
        ))
    }

    #[tokio::test]
    async fn tls_1_2_and_1_3_are_spoken_and_alpn_picks_h2_or_http1() {
        let pair = pair();
        let resolver = Arc::new(
            CertificateResolver::from_files(pair.files.clone())
                .await
                .expect("loads"),
        );
        let config = server_config(resolver).expect("config");
        let (version, alpn, _) = handshake(
            Arc::clone(&config),
            &pair.cert_der,
            &[&rustls::version::TLS12],
            &[b"h2", b"http/1.1"],
        )
        .await
        .expect("TLS 1.2 handshake");
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        let (version, alpn, _) = handshake(
            config,
            &pair.cert_der,
            &[&rustls::version::TLS13],
            &[b"http/1.1"],
        )
        .await
        .expect("TLS 1.3 handshake");
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(PROTOCOL_VERSIONS.len(), 2);
        assert!(PROTOCOL_VERSIONS.iter().all(|v| matches!(
            v.version,
            rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3
        )));
    }

    #[tokio::test]
    async fn reload_switches_certificates_and_keeps_the_old_one_on_error() {
        let (a, b) = (pair(), pair());
        let resolver = Arc::new(
            CertificateResolver::from_files(a.files.clone())
                .await
                .expect("loads"),
        );
        let config =
            server_config(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>).expect("config");
        let before = resolver.fingerprint();
        assert_eq!(before, sha256_fingerprint(&a.cert_der));

        // A half-finished renewal: the new certificate with the old key.
        std::fs::copy(&b.files.cert, &a.files.cert).expect("copy");
        let err = resolver.reload().await.expect_err("mismatch");
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        assert_eq!(resolver.fingerprint(), before);
        let (_, _, served) = handshake(
            Arc::clone(&config),
            &a.cert_der,
            &[&rustls::version::TLS13],
            &[],
        )
        .await
        .expect("the old certificate still serves");
        assert_eq!(served, a.cert_der);

        // The renewal completes.
        std::fs::copy(&b.files.key, &a.files.key).expect("copy");
        assert!(resolver.reload().await.expect("reloads"));
        assert_eq!(resolver.fingerprint(), sha256_fingerprint(&b.cert_der));
        let (_, _, served) = handshake(config, &b.cert_der, &[&rustls::version::TLS13], &[])
            .await
            .expect("the new certificate serves");
        assert_eq!(served, b.cert_der);
    }

    #[tokio::test]
    async fn a_fixed_certificate_has_nothing_to_reload() {
        let generated = self_signed(LOCAL_NAMES).expect("generated");
        let resolver = CertificateResolver::fixed(generated.certified_key);
        assert!(!resolver.reload().await.expect("no-op"));
        assert_eq!(resolver.fingerprint(), generated.fingerprint);
        assert!(!format!("{resolver:?}").contains("PRIVATE"));
    }
}
