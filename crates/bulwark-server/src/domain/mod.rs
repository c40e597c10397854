//! Domain types that parse at the boundary: once a handler holds one, its rule holds.

mod item;
mod username;

pub use item::{ItemBody, ItemOut, ListItemsQuery};
pub use username::Username;

/// Unix seconds as RFC 3339 (`2026-01-01T00:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
