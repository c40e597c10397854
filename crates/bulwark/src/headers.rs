//! Hardening response headers on every response: [`SecurityHeadersLayer`].
//!
//! **Threat model.** Browser-side attacks on an API's responses:
//!
//! | header | stops |
//! |---|---|
//! | `X-Content-Type-Options: nosniff` | MIME sniffing a JSON or text body into HTML/script |
//! | `X-Frame-Options: DENY`, CSP `frame-ancestors 'none'` | clickjacking through frames |
//! | `Content-Security-Policy` ([`API_CSP`] unless the route set one) | script, style, plugin or frame loads from an API response opened as a page; a second wall behind [`crate::sanitize`] |
//! | `Referrer-Policy: no-referrer` | URLs (ids, tokens in links) leaking to other sites |
//! | `Cross-Origin-Opener-Policy: same-origin` | cross-window attacks through `window.opener` (tabnabbing, XS-Leaks) |
//! | `Cache-Control: no-store` (unless the route set one) | tokens and user data kept in shared or browser caches |
//! | `Strict-Transport-Security` (when TLS is on) | SSL stripping after the first visit |
//!
//! It also removes any `Server` header, so no banner or version is advertised.
//!
//! Always-on headers replace whatever a handler set; `Content-Security-Policy` and `Cache-Control`
//! are only added when the response has none, so an HTML route can send [`HTML_CSP`] and a static
//! asset can be cacheable.
//!
//! **Not covered.** CORS (a separate layer, off by default), cookie flags, and anything a browser
//! does not enforce. A response the inner service fails to produce (`Err`) gets no headers; axum's
//! services never fail, so put this layer outside the router and outside any fallible layer.
//!
//! **Deployment.** Add it as the outermost layer, so error responses made by other layers
//! (timeouts, body limits, panics) are covered too. Turn HSTS on only when clients reach this
//! server over HTTPS, whether it terminates TLS itself or sits behind a TLS proxy: the header
//! tells browsers to refuse plain HTTP to the host (and its subdomains) for two years, and is
//! hard to take back. A proxy in front may add its own `Server` header after this layer runs.

use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response, header};
use tower::{
    Layer, Service,
    util::{MapResponse, future::MapResponseFuture},
};

/// The CSP sent by default: an API response may load nothing and be framed by nobody.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// A CSP for HTML pages served by this server: scripts, styles, fetches and forms to the same
/// origin only, images also as `data:` URLs (the docs page needs them). Set it on the route.
pub const HTML_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The HSTS value sent when TLS is on: two years, subdomains included.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");

/// Adds the hardening headers to every response; builds [`SecurityHeaders`].
///
/// # Examples
/// ```
/// use axum::{Router, http::header, response::IntoResponse, routing::get};
/// use bulwark::headers::{HTML_CSP, SecurityHeadersLayer};
///
/// let app: Router = Router::new()
///     .route("/items", get(|| async { "[]" }))
///     // An HTML page sets its own CSP; the layer keeps it.
///     .route("/page", get(|| async {
///         ([(header::CONTENT_SECURITY_POLICY, HTML_CSP)], "<h1>hi</h1>").into_response()
///     }))
///     .layer(SecurityHeadersLayer::new().with_hsts(true));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecurityHeadersLayer {
    hsts: bool,
}

impl SecurityHeadersLayer {
    /// The layer with HSTS off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `Strict-Transport-Security` ([`HSTS`]) when `on`. Turn on when serving over TLS.
    pub fn with_hsts(mut self, on: bool) -> Self {
        self.hsts = on;
        self
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            hsts: self.hsts,
        }
    }
}

/// The service made by [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    hsts: bool,
}

type Harden<B> = fn(Response<B>) -> Response<B>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = MapResponseFuture<S::Future, Harden<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // A plain function pointer keeps the future unboxed: no allocation per request.
        let harden: Harden<ResBody> = if self.hsts {
            harden::<ResBody, true>
        } else {
            harden::<ResBody, false>
        };
        MapResponse::new(&mut self.inner, harden).call(request)
    }
}

fn harden<B, const HSTS_ON: bool>(mut response: Response<B>) -> Response<B> {
    apply_security_headers(response.headers_mut(), HSTS_ON);
    response
}

