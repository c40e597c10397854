//! Error answers: server errors on crafted input, and what they reveal.

use crate::context::{Context, Outcome};

/// `verbose_errors`: not written yet.
pub async fn verbose_errors(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `server_error`: not written yet.
pub async fn server_error(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}
