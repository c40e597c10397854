//! The login: attempts not limited, users enumerable, weak passwords accepted.

use crate::context::{Context, Outcome};

/// `no_rate_limit`: not written yet.
pub async fn no_rate_limit(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `user_enumeration`: not written yet.
pub async fn user_enumeration(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `weak_password_policy`: not written yet.
pub async fn weak_password_policy(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}
