//! Building the application from settings, and running it.
//!
//! `Application::build(settings)` → [`Application::port`] → [`Application::run_until_stopped`].
//! A request passes, in order: socket limits (header-read timeout) → hardening (tracing span,
//! body-size limit, panic catching, request timeout; on the way out the error-body shape and the
//! security headers) → CORS → client identity → request context → authentication → rate
//! limiting → CSRF → handler → repository (see [`build_router`]).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use bulwark::{
    jwt::{JwtAuth, JwtConfig, KeyManager, KeyRing},
    password::{Argon2Params, PasswordHasher, PasswordPolicy},
    pipeline::{Pipeline, PipelineService},
    rate_limit::{
        RateLimitPolicy, RateLimitStore, RateLimiter, RouteKey,
        store::{memory::MemoryRateLimitStore, redis::RedisRateLimitStore},
    },
    revocation::{RevocationList, Revoker},
    serve::{ConnectionLimits, ServeOptions, serve, serve_with_peers},
};
use tokio::net::TcpListener;

use crate::{
    config::{Settings, load_master_secret},
    db, routes,
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
    build_state_logged(settings, None).await
}

/// [`build_state`], writing an access line per request to `access_log`.
///
/// # Errors
/// As [`build_state`].
pub async fn build_state_logged(
    settings: Settings,
    access_log: Option<crate::telemetry::AccessLog>,
) -> anyhow::Result<AppState> {
    // Settings built in code (tests, embedding) get the same checks as loaded ones.
    settings.validate()?;
    let settings = Arc::new(settings);
    let secret = {
        let settings = Arc::clone(&settings);
        tokio::task::spawn_blocking(move || {
            crate::config::secure_data_dir(&settings)?;
            load_master_secret(&settings)
        })
        .await??
    };
    let repo = db::connect_with(&settings.database_url, settings.pool())
        .await
        .context("cannot open the database")?;
    let ring = Arc::new(KeyRing::new());
    // A replaced key verifies for one token lifetime plus the leeway: no token it signed is
    // still valid after that.
    let grace = settings.access_token_ttl.0 + settings.jwt_leeway.0;
    let keys = Arc::new(KeyManager::new(
        repo.clone(),
        &secret,
        Arc::clone(&ring),
        settings.jwt_algorithm,
        grace,
        settings.key_rotation_interval.0,
    ));
    keys.ensure_active()
        .await
        .context("cannot load the signing keys")?;
    let revocations = Arc::new(RevocationList::new());
    // Revocations are shared through Redis when it is configured, else through the database.
    let revocation_store: Arc<dyn bulwark::revocation::RevocationStore> = match &settings.redis_url
    {
        Some(url) => Arc::new(
            bulwark::revocation::store::redis::RedisRevocationStore::new(
                url,
                "bulwark:rev:",
                Duration::from_millis(250),
            )
            .map_err(|e| anyhow::anyhow!("redis_url: {e}"))?,
        ),
        None => repo.clone(),
    };
    let revoker = Arc::new(Revoker::new(revocation_store, Arc::clone(&revocations)));
    if let Err(err) = revoker.sync().await {
        // The sync task retries every 250 ms; serving meanwhile only misses revocations made
        // while the store is unreachable.
        tracing::error!(error = %err, "cannot load the revocation list yet; retrying in the background");
    }
    let jwt = JwtAuth::new(
        ring,
        JwtConfig::new(settings.jwt_issuer.clone(), settings.jwt_audience.clone())
            .access_ttl(settings.access_token_ttl.0)
            .leeway(settings.jwt_leeway.0.as_secs())
            .session_cookie(crate::sessions::SESSION_COOKIE),
    )
    .with_revocations(revocations)
    .with_key_refresh(keys.clone());
    let secure_cookies = settings.secure_cookies || settings.tls_enabled();
    let allowed_origins: Vec<String> = settings
        .allowed_origins
        .iter()
        .map(|o| o.as_str().to_owned())
        .collect();
    let csrf = Arc::new(
        bulwark::csrf::Csrf::new(
            &secret,
            secure_cookies,
            &allowed_origins,
            crate::sessions::SESSION_COOKIE,
        )
        .with_spent_store(Arc::clone(&revoker)),
    );
    let ph = &settings.password_hashing;
    let hasher = PasswordHasher::new(Argon2Params {
        memory_kib: ph.memory_kib,
        iterations: ph.iterations,
        parallelism: ph.parallelism,
    })
    .context("password_hashing: invalid Argon2 parameters")?;
    let (limits, redis) = rate_limits(&settings)?;
    if let Some(redis) = &redis {
        redis.warm_up().await;
    }
    let events = event_bus(&settings).await?;
    tracing::info!(transport = events.name(), "item events");
    let (shutdown_sender, shutdown) = tokio::sync::watch::channel(false);
    let metrics: Arc<crate::metrics::Metrics> = Arc::default();
    let refusals = Arc::new(crate::refusals::RefusalLog::new(
        crate::refusals::WINDOW,
        settings.ipv6_prefix,
    ));
    let sessions = Arc::new(crate::sessions::Sessions::new(
        jwt.clone(),
        repo.clone(),
        Arc::clone(&revoker),
        Arc::clone(&metrics),
        settings.access_token_ttl.0,
        settings.refresh_token_ttl.0,
    ));
    let policy = Arc::new(PasswordPolicy::default());
    let (mail_worker, mail_transport) = crate::mail::worker(&settings, &repo, &metrics, &secret)?;
    let accounts = Arc::new(crate::accounts::Accounts {
        repo: repo.clone(),
        hasher: hasher.clone(),
        policy: Arc::clone(&policy),
        sessions: Arc::clone(&sessions),
        mail: mail_worker.sender(),
        limits: Arc::clone(&limits),
        reset_per_address: settings.rate_limits.password_reset_per_address,
        verification_mails_per_user: settings.rate_limits.verification_mails_per_user,
        metrics: Arc::clone(&metrics),
        public_url: settings.public_url(),
        reset_ttl: settings.password_reset_ttl.0,
        verify_ttl: settings.email_verification_ttl.0,
        pending_resets: Arc::new(tokio::sync::Semaphore::new(
            crate::accounts::MAX_PENDING_RESETS,
        )),
    });
    let login = crate::login::Login {
        require_verified_email: settings.require_verified_email,
        repo: repo.clone(),
        hasher: hasher.clone(),
        limits: Arc::clone(&limits),
        refusals: Arc::clone(&refusals),
        metrics: Arc::clone(&metrics),
        sessions: Arc::clone(&sessions),
        csrf: Arc::clone(&csrf),
        scheme: settings.scheme(),
    };
    Ok(AppState::new(crate::state::Services {
        shutdown,
        shutdown_sender: Arc::new(shutdown_sender),
        events,
        metrics,
        sockets: Arc::default(),
        csrf,
        limits,
        access_log,
        refusals,
        sessions,
        login,
        accounts,
        mail_worker: std::sync::Mutex::new(Some(mail_worker)),
        mail_transport,
        redis,
        repo,
        jwt,
        hasher,
        policy,
        keys,
        revoker,
        settings,
    }))
}

