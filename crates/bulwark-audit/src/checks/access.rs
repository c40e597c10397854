//! Access control: operations without credentials, one user's objects reached by another, fields a client must not set.

use crate::context::{Context, Outcome};

/// `auth_missing`: not written yet.
pub async fn auth_missing(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `bola`: not written yet.
pub async fn bola(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `mass_assignment`: not written yet.
pub async fn mass_assignment(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}
