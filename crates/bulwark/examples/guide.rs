//! The app of the guide "How to secure APIs built with FastAPI", rebuilt with bulwark practice by
//! practice: each numbered section quotes the guide's Python (its stack made runnable for the
//! benchmark, `bench/fastapi/app.py`), then does the same in Rust and says what changes.
//!
//! ```sh
//! USER1_PASSWORD='a long passphrase' ADMIN_PASSWORD='another' cargo run -p bulwark-axum --example guide
//! curl -s -d username=user1 -d 'password=a long passphrase' http://127.0.0.1:8000/token
//! ```
//! `ADDR`: the address (`127.0.0.1:0`: any free port, printed); `GUIDE_TLS=1`: HTTPS with a
//! self-signed certificate (`--features dev-certs`); `GUIDE_MASTER_SECRET`; `GUIDE_ORIGINS`: web
//! origins (comma-separated) allowed to call with credentials.

use std::{
    collections::BTreeMap,
    error::Error,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use axum::{
    Router,
    extract::{FromRef, State},
    http::{Method, StatusCode, header::SET_COOKIE},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use bulwark::{
    csrf,
    jwt::{KeyAlgorithm, KeyError, KeyManager, KeyRing, store::memory::MemoryKeyStore},
    prelude::*,
    serve::{ServeOptions, serve},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, FromRef)]
struct App {
    users: Arc<BTreeMap<String, User>>,
    items: Arc<RwLock<BTreeMap<u64, ItemOut>>>,
    hasher: PasswordHasher,
    jwt: JwtAuth,
    keys: Arc<KeyManager>,
    limits: Arc<RateLimitPolicy>,
    csrf: Arc<Csrf>,
}

// ── 1. No hard-coded secrets ────────────────────────────────────────────────────────────────
// The guide:
//     SECRET_KEY = os.environ.get(
//         "JWT_SECRET", "anchor-benchmark-secret-change-me-0123456789abcdef"
//     )
//     SEED_USERS = (("user1", "password1", "user"), ("admin", "adminpass1", "admin"))
// bulwark: no published fallback can start the server (`MasterSecret::new` refuses short and
// well-known secrets, that one included), a missing one is drawn from the OS generator, and
// passwords come from the environment only.

fn master_secret() -> Result<MasterSecret, Box<dyn Error>> {
    let Ok(text) = std::env::var("GUIDE_MASTER_SECRET") else {
        eprintln!("GUIDE_MASTER_SECRET is unset: generated one (keys end with this process)");
        return Ok(MasterSecret::generate());
    };
    let secret = MasterSecret::new(text.trim_end().as_bytes().to_vec());
    Ok(secret.map_err(|weak| format!("GUIDE_MASTER_SECRET: {weak}"))?)
}

struct User {
    hash: String,
    role: &'static str,
}

/// The guide's two users, each with a password from the environment (else left out).
async fn users(hasher: &PasswordHasher) -> Result<BTreeMap<String, User>, Box<dyn Error>> {
    let mut users = BTreeMap::new();
    for (name, variable, role) in [
        ("user1", "USER1_PASSWORD", "user"),
        ("admin", "ADMIN_PASSWORD", "admin"),
    ] {
        let Ok(password) = std::env::var(variable) else {
            eprintln!("{variable} is unset: no user {name}");
            continue;
        };
        let hash = hasher.hash(password.into()).await?.into_string();
        users.insert(name.to_owned(), User { hash, role });
    }
    Ok(users)
}

// ── 2. Hashed passwords, and 3. JWT login through the OAuth2 password flow ──────────────────
// The guide:
//     pwd_context = CryptContext(schemes=["bcrypt"], deprecated="auto", bcrypt__rounds=12)
//     async def login_for_access_token(..., form_data: OAuth2PasswordRequestForm = Depends()):
//         user = authenticate_user(db, form_data.username, form_data.password)
//         if not user:
//             raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, ...)
//         access_token = create_access_token(data={"sub": user.username})
// bulwark: Argon2id runs on the hasher's own low-priority threads where bcrypt blocked the event
// loop ~0.2 s per login, an unknown user costs the same (dummy) hash so timing names no user,
// and the token (kid, iss, aud, jti, 15 minutes) is itself the OAuth2 response, `no-store`.

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: SecretString,
}

async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    // Per username; the pipeline limited per client IP before the form was read.
    match app.limits.check_login_username(&form.username).await {
        Ok(_) => authenticate(&app, form).await.into_response(),
        Err(refused) => refused,
    }
}

