//! What every answer carries: CORS, security headers, TLS.
//!
//! These are properties of the server (a middleware, the TLS terminator) rather than of one
//! operation, so their findings name the whole API (`*`) and their evidence the answer that
//! shows them.

use std::time::Duration;

use http::Method;

use crate::{
    catalog::CheckId,
    context::{Context, Outcome},
    generate::{self, Fill},
    probe::{Exchange, ProbeRequest},
    report::{Evidence, Finding},
};

mod hello;

/// The foreign origin the CORS and CSRF probes claim to come from.
pub(crate) const EVIL_ORIGIN: &str = "https://bwk-evil.example";
/// How long the raw TLS probe waits for an answer.
const TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// A `GET` on a data operation: the first documented `GET` without path parameters (a secured
/// one with the first session's credentials when there is a session, else an open one), or `/`.
pub(crate) fn data_request(cx: &Context) -> ProbeRequest {
    let Some(api) = &cx.api else {
        return ProbeRequest::get("/");
    };
    let gets = || {
        api.operations
            .iter()
            .filter(|o| o.method == Method::GET && o.path_params().next().is_none())
            .filter(|o| !super::drift::changes_state(&o.path))
    };
    // The caller's own data first (`/users/me`), admin routes last (they may answer 403).
    let rank = |o: &&crate::api::Operation| {
        let p = o.path.to_ascii_lowercase();
        (p.contains("admin"), !p.contains("/me"))
    };
    if let Some(session) = cx.sessions.first()
        && let Some(op) = gets().filter(|o| o.secured).min_by_key(rank)
    {
        return generate::request_for(op, &Fill::default()).with_auth(&session.auth);
    }
    match gets().find(|o| !o.secured) {
        Some(op) => generate::request_for(op, &Fill::default()),
        None => ProbeRequest::get("/"),
    }
}

/// Evidence with a note after the answer (what the headers lacked or said).
fn noted(cx: &Context, x: &Exchange, note: &str) -> Evidence {
    let mut e = cx.evidence(x);
    e.response = cx.secrets.mask(&format!("{}\n\n({note})", e.response));
    e
}

/// What kind of credentialed CORS grant an answer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// The foreign origin reflected.
    Reflected,
    /// `Origin: null` allowed.
    Null,
    /// `*` with credentials.
    Wildcard,
}

impl Grant {
    fn title(self) -> &'static str {
        match self {
            Grant::Reflected => {
                "Any origin is reflected in Access-Control-Allow-Origin, with credentials allowed"
            }
            Grant::Null => {
                "Origin null is allowed with credentials (sandboxed frames, file: pages)"
            }
            Grant::Wildcard => {
                "Access-Control-Allow-Origin: * is sent with Access-Control-Allow-Credentials: true"
            }
        }
    }
}

/// The credentialed grant `x` makes to `origin`, if any.
fn grant(x: &Exchange, origin: &str) -> Option<Grant> {
    let credentials = x
        .header("access-control-allow-credentials")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let allowed = x.header("access-control-allow-origin")?.trim();
    if !credentials {
        return None;
    }
    if allowed == "*" {
        Some(Grant::Wildcard)
    } else if allowed == origin {
        Some(if origin == "null" {
            Grant::Null
        } else {
            Grant::Reflected
        })
    } else {
        None
    }
}

