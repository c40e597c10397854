use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::Query,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect},
    routing::{get, post},
};
use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::{
    api::BodyKind,
    checks::injection::test_api::{api, body, op, query, with},
    testing::{context, serve},
};

fn found(outcome: &Outcome, id: CheckId) -> Vec<Finding> {
    match outcome {
        Outcome::Found(f) => f.iter().filter(|f| f.id == id).cloned().collect(),
        _ => Vec::new(),
    }
}

fn get_param(p: &HashMap<String, String>, name: &str) -> String {
    p.get(name).cloned().unwrap_or_default()
}

#[tokio::test]
async fn open_redirects_are_found_in_location_and_meta_refresh() {
    let app = Router::new()
        .route(
            "/vuln/login",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                Redirect::to(&get_param(&p, "next")).into_response()
            }),
        )
        .route(
            "/vuln/bounce",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                Html(format!(
                    "<html><head><meta http-equiv=\"refresh\" content=\"0; url={}\"></head></html>",
                    get_param(&p, "returnTo")
                ))
            }),
        )
        .route(
            "/safe/login",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                let next = get_param(&p, "next");
                let next = if next.starts_with('/') && !next.starts_with("//") {
                    next
                } else {
                    "/".into()
                };
                Redirect::to(&next).into_response()
            }),
        )
        .route(
            "/safe/bounce",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                // A link to the URL is not a redirect.
                Html(format!(
                    "<a href=\"{}\">continue</a>",
                    get_param(&p, "returnTo")
                ))
            }),
        );
    let url = serve(app).await;
    let the_api = |prefix: &str| {
        api(vec![
            with(
                op(Method::GET, &format!("/{prefix}/login")),
                vec![query("next")],
            ),
            with(
                op(Method::GET, &format!("/{prefix}/bounce")),
                vec![query("returnTo")],
            ),
        ])
    };
    let cx = context(&url, Some(the_api("vuln")), &[]);
    let outcome = open_redirect(&cx).await;
    let f = found(&outcome, CheckId::OpenRedirect);
    assert_eq!(f.len(), 2, "{outcome:?}");
    assert!(
        f.iter().any(|f| f
            .evidence
            .response
            .contains("[redirect] Location: https://bwk-redirect.example/")),
        "{f:?}"
    );

    let cx = context(&url, Some(the_api("safe")), &[]);
    let outcome = open_redirect(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

async fn fetch(url: &str) -> String {
    // A minimal HTTP/1.1 GET (the test app's "fetch a preview" feature).
    let Ok(parsed) = url::Url::parse(url) else {
        return "bad url".into();
    };
    let addr = format!(
        "{}:{}",
        parsed.host_str().unwrap_or_default(),
        parsed.port_or_known_default().unwrap_or(80)
    );
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return "unreachable".into();
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        parsed.path()
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn ssrf_is_found_by_a_canary_listener() {
    let app = Router::new()
        .route(
            "/vuln/preview",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                fetch(&get_param(&p, "url")).await
            }),
        )
        .route(
            "/vuln/webhooks/verify",
            post(|Json(b): Json<Value>| async move {
                // Fetched in the background, after the answer.
                let target = b["callback_url"].as_str().unwrap_or_default().to_owned();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    fetch(&target).await;
                });
                StatusCode::ACCEPTED
            }),
        )
        .route(
            "/safe/preview",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                let u = get_param(&p, "url");
                if u.starts_with("https://cdn.example/") {
                    "fetched".into_response()
                } else {
                    (StatusCode::BAD_REQUEST, "host not allowed").into_response()
                }
            }),
        );
    let url = serve(app).await;
    let mut hook = op(Method::POST, "/vuln/webhooks/verify");
    hook.body = Some(body(
        BodyKind::Json,
        json!({"type": "object", "properties": {"callback_url": {"type": "string", "format": "uri"}}}),
    ));
    let vuln = api(vec![
        with(op(Method::GET, "/vuln/preview"), vec![query("url")]),
        hook,
    ]);
    let cx = context(&url, Some(vuln), &[]);
    let outcome = ssrf(&cx).await;
    let f = found(&outcome, CheckId::Ssrf);
    assert_eq!(f.len(), 2, "{outcome:?}");
    assert!(
        f.iter()
            .any(|f| f.operation == "POST /vuln/webhooks/verify"),
        "{f:?}"
    );
    assert!(f[0].evidence.response.contains("[canary]"), "{f:?}");

    let safe = api(vec![with(
        op(Method::GET, "/safe/preview"),
        vec![query("url")],
    )]);
    let cx = context(&url, Some(safe), &[]);
    let outcome = ssrf(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");

    // Not on loopback: skipped (the canary would be out of reach).
    let cx = context("http://10.0.0.1:9/", Some(api(vec![])), &[]);
    assert!(matches!(ssrf(&cx).await, Outcome::Skipped(_)));
}
