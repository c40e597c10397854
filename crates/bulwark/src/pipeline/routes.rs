//! The route templates the pipeline knows, matched the way axum matches them.

use std::sync::{Arc, OnceLock};

use axum::{extract::Request, middleware::Next, response::Response};

use super::{Observer, UNMATCHED};

/// The route templates of the router, matched the way axum matches them (the same `matchit`
/// table), so that the pipeline knows a request's route before the router runs: its rate
/// limit, whether it requires a caller, its label for the observer.
///
/// **Why not per route.** A layer added with `Router::route_layer` is told the template by
/// axum, but axum then wraps each route's boxed service in a second boxed service: every
/// request paid for cloning both (two allocations), a second boxed future and the layers of
/// futures between them, about 1 100 instructions more than this lookup.
pub(super) struct Routes<R> {
    table: matchit::Router<usize>,
    slots: Vec<RouteSlot<R>>,
    /// Requests no route matched (404, and what a fallback answers).
    unmatched: RouteSlot<R>,
}

pub(super) struct RouteSlot<R> {
    pub(super) template: Arc<str>,
    /// The observer's state of the route, made on its first request.
    observed: OnceLock<R>,
    /// The methods whose handlers require an authenticated caller.
    authenticated: Vec<http::Method>,
}

impl<R> RouteSlot<R> {
    fn new(template: &str, authenticated: Vec<http::Method>) -> Self {
        Self {
            template: template.into(),
            observed: OnceLock::new(),
            authenticated,
        }
    }

    /// Whether the handler of `method` here requires an authenticated caller (`HEAD` is served
    /// by the `GET` handler).
    pub(super) fn requires_authentication(&self, method: &http::Method) -> bool {
        if self.authenticated.is_empty() {
            return false;
        }
        let method = if method == http::Method::HEAD {
            &http::Method::GET
        } else {
            method
        };
        self.authenticated.contains(method)
    }

    pub(super) fn observed<O: Observer<Route = R>>(&self, observer: &O) -> &R {
        self.observed.get_or_init(|| observer.route(&self.template))
    }
}

impl<R> Routes<R> {
    /// The table of `templates`, each with the methods that require a caller (the same
    /// template twice: the methods are merged).
    pub(super) fn new(
        templates: impl IntoIterator<Item = (String, Vec<http::Method>)>,
    ) -> Result<Self, super::PipelineError> {
        let mut table = matchit::Router::new();
        let mut slots: Vec<RouteSlot<R>> = Vec::new();
        for (template, authenticated) in templates {
            if let Some(slot) = slots.iter_mut().find(|s| *s.template == *template) {
                for method in authenticated {
                    if !slot.authenticated.contains(&method) {
                        slot.authenticated.push(method);
                    }
                }
                continue;
            }
            table
                .insert(template.as_str(), slots.len())
                .map_err(|err| {
                    super::PipelineError(format!("route template {template:?}: {err}"))
                })?;
            slots.push(RouteSlot::new(&template, authenticated));
        }
        Ok(Self {
            table,
            slots,
            unmatched: RouteSlot::new(UNMATCHED, Vec::new()),
        })
    }

    /// The slot of the route `path` matches, by index (`None`: no route).
    pub(super) fn find(&self, path: &str) -> Option<usize> {
        self.table.at(path).ok().map(|m| *m.value)
    }

    pub(super) fn slot(&self, index: Option<usize>) -> &RouteSlot<R> {
        index
            .and_then(|i| self.slots.get(i))
            .unwrap_or(&self.unmatched)
    }
}

/// The template the pipeline found for a request, recorded when
/// [`super::PipelineBuilder::record_templates`] is on, for [`check_template`].
#[derive(Clone)]
pub(super) struct FoundTemplate(pub(super) Arc<str>);

/// Checks that the template the pipeline found for a request is the one axum routed it to,
/// when [`super::PipelineBuilder::record_templates`] is on (a test or debug build of an
/// application that lists every route): a route missing from the pipeline's table would
/// otherwise be limited and reported as [`UNMATCHED`]. Add it with `Router::route_layer` and
/// `axum::middleware::from_fn`, so it sees routed requests only.
///
/// # Panics
/// When the templates differ (a 500 from the pipeline's panic catching, failing the test that
/// made the request).
pub async fn check_template(request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str);
    if let (Some(matched), Some(found)) = (matched, request.extensions().get::<FoundTemplate>()) {
        assert_eq!(
            &*found.0, matched,
            "the pipeline's route table is missing a route that axum has"
        );
    }
    next.run(request).await
}
