use std::sync::Arc;

use axum::{
    Json, Router,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::testing::{context, serve};

fn titles(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Found(f) => f.iter().map(|f| f.title.clone()).collect(),
        _ => Vec::new(),
    }
}

async fn reflecting(headers: HeaderMap) -> Response {
    let mut r = Json(json!({"items": []})).into_response();
    if let Some(origin) = headers.get("origin") {
        r.headers_mut()
            .insert("access-control-allow-origin", origin.clone());
        r.headers_mut().insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
    }
    r
}

#[tokio::test]
async fn a_reflected_origin_with_credentials_is_a_finding() {
    let url = serve(Router::new().route("/", get(reflecting).options(reflecting))).await;
    let cx = context(&url, None, &[]);
    let outcome = cors_credentials_wildcard(&cx).await;
    let t = titles(&outcome);
    assert!(t.iter().any(|t| t.contains("reflected")), "{outcome:?}");
    assert!(t.iter().any(|t| t.contains("null")), "{outcome:?}");
    let Outcome::Found(found) = outcome else {
        unreachable!()
    };
    assert!(
        found
            .iter()
            .all(|f| f.id == CheckId::CorsCredentialsWildcard)
    );
    assert!(found[0].evidence.response.contains(EVIL_ORIGIN));
}

#[tokio::test]
async fn a_wildcard_with_credentials_is_a_finding() {
    async fn h() -> impl IntoResponse {
        (
            [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-credentials", "true"),
            ],
            "{}",
        )
    }
    let url = serve(Router::new().route("/", get(h))).await;
    let cx = context(&url, None, &[]);
    let t = titles(&cors_credentials_wildcard(&cx).await);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(t[0].contains("* is sent with"), "{t:?}");
}

#[tokio::test]
async fn a_reflecting_preflight_alone_is_a_finding() {
    let url = serve(Router::new().route("/", get(|| async { "{}" }).options(reflecting))).await;
    let cx = context(&url, None, &[]);
    assert!(!titles(&cors_credentials_wildcard(&cx).await).is_empty());
}

#[tokio::test]
async fn an_allow_list_or_a_wildcard_without_credentials_passes() {
    async fn listed(headers: HeaderMap) -> Response {
        let mut r = Json(json!({})).into_response();
        if headers
            .get("origin")
            .is_some_and(|o| o == "https://app.example")
        {
            r.headers_mut().insert(
                "access-control-allow-origin",
                HeaderValue::from_static("https://app.example"),
            );
            r.headers_mut().insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
        }
        r
    }
    async fn public() -> impl IntoResponse {
        ([("access-control-allow-origin", "*")], "{}")
    }
    for app in [
        Router::new().route("/", get(listed).options(listed)),
        Router::new().route("/", get(public).options(public)),
    ] {
        let url = serve(app).await;
        let cx = context(&url, None, &[]);
        let outcome = cors_credentials_wildcard(&cx).await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
        assert_eq!(cx.probe.sent(), 4);
    }
}

fn bare_app() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { ([("server", "nginx/1.25.3")], Json(json!({"ok": true}))) }),
        )
        // Like Bulwark's: `/docs` redirects to the page.
        .route(
            "/docs",
            get(|| async { axum::response::Redirect::to("/docs/") }),
        )
        .route(
            "/docs/",
            get(|| async { Html("<html><body>docs</body></html>") }),
        )
}

async fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert("server", HeaderValue::from_static("uvicorn"));
    r
}

#[tokio::test]
async fn missing_headers_are_one_finding_each() {
    let url = serve(bare_app()).await;
    let cx = context(&url, None, &[]);
    let outcome = security_headers(&cx).await;
    let t = titles(&outcome);
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(t.contains(&"X-Content-Type-Options: nosniff is missing".to_owned()));
    assert!(t.iter().any(|t| t.contains("framed")));
    assert!(t.contains(&"The Server header reveals a version: nginx/1.25.3".to_owned()));
    let Outcome::Found(found) = outcome else {
        unreachable!()
    };
    assert!(
        found
            .iter()
            .all(|f| f.id == CheckId::SecurityHeaders && f.operation == "*")
    );
    let framing = found.iter().find(|f| f.title.contains("framed")).unwrap();
    assert!(
        framing.evidence.request.starts_with("GET /docs/"),
        "{framing:?}"
    );
    assert_eq!(cx.probe.sent(), 4);
}

#[tokio::test]
async fn hardened_answers_pass() {
    let app = bare_app().layer(axum::middleware::map_response(hardened));
    let url = serve(app).await;
    let cx = context(&url, None, &[]);
    let outcome = security_headers(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

#[test]
fn version_banners() {
    for v in [
        "nginx/1.25.3",
        "Apache/2.4.41 (Ubuntu)",
        "PHP/8.2",
        "Microsoft-IIS/10.0",
        "Kestrel 2.1",
    ] {
        assert!(reveals_version(v), "{v}");
    }
    for v in ["uvicorn", "nginx", "Express", "cloudflare", "AmazonS3"] {
        assert!(!reveals_version(v), "{v}");
    }
}

#[tokio::test]
async fn plain_http_on_loopback_passes() {
    let url = serve(Router::new()).await;
    let cx = context(&url, None, &[]);
    let outcome = tls(&cx).await;
    assert!(
        matches!(&outcome, Outcome::Passed(Some(n)) if n.contains("loopback")),
        "{outcome:?}"
    );
    assert_eq!(cx.probe.sent(), 0);
}

#[tokio::test]
async fn plain_http_to_another_host_is_a_finding() {
    // Nothing is sent: the scheme is the evidence.
    let cx = context("http://10.255.255.1:9/", None, &[]);
    let Outcome::Found(found) = tls(&cx).await else {
        panic!("expected a finding");
    };
    assert_eq!(found[0].id, CheckId::Tls);
    assert!(found[0].title.contains("plain HTTP"));
}

/// A rustls server on loopback that speaks TLS 1.2 and 1.3 only; its port.
async fn rustls_server() -> u16 {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    let cert = generated.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_tls_1_2_and_1_3_server_passes() {
    let port = rustls_server().await;
    let cx = context(&format!("https://127.0.0.1:{port}/"), None, &[]);
    let outcome = tls(&cx).await;
    assert!(
        matches!(&outcome, Outcome::Passed(Some(n)) if n.contains("refused")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn the_hand_built_hello_completes_with_a_real_server_when_it_offers_tls_1_2() {
    // The same hello, offered up to TLS 1.2, is one a real TLS stack accepts: the bytes are right.
    let port = rustls_server().await;
    let answer = hello::probe(
        hello::TLS12,
        "127.0.0.1",
        port,
        None,
        Duration::from_secs(5),
    )
    .await
    .expect("answer");
    assert_eq!(answer, hello::Answer::ServerHello(hello::TLS12));
}

#[tokio::test]
async fn a_server_that_negotiates_tls_1_1_is_a_finding() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(&hello::server_hello(hello::TLS11)).await;
        }
    });
    let cx = context(&format!("https://127.0.0.1:{port}/"), None, &[]);
    let Outcome::Found(found) = tls(&cx).await else {
        panic!("expected a finding");
    };
    assert!(found[0].title.contains("TLS 1.1"), "{}", found[0].title);
    assert_eq!(found[0].evidence.response, "ServerHello: TLS 1.1");
}

#[tokio::test]
async fn an_https_target_that_speaks_plain_http_is_skipped() {
    let url = serve(Router::new().fallback(|| async { StatusCode::NOT_FOUND })).await;
    let https = url.replace("http://", "https://");
    let cx = context(&https, None, &[]);
    let outcome = tls(&cx).await;
    assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
}
