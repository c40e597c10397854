//! The server answers what /openapi.json says it answers: every status it sends is listed for
//! its operation with the contract's error body, and the documented constraints of inputs are
//! the ones the server enforces. Schemathesis (`reliability/schemathesis.sh`) checks this at
//! large; these tests pin each mismatch it found.

use regex::Regex;
use reqwest::{Response, header};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, INVALID_TOKEN, PASSWORD, TestApp, assert_unauthorized, spawn_app, spawn_app_with,
};
use crate::test_both;

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON document")
}

/// Asserts that `response` has a status documented for `method path`, with a body of the
/// documented schema (for errors: the contract's `{"detail": ...}`), and returns the status.
async fn assert_documented(doc: &Value, method: &str, path: &str, response: Response) -> u16 {
    let status = response.status().as_u16();
    let documented = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which its documentation does not list"
    );
    if status >= 400 {
        let schema = documented["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default();
        let body: Value = response.json().await.expect("an error body is JSON");
        if status == 422 {
            assert_eq!(schema, "#/components/schemas/HTTPValidationError");
            assert!(body["detail"].is_array(), "{body}");
        } else {
            assert_eq!(schema, "#/components/schemas/HTTPError");
            assert!(body["detail"].is_string(), "{body}");
        }
    }
    status
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            found.push((method.clone(), path.clone(), op.clone()));
        }
    }
    found
}

async fn every_response_is_described_and_every_error_has_the_contracts_body(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let doc = document(&app).await;

    // Assert
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let description = response["description"].as_str().unwrap_or_default();
            assert!(
                !description.is_empty(),
                "{method} {path} {status}: no description"
            );
            if !status.starts_with('4') && !status.starts_with('5') {
                continue;
            }
            let expected = if status == "422" {
                "#/components/schemas/HTTPValidationError"
            } else {
                "#/components/schemas/HTTPError"
            };
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"], expected,
                "{method} {path} {status}"
            );
        }
        if let Some(unauthorized) = responses.get("401") {
            assert!(
                unauthorized["headers"]["WWW-Authenticate"].is_object(),
                "{method} {path}"
            );
        }
        // Every route is rate limited but the probes, which never are (contract v1.2).
        if matches!(path.as_str(), "/health" | "/ready") {
            assert!(responses.get("429").is_none(), "{method} {path}");
        } else {
            let limited = responses
                .get("429")
                .expect("every other route is rate limited");
            assert!(
                limited["headers"]["Retry-After"].is_object(),
                "{method} {path}"
            );
        }
        if op.get("requestBody").is_some() {
            for status in ["413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} takes a body but does not list {status}"
                );
            }
        }
    }
    for name in ["HTTPError", "HTTPValidationError", "ValidationError"] {
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
}
test_both!(every_response_is_described_and_every_error_has_the_contracts_body);

async fn a_body_without_its_content_type_answers_a_documented_415(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.allow_signup = true).await;
    let doc = document(&app).await;
    let (_, admin) = app.user_with_token("boss", &["admin"]).await;

    // Act / Assert: schemathesis sent these without a body at all. JSON bodies: 415; forms
    // (POST /login, like /token): an empty form, 422 for each missing field (contract v1.2).
    for (method, path, token, expected) in [
        ("post", "/login", None, 422),
        ("post", "/users/signup", None, 415),
        ("post", "/admin/users", Some(&admin), 415),
        ("patch", "/admin/users/1", Some(&admin), 415),
    ] {
        let mut request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let documented_path = path.replace("/1", "/{user_id}");
        let status = assert_documented(&doc, method, &documented_path, response).await;
        assert_eq!(status, expected, "{method} {path}");
    }
}
test_both!(a_body_without_its_content_type_answers_a_documented_415);