/// The event transport: Redis when configured, else PostgreSQL when the database is, else
/// in-process.
async fn event_bus(settings: &Settings) -> anyhow::Result<Arc<dyn crate::events::EventBus>> {
    use crate::events::{memory::MemoryBus, postgres::PgBus, redis::RedisBus};
    if let Some(url) = &settings.redis_url {
        return Ok(Arc::new(
            RedisBus::start(url).map_err(|e| anyhow::anyhow!("redis_url: {e}"))?,
        ));
    }
    if settings.database_url.starts_with("postgres") {
        let pool = db::postgres::options(settings.pool())
            .max_connections(2)
            .connect(&settings.database_url)
            .await
            .context("cannot open the event connection")?;
        return Ok(Arc::new(PgBus::start(pool).await?));
    }
    Ok(Arc::new(MemoryBus::default()))
}

/// The login routes: their limits are per IP and per username, and fail closed.
const LOGIN_ROUTES: &[(http::Method, &str)] = &[
    (http::Method::POST, "/token"),
    (http::Method::POST, "/login"),
];

fn rate_limits(
    settings: &Settings,
) -> anyhow::Result<(Arc<RateLimitPolicy>, Option<RedisRateLimitStore>)> {
    let limits = &settings.rate_limits;
    let (store, redis): (Arc<dyn RateLimitStore>, _) = match &settings.redis_url {
        Some(url) => {
            let redis = RedisRateLimitStore::new(url, RedisRateLimitStore::DEFAULT_TIMEOUT)
                .map_err(|e| anyhow::anyhow!("redis_url: {e}"))?;
            (Arc::new(redis.clone()), Some(redis))
        }
        None => (Arc::new(MemoryRateLimitStore::default()), None),
    };
    let login_routes = LOGIN_ROUTES
        .iter()
        .map(|(method, path)| RouteKey::new(method.clone(), *path))
        .collect();
    // The account-recovery routes: per client IP whoever calls, with the contract's quotas
    // unless `rate_limits.routes` names them.
    let mut routes = limits.routes.clone();
    let mut ip_routes = std::collections::HashSet::new();
    for (route, n, secs) in crate::config::ACCOUNT_ROUTES {
        let route: RouteKey = route
            .parse()
            .map_err(|e| anyhow::anyhow!("account route: {e}"))?;
        routes
            .entry(route.clone())
            .or_insert_with(|| bulwark::rate_limit::Quota::new(*n, Duration::from_secs(*secs)));
        ip_routes.insert(route);
    }
    let policy = RateLimitPolicy {
        enabled: limits.enabled,
        default: limits.default,
        login_per_ip: limits.login_per_ip,
        login_per_username: limits.login_per_username,
        login_routes,
        routes,
        ip_routes,
        limiter: Arc::new(RateLimiter::new(store)),
        ipv6_prefix: settings.ipv6_prefix,
        unlimited: crate::config::UNLIMITED_ROUTES
            .iter()
            .map(|r| (*r).to_owned())
            .collect(),
    };
    Ok((Arc::new(policy), redis))
}

