//! What every answer carries: CORS, security headers, TLS.

use crate::context::{Context, Outcome};

/// `cors_credentials_wildcard`: not written yet.
pub async fn cors_credentials_wildcard(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `security_headers`: not written yet.
pub async fn security_headers(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `tls`: not written yet.
pub async fn tls(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}
