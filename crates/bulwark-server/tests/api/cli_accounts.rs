//! The account commands of the `bulwark` binary (contract: "Command line", "Accounts
//! (self-service)"): `users enable`, `users delete` (never the last enabled admin),
//! `users set-password`, and e-mail addresses in `users list` and `users import`.
//!
//! Each test runs the real binary on a fresh data folder and database, and watches the effect
//! over HTTP on the app started in-process on the same database and master secret (or in the
//! audit trail through its repository).

use std::time::{Duration, Instant};

use bulwark_server::db::AuditFilter;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{BCRYPT_COST4_PASSWORD1, Backend, PASSWORD, TestApp, spawn_app_with};
use crate::mailbox;
use crate::process::BinEnv;
use crate::test_both;

/// The password `users set-password` sets in these tests.
const NEW_PASSWORD: &str = "amber-Quarry-58-whistle";

/// The app in-process on the database and master secret of `env`. Rate limits are off: these
/// tests log in as often as they need to watch a command take effect.
async fn app_on(env: &BinEnv) -> TestApp {
    let (url, secret) = (env.database_url.clone(), env.master_secret.clone());
    spawn_app_with(Backend::Sqlite, move |s| {
        s.database_url = url;
        s.master_secret = Some(SecretString::from(secret));
        s.rate_limits.enabled = false;
    })
    .await
}

/// `bulwark users create NAME --role ROLE... --password-stdin` with [`PASSWORD`], which must
/// succeed.
async fn create_user(env: &BinEnv, name: &str, roles: &[&str]) {
    let mut args = vec!["users", "create", name, "--password-stdin"];
    for role in roles {
        args.extend(["--role", role]);
    }
    env.run_with_stdin(&args, &format!("{PASSWORD}\n"))
        .await
        .assert_success();
}

/// `bulwark users set-password NAME --password-stdin` with `password` on standard input.
async fn set_password(env: &BinEnv, name: &str, password: &str) -> crate::process::Run {
    env.run_with_stdin(
        &["users", "set-password", name, "--password-stdin"],
        &format!("{password}\n"),
    )
    .await
}

/// The line of `users list` that names `user`.
fn list_line<'a>(list: &'a str, user: &str) -> Option<&'a str> {
    list.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(user))
}

/// `users list`, which must succeed.
async fn list(env: &BinEnv) -> String {
    let run = env.run(&["users", "list"]).await;
    run.assert_success();
    run.stdout
}

async fn login_status(app: &TestApp, user: &str, password: &str) -> u16 {
    app.login(user, password).await.status().as_u16()
}

/// The token pair of a login that must succeed: `(access, refresh)`.
async fn token_pair(app: &TestApp, user: &str, password: &str) -> (String, String) {
    let response = app.login(user, password).await;
    assert_eq!(response.status(), 200, "login of {user}");
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Waits (at most 1.5 s: revocations reach every instance within a second) for `token` to be
/// refused by `GET /protected` (which looks at the token alone, not at the user's row).
async fn assert_revoked_within_a_second(app: &TestApp, token: &str) {
    let start = Instant::now();
    loop {
        let status = app.get("/protected", Some(token)).await.status();
        if status == 401 {
            return;
        }
        assert_eq!(status, 200, "unexpected status");
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "a token issued before the command still works after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The audit events of `kind`, newest first.
async fn audit_events(app: &TestApp, kind: &str) -> Vec<bulwark_server::db::AuditRow> {
    let filter = AuditFilter {
        kind: Some(kind.to_owned()),
        ..AuditFilter::default()
    };
    app.state
        .repo
        .list_audit(&filter, 100, 0)
        .await
        .expect("audit")
        .0
}

/// The user named `name` in `GET /admin/users`.
fn listed_user<'a>(users: &'a Value, name: &str) -> Option<&'a Value> {
    users
        .as_array()
        .expect("a list")
        .iter()
        .find(|u| u["username"] == name)
}

// ---------------------------------------------------------------------------------------------
// users set-password
// ---------------------------------------------------------------------------------------------

async fn users_set_password_replaces_the_password_and_revokes_every_token(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;
    let app = app_on(&env).await;
    let (access, refresh) = token_pair(&app, "alice", PASSWORD).await;
    assert_eq!(app.get("/users/me", Some(&access)).await.status(), 200);

    // Act
    let run = set_password(&env, "ALICE", NEW_PASSWORD).await;

    // Assert
    run.assert_success();
    assert!(run.stdout.contains("alice"), "{}", run.stdout);
    for secret in [NEW_PASSWORD, PASSWORD, "$argon2"] {
        assert!(!run.output().contains(secret), "{secret:?} printed");
    }
    assert_eq!(login_status(&app, "alice", NEW_PASSWORD).await, 200);
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 401);
    assert_revoked_within_a_second(&app, &access).await;
    let refreshed = app
        .post_json("/token/refresh", None, &json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed.status(), 401, "the refresh family is revoked");
    let events = audit_events(&app, "user.password_changed").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].username.as_deref(), Some("alice"));
    assert!(
        events[0]
            .detail
            .as_deref()
            .is_some_and(|d| !d.contains(NEW_PASSWORD)),
        "{events:?}"
    );
}
test_both!(users_set_password_replaces_the_password_and_revokes_every_token);

