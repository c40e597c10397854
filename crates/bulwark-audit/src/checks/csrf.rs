//! Cross-site request forgery: a state change authenticated by a cookie alone, sent the way a
//! foreign page makes a browser send it (`Origin: https://bwk-evil.example`,
//! `Sec-Fetch-Site: cross-site`, no CSRF token, no `Authorization`).
//!
//! The cookie comes from the credentials file (a `Cookie` header), else from the browser login
//! the document describes (a `POST /login`-like form, with the CSRF token its login page or a
//! documented token endpoint hands out). Only the audit's own objects are created and deleted:
//! a create on a collection, and a delete of an object the audit just made with its bearer
//! session. Before each forged request a control without any credentials must be refused, so
//! that an operation open to anyone (`auth-missing`) is never reported as CSRF.

use http::Method;
use serde_json::Value;

use crate::{
    api::{Api, BodyKind, Operation},
    catalog::CheckId,
    context::{Context, Outcome},
    generate::{self, Fill},
    objects,
    probe::{Auth, Exchange, ProbeRequest},
    report::Finding,
};

use super::{
    login::{is_login_path, is_password_field, is_user_field, normal_path, properties},
    transport::EVIL_ORIGIN,
};

/// Collections tried (creates), at most.
const MAX_COLLECTIONS: usize = 3;

/// Cookies kept between answers, in the order they were set.
#[derive(Debug, Clone, Default)]
struct Jar {
    cookies: Vec<(String, String)>,
}

/// One `Set-Cookie`: name, value, whether it removes the cookie, its `SameSite`.
fn parse_set_cookie(value: &str) -> Option<(String, String, bool, Option<String>)> {
    let mut parts = value.split(';');
    let (name, val) = parts.next()?.split_once('=')?;
    let (name, val) = (
        name.trim().to_owned(),
        val.trim().trim_matches('"').to_owned(),
    );
    if name.is_empty() {
        return None;
    }
    let mut removed = val.is_empty();
    let mut same_site = None;
    for attr in parts {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "max-age" && v.parse::<i64>().is_ok_and(|n| n <= 0) {
            removed = true;
        }
        if k == "expires" && v.contains("1970") {
            removed = true;
        }
        if k == "samesite" {
            same_site = Some(v.to_owned());
        }
    }
    Some((name, val, removed, same_site))
}

impl Jar {
    /// Takes the cookies `x` sets (and drops those it clears). Returns the names set, with
    /// their `SameSite`.
    fn absorb(&mut self, x: &Exchange) -> Vec<(String, Option<String>)> {
        let mut set = Vec::new();
        for header in x.headers.get_all("set-cookie") {
            let Some((name, value, removed, same_site)) =
                header.to_str().ok().and_then(parse_set_cookie)
            else {
                continue;
            };
            self.cookies.retain(|(n, _)| *n != name);
            if !removed {
                self.cookies.push((name.clone(), value));
                set.push((name, same_site));
            }
        }
        set
    }

    /// The `Cookie` header, if there is any cookie.
    fn header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// A cookie-authenticated browser session.
#[derive(Debug, Clone)]
struct CookieSession {
    /// The `Cookie` header value.
    cookie: String,
    /// The session cookie's `SameSite`, when the login set one.
    same_site: Option<String>,
    /// Whether the first bearer session is the same account (its token may clean up).
    same_as_session: bool,
}

/// The value of a hidden `<input name="field" value="...">` in an HTML page.
fn hidden_value(html: &str, field: &str) -> Option<String> {
    let mut rest = html;
    while let Some(at) = rest.find("<input") {
        let tag_start = &rest[at..];
        let end = tag_start.find('>').unwrap_or(tag_start.len());
        let tag = &tag_start[..end];
        rest = &tag_start[end..];
        let named = [format!("name=\"{field}\""), format!("name='{field}'")]
            .iter()
            .any(|n| tag.contains(n.as_str()));
        if !named {
            continue;
        }
        for quote in ['"', '\''] {
            let key = format!("value={quote}");
            if let Some(v) = tag.find(&key) {
                let value = &tag[v + key.len()..];
                let value = value.split(quote).next().unwrap_or("");
                return Some(value.replace("&amp;", "&"));
            }
        }
    }
    None
}

/// A CSRF token in a JSON answer: under `field`, else under a key that names one.
fn json_token(x: &Exchange, field: &str) -> Option<String> {
    let v = x.json()?;
    let o = v.as_object()?;
    o.get(field)
        .or_else(|| {
            o.iter()
                .find(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    k.contains("csrf") || k.contains("xsrf")
                })
                .map(|(_, v)| v)
        })
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn is_csrf_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("csrf") || n.contains("xsrf") || n == "_token" || n == "authenticity_token"
}

