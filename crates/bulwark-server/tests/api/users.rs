//! The caller's profile, signup, user administration and the key list.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    BAD_CREDENTIALS, Backend, INVALID_TOKEN, PASSWORD, TestApp, assert_unauthorized,
    json_with_status, key_encodings, only_error_with_text, spawn_app, spawn_app_with,
};
use crate::test_both;

const NEW_PASSWORD: &str = "quiet-Meadow-58-lantern";

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort_unstable();
    keys
}

/// Asserts that `user` has exactly the contract's fields, with these values.
fn assert_user(user: &Value, id: Option<i64>, username: &str, roles: &[&str], disabled: bool) {
    assert_eq!(
        sorted_keys(user),
        [
            "created_at",
            "disabled",
            "email",
            "email_verified",
            "id",
            "roles",
            "username"
        ],
        "{user}"
    );
    if let Some(id) = id {
        assert_eq!(user["id"], json!(id));
    } else {
        assert!(user["id"].is_i64(), "{user}");
    }
    assert_eq!(user["username"], json!(username));
    assert_eq!(user["roles"], json!(roles));
    assert_eq!(user["disabled"], json!(disabled));
    let created = user["created_at"].as_str().expect("created_at is a string");
    time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
        .expect("created_at is RFC 3339");
}

/// Asserts that no key or value of the body looks like a password or its hash.
fn assert_no_credentials(text: &str) {
    for needle in [
        "$argon2", "$2b$", "$2a$", "$2y$", "password", "hash", PASSWORD,
    ] {
        assert!(!text.contains(needle), "body carries {needle:?}: {text}");
    }
}

async fn signup_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.allow_signup = true).await
}

async fn me_returns_the_callers_profile_and_never_a_hash(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (id, token) = app.user_with_token("alice", &["editor"]).await;

    // Act
    let response = app.get("/users/me", Some(&token)).await;

    // Assert
    let text = {
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    assert_no_credentials(&text);
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_user(&user, Some(id), "alice", &["editor"], false);
}
test_both!(me_returns_the_callers_profile_and_never_a_hash);

async fn me_without_a_token_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.get("/users/me", None).await;

    // Assert
    assert_unauthorized(response, "Not authenticated").await;
}
test_both!(me_without_a_token_is_401);

async fn signup_is_404_by_default(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "carol", "password": PASSWORD}),
        )
        .await;

    // Assert
    assert_eq!(
        json_with_status(response, 404).await,
        json!({"detail": "Not Found"})
    );
    assert_unauthorized(app.login("carol", PASSWORD).await, BAD_CREDENTIALS).await;
}
test_both!(signup_is_404_by_default);

async fn signup_when_off_is_404_whatever_the_body(backend: Backend) {
    // Arrange: a closed route must not reveal its body rules either.
    let app = spawn_app(backend).await;

    // Act
    let bad_json = app
        .client
        .post(app.url("/users/signup"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let empty_object = app.post_json("/users/signup", None, &json!({})).await;
    let form = app
        .client
        .post(app.url("/users/signup"))
        .form(&[("username", "carol"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();

    // Assert
    for response in [bad_json, empty_object, form] {
        assert_eq!(
            json_with_status(response, 404).await,
            json!({"detail": "Not Found"})
        );
    }
}
test_both!(signup_when_off_is_404_whatever_the_body);

async fn signup_when_allowed_creates_a_user_without_roles(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;

    // Act
    let response = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "carol", "password": PASSWORD}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert_no_credentials(&text);
    assert_user(
        &serde_json::from_str(&text).unwrap(),
        None,
        "carol",
        &[],
        false,
    );
    assert_eq!(app.login("carol", PASSWORD).await.status(), 200);
}
test_both!(signup_when_allowed_creates_a_user_without_roles);

async fn signup_of_an_existing_username_in_any_case_is_409(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;
    app.create_user("Carol", PASSWORD, &[]).await;

    // Act
    let same = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "Carol", "password": NEW_PASSWORD}),
        )
        .await;
    let other_case = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "cAROL", "password": NEW_PASSWORD}),
        )
        .await;

    // Assert
    for response in [same, other_case] {
        assert_eq!(
            json_with_status(response, 409).await,
            json!({"detail": "Username already exists"})
        );
    }
    assert_unauthorized(app.login("carol", NEW_PASSWORD).await, BAD_CREDENTIALS).await;
    assert_eq!(
        app.login("carol", PASSWORD).await.status(),
        200,
        "the first account is untouched"
    );
}
test_both!(signup_of_an_existing_username_in_any_case_is_409);

