//! HTTPS for the server: the certificate (PEM files or self-signed), its reload on SIGHUP, and the
//! plain-HTTP listener that redirects to HTTPS (`--redirect-http`).
//!
//! The TLS machinery itself (versions, ALPN, loading and checking the files, the reloadable
//! resolver) is `bulwark::tls`; this module wires it to settings and signals.

use std::{net::IpAddr, sync::Arc};

use anyhow::Context as _;
use axum::{
    Router,
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use bulwark::{
    error::HttpError,
    headers::SecurityHeadersLayer,
    tls::{CertificateFiles, CertificateResolver, LOCAL_NAMES, self_signed, server_config},
};
use http::{HeaderValue, StatusCode, header};

use crate::config::Settings;

/// The certificate being served and the rustls configuration built on it.
pub struct Tls {
    /// Swappable certificate; [`reload_on_sighup`] re-reads its files.
    pub resolver: Arc<CertificateResolver>,
    /// The configuration for `bulwark::serve::ServeOptions::tls`.
    pub config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// TLS as the settings ask: certificate files, a self-signed certificate (its fingerprint
    /// logged, never its key), or none. Files are read on a blocking thread.
    ///
    /// # Errors
    /// A message naming the unreadable file, the file without a certificate or key, or the key
    /// that does not match its certificate.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let resolver = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                let files = CertificateFiles::new(cert, key);
                let resolver = CertificateResolver::from_files(files)
                    .await
                    .context("cannot load the TLS certificate")?;
                tracing::info!(
                    cert = %cert.display(),
                    fingerprint = %resolver.fingerprint(),
                    "TLS certificate loaded"
                );
                resolver
            }
            _ if settings.tls_self_signed => {
                let generated = tokio::task::spawn_blocking(|| self_signed(LOCAL_NAMES))
                    .await?
                    .context("cannot make a self-signed certificate")?;
                tracing::warn!(
                    fingerprint = %generated.fingerprint,
                    names = %LOCAL_NAMES.join(", "),
                    "serving a self-signed certificate made at start-up (development only); \
                     check the SHA-256 fingerprint before trusting it"
                );
                CertificateResolver::fixed(generated.certified_key)
            }
            _ => return Ok(None),
        };
        let resolver = Arc::new(resolver);
        let config = server_config(Arc::clone(&resolver) as _)?;
        Ok(Some(Self { resolver, config }))
    }
}

/// Re-reads the certificate files on every SIGHUP, for as long as the task runs; a failed
/// reload is logged and the previous certificate keeps serving. Open connections are not
/// touched. The handler is installed before this returns, so a SIGHUP no longer ends the
/// process, with or without TLS.
///
/// # Errors
/// When the signal handler cannot be installed.
pub fn reload_on_sighup(
    resolver: Option<Arc<CertificateResolver>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match &resolver {
                Some(resolver) => match resolver.reload().await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(
                            "SIGHUP: the self-signed certificate has no files to re-read"
                        )
                    }
                    // Logged by `reload`; the previous certificate keeps serving.
                    Err(_) => {}
                },
                None => tracing::info!("SIGHUP: TLS is off; nothing to reload"),
            }
        }
    }))
}

/// Where redirects point: the HTTPS port, and the address used when a request names no host.
#[derive(Debug, Clone)]
struct Target {
    port: u16,
    fallback_host: Option<String>,
}

/// A router answering every request with 308 to the same path and query on HTTPS: the host
/// from the `Host` header (its port dropped) or, without one, `bind_ip`; the port `https_port`
/// (left out when 443). A `Host` header that is not a host name or IP address gets 400, so the
/// redirect cannot be aimed at a malformed URL.
pub fn redirect_router(https_port: u16, bind_ip: IpAddr) -> Router {
    let fallback_host = (!bind_ip.is_unspecified()).then(|| match bind_ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    });
    let target = Arc::new(Target {
        port: https_port,
        fallback_host,
    });
    Router::new()
        .fallback(redirect)
        .with_state(target)
        .layer(SecurityHeadersLayer::new())
}

async fn redirect(State(target): State<Arc<Target>>, request: Request) -> Response {
    let named = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_owned),
        // HTTP/2 names the host in `:authority`.
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    };
    let host = match named {
        Some(named) => host_without_port(&named),
        None => target.fallback_host.clone(),
    };
    let Some(host) = host else {
        return HttpError::new(StatusCode::BAD_REQUEST, "Invalid Host header").into_response();
    };
    let port = if target.port == 443 {
        String::new()
    } else {
        format!(":{}", target.port)
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .filter(|pq| pq.starts_with('/'))
        .unwrap_or("/");
    let location = format!("https://{host}{port}{path}");
    match HeaderValue::try_from(location) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => HttpError::new(StatusCode::BAD_REQUEST, "Invalid request target").into_response(),
    }
}

/// The host of a `Host` header value without its port: a DNS name (lowercased) or an IP
/// address (IPv6 in brackets). `None` for anything else: user info, bad characters, a bad port.
fn host_without_port(value: &str) -> Option<String> {
    let valid_port = |port: &str| {
        port.is_empty() || (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(rest) = value.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = ip.parse().ok()?;
        match after.strip_prefix(':') {
            Some(port) if valid_port(port) => {}
            None if after.is_empty() => {}
            _ => return None,
        }
        return Some(format!("[{ip}]"));
    }
    let (host, port) = value.split_once(':').unwrap_or((value, ""));
    if !valid_port(port) || host.is_empty() || host.len() > 253 {
        return None;
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    host.split('.')
        .all(label_ok)
        .then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_keep_their_name_and_lose_their_port() {
        for (value, host) in [
            ("example.com", "example.com"),
            ("Example.COM:8080", "example.com"),
            ("localhost:80", "localhost"),
            ("127.0.0.1:8000", "127.0.0.1"),
            ("[::1]:8080", "[::1]"),
            ("[::1]", "[::1]"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(host_without_port(value).as_deref(), Some(host), "{value}");
        }
    }

    #[test]
    fn garbage_hosts_are_refused() {
        for value in [
            "",
            ":80",
            "evil.com@good.com",
            "user@host",
            "host/path",
            "host:port",
            "host:123456",
            "a..b",
            "-a.com",
            "::1",
            "[::1",
            "[not-ip]:80",
            "[::1]x",
            "host name",
            "h\u{e9}st",
        ] {
            assert_eq!(host_without_port(value), None, "{value:?}");
        }
    }
}
