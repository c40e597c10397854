//! Input interpreted as code: SQL, NoSQL operators, templates, file paths.
//!
//! Every payload reads: boolean conditions, a lone quote, operator objects, an arithmetic
//! template, a path to a world-readable file. None writes, stacks a statement or drops anything.

pub(crate) mod points;
#[cfg(test)]
pub(crate) mod test_api;

use serde_json::{Value, json};

use crate::{
    catalog::CheckId,
    context::{Context, Outcome},
    generate::request_for,
    objects,
    probe::Exchange,
    report::Finding,
};

use points::{
    Budget, Kind, Place, Planner, Point, Target, each_point, inconclusive, normalized,
    random_token, random_u64, send,
};

/// The most requests the SQL check sends.
const SQL_CAP: u64 = 350;
/// The most requests the NoSQL check sends.
const NOSQL_CAP: u64 = 150;
/// The most requests the template check sends.
const SSTI_CAP: u64 = 200;
/// The most requests the path traversal check sends.
const TRAVERSAL_CAP: u64 = 200;

pub(crate) const NO_DOCUMENT: &str = "no OpenAPI document: no operation to try";

/// Texts that only a database error puts in an answer.
const SQL_ERRORS: &[&str] = &[
    "sqlite3.OperationalError",
    "syntax error at or near",
    "unrecognized token",
    "SQLSTATE",
    "You have an error in your SQL syntax",
    "psycopg2",
    "SQLITE_ERROR",
    "unterminated quoted string",
    "quoted string not properly terminated",
    "Unclosed quotation mark after the character string",
];

/// The first database error signature in `text`: its text and position.
pub(crate) fn sql_error(text: &str) -> Option<(String, usize)> {
    for sig in SQL_ERRORS {
        if let Some(at) = text.find(sig) {
            return Some(((*sig).to_owned(), at));
        }
    }
    // Oracle: `ORA-` and five digits.
    let mut from = 0;
    while let Some(i) = text[from..].find("ORA-") {
        let at = from + i;
        let digits = text[at + 4..].bytes().take(5);
        if text.len() >= at + 9 && digits.clone().all(|b| b.is_ascii_digit()) {
            return Some((text[at..at + 9].to_owned(), at));
        }
        from = at + 4;
    }
    // SQLite: `near "...": syntax error`.
    let mut from = 0;
    while let Some(i) = text[from..].find("near \"") {
        let at = from + i;
        let rest = &text[at..];
        if let Some(end) = rest.find("\": syntax error")
            && end < 120
        {
            return Some((rest[..end + 15].to_owned(), at));
        }
        from = at + 6;
    }
    None
}

/// The evidence of `x` with `note` appended (masked).
fn evidence_with(cx: &Context, x: &Exchange, note: &str) -> crate::report::Evidence {
    // A login bypassed by a payload answers with a real token: it goes in no report.
    if let Some(Value::Object(answer)) = x.json() {
        for (key, value) in &answer {
            if let Value::String(v) = value
                && (key.to_ascii_lowercase().contains("token") || key == "session")
            {
                cx.secrets.add(v);
            }
        }
    }
    let mut evidence = cx.evidence(x);
    evidence.response.push_str("\n\n");
    evidence.response.push_str(&cx.secrets.mask(note));
    evidence
}

pub(crate) fn note(tried: usize, short: bool, what: &str) -> Option<String> {
    let mut n = format!("{tried} {what} tried");
    if short {
        n.push_str(" (the check's request cap was reached)");
    }
    Some(n)
}

// --- SQL ---------------------------------------------------------------------------------------

/// How a boolean pair shows an injection.
#[derive(Clone, Copy)]
enum Logic {
    /// `v AND true` answers like `v`, `v AND false` differently.
    And,
    /// `v OR false` answers like `v`, `v OR true` with more.
    Or,
}