async fn signup_rejects_usernames_outside_the_rules_with_422(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;
    let cases = [
        ("ab".to_owned(), "string_too_short"),
        ("x".repeat(65), "string_too_long"),
        ("bad name".to_owned(), "string_pattern_mismatch"),
        ("semi;colon".to_owned(), "string_pattern_mismatch"),
        ("ünïcode".to_owned(), "string_pattern_mismatch"),
        ("a'--".to_owned(), "string_pattern_mismatch"),
    ];

    // Act / Assert
    for (username, kind) in cases {
        let response = app
            .post_json(
                "/users/signup",
                None,
                &json!({"username": username, "password": PASSWORD}),
            )
            .await;
        let (detail, text) = only_error_with_text(response).await;
        assert_eq!(detail["type"], kind, "{username}");
        assert_eq!(detail["loc"], json!(["body", "username"]), "{username}");
        assert!(!text.contains(PASSWORD), "{text}");
    }
    let edge = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "x".repeat(64), "password": PASSWORD}),
        )
        .await;
    assert_eq!(edge.status(), 201, "64 characters are allowed");
    let short_edge = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "a.b", "password": PASSWORD}),
        )
        .await;
    assert_eq!(short_edge.status(), 201, "3 characters are allowed");
}
test_both!(signup_rejects_usernames_outside_the_rules_with_422);

async fn signup_rejects_weak_passwords_with_422_without_echoing_them(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;
    let cases = [
        ("Sh0rt-pass!".to_owned(), "string_too_short"),
        (format!("{}-9", "Long-Secret".repeat(12)), "string_too_long"),
        ("password1234".to_owned(), "password_common"),
        ("Iloveyou1234".to_owned(), "password_common"),
        ("aaaaaaaaaaaa".to_owned(), "password_weak"),
        ("carolcarol12".to_owned(), "password_weak"),
    ];

    // Act / Assert
    for (password, kind) in cases {
        let response = app
            .post_json(
                "/users/signup",
                None,
                &json!({"username": "carol", "password": password}),
            )
            .await;
        let (detail, text) = only_error_with_text(response).await;
        assert_eq!(detail["type"], kind, "{password}");
        assert_eq!(detail["loc"], json!(["body", "password"]), "{password}");
        assert!(
            detail.get("input").is_none(),
            "the password is never echoed: {detail}"
        );
        assert!(!text.contains(&password), "{text}");
    }
    assert_unauthorized(app.login("carol", "aaaaaaaaaaaa").await, BAD_CREDENTIALS).await;
}
test_both!(signup_rejects_weak_passwords_with_422_without_echoing_them);

async fn signup_password_length_bounds_are_12_and_128_characters(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;
    let long: String = "Zq7-vB2!mK9#xR4@".repeat(8);
    assert_eq!(long.chars().count(), 128);

    // Act
    let at_max = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "carol", "password": long}),
        )
        .await;
    let over_max = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "dave", "password": format!("{long}x")}),
        )
        .await;
    let at_min = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "erin", "password": "Zq7-vB2!mK9#"}),
        )
        .await;
    let under_min = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "finn", "password": "Zq7-vB2!mK9"}),
        )
        .await;

    // Assert
    assert_eq!(at_max.status(), 201);
    assert_eq!(
        only_error_with_text(over_max).await.0["type"],
        "string_too_long"
    );
    assert_eq!(at_min.status(), 201);
    assert_eq!(
        only_error_with_text(under_min).await.0["type"],
        "string_too_short"
    );
}
test_both!(signup_password_length_bounds_are_12_and_128_characters);

async fn signup_rejects_unknown_fields_and_never_applies_them(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;

    // Act
    let response = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "carol", "password": PASSWORD, "roles": ["admin"]}),
        )
        .await;

    // Assert
    let (detail, text) = only_error_with_text(response).await;
    assert_eq!(detail["type"], "extra_forbidden");
    assert_eq!(detail["loc"], json!(["body", "roles"]));
    assert!(!text.contains(PASSWORD), "{text}");
    assert_unauthorized(app.login("carol", PASSWORD).await, BAD_CREDENTIALS).await;
}
test_both!(signup_rejects_unknown_fields_and_never_applies_them);

