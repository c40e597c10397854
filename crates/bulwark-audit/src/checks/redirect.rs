//! URLs taken from input: redirects to other sites, fetches by the server.

use crate::context::{Context, Outcome};

/// `open_redirect`: not written yet.
pub async fn open_redirect(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `ssrf`: not written yet.
pub async fn ssrf(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}