/// The true and false payloads of a pair, with literals `a`/`b` (`a` = `a` is true, `a` = `b`
/// false). A second round swaps the literals, so that a search matching words or digits of the
/// payload cannot pass both.
fn pair(v: &str, numeric: bool, index: usize, a: u8, b: u8) -> Option<(String, String, Logic)> {
    let text = [
        (
            format!("{v}' AND '{a}'='{a}"),
            format!("{v}' AND '{a}'='{b}"),
            Logic::And,
        ),
        (
            format!("{v}' OR '{a}'='{a}"),
            format!("{v}' OR '{a}'='{b}"),
            Logic::Or,
        ),
        (
            format!("{v}' OR {a}={a}-- "),
            format!("{v}' OR {a}={b}-- "),
            Logic::Or,
        ),
    ];
    if numeric {
        let num = [
            (
                format!("{v} AND {a}={a}"),
                format!("{v} AND {a}={b}"),
                Logic::And,
            ),
            (
                format!("{v} OR {a}={a}"),
                format!("{v} OR {a}={b}"),
                Logic::Or,
            ),
        ];
        num.into_iter().chain(text).nth(index)
    } else {
        text.into_iter().nth(index)
    }
}

fn pairs_for(numeric: bool) -> usize {
    if numeric { 5 } else { 3 }
}

/// Whether the answers to a pair show the condition was evaluated.
fn boolean_shows(
    b: &Exchange,
    v: &str,
    t: &Exchange,
    tv: &str,
    f: &Exchange,
    fv: &str,
    logic: Logic,
) -> bool {
    if inconclusive(t)
        || inconclusive(f)
        || t.status.is_server_error()
        || f.status.is_server_error()
    {
        return false;
    }
    let nb = normalized(b, &[v]);
    let nt = normalized(t, &[tv, v]);
    let nf = normalized(f, &[fv, v]);
    if nt == nf {
        return false;
    }
    match logic {
        Logic::And => nt == nb && (b.status.is_success() || f.status.is_success()),
        Logic::Or => {
            nf == nb && t.status.is_success() && (!b.status.is_success() || nt.1.len() > nb.1.len())
        }
    }
}

/// `sql-injection`: boolean pairs (confirmed with other literals) and database errors on a lone
/// quote, in each text or number parameter and body field of the operations that read.
pub async fn sql(cx: &Context) -> Outcome {
    let (findings, tried, short) = each_point!(
        cx,
        SQL_CAP,
        4,
        |_t: &Target, p: &Point| p.kind != Kind::Other,
        |target, point| sql_point(cx, &target, point).await
    );
    if tried == 0 {
        return Outcome::Skipped("no parameter or body field to try".into());
    }
    Outcome::from_findings(findings, note(tried, short, "parameters"))
}

async fn sql_point(cx: &Context, target: &Target<'_>, point: &Point) -> Option<Finding> {
    let v = point.baseline_text();
    let b = send(cx, target.baseline(point)).await?;
    if inconclusive(&b) {
        return None;
    }
    let label = target.label();
    // A lone quote: a database error that the baseline does not show, twice.
    let quote = format!("{v}'");
    let q = send(cx, target.with_text(point, &quote)).await?;
    if sql_error(&b.text()).is_none()
        && let Some((sig, at)) = sql_error(&q.text())
    {
        let again = send(cx, target.with_text(point, &quote)).await?;
        if sql_error(&again.text()).is_some_and(|(s, _)| s == sig) {
            let text = q.text();
            let excerpt = points::excerpt_around(&text, at, sig.len(), 80);
            return Some(
                Finding::new(
                    CheckId::SqlInjection,
                    label,
                    evidence_with(cx, &q, &format!("[database error] {excerpt}")),
                )
                .titled(format!(
                    "SQL injection: a quote in {} breaks the query ({sig})",
                    point.label()
                )),
            );
        }
    }
    // Boolean pairs, on a stable baseline.
    let b2 = send(cx, target.baseline(point)).await?;
    if normalized(&b, &[&v]) != normalized(&b2, &[&v]) {
        return None;
    }
    let numeric = point.kind == Kind::Number;
    for index in 0..pairs_for(numeric) {
        let (tv, fv, logic) = pair(&v, numeric, index, 1, 2)?;
        let t = send(cx, target.with_text(point, &tv)).await?;
        let f = send(cx, target.with_text(point, &fv)).await?;
        if !boolean_shows(&b, &v, &t, &tv, &f, &fv, logic) {
            continue;
        }
        let (tv2, fv2, _) = pair(&v, numeric, index, 2, 1)?;
        let t2 = send(cx, target.with_text(point, &tv2)).await?;
        let f2 = send(cx, target.with_text(point, &fv2)).await?;
        if !boolean_shows(&b, &v, &t2, &tv2, &f2, &fv2, logic) {
            continue;
        }
        let (shown, what) = match logic {
            Logic::Or => (
                &t,
                format!(
                    "[boolean pair] {tv:?} answers more than {fv:?}, which answers like {v:?} (confirmed with {tv2:?} / {fv2:?})"
                ),
            ),
            Logic::And => (
                &f,
                format!(
                    "[boolean pair] {tv:?} answers like {v:?}, {fv:?} differently (confirmed with {tv2:?} / {fv2:?})"
                ),
            ),
        };
        return Some(
            Finding::new(
                CheckId::SqlInjection,
                label,
                evidence_with(cx, shown, &what),
            )
            .titled(format!(
                "SQL injection: {} is evaluated as SQL (boolean conditions change the answer)",
                point.label()
            )),
        );
    }
    None
}

