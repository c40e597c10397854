//! The library's store conformance suites, run against the server's SQL backends.

use std::sync::Arc;

use bulwark_server::db::{postgres::PgStore, sqlite::SqliteStore};

use crate::helpers::{Backend, fresh_database_url};
use crate::test_both;

async fn open(
    backend: Backend,
) -> (
    Arc<dyn bulwark_server::db::Repository>,
    crate::helpers::DatabaseGuard,
) {
    let (url, guard) = fresh_database_url(&backend).await;
    let repo: Arc<dyn bulwark_server::db::Repository> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(&url).await.expect("sqlite"))
    } else {
        Arc::new(PgStore::connect(&url).await.expect("postgres"))
    };
    (repo, guard)
}

async fn the_sql_key_store_passes_the_key_store_conformance_suite(backend: Backend) {
    let (repo, _guard) = open(backend).await;
    bulwark::testing::key_store_conformance(repo).await;
}
test_both!(the_sql_key_store_passes_the_key_store_conformance_suite);

async fn the_sql_revocation_store_passes_the_revocation_store_conformance_suite(backend: Backend) {
    let (repo, _guard) = open(backend).await;
    bulwark::testing::revocation_store_conformance(repo).await;
}
test_both!(the_sql_revocation_store_passes_the_revocation_store_conformance_suite);
