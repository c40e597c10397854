//! Building the application from settings, and running it.
//!
//! `Application::build(settings)` → [`Application::port`] → [`Application::run_until_stopped`].
//! A request passes, in order: socket limits (header-read timeout) → error-body normalizing →
//! security headers → tracing → request timeout → body-size limit → panic catching → CORS →
//! authentication (extractors) → handler → repository.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{Router, extract::DefaultBodyLimit, middleware::map_response};
use bulwark::{
    error::{normalize_error_body, panic_response},
    headers::SecurityHeadersLayer,
    jwt::{JwtAuth, JwtConfig, KeyRing},
    password::{Argon2Params, PasswordHasher, PasswordPolicy},
    serve::{ServeOptions, serve},
};
use http::{HeaderValue, Method, StatusCode, header};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer, cors::CorsLayer, limit::RequestBodyLimitLayer,
    timeout::TimeoutLayer, trace::TraceLayer,
};

use crate::{
    config::{Settings, load_master_secret},
    db,
    keys::KeyManager,
    routes,
    state::AppState,
};

/// Largest accepted request body: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Builds the shared state: database (migrated), master secret, key ring, hasher.
///
/// # Errors
/// When the database cannot be reached, the master secret is weak or unreadable, or the key
/// ring cannot be loaded.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let settings = Arc::new(settings);
    let secret = {
        let settings = Arc::clone(&settings);
        tokio::task::spawn_blocking(move || load_master_secret(&settings)).await??
    };
    let repo = db::connect(&settings.database_url)
        .await
        .context("cannot open the database")?;
    let ring = Arc::new(KeyRing::new());
    let keys = Arc::new(KeyManager::new(
        Arc::clone(&repo),
        &secret,
        Arc::clone(&ring),
    ));
    keys.ensure_active().await?;
    let jwt = JwtAuth::new(
        ring,
        JwtConfig::new(settings.jwt_issuer.clone(), settings.jwt_audience.clone())
            .access_ttl(settings.access_token_ttl.0)
            .leeway(settings.jwt_leeway.0.as_secs()),
    );
    let ph = &settings.password_hashing;
    let hasher = PasswordHasher::new(Argon2Params {
        memory_kib: ph.memory_kib,
        iterations: ph.iterations,
        parallelism: ph.parallelism,
    })
    .context("password_hashing: invalid Argon2 parameters")?;
    Ok(AppState {
        repo,
        jwt,
        hasher,
        policy: Arc::new(PasswordPolicy::default()),
        keys,
        settings,
    })
}

/// The router with every hardening layer.
pub fn build_router(state: AppState) -> Router {
    let settings = Arc::clone(&state.settings);
    let tls = settings.tls_cert.is_some();
    let cors = cors_layer(&settings.allowed_origins);
    let router = routes::router(state);
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(
        ServiceBuilder::new()
            .layer(map_response(normalize_error_body))
            .layer(SecurityHeadersLayer::new().with_hsts(tls))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
                    // The path only: a query string could carry user data.
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
                }),
            )
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                settings.request_timeout.0,
            ))
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(CatchPanicLayer::custom(panic_response)),
    )
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-csrf-token"),
            ])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    )
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    state: AppState,
}

impl Application {
    /// Builds state and router, and binds `settings.bind` (port 0 picks a free port).
    ///
    /// # Errors
    /// As [`build_state`], or when the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let bind = settings.bind;
        let options = ServeOptions {
            header_read_timeout: settings.header_read_timeout.0,
            ..ServeOptions::default()
        };
        let state = build_state(settings).await?;
        let router = build_router(state.clone());
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        Ok(Self {
            listener,
            router,
            options,
            state,
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (tests and the CLI use its repository).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) {
        serve(self.listener, self.router, self.options, shutdown).await;
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
