//! The interactive docs' own files, served under the docs path next to Swagger UI's vendored
//! ones (and in place of the vendored `swagger-initializer.js`).
//!
//! The docs page's CSP allows styles from this server only, without `'unsafe-inline'`. Swagger
//! UI sets its inline styles through the CSSOM (React's `style` props), which such a CSP does
//! not restrict, and its index page has no inline script or style; the one thing it blocks is
//! the `<style>` element of the topbar's logo (an inline SVG). Our initializer replaces that
//! logo component with an image of the same logo, whose colours are attributes.

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

/// A file: its name under the docs path, its content type and its bytes.
type File = (&'static str, &'static str, &'static [u8]);

/// The files, each served at `{docs_path}/{name}`.
pub const FILES: &[File] = &[
    (
        "swagger-initializer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/docs/swagger-initializer.js"),
    ),
    (
        "swagger-logo.svg",
        "image/svg+xml",
        include_bytes!("../../assets/docs/swagger-logo.svg"),
    ),
];

/// The paths of [`FILES`] under `docs_path` (a path without a trailing slash).
pub fn paths(docs_path: &str) -> impl Iterator<Item = String> + '_ {
    FILES
        .iter()
        .map(move |(name, ..)| format!("{docs_path}/{name}"))
}

/// The routes of [`FILES`] under `docs_path`; they take precedence over Swagger UI's
/// `{docs_path}/{*rest}`.
pub fn router<S: Clone + Send + Sync + 'static>(docs_path: &str) -> Router<S> {
    FILES.iter().zip(paths(docs_path)).fold(
        Router::new(),
        |router, (&(_, content_type, bytes), path)| {
            router.route(
                &path,
                get(move || async move { serve(content_type, bytes) }),
            )
        },
    )
}

fn serve(content_type: &'static str, bytes: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> &'static str {
        let (_, _, bytes) = FILES.iter().find(|(n, ..)| *n == name).expect(name);
        std::str::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn the_initializer_loads_this_servers_document_and_replaces_the_logo() {
        let script = text("swagger-initializer.js");
        assert!(script.contains(&format!("url: '{}'", super::super::OPENAPI_PATH)));
        assert!(script.contains("Logo:") && script.contains("./swagger-logo.svg"));
        assert!(!script.contains("http://") && !script.contains("https://"));
    }

    #[test]
    fn the_logo_has_no_style_element_or_attribute_and_no_script() {
        let svg = text("swagger-logo.svg");
        assert!(svg.contains("<svg"));
        for banned in ["<style", "style=", "<script", "href", "javascript:"] {
            assert!(!svg.contains(banned), "{banned}");
        }
        assert!(
            !svg.split_whitespace().any(|word| word.starts_with("on")),
            "no event handler attribute"
        );
    }
}
