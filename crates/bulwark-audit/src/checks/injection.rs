//! Input interpreted as code: SQL, NoSQL operators, templates, file paths.

use crate::context::{Context, Outcome};

/// `sql`: not written yet.
pub async fn sql(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `nosql`: not written yet.
pub async fn nosql(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `ssti`: not written yet.
pub async fn ssti(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}

/// `path_traversal`: not written yet.
pub async fn path_traversal(_cx: &Context) -> Outcome {
    Outcome::Skipped("not implemented yet".into())
}
