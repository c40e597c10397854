//! HTTP routes, one file per resource, and the OpenAPI document they make together.

pub mod audit;
pub mod browser;
pub mod health;
pub mod items;
pub mod keys;
pub mod openapi;
pub mod token;
pub mod users;
pub mod ws;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use bulwark::error::HttpError;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{
        ApiKey, ApiKeyValue, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes,
        SecurityScheme,
    },
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::state::AppState;

/// Logs an internal error and answers a generic 500: the cause is never sent.
pub fn internal(err: impl std::fmt::Display) -> Response {
    tracing::error!(error = %err, "internal error");
    HttpError::internal().into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bulwark",
        description = "A secure-by-default users/items API: OAuth2 password flow with JWT, roles, validation, sanitized HTML."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(
        openapi::HttpErrorOut,
        openapi::HttpValidationErrorOut,
        openapi::ValidationErrorOut,
        openapi::LocItemOut
    )),
    tags(
        (name = "auth", description = "Login and tokens"),
        (name = "users", description = "The caller and signup"),
        (name = "items", description = "The caller's items"),
        (name = "admin", description = "Administration (role admin)"),
        (name = "browser", description = "Browser sessions: CSRF tokens, login form, session cookie"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "OAuth2PasswordBearer",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/token",
                Scopes::new(),
            ))])),
        );
        components.add_security_scheme(
            "HTTPBearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("session"))),
        );
    }
}

/// Every API route with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(browser::router())
        .merge(token::router())
        .merge(users::router())
        .merge(items::router())
        .merge(keys::router())
        .merge(audit::router())
}

/// The routes and the complete OpenAPI document describing them.
fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = api().split_for_parts();
    openapi::complete(&mut doc);
    (router, doc)
}

/// The OpenAPI document (for `bulwark openapi`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

/// The CSP of the docs page: everything from this server; Swagger UI sets inline styles.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The application's routes, with `/docs` and `/openapi.json` when `docs` is on.
pub fn router(state: AppState) -> Router {
    let docs = state.settings.docs;
    let (api_router, openapi) = split();
    let mut router = api_router.merge(ws::router());
    if docs {
        let swagger = SwaggerUi::new("/docs")
            .url("/openapi.json", openapi)
            .config(
                Config::default()
                    .validator_url("none")
                    .try_it_out_enabled(true)
                    .persist_authorization(false),
            );
        let docs_router: Router<AppState> = Router::from(swagger).route_layer(
            tower_http::set_header::SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            ),
        );
        router = router.merge(docs_router);
    }
    router.with_state(state)
}