async fn an_unsafe_request_with_a_session_cookie_and_no_csrf_token_answers_a_documented_403(
    backend: Backend,
) {
    // Arrange: a stray (here: invalid) session cookie and no bearer token, as schemathesis sent.
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let item = json!({"name": "Hat", "price": 1.0});

    // Act / Assert
    for (method, path, documented_path) in [
        ("POST", "/items/", "/items/"),
        ("PUT", "/items/1", "/items/{item_id}"),
        ("DELETE", "/items/1", "/items/{item_id}"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header(header::COOKIE, "session=not-a-token")
            .json(&item)
            .send()
            .await
            .unwrap();
        let status =
            assert_documented(&doc, &method.to_lowercase(), documented_path, response).await;
        assert_eq!(status, 403, "{method} {path}");
    }
}
test_both!(an_unsafe_request_with_a_session_cookie_and_no_csrf_token_answers_a_documented_403);

async fn an_oversized_body_and_a_rate_limited_request_answer_documented_statuses(backend: Backend) {
    // Arrange
    // Anonymous requests share the client IP's budget: /openapi.json, then two of the JWKS
    // (/health and /ready are never limited).
    let app = spawn_app_with(backend, |s| {
        s.rate_limits.default = "3/minute".parse().unwrap()
    })
    .await;
    let doc = document(&app).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let huge = json!({"name": "Hat", "price": 1.0, "description": "x".repeat(1024 * 1024)});

    // Act
    let too_large = app.create_item(&token, &huge).await;
    let first = app.get("/.well-known/jwks.json", None).await;
    let second = app.get("/.well-known/jwks.json", None).await;
    let limited = app.get("/.well-known/jwks.json", None).await;

    // Assert
    assert_eq!(
        assert_documented(&doc, "post", "/items/", too_large).await,
        413
    );
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    assert!(limited.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(
        assert_documented(&doc, "get", "/.well-known/jwks.json", limited).await,
        429
    );
}
test_both!(an_oversized_body_and_a_rate_limited_request_answer_documented_statuses);

/// The `pattern` of a body property of a component schema (or of its array's items).
fn pattern(doc: &Value, schema: &str, property: &str) -> Regex {
    let property = &doc["components"]["schemas"][schema]["properties"][property];
    let pattern = property["pattern"]
        .as_str()
        .or_else(|| property["items"]["pattern"].as_str())
        .unwrap_or_else(|| panic!("{schema}.{property} documents no pattern"));
    Regex::new(pattern).expect("a pattern the regex crate reads")
}

async fn item_names_and_descriptions_are_refused_exactly_when_their_pattern_says_so(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let name = pattern(&doc, "ItemBody", "name");
    let description = pattern(&doc, "ItemBody", "description");

    // Act / Assert
    for candidate in [
        "Hat",
        "émoji 🎩",
        "tab\there",
        "nul\u{0}",
        "del\u{7f}",
        "c1\u{85}",
    ] {
        let response = app
            .create_item(&token, &json!({"name": candidate, "price": 1.0}))
            .await;
        assert_eq!(
            response.status() == 201,
            name.is_match(candidate),
            "name {candidate:?}: {}",
            response.status()
        );
    }
    for candidate in ["<p>fine</p>", "line\nbreak", "nul\u{0}"] {
        let response = app
            .create_item(
                &token,
                &json!({"name": "Hat", "price": 1.0, "description": candidate}),
            )
            .await;
        assert_eq!(
            response.status() == 201,
            description.is_match(candidate),
            "description {candidate:?}: {}",
            response.status()
        );
    }
}
test_both!(item_names_and_descriptions_are_refused_exactly_when_their_pattern_says_so);

async fn usernames_and_roles_are_refused_exactly_when_their_pattern_says_so(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let (_, admin) = app.user_with_token("boss", &["admin"]).await;
    let username = pattern(&doc, "AdminCreateUserBody", "username");
    let role = pattern(&doc, "AdminCreateUserBody", "roles");
    let patch_role = pattern(&doc, "PatchUserBody", "roles");
    assert_eq!(role.as_str(), patch_role.as_str());

    // Act / Assert
    for candidate in ["bob", "a.b-c_d", "ab", "has space", "ünï", &"x".repeat(65)] {
        let body = json!({"username": candidate, "password": PASSWORD});
        let response = app.post_json("/admin/users", Some(&admin), &body).await;
        assert_eq!(
            response.status() == 201,
            username.is_match(candidate),
            "username {candidate:?}: {}",
            response.status()
        );
    }
    for (i, candidate) in ["editor", "a", "Admin", "9x", "x y", &"r".repeat(33)]
        .iter()
        .enumerate()
    {
        let body =
            json!({"username": format!("user{i}"), "password": PASSWORD, "roles": [candidate]});
        let response = app.post_json("/admin/users", Some(&admin), &body).await;
        assert_eq!(
            response.status() == 201,
            role.is_match(candidate),
            "role {candidate:?}: {}",
            response.status()
        );
    }
}
test_both!(usernames_and_roles_are_refused_exactly_when_their_pattern_says_so);

async fn login_forms_document_that_empty_fields_count_as_missing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let empty = app.login("alice", "").await;
    let wrong_grant = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(empty.status(), 422, "an empty password is missing");
    for schema in ["LoginForm", "BrowserLogin"] {
        for field in ["username", "password"] {
            assert_eq!(
                doc["components"]["schemas"][schema]["properties"][field]["minLength"], 1,
                "{schema}.{field}"
            );
        }
    }
    assert_eq!(wrong_grant.status(), 422);
    let grant = pattern(&doc, "LoginForm", "grant_type");
    assert!(grant.is_match("password") && !grant.is_match("client_credentials"));
    // A form has no null: optional fields are plain strings.
    for (schema, field) in [
        ("LoginForm", "grant_type"),
        ("LoginForm", "scope"),
        ("BrowserLogin", "csrf_token"),
    ] {
        assert_eq!(
            doc["components"]["schemas"][schema]["properties"][field]["type"], "string",
            "{schema}.{field}"
        );
    }
}
test_both!(login_forms_document_that_empty_fields_count_as_missing);

async fn refresh_is_documented_and_served_as_json_and_as_a_form(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let pair: Value = app.login("alice", PASSWORD).await.json().await.unwrap();

    // Act
    let response = app
        .client
        .post(app.url("/token/refresh"))
        .form(&[("refresh_token", pair["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let content = &doc["paths"]["/token/refresh"]["post"]["requestBody"]["content"];
    assert!(content["application/json"].is_object(), "{content}");
    assert!(
        content["application/x-www-form-urlencoded"].is_object(),
        "{content}"
    );
}
test_both!(refresh_is_documented_and_served_as_json_and_as_a_form);

async fn audit_times_are_documented_as_unix_seconds_or_rfc_3339(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let (_, admin) = app.user_with_token("boss", &["admin"]).await;

    // Act / Assert
    let parameters = doc["paths"]["/admin/audit"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    for name in ["since", "until"] {
        let schema = &parameters
            .iter()
            .find(|p| p["name"] == name)
            .expect("parameter")["schema"];
        assert_eq!(
            schema["oneOf"],
            json!([
                {"type": "integer", "format": "int64", "description": "Unix seconds"},
                {"type": "string", "format": "date-time", "description": "RFC 3339"},
            ]),
            "{name}"
        );
    }
    for (query, status) in [
        ("since=1700000000", 200),
        ("since=2024-01-01T00:00:00Z", 200),
        ("until=2024-01-01T00:00:00.123456%2B05:30", 200),
        ("since=", 422),
        ("until=yesterday", 422),
    ] {
        let response = app
            .get(&format!("/admin/audit?{query}"), Some(&admin))
            .await;
        assert_eq!(response.status(), status, "{query}");
    }
}
test_both!(audit_times_are_documented_as_unix_seconds_or_rfc_3339);

/// Every operation the document says requires authentication refuses a request without
/// credentials, or with a token that does not verify, with the extractor's 401 (the pipeline
/// answers those before routing: `bulwark_server::guard`); an operation without that
/// requirement is not refused for a bad token.
async fn unauthenticated_requests_get_the_same_401_on_every_protected_operation(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let garbage = "garbage.not-a.jwt";
    // Shaped like a JWT, signed by no key of this server.
    let forged = "eyJhbGciOiJIUzI1NiIsImtpZCI6Im5vLXN1Y2gta2V5In0.eyJzdWIiOiIxIn0.c2ln";
    let parameter = Regex::new(r"\{[^}]+\}").expect("regex");
    let (mut protected, mut open) = (0, 0);

    for (method, path, op) in operations(&doc) {
        let requires = op["security"].as_array().is_some_and(|alternatives| {
            !alternatives.is_empty()
                && alternatives
                    .iter()
                    .all(|a| a.as_object().is_some_and(|o| !o.is_empty()))
        });
        let concrete = parameter.replace_all(&path, "1").into_owned();
        let send = |token: Option<&str>| {
            let mut request = app.client.request(
                method.to_uppercase().parse().expect("method"),
                app.url(&concrete),
            );
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };

        // Act
        let anonymous = send(None).await.expect("request");
        let bad = send(Some(garbage)).await.expect("request");
        let unverified = send(Some(forged)).await.expect("request");

        // Assert
        if requires {
            protected += 1;
            assert_unauthorized(anonymous, "Not authenticated").await;
            assert_unauthorized(bad, INVALID_TOKEN).await;
            assert_unauthorized(unverified, INVALID_TOKEN).await;
        } else {
            open += 1;
            assert_ne!(bad.status(), 401, "{method} {path}");
        }
    }
    assert!(
        protected >= 15 && open >= 5,
        "{protected} protected, {open} open"
    );
}
test_both!(unauthenticated_requests_get_the_same_401_on_every_protected_operation);
