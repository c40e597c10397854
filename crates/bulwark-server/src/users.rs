//! Creating users with every rule applied, shared by the HTTP routes and the CLI.

use bulwark::{
    error::{ErrorDetail, ValidationErrors},
    password::{PasswordHasher, PasswordPolicy},
    rbac::is_valid_role_name,
    validation::with_safe_input,
};
use secrecy::SecretString;
use serde_json::json;

use crate::{
    db::{DbError, NewUser, Repository, User},
    domain::Username,
};

/// Why a user was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Bad username, password or role (422).
    #[error("{}", describe(.0))]
    Invalid(ValidationErrors),
    /// The username is taken (409).
    #[error("username already exists")]
    Conflict,
    /// Another user has the e-mail address (409).
    #[error("email already registered")]
    EmailConflict,
    /// Database or hasher failure (500).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn describe(errors: &ValidationErrors) -> String {
    errors
        .details()
        .iter()
        .map(|d| {
            // The field path without its source, e.g. `roles.1` (the last item alone would be
            // a bare index for a role).
            let field: Vec<String> = d.loc.iter().skip(1).map(loc_name).collect();
            format!("{}: {}", field.join("."), d.msg)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn loc_name(item: &bulwark::error::LocItem) -> String {
    match item {
        bulwark::error::LocItem::Key(k) => k.clone(),
        bulwark::error::LocItem::Index(i) => i.to_string(),
    }
}

/// Validates role names, reporting each bad one at `["body", "roles", i]`.
///
/// # Errors
/// The details of bad names.
pub fn check_roles(roles: &[String], errors: &mut ValidationErrors) {
    for (i, role) in roles.iter().enumerate() {
        if !is_valid_role_name(role) {
            errors.push(with_safe_input(
                ErrorDetail::new(
                    "string_pattern_mismatch",
                    vec![
                        "body".into(),
                        "roles".into(),
                        bulwark::error::LocItem::Index(i),
                    ],
                    "String should match pattern '^[a-z][a-z0-9_-]{0,31}$'",
                )
                .with_ctx(json!({"pattern": "^[a-z][a-z0-9_-]{0,31}$"})),
                json!(role),
            ));
        }
    }
}

/// Validates and creates a user, hashing the password off the async threads.
///
/// # Errors
/// [`CreateUserError`].
pub async fn create_user(
    repo: &dyn Repository,
    hasher: &PasswordHasher,
    policy: &PasswordPolicy,
    username: &str,
    password: String,
    roles: Vec<String>,
    email: Option<String>,
) -> Result<User, CreateUserError> {
    let mut errors = ValidationErrors::new();
    let name = match Username::parse(username, &["body", "username"]) {
        Ok(name) => Some(name),
        Err(detail) => {
            errors.push(detail);
            None
        }
    };
    if let Some(email) = &email
        && let Err(detail) = crate::accounts::check_email(email, "email")
    {
        errors.push(detail);
    }
    let mut inputs = vec![username];
    inputs.extend(email.as_deref());
    if let Err(violation) = policy.check(&password, &inputs) {
        errors.push(violation.to_error_detail(["body", "password"]));
    }
    check_roles(&roles, &mut errors);
    let mut roles = roles;
    roles.sort();
    roles.dedup();
    let name = match (errors.is_empty(), name) {
        (true, Some(name)) => name,
        _ => return Err(CreateUserError::Invalid(errors)),
    };
    if repo
        .find_user(name.as_str())
        .await
        .map_err(anyhow::Error::from)?
        .is_some()
    {
        return Err(CreateUserError::Conflict);
    }
    if let Some(email) = &email
        && repo
            .find_by_email(email)
            .await
            .map_err(anyhow::Error::from)?
            .is_some()
    {
        return Err(CreateUserError::EmailConflict);
    }
    let hash = hasher
        .hash(SecretString::from(password))
        .await
        .map_err(anyhow::Error::from)?;
    let email_again = email.clone();
    let user = NewUser {
        username: name.into_string(),
        password_hash: hash.into_string(),
        roles,
        disabled: false,
        email,
        email_verified: false,
    };
    match repo.create_user(user).await {
        Ok(user) => Ok(user),
        // Lost a race with another create: say which of the two unique values was taken.
        Err(DbError::Conflict) => match email_taken(repo, email_again.as_deref()).await {
            true => Err(CreateUserError::EmailConflict),
            false => Err(CreateUserError::Conflict),
        },
        Err(err) => Err(CreateUserError::Internal(err.into())),
    }
}

/// Whether another user has `email` (a failed lookup says no: the answer is only the message of
/// a 409).
async fn email_taken(repo: &dyn Repository, email: Option<&str>) -> bool {
    match email {
        Some(email) => repo.find_by_email(email).await.ok().flatten().is_some(),
        None => false,
    }
}
