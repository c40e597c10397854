#![allow(clippy::unwrap_used, clippy::expect_used, clippy::field_reassign_with_default)]
#![allow(unreachable_pub)] // test helpers are `pub` for the test modules only

mod docs;
mod hardening;
mod health;
mod helpers;
mod items;
mod token;
mod users;
