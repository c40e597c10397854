//! What each subcommand does.

use std::{io::IsTerminal as _, process::ExitCode};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::audit::AuditKind;
use crate::{
    cli::{Cli, Command, KeysCommand, ServeArgs, UsersCommand},
    config::Settings,
    db::{self, NewUser},
    domain::{Username, rfc3339},
    startup::{Application, build_state, shutdown_signal},
    state::AppState,
    users::{CreateUserError, create_user},
};

/// Writes a line to standard output. A closed pipe (`bulwark openapi | head -1`) is not an
/// error: what is left is simply not wanted; any other failure is reported on standard error.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::write_stdout(format_args!($($arg)*))
    };
}

#[doc(hidden)]
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(err) => eprintln!("error: cannot write to standard output: {err}"),
    }
}

/// The log filter when `RUST_LOG` is unset: `serve` keeps its access log at info; the other
/// commands log warnings and errors only, unless `-v`.
fn default_log_filter(command: &Command, verbose: u8) -> &'static str {
    match (verbose, command) {
        (0, Command::Serve(_)) | (1, _) => "info,sqlx=warn",
        (0, _) => "warn",
        _ => "debug",
    }
}

/// Runs one command to completion.
///
/// # Errors
/// Any failure, with context for the user.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The security audit of another API needs none of the server's settings, variables or
    // database: it runs before they are loaded.
    let cli = match cli {
        Cli {
            command: Command::Audit(args),
            verbose,
            ..
        } => return Ok(crate::audit_cli::run(*args, verbose)),
        cli => cli,
    };
    if let Command::Openapi = cli.command {
        let doc = crate::routes::openapi()
            .to_pretty_json()
            .context("cannot render the OpenAPI document")?;
        out!("{doc}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Check = cli.command {
        let (settings, invalid) = Settings::load_for_check(cli.config.as_deref())?;
        let findings = crate::checks::report(&settings, &invalid);
        for finding in &findings {
            out!("{finding}");
        }
        return Ok(if crate::checks::has_critical(&findings) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    // Held to the end: dropping it writes the lines still queued.
    let log = crate::telemetry::init(
        settings.log_format,
        default_log_filter(&cli.command, cli.verbose),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(&mut settings, args, &log).await,
            Command::Users(cmd) => users(settings, cmd).await,
            Command::Keys(cmd) => keys(settings, cmd).await,
            Command::Migrate => {
                db::connect_with(&settings.database_url, settings.pool()).await?;
                out!("migrations applied");
                Ok(ExitCode::SUCCESS)
            }
            Command::Openapi | Command::Check | Command::Audit(_) => Ok(ExitCode::SUCCESS),
        }
    })
}

