//! `GET /admin/audit`: the security audit trail (admin only).

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use bulwark::{
    error::{ErrorDetail, ValidationErrors},
    rbac::{Admin, RequireRole},
    validation::Query,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{audit::AuditOut, db::AuditFilter, domain::rfc3339, errors::internal, state::AppState};

/// The audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Filters and paging of `GET /admin/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this kind, e.g. `login.failed`.
    pub kind: Option<String>,
    /// Only this user id.
    pub user_id: Option<i64>,
    /// From this time (RFC 3339 or Unix seconds).
    #[param(schema_with = time_schema)]
    pub since: Option<String>,
    /// Up to this time (RFC 3339 or Unix seconds).
    #[param(schema_with = time_schema)]
    pub until: Option<String>,
    /// 1-500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// At least 0 (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A time in a query: Unix seconds or an RFC 3339 date-time.
fn time_schema() -> utoipa::openapi::schema::OneOfBuilder {
    use utoipa::openapi::{
        KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
        schema::{SchemaType, Type},
    };
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .description(Some("Unix seconds")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("RFC 3339")),
        )
}

/// A page of audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// This page.
    pub events: Vec<AuditOut>,
    /// How many match in all.
    pub total: i64,
}

fn parse_time(field: &'static str, value: &str, errors: &mut ValidationErrors) -> Option<i64> {
    if let Ok(unix) = value.parse::<i64>() {
        return Some(unix);
    }
    match time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some(t.unix_timestamp()),
        Err(_) => {
            errors.push(
                ErrorDetail::new(
                    "datetime_parsing",
                    ["query", field],
                    "Input should be an RFC 3339 time or Unix seconds",
                )
                .with_input(json!(value)),
            );
            None
        }
    }
}

/// The audit trail, filtered by kind, user and time, newest first (admin only).
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 401), (status = 403), (status = 422)))]
async fn list_audit(
    State(state): State<AppState>,
    _admin: RequireRole<Admin>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let mut errors = ValidationErrors::new();
    let limit = query.limit.unwrap_or(100);
    let offset = query.offset.unwrap_or(0);
    if !(1..=500).contains(&limit) {
        errors.push(
            ErrorDetail::new(
                "value_error",
                ["query", "limit"],
                "Input should be between 1 and 500",
            )
            .with_input(json!(limit.to_string())),
        );
    }
    if offset < 0 {
        errors.push(
            ErrorDetail::new(
                "greater_than_equal",
                ["query", "offset"],
                "Input should be greater than or equal to 0",
            )
            .with_input(json!(offset.to_string())),
        );
    }
    let since = query
        .since
        .as_deref()
        .and_then(|v| parse_time("since", v, &mut errors));
    let until = query
        .until
        .as_deref()
        .and_then(|v| parse_time("until", v, &mut errors));
    if let Err(errors) = errors.into_result(()) {
        return errors.into_response();
    }
    let filter = AuditFilter {
        kind: query.kind,
        user_id: query.user_id,
        since,
        until,
    };
    match state.repo.list_audit(&filter, limit, offset).await {
        Ok((rows, total)) => axum::Json(AuditPage {
            events: rows
                .into_iter()
                .map(|r| AuditOut {
                    id: r.id,
                    kind: r.kind,
                    user_id: r.user_id,
                    username: r.username,
                    ip: r.ip,
                    detail: r.detail,
                    created_at: rfc3339(r.created_at),
                })
                .collect(),
            total,
        })
        .into_response(),
        Err(err) => internal(err),
    }
}
