//! The server's HTTP and CLI tests: each starts the real server (on port 0, or as a process)
//! and talks to it, on SQLite and PostgreSQL, with memory and Redis stores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)]
#![allow(unreachable_pub)] // test helpers are `pub` for the test modules only

mod accounts;
mod accounts_reset;
mod accounts_self;
mod audit_self;
mod cli;
mod cli_accounts;
mod csrf;
mod docs;
mod faults;
mod hardening;
mod health;
mod helpers;
mod instances;
mod items;
mod lifecycle;
mod mail;
mod mailbox;
mod openapi_answers;
mod operations;
mod process;
mod rate_limits;
mod rate_limits_shared;
mod smtp;
mod stores;
mod tls;
mod token;
mod users;
mod ws;