async fn signup_without_a_password_is_422_at_body_password(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;

    // Act
    let response = app
        .post_json("/users/signup", None, &json!({"username": "carol"}))
        .await;

    // Assert
    let (detail, _) = only_error_with_text(response).await;
    assert_eq!(detail["type"], "missing");
    assert_eq!(detail["loc"], json!(["body", "password"]));
}
test_both!(signup_without_a_password_is_422_at_body_password);

async fn signup_with_malformed_json_is_422_json_invalid(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;

    // Act
    let response = app
        .client
        .post(app.url("/users/signup"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"username\": \"carol\", \"password\": \"{PASSWORD}\""
        ))
        .send()
        .await
        .unwrap();

    // Assert
    let (detail, text) = only_error_with_text(response).await;
    assert_eq!(detail["type"], "json_invalid");
    assert_eq!(detail["loc"][0], "body");
    assert!(!text.contains(PASSWORD), "{text}");
}
test_both!(signup_with_malformed_json_is_422_json_invalid);

async fn signup_with_a_form_body_is_415(backend: Backend) {
    // Arrange
    let app = signup_app(backend).await;

    // Act
    let response = app
        .client
        .post(app.url("/users/signup"))
        .form(&[("username", "carol"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(
        json_with_status(response, 415).await,
        json!({"detail": "Unsupported Media Type"})
    );
}
test_both!(signup_with_a_form_body_is_415);

async fn admin_users_without_a_token_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let list = app.get("/admin/users", None).await;
    let create = app
        .post_json(
            "/admin/users",
            None,
            &json!({"username": "carol", "password": PASSWORD}),
        )
        .await;
    let patch = app
        .patch_json("/admin/users/1", None, &json!({"disabled": true}))
        .await;
    let keys = app.get("/admin/keys", None).await;

    // Assert
    for response in [list, create, patch, keys] {
        assert_unauthorized(response, "Not authenticated").await;
    }
}
test_both!(admin_users_without_a_token_is_401);

async fn admin_routes_are_403_for_a_user_without_the_admin_role(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (alice, token) = app
        .user_with_token("alice", &["editor", "administrator"])
        .await;

    // Act
    let list = app.get("/admin/users", Some(&token)).await;
    let create = app
        .post_json(
            "/admin/users",
            Some(&token),
            &json!({"username": "carol", "password": PASSWORD}),
        )
        .await;
    let patch = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&token),
            &json!({"roles": ["admin"]}),
        )
        .await;
    let keys = app.get("/admin/keys", Some(&token)).await;

    // Assert
    for response in [list, create, patch, keys] {
        assert_eq!(
            json_with_status(response, 403).await,
            json!({"detail": "Insufficient permissions"})
        );
    }
    let user = app.state.repo.get_user(alice).await.unwrap().unwrap();
    assert_eq!(
        user.roles,
        ["administrator", "editor"],
        "the forbidden PATCH changed nothing"
    );
    assert!(app.state.repo.find_user("carol").await.unwrap().is_none());
}
test_both!(admin_routes_are_403_for_a_user_without_the_admin_role);

async fn admin_lists_every_user_without_hashes(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (admin, token) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", NEW_PASSWORD, &["editor"]).await;

    // Act
    let response = app.get("/admin/users", Some(&token)).await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_no_credentials(&text);
    let users: Value = serde_json::from_str(&text).unwrap();
    let users = users.as_array().expect("a list");
    assert_eq!(users.len(), 2);
    let find = |id: i64| users.iter().find(|u| u["id"] == json!(id)).expect("listed");
    assert_user(find(admin), Some(admin), "root", &["admin"], false);
    assert_user(find(alice), Some(alice), "alice", &["editor"], false);
}
test_both!(admin_lists_every_user_without_hashes);