async fn users_set_password_kills_a_pending_reset_link(backend: Backend) {
    // Arrange: a reset link mailed before the operator sets the password.
    let env = BinEnv::new(backend).await;
    let app = app_on(&env).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let response = app
        .post_json(
            "/password-reset/request",
            None,
            &json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let token = mailbox::mails(&app, 1)
        .await
        .remove(0)
        .token("/password-reset");

    // Act
    set_password(&env, "alice", NEW_PASSWORD)
        .await
        .assert_success();

    // Assert
    let confirm = app
        .post_json(
            "/password-reset/confirm",
            None,
            &json!({"token": token, "new_password": "another-Strong-93-pass"}),
        )
        .await;
    assert_eq!(confirm.status(), 400, "the old link is dead");
    assert_eq!(login_status(&app, "alice", NEW_PASSWORD).await, 200);
}
test_both!(users_set_password_kills_a_pending_reset_link);

async fn users_set_password_refuses_a_weak_password_and_changes_nothing(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;
    let app = app_on(&env).await;
    let access = app.access_token("alice", PASSWORD).await;
    let cases = [
        ("password1234", "too common"),
        ("Sh0rt-pw!", "at least 12 characters"),
        ("aaaaaaaaaaaa", "too weak"),
    ];

    // Act / Assert
    for (password, rule) in cases {
        let run = set_password(&env, "alice", password).await;
        assert_eq!(run.code, Some(1), "{password}: {}", run.stderr);
        assert!(run.stderr.contains(rule), "{password}: {}", run.stderr);
        assert!(
            !run.output().contains(password),
            "the password is echoed: {}",
            run.output()
        );
        assert_eq!(login_status(&app, "alice", password).await, 401);
    }
    assert_eq!(
        login_status(&app, "alice", PASSWORD).await,
        200,
        "the password is unchanged"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.get("/users/me", Some(&access)).await.status(),
        200,
        "a refused change revokes nothing"
    );
    assert!(audit_events(&app, "user.password_changed").await.is_empty());
}
test_both!(users_set_password_refuses_a_weak_password_and_changes_nothing);

async fn users_set_password_refuses_a_password_made_of_the_users_name(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "qzvorplex-tramwick", &[]).await;

    // Act
    let run = set_password(&env, "qzvorplex-tramwick", "qzvorplex-tramwick").await;

    // Assert
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let app = app_on(&env).await;
    assert_eq!(
        login_status(&app, "qzvorplex-tramwick", PASSWORD).await,
        200
    );
}
test_both!(users_set_password_refuses_a_password_made_of_the_users_name);