/// `cors-credentials-wildcard`: a data `GET` (with a cookie, as a browser sends it) and a
/// preflight, from `https://bwk-evil.example` and from `null`. A finding when an answer allows
/// credentials together with that origin (reflected) or `*`; a preflight counts only when it
/// succeeds (2xx).
pub async fn cors_credentials_wildcard(cx: &Context) -> Outcome {
    let get = data_request(cx).header("Cookie", "bwk_audit=1");
    let path = get.path.clone();
    let mut findings: Vec<Finding> = Vec::new();
    let mut answered = 0usize;
    for origin in [EVIL_ORIGIN, "null"] {
        let simple = get.clone().header("Origin", origin);
        let preflight = ProbeRequest::new(Method::OPTIONS, path.clone())
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET");
        for (request, is_preflight) in [(simple, false), (preflight, true)] {
            let first = answered == 0 && origin == EVIL_ORIGIN && !is_preflight;
            let x = match cx.send(request).await {
                Ok(x) => x,
                Err(e) if first => return e.into(),
                Err(_) => continue,
            };
            answered += 1;
            if is_preflight && !x.status.is_success() {
                continue;
            }
            if let Some(g) = grant(&x, origin)
                && !findings.iter().any(|f| f.title == g.title())
            {
                findings.push(
                    Finding::new(CheckId::CorsCredentialsWildcard, "*", cx.evidence(&x))
                        .titled(g.title()),
                );
            }
        }
    }
    Outcome::from_findings(
        findings,
        Some(format!(
            "neither {EVIL_ORIGIN} nor null is granted credentialed access"
        )),
    )
}

/// A header missing or wrong on an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lack {
    NoSniff,
    Framing,
    Hsts,
    Banner(&'static str, String),
}

impl Lack {
    fn title(&self) -> String {
        match self {
            Lack::NoSniff => "X-Content-Type-Options: nosniff is missing".into(),
            Lack::Framing => {
                "HTML answers can be framed by any site: no X-Frame-Options and no CSP frame-ancestors"
                    .into()
            }
            Lack::Hsts => "Strict-Transport-Security is missing on HTTPS answers".into(),
            Lack::Banner(name, value) => format!("The {name} header reveals a version: {value}"),
        }
    }

    fn note(&self, x: &Exchange) -> String {
        match self {
            Lack::NoSniff => match x.header("x-content-type-options") {
                Some(v) => format!("x-content-type-options: {v}"),
                None => "no X-Content-Type-Options header".into(),
            },
            Lack::Framing => "no X-Frame-Options header, no frame-ancestors directive".into(),
            Lack::Hsts => "no Strict-Transport-Security header".into(),
            Lack::Banner(name, value) => format!("{}: {value}", name.to_ascii_lowercase()),
        }
    }
}

/// Whether a banner names a version: `nginx/1.25.3`, `PHP/8.2`, `Apache 2.4`.
fn reveals_version(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes
        .windows(2)
        .any(|w| w[0] == b'/' && w[1].is_ascii_digit())
        || bytes
            .windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
}

/// What `x` lacks; `https` when the target is served over TLS.
fn lacks(x: &Exchange, https: bool) -> Vec<Lack> {
    let mut out = Vec::new();
    if !x.body.is_empty()
        && !x
            .header("x-content-type-options")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("nosniff"))
    {
        out.push(Lack::NoSniff);
    }
    if x.is_html() {
        let xfo = x.header("x-frame-options").is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "deny" || v == "sameorigin"
        });
        let csp = x
            .headers
            .get_all("content-security-policy")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("frame-ancestors"));
        if !xfo && !csp {
            out.push(Lack::Framing);
        }
    }
    if https
        && !x
            .header("strict-transport-security")
            .is_some_and(|v| v.to_ascii_lowercase().contains("max-age"))
    {
        out.push(Lack::Hsts);
    }
    for (name, header) in [("Server", "server"), ("X-Powered-By", "x-powered-by")] {
        if let Some(v) = x.header(header)
            && reveals_version(v)
        {
            out.push(Lack::Banner(name, v.trim().to_owned()));
        }
    }
    out
}

