//! The one HTTP client of an audit: every request stays on the target's origin, counts against
//! the request budget, waits for the rate (`--rps`), follows no redirect, and is recorded so that a
//! finding can show it, with every secret masked.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::{AuditError, report::Evidence, target::Target};

/// The most of an answer's body that is read (the rest is dropped).
const MAX_BODY: usize = 1 << 20;
/// How long an idle connection is kept for the next request.
const IDLE_CONNECTION: Duration = Duration::from_secs(2);
/// The most of a body shown in evidence.
const EXCERPT: usize = 600;

/// A request to send, relative to the target's base.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    /// The method.
    pub method: Method,
    /// The path and query, as in an OpenAPI document (`/items/1?q=x`).
    pub path: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body, if any (its `Content-Type` goes in `headers`).
    pub body: Option<Vec<u8>>,
}

impl ProbeRequest {
    /// A request without headers or body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        ProbeRequest {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    /// A JSON body.
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Some(serde_json::to_vec(value).unwrap_or_default());
        self.header("Content-Type", "application/json")
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.body = Some(body.into_bytes());
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    /// Applies a session's credentials (bearer token, headers).
    pub fn with_auth(mut self, auth: &Auth) -> Self {
        if let Some(token) = &auth.token {
            self = self.bearer(token);
        }
        for (k, v) in &auth.headers {
            self = self.header(k.clone(), v.clone());
        }
        self
    }
}

/// What a session sends to be recognised: a bearer token and/or headers.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// A bearer token.
    pub token: Option<String>,
    /// Headers sent as they are (`X-API-Key`, `Cookie`, ...).
    pub headers: Vec<(String, String)>,
}

/// A request and its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// What was sent.
    pub request: ProbeRequest,
    /// The answer's status.
    pub status: StatusCode,
    /// The answer's headers.
    pub headers: HeaderMap,
    /// The answer's body (at most 1 MiB).
    pub body: Bytes,
    /// From sending to the end of the body.
    pub elapsed: Duration,
}

impl Exchange {
    /// The body as text (lossy).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// An answer header, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the answer is HTML (`text/html` or `application/xhtml+xml`).
    pub fn is_html(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/html") || ct.starts_with("application/xhtml")
        })
    }

    /// Excerpts of both sides for a finding, with every secret `secrets` knows masked.
    pub fn evidence(&self, secrets: &Secrets) -> Evidence {
        let mut request = format!("{} {}", self.request.method, self.request.path);
        for (name, value) in &self.request.headers {
            let _ = write!(request, "\n{name}: {}", mask_header(name, value));
        }
        if let Some(body) = &self.request.body {
            let _ = write!(request, "\n\n{}", excerpt(body));
        }
        let mut response = format!("HTTP {}", self.status);
        for (name, value) in &self.headers {
            if SHOWN_RESPONSE_HEADERS.contains(&name.as_str()) {
                let value = value.to_str().unwrap_or("<binary>");
                let _ = write!(response, "\n{name}: {}", mask_header(name.as_str(), value));
            }
        }
        if !self.body.is_empty() {
            let _ = write!(response, "\n\n{}", excerpt(&self.body));
        }
        Evidence {
            request: secrets.mask(&request),
            response: secrets.mask(&response),
        }
    }
}

/// Answer headers worth showing in evidence.
const SHOWN_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "set-cookie",
    "www-authenticate",
    "retry-after",
];

fn mask_header(name: &str, value: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "authorization" => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} ***"),
            None => "***".into(),
        },
        "cookie" | "x-api-key" | "x-csrf-token" | "proxy-authorization" => "***".into(),
        "set-cookie" => match value.split_once('=') {
            Some((cookie, rest)) => {
                let attrs = rest.split_once(';').map(|(_, a)| a).unwrap_or("");
                format!("{cookie}=***;{attrs}")
            }
            None => "***".into(),
        },
        _ => value.to_owned(),
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= EXCERPT {
        return text.into_owned();
    }
    let mut end = EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], body.len())
}

/// Every secret an audit holds (passwords, tokens, header values, cracked keys): masked out of
/// every string that leaves it. JWT-shaped strings are masked whatever their origin.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    known: Arc<Mutex<Vec<String>>>,
}

impl Secrets {
    /// Remembers a secret (ignored when shorter than 4 bytes: masking it would garble text).
    pub fn add(&self, secret: &str) {
        if secret.len() >= 4 {
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            if !known.iter().any(|k| k == secret) {
                known.push(secret.to_owned());
                // Longest first, so that a secret containing another is masked whole.
                known.sort_by_key(|k| std::cmp::Reverse(k.len()));
            }
        }
    }

    /// `text` with every known secret and every JWT-shaped string replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = mask_jwts(text);
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for secret in known.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            if encoded != *secret && out.contains(encoded.as_str()) {
                out = out.replace(encoded.as_str(), "***");
            }
        }
        out
    }
}

/// Replaces `eyJ….….…` (three base64url parts, the first a JSON object) with `***`.
fn mask_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let len = candidate
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(candidate.len());
        let token = &candidate[..len];
        if token.matches('.').count() >= 1 && len >= 16 {
            out.push_str("***");
        } else {
            out.push_str(token);
        }
        rest = &candidate[len..];
    }
    out.push_str(rest);
    out
}