async fn users_set_password_of_an_unknown_user_fails(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;

    // Act
    let run = set_password(&env, "nobody", NEW_PASSWORD).await;

    // Assert
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("nobody"), "{}", run.stderr);
    assert!(!run.output().contains(NEW_PASSWORD));
}
test_both!(users_set_password_of_an_unknown_user_fails);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_set_password_without_a_terminal_or_password_stdin_fails() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    create_user(&env, "alice", &[]).await;

    // Act
    let no_flag = env.run(&["users", "set-password", "alice"]).await;
    let empty_stdin = set_password(&env, "alice", "").await;
    let no_name = env
        .run(&["users", "set-password", "--password-stdin"])
        .await;

    // Assert
    assert_eq!(no_flag.code, Some(1), "{}", no_flag.stderr);
    assert!(
        no_flag.stderr.contains("--password-stdin"),
        "{}",
        no_flag.stderr
    );
    assert_eq!(empty_stdin.code, Some(1), "{}", empty_stdin.stderr);
    assert!(
        empty_stdin.stderr.contains("password"),
        "{}",
        empty_stdin.stderr
    );
    assert_eq!(no_name.code, Some(2), "bad usage: {}", no_name.stderr);
    let app = app_on(&env).await;
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 200);
}

// ---------------------------------------------------------------------------------------------
// users enable
// ---------------------------------------------------------------------------------------------

async fn users_enable_lets_a_disabled_user_log_in_again(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;
    let app = app_on(&env).await;
    let before = app.access_token("alice", PASSWORD).await;
    env.run(&["users", "disable", "alice"])
        .await
        .assert_success();
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 401);

    // Act
    let run = env.run(&["users", "enable", "Alice"]).await;

    // Assert
    run.assert_success();
    assert!(run.stdout.contains("alice"), "{}", run.stdout);
    let listed = list(&env).await;
    let line = list_line(&listed, "alice").expect("alice listed");
    assert_eq!(line.split_whitespace().nth(3), Some("false"), "{line}");
    let token = app.access_token("alice", PASSWORD).await;
    assert_eq!(app.get("/users/me", Some(&token)).await.status(), 200);
    assert_revoked_within_a_second(&app, &before).await;
    let events = audit_events(&app, "user.enabled").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].username.as_deref(), Some("alice"));
}
test_both!(users_enable_lets_a_disabled_user_log_in_again);

async fn users_enable_of_an_unknown_user_fails(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;

    // Act
    let run = env.run(&["users", "enable", "nobody"]).await;

    // Assert
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("nobody"), "{}", run.stderr);
}
test_both!(users_enable_of_an_unknown_user_fails);

// ---------------------------------------------------------------------------------------------
// users delete
// ---------------------------------------------------------------------------------------------

async fn users_delete_removes_the_user_with_their_items_and_tokens(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "root", &["admin"]).await;
    create_user(&env, "alice", &[]).await;
    let app = app_on(&env).await;
    let (access, refresh) = token_pair(&app, "alice", PASSWORD).await;
    let item = app.new_item(&access, "lamp").await;
    let admin = app.access_token("root", PASSWORD).await;
    assert_eq!(app.get_item(&admin, &item["id"]).await.status(), 200);

    // Act
    let run = env.run(&["users", "delete", "ALICE"]).await;

    // Assert
    run.assert_success();
    assert!(run.stdout.contains("alice"), "{}", run.stdout);
    assert!(list_line(&list(&env).await, "alice").is_none());
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 401);
    assert_revoked_within_a_second(&app, &access).await;
    let refreshed = app
        .post_json("/token/refresh", None, &json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed.status(), 401);
    assert_eq!(
        app.get_item(&admin, &item["id"]).await.status(),
        404,
        "the items went with the user"
    );
    let users: Value = app
        .get("/admin/users", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(listed_user(&users, "alice").is_none(), "{users}");
    let events = audit_events(&app, "user.deleted").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].username.as_deref(), Some("alice"));
}
test_both!(users_delete_removes_the_user_with_their_items_and_tokens);