/// Sets the headers of [`SecurityHeadersLayer`] on `headers`: for a server that composes its
/// own response layer (and for the answers written before a request reaches the router, see
/// `crate::serve`). Always-on headers replace what is there; `Content-Security-Policy` and
/// `Cache-Control` are only added when missing; `Server` is removed.
pub fn apply_security_headers(headers: &mut http::HeaderMap, hsts: bool) {
    // Room for every header below at once: one growth of the map, not several.
    headers.reserve(7);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        CROSS_ORIGIN_OPENER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(API_CSP));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    headers.remove(header::SERVER);
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::{Router, body::Body, response::IntoResponse, routing::get};
    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;

    fn app(layer: SecurityHeadersLayer) -> Router {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/page",
                get(|| async {
                    let headers = [
                        (header::CONTENT_SECURITY_POLICY, HTML_CSP),
                        (header::CACHE_CONTROL, "public, max-age=60"),
                    ];
                    (headers, "<h1>hi</h1>").into_response()
                }),
            )
            .route(
                "/banner",
                get(|| async { ([(header::SERVER, "hyper/1.0 (Ubuntu)")], "ok") }),
            )
            .layer(layer)
    }

    async fn get_path(app: Router, path: &str) -> Response<Body> {
        let request = Request::get(path).body(Body::empty()).expect("request");
        app.oneshot(request).await.expect("infallible")
    }

    fn header<'a, B>(response: &'a Response<B>, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    fn assert_hardened<B>(response: &Response<B>) {
        assert_eq!(header(response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(response, "x-frame-options"), Some("DENY"));
        assert_eq!(header(response, "referrer-policy"), Some("no-referrer"));
        assert_eq!(
            header(response, "cross-origin-opener-policy"),
            Some("same-origin")
        );
    }

    #[tokio::test]
    async fn every_header_is_on_a_success_and_on_a_404() {
        for (path, status) in [("/", StatusCode::OK), ("/missing", StatusCode::NOT_FOUND)] {
            let response = get_path(app(SecurityHeadersLayer::new()), path).await;
            assert_eq!(response.status(), status);
            assert_hardened(&response);
            assert_eq!(header(&response, "content-security-policy"), Some(API_CSP));
            assert_eq!(header(&response, "cache-control"), Some("no-store"));
            assert_eq!(header(&response, "strict-transport-security"), None);
        }
    }

    #[tokio::test]
    async fn a_routes_own_csp_and_cache_control_are_kept() {
        let response = get_path(app(SecurityHeadersLayer::new()), "/page").await;
        assert_hardened(&response);
        assert_eq!(header(&response, "content-security-policy"), Some(HTML_CSP));
        assert_eq!(
            header(&response, "cache-control"),
            Some("public, max-age=60")
        );
        assert_eq!(
            response
                .headers()
                .get_all("content-security-policy")
                .iter()
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn hsts_is_sent_only_when_on() {
        let on = SecurityHeadersLayer::new().with_hsts(true);
        for path in ["/", "/missing"] {
            let response = get_path(app(on), path).await;
            assert_eq!(header(&response, "strict-transport-security"), Some(HSTS));
        }
        let off = get_path(app(SecurityHeadersLayer::new().with_hsts(false)), "/").await;
        assert_eq!(header(&off, "strict-transport-security"), None);
    }

    #[tokio::test]
    async fn the_server_banner_is_removed() {
        let response = get_path(app(SecurityHeadersLayer::new()), "/banner").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(header::SERVER).is_none());
    }

    #[tokio::test]
    async fn works_over_any_service_and_body_and_overrides_weak_values() {
        let echo = service_fn(|_: Request<()>| async {
            let response = Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .header(header::X_FRAME_OPTIONS, "ALLOWALL")
                .header(header::SERVER, "a")
                .header(header::SERVER, "b")
                .body("boom".to_owned())
                .expect("response");
            Ok::<_, Infallible>(response)
        });
        let service = SecurityHeadersLayer::new().layer(echo);
        let response = service.oneshot(Request::new(())).await.expect("infallible");
        assert_hardened(&response);
        assert!(response.headers().get(header::SERVER).is_none());
        assert_eq!(response.body(), "boom");
    }
}
