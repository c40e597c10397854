//! The `bulwark` binary: run for real, with its environment pointing at a temporary folder.
//!
//! Each test gets a fresh data folder and database (an SQLite file, or a new PostgreSQL
//! database). Where a command's effect shows over HTTP, the app is started in-process on the
//! same database and master secret.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use bulwark::password::{Argon2Params, PasswordHasher};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{
    BCRYPT_COST4_PASSWORD1, Backend, Http, PASSWORD, TestApp, client, key_encodings, kid_of,
    spawn_app, spawn_app_with,
};
use crate::process::{self, BinEnv, KillOnDrop};
use crate::test_both;

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

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o777
}

/// The line of `users list` that names `user`.
fn list_line<'a>(list: &'a str, user: &str) -> Option<&'a str> {
    list.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(user))
}

async fn login_status(app: &TestApp, user: &str, password: &str) -> u16 {
    app.login(user, password).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_prints_the_document_the_server_serves() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    let app = spawn_app(Backend::Sqlite).await;
    let served: Value = app.get("/openapi.json", None).await.json().await.unwrap();

    // Act
    let run = env.run(&["openapi"]).await;

    // Assert
    run.assert_success();
    let printed: Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert!(
        printed["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    assert_eq!(printed, served);
}

async fn migrate_applies_the_migrations_and_can_run_again(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;

    // Act
    let first = env.run(&["migrate"]).await;
    let second = env.run(&["migrate"]).await;

    // Assert
    first.assert_success();
    second.assert_success();
    let app = app_on(&env).await;
    assert_eq!(app.get("/ready", None).await.status(), 200);
}
test_both!(migrate_applies_the_migrations_and_can_run_again);

async fn users_create_reads_a_strong_password_from_stdin(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;

    // Act
    let run = env
        .run_with_stdin(
            &[
                "users",
                "create",
                "alice",
                "--role",
                "editor",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .await;

    // Assert
    run.assert_success();
    assert!(run.stdout.contains("alice"), "{}", run.stdout);
    assert!(
        !run.output().contains(PASSWORD),
        "the password is never printed"
    );
    let app = app_on(&env).await;
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status(), 200);
    let token: Value = login.json().await.unwrap();
    let me: Value = app
        .get("/users/me", token["access_token"].as_str())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["editor"]));
}
test_both!(users_create_reads_a_strong_password_from_stdin);

async fn users_create_refuses_a_weak_password_naming_the_rule(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let cases = [
        ("password1234", "too common"),
        ("Sh0rt-pw!", "at least 12 characters"),
        ("aaaaaaaaaaaa", "too weak"),
    ];

    // Act / Assert
    for (password, rule) in cases {
        let run = env
            .run_with_stdin(
                &["users", "create", "alice", "--password-stdin"],
                &format!("{password}\n"),
            )
            .await;
        run.assert_failure();
        assert!(
            run.stderr.contains("password") || run.stderr.contains("Password"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(rule), "{password}: {}", run.stderr);
        assert!(
            !run.output().contains(password),
            "the password is echoed: {}",
            run.output()
        );
    }
    let list = env.run(&["users", "list"]).await;
    assert!(
        list_line(&list.stdout, "alice").is_none(),
        "{}",
        list.stdout
    );
}
test_both!(users_create_refuses_a_weak_password_naming_the_rule);

async fn users_create_refuses_a_bad_username_or_role(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;

    // Act
    let bad_name = env
        .run_with_stdin(
            &["users", "create", "al ice", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    let bad_role = env
        .run_with_stdin(
            &[
                "users",
                "create",
                "alice",
                "--role",
                "Admin",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .await;

    // Assert
    bad_name.assert_failure();
    assert!(bad_name.stderr.contains("username"), "{}", bad_name.stderr);
    bad_role.assert_failure();
    assert!(bad_role.stderr.contains("roles"), "{}", bad_role.stderr);
    let list = env.run(&["users", "list"]).await;
    assert!(
        list_line(&list.stdout, "alice").is_none(),
        "{}",
        list.stdout
    );
}
test_both!(users_create_refuses_a_bad_username_or_role);

async fn users_create_refuses_a_duplicate_username_in_any_case(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;

    // Act
    let run = env
        .run_with_stdin(
            &["users", "create", "ALICE", "--password-stdin"],
            "another-Valid-pass-93\n",
        )
        .await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("exists"), "{}", run.stderr);
    let app = app_on(&env).await;
    assert_eq!(
        login_status(&app, "alice", PASSWORD).await,
        200,
        "the first account is untouched"
    );
    assert_eq!(
        login_status(&app, "alice", "another-Valid-pass-93").await,
        401
    );
}
test_both!(users_create_refuses_a_duplicate_username_in_any_case);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_create_without_a_terminal_or_password_stdin_fails() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;

    // Act
    let no_flag = env.run(&["users", "create", "alice"]).await;
    let empty_stdin = env
        .run_with_stdin(&["users", "create", "alice", "--password-stdin"], "\n")
        .await;

    // Assert
    no_flag.assert_failure();
    assert!(
        no_flag.stderr.contains("--password-stdin"),
        "{}",
        no_flag.stderr
    );
    empty_stdin.assert_failure();
    assert!(
        empty_stdin.stderr.contains("password"),
        "{}",
        empty_stdin.stderr
    );
}

async fn users_list_shows_names_and_roles_but_never_a_hash(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &["editor"]).await;
    create_user(&env, "bob", &[]).await;

    // Act
    let run = env.run(&["users", "list"]).await;

    // Assert
    run.assert_success();
    let alice =
        list_line(&run.stdout, "alice").unwrap_or_else(|| panic!("alice listed: {}", run.stdout));
    assert!(alice.contains("editor"), "{alice}");
    assert!(alice.contains("false"), "{alice}");
    assert!(list_line(&run.stdout, "bob").is_some(), "{}", run.stdout);
    for secret in ["$argon2", "$2b$", PASSWORD] {
        assert!(
            !run.output().contains(secret),
            "{secret:?} in {}",
            run.output()
        );
    }
}
test_both!(users_list_shows_names_and_roles_but_never_a_hash);

async fn users_disable_stops_logins(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;

    // Act
    let run = env.run(&["users", "disable", "ALICE"]).await;

    // Assert
    run.assert_success();
    let list = env.run(&["users", "list"]).await;
    assert!(
        list_line(&list.stdout, "alice").is_some_and(|l| l.contains("true")),
        "{}",
        list.stdout
    );
    let app = app_on(&env).await;
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 401);
}
test_both!(users_disable_stops_logins);

async fn users_disable_ends_the_users_outstanding_tokens_within_a_second(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;
    let app = app_on(&env).await;
    let login: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/protected", Some(&token)).await.status(), 200);

    // Act
    env.run(&["users", "disable", "alice"])
        .await
        .assert_success();
    let disabled_at = Instant::now();

    // Assert
    loop {
        let status = app.get("/protected", Some(&token)).await.status();
        if status == 401 {
            break;
        }
        assert!(
            disabled_at.elapsed() < Duration::from_millis(1500),
            "the token of a disabled user still works after {:?}",
            disabled_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
test_both!(users_disable_ends_the_users_outstanding_tokens_within_a_second);

async fn users_disable_of_an_unknown_user_fails(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;

    // Act
    let run = env.run(&["users", "disable", "nobody"]).await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("nobody"), "{}", run.stderr);
}
test_both!(users_disable_of_an_unknown_user_fails);

async fn users_set_roles_replaces_the_roles(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &["editor"]).await;

    // Act
    let run = env
        .run(&["users", "set-roles", "alice", "admin", "viewer"])
        .await;

    // Assert
    run.assert_success();
    let list = env.run(&["users", "list"]).await;
    let line = list_line(&list.stdout, "alice").expect("alice listed");
    assert!(
        line.contains("admin") && line.contains("viewer") && !line.contains("editor"),
        "{line}"
    );
    let app = app_on(&env).await;
    let login: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    assert_eq!(
        app.get("/admin/users", login["access_token"].as_str())
            .await
            .status(),
        200
    );
}
test_both!(users_set_roles_replaces_the_roles);

async fn users_set_roles_refuses_an_invalid_role_and_changes_nothing(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &["editor"]).await;

    // Act
    let run = env
        .run(&["users", "set-roles", "alice", "admin", "Bad!"])
        .await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("role"), "{}", run.stderr);
    let list = env.run(&["users", "list"]).await;
    let line = list_line(&list.stdout, "alice").expect("alice listed");
    assert!(line.contains("editor") && !line.contains("admin"), "{line}");
}
test_both!(users_set_roles_refuses_an_invalid_role_and_changes_nothing);

async fn argon2id_hash(password: &str) -> String {
    let hasher = PasswordHasher::new(Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    hasher
        .hash(SecretString::from(password.to_owned()))
        .await
        .unwrap()
        .into_string()
}

async fn users_import_brings_bcrypt_and_argon2id_users_who_can_log_in(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let argon = argon2id_hash("second-Import-pass-61").await;
    let file = env.write(
        "users.json",
        &json!([
            {"username": "user1", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": ["admin"], "disabled": false},
            {"username": "user2", "hashed_password": argon, "roles": [], "disabled": false},
            {"username": "user3", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": [], "disabled": true},
        ])
        .to_string(),
    );

    // Act
    let run = env.run(&["users", "import", file.to_str().unwrap()]).await;

    // Assert
    run.assert_success();
    assert!(!run.output().contains(BCRYPT_COST4_PASSWORD1) && !run.output().contains(&argon));
    let app = app_on(&env).await;
    let login = app.login("user1", "password1").await;
    assert_eq!(login.status(), 200);
    let token: Value = login.json().await.unwrap();
    assert_eq!(
        app.get("/admin/users", token["access_token"].as_str())
            .await
            .status(),
        200,
        "roles imported"
    );
    assert_eq!(
        login_status(&app, "user2", "second-Import-pass-61").await,
        200
    );
    assert_eq!(login_status(&app, "user1", "password2").await, 401);
    assert_eq!(
        login_status(&app, "user3", "password1").await,
        401,
        "imported disabled"
    );
}
test_both!(users_import_brings_bcrypt_and_argon2id_users_who_can_log_in);

async fn users_import_refuses_an_entry_with_a_garbage_hash(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let file = env.write(
        "users.json",
        &json!([
            {"username": "plain", "hashed_password": "plaintext-Secret-77", "roles": [], "disabled": false},
            {"username": "md5", "hashed_password": "$1$abc$0123456789abcdefghijkl", "roles": [], "disabled": false},
        ])
        .to_string(),
    );

    // Act
    let run = env.run(&["users", "import", file.to_str().unwrap()]).await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("hashed_password"), "{}", run.stderr);
    assert!(
        !run.output().contains("plaintext-Secret-77"),
        "the value is never echoed"
    );
    let app = app_on(&env).await;
    assert_eq!(
        login_status(&app, "plain", "plaintext-Secret-77").await,
        401
    );
    let list = env.run(&["users", "list"]).await;
    assert!(list_line(&list.stdout, "plain").is_none() && list_line(&list.stdout, "md5").is_none());
}
test_both!(users_import_refuses_an_entry_with_a_garbage_hash);

async fn users_import_never_overwrites_an_existing_account(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;
    let file = env.write(
        "users.json",
        &json!([{"username": "Alice", "hashed_password": BCRYPT_COST4_PASSWORD1, "roles": ["admin"], "disabled": false}])
            .to_string(),
    );

    // Act
    let run = env.run(&["users", "import", file.to_str().unwrap()]).await;

    // Assert
    assert!(run.code.is_some(), "{}", run.stderr);
    let app = app_on(&env).await;
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 200);
    assert_eq!(login_status(&app, "alice", "password1").await, 401);
    let list = env.run(&["users", "list"]).await;
    assert!(
        !list_line(&list.stdout, "alice").unwrap().contains("admin"),
        "{}",
        list.stdout
    );
}
test_both!(users_import_never_overwrites_an_existing_account);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_import_of_a_malformed_file_fails() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    let not_json = env.write("bad.json", "[{\"username\": ");
    let wrong_shape = env.write("shape.json", r#"{"username": "user1"}"#);
    let unknown_field = env.write(
        "extra.json",
        &json!([{"username": "user1", "hashed_password": BCRYPT_COST4_PASSWORD1, "is_admin": true}])
            .to_string(),
    );

    // Act / Assert
    for file in [not_json, wrong_shape, unknown_field] {
        let run = env.run(&["users", "import", file.to_str().unwrap()]).await;
        run.assert_failure();
        assert!(run.stderr.contains("error"), "{}", run.stderr);
    }
    let missing = env.run(&["users", "import", "no-such-file.json"]).await;
    missing.assert_failure();
    let list = env.run(&["users", "list"]).await;
    assert!(
        list_line(&list.stdout, "user1").is_none(),
        "{}",
        list.stdout
    );
}

async fn keys_list_prints_the_kid_but_never_key_material(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    env.run(&["migrate"]).await.assert_success();
    let app = app_on(&env).await;
    let key = app.state.keys.ring().active().expect("active key");
    let material = key.expose_secret();

    // Act
    let run = env.run(&["keys", "list"]).await;

    // Assert
    run.assert_success();
    let line = run
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key.kid()))
        .unwrap_or_else(|| panic!("kid {} listed: {}", key.kid(), run.stdout));
    assert!(line.contains("HS256") && line.contains("active"), "{line}");
    for encoded in key_encodings(material) {
        assert!(!run.output().contains(&encoded), "key material printed");
    }
}
test_both!(keys_list_prints_the_kid_but_never_key_material);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_known_master_secret_stops_start_up_with_a_clear_message() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;

    // Act / Assert
    for secret in [
        "changeme",
        "hello-from-escape-team",
        "staysecureyourescapeteam",
        "secret",
    ] {
        let mut command = env.command(&["users", "list"]);
        command.env("BULWARK_MASTER_SECRET", secret);
        let run = process::run(command, None).await;
        run.assert_failure();
        assert!(run.stderr.contains("master"), "{secret}: {}", run.stderr);
        assert!(
            run.stderr.contains("well-known") || run.stderr.contains("32 bytes"),
            "{secret}: {}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_secret_shorter_than_32_bytes_stops_start_up_without_echoing_it() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    let short = "Xq7vB2mK9xR4pL6nT3wY8zC1dF5gH0j"; // 31 bytes
    assert_eq!(short.len(), 31);

    // Act
    let mut users = env.command(&["users", "list"]);
    users.env("BULWARK_MASTER_SECRET", short);
    let users = process::run(users, None).await;
    let mut serve = env.command(&["serve", "--bind", "127.0.0.1:0"]);
    serve.env("BULWARK_MASTER_SECRET", short);
    let serve = process::run(serve, None).await;

    // Assert
    for run in [users, serve] {
        run.assert_failure();
        assert!(run.stderr.contains("master"), "{}", run.stderr);
        assert!(run.stderr.contains("32"), "{}", run.stderr);
        assert!(
            !run.output().contains(short),
            "the secret is echoed: {}",
            run.output()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_master_secret_file_stops_start_up() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    let file = env.write("secret.txt", "changeme\n");

    // Act
    let mut command = env.command(&["users", "list"]);
    command
        .env_remove("BULWARK_MASTER_SECRET")
        .env("BULWARK_MASTER_SECRET_FILE", &file);
    let run = process::run(command, None).await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("master_secret_file"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_in_the_config_file_fails_naming_the_key() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    let top = env.write("typo.toml", "acces_token_ttl = \"15m\"\n");
    let nested = env.write(
        "nested.toml",
        "[rate_limits]\nlogin_per_ipp = \"5/minute\"\n",
    );

    // Act / Assert
    for (file, key) in [(&top, "acces_token_ttl"), (&nested, "login_per_ipp")] {
        let run = env
            .run(&["--config", file.to_str().unwrap(), "users", "list"])
            .await;
        run.assert_failure();
        assert!(run.stderr.contains(key), "{key}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulwark_toml_in_the_working_directory_is_read() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    env.write("bulwark.toml", "allow_sign_up = true\n");

    // Act
    let run = env.run(&["users", "list"]).await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("allow_sign_up"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_that_does_not_exist_fails() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;

    // Act
    let run = env
        .run(&["--config", "missing.toml", "users", "list"])
        .await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("missing.toml"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_duration_in_the_environment_fails_naming_the_key() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;

    // Act
    let mut command = env.command(&["users", "list"]);
    command.env("BULWARK_ACCESS_TOKEN_TTL", "abc");
    let run = process::run(command, None).await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("access_token_ttl"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_overrides_the_config_file() {
    // Arrange: the file's value is invalid; the environment's replaces it before it is read.
    let env = BinEnv::new(Backend::Sqlite).await;
    let file = env.write("layered.toml", "access_token_ttl = \"abc\"\n");

    // Act
    let mut overridden = env.command(&["--config", file.to_str().unwrap(), "users", "list"]);
    overridden.env("BULWARK_ACCESS_TOKEN_TTL", "10m");
    let overridden = process::run(overridden, None).await;
    let from_file = env
        .run(&["--config", file.to_str().unwrap(), "users", "list"])
        .await;

    // Assert
    overridden.assert_success();
    from_file.assert_failure();
    assert!(
        from_file.stderr.contains("access_token_ttl"),
        "{}",
        from_file.stderr
    );
}

/// Regression: `bulwark.db` was created 0644 and the data folder 0755 (unless the master
/// key was generated into it first). The folder is 0700 and every file in it 0600, and a folder
/// an earlier version left wider is narrowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_every_file_in_it_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    for existing in [false, true] {
        // Arrange: the default embedded database inside the data folder, the secret generated.
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("bulwark-data");
        if existing {
            std::fs::create_dir(&data).unwrap();
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(data.join("bulwark.db"), b"").unwrap();
            std::fs::set_permissions(
                data.join("bulwark.db"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
        }
        let url = format!("sqlite://{}/bulwark.db", data.display());
        let mut create = process::command(root.path(), &url);
        create.env("BULWARK_DATA_DIR", &data).args([
            "users",
            "create",
            "alice",
            "--password-stdin",
        ]);

        // Act
        let run = process::run(create, Some(format!("{PASSWORD}\n"))).await;

        // Assert
        run.assert_success();
        assert_eq!(mode(&data), 0o700, "the folder (existing: {existing})");
        let files: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for name in ["bulwark.db", "master.key"] {
            assert!(files.contains(&data.join(name)), "{name} in {files:?}");
        }
        for file in &files {
            assert_eq!(
                mode(file),
                0o600,
                "{} (existing: {existing})",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_master_key_is_private_and_reused() {
    // Arrange
    let env = BinEnv::new(Backend::Sqlite).await;
    let key_file = env.data_dir().join("master.key");

    // Act
    let mut first = env.command(&["users", "list"]);
    first.env_remove("BULWARK_MASTER_SECRET");
    let first = process::run(first, None).await;
    let generated = std::fs::read_to_string(&key_file).expect("master.key written");
    let mut second = env.command(&["keys", "list"]);
    second.env_remove("BULWARK_MASTER_SECRET");
    let second = process::run(second, None).await;

    // Assert
    first.assert_success();
    second.assert_success();
    assert_eq!(mode(&key_file), 0o600);
    let secret = generated.trim_end();
    assert!(secret.len() >= 32, "a 256-bit secret");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        generated,
        "kept, not regenerated"
    );
    assert!(
        first.stderr.contains("master.key"),
        "a warning names the file: {}",
        first.stderr
    );
    for run in [&first, &second] {
        assert!(!run.output().contains(secret), "the secret is printed");
    }
}

/// Waits for `path` to exist while the child runs; panics with its log when it exits first.
fn wait_for_file(child: &mut Child, path: &Path, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited with {status}: {}", process::read_log(log));
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn serve_on_first_start_creates_admin_with_a_private_password_file_never_logged(
    backend: Backend,
) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let password_file = env.data_dir().join("initial-admin-password");

    // Act
    let mut server = env
        .serve(env.command(&["serve", "--bind", "127.0.0.1:0"]))
        .await;
    tokio::task::block_in_place(|| wait_for_file(&mut server.child, &password_file, &server.log));

    // Assert
    assert_eq!(mode(&password_file), 0o600);
    let password = std::fs::read_to_string(&password_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(password.len() >= 12, "a strong generated password");
    let http = Http::new(server.base("http"));
    let response = http.login(None, "admin", &password).await;
    assert_eq!(
        response.status(),
        200,
        "the first admin logs in with the file's password"
    );
    let token: Value = response.json().await.unwrap();
    let users = http
        .get("/admin/users")
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200, "with the admin role");
    let log = server.log.clone();
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(&password),
        "the password is in the log: {logged}"
    );
    assert!(
        logged.contains("initial-admin-password"),
        "the log points at the file: {logged}"
    );
}
test_both!(serve_on_first_start_creates_admin_with_a_private_password_file_never_logged);

async fn serve_with_existing_users_creates_no_admin(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;

    // Act
    let server = env
        .serve(env.command(&["serve", "--bind", "127.0.0.1:0"]))
        .await;
    drop(server);

    // Assert
    assert!(!env.data_dir().join("initial-admin-password").exists());
    let list = env.run(&["users", "list"]).await;
    assert!(
        list_line(&list.stdout, "admin").is_none(),
        "{}",
        list.stdout
    );
}
test_both!(serve_with_existing_users_creates_no_admin);

/// The state column of `keys list` for `kid`.
fn key_state(list: &str, kid: &str) -> Option<String> {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(kid))
        .and_then(|l| l.split_whitespace().nth(2))
        .map(str::to_owned)
}

async fn keys_rotate_makes_a_new_active_key_without_logging_anyone_out(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;
    let app = app_on(&env).await;
    let old_token = app.access_token("alice", PASSWORD).await;
    let old_kid = kid_of(&old_token);

    // Act
    let run = env.run(&["keys", "rotate"]).await;

    // Assert
    run.assert_success();
    let list = env.run(&["keys", "list"]).await;
    let new_kid = list
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("active"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("an active key: {}", list.stdout))
        .to_owned();
    assert_ne!(new_kid, old_kid);
    assert!(run.stdout.contains(&new_kid), "{}", run.stdout);
    assert_eq!(
        key_state(&list.stdout, &old_kid).as_deref(),
        Some("verifying"),
        "{}",
        list.stdout
    );
    assert_eq!(
        app.get("/protected", Some(&old_token)).await.status(),
        200,
        "rotation never logs anybody out"
    );
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let kid = kid_of(&app.access_token("alice", PASSWORD).await);
        if kid == new_kid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app still signs with {kid} after 6 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
test_both!(keys_rotate_makes_a_new_active_key_without_logging_anyone_out);

async fn keys_revoke_rejects_that_keys_tokens(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    create_user(&env, "alice", &[]).await;
    let app = app_on(&env).await;
    let token = app.access_token("alice", PASSWORD).await;
    let kid = kid_of(&token);

    // Act
    let run = env.run(&["keys", "revoke", &kid]).await;

    // Assert
    run.assert_success();
    let list = env.run(&["keys", "list"]).await;
    assert_eq!(
        key_state(&list.stdout, &kid).as_deref(),
        Some("revoked"),
        "{}",
        list.stdout
    );
    let revoked_at = Instant::now();
    loop {
        let response = app.get("/protected", Some(&token)).await;
        if response.status() == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "a token of the revoked key still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let fresh = app.access_token("alice", PASSWORD).await;
        if kid_of(&fresh) != kid {
            assert_eq!(app.get("/protected", Some(&fresh)).await.status(), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app still signs with the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
test_both!(keys_revoke_rejects_that_keys_tokens);

async fn keys_revoke_of_an_unknown_kid_fails(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    env.run(&["migrate"]).await.assert_success();

    // Act
    let run = env.run(&["keys", "revoke", "no-such-kid"]).await;

    // Assert
    run.assert_failure();
    assert!(run.stderr.contains("no-such-kid"), "{}", run.stderr);
}
test_both!(keys_revoke_of_an_unknown_kid_fails);

/// Regression: `bulwark openapi | head -1` panicked on the closed pipe (exit 101). Every
/// command writes to a closed standard output without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_standard_output_is_not_a_panic() {
    let env = BinEnv::new(Backend::Sqlite).await;
    for args in [
        &["openapi"][..],
        &["users", "list"],
        &["keys", "list"],
        &["check"],
    ] {
        let mut command = env.command(args);
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("starts");
        // The reader goes away before the command writes.
        drop(child.stdout.take());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "{args:?}: {stderr}");
    }
}

/// Regression: CLI commands printed INFO lines on standard error. Only warnings and errors,
/// unless `-v`; never terminal colours when standard error is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_log_only_warnings_unless_verbose_and_never_colour_a_pipe() {
    let env = BinEnv::new(Backend::Sqlite).await;
    // The first command may warn (it narrows the fresh data folder to 0700); then all is quiet.
    env.run(&["users", "list"]).await.assert_success();
    let quiet = env.run(&["users", "list"]).await;
    quiet.assert_success();
    assert!(quiet.stderr.trim().is_empty(), "{}", quiet.stderr);
    let verbose = env.run(&["-v", "users", "list"]).await;
    verbose.assert_success();
    assert!(verbose.stderr.contains("INFO"), "{}", verbose.stderr);
    assert!(
        !verbose.stderr.contains('\u{1b}'),
        "no colour in a pipe: {:?}",
        verbose.stderr
    );
}

/// Regression: a misspelt `BULWARK_*` variable was silently ignored, even by `check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_bulwark_variable_stops_every_command_naming_it() {
    let env = BinEnv::new(Backend::Sqlite).await;
    for args in [
        &["check"][..],
        &["users", "list"],
        &["serve", "--bind", "127.0.0.1:0"],
    ] {
        let mut command = env.command(args);
        command.env("BULWARK_RATE_LIMIT__DEFAULT", "1/minute");
        let run = process::run(command, None).await;
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("BULWARK_RATE_LIMIT__DEFAULT")
                && run.stderr.contains("BULWARK_RATE_LIMITS__DEFAULT"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// Regression: on default settings every request wrote its access line synchronously to
/// standard error. A reader that stalls (a full pipe nobody drains, a stuck terminal) must not
/// stall the server: lines are buffered, and dropped past the bound, never waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_reader_never_stalls_requests() {
    let env = BinEnv::new(Backend::Sqlite).await;
    let port = process::free_port();
    let mut command = process::serve_command(
        env.data_dir(),
        port,
        &env.database_url,
        &env.master_secret,
        None,
    );
    // Standard error is a pipe that is never read: it fills after 64 KiB (some 300 lines).
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .env_remove("RUST_LOG");
    let server = KillOnDrop(command.spawn().expect("starts"));
    let base = format!("http://127.0.0.1:{port}");
    let client = client(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Act: thousands of access lines, far past what the pipe holds.
    let started = Instant::now();
    for _ in 0..3000 {
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            client.get(format!("{base}/health")).send(),
        )
        .await
        .expect("a request is never held up by the log")
        .expect("request");
        assert_eq!(response.status(), 200);
    }

    // Assert
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(server);
}