async fn users_delete_refuses_to_delete_the_last_admin(backend: Backend) {
    // Arrange: the only admin, and another one who is disabled.
    let env = BinEnv::new(backend).await;
    create_user(&env, "root", &["admin"]).await;
    create_user(&env, "spare", &["admin"]).await;
    create_user(&env, "alice", &[]).await;
    env.run(&["users", "disable", "spare"])
        .await
        .assert_success();

    // Act
    let refused = env.run(&["users", "delete", "root"]).await;

    // Assert
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("admin"), "{}", refused.stderr);
    assert!(list_line(&list(&env).await, "root").is_some());
    let app = app_on(&env).await;
    assert_eq!(login_status(&app, "root", PASSWORD).await, 200);
    assert!(audit_events(&app, "user.deleted").await.is_empty());

    // Act: another admin who can log in.
    env.run(&["users", "enable", "spare"])
        .await
        .assert_success();
    let allowed = env.run(&["users", "delete", "root"]).await;

    // Assert
    allowed.assert_success();
    assert_eq!(login_status(&app, "root", PASSWORD).await, 401);
    let last = env.run(&["users", "delete", "spare"]).await;
    assert_eq!(last.code, Some(1), "{}", last.stderr);
    assert_eq!(login_status(&app, "spare", PASSWORD).await, 200);
}
test_both!(users_delete_refuses_to_delete_the_last_admin);

async fn users_delete_of_an_unknown_user_fails(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;

    // Act
    let run = env.run(&["users", "delete", "nobody"]).await;

    // Assert
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("nobody"), "{}", run.stderr);
    assert!(list_line(&list(&env).await, "alice").is_some());
}
test_both!(users_delete_of_an_unknown_user_fails);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_delete_says_in_its_help_that_the_last_admin_stays() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;

    // Act
    let help = env.run(&["users", "delete", "--help"]).await;
    let no_name = env.run(&["users", "delete"]).await;

    // Assert
    help.assert_success();
    assert!(help.stdout.contains("last enabled"), "{}", help.stdout);
    assert!(help.stdout.contains("admin"), "{}", help.stdout);
    assert_eq!(no_name.code, Some(2), "bad usage: {}", no_name.stderr);
}

// ---------------------------------------------------------------------------------------------
// users list and import with e-mail addresses
// ---------------------------------------------------------------------------------------------