async fn serve(
    settings: &mut Settings,
    args: ServeArgs,
    log: &crate::telemetry::LogGuard,
) -> anyhow::Result<ExitCode> {
    if let Some(bind) = args.bind {
        settings.bind = bind;
    }
    // Flags replace the file's and the environment's TLS choice as a whole.
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        settings.tls_cert = Some(cert);
        settings.tls_key = Some(key);
        settings.tls_self_signed = false;
    } else if args.self_signed {
        settings.tls_cert = None;
        settings.tls_key = None;
        settings.tls_self_signed = true;
    }
    if let Some(redirect) = args.redirect_http {
        settings.redirect_http = Some(redirect);
    }
    // Before anything is opened or bound: a critical finding stops start-up unless the operator
    // said otherwise.
    let findings = crate::checks::run(settings);
    if crate::checks::has_critical(&findings) && !args.allow_insecure {
        for finding in findings
            .iter()
            .filter(|f| f.severity == crate::checks::Severity::Critical)
        {
            eprintln!("{finding}");
        }
        eprintln!(
            "error: refusing to start with a critical configuration finding; fix it, or start with --allow-insecure"
        );
        return Ok(ExitCode::FAILURE);
    }
    let app = Application::build_logged(settings.clone(), log.access_log()).await?;
    // Installed before serving, so that SIGHUP never ends the process.
    let reloader = crate::https::reload_on_sighup(app.certificate().cloned())?;
    bootstrap_admin(app.state(), settings).await?;
    let scheme = if settings.tls_enabled() {
        "https"
    } else {
        "http"
    };
    for finding in &findings {
        match finding.severity {
            crate::checks::Severity::Critical => {
                tracing::error!(check = finding.key, "{}", finding.message)
            }
            crate::checks::Severity::Warning => {
                tracing::warn!(check = finding.key, "{}", finding.message)
            }
            crate::checks::Severity::Ok => {
                tracing::debug!(check = finding.key, "{}", finding.message)
            }
        }
    }
    print_banner(&app, settings, scheme, &findings)?;
    tracing::info!(addr = %app.local_addr()?, scheme, backend = app.state().repo.backend(), "listening");
    if let Some(redirect) = app.redirect_addr() {
        tracing::info!(addr = %redirect, "redirecting plain HTTP to HTTPS");
    }
    let drop_reporter = Some(log.spawn_drop_reporter(std::time::Duration::from_secs(10)));
    app.run_until_stopped(shutdown_signal()).await;
    reloader.abort();
    if let Some(reporter) = drop_reporter {
        reporter.abort();
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Records an audit event for a CLI action.
async fn cli_audit(
    state: &AppState,
    kind: AuditKind,
    user: Option<(i64, &str)>,
    detail: Option<String>,
) {
    crate::audit::record(
        state.repo.as_ref(),
        kind,
        crate::audit::AuditEvent {
            user_id: user.map(|u| u.0),
            username: user.map(|u| u.1.to_owned()),
            ip: None,
            detail: Some(detail.map_or_else(|| "cli".to_owned(), |d| format!("cli: {d}"))),
        },
    )
    .await;
}

/// One short block on standard error: what is running and how it is protected.
fn print_banner(
    app: &Application,
    settings: &Settings,
    scheme: &str,
    findings: &[crate::checks::Finding],
) -> anyhow::Result<()> {
    use crate::checks::Severity;
    let addr = app.local_addr()?;
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let state = app.state();
    let stores = if settings.redis_url.is_some() {
        "Redis"
    } else {
        "memory"
    };
    let docs = if settings.docs {
        format!("{scheme}://{addr}/docs/")
    } else {
        "off".to_owned()
    };
    let redirect = app
        .redirect_addr()
        .map(|r| format!(" (plain HTTP on {r} redirects)"))
        .unwrap_or_default();
    eprintln!(
        "bulwark {version}\n  listening  {scheme}://{addr}{redirect}\n  TLS        {tls}\n  database   {db}\n  stores     rate limits: {stores}, revocations: {rev}, events: {events}\n  docs       {docs}\n  mail       {mail}\n  checks     {crit} critical, {warn} warning(s) (run `bulwark check` for details)",
        version = env!("CARGO_PKG_VERSION"),
        tls = if settings.tls_enabled() { "on" } else { "off" },
        db = state.repo.backend(),
        rev = if settings.redis_url.is_some() {
            "Redis"
        } else {
            "database"
        },
        events = state.events.name(),
        crit = count(Severity::Critical),
        warn = count(Severity::Warning),
        mail = if settings.smtp_url.is_some() {
            state.mail_transport.clone()
        } else {
            format!(
                "{} (no smtp_url: each mail is written there as an .eml file)",
                state.mail_transport
            )
        },
    );
    Ok(())
}

/// On a first start with no users at all, creates `admin` with a random password shown once:
/// on the terminal when there is one, else in a 0600 file in the data folder. Never in a log.
async fn bootstrap_admin(state: &AppState, settings: &Settings) -> anyhow::Result<()> {
    if state.repo.count_users().await? > 0 {
        return Ok(());
    }
    let password = loop {
        let candidate = bulwark::secret::random_token(18);
        if state.policy.check(&candidate, &["admin"]).is_ok() {
            break candidate;
        }
    };
    match create_user(
        state.repo.as_ref(),
        &state.hasher,
        &state.policy,
        "admin",
        password.clone(),
        vec!["admin".to_owned()],
        None,
    )
    .await
    {
        Ok(_) => {}
        // Another instance created it first.
        Err(CreateUserError::Conflict) => return Ok(()),
        Err(err) => return Err(anyhow::anyhow!("cannot create the first admin: {err}")),
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n  First start: created user 'admin' (role admin) with password:\n\n      {password}\n\n  It is shown once. Log in with it and change it.\n"
        );
    } else {
        let path = settings.data_dir.join("initial-admin-password");
        let content = format!("{password}\n");
        let written = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                crate::config::write_private_file(&path, content.as_bytes(), true)
            })
            .await?
        };
        written?;
        tracing::warn!(path = %path.display(), "first start: created user 'admin'; its password is in this file (mode 0600): read it, then delete the file");
    }
    Ok(())
}

