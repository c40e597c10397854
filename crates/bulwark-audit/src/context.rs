//! What every check works with: the probe, the API model, the logged-in sessions, the secrets to
//! mask, and the objects the audit created (removed at the end).

use std::{
    any::Any,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use http::Method;

use crate::{
    api::Api,
    config::UserCredential,
    probe::{Auth, Exchange, Probe, ProbeError, ProbeRequest, Secrets},
    report::{Evidence, Finding},
};

/// A user the audit acts as.
#[derive(Debug, Clone)]
pub struct Session {
    /// `user A`, `user B`, ... (never the username: that goes in no report).
    pub label: String,
    /// The username, when logged in with a password.
    pub username: Option<String>,
    /// What its requests carry.
    pub auth: Auth,
}

/// An object the audit created, and how to remove it.
#[derive(Debug, Clone)]
pub struct Created {
    /// The `DELETE` (or other) request that removes it.
    pub delete: ProbeRequest,
}

/// The shared state of one audit.
#[derive(Debug)]
pub struct Context {
    /// The HTTP client.
    pub probe: Probe,
    /// The API, when a document was found.
    pub api: Option<Api>,
    /// Logged-in users (none, one, or two and more).
    pub sessions: Vec<Session>,
    /// The accounts given (the login checks try them).
    pub users: Vec<UserCredential>,
    /// Where logins go (`/token` unless told or documented).
    pub token_url: String,
    /// Every secret to mask.
    pub secrets: Secrets,
    created: Mutex<Vec<Created>>,
    memo: Mutex<HashMap<&'static str, Remembered>>,
}

/// A result one check left for the next, and the request count when it was made.
type Remembered = (u64, Arc<dyn Any + Send + Sync>);

/// How a check ended.
#[derive(Debug)]
pub enum Outcome {
    /// Ran and found nothing; with a note on what was tried.
    Passed(Option<String>),
    /// Found these.
    Found(Vec<Finding>),
    /// Could not run; why.
    Skipped(String),
}

impl Outcome {
    /// `Found` when `findings` has any, else `Passed` with `note`.
    pub fn from_findings(findings: Vec<Finding>, note: Option<String>) -> Self {
        if findings.is_empty() {
            Outcome::Passed(note)
        } else {
            Outcome::Found(findings)
        }
    }
}

impl From<ProbeError> for Outcome {
    fn from(e: ProbeError) -> Self {
        Outcome::Skipped(e.to_string())
    }
}

impl Context {
    /// A context with no document, sessions or users yet.
    pub fn new(probe: Probe, secrets: Secrets) -> Self {
        Context {
            probe,
            api: None,
            sessions: Vec::new(),
            users: Vec::new(),
            token_url: "/token".into(),
            secrets,
            created: Mutex::new(Vec::new()),
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request (see [`Probe::send`]).
    pub async fn send(&self, request: ProbeRequest) -> Result<Exchange, ProbeError> {
        self.probe.send(request).await
    }

    /// The evidence of an exchange, secrets masked.
    pub fn evidence(&self, exchange: &Exchange) -> Evidence {
        exchange.evidence(&self.secrets)
    }

    /// Leaves `value` under `key` for the next check of this audit (e.g. the crafted answers
    /// that `verbose-errors` and `server-error` both read), see [`Context::recall`].
    pub fn remember<T: Any + Send + Sync>(&self, key: &'static str, value: Arc<T>) {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (self.probe.sent(), value));
    }

    /// Takes what [`Context::remember`] left under `key`, if no request was sent since (the
    /// target may have changed after one).
    pub fn recall<T: Any + Send + Sync>(&self, key: &'static str) -> Option<Arc<T>> {
        let (sent, value) = self
            .memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)?;
        if sent != self.probe.sent() {
            return None;
        }
        value.downcast::<T>().ok()
    }

    /// Remembers an object to remove at the end.
    pub fn created(&self, delete: ProbeRequest) {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Created { delete });
    }

    /// Removes what the audit created, newest first. Returns how many could not be removed.
    pub async fn clean_up(&self) -> usize {
        let created: Vec<Created> =
            std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        let mut left = 0;
        for c in created.into_iter().rev() {
            match self.probe.send(c.delete).await {
                Ok(x) if x.status.is_success() || x.status.as_u16() == 404 => {}
                _ => left += 1,
            }
        }
        left
    }

    /// Logs `user` in through the OAuth2 password flow at `token_url`: the access token, or why
    /// not.
    pub async fn login(&self, user: &UserCredential) -> Result<(String, Exchange), String> {
        let Some(password) = &user.password else {
            return Err(format!(
                "no password for user {} (credentials file or BULWARK_AUDIT_PASSWORD_<n>)",
                self.users
                    .iter()
                    .position(|u| u.username == user.username)
                    .map_or(0, |i| i + 1)
            ));
        };
        let request = ProbeRequest::new(Method::POST, self.token_url.clone()).form(&[
            ("grant_type", "password"),
            ("username", &user.username),
            ("password", password),
        ]);
        let exchange = self.send(request).await.map_err(|e| e.to_string())?;
        if !exchange.status.is_success() {
            return Err(format!(
                "login at {} answered {}",
                self.token_url, exchange.status
            ));
        }
        let token = exchange
            .json()
            .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned))
            .ok_or_else(|| format!("login at {} gave no access_token", self.token_url))?;
        self.secrets.add(&token);
        Ok((token, exchange))
    }

    /// The first two sessions, when there are two (the object-level checks need them).
    pub fn two_sessions(&self) -> Option<(&Session, &Session)> {
        match self.sessions.as_slice() {
            [a, b, ..] => Some((a, b)),
            _ => None,
        }
    }
}
