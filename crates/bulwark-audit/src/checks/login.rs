//! The login: attempts not limited, users enumerable, weak passwords accepted.
//!
//! The first two talk to the login the audit uses (`cx.token_url`, the OAuth2 password flow: a
//! form with `grant_type=password`, `username` and `password`); the third to the sign-up the
//! document describes. Every login sent here carries a random wrong password, except the one
//! right login that shows a flood was not followed by a lock-out.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use http::Method;
use serde_json::{Map, Value};

use crate::{
    api::{Api, BodyKind, Operation},
    catalog::CheckId,
    config::UserCredential,
    context::{Context, Outcome},
    generate::{self, Fill},
    probe::{Exchange, ProbeRequest},
    report::{Evidence, Finding},
};

/// Wrong passwords sent in a row by `login-no-rate-limit`.
const FLOOD: usize = 30;
/// Interleaved pairs (existing user, unknown user) sent by `user-enumeration`.
const PAIRS: usize = 8;
/// The fewest pairs a timing verdict rests on.
const TIMING_PAIRS: usize = 6;
/// The gap between the medians that counts as a timing difference.
const TIMING_GAP: Duration = Duration::from_millis(50);

/// A random lowercase hex string (48 bits): usernames and passwords that cannot exist by chance.
pub(crate) fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// A path as documented: the path of an absolute URL, without a trailing `/` (so that `/token`
/// and `/token/` compare equal).
pub(crate) fn normal_path(path: &str) -> String {
    let path = url::Url::parse(path)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| path.split('?').next().unwrap_or("").to_owned());
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_owned()
    }
}

/// `POST /token`: the login operation as findings name it.
fn login_label(cx: &Context) -> String {
    let path = url::Url::parse(&cx.token_url)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| cx.token_url.clone());
    format!("POST {path}")
}

/// The top-level properties of an object schema (the parts of an `allOf` merged).
pub(crate) fn properties(schema: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.extend(props.clone());
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            out.extend(properties(part));
        }
    }
    out
}

/// Whether a field holds a (new) password: `password`, `password1`, `passwd`, `pwd`...
pub(crate) fn is_password_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password") || matches!(n.as_str(), "pass" | "passwd" | "pwd")
}

/// Whether a field names an account: `username`, `email`, `login`...
pub(crate) fn is_user_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("username")
        || n.contains("email")
        || matches!(
            n.as_str(),
            "user" | "login" | "user_name" | "mail" | "e-mail" | "userid" | "user_id"
        )
}

/// Whether a field is the current password of a password change (not a sign-up).
fn is_old_password_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    is_password_field(&n) && (n.contains("old") || n.contains("current"))
}

/// Whether a path's segments name a login (`/login`, `/auth/signin`, `/session`).
pub(crate) fn is_login_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [
        "login", "signin", "sign-in", "sign_in", "log-in", "session", "auth",
    ]
    .iter()
    .any(|k| p.contains(k))
}

/// Whether a path's segments name a registration (`/register`, `/users/signup`).
fn is_signup_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [
        "register",
        "signup",
        "sign-up",
        "sign_up",
        "registration",
        "join",
    ]
    .iter()
    .any(|k| p.contains(k))
}

/// Whether a path's last static segment is a collection of accounts (`/users`, `/accounts`).
fn is_accounts_path(path: &str) -> bool {
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        last.as_str(),
        "users" | "user" | "accounts" | "account" | "members"
    )
}

/// An operation whose body carries an account name and a password, in JSON or a form.
fn takes_credentials(op: &Operation) -> bool {
    let Some(body) = &op.body else {
        return false;
    };
    if !matches!(body.kind, BodyKind::Json | BodyKind::Form) {
        return false;
    }
    let props = properties(&body.schema);
    props.keys().any(|k| is_user_field(k)) && props.keys().any(|k| is_password_field(k))
}

