//! The `bulwark` server: the users/items API of the FastAPI security guide, built on the
//! `bulwark` library, with its command line.

pub mod accounts;
pub mod audit;
pub mod audit_cli;
pub mod auth;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod errors;
pub mod events;
pub mod https;
pub mod layers;
pub mod login;
pub mod mail;
pub mod metrics;
pub mod pages;
pub mod refusals;
pub mod retention;
pub mod routes;
pub mod sessions;
pub mod sockets;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod users;