// --- NoSQL -------------------------------------------------------------------------------------

/// The request with a query operator at a query point: `name[$op]=value`.
fn query_operator(target: &Target<'_>, point: &Point, op: &str, value: &str) -> Option<String> {
    const MARK: &str = "bwkopmark3x";
    let request = target.with_raw(point, MARK);
    let name: String = url::form_urlencoded::byte_serialize(point.name.as_bytes()).collect();
    let value: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let from = format!("{name}={MARK}");
    request.path.contains(&from).then(|| {
        request
            .path
            .replace(&from, &format!("{name}%5B%24{op}%5D={value}"))
    })
}

/// Sends `value` as an operator at `point`: a JSON object in a body field, brackets in a query.
async fn send_operator(
    cx: &Context,
    target: &Target<'_>,
    point: &Point,
    op: &str,
    value: Value,
) -> Option<Exchange> {
    match point.place {
        Place::Body => {
            let mut obj = serde_json::Map::new();
            obj.insert(format!("${op}"), value);
            send(cx, target.request(point, Value::Object(obj))).await
        }
        Place::Query => {
            let text = match &value {
                Value::String(s) => s.clone(),
                _ => String::new(),
            };
            let path = query_operator(target, point, op, &text)?;
            let mut request = target.with_text(point, "");
            request.path = path;
            send(cx, request).await
        }
        Place::Path => None,
    }
}

/// Whether `x` (2xx) answers more than `than`.
fn returns_more(x: &Exchange, xs: &[&str], than: &Exchange, thans: &[&str]) -> bool {
    if !x.status.is_success() || inconclusive(than) {
        return false;
    }
    let nx = normalized(x, xs);
    let nt = normalized(than, thans);
    nx != nt && (!than.status.is_success() || nx.1.len() > nt.1.len())
}

/// `nosql-injection`: operator objects (`{"$ne": null}`, ...) in JSON body fields and query
/// parameters that return what a random value does not, confirmed by `$ne` against `$eq` on a
/// new random value.
pub async fn nosql(cx: &Context) -> Outcome {
    let (findings, tried, short) = each_point!(
        cx,
        NOSQL_CAP,
        8,
        |t: &Target, p: &Point| p.kind == Kind::Text
            && (p.place == Place::Query || (p.place == Place::Body && t.json_body())),
        |target, point| nosql_point(cx, &target, point).await
    );
    if tried == 0 {
        return Outcome::Skipped("no JSON body field or query parameter to try".into());
    }
    Outcome::from_findings(findings, note(tried, short, "parameters"))
}

async fn nosql_point(cx: &Context, target: &Target<'_>, point: &Point) -> Option<Finding> {
    let r = random_token();
    let base = send(cx, target.with_text(point, &r)).await?;
    if inconclusive(&base) {
        return None;
    }
    let operators = [
        ("ne", Value::Null),
        ("gt", json!("")),
        ("regex", json!(".*")),
    ];
    for (op, value) in operators {
        let value = if point.place == Place::Query && value.is_null() {
            json!(random_token())
        } else {
            value
        };
        let Some(p) = send_operator(cx, target, point, op, value.clone()).await else {
            continue;
        };
        if !returns_more(&p, &[], &base, &[&r]) {
            continue;
        }
        let r2 = random_token();
        let ne = send_operator(cx, target, point, "ne", json!(r2)).await?;
        let eq = send_operator(cx, target, point, "eq", json!(r2)).await?;
        if returns_more(&ne, &[&r2], &eq, &[&r2]) {
            let shown = format!("{{\"${op}\": {value}}}");
            return Some(
                Finding::new(
                    CheckId::NosqlInjection,
                    target.label(),
                    evidence_with(
                        cx,
                        &p,
                        &format!(
                            "[operator] {shown} answers more than a random value; {{\"$ne\": \"{r2}\"}} more than {{\"$eq\": \"{r2}\"}}"
                        ),
                    ),
                )
                .titled(format!(
                    "NoSQL injection: {} takes query operators",
                    point.label()
                )),
            );
        }
    }
    None
}