async fn admin_creates_a_user_with_roles(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;

    // Act
    let response = app
        .post_json(
            "/admin/users",
            Some(&token),
            &json!({"username": "carol", "password": NEW_PASSWORD, "roles": ["viewer", "editor", "viewer"]}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert_no_credentials(&text);
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_user(&user, None, "carol", &["editor", "viewer"], false);
    let login: Value = json_with_status(app.login("carol", NEW_PASSWORD).await, 200).await;
    let me = app.get("/users/me", login["access_token"].as_str()).await;
    assert_eq!(
        json_with_status(me, 200).await["roles"],
        json!(["editor", "viewer"])
    );
}
test_both!(admin_creates_a_user_with_roles);

async fn admin_creates_another_admin_who_can_administer(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;

    // Act
    let response = app
        .post_json(
            "/admin/users",
            Some(&token),
            &json!({"username": "second", "password": NEW_PASSWORD, "roles": ["admin"]}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 201);
    let login: Value = json_with_status(app.login("second", NEW_PASSWORD).await, 200).await;
    assert_eq!(
        app.get("/admin/users", login["access_token"].as_str())
            .await
            .status(),
        200
    );
}
test_both!(admin_creates_another_admin_who_can_administer);

async fn admin_create_with_an_invalid_role_name_is_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;

    // Act / Assert
    for role in ["Admin", "1st", "has space", "", &"a".repeat(33), "ünï"] {
        let response = app
            .post_json(
                "/admin/users",
                Some(&token),
                &json!({"username": "carol", "password": NEW_PASSWORD, "roles": ["editor", role]}),
            )
            .await;
        let (detail, text) = only_error_with_text(response).await;
        assert_eq!(detail["loc"], json!(["body", "roles", 1]), "{role:?}");
        assert_eq!(detail["type"], "string_pattern_mismatch");
        assert!(!text.contains(NEW_PASSWORD), "{text}");
    }
    assert!(app.state.repo.find_user("carol").await.unwrap().is_none());
}
test_both!(admin_create_with_an_invalid_role_name_is_422);

async fn admin_create_checks_username_and_password_rules(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;

    // Act
    let weak = app
        .post_json(
            "/admin/users",
            Some(&token),
            &json!({"username": "carol", "password": "password1234"}),
        )
        .await;
    let bad_name = app
        .post_json(
            "/admin/users",
            Some(&token),
            &json!({"username": "c", "password": NEW_PASSWORD}),
        )
        .await;
    let extra = app
        .post_json(
            "/admin/users",
            Some(&token),
            &json!({"username": "carol", "password": NEW_PASSWORD, "disabled": false}),
        )
        .await;

    // Assert
    let (detail, text) = only_error_with_text(weak).await;
    assert_eq!(detail["loc"], json!(["body", "password"]));
    assert!(
        detail.get("input").is_none() && !text.contains("password1234"),
        "{text}"
    );
    assert_eq!(
        only_error_with_text(bad_name).await.0["loc"],
        json!(["body", "username"])
    );
    assert_eq!(
        only_error_with_text(extra).await.0["type"],
        "extra_forbidden"
    );
}
test_both!(admin_create_checks_username_and_password_rules);

async fn admin_create_of_an_existing_username_is_409(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    app.create_user("carol", PASSWORD, &[]).await;

    // Act
    let response = app
        .post_json(
            "/admin/users",
            Some(&token),
            &json!({"username": "CAROL", "password": NEW_PASSWORD}),
        )
        .await;

    // Assert
    assert_eq!(
        json_with_status(response, 409).await,
        json!({"detail": "Username already exists"})
    );
}
test_both!(admin_create_of_an_existing_username_is_409);

async fn admin_patch_replaces_roles(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", PASSWORD, &["editor"]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&token),
            &json!({"roles": ["viewer", "auditor"]}),
        )
        .await;

    // Assert
    assert_user(
        &json_with_status(response, 200).await,
        Some(alice),
        "alice",
        &["auditor", "viewer"],
        false,
    );
    let login: Value = json_with_status(app.login("alice", PASSWORD).await, 200).await;
    let me = json_with_status(
        app.get("/users/me", login["access_token"].as_str()).await,
        200,
    )
    .await;
    assert_eq!(me["roles"], json!(["auditor", "viewer"]));
}
test_both!(admin_patch_replaces_roles);

async fn admin_patch_with_an_invalid_role_is_422_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", PASSWORD, &["editor"]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&token),
            &json!({"roles": ["Admin"], "disabled": true}),
        )
        .await;

    // Assert
    let (detail, _) = only_error_with_text(response).await;
    assert_eq!(detail["loc"], json!(["body", "roles", 0]));
    let user = app.state.repo.get_user(alice).await.unwrap().unwrap();
    assert_eq!(user.roles, ["editor"]);
    assert!(!user.disabled, "a rejected PATCH applies no field");
}
test_both!(admin_patch_with_an_invalid_role_is_422_and_changes_nothing);

