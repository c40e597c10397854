//! The caller's own profile, signup and user administration.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bulwark::{
    client_ip::ClientIp,
    error::{HttpError, ValidationErrors},
    rbac::{Admin, RequireRole},
    validation::{BodyRejection, Json, Path},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    audit::{AuditEvent, AuditKind},
    auth::CurrentUser,
    db::User,
    domain::rfc3339,
    errors::internal,
    state::AppState,
    users::{CreateUserError, check_roles, create_user},
};

/// The user routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(protected))
        .routes(routes!(me))
        .routes(routes!(signup))
        .routes(routes!(list_users, admin_create_user))
        .routes(routes!(patch_user, delete_user))
}

/// A user as answered: never a password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// Stable id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Whether disabled.
    pub disabled: bool,
    /// E-mail address, as given.
    #[schema(format = Email)]
    pub email: Option<String>,
    /// Whether the address was verified through a mailed link.
    pub email_verified: bool,
    /// RFC 3339.
    pub created_at: String,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            roles: u.roles,
            disabled: u.disabled,
            email: u.email,
            email_verified: u.email_verified,
            created_at: rfc3339(u.created_at),
        }
    }
}

/// The 409 of an address another user has.
pub const EMAIL_CONFLICT: &str = "Email already registered";

/// A message.
#[derive(Serialize, ToSchema)]
pub struct Message {
    /// Text.
    pub message: String,
}

/// Body of `POST /users/signup`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    /// 3-64 characters of `[A-Za-z0-9_.-]`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,64}$", min_length = 3, max_length = 64)]
    pub username: String,
    /// 12-128 characters, not common, not weak.
    #[schema(format = Password, min_length = 12, max_length = 128)]
    pub password: String,
    /// E-mail address (optional): at most 254 characters, one `@`; unique, case-insensitively.
    #[schema(format = Email, max_length = 254)]
    #[serde(default)]
    pub email: Option<String>,
}

/// Body of `POST /admin/users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminCreateUserBody {
    /// 3-64 characters of `[A-Za-z0-9_.-]`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,64}$", min_length = 3, max_length = 64)]
    pub username: String,
    /// 12-128 characters, not common, not weak.
    #[schema(format = Password, min_length = 12, max_length = 128)]
    pub password: String,
    /// Role names `[a-z][a-z0-9_-]{0,31}`.
    #[serde(default)]
    #[schema(schema_with = role_names)]
    pub roles: Vec<String>,
    /// E-mail address (optional): at most 254 characters, one `@`; unique, case-insensitively.
    #[schema(format = Email, max_length = 254)]
    #[serde(default)]
    pub email: Option<String>,
}

/// Body of `PATCH /admin/users/{user_id}`: any of the fields.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    /// New roles: role names `[a-z][a-z0-9_-]{0,31}`.
    #[schema(schema_with = optional_role_names)]
    pub roles: Option<Vec<String>>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// New password: 12-128 characters, not common, not weak.
    #[schema(format = Password, min_length = 12, max_length = 128)]
    pub password: Option<String>,
    /// New e-mail address (unverified until its owner follows a verification link).
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
}

/// A list of role names, as the contract writes them (`admin` is built in).
fn role_names() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, schema::Type};
    ArrayBuilder::new().items(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z][a-z0-9_-]{0,31}$")),
    )
}

/// [`role_names`], or `null` (no change).
fn optional_role_names() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{SchemaType, Type};
    role_names().schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
}

fn create_error(err: CreateUserError) -> Response {
    match err {
        CreateUserError::Invalid(errors) => errors.into_response(),
        CreateUserError::Conflict => HttpError::conflict("Username already exists").into_response(),
        CreateUserError::EmailConflict => HttpError::conflict(EMAIL_CONFLICT).into_response(),
        CreateUserError::Internal(err) => internal(err),
    }
}

/// A route any authenticated user may call.
#[utoipa::path(get, path = "/protected", tag = "users",
    responses((status = 200, body = Message), (status = 401)))]