/// The documented browser login: a `POST` with an account name and a password, on a login path,
/// that is not the token URL.
fn browser_login_operation<'a>(api: &'a Api, token_url: &str) -> Option<&'a Operation> {
    let token = normal_path(token_url);
    api.operations.iter().find(|o| {
        o.method == Method::POST
            && normal_path(&o.path) != token
            && is_login_path(&o.path)
            && o.body.as_ref().is_some_and(|b| {
                let props = properties(&b.schema);
                props.keys().any(|k| is_user_field(k)) && props.keys().any(|k| is_password_field(k))
            })
    })
}

/// The cookie the credentials file gives (a `Cookie` header of a session), if any.
fn given_cookie(cx: &Context) -> Option<CookieSession> {
    let s = cx.sessions.first()?;
    let cookie = s
        .auth
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("cookie"))?
        .1
        .clone();
    Some(CookieSession {
        cookie,
        same_site: None,
        same_as_session: true,
    })
}

/// Logs the first user in through the browser login and keeps the cookies it sets.
async fn browser_login(cx: &Context, api: &Api) -> Result<CookieSession, String> {
    let op = browser_login_operation(api, &cx.token_url).ok_or(
        "no cookie session: no Cookie header given and the document describes no browser login",
    )?;
    let user = cx
        .users
        .first()
        .ok_or("no cookie session: no user to log in as through the browser login")?;
    let password = user
        .password
        .as_deref()
        .ok_or("no cookie session: no password for the first user")?;
    let schema = op.body.as_ref().map_or(Value::Null, |b| b.schema.clone());
    let props = properties(&schema);
    let mut jar = Jar::default();
    let mut csrf = None;
    if let Some(field) = props.keys().find(|k| is_csrf_field(k)) {
        // The login page (a GET on the same path) or a documented token endpoint.
        let login_path = normal_path(&op.path);
        let pages = api.operations.iter().filter(|o| {
            let p = o.path.to_ascii_lowercase();
            o.method == Method::GET
                && o.path_params().next().is_none()
                && (normal_path(&o.path) == login_path || p.contains("csrf") || p.contains("xsrf"))
        });
        for page in pages.take(2) {
            let mut request = generate::request_for(page, &Fill::default());
            if let Some(cookie) = jar.header() {
                request = request.header("Cookie", cookie);
            }
            let Ok(x) = cx.send(request).await else {
                continue;
            };
            jar.absorb(&x);
            if let Some(token) = json_token(&x, field).or_else(|| hidden_value(&x.text(), field)) {
                cx.secrets.add(&token);
                csrf = Some((field.clone(), token));
                break;
            }
        }
    }
    let mut body = match generate::value_for(&schema) {
        Value::Object(o) => o,
        _ => serde_json::Map::new(),
    };
    for name in props.keys() {
        if is_password_field(name) {
            body.insert(name.clone(), Value::String(password.to_owned()));
        } else if is_user_field(name) {
            body.insert(name.clone(), Value::String(user.username.clone()));
        }
    }
    if let Some((field, token)) = csrf {
        body.insert(field, Value::String(token));
    }
    let mut request = generate::request_for(
        op,
        &Fill {
            body: Some(Value::Object(body)),
            ..Fill::default()
        },
    );
    if let Some(cookie) = jar.header() {
        request = request.header("Cookie", cookie);
    }
    let x = cx.send(request).await.map_err(|e| e.to_string())?;
    if !x.status.is_success() {
        return Err(format!(
            "no cookie session: the browser login {} answered {}",
            op.label(),
            x.status.as_u16()
        ));
    }
    let set = jar.absorb(&x);
    if set.is_empty() {
        return Err(format!(
            "no cookie session: the browser login {} set no cookie",
            op.label()
        ));
    }
    for (_, value) in &jar.cookies {
        cx.secrets.add(value);
    }
    let cookie = jar.header().ok_or("no cookie session: no cookie kept")?;
    Ok(CookieSession {
        cookie,
        same_site: set.iter().find_map(|(_, s)| s.clone()),
        same_as_session: cx
            .sessions
            .first()
            .is_some_and(|s| s.username.as_deref() == Some(user.username.as_str())),
    })
}