/// Limits and timing of the probe.
#[derive(Debug, Clone, Copy)]
pub struct ProbeLimits {
    /// The most requests the audit sends.
    pub max_requests: u64,
    /// The most requests per second.
    pub rps: u32,
    /// How long one request may take.
    pub timeout: Duration,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        ProbeLimits {
            max_requests: 5000,
            rps: 50,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The request budget is spent.
    #[error("request budget spent")]
    Budget,
    /// The path would leave the target's origin.
    #[error("refused to leave the target's origin: {0}")]
    OffOrigin(String),
    /// A connection or timeout failure.
    #[error("request failed: {0}")]
    Transport(String),
}

/// The audit's HTTP client (cheap to clone: shared state).
#[derive(Clone)]
pub struct Probe {
    inner: Arc<ProbeInner>,
}

struct ProbeInner {
    http: reqwest::Client,
    target: Target,
    limits: ProbeLimits,
    sent: AtomicU64,
    next_slot: tokio::sync::Mutex<Instant>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("target", &self.inner.target.base().as_str())
            .field("sent", &self.sent())
            .finish()
    }
}

impl Probe {
    /// A client for `target` within `limits`.
    pub fn new(target: Target, limits: ProbeLimits) -> Result<Self, AuditError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.timeout)
            // Idle connections are dropped well before the servers' own keep-alive timeouts
            // (uvicorn's is 5 s): a request on a connection the server is closing that instant
            // fails with a reset, which would skip a check for nothing.
            .pool_idle_timeout(IDLE_CONNECTION)
            .user_agent(concat!("bulwark-audit/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(tls_config(target.is_loopback())?)
            .build()
            .map_err(|e| AuditError::Usage(format!("HTTP client: {e}")))?;
        Ok(Probe {
            inner: Arc::new(ProbeInner {
                http,
                target,
                limits,
                sent: AtomicU64::new(0),
                next_slot: tokio::sync::Mutex::new(Instant::now()),
            }),
        })
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Requests left in the budget.
    pub fn remaining(&self) -> u64 {
        self.inner.limits.max_requests.saturating_sub(self.sent())
    }

    /// Sends `request`, after waiting for its slot in the rate.
    pub async fn send(&self, request: ProbeRequest) -> Result<Exchange, ProbeError> {
        let url = self
            .inner
            .target
            .url_for(&request.path)
            .ok_or_else(|| ProbeError::OffOrigin(request.path.clone()))?;
        let claimed = self.inner.sent.fetch_add(1, Ordering::Relaxed);
        if claimed >= self.inner.limits.max_requests {
            self.inner.sent.fetch_sub(1, Ordering::Relaxed);
            return Err(ProbeError::Budget);
        }
        self.pace().await;
        let mut builder = self.inner.http.request(request.method.clone(), url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let started = Instant::now();
        let mut response = builder
            .send()
            .await
            .map_err(|e| ProbeError::Transport(without_url(&e)))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if room <= chunk.len() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(ProbeError::Transport(without_url(&e))),
            }
        }
        Ok(Exchange {
            request,
            status,
            headers,
            body: Bytes::from(body),
            elapsed: started.elapsed(),
        })
    }

    /// Waits until the next request may go at the configured rate.
    async fn pace(&self) {
        let rps = self.inner.limits.rps.max(1);
        let interval = Duration::from_secs(1) / rps;
        let wait_until = {
            let mut next = self.inner.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }
}

/// The TLS client configuration of `https://` targets, with its own aws-lc-rs provider (the
/// process needs no default provider installed).
///
/// A loopback target's certificate is not verified: `bulwark serve --self-signed` and other
/// development servers on this machine use self-signed certificates, and a connection to
/// 127.0.0.1 or ::1 cannot be intercepted off the machine, so verification buys nothing there
/// (handshake signatures are still checked). Every other target is verified against the
/// Mozilla root store (webpki-roots), as a browser would. Only HTTP/1.1 is offered by ALPN (the
/// client speaks nothing else).
fn tls_config(loopback: bool) -> Result<rustls::ClientConfig, AuditError> {
    use rustls::{ClientConfig, RootCertStore};

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| AuditError::Usage(format!("TLS client: {e}")))?;
    let mut config = if loopback {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LoopbackVerifier(provider)))
            .with_no_client_auth()
    } else {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts any certificate of a loopback target (see [`tls_config`]), but checks the handshake's
/// signatures with the provider's algorithms.
#[derive(Debug)]
struct LoopbackVerifier(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for LoopbackVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A transport error's text and causes, without its URL (the probe's own path, shown elsewhere).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_tokens_are_masked() {
        let s = Secrets::default();
        s.add("hunter22");
        let masked =
            s.mask("password=hunter22&x=1 token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig-_x end");
        assert_eq!(masked, "password=***&x=1 token *** end");
        assert_eq!(mask_header("Authorization", "Bearer abc"), "Bearer ***");
        assert_eq!(
            mask_header("set-cookie", "session=abc; HttpOnly"),
            "session=***; HttpOnly"
        );
    }
}
