//! GET /openapi.json and the interactive docs, all served by the server itself.

use reqwest::{Url, header};
use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app, spawn_app_with};
use crate::test_both;

/// Every route of the contract that the OpenAPI document must describe, with its methods.
const CONTRACT_OPERATIONS: &[(&str, &[&str])] = &[
    ("/health", &["get"]),
    ("/ready", &["get"]),
    ("/token", &["post"]),
    ("/token/refresh", &["post"]),
    ("/logout", &["post"]),
    ("/.well-known/jwks.json", &["get"]),
    ("/protected", &["get"]),
    ("/users/me", &["get"]),
    ("/users/signup", &["post"]),
    ("/admin/users", &["get", "post"]),
    ("/admin/users/{user_id}", &["patch"]),
    ("/admin/keys", &["get"]),
    ("/admin/keys/rotate", &["post"]),
    ("/items/", &["get", "post"]),
    ("/items/{item_id}", &["get", "put", "delete"]),
    ("/items/{item_id}/view", &["get"]),
];

async fn openapi(app: &crate::helpers::TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    response.json().await.expect("JSON document")
}

/// The `src` and `href` attribute values of an HTML page (enough for Swagger UI's index page).
fn referenced_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=", "href="] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            let value = &rest[1..];
            if let Some(end) = value.find(quote) {
                urls.push(value[..end].to_owned());
            }
        }
    }
    urls
}

async fn openapi_json_is_an_openapi_3_1_document(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let doc = openapi(&app).await;

    // Assert
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    assert!(doc["info"]["title"].is_string());
}
test_both!(openapi_json_is_an_openapi_3_1_document);

async fn openapi_json_covers_every_contract_route(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let doc = openapi(&app).await;

    // Assert
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in CONTRACT_OPERATIONS {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        for method in *methods {
            assert!(
                item.get(*method).is_some(),
                "{} {path} is missing",
                method.to_uppercase()
            );
        }
    }
}
test_both!(openapi_json_covers_every_contract_route);

async fn openapi_json_declares_oauth2_password_bearer_and_session_cookie_schemes(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let doc = openapi(&app).await;

    // Assert
    let schemes: Vec<&Value> = doc["components"]["securitySchemes"]
        .as_object()
        .expect("securitySchemes")
        .values()
        .collect();
    assert!(
        schemes
            .iter()
            .any(|s| s["type"] == "oauth2" && s["flows"]["password"]["tokenUrl"] == "/token"),
        "an OAuth2 password flow with tokenUrl /token: {schemes:?}"
    );
    assert!(
        schemes.iter().any(|s| s["type"] == "http"
            && s["scheme"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("bearer"))),
        "an HTTP bearer scheme: {schemes:?}"
    );
    assert!(
        schemes
            .iter()
            .any(|s| s["type"] == "apiKey" && s["in"] == "cookie" && s["name"] == "session"),
        "the session cookie: {schemes:?}"
    );
}
test_both!(openapi_json_declares_oauth2_password_bearer_and_session_cookie_schemes);

async fn openapi_json_marks_protected_operations_as_secured_and_login_as_a_form(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let doc = openapi(&app).await;

    // Assert
    for (path, method) in [
        ("/protected", "get"),
        ("/users/me", "get"),
        ("/admin/users", "get"),
        ("/admin/keys", "get"),
        ("/items/", "post"),
    ] {
        let security = doc["paths"][path][method]["security"].as_array();
        assert!(
            security.is_some_and(|s| !s.is_empty()),
            "{method} {path} declares no security"
        );
    }
    let token_body = &doc["paths"]["/token"]["post"]["requestBody"]["content"];
    assert!(
        token_body
            .get("application/x-www-form-urlencoded")
            .is_some(),
        "POST /token takes a form: {token_body}"
    );
}
test_both!(openapi_json_marks_protected_operations_as_secured_and_login_as_a_form);

async fn openapi_json_never_shows_a_secret_or_an_example_password_hash(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let text = app.get("/openapi.json", None).await.text().await.unwrap();

    // Assert
    let key = app.state.keys.ring().active().expect("active key");
    let hex: String = key
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!text.contains(&hex));
    assert!(!text.contains("$argon2") && !text.contains("$2b$"));
    assert!(!text.contains("hashed_password") && !text.contains("password_hash"));
}
test_both!(openapi_json_never_shows_a_secret_or_an_example_password_hash);

async fn docs_page_is_html_served_by_this_server(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.get("/docs/", None).await;

    // Assert
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no absolute URL: {html}"
    );
    assert!(!html.contains("//cdn") && !html.contains("unpkg") && !html.contains("jsdelivr"));
}
test_both!(docs_page_is_html_served_by_this_server);

async fn docs_without_trailing_slash_reaches_the_docs_page(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.get("/docs", None).await;

    // Assert: the page itself, or a same-site redirect to it.
    let status = response.status().as_u16();
    if status == 200 {
        let html = response.text().await.unwrap();
        assert!(html.contains("swagger") || html.contains("Swagger"));
    } else {
        assert!((300..400).contains(&status), "status {status}");
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("Location")
            .to_owned();
        let target = Url::parse(&app.url("/docs"))
            .unwrap()
            .join(&location)
            .unwrap();
        assert_eq!(target.path(), "/docs/");
        assert_eq!(target.port(), Some(app.port), "same server");
        assert_eq!(app.get(target.path(), None).await.status(), 200);
    }
}
test_both!(docs_without_trailing_slash_reaches_the_docs_page);