/// The item operation on `collection` (`{collection}/{param}`, see
/// [`objects::item_path_of`]) with this method, and its parameter.
fn item_operation<'a>(
    api: &'a Api,
    collection: &str,
    method: &Method,
) -> Option<(&'a Operation, String)> {
    let (item_path, param) = objects::item_path_of(api, collection)?;
    Some((api.find(method, &item_path)?, param))
}

/// The creates to try: a `POST` with a JSON or form body whose object is reachable at an item
/// path (see [`item_base`]).
fn creates(api: &Api) -> Vec<&Operation> {
    api.operations
        .iter()
        .filter(|o| {
            o.method == Method::POST && o.path_params().next().is_none() && o.body.is_some()
        })
        .filter(|o| item_base(api, o).is_some())
        .take(MAX_COLLECTIONS)
        .collect()
}

/// The collection whose item operations (`{collection}/{param}`) reach what `op` creates: its
/// own path, or for a form post beside the collection (`POST /items/form`, the way an HTML form
/// is often wired), its parent (`/items`).
fn item_base(api: &Api, op: &Operation) -> Option<String> {
    if item_operation(api, &op.path, &Method::GET).is_some() {
        return Some(op.path.clone());
    }
    let form = op
        .body
        .as_ref()
        .is_some_and(|b| matches!(b.kind, BodyKind::Form | BodyKind::Multipart));
    let (parent, _) = op.path.trim_end_matches('/').rsplit_once('/')?;
    (form && !parent.is_empty() && item_operation(api, parent, &Method::GET).is_some())
        .then(|| parent.to_owned())
}

/// `request` as a foreign page makes a browser send it.
fn cross_site(request: ProbeRequest) -> ProbeRequest {
    request
        .header("Origin", EVIL_ORIGIN)
        .header("Sec-Fetch-Site", "cross-site")
}

/// Credentials that may act on the cookie user's objects: the first session's when it is the
/// same account, plus the cookie.
fn owner_auth(cx: &Context, session: &CookieSession) -> Auth {
    let mut auth = match cx.sessions.first() {
        Some(s) if session.same_as_session => s.auth.clone(),
        _ => Auth::default(),
    };
    if !auth
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("cookie"))
    {
        auth.headers.push(("Cookie".into(), session.cookie.clone()));
    }
    auth
}

fn title(op: &Operation, session: &CookieSession, what: &str) -> String {
    let mut t = format!(
        "{} {what} with the session cookie alone, from {EVIL_ORIGIN} and without a CSRF token",
        op.label()
    );
    if let Some(s) = &session.same_site {
        t.push_str(&format!(
            " (the cookie is SameSite={s}: browsers that honour it hold this back, the server does not)"
        ));
    }
    t
}

