//! HTTP routes, one file per resource, and the OpenAPI document they make together.

pub mod accounts;
pub mod audit;
pub mod browser;
pub mod docs;
pub mod health;
pub mod items;
pub mod keys;
pub mod openapi;
pub mod token;
pub mod users;
pub mod ws;

use axum::{
    Router,
    http::{HeaderValue, Method, header},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{
        ApiKey, ApiKeyValue, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes,
        SecurityScheme,
    },
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

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
        .merge(accounts::router())
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

/// The CSP of the docs page: everything from this server, scripts and styles from files only
/// (no inline script or `<style>`: see [`docs`]; Swagger UI's inline styles are set through the
/// CSSOM, which `style-src` does not restrict). `data:` images are Swagger UI's CSS icons.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Where the docs page and the OpenAPI document are served, when `docs` is on.
const DOCS_PATH: &str = "/docs";
const OPENAPI_PATH: &str = "/openapi.json";

/// A route template, and the methods whose operation there requires an authenticated caller.
pub type Template = (String, Vec<http::Method>);

/// The operations whose every caller must be authenticated (a valid bearer token or session
/// cookie), declared here once: the pipeline answers 401 for them before routing (as their
/// handlers' extractors would), and the OpenAPI document lists the security schemes on exactly
/// these operations (`openapi::complete`). A handler that takes `CurrentUser` or `RequireRole`
/// belongs here; the tests check that every entry names an operation of the document.
pub const AUTHENTICATED: &[(&str, &[Method])] = &[
    ("/protected", &[Method::GET]),
    ("/logout", &[Method::POST]),
    ("/users/me", &[Method::GET]),
    ("/users/me/password", &[Method::POST]),
    ("/users/me/email", &[Method::POST]),
    ("/users/me/verify-email", &[Method::POST]),
    ("/items/", &[Method::GET, Method::POST]),
    (
        "/items/{item_id}",
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
    ("/items/{item_id}/view", &[Method::GET]),
    ("/admin/users", &[Method::GET, Method::POST]),
    ("/admin/users/{user_id}", &[Method::PATCH, Method::DELETE]),
    ("/admin/keys", &[Method::GET]),
    ("/admin/keys/rotate", &[Method::POST]),
    ("/admin/audit", &[Method::GET]),
];

/// Whether `method` on the route template `path` requires an authenticated caller
/// ([`AUTHENTICATED`]).
pub fn requires_authentication(path: &str, method: &Method) -> bool {
    AUTHENTICATED
        .iter()
        .any(|(p, methods)| *p == path && methods.contains(method))
}

/// The application's routes, with `/docs` and `/openapi.json` when `docs` is on, and the
/// template of every route: the pipeline ([`bulwark::pipeline`]) runs in front of the router
/// (one layer for the whole router rather than one per route, see `startup::build_router`), so
/// it finds a request's template itself. The templates come from the OpenAPI document, with
/// the methods [`AUTHENTICATED`] names, plus the few routes it does not describe; in
/// debug builds (the tests), every routed request checks that the guard found the template
/// axum matched.
pub fn router(state: AppState) -> (Router, Vec<Template>) {
    let docs = state.settings.docs;
    let (api_router, openapi) = split();
    let mut templates: Vec<Template> = openapi
        .paths
        .paths
        .keys()
        .map(|path| {
            let methods = AUTHENTICATED
                .iter()
                .filter(|(p, _)| p == path)
                .flat_map(|(_, methods)| methods.iter().cloned())
                .collect();
            (path.clone(), methods)
        })
        .collect();
    templates.extend(
        [browser::STYLESHEET, browser::ACCOUNT_SCRIPT, ws::PATH]
            .map(|p| (p.to_owned(), Vec::new())),
    );
    let mut router = api_router.merge(ws::router());
    if docs {
        // What `SwaggerUi` routes for a path without a trailing slash, and our own files.
        templates.extend(
            [
                DOCS_PATH.to_owned(),
                format!("{DOCS_PATH}/"),
                format!("{DOCS_PATH}/{{*rest}}"),
                OPENAPI_PATH.to_owned(),
            ]
            .into_iter()
            .chain(docs::paths(DOCS_PATH))
            .map(|p| (p, Vec::new())),
        );
        // Swagger UI's configuration is in our `swagger-initializer.js` (see `docs`), which
        // takes the place of the one `SwaggerUi` would make from a `Config`.
        let swagger = SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi);
        let docs_router: Router<AppState> = Router::from(swagger)
            .merge(docs::router(DOCS_PATH))
            .route_layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            ));
        router = router.merge(docs_router);
    }
    #[cfg(debug_assertions)]
    {
        router = router.route_layer(axum::middleware::from_fn(bulwark::pipeline::check_template));
    }
    (router.with_state(state), templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_authenticated_route_is_a_documented_operation_with_the_security_schemes() {
        let doc = openapi();
        for (path, methods) in AUTHENTICATED {
            let item = doc
                .paths
                .paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not a route of the document"));
            for method in *methods {
                let op = match *method {
                    Method::GET => &item.get,
                    Method::POST => &item.post,
                    Method::PUT => &item.put,
                    Method::PATCH => &item.patch,
                    Method::DELETE => &item.delete,
                    _ => panic!("unexpected method {method}"),
                };
                let op = op
                    .as_ref()
                    .unwrap_or_else(|| panic!("{method} {path} is not an operation"));
                assert_eq!(
                    op.security.as_ref().map(Vec::len),
                    Some(3),
                    "{method} {path}"
                );
            }
        }
    }
}