async fn protected(user: CurrentUser) -> axum::Json<Message> {
    axum::Json(Message {
        message: format!("Beware, {}. This is a protected route.", user.username()),
    })
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = "users",
    responses((status = 200, body = UserOut), (status = 401)))]
async fn me(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<axum::Json<UserOut>, Response> {
    let found = state.repo.get_user(user.id).await.map_err(internal)?;
    match found {
        Some(u) if !u.disabled => Ok(axum::Json(u.into())),
        _ => Err(HttpError::unauthorized("Could not validate credentials").into_response()),
    }
}

/// Open registration, only when `allow_signup = true` (else 404).
#[utoipa::path(post, path = "/users/signup", tag = "users", request_body = SignupBody,
    responses((status = 201, body = UserOut), (status = 404), (status = 409), (status = 422)))]
async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Json<SignupBody>, BodyRejection>,
) -> Result<(StatusCode, axum::Json<UserOut>), Response> {
    // A closed route answers 404 whatever the body: its body rules are not revealed either.
    if !state.settings.allow_signup {
        return Err(HttpError::not_found().into_response());
    }
    let Json(body) = body.map_err(IntoResponse::into_response)?;
    if state.settings.require_verified_email && body.email.is_none() {
        // Without an address such a user could never log in.
        let mut errors = ValidationErrors::new();
        errors.push(bulwark::error::ErrorDetail::new(
            "missing",
            ["body", "email"],
            "Field required (require_verified_email is on)",
        ));
        return Err(errors.into_response());
    }
    let user = create_user(
        state.repo.as_ref(),
        &state.hasher,
        &state.policy,
        &body.username,
        body.password,
        Vec::new(),
        body.email,
    )
    .await
    .map_err(create_error)?;
    audit_user(
        &state,
        AuditKind::UserCreated,
        &user,
        None,
        ip,
        Some("signup"),
    )
    .await;
    state.accounts.welcome(&user, ip).await;
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

/// Every user (admin only).
#[utoipa::path(get, path = "/admin/users", tag = "admin",
    responses((status = 200, body = Vec<UserOut>), (status = 401), (status = 403)))]
async fn list_users(
    State(state): State<AppState>,
    _admin: RequireRole<Admin>,
) -> Result<axum::Json<Vec<UserOut>>, Response> {
    let users = state.repo.list_users().await.map_err(internal)?;
    Ok(axum::Json(users.into_iter().map(Into::into).collect()))
}

/// Create a user with roles (admin only).
#[utoipa::path(post, path = "/admin/users", tag = "admin", request_body = AdminCreateUserBody,
    responses((status = 201, body = UserOut), (status = 401), (status = 403), (status = 409), (status = 422)))]