/// The documented sign-ups, best first: `POST` with an account name and a password in its body,
/// not the token URL, not a login, not a password change; `/register` and `/signup` before
/// `/users`, public before admin.
pub(crate) fn signup_operations<'a>(api: &'a Api, token_url: &str) -> Vec<&'a Operation> {
    let token = normal_path(token_url);
    let mut found: Vec<(u8, &Operation)> = api
        .operations
        .iter()
        .filter(|op| op.method == Method::POST && op.path_params().next().is_none())
        .filter(|op| normal_path(&op.path) != token)
        .filter(|op| takes_credentials(op))
        .filter(|op| {
            op.body.as_ref().is_some_and(|b| {
                !properties(&b.schema)
                    .keys()
                    .any(|k| is_old_password_field(k))
            })
        })
        .filter_map(|op| {
            let p = op.path.to_ascii_lowercase();
            if p.contains("password") || p.contains("token") {
                return None;
            }
            let mut rank = if is_signup_path(&p) {
                0
            } else if is_login_path(&p) {
                return None;
            } else if is_accounts_path(&p) {
                1
            } else {
                return None;
            };
            if p.contains("admin") {
                rank += 2;
            }
            Some((rank, op))
        })
        .collect();
    found.sort_by_key(|(rank, _)| *rank);
    found.into_iter().map(|(_, op)| op).collect()
}

/// A wrong-password login at the token URL.
fn login_request(cx: &Context, username: &str, password: &str) -> ProbeRequest {
    ProbeRequest::new(Method::POST, cx.token_url.clone()).form(&[
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ])
}

/// Why an answer shows the login is limited, if it does: 429, `Retry-After`, 423, or a 403
/// that says so.
fn limited(x: &Exchange) -> Option<String> {
    let status = x.status.as_u16();
    if status == 429 {
        return Some("429 Too Many Requests".into());
    }
    if x.header("retry-after").is_some() {
        return Some(format!("{status} with Retry-After"));
    }
    if status == 423 {
        return Some("423 Locked".into());
    }
    if status == 403 {
        let body = x.text().to_ascii_lowercase();
        if [
            "lock",
            "too many",
            "attempts",
            "try again",
            "blocked",
            "temporarily",
            "rate",
        ]
        .iter()
        .any(|k| body.contains(k))
        {
            return Some("403 lock-out".into());
        }
    }
    None
}

/// Evidence with the account's name replaced (usernames go in no report).
fn evidence_without(cx: &Context, x: &Exchange, usernames: &[&str]) -> Evidence {
    let mut e = cx.evidence(x);
    for name in usernames.iter().filter(|n| n.len() >= 3) {
        let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        for text in [&mut e.request, &mut e.response] {
            *text = text.replace(&encoded, "<user>").replace(*name, "<user>");
        }
    }
    e
}