/// `csrf`: with a cookie session, a create on each collection (at most three) and a delete of
/// the audit's own object are sent cross-site with the cookie alone. A finding when one is
/// accepted and its effect is seen: the created object can be read, the deleted one is gone.
pub async fn csrf(cx: &Context) -> Outcome {
    let Some(api) = &cx.api else {
        return Outcome::Skipped("no OpenAPI document: no state-changing operation known".into());
    };
    let collections = creates(api);
    if collections.is_empty() {
        return Outcome::Skipped(
            "the document has no create (a POST on a collection with an item path) to try".into(),
        );
    }
    let session = match given_cookie(cx) {
        Some(s) => s,
        None => match browser_login(cx, api).await {
            Ok(s) => s,
            Err(why) => return Outcome::Skipped(why),
        },
    };
    let owner = owner_auth(cx, &session);
    let mut notes = Vec::new();
    for op in &collections {
        let Some(base) = item_base(api, op) else {
            continue;
        };
        let Some((get, param)) = item_operation(api, &base, &Method::GET) else {
            continue;
        };
        let request = generate::request_for(op, &Fill::default());
        // The control: no credentials at all must be refused.
        let control = match cx.send(cross_site(request.clone())).await {
            Ok(x) => x,
            Err(e) => return e.into(),
        };
        if control.status.is_success() {
            if let (Some(id), Some((delete, _))) = (
                control.json().and_then(|v| objects::id_in(&v, &param)),
                item_operation(api, &base, &Method::DELETE),
            ) {
                let mut fill = Fill::default();
                fill.path.insert(param.clone(), id);
                cx.created(generate::request_for(delete, &fill).with_auth(&owner));
            }
            notes.push(format!(
                "{} accepts requests without credentials",
                op.label()
            ));
            continue;
        }
        if !matches!(control.status.as_u16(), 401 | 403) {
            notes.push(format!(
                "{} answered {} to a valid body",
                op.label(),
                control.status.as_u16()
            ));
            continue;
        }
        let forged = match cx
            .send(cross_site(request).header("Cookie", session.cookie.clone()))
            .await
        {
            Ok(x) => x,
            Err(e) => return e.into(),
        };
        if !forged.status.is_success() {
            continue;
        }
        let Some(id) = forged.json().and_then(|v| objects::id_in(&v, &param)) else {
            notes.push(format!(
                "{} accepted the forged request but named no object to check",
                op.label()
            ));
            continue;
        };
        let mut fill = Fill::default();
        fill.path.insert(param.clone(), id);
        if let Some((delete, _)) = item_operation(api, &base, &Method::DELETE) {
            cx.created(generate::request_for(delete, &fill).with_auth(&owner));
        }
        let read = match cx
            .send(generate::request_for(get, &fill).with_auth(&owner))
            .await
        {
            Ok(x) => x,
            Err(e) => return e.into(),
        };
        if read.status.is_success() {
            return Outcome::Found(vec![
                Finding::new(CheckId::Csrf, op.label(), cx.evidence(&forged)).titled(title(
                    op,
                    &session,
                    "created an object",
                )),
            ]);
        }
    }
    // A delete of the audit's own object, made with the bearer session of the same account.
    if let Some(found) = forged_delete(cx, api, &collections, &session).await {
        return found;
    }
    let mut note = format!(
        "cross-site requests with the session cookie alone were refused ({} operations)",
        collections.len()
    );
    if !notes.is_empty() {
        note.push_str(&format!("; {}", notes.join("; ")));
    }
    Outcome::Passed(Some(note))
}

/// Creates an object with the first session's bearer credentials, deletes it cross-site with
/// the cookie alone, and reads it back: a finding when it is gone.
async fn forged_delete(
    cx: &Context,
    api: &Api,
    collections: &[&Operation],
    session: &CookieSession,
) -> Option<Outcome> {
    let bearer = cx.sessions.first().filter(|_| session.same_as_session)?;
    let (op, delete, get, param) = collections.iter().find_map(|op| {
        let (delete, param) = item_operation(api, &op.path, &Method::DELETE)?;
        let (get, _) = item_operation(api, &op.path, &Method::GET)?;
        Some((*op, delete, get, param))
    })?;
    let created = cx
        .send(generate::request_for(op, &Fill::default()).with_auth(&bearer.auth))
        .await
        .ok()?;
    if !created.status.is_success() {
        return None;
    }
    let id = created.json().and_then(|v| objects::id_in(&v, &param))?;
    let mut fill = Fill::default();
    fill.path.insert(param, id);
    cx.created(generate::request_for(delete, &fill).with_auth(&bearer.auth));
    // The control: a delete without any credentials must be refused.
    let control = cx
        .send(cross_site(generate::request_for(delete, &fill)))
        .await
        .ok()?;
    if !matches!(control.status.as_u16(), 401 | 403) {
        return None;
    }
    let forged = cx
        .send(
            cross_site(generate::request_for(delete, &fill))
                .header("Cookie", session.cookie.clone()),
        )
        .await
        .ok()?;
    if !forged.status.is_success() {
        return None;
    }
    let read = cx
        .send(generate::request_for(get, &fill).with_auth(&bearer.auth))
        .await
        .ok()?;
    (read.status.as_u16() == 404 || read.status.as_u16() == 410).then(|| {
        Outcome::Found(vec![
            Finding::new(CheckId::Csrf, delete.label(), cx.evidence(&forged)).titled(title(
                delete,
                session,
                "deleted an object",
            )),
        ])
    })
}

#[cfg(test)]
mod tests;