async fn admin_create_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequireRole(admin, _): RequireRole<Admin>,
    Json(body): Json<AdminCreateUserBody>,
) -> Result<(StatusCode, axum::Json<UserOut>), Response> {
    let user = create_user(
        state.repo.as_ref(),
        &state.hasher,
        &state.policy,
        &body.username,
        body.password,
        body.roles,
        body.email,
    )
    .await
    .map_err(create_error)?;
    audit_user(
        &state,
        AuditKind::UserCreated,
        &user,
        Some(&admin),
        ip,
        None,
    )
    .await;
    state.accounts.welcome(&user, ip).await;
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

/// Change a user's roles, disabled flag or password (admin only).
#[utoipa::path(patch, path = "/admin/users/{user_id}", tag = "admin", request_body = PatchUserBody,
    params(("user_id" = i64, Path, description = "User id")),
    responses((status = 200, body = UserOut), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
async fn patch_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequireRole(admin, _): RequireRole<Admin>,
    Path(user_id): Path<i64>,
    Json(body): Json<PatchUserBody>,
) -> Result<axum::Json<UserOut>, Response> {
    let existing = state
        .repo
        .get_user(user_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "User not found").into_response())?;
    let mut errors = ValidationErrors::new();
    if let Some(roles) = &body.roles {
        check_roles(roles, &mut errors);
    }
    let mut inputs = vec![existing.username.as_str()];
    inputs.extend(existing.email.as_deref());
    if let Some(email) = &body.email {
        inputs.push(email.as_str());
    }
    if let Some(password) = &body.password
        && let Err(v) = state.policy.check(password, &inputs)
    {
        errors.push(v.to_error_detail(["body", "password"]));
    }
    if let Some(email) = &body.email
        && let Err(detail) = crate::accounts::check_email(email, "email")
    {
        errors.push(detail);
    }
    errors
        .into_result(())
        .map_err(IntoResponse::into_response)?;
    if let Some(email) = &body.email {
        match state.repo.set_email(user_id, Some(email)).await {
            Ok(_) => {}
            Err(crate::db::DbError::Conflict) => {
                return Err(HttpError::conflict(EMAIL_CONFLICT).into_response());
            }
            Err(err) => return Err(internal(err)),
        }
    }
    let changes = body.password.is_some() || body.roles.is_some() || body.disabled.is_some();
    let mut audit = Vec::new();
    if body.email.is_some() {
        audit.push(AuditKind::EmailChanged);
    }
    if body.password.is_some() {
        audit.push(AuditKind::PasswordChanged);
    }
    if body.roles.is_some() {
        audit.push(AuditKind::RolesChanged);
    }
    match body.disabled {
        Some(true) => audit.push(AuditKind::UserDisabled),
        Some(false) => audit.push(AuditKind::UserEnabled),
        None => {}
    }
    if let Some(password) = body.password {
        let hash = state
            .hasher
            .hash(SecretString::from(password))
            .await
            .map_err(internal)?;
        state
            .repo
            .set_password_hash(user_id, hash.as_str())
            .await
            .map_err(internal)?;
    }
    if let Some(mut roles) = body.roles {
        roles.sort();
        roles.dedup();
        state
            .repo
            .set_roles(user_id, &roles)
            .await
            .map_err(internal)?;
    }
    if let Some(disabled) = body.disabled {
        state
            .repo
            .set_disabled(user_id, disabled)
            .await
            .map_err(internal)?;
    }
    // Any change of password, roles or status ends every outstanding token of the user.
    if changes {
        state
            .sessions
            .invalidate_user_tokens(user_id)
            .await
            .map_err(internal)?;
    }
    let user = state
        .repo
        .get_user(user_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "User not found").into_response())?;
    for kind in audit {
        audit_user(&state, kind, &user, Some(&admin), ip, None).await;
    }
    if body.email.is_some() {
        // The new address is unverified: its owner gets the link (under
        // require_verified_email they could not log in to ask for it).
        state.accounts.welcome(&user, ip).await;
    }
    Ok(axum::Json(user.into()))
}

/// Delete a user with their items, tokens, API keys and second-factor data (admin only; the
/// audit trail keeps the event). An admin cannot delete themself.
#[utoipa::path(delete, path = "/admin/users/{user_id}", tag = "admin",
    params(("user_id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "An admin cannot delete themself"), (status = 422)))]
async fn delete_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequireRole(admin, _): RequireRole<Admin>,
    Path(user_id): Path<i64>,
) -> Response {
    match state.accounts.delete_user(&admin, user_id, ip).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

/// Records a user-administration event: the user concerned, who acted (an admin, when one
/// did) and from which client IP.
pub(crate) async fn audit_user(
    state: &AppState,
    kind: AuditKind,
    user: &User,
    by: Option<&bulwark::jwt::Claims>,
    ip: std::net::IpAddr,
    detail: Option<&str>,
) {
    let detail = match (by, detail) {
        (Some(admin), _) => Some(format!("by admin {}", admin.sub)),
        (None, Some(d)) => Some(d.to_owned()),
        (None, None) => None,
    };
    crate::audit::record(
        state.repo.as_ref(),
        kind,
        AuditEvent {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            ip: Some(ip),
            detail,
        },
    )
    .await;
}