async fn admin_patch_disables_a_user_who_then_cannot_log_in(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&token),
            &json!({"disabled": true}),
        )
        .await;

    // Assert
    assert_user(
        &json_with_status(response, 200).await,
        Some(alice),
        "alice",
        &[],
        true,
    );
    assert_unauthorized(app.login("alice", PASSWORD).await, BAD_CREDENTIALS).await;
    let enabled = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&token),
            &json!({"disabled": false}),
        )
        .await;
    assert_eq!(json_with_status(enabled, 200).await["disabled"], false);
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        200,
        "re-enabled"
    );
}
test_both!(admin_patch_disables_a_user_who_then_cannot_log_in);

async fn admin_patch_changes_the_password(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&token),
            &json!({"password": NEW_PASSWORD}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_no_credentials(&text);
    assert!(!text.contains(NEW_PASSWORD));
    assert_user(
        &serde_json::from_str(&text).unwrap(),
        Some(alice),
        "alice",
        &[],
        false,
    );
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), 200);
    assert_unauthorized(app.login("alice", PASSWORD).await, BAD_CREDENTIALS).await;
}
test_both!(admin_patch_changes_the_password);

async fn admin_patch_with_a_weak_password_is_422_without_echo(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;

    // Act / Assert
    for weak in ["short-1A", "password1234", "alicealice12"] {
        let response = app
            .patch_json(
                &format!("/admin/users/{alice}"),
                Some(&token),
                &json!({"password": weak}),
            )
            .await;
        let (detail, text) = only_error_with_text(response).await;
        assert_eq!(detail["loc"], json!(["body", "password"]), "{weak}");
        assert!(detail.get("input").is_none(), "{detail}");
        assert!(!text.contains(weak), "{text}");
    }
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        200,
        "the password is unchanged"
    );
}
test_both!(admin_patch_with_a_weak_password_is_422_without_echo);

async fn admin_patch_of_an_unknown_user_is_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (admin, token) = app.user_with_token("root", &["admin"]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{}", admin + 1000),
            Some(&token),
            &json!({"disabled": true}),
        )
        .await;

    // Assert
    assert_eq!(
        json_with_status(response, 404).await,
        json!({"detail": "User not found"})
    );
}
test_both!(admin_patch_of_an_unknown_user_is_404);

async fn admin_patch_with_a_non_integer_id_is_422_at_path_user_id(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;

    // Act
    let response = app
        .patch_json("/admin/users/abc", Some(&token), &json!({"disabled": true}))
        .await;

    // Assert
    let (detail, _) = only_error_with_text(response).await;
    assert_eq!(detail["loc"], json!(["path", "user_id"]));
    assert_eq!(detail["input"], "abc");
}
test_both!(admin_patch_with_a_non_integer_id_is_422_at_path_user_id);

async fn admin_patch_with_an_unknown_field_is_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&token),
            &json!({"username": "mallory"}),
        )
        .await;

    // Assert
    let (detail, _) = only_error_with_text(response).await;
    assert_eq!(detail["type"], "extra_forbidden");
    assert_eq!(detail["loc"], json!(["body", "username"]));
    assert_eq!(
        app.state
            .repo
            .get_user(alice)
            .await
            .unwrap()
            .unwrap()
            .username,
        "alice"
    );
}
test_both!(admin_patch_with_an_unknown_field_is_422);