/// The application: the router inside the library's pipeline ([`bulwark::pipeline`]):
/// hardening (tracing span, body-size limit, panic catching, request timeout; the error-body
/// shape, `Connection: close` after an unread body and the security headers on every answer) →
/// CORS (when origins are listed) → client identity, request context, authentication, rate
/// limiting, CSRF, the early 401 → the router → handler. One layer around the whole router
/// rather than a stack of small ones, or one per route (docs/performance.md).
pub type App = PipelineService<Router, crate::telemetry::ServerObserver>;

/// Builds [`App`] over `state`.
///
/// # Errors
/// When the routes cannot be indexed for the pipeline (a malformed or conflicting template).
pub fn build_router(state: AppState) -> anyhow::Result<App> {
    let settings = Arc::clone(&state.settings);
    let proxies = settings.trusted_proxies();
    let (router, templates) = routes::router(state.clone());
    let observer = crate::telemetry::ServerObserver {
        metrics: Arc::clone(&state.metrics),
        access_log: state.access_log.clone(),
        refusals: Arc::clone(&state.refusals),
    };
    let mut pipeline = Pipeline::builder()
        .trusted_proxies(proxies)
        .authentication(state.jwt.clone())
        .rate_limits(Arc::clone(&state.limits))
        .csrf(Arc::clone(&state.csrf))
        .https(settings.tls_enabled())
        .max_body(MAX_BODY_BYTES)
        .request_timeout(settings.request_timeout.0)
        .allowed_origins(
            settings
                .allowed_origins
                .iter()
                .map(|o| o.as_str().to_owned()),
        )
        .record_templates(cfg!(debug_assertions));
    for (template, authenticated) in templates {
        pipeline = pipeline.authenticated(template, authenticated);
    }
    Ok(tower::Layer::layer(
        &pipeline.observer(observer).build()?,
        router,
    ))
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: App,
    options: ServeOptions,
    state: AppState,
    tls: Option<crate::https::Tls>,
    redirect: Option<TcpListener>,
}