/// `security-headers`: a data answer, the docs page (when it answers HTML) and an error answer.
/// One finding per header missing on any of them: `X-Content-Type-Options: nosniff`, clickjacking
/// protection on HTML (`X-Frame-Options` or CSP `frame-ancestors`), HSTS over HTTPS, and a
/// `Server`/`X-Powered-By` banner with a version.
pub async fn security_headers(cx: &Context) -> Outcome {
    let https = cx.probe.target().base().scheme() == "https";
    let requests = [
        data_request(cx),
        ProbeRequest::get("/docs"),
        ProbeRequest::get(format!("/bwk-audit-missing-{}", super::login::nonce())),
    ];
    let mut answers = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        let mut answer = cx.send(request).await;
        // `/docs` → `/docs/`: follow one redirect that stays on the target.
        if i == 1
            && let Ok(x) = &answer
            && x.status.is_redirection()
            && let Some(location) = x
                .header("location")
                .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        {
            // A Location is absolute on the host; requests are relative to the base path.
            let base = cx
                .probe
                .target()
                .base()
                .path()
                .trim_end_matches('/')
                .to_owned();
            let relative = location.strip_prefix(base.as_str()).unwrap_or(location);
            answer = cx.send(ProbeRequest::get(relative.to_owned())).await;
        }
        match answer {
            // The docs page counts only when there is one.
            Ok(x) if i == 1 && !(x.status.is_success() && x.is_html()) => {}
            Ok(x) => answers.push(x),
            Err(e) if answers.is_empty() && i == 2 => return e.into(),
            Err(_) => {}
        }
    }
    let mut findings: Vec<Finding> = Vec::new();
    for x in &answers {
        for lack in lacks(x, https) {
            let title = lack.title();
            if !findings.iter().any(|f| f.title == title) {
                findings.push(
                    Finding::new(CheckId::SecurityHeaders, "*", noted(cx, x, &lack.note(x)))
                        .titled(title),
                );
            }
        }
    }
    let note = format!("{} answers carry the headers", answers.len());
    Outcome::from_findings(findings, Some(note))
}

/// `tls`: a plain-HTTP target that is not loopback is a finding; an HTTPS one gets a hand-built
/// ClientHello offering TLS 1.0 and 1.1 only, and a finding when the server answers it with a
/// ServerHello below TLS 1.2 (an alert or a close passes).
pub async fn tls(cx: &Context) -> Outcome {
    let target = cx.probe.target();
    let base = target.base();
    if base.scheme() == "http" {
        if target.is_loopback() {
            return Outcome::Passed(Some(
                "loopback: plain HTTP that never leaves this machine".into(),
            ));
        }
        let evidence = Evidence {
            request: format!("GET {base}"),
            response: "(served over plain HTTP: no TLS)".into(),
        };
        return Outcome::Found(vec![
            Finding::new(CheckId::Tls, "*", evidence)
                .titled("The API is served over plain HTTP to a host that is not loopback"),
        ]);
    }
    let (host, server_name) = match base.host() {
        Some(url::Host::Domain(name)) => (name.to_owned(), Some(name.to_owned())),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), None),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), None),
        None => return Outcome::Skipped("the target has no host".into()),
    };
    let port = base.port_or_known_default().unwrap_or(443);
    let answer = match hello::probe(
        hello::TLS11,
        &host,
        port,
        server_name.as_deref(),
        TLS_TIMEOUT,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return Outcome::Skipped(format!("the TLS probe could not connect: {e}")),
    };
    match answer {
        hello::Answer::ServerHello(v) if v < hello::TLS12 => {
            let evidence = Evidence {
                request: format!(
                    "TLS ClientHello to {host}:{port} offering TLS 1.0 and TLS 1.1 only (AES-CBC-SHA suites)"
                ),
                response: format!("ServerHello: {}", hello::version_name(v)),
            };
            Outcome::Found(
                vec![Finding::new(CheckId::Tls, "*", evidence).titled(format!(
                "The server negotiates {} (a ClientHello offering TLS 1.0/1.1 only was accepted)",
                hello::version_name(v)
            ))],
            )
        }
        hello::Answer::ServerHello(v) => Outcome::Passed(Some(format!(
            "a TLS 1.0/1.1-only hello was answered with {}, nothing below TLS 1.2",
            hello::version_name(v)
        ))),
        hello::Answer::Alert(_, description) => Outcome::Passed(Some(format!(
            "TLS 1.0 and 1.1 refused (alert {description})"
        ))),
        hello::Answer::Closed => {
            Outcome::Passed(Some("TLS 1.0 and 1.1 refused (connection closed)".into()))
        }
        hello::Answer::Other => {
            Outcome::Skipped("the server did not answer the TLS hello with a TLS record".into())
        }
    }
}

#[cfg(test)]
mod tests;