async fn admin_keys_lists_the_ring_without_key_material(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("root", &["admin"]).await;
    let active = app.state.keys.ring().active().expect("active key");
    let material = active.expose_secret();

    // Act
    let response = app.get("/admin/keys", Some(&token)).await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for encoded in key_encodings(material) {
        assert!(!text.contains(&encoded), "key material in the response");
    }
    let keys: Value = serde_json::from_str(&text).unwrap();
    let keys = keys.as_array().expect("a list");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        sorted_keys(key),
        ["alg", "created_at", "kid", "retires_at", "state"]
    );
    assert_eq!(key["kid"], json!(active.kid()));
    assert_eq!(key["alg"], "HS256");
    assert_eq!(key["state"], "active");
    time::OffsetDateTime::parse(
        key["created_at"].as_str().expect("created_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("created_at is RFC 3339");
    assert_eq!(key["retires_at"], Value::Null);
}
test_both!(admin_keys_lists_the_ring_without_key_material);

/// Polls `path` with `token` until it answers 401 (at most 1 s after `since`, the contract's
/// bound, plus a little slack for the poll itself), then checks the 401's shape.
async fn assert_token_ends_within_a_second(app: &TestApp, token: &str, path: &str, since: Instant) {
    loop {
        let response = app.get(path, Some(token)).await;
        if response.status() == 401 {
            assert_unauthorized(response, INVALID_TOKEN).await;
            return;
        }
        assert!(
            since.elapsed() < Duration::from_millis(1200),
            "{path} still answers {} after {:?}",
            response.status(),
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn disabling_a_user_ends_their_outstanding_tokens(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let (alice, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(app.get("/users/me", Some(&token)).await.status(), 200);

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
    let changed = Instant::now();

    // Assert
    assert_eq!(response.status(), 200);
    assert_token_ends_within_a_second(&app, &token, "/protected", changed).await;
    assert_token_ends_within_a_second(&app, &token, "/users/me", changed).await;
}
test_both!(disabling_a_user_ends_their_outstanding_tokens);

async fn changing_a_users_roles_ends_their_outstanding_tokens(backend: Backend) {
    // Arrange: a second admin whose admin role is taken away.
    let app = spawn_app(backend).await;
    let (_, root) = app.user_with_token("root", &["admin"]).await;
    let (second, token) = app.user_with_token("second", &["admin"]).await;
    assert_eq!(app.get("/admin/users", Some(&token)).await.status(), 200);

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{second}"),
            Some(&root),
            &json!({"roles": ["viewer"]}),
        )
        .await;
    let changed = Instant::now();

    // Assert
    assert_eq!(response.status(), 200);
    assert_token_ends_within_a_second(&app, &token, "/admin/users", changed).await;
    let relogin: Value = json_with_status(app.login("second", PASSWORD).await, 200).await;
    let fresh = relogin["access_token"].as_str().unwrap();
    assert_eq!(
        json_with_status(app.get("/admin/users", Some(fresh)).await, 403).await,
        json!({"detail": "Insufficient permissions"}),
        "a new token carries the new roles"
    );
}
test_both!(changing_a_users_roles_ends_their_outstanding_tokens);

async fn changing_a_users_password_ends_their_outstanding_tokens(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let (alice, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&admin),
            &json!({"password": NEW_PASSWORD}),
        )
        .await;
    let changed = Instant::now();

    // Assert
    assert_eq!(response.status(), 200);
    assert_token_ends_within_a_second(&app, &token, "/protected", changed).await;
    let relogin: Value = json_with_status(app.login("alice", NEW_PASSWORD).await, 200).await;
    assert_eq!(
        app.get("/protected", relogin["access_token"].as_str())
            .await
            .status(),
        200
    );
}
test_both!(changing_a_users_password_ends_their_outstanding_tokens);

async fn a_rejected_patch_leaves_the_users_tokens_working(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let (alice, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&admin),
            &json!({"password": "password1234"}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 422);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get("/protected", Some(&token)).await.status(), 200);
}
test_both!(a_rejected_patch_leaves_the_users_tokens_working);

/// Regression: a 422 for signup echoed the password. A body sent as a JSON string (the
/// request encoded twice) is the whole request, password included: never echoed.
async fn a_signup_422_never_echoes_the_password(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.allow_signup = true).await;
    let secret = "Unusual-Sapphire-Walrus-93";
    let inner = json!({"username": "alice", "password": secret}).to_string();

    // Act / Assert
    for body in [
        json!(inner),
        json!([{"username": "alice", "password": secret}]),
        json!({"username": "a", "password": secret}),
        json!({"username": "alice", "password": secret, "extra": secret}),
        json!({"username": {"password": secret}, "password": secret}),
    ] {
        let response = app.post_json("/users/signup", None, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let text = response.text().await.unwrap();
        if body.get("extra").is_none() {
            assert!(!text.contains(secret), "{body} -> {text}");
        }
    }
}
test_both!(a_signup_422_never_echoes_the_password);