async fn every_script_and_stylesheet_of_the_docs_is_served_locally(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let base = Url::parse(&app.url("/docs/")).unwrap();
    let html = app.get("/docs/", None).await.text().await.unwrap();

    // Act
    let urls = referenced_urls(&html);

    // Assert
    let scripts = urls.iter().filter(|u| u.ends_with(".js")).count();
    let styles = urls.iter().filter(|u| u.ends_with(".css")).count();
    assert!(
        scripts >= 2 && styles >= 1,
        "expected Swagger UI's files: {urls:?}"
    );
    for reference in &urls {
        assert!(
            !reference.starts_with("//"),
            "protocol-relative URL {reference}"
        );
        let url = base.join(reference).unwrap();
        assert_eq!(
            url.host_str(),
            Some("127.0.0.1"),
            "{reference} is not on this server"
        );
        assert_eq!(
            url.port(),
            Some(app.port),
            "{reference} is not on this server"
        );
        let response = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body = response.bytes().await.unwrap();
        assert!(!body.is_empty(), "{url} is empty");
    }
}
test_both!(every_script_and_stylesheet_of_the_docs_is_served_locally);

async fn the_swagger_initializer_loads_this_servers_openapi_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.get("/docs/swagger-initializer.js", None).await;

    // Assert
    assert_eq!(response.status(), 200);
    let script = response.text().await.unwrap();
    assert!(script.contains("/openapi.json"), "{script}");
    assert!(!script.contains("petstore"), "{script}");
    assert!(
        !script.contains("http://") && !script.contains("https://"),
        "{script}"
    );
}
test_both!(the_swagger_initializer_loads_this_servers_openapi_json);

async fn the_docs_page_allows_scripts_and_styles_from_this_server_only(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.get("/docs/", None).await;

    // Assert
    let csp = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .expect("a Content-Security-Policy")
        .to_owned();
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(name))
            .map(str::to_owned)
    };
    let scripts = directive("script-src")
        .or_else(|| directive("default-src"))
        .expect("script-src or default-src");
    let sources: Vec<&str> = scripts.split_whitespace().skip(1).collect();
    assert_eq!(sources, ["'self'"], "scripts only from this server: {csp}");
    let styles = directive("style-src")
        .or_else(|| directive("default-src"))
        .expect("style-src");
    let sources: Vec<&str> = styles.split_whitespace().skip(1).collect();
    assert_eq!(sources, ["'self'"], "styles only from this server: {csp}");
    assert!(
        !csp.contains("'unsafe-inline'") && !csp.contains("'unsafe-eval'"),
        "no inline script or style, no eval: {csp}"
    );
    assert!(
        !csp.contains("'unsafe-hashes'") && !csp.contains("'sha") && !csp.contains("'nonce-"),
        "no hash or nonce exception: {csp}"
    );
    for name in [
        "script-src-elem",
        "script-src-attr",
        "style-src-elem",
        "style-src-attr",
    ] {
        assert!(directive(name).is_none(), "no {name}: {csp}");
    }
}
test_both!(the_docs_page_allows_scripts_and_styles_from_this_server_only);

async fn the_docs_page_has_no_inline_script_or_style(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let html = app.get("/docs/", None).await.text().await.unwrap();

    // Assert: every <script> has a src, and no <style> element or attribute (the CSP would
    // block them).
    let lower = html.to_ascii_lowercase();
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').expect("a closed tag")];
        assert!(tag.contains(" src="), "an inline script: {html}");
    }
    assert!(!lower.contains("<style"), "an inline <style>: {html}");
    assert!(!lower.contains(" style="), "a style attribute: {html}");
}
test_both!(the_docs_page_has_no_inline_script_or_style);

async fn the_swagger_logo_is_an_image_without_inline_style(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let initializer = app
        .get("/docs/swagger-initializer.js", None)
        .await
        .text()
        .await
        .unwrap();
    let response = app.get("/docs/swagger-logo.svg", None).await;

    // Assert: Swagger UI's own logo (an inline SVG with a <style>) is replaced by this image.
    assert!(
        initializer.contains("Logo:") && initializer.contains("./swagger-logo.svg"),
        "{initializer}"
    );
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("image/svg+xml")
    );
    let svg = response.text().await.unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(!svg.contains("<style") && !svg.contains("style="), "{svg}");
}
test_both!(the_swagger_logo_is_an_image_without_inline_style);

async fn docs_off_answers_404_for_the_page_and_the_document(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.docs = false).await;

    // Act / Assert
    for path in [
        "/docs/",
        "/docs",
        "/docs/swagger-initializer.js",
        "/docs/swagger-logo.svg",
        "/openapi.json",
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"detail": "Not Found"}),
            "{path}"
        );
    }
    assert_eq!(
        app.get("/health", None).await.status(),
        200,
        "the API itself still answers"
    );
}
test_both!(docs_off_answers_404_for_the_page_and_the_document);

/// Every `description` in `value`, with its JSON path.
fn descriptions<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("description", Value::String(text)) => out.push((path.clone(), text)),
                    _ => descriptions(item, format!("{path}/{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                descriptions(item, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Regression: `>= 0` at the start of a parameter's description rendered on /docs as a
/// Markdown quote ("= 0, default 0."). No description line starts with Markdown syntax that
/// would change what it says.
async fn no_description_line_renders_as_markdown_syntax(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let doc = openapi(&app).await;

    // Assert
    let mut found = Vec::new();
    descriptions(&doc, String::new(), &mut found);
    assert!(!found.is_empty());
    for (path, text) in found {
        for line in text.lines() {
            let line = line.trim_start();
            assert!(
                !(line.starts_with('>') || line.starts_with("<=") || line.starts_with("= ")),
                "{path}: {text:?}"
            );
        }
    }
}
test_both!(no_description_line_renders_as_markdown_syntax);
