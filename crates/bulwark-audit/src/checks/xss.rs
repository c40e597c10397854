//! Input served back as HTML unescaped: reflected and stored.

use crate::context::{Context, Outcome};

/// `reflected`: not written yet.
pub async fn reflected(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `stored`: not written yet.
pub async fn stored(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}