/// `login-no-rate-limit`: 30 wrong passwords in a row for a real account, then the right one.
/// Passed when any answer is 429, 423, a 403 lock-out or carries `Retry-After`; a finding when
/// all 30 were a plain 401/400 and the right password (when known) still logs in at once.
pub async fn no_rate_limit(cx: &Context) -> Outcome {
    let user = cx.users.first();
    let username = user.map_or_else(|| format!("bwkaudit{}", nonce()), |u| u.username.clone());
    let wrong = format!("bwk-Wrong-{}", nonce());
    let mut last: Option<Exchange> = None;
    for i in 0..FLOOD {
        let x = match cx.send(login_request(cx, &username, &wrong)).await {
            Ok(x) => x,
            Err(e) if i == 0 => return e.into(),
            Err(e) => {
                return Outcome::Passed(Some(format!(
                    "the login stopped answering after {i} failed attempts ({e})"
                )));
            }
        };
        let status = x.status.as_u16();
        if let Some(why) = limited(&x) {
            return Outcome::Passed(Some(format!(
                "login limited after {} failed attempts ({why})",
                i + 1
            )));
        }
        if i == 0 && matches!(status, 404 | 405) {
            return Outcome::Skipped(format!(
                "no login at {} (it answered {status})",
                login_label(cx)
            ));
        }
        if !matches!(status, 400 | 401) {
            return if i == 0 {
                Outcome::Skipped(format!(
                    "{} answered {status} to a wrong password: not a password login the audit can judge",
                    login_label(cx)
                ))
            } else {
                Outcome::Passed(Some(format!(
                    "the login's answer changed to {status} after {i} failed attempts"
                )))
            };
        }
        last = Some(x);
    }
    let Some(last) = last else {
        return Outcome::Skipped("no login attempt was answered".into());
    };
    let status = last.status.as_u16();
    let title = match user.and_then(|u| u.password.as_deref()) {
        Some(password) => {
            let right = ProbeRequest::new(Method::POST, cx.token_url.clone()).form(&[
                ("grant_type", "password"),
                ("username", &username),
                ("password", password),
            ]);
            let x = match cx.send(right).await {
                Ok(x) => x,
                Err(e) => return e.into(),
            };
            if let Some(token) = x
                .json()
                .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned))
            {
                cx.secrets.add(&token);
            }
            if !x.status.is_success() {
                return Outcome::Passed(Some(format!(
                    "{FLOOD} failed attempts were answered {status}, but the right password was then refused ({}): a lock-out",
                    x.status.as_u16()
                )));
            }
            format!(
                "{FLOOD} wrong passwords in a row were all answered {status}, and the right password still logged in at once"
            )
        }
        None => format!(
            "{FLOOD} failed logins in a row (for an unknown username: no account was given) were all answered {status}: no 429, lock-out or Retry-After"
        ),
    };
    let evidence = evidence_without(cx, &last, &[&username]);
    Outcome::Found(vec![
        Finding::new(CheckId::LoginNoRateLimit, login_label(cx), evidence).titled(title),
    ])
}

