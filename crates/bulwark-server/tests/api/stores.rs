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

/// PostgreSQL cancels a statement that outlives the pool's statement timeout (the server sets it
/// to the request timeout), so a slow query cannot go on holding a connection and its locks after
/// its request was answered; the pool serves the next query as usual.
#[tokio::test]
async fn postgres_cancels_a_statement_over_the_statement_timeout() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("BULWARK_TEST_DATABASE_URL is not set: statement timeout test skipped");
        return;
    };
    let (url, _guard) = fresh_database_url(&backend).await;
    let pool = bulwark_server::db::PoolConfig {
        statement_timeout: Some(std::time::Duration::from_millis(300)),
        ..Default::default()
    };
    let store = PgStore::connect_with(&url, pool).await.expect("postgres");
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(shown, "300ms");

    let started = std::time::Instant::now();
    let err = sqlx::query("SELECT pg_sleep(10)")
        .execute(store.pool())
        .await
        .expect_err("the statement is cancelled");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "cancelled after {:?}",
        started.elapsed()
    );
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "{err}");

    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(store.pool())
        .await
        .expect("the pool still works");
    assert_eq!(one, 1);
}