async fn users(settings: Settings, cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    let state = build_state(settings).await?;
    let repo = state.repo.as_ref();
    match cmd {
        UsersCommand::Create {
            name,
            roles,
            password_stdin,
        } => {
            let password = read_password(password_stdin).await?;
            match create_user(
                repo,
                &state.hasher,
                &state.policy,
                &name,
                password,
                roles,
                None,
            )
            .await
            {
                Ok(user) => {
                    cli_audit(
                        &state,
                        AuditKind::UserCreated,
                        Some((user.id, &user.username)),
                        None,
                    )
                    .await;
                    out!("created user {} (id {})", user.username, user.id);
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => bail!("cannot create user {name:?}: {err}"),
            }
        }
        UsersCommand::List => {
            out!(
                "{:<6} {:<24} {:<24} {:<9} {:<20} {:<9} email",
                "id",
                "username",
                "roles",
                "disabled",
                "created_at",
                "verified"
            );
            // `-` for no roles and no address: every line has the same columns.
            for u in repo.list_users().await? {
                let roles = if u.roles.is_empty() {
                    "-".to_owned()
                } else {
                    u.roles.join(",")
                };
                out!(
                    "{:<6} {:<24} {:<24} {:<9} {:<20} {:<9} {}",
                    u.id,
                    u.username,
                    roles,
                    u.disabled,
                    rfc3339(u.created_at),
                    u.email_verified,
                    u.email.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Disable { name } => {
            let user = find_user(repo, &name).await?;
            repo.set_disabled(user.id, true).await?;
            state.sessions.invalidate_user_tokens(user.id).await?;
            cli_audit(
                &state,
                AuditKind::UserDisabled,
                Some((user.id, &user.username)),
                None,
            )
            .await;
            out!("disabled {}", user.username);
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Enable { name } => {
            let user = find_user(repo, &name).await?;
            repo.set_disabled(user.id, false).await?;
            // As for every change of status: tokens issued before it stay dead.
            state.sessions.invalidate_user_tokens(user.id).await?;
            cli_audit(
                &state,
                AuditKind::UserEnabled,
                Some((user.id, &user.username)),
                None,
            )
            .await;
            out!("enabled {}", user.username);
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Delete { name } => {
            let user = find_user(repo, &name).await?;
            if is_last_admin(repo, &user).await? {
                bail!(
                    "refusing to delete {:?}: no other enabled user has the admin role, and a deployment must keep one; grant admin to another user first (bulwark users set-roles NAME admin)",
                    user.username
                );
            }
            crate::accounts::delete_user(repo, &state.sessions, &user).await?;
            cli_audit(
                &state,
                AuditKind::UserDeleted,
                Some((user.id, &user.username)),
                None,
            )
            .await;
            out!("deleted {} with their items and tokens", user.username);
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::SetPassword {
            name,
            password_stdin,
        } => {
            let user = find_user(repo, &name).await?;
            let password = read_password(password_stdin).await?;
            let mut inputs = vec![user.username.as_str()];
            inputs.extend(user.email.as_deref());
            if let Err(violation) = state.policy.check(&password, &inputs) {
                bail!(
                    "password of {:?} not changed: {}",
                    user.username,
                    violation.message()
                );
            }
            let hash = state
                .hasher
                .hash(secrecy::SecretString::from(password))
                .await
                .context("cannot hash the password")?;
            // Also deletes the user's pending reset tokens.
            repo.set_password_hash(user.id, hash.as_str()).await?;
            state.sessions.invalidate_user_tokens(user.id).await?;
            cli_audit(
                &state,
                AuditKind::PasswordChanged,
                Some((user.id, &user.username)),
                None,
            )
            .await;
            out!(
                "password of {} changed; their tokens and sessions are revoked",
                user.username
            );
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::SetRoles { name, mut roles } => {
            let user = find_user(repo, &name).await?;
            if let Some(bad) = roles.iter().find(|r| !bulwark::rbac::is_valid_role_name(r)) {
                bail!("invalid role {bad:?}: roles match [a-z][a-z0-9_-]{{0,31}}");
            }
            roles.sort();
            roles.dedup();
            repo.set_roles(user.id, &roles).await?;
            state.sessions.invalidate_user_tokens(user.id).await?;
            cli_audit(
                &state,
                AuditKind::RolesChanged,
                Some((user.id, &user.username)),
                None,
            )
            .await;
            out!("{} now has roles: {}", user.username, roles.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Import { file } => import_users(&state, file).await,
    }
}

/// The user named `name` (compared case-insensitively), or an error that names it.
async fn find_user(repo: &dyn db::Repository, name: &str) -> anyhow::Result<db::User> {
    repo.find_user(name)
        .await?
        .with_context(|| format!("no user {name:?}"))
}

/// Whether deleting `user` would leave no enabled user with the `admin` role.
async fn is_last_admin(repo: &dyn db::Repository, user: &db::User) -> anyhow::Result<bool> {
    let is_admin = |u: &db::User| u.roles.iter().any(|r| r == "admin");
    if !is_admin(user) {
        return Ok(false);
    }
    let others = repo
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.id != user.id && !u.disabled && is_admin(u))
        .count();
    Ok(others == 0)
}

async fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        if from_stdin {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                bail!("no password on standard input");
            }
            return Ok(password);
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "standard input is not a terminal: pass --password-stdin and pipe the password in"
            );
        }
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        Ok(first)
    })
    .await?
}

/// One entry of an import file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportedUser {
    username: String,
    hashed_password: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
}

fn is_supported_hash(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$argon2id$"]
        .iter()
        .any(|p| hash.starts_with(p))
}

async fn import_users(state: &AppState, file: std::path::PathBuf) -> anyhow::Result<ExitCode> {
    let bytes = tokio::fs::read(&file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let entries: Vec<ImportedUser> = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: expected a JSON array of {{\"username\", \"hashed_password\", \"roles\", \"disabled\", \"email\", \"email_verified\"}}",
            file.display()
        )
    })?;
    let (mut imported, mut skipped, mut refused) = (0, 0, 0);
    for (i, entry) in entries.into_iter().enumerate() {
        let name = match Username::parse(&entry.username, &["username"]) {
            Ok(name) => name,
            Err(detail) => {
                eprintln!("entry {i}: refused: {}", detail.msg);
                refused += 1;
                continue;
            }
        };
        if !is_supported_hash(&entry.hashed_password) {
            eprintln!(
                "entry {i} ({}): refused: hashed_password is not a bcrypt ($2a$/$2b$/$2y$) or Argon2id hash",
                name.as_str()
            );
            refused += 1;
            continue;
        }
        if let Some(bad) = entry
            .roles
            .iter()
            .find(|r| !bulwark::rbac::is_valid_role_name(r))
        {
            eprintln!(
                "entry {i} ({}): refused: invalid role {bad:?}",
                name.as_str()
            );
            refused += 1;
            continue;
        }
        if let Some(email) = &entry.email
            && let Err(detail) = crate::accounts::check_email(email, "email")
        {
            eprintln!(
                "entry {i} ({}): refused: email: {}",
                name.as_str(),
                detail.msg
            );
            refused += 1;
            continue;
        }
        // Told apart before inserting, so that the message says which one is taken (the
        // insert's unique constraints still decide a race).
        if state.repo.find_user(name.as_str()).await?.is_some() {
            eprintln!(
                "entry {i} ({}): skipped: the username exists",
                name.as_str()
            );
            skipped += 1;
            continue;
        }
        if let Some(email) = &entry.email
            && state.repo.find_by_email(email).await?.is_some()
        {
            eprintln!(
                "entry {i} ({}): skipped: another user has this email address",
                name.as_str()
            );
            skipped += 1;
            continue;
        }
        let user = NewUser {
            username: name.as_str().to_owned(),
            password_hash: entry.hashed_password,
            roles: entry.roles,
            disabled: entry.disabled,
            email_verified: entry.email.is_some() && entry.email_verified,
            email: entry.email,
        };
        match state.repo.create_user(user).await {
            Ok(_) => imported += 1,
            Err(db::DbError::Conflict) => {
                eprintln!(
                    "entry {i} ({}): skipped: the username or email address exists",
                    name.as_str()
                );
                skipped += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
    out!("imported {imported}, skipped {skipped} existing, refused {refused}");
    Ok(if refused > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn keys(settings: Settings, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let state = build_state(settings).await?;
    match cmd {
        KeysCommand::List => {}
        KeysCommand::Rotate => {
            let kid = state.keys.rotate().await?;
            cli_audit(
                &state,
                AuditKind::KeyRotated,
                None,
                Some(format!("new key {kid}")),
            )
            .await;
            out!(
                "rotated: new active key {kid}; the previous key verifies until its tokens expire"
            );
            return Ok(ExitCode::SUCCESS);
        }
        KeysCommand::Revoke { kid } => {
            state.keys.revoke(&kid).await?;
            cli_audit(
                &state,
                AuditKind::KeyRevoked,
                None,
                Some(format!("key {kid}")),
            )
            .await;
            out!("revoked key {kid}: its tokens are rejected now");
            return Ok(ExitCode::SUCCESS);
        }
    }
    out!(
        "{:<18} {:<6} {:<10} {:<22} retires_at",
        "kid",
        "alg",
        "state",
        "created_at"
    );
    for key in state.keys.ring().keys() {
        out!(
            "{:<18} {:<6} {:<10} {:<22} {}",
            key.kid(),
            key.alg_name(),
            key.state().as_str(),
            rfc3339(key.created_at()),
            key.retires_at()
                .map(rfc3339)
                .unwrap_or_else(|| "-".to_owned())
        );
    }
    Ok(ExitCode::SUCCESS)
}