/// A body with the usernames and every number taken out, so that two answers that differ only
/// in the name they echo or a timestamp compare equal.
fn normalise(body: &str, usernames: &[&str]) -> String {
    let mut text = body.to_owned();
    for name in usernames.iter().filter(|n| !n.is_empty()) {
        text = text.replace(*name, "<user>");
    }
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('0');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Timing verdict: `Some((slow_is_known, slow median, fast median))` when every sample of one
/// side is slower than every sample of the other and the medians are [`TIMING_GAP`] apart.
fn timing_gap(known: &[Duration], unknown: &[Duration]) -> Option<(bool, Duration, Duration)> {
    if known.len() < TIMING_PAIRS || unknown.len() < TIMING_PAIRS {
        return None;
    }
    let (mk, mu) = (median(known), median(unknown));
    let (slow, fast, slow_is_known) = if mk > mu {
        (known, unknown, true)
    } else {
        (unknown, known, false)
    };
    let min_slow = slow.iter().min()?;
    let max_fast = fast.iter().max()?;
    let (ms, mf) = (median(slow), median(fast));
    (min_slow > max_fast && ms.saturating_sub(mf) >= TIMING_GAP).then_some((slow_is_known, ms, mf))
}

/// Evidence of two exchanges side by side.
fn pair_evidence(
    cx: &Context,
    known: &Exchange,
    unknown: &Exchange,
    usernames: &[&str],
) -> Evidence {
    let a = evidence_without(cx, known, usernames);
    let b = evidence_without(cx, unknown, usernames);
    Evidence {
        request: format!(
            "(an existing user, wrong password)\n{}\n\n(an unknown user)\n{}",
            a.request, b.request
        ),
        response: format!(
            "(an existing user, wrong password)\n{}\n\n(an unknown user)\n{}",
            a.response, b.response
        ),
    }
}

/// `user-enumeration`: wrong passwords for an existing account and for an unknown one,
/// interleaved. A finding when the status or the body (usernames and numbers taken out) differ
/// in every pair (at least two), or when every sample of one side is slower than every sample of
/// the other with the medians at least 50 ms apart (six pairs or more). A 429 ends the
/// sampling and is no evidence.
pub async fn user_enumeration(cx: &Context) -> Outcome {
    let Some(user) = cx.users.first() else {
        return Outcome::Skipped("needs a known username (users in --credentials)".into());
    };
    let known_name = user.username.as_str();
    let unknown_name = format!("bwkaudit{}", nonce());
    let wrong = format!("bwk-Wrong-{}", nonce());
    let names = [known_name, unknown_name.as_str()];
    let mut known: Vec<Exchange> = Vec::new();
    let mut unknown: Vec<Exchange> = Vec::new();
    let mut stopped = None;
    'pairs: for i in 0..PAIRS {
        let order: [bool; 2] = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut pair: [Option<Exchange>; 2] = [None, None];
        for is_known in order {
            let name = if is_known {
                known_name
            } else {
                unknown_name.as_str()
            };
            let x = match cx.send(login_request(cx, name, &wrong)).await {
                Ok(x) => x,
                Err(e) if i == 0 => return e.into(),
                Err(e) => {
                    stopped = Some(e.to_string());
                    break 'pairs;
                }
            };
            let status = x.status.as_u16();
            if i == 0 && is_known && matches!(status, 404 | 405) {
                return Outcome::Skipped(format!(
                    "no login at {} (it answered {status})",
                    login_label(cx)
                ));
            }
            if let Some(why) = limited(&x) {
                stopped = Some(why);
                break 'pairs;
            }
            if is_known && x.status.is_success() {
                return Outcome::Skipped(format!(
                    "{} accepted a wrong password: cannot compare refusals",
                    login_label(cx)
                ));
            }
            pair[usize::from(!is_known)] = Some(x);
        }
        if let [Some(k), Some(u)] = pair {
            known.push(k);
            unknown.push(u);
        }
    }
    let n = known.len();
    if n == 0 {
        return Outcome::Skipped(format!(
            "the login limited the first attempts ({}): nothing to compare",
            stopped.unwrap_or_default()
        ));
    }
    let label = login_label(cx);
    if n >= 2 {
        let (ks, us) = (known[0].status, unknown[0].status);
        let status_differs = ks != us
            && known.iter().all(|x| x.status == ks)
            && unknown.iter().all(|x| x.status == us);
        if status_differs {
            let evidence = pair_evidence(cx, &known[0], &unknown[0], &names);
            return Outcome::Found(vec![
                Finding::new(CheckId::UserEnumeration, label, evidence).titled(format!(
                    "The login answers {} for a wrong password and {} for an unknown user",
                    ks.as_u16(),
                    us.as_u16()
                )),
            ]);
        }
        let kb = normalise(&known[0].text(), &names);
        let ub = normalise(&unknown[0].text(), &names);
        let body_differs = kb != ub
            && known.iter().all(|x| normalise(&x.text(), &names) == kb)
            && unknown.iter().all(|x| normalise(&x.text(), &names) == ub);
        if body_differs {
            let evidence = pair_evidence(cx, &known[0], &unknown[0], &names);
            return Outcome::Found(vec![
                Finding::new(CheckId::UserEnumeration, label, evidence)
                    .titled("The login's answer body tells an unknown user from a wrong password"),
            ]);
        }
    }
    let kt: Vec<Duration> = known.iter().map(|x| x.elapsed).collect();
    let ut: Vec<Duration> = unknown.iter().map(|x| x.elapsed).collect();
    if let Some((slow_is_known, slow, fast)) = timing_gap(&kt, &ut) {
        let (slow_side, fast_side) = if slow_is_known {
            ("a wrong password", "an unknown user")
        } else {
            ("an unknown user", "a wrong password")
        };
        let evidence = pair_evidence(cx, &known[0], &unknown[0], &names);
        return Outcome::Found(vec![
            Finding::new(CheckId::UserEnumeration, label, evidence).titled(format!(
                "The login takes {} ms for {slow_side} and {} ms for {fast_side} (medians of {n} pairs, every sample apart)",
                slow.as_millis(),
                fast.as_millis()
            )),
        ]);
    }
    let mut note = format!("{n} pairs compared: same status and body");
    if n >= TIMING_PAIRS {
        note.push_str(", no timing gap");
    } else {
        note.push_str(", too few for timing");
    }
    if let Some(why) = stopped {
        note.push_str(&format!(" (stopped: {why})"));
    }
    Outcome::Passed(Some(note))
}

