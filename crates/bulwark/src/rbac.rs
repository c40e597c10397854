//! Role-based authorization: who may do what, answered 401 or 403 correctly.
//!
//! **Threat model.** The guide this project follows checks roles with a function that always
//! passes. Here the check is an extractor: a handler that takes [`RequireRole<Admin>`] cannot run
//! unless the caller is authenticated (else 401, from [`crate::jwt::CurrentUser`]) *and* holds
//! the role (else 403 `{"detail": "Insufficient permissions"}`). Roles come from the verified
//! token, so they cannot be supplied by the client.
//!
//! **Not covered.** Object-level rules ("owner or admin") belong to the handler, which knows the
//! object; use [`crate::jwt::Claims::has_role`] there. A role removed from a user stays in tokens
//! already issued until they expire or are revoked.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::{
    error::HttpError,
    jwt::{AuthRejection, Claims, CurrentUser, JwtAuth},
};

/// A role known at compile time, for [`RequireRole`]; declare one with [`role!`](crate::role).
pub trait RoleName {
    /// The role's name.
    const NAME: &'static str;
}

/// The built-in `admin` role.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl RoleName for Admin {
    const NAME: &'static str = "admin";
}

/// True when `name` is a valid role name: `[a-z][a-z0-9_-]{0,31}`.
///
/// # Examples
/// ```
/// assert!(bulwark::rbac::is_valid_role_name("admin"));
/// assert!(!bulwark::rbac::is_valid_role_name("Admin"));
/// assert!(!bulwark::rbac::is_valid_role_name("1st"));
/// ```
pub const fn is_valid_role_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 32 || !bytes[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares a role for [`RequireRole`], its name checked at compile time
/// ([`is_valid_role_name`]).
///
/// # Examples
/// ```
/// use axum::{Router, routing::post, extract::FromRef};
/// use bulwark::{jwt::JwtAuth, rbac::RequireRole};
///
/// bulwark::role!(pub Editor = "editor");
///
/// #[derive(Clone, FromRef)]
/// struct AppState { jwt: JwtAuth }
///
/// async fn publish(editor: RequireRole<Editor>) -> String {
///     format!("published by {}", editor.sub)
/// }
///
/// fn app(jwt: JwtAuth) -> Router {
///     Router::new().route("/publish", post(publish)).with_state(AppState { jwt })
/// }
/// ```
/// A name that is not a role name does not compile:
/// ```compile_fail
/// bulwark::role!(Bad = "Not A Role");
/// ```
#[macro_export]
macro_rules! role {
    ($vis:vis $name:ident = $role:literal) => {
        #[doc = concat!("The `", $role, "` role, for `bulwark::rbac::RequireRole`.")]
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        const _: () = assert!(
            $crate::rbac::is_valid_role_name($role),
            concat!("not a role name (lowercase letter, then up to 31 of a-z 0-9 _ -): ", $role)
        );

        impl $crate::rbac::RoleName for $name {
            const NAME: &'static str = $role;
        }
    };
}

/// Checks that `claims` carry `role`.
///
/// # Errors
/// [`HttpError::forbidden`] (403) when they do not.
pub fn require_role(claims: &Claims, role: &str) -> Result<(), HttpError> {
    if claims.has_role(role) {
        Ok(())
    } else {
        Err(HttpError::forbidden())
    }
}

/// Extracts the caller's claims only if they hold role `R`.
///
/// # Examples
/// ```
/// use axum::{Router, routing::get, extract::FromRef};
/// use bulwark::{jwt::JwtAuth, rbac::{Admin, RequireRole}};
///
/// #[derive(Clone, FromRef)]
/// struct AppState { jwt: JwtAuth }
///
/// async fn admin_only(RequireRole(claims, ..): RequireRole<Admin>) -> String {
///     format!("hello, admin {}", claims.sub)
/// }
///
/// fn app(jwt: JwtAuth) -> Router {
///     Router::new().route("/admin", get(admin_only)).with_state(AppState { jwt })
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RequireRole<R: RoleName>(pub std::sync::Arc<Claims>, pub PhantomData<R>);

impl<R: RoleName> std::ops::Deref for RequireRole<R> {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

/// Why [`RequireRole`] refused: not authenticated (401) or without the role (403).
#[derive(Debug)]
#[non_exhaustive]
pub enum RoleRejection {
    /// 401.
    Unauthenticated(AuthRejection),
    /// 403.
    Forbidden,
}

impl IntoResponse for RoleRejection {
    fn into_response(self) -> Response {
        match self {
            RoleRejection::Unauthenticated(r) => r.into_response(),
            RoleRejection::Forbidden => HttpError::forbidden().into_response(),
        }
    }
}

impl<S, R> FromRequestParts<S> for RequireRole<R>
where
    JwtAuth: FromRef<S>,
    S: Send + Sync,
    R: RoleName,
{
    type Rejection = RoleRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(claims) = CurrentUser::from_request_parts(parts, state)
            .await
            .map_err(RoleRejection::Unauthenticated)?;
        if claims.has_role(R::NAME) {
            Ok(Self(claims, PhantomData))
        } else {
            Err(RoleRejection::Forbidden)
        }
    }
}
