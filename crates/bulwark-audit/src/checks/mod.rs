//! The checks, one module per family; [`run`] dispatches a finding ID to its check.

use crate::{
    catalog::CheckId,
    context::{Context, Outcome},
};

pub mod access;
pub mod csrf;
pub mod drift;
pub mod errors;
pub mod injection;
pub mod jwt;
pub mod login;
pub mod redirect;
pub mod transport;
pub mod xss;

/// Runs one check.
pub async fn run(id: CheckId, cx: &Context) -> Outcome {
    match id {
        CheckId::JwtAlgNone => jwt::alg_none(cx).await,
        CheckId::JwtWeakSecret => jwt::weak_secret(cx).await,
        CheckId::JwtSignatureNotVerified => jwt::signature_not_verified(cx).await,
        CheckId::JwtNoExpiry => jwt::no_expiry(cx).await,
        CheckId::AuthMissing => access::auth_missing(cx).await,
        CheckId::Bola => access::bola(cx).await,
        CheckId::MassAssignment => access::mass_assignment(cx).await,
        CheckId::SqlInjection => injection::sql(cx).await,
        CheckId::NosqlInjection => injection::nosql(cx).await,
        CheckId::Ssti => injection::ssti(cx).await,
        CheckId::XssReflected => xss::reflected(cx).await,
        CheckId::XssStored => xss::stored(cx).await,
        CheckId::Csrf => csrf::csrf(cx).await,
        CheckId::LoginNoRateLimit => login::no_rate_limit(cx).await,
        CheckId::UserEnumeration => login::user_enumeration(cx).await,
        CheckId::CorsCredentialsWildcard => transport::cors_credentials_wildcard(cx).await,
        CheckId::SecurityHeaders => transport::security_headers(cx).await,
        CheckId::VerboseErrors => errors::verbose_errors(cx).await,
        CheckId::ServerError => errors::server_error(cx).await,
        CheckId::OpenRedirect => redirect::open_redirect(cx).await,
        CheckId::Ssrf => redirect::ssrf(cx).await,
        CheckId::PathTraversal => injection::path_traversal(cx).await,
        CheckId::Tls => transport::tls(cx).await,
        CheckId::OpenapiDrift => drift::openapi_drift(cx).await,
        CheckId::WeakPasswordPolicy => login::weak_password_policy(cx).await,
    }
}