/// Weak passwords tried at sign-up, in order, with how a title describes each (never the value).
const WEAK: &[(&str, &str)] = &[
    ("a", "a one-character password"),
    (
        "password",
        "one of the most common passwords (a dictionary word)",
    ),
    (
        "12345678",
        "one of the most common passwords (eight digits in sequence)",
    ),
];

/// A sign-up body for `op`: generated values, a fresh account name in every account field and
/// `password` in every password field.
pub(crate) fn signup_body(op: &Operation, account: &str, password: &str) -> Value {
    let schema = op.body.as_ref().map_or(Value::Null, |b| b.schema.clone());
    let mut body = match generate::value_for(&schema) {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    for (name, prop) in properties(&schema) {
        let is_email = name.to_ascii_lowercase().contains("mail")
            || prop.get("format").and_then(Value::as_str) == Some("email");
        if is_password_field(&name) {
            body.insert(name, Value::String(password.into()));
        } else if is_email {
            body.insert(name, Value::String(format!("{account}@example.com")));
        } else if is_user_field(&name) {
            body.insert(name, Value::String(account.into()));
        }
    }
    Value::Object(body)
}

/// How to remove an account the audit created through `signup`, if the document says: a
/// `DELETE` on `{collection}/{id}` (as the session, else as the new account), or a `DELETE` on
/// `.../me` as the new account.
pub(crate) async fn removal(
    cx: &Context,
    api: &Api,
    signup: &Operation,
    account: &str,
    password: &str,
    answer: Option<&Value>,
) -> Option<ProbeRequest> {
    let collection = {
        let p = normal_path(&signup.path);
        if is_signup_path(p.rsplit('/').next().unwrap_or("")) {
            p.rsplit_once('/')
                .map(|(parent, _)| parent.to_owned())
                .unwrap_or_default()
        } else {
            p
        }
    };
    let deletes: Vec<&Operation> = api
        .operations
        .iter()
        .filter(|o| o.method == Method::DELETE)
        .collect();
    let own_token = || async {
        let user = UserCredential {
            username: account.to_owned(),
            password: Some(password.to_owned()),
        };
        cx.login(&user).await.ok().map(|(token, _)| token)
    };
    // `DELETE /users/{user_id}` (or `/admin/users/{user_id}`), by the id the answer gave.
    for op in &deletes {
        let params: Vec<_> = op.path_params().collect();
        let [param] = params.as_slice() else {
            continue;
        };
        let template = normal_path(&op.path);
        let Some((parent, _)) = template.rsplit_once('/') else {
            continue;
        };
        if !(parent == collection || is_accounts_path(parent)) {
            continue;
        }
        let id = answer.and_then(|a| {
            let pname = param.name.to_ascii_lowercase();
            let keys: Vec<&str> = if pname.contains("name") {
                vec!["username", "name"]
            } else {
                vec![param.name.as_str(), "id", "user_id", "uuid"]
            };
            keys.iter()
                .find_map(|k| a.get(*k).filter(|v| v.is_string() || v.is_number()))
                .map(generate::scalar_text)
        });
        let Some(id) = id.or_else(|| {
            param
                .name
                .to_ascii_lowercase()
                .contains("name")
                .then(|| account.to_owned())
        }) else {
            continue;
        };
        let mut fill = Fill::default();
        fill.path.insert(param.name.clone(), id);
        let request = generate::request_for(op, &fill);
        let request = match cx.sessions.first() {
            Some(s) if op.secured && op.path.contains("admin") => request.with_auth(&s.auth),
            _ => match own_token().await {
                Some(token) => request.bearer(&token),
                None => match cx.sessions.first() {
                    Some(s) => request.with_auth(&s.auth),
                    None => request,
                },
            },
        };
        return Some(request);
    }
    // `DELETE /users/me` as the new account.
    for op in &deletes {
        if op.path_params().next().is_none() && normal_path(&op.path).ends_with("/me") {
            let token = own_token().await?;
            return Some(generate::request_for(op, &Fill::default()).bearer(&token));
        }
    }
    None
}

/// `weak-password-policy`: creates a new random account through the documented sign-up with
/// the password `a`, then `password`, then `12345678`; a finding at the first one accepted
/// (2xx). The account is removed at the end when the document has a delete for it (the
/// finding's title says so when not).
pub async fn weak_password_policy(cx: &Context) -> Outcome {
    let Some(api) = &cx.api else {
        return Outcome::Skipped("no OpenAPI document: no sign-up known".into());
    };
    let signups = signup_operations(api, &cx.token_url);
    if signups.is_empty() {
        return Outcome::Skipped("the document describes no sign-up operation".into());
    }
    let mut notes = Vec::new();
    for op in signups.into_iter().take(2) {
        let mut refused = Vec::new();
        for (password, described) in WEAK {
            let account = format!("bwkaudit{}", nonce());
            let body = signup_body(op, &account, password);
            let mut request = generate::request_for(
                op,
                &Fill {
                    body: Some(body.clone()),
                    ..Fill::default()
                },
            );
            if op.secured
                && let Some(s) = cx.sessions.first()
            {
                request = request.with_auth(&s.auth);
            }
            let x = match cx.send(request).await {
                Ok(x) => x,
                Err(e) => return e.into(),
            };
            let status = x.status.as_u16();
            if matches!(status, 401 | 403 | 404 | 405 | 429) {
                notes.push(format!("{} answered {status}", op.label()));
                break;
            }
            if !x.status.is_success() {
                refused.push(status.to_string());
                continue;
            }
            // Accepted: show it with the password masked, and clean up after it.
            let answer = x.json();
            let removed = removal(cx, api, op, &account, password, answer.as_ref()).await;
            let mut title = format!("{} accepted {described} for a new account", op.label());
            match removed {
                Some(delete) => cx.created(delete),
                None => title.push_str(&format!(
                    " (the account {account} it created could not be removed: the document has no delete for it; remove it by hand)"
                )),
            }
            let mut masked_body = body;
            if let Some(o) = masked_body.as_object_mut() {
                for (k, v) in o.iter_mut() {
                    if is_password_field(k) {
                        *v = Value::String("***".into());
                    }
                }
            }
            let mut shown = x.clone();
            let mut masked = generate::request_for(
                op,
                &Fill {
                    body: Some(masked_body),
                    ..Fill::default()
                },
            );
            if op.secured
                && let Some(s) = cx.sessions.first()
            {
                masked = masked.with_auth(&s.auth);
            }
            shown.request = masked;
            return Outcome::Found(vec![
                Finding::new(CheckId::WeakPasswordPolicy, op.label(), cx.evidence(&shown))
                    .titled(title),
            ]);
        }
        if refused.len() == WEAK.len() {
            return Outcome::Passed(Some(format!(
                "{} refused every weak password ({})",
                op.label(),
                refused.join(", ")
            )));
        }
    }
    Outcome::Skipped(format!("no sign-up is open: {}", notes.join("; ")))
}

#[cfg(test)]
pub(crate) mod tests;