// --- SSTI --------------------------------------------------------------------------------------

/// Two random five-digit numbers.
fn factors() -> (u64, u64) {
    let x = random_u64();
    (10_000 + x % 90_000, 10_000 + (x >> 32) % 90_000)
}

/// The template syntaxes tried: `a*b` in each.
fn templates(a: u64, b: u64) -> [String; 5] {
    [
        format!("{{{{{a}*{b}}}}}"),
        format!("${{{a}*{b}}}"),
        format!("<%= {a}*{b} %>"),
        format!("#{{{a}*{b}}}"),
        format!("{{{{={a}*{b}}}}}"),
    ]
}

/// Whether `x` shows `a*b` computed: the product there, the raw payload not.
fn evaluated(x: &Exchange, payload: &str, product: &str) -> bool {
    let text = x.text();
    text.contains(product) && !text.contains(payload)
}

/// `ssti`: an arithmetic canary (`{{a*b}}` and the other engines' syntax, with two random
/// five-digit numbers) whose product comes back: in each text parameter and body field, and in
/// objects the audit creates, read back through their pages. Confirmed with new numbers.
pub async fn ssti(cx: &Context) -> Outcome {
    let (mut findings, mut tried, mut short) = each_point!(
        cx,
        SSTI_CAP,
        7,
        |_t: &Target, p: &Point| p.kind == Kind::Text,
        |target, point| ssti_point(cx, &target, point).await
    );
    // Stored: objects whose fields are templates, read back.
    if let Some(api) = cx.api.as_ref()
        && let Some(session) = cx.sessions.first()
        && let Some(mut planner) = Planner::new(cx)
    {
        let budget = Budget::new(cx, 80);
        for collection in objects::collections(api).into_iter().take(3) {
            if findings.iter().any(|f| f.operation == collection.label()) {
                continue;
            }
            let target = planner.target(collection).await;
            let fields: Vec<&Point> = target
                .points
                .iter()
                .filter(|p| p.place == Place::Body && p.kind == Kind::Text)
                .collect();
            if fields.is_empty() {
                continue;
            }
            tried += 1;
            for syntax in 0..5 {
                if !budget.allows(cx, 6) {
                    short = true;
                    break;
                }
                let (a, b) = factors();
                let payload = templates(a, b)[syntax].clone();
                let product = (a * b).to_string();
                let mut body = target.fill.body.clone().unwrap_or(json!({}));
                if let Some(obj) = body.as_object_mut() {
                    for f in &fields {
                        obj.insert(f.name.clone(), json!(payload));
                    }
                }
                let Ok(Some((object, created))) =
                    objects::create(cx, collection, 0, Some(body)).await
                else {
                    continue;
                };
                let mut hit = evaluated(&created, &payload, &product).then_some(created);
                if hit.is_none() {
                    for (reader, fill) in points::readers(api, &object).into_iter().take(4) {
                        let mut request = request_for(reader, &fill);
                        if reader.secured {
                            request = request.with_auth(&session.auth);
                        }
                        if let Some(x) = send(cx, request).await
                            && evaluated(&x, &payload, &product)
                        {
                            hit = Some(x);
                            break;
                        }
                    }
                }
                if let Some(x) = hit {
                    findings.push(
                        Finding::new(
                            CheckId::Ssti,
                            collection.label(),
                            evidence_with(
                                cx,
                                &x,
                                &format!("[template] {payload} stored, rendered as {product}"),
                            ),
                        )
                        .titled(format!(
                            "Server-side template injection: a stored field is rendered as a template ({})",
                            x.request.path.split('?').next().unwrap_or_default()
                        )),
                    );
                    break;
                }
            }
        }
    }
    if tried == 0 {
        return Outcome::Skipped("no text parameter or body field to try".into());
    }
    Outcome::from_findings(findings, note(tried, short, "parameters"))
}