async fn users_import_brings_email_addresses_that_admins_see(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let file = env.write(
        "users.json",
        &json!([
            {"username": "root", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": ["admin"],
             "email": "root@example.com", "email_verified": true},
            {"username": "ada", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": ["editor"],
             "disabled": false, "email": "Ada@Example.com"},
            {"username": "bob", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": ["viewer"]},
        ])
        .to_string(),
    );

    // Act
    let run = env.run(&["users", "import", file.to_str().unwrap()]).await;

    // Assert
    run.assert_success();
    assert!(!run.output().contains(BCRYPT_COST4_PASSWORD1));
    let app = app_on(&env).await;
    let admin = app.access_token("root", "password1").await;
    let users: Value = app
        .get("/admin/users", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let root = listed_user(&users, "root").expect("root listed");
    assert_eq!(root["email"], "root@example.com");
    assert_eq!(root["email_verified"], true);
    let ada = listed_user(&users, "ada").expect("ada listed");
    assert_eq!(ada["email"], "Ada@Example.com", "stored as given");
    assert_eq!(ada["email_verified"], false, "unverified unless said");
    let bob = listed_user(&users, "bob").expect("bob listed");
    assert_eq!(bob["email"], Value::Null);
    assert_eq!(bob["email_verified"], false);
}
test_both!(users_import_brings_email_addresses_that_admins_see);

async fn users_list_shows_the_email_address_and_whether_it_is_verified(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let file = env.write(
        "users.json",
        &json!([
            {"username": "root", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": ["admin"],
             "email": "root@example.com", "email_verified": true},
            {"username": "ada", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": ["editor"],
             "email": "ada@example.com"},
            {"username": "bob", "hashed_password": BCRYPT_COST4_PASSWORD1},
        ])
        .to_string(),
    );
    env.run(&["users", "import", file.to_str().unwrap()])
        .await
        .assert_success();

    // Act
    let listed = list(&env).await;

    // Assert: id, username, roles, disabled, created_at, verified, email.
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "id",
            "username",
            "roles",
            "disabled",
            "created_at",
            "verified",
            "email"
        ]
    );
    let columns = |name: &str| -> Vec<String> {
        list_line(&listed, name)
            .unwrap_or_else(|| panic!("{name} listed: {listed}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let root = columns("root");
    assert_eq!(root[2..4], ["admin", "false"], "{root:?}");
    assert_eq!(root[5..], ["true", "root@example.com"], "{root:?}");
    let ada = columns("ada");
    assert_eq!(ada[5..], ["false", "ada@example.com"], "{ada:?}");
    let bob = columns("bob");
    assert_eq!(bob.len(), 7, "no roles and no address show as -: {bob:?}");
    assert_eq!(bob[2..4], ["-", "false"], "{bob:?}");
    assert_eq!(bob[5..], ["false", "-"], "{bob:?}");
    assert!(!listed.contains("$2b$"), "never a hash: {listed}");
}
test_both!(users_list_shows_the_email_address_and_whether_it_is_verified);

async fn users_import_refuses_an_entry_with_a_bad_address(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let long = format!("{}@example.com", "a".repeat(250));
    let file = env.write(
        "users.json",
        &json!([
            {"username": "good", "hashed_password": BCRYPT_COST4_PASSWORD1, "email": "good@example.com"},
            {"username": "noat", "hashed_password": BCRYPT_COST4_PASSWORD1, "email": "not-an-address"},
            {"username": "twoat", "hashed_password": BCRYPT_COST4_PASSWORD1, "email": "a@b@example.com"},
            {"username": "toolong", "hashed_password": BCRYPT_COST4_PASSWORD1, "email": long},
        ])
        .to_string(),
    );

    // Act
    let run = env.run(&["users", "import", file.to_str().unwrap()]).await;

    // Assert
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for name in ["noat", "twoat", "toolong"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(name) && l.contains("email")),
            "{name}: {}",
            run.stderr
        );
    }
    let listed = list(&env).await;
    assert!(list_line(&listed, "good").is_some(), "{listed}");
    for name in ["noat", "twoat", "toolong"] {
        assert!(list_line(&listed, name).is_none(), "{name}: {listed}");
    }
}
test_both!(users_import_refuses_an_entry_with_a_bad_address);

async fn users_import_skips_an_entry_whose_address_is_taken(backend: Backend) {
    // Arrange: one address already registered, and one used twice in the file (in another
    // letter case).
    let env = BinEnv::new(backend).await;
    let app = app_on(&env).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let file = env.write(
        "users.json",
        &json!([
            {"username": "mallory", "hashed_password": BCRYPT_COST4_PASSWORD1, "email": "ALICE@example.com"},
            {"username": "ada", "hashed_password": BCRYPT_COST4_PASSWORD1, "email": "ada@example.com"},
            {"username": "ada2", "hashed_password": BCRYPT_COST4_PASSWORD1, "email": "Ada@Example.com"},
        ])
        .to_string(),
    );

    // Act
    let run = env.run(&["users", "import", file.to_str().unwrap()]).await;

    // Assert
    run.assert_success();
    for name in ["mallory", "ada2"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(name) && l.contains("skipped") && l.contains("email")),
            "{name}: {}",
            run.stderr
        );
    }
    let listed = list(&env).await;
    assert!(list_line(&listed, "mallory").is_none(), "{listed}");
    assert!(list_line(&listed, "ada2").is_none(), "{listed}");
    let ada = list_line(&listed, "ada").expect("ada imported");
    assert!(ada.ends_with("ada@example.com"), "{ada}");
    let alice = list_line(&listed, "alice").expect("alice kept");
    assert!(alice.ends_with("alice@example.com"), "{alice}");
    assert_eq!(login_status(&app, "mallory", "password1").await, 401);
}
test_both!(users_import_skips_an_entry_whose_address_is_taken);
