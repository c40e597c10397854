//! [`PipelineLayer`]: the pipeline, ready to wrap a router.

use std::sync::Arc;

use tower::Layer;

use super::{Observer, PipelineService, builder::Shared, guard::Guard, service::Inner};

/// The pipeline as a [`tower::Layer`], made by [`super::PipelineBuilder::build`]. Wrap the
/// whole router with it (`Router::layer`, or `tower::Layer::layer(&pipeline, router)`): it finds
/// each request's route template itself.
pub struct PipelineLayer<O: Observer = ()> {
    pub(super) shared: Arc<Shared<O>>,
    pub(super) cors: Option<tower_http::cors::CorsLayer>,
}

impl<O: Observer> Clone for PipelineLayer<O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            cors: self.cors.clone(),
        }
    }
}

impl<O: Observer> std::fmt::Debug for PipelineLayer<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineLayer").finish_non_exhaustive()
    }
}

impl<S, O: Observer> Layer<S> for PipelineLayer<O> {
    type Service = PipelineService<S, O>;

    fn layer(&self, inner: S) -> PipelineService<S, O> {
        let guard = Guard {
            inner,
            shared: Arc::clone(&self.shared),
            peer: None,
        };
        let inner = match &self.cors {
            None => Inner::Plain(guard),
            Some(cors) => Inner::Cors(cors.layer(guard)),
        };
        PipelineService {
            inner,
            harden: self.shared.harden,
        }
    }
}