async fn ssti_point(cx: &Context, target: &Target<'_>, point: &Point) -> Option<Finding> {
    let (a, b) = factors();
    let product = (a * b).to_string();
    let base = send(cx, target.baseline(point)).await?;
    if base.text().contains(&product) {
        return None;
    }
    for (i, payload) in templates(a, b).iter().enumerate() {
        let x = send(cx, target.with_text(point, payload)).await?;
        if !evaluated(&x, payload, &product) {
            continue;
        }
        // Confirm with new numbers, same syntax.
        let (c, d) = factors();
        let again_payload = templates(c, d)[i].clone();
        let again_product = (c * d).to_string();
        let again = send(cx, target.with_text(point, &again_payload)).await?;
        if evaluated(&again, &again_payload, &again_product) {
            return Some(
                Finding::new(
                    CheckId::Ssti,
                    target.label(),
                    evidence_with(
                        cx,
                        &x,
                        &format!(
                            "[template] {payload} rendered as {product}; {again_payload} as {again_product}"
                        ),
                    ),
                )
                .titled(format!(
                    "Server-side template injection: {} is rendered as a template",
                    point.label()
                )),
            );
        }
    }
    None
}

// --- Path traversal ----------------------------------------------------------------------------

/// Parameter names that hold file names or paths.
const FILE_NAMES: &[&str] = &[
    "file",
    "filename",
    "filepath",
    "fname",
    "path",
    "name",
    "doc",
    "document",
    "template",
    "page",
    "download",
    "attachment",
    "folder",
    "dir",
    "directory",
    "resource",
    "include",
    "view",
];

/// Whether `point` of `target` may name a file.
fn file_like(target: &Target<'_>, point: &Point) -> bool {
    // Numbers (`page=2`) and enums cannot hold a path.
    if point.kind != Kind::Text && point.format() != "path" {
        return false;
    }
    let name: String = point
        .name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if FILE_NAMES.contains(&name.as_str()) || name.contains("file") || name.ends_with("path") {
        return true;
    }
    let path = target.op.path.to_ascii_lowercase();
    point.kind == Kind::Text
        && ["file", "download", "static", "asset", "document"]
            .iter()
            .any(|w| path.contains(w))
}

/// A system file's signature in an answer.
fn file_signature(text: &str) -> Option<&'static str> {
    ["root:x:0:0:", "root:*:0:0", "[fonts]"]
        .into_iter()
        .find(|s| text.contains(s))
}

/// `path-traversal`: `../` sequences (plain, encoded, doubled) and absolute paths to
/// `/etc/passwd` and `win.ini` in parameters that name files: the file's content comes back.
pub async fn path_traversal(cx: &Context) -> Outcome {
    let (findings, tried, short) = each_point!(cx, TRAVERSAL_CAP, 8, file_like, |target, point| {
        traversal_point(cx, &target, point).await
    });
    if tried == 0 {
        return Outcome::Skipped("no parameter that names a file".into());
    }
    Outcome::from_findings(findings, note(tried, short, "parameters"))
}

async fn traversal_point(cx: &Context, target: &Target<'_>, point: &Point) -> Option<Finding> {
    let base = send(cx, target.baseline(point)).await?;
    let base_text = base.text();
    // (payload, sent raw on the wire)
    let payloads: [(&str, bool); 6] = [
        ("../../../../../../../../etc/passwd", false),
        ("..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", true),
        ("....//....//....//....//....//....//etc/passwd", false),
        ("/etc/passwd", false),
        ("../../../../../../../../windows/win.ini", false),
        ("..\\..\\..\\..\\..\\..\\..\\..\\windows\\win.ini", false),
    ];
    for (payload, raw) in payloads {
        let build = || {
            if raw {
                target.with_raw(point, payload)
            } else {
                target.with_text(point, payload)
            }
        };
        let x = send(cx, build()).await?;
        let text = x.text();
        let Some(sig) = file_signature(&text) else {
            continue;
        };
        if base_text.contains(sig) {
            continue;
        }
        let again = send(cx, build()).await?;
        if !again.text().contains(sig) {
            continue;
        }
        let file = if sig == "[fonts]" {
            "win.ini"
        } else {
            "/etc/passwd"
        };
        return Some(
            Finding::new(
                CheckId::PathTraversal,
                target.label(),
                evidence_with(cx, &x, &format!("[file] {payload} answered {file} ({sig})")),
            )
            .titled(format!("Path traversal: {} reads {file}", point.label())),
        );
    }
    None
}

#[cfg(test)]
mod tests;