impl Application {
    /// Builds state and router, loads the TLS certificate (when configured), and binds
    /// `settings.bind` and `settings.redirect_http` (port 0 picks a free port).
    ///
    /// # Errors
    /// As [`build_state`], when the certificate cannot be loaded (the message names the file),
    /// or when an address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_logged(settings, None).await
    }

    /// [`Application::build`], writing an access line per request to `access_log`.
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_logged(
        settings: Settings,
        access_log: Option<crate::telemetry::AccessLog>,
    ) -> anyhow::Result<Self> {
        settings.validate()?;
        // Before the database: a bad certificate should stop start-up at once.
        let tls = crate::https::Tls::from_settings(&settings).await?;
        let (bind, redirect_http) = (settings.bind, settings.redirect_http);
        let options = ServeOptions {
            header_read_timeout: settings.header_read_timeout.0,
            idle_timeout: settings.idle_timeout.0,
            limits: ConnectionLimits {
                max_connections: settings.max_connections,
                max_connections_per_ip: settings.max_connections_per_ip,
                ipv6_prefix: settings.ipv6_prefix,
                exempt: settings.trusted_proxies(),
            },
            shutdown_timeout: settings.shutdown_timeout.0,
            tls: tls.as_ref().map(|tls| Arc::clone(&tls.config)),
        };
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let mut settings = settings;
        if settings.public_url.is_none()
            && bind.port() == 0
            && let Ok(local) = listener.local_addr()
        {
            // Links in mails name the port really bound (`bind` with port 0: tests, embedding).
            settings.public_url = format!("{}://{local}", settings.scheme()).parse().ok();
        }
        let state = build_state_logged(settings, access_log).await?;
        let router = build_router(state.clone())?;
        let redirect = match redirect_http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("redirect_http: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            router,
            options,
            state,
            tls,
            redirect,
        })
    }

    /// The certificate being served, when TLS is on (reload it with
    /// [`bulwark::tls::CertificateResolver::reload`], e.g. on SIGHUP).
    pub fn certificate(&self) -> Option<&Arc<bulwark::tls::CertificateResolver>> {
        self.tls.as_ref().map(|tls| &tls.resolver)
    }

    /// The address of the plain-HTTP redirect listener, when `redirect_http` is set.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref().and_then(|l| l.local_addr().ok())
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

    /// Serves until `shutdown` completes, then drains in-flight requests. Meanwhile keeps the
    /// key ring in step with the database (rotation, retirement, other instances' keys: every
    /// second) and pulls revocations (every 250 ms).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) {
        let state = self.state.clone();
        let maintenance = Arc::clone(&self.state.keys).spawn_maintenance(Duration::from_secs(1));
        let revocations = Arc::clone(&self.state.revoker).spawn_sync(Duration::from_millis(250));
        let metrics = match self.state.settings.metrics_bind {
            Some(addr) => match crate::metrics::serve(
                addr,
                Arc::clone(&self.state.metrics),
                metrics_readings(&self.state),
                self.state.shutdown.clone(),
            )
            .await
            {
                Ok(task) => Some(task),
                Err(err) => {
                    tracing::error!(error = %err, "metrics endpoint not started");
                    None
                }
            },
            None => None,
        };
        let retention = crate::retention::spawn(
            self.state.repo.clone(),
            Arc::clone(&self.state.revoker),
            self.state.settings.audit_retention.0,
            Duration::from_secs(3600),
        );
        let refusals =
            crate::refusals::spawn(Arc::clone(&self.state.refusals), self.state.repo.clone());
        let reset_sweeper = Arc::clone(&self.state.accounts).spawn_sweeper(Duration::from_secs(2));
        let mail_worker = self
            .state
            .mail_worker
            .lock()
            .ok()
            .and_then(|mut worker| worker.take())
            .map(|worker| {
                let mut down = self.state.shutdown.clone();
                worker.spawn(async move {
                    let _ = down.wait_for(|down| *down).await;
                })
            });
        let signal = Arc::clone(&self.state.shutdown_sender);
        let shutdown = async move {
            shutdown.await;
            // Tell long-lived connections (WebSockets) before draining.
            let _ = signal.send(true);
        };
        let sockets = Arc::clone(&self.state.sockets);
        let redirect = self.redirect.map(|listener| {
            let bind = self.listener.local_addr();
            let router = crate::https::redirect_router(
                bind.as_ref().map(SocketAddr::port).unwrap_or(443),
                bind.map(|a| a.ip()).unwrap_or([0, 0, 0, 0].into()),
            );
            let options = ServeOptions {
                tls: None,
                ..self.options.clone()
            };
            let mut down = self.state.shutdown.clone();
            tokio::spawn(serve(listener, router, options, async move {
                let _ = down.wait_for(|down| *down).await;
            }))
        });
        let app = self.router;
        serve_with_peers(
            self.listener,
            move |peer| app.for_peer(peer),
            self.options,
            shutdown,
        )
        .await;
        if let Some(redirect) = redirect {
            let _ = redirect.await;
        }
        // WebSockets were told to close (1001); give their close frames a moment to leave.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while sockets.open_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        maintenance.abort();
        revocations.abort();
        retention.abort();
        refusals.abort();
        reset_sweeper.abort();
        // The worker finishes the mail it is sending (bounded by its send timeout); a mail
        // not sent stays queued for the next start or another instance.
        if let Some(worker) = mail_worker
            && tokio::time::timeout(Duration::from_secs(5), worker)
                .await
                .is_err()
        {
            tracing::warn!("mail worker still sending at shutdown; its mail stays queued");
        }
        // The refusals counted in the last window still get their rows.
        crate::refusals::write(&state.refusals, state.repo.as_ref(), true).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
    }
}

/// What the metrics endpoint reads from the rate limiter, the key manager and the WebSockets
/// at each scrape.
fn metrics_readings(state: &AppState) -> impl Fn() -> crate::metrics::Readings + Clone + use<> {
    let limiter = Arc::clone(&state.limits.limiter);
    let keys = Arc::clone(&state.keys);
    let sockets = Arc::clone(&state.sockets);
    move || crate::metrics::Readings {
        store_failures: limiter.store_failures(),
        key_rotations: keys.rotations(),
        open_sockets: sockets.open_count(),
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