async fn authenticate(app: &App, form: LoginForm) -> Result<impl IntoResponse, HttpError> {
    let user = app.users.get(&form.username);
    let hash = user.map(|u| u.hash.as_str());
    let verified = app.hasher.verify(form.password, hash).await?;
    let Some(user) = user.filter(|_| verified.is_match()) else {
        return Err(HttpError::invalid_login());
    };
    let roles = [user.role.to_owned()];
    let token = app.jwt.issue(&form.username, None, &roles)?;
    // Browsers get it as an HttpOnly cookie too (their writes then need CSRF, §10); `Secure`
    // over HTTPS, as the CSRF cookie.
    let cookie = token.session_cookie("session", app.csrf.secure());
    Ok(([(SET_COOKIE, cookie)], token))
}

// ── 4. Rate limiting the login ──────────────────────────────────────────────────────────────
// The guide:
//     limiter = Limiter(key_func=get_remote_address, enabled=LOGIN_LIMIT_ENABLED)
//     @app.post("/token", response_model=Token)
//     @limiter.limit("5/minute")
// bulwark: the limit runs in the pipeline before the form is parsed or a hash computed, per
// client IP and per username (`login`), fails closed if its store is down, and every other route
// has a per-user quota (600 a minute) instead of none.

fn rate_limits() -> Result<RateLimitPolicy, String> {
    Ok(RateLimitPolicy::in_memory()
        .login_route("POST /token".parse()?)
        .unlimited("/health"))
}

// ── 5. Signing-key rotation ─────────────────────────────────────────────────────────────────
// The guide: one key, for ever:
//     payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
// bulwark: random keys in a ring kept by a `KeyManager` (sealed with the master secret in its
// store): rotated daily in the background or on demand, a replaced key verifies until its last
// token expires (nobody is logged out), and a revoked key's tokens fail at once.

async fn key_manager(secret: &MasterSecret) -> Result<Arc<KeyManager>, KeyError> {
    let keys = Arc::new(KeyManager::new(
        Arc::new(MemoryKeyStore::new()), // one instance; several share a `KeyStore` of their own
        secret,
        Arc::new(KeyRing::new()),
        KeyAlgorithm::Hs256,
        Duration::from_secs(16 * 60), // grace: the 15-minute token lifetime, plus leeway
        Duration::from_secs(24 * 3600), // scheduled rotation
    ));
    keys.ensure_active().await?;
    Arc::clone(&keys).spawn_maintenance(Duration::from_secs(60));
    Ok(keys)
}

async fn rotate_key(
    State(app): State<App>,
    _admin: RequireRole<Admin>,
) -> Result<Json<Value>, HttpError> {
    let previous = app.keys.ring().active().map(|k| k.kid().to_owned());
    let active = app.keys.rotate().await?;
    Ok(Json(json!({ "active": active, "verifying": previous })))
}

async fn revoke_key(
    State(app): State<App>,
    _admin: RequireRole<Admin>,
    Path(kid): Path<String>,
) -> Result<StatusCode, HttpError> {
    app.keys.revoke(&kid).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ── 6. Authentication and roles: 401 vs 403 ─────────────────────────────────────────────────
// The guide:
//     except jwt.InvalidTokenError:  # the guide's `jwt.JWTError` does not exist
//         raise credentials_exception
//     async def require_admin(current_user: User = Depends(get_current_user)) -> User:
//         if current_user.role != "admin":
//             raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, ...)
// bulwark: a handler taking `RequireRole<Admin>` cannot run without a verified token (else 401
// with `WWW-Authenticate: Bearer`) carrying the role (else 403), and verification (the key by
// `kid`, that key's own algorithm, every claim required) has no exception to misspell.

async fn protected(user: CurrentUser) -> Json<Value> {
    let message = format!("Beware, {}. This is a protected route.", user.sub);
    Json(json!({ "message": message }))
}

async fn admin_users(State(app): State<App>, _admin: RequireRole<Admin>) -> Json<Vec<Value>> {
    let users = app
        .users
        .iter()
        .map(|(name, user)| json!({ "username": name, "role": user.role, "disabled": false }));
    Json(users.collect())
}

// ── 7. Typed validation with FastAPI-style 422s ─────────────────────────────────────────────
// The guide:
//     class Item(BaseModel):
//         name: str
//         description: Optional[str] = None
//         price: float
//     limit: int = Query(default=10, ge=1, le=100),
// bulwark: the same 422 bodies (`missing`, `string_too_short`, `less_than_equal`... at
// `["body", field]`), every broken rule listed, and what the model let through refused: unknown
// fields (`owner`: mass assignment), an empty name, a negative price, `"1"` for a number.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    name: String,
    description: Option<String>,
    price: f64,
    tax: Option<f64>,
}

