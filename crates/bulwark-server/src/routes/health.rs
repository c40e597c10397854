//! Liveness and readiness.

use axum::{extract::State, response::IntoResponse};
use bulwark::error::HttpError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Status)))]
async fn health() -> axum::Json<Status> {
    axum::Json(Status { status: "ok" })
}

/// The database (and Redis, when configured) answer.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, body = Status), (status = 503)))]
async fn ready(State(state): State<AppState>) -> axum::response::Response {
    if let Some(redis) = &state.redis
        && let Err(err) = redis.ping().await
    {
        tracing::warn!(error = %err, "readiness check failed: Redis");
        return HttpError::unavailable("Redis unavailable").into_response();
    }
    let check = tokio::time::timeout(std::time::Duration::from_secs(2), state.repo.ping()).await;
    match check {
        Ok(Ok(())) => axum::Json(Status { status: "ok" }).into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check failed");
            HttpError::unavailable("Database unavailable").into_response()
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            HttpError::unavailable("Database unavailable").into_response()
        }
    }
}
