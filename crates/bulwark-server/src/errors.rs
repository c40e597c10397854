//! Errors shared by the services and the routes: how a server-side failure is answered.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use bulwark::error::HttpError;

/// Answers a server-side failure; the cause is logged, never sent. A backing service that is
/// down or unreachable (the database, Redis: see [`Failure::is_unavailable`]) answers 503
/// `{"detail": "Service temporarily unavailable"}` with `Retry-After: 1`, logged as a warning,
/// since a retry may succeed; anything else is a bug or a broken invariant and answers a
/// generic 500, logged as an error.
pub fn internal(err: impl Failure) -> Response {
    if err.is_unavailable() {
        tracing::warn!(error = %err, "backing service unavailable");
        let mut response =
            HttpError::unavailable("Service temporarily unavailable").into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    tracing::error!(error = %err, "internal error");
    HttpError::internal().into_response()
}

/// A failure [`internal`] answers: it tells an outage of a backing service (503) from a fault
/// (500).
pub trait Failure: std::fmt::Display {
    /// Whether a backing service is down or unreachable, so that a retry later may succeed.
    fn is_unavailable(&self) -> bool {
        false
    }
}

impl Failure for crate::db::DbError {
    fn is_unavailable(&self) -> bool {
        crate::db::DbError::is_unavailable(self)
    }
}

impl Failure for bulwark::store::StoreError {
    fn is_unavailable(&self) -> bool {
        bulwark::store::StoreError::is_unavailable(self)
    }
}

impl Failure for bulwark::jwt::KeyError {
    fn is_unavailable(&self) -> bool {
        matches!(self, bulwark::jwt::KeyError::Store(err) if err.is_unavailable())
    }
}

impl Failure for anyhow::Error {
    fn is_unavailable(&self) -> bool {
        self.chain().any(|cause| {
            if let Some(err) = cause.downcast_ref::<crate::db::DbError>() {
                err.is_unavailable()
            } else if let Some(err) = cause.downcast_ref::<bulwark::store::StoreError>() {
                err.is_unavailable()
            } else if let Some(err) = cause.downcast_ref::<sqlx::Error>() {
                crate::db::is_unavailable(err)
            } else {
                false
            }
        })
    }
}

impl Failure for &str {}

impl Failure for bulwark::password::PasswordError {}

impl Failure for bulwark::jwt::JwtError {}

impl Failure for askama::Error {}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(response: Response) -> (u16, Option<String>, String) {
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (
            status,
            retry,
            String::from_utf8(body.to_vec()).expect("utf-8"),
        )
    }

    const UNAVAILABLE: &str = r#"{"detail":"Service temporarily unavailable"}"#;
    const INTERNAL: &str = r#"{"detail":"Internal Server Error"}"#;

    #[tokio::test]
    async fn outages_of_backing_services_answer_503_with_retry_after() {
        use crate::db::DbError;
        use bulwark::store::StoreError;
        let outages = [
            internal(DbError::Sqlx(sqlx::Error::PoolTimedOut)),
            internal(DbError::Sqlx(sqlx::Error::Io(
                std::io::ErrorKind::ConnectionReset.into(),
            ))),
            internal(anyhow::Error::from(DbError::Sqlx(sqlx::Error::PoolClosed))),
            internal(anyhow::Error::from(sqlx::Error::PoolTimedOut).context("while creating")),
            internal(StoreError::unavailable("redis: timed out")),
            internal(bulwark::jwt::KeyError::Store(StoreError::unavailable(
                "database down",
            ))),
        ];
        for response in outages {
            assert_eq!(
                answer(response).await,
                (503, Some("1".to_owned()), UNAVAILABLE.to_owned())
            );
        }
    }

    #[tokio::test]
    async fn other_failures_answer_a_generic_500_without_their_cause() {
        use crate::db::DbError;
        let faults = [
            internal(DbError::Sqlx(sqlx::Error::Protocol(
                "SELECT secret FROM users".into(),
            ))),
            internal(DbError::Sqlx(sqlx::Error::RowNotFound)),
            internal(anyhow::anyhow!("broken invariant")),
            internal(bulwark::store::StoreError::new("poisoned lock")),
            internal("rotated key missing from the ring"),
        ];
        for response in faults {
            assert_eq!(answer(response).await, (500, None, INTERNAL.to_owned()));
        }
    }
}