impl Validate for Item {
    fn validate(&self, rules: &mut Rules) {
        rules.length("name", &self.name, 1, 200);
        rules.range("price", self.price, 0.0, 1e9);
        rules.range("tax", self.tax.unwrap_or(0.0), 0.0, 1e9);
    }
}

#[derive(Deserialize)]
struct ListParams {
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

impl Validate for ListParams {
    fn validate(&self, rules: &mut Rules) {
        rules.length("q", self.q.as_deref().unwrap_or_default(), 0, 100);
        rules.range("limit", self.limit.unwrap_or(10), 1, 100);
    }
}

// ── 8. XSS: sanitizing user HTML ────────────────────────────────────────────────────────────
// The guide (bleach there; nh3 in the runnable version, bleach being deprecated):
//     description=nh3.clean(item.description) if item.description is not None else None,
// bulwark: the stored item holds a `SafeHtml`, whose only constructor sanitizes, so no code path
// can store raw HTML by forgetting a call, and its allowlist is narrower than nh3's defaults
// (no `img`, no attribute but `a href` with http, https or mailto).

#[derive(Clone, Serialize)]
struct ItemOut {
    id: u64,
    name: String,
    description: Option<SafeHtml>,
    price: f64,
    tax: Option<f64>,
    price_with_tax: f64,
    owner: String,
}

async fn create_item(
    State(app): State<App>,
    user: CurrentUser,
    Validated(Json(item)): Validated<Json<Item>>,
) -> (StatusCode, Json<ItemOut>) {
    let mut items = app.items.write().unwrap_or_else(PoisonError::into_inner);
    let id = items.len() as u64 + 1;
    let out = ItemOut {
        id,
        name: item.name,
        description: item.description.as_deref().map(SafeHtml::sanitize),
        price: item.price,
        tax: item.tax,
        price_with_tax: item.price + item.tax.unwrap_or(0.0),
        owner: user.sub.clone(),
    };
    items.insert(id, out.clone());
    (StatusCode::CREATED, Json(out))
}

// ── 9. Parameterized queries ────────────────────────────────────────────────────────────────
// The guide:
//     stmt = select(ItemRow).where(ItemRow.owner == current_user.username)
//     if q:
//         stmt = stmt.where(ItemRow.name.contains(q, autoescape=True))
// bulwark: nothing for the library to add: this example keeps items in memory, where input is
// only ever compared as a typed value; the `bulwark` server stores them with sqlx and bound
// parameters only (crates/bulwark-server/src/db/), never SQL built from strings.

async fn read_item(
    State(app): State<App>,
    user: CurrentUser,
    Path(item_id): Path<u64>,
) -> Result<Json<ItemOut>, HttpError> {
    let items = app.items.read().unwrap_or_else(PoisonError::into_inner);
    let item = items.get(&item_id);
    // Someone else's item is indistinguishable from a missing one.
    let visible = item.filter(|i| i.owner == user.sub || user.has_role("admin"));
    let not_found = || HttpError::new(StatusCode::NOT_FOUND, "Item not found");
    visible.cloned().map(Json).ok_or_else(not_found)
}

async fn list_items(
    State(app): State<App>,
    user: CurrentUser,
    Validated(Query(params)): Validated<Query<ListParams>>,
) -> Json<Vec<ItemOut>> {
    let items = app.items.read().unwrap_or_else(PoisonError::into_inner);
    let (skip, take) = (params.offset.unwrap_or(0), params.limit.unwrap_or(10));
    let q = params.q.unwrap_or_default();
    let mine = |i: &&ItemOut| i.owner == user.sub && i.name.contains(&q);
    let page = items.values().filter(mine).skip(skip).take(take);
    Json(page.cloned().collect())
}

// ── 10. CSRF, with a token endpoint ─────────────────────────────────────────────────────────
// The guide's app: none; its tokens travel in `Authorization` headers, which a browser never
// adds by itself (the guide's CSRF section adds a token endpoint for cookie-based pages).
// bulwark: with the session cookie of §3, every cookie-authenticated write is checked in the
// pipeline (origin, then a signed double-submit token from `GET /csrf-token` in `X-CSRF-Token`),
// so no handler can forget it, and bearer calls stay exempt.

// ── 11. HTTPS ───────────────────────────────────────────────────────────────────────────────
// The guide's app: none (uvicorn serves plain HTTP; the guide says to serve over HTTPS).
// bulwark: `GUIDE_TLS=1` serves HTTPS itself (rustls, TLS 1.2 and 1.3 only, no 0-RTT) with a
// self-signed development certificate, and the pipeline then sends HSTS and marks cookies
// `Secure`; behind a TLS proxy, keep `.https(true)` and leave certificates to the proxy.

#[cfg(feature = "dev-certs")]
fn serve_options(https: bool) -> Result<ServeOptions, Box<dyn Error>> {
    use bulwark::tls;
    let mut options = ServeOptions::default();
    if https {
        tls::install_default_crypto_provider();
        let dev = tls::self_signed(tls::LOCAL_NAMES)?;
        eprintln!("self-signed certificate, SHA-256 {}", dev.fingerprint);
        let resolver = Arc::new(tls::CertificateResolver::fixed(dev.certified_key));
        options.tls = Some(tls::server_config(resolver)?);
    }
    Ok(options)
}

#[cfg(not(feature = "dev-certs"))]
fn serve_options(https: bool) -> Result<ServeOptions, Box<dyn Error>> {
    let needs = "GUIDE_TLS=1 needs the `dev-certs` feature (--features dev-certs)";
    (!https)
        .then(ServeOptions::default)
        .ok_or_else(|| needs.into())
}

// ── 12. OpenAPI docs and WebSockets: not in this example ────────────────────────────────────
// The guide: `FastAPI(...)` serves /docs and /openapi.json by itself. The library adds no document
// generator and no WebSocket guard: the `bulwark` server documents its API with utoipa
// (crates/bulwark-server/src/routes/openapi.rs), and its `/ws` (routes/ws.rs) takes the token
// from `Sec-WebSocket-Protocol`, never from the query string, and refuses foreign origins.

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let https = std::env::var("GUIDE_TLS").is_ok_and(|v| v == "1");
    let options = serve_options(https)?; // §11
    let secret = master_secret()?; // §1
    let hasher = PasswordHasher::new(Default::default())?; // §2
    let users = users(&hasher).await?;
    let keys = key_manager(&secret).await?; // §5
    let config = JwtConfig::new("guide", "guide").session_cookie("session");
    // A `kid` this instance does not know yet (another instance rotated): reload the ring once.
    let jwt = JwtAuth::new(Arc::clone(keys.ring()), config).with_key_refresh(keys.clone());
    let limits = Arc::new(rate_limits()?); // §4
    let origins = std::env::var("GUIDE_ORIGINS").unwrap_or_default();
    let origins: Vec<String> = origins.split_terminator(',').map(str::to_owned).collect();
    let csrf = Arc::new(Csrf::new(&secret, https, &origins, "session")); // §10

    // One layer in front of the router: security headers, body limit and timeout, CORS for the
    // listed origins only, authentication, rate limits, CSRF, and an early 401 on these routes.
    let pipeline = Pipeline::builder()
        .authentication(jwt.clone())
        .rate_limits(Arc::clone(&limits))
        .csrf(Arc::clone(&csrf))
        .https(https)
        .allowed_origins(origins)
        .authenticated("/protected", [Method::GET])
        .authenticated("/items/", [Method::GET, Method::POST])
        .authenticated("/items/{item_id}", [Method::GET])
        .build()?;

    let state = App {
        users: Arc::new(users),
        items: Arc::default(),
        hasher,
        jwt,
        keys,
        limits,
        csrf,
    };
    let app = Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/token", post(login))
        .route("/protected", get(protected))
        .route("/items/", post(create_item).get(list_items))
        .route("/items/{item_id}", get(read_item))
        .route("/admin/users", get(admin_users))
        .route("/admin/keys/rotate", post(rotate_key))
        .route("/admin/keys/{kid}", delete(revoke_key))
        .route("/csrf-token", get(csrf::token_endpoint))
        .with_state(state)
        .layer(pipeline);

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let scheme = if https { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    serve(listener, app, options, std::future::pending()).await;
    Ok(())
}
