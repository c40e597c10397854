//! Quickstart: an existing axum app (a login, a page for the caller, an admin action) secured
//! with bulwark. Each line bulwark added or changed is marked `+bulwark` (at its end, or just
//! above a handler whose signature changed); the README counts them.
//!
//! What it gets: passwords hashed with Argon2id off the async threads; JWT login through the
//! OAuth2 password flow (`POST /login`, a form) that also sets an `HttpOnly` session cookie; a
//! 401 for `/me` without a valid token and a 403 for `POST /admin` without the `admin` role;
//! login attempts limited to 5 a minute per client IP and everything else to 600 a minute per
//! user; cross-site writes refused on cookie-authenticated requests (CSRF); slow clients cut
//! off; the security headers and FastAPI-shaped errors on every answer.
//!
//! ```sh
//! ALICE_PASSWORD='correct horse battery' cargo run -p bulwark-axum --example quickstart
//! curl -s -d username=alice -d 'password=correct horse battery' http://127.0.0.1:3000/login
//! curl -s -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:3000/me
//! ```
//! `ADDR` sets the address (`127.0.0.1:0`: any free port; the address is printed).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    extract::{FromRef, State},
    http::header::SET_COOKIE,
    response::IntoResponse,
    routing::{get, post},
};
use bulwark::prelude::*; // +bulwark
use secrecy::SecretString;
use serde::Deserialize;

/// The users of this demo: name → (password hash, roles).
type Users = Arc<HashMap<String, (String, Vec<String>)>>;

#[derive(Clone, FromRef)]
struct AppState {
    users: Users,
    jwt: JwtAuth,           // +bulwark
    hasher: PasswordHasher, // +bulwark
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: SecretString,
}

async fn login(
    State(state): State<AppState>,
    Form(form): Form<LoginForm>,
) -> Result<impl IntoResponse, HttpError> {
    let user = state.users.get(&form.username);
    // An unknown user is checked against a dummy hash: the answer takes as long either way.
    let hash = user.map(|(hash, _)| hash.as_str());
    let ok = state.hasher.verify(form.password, hash).await?.is_match(); // +bulwark
    let Some((_, roles)) = user.filter(|_| ok) else {
        return Err(HttpError::invalid_login()); // +bulwark
    };
    let token = state.jwt.issue(&form.username, None, roles)?; // +bulwark
    let cookie = token.session_cookie("session", false); // +bulwark
    Ok(([(SET_COOKIE, cookie)], token)) // +bulwark
}

// +bulwark: the caller, from a verified token (else 401)
async fn me(user: CurrentUser) -> String {
    format!("hello, {}", user.sub)
}

// +bulwark: a caller with the admin role (else 401 or 403)
async fn admin(admin: RequireRole<Admin>) -> String {
    format!("done, admin {}", admin.sub)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hasher = PasswordHasher::new(Default::default())?; // +bulwark
    let mut users = HashMap::new();
    for (name, variable, roles) in [
        ("alice", "ALICE_PASSWORD", vec![]),
        ("admin", "ADMIN_PASSWORD", vec!["admin".to_owned()]),
    ] {
        // No password in the code: each comes from the environment, or the user is left out.
        if let Ok(password) = std::env::var(variable) {
            let hash = hasher.hash(password.into()).await?; // +bulwark
            users.insert(name.to_owned(), (hash.into_string(), roles));
        }
    }
    // Signing keys in memory (tokens die with the process; `bulwark::jwt::KeyManager` keeps and
    // rotates them in a store), and a master secret for the CSRF tokens.
    let jwt = JwtAuth::ephemeral(JwtConfig::new("qs", "qs").session_cookie("session")); // +bulwark
    let csrf = Csrf::new(&MasterSecret::generate(), false, &[], "session"); // +bulwark
    let pipeline = Pipeline::builder().authentication(jwt.clone()).csrf(csrf); // +bulwark

    let state = AppState {
        users: Arc::new(users),
        jwt,    // +bulwark
        hasher, // +bulwark
    };
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/admin", post(admin))
        .with_state(state)
        .layer(pipeline.login_route("POST /login").build()?); // +bulwark

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    bulwark::serve::serve(listener, app, Default::default(), std::future::pending()).await; // +bulwark
    Ok(())
}
